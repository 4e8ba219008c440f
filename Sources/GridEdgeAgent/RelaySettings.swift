import DLT645
import GridEdgeCore
import Runtime

/// The `control.*` keys: how relays are operated (password, operator, valid-until,
/// close-permit or direct close, tries and backoff) and the local disconnect policy
/// (no-disconnect hours, days and holidays, the hourly maximum, grace per grade).
public struct RelaySettings: Sendable {
  /// PA P0 P1 P2 of every 0x1C request.
  public var password: Password
  /// C0…C3 of every 0x1C request.
  public var operatorCode: UInt32
  /// Valid-until = the local time of sending + this.
  public var validForMinutes: Int64
  /// N1 of a reconnection: close-permit (1B) or direct close (1C).
  public var closeCommand: RelayCommand
  /// Tries of one operation before `relay.failed`.
  public var attempts: Int
  public var retryMinMilliseconds: Int64
  public var retryMaxMilliseconds: Int64
  /// Windows, days, holidays and the hourly maximum.
  public var policy: DisconnectPolicy
  /// Grace in seconds per credit grade (`A`, `B`, …).
  public var grace: [String: Int64]
  /// Grace of the grades not listed (`*`).
  public var otherGrace: Int64
  /// Local time for the calendar and valid-until.
  public var utcOffset: UTCOffset

  /// The settings of `config`.
  /// - Throws: `ConfigError` naming the key at fault and what it expects.
  public init(config: Config) throws(ConfigError) {
    func value(_ key: String) -> String { config.string(key) ?? "" }
    guard let password = Self.parsePassword(value("control.password")) else {
      throw config.error(
        "control.password",
        "expected LEVEL:CODE in hex (e.g. 02:000000), got '" + value("control.password") + "'")
    }
    self.password = password
    guard let operatorCode = Self.parseHex(value("control.operator"), digits: 8) else {
      throw config.error("control.operator", "expected 8 hex digits, got '" + value("control.operator") + "'")
    }
    self.operatorCode = UInt32(operatorCode)
    validForMinutes = config.integer("control.valid_for")
    closeCommand = config.string("control.close") == "direct" ? .directClose : .closePermit
    attempts = Int(config.integer("control.attempts"))
    retryMinMilliseconds = config.integer("control.retry_min")
    retryMaxMilliseconds = config.integer("control.retry_max")
    if retryMaxMilliseconds < retryMinMilliseconds {
      throw config.error("control.retry_max", "must not be less than control.retry_min")
    }
    utcOffset = UTCOffset(seconds: config.integer("device.utc_offset") * 60) ?? .china
    let windows: [DailyWindow]
    do throws(RelaySettingsError) {
      windows = try Self.parseWindows(value("control.no_disconnect_hours"))
    } catch {
      throw config.error("control.no_disconnect_hours", error.description)
    }
    let days: Set<Weekday>
    do throws(RelaySettingsError) {
      days = try Self.parseDays(value("control.no_disconnect_days"))
    } catch {
      throw config.error("control.no_disconnect_days", error.description)
    }
    var holidays = Set<CivilDate>()
    if let text = config.string("control.holidays") {
      do throws(RelaySettingsError) {
        holidays = try Self.parseDates(text)
      } catch {
        throw config.error("control.holidays", error.description)
      }
    }
    do {
      policy = try DisconnectPolicy(
        calendar: NoDisconnectCalendar(dailyWindows: windows, weekendDays: days, holidays: holidays),
        maximumPerHour: Int(config.integer("control.max_per_hour")))
    } catch {
      throw config.error("control.max_per_hour", error.description)
    }
    do throws(RelaySettingsError) {
      (grace, otherGrace) = try Self.parseGrace(value("control.grace"))
    } catch {
      throw config.error("control.grace", error.description)
    }
  }

  /// The grace of credit grade `grade`.
  public func graceSeconds(grade: String) -> Int64 { grace[grade] ?? otherGrace }

  /// The wait after failed try `attempt` (1, 2, …): `retry_min` doubled per try, at most `retry_max`.
  public func retryDelay(afterAttempt attempt: Int) -> Int64 {
    var backoff = Backoff(baseMilliseconds: retryMinMilliseconds, capMilliseconds: retryMaxMilliseconds)
    for _ in 1..<max(1, attempt) { _ = backoff.nextDelay { $0 } }
    return backoff.currentCeiling
  }

  // MARK: - Parsing

  static func parsePassword(_ text: String) -> Password? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 2, let level = parseHex(String(parts[0]), digits: 2),
      let code = parseHex(String(parts[1]), digits: 6)
    else { return nil }
    return try? Password(level: UInt8(level), code: UInt32(code))
  }

  /// Exactly `digits` hex digits.
  static func parseHex(_ text: String, digits: Int) -> UInt64? {
    guard text.utf8.count == digits else { return nil }
    return UInt64(text, radix: 16)
  }

  static func list(_ text: String) -> [String] {
    let trimmed = text.split(separator: ",").map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty }
    return trimmed == ["none"] ? [] : trimmed
  }

  /// `HH:MM-HH:MM[,…]` or `none`.
  static func parseWindows(_ text: String) throws(RelaySettingsError) -> [DailyWindow] {
    var out: [DailyWindow] = []
    for item in list(text) {
      let ends = item.split(separator: "-")
      guard ends.count == 2, let start = parseClock(String(ends[0])), let end = parseClock(String(ends[1])),
        let window = DailyWindow(startHour: start.0, startMinute: start.1, endHour: end.0, endMinute: end.1)
      else {
        throw RelaySettingsError(
          "expected windows 'HH:MM-HH:MM' separated by commas, or none; '" + item + "' is not one")
      }
      out.append(window)
    }
    return out
  }

  private static func parseClock(_ text: String) -> (Int, Int)? {
    let parts = text.split(separator: ":")
    guard parts.count == 2, parts[0].utf8.count == 2, parts[1].utf8.count == 2, let h = Int(String(parts[0])),
      let m = Int(String(parts[1])), h >= 0, h < 24, m >= 0, m < 60
    else { return nil }
    return (h, m)
  }

  static let dayNames: [(String, Weekday)] = [
    ("mon", .monday), ("tue", .tuesday), ("wed", .wednesday), ("thu", .thursday), ("fri", .friday),
    ("sat", .saturday), ("sun", .sunday),
  ]

  /// `mon,…,sun` or `none`.
  static func parseDays(_ text: String) throws(RelaySettingsError) -> Set<Weekday> {
    var out = Set<Weekday>()
    for item in list(text) {
      guard let day = dayNames.first(where: { $0.0 == item })?.1 else {
        throw RelaySettingsError(
          "expected days mon,tue,wed,thu,fri,sat,sun separated by commas, or none; '" + item + "' is not one")
      }
      out.insert(day)
    }
    return out
  }

  /// `YYYY-MM-DD[,…]`.
  static func parseDates(_ text: String) throws(RelaySettingsError) -> Set<CivilDate> {
    var out = Set<CivilDate>()
    for item in list(text) {
      guard let date = Tariffs.parseDate(item), date.isoText == item else {
        throw RelaySettingsError("expected dates YYYY-MM-DD separated by commas; '" + item + "' is not one")
      }
      out.insert(date)
    }
    return out
  }

  /// `GRADE:SECONDS[,…]`, `*` for the other grades (0 when absent).
  static func parseGrace(_ text: String) throws(RelaySettingsError) -> ([String: Int64], Int64) {
    var grades: [String: Int64] = [:]
    var other: Int64 = 0
    for item in list(text) {
      let parts = item.split(separator: ":")
      guard parts.count == 2, !parts[0].isEmpty, let seconds = Int64(String(parts[1])), seconds >= 0,
        seconds <= 31_536_000
      else {
        throw RelaySettingsError(
          "expected GRADE:SECONDS (0...31536000) separated by commas, * for other grades; '" + item
            + "' is not one")
      }
      guard grades[String(parts[0])] == nil && !(parts[0] == "*" && other != 0) else {
        throw RelaySettingsError("grade " + String(parts[0]) + " is listed twice")
      }
      if parts[0] == "*" { other = seconds } else { grades[String(parts[0])] = seconds }
    }
    return (grades, other)
  }
}

/// A `control.*` value that cannot be read.
public struct RelaySettingsError: Error, CustomStringConvertible {
  public let description: String
  init(_ description: String) { self.description = description }
}

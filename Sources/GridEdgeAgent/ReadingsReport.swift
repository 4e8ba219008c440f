import DLT645
import GridEdgeCore
import Runtime
import SQLiteStore

/// `gridedge readings`: what the reading cache holds for one meter, read from the
/// agent's database (read-only; the agent may be running), as a table for an engineer
/// on site or, with `--json`, as the records sent upstream.
public enum ReadingsReport {
  /// Prints the readings of `meter` between `from` and `to`.
  /// - Parameters:
  ///   - meter: the 12-digit address.
  ///   - from: local date `YYYY-MM-DD` or date and time `YYYY-MM-DDThh:mm`; default 24
  ///     hours before `to`.
  ///   - to: the same forms (a date alone means the end of that day); default now.
  ///   - now: wall time in ms.
  /// - Returns: the exit code: 0 when the database could be read (also when no
  ///   reading matched), 2 for a bad argument, 1 without a database.
  public static func run(
    config: Config, meter: String, from: String?, to: String?, json: Bool, now: Int64
  ) -> Int32 {
    guard meter.utf8.count == 12, meter.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
      let address = Address(meter)
    else {
      Console.writeError("gridedge readings: --meter '" + meter + "' is not a meter address (12 digits)\n")
      return ExitCode.config
    }
    let offset = UTCOffset(seconds: config.integer("device.utc_offset") * 60) ?? .china
    var end = now
    if let to {
      guard let parsed = parseLocal(to, offset: offset, endOfDay: true) else {
        Console.writeError("gridedge readings: --to '" + to + "' is not YYYY-MM-DD or YYYY-MM-DDThh:mm\n")
        return ExitCode.config
      }
      end = parsed
    }
    var start = end - 86_400_000
    if let from {
      guard let parsed = parseLocal(from, offset: offset, endOfDay: false) else {
        Console.writeError("gridedge readings: --from '" + from + "' is not YYYY-MM-DD or YYYY-MM-DDThh:mm\n")
        return ExitCode.config
      }
      start = parsed
    }
    let path = config.string("store.path") ?? ""
    guard Files.exists(path) else {
      Log.error(
        "readings",
        "no database at " + path + " (store.path in " + config.file + "): the agent has not run yet")
      return ExitCode.failure
    }
    var options = Connection.Options()
    options.readOnly = true
    options.verifyIntegrity = false
    let found: [Reading]
    do {
      let db = try Connection(path: path, options: options)
      found = try Readings.readings(in: db, meter: address, from: start, to: end, limit: 1_000_000)
    } catch {
      Log.error("readings", "database " + path + ": " + error.description)
      return ExitCode.database
    }
    if json {
      var text = "["
      for (i, reading) in found.enumerated() { text += (i == 0 ? "" : ",") + reading.record }
      Console.writeLine(text + "]")
      return ExitCode.ok
    }
    Console.writeLine(
      "meter " + meter + ", " + localText(start, offset) + " to " + localText(end, offset) + " (UTC"
        + offsetText(offset) + "): " + String(found.count) + " reading(s)")
    guard !found.isEmpty else { return ExitCode.ok }
    Console.writeLine(
      pad("time (local)", 18) + pad("di", 10) + pad("kWh", 12) + pad("quality", 15)
        + "tariffs kWh (sharp peak flat valley)")
    for r in found {
      var tariffs = ""
      for t in r.tariffs { tariffs += (tariffs.isEmpty ? "" : " ") + kilowattHours(t) }
      Console.writeLine(
        pad(localText(r.timestamp, offset), 18) + pad(r.identifier.description, 10)
          + pad(kilowattHours(r.value), 12) + pad(r.quality.name, 15) + tariffs)
    }
    return ExitCode.ok
  }

  /// Unix ms of local `YYYY-MM-DD` (midnight, or the last ms of the day when
  /// `endOfDay`) or `YYYY-MM-DDThh:mm` / `YYYY-MM-DD hh:mm`.
  static func parseLocal(_ text: String, offset: UTCOffset, endOfDay: Bool) -> Int64? {
    let bytes = Array(text.utf8)
    func number(_ range: Range<Int>) -> Int? {
      guard range.upperBound <= bytes.count else { return nil }
      var value = 0
      for i in range {
        guard bytes[i] >= 0x30 && bytes[i] <= 0x39 else { return nil }
        value = value * 10 + Int(bytes[i] - 0x30)
      }
      return value
    }
    guard bytes.count == 10 || bytes.count == 16, bytes[4] == 0x2D, bytes[7] == 0x2D,
      let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
      let date = CivilDate(year: Int64(year), month: month, day: day)
    else { return nil }
    if bytes.count == 10 {
      let midnight = offset.unixSeconds(startOf: date) * 1000
      return endOfDay ? midnight + 86_400_000 - 1 : midnight
    }
    guard bytes[10] == 0x54 || bytes[10] == 0x20, bytes[13] == 0x3A, let hour = number(11..<13),
      let minute = number(14..<16), let local = LocalDateTime(date: date, hour: hour, minute: minute)
    else { return nil }
    return offset.unixSeconds(of: local) * 1000
  }

  /// `2026-01-01 00:15` local.
  static func localText(_ milliseconds: Int64, _ offset: UTCOffset) -> String {
    let local = offset.localDateTime(fromUnix: unixSeconds(milliseconds: milliseconds))
    let iso = local.isoText
    return String(iso.prefix(10)) + " " + String(iso.dropFirst(11).prefix(5))
  }

  /// `+08:00`.
  static func offsetText(_ offset: UTCOffset) -> String {
    let minutes = abs(offset.seconds) / 60
    let h = minutes / 60
    let m = minutes % 60
    return (offset.seconds < 0 ? "-" : "+") + (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "")
      + String(m)
  }

  /// `1234.56` for 1,234,560 Wh (registers have 10 Wh steps).
  static func kilowattHours(_ wattHours: Int64) -> String {
    let sign = wattHours < 0 ? "-" : ""
    let magnitude = wattHours.magnitude
    let hundredths = magnitude % 1000 / 10
    return sign + String(magnitude / 1000) + "." + (hundredths < 10 ? "0" : "") + String(hundredths)
  }

  private static func pad(_ text: String, _ width: Int) -> String {
    var out = text
    while out.utf8.count < width { out += " " }
    return out + (out.utf8.count > width ? " " : "")
  }
}

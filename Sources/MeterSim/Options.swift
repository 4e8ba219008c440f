import DLT645
import GridEdgeCore
import Runtime

/// What a simulation is made of: how many meters, their addresses, the seed, the
/// simulated time, profiles, prices and faults. The same options give the same
/// meters and the same registers at the same simulated time.
public struct SimulatorOptions: Sendable {
  /// The most customer meters one simulator serves.
  public static let maximumMeters = 2_048

  /// Customer meters, 1…2,048.
  public var meterCount = 1
  /// The seed every random quantity is drawn from.
  public var seed: UInt64 = 1
  /// Simulated time at start-up, unix milliseconds.
  public var startMilliseconds: Int64 = 1_767_225_600_000
  /// Days simulated before the start (at start-up, in a moment), so that daily
  /// freezes exist at once; 0…400.
  public var historyDays = 0
  /// Simulated milliseconds per real millisecond, in ‰ (1,000 = real time; 96,000 =
  /// 15 minutes every 9.4 s).
  public var speedPermille: Int64 = 1_000
  /// Line rate for reply pacing (11 bits per byte), or 0 for none.
  public var baud = 0
  /// The customers' load profiles.
  public var profile = ProfileChoice.mixed
  /// The address of meter number 1; the others follow consecutively.
  public var firstAddress = Address(number: 1)!
  /// The area (transformer) meter's address, or nil for no area meter.
  public var areaAddress: Address? = Address(number: 900_000_000_001)!
  /// Technical loss of the area in ‰ of the customers' true consumption (the area
  /// meter registers true × (1,000 + loss) / 1,000); negative values are allowed, to
  /// test how a negative loss is flagged.
  public var lossPermille: Int64 = 50
  /// The flat price the prepaid remaining amount goes down by.
  public var price = Price(tenThousandthsPerKilowattHour: 4_883)
  /// The password control commands (0x1C) must carry.
  public var password = try! Password(level: 0x02, code: 0)
  /// Injected faults, applied in order.
  public var faults: [FaultRule] = []
  /// Simulated time (unix ms) from which theft, stopped and reverse act, or nil for
  /// from the start.
  public var faultsFromMilliseconds: Int64? = nil
  /// The share of replies sent with a wrong checksum, in ‰.
  public var corruptPermille: Int64 = 0
  /// Losses of supply played during the run (`--outage`).
  public var outages: [SupplyOutage] = []

  public init() {}

  /// The simulated time the model starts from: the start minus the history days.
  public var epochMilliseconds: Int64 { startMilliseconds - Int64(historyDays) * 86_400_000 }

  /// The address of meter `number` (1…meterCount).
  public func customerAddress(number: Int) -> Address {
    Address(number: firstAddress.number! + UInt64(number - 1))!
  }

  /// Checks the combination of options.
  /// - Throws: `SimulatorOptionError` naming the option at fault.
  public func validate() throws(SimulatorOptionError) {
    guard (1...SimulatorOptions.maximumMeters).contains(meterCount) else {
      throw SimulatorOptionError(
        .invalid(option: "meters", value: String(meterCount), expected: "a count from 1 to 2048"))
    }
    guard let first = firstAddress.number, !firstAddress.isBroadcast else {
      throw SimulatorOptionError(
        .invalid(option: "first-address", value: firstAddress.description, expected: "12 decimal digits"))
    }
    let last = first + UInt64(meterCount - 1)
    guard last < 999_999_999_999 else {
      throw SimulatorOptionError(
        .conflict(
          "--first-address " + firstAddress.description + " leaves no room for " + String(meterCount)
            + " consecutive addresses"))
    }
    if let area = areaAddress {
      guard let number = area.number, !area.isBroadcast else {
        throw SimulatorOptionError(
          .invalid(option: "area-address", value: area.description, expected: "12 decimal digits"))
      }
      guard number < first || number > last else {
        throw SimulatorOptionError(
          .conflict(
            "--area-address " + area.description + " is one of the customer addresses "
              + firstAddress.description + "…" + Address(number: last)!.description))
      }
    }
    for outage in outages {
      if case .meters(.numbers(let range)) = outage.scope, range.upperBound > meterCount {
        throw SimulatorOptionError(
          .invalid(
            option: "outage", value: String(range.upperBound),
            expected: "meter numbers from 1 to " + String(meterCount)))
      }
    }
    for rule in faults {
      if case .numbers(let range) = rule.selection, range.upperBound > meterCount {
        throw SimulatorOptionError(
          .invalid(
            option: rule.kind.optionName, value: String(range.upperBound),
            expected: "meter numbers from 1 to " + String(meterCount)))
      }
    }
  }
}

extension SimulatorOptions {
  /// Options that take a value, for `Runtime.Arguments` (with `ServeOptions.valued`).
  public static let valued: Set<String> = [
    "meters", "seed", "start", "history-days", "speed", "baud", "profile", "first-address", "area-address",
    "loss", "price", "password", "theft", "stopped", "reverse", "silent", "drift", "slow", "relay-bypass",
    "corrupt", "faults-from", "outage",
  ]
  /// Flags (no value).
  public static let flags: Set<String> = ["no-area"]

  /// Options from a command line.
  /// - Parameters:
  ///   - arguments: the parsed command line.
  ///   - now: unix milliseconds, the start when `--start` is not given.
  /// - Throws: `SimulatorOptionError` naming the option and what it expects.
  public init(arguments: Arguments, now: Int64) throws(SimulatorOptionError) {
    self.init()
    startMilliseconds = now
    if let text = arguments.value("meters") {
      meterCount = try integer(
        text, "meters", 1...Int64(SimulatorOptions.maximumMeters), "a count from 1 to 2048")
    }
    if let text = arguments.value("seed") {
      guard let value = UInt64(text) else {
        throw SimulatorOptionError(.invalid(option: "seed", value: text, expected: "an unsigned integer"))
      }
      seed = value
    }
    if let text = arguments.value("start") {
      let seconds: Int64 = try integer(
        text, "start", 946_684_800...4_102_444_799, "unix seconds in 2000…2099 (meters keep YY)")
      startMilliseconds = seconds * 1000
    }
    if let text = arguments.value("history-days") {
      historyDays = try integer(text, "history-days", 0...400, "0 to 400 days")
    }
    if let text = arguments.value("speed") {
      guard let value = parseDecimal(text, fractionDigits: 3), value >= 1, value <= 100_000_000 else {
        throw SimulatorOptionError(
          .invalid(option: "speed", value: text, expected: "a factor from 0.001 to 100000 (e.g. 96)"))
      }
      speedPermille = value
    }
    if let text = arguments.value("baud") {
      baud = try integer(text, "baud", 0...1_000_000, "a line rate in bit/s (e.g. 2400, 9600), 0 for none")
    }
    if let text = arguments.value("profile") {
      guard let value = ProfileChoice(name: text) else {
        throw SimulatorOptionError(
          .invalid(option: "profile", value: text, expected: "residential, commercial or mixed"))
      }
      profile = value
    }
    if let text = arguments.value("first-address") {
      firstAddress = try address(text, "first-address")
    }
    if let text = arguments.value("area-address") {
      areaAddress = try address(text, "area-address")
    }
    if arguments.has("no-area") {
      guard arguments.value("area-address") == nil else {
        throw SimulatorOptionError(.conflict("--no-area and --area-address exclude each other"))
      }
      areaAddress = nil
    }
    if let text = arguments.value("loss") {
      lossPermille = try integer(text, "loss", -999...1_000, "a loss in permille from -999 to 1000")
    }
    if let text = arguments.value("price") {
      price = Price(
        tenThousandthsPerKilowattHour: try integer(
          text, "price", 0...1_000_000, "a price in 0.0001 CNY/kWh (4883 = 0.4883 CNY/kWh)"))
    }
    if let text = arguments.value("password") {
      password = try parsePassword(text)
    }
    for kind in FaultKind.allCases {
      if let text = arguments.value(kind.optionName) {
        faults += try parseFaultRules(text, kind: kind)
      }
    }
    if let text = arguments.value("corrupt") {
      corruptPermille = try integer(text, "corrupt", 0...1_000, "a share of replies in permille, 0 to 1000")
    }
    if let text = arguments.value("outage") {
      outages = try parseOutages(text)
    }
    if let text = arguments.value("faults-from") {
      let seconds: Int64 = try integer(
        text, "faults-from", 946_684_800...4_102_444_799, "unix seconds in 2000…2099")
      faultsFromMilliseconds = seconds * 1000
    }
    try validate()
  }
}

/// Where and how `gridedge-sim serve` listens, and its ground-truth file.
public struct ServeOptions: Sendable {
  /// The address to listen on (IPv4).
  public var host = "127.0.0.1"
  /// The TCP port (0: any free port, logged), or nil for no TCP listener.
  public var tcpPort: Int32? = nil
  /// Also serve the bus on a pseudo-terminal (its slave path is printed).
  public var pty = false
  /// Where to write the ground truth (JSON), or nil.
  public var truthFile: String? = nil
  /// How often to write it, in real milliseconds.
  public var truthEveryMilliseconds: Int64 = 5_000

  public init() {}

  /// Options that take a value.
  public static let valued: Set<String> = ["tcp", "host", "truth-file", "truth-every"]
  /// Flags.
  public static let flags: Set<String> = ["pty"]

  /// Serve options from a command line.
  /// - Throws: `SimulatorOptionError` for a bad value, or when neither `--tcp` nor
  ///   `--pty` is given.
  public init(arguments: Arguments) throws(SimulatorOptionError) {
    self.init()
    if let text = arguments.value("host") {
      host = text
    }
    if let text = arguments.value("tcp") {
      let port: Int32 = try integer(text, "tcp", 0...65_535, "a TCP port (0 for any free port)")
      tcpPort = port
    }
    pty = arguments.has("pty")
    truthFile = arguments.value("truth-file")
    if let text = arguments.value("truth-every") {
      truthEveryMilliseconds = try integer(text, "truth-every", 50...86_400_000, "milliseconds, at least 50")
    }
    guard tcpPort != nil || pty else {
      throw SimulatorOptionError(.conflict("serve needs --tcp PORT, --pty or both"))
    }
  }
}

/// A command-line option the simulator cannot use.
public struct SimulatorOptionError: Error, CustomStringConvertible, Sendable {
  enum Kind: Sendable {
    case invalid(option: String, value: String, expected: String)
    case conflict(String)
  }

  let kind: Kind

  init(_ kind: Kind) { self.kind = kind }

  /// The option at fault (without `--`), or nil for a conflict between options.
  public var option: String? {
    switch kind {
    case .invalid(let option, _, _): return option
    case .conflict: return nil
    }
  }

  public var description: String {
    switch kind {
    case .invalid(let option, let value, let expected):
      return "--" + option + " '" + value + "': expected " + expected
    case .conflict(let message):
      return message
    }
  }
}

/// An integer option in `range`.
private func integer<T: FixedWidthInteger>(
  _ text: String, _ option: String, _ range: ClosedRange<Int64>, _ expected: String
) throws(SimulatorOptionError) -> T {
  guard let value = Int64(text), range.contains(value) else {
    throw SimulatorOptionError(.invalid(option: option, value: text, expected: expected))
  }
  return T(value)
}

/// A meter address option: 1 to 12 decimal digits, no wildcard.
private func address(_ text: String, _ option: String) throws(SimulatorOptionError) -> Address {
  guard let value = Address(text), !value.hasWildcard, !value.isBroadcast else {
    throw SimulatorOptionError(
      .invalid(option: option, value: text, expected: "1 to 12 decimal digits, not 999999999999"))
  }
  return value
}

/// `LEVEL:CODE` in hex: `02:000000`.
private func parsePassword(_ text: String) throws(SimulatorOptionError) -> Password {
  let parts = text.split(separator: ":", omittingEmptySubsequences: false)
  guard parts.count == 2, parts[0].utf8.count == 2, parts[1].utf8.count == 6,
    let level = UInt8(String(parts[0]), radix: 16), let code = UInt32(String(parts[1]), radix: 16),
    let password = try? Password(level: level, code: code)
  else {
    throw SimulatorOptionError(
      .invalid(option: "password", value: text, expected: "LEVEL:CODE in hex, e.g. 02:000000"))
  }
  return password
}

/// A decimal number with at most `fractionDigits` digits after the point, scaled by
/// 10^fractionDigits ("0.5" with 3 digits is 500); a leading "-" is allowed.
func parseDecimal(_ text: String, fractionDigits: Int) -> Int64? {
  var negative = false
  var whole: Int64 = 0
  var fraction: Int64 = 0
  var fractionCount = 0
  var seenPoint = false
  var digits = 0
  for (offset, c) in text.utf8.enumerated() {
    switch c {
    case UInt8(ascii: "-") where offset == 0:
      negative = true
    case UInt8(ascii: "."):
      guard !seenPoint else { return nil }
      seenPoint = true
    case UInt8(ascii: "0")...UInt8(ascii: "9"):
      digits += 1
      guard digits <= 15 else { return nil }
      if seenPoint {
        fractionCount += 1
        guard fractionCount <= fractionDigits else { return nil }
        fraction = fraction * 10 + Int64(c - UInt8(ascii: "0"))
      } else {
        whole = whole * 10 + Int64(c - UInt8(ascii: "0"))
      }
    default:
      return nil
    }
  }
  guard digits > 0 else { return nil }
  var scale: Int64 = 1
  for _ in 0..<fractionDigits { scale *= 10 }
  for _ in fractionCount..<fractionDigits { fraction *= 10 }
  let value = whole * scale + fraction
  return negative ? -value : value
}

/// One selection: `N`, `A-B` or `P%`.
func parseSelection(_ text: Substring, option: String) throws(SimulatorOptionError) -> MeterSelection {
  let expected = "meter numbers N or A-B (1…N), or a share P% (e.g. 5% or 0.5%)"
  if text.hasSuffix("%") {
    guard let share = parseDecimal(String(text.dropLast()), fractionDigits: 3), share >= 0,
      share <= 100_000
    else {
      throw SimulatorOptionError(.invalid(option: option, value: String(text), expected: expected))
    }
    return .share(perHundredThousand: share)
  }
  let bounds = text.split(separator: "-", omittingEmptySubsequences: false)
  guard bounds.count <= 2, let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]), low >= 1,
    high >= low
  else {
    throw SimulatorOptionError(.invalid(option: option, value: String(text), expected: expected))
  }
  return .numbers(low...high)
}

/// The items of one fault option: `SEL[:VALUE],...`.
func parseFaultRules(_ text: String, kind: FaultKind) throws(SimulatorOptionError) -> [FaultRule] {
  var rules: [FaultRule] = []
  for item in text.split(separator: ",", omittingEmptySubsequences: false) {
    let parts = item.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
    let selection = try parseSelection(parts[0], option: kind.optionName)
    guard kind.takesValue else {
      guard parts.count == 1 else {
        throw SimulatorOptionError(
          .invalid(option: kind.optionName, value: String(item), expected: "meters without a value"))
      }
      rules.append(FaultRule(kind: kind, selection: selection))
      continue
    }
    guard parts.count == 2 else {
      throw SimulatorOptionError(
        .invalid(option: kind.optionName, value: String(item), expected: "SELECTION:VALUE"))
    }
    let valueText = String(parts[1])
    let value: Int64
    switch kind {
    case .theft:
      guard let permille = parseDecimal(valueText, fractionDigits: 3), permille >= 0, permille <= 1_000 else {
        throw SimulatorOptionError(
          .invalid(
            option: "theft", value: String(item),
            expected: "SELECTION:FACTOR, the share registered, 0 to 1 (e.g. 3:0.5)"))
      }
      value = permille
    case .drift:
      guard let seconds = Int64(valueText), seconds > -3_600, seconds < 3_600 else {
        throw SimulatorOptionError(
          .invalid(
            option: "drift", value: String(item),
            expected: "SELECTION:SECONDS_PER_DAY within ±3599 (e.g. 4:30 or 4:-30)"))
      }
      value = seconds * 1000
    default:
      guard let milliseconds = Int64(valueText), milliseconds >= 0, milliseconds <= 60_000 else {
        throw SimulatorOptionError(
          .invalid(option: "slow", value: String(item), expected: "SELECTION:MILLISECONDS, 0 to 60000"))
      }
      value = milliseconds
    }
    rules.append(FaultRule(kind: kind, selection: selection, value: value))
  }
  return rules
}

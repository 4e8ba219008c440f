import DLT645
import Runtime

/// One meter to poll: its address, the bus it hangs on, and who and where it is.
public struct MeterEntry: Hashable, Sendable {
  public let address: Address
  /// The bus name: `1` for the bus configured by `bus.1`.
  public let bus: String
  /// The customer (account) id, when known.
  public let customer: String?
  /// The transformer area (台区) id, when known.
  public let area: String?
  /// The line of the meter list it came from (for error messages).
  public let line: Int

  public init(address: Address, bus: String, customer: String? = nil, area: String? = nil, line: Int = 0) {
    self.address = address
    self.bus = bus
    self.customer = customer
    self.area = area
    self.line = line
  }
}

/// The list of meters this device reads.
///
/// For now it comes from a text file named by `meter.file`; the signed archive from HQ
/// replaces that source later, so this type only holds the list and parses the file.
///
/// File format, one meter per line; `#` starts a comment, blank lines are skipped:
///
/// ```
/// # address     bus  optional fields
/// 000012345678  1    customer=C-100234  area=TA-0001
/// 000012345679  2
/// ```
///
/// The address is the 12 digits of the nameplate; the bus is the `N` of a `bus.N`
/// key; `customer=` and `area=` are optional, in any order.
public struct MeterArchive: Sendable {
  /// Where the list came from (the file path).
  public let source: String
  /// The meters, in file order.
  public let meters: [MeterEntry]

  public init(source: String, meters: [MeterEntry]) {
    self.source = source
    self.meters = meters
  }

  /// Reads the meter list at `path`.
  /// - Throws: `MeterArchiveError` naming the file and line at fault.
  public static func load(path: String) throws(MeterArchiveError) -> MeterArchive {
    let text: String
    do {
      text = try Files.readText(path)
    } catch {
      throw MeterArchiveError(file: path, line: 0, .unreadable(error.description))
    }
    return try parse(text, file: path)
  }

  /// Parses meter list text; `file` is used in error messages.
  /// - Throws: `MeterArchiveError` for a bad address, a missing bus, an unknown field
  ///   or a meter listed twice.
  public static func parse(_ text: String, file: String) throws(MeterArchiveError) -> MeterArchive {
    var meters: [MeterEntry] = []
    var seen: [Address: Int] = [:]
    var number = 0
    for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
      number += 1
      var content = Substring(raw)
      if let hash = content.firstIndex(of: "#") { content = content[..<hash] }
      let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "," })
      guard let first = words.first else { continue }
      let addressText = String(first)
      guard addressText.utf8.count == 12, addressText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
        let address = Address(addressText)
      else {
        throw MeterArchiveError(file: file, line: number, .badAddress(addressText))
      }
      guard words.count >= 2 else {
        throw MeterArchiveError(file: file, line: number, .missingBus(addressText))
      }
      let bus = String(words[1])
      var customer: String? = nil
      var area: String? = nil
      for field in words.dropFirst(2) {
        if field.hasPrefix("customer="), field.utf8.count > 9 {
          customer = String(field.dropFirst(9))
        } else if field.hasPrefix("area="), field.utf8.count > 5 {
          area = String(field.dropFirst(5))
        } else {
          throw MeterArchiveError(file: file, line: number, .unknownField(String(field)))
        }
      }
      if let earlier = seen[address] {
        throw MeterArchiveError(file: file, line: number, .duplicate(addressText, firstLine: earlier))
      }
      seen[address] = number
      meters.append(MeterEntry(address: address, bus: bus, customer: customer, area: area, line: number))
    }
    return MeterArchive(source: file, meters: meters)
  }

  /// The meters on bus `name`, in list order.
  public func meters(onBus name: String) -> [MeterEntry] { meters.filter { $0.bus == name } }

  /// The entry of `address`, if listed.
  public func entry(_ address: Address) -> MeterEntry? {
    for meter in meters where meter.address == address { return meter }
    return nil
  }
}

/// The meter list cannot be used: names the file and line.
public struct MeterArchiveError: Error, CustomStringConvertible, Sendable {
  enum Kind: Sendable {
    case unreadable(String)
    case badAddress(String)
    case missingBus(String)
    case unknownField(String)
    case duplicate(String, firstLine: Int)
    case unknownBus(String, known: [String])
  }

  public let file: String
  /// 1-based line, or 0 when not about one line.
  public let line: Int
  let kind: Kind

  init(file: String, line: Int, _ kind: Kind) {
    self.file = file
    self.line = line
    self.kind = kind
  }

  public var description: String {
    var text = file
    if line > 0 { text += ":" + String(line) }
    text += ": "
    switch kind {
    case .unreadable(let reason):
      return text + reason
    case .badAddress(let address):
      return text + "'" + address + "' is not a meter address (12 digits 0-9)"
    case .missingBus(let address):
      return text + "meter " + address + " has no bus (expected '<address> <bus> [customer=...] [area=...]')"
    case .unknownField(let field):
      return text + "unknown field '" + field + "' (expected customer=... or area=...)"
    case .duplicate(let address, let firstLine):
      return text + "meter " + address + " is listed twice (first on line " + String(firstLine) + ")"
    case .unknownBus(let bus, let known):
      var names = ""
      for name in known { names += (names.isEmpty ? "" : ", ") + "bus." + name }
      return text + "bus '" + bus + "' is not configured ("
        + (known.isEmpty ? "no bus.N key is set" : "configured: " + names) + ")"
    }
  }
}

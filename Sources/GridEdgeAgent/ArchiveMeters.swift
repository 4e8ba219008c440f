import DLT645
import SQLiteStore

/// The meters of HQ's archive (`archive_meters`) as the list acquisition reads when
/// `meter.file` is not set.
///
/// An archive meter's `bus` names one of the configured `bus.N` keys: `N`, `bus.N`,
/// `bus-N` or `rs485-N` (N = 1..4) all mean `bus.N`; an empty bus means `bus.1`. A
/// meter on a bus that is not configured (or that names none of these) is not read:
/// it is returned as `Unpolled` so the agent reports it to HQ.
public enum ArchiveMeters {
  /// An archive meter that cannot be read: its address and the bus it names.
  public struct Unpolled: Hashable, Sendable {
    public let address: String
    public let bus: String
  }

  /// The `bus.N` name (`"1"`..`"4"`) an archive `bus` field means, or nil.
  public static func busName(_ field: String) -> String? {
    if field.isEmpty { return "1" }
    var digits = Substring(field)
    for prefix in ["bus.", "bus-", "rs485-", "RS485-"] where field.hasPrefix(prefix) {
      digits = field.dropFirst(prefix.utf8.count)
      break
    }
    guard digits.utf8.count == 1, let n = Int(digits), n >= 1, n <= 4 else { return nil }
    return String(n)
  }

  /// The archive meters on a configured bus (in address order) and those that are not.
  /// - Parameters:
  ///   - buses: the names of the configured buses (`"1"` for `bus.1`).
  public static func polled(_ db: Connection, buses: [String]) throws(SQLiteError) -> (
    MeterArchive, [Unpolled]
  ) {
    var meters: [MeterEntry] = []
    var unpolled: [Unpolled] = []
    for row in try db.query(
      "SELECT address, bus, customer, area, area_meter FROM archive_meters ORDER BY address")
    {
      let text = row.text(0) ?? ""
      let field = row.text(1) ?? ""
      guard let address = Address(text) else { continue }
      guard let bus = busName(field), buses.contains(bus) else {
        unpolled.append(Unpolled(address: text, bus: field))
        continue
      }
      let customer = (row.int64(4) ?? 0) != 0 ? nil : row.text(2)
      meters.append(MeterEntry(address: address, bus: bus, customer: customer, area: row.text(3)))
    }
    return (MeterArchive(source: "archive", meters: meters), unpolled)
  }
}

import SQLiteStore

/// An uplink batch (DESIGN.md §5):
/// `{"v":1,"dev":D,"store":S,"seq":N,"class":C,"records":[...]}`.
///
/// `store` is the device database's random 64-bit id (16 hex digits) and `seq` a
/// per-store counter that is never reused, so (dev, store, seq) names a batch for
/// ever. Every record also carries a natural key (`RecordKey`) so HQ can
/// deduplicate at either level.
public struct BatchHeader: Equatable, Sendable {
  public var device: String
  public var store: String
  public var seq: Int64
  public var uplink: UplinkClass
  /// How many records the batch holds.
  public var recordCount: Int

  public init(device: String, store: String, seq: Int64, uplink: UplinkClass, recordCount: Int) {
    self.device = device
    self.store = store
    self.seq = seq
    self.uplink = uplink
    self.recordCount = recordCount
  }

  /// The largest batch payload either side accepts, in bytes.
  public static let maximumBytes = 4 * 1024 * 1024

  /// Validates a received batch payload and returns its header.
  ///
  /// Checks: UTF-8 without NUL (raw or `\u0000`) or unpaired surrogate escapes, a
  /// valid JSON object, `v` = 1, `dev` a device id, `store` 16 lowercase hex
  /// digits, `seq` a positive integer, `class` a known uplink class, `records` an array
  /// of objects each with its natural key (`RecordKey`).
  /// - Throws: `ContractError` naming the first member at fault.
  public static func decode(_ payload: [UInt8], _ db: Connection) throws(ContractError) -> BatchHeader {
    guard payload.count <= maximumBytes else {
      throw .badField("(payload)", "larger than " + String(maximumBytes) + " bytes")
    }
    // A NUL (raw or escaped) would cut a string short in json_extract, so that two
    // records could share a natural key; invalid UTF-8 would be stored altered.
    let text: String
    switch sqliteSafeText(payload) {
    case .success(let safe): text = safe
    case .failure(let problem): throw .badField("(payload)", problem.description)
    }
    guard try isJSONObject(text, db) else { throw .notJSON }
    let rows: [Row]
    do {
      rows = try db.query(
        """
        SELECT json_type(?1, '$.v'), json_extract(?1, '$.v'), json_type(?1, '$.dev'),
          json_extract(?1, '$.dev'), json_type(?1, '$.store'), json_extract(?1, '$.store'),
          json_type(?1, '$.seq'), json_extract(?1, '$.seq'), json_extract(?1, '$.class'),
          json_type(?1, '$.records'), json_array_length(?1, '$.records')
        """, [.text(text)])
    } catch {
      throw .store(error)
    }
    guard let row = rows.first else { throw .notJSON }
    guard row.text(0) == "integer", row.int64(1) == 1 else {
      throw row.text(0) == nil ? .missingField("v") : .badField("v", "expected 1")
    }
    guard row.text(2) == "text", let device = row.text(3) else {
      throw row.text(2) == nil ? .missingField("dev") : .badField("dev", "expected a string")
    }
    guard Topics.isValidDeviceID(device) else { throw .badField("dev", "not a device id") }
    guard row.text(4) == "text", let store = row.text(5) else {
      throw row.text(4) == nil ? .missingField("store") : .badField("store", "expected a string")
    }
    guard isStoreID(store) else { throw .badField("store", "expected 16 lowercase hex digits") }
    guard row.text(6) == "integer", let seq = row.int64(7), seq > 0 else {
      throw row.text(6) == nil ? .missingField("seq") : .badField("seq", "expected a positive integer")
    }
    guard let className = row.text(8) else { throw .missingField("class") }
    guard let uplink = UplinkClass(name: className) else {
      throw .badField("class", "unknown class \"" + className + "\"")
    }
    guard row.text(9) == "array", let count = row.int64(10) else {
      throw row.text(9) == nil ? .missingField("records") : .badField("records", "expected an array")
    }
    let bad: [Row]
    do {
      bad = try db.query(
        "SELECT idx, type FROM (" + RecordKey.select(uplink, payload: "?1")
          + ") WHERE natural_key IS NULL LIMIT 1",
        [.text(text)])
    } catch {
      throw .store(error)
    }
    if let first = bad.first {
      let index = "records[" + String(first.int64(0) ?? 0) + "]"
      if first.text(1) != "object" { throw .badField(index, "expected an object") }
      throw .badField(index, RecordKey.requirement(uplink))
    }
    return BatchHeader(
      device: device, store: store, seq: seq, uplink: uplink, recordCount: Int(count))
  }

  /// True for a store id: exactly 16 lowercase hex digits.
  public static func isStoreID(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    guard bytes.count == 16 else { return false }
    for b in bytes where !((b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66)) { return false }
    return true
  }
}

/// The natural key of a record, by class: what HQ deduplicates records on, whatever
/// batch they arrived in.
///
/// - `readings`: `meter` (text), `di` (text) and `ts` (integer, ms) — the reading's
///   meter, data identifier and timestamp;
/// - every other class: `id` (text), unique per device and class.
public enum RecordKey {
  /// A query over the batch payload bound as parameter `payload` (e.g. `?1`) giving
  /// one row per record: `idx` (its index), `type` (its JSON type), `value` (its
  /// text) and `natural_key` (text, or NULL when a key member is missing or has the
  /// wrong type). Each record is parsed once for its key (a materialized CTE, so the
  /// expression is not copied into every use).
  ///
  /// A reading's key is the JSON array `[ts,"meter","di"]`, timestamp first: readings
  /// arrive in time order across meters, so a unique index on it grows at its end
  /// instead of being written all over (meter first made inserts many times slower).
  public static func select(_ uplink: UplinkClass, payload: String) -> String {
    switch uplink {
    case .readings:
      return """
        WITH r AS MATERIALIZED (SELECT key AS idx, type, value,
          json_extract(value, '$.ts', '$.meter', '$.di') AS k FROM json_each(\(payload), '$.records'))
        SELECT idx, type, value, CASE WHEN type = 'object' AND json_type(k, '$[0]') = 'integer'
          AND json_type(k, '$[1]') = 'text' AND json_type(k, '$[2]') = 'text' THEN k END AS natural_key
        FROM r
        """
    default:
      return """
        SELECT key AS idx, type, value, CASE WHEN type = 'object' AND json_type(value, '$.id') = 'text'
          THEN json_extract(value, '$.id') END AS natural_key
        FROM json_each(\(payload), '$.records')
        """
    }
  }

  /// What a record of `uplink` must carry, for error messages.
  public static func requirement(_ uplink: UplinkClass) -> String {
    switch uplink {
    case .readings: return "a reading needs \"meter\" (text), \"di\" (text) and \"ts\" (integer)"
    default: return "a record needs \"id\" (text)"
    }
  }
}

/// HQ's application acknowledgement on `down/ack`: `{"store":S,"seq":[[from,to],...]}`.
/// Only this releases outbox rows on the device.
public struct Ack: Equatable, Sendable {
  public var store: String
  /// Closed ranges of acknowledged sequence numbers.
  public var ranges: [ClosedRange<Int64>]

  public init(store: String, ranges: [ClosedRange<Int64>]) {
    self.store = store
    self.ranges = ranges
  }

  /// An ack for `seqs` (any order, duplicates allowed), merged into ranges.
  public init(store: String, seqs: [Int64]) {
    self.store = store
    var ranges: [ClosedRange<Int64>] = []
    for seq in seqs.sorted() {
      if let last = ranges.last, seq <= last.upperBound + 1 {
        if seq > last.upperBound { ranges[ranges.count - 1] = last.lowerBound...seq }
      } else {
        ranges.append(seq...seq)
      }
    }
    self.ranges = ranges
  }

  /// The JSON payload.
  public func encode() -> [UInt8] {
    var text = "{\"store\":\"" + store + "\",\"seq\":["
    for (i, range) in ranges.enumerated() {
      text += (i == 0 ? "[" : ",[") + String(range.lowerBound) + "," + String(range.upperBound) + "]"
    }
    return Array((text + "]}").utf8)
  }

  /// The most ranges one ack may carry.
  public static let maximumRanges = 10_000

  /// Parses and validates an ack.
  /// - Throws: `ContractError` naming the member at fault.
  public static func decode(_ payload: [UInt8], _ db: Connection) throws(ContractError) -> Ack {
    let parser: AckParser
    do {
      parser = try AckParser(db)
    } catch {
      throw .store(error)
    }
    return try parser.decode(payload)
  }
}

/// Parses acks with SQLite's JSON functions through statements prepared once (the
/// agent parses one ack per batch).
public final class AckParser {
  private let object: Statement
  private let header: Statement
  private let items: Statement

  public init(_ db: Connection) throws(SQLiteError) {
    object = try db.prepare(isJSONObjectSQL)
    header = try db.prepare(
      "SELECT json_type(?1, '$.store'), json_extract(?1, '$.store'), json_type(?1, '$.seq'),"
        + " json_array_length(?1, '$.seq')")
    items = try db.prepare(
      """
      SELECT key, type, json_array_length(value), json_type(value, '$[0]'), json_extract(value, '$[0]'),
        json_type(value, '$[1]'), json_extract(value, '$[1]')
      FROM json_each(?1, '$.seq') ORDER BY key
      """)
  }

  private func rows(_ statement: Statement, _ text: String) throws(ContractError) -> [Row] {
    defer { statement.reset() }
    do {
      try statement.bind([.text(text)])
      var out: [Row] = []
      while try statement.step() { out.append(statement.row()) }
      return out
    } catch {
      throw .store(error)
    }
  }

  /// Parses and validates an ack.
  /// - Throws: `ContractError` naming the member at fault.
  public func decode(_ payload: [UInt8]) throws(ContractError) -> Ack {
    let text = String(decoding: payload, as: UTF8.self)
    // json_type and json_extract raise an error on malformed JSON, so this comes first.
    guard try rows(object, text).first?.int64(0) == 1 else { throw .notJSON }
    guard let row = try rows(header, text).first else { throw .notJSON }
    guard row.text(0) == "text", let store = row.text(1) else {
      throw row.text(0) == nil ? .missingField("store") : .badField("store", "expected a string")
    }
    guard BatchHeader.isStoreID(store) else {
      throw .badField("store", "expected 16 lowercase hex digits")
    }
    guard row.text(2) == "array", let count = row.int64(3) else {
      throw row.text(2) == nil ? .missingField("seq") : .badField("seq", "expected an array")
    }
    guard count <= Ack.maximumRanges else {
      throw .badField("seq", "more than " + String(Ack.maximumRanges) + " ranges")
    }
    var ranges: [ClosedRange<Int64>] = []
    ranges.reserveCapacity(Int(count))
    for item in try rows(items, text) {
      let name = "seq[" + String(item.int64(0) ?? 0) + "]"
      guard item.text(1) == "array", item.int64(2) == 2, item.text(3) == "integer",
        item.text(5) == "integer", let from = item.int64(4), let to = item.int64(6)
      else { throw .badField(name, "expected [from, to] with two integers") }
      guard from >= 1, from <= to else { throw .badField(name, "expected 1 <= from <= to") }
      ranges.append(from...to)
    }
    return Ack(store: store, ranges: ranges)
  }
}

let isJSONObjectSQL = "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' ELSE 0 END"

/// True when `text` is valid JSON whose top level is an object. json_type and
/// json_extract raise an error on malformed JSON, so this comes first.
func isJSONObject(_ text: String, _ db: Connection) throws(ContractError) -> Bool {
  do {
    return try db.scalarInt(isJSONObjectSQL, [.text(text)]) == 1
  } catch {
    throw .store(error)
  }
}

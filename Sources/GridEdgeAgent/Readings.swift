import DLT645
import GridEdgeContract
import SQLiteStore

/// How far a stored reading can be trusted.
public enum ReadingQuality: Hashable, Sendable {
  /// Read from the meter when it was due.
  case measured
  /// Read later from the meter's freeze records (a missed day filled in).
  case backfilled
  /// Read from a meter whose clock was found off by more than the threshold and not
  /// yet corrected: its tariff registers and freeze times may be misplaced in time.
  case clockSuspect

  /// `measured`, `backfilled` or `clock-suspect`, as stored and sent.
  public var name: String {
    switch self {
    case .measured: return "measured"
    case .backfilled: return "backfilled"
    case .clockSuspect: return "clock-suspect"
    }
  }

  /// The quality named `name`.
  public init?(name: String) {
    switch name {
    case "measured": self = .measured
    case "backfilled": self = .backfilled
    case "clock-suspect": self = .clockSuspect
    default: return nil
    }
  }
}

/// One stored reading, keyed by (meter, data identifier, timestamp).
///
/// Units: for the energy identifiers GridEdge stores (00 01 FF 00 the forward active
/// block, 00 01 00 00 its total, 05 06 01 01 the daily freeze), `value` and `tariffs`
/// are in Wh: the meter's XXXXXX.XX kWh register × 10 (10 Wh resolution).
public struct Reading: Hashable, Sendable {
  public var meter: Address
  /// The identifier read; daily freezes are stored under 05 06 01 01 whichever
  /// previous freeze (05 06 01 nn) they were read from, so a freeze has one key.
  public var identifier: DataIdentifier
  /// Unix ms: the acquisition slot for real-time reads (the start of the 15-minute
  /// interval they belong to), the meter's freeze time for daily freezes.
  public var timestamp: Int64
  /// The total register, in Wh.
  public var value: Int64
  /// The tariff registers (sharp, peak, flat, valley on a 4-tariff meter), in Wh;
  /// empty when the total was read alone.
  public var tariffs: [Int64]
  public var quality: ReadingQuality
  /// Unix ms when the meter answered.
  public var readAt: Int64

  public init(
    meter: Address, identifier: DataIdentifier, timestamp: Int64, value: Int64, tariffs: [Int64] = [],
    quality: ReadingQuality, readAt: Int64
  ) {
    self.meter = meter
    self.identifier = identifier
    self.timestamp = timestamp
    self.value = value
    self.tariffs = tariffs
    self.quality = quality
    self.readAt = readAt
  }

  /// Daily freezes are billing data (never evicted from the outbox); the rest is
  /// telemetry.
  public var retention: Outbox.Retention {
    identifier.dailyFreezeIndex != nil ? .billing : .telemetry
  }

  /// The outbox record (class `readings`):
  /// `{"meter":"000012345678","di":"0001FF00","ts":1767225600000,"v":123450,
  /// "tariffs":[1000,2000,3000,4000],"q":"measured","read_at":1767225612345}` —
  /// `v` and `tariffs` in Wh, `ts` and `read_at` in unix ms; `tariffs` only when the
  /// registers were read as a block.
  public var record: String {
    var text =
      "{\"meter\":\"" + meter.description + "\",\"di\":\"" + identifier.description + "\",\"ts\":"
      + String(timestamp) + ",\"v\":" + String(value)
    if !tariffs.isEmpty { text += ",\"tariffs\":" + Self.jsonArray(tariffs) }
    return text + ",\"q\":\"" + quality.name + "\",\"read_at\":" + String(readAt) + "}"
  }

  static func jsonArray(_ values: [Int64]) -> String {
    var text = "["
    for (i, v) in values.enumerated() { text += (i == 0 ? "" : ",") + String(v) }
    return text + "]"
  }
}

/// The reading cache: every reading the agent took, stored once, with its outbox
/// record written in the same transaction.
///
/// The table's primary key is (ts, meter, di), timestamp first: readings arrive in
/// time order across meters, so the key grows at its end. A key that starts with the
/// meter puts each insert somewhere else in the tree (measured 18× slower for C
/// inserts). Lookups by meter scan the time range asked for.
///
/// Holds its prepared statements; one thread.
public final class Readings {
  let db: Connection
  let outbox: Outbox
  private let insert: Statement
  private let exists: Statement

  /// The readings of `store`, reporting through `outbox`.
  public init(store: AgentStore, outbox: Outbox) throws(SQLiteError) {
    self.db = store.db
    self.outbox = outbox
    insert = try db.prepare(
      """
      INSERT INTO readings (ts, meter, di, value, tariffs, quality, read_at)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING
      """)
    exists = try db.prepare("SELECT 1 FROM readings WHERE ts = ?1 AND meter = ?2 AND di = ?3")
  }

  /// Stores `readings` and enqueues an outbox record for each new one, all in one
  /// transaction. A reading already stored (same meter, identifier and timestamp) is
  /// skipped: no second row, no second record.
  /// - Returns: how many were new.
  /// - Throws: `SQLiteError`; nothing is stored then.
  @discardableResult
  public func store(_ readings: [Reading], now: Int64) throws(SQLiteError) -> Int {
    guard !readings.isEmpty else { return 0 }
    return try db.transaction { () throws(SQLiteError) -> Int in
      var added = 0
      for reading in readings {
        guard try insertOne(reading) else { continue }
        try outbox.enqueue(.readings, record: reading.record, retention: reading.retention, now: now)
        added += 1
      }
      return added
    }
  }

  private func insertOne(_ r: Reading) throws(SQLiteError) -> Bool {
    try insert.bind([
      .integer(r.timestamp), .text(r.meter.description), .text(r.identifier.description), .integer(r.value),
      r.tariffs.isEmpty ? .null : .text(Reading.jsonArray(r.tariffs)), .text(r.quality.name),
      .integer(r.readAt),
    ])
    defer { insert.reset() }
    while try insert.step() {}
    return db.changes > 0
  }

  /// The readings of `meter` with `from` ≤ ts ≤ `to` (unix ms), oldest first, at
  /// most `limit`.
  public func readings(meter: Address, from: Int64, to: Int64, limit: Int = 100_000) throws(SQLiteError)
    -> [Reading]
  {
    try Self.readings(in: db, meter: meter, from: from, to: to, limit: limit)
  }

  /// The readings of `meter` with `from` ≤ ts ≤ `to` in the database `db` (which may be
  /// opened read-only, as `gridedge readings` does), oldest first, at most `limit`.
  public static func readings(in db: Connection, meter: Address, from: Int64, to: Int64, limit: Int)
    throws(SQLiteError) -> [Reading]
  {
    try db.query(
      """
      SELECT ts, meter, di, value, tariffs, quality, read_at FROM readings
      WHERE ts BETWEEN ?1 AND ?2 AND meter = ?3 ORDER BY ts, di LIMIT ?4
      """, [.integer(from), .integer(to), .text(meter.description), .integer(Int64(limit))]
    ).compactMap(Self.reading)
  }

  /// Which of `timestamps` have a reading of `identifier` for `meter`: point lookups
  /// on the key (a time range would scan every meter's readings in it).
  public func stored(meter: Address, identifier: DataIdentifier, at timestamps: [Int64]) throws(SQLiteError)
    -> Set<Int64>
  {
    var out = Set<Int64>()
    for ts in timestamps {
      try exists.bind([.integer(ts), .text(meter.description), .text(identifier.description)])
      defer { exists.reset() }
      if try exists.step() { out.insert(ts) }
    }
    return out
  }

  /// The meters with a reading of `identifier` at exactly `timestamp`.
  public func meters(with identifier: DataIdentifier, at timestamp: Int64) throws(SQLiteError) -> Set<String>
  {
    var out = Set<String>()
    for row in try db.query(
      "SELECT meter FROM readings WHERE ts = ?1 AND di = ?2",
      [.integer(timestamp), .text(identifier.description)])
    {
      if let meter = row.text(0) { out.insert(meter) }
    }
    return out
  }

  /// Deletes readings older than `before` (unix ms) from the cache (their outbox
  /// records are not touched).
  /// - Returns: how many were deleted.
  @discardableResult
  public func prune(before: Int64) throws(SQLiteError) -> Int {
    try db.transaction { () throws(SQLiteError) -> Int in
      try db.run("DELETE FROM readings WHERE ts < ?1", [.integer(before)])
      return db.changes
    }
  }

  /// Rows in the cache.
  public func count() throws(SQLiteError) -> Int64 {
    try db.scalarInt("SELECT count(*) FROM readings") ?? 0
  }

  static func reading(_ row: Row) -> Reading? {
    guard let ts = row.int64(0), let meter = Address(row.text(1) ?? ""),
      let di = UInt32(row.text(2) ?? "", radix: 16), let value = row.int64(3),
      let quality = ReadingQuality(name: row.text(5) ?? ""), let readAt = row.int64(6)
    else { return nil }
    var tariffs: [Int64] = []
    if let text = row.text(4) {
      for part in text.dropFirst().dropLast().split(separator: ",") {
        if let v = Int64(part) { tariffs.append(v) }
      }
    }
    return Reading(
      meter: meter, identifier: DataIdentifier(rawValue: di), timestamp: ts, value: value, tariffs: tariffs,
      quality: quality, readAt: readAt)
  }
}

import GridEdgeContract
import SQLiteStore

/// The SQLite outbox: the only queue between what the agent records and HQ
/// (DESIGN.md §5).
///
/// A record is enqueued in the same transaction as whatever it reports (a reading, a
/// ledger entry). Pending records are formed into batches — (store, seq) allocated in
/// the transaction that forms the batch, the payload stored so that a resend is
/// byte-identical — and a batch is deleted only when HQ's application ack names it.
///
/// Holds its prepared statements (each keeps the connection alive); one thread.
public final class Outbox {
  /// What a record is for: billing records are never evicted.
  public enum Retention: Sendable {
    case telemetry, billing
  }

  /// A formed batch, ready to publish.
  public struct Batch: Sendable {
    public var seq: Int64
    public var uplink: UplinkClass
    public var payload: [UInt8]
    public var records: Int
  }

  /// What the disk budget check found.
  public struct BudgetState: Equatable, Sendable {
    /// Bytes in use by the database (pages in use × page size).
    public var usedBytes: Int64
    public var capBytes: Int64
    /// Telemetry records evicted by this check.
    public var evicted: Int64
    /// At the cap with nothing left to evict: only billing data remains.
    public var full: Bool
  }

  let db: Connection
  let deviceID: String
  let storeID: String
  private let insert: Statement
  private let lastID: Statement
  private let pageCount: Statement
  private let freePages: Statement
  private let pageSize: Int64
  private let span: Statement
  private let formInsert: Statement
  private let formDelete: Statement
  private let nextSeq: Statement
  private let loadBatch: Statement
  private let releaseRange: Statement
  /// Sequence numbers are reserved durably in blocks of this many.
  public static let seqBlock: Int64 = 1024

  /// The classes in the order batches are formed: small, important ones first.
  public static let priority: [UplinkClass] = [
    .results, .events, .ledger, .records, .readings, .attachments,
  ]

  /// The outbox of `store`'s database.
  public init(store: AgentStore) throws(SQLiteError) {
    self.db = store.db
    self.deviceID = store.deviceID
    self.storeID = store.storeID
    insert = try db.prepare(
      "INSERT INTO outbox (class, billing, record, created_at) VALUES (?1, ?2, json(?3), ?4)")
    lastID = try db.prepare("SELECT coalesce(max(id), 0) FROM outbox")
    pageCount = try db.prepare("PRAGMA page_count")
    freePages = try db.prepare("PRAGMA freelist_count")
    pageSize = try db.scalarInt("PRAGMA page_size") ?? 4096
    span = try db.prepare(
      """
      SELECT max(id), count(*) FROM (SELECT id FROM outbox
        WHERE class = ?1 AND id BETWEEN ?2 AND ?3 ORDER BY id LIMIT ?4)
      """)
    formInsert = try db.prepare(
      """
      INSERT INTO batches (seq, class, payload, records, created_at)
      SELECT ?1, ?2, CAST(?3 || group_concat(record, ',') || ']}' AS BLOB), count(*), ?4
        FROM (SELECT record FROM outbox WHERE class = ?2 AND id BETWEEN ?5 AND ?6 ORDER BY id)
      RETURNING payload
      """)
    formDelete = try db.prepare("DELETE FROM outbox WHERE class = ?1 AND id BETWEEN ?2 AND ?3")
    nextSeq = try db.prepare(
      "UPDATE sync_state SET last_seq = last_seq + 1 WHERE singleton = 1 RETURNING last_seq, reserved_until")
    loadBatch = try db.prepare("SELECT class, payload, records FROM batches WHERE seq = ?1")
    releaseRange = try db.prepare("DELETE FROM batches WHERE seq BETWEEN ?1 AND ?2 RETURNING seq, records")
  }

  /// Runs `statement` with `values`, returning its rows, and resets it (so it holds no
  /// read snapshot afterwards).
  private func rows(_ statement: Statement, _ values: [SQLiteValue]) throws(SQLiteError) -> [Row] {
    defer { statement.reset() }
    try statement.bind(values)
    var out: [Row] = []
    while try statement.step() { out.append(statement.row()) }
    return out
  }

  // MARK: - Sequence numbers

  /// Called once at start. Batch formation commits with `synchronous=NORMAL` (a WAL
  /// commit survives a process crash, not a power loss); seqs are reserved durably
  /// (`synchronous=FULL`) in blocks, together with the kernel's boot id. After a
  /// reboot — when a power loss may have taken the last formations — the rest of the
  /// reserved block is skipped, so a seq that may have been published is never used
  /// again; the skipped range is announced in an event (`sync.seqs_skipped`).
  /// - Returns: the skipped range, if any.
  @discardableResult
  public func recoverSeqs(bootID: String, now: Int64) throws(SQLiteError) -> ClosedRange<Int64>? {
    try db.transaction(.full) { () throws(SQLiteError) -> ClosedRange<Int64>? in
      guard
        let row = try db.query(
          "SELECT last_seq, reserved_until, boot_id FROM sync_state WHERE singleton = 1"
        ).first, let last = row.int64(0), let reserved = row.int64(1)
      else {
        throw SQLiteError(code: .corrupt, message: "sync_state row is missing", sql: nil, path: db.path)
      }
      var skipped: ClosedRange<Int64>? = nil
      if let previous = row.text(2), previous != bootID, reserved > last {
        skipped = (last + 1)...reserved
        try db.run("UPDATE sync_state SET last_seq = reserved_until WHERE singleton = 1")
        let id = try newRecordID("event")
        try enqueue(
          .events,
          record: "{\"id\":\"" + id + "\",\"ts\":" + String(now)
            + ",\"type\":\"sync.seqs_skipped\",\"store\":\"" + storeID + "\",\"from\":" + String(last + 1)
            + ",\"to\":" + String(reserved) + "}",
          retention: .billing, now: now)
      }
      try db.run("UPDATE sync_state SET boot_id = ?1 WHERE singleton = 1", [.text(bootID)])
      return skipped
    }
  }

  /// Makes sure `count` more seqs are reserved durably before they are used.
  private func reserve(_ count: Int) throws(SQLiteError) {
    guard
      let row = try db.query("SELECT last_seq, reserved_until FROM sync_state WHERE singleton = 1").first,
      let last = row.int64(0), let reserved = row.int64(1)
    else { return }
    guard last + Int64(count) > reserved else { return }
    try db.transaction(.full) { () throws(SQLiteError) in
      try db.run(
        "UPDATE sync_state SET reserved_until = ?1 WHERE singleton = 1",
        [.integer(last + max(Int64(count), Self.seqBlock))])
    }
  }

  // MARK: - Enqueue

  /// Appends one record (a JSON object) for class `uplink`. Call it inside the
  /// transaction that stores what the record reports.
  /// - Parameters:
  ///   - record: JSON object text carrying the class's natural key (`RecordKey`);
  ///     stored minified.
  ///   - retention: `.billing` records are never evicted.
  ///   - now: wall time in ms.
  /// - Throws: `SQLiteError` (`.error` "malformed JSON" when `record` is not JSON).
  public func enqueue(
    _ uplink: UplinkClass, record: String, retention: Retention, now: Int64
  ) throws(SQLiteError) {
    try insert.bind([
      .text(uplink.name), .integer(retention == .billing ? 1 : 0), .text(record), .integer(now),
    ])
    while try insert.step() {}
    insert.reset()
  }

  /// A record id unique in this store for ever: `<store>-<tag>-<n>`, n from a
  /// counter in `sync_state` that is never reused. Call it inside the transaction that
  /// enqueues the record.
  public func newRecordID(_ tag: String) throws(SQLiteError) -> String {
    guard
      let n = try db.scalarInt(
        "UPDATE sync_state SET last_record = last_record + 1 WHERE singleton = 1 RETURNING last_record")
    else {
      throw SQLiteError(code: .corrupt, message: "sync_state row is missing", sql: nil, path: db.path)
    }
    return storeID + "-" + tag + "-" + String(n)
  }

  /// The id of the newest pending record (0 when none): records after it are "live".
  public func newestID() throws(SQLiteError) -> Int64 {
    defer { lastID.reset() }
    guard try lastID.step() else { return 0 }
    return lastID.int64(at: 0)
  }

  // MARK: - Batches

  /// Forms up to `count` batches of at most `maxRecords` records each, in one
  /// transaction, live records (id > `liveAfter`) first, then backlog records up to
  /// `backlogBudget` records in all. Their seqs come from the durably reserved block
  /// (`recoverSeqs`), so the formation itself needs no fsync.
  /// - Returns: the new batches, in seq order, and how many backlog records they took.
  public func formBatches(
    count: Int, maxRecords: Int, liveAfter: Int64, backlogBudget: Int, now: Int64
  ) throws(SQLiteError) -> (batches: [Batch], backlogRecords: Int) {
    guard count > 0, maxRecords > 0 else { return ([], 0) }
    try reserve(count)
    return try db.transaction { () throws(SQLiteError) -> ([Batch], Int) in
      var formed: [Batch] = []
      var backlogUsed = 0
      for live in [true, false] {
        for uplink in Self.priority {
          while formed.count < count {
            let limit = live ? maxRecords : min(maxRecords, backlogBudget - backlogUsed)
            guard limit > 0 else { break }
            guard
              let batch = try formOne(
                uplink, lowestID: live ? liveAfter + 1 : 0,
                highestID: live ? Int64.max : liveAfter, limit: limit, now: now)
            else { break }
            if !live { backlogUsed += batch.records }
            formed.append(batch)
          }
        }
      }
      return (formed, backlogUsed)
    }
  }

  private func formOne(
    _ uplink: UplinkClass, lowestID: Int64, highestID: Int64, limit: Int, now: Int64
  ) throws(SQLiteError) -> Batch? {
    let found = try rows(
      span, [.text(uplink.name), .integer(lowestID), .integer(highestID), .integer(Int64(limit))])
    guard let row = found.first, let last = row.int64(0), let records = row.int64(1), records > 0
    else { return nil }
    guard let allocated = try rows(nextSeq, []).first, let seq = allocated.int64(0) else {
      throw SQLiteError(code: .corrupt, message: "sync_state row is missing", sql: nil, path: db.path)
    }
    guard seq <= allocated.int64(1) ?? 0 else {
      throw SQLiteError(
        code: .internal, message: "seq " + String(seq) + " is beyond the reserved block", sql: nil,
        path: db.path)
    }
    // The records are valid minified JSON (json() at enqueue), so the array is their
    // concatenation; the header members are validated ids and integers.
    let header =
      "{\"v\":1,\"dev\":\"" + deviceID + "\",\"store\":\"" + storeID + "\",\"seq\":" + String(seq)
      + ",\"class\":\"" + uplink.name + "\",\"records\":["
    let inserted = try rows(
      formInsert,
      [
        .integer(seq), .text(uplink.name), .text(header), .integer(now), .integer(lowestID),
        .integer(last),
      ])
    _ = try rows(formDelete, [.text(uplink.name), .integer(lowestID), .integer(last)])
    return Batch(seq: seq, uplink: uplink, payload: inserted.first?.blob(0) ?? [], records: Int(records))
  }

  /// Every formed, unacknowledged batch's seq, oldest first (to resend after a
  /// reconnect or restart).
  public func unackedSeqs() throws(SQLiteError) -> [Int64] {
    try db.query("SELECT seq FROM batches ORDER BY seq").map { $0.int64(0) ?? 0 }
  }

  /// The stored batch `seq`, byte for byte as first formed; nil when it was acked.
  public func batch(_ seq: Int64) throws(SQLiteError) -> Batch? {
    guard
      let row = try rows(loadBatch, [.integer(seq)]).first,
      let uplink = UplinkClass(name: row.text(0) ?? "")
    else { return nil }
    return Batch(
      seq: seq, uplink: uplink, payload: row.blob(1) ?? [], records: Int(row.int64(2) ?? 0))
  }

  /// Releases the batches HQ acknowledged.
  /// - Returns: the seqs released (unknown or already released ones are skipped) and
  ///   how many records they held.
  public func release(_ ack: Ack) throws(SQLiteError) -> (seqs: [Int64], records: Int) {
    try release(ack.ranges)
  }

  /// Releases the batches in `ranges` (several acks at once: one transaction).
  public func release(_ ranges: [ClosedRange<Int64>]) throws(SQLiteError) -> (seqs: [Int64], records: Int) {
    try db.transaction { () throws(SQLiteError) -> ([Int64], Int) in
      var seqs: [Int64] = []
      var records = 0
      for range in ranges {
        for row in try rows(releaseRange, [.integer(range.lowerBound), .integer(range.upperBound)]) {
          seqs.append(row.int64(0) ?? 0)
          records += Int(row.int64(1) ?? 0)
        }
      }
      return (seqs, records)
    }
  }

  // MARK: - Disk budget

  /// Bytes the database uses: pages in use × page size (free pages are reused, so the
  /// file does not shrink, but they do not count).
  public func usedBytes() throws(SQLiteError) -> Int64 {
    defer {
      pageCount.reset()
      freePages.reset()
    }
    _ = try pageCount.step()
    _ = try freePages.step()
    return (pageCount.int64(at: 0) - freePages.int64(at: 0)) * pageSize
  }

  /// Keeps the database within `capBytes`: evicts pending telemetry records, oldest
  /// first, in steps of `step` records, counting each eviction per class; billing
  /// records are never evicted.
  public func enforceBudget(capBytes: Int64, step: Int = 1000, now: Int64) throws(SQLiteError)
    -> BudgetState
  {
    var used = try usedBytes()
    var evicted: Int64 = 0
    while used > capBytes {
      let removed = try db.transaction { () throws(SQLiteError) -> Int64 in
        let rows = try db.query(
          """
          DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE billing = 0 ORDER BY id LIMIT ?1)
          RETURNING class
          """, [.integer(Int64(step))])
        var perClass: [String: Int64] = [:]
        for row in rows { perClass[row.text(0) ?? "", default: 0] += 1 }
        for (name, n) in perClass {
          try db.run(
            """
            INSERT INTO outbox_evictions (class, evicted, reported, last_at) VALUES (?1, ?2, 0, ?3)
            ON CONFLICT (class) DO UPDATE SET evicted = evicted + excluded.evicted,
              last_at = excluded.last_at
            """, [.text(name), .integer(n), .integer(now)])
        }
        return Int64(rows.count)
      }
      if removed == 0 { break }
      evicted += removed
      used = try usedBytes()
    }
    return BudgetState(usedBytes: used, capBytes: capBytes, evicted: evicted, full: used > capBytes)
  }

  /// Evictions not yet reported upstream, per class: (class, new evictions, total).
  public func unreportedEvictions() throws(SQLiteError) -> [(uplink: String, new: Int64, total: Int64)] {
    try db.query(
      "SELECT class, evicted - reported, evicted FROM outbox_evictions WHERE evicted > reported ORDER BY class"
    ).map { ($0.text(0) ?? "", $0.int64(1) ?? 0, $0.int64(2) ?? 0) }
  }

  /// Marks evictions of `uplink` up to `total` as reported.
  public func markEvictionsReported(_ uplink: String, total: Int64) throws(SQLiteError) {
    try db.run(
      "UPDATE outbox_evictions SET reported = ?2 WHERE class = ?1", [.text(uplink), .integer(total)])
  }

  // MARK: - Figures

  /// Pending records (not yet in a batch) and formed, unacknowledged batches.
  public func counts() throws(SQLiteError) -> (pendingRecords: Int64, unackedBatches: Int64) {
    let row = try db.query(
      "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM batches)"
    ).first
    return (row?.int64(0) ?? 0, row?.int64(1) ?? 0)
  }
}

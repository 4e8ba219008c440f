import GridEdgeContract
import Runtime
import SQLiteStore

/// The SQLite outbox: the only queue between what the agent records and HQ
/// (DESIGN.md §5).
///
/// A record is enqueued in the same transaction as whatever it reports (a reading, a
/// ledger entry), into its class's table (`outbox_<class>`, migration 8; the view
/// `outbox` shows them all). Pending records are formed into batches — (store, seq)
/// allocated in the transaction that forms the batch, which stores the seq with the
/// class and id range of its records — and the records stay where they are until HQ's
/// application ack names the batch; then the batch and its records are deleted
/// together. A batch's payload is built from its records (immutable while it is
/// unacked, never evicted), so a resend is byte-identical. Batches formed before
/// migration 8 kept their payload in `batches.payload` and are sent from it.
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

  /// The newest record id of each class at some moment: records after it are "live"
  /// (enqueued after the link came up), the rest backlog.
  public struct Marks: Equatable, Sendable {
    var newest: [Int64]
    /// No mark: every pending record counts as live.
    public static let zero = Marks(newest: Array(repeating: 0, count: UplinkClass.allCases.count))
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

  /// The statements of one class's table.
  private struct ClassTable {
    let uplink: UplinkClass
    let insert: Statement
    let newest: Statement
    /// (min id, max id, count, payload) of up to ?3 records with ids in ?1...?2; the
    /// payload is header ?4, the records joined with ',', and `]}`.
    let span: Statement
    let deleteRange: Statement
    /// The oldest evictable record's created_at: telemetry, not in a formed batch.
    let oldestEvictable: Statement
    /// Deletes up to ?1 evictable records, oldest first.
    let evict: Statement
  }

  let db: Connection
  let deviceID: String
  let storeID: String
  private let tables: [ClassTable]
  private let pageCount: Statement
  private let freePages: Statement
  private let pageSize: Int64
  private let formedRangesOf: Statement
  private let insertBatch: Statement
  private let seqState: Statement
  private let setSeq: Statement
  /// Per class (in `UplinkClass.allCases` order): below it every id is absent or in
  /// a batch.
  private var floors = Array(repeating: Int64(1), count: UplinkClass.allCases.count)
  private let loadBatch: Statement
  private let releaseRange: Statement
  /// Sequence numbers are reserved durably in blocks of this many.
  public static let seqBlock: Int64 = 1024

  /// The most records in an `attachments` batch: photo chunks are up to 128 KiB
  /// (`inspection.photo_chunk_bytes`), so a batch stays under the contract's 4 MiB.
  public static let attachmentBatchRecords = 16

  /// The classes in the order batches are formed: small, important ones first.
  public static let priority: [UplinkClass] = [
    .results, .events, .ledger, .records, .readings, .attachments,
  ]

  /// The outbox of `store`'s database.
  public init(store: AgentStore) throws(SQLiteError) {
    self.db = store.db
    self.deviceID = store.deviceID
    self.storeID = store.storeID
    var tables: [ClassTable] = []
    for uplink in UplinkClass.allCases {
      // Table names come from the fixed class list, never from input.
      let table = "outbox_" + uplink.name
      let notFormed =
        "NOT EXISTS (SELECT 1 FROM batches b WHERE b.class = '" + uplink.name
        + "' AND o.id BETWEEN b.first_id AND b.last_id)"
      tables.append(
        ClassTable(
          uplink: uplink,
          insert: try db.prepare(
            "INSERT INTO " + table + " (billing, record, created_at) VALUES (?1, json(?2), ?3)"),
          newest: try db.prepare("SELECT coalesce(max(id), 0) FROM " + table),
          span: try db.prepare(
            "SELECT min(id), max(id), count(*), CAST(?4 || group_concat(record, ',') || ']}' AS BLOB) FROM"
              + " (SELECT id, record FROM " + table + " WHERE id BETWEEN ?1 AND ?2 ORDER BY id LIMIT ?3)"),
          deleteRange: try db.prepare("DELETE FROM " + table + " WHERE id BETWEEN ?1 AND ?2"),
          oldestEvictable: try db.prepare(
            "SELECT created_at FROM " + table + " o WHERE billing = 0 AND " + notFormed
              + " ORDER BY id LIMIT 1"),
          evict: try db.prepare(
            "DELETE FROM " + table + " WHERE id IN (SELECT id FROM " + table + " o WHERE billing = 0 AND "
              + notFormed + " ORDER BY id LIMIT ?1)")))
    }
    self.tables = tables
    pageCount = try db.prepare("PRAGMA page_count")
    freePages = try db.prepare("PRAGMA freelist_count")
    pageSize = try db.scalarInt("PRAGMA page_size") ?? 4096
    formedRangesOf = try db.prepare(
      "SELECT first_id, last_id FROM batches WHERE class = ?1 AND first_id IS NOT NULL ORDER BY first_id")
    insertBatch = try db.prepare(
      """
      INSERT INTO batches (seq, class, payload, records, created_at, first_id, last_id)
        VALUES (?1, ?2, X'', ?3, ?4, ?5, ?6)
      """)
    seqState = try db.prepare("SELECT last_seq, reserved_until FROM sync_state WHERE singleton = 1")
    setSeq = try db.prepare("UPDATE sync_state SET last_seq = ?1 WHERE singleton = 1")
    loadBatch = try db.prepare(
      "SELECT class, payload, records, first_id, last_id FROM batches WHERE seq = ?1")
    releaseRange = try db.prepare(
      "DELETE FROM batches WHERE seq BETWEEN ?1 AND ?2 RETURNING seq, records, class, first_id, last_id")
  }

  private func table(_ uplink: UplinkClass) -> ClassTable { tables[classIndex(uplink)] }

  private func classIndex(_ uplink: UplinkClass) -> Int {
    for (i, t) in tables.enumerated() where t.uplink == uplink { return i }
    fatalError("no outbox table for class " + uplink.name)
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

  /// How many seqs and record ids are skipped after a lost write-ahead log: more than
  /// a log between two checkpoints can hold.
  public static let lostLogSkip: Int64 = 1_000_000

  /// After the write-ahead log of boot `epoch` was lost (`AgentStore.lostLogOfEpoch`):
  /// seqs and record ids that boot may have used are skipped, so none is used twice,
  /// and the skipped seqs are announced (`sync.seqs_skipped` with reason
  /// `log-missing`).
  /// - Returns: the skipped seqs.
  @discardableResult
  public func skipAfterLostLog(epoch: Int64, now: Int64) throws(SQLiteError) -> ClosedRange<Int64> {
    try db.transaction(.full) { () throws(SQLiteError) -> ClosedRange<Int64> in
      guard
        let row = try db.query("SELECT last_seq, reserved_until FROM sync_state WHERE singleton = 1").first,
        let last = row.int64(0), let reserved = row.int64(1)
      else {
        throw SQLiteError(code: .corrupt, message: "sync_state row is missing", sql: nil, path: db.path)
      }
      let skipped = (last + 1)...(max(last, reserved) + Self.lostLogSkip)
      try db.run(
        """
        UPDATE sync_state SET last_seq = ?1, reserved_until = ?1, last_record = last_record + ?2
          WHERE singleton = 1
        """, [.integer(skipped.upperBound), .integer(Self.lostLogSkip)])
      let id = try newRecordID("event")
      try enqueue(
        .events,
        record: "{\"id\":\"" + id + "\",\"ts\":" + String(now)
          + ",\"type\":\"sync.seqs_skipped\",\"reason\":\"log-missing\",\"epoch\":" + String(epoch)
          + ",\"store\":\"" + storeID + "\",\"from\":" + String(skipped.lowerBound) + ",\"to\":"
          + String(skipped.upperBound) + "}",
        retention: .billing, now: now)
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
    let insert = table(uplink).insert
    defer { insert.reset() }
    try insert.bind([.integer(retention == .billing ? 1 : 0), .text(record), .integer(now)])
    while try insert.step() {}
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

  /// The newest record id of each class (0 when none): records after them are "live".
  public func marks() throws(SQLiteError) -> Marks {
    var marks = Marks.zero
    for (i, t) in tables.enumerated() {
      defer { t.newest.reset() }
      if try t.newest.step() { marks.newest[i] = t.newest.int64(at: 0) }
    }
    return marks
  }

  private func mark(_ marks: Marks, _ uplink: UplinkClass) -> Int64 { marks.newest[classIndex(uplink)] }

  // MARK: - Batches

  /// What `formBatches` did.
  public struct Formation: Sendable {
    /// The new batches, in seq order: the live ones first.
    public var batches: [Batch] = []
    /// How many of `batches` hold live records.
    public var liveBatches = 0
    /// Backlog records they took.
    public var backlogRecords = 0
    /// Acknowledged batches released in the same transaction, and their records.
    public var releasedSeqs: [Int64] = []
    public var releasedRecords = 0
  }

  /// Forms up to `count` batches of at most `maxRecords` records each, in one
  /// transaction, live records (after `liveAfter`) first, then backlog records up to
  /// `backlogBudget` records in all. Their seqs come from the durably reserved block
  /// (`recoverSeqs`), so the formation itself needs no fsync. A record already in an
  /// unacknowledged batch is not taken again. The batches in `releasing` (acknowledged
  /// by HQ) are released in the same transaction first.
  public func formBatches(
    count: Int, maxRecords: Int, liveAfter: Marks, backlogBudget: Int, now: Int64,
    releasing: [ClosedRange<Int64>] = []
  ) throws(SQLiteError) -> Formation {
    guard count > 0, maxRecords > 0 else {
      guard !releasing.isEmpty else { return Formation() }
      let released = try release(releasing)
      return Formation(releasedSeqs: released.seqs, releasedRecords: released.records)
    }
    try reserve(count)
    // The floors move up as batches form; a formation that does not commit (a disk
    // error at COMMIT) formed nothing, so they go back, or its records would be
    // passed over until the next start.
    let floorsBefore = floors
    do throws(SQLiteError) {
      return try formInTransaction(
        count: count, maxRecords: maxRecords, liveAfter: liveAfter,
        backlogBudget: backlogBudget, now: now, releasing: releasing)
    } catch {
      floors = floorsBefore
      throw error
    }
  }

  private func formInTransaction(
    count: Int, maxRecords: Int, liveAfter: Marks, backlogBudget: Int, now: Int64,
    releasing: [ClosedRange<Int64>]
  ) throws(SQLiteError) -> Formation {
    try db.transaction { () throws(SQLiteError) -> Formation in
      var formation = Formation()
      (formation.releasedSeqs, formation.releasedRecords) = try releaseInTransaction(releasing)
      guard let state = try rows(seqState, []).first, var seq = state.int64(0), let reserved = state.int64(1)
      else {
        throw SQLiteError(code: .corrupt, message: "sync_state row is missing", sql: nil, path: db.path)
      }
      let firstSeq = seq
      var taken: [UplinkClass: [ClosedRange<Int64>]] = [:]
      for live in [true, false] {
        for uplink in Self.priority {
          let after = mark(liveAfter, uplink)
          while formation.batches.count < count {
            let most = uplink == .attachments ? min(maxRecords, Self.attachmentBatchRecords) : maxRecords
            let limit = live ? most : min(most, backlogBudget - formation.backlogRecords)
            guard limit > 0 else { break }
            if taken[uplink] == nil { taken[uplink] = try formedRanges(uplink) }
            guard seq < reserved else {
              throw SQLiteError(
                code: .internal, message: "seq " + String(seq + 1) + " is beyond the reserved block",
                sql: nil,
                path: db.path)
            }
            guard
              let batch = try formOne(
                uplink, seq: seq + 1, lowestID: live ? after + 1 : 1, highestID: live ? Int64.max : after,
                limit: limit, taken: &taken[uplink, default: []], now: now)
            else { break }
            seq += 1
            if live { formation.liveBatches += 1 } else { formation.backlogRecords += batch.records }
            formation.batches.append(batch)
          }
        }
      }
      if seq > firstSeq { _ = try rows(setSeq, [.integer(seq)]) }
      return formation
    }
  }

  /// The id ranges of `uplink`'s unacknowledged batches, lowest first.
  private func formedRanges(_ uplink: UplinkClass) throws(SQLiteError) -> [ClosedRange<Int64>] {
    try rows(formedRangesOf, [.text(uplink.name)]).compactMap { row in
      guard let first = row.int64(0), let last = row.int64(1), first <= last else { return nil }
      return first...last
    }
  }

  /// Forms batch `seq` from the lowest records of `uplink` in `lowestID...highestID`
  /// that no batch has taken yet (`taken`, sorted; the new range is added).
  private func formOne(
    _ uplink: UplinkClass, seq: Int64, lowestID: Int64, highestID: Int64, limit: Int,
    taken: inout [ClosedRange<Int64>], now: Int64
  ) throws(SQLiteError) -> Batch? {
    let t = table(uplink)
    let index = classIndex(uplink)
    // Below `floor` every id is absent or taken (ids only grow; rows are only
    // deleted), so a walk from the bottom starts there and moves it up.
    let tracking = lowestID <= floors[index]
    var from = max(lowestID, floors[index])
    var i = 0
    while true {
      while i < taken.count, taken[i].upperBound < from { i += 1 }
      if i < taken.count, taken[i].lowerBound <= from {
        from = taken[i].upperBound + 1
        i += 1
      } else {
        let next = i < taken.count ? taken[i].lowerBound : Int64.max
        let to = min(next == Int64.max ? Int64.max : next - 1, highestID)
        // `from` is below `next` here, so only a start above `highestID` leaves nothing.
        guard from <= to else { return nil }
        let row = try rows(
          t.span, [.integer(from), .integer(to), .integer(Int64(limit)), .text(header(seq, uplink))]
        ).first
        if let row, let first = row.int64(0), let last = row.int64(1), let records = row.int64(2),
          records > 0, let payload = row.blob(3)
        {
          let range = first...last
          _ = try rows(
            insertBatch,
            [
              .integer(seq), .text(uplink.name), .integer(records), .integer(now), .integer(first),
              .integer(last),
            ])
          taken.insert(range, at: i)
          if tracking { floors[index] = last + 1 }
          return Batch(seq: seq, uplink: uplink, payload: payload, records: Int(records))
        }
        // Nothing in from...to.
        if to == highestID { return nil }
        from = to + 1
      }
      if tracking { floors[index] = from }
      if from > highestID { return nil }
    }
  }

  /// The members before a batch's records.
  private func header(_ seq: Int64, _ uplink: UplinkClass) -> String {
    "{\"v\":1,\"dev\":\"" + deviceID + "\",\"store\":\"" + storeID + "\",\"seq\":" + String(seq)
      + ",\"class\":\"" + uplink.name + "\",\"records\":["
  }

  /// The payload of batch `seq`: the header and the records of `ids`, in id order,
  /// the same bytes `formOne` made. The records are valid minified JSON (json() at
  /// enqueue), so the array is their concatenation; the header members are validated
  /// ids and integers.
  private func payload(
    seq: Int64, _ uplink: UplinkClass, _ ids: ClosedRange<Int64>, records: Int64
  ) throws(SQLiteError) -> [UInt8] {
    let row = try rows(
      table(uplink).span,
      [.integer(ids.lowerBound), .integer(ids.upperBound), .integer(records + 1), .text(header(seq, uplink))]
    ).first
    guard let row, row.int64(2) == records, let payload = row.blob(3) else {
      throw SQLiteError(
        code: .corrupt,
        message: "batch " + String(seq) + " (" + uplink.name + " " + String(ids.lowerBound) + "..."
          + String(ids.upperBound) + ") should hold " + String(records) + " records; the outbox has "
          + String(row?.int64(2) ?? 0), sql: nil, path: db.path)
    }
    return payload
  }

  /// Every formed, unacknowledged batch's seq, oldest first (to resend after a
  /// reconnect or restart).
  public func unackedSeqs() throws(SQLiteError) -> [Int64] {
    try db.query("SELECT seq FROM batches ORDER BY seq").map { $0.int64(0) ?? 0 }
  }

  /// Batch `seq`, byte for byte as first formed; nil when it was acked.
  public func batch(_ seq: Int64) throws(SQLiteError) -> Batch? {
    guard
      let row = try rows(loadBatch, [.integer(seq)]).first,
      let uplink = UplinkClass(name: row.text(0) ?? "")
    else { return nil }
    let records = row.int64(2) ?? 0
    guard let first = row.int64(3), let last = row.int64(4) else {
      // Formed before migration 8: the payload was stored.
      return Batch(seq: seq, uplink: uplink, payload: row.blob(1) ?? [], records: Int(records))
    }
    return Batch(
      seq: seq, uplink: uplink, payload: try payload(seq: seq, uplink, first...last, records: records),
      records: Int(records))
  }

  /// Releases the batches HQ acknowledged.
  /// - Returns: the seqs released (unknown or already released ones are skipped) and
  ///   how many records they held.
  public func release(_ ack: Ack) throws(SQLiteError) -> (seqs: [Int64], records: Int) {
    try release(ack.ranges)
  }

  /// Releases the batches in `ranges` and their records (several acks at once: one
  /// transaction).
  public func release(_ ranges: [ClosedRange<Int64>]) throws(SQLiteError) -> (seqs: [Int64], records: Int) {
    try db.transaction { () throws(SQLiteError) -> ([Int64], Int) in try releaseInTransaction(ranges) }
  }

  private func releaseInTransaction(_ ranges: [ClosedRange<Int64>]) throws(SQLiteError) -> ([Int64], Int) {
    var seqs: [Int64] = []
    var records = 0
    var spans: [(uplink: UplinkClass, ids: ClosedRange<Int64>)] = []
    for range in ranges {
      for row in try rows(releaseRange, [.integer(range.lowerBound), .integer(range.upperBound)]) {
        seqs.append(row.int64(0) ?? 0)
        records += Int(row.int64(1) ?? 0)
        if let uplink = UplinkClass(name: row.text(2) ?? ""), let first = row.int64(3),
          let last = row.int64(4), first <= last
        {
          spans.append((uplink, first...last))
        }
      }
    }
    // Batches of a class formed one after the other hold adjacent id ranges: one
    // DELETE for each run of them (only exactly adjacent ones: ids between two
    // ranges may belong to a batch not acknowledged yet).
    spans.sort { (classIndex($0.uplink), $0.ids.lowerBound) < (classIndex($1.uplink), $1.ids.lowerBound) }
    var i = 0
    while i < spans.count {
      var last = spans[i].ids.upperBound
      var j = i + 1
      while j < spans.count, spans[j].uplink == spans[i].uplink, spans[j].ids.lowerBound == last + 1 {
        last = spans[j].ids.upperBound
        j += 1
      }
      _ = try rows(table(spans[i].uplink).deleteRange, [.integer(spans[i].ids.lowerBound), .integer(last)])
      i = j
    }
    return (seqs, records)
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
  /// first (by enqueue time across classes), in steps of `step` records, counting each
  /// eviction per class; billing records and records in unacknowledged batches are
  /// never evicted.
  public func enforceBudget(capBytes: Int64, step: Int = 1000, now: Int64) throws(SQLiteError)
    -> BudgetState
  {
    var used = try usedBytes()
    var evicted: Int64 = 0
    while used > capBytes {
      let removed = try db.transaction { () throws(SQLiteError) -> Int64 in
        var oldest: (table: ClassTable, at: Int64)? = nil
        for t in tables {
          guard let at = try rows(t.oldestEvictable, []).first?.int64(0) else { continue }
          if oldest == nil || at < oldest!.at { oldest = (t, at) }
        }
        guard let oldest else { return 0 }
        _ = try rows(oldest.table.evict, [.integer(Int64(step))])
        let n = Int64(db.changes)
        try db.run(
          """
          INSERT INTO outbox_evictions (class, evicted, reported, last_at) VALUES (?1, ?2, 0, ?3)
          ON CONFLICT (class) DO UPDATE SET evicted = evicted + excluded.evicted,
            last_at = excluded.last_at
          """, [.text(oldest.table.uplink.name), .integer(n), .integer(now)])
        return n
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
      """
      SELECT (SELECT count(*) FROM outbox)
          - (SELECT coalesce(sum(records), 0) FROM batches WHERE first_id IS NOT NULL),
        (SELECT count(*) FROM batches)
      """
    ).first
    return (row?.int64(0) ?? 0, row?.int64(1) ?? 0)
  }
}

extension Outbox {
  /// On a new database: the databases quarantined beside it (a corrupt one moved
  /// aside by an earlier start) go to HQ as one `store.quarantined` event, so that HQ
  /// knows the device started over (new store id, seqs from 1) and that what the old
  /// file held and HQ had not acknowledged is only in that file.
  static func reportQuarantined(path: String, outbox: Outbox, now: Int64) throws(SQLiteError) {
    let files = AgentStore.quarantined(beside: path)
    guard let newest = files.last else { return }
    var list = ""
    for (i, file) in files.enumerated() {
      list +=
        (i == 0 ? "" : ",") + "{\"file\":\"" + jsonEscaped(file.file) + "\",\"bytes\":" + String(file.bytes)
        + ",\"moved_at\":" + String(file.at) + "}"
    }
    let storeID = outbox.storeID
    try outbox.enqueue(
      .events,
      record: "{\"id\":\"" + storeID + "-quarantined\",\"ts\":" + String(now)
        + ",\"type\":\"store.quarantined\",\"database\":\"" + jsonEscaped(path) + "\",\"quarantined\":["
        + list + "]}",
      retention: .billing, now: now)
    Log.warn(
      "store",
      "new database " + path + " (store " + storeID + "); " + String(files.count)
        + " quarantined database(s) beside it, the newest " + newest.file
        + ": what it held that HQ had not acknowledged is only there (reported to HQ: store.quarantined)")
  }
}

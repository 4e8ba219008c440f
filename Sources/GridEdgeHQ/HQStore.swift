import GridEdgeContract
import Runtime
import SQLiteStore

/// The HQ receiver's database: what it knows of each device.
public final class HQStore {
  public let db: Connection

  /// The receiver's migrations: numbered, append-only.
  public static let migrations: [Migration] = [
    Migration(
      id: 1, name: "devices",
      sql: """
        CREATE TABLE devices (
          device_id TEXT PRIMARY KEY,
          state TEXT NOT NULL,
          epoch INTEGER NOT NULL,
          store_id TEXT NOT NULL,
          version TEXT,
          profile TEXT,
          reason TEXT,
          state_time INTEGER NOT NULL,
          last_seen INTEGER NOT NULL,
          births INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        """),
    Migration(
      id: 2, name: "batches, records and per-device counters",
      sql: """
        CREATE TABLE batches (
          device_id TEXT NOT NULL,
          store_id TEXT NOT NULL,
          seq INTEGER NOT NULL,
          class TEXT NOT NULL,
          records INTEGER NOT NULL,
          stored INTEGER NOT NULL,
          digest TEXT NOT NULL,
          received_at INTEGER NOT NULL,
          PRIMARY KEY (device_id, store_id, seq)
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE records (
          id INTEGER PRIMARY KEY,
          device_id TEXT NOT NULL,
          class TEXT NOT NULL,
          key TEXT NOT NULL,
          body TEXT NOT NULL,
          store_id TEXT NOT NULL,
          seq INTEGER NOT NULL,
          received_at INTEGER NOT NULL,
          UNIQUE (device_id, class, key)
        ) STRICT;
        CREATE TABLE device_counters (
          device_id TEXT PRIMARY KEY,
          batches INTEGER NOT NULL DEFAULT 0,
          duplicate_batches INTEGER NOT NULL DEFAULT 0,
          records INTEGER NOT NULL DEFAULT 0,
          duplicate_records INTEGER NOT NULL DEFAULT 0,
          malformed INTEGER NOT NULL DEFAULT 0,
          conflicting_batches INTEGER NOT NULL DEFAULT 0,
          last_batch_at INTEGER
        ) STRICT;
        """),
    Migration(
      id: 3, name: "command counters and sent commands",
      sql: """
        CREATE TABLE command_counters (
          device_id TEXT PRIMARY KEY,
          last_counter TEXT NOT NULL
        ) STRICT;
        CREATE TABLE sent_commands (
          device_id TEXT NOT NULL,
          counter TEXT NOT NULL,
          type TEXT NOT NULL,
          token TEXT NOT NULL,
          sent_at INTEGER NOT NULL,
          PRIMARY KEY (device_id, counter)
        ) STRICT;
        """),
    Migration(
      id: 4, name: "photos reassembled from attachment chunks",
      sql: """
        CREATE INDEX records_attachment_photo ON records (device_id, json_extract(body, '$.photo'))
          WHERE class = 'attachments';
        CREATE TABLE photos (
          device_id TEXT NOT NULL,
          photo_id TEXT NOT NULL,
          order_id TEXT NOT NULL,
          sha256 TEXT NOT NULL,
          size INTEGER NOT NULL,
          chunks INTEGER NOT NULL,
          verified INTEGER NOT NULL CHECK (verified IN (0, 1)),
          problem TEXT,
          data BLOB,
          received_at INTEGER NOT NULL,
          PRIMARY KEY (device_id, photo_id)
        ) STRICT, WITHOUT ROWID;
        """),
  ]

  /// Opens (creating if needed) the receiver database at `path`.
  public init(path: String) throws(SQLiteError) {
    db = try Connection(path: path)
    // HQ writes a lot: a bigger page cache keeps the growing indexes in memory.
    try db.execute("PRAGMA cache_size = -32768")
    _ = try Migrator(Self.migrations).migrate(db)
  }

  /// Records a state message; one from an older epoch than the one stored (a will
  /// delivered after the device's next birth) is ignored, and an online state while
  /// the same boot is online (its storage state changed) is no new birth.
  /// - Returns: true when the stored state changed.
  @discardableResult
  public func record(_ message: StateMessage, receivedAt now: Int64) throws(SQLiteError) -> Bool {
    try db.run(
      """
      INSERT INTO devices (device_id, state, epoch, store_id, version, profile, reason, state_time,
        last_seen, births)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
      ON CONFLICT (device_id) DO UPDATE SET state = excluded.state, epoch = excluded.epoch,
        store_id = excluded.store_id, version = coalesce(excluded.version, version),
        profile = coalesce(excluded.profile, profile), reason = excluded.reason,
        state_time = excluded.state_time, last_seen = excluded.last_seen,
        births = births + CASE WHEN excluded.epoch = epoch AND excluded.store_id = store_id
          AND state = 'online' THEN 0 ELSE excluded.births END
      WHERE excluded.epoch > epoch OR (excluded.epoch = epoch AND excluded.state_time >= state_time)
        OR excluded.store_id <> store_id
      """,
      [
        .text(message.device), .text(message.state.name), .integer(message.epoch),
        .text(message.store), text(message.version), text(message.profile), text(message.reason),
        .integer(message.time), .integer(now), .integer(message.state == .online ? 1 : 0),
      ])
    return db.changes > 0
  }

  /// What storing one batch did.
  public enum Outcome: Equatable, Sendable {
    /// Stored: `stored` new records, `duplicates` already held under their natural key.
    case stored(stored: Int, duplicates: Int)
    /// This (device, store, seq) was stored before, byte-identical: nothing stored again.
    case duplicateBatch
    /// This (device, store, seq) was stored before with other content: the device
    /// reused a sequence number. Nothing stored; counted and reported.
    case conflictingBatch
  }

  /// Stores a validated batch, deduplicated by (device, store, seq) and by each
  /// record's natural key. Call inside a transaction; ack only after it commits.
  public func store(_ header: BatchHeader, payload: [UInt8], receivedAt now: Int64) throws(SQLiteError)
    -> Outcome
  {
    let digest = hexString(SHA256.hash(payload))
    try db.run(
      """
      INSERT OR IGNORE INTO batches (device_id, store_id, seq, class, records, stored, digest,
        received_at)
      VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)
      """,
      [
        .text(header.device), .text(header.store), .integer(header.seq), .text(header.uplink.name),
        .integer(Int64(header.recordCount)), .text(digest), .integer(now),
      ])
    guard db.changes > 0 else {
      let previous = try db.query(
        "SELECT digest FROM batches WHERE device_id = ?1 AND store_id = ?2 AND seq = ?3",
        [.text(header.device), .text(header.store), .integer(header.seq)]
      ).first?.text(0)
      guard previous != digest else {
        try count(header.device, "duplicate_batches = duplicate_batches + 1", now: now)
        return .duplicateBatch
      }
      // Its records are still real data: keep those not held yet (by natural key).
      let stored = try storeRecords(header, payload: payload, receivedAt: now)
      if header.uplink == .attachments {
        try assemblePhotos(header.device, payload: payload, receivedAt: now)
      }
      try count(
        header.device,
        "conflicting_batches = conflicting_batches + 1, records = records + " + String(stored)
          + ", duplicate_records = duplicate_records + " + String(header.recordCount - stored), now: now)
      return .conflictingBatch
    }
    let stored = try storeRecords(header, payload: payload, receivedAt: now)
    if header.uplink == .attachments {
      try assemblePhotos(header.device, payload: payload, receivedAt: now)
    }
    try count(
      header.device,
      "batches = batches + 1, records = records + " + String(stored)
        + ", duplicate_records = duplicate_records + "
        + String(header.recordCount - stored) + ", last_batch_at = " + String(now), now: now)
    try db.run(
      "UPDATE batches SET stored = ?4 WHERE device_id = ?1 AND store_id = ?2 AND seq = ?3",
      [.text(header.device), .text(header.store), .integer(header.seq), .integer(Int64(stored))])
    return .stored(stored: stored, duplicates: header.recordCount - stored)
  }

  /// Inserts the batch's records not held yet under their natural key.
  /// - Returns: how many were new.
  private func storeRecords(_ header: BatchHeader, payload: [UInt8], receivedAt now: Int64)
    throws(SQLiteError)
    -> Int
  {
    try db.run(
      "INSERT OR IGNORE INTO records (device_id, class, key, body, store_id, seq, received_at)"
        + " SELECT ?1, ?2, natural_key, value, ?4, ?5, ?6 FROM ("
        + RecordKey.select(header.uplink, payload: "?3") + ") WHERE natural_key IS NOT NULL ORDER BY idx",
      [
        .text(header.device), .text(header.uplink.name), .text(String(decoding: payload, as: UTF8.self)),
        .text(header.store), .integer(header.seq), .integer(now),
      ])
    return db.changes
  }

  /// Reassembles every photo of an `attachments` batch whose chunks are now all held:
  /// decodes them in index order, checks size and SHA-256, and keeps the photo in
  /// `photos` (verified, or with the problem found and no data). Call inside the
  /// batch's transaction.
  private func assemblePhotos(_ device: String, payload: [UInt8], receivedAt now: Int64) throws(SQLiteError) {
    let photos = try db.query(
      """
      SELECT DISTINCT json_extract(value, '$.photo') FROM json_each(?1, '$.records')
      WHERE json_type(value, '$.photo') = 'text'
        AND json_extract(value, '$.photo') NOT IN (SELECT photo_id FROM photos WHERE device_id = ?2)
      """, [.text(String(decoding: payload, as: UTF8.self)), .text(device)])
    for row in photos {
      guard let photo = row.text(0) else { continue }
      let chunks = try db.query(
        """
        SELECT json_extract(body, '$.index'), json_extract(body, '$.count'), json_extract(body, '$.sha256'),
          json_extract(body, '$.size'), json_extract(body, '$.order'), json_extract(body, '$.data')
        FROM records
        WHERE device_id = ?1 AND class = 'attachments' AND json_extract(body, '$.photo') = ?2
        ORDER BY json_extract(body, '$.index')
        """, [.text(device), .text(photo)])
      guard let first = chunks.first, let count = first.int64(1), Int64(chunks.count) == count else {
        continue
      }
      let sha = first.text(2) ?? ""
      let size = first.int64(3) ?? -1
      var bytes: [UInt8] = []
      var problem: String? = nil
      for (i, chunk) in chunks.enumerated() {
        guard chunk.int64(0) == Int64(i), chunk.text(2) == sha, chunk.int64(3) == size,
          chunk.int64(1) == count
        else {
          problem = "chunk " + String(i) + " does not match the photo's other chunks"
          break
        }
        do {
          bytes += try Base64URL.decode(chunk.text(5) ?? "")
        } catch {
          problem = "chunk " + String(i) + ": " + error.description
          break
        }
      }
      if problem == nil && Int64(bytes.count) != size {
        problem = "reassembled " + String(bytes.count) + " bytes, expected " + String(size)
      }
      if problem == nil && hexString(SHA256.hash(bytes)) != sha { problem = "SHA-256 does not match" }
      try db.run(
        """
        INSERT INTO photos (device_id, photo_id, order_id, sha256, size, chunks, verified, problem, data,
          received_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
        """,
        [
          .text(device), .text(photo), .text(first.text(4) ?? ""), .text(sha), .integer(size),
          .integer(count),
          .integer(problem == nil ? 1 : 0), text(problem), problem == nil ? .blob(bytes) : .null,
          .integer(now),
        ])
      if let problem {
        Log.error("hq", "photo " + photo + " of " + device + " is corrupt: " + problem)
      } else {
        Log.info(
          "hq", "photo " + photo + " of " + device + " received: " + String(size) + " bytes, SHA-256 verified"
        )
      }
    }
  }

  /// Counts a malformed message from `device` (never stored, never acked).
  public func countMalformed(_ device: String, now: Int64) throws(SQLiteError) {
    try count(device, "malformed = malformed + 1", now: now)
  }

  /// `update` is built from integers only, never from received text.
  private func count(_ device: String, _ update: String, now: Int64) throws(SQLiteError) {
    try db.run("INSERT OR IGNORE INTO device_counters (device_id) VALUES (?1)", [.text(device)])
    try db.run("UPDATE device_counters SET " + update + " WHERE device_id = ?1", [.text(device)])
  }

  private func text(_ value: String?) -> SQLiteValue {
    guard let value else { return .null }
    return .text(value)
  }
}

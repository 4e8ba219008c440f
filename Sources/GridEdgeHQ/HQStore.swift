import GridEdgeContract
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
        """)
  ]

  /// Opens (creating if needed) the receiver database at `path`.
  public init(path: String) throws(SQLiteError) {
    db = try Connection(path: path)
    _ = try Migrator(Self.migrations).migrate(db)
  }

  /// Records a state message; one from an older epoch than the one stored (a will
  /// delivered after the device's next birth) is ignored.
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
        births = births + excluded.births
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

  private func text(_ value: String?) -> SQLiteValue {
    guard let value else { return .null }
    return .text(value)
  }
}

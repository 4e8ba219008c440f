/// One numbered schema change. Append-only: never edit or remove one that has shipped.
public struct Migration: Sendable {
  /// The number: 1 for the first migration, then each one more than the previous.
  public let id: Int
  /// A short name, recorded with the id and checked on every run.
  public let name: String
  /// One or more statements. Must not contain BEGIN/COMMIT (each migration already runs in its
  /// own transaction) nor pragmas that are no-ops inside one (`foreign_keys`, `journal_mode`).
  public let sql: String

  public init(id: Int, name: String, sql: String) {
    self.id = id
    self.name = name
    self.sql = sql
  }
}

/// Applies numbered migrations in order, each in its own transaction, recording them in
/// `schema_migrations(id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`.
public struct Migrator: Sendable {
  /// The migrations this binary knows, in order.
  public let migrations: [Migration]
  /// Why the list is malformed, if it is (thrown by `migrate` as `.misuse`).
  private let misuse: String?

  /// - Parameter migrations: ids must be 1, 2, 3, … in order, names non-empty. A malformed
  ///   list makes `migrate` throw `.misuse`.
  public init(_ migrations: [Migration]) {
    self.migrations = migrations
    var problem: String? = nil
    for (i, migration) in migrations.enumerated() {
      if migration.id != i + 1 {
        problem =
          "migration ids must be 1, 2, 3, … in order; position " + String(i + 1) + " has id "
          + String(migration.id) + " (" + migration.name + ")"
        break
      }
      if migration.name.isEmpty {
        problem = "migration " + String(migration.id) + " has an empty name"
        break
      }
    }
    misuse = problem
  }

  /// Applies every migration the database has not recorded yet, in id order.
  ///
  /// Each runs in a `BEGIN IMMEDIATE` transaction with `synchronous=FULL`, together with the
  /// row recording it; a failing one is rolled back completely (nothing of it stays, it is not
  /// recorded; earlier ones stay applied).
  /// - Parameter db: an open, writable connection.
  /// - Returns: the ids applied by this call (`[]` when up to date).
  /// - Throws: `SQLiteError` — the failing migration's error with "migration N (name) failed: "
  ///   in front; `.error` when the database records a migration this binary does not know
  ///   (written by a newer version) or records an id under another name (an edited migration);
  ///   `.misuse` for a malformed list.
  public func migrate(_ db: Connection) throws(SQLiteError) -> [Int] {
    if let misuse {
      throw SQLiteError(code: .misuse, message: misuse, path: db.path)
    }
    if !(try tableExists(db)) {
      try db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations("
          + "id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
    }
    let recorded = try recordedMigrations(db)
    try validate(recorded, db: db)

    var applied: [Int] = []
    for migration in migrations {
      if recorded.contains(where: { $0.id == migration.id }) { continue }
      if try apply(migration, to: db) {
        applied.append(migration.id)
      }
    }
    return applied
  }

  /// The ids recorded in `schema_migrations`, ascending (`[]` when the table does not exist).
  /// - Throws: `SQLiteError` when the table cannot be read.
  public func appliedIDs(_ db: Connection) throws(SQLiteError) -> [Int] {
    guard try tableExists(db) else { return [] }
    return try recordedMigrations(db).map { $0.id }
  }

  // MARK: - Private

  private func tableExists(_ db: Connection) throws(SQLiteError) -> Bool {
    let count = try db.scalarInt(
      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    return (count ?? 0) > 0
  }

  private func recordedMigrations(_ db: Connection) throws(SQLiteError) -> [(
    id: Int, name: String
  )] {
    try db.query("SELECT id, name FROM schema_migrations ORDER BY id").map {
      (id: Int($0.int64(0) ?? 0), name: $0.text(1) ?? "")
    }
  }

  /// Refuses a database that is ahead of this binary or whose history differs from it.
  private func validate(_ recorded: [(id: Int, name: String)], db: Connection) throws(SQLiteError) {
    for entry in recorded {
      guard let known = migrations.first(where: { $0.id == entry.id }) else {
        throw SQLiteError(
          code: .error,
          message: "the database records migration " + String(entry.id) + " (" + entry.name
            + ") which this binary does not know (it knows 1..." + String(migrations.count)
            + "): the database was written by a newer version; refusing to use it",
          path: db.path)
      }
      if !sameBytes(known.name, entry.name) {
        throw SQLiteError(
          code: .error,
          message: "migration " + String(entry.id) + " is recorded as '" + entry.name
            + "' but this binary calls it '" + known.name
            + "': a shipped migration was changed; refusing to migrate",
          path: db.path)
      }
    }
  }

  /// Applies one migration and records it in one transaction.
  /// - Returns: `false` when another connection recorded it first.
  private func apply(_ migration: Migration, to db: Connection) throws(SQLiteError) -> Bool {
    let prefix = "migration " + String(migration.id) + " (" + migration.name + ") failed: "
    do throws(SQLiteError) {
      try db.begin(.full)
    } catch {
      throw error.prefixed(prefix)
    }
    do throws(SQLiteError) {
      let already = try db.scalarInt(
        "SELECT count(*) FROM schema_migrations WHERE id = ?", [.integer(Int64(migration.id))])
      if (already ?? 0) > 0 {
        db.rollback()
        return false
      }
      try db.execute(migration.sql)
      if !db.isInTransaction {
        throw SQLiteError(
          code: .misuse, message: "its SQL ended the transaction (no BEGIN/COMMIT in migrations)",
          sql: migration.sql, path: db.path)
      }
      try db.run(
        "INSERT INTO schema_migrations(id, name, applied_at) "
          + "VALUES (?, ?, CAST(strftime('%s', 'now') AS INTEGER))",
        [.integer(Int64(migration.id)), .text(migration.name)])
      try db.commit()
    } catch {
      db.rollback()
      throw error.prefixed(prefix)
    }
    return true
  }
}

import Foundation
import SQLiteStore
import Testing

// MARK: - Helpers

/// A fresh directory with a database path in it; removed when released.
final class TempDatabase {
  let directory: URL
  let path: String

  init(_ name: String = "test.db") throws {
    directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("sqlitestore-tests-" + UUID().uuidString, isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    path = directory.appendingPathComponent(name).path
  }

  deinit {
    try? FileManager.default.removeItem(at: directory)
  }

  func open(_ configure: (inout Connection.Options) -> Void = { _ in }) throws -> Connection {
    var options = Connection.Options()
    configure(&options)
    return try Connection(path: path, options: options)
  }

  func write(_ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
  }
}

/// Runs `body` and returns the `SQLiteError` it threw, or records an issue when it did not.
func expectSQLiteError(
  sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> SQLiteError? {
  do {
    try body()
  } catch let error as SQLiteError {
    return error
  } catch {
    Issue.record("expected an SQLiteError, got \(error)", sourceLocation: sourceLocation)
    return nil
  }
  Issue.record("expected an SQLiteError, nothing was thrown", sourceLocation: sourceLocation)
  return nil
}

/// Deterministic pseudo-random bytes (xorshift64), so corruption tests are reproducible.
func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
  var state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
  var bytes: [UInt8] = []
  bytes.reserveCapacity(count)
  for _ in 0..<count {
    state ^= state << 13
    state ^= state >> 7
    state ^= state << 17
    bytes.append(UInt8(truncatingIfNeeded: state >> 24))
  }
  return bytes
}

// MARK: - Opening and configuration

@Test func openingCreatesTheFileAndCloseIsIdempotent() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  #expect(db.path == temp.path)
  #expect(db.isOpen)
  try db.execute("CREATE TABLE t(a)")
  #expect(FileManager.default.fileExists(atPath: temp.path))
  db.close()
  #expect(!db.isOpen)
  db.close()
}

@Test func walModeIsOnForANewDatabase() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let mode = try db.query("PRAGMA journal_mode").first?.text(0)
  #expect(mode == "wal")
}

@Test func walModeIsNotSetWhenDisabled() throws {
  let temp = try TempDatabase()
  let db = try temp.open { $0.walMode = false }
  #expect(try db.query("PRAGMA journal_mode").first?.text(0) == "delete")
}

@Test func defaultsAreForeignKeysOnAndSynchronousNormal() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  #expect(try db.scalarInt("PRAGMA foreign_keys") == 1)
  #expect(try db.scalarInt("PRAGMA synchronous") == 1)
  try db.execute(
    "CREATE TABLE parent(id INTEGER PRIMARY KEY); "
      + "CREATE TABLE child(p INTEGER REFERENCES parent(id))")
  let error = expectSQLiteError { try db.run("INSERT INTO child(p) VALUES (42)") }
  #expect(error?.code == .constraint)
}

@Test func defensiveModeForbidsWritingTheSchemaTable() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a)")
  try db.execute("PRAGMA writable_schema=ON")
  let error = expectSQLiteError {
    try db.run("UPDATE sqlite_master SET sql = 'CREATE TABLE t(a, b)' WHERE name = 't'")
  }
  #expect(error != nil)
  let schema = try db.query("SELECT sql FROM sqlite_master WHERE name = 't'").first?.text(0)
  #expect(schema == "CREATE TABLE t(a)")
}

@Test func openingAMissingFileReadOnlyFailsWithCantOpenNamingThePath() throws {
  let temp = try TempDatabase()
  let error = expectSQLiteError { _ = try Connection(path: temp.path, options: readOnly()) }
  #expect(error?.code == .cantOpen)
  #expect(error?.message.contains(temp.path) == true)
  #expect(!FileManager.default.fileExists(atPath: temp.path))
}

private func readOnly() -> Connection.Options {
  var options = Connection.Options()
  options.readOnly = true
  return options
}

@Test func readOnlyConnectionReadsButRefusesWrites() throws {
  let temp = try TempDatabase()
  do {
    let writer = try temp.open()
    try writer.execute("CREATE TABLE t(a); INSERT INTO t VALUES (7)")
    writer.close()
  }
  let db = try temp.open { $0.readOnly = true }
  #expect(try db.scalarInt("SELECT a FROM t") == 7)
  let error = expectSQLiteError { try db.run("INSERT INTO t VALUES (8)") }
  #expect(error?.code == .readOnly)
  #expect(try db.scalarInt("SELECT count(*) FROM t") == 1)
}

@Test func usingAClosedConnectionIsAMisuse() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let statement = try db.prepare("SELECT 1")
  db.close()
  #expect(expectSQLiteError { try db.execute("SELECT 1") }?.code == .misuse)
  #expect(expectSQLiteError { _ = try db.query("SELECT 1") }?.code == .misuse)
  #expect(expectSQLiteError { _ = try statement.step() }?.code == .misuse)
}

@Test func busyTimeoutGivesBusyWhenAnotherConnectionHoldsTheWriteLock() throws {
  let temp = try TempDatabase()
  let first = try temp.open()
  try first.execute("CREATE TABLE t(a)")
  let second = try temp.open { $0.busyTimeoutMilliseconds = 50 }
  try first.begin()
  let started = Date()
  let error = expectSQLiteError { try second.begin() }
  #expect(error?.code == .busy)
  #expect(Date().timeIntervalSince(started) >= 0.04)
  #expect(!second.isInTransaction)
  first.rollback()
  try second.begin()
  second.rollback()
}

// MARK: - Values

@Test(arguments: [
  SQLiteValue.null,
  .integer(0), .integer(1), .integer(-1), .integer(Int64.min), .integer(Int64.max),
  .real(0.0), .real(0.1), .real(-123_456.789), .real(Double.greatestFiniteMagnitude),
  .real(Double.leastNonzeroMagnitude), .real(Double.infinity),
  .text(""), .text("hello"), .text("电表 Zählerstand ⚡️ 🔌"), .text("a\u{0}b"), .text("\u{0}"),
  .blob([]), .blob([0]), .blob(Array(0...255)), .blob(pseudoRandomBytes(count: 100_000, seed: 7)),
])
func everyValueRoundTripsThroughBindAndColumn(value: SQLiteValue) throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(v)")
  try db.run("INSERT INTO t(v) VALUES (?)", [value])
  let rows = try db.query("SELECT v, typeof(v) FROM t")
  #expect(rows.count == 1)
  #expect(rows.first?[0] == value)

  let expectedType: String
  switch value {
  case .null: expectedType = "null"
  case .integer: expectedType = "integer"
  case .real: expectedType = "real"
  case .text: expectedType = "text"
  case .blob: expectedType = "blob"
  }
  #expect(rows.first?.text(1) == expectedType)

  // The same through a Statement's typed readers.
  let statement = try db.prepare("SELECT v FROM t")
  #expect(try statement.step())
  #expect(statement.value(at: 0) == value)
  switch value {
  case .null:
    #expect(statement.isNull(at: 0))
    #expect(statement.text(at: 0) == nil)
    #expect(statement.blob(at: 0) == [])
  case .integer(let v):
    #expect(statement.int64(at: 0) == v)
    #expect(rows.first?.int64(0) == v)
  case .real(let v):
    #expect(statement.double(at: 0) == v)
    #expect(rows.first?.double(0) == v)
  case .text(let v):
    #expect(!statement.isNull(at: 0))
    #expect(Array((statement.text(at: 0) ?? "x").utf8) == Array(v.utf8))
    #expect(rows.first?.text(0) == v)
  case .blob(let v):
    #expect(!statement.isNull(at: 0))
    #expect(statement.blob(at: 0) == v)
    #expect(rows.first?.blob(0) == v)
  }
  #expect(try !statement.step())
}

@Test func textWithEmbeddedNULKeepsItsLength() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  #expect(try db.scalarInt("SELECT length(CAST(? AS BLOB))", [.text("ab\u{0}cd")]) == 5)
  #expect(try db.scalarInt("SELECT length(?)", [.text("")]) == 0)
  #expect(
    try db.query("SELECT typeof(?), typeof(?)", [.text(""), .blob([])]).first
      == Row([.text("text"), .text("blob")]))
}

@Test func literalsMakeValues() {
  let values: [SQLiteValue] = [nil, 42, 1.5, "x"]
  #expect(values == [.null, .integer(42), .real(1.5), .text("x")])
}

@Test func nanIsStoredAsNull() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  #expect(try db.query("SELECT ?", [.real(Double.nan)]).first?[0] == .null)
}

@Test func statementIsReusedWithNewBindingsAndReportsColumns() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE meters(address TEXT PRIMARY KEY, wh INTEGER)")
  let insert = try db.prepare("INSERT INTO meters(address, wh) VALUES (?, ?)")
  for (i, address) in ["000000000001", "000000000002", "000000000003"].enumerated() {
    try insert.bind([.text(address), .integer(Int64(i) * 10)])
    #expect(try !insert.step())
  }
  let select = try db.prepare("SELECT address AS addr, wh FROM meters WHERE wh >= ? ORDER BY wh")
  #expect(select.columnCount == 2)
  #expect(select.columnName(0) == "addr")
  #expect(select.columnName(1) == "wh")
  try select.bind([.integer(10)])
  var seen: [Row] = []
  while try select.step() { seen.append(select.row()) }
  #expect(seen == [Row([.text("000000000002"), .integer(10)]), Row(["000000000003", 20])])
  try select.bind(.integer(20), at: 1)
  select.reset()
  #expect(try select.step())
  #expect(select.text(at: 0) == "000000000003")
}

@Test func bindingTheWrongNumberOfValuesIsARangeError() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let error = expectSQLiteError { try db.run("SELECT ?, ?", [.integer(1)]) }
  #expect(error?.code == .range)
  #expect(error?.sql == "SELECT ?, ?")
  let statement = try db.prepare("SELECT ?")
  #expect(expectSQLiteError { try statement.bind(.null, at: 2) }?.code == .range)
}

@Test func lastInsertRowIDAndChangesDescribeTheLastStatement() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER)")
  try db.run("INSERT INTO t(a) VALUES (?)", [1])
  try db.run("INSERT INTO t(a) VALUES (?)", [1])
  #expect(db.lastInsertRowID == 2)
  try db.run("INSERT INTO t(id, a) VALUES (100, 2)")
  #expect(db.lastInsertRowID == 100)
  try db.run("UPDATE t SET a = 5 WHERE a = 1")
  #expect(db.changes == 2)
}

@Test func scalarIntIsNilForNoRowsAndForNull() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a)")
  #expect(try db.scalarInt("SELECT a FROM t") == nil)
  #expect(try db.scalarInt("SELECT NULL") == nil)
  #expect(try db.scalarInt("SELECT ? + 1", [41]) == 42)
}

// MARK: - Errors

@Test func constraintErrorCarriesCodeMessageAndSQL() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a UNIQUE)")
  let sql = "INSERT INTO t(a) VALUES (?)"
  try db.run(sql, [1])
  let error = try #require(expectSQLiteError { try db.run(sql, [1]) })
  #expect(error.code == .constraint)
  #expect(error.extendedCode == 2067)  // SQLITE_CONSTRAINT_UNIQUE
  #expect(error.message == "UNIQUE constraint failed: t.a")
  #expect(error.sql == sql)
  #expect(error.path == temp.path)
  #expect(
    error.description
      == "SQLite error 19 (constraint failed): UNIQUE constraint failed: t.a — in: " + sql
      + " — database: " + temp.path)
  #expect(try db.scalarInt("SELECT count(*) FROM t") == 1)
}

@Test func syntaxErrorNamesTheSQL() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let sql = "SELEC 1 FROM nowhere"
  let prepared = try #require(expectSQLiteError { _ = try db.prepare(sql) })
  #expect(prepared.code == .error)
  #expect(prepared.message.contains("syntax error"))
  #expect(prepared.sql == sql)
  #expect(prepared.description.contains(sql))

  let script = "CREATE TABLE ok(a); CREATE TABLE (b)"
  let executed = try #require(expectSQLiteError { try db.execute(script) })
  #expect(executed.code == .error)
  #expect(executed.message.contains("syntax error"))
  #expect(executed.sql == script)
}

@Test func missingTableErrorNamesTheTable() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let error = expectSQLiteError { _ = try db.query("SELECT * FROM readings") }
  #expect(error?.message == "no such table: readings")
}

@Test func prepareRefusesMoreThanOneStatementButAllowsTrailingComments() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a)")
  let error = expectSQLiteError { try db.run("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)") }
  #expect(error?.code == .misuse)
  #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)
  #expect(try db.scalarInt("SELECT 3; -- the answer\n  ") == 3)
  #expect(expectSQLiteError { _ = try db.prepare("  -- nothing") }?.code == .misuse)
}

@Test func resultCodeDescriptionsComeFromSQLite() {
  #expect(SQLiteResultCode.constraint.description == "constraint failed")
  #expect(SQLiteResultCode.notADatabase.description == "file is not a database")
  #expect(SQLiteResultCode(rawValue: 2067) == .constraint)
  #expect(SQLiteResultCode.busy.rawValue == 5)
  let custom = SQLiteError(code: .corrupt, message: "bad ledger chain", path: "/x.db")
  #expect(custom.extendedCode == 11)
  #expect(
    custom.description == "SQLite error 11 (database disk image is malformed): "
      + "bad ledger chain — database: /x.db")
}

// MARK: - Transactions

@Test func transactionCommitsItsBody() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a)")
  let result = try db.transaction { () throws(SQLiteError) -> Int64 in
    #expect(db.isInTransaction)
    try db.run("INSERT INTO t VALUES (1)")
    try db.run("INSERT INTO t VALUES (2)")
    return db.lastInsertRowID
  }
  #expect(result == 2)
  #expect(!db.isInTransaction)
  db.close()
  let reopened = try temp.open()
  #expect(try reopened.scalarInt("SELECT count(*) FROM t") == 2)
}

@Test func transactionRollsBackWhenItsBodyThrows() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a UNIQUE)")
  let error = expectSQLiteError {
    try db.transaction { () throws(SQLiteError) in
      try db.run("INSERT INTO t VALUES (1)")
      try db.run("INSERT INTO t VALUES (2)")
      try db.run("INSERT INTO t VALUES (1)")
    }
  }
  #expect(error?.code == .constraint)
  #expect(!db.isInTransaction)
  #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)
}

@Test func transactionRollsBackOnACustomError() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a)")
  let error = expectSQLiteError {
    try db.transaction { () throws(SQLiteError) in
      try db.run("INSERT INTO t VALUES (1)")
      throw SQLiteError(code: .error, message: "balance check failed")
    }
  }
  #expect(error?.message == "balance check failed")
  #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)
}

@Test func beginCommitAndRollbackWorkForOtherErrorTypes() throws {
  struct DomainError: Error {}
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a)")
  try db.begin()
  do {
    try db.run("INSERT INTO t VALUES (1)")
    throw DomainError()
  } catch is DomainError {
    db.rollback()
  }
  #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)
  try db.begin()
  try db.run("INSERT INTO t VALUES (2)")
  try db.commit()
  #expect(try db.scalarInt("SELECT count(*) FROM t") == 1)
  db.rollback()  // nothing open: harmless
  #expect(try db.scalarInt("SELECT count(*) FROM t") == 1)
}

@Test func fullDurabilitySetsSynchronousFullOnlyInsideTheTransaction() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute("CREATE TABLE t(a)")
  #expect(try db.scalarInt("PRAGMA synchronous") == 1)
  let inside = try db.transaction(.full) { () throws(SQLiteError) -> Int64? in
    try db.run("INSERT INTO t VALUES (1)")
    return try db.scalarInt("PRAGMA synchronous")
  }
  #expect(inside == 2)
  #expect(try db.scalarInt("PRAGMA synchronous") == 1)
  let normal = try db.transaction { () throws(SQLiteError) -> Int64? in
    try db.scalarInt("PRAGMA synchronous")
  }
  #expect(normal == 1)
}

@Test func fullDurabilityIsRestoredAfterARollback() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  _ = expectSQLiteError {
    try db.transaction(.full) { () throws(SQLiteError) in
      #expect(try db.scalarInt("PRAGMA synchronous") == 2)
      throw SQLiteError(code: .error, message: "refused")
    }
  }
  #expect(try db.scalarInt("PRAGMA synchronous") == 1)
  try db.begin(.full)
  #expect(try db.scalarInt("PRAGMA synchronous") == 2)
  db.rollback()
  #expect(try db.scalarInt("PRAGMA synchronous") == 1)
}

@Test func beginInsideATransactionIsRefusedAndLeavesItOpen() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.begin()
  let error = expectSQLiteError { try db.begin(.full) }
  #expect(error?.code == .misuse)
  #expect(db.isInTransaction)
  #expect(try db.scalarInt("PRAGMA synchronous") == 1)
  db.rollback()
}

@Test func failedCommitRollsBackAndClosesTheTransaction() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  try db.execute(
    "CREATE TABLE parent(id INTEGER PRIMARY KEY); "
      + "CREATE TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
  let error = expectSQLiteError {
    try db.transaction { () throws(SQLiteError) in
      try db.run("INSERT INTO child(p) VALUES (9)")  // checked at COMMIT
    }
  }
  #expect(error?.code == .constraint)
  #expect(error?.sql == "COMMIT")
  #expect(!db.isInTransaction)
  #expect(try db.scalarInt("SELECT count(*) FROM child") == 0)
}

// MARK: - Migrations

private let v1Migrations = [
  Migration(
    id: 1, name: "create_meters",
    sql: "CREATE TABLE meters(address TEXT PRIMARY KEY, area TEXT NOT NULL)"),
  Migration(
    id: 2, name: "create_readings",
    sql: """
      CREATE TABLE readings(
        address TEXT NOT NULL REFERENCES meters(address), di INTEGER NOT NULL,
        ts INTEGER NOT NULL, wh INTEGER NOT NULL, PRIMARY KEY (address, di, ts));
      CREATE INDEX readings_ts ON readings(ts);
      """),
]

private func tableNames(_ db: Connection) throws -> [String] {
  try db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .compactMap { $0.text(0) }
}

@Test func migratorAppliesInOrderRecordsThemAndIsIdempotent() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let migrator = Migrator(v1Migrations)
  #expect(try migrator.appliedIDs(db) == [])
  let before = Int64(Date().timeIntervalSince1970)
  #expect(try migrator.migrate(db) == [1, 2])
  #expect(try migrator.appliedIDs(db) == [1, 2])
  #expect(try tableNames(db) == ["meters", "readings", "schema_migrations"])
  let recorded = try db.query("SELECT id, name, applied_at FROM schema_migrations ORDER BY id")
  #expect(recorded.map { $0.int64(0) } == [1, 2])
  #expect(recorded.map { $0.text(1) } == ["create_meters", "create_readings"])
  for row in recorded {
    let appliedAt = try #require(row.int64(2))
    #expect(appliedAt >= before - 1 && appliedAt <= before + 60)
  }

  #expect(try migrator.migrate(db) == [])
  db.close()
  let reopened = try temp.open()
  #expect(try migrator.migrate(reopened) == [])
  #expect(try reopened.scalarInt("SELECT count(*) FROM schema_migrations") == 2)
}

@Test func migratorAppliesOnlyNewMigrationsOnUpgrade() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  #expect(try Migrator(Array(v1Migrations.prefix(1))).migrate(db) == [1])
  try db.run("INSERT INTO meters VALUES ('000000000001', 'A1')")
  #expect(try Migrator(v1Migrations).migrate(db) == [2])
  #expect(try db.scalarInt("SELECT count(*) FROM meters") == 1)
  #expect(try Migrator(v1Migrations).appliedIDs(db) == [1, 2])
}

@Test func failingMigrationRollsBackAndIsNotRecorded() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let broken =
    v1Migrations + [
      Migration(
        id: 3, name: "add_tariffs",
        sql: """
          CREATE TABLE tariffs(id INTEGER PRIMARY KEY);
          ALTER TABLE meters ADD COLUMN tariff INTEGER;
          INSERT INTO no_such_table VALUES (1);
          """)
    ]
  let error = try #require(expectSQLiteError { _ = try Migrator(broken).migrate(db) })
  #expect(error.code == .error)
  #expect(error.message.hasPrefix("migration 3 (add_tariffs) failed: "))
  #expect(error.message.contains("no such table: no_such_table"))
  #expect(error.sql?.contains("CREATE TABLE tariffs") == true)
  #expect(error.description.contains("migration 3 (add_tariffs)"))

  #expect(!db.isInTransaction)
  #expect(try Migrator(broken).appliedIDs(db) == [1, 2])
  #expect(try tableNames(db) == ["meters", "readings", "schema_migrations"])
  let columns = try db.query("PRAGMA table_info(meters)").compactMap { $0.text(1) }
  #expect(columns == ["address", "area"])
  #expect(try db.scalarInt("PRAGMA synchronous") == 1)

  // Fixed in the next build: applies cleanly from where it stopped.
  let fixed =
    v1Migrations + [
      Migration(id: 3, name: "add_tariffs", sql: "CREATE TABLE tariffs(id INTEGER PRIMARY KEY)")
    ]
  #expect(try Migrator(fixed).migrate(db) == [3])
}

@Test func databaseWithAnUnknownNewerMigrationIsRefused() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let newer =
    v1Migrations + [
      Migration(id: 3, name: "create_outbox", sql: "CREATE TABLE outbox(seq INTEGER PRIMARY KEY)")
    ]
  #expect(try Migrator(newer).migrate(db) == [1, 2, 3])
  let error = try #require(expectSQLiteError { _ = try Migrator(v1Migrations).migrate(db) })
  #expect(error.message.contains("migration 3 (create_outbox)"))
  #expect(error.message.contains("newer"))
  #expect(try Migrator(v1Migrations).appliedIDs(db) == [1, 2, 3])
}

@Test func editedMigrationNameIsRefused() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  _ = try Migrator(v1Migrations).migrate(db)
  let edited = [
    v1Migrations[0],
    Migration(id: 2, name: "create_readings_v2", sql: "CREATE TABLE readings2(a)"),
  ]
  let error = try #require(expectSQLiteError { _ = try Migrator(edited).migrate(db) })
  #expect(error.message.contains("'create_readings'"))
  #expect(error.message.contains("'create_readings_v2'"))
  #expect(try tableNames(db) == ["meters", "readings", "schema_migrations"])
}

@Test func malformedMigrationListIsAMisuse() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let lists: [[Migration]] = [
    [Migration(id: 2, name: "starts_at_two", sql: "SELECT 1")],
    [v1Migrations[1], v1Migrations[0]],
    [v1Migrations[0], Migration(id: 3, name: "gap", sql: "SELECT 1")],
    [Migration(id: 1, name: "", sql: "SELECT 1")],
  ]
  for list in lists {
    #expect(expectSQLiteError { _ = try Migrator(list).migrate(db) }?.code == .misuse)
  }
  #expect(try tableNames(db) == [])
}

@Test func migrationThatEndsItsOwnTransactionIsRefused() throws {
  let temp = try TempDatabase()
  let db = try temp.open()
  let migrations = [Migration(id: 1, name: "sneaky", sql: "CREATE TABLE a(x); COMMIT")]
  let error = expectSQLiteError { _ = try Migrator(migrations).migrate(db) }
  #expect(error?.code == .misuse)
  #expect(try Migrator(migrations).appliedIDs(db) == [])
}

// MARK: - Integrity

/// Writes a healthy database of several dozen pages and closes it (the WAL is checkpointed and
/// removed on close). Returns the page size.
private func writeHealthyDatabase(_ temp: TempDatabase) throws -> Int {
  let db = try temp.open()
  try db.execute(
    "CREATE TABLE readings(id INTEGER PRIMARY KEY, address TEXT, payload BLOB); "
      + "CREATE INDEX readings_address ON readings(address)")
  try db.transaction { () throws(SQLiteError) in
    let insert = try db.prepare("INSERT INTO readings(address, payload) VALUES (?, ?)")
    for i in 0..<400 {
      try insert.bind([
        .text("meter-" + String(i % 37)), .blob(pseudoRandomBytes(count: 300, seed: UInt64(i + 1))),
      ])
      _ = try insert.step()
    }
  }
  #expect(try db.quickCheck() == [])
  #expect(try db.integrityCheck() == [])
  let pageSize = Int(try #require(try db.scalarInt("PRAGMA page_size")))
  #expect(try db.scalarInt("PRAGMA page_count") ?? 0 > 20)
  db.close()
  #expect(!FileManager.default.fileExists(atPath: temp.path + "-wal"))
  return pageSize
}

@Test func corruptPagesAreDetectedAtOpenAndTheErrorNamesThePath() throws {
  let temp = try TempDatabase()
  let pageSize = try writeHealthyDatabase(temp)
  var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: temp.path)))
  // Keep page 1 (header and schema); overwrite pages 2...9 with garbage.
  let garbage = pseudoRandomBytes(count: pageSize * 8, seed: 0xBAD)
  bytes.replaceSubrange(pageSize..<(pageSize * 9), with: garbage)
  try temp.write(bytes)

  let error = try #require(expectSQLiteError { _ = try temp.open() })
  #expect(error.code == .corrupt)
  #expect(error.message.hasPrefix(temp.path + " failed PRAGMA quick_check: "))
  #expect(error.message.contains("Page 2: "))
  #expect(error.path == temp.path)

  // Without the check it opens, and the explicit checks report the damage one line each.
  let unchecked = try temp.open { $0.verifyIntegrity = false }
  let problems = try unchecked.quickCheck()
  #expect(problems.count > 1)
  #expect(problems.allSatisfy { !$0.contains("\n") && !$0.hasPrefix("***") })
  #expect(try !unchecked.integrityCheck().isEmpty)
}

@Test func damagedSchemaPageIsDetectedAtOpen() throws {
  let temp = try TempDatabase()
  let pageSize = try writeHealthyDatabase(temp)
  var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: temp.path)))
  // Keep the 100-byte file header; overwrite the rest of page 1 (the schema b-tree).
  bytes.replaceSubrange(100..<pageSize, with: pseudoRandomBytes(count: pageSize - 100, seed: 3))
  try temp.write(bytes)
  let error = try #require(expectSQLiteError { _ = try temp.open() })
  #expect(error.code == .corrupt)
  #expect(error.message.hasPrefix(temp.path + " "))
}

@Test func healthyDatabasePassesTheCheckAtOpen() throws {
  let temp = try TempDatabase()
  _ = try writeHealthyDatabase(temp)
  let db = try temp.open()
  #expect(try db.scalarInt("SELECT count(*) FROM readings") == 400)
}

@Test func fileOfRandomBytesIsRefusedAsNotADatabase() throws {
  let temp = try TempDatabase()
  try temp.write(pseudoRandomBytes(count: 16_384, seed: 42))
  let error = try #require(expectSQLiteError { _ = try temp.open() })
  #expect(error.code == .notADatabase)
  #expect(error.message.contains(temp.path))
  #expect(
    error.description
      == "SQLite error 26 (file is not a database): " + temp.path
      + " is not a SQLite database: file is not a database — in: PRAGMA quick_check(5)")
}

@Test func textFileIsRefusedAsNotADatabase() throws {
  let temp = try TempDatabase()
  let text = String(
    repeating: "device_id = concentrator-0001\nbroker = mqtts://hq:8883\n", count: 200)
  try temp.write(Array(text.utf8))
  let error = try #require(expectSQLiteError { _ = try temp.open() })
  #expect(error.code == .notADatabase)
  #expect(error.message.contains(temp.path))
  // The file was not changed (no WAL switch, nothing written).
  #expect(try Data(contentsOf: URL(fileURLWithPath: temp.path)) == Data(text.utf8))
}

@Test func emptyFileIsANewEmptyDatabase() throws {
  let temp = try TempDatabase()
  try temp.write([])
  let db = try temp.open()
  #expect(try db.quickCheck() == [])
}

import CSQLite

/// How hard a transaction's commit is pushed to disk.
public enum Durability: Equatable, Sendable {
  /// `PRAGMA synchronous=NORMAL` (the connection default): in WAL mode a commit survives an
  /// application crash, but may be lost on power failure.
  case normal
  /// `PRAGMA synchronous=FULL` for this transaction: the commit is on disk before `commit()`
  /// returns. For money and command transactions (DESIGN.md §5, §7).
  case full
}

/// One SQLite database connection; owns exactly one `sqlite3*`.
///
/// Not thread-safe: it is opened with `SQLITE_OPEN_NOMUTEX` and must be used from one thread
/// (the agent's poll loop). The handle is closed by `close()` or `deinit` (`sqlite3_close_v2`).
public final class Connection {
  /// How to open a connection.
  public struct Options: Sendable {
    /// Open with `SQLITE_OPEN_READONLY`; the file must exist and WAL mode is not set.
    public var readOnly = false
    /// How long to wait on a lock held by another connection (`sqlite3_busy_timeout`).
    public var busyTimeoutMilliseconds: Int32 = 5000
    /// Set `PRAGMA journal_mode=WAL` (ignored when `readOnly`).
    public var walMode = true
    /// Run `PRAGMA quick_check` at open and refuse a database that fails it.
    public var verifyIntegrity = true

    public init() {}
  }

  /// The database file this connection was opened on.
  public let path: String
  /// The options this connection was opened with.
  public let options: Options

  private var handle: OpaquePointer?
  /// The `synchronous` level to restore when the current `.full` transaction ends.
  private var synchronousToRestore: Int64?
  /// `sqlite3_total_changes64` when the open transaction began: a commit that changed
  /// no row wrote nothing, so it tells the write observer nothing.
  private var changesAtBegin: Int64 = 0

  /// Told the outcome of each write that reaches the disk, for a caller that watches
  /// the disk's health: `nil` after a `COMMIT` of a transaction that changed rows, or
  /// a changing statement outside a transaction, succeeded; the error when `BEGIN`,
  /// `COMMIT` or a statement that may change the database failed. Called on the
  /// connection's thread right after the outcome; it must not use the connection.
  public var writeObserver: ((SQLiteError?) -> Void)? = nil

  /// Hands a write's outcome to `writeObserver`.
  func observeWrite(_ error: SQLiteError?) {
    writeObserver?(error)
  }

  /// Opens (creating unless read-only) the database at `path` and configures it.
  ///
  /// Wraps `sqlite3_open_v2` (with `SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE`), then sets
  /// extended result codes, the busy timeout, `SQLITE_DBCONFIG_DEFENSIVE`, optionally runs
  /// `PRAGMA quick_check`, then `journal_mode=WAL`, `foreign_keys=ON` and `synchronous=NORMAL`.
  /// On any failure the handle is closed before the error is thrown.
  /// - Parameters:
  ///   - path: a file path (`:memory:` works, without WAL).
  ///   - options: see `Options`.
  /// - Throws: `SQLiteError` — `.cantOpen` when the file cannot be opened, `.notADatabase` or
  ///   `.corrupt` (message naming `path` and the first problems) when the integrity check fails.
  public init(path: String, options: Options = Options()) throws(SQLiteError) {
    self.path = path
    self.options = options
    var db: OpaquePointer? = nil
    var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
    flags |= options.readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
    let rc = path.withCString { sqlite3_open_v2($0, &db, flags, nil) }
    if rc != SQLITE_OK {
      var error = SQLiteError.fromConnection(db, rc: rc, sql: nil, path: path)
      error = error.prefixed("cannot open database " + path + ": ")
      sqlite3_close_v2(db)
      throw error
    }
    handle = db
    do throws(SQLiteError) {
      try configure()
    } catch {
      close()
      throw error
    }
  }

  deinit {
    close()
  }

  private func configure() throws(SQLiteError) {
    let db = try openHandle()
    sqlite3_extended_result_codes(db, 1)
    try check(sqlite3_busy_timeout(db, options.busyTimeoutMilliseconds))
    try check(csqlite_db_config_defensive(db, 1))
    if options.verifyIntegrity {
      try verifyIntegrityAtOpen()
    }
    if options.walMode && !options.readOnly {
      let mode = try query("PRAGMA journal_mode=WAL").first?.text(0) ?? ""
      let inMemory = path.isEmpty || sameBytes(path, ":memory:")
      if !sameBytes(mode, "wal") && !inMemory {
        throw SQLiteError(
          code: .error,
          message: "cannot switch " + path + " to WAL mode (journal_mode is '" + mode + "')",
          sql: "PRAGMA journal_mode=WAL", path: path)
      }
    }
    try execute("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL")
  }

  /// Runs `quick_check` and turns anything but "ok" into an error naming the file.
  private func verifyIntegrityAtOpen() throws(SQLiteError) {
    let sql = "PRAGMA quick_check(5)"
    let problems: [String]
    do throws(SQLiteError) {
      problems = try checkLines(sql)
    } catch {
      if error.code == .notADatabase {
        throw error.prefixed(path + " is not a SQLite database: ")
      }
      throw error.prefixed(path + " failed the integrity check: ")
    }
    if problems.isEmpty { return }
    var summary = ""
    for (i, line) in problems.enumerated() {
      if i > 0 { summary += "; " }
      summary += line
    }
    throw SQLiteError(
      code: .corrupt, message: path + " failed PRAGMA quick_check: " + summary, sql: sql,
      path: path)
  }

  // MARK: - The seam

  /// The open handle, or a `.misuse` error once the connection is closed.
  func openHandle(sql: String? = nil) throws(SQLiteError) -> OpaquePointer {
    guard let handle else {
      throw SQLiteError(
        code: .misuse, message: "the connection to " + path + " is closed", sql: sql, path: path)
    }
    return handle
  }

  /// Throws the connection's current error unless `rc` is `SQLITE_OK`.
  /// - Throws: `SQLiteError` with `sqlite3_errmsg` read at once.
  func check(_ rc: Int32, sql: String? = nil) throws(SQLiteError) {
    if rc != SQLITE_OK {
      throw SQLiteError.fromConnection(handle, rc: rc, sql: sql, path: path)
    }
  }

  // MARK: - Running SQL

  /// Runs one or more `;`-separated statements that take no parameters and return no rows
  /// (schema, pragmas). Wraps `sqlite3_exec`.
  /// - Parameter sql: the SQL text.
  /// - Throws: `SQLiteError` carrying `sql`.
  public func execute(_ sql: String) throws(SQLiteError) {
    let db = try openHandle(sql: sql)
    var errorText: UnsafeMutablePointer<CChar>? = nil
    let rc = sql.withCString { sqlite3_exec(db, $0, nil, nil, &errorText) }
    if rc != SQLITE_OK {
      var error = SQLiteError.fromConnection(db, rc: rc, sql: sql, path: path)
      if let errorText {
        error = SQLiteError(
          code: error.code, extendedCode: rc, message: String(cString: errorText), sql: sql,
          path: path)
      }
      sqlite3_free(errorText)
      throw error
    }
  }

  /// Compiles exactly one SQL statement. Wraps `sqlite3_prepare_v2`.
  /// - Parameter sql: one statement; `?` or `?NNN` parameters are bound later.
  /// - Returns: a statement that keeps this connection alive.
  /// - Throws: `SQLiteError` carrying `sql`; `.misuse` when `sql` holds no statement or more
  ///   than one.
  public func prepare(_ sql: String) throws(SQLiteError) -> Statement {
    let db = try openHandle(sql: sql)
    var stmt: OpaquePointer? = nil
    var extra = false
    let rc = sql.withCString { text -> Int32 in
      var tail: UnsafePointer<CChar>? = nil
      let rc = sqlite3_prepare_v2(db, text, -1, &stmt, &tail)
      if rc == SQLITE_OK, let tail, tail.pointee != 0 {
        // Whitespace and comments compile to no statement; anything else is a second one.
        var next: OpaquePointer? = nil
        if sqlite3_prepare_v2(db, tail, -1, &next, nil) != SQLITE_OK || next != nil {
          extra = true
        }
        sqlite3_finalize(next)
      }
      return rc
    }
    if rc != SQLITE_OK {
      let error = SQLiteError.fromConnection(db, rc: rc, sql: sql, path: path)
      sqlite3_finalize(stmt)
      throw error
    }
    guard let stmt else {
      throw SQLiteError(code: .misuse, message: "no SQL statement to prepare", sql: sql, path: path)
    }
    if extra {
      sqlite3_finalize(stmt)
      throw SQLiteError(
        code: .misuse,
        message: "prepare takes one statement; use execute() for several", sql: sql, path: path)
    }
    return Statement(connection: self, handle: stmt, sql: sql)
  }

  /// Prepares `sql`, binds `values`, and steps it to completion, ignoring any rows.
  /// - Parameters:
  ///   - sql: one statement.
  ///   - values: one value per parameter, in order.
  /// - Throws: `SQLiteError` carrying `sql`.
  public func run(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) {
    let statement = try prepare(sql)
    try statement.bind(values)
    while try statement.step() {}
  }

  /// Prepares `sql`, binds `values`, and returns all rows.
  /// - Parameters:
  ///   - sql: one statement.
  ///   - values: one value per parameter, in order.
  /// - Returns: the rows, values copied.
  /// - Throws: `SQLiteError` carrying `sql`.
  public func query(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> [Row] {
    let statement = try prepare(sql)
    try statement.bind(values)
    var rows: [Row] = []
    while try statement.step() {
      rows.append(statement.row())
    }
    return rows
  }

  /// The first column of the first row as an integer (SQLite's conversion for non-integers).
  /// - Parameters:
  ///   - sql: one statement.
  ///   - values: one value per parameter, in order.
  /// - Returns: `nil` when there is no row or the value is NULL.
  /// - Throws: `SQLiteError` carrying `sql`.
  public func scalarInt(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> Int64? {
    let statement = try prepare(sql)
    try statement.bind(values)
    guard try statement.step(), statement.columnCount > 0, !statement.isNull(at: 0) else {
      return nil
    }
    return statement.int64(at: 0)
  }

  // MARK: - Transactions

  /// Runs `body` in a `BEGIN IMMEDIATE` transaction: commits when it returns, rolls back when
  /// it throws (or when `COMMIT` fails).
  /// - Parameters:
  ///   - durability: `.full` sets `synchronous=FULL` for this transaction only.
  ///   - body: the work; must not begin or end transactions itself.
  /// - Returns: what `body` returned.
  /// - Throws: the error of `body`, `BEGIN` or `COMMIT`.
  public func transaction<R>(
    _ durability: Durability = .normal, _ body: () throws(SQLiteError) -> R
  ) throws(SQLiteError) -> R {
    try begin(durability)
    let result: R
    do throws(SQLiteError) {
      result = try body()
    } catch {
      rollback()
      throw error
    }
    try commit()
    return result
  }

  /// Starts a `BEGIN IMMEDIATE` transaction (takes the write lock now, so a busy database fails
  /// here, not halfway through). Pair with `commit()` or `rollback()`.
  /// - Parameter durability: `.full` sets `synchronous=FULL` until the transaction ends.
  /// - Throws: `.misuse` when a transaction is already open; `.busy` when another connection
  ///   holds the write lock beyond the busy timeout.
  public func begin(_ durability: Durability = .normal) throws(SQLiteError) {
    let db = try openHandle(sql: "BEGIN IMMEDIATE")
    if sqlite3_get_autocommit(db) == 0 {
      throw SQLiteError(
        code: .misuse, message: "a transaction is already open", sql: "BEGIN IMMEDIATE",
        path: path)
    }
    if durability == .full {
      let previous = try scalarInt("PRAGMA synchronous") ?? 1
      try execute("PRAGMA synchronous=FULL")
      synchronousToRestore = previous
    }
    do throws(SQLiteError) {
      try execute("BEGIN IMMEDIATE")
    } catch {
      restoreSynchronous()
      observeWrite(error)
      throw error
    }
    changesAtBegin = sqlite3_total_changes64(db)
  }

  /// Commits the open transaction. If `COMMIT` fails, the transaction is rolled back, so after
  /// `commit()` no transaction is open either way.
  /// - Throws: `SQLiteError` from `COMMIT`.
  public func commit() throws(SQLiteError) {
    let changed = handle.map { sqlite3_total_changes64($0) != changesAtBegin } ?? false
    do throws(SQLiteError) {
      try execute("COMMIT")
    } catch {
      rollback()
      observeWrite(error)
      throw error
    }
    restoreSynchronous()
    if changed { observeWrite(nil) }
  }

  /// Rolls back the open transaction, if any, and restores `synchronous`. Never fails: a
  /// rollback error leaves nothing a caller could do.
  public func rollback() {
    if let handle, sqlite3_get_autocommit(handle) == 0 {
      sqlite3_exec(handle, "ROLLBACK", nil, nil, nil)
    }
    restoreSynchronous()
  }

  private func restoreSynchronous() {
    guard let level = synchronousToRestore, let handle else { return }
    synchronousToRestore = nil
    let sql = "PRAGMA synchronous=" + String(level)
    sqlite3_exec(handle, sql, nil, nil, nil)
  }

  /// Whether a transaction is open (`sqlite3_get_autocommit` is 0).
  public var isInTransaction: Bool {
    guard let handle else { return false }
    return sqlite3_get_autocommit(handle) == 0
  }

  // MARK: - State

  /// The rowid of the last successful INSERT on this connection (`sqlite3_last_insert_rowid`).
  public var lastInsertRowID: Int64 {
    guard let handle else { return 0 }
    return sqlite3_last_insert_rowid(handle)
  }

  /// Rows changed by the last INSERT, UPDATE or DELETE (`sqlite3_changes64`).
  public var changes: Int {
    guard let handle else { return 0 }
    return Int(sqlite3_changes64(handle))
  }

  /// Whether the connection is still open.
  public var isOpen: Bool {
    handle != nil
  }

  // MARK: - Integrity

  /// Runs `PRAGMA quick_check` (O(N), checks pages and b-trees but not index contents).
  /// - Returns: `[]` when the database is ok, else the problems reported (at most 100), one
  ///   per element.
  /// - Throws: `SQLiteError` when the check cannot run (e.g. `.notADatabase`).
  public func quickCheck() throws(SQLiteError) -> [String] {
    try checkLines("PRAGMA quick_check")
  }

  /// Runs `PRAGMA integrity_check` (slower; also checks index contents and constraints).
  /// - Returns: `[]` when the database is ok, else the problems reported (at most 100), one
  ///   per element.
  /// - Throws: `SQLiteError` when the check cannot run (e.g. `.notADatabase`).
  public func integrityCheck() throws(SQLiteError) -> [String] {
    try checkLines("PRAGMA integrity_check")
  }

  /// Runs a check pragma. SQLite reports "ok", or rows that may hold several problems separated
  /// by newlines under a "*** in database main ***" heading: returns one problem per element.
  /// A check that hits damage it cannot step over (`SQLITE_CORRUPT`) reports it as its last
  /// problem instead of throwing away the lines it already found.
  private func checkLines(_ sql: String) throws(SQLiteError) -> [String] {
    let statement = try prepare(sql)
    var rows: [String] = []
    do throws(SQLiteError) {
      while try statement.step() {
        rows.append(statement.text(at: 0) ?? "")
      }
    } catch {
      if error.code != .corrupt { throw error }
      rows.append(error.message)
    }
    if rows.count == 1 && sameBytes(rows[0], "ok") { return [] }
    var problems: [String] = []
    for row in rows {
      for line in splitLines(row) where !line.utf8.starts(with: "*** in database ".utf8) {
        problems.append(line)
      }
    }
    return problems.isEmpty ? rows : problems
  }

  /// Keeps the write-ahead log file when the connection closes, instead of
  /// checkpointing and deleting it (`sqlite3_file_control` with
  /// `SQLITE_FCNTL_PERSIST_WAL`).
  /// - Returns: whether SQLite took the setting.
  @discardableResult
  public func keepWriteAheadLogAtClose() -> Bool {
    guard let handle else { return false }
    var keep: Int32 = 1
    return sqlite3_file_control(handle, "main", SQLITE_FCNTL_PERSIST_WAL, &keep) == SQLITE_OK
  }

  // MARK: - Closing

  /// Closes the connection (`sqlite3_close_v2`). Idempotent. Statements still alive keep the
  /// underlying handle until they are released; using them afterwards throws `.misuse`.
  public func close() {
    guard let db = handle else { return }
    handle = nil
    synchronousToRestore = nil
    sqlite3_close_v2(db)
  }
}

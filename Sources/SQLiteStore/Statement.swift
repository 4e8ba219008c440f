import CSQLite

/// One prepared statement; owns exactly one `sqlite3_stmt*`, finalized in `deinit`.
///
/// Keeps its `Connection` alive. Same thread rule as the connection. Column readers are valid
/// after `step()` returned `true`; text and blob values are copied out at once.
public final class Statement {
  /// The SQL this statement was prepared from.
  public let sql: String
  /// The connection that prepared it.
  public let connection: Connection
  private let handle: OpaquePointer

  init(connection: Connection, handle: OpaquePointer, sql: String) {
    self.connection = connection
    self.handle = handle
    self.sql = sql
  }

  deinit {
    sqlite3_finalize(handle)
  }

  /// Throws the connection's current error unless `rc` is `SQLITE_OK`.
  private func check(_ rc: Int32) throws(SQLiteError) {
    if rc != SQLITE_OK {
      throw SQLiteError.fromConnection(
        sqlite3_db_handle(handle), rc: rc, sql: sql, path: connection.path)
    }
  }

  private func ensureOpen() throws(SQLiteError) {
    _ = try connection.openHandle(sql: sql)
  }

  // MARK: - Binding

  /// Resets the statement, clears old bindings, and binds `values` to parameters 1...n.
  /// - Parameter values: exactly one value per parameter.
  /// - Throws: `.range` when the count differs from `sqlite3_bind_parameter_count`.
  public func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
    try ensureOpen()
    reset()
    sqlite3_clear_bindings(handle)
    let expected = sqlite3_bind_parameter_count(handle)
    if values.count != Int(expected) {
      throw SQLiteError(
        code: .range,
        message: "statement takes " + String(expected) + " parameters, " + String(values.count)
          + " given",
        sql: sql, path: connection.path)
    }
    for (i, value) in values.enumerated() {
      try bind(value, at: Int32(i + 1))
    }
  }

  /// Binds one value (`sqlite3_bind_*`; text and blobs with `SQLITE_TRANSIENT`, so SQLite
  /// copies them). Text may contain NUL; an empty text or blob binds as empty, not NULL.
  /// Resets the statement first (binding a running statement is misuse); other bindings stay.
  /// - Parameters:
  ///   - value: the value.
  ///   - index: the 1-based parameter index.
  /// - Throws: `.range` for a bad index, `.tooBig` for an oversized value.
  public func bind(_ value: SQLiteValue, at index: Int32) throws(SQLiteError) {
    try ensureOpen()
    reset()
    let rc: Int32
    switch value {
    case .null:
      rc = sqlite3_bind_null(handle, index)
    case .integer(let v):
      rc = sqlite3_bind_int64(handle, index, v)
    case .real(let v):
      rc = sqlite3_bind_double(handle, index, v)
    case .text(var s):
      rc = s.withUTF8 { bytes -> Int32 in
        if bytes.isEmpty {
          // A NULL pointer would bind NULL; bind a real empty string.
          return "".withCString {
            sqlite3_bind_text64(handle, index, $0, 0, csqlite_transient(), UInt8(SQLITE_UTF8))
          }
        }
        let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
        return sqlite3_bind_text64(
          handle, index, base, UInt64(bytes.count), csqlite_transient(), UInt8(SQLITE_UTF8))
      }
    case .blob(let bytes):
      if bytes.isEmpty {
        // A NULL pointer would bind NULL; bind a zero-length blob.
        rc = sqlite3_bind_zeroblob(handle, index, 0)
      } else {
        rc = bytes.withUnsafeBytes { raw in
          sqlite3_bind_blob64(
            handle, index, raw.baseAddress, UInt64(raw.count), csqlite_transient())
        }
      }
    }
    try check(rc)
  }

  // MARK: - Stepping

  /// Advances to the next row (`sqlite3_step`).
  /// - Returns: `true` when a row is available, `false` when the statement is done.
  /// - Throws: `SQLiteError` with `sqlite3_errmsg` and this statement's SQL; call `reset()`
  ///   (or `bind`) before stepping again.
  public func step() throws(SQLiteError) -> Bool {
    try ensureOpen()
    let db = sqlite3_db_handle(handle)
    // Only a statement that may change the database is a write for the observer.
    let writes = connection.writeObserver != nil && sqlite3_stmt_readonly(handle) == 0
    let changesBefore = writes ? sqlite3_total_changes64(db) : 0
    let rc = sqlite3_step(handle)
    if rc == SQLITE_ROW { return true }
    if rc == SQLITE_DONE {
      // Outside a transaction the statement committed on its own (autocommit).
      if writes && sqlite3_get_autocommit(db) != 0 && sqlite3_total_changes64(db) != changesBefore {
        connection.observeWrite(nil)
      }
      return false
    }
    let error = SQLiteError.fromConnection(db, rc: rc, sql: sql, path: connection.path)
    if writes { connection.observeWrite(error) }
    throw error
  }

  /// Rewinds the statement so it can run again; bindings are kept (`sqlite3_reset`).
  public func reset() {
    sqlite3_reset(handle)
  }

  // MARK: - Columns

  /// Number of result columns (`sqlite3_column_count`).
  public var columnCount: Int32 {
    sqlite3_column_count(handle)
  }

  /// The name of column `i` (`sqlite3_column_name`), or "" when unavailable.
  public func columnName(_ i: Int32) -> String {
    guard let name = sqlite3_column_name(handle, i) else { return "" }
    return String(cString: name)
  }

  /// Column `i` of the current row, in its storage class (`sqlite3_column_type`).
  public func value(at i: Int32) -> SQLiteValue {
    switch sqlite3_column_type(handle, i) {
    case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, i))
    case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, i))
    case SQLITE_TEXT: return .text(text(at: i) ?? "")
    case SQLITE_BLOB: return .blob(blob(at: i))
    default: return .null
    }
  }

  /// Column `i` as an integer, converted by SQLite (`sqlite3_column_int64`; NULL is 0).
  public func int64(at i: Int32) -> Int64 {
    sqlite3_column_int64(handle, i)
  }

  /// Column `i` as a double, converted by SQLite (`sqlite3_column_double`; NULL is 0).
  public func double(at i: Int32) -> Double {
    sqlite3_column_double(handle, i)
  }

  /// Column `i` as text (copied; embedded NULs kept), or `nil` when NULL
  /// (`sqlite3_column_text` + `sqlite3_column_bytes`).
  public func text(at i: Int32) -> String? {
    if sqlite3_column_type(handle, i) == SQLITE_NULL { return nil }
    guard let bytes = sqlite3_column_text(handle, i) else { return "" }
    let count = Int(sqlite3_column_bytes(handle, i))
    return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
  }

  /// Column `i` as bytes (copied; `[]` for NULL or an empty blob)
  /// (`sqlite3_column_blob` + `sqlite3_column_bytes`).
  public func blob(at i: Int32) -> [UInt8] {
    guard let bytes = sqlite3_column_blob(handle, i) else { return [] }
    let count = Int(sqlite3_column_bytes(handle, i))
    // One memcpy (batch payloads are kilobytes; a generic sequence copy goes byte by byte).
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
      if let base = buffer.baseAddress, count > 0 {
        UnsafeMutableRawPointer(base).copyMemory(from: bytes, byteCount: count)
      }
      initialized = count
    }
  }

  /// Whether column `i` is NULL.
  public func isNull(at i: Int32) -> Bool {
    sqlite3_column_type(handle, i) == SQLITE_NULL
  }

  /// All columns of the current row, copied.
  public func row() -> Row {
    let count = columnCount
    var values: [SQLiteValue] = []
    values.reserveCapacity(Int(count))
    var i: Int32 = 0
    while i < count {
      values.append(value(at: i))
      i += 1
    }
    return Row(values)
  }
}

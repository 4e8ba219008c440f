import CSQLite

/// An error from SQLite, or from this module's own checks (integrity, migrations, misuse).
///
/// The message is captured from `sqlite3_errmsg` at the moment of failure, before any other
/// call on the connection can overwrite it.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
  /// The primary result code.
  public let code: SQLiteResultCode
  /// The extended result code (e.g. 2067 = `SQLITE_CONSTRAINT_UNIQUE`); equals `code.rawValue`
  /// when there is no extended code.
  public let extendedCode: Int32
  /// What went wrong, as SQLite or this module said it.
  public let message: String
  /// The SQL being prepared or run, when there was one.
  public let sql: String?
  /// The database file, when known.
  public let path: String?

  /// Makes an error, e.g. for failures that do not come from a C call.
  /// - Parameters:
  ///   - code: the primary code to report (`.corrupt` for a failed integrity check, ...).
  ///   - extendedCode: the extended code; defaults to `code.rawValue`.
  ///   - message: a sentence naming what failed.
  ///   - sql: the SQL involved, if any.
  ///   - path: the database file, if any.
  public init(
    code: SQLiteResultCode, extendedCode: Int32? = nil, message: String, sql: String? = nil,
    path: String? = nil
  ) {
    self.code = code
    self.extendedCode = extendedCode ?? code.rawValue
    self.message = message
    self.sql = sql
    self.path = path
  }

  /// "SQLite error 19 (constraint failed): UNIQUE constraint failed: t.a — in: INSERT ... —
  /// database: /var/lib/gridedge/agent.db" (the path is left out when the message starts with it).
  public var description: String {
    var text = "SQLite error " + String(code.rawValue) + " (" + code.description + "): " + message
    if let sql { text += " — in: " + sql }
    if let path, !message.utf8.starts(with: path.utf8) { text += " — database: " + path }
    return text
  }

  /// The same error with `prefix` put in front of its message (code, SQL and path kept).
  public func prefixed(_ prefix: String) -> SQLiteError {
    SQLiteError(
      code: code, extendedCode: extendedCode, message: prefix + message, sql: sql, path: path)
  }

  /// The error for result code `rc` returned by a call on `db`, with `sqlite3_errmsg(db)` read
  /// at once. When the connection's last error is not `rc` (the call did not set it), the message
  /// is `sqlite3_errstr(rc)`.
  static func fromConnection(
    _ db: OpaquePointer?, rc: Int32, sql: String?, path: String?
  ) -> SQLiteError {
    var message: String
    if let db, sqlite3_extended_errcode(db) == rc || sqlite3_errcode(db) == rc & 0xFF,
      let text = sqlite3_errmsg(db)
    {
      message = String(cString: text)
    } else {
      message = SQLiteResultCode(rawValue: rc).description
    }
    if message.isEmpty { message = SQLiteResultCode(rawValue: rc).description }
    return SQLiteError(
      code: SQLiteResultCode(rawValue: rc), extendedCode: rc, message: message, sql: sql,
      path: path)
  }
}

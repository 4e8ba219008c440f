import CSQLite

/// A primary SQLite result code (`SQLITE_OK`, `SQLITE_CONSTRAINT`, ...).
///
/// Extended codes (`SQLITE_CONSTRAINT_UNIQUE`, ...) are reduced to their primary code (the low 8
/// bits); `SQLiteError.extendedCode` keeps the full value.
public struct SQLiteResultCode: Equatable, Hashable, Sendable, CustomStringConvertible {
  /// The primary result code (0...255).
  public let rawValue: Int32

  /// Makes a result code from a primary or extended code; extended bits are dropped.
  /// - Parameter rawValue: a value returned by a SQLite function.
  public init(rawValue: Int32) {
    self.rawValue = rawValue & 0xFF
  }

  /// The English text of the code, from `sqlite3_errstr` (e.g. "constraint failed").
  public var description: String {
    guard let text = sqlite3_errstr(rawValue) else { return "unknown error" }
    return String(cString: text)
  }

  public static let ok = SQLiteResultCode(rawValue: SQLITE_OK)
  public static let error = SQLiteResultCode(rawValue: SQLITE_ERROR)
  public static let `internal` = SQLiteResultCode(rawValue: SQLITE_INTERNAL)
  public static let permission = SQLiteResultCode(rawValue: SQLITE_PERM)
  public static let abort = SQLiteResultCode(rawValue: SQLITE_ABORT)
  public static let busy = SQLiteResultCode(rawValue: SQLITE_BUSY)
  public static let locked = SQLiteResultCode(rawValue: SQLITE_LOCKED)
  public static let noMemory = SQLiteResultCode(rawValue: SQLITE_NOMEM)
  public static let readOnly = SQLiteResultCode(rawValue: SQLITE_READONLY)
  public static let interrupt = SQLiteResultCode(rawValue: SQLITE_INTERRUPT)
  public static let ioError = SQLiteResultCode(rawValue: SQLITE_IOERR)
  public static let corrupt = SQLiteResultCode(rawValue: SQLITE_CORRUPT)
  public static let notFound = SQLiteResultCode(rawValue: SQLITE_NOTFOUND)
  public static let full = SQLiteResultCode(rawValue: SQLITE_FULL)
  public static let cantOpen = SQLiteResultCode(rawValue: SQLITE_CANTOPEN)
  public static let `protocol` = SQLiteResultCode(rawValue: SQLITE_PROTOCOL)
  public static let schema = SQLiteResultCode(rawValue: SQLITE_SCHEMA)
  public static let tooBig = SQLiteResultCode(rawValue: SQLITE_TOOBIG)
  public static let constraint = SQLiteResultCode(rawValue: SQLITE_CONSTRAINT)
  public static let mismatch = SQLiteResultCode(rawValue: SQLITE_MISMATCH)
  public static let misuse = SQLiteResultCode(rawValue: SQLITE_MISUSE)
  public static let auth = SQLiteResultCode(rawValue: SQLITE_AUTH)
  public static let range = SQLiteResultCode(rawValue: SQLITE_RANGE)
  public static let notADatabase = SQLiteResultCode(rawValue: SQLITE_NOTADB)
  public static let row = SQLiteResultCode(rawValue: SQLITE_ROW)
  public static let done = SQLiteResultCode(rawValue: SQLITE_DONE)
}

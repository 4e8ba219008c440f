/// One SQLite value: the five storage classes.
public enum SQLiteValue: Equatable, Sendable {
  case null
  case integer(Int64)
  case real(Double)
  case text(String)
  case blob([UInt8])

  /// Equality as SQLite's BINARY collation sees it: text compares byte for byte (no Unicode
  /// normalization, so no Unicode tables are needed in Embedded builds), reals by `==`.
  public static func == (lhs: SQLiteValue, rhs: SQLiteValue) -> Bool {
    switch (lhs, rhs) {
    case (.null, .null): return true
    case (.integer(let a), .integer(let b)): return a == b
    case (.real(let a), .real(let b)): return a == b
    case (.text(let a), .text(let b)): return sameBytes(a, b)
    case (.blob(let a), .blob(let b)): return a == b
    default: return false
    }
  }
}

extension SQLiteValue: ExpressibleByNilLiteral, ExpressibleByIntegerLiteral,
  ExpressibleByFloatLiteral, ExpressibleByStringLiteral
{
  public init(nilLiteral: ()) { self = .null }
  public init(integerLiteral value: Int64) { self = .integer(value) }
  public init(floatLiteral value: Double) { self = .real(value) }
  public init(stringLiteral value: String) { self = .text(value) }
}

/// One result row, its values copied out of the statement.
public struct Row: Equatable, Sendable {
  /// The column values, in column order.
  public let values: [SQLiteValue]

  /// Makes a row from values (mostly for tests and fakes).
  public init(_ values: [SQLiteValue]) {
    self.values = values
  }

  /// The value of column `i` (0-based). Traps when `i` is out of range, like an array.
  public subscript(i: Int) -> SQLiteValue {
    values[i]
  }

  /// Column `i` when it is an integer, else `nil` (NULL or another storage class).
  public func int64(_ i: Int) -> Int64? {
    if case .integer(let v) = values[i] { return v }
    return nil
  }

  /// Column `i` when it is a real, else `nil`.
  public func double(_ i: Int) -> Double? {
    if case .real(let v) = values[i] { return v }
    return nil
  }

  /// Column `i` when it is text, else `nil`.
  public func text(_ i: Int) -> String? {
    if case .text(let v) = values[i] { return v }
    return nil
  }

  /// Column `i` when it is a blob, else `nil`.
  public func blob(_ i: Int) -> [UInt8]? {
    if case .blob(let v) = values[i] { return v }
    return nil
  }

  /// Whether column `i` is NULL.
  public func isNull(_ i: Int) -> Bool {
    values[i] == .null
  }
}

/// Byte-wise string equality (UTF-8), avoiding Unicode normalization.
func sameBytes(_ a: String, _ b: String) -> Bool {
  a.utf8.elementsEqual(b.utf8)
}

/// The non-empty lines of `text`, split at "\n" byte-wise (no Unicode tables needed).
func splitLines(_ text: String) -> [String] {
  var lines: [String] = []
  var current: [UInt8] = []
  for byte in text.utf8 {
    if byte == 0x0A {
      if !current.isEmpty { lines.append(String(decoding: current, as: UTF8.self)) }
      current.removeAll(keepingCapacity: true)
    } else {
      current.append(byte)
    }
  }
  if !current.isEmpty { lines.append(String(decoding: current, as: UTF8.self)) }
  return lines
}

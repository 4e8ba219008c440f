/// Packed BCD and the DL/T 645-2007 data-field offset: the building blocks every
/// frame field is made of.
public enum BCD {
  /// Decodes packed BCD bytes, least significant byte first (the order DL/T 645
  /// sends every multi-byte field in).
  /// - Returns: nil when a nibble is not a decimal digit.
  public static func decodeLittleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64? {
    var value: UInt64 = 0
    for byte in bytes.reversed() {
      let high = byte >> 4
      let low = byte & 0x0F
      guard high <= 9, low <= 9 else { return nil }
      value = value * 100 + UInt64(high) * 10 + UInt64(low)
    }
    return value
  }

  /// Encodes `value` as `count` packed BCD bytes, least significant byte first.
  /// - Returns: nil when `value` needs more than `2 × count` digits.
  public static func encodeLittleEndian(_ value: UInt64, count: Int) -> [UInt8]? {
    var rest = value
    var out: [UInt8] = []
    out.reserveCapacity(count)
    for _ in 0..<count {
      let pair = rest % 100
      rest /= 100
      out.append(UInt8(pair / 10) << 4 | UInt8(pair % 10))
    }
    return rest == 0 ? out : nil
  }
}

/// DL/T 645-2007 adds 0x33 to every data byte on the wire (and subtracts it on receipt).
public enum DataOffset {
  public static let value: UInt8 = 0x33

  /// Wire form of data bytes.
  public static func apply(_ bytes: [UInt8]) -> [UInt8] { bytes.map { $0 &+ value } }

  /// Plain form of wire data bytes.
  public static func remove(_ bytes: ArraySlice<UInt8>) -> [UInt8] { bytes.map { $0 &- value } }
}

/// The frame checksum: the sum modulo 256 of every byte from the first 0x68
/// through the last data byte.
public func dlt645Checksum(_ bytes: ArraySlice<UInt8>) -> UInt8 {
  var sum: UInt8 = 0
  for b in bytes { sum = sum &+ b }
  return sum
}

/// Packed BCD and the DL/T 645-2007 data-field offset: the building blocks every
/// frame field is made of.
public enum BCD {
  /// Decodes packed BCD bytes, least significant byte first (the order DL/T 645
  /// sends every multi-byte field in).
  /// - Returns: nil when a nibble is not a decimal digit, or when there are more than
  ///   9 bytes (18 digits; more would not fit in 64 bits).
  public static func decodeLittleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64? {
    guard bytes.count <= 9 else { return nil }
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

  /// Decodes packed BCD whose most significant byte (the last one sent) carries the
  /// sign in bit D7 — the DL/T 645-2007 form of currents and powers (XXX.XXX A,
  /// XX.XXXX kW): D7 = 1 means the reverse direction.
  /// - Returns: nil when `bytes` is empty or longer than 9 bytes, or a digit nibble is
  ///   not decimal.
  public static func decodeSignedLittleEndian(_ bytes: ArraySlice<UInt8>) -> Int64? {
    guard !bytes.isEmpty, bytes.count <= 9 else { return nil }
    var magnitude = Array(bytes)
    let top = magnitude.count - 1
    let negative = magnitude[top] & 0x80 != 0
    magnitude[top] &= 0x7F
    guard let value = decodeLittleEndian(magnitude[...]) else { return nil }
    return negative ? -Int64(value) : Int64(value)
  }

  /// Encodes `value` as `count` packed BCD bytes with the sign in bit D7 of the
  /// most significant byte (see `decodeSignedLittleEndian`).
  /// - Returns: nil when the magnitude needs more than `2 × count − 1` digits or the
  ///   top digit is above 7 (it shares its nibble with the sign bit).
  public static func encodeSignedLittleEndian(_ value: Int64, count: Int) -> [UInt8]? {
    guard count > 0, var out = encodeLittleEndian(value.magnitude, count: count) else { return nil }
    guard out[count - 1] & 0x80 == 0 else { return nil }
    if value < 0 { out[count - 1] |= 0x80 }
    return out
  }

  /// The index (into `bytes`) of the first byte with a nibble above 9, or nil when
  /// every nibble is a decimal digit.
  public static func firstInvalidIndex<C: Collection>(_ bytes: C) -> C.Index?
  where C.Element == UInt8 {
    bytes.firstIndex { $0 >> 4 > 9 || $0 & 0x0F > 9 }
  }

  /// Decodes one packed BCD byte (0x59 → 59).
  /// - Returns: nil when a nibble is not a decimal digit.
  public static func decodeByte(_ byte: UInt8) -> Int? {
    let high = byte >> 4
    let low = byte & 0x0F
    guard high <= 9, low <= 9 else { return nil }
    return Int(high) * 10 + Int(low)
  }

  /// Encodes 0...99 as one packed BCD byte (59 → 0x59).
  /// - Precondition: `value` is in 0...99.
  public static func encodeByte(_ value: Int) -> UInt8 {
    precondition((0...99).contains(value), "BCD.encodeByte: value out of 0...99")
    return UInt8(value / 10) << 4 | UInt8(value % 10)
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

/// Hexadecimal text for error messages and descriptions (Embedded Swift has no
/// `String(format:)`).
enum Hex {
  private static let alphabet: [UInt8] = Array("0123456789ABCDEF".utf8)

  /// `0x1F` style text for one byte.
  static func byte(_ value: UInt8) -> String {
    "0x" + pair(value)
  }

  /// Two upper-case hex digits for one byte, without a prefix.
  static func pair(_ value: UInt8) -> String {
    String(decoding: [alphabet[Int(value >> 4)], alphabet[Int(value & 0x0F)]], as: UTF8.self)
  }

  /// `00 01 FF 00` style text: bytes separated by spaces.
  static func bytes<C: Collection>(_ values: C) -> String where C.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(values.count * 3)
    for value in values {
      if !out.isEmpty { out.append(0x20) }
      out.append(alphabet[Int(value >> 4)])
      out.append(alphabet[Int(value & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Upper-case hex digits of `value`, left-padded with zeros to `width` digits.
  static func digits(_ value: UInt64, width: Int) -> String {
    var out = [UInt8](repeating: 0x30, count: width)
    var rest = value
    var index = width - 1
    while index >= 0 {
      out[index] = alphabet[Int(rest & 0x0F)]
      rest >>= 4
      index -= 1
    }
    return String(decoding: out, as: UTF8.self)
  }
}

/// Base64url without padding (RFC 4648 §5, as JOSE uses it: RFC 7515 §2).
///
/// Decoding is strict, so that one byte string has exactly one text form: padding
/// (`=`), characters outside `A–Z a–z 0–9 - _` (including whitespace and the `+` `/`
/// of plain base64), an impossible length (4n + 1) and non-zero unused bits in the
/// last character are all refused.
public enum Base64URL {
  /// The unpadded base64url text of `bytes`.
  public static func encode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count * 4 + 2) / 3)
    var index = bytes.startIndex
    var remaining = bytes.count
    while remaining > 0 {
      let b0 = UInt32(bytes[index])
      index = bytes.index(after: index)
      var group = b0 << 16
      if remaining > 1 {
        group |= UInt32(bytes[index]) << 8
        index = bytes.index(after: index)
      }
      if remaining > 2 {
        group |= UInt32(bytes[index])
        index = bytes.index(after: index)
      }
      // 1 input byte gives 2 characters, 2 give 3, 3 give 4.
      let characters = min(remaining, 3) + 1
      for i in 0..<characters {
        out.append(symbol(UInt8(truncatingIfNeeded: group >> UInt32(18 - 6 * i)) & 0x3F))
      }
      remaining -= min(remaining, 3)
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Decodes unpadded base64url text.
  /// - Parameter text: the encoded text, as bytes (e.g. a slice of a JWS).
  /// - Returns: the decoded bytes (empty for empty text).
  /// - Throws: `Base64URLError` saying what is wrong and at which offset.
  public static func decode<Text: Collection>(_ text: Text) throws(Base64URLError) -> [UInt8]
  where Text.Element == UInt8 {
    let count = text.count
    var out: [UInt8] = []
    out.reserveCapacity(count * 3 / 4)
    var group: UInt32 = 0
    var filled = 0
    var last: UInt8 = 0
    for (offset, character) in text.enumerated() {
      guard let value = value(of: character) else {
        if character == UInt8(ascii: "=") { throw Base64URLError(.padding(offset: offset)) }
        throw Base64URLError(.invalidCharacter(offset: offset, byte: character))
      }
      last = value
      group = group << 6 | UInt32(value)
      filled += 1
      if filled == 4 {
        out.append(UInt8(truncatingIfNeeded: group >> 16))
        out.append(UInt8(truncatingIfNeeded: group >> 8))
        out.append(UInt8(truncatingIfNeeded: group))
        group = 0
        filled = 0
      }
    }
    switch filled {
    case 0:
      break
    case 2:
      // 12 bits carry one byte: the last character's low 4 bits are unused.
      guard last & 0x0F == 0 else { throw Base64URLError(.nonCanonical) }
      out.append(UInt8(truncatingIfNeeded: group >> 4))
    case 3:
      // 18 bits carry two bytes: the last character's low 2 bits are unused.
      guard last & 0x03 == 0 else { throw Base64URLError(.nonCanonical) }
      out.append(UInt8(truncatingIfNeeded: group >> 10))
      out.append(UInt8(truncatingIfNeeded: group >> 2))
    default:
      throw Base64URLError(.impossibleLength(count))
    }
    return out
  }

  /// Decodes unpadded base64url text.
  /// - Throws: `Base64URLError` saying what is wrong and at which offset.
  public static func decode(_ text: String) throws(Base64URLError) -> [UInt8] {
    try decode(text.utf8)
  }

  /// The character for a 6-bit value.
  private static func symbol(_ value: UInt8) -> UInt8 {
    switch value {
    case 0..<26: return 0x41 + value  // A-Z
    case 26..<52: return 0x61 + value - 26  // a-z
    case 52..<62: return 0x30 + value - 52  // 0-9
    case 62: return 0x2D  // -
    default: return 0x5F  // _
    }
  }

  /// The 6-bit value of a character, nil when it is not in the alphabet.
  private static func value(of character: UInt8) -> UInt8? {
    switch character {
    case 0x41...0x5A: return character - 0x41
    case 0x61...0x7A: return character - 0x61 + 26
    case 0x30...0x39: return character - 0x30 + 52
    case 0x2D: return 62
    case 0x5F: return 63
    default: return nil
    }
  }
}

/// Text that is not strict, unpadded base64url.
public struct Base64URLError: Error, CustomStringConvertible, Equatable, Sendable {
  fileprivate enum Kind: Equatable, Sendable {
    case padding(offset: Int)
    case invalidCharacter(offset: Int, byte: UInt8)
    case impossibleLength(Int)
    case nonCanonical
  }

  private let kind: Kind

  fileprivate init(_ kind: Kind) { self.kind = kind }

  public var description: String {
    switch kind {
    case .padding(let offset):
      return "padding '=' at offset " + String(offset) + " (base64url here is unpadded)"
    case .invalidCharacter(let offset, let byte):
      let shown =
        byte >= 0x21 && byte <= 0x7E
        ? " '" + String(decoding: [byte], as: UTF8.self) + "'" : ""
      return "invalid character 0x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        + shown + " at offset " + String(offset)
    case .impossibleLength(let count):
      return "length " + String(count) + " is impossible (4n + 1 characters)"
    case .nonCanonical:
      return "the last character has non-zero unused bits (not the canonical encoding)"
    }
  }
}

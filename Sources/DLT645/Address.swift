/// A meter's communication address: 12 decimal digits, sent as 6 packed BCD bytes
/// least significant byte first (A0 … A5).
///
/// `rawValue` holds the 12 digits as hex nibbles, most significant first, so the
/// address printed on the nameplate reads the same in hex: 000012345678 is
/// `0x0000_1234_5678`. A nibble 0xA is a wildcard (the standard's AAH fill for
/// shortened addressing, and AA AA AA AA AA AA for "whoever is on the line", as in
/// read address 0x13); 99 99 99 99 99 99 is the broadcast address.
public struct Address: Hashable, Sendable, CustomStringConvertible {
  /// The 12 digits as nibbles, most significant first (see the type's documentation).
  public let rawValue: UInt64

  /// 99 99 99 99 99 99: every meter, for broadcast commands (broadcast time); meters
  /// do not reply.
  public static let broadcast = Address(unchecked: 0x9999_9999_9999)
  /// AA AA AA AA AA AA: any meter; used by read address (0x13) on a point-to-point line.
  public static let wildcard = Address(unchecked: 0xAAAA_AAAA_AAAA)

  private init(unchecked rawValue: UInt64) { self.rawValue = rawValue }

  /// An address from its digits as hex nibbles (`0x0000_1234_5678`).
  /// - Returns: nil when `rawValue` has more than 12 nibbles or a nibble is B–F.
  public init?(rawValue: UInt64) {
    guard rawValue >> 48 == 0 else { return nil }
    var rest = rawValue
    for _ in 0..<12 {
      guard rest & 0x0F <= 0x0A else { return nil }
      rest >>= 4
    }
    self.rawValue = rawValue
  }

  /// An address from its decimal number (12345678 is address 000012345678).
  /// - Returns: nil when `number` has more than 12 digits.
  public init?(number: UInt64) {
    guard number <= 999_999_999_999 else { return nil }
    var rest = number
    var raw: UInt64 = 0
    var shift: UInt64 = 0
    while rest > 0 {
      raw |= (rest % 10) << shift
      rest /= 10
      shift += 4
    }
    self.rawValue = raw
  }

  /// An address from text: 1 to 12 characters `0`–`9`, or `A`/`a` for a wildcard
  /// nibble. Shorter text is padded on the left with zeros, as the standard pads short
  /// addresses ("000012345678" and "12345678" are the same address).
  /// - Returns: nil for empty text, more than 12 characters, or any other character.
  public init?(_ text: String) {
    let utf8 = text.utf8
    guard !utf8.isEmpty, utf8.count <= 12 else { return nil }
    var raw: UInt64 = 0
    for c in utf8 {
      let nibble: UInt8
      switch c {
      case 0x30...0x39: nibble = c - 0x30
      case 0x41, 0x61: nibble = 0x0A
      default: return nil
      }
      raw = raw << 4 | UInt64(nibble)
    }
    self.rawValue = raw
  }

  /// The address from its six wire bytes A0 … A5 (least significant first).
  /// - Returns: nil unless there are exactly 6 bytes with every nibble 0–9 or A.
  public init?<C: Collection>(wireBytes: C) where C.Element == UInt8 {
    guard wireBytes.count == 6 else { return nil }
    var raw: UInt64 = 0
    var shift: UInt64 = 0
    for byte in wireBytes {
      guard Self.isValidByte(byte) else { return nil }
      raw |= UInt64(byte) << shift
      shift += 8
    }
    self.rawValue = raw
  }

  /// The six wire bytes A0 … A5, least significant first.
  public var wireBytes: [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(6)
    for i in 0..<6 { out.append(UInt8(truncatingIfNeeded: rawValue >> (8 * UInt64(i)))) }
    return out
  }

  /// True for 99 99 99 99 99 99.
  public var isBroadcast: Bool { rawValue == Self.broadcast.rawValue }

  /// True when any nibble is the 0xA wildcard.
  public var hasWildcard: Bool {
    var rest = rawValue
    for _ in 0..<12 {
      if rest & 0x0F == 0x0A { return true }
      rest >>= 4
    }
    return false
  }

  /// The address as a decimal number, or nil when it has a wildcard nibble.
  public var number: UInt64? {
    var value: UInt64 = 0
    var multiplier: UInt64 = 1
    var rest = rawValue
    for _ in 0..<12 {
      let nibble = rest & 0x0F
      guard nibble <= 9 else { return nil }
      value += nibble * multiplier
      multiplier *= 10
      rest >>= 4
    }
    return value
  }

  /// Whether a meter whose own address is `meter` answers a request sent to this
  /// address: every nibble equal, or a wildcard (0xA) nibble here. The broadcast
  /// address is not a pattern: check `isBroadcast` separately (meters obey broadcast
  /// commands without replying).
  public func matches(_ meter: Address) -> Bool {
    var pattern = rawValue
    var actual = meter.rawValue
    for _ in 0..<12 {
      let p = pattern & 0x0F
      if p != 0x0A && p != actual & 0x0F { return false }
      pattern >>= 4
      actual >>= 4
    }
    return true
  }

  /// The 12 characters as on the nameplate, most significant first, `A` for a
  /// wildcard nibble ("000012345678", "AAAAAAAAAAAA").
  public var description: String { Hex.digits(rawValue, width: 12) }

  /// True when both nibbles of a wire address byte are 0–9 or the 0xA wildcard.
  static func isValidByte(_ byte: UInt8) -> Bool {
    byte >> 4 <= 0x0A && byte & 0x0F <= 0x0A
  }
}

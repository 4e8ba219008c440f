import CLibc

/// Random numbers from the kernel (`getrandom(2)`), for ids and jitter.
public enum SecureRandom {
  /// Fills `count` bytes from `getrandom`. Blocks only before the kernel's pool is
  /// initialised at early boot.
  public static func bytes(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
      let n = out.withUnsafeMutableBytes { raw in
        getrandom(raw.baseAddress! + filled, count - filled, 0)
      }
      if n > 0 { filled += n } else if clibc_errno() != EINTR { break }
    }
    return out
  }

  /// A uniformly distributed 64-bit value.
  public static func uint64() -> UInt64 {
    var value: UInt64 = 0
    for byte in bytes(8) { value = value << 8 | UInt64(byte) }
    return value
  }

  /// A value in `0...upper` (upper ≥ 0), without modulo bias worth measuring for
  /// the small ranges used here (jitter in milliseconds).
  public static func upTo(_ upper: Int64) -> Int64 {
    guard upper > 0 else { return 0 }
    return Int64(uint64() % UInt64(upper + 1))
  }
}

/// Lower-case hexadecimal text of bytes.
public func hexString(_ bytes: [UInt8]) -> String {
  let digits: [UInt8] = Array("0123456789abcdef".utf8)
  var out: [UInt8] = []
  out.reserveCapacity(bytes.count * 2)
  for b in bytes {
    out.append(digits[Int(b >> 4)])
    out.append(digits[Int(b & 0x0F)])
  }
  return String(decoding: out, as: UTF8.self)
}

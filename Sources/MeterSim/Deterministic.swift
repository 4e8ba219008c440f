/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", 2014): a tiny generator whose whole output is a fixed function of
/// its 64-bit state, so a simulation seeded with `--seed N` is the same on every
/// run, build and architecture.
///
/// Not for secrets (that is `Runtime.SecureRandom`).
struct SplitMix64: Sendable {
  /// The generator's state; each `next()` moves it by the golden-ratio constant.
  private(set) var state: UInt64

  init(seed: UInt64) { state = seed }

  /// The next 64 pseudo-random bits.
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    return SplitMix64.finalize(state)
  }

  /// A value in `0..<bound` (bound > 0); the modulo bias is below 2⁻⁴⁰ for the small
  /// bounds used here.
  mutating func next(below bound: UInt64) -> UInt64 {
    next() % bound
  }

  /// A value in `range`.
  mutating func next(in range: ClosedRange<Int64>) -> Int64 {
    let width = UInt64(range.upperBound - range.lowerBound) + 1
    return range.lowerBound + Int64(next(below: width))
  }

  /// SplitMix64's output function: a bijective mix of all 64 bits.
  static func finalize(_ value: UInt64) -> UInt64 {
    var z = value
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A hash of three values: what a quantity that must depend only on (seed, meter,
/// time slot) is drawn from, whatever order the simulation asks in.
func mixHash(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
  var h = SplitMix64.finalize(a &+ 0x9E37_79B9_7F4A_7C15)
  h = SplitMix64.finalize(h ^ (b &* 0xC2B2_AE3D_27D4_EB4F))
  return SplitMix64.finalize(h ^ (c &* 0x1656_67B1_9E37_79F9))
}

/// ⌊a / b⌋ for b > 0 (Swift's `/` truncates toward zero).
func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
  let quotient = a / b
  return (a % b != 0 && a < 0) ? quotient - 1 : quotient
}

/// a mod b in 0..<b for b > 0.
func floorModulo(_ a: Int64, _ b: Int64) -> Int64 {
  let remainder = a % b
  return remainder < 0 ? remainder + b : remainder
}

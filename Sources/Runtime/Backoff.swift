/// Exponential backoff with full jitter (the delay is uniform in
/// `0 ... min(cap, base · 2^attempt)`), so that a fleet of concentrators that lost
/// the same broker does not reconnect in lockstep.
public struct Backoff: Sendable {
  public let baseMilliseconds: Int64
  public let capMilliseconds: Int64
  /// Failed attempts since the last success.
  public private(set) var attempt: Int = 0

  public init(baseMilliseconds: Int64, capMilliseconds: Int64) {
    precondition(baseMilliseconds > 0 && capMilliseconds >= baseMilliseconds)
    self.baseMilliseconds = baseMilliseconds
    self.capMilliseconds = capMilliseconds
  }

  /// The upper bound of the next delay: `min(cap, base · 2^attempt)`.
  public var currentCeiling: Int64 {
    var ceiling = baseMilliseconds
    var i = 0
    while i < attempt && ceiling < capMilliseconds {
      ceiling *= 2
      i += 1
    }
    return min(ceiling, capMilliseconds)
  }

  /// The next delay, drawn with `random(upper)` in `0...upper`; counts one attempt.
  public mutating func nextDelay(random: (Int64) -> Int64 = SecureRandom.upTo) -> Int64 {
    let delay = random(currentCeiling)
    attempt += 1
    return delay
  }

  /// Call after a success: the next failure starts from the base again.
  public mutating func reset() { attempt = 0 }
}

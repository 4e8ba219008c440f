/// A meter's real-time clock: the true (simulated) time plus an offset, drifting by
/// a fixed number of milliseconds per day.
///
/// `meterTime(atTrue:)` is `t + offset + (t − epoch) · drift / 86,400,000`, in
/// integers, non-decreasing in `t`; broadcast time (0x08) resets the offset and the
/// epoch. All times are unix milliseconds.
struct MeterClock: Sendable {
  /// Milliseconds in a day.
  static let day: Int64 = 86_400_000

  /// Meter time minus true time at `epoch`.
  private(set) var offset: Int64
  /// The true time the drift counts from (the last time the clock was set).
  private(set) var epoch: Int64
  /// Milliseconds the clock gains per day (negative: loses), within ±1 hour.
  let driftPerDay: Int64

  init(epoch: Int64, driftPerDay: Int64 = 0) {
    precondition(driftPerDay > -MeterClock.day / 24 && driftPerDay < MeterClock.day / 24)
    self.offset = 0
    self.epoch = epoch
    self.driftPerDay = driftPerDay
  }

  /// The meter's time at true time `t` (t ≥ the epoch).
  func meterTime(atTrue t: Int64) -> Int64 {
    t + offset + MeterClock.scale(t - epoch, by: driftPerDay, over: MeterClock.day)
  }

  /// The first true time at which the meter's clock shows `target` or later.
  func trueTime(whenMeterReaches target: Int64) -> Int64 {
    // Invert the linear map, then correct the integer rounding by stepping.
    var t =
      epoch
      + MeterClock.scale(target - offset - epoch, by: MeterClock.day, over: MeterClock.day + driftPerDay)
    if t < epoch { t = epoch }
    while meterTime(atTrue: t) < target { t += 1 }
    while t > epoch && meterTime(atTrue: t - 1) >= target { t -= 1 }
    return t
  }

  /// `value × numerator / denominator` (denominator > 0), truncated toward zero, with a
  /// 128-bit intermediate so that centuries of simulated time cannot overflow.
  static func scale(_ value: Int64, by numerator: Int64, over denominator: Int64) -> Int64 {
    let product = value.multipliedFullWidth(by: numerator)
    let (quotient, _) = denominator.dividingFullWidth(product)
    return quotient
  }

  /// Sets the clock so that it shows `meterTime` at true time `t` (broadcast time).
  mutating func set(meterTime: Int64, atTrue t: Int64) {
    offset = meterTime - t
    epoch = t
  }
}

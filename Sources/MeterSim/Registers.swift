/// Energy accumulated from power × time without losing anything to rounding: whole
/// watt-hours plus the rest in W·ms·‰ (3.6 × 10⁹ of them make one Wh), so that
/// stepping the same interval in one piece or in a thousand gives the same register.
struct EnergyAccumulator: Sendable {
  /// W·ms·‰ per Wh: 3,600,000 W·ms × 1,000 ‰.
  static let unitsPerWattHour: Int64 = 3_600_000_000

  /// Whole watt-hours.
  private(set) var wattHours: Int64
  /// The fraction of a watt-hour, in W·ms·‰ (0 ≤ rest < 3.6 × 10⁹).
  private(set) var rest: Int64 = 0

  init(wattHours: Int64) { self.wattHours = wattHours }

  /// Adds `ratePermille` (W × ‰, e.g. 500 W at a 1,000 ‰ factor = 500,000) for
  /// `milliseconds`.
  mutating func add(ratePermille: Int64, milliseconds: Int64) {
    rest += ratePermille * milliseconds
    if rest >= EnergyAccumulator.unitsPerWattHour {
      wattHours += rest / EnergyAccumulator.unitsPerWattHour
      rest %= EnergyAccumulator.unitsPerWattHour
    }
  }
}

/// One daily freeze (日冻结): the local date it was taken on (at 00:00) and the four
/// forward tariff registers then, in 0.01 kWh.
public struct DailyFreeze: Hashable, Sendable {
  /// Days since 1970-01-01 of the local date (the freeze time is 00:00 that day).
  public let day: Int64
  /// Sharp, peak, flat, valley in 0.01 kWh.
  public let tariffs: [Int64]

  /// The total register at the freeze: the sum of the tariffs, as the live total.
  public var total: Int64 { RegisterBank.wrap(tariffs[0] + tariffs[1] + tariffs[2] + tariffs[3]) }
}

/// A meter's energy registers: forward active per tariff, reverse active, and the
/// last 62 daily freezes.
///
/// The registers the meter reports are the tariff registers in 0.01 kWh (Wh / 10,
/// rounded down); the total is defined as their sum, so the tariffs add up to the
/// total exactly, as the brief asks (a real meter's total can differ from the sum by
/// a digit). Registers roll over at 999,999.99 kWh like a meter's display.
struct RegisterBank: Sendable {
  /// Daily freezes kept: the standard's 上1次 … 上62次.
  static let freezeCapacity = 62
  /// A register rolls over at 10⁸ × 0.01 kWh.
  static let rollover: Int64 = 100_000_000

  /// Forward active energy of tariffs sharp, peak, flat, valley (index 0…3).
  var forward: [EnergyAccumulator]
  /// Reverse active energy (total only).
  var reverse: EnergyAccumulator
  /// Freezes, oldest first; five values each: the day, then the four tariffs in
  /// 0.01 kWh (flat, so that 2,048 meters × 62 freezes stay near 2.5 MB).
  private var freezeValues: [UInt32] = []

  init(forwardWattHours: [Int64], reverseWattHours: Int64) {
    precondition(forwardWattHours.count == 4)
    forward = forwardWattHours.map { EnergyAccumulator(wattHours: $0) }
    reverse = EnergyAccumulator(wattHours: reverseWattHours)
  }

  /// `value` rolled over like a meter register.
  static func wrap(_ value: Int64) -> Int64 { floorModulo(value, rollover) }

  /// Register `index` (0…3) in 0.01 kWh.
  func tariffRegister(_ index: Int) -> Int64 { RegisterBank.wrap(forward[index].wattHours / 10) }

  /// The four tariff registers in 0.01 kWh.
  var tariffRegisters: [Int64] {
    [tariffRegister(0), tariffRegister(1), tariffRegister(2), tariffRegister(3)]
  }

  /// The forward total register in 0.01 kWh: the sum of the tariff registers.
  var forwardTotalRegister: Int64 {
    RegisterBank.wrap(tariffRegister(0) + tariffRegister(1) + tariffRegister(2) + tariffRegister(3))
  }

  /// The reverse total register in 0.01 kWh.
  var reverseTotalRegister: Int64 { RegisterBank.wrap(reverse.wattHours / 10) }

  /// The forward energy in whole Wh (the sum of the tariffs, not rolled over).
  var forwardWattHours: Int64 {
    forward[0].wattHours + forward[1].wattHours + forward[2].wattHours + forward[3].wattHours
  }

  /// How many freezes are kept (0…62).
  var freezeCount: Int { freezeValues.count / 5 }

  /// The local day of the newest freeze, if any.
  var lastFreezeDay: Int64? {
    freezeValues.isEmpty ? nil : Int64(freezeValues[freezeValues.count - 5])
  }

  /// The `previous`-th freeze back (1 = the last).
  func freeze(previous: Int) -> DailyFreeze? {
    guard previous >= 1, previous <= freezeCount else { return nil }
    let start = (freezeCount - previous) * 5
    return DailyFreeze(
      day: Int64(freezeValues[start]),
      tariffs: [
        Int64(freezeValues[start + 1]), Int64(freezeValues[start + 2]), Int64(freezeValues[start + 3]),
        Int64(freezeValues[start + 4]),
      ])
  }

  /// Takes a freeze for local day `day` unless one for that day or a later one exists
  /// (a clock set back over midnight does not freeze twice); drops the oldest beyond 62.
  mutating func freeze(day: Int64) {
    if let last = lastFreezeDay, last >= day { return }
    if freezeCount == RegisterBank.freezeCapacity { freezeValues.removeFirst(5) }
    freezeValues.append(UInt32(truncatingIfNeeded: day))
    for index in 0..<4 { freezeValues.append(UInt32(tariffRegister(index))) }
  }
}

/// Fee calculation: one meter reading interval and the customer's tier usage in,
/// charge lines and the new tier usage out. Pure: replaying the stored intervals
/// from a stored starting usage gives the same lines again.
///
/// The rules, in the order they are applied to an interval [start, end):
///
/// 1. **Reverse energy is not charged.** A negative amount (the total, or any one
///    register) is treated as zero for charging and for tier usage and reported in
///    `FeeResult.uncharged` for the anomaly rules. Zero energy gives no line.
/// 2. **Parts.** The interval is cut at every instant inside it where a new tariff
///    version takes effect (local midnight of its effective date) and where the
///    tier cycle restarts (local midnight of the reset day). Each part gets a
///    share of the energy (of each register separately) in proportion to its
///    duration (see rule 6), is priced by the version in force at its start, and
///    counts against the tier cycle it lies in. So a tariff change in the middle
///    of an interval is split by time, not decided by either end.
/// 3. **Registers.** With time-of-use pricing and register energies from the meter
///    (sharp, peak, flat, valley), each register is priced at its period's price:
///    the meter's own clock and period table decide the period. With only a total,
///    the total is attributed to the periods by the time each period occupies in
///    the part, by the tariff's schedule (rule 6). With flat pricing, registers
///    are added up and charged as one total (`ChargeLine.register == nil`).
/// 4. **Tiers.** The part's energy is placed after the usage so far in the cycle;
///    a block boundary crossed inside it splits it exactly, in Wh. When registers
///    are charged separately, each block's energy is shared among the registers in
///    proportion to what they have left (rule 6, blocks in order), so every
///    register is charged by the same mix of blocks. Usage from an earlier cycle
///    counts as zero; usage from a later cycle than the interval is an error
///    (intervals must be replayed in order).
/// 5. **Rounding**: one charge line per part, register and tier block with energy;
///    each line's money is `Money.charge` (energy × price, half-up to the fen) and
///    the result's total is the sum of the lines.
/// 6. **Proportional splits** in whole Wh: part k of `E` with weights w gets
///    ⌊E·W_k/W⌋ − ⌊E·W_{k−1}/W⌋, where W_k = w_1 + … + w_k and W = Σw. The parts
///    add up to `E` exactly and each is less than 1 Wh from the exact share; the
///    rounding remainder goes to the later parts, deterministically.

/// Energy per time-of-use register over an interval (the differences of DL/T 645
/// DI 00 01 01 00 … 00 01 04 00 between two readings).
public struct RegisterEnergy: Hashable, Sendable {
  public var sharp: Energy
  public var peak: Energy
  public var flat: Energy
  public var valley: Energy

  public init(sharp: Energy = .zero, peak: Energy = .zero, flat: Energy = .zero, valley: Energy = .zero) {
    self.sharp = sharp
    self.peak = peak
    self.flat = flat
    self.valley = valley
  }

  /// The energy of `period`'s register.
  public subscript(period: TimeOfUsePeriod) -> Energy {
    get {
      switch period {
      case .sharp: return sharp
      case .peak: return peak
      case .flat: return flat
      case .valley: return valley
      }
    }
    set {
      switch period {
      case .sharp: sharp = newValue
      case .peak: peak = newValue
      case .flat: flat = newValue
      case .valley: valley = newValue
      }
    }
  }
}

/// The energy the meter reports for an interval.
public enum IntervalEnergy: Hashable, Sendable {
  /// Only the total (forward active energy, DI 00 01 00 00).
  case total(Energy)
  /// Per time-of-use register; the charged total is their sum.
  case registers(RegisterEnergy)
}

/// The energy a meter measured between two readings.
public struct MeterInterval: Hashable, Sendable {
  /// Unix seconds of the earlier reading.
  public var start: Int64
  /// Unix seconds of the later reading; after `start`.
  public var end: Int64
  public var energy: IntervalEnergy

  public init(start: Int64, end: Int64, energy: IntervalEnergy) {
    self.start = start
    self.end = end
    self.energy = energy
  }
}

/// A customer's energy so far in the current tier cycle.
public struct TierUsage: Hashable, Sendable {
  /// The first day of the cycle the energy belongs to.
  public var cycleStart: CivilDate
  public var energy: Energy

  public init(cycleStart: CivilDate, energy: Energy) {
    self.cycleStart = cycleStart
    self.energy = energy
  }
}

/// One charge: energy of one register and tier block, in one part of an interval,
/// at one price.
public struct ChargeLine: Hashable, Sendable {
  /// The part of the interval the energy was attributed to (unix seconds, end exclusive).
  public var start: Int64
  public var end: Int64
  /// The id of the tariff version that priced it.
  public var tariffVersionID: String
  /// The time-of-use register; nil when the total was charged at a flat price.
  public var register: TimeOfUsePeriod?
  /// The tier block, 1-based; nil when the tariff is not tiered.
  public var tier: Int?
  public var energy: Energy
  /// Period price + tier increment.
  public var price: Price
  /// `Money.charge(for: energy, at: price)`.
  public var money: Money

  public init(
    start: Int64, end: Int64, tariffVersionID: String, register: TimeOfUsePeriod?, tier: Int?,
    energy: Energy, price: Price, money: Money
  ) {
    self.start = start
    self.end = end
    self.tariffVersionID = tariffVersionID
    self.register = register
    self.tier = tier
    self.energy = energy
    self.price = price
    self.money = money
  }
}

/// What charging one or more intervals produced.
public struct FeeResult: Hashable, Sendable {
  /// In time order; within a part by register (sharp … valley) then tier.
  public var lines: [ChargeLine]
  /// The usage after the intervals; the input usage when no tiered version applied,
  /// nil when there was none.
  public var tierUsage: TierUsage?
  /// Σ lines' money.
  public var total: Money
  /// Negative (reverse) energy that was not charged, as a positive amount.
  public var uncharged: Energy

  public init(lines: [ChargeLine], tierUsage: TierUsage?, total: Money, uncharged: Energy) {
    self.lines = lines
    self.tierUsage = tierUsage
    self.total = total
    self.uncharged = uncharged
  }

  /// The energy charged in each tier block (index 0 = tier 1); untiered lines are not counted.
  public var energyPerTier: [Energy] {
    var result: [Energy] = []
    for line in lines {
      guard let tier = line.tier else { continue }
      while result.count < tier { result.append(.zero) }
      result[tier - 1] = result[tier - 1] + line.energy
    }
    return result
  }
}

/// Charges meter intervals with a tariff book (see the rules at the top of this file).
public struct FeeCalculator: Sendable {
  public let tariffs: TariffBook
  /// The local time of the tariffs' dates, periods and tier cycles.
  public let offset: UTCOffset

  /// The longest interval accepted: 1,000 days.
  public static let maximumIntervalSeconds: Int64 = 1000 * 86_400

  public init(tariffs: TariffBook, offset: UTCOffset = .china) {
    self.tariffs = tariffs
    self.offset = offset
  }

  /// Charges one interval of a customer of `category`.
  /// - Parameters:
  ///   - interval: the meter's energy between two readings.
  ///   - category: chooses the tariff versions.
  ///   - tierUsage: the customer's usage in the tier cycle before the interval
  ///     (nil: none yet).
  /// - Returns: the charge lines, the new tier usage, the total and the uncharged reverse energy.
  /// - Throws: `FeeError` for an interval that ends before it starts or is longer than
  ///   `maximumIntervalSeconds`, a time with no tariff version in force, usage from a
  ///   later tier cycle, or an amount beyond 64 bits.
  public func charge(_ interval: MeterInterval, category: CustomerCategory, tierUsage: TierUsage?)
    throws(FeeError) -> FeeResult
  {
    guard interval.end > interval.start else {
      throw FeeError(.invalidInterval(start: interval.start, end: interval.end))
    }
    let (duration, durationOverflow) = interval.end.subtractingReportingOverflow(interval.start)
    guard !durationOverflow, duration <= FeeCalculator.maximumIntervalSeconds else {
      throw FeeError(.intervalTooLong(start: interval.start, end: interval.end))
    }

    // Rule 1: reverse energy is not charged.
    let raw: [Int64]
    let hasRegisters: Bool
    switch interval.energy {
    case .total(let energy):
      raw = [energy.wattHours]
      hasRegisters = false
    case .registers(let registers):
      raw = TimeOfUsePeriod.allCases.map { registers[$0].wattHours }
      hasRegisters = true
    }
    var uncharged: Int64 = 0
    var amounts: [Int64] = []
    for value in raw {
      if value < 0 {
        guard value != Int64.min else { throw FeeError(.overflow) }
        uncharged = try checkedAdd(uncharged, -value)
        amounts.append(0)
      } else {
        amounts.append(value)
      }
    }
    var sum: Int64 = 0
    for value in amounts { sum = try checkedAdd(sum, value) }

    // Rule 2: parts at version changes and tier cycle restarts.
    let parts = try cutIntoParts(interval, category: category)
    let weights = parts.map { $0.end - $0.start }
    var partAmounts = [[Int64]](repeating: [], count: parts.count)
    for value in amounts {
      for (index, share) in apportion(value, by: weights).enumerated() { partAmounts[index].append(share) }
    }

    var lines: [ChargeLine] = []
    var usage = tierUsage
    var total: Int64 = 0
    for (index, part) in parts.enumerated() {
      let version = part.version
      // Rule 3: what each charged register holds in this part.
      let registers: [TimeOfUsePeriod?]
      let energies: [Int64]
      switch version.pricing {
      case .flat:
        registers = [nil]
        var partSum: Int64 = 0
        for value in partAmounts[index] { partSum = try checkedAdd(partSum, value) }
        energies = [partSum]
      case .timeOfUse(let schedule, _):
        registers = TimeOfUsePeriod.allCases.map { Optional($0) }
        energies =
          hasRegisters
          ? partAmounts[index]
          : apportion(partAmounts[index][0], by: secondsPerPeriod(part.start, part.end, schedule))
      }

      // Rule 4: tier blocks.
      var cells: [[Int64]]  // [register][tier]
      var tierNumbers: [Int?]
      if let tiers = version.tiers {
        let cycleStart = tiers.cycle.cycleStart(containing: offset.localDateTime(fromUnix: part.start).date)
        var before = Energy.zero
        if let usage, usage.cycleStart == cycleStart {
          before = usage.energy
        } else if let usage, usage.cycleStart > cycleStart {
          throw FeeError(.usageFromLaterCycle(usage: usage.cycleStart, interval: cycleStart))
        }
        var partSum: Int64 = 0
        for value in energies { partSum = try checkedAdd(partSum, value) }
        guard let perTier = tiers.split(added: Energy(wattHours: partSum), after: before) else {
          throw FeeError(.overflow)
        }
        cells = shareTiers(perTier.map { $0.wattHours }, among: energies)
        tierNumbers = tiers.blocks.indices.map { $0 + 1 }
        usage = TierUsage(cycleStart: cycleStart, energy: Energy(wattHours: before.wattHours + partSum))
      } else {
        cells = energies.map { [$0] }
        tierNumbers = [nil]
      }

      // Rule 5: one line per register and tier with energy.
      for (registerIndex, register) in registers.enumerated() {
        for (tierIndex, tier) in tierNumbers.enumerated() {
          let energy = Energy(wattHours: cells[registerIndex][tierIndex])
          guard energy.wattHours > 0 else { continue }
          var price = version.periodPrice(register ?? .flat).tenThousandthsPerKilowattHour
          if let tier, let tiers = version.tiers {
            price = try checkedAdd(price, tiers.blocks[tier - 1].increment.tenThousandthsPerKilowattHour)
          }
          let money: Money
          do {
            money = try Money.charge(for: energy, at: Price(tenThousandthsPerKilowattHour: price))
          } catch {
            throw FeeError(.overflow)
          }
          total = try checkedAdd(total, money.fen)
          lines.append(
            ChargeLine(
              start: part.start, end: part.end, tariffVersionID: version.id, register: register, tier: tier,
              energy: energy, price: Price(tenThousandthsPerKilowattHour: price), money: money))
        }
      }
    }
    return FeeResult(
      lines: lines, tierUsage: usage, total: Money(fen: total), uncharged: Energy(wattHours: uncharged))
  }

  /// Charges `intervals` in order, each starting from the tier usage the previous one
  /// left: the same as calling `charge(_:category:tierUsage:)` for each in turn and
  /// concatenating the lines.
  /// - Throws: `FeeError` as the single-interval form does, for the first interval that fails.
  public func charge(_ intervals: [MeterInterval], category: CustomerCategory, tierUsage: TierUsage?)
    throws(FeeError) -> FeeResult
  {
    var result = FeeResult(lines: [], tierUsage: tierUsage, total: .zero, uncharged: .zero)
    for interval in intervals {
      let one = try charge(interval, category: category, tierUsage: result.tierUsage)
      result.lines += one.lines
      result.tierUsage = one.tierUsage
      result.total = Money(fen: try checkedAdd(result.total.fen, one.total.fen))
      result.uncharged = Energy(
        wattHours: try checkedAdd(result.uncharged.wattHours, one.uncharged.wattHours))
    }
    return result
  }

  /// A part of an interval with one tariff version and one tier cycle.
  private struct Part {
    var start: Int64
    var end: Int64
    var version: TariffVersion
  }

  /// Rule 2: the interval cut at version changes and tier cycle restarts.
  private func cutIntoParts(_ interval: MeterInterval, category: CustomerCategory) throws(FeeError) -> [Part]
  {
    var parts: [Part] = []
    var cursor = interval.start
    while cursor < interval.end {
      let local = offset.localDateTime(fromUnix: cursor)
      guard let version = tariffs.version(for: category, on: local.date) else {
        throw FeeError(.noTariff(category: category.code, at: local))
      }
      var partEnd = interval.end
      if let change = tariffs.nextChange(for: category, after: local.date) {
        partEnd = min(partEnd, offset.unixSeconds(startOf: change))
      }
      if let tiers = version.tiers {
        let next = tiers.cycle.nextCycleStart(after: tiers.cycle.cycleStart(containing: local.date))
        partEnd = min(partEnd, offset.unixSeconds(startOf: next))
      }
      parts.append(Part(start: cursor, end: partEnd, version: version))
      cursor = partEnd
    }
    return parts
  }

  /// Rule 3: seconds of each period (sharp … valley) in [start, end) by `schedule`.
  private func secondsPerPeriod(_ start: Int64, _ end: Int64, _ schedule: TimeOfUseSchedule) -> [Int64] {
    var seconds: [Int64] = [0, 0, 0, 0]
    var cursor = start
    while cursor < end {
      let local = offset.localDateTime(fromUnix: cursor)
      let day = schedule.daySchedule(month: local.date.month)
      let period = day.period(atSecondOfDay: local.secondOfDay)
      let untilSwitch = Int64(day.nextSwitchSecond(after: local.secondOfDay) - local.secondOfDay)
      let (next, overflow) = cursor.addingReportingOverflow(untilSwitch)
      let segmentEnd = overflow ? end : min(end, next)
      seconds[period.rawValue - 1] += segmentEnd - cursor
      cursor = segmentEnd
    }
    return seconds
  }
}

/// Rule 4: shares each tier's energy among the registers in proportion to what each
/// register has left, tiers in order. Row sums are `registers`, column sums `tiers`
/// (which must add up to the registers' sum).
/// - Returns: [register][tier].
func shareTiers(_ tiers: [Int64], among registers: [Int64]) -> [[Int64]] {
  var left = registers
  var cells = [[Int64]](repeating: [Int64](repeating: 0, count: tiers.count), count: registers.count)
  for (tierIndex, tierEnergy) in tiers.enumerated() where tierEnergy > 0 {
    let shares = apportion(tierEnergy, by: left)
    for registerIndex in registers.indices {
      cells[registerIndex][tierIndex] = shares[registerIndex]
      left[registerIndex] -= shares[registerIndex]
    }
  }
  return cells
}

/// Rule 6: splits `total` (≥ 0) in proportion to `weights` (≥ 0, Σ within Int64):
/// part k = ⌊total·W_k/W⌋ − ⌊total·W_{k−1}/W⌋. When every weight is zero, the last
/// part gets everything.
///
/// No part exceeds ⌈total·w_k/W⌉, so when `total ≤ W` no part exceeds its weight.
func apportion(_ total: Int64, by weights: [Int64]) -> [Int64] {
  guard !weights.isEmpty else { return [] }
  var sum: Int64 = 0
  for weight in weights { sum += weight }
  guard sum > 0 else {
    var parts = [Int64](repeating: 0, count: weights.count)
    parts[parts.count - 1] = total
    return parts
  }
  var parts: [Int64] = []
  parts.reserveCapacity(weights.count)
  var cumulative: Int64 = 0
  var allocated: Int64 = 0
  for weight in weights {
    cumulative += weight
    let product = UInt64(total).multipliedFullWidth(by: UInt64(cumulative))
    let (quotient, _) = UInt64(sum).dividingFullWidth(product)
    let upToHere = Int64(quotient)
    parts.append(upToHere - allocated)
    allocated = upToHere
  }
  return parts
}

/// a + b, or `FeeError` on overflow.
private func checkedAdd(_ a: Int64, _ b: Int64) throws(FeeError) -> Int64 {
  let (sum, overflow) = a.addingReportingOverflow(b)
  guard !overflow else { throw FeeError(.overflow) }
  return sum
}

/// An interval that cannot be charged.
public struct FeeError: Error, CustomStringConvertible, Equatable, Sendable {
  fileprivate enum Kind: Equatable, Sendable {
    case invalidInterval(start: Int64, end: Int64)
    case intervalTooLong(start: Int64, end: Int64)
    case noTariff(category: String, at: LocalDateTime)
    case usageFromLaterCycle(usage: CivilDate, interval: CivilDate)
    case overflow
  }

  fileprivate let kind: Kind

  fileprivate init(_ kind: Kind) { self.kind = kind }

  /// A stable identifier of the kind of problem.
  public var code: String {
    switch kind {
    case .invalidInterval: return "invalid-interval"
    case .intervalTooLong: return "interval-too-long"
    case .noTariff: return "no-tariff"
    case .usageFromLaterCycle: return "usage-from-later-cycle"
    case .overflow: return "overflow"
    }
  }

  public var description: String {
    switch kind {
    case .invalidInterval(let start, let end):
      return "interval ends (" + String(end) + ") before it starts (" + String(start) + ")"
    case .intervalTooLong(let start, let end):
      return "interval " + String(start) + "..." + String(end) + " is longer than 1000 days"
    case .noTariff(let category, let at):
      return "no '" + category + "' tariff version in force at " + at.isoText
    case .usageFromLaterCycle(let usage, let interval):
      return "tier usage of the cycle from " + usage.isoText + " is later than the interval's cycle from "
        + interval.isoText
    case .overflow:
      return "amount does not fit in 64 bits"
    }
  }
}

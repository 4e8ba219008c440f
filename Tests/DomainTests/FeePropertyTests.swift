import Testing

@testable import GridEdgeCore

/// Seeded random properties of `FeeCalculator` (SplitMix64, no external package).
@Suite struct FeePropertyTests {
  /// The tariff setups the properties run over.
  enum Setup: CaseIterable {
    /// Zhejiang tiers, annual, with a price change on 2028-07-01.
    case annualTiersWithChange
    /// Shenzhen time-of-use prices with Beijing's monthly tiers.
    case timeOfUseWithMonthlyTiers
    /// Shenzhen time-of-use prices, untiered.
    case timeOfUseOnly

    var calculator: FeeCalculator {
      switch self {
      case .annualTiersWithChange:
        return FeeCalculator(
          tariffs: try! TariffBook([
            FeeCalculationTests.zhejiangTiers(id: "A", from: day(2012, 7, 1), base: 5380),
            FeeCalculationTests.zhejiangTiers(id: "B", from: day(2028, 7, 1), base: 5580),
          ]))
      case .timeOfUseWithMonthlyTiers:
        let version = try! TariffVersion(
          id: "TOU-TIERS", category: .residential, effectiveFrom: day(2020, 1, 1),
          pricing: .timeOfUse(
            TimeOfUseSchedule(allYear: PublishedTariffs.peakValleyDay),
            PublishedTariffs.shenzhenCommercialPrices),
          tiers: TierSchedule(cycle: .monthly(resetDay: 1), blocks: PublishedTariffs.beijingMonthlyBlocks))
        return FeeCalculator(tariffs: try! TariffBook([version]))
      case .timeOfUseOnly:
        return FeeCalculator(
          tariffs: try! TariffBook([PublishedTariffs.shenzhenTimeOfUse(category: .residential)]))
      }
    }

    var tiers: TierSchedule? {
      calculator.tariffs.versions(for: .residential).first!.tiers
    }
  }

  static func randomEnergy(using generator: inout SeededGenerator) -> IntervalEnergy {
    func amount() -> Energy {
      // Mostly 0–20 kWh in 10 Wh steps; sometimes zero or reverse.
      switch Int.random(in: 0..<20, using: &generator) {
      case 0: return .zero
      case 1: return wh(-10 * Int64.random(in: 1...100, using: &generator))
      default: return wh(10 * Int64.random(in: 0...2000, using: &generator))
      }
    }
    if Bool.random(using: &generator) { return .total(amount()) }
    return .registers(RegisterEnergy(sharp: amount(), peak: amount(), flat: amount(), valley: amount()))
  }

  static func positiveSum(_ energy: IntervalEnergy) -> Int64 {
    switch energy {
    case .total(let e): return max(0, e.wattHours)
    case .registers(let r): return TimeOfUsePeriod.allCases.reduce(0) { $0 + max(0, r[$1].wattHours) }
    }
  }

  /// Energy per block when a cycle's usage grows from `before` to `after`, from the
  /// block bounds alone (the oracle).
  static func blocks(_ tiers: TierSchedule, from before: Int64, to after: Int64) -> [Int64] {
    var lower: Int64 = 0
    return tiers.blocks.map { block in
      let upper = block.upperBound?.wattHours ?? Int64.max
      defer { lower = upper }
      return min(max(after, lower), upper) - min(max(before, lower), upper)
    }
  }

  @Test(arguments: Setup.allCases)
  func randomSequencesChargeAsIntervalByIntervalAndConserveEnergy(setup: Setup) throws {
    let calculator = setup.calculator
    for seed in UInt64(1)...20 {
      var generator = SeededGenerator(seed: seed &* 7919 &+ UInt64(Setup.allCases.firstIndex(of: setup)!))
      // Around the year end, a month end and (for the first setup) the 2028-07-01 change.
      let origins = [cst(2027, 12, 20), cst(2028, 6, 25), cst(2028, 2, 25)]
      var cursor = origins[Int.random(in: 0..<origins.count, using: &generator)]
      var intervals: [MeterInterval] = []
      for _ in 0..<60 {
        let length = Int64.random(in: 60...(3 * 86_400), using: &generator)
        intervals.append(
          MeterInterval(start: cursor, end: cursor + length, energy: Self.randomEnergy(using: &generator)))
        cursor += length
      }
      let startUsage: TierUsage? =
        setup == .timeOfUseOnly ? nil : TierUsage(cycleStart: day(2027, 1, 1), energy: kwh(3000))

      let batch = try calculator.charge(intervals, category: .residential, tierUsage: startUsage)

      // Σ of the sequence = what one computes interval by interval.
      var lines: [ChargeLine] = []
      var usage = startUsage
      var total: Int64 = 0
      var uncharged: Int64 = 0
      for interval in intervals {
        let one = try calculator.charge(interval, category: .residential, tierUsage: usage)
        #expect(one.total.fen == one.lines.reduce(0) { $0 + $1.money.fen })
        lines += one.lines
        usage = one.tierUsage
        total += one.total.fen
        uncharged += one.uncharged.wattHours
      }
      #expect(batch.lines == lines)
      #expect(batch.tierUsage == usage)
      #expect(batch.total.fen == total)
      #expect(batch.uncharged.wattHours == uncharged)

      // Each line is rounded once; energy is conserved; lines stay inside their interval.
      // Each line lies in one tariff version and one tier cycle.
      for line in batch.lines {
        #expect(line.money == (try Money.charge(for: line.energy, at: line.price)))
        #expect(line.energy.wattHours > 0)
        #expect(line.start < line.end)
        let first = UTCOffset.china.localDateTime(fromUnix: line.start).date
        let last = UTCOffset.china.localDateTime(fromUnix: line.end - 1).date
        #expect(calculator.tariffs.version(for: .residential, on: first)?.id == line.tariffVersionID)
        #expect(calculator.tariffs.version(for: .residential, on: last)?.id == line.tariffVersionID)
        if let cycle = setup.tiers?.cycle {
          #expect(cycle.cycleStart(containing: first) == cycle.cycleStart(containing: last))
        }
      }
      let charged = batch.lines.reduce(Int64(0)) { $0 + $1.energy.wattHours }
      #expect(charged == intervals.reduce(Int64(0)) { $0 + Self.positiveSum($1.energy) })

      // Tiers: per cycle, the energy in each block is what the block bounds give for
      // the cycle's total.
      if let tiers = setup.tiers {
        var perCycle: [CivilDate: [Int64]] = [:]
        for line in batch.lines {
          let cycle = tiers.cycle.cycleStart(
            containing: UTCOffset.china.localDateTime(fromUnix: line.start).date)
          var row = perCycle[cycle] ?? [Int64](repeating: 0, count: tiers.blocks.count)
          row[line.tier! - 1] += line.energy.wattHours
          perCycle[cycle] = row
        }
        for (cycle, row) in perCycle {
          let before = cycle == startUsage?.cycleStart ? startUsage!.energy.wattHours : 0
          let expected = Self.blocks(tiers, from: before, to: before + row.reduce(0, +))
          #expect(row == expected, "cycle \(cycle.isoText), seed \(seed)")
        }
      }
    }
  }

  @Test(arguments: Setup.allCases)
  func splittingAnIntervalInTwoNeverChangesTheEnergyPerTier(setup: Setup) throws {
    let calculator = setup.calculator
    var generator = SeededGenerator(seed: 0xF00D &+ UInt64(Setup.allCases.firstIndex(of: setup)!))
    for _ in 0..<300 {
      // Inside one tier cycle and one tariff version: 2028-03-01 … 2028-03-31.
      let start = Int64.random(in: cst(2028, 3, 1)...cst(2028, 3, 20), using: &generator)
      let end = start + Int64.random(in: 2...(10 * 86_400), using: &generator)
      let cut = Int64.random(in: (start + 1)...(end - 1), using: &generator)
      let whole = Self.randomEnergy(using: &generator)
      // Split each amount at random (reverse amounts stay whole on the first half).
      func split(_ e: Energy) -> (Energy, Energy) {
        guard e.wattHours > 0 else { return (e, .zero) }
        let first = Int64.random(in: 0...e.wattHours, using: &generator)
        return (wh(first), wh(e.wattHours - first))
      }
      let first: IntervalEnergy
      let second: IntervalEnergy
      switch whole {
      case .total(let e):
        let (a, b) = split(e)
        first = .total(a)
        second = .total(b)
      case .registers(let r):
        var a = RegisterEnergy()
        var b = RegisterEnergy()
        for period in TimeOfUsePeriod.allCases { (a[period], b[period]) = split(r[period]) }
        first = .registers(a)
        second = .registers(b)
      }
      let usage: TierUsage? =
        setup == .timeOfUseOnly
        ? nil
        : TierUsage(
          cycleStart: setup.tiers!.cycle.cycleStart(containing: day(2028, 3, 15)),
          energy: wh(10 * Int64.random(in: 0...500_000, using: &generator)))

      let one = try calculator.charge(
        MeterInterval(start: start, end: end, energy: whole), category: .residential, tierUsage: usage)
      let two = try calculator.charge(
        [
          MeterInterval(start: start, end: cut, energy: first),
          MeterInterval(start: cut, end: end, energy: second),
        ],
        category: .residential, tierUsage: usage)
      #expect(one.energyPerTier == two.energyPerTier)
      #expect(one.tierUsage == two.tierUsage)
      #expect(
        one.lines.reduce(Int64(0)) { $0 + $1.energy.wattHours }
          == two.lines.reduce(Int64(0)) { $0 + $1.energy.wattHours })
    }
  }
}

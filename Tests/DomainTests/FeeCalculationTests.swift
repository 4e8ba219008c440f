import Testing

@testable import GridEdgeCore

/// Worked by hand from the published tariffs in `PublishedTariffs` (FeeTestSupport.swift).
/// Money: fen = Wh × (0.0001 CNY/kWh) / 100,000, rounded half-up once per line.
@Suite struct FeeCalculationTests {
  /// Zhejiang's tiers (annual, January 1) with another base price, from `from`.
  static func zhejiangTiers(id: String, from: CivilDate, base: Int64) -> TariffVersion {
    let published = PublishedTariffs.zhejiangResidentialTiers()
    return try! TariffVersion(
      id: id, category: .residential, effectiveFrom: from, pricing: .flat(price(base)), tiers: published.tiers
    )
  }

  let zhejiang = FeeCalculator(tariffs: try! TariffBook([PublishedTariffs.zhejiangResidentialTiers()]))
  let shenzhen = FeeCalculator(tariffs: try! TariffBook([PublishedTariffs.shenzhenTimeOfUse()]))

  func hour(_ start: Int64, _ energy: IntervalEnergy, hours: Int64 = 1) -> MeterInterval {
    MeterInterval(start: start, end: start + hours * 3600, energy: energy)
  }

  @Test func tierBoundaryCrossedInsideOneIntervalSplitsTheEnergyExactly() throws {
    // 2,759.5 kWh used this year; 10 kWh more crosses 2,760 kWh after 0.5 kWh.
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: wh(2_759_500))
    let result = try zhejiang.charge(
      hour(cst(2028, 5, 10, 10), .total(wh(10_000))), category: .residential, tierUsage: usage)
    // tier 1:   500 Wh × 0.5380 CNY/kWh =  26.9 fen → 27
    // tier 2: 9,500 Wh × 0.5880 CNY/kWh = 558.6 fen → 559
    #expect(result.lines.map(\.tier) == [1, 2])
    #expect(result.lines.map(\.energy) == [wh(500), wh(9500)])
    #expect(result.lines.map(\.price) == [price(5380), price(5880)])
    #expect(result.lines.map(\.money) == [fen(27), fen(559)])
    #expect(result.lines.allSatisfy { $0.register == nil && $0.tariffVersionID == "ZJ-RES" })
    #expect(result.total == fen(586))
    #expect(result.tierUsage == TierUsage(cycleStart: day(2028, 1, 1), energy: wh(2_769_500)))
    #expect(result.energyPerTier == [wh(500), wh(9500)])
  }

  @Test func energyExactlyAtATierBoundaryStaysInTheLowerTier() throws {
    // 2,760 kWh is still tier 1 ("2,761–4,800 kWh" is tier 2).
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: wh(2_759_000))
    let result = try zhejiang.charge(
      hour(cst(2028, 5, 10, 10), .total(wh(1000))), category: .residential, tierUsage: usage)
    #expect(result.lines.map(\.tier) == [1])
    let next = try zhejiang.charge(
      hour(cst(2028, 5, 10, 11), .total(wh(10))), category: .residential, tierUsage: result.tierUsage)
    #expect(next.lines.map(\.tier) == [2])
  }

  @Test func allThreeTiersInOneInterval() throws {
    // From 2,000 kWh, 3,000 kWh more: 760 kWh tier 1, 2,040 kWh tier 2, 200 kWh tier 3.
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: kwh(2000))
    let result = try zhejiang.charge(
      hour(cst(2028, 5, 10, 10), .total(kwh(3000))), category: .residential, tierUsage: usage)
    // 760,000 × 0.5380 = 40,888 fen; 2,040,000 × 0.5880 = 119,952 fen; 200,000 × 0.8380 = 16,760 fen.
    #expect(result.lines.map(\.energy) == [kwh(760), kwh(2040), kwh(200)])
    #expect(result.lines.map(\.money) == [fen(40_888), fen(119_952), fen(16_760)])
    #expect(result.total == fen(177_600))
  }

  @Test func roundingIsHalfUpAtHalfAFenPerLine() throws {
    // 2,500 Wh × 0.5380 = 134.5 fen → 135 (half up); 2,499 Wh → 134.4462 fen → 134.
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: .zero)
    let half = try zhejiang.charge(
      hour(cst(2028, 5, 10, 10), .total(wh(2500))), category: .residential, tierUsage: usage)
    #expect(half.total == fen(135))
    let below = try zhejiang.charge(
      hour(cst(2028, 5, 10, 10), .total(wh(2499))), category: .residential, tierUsage: usage)
    #expect(below.total == fen(134))
    // Beijing's 0.4883 CNY/kWh: 50 kWh = 2,441.5 fen → 2,442.
    let beijing = FeeCalculator(
      tariffs: try TariffBook([
        TariffVersion(
          id: "BJ", category: .residential, effectiveFrom: day(2012, 7, 1), pricing: .flat(price(4883)))
      ]))
    let flat = try beijing.charge(
      hour(cst(2028, 5, 10, 10), .total(kwh(50))), category: .residential, tierUsage: nil)
    #expect(flat.lines.map(\.money) == [fen(2442)])
    #expect(flat.lines.map(\.tier) == [nil])
    #expect(flat.tierUsage == nil)
  }

  @Test func tariffChangeInsideAnIntervalSplitsItByTime() throws {
    let calculator = FeeCalculator(
      tariffs: try TariffBook([
        Self.zhejiangTiers(id: "A", from: day(2012, 7, 1), base: 5380),
        Self.zhejiangTiers(id: "B", from: day(2028, 7, 1), base: 5580),
      ]))
    // 16:00 on June 30 to 01:00 on July 1: 8 h under A, 1 h under B.
    let interval = MeterInterval(
      start: cst(2028, 6, 30, 16), end: cst(2028, 7, 1, 1), energy: .total(wh(1000)))
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: kwh(1000))
    let result = try calculator.charge(interval, category: .residential, tierUsage: usage)
    // A: ⌊1,000 × 8/9⌋ = 888 Wh × 0.5380 = 47.7744 fen → 48
    // B: 1,000 − 888 = 112 Wh × 0.5580 = 6.2496 fen → 6
    #expect(result.lines.map(\.tariffVersionID) == ["A", "B"])
    #expect(result.lines.map(\.energy) == [wh(888), wh(112)])
    #expect(result.lines.map(\.money) == [fen(48), fen(6)])
    #expect(result.lines.map(\.start) == [cst(2028, 6, 30, 16), cst(2028, 7, 1)])
    #expect(result.lines.map(\.end) == [cst(2028, 7, 1), cst(2028, 7, 1, 1)])
    #expect(result.total == fen(54))
    // Tier usage carries over the change: same cycle.
    #expect(result.tierUsage == TierUsage(cycleStart: day(2028, 1, 1), energy: wh(1_001_000)))

    // An interval wholly after the change is priced by B alone.
    let after = try calculator.charge(
      hour(cst(2028, 7, 1, 1), .total(wh(1000))), category: .residential, tierUsage: result.tierUsage)
    #expect(after.lines.map(\.tariffVersionID) == ["B"])
    #expect(after.total == fen(56))  // 1,000 Wh × 0.5580 = 55.8 fen → 56
  }

  @Test func annualSettlementDayResetsTierUsage() throws {
    // 4,000 kWh used in 2027 (tier 2). 23:00 on Dec 31 to 01:00 on Jan 1, 2 kWh.
    let usage = TierUsage(cycleStart: day(2027, 1, 1), energy: kwh(4000))
    let interval = MeterInterval(
      start: cst(2027, 12, 31, 23), end: cst(2028, 1, 1, 1), energy: .total(wh(2000)))
    let result = try zhejiang.charge(interval, category: .residential, tierUsage: usage)
    // 2027: 1,000 Wh in tier 2 × 0.5880 = 58.8 fen → 59
    // 2028: 1,000 Wh in tier 1 × 0.5380 = 53.8 fen → 54
    #expect(result.lines.map(\.tier) == [2, 1])
    #expect(result.lines.map(\.energy) == [wh(1000), wh(1000)])
    #expect(result.lines.map(\.money) == [fen(59), fen(54)])
    #expect(result.total == fen(113))
    #expect(result.tierUsage == TierUsage(cycleStart: day(2028, 1, 1), energy: wh(1000)))
  }

  @Test func usageFromAnEarlierCycleCountsAsZero() throws {
    let usage = TierUsage(cycleStart: day(2027, 1, 1), energy: kwh(4900))
    let result = try zhejiang.charge(
      hour(cst(2028, 1, 1, 10), .total(wh(5000))), category: .residential, tierUsage: usage)
    #expect(result.lines.map(\.tier) == [1])
    #expect(result.tierUsage == TierUsage(cycleStart: day(2028, 1, 1), energy: wh(5000)))
  }

  @Test func settlementDayNeedNotBeJanuaryFirst() throws {
    let calculator = FeeCalculator(
      tariffs: try TariffBook([PublishedTariffs.zhejiangResidentialTiers(resetMonth: 7, resetDay: 1)]))
    let usage = TierUsage(cycleStart: day(2027, 7, 1), energy: kwh(4800))
    // Last hour of the cycle: tier 3, 100 Wh × 0.8380 = 8.38 fen → 8.
    let last = try calculator.charge(
      hour(cst(2028, 6, 30, 23), .total(wh(100))), category: .residential, tierUsage: usage)
    #expect(last.lines.map(\.tier) == [3])
    #expect(last.total == fen(8))
    // First hour of the next: tier 1, 100 Wh × 0.5380 = 5.38 fen → 5.
    let first = try calculator.charge(
      hour(cst(2028, 7, 1, 0), .total(wh(100))), category: .residential, tierUsage: last.tierUsage)
    #expect(first.lines.map(\.tier) == [1])
    #expect(first.total == fen(5))
    #expect(first.tierUsage == TierUsage(cycleStart: day(2028, 7, 1), energy: wh(100)))
  }

  @Test func usageFromALaterCycleIsRefused() {
    let usage = TierUsage(cycleStart: day(2029, 1, 1), energy: .zero)
    let error = #expect(throws: FeeError.self) {
      try zhejiang.charge(hour(cst(2028, 5, 10, 10), .total(wh(1))), category: .residential, tierUsage: usage)
    }
    #expect(error?.code == "usage-from-later-cycle")
  }

  @Test func totalOnlyIntervalAcrossMidnightIsSplitBetweenPeriodsByTime() throws {
    // 22:00–01:00: 22–23 peak (1 h), 23–01 valley (2 h, across midnight); 3 kWh.
    let result = try shenzhen.charge(
      hour(cst(2028, 5, 10, 22), .total(wh(3000)), hours: 3), category: .commercial, tierUsage: nil)
    // peak:   ⌊3,000 × 1/3⌋ = 1,000 Wh × 1.1046 = 110.46 fen → 110
    // valley: 3,000 − 1,000 = 2,000 Wh × 0.4746 =  94.92 fen →  95
    #expect(result.lines.map(\.register) == [.peak, .valley])
    #expect(result.lines.map(\.energy) == [wh(1000), wh(2000)])
    #expect(result.lines.map(\.money) == [fen(110), fen(95)])
    #expect(result.lines.map(\.tier) == [nil, nil])
    #expect(result.total == fen(205))
    #expect(result.tierUsage == nil)
  }

  @Test func proportionalSplitGivesTheRemainderWattHourToTheLaterPeriod() throws {
    // 22:30–23:20: 30 min peak, 20 min valley; 1,001 Wh.
    let interval = MeterInterval(
      start: cst(2028, 5, 10, 22, 30), end: cst(2028, 5, 10, 23, 20), energy: .total(wh(1001)))
    let result = try shenzhen.charge(interval, category: .commercial, tierUsage: nil)
    // peak: ⌊1,001 × 1,800/3,000⌋ = ⌊600.6⌋ = 600 Wh × 1.1046 = 66.276 fen → 66
    // valley: 1,001 − 600 = 401 Wh × 0.4746 = 19.03146 fen → 19
    #expect(result.lines.map(\.energy) == [wh(600), wh(401)])
    #expect(result.lines.map(\.money) == [fen(66), fen(19)])
  }

  @Test func aWholeNightIsValley() throws {
    // 23:00 to 07:00 the next day: all valley. 8 kWh × 0.4746 = 379.68 fen → 380.
    let result = try shenzhen.charge(
      hour(cst(2028, 5, 10, 23), .total(kwh(8)), hours: 8), category: .commercial, tierUsage: nil)
    #expect(result.lines.map(\.register) == [.valley])
    #expect(result.total == fen(380))
  }

  @Test func registerEnergiesArePricedByRegisterWhateverTheTime() throws {
    // 10:00–11:00 is peak by the schedule, but the meter put 800 Wh in valley:
    // the meter's registers decide.
    let registers = RegisterEnergy(peak: wh(1200), valley: wh(800))
    let result = try shenzhen.charge(
      hour(cst(2028, 5, 10, 10), .registers(registers)), category: .commercial, tierUsage: nil)
    // peak 1,200 Wh × 1.1046 = 132.552 → 133; valley 800 Wh × 0.4746 = 37.968 → 38
    #expect(result.lines.map(\.register) == [.peak, .valley])
    #expect(result.lines.map(\.money) == [fen(133), fen(38)])
    #expect(result.total == fen(171))
  }

  @Test func tieredTimeOfUseAddsTheTierIncrementToThePeriodPrice() throws {
    // Shenzhen period prices with Beijing's monthly blocks (240 / 400 kWh, +0.05 / +0.30):
    // a composition of the two published tables, for the arithmetic.
    let version = try TariffVersion(
      id: "TOU-TIERS", category: .residential, effectiveFrom: day(2028, 1, 1),
      pricing: .timeOfUse(
        TimeOfUseSchedule(allYear: PublishedTariffs.peakValleyDay), PublishedTariffs.shenzhenCommercialPrices),
      tiers: TierSchedule(cycle: .monthly(resetDay: 1), blocks: PublishedTariffs.beijingMonthlyBlocks))
    let calculator = FeeCalculator(tariffs: try TariffBook([version]))
    // 239 kWh this month; 1.5 kWh peak + 0.5 kWh valley crosses 240 kWh after 1 kWh.
    let usage = TierUsage(cycleStart: day(2028, 5, 1), energy: kwh(239))
    let registers = RegisterEnergy(peak: wh(1500), valley: wh(500))
    let result = try calculator.charge(
      hour(cst(2028, 5, 10, 10), .registers(registers)), category: .residential, tierUsage: usage)
    // Tier 1 (1,000 Wh) shared 3:1 → peak 750, valley 250; tier 2 takes the rest, 750 / 250.
    // peak   tier 1: 750 Wh × 1.1046 = 82.845 fen → 83
    // peak   tier 2: 750 Wh × 1.1546 = 86.595 fen → 87
    // valley tier 1: 250 Wh × 0.4746 = 11.865 fen → 12
    // valley tier 2: 250 Wh × 0.5246 = 13.115 fen → 13
    #expect(result.lines.map(\.register) == [.peak, .peak, .valley, .valley])
    #expect(result.lines.map(\.tier) == [1, 2, 1, 2])
    #expect(result.lines.map(\.energy) == [wh(750), wh(750), wh(250), wh(250)])
    #expect(result.lines.map(\.price) == [price(11046), price(11546), price(4746), price(5246)])
    #expect(result.lines.map(\.money) == [fen(83), fen(87), fen(12), fen(13)])
    #expect(result.total == fen(195))
    #expect(result.tierUsage == TierUsage(cycleStart: day(2028, 5, 1), energy: kwh(241)))
  }

  @Test func flatPricingChargesTheSumOfTheRegistersAsOneLine() throws {
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: .zero)
    let registers = RegisterEnergy(peak: wh(300), valley: wh(700))
    let result = try zhejiang.charge(
      hour(cst(2028, 5, 10, 10), .registers(registers)), category: .residential, tierUsage: usage)
    // 1,000 Wh × 0.5380 = 53.8 fen → 54
    #expect(result.lines.count == 1)
    #expect(result.lines.first?.register == nil)
    #expect(result.lines.first?.energy == wh(1000))
    #expect(result.total == fen(54))
  }

  @Test func zeroEnergyGivesNoLine() throws {
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: kwh(5))
    let result = try zhejiang.charge(
      hour(cst(2028, 5, 10, 10), .total(.zero)), category: .residential, tierUsage: usage)
    #expect(result.lines.isEmpty)
    #expect(result.total == .zero)
    #expect(result.uncharged == .zero)
    #expect(result.tierUsage == usage)
  }

  @Test func reverseEnergyIsNotChargedNorCountedAndIsReported() throws {
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: kwh(5))
    let reverse = try zhejiang.charge(
      hour(cst(2028, 5, 10, 10), .total(wh(-500))), category: .residential, tierUsage: usage)
    #expect(reverse.lines.isEmpty)
    #expect(reverse.total == .zero)
    #expect(reverse.uncharged == wh(500))
    #expect(reverse.tierUsage == usage)

    // One register negative: the others are still charged.
    let registers = RegisterEnergy(peak: wh(-100), valley: wh(1000))
    let mixed = try shenzhen.charge(
      hour(cst(2028, 5, 10, 10), .registers(registers)), category: .commercial, tierUsage: nil)
    #expect(mixed.lines.map(\.register) == [.valley])
    #expect(mixed.lines.map(\.energy) == [wh(1000)])
    #expect(mixed.uncharged == wh(100))
  }

  @Test func amountsBeyondSixtyFourBitsAreRefusedNotWrapped() {
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: .zero)
    let at = cst(2028, 5, 10, 10)
    let cases: [(MeterInterval, TierUsage?)] = [
      // Wh × price overflows in Money.charge.
      (hour(at, .total(wh(Int64.max / 2))), usage),
      // The registers' sum overflows.
      (hour(at, .registers(RegisterEnergy(peak: wh(Int64.max), valley: wh(1)))), usage),
      // Usage + energy overflows.
      (hour(at, .total(wh(10))), TierUsage(cycleStart: day(2028, 1, 1), energy: wh(Int64.max - 5))),
      // Int64.min cannot be negated.
      (hour(at, .registers(RegisterEnergy(peak: wh(Int64.min)))), usage),
    ]
    for (interval, usage) in cases {
      let error = #expect(throws: FeeError.self) {
        try zhejiang.charge(interval, category: .residential, tierUsage: usage)
      }
      #expect(error?.code == "overflow")
    }
    // Period price + tier increment overflows.
    let expensive = try! TariffVersion(
      id: "X", category: .residential, effectiveFrom: day(2028, 1, 1), pricing: .flat(price(Int64.max)),
      tiers: TierSchedule(cycle: .monthly(resetDay: 1), blocks: [TierBlock(upTo: nil, increment: price(1))]))
    let calculator = FeeCalculator(tariffs: try! TariffBook([expensive]))
    let error = #expect(throws: FeeError.self) {
      try calculator.charge(hour(at, .total(wh(1))), category: .residential, tierUsage: nil)
    }
    #expect(error?.code == "overflow")
  }

  @Test func intervalsMustEndAfterTheyStartAndBeAtMostAThousandDays() {
    let at = cst(2028, 5, 10, 10)
    for end in [at, at - 1] {
      let error = #expect(throws: FeeError.self) {
        try zhejiang.charge(
          MeterInterval(start: at, end: end, energy: .total(wh(1))), category: .residential, tierUsage: nil)
      }
      #expect(error?.code == "invalid-interval")
    }
    let long = #expect(throws: FeeError.self) {
      try zhejiang.charge(
        MeterInterval(start: at, end: at + 1000 * 86_400 + 1, energy: .total(wh(1))), category: .residential,
        tierUsage: nil)
    }
    #expect(long?.code == "interval-too-long")
    let extreme = #expect(throws: FeeError.self) {
      try zhejiang.charge(
        MeterInterval(start: Int64.min, end: Int64.max, energy: .total(wh(1))), category: .residential,
        tierUsage: nil)
    }
    #expect(extreme?.code == "interval-too-long")
    // Exactly 1,000 days is accepted.
    #expect(throws: Never.self) {
      try zhejiang.charge(
        MeterInterval(start: at, end: at + 1000 * 86_400, energy: .total(kwh(1))), category: .residential,
        tierUsage: nil)
    }
  }

  @Test func intervalsAtTheEndOfSixtyFourBitTimeDoNotTrap() throws {
    // A time-of-use split and a tier cycle search in the last hour Int64 can hold.
    let interval = MeterInterval(start: Int64.max - 3600, end: Int64.max, energy: .total(wh(3600)))
    let result = try shenzhen.charge(interval, category: .commercial, tierUsage: nil)
    #expect(result.lines.reduce(Int64(0)) { $0 + $1.energy.wattHours } == 3600)
    let tiered = try zhejiang.charge(interval, category: .residential, tierUsage: nil)
    #expect(tiered.lines.map(\.tier) == [1])
  }

  @Test func timesWithoutATariffVersionAreRefused() {
    // Zhejiang's version takes effect on 2012-07-01.
    let before = #expect(throws: FeeError.self) {
      try zhejiang.charge(hour(cst(2012, 6, 30, 10), .total(wh(1))), category: .residential, tierUsage: nil)
    }
    #expect(before?.description == "no 'residential' tariff version in force at 2012-06-30T10:00:00")
    let other = #expect(throws: FeeError.self) {
      try zhejiang.charge(hour(cst(2028, 6, 30, 10), .total(wh(1))), category: .industrial, tierUsage: nil)
    }
    #expect(other?.code == "no-tariff")
  }

  @Test func aSequenceIsChargedAsEachIntervalInTurn() throws {
    let intervals = (0..<5).map { hour(cst(2028, 5, 10, 10) + Int64($0) * 3600, .total(kwh(700))) }
    let usage = TierUsage(cycleStart: day(2028, 1, 1), energy: kwh(2000))
    let batch = try zhejiang.charge(intervals, category: .residential, tierUsage: usage)
    var lines: [ChargeLine] = []
    var running: TierUsage? = usage
    for interval in intervals {
      let one = try zhejiang.charge(interval, category: .residential, tierUsage: running)
      lines += one.lines
      running = one.tierUsage
    }
    #expect(batch.lines == lines)
    #expect(batch.tierUsage == running)
    #expect(batch.tierUsage?.energy == kwh(5500))
    // 2,000 + 3,500 kWh: 760 kWh tier 1, 2,040 kWh tier 2, 700 kWh tier 3.
    #expect(batch.energyPerTier == [kwh(760), kwh(2040), kwh(700)])
  }

  @Test func apportionSumsExactlyAndStaysWithinOneWattHour() {
    #expect(apportion(10, by: [1, 1, 1]) == [3, 3, 4])
    #expect(apportion(0, by: [5, 0, 7]) == [0, 0, 0])
    #expect(apportion(7, by: [0, 0]) == [0, 7])
    #expect(apportion(Int64.max, by: [1, Int64.max - 1]) == [1, Int64.max - 1])
    #expect(apportion(Int64.max, by: [Int64.max / 2, Int64.max / 2 + 1]).reduce(0, +) == Int64.max)
  }
}

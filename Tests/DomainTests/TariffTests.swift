import Testing

@testable import GridEdgeCore

@Suite struct TariffDefinitionTests {
  @Test func valleyPeriodRunsAcrossMidnight() {
    let schedule = PublishedTariffs.peakValleyDay
    let at = { (h: Int, m: Int, s: Int) in schedule.period(atSecondOfDay: h * 3600 + m * 60 + s) }
    #expect(at(0, 0, 0) == .valley)
    #expect(at(6, 59, 59) == .valley)
    #expect(at(7, 0, 0) == .flat)
    #expect(at(8, 29, 59) == .flat)
    #expect(at(8, 30, 0) == .peak)
    #expect(at(11, 30, 0) == .flat)
    #expect(at(18, 0, 0) == .peak)
    #expect(at(22, 59, 59) == .peak)
    #expect(at(23, 0, 0) == .valley)
    #expect(at(23, 59, 59) == .valley)
    #expect(schedule.nextSwitchSecond(after: 0) == 7 * 3600)
    #expect(schedule.nextSwitchSecond(after: 23 * 3600) == 86_400)
  }

  @Test func daySchedulesNeedIncreasingSwitches() {
    #expect(throws: TariffError.self) { try DaySchedule([]) }
    let error = #expect(throws: TariffError.self) {
      try DaySchedule([switchAt(8, 0, .peak), switchAt(8, 0, .flat)])
    }
    #expect(error?.code == "switches-not-increasing")
    #expect(error?.description == "period switch at 08:00 is not after the previous one")
    #expect(PeriodSwitch(hour: 24, minute: 0, period: .flat) == nil)
  }

  @Test func seasonsMustCoverEveryMonthExactlyOnce() throws {
    let summerDay = try DaySchedule([switchAt(0, 0, .flat), switchAt(14, 0, .sharp), switchAt(16, 0, .flat)])
    let otherDay = try DaySchedule([switchAt(0, 0, .flat)])
    // Summer July–August, the rest of the year wraps from September to June.
    let schedule = try TimeOfUseSchedule(seasons: [
      Season(firstMonth: 7, lastMonth: 8, day: summerDay), Season(firstMonth: 9, lastMonth: 6, day: otherDay),
    ])
    #expect(schedule.daySchedule(month: 7) == summerDay)
    #expect(schedule.daySchedule(month: 1) == otherDay)
    #expect(schedule.daySchedule(month: 6) == otherDay)
    let july = LocalDateTime(date: day(2028, 7, 15), hour: 15, minute: 0)!
    #expect(schedule.period(at: july) == .sharp)

    let overlap = #expect(throws: TariffError.self) {
      try TimeOfUseSchedule(seasons: [
        Season(firstMonth: 6, lastMonth: 8, day: summerDay),
        Season(firstMonth: 8, lastMonth: 5, day: otherDay),
      ])
    }
    #expect(overlap?.description == "month 8 is in two seasons")
    let gap = #expect(throws: TariffError.self) {
      try TimeOfUseSchedule(seasons: [
        Season(firstMonth: 7, lastMonth: 8, day: summerDay),
        Season(firstMonth: 10, lastMonth: 6, day: otherDay),
      ])
    }
    #expect(gap?.description == "month 9 is in no season")
    #expect(throws: TariffError.self) { try Season(firstMonth: 0, lastMonth: 3, day: otherDay) }
  }

  @Test func tierBlocksMustIncreaseAndEndUnbounded() {
    let cycle = TierCycle.annual(resetMonth: 1, resetDay: 1)
    #expect(throws: TariffError.self) { try TierSchedule(cycle: cycle, blocks: []) }
    let bounded = #expect(throws: TariffError.self) {
      try TierSchedule(cycle: cycle, blocks: [TierBlock(upTo: kwh(10), increment: price(0))])
    }
    #expect(bounded?.code == "last-tier-bounded")
    let order = #expect(throws: TariffError.self) {
      try TierSchedule(
        cycle: cycle,
        blocks: [
          TierBlock(upTo: kwh(10), increment: price(0)), TierBlock(upTo: kwh(10), increment: price(1)),
          TierBlock(upTo: nil, increment: price(2)),
        ])
    }
    #expect(order?.code == "tier-bounds-not-increasing")
    let middle = #expect(throws: TariffError.self) {
      try TierSchedule(
        cycle: cycle,
        blocks: [TierBlock(upTo: nil, increment: price(0)), TierBlock(upTo: nil, increment: price(1))])
    }
    #expect(middle?.code == "unbounded-tier-not-last")
    let zeroBound = #expect(throws: TariffError.self) {
      try TierSchedule(
        cycle: cycle,
        blocks: [TierBlock(upTo: .zero, increment: price(0)), TierBlock(upTo: nil, increment: price(1))])
    }
    #expect(zeroBound?.code == "tier-bounds-not-increasing")
    let negative = #expect(throws: TariffError.self) {
      try TierSchedule(cycle: cycle, blocks: [TierBlock(upTo: nil, increment: price(-1))])
    }
    #expect(negative?.description == "negative tier 1 increment")
    let resetDay = #expect(throws: TariffError.self) {
      try TierSchedule(cycle: .monthly(resetDay: 29), blocks: [TierBlock(upTo: nil, increment: price(0))])
    }
    #expect(resetDay?.code == "reset-day-out-of-range")
  }

  @Test func tierCyclesStartOnTheResetDay() {
    let monthly = TierCycle.monthly(resetDay: 15)
    #expect(monthly.cycleStart(containing: day(2028, 1, 10)) == day(2027, 12, 15))
    #expect(monthly.cycleStart(containing: day(2028, 1, 15)) == day(2028, 1, 15))
    #expect(monthly.nextCycleStart(after: day(2027, 12, 15)) == day(2028, 1, 15))
    let annual = TierCycle.annual(resetMonth: 7, resetDay: 1)
    #expect(annual.cycleStart(containing: day(2028, 6, 30)) == day(2027, 7, 1))
    #expect(annual.cycleStart(containing: day(2028, 7, 1)) == day(2028, 7, 1))
    #expect(annual.nextCycleStart(after: day(2028, 7, 1)) == day(2029, 7, 1))
    let calendarYear = TierCycle.annual(resetMonth: 1, resetDay: 1)
    #expect(calendarYear.cycleStart(containing: day(2028, 12, 31)) == day(2028, 1, 1))
  }

  @Test func tariffVersionsRejectEmptyIDsAndNegativePrices() {
    #expect(throws: TariffError.self) {
      try TariffVersion(
        id: "", category: .residential, effectiveFrom: day(2028, 1, 1), pricing: .flat(price(1)))
    }
    let flat = #expect(throws: TariffError.self) {
      try TariffVersion(
        id: "x", category: .residential, effectiveFrom: day(2028, 1, 1), pricing: .flat(price(-1)))
    }
    #expect(flat?.description == "negative flat price")
    var prices = PublishedTariffs.shenzhenCommercialPrices
    prices.valley = price(-1)
    let valley = #expect(throws: TariffError.self) {
      try TariffVersion(
        id: "x", category: .residential, effectiveFrom: day(2028, 1, 1),
        pricing: .timeOfUse(TimeOfUseSchedule(allYear: PublishedTariffs.peakValleyDay), prices))
    }
    #expect(valley?.description == "negative valley price")
  }

  @Test func theBookFindsTheVersionInForceOnADate() throws {
    let old = PublishedTariffs.zhejiangResidentialTiers(effectiveFrom: day(2012, 7, 1), id: "old")
    let new = PublishedTariffs.zhejiangResidentialTiers(effectiveFrom: day(2028, 7, 1), id: "new")
    let book = try TariffBook([new, old, PublishedTariffs.shenzhenTimeOfUse()])
    #expect(book.version(for: .residential, on: day(2012, 6, 30)) == nil)
    #expect(book.version(for: .residential, on: day(2012, 7, 1))?.id == "old")
    #expect(book.version(for: .residential, on: day(2028, 6, 30))?.id == "old")
    #expect(book.version(for: .residential, on: day(2028, 7, 1))?.id == "new")
    #expect(book.nextChange(for: .residential, after: day(2020, 1, 1)) == day(2028, 7, 1))
    #expect(book.nextChange(for: .residential, after: day(2028, 7, 1)) == nil)
    #expect(book.version(for: .commercial, on: day(2028, 7, 1))?.id == "SZ-COM-TOU")
    #expect(book.version(for: .industrial, on: day(2028, 7, 1)) == nil)
    #expect(book.versions(for: .residential).map(\.id) == ["old", "new"])
  }

  @Test func theBookRejectsDuplicateIDsAndDates() {
    let a = PublishedTariffs.zhejiangResidentialTiers(effectiveFrom: day(2028, 1, 1), id: "a")
    let b = PublishedTariffs.zhejiangResidentialTiers(effectiveFrom: day(2028, 1, 1), id: "b")
    let sameDate = #expect(throws: TariffError.self) { try TariffBook([a, b]) }
    #expect(sameDate?.description == "two 'residential' tariff versions take effect on 2028-01-01")
    let c = PublishedTariffs.zhejiangResidentialTiers(effectiveFrom: day(2029, 1, 1), id: "a")
    let sameID = #expect(throws: TariffError.self) { try TariffBook([a, c]) }
    #expect(sameID?.code == "duplicate-id")
  }

  @Test func periodCodesAreStableAndMatchMeterRateNumbers() {
    #expect(TimeOfUsePeriod.allCases.map(\.code) == ["sharp", "peak", "flat", "valley"])
    #expect(TimeOfUsePeriod.allCases.map(\.rawValue) == [1, 2, 3, 4])
    #expect(TimeOfUsePeriod(code: "valley") == .valley)
    #expect(TimeOfUsePeriod(code: "night") == nil)
  }
}

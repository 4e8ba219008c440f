import Testing

@testable import GridEdgeCore

/// The area balance and anomaly rules, on small areas worked by hand.
///
/// The reference area: CT 20 on the area meter; customers 01…09 use about 10 kWh a day
/// (history median 10,000 Wh), customer 10 about 1 kWh (median 1,000 Wh).
@Suite struct EnergyBalanceTests {
  /// 9,800 … 10,200 Wh: median 10,000.
  static let normalHistory: [Energy] = [9_800, 10_200, 10_000, 9_900, 10_100, 10_000, 10_050].map {
    Energy(wattHours: $0)
  }
  static let smallHistory: [Energy] = [900, 1_100, 1_000, 1_000, 950, 1_050, 1_000].map {
    Energy(wattHours: $0)
  }

  static func meter(_ n: Int) -> String { n < 10 ? "00000000000" + String(n) : "0000000000" + String(n) }

  /// The reference area with today's energies `today[n]` for customers 1…10 (the usual
  /// day when absent) and the meters in `missing` without data.
  static func area(areaRegister: Int64?, ct: Int64 = 20, today: [Int: Int64], missing: Set<Int> = [])
    -> BalanceInput
  {
    var customers: [MeterDay] = []
    for n in 1...10 {
      let energy: Int64? = missing.contains(n) ? nil : today[n] ?? (n == 10 ? 1_000 : 10_000)
      customers.append(
        MeterDay(
          meter: meter(n), customer: "C-" + String(n), energy: energy.map { Energy(wattHours: $0) },
          history: n == 10 ? smallHistory : normalHistory))
    }
    return BalanceInput(
      area: "TA-1", areaMeter: "000000009999", areaEnergy: areaRegister.map { Energy(wattHours: $0) },
      ctRatio: ct,
      customers: customers)
  }

  @Test func halfTheftBypassOnOneMeterMakesItTheTopSuspect() throws {
    // Meter 03 registers half of its 10 kWh; meter 10 has a quiet day (400 of 1,000 Wh).
    // supplied = 4,700 × 20 = 94,000; sold = 8 × 10,000 + 5,000 + 400 = 85,400;
    // loss = 8,600; rate = 8,600 / 94,000 = 914.89 bp → 915 (above the 800 threshold).
    let b = EnergyBalance(Self.area(areaRegister: 4_700, today: [3: 5_000, 10: 400]))
    #expect(b.supplied == Energy(wattHours: 94_000))
    #expect(b.sold == Energy(wattHours: 85_400))
    #expect(b.loss == Energy(wattHours: 8_600))
    #expect(b.lossRateBasisPoints == 915)
    #expect(b.withheld == nil)
    #expect(b.completenessBasisPoints == 10_000)
    #expect(b.missing.isEmpty)
    #expect(b.flags.map(\.code) == ["high-loss"])
    #expect(b.flags.first?.description == "loss rate 9.15% is above the 8.00% threshold")

    #expect(b.suspects.map(\.meter) == [Self.meter(3), Self.meter(10)])
    let top = try #require(b.suspects.first)
    // Drop 5,000 of the 8,600 loss: 5,813.95 → 5,813 bp, plus 1,000 for the drop rule.
    #expect(top.drop == Energy(wattHours: 5_000))
    #expect(top.explainedBasisPoints == 5_813)
    #expect(top.score == 6_813)
    #expect(top.customer == "C-3")
    #expect(top.anomalies.map(\.rule) == [.suddenDrop])
    #expect(
      top.anomalies.first?.description
        == "sudden drop: 5000 Wh is 50.00% of its median 10000 Wh over the previous 7 day(s)")
    // Meter 10: drop 600 → 697 bp + 1,000.
    #expect(b.suspects[1].score == 1_697)
  }

  @Test func stoppedMeterIsFoundWithItsHistoryAsEvidence() throws {
    // Meter 05 registers nothing. supplied 4,750 × 20 = 95,000, sold 81,000, loss 14,000.
    let b = EnergyBalance(Self.area(areaRegister: 4_750, today: [5: 0]))
    let suspect = try #require(b.suspects.first)
    #expect(b.suspects.count == 1)
    #expect(suspect.meter == Self.meter(5))
    #expect(suspect.anomalies.map(\.rule) == [.stopped])
    #expect(
      suspect.anomalies.first?.description
        == "stopped: 0 Wh for the day, median 10000 Wh over the previous 7 day(s)")
    // 10,000 of 14,000: 7,142 bp + 2,000.
    #expect(suspect.explainedBasisPoints == 7_142)
    #expect(suspect.score == 9_142)
  }

  @Test func meterWithoutHistoryOrConsumptionIsNotCalledStopped() {
    let thresholds = BalanceThresholds()
    #expect(EnergyBalance.anomalies(energy: .zero, history: [], thresholds: thresholds).isEmpty)
    // Two days of history are not enough (3 needed).
    #expect(
      EnergyBalance.anomalies(
        energy: .zero, history: [Energy(wattHours: 9_000), Energy(wattHours: 9_000)], thresholds: thresholds
      ).isEmpty)
    // A vacant flat (median 100 Wh, under the 500 Wh minimum).
    #expect(
      EnergyBalance.anomalies(
        energy: .zero, history: Array(repeating: Energy(wattHours: 100), count: 7), thresholds: thresholds
      )
      .isEmpty)
  }

  @Test func wrongCTRatioShowsAsNegativeLossAndIsReportedAsSuch() throws {
    // The area meter registers 2,350 Wh behind a real CT of 40 (94,000 Wh), but the
    // archive says 20: supplied = 2,350 × 20 = 47,000; sold = 9 × 10,000 + 1,000 = 91,000;
    // loss = −44,000.
    let b = EnergyBalance(Self.area(areaRegister: 2_350, ct: 20, today: [:]))
    #expect(b.supplied == Energy(wattHours: 47_000))
    #expect(b.sold == Energy(wattHours: 91_000))
    #expect(b.loss == Energy(wattHours: -44_000))
    // −44,000 / 47,000 = −9,361.70 bp → −9,362 (half away from zero).
    #expect(b.lossRateBasisPoints == -9_362)
    #expect(b.flags.map(\.code) == ["negative-loss"])
    #expect(
      b.flags.first?.description
        == "customers registered 44000 Wh more than the area meter supplied: metering, CT ratio, topology or timing error"
    )
    #expect(b.suspects.isEmpty)
    // With the right ratio the same registers balance: 94,000 − 91,000 = 3,000, 319 bp.
    let fixed = EnergyBalance(Self.area(areaRegister: 2_350, ct: 40, today: [:]))
    #expect(fixed.flags.isEmpty)
    #expect(fixed.lossRateBasisPoints == 319)
  }

  @Test func incompleteCollectionWithholdsTheRateAndSaysWhy() throws {
    // 2 of 11 meters missing: 9 / 11 = 8,181.8 bp → 8,181 (rounded down), under 9,800.
    let b = EnergyBalance(Self.area(areaRegister: 4_700, today: [:], missing: [2, 7]))
    #expect(b.metersInArea == 11)
    #expect(b.metersWithData == 9)
    #expect(b.completenessBasisPoints == 8_181)
    #expect(b.missing == [Self.meter(2), Self.meter(7)])
    #expect(b.lossRateBasisPoints == nil)
    let withheld = try #require(b.withheld)
    #expect(withheld.code == "incomplete-collection")
    #expect(
      withheld.description
        == "collection is 81.81% complete (2 meter(s) without data), below the 98.00% needed: a missing meter would count as loss"
    )
    // The energies are still shown; a high loss is not flagged on partial data.
    #expect(b.sold == Energy(wattHours: 71_000))
    #expect(b.loss == Energy(wattHours: 23_000))
    #expect(b.flags.isEmpty)
    // A lower threshold lets the same data through.
    var lenient = BalanceThresholds()
    lenient.minimumCompletenessBasisPoints = 8_000
    #expect(
      EnergyBalance(
        Self.area(areaRegister: 4_700, today: [:], missing: [2, 7]), thresholds: lenient
      ).lossRateBasisPoints == 2_447)
  }

  @Test func missingAreaMeterWithholdsEverythingAboutSupply() throws {
    let b = EnergyBalance(Self.area(areaRegister: nil, today: [:]))
    #expect(b.supplied == nil)
    #expect(b.loss == nil)
    #expect(b.lossRateBasisPoints == nil)
    #expect(b.withheld?.code == "area-meter-missing")
    #expect(b.missing == ["000000009999"])
    #expect(b.sold == Energy(wattHours: 91_000))
  }

  @Test func reverseEnergyIsFlaggedWithoutHistory() throws {
    let found = EnergyBalance.anomalies(
      energy: Energy(wattHours: -300), history: [], thresholds: BalanceThresholds())
    #expect(found.map(\.rule) == [.reverseEnergy])
    #expect(found.first?.description == "reverse energy: the register went back 300 Wh over the day")
    // In an area it ranks above a smaller sudden drop: meter 04 drops 10,300 Wh and
    // scores 5,073 + 3,000; meter 06 drops 7,000 Wh and scores 3,448 + 1,000.
    let b = EnergyBalance(Self.area(areaRegister: 4_700, today: [4: -300, 6: 3_000]))
    #expect(b.suspects.map(\.meter) == [Self.meter(4), Self.meter(6)])
    #expect(b.suspects.map(\.score) == [8_073, 4_448])
    #expect(b.suspects.first?.drop == Energy(wattHours: 10_300))
  }

  @Test func suddenDropIsAtOrBelowSixtyFivePercentOfTheMedian() {
    let history = Self.normalHistory
    let t = BalanceThresholds()
    #expect(
      EnergyBalance.anomalies(energy: Energy(wattHours: 6_510), history: history, thresholds: t).isEmpty)
    #expect(
      EnergyBalance.anomalies(energy: Energy(wattHours: 6_500), history: history, thresholds: t).map(\.rule)
        == [
          .suddenDrop
        ])
  }

  @Test func lossRateRoundsHalfAwayFromZero() {
    func area(register: Int64, sold: Int64) -> BalanceInput {
      BalanceInput(
        area: "TA-R", areaMeter: "000000009999", areaEnergy: Energy(wattHours: register), ctRatio: 1,
        customers: [MeterDay(meter: "000000000001", energy: Energy(wattHours: sold))])
    }
    // 1 / 20,000 = 0.5 bp → 1; −0.5 → −1; 1 / 20,001 < 0.5 → 0.
    #expect(EnergyBalance(area(register: 20_000, sold: 19_999)).lossRateBasisPoints == 1)
    #expect(EnergyBalance(area(register: 20_000, sold: 20_001)).lossRateBasisPoints == -1)
    #expect(EnergyBalance(area(register: 20_001, sold: 20_000)).lossRateBasisPoints == 0)
    #expect(EnergyBalance(area(register: 0, sold: 0)).withheld?.code == "no-supply")
  }

  @Test func medianOfAnEvenCountIsTheMeanOfTheMiddleTwoRoundedDown() {
    #expect(EnergyBalance.median([1, 4, 2, 3].map { Energy(wattHours: $0) }) == Energy(wattHours: 2))
    #expect(EnergyBalance.median([5, 1, 3].map { Energy(wattHours: $0) }) == Energy(wattHours: 3))
    #expect(EnergyBalance.median([]) == .zero)
    #expect(EnergyBalance.percent(-1_234) == "-12.34%")
    #expect(EnergyBalance.percent(5) == "0.05%")
  }

  @Test func clockDriftBeyondTheLimitIsAnAnomalyWithItsEvidence() throws {
    let t = BalanceThresholds()
    func rules(_ drift: Int64?) -> [MeterAnomaly] {
      EnergyBalance.anomalies(
        MeterDay(
          meter: Self.meter(1), energy: Energy(wattHours: 10_000), history: Self.normalHistory,
          clockDriftSeconds: drift),
        energy: Energy(wattHours: 10_000), thresholds: t)
    }
    #expect(rules(nil).isEmpty)
    #expect(rules(60).isEmpty)
    #expect(rules(-60).isEmpty)
    let ahead = try #require(rules(300).first)
    #expect(ahead.rule == .clockDrift)
    #expect(ahead.driftSeconds == 300)
    #expect(
      ahead.description
        == "clock drift: the meter's clock is 300 s ahead of the concentrator's (limit 60 s): its freezes and tariff periods fall at the wrong time"
    )
    #expect(rules(-61).first?.description.hasPrefix("clock drift: the meter's clock is 61 s behind") == true)
  }

  @Test func missedReadsAtTheLimitShareAreAnAnomaly() throws {
    let t = BalanceThresholds()  // 20 %
    func rules(missed: Int, of expected: Int) -> [MeterAnomaly] {
      EnergyBalance.anomalies(
        MeterDay(
          meter: Self.meter(1), energy: Energy(wattHours: 10_000), history: Self.normalHistory,
          missedReads: missed, expectedReads: expected),
        energy: Energy(wattHours: 10_000), thresholds: t)
    }
    #expect(rules(missed: 1, of: 9).isEmpty)
    #expect(rules(missed: 0, of: 0).isEmpty)
    #expect(rules(missed: 2, of: 10).map(\.rule) == [.missedReads])
    let found = try #require(rules(missed: 2, of: 9).first)
    #expect(found.missed == 2 && found.expected == 9)
    #expect(
      found.description
        == "missed reads: 2 of 9 collections in the window found no reading (22.22%, limit 20.00%)")
  }

  @Test func worseCreditGradeRanksAnEqualSuspectHigher() throws {
    // Meters 03 and 04 both register half their day; 04's customer has grade C.
    var input = Self.area(areaRegister: 4_700, today: [3: 5_000, 4: 5_000])
    input.customers[3].grade = CreditGrade(rank: 3)
    input.customers[2].grade = CreditGrade(rank: 1)
    let b = EnergyBalance(input)
    #expect(b.suspects.map(\.meter) == [Self.meter(4), Self.meter(3)])
    #expect(b.suspects[0].score == b.suspects[1].score + 500)
    #expect(b.suspects[0].grade?.letter == "C")
  }

  @Test func energyWhileTheRelayIsOpenIsAnAnomalyWithItsOpenTimeAsEvidence() throws {
    let t = BalanceThresholds()
    // Verified open at 2026-01-08T02:00:00Z, a close requested at 10:00:00Z.
    let since: Int64 = 1_767_837_600_000
    func rules(_ wattHours: Int64, open: Int64?) -> [MeterAnomaly] {
      EnergyBalance.anomalies(
        MeterDay(
          meter: Self.meter(1), energy: Energy(wattHours: wattHours), history: Self.normalHistory,
          openRelay: open.map {
            OpenRelay(
              since: since, until: since + 28_800_000, energy: Energy(wattHours: $0), from: since + 900_000,
              to: since + 27_900_000)
          }),
        energy: Energy(wattHours: wattHours), thresholds: t)
    }
    #expect(rules(10_000, open: nil).isEmpty)
    // Open and nothing registered meanwhile: as it should be (a cut supply is not a
    // stopped meter, nor a drop when it was cut for part of the day).
    #expect(rules(0, open: 0).isEmpty)
    #expect(rules(4_000, open: 0).isEmpty)
    #expect(rules(0, open: nil).map(\.rule) == [.stopped])
    #expect(rules(4_000, open: nil).map(\.rule) == [.suddenDrop])
    // The anomaly's energy is what was registered while open, not the day's.
    let found = try #require(rules(6_000, open: 1_500).first { $0.rule == .energyWhileOpen })
    #expect(found.energy == Energy(wattHours: 1_500))
    #expect(found.openRelay?.since == since)
    #expect(
      found.description
        == "energy while the relay is open: 1500 Wh registered from 2026-01-08T02:15:00Z to 2026-01-08T09:45:00Z,"
        + " the relay verified open since 2026-01-08T02:00:00Z (close requested 2026-01-08T10:00:00Z)")
    #expect(found.rule.weight == 3_000)
  }
}

import Testing

@testable import GridEdgeCore

@Suite struct TopUpDecisionTests {
  let limit = fen(500_000)  // 5,000.00 CNY

  func decide(last: UInt32, count: UInt32, amount: Int64, balance: Int64 = 1000) -> TopUpDecision {
    TopUpDecision.decide(
      lastAppliedPurchaseCount: last, purchaseCount: count, amount: fen(amount), balance: fen(balance),
      hoardingLimit: limit)
  }

  @Test func theNextPurchaseCountIsAppliedToTheBalance() {
    #expect(decide(last: 0, count: 1, amount: 10_000) == .apply(newBalance: fen(11_000)))
    #expect(decide(last: 41, count: 42, amount: 5000, balance: -2000) == .apply(newBalance: fen(3000)))
    #expect(decide(last: 41, count: 42, amount: 5000).code == "applied")
  }

  @Test func topUpWithRepeatedPurchaseCountIsRejectedAndBalanceUnchanged() {
    #expect(decide(last: 42, count: 42, amount: 5000) == .duplicate)
    // An older count was applied before the last one: also a duplicate.
    #expect(decide(last: 42, count: 7, amount: 5000) == .duplicate)
    // A duplicate is a duplicate even when it would now exceed the hoarding limit.
    #expect(decide(last: 42, count: 42, amount: 5000, balance: 499_999) == .duplicate)
    #expect(decide(last: 42, count: 42, amount: 5000).code == "duplicate")
  }

  @Test func aGapInPurchaseCountsIsRejected() {
    #expect(decide(last: 42, count: 44, amount: 5000) == .gap(expected: 43))
    #expect(decide(last: 0, count: 2, amount: 5000) == .gap(expected: 1))
    #expect(decide(last: UInt32.max, count: UInt32.max, amount: 5000) == .duplicate)
    #expect(decide(last: UInt32.max - 1, count: UInt32.max, amount: 5000) == .apply(newBalance: fen(6000)))
  }

  @Test func topUpsBeyondTheHoardingLimitAreRejectedWithTheRoomLeft() {
    // 4,990.00 + 10.00 = 5,000.00: exactly the limit is allowed.
    #expect(decide(last: 1, count: 2, amount: 1000, balance: 499_000) == .apply(newBalance: limit))
    #expect(decide(last: 1, count: 2, amount: 1001, balance: 499_000) == .overHoardingLimit(room: fen(1000)))
    // Already above the limit (a lowered limit): no room.
    #expect(decide(last: 1, count: 2, amount: 1, balance: 600_000) == .overHoardingLimit(room: .zero))
    // Balance + amount beyond Int64 is over the limit, not a trap.
    #expect(
      TopUpDecision.decide(
        lastAppliedPurchaseCount: 1, purchaseCount: 2, amount: fen(Int64.max), balance: fen(1),
        hoardingLimit: limit) == .overHoardingLimit(room: fen(499_999)))
    #expect(
      TopUpDecision.decide(
        lastAppliedPurchaseCount: 1, purchaseCount: 2, amount: fen(1), balance: fen(Int64.min),
        hoardingLimit: limit) == .apply(newBalance: fen(Int64.min + 1)))
  }

  @Test func zeroAndNegativeAmountsAreRejected() {
    #expect(decide(last: 1, count: 2, amount: 0) == .invalidAmount)
    #expect(decide(last: 1, count: 2, amount: -100) == .invalidAmount)
  }
}

@Suite struct ThresholdTests {
  // Alarm 1 at 20.00, alarm 2 at 10.00, overdraft down to −10.00, reconnect from 5.00,
  // hoarding limit 5,000.00 CNY.
  let thresholds = try! PrepaidThresholds(
    alarm1: fen(2000), alarm2: fen(1000), overdraftLimit: fen(-1000), closePermit: fen(500),
    hoardingLimit: fen(500_000))

  @Test func aChargeCrossingSeveralLevelsGivesThemFromTheHighest() {
    // Down to exactly 5.00 does not cross the close-permit amount (5.00 is not below 5.00).
    #expect(thresholds.crossings(from: fen(2500), to: fen(500)).map(\.threshold) == [.alarm1, .alarm2])
    #expect(
      thresholds.crossings(from: fen(2500), to: fen(400)) == [
        ThresholdCrossing(threshold: .alarm1, direction: .down),
        ThresholdCrossing(threshold: .alarm2, direction: .down),
        ThresholdCrossing(threshold: .closePermit, direction: .down),
      ])
  }

  @Test func goingIntoOverdraftAndBeyondItGivesExhaustedThenOverdraftLimit() {
    #expect(
      thresholds.crossings(from: fen(400), to: fen(-1500)) == [
        ThresholdCrossing(threshold: .exhausted, direction: .down),
        ThresholdCrossing(threshold: .overdraftLimit, direction: .down),
      ])
  }

  @Test func aTopUpFromBeyondTheOverdraftGivesUpCrossingsFromTheLowest() {
    #expect(
      thresholds.crossings(from: fen(-1500), to: fen(3000)).map(\.threshold) == [
        .overdraftLimit, .exhausted, .closePermit, .alarm2, .alarm1,
      ])
    #expect(thresholds.crossings(from: fen(-1500), to: fen(3000)).allSatisfy { $0.direction == .up })
  }

  @Test func aBalanceExactlyAtALevelIsNotBelowIt() {
    #expect(thresholds.crossings(from: fen(2001), to: fen(2000)).isEmpty)
    #expect(thresholds.crossings(from: fen(2000), to: fen(1999)).map(\.threshold) == [.alarm1])
    #expect(thresholds.crossings(from: fen(1999), to: fen(2000)).map(\.threshold) == [.alarm1])
    #expect(thresholds.crossings(from: fen(0), to: fen(-1)).map(\.threshold) == [.exhausted])
    #expect(thresholds.crossings(from: fen(700), to: fen(700)).isEmpty)
    #expect(!thresholds.isBeyondOverdraft(fen(-1000)) && thresholds.isBeyondOverdraft(fen(-1001)))
    #expect(thresholds.permitsReconnect(fen(500)) && !thresholds.permitsReconnect(fen(499)))
  }

  @Test func equalLevelsComeInDeclarationOrderDownAndReverseUp() throws {
    let same = try PrepaidThresholds(
      alarm1: fen(1000), alarm2: fen(1000), overdraftLimit: .zero, closePermit: fen(1000),
      hoardingLimit: fen(10_000))
    #expect(
      same.crossings(from: fen(1500), to: fen(500)).map(\.threshold) == [.alarm1, .alarm2, .closePermit])
    #expect(
      same.crossings(from: fen(500), to: fen(1500)).map(\.threshold) == [.closePermit, .alarm2, .alarm1])
  }

  @Test func thresholdsOutOfOrderAreRejected() {
    func make(_ a1: Int64, _ a2: Int64, _ od: Int64, _ cp: Int64, _ h: Int64) throws(FeeControlConfigError) {
      _ = try PrepaidThresholds(
        alarm1: fen(a1), alarm2: fen(a2), overdraftLimit: fen(od), closePermit: fen(cp), hoardingLimit: fen(h)
      )
    }
    #expect(throws: Never.self) { try make(2000, 1000, -1000, 500, 500_000) }
    let cases: [(Int64, Int64, Int64, Int64, Int64)] = [
      (2000, 1000, 1, 500, 500_000),  // overdraft limit above zero
      (2000, -2000, -1000, 500, 500_000),  // alarm 2 below the overdraft limit
      (1000, 2000, -1000, 500, 500_000),  // alarm 1 below alarm 2
      (2000, 1000, -1000, -1000, 500_000),  // close permit not above the overdraft limit
      (2000, 1000, -1000, 500, 1999),  // hoarding limit below alarm 1
      (0, 0, -1000, 0, 0),  // hoarding limit not above zero
    ]
    for c in cases {
      let error = #expect(throws: FeeControlConfigError.self) { try make(c.0, c.1, c.2, c.3, c.4) }
      #expect(error?.code == "thresholds")
    }
  }

  @Test func thresholdCodesAreStable() {
    #expect(
      BalanceThreshold.allCases.map(\.code) == [
        "alarm1", "alarm2", "exhausted", "overdraft-limit", "close-permit",
      ])
  }
}

@Suite struct ArrearsRebateTests {
  // Arrears repaid within 72 hours earn 1 % of the deepest arrears, at most 5.00 CNY.
  let rule = try! ArrearsRebateRule(windowSeconds: 72 * 3600, basisPoints: 100, cap: fen(500))
  let t0 = cst(2028, 5, 10, 10)

  @Test func arrearsRepaidWithinTheWindowEarnTheRebateOnTheDeepestArrears() {
    var tracker = ArrearsTracker()
    #expect(tracker.observe(balance: fen(200), at: t0 - 3600, rule: rule) == .zero)
    #expect(tracker.observe(balance: fen(-1000), at: t0, rule: rule) == .zero)
    #expect(tracker.arrearsSince == t0)
    #expect(tracker.observe(balance: fen(-3000), at: t0 + 3600, rule: rule) == .zero)
    #expect(tracker.observe(balance: fen(-2000), at: t0 + 7200, rule: rule) == .zero)
    #expect(tracker.deepest == fen(-3000))
    // Repaid after 48 h: 1 % of 30.00 CNY = 0.30 CNY.
    #expect(tracker.observe(balance: fen(500), at: t0 + 48 * 3600, rule: rule) == fen(30))
    #expect(tracker.arrearsSince == nil)
    // No new episode, no second rebate.
    #expect(tracker.observe(balance: fen(400), at: t0 + 49 * 3600, rule: rule) == .zero)
  }

  @Test func repaymentExactlyAtTheWindowEarnsAndOneSecondLaterDoesNot() {
    var onTime = ArrearsTracker()
    _ = onTime.observe(balance: fen(-1000), at: t0, rule: rule)
    #expect(onTime.observe(balance: .zero, at: t0 + 72 * 3600, rule: rule) == fen(10))
    var late = ArrearsTracker()
    _ = late.observe(balance: fen(-1000), at: t0, rule: rule)
    #expect(late.observe(balance: .zero, at: t0 + 72 * 3600 + 1, rule: rule) == .zero)
    #expect(late.arrearsSince == nil)
  }

  @Test func theRebateIsRoundedHalfUpAndCapped() {
    // 1 % of 12.50 CNY = 12.5 fen → 13.
    #expect(rule.rebate(began: t0, ended: t0 + 1, deepest: fen(-1250)) == fen(13))
    // 1 % of 12.49 CNY = 12.49 fen → 12.
    #expect(rule.rebate(began: t0, ended: t0 + 1, deepest: fen(-1249)) == fen(12))
    // 1 % of 1,000.00 CNY = 10.00 CNY, capped at 5.00.
    #expect(rule.rebate(began: t0, ended: t0 + 1, deepest: fen(-100_000)) == fen(500))
    // The most negative balance does not overflow.
    let all = try! ArrearsRebateRule(windowSeconds: 10, basisPoints: 10_000, cap: fen(Int64.max))
    #expect(all.rebate(began: 0, ended: 1, deepest: fen(Int64.min)) == fen(Int64.max))
    #expect(rule.rebate(began: Int64.min, ended: Int64.max, deepest: fen(-1000)) == .zero)
  }

  @Test func invalidRulesAreRejected() {
    #expect(throws: FeeControlConfigError.self) {
      try ArrearsRebateRule(windowSeconds: -1, basisPoints: 1, cap: .zero)
    }
    #expect(throws: FeeControlConfigError.self) {
      try ArrearsRebateRule(windowSeconds: 1, basisPoints: 10_001, cap: .zero)
    }
    #expect(throws: FeeControlConfigError.self) {
      try ArrearsRebateRule(windowSeconds: 1, basisPoints: 1, cap: fen(-1))
    }
  }
}

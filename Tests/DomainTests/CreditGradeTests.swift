import Testing

@testable import GridEdgeCore

@Suite struct CreditGradeTests {
  // Score units of 0.0001: intercept 6.0; −0.15 per day in arrears; +0.002 per ‰ of
  // top-up regularity; −0.0005 per ‰ of consumption volatility; −2.0 per disconnection.
  let coefficients = CreditCoefficients(
    intercept: 60_000, daysInArrears: -1500, topUpRegularity: 20, consumptionVolatility: -5,
    pastDisconnects: -20_000)
  // A ≥ 5.0, B ≥ 3.0, C ≥ 1.0, D below.
  var model: CreditModel {
    try! CreditModel(coefficients: coefficients, boundaries: [50_000, 30_000, 10_000])
  }

  @Test func scoreIsTheInterceptPlusTheWeightedFeatures() {
    let features = CreditFeatures(
      daysInArrears: 10, topUpRegularity: 800, consumptionVolatility: 400, pastDisconnects: 1)
    // 60,000 − 1,500×10 + 20×800 − 5×400 − 20,000×1 = 60,000 − 15,000 + 16,000 − 2,000 − 20,000 = 39,000
    #expect(model.score(features) == 39_000)
    #expect(model.grade(features) == CreditGrade(rank: 2))
    #expect(model.grade(features).letter == "B")
  }

  @Test func aScoreExactlyOnABoundaryHasTheBetterGrade() {
    #expect(model.grade(score: 50_000).rank == 1)
    #expect(model.grade(score: 49_999).rank == 2)
    #expect(model.grade(score: 30_000).rank == 2)
    #expect(model.grade(score: 9999).rank == 4)
    #expect(model.grade(score: Int64.min).letter == "D")
    #expect(model.gradeCount == 4)
  }

  @Test func extremeFeaturesSaturateInsteadOfTrapping() {
    let worst = CreditFeatures(
      daysInArrears: Int64.max, topUpRegularity: 0, consumptionVolatility: Int64.max,
      pastDisconnects: Int64.max)
    #expect(model.score(worst) == Int64.min)
    let best = CreditFeatures(
      daysInArrears: Int64.min, topUpRegularity: Int64.max, consumptionVolatility: 0, pastDisconnects: 0)
    #expect(model.score(best) == Int64.max)
    #expect(model.grade(best).rank == 1)
  }

  @Test func boundariesMustBeStrictlyDecreasing() {
    let error = #expect(throws: FeeControlConfigError.self) {
      try CreditModel(coefficients: coefficients, boundaries: [10_000, 30_000])
    }
    #expect(error?.code == "credit-model")
    #expect(throws: FeeControlConfigError.self) {
      try CreditModel(coefficients: coefficients, boundaries: [10_000, 10_000])
    }
    #expect(throws: Never.self) { try CreditModel(coefficients: coefficients, boundaries: []) }
  }

  @Test func eachGradeHasItsOwnThresholdsAndGrace() throws {
    func terms(overdraft: Int64, graceHours: Int64) throws -> GradeTerms {
      try GradeTerms(
        thresholds: PrepaidThresholds(
          alarm1: fen(2000), alarm2: fen(1000), overdraftLimit: fen(overdraft), closePermit: fen(500),
          hoardingLimit: fen(500_000)),
        disconnectGraceSeconds: graceHours * 3600)
    }
    let scheme = try CreditScheme(
      model: model,
      terms: [
        terms(overdraft: -5000, graceHours: 72), terms(overdraft: -2000, graceHours: 48),
        terms(overdraft: -1000, graceHours: 24), terms(overdraft: 0, graceHours: 0),
      ])
    let good = scheme.assess(
      CreditFeatures(daysInArrears: 0, topUpRegularity: 1000, consumptionVolatility: 100, pastDisconnects: 0))
    #expect(good.grade.rank == 1)
    #expect(good.terms.thresholds.overdraftLimit == fen(-5000))
    #expect(good.terms.disconnectGraceSeconds == 72 * 3600)
    let bad = scheme.assess(
      CreditFeatures(daysInArrears: 60, topUpRegularity: 0, consumptionVolatility: 2000, pastDisconnects: 3))
    #expect(bad.grade.letter == "D")
    #expect(bad.terms.thresholds.overdraftLimit == .zero)
    #expect(scheme.terms(for: CreditGrade(rank: 9)).disconnectGraceSeconds == 0)

    let mismatch = #expect(throws: FeeControlConfigError.self) {
      try CreditScheme(model: model, terms: [terms(overdraft: 0, graceHours: 0)])
    }
    #expect(mismatch?.description == "credit model: 4 grades but 1 sets of terms")
    #expect(throws: FeeControlConfigError.self) {
      try GradeTerms(thresholds: scheme.terms[0].thresholds, disconnectGraceSeconds: -1)
    }
  }

  @Test func consumptionVolatilityIsTheCoefficientOfVariationInPerMille() {
    #expect(CreditFeatures.consumptionVolatility(dailyEnergy: [kwh(10), kwh(10), kwh(10)]) == 0)
    // mean 2 kWh, σ 1 kWh → 0.5 → 500 ‰.
    #expect(CreditFeatures.consumptionVolatility(dailyEnergy: [kwh(1), kwh(3)]) == 500)
    // nine zero days and one of 100: mean 10, σ = √((9×100 + 8,100)/10) = 30 → 3,000 ‰.
    #expect(
      CreditFeatures.consumptionVolatility(dailyEnergy: Array(repeating: .zero, count: 9) + [wh(100)]) == 3000
    )
    // One spike in 200 days: CV = √199 ≈ 14.1, capped at 10,000 ‰.
    #expect(
      CreditFeatures.consumptionVolatility(dailyEnergy: Array(repeating: .zero, count: 199) + [wh(100)])
        == 10_000)
    #expect(CreditFeatures.consumptionVolatility(dailyEnergy: [kwh(5)]) == 0)
    #expect(CreditFeatures.consumptionVolatility(dailyEnergy: [.zero, .zero]) == 0)
    #expect(CreditFeatures.consumptionVolatility(dailyEnergy: [wh(-5), wh(-5)]) == 0)
    // Values whose squares overflow are scaled down, not trapped on: [0, x] has CV 1.
    #expect(CreditFeatures.consumptionVolatility(dailyEnergy: [.zero, wh(Int64.max / 2)]) == 1000)
    #expect(CreditFeatures.consumptionVolatility(dailyEnergy: [wh(Int64.max), wh(Int64.max)]) == 0)
  }

  @Test func topUpRegularityIsHighForEvenGaps() {
    let day: Int64 = 86_400
    #expect(CreditFeatures.topUpRegularity(topUpTimes: [0, 30 * day, 60 * day, 90 * day]) == 1000)
    // Gaps of 10 and 30 days: mean 20, σ 10 → CV 500 ‰ → 500.
    #expect(CreditFeatures.topUpRegularity(topUpTimes: [0, 10 * day, 40 * day]) == 500)
    // Very uneven gaps: CV above 1 → 0.
    #expect(CreditFeatures.topUpRegularity(topUpTimes: [0, 1, 2, 3, 400 * day]) == 0)
    #expect(CreditFeatures.topUpRegularity(topUpTimes: [0, 30 * day]) == 0)
    #expect(CreditFeatures.topUpRegularity(topUpTimes: [Int64.min, 0, Int64.max]) >= 0)
  }

  @Test func daysInArrearsCountsNegativeClosingBalances() {
    #expect(
      CreditFeatures.daysInArrears(dailyClosingBalances: [fen(10), .zero, fen(-1), fen(-500), fen(3)]) == 2)
  }

  @Test func integerSquareRootIsTheFloor() {
    #expect(integerSquareRoot(0) == 0)
    #expect(integerSquareRoot(1) == 1)
    #expect(integerSquareRoot(15) == 3)
    #expect(integerSquareRoot(16) == 4)
    #expect(integerSquareRoot(UInt64.max) == 4_294_967_295)
    #expect(integerSquareRoot(4_294_967_296 * 4_294_967_295) == 4_294_967_295)
  }

  @Test func gradeLettersRunFromA() {
    #expect(CreditGrade(rank: 1).letter == "A")
    #expect(CreditGrade(rank: 26).letter == "Z")
    #expect(CreditGrade(rank: 27).letter == "G27")
    #expect(CreditGrade(rank: 1) < CreditGrade(rank: 2))
  }
}

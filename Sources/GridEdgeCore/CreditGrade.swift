/// Credit grading: a linear discriminant score over local payment and consumption
/// features, in fixed point, and the terms (thresholds, disconnect grace) of each
/// grade. HQ fits the coefficients and sends them; the device only evaluates.
///
/// Score units: 1 unit = 0.0001. The score is
/// `intercept + Σ coefficient_i × feature_i`, coefficients in 0.0001 per feature
/// unit, so a coefficient of −1,500 on days in arrears lowers the score by 0.15 per day.
/// Arithmetic saturates at the ends of Int64 (it never traps), which keeps the
/// order of scores.

/// The local features of a customer, in the units HQ's model is fitted on.
public struct CreditFeatures: Hashable, Sendable {
  /// Days (of the last 365) whose closing balance was below zero.
  public var daysInArrears: Int64
  /// 0…1,000 (per mille): 1,000 − the coefficient of variation of the gaps between
  /// top-ups in per mille, at least 0; see `topUpRegularity(topUpTimes:)`.
  public var topUpRegularity: Int64
  /// Per mille: the coefficient of variation of daily consumption; see
  /// `consumptionVolatility(dailyEnergy:)`.
  public var consumptionVolatility: Int64
  /// Disconnections for arrears in the last 365 days.
  public var pastDisconnects: Int64

  public init(
    daysInArrears: Int64, topUpRegularity: Int64, consumptionVolatility: Int64, pastDisconnects: Int64
  ) {
    self.daysInArrears = daysInArrears
    self.topUpRegularity = topUpRegularity
    self.consumptionVolatility = consumptionVolatility
    self.pastDisconnects = pastDisconnects
  }

  /// The number of `dailyClosingBalances` below zero.
  public static func daysInArrears(dailyClosingBalances: [Money]) -> Int64 {
    Int64(dailyClosingBalances.filter { $0.fen < 0 }.count)
  }

  /// Top-up regularity in per mille: 1,000 − CV‰ of the gaps between consecutive
  /// top-up times (unix seconds, in order), at least 0. Fewer than three top-ups
  /// (two gaps) say nothing about regularity and give 0.
  public static func topUpRegularity(topUpTimes: [Int64]) -> Int64 {
    guard topUpTimes.count >= 3 else { return 0 }
    var gaps: [Int64] = []
    for index in topUpTimes.indices.dropFirst() {
      let (gap, overflow) = topUpTimes[index].subtractingReportingOverflow(topUpTimes[index - 1])
      gaps.append(overflow ? Int64.max : max(0, gap))
    }
    return max(0, 1000 - coefficientOfVariationPerMille(gaps))
  }

  /// Consumption volatility in per mille: the coefficient of variation (population
  /// standard deviation / mean) of the daily energies, at most 10,000. Negative
  /// days count as zero; fewer than two days, or no consumption, give 0.
  public static func consumptionVolatility(dailyEnergy: [Energy]) -> Int64 {
    guard dailyEnergy.count >= 2 else { return 0 }
    return coefficientOfVariationPerMille(dailyEnergy.map { max(0, $0.wattHours) })
  }
}

/// The coefficients of the score, in 0.0001 per feature unit, and the intercept in 0.0001.
public struct CreditCoefficients: Hashable, Sendable {
  public var intercept: Int64
  public var daysInArrears: Int64
  public var topUpRegularity: Int64
  public var consumptionVolatility: Int64
  public var pastDisconnects: Int64

  public init(
    intercept: Int64, daysInArrears: Int64, topUpRegularity: Int64, consumptionVolatility: Int64,
    pastDisconnects: Int64
  ) {
    self.intercept = intercept
    self.daysInArrears = daysInArrears
    self.topUpRegularity = topUpRegularity
    self.consumptionVolatility = consumptionVolatility
    self.pastDisconnects = pastDisconnects
  }
}

/// A credit grade: rank 1 is the best.
public struct CreditGrade: Hashable, Comparable, Sendable {
  /// 1 = best.
  public let rank: Int

  public init(rank: Int) { self.rank = rank }

  /// "A" for rank 1, "B" for 2, …; "G27" style past "Z".
  public var letter: String {
    guard rank >= 1, rank <= 26 else { return "G" + String(rank) }
    return String(Character(Unicode.Scalar(UInt8(64 + rank))))
  }

  /// Better grades sort first.
  public static func < (a: CreditGrade, b: CreditGrade) -> Bool { a.rank < b.rank }
}

/// A linear discriminant model: coefficients and grade boundaries.
public struct CreditModel: Hashable, Sendable {
  public let coefficients: CreditCoefficients
  /// The minimum score (0.0001 units) of grade 1, 2, …, strictly decreasing; a score
  /// below the last boundary is the last grade (rank `boundaries.count + 1`).
  public let boundaries: [Int64]

  /// A model.
  /// - Throws: `FeeControlConfigError` when the boundaries are not strictly decreasing.
  public init(coefficients: CreditCoefficients, boundaries: [Int64]) throws(FeeControlConfigError) {
    for index in boundaries.indices.dropFirst() where boundaries[index] >= boundaries[index - 1] {
      throw FeeControlConfigError(.creditModel("grade boundaries are not strictly decreasing"))
    }
    self.coefficients = coefficients
    self.boundaries = boundaries
  }

  /// The number of grades.
  public var gradeCount: Int { boundaries.count + 1 }

  /// intercept + Σ coefficient × feature, in 0.0001 units, saturating.
  public func score(_ features: CreditFeatures) -> Int64 {
    var score = coefficients.intercept
    score = saturatingAdd(score, saturatingMultiply(coefficients.daysInArrears, features.daysInArrears))
    score = saturatingAdd(score, saturatingMultiply(coefficients.topUpRegularity, features.topUpRegularity))
    score = saturatingAdd(
      score, saturatingMultiply(coefficients.consumptionVolatility, features.consumptionVolatility))
    score = saturatingAdd(score, saturatingMultiply(coefficients.pastDisconnects, features.pastDisconnects))
    return score
  }

  /// The grade of a score: the first whose boundary it reaches.
  public func grade(score: Int64) -> CreditGrade {
    for (index, boundary) in boundaries.enumerated() where score >= boundary {
      return CreditGrade(rank: index + 1)
    }
    return CreditGrade(rank: boundaries.count + 1)
  }

  /// The grade of a customer with `features`.
  public func grade(_ features: CreditFeatures) -> CreditGrade { grade(score: score(features)) }
}

/// What a grade means for a customer.
public struct GradeTerms: Hashable, Sendable {
  public let thresholds: PrepaidThresholds
  /// How long the balance must have been below the overdraft limit before a
  /// disconnection for arrears (the time must exceed it).
  public let disconnectGraceSeconds: Int64

  /// Terms of a grade.
  /// - Throws: `FeeControlConfigError` for a negative grace.
  public init(thresholds: PrepaidThresholds, disconnectGraceSeconds: Int64) throws(FeeControlConfigError) {
    guard disconnectGraceSeconds >= 0 else { throw FeeControlConfigError(.creditModel("negative grace")) }
    self.thresholds = thresholds
    self.disconnectGraceSeconds = disconnectGraceSeconds
  }
}

/// A model and the terms of each of its grades.
public struct CreditScheme: Hashable, Sendable {
  public let model: CreditModel
  /// Index 0 = grade 1.
  public let terms: [GradeTerms]

  /// A scheme.
  /// - Throws: `FeeControlConfigError` unless there are exactly `model.gradeCount` terms.
  public init(model: CreditModel, terms: [GradeTerms]) throws(FeeControlConfigError) {
    guard terms.count == model.gradeCount else {
      throw FeeControlConfigError(
        .creditModel(
          String(model.gradeCount) + " grades but " + String(terms.count) + " sets of terms"))
    }
    self.model = model
    self.terms = terms
  }

  /// The terms of `grade` (the last grade's for a rank beyond it, the first's below 1).
  public func terms(for grade: CreditGrade) -> GradeTerms {
    terms[min(max(grade.rank, 1), terms.count) - 1]
  }

  /// The grade and terms of a customer with `features`.
  public func assess(_ features: CreditFeatures) -> (grade: CreditGrade, terms: GradeTerms) {
    let grade = model.grade(features)
    return (grade, terms(for: grade))
  }
}

/// CV = population standard deviation / mean, in per mille, at most 10,000; 0 for a
/// zero mean. Values ≥ 0. Integer only: CV = √(nΣx² − (Σx)²) / Σx, the values
/// halved until the sums fit in 64 bits (CV does not depend on scale).
func coefficientOfVariationPerMille(_ values: [Int64]) -> Int64 {
  var scaled = values
  while true {
    let n = Int64(scaled.count)
    var sum: Int64 = 0
    var sumOfSquares: Int64 = 0
    var fits = true
    for value in scaled {
      let (square, o1) = value.multipliedReportingOverflow(by: value)
      let (s1, o2) = sum.addingReportingOverflow(value)
      let (s2, o3) = sumOfSquares.addingReportingOverflow(square)
      if o1 || o2 || o3 {
        fits = false
        break
      }
      sum = s1
      sumOfSquares = s2
    }
    if fits {
      let (nTimes, o4) = n.multipliedReportingOverflow(by: sumOfSquares)
      let (sumSquared, o5) = sum.multipliedReportingOverflow(by: sum)
      if !o4 && !o5 {
        guard sum > 0 else { return 0 }
        let spread = integerSquareRoot(UInt64(max(0, nTimes - sumSquared)))  // n · σ
        // n·σ / Σx = σ / mean.
        let (perMille, o6) = spread.multipliedReportingOverflow(by: 1000)
        if o6 { return 10_000 }
        return min(10_000, Int64(perMille / UInt64(sum)))
      }
    }
    scaled = scaled.map { $0 / 2 }
  }
}

/// ⌊√value⌋.
func integerSquareRoot(_ value: UInt64) -> UInt64 {
  guard value > 1 else { return value }
  // Newton's iteration from above converges to ⌊√value⌋; ⌈value/2⌉ without overflow.
  var x = value
  var y = value / 2 + value % 2
  while y < x {
    x = y
    y = (x + value / x) / 2
  }
  return x
}

/// a + b, clamped to Int64.
func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
  let (sum, overflow) = a.addingReportingOverflow(b)
  guard overflow else { return sum }
  return b > 0 ? Int64.max : Int64.min
}

/// a × b, clamped to Int64.
func saturatingMultiply(_ a: Int64, _ b: Int64) -> Int64 {
  let (product, overflow) = a.multipliedReportingOverflow(by: b)
  guard overflow else { return product }
  return (a < 0) != (b < 0) ? Int64.min : Int64.max
}

/// The energy balance (line loss) of one transformer area for one day, and the
/// per-meter anomaly rules that rank suspects (DESIGN.md §6). Pure: no I/O.
///
/// A suspect's score (basis points) = the share of the area's loss its drop against
/// its own median explains + the weights of the rules that fired (reverse energy
/// 3,000, energy while the relay is open 3,000, stopped 2,000, sudden drop 1,000, clock
/// drift and missed reads 500 each) +
/// `gradeWeight` for each credit grade below the best + `repeatWeight` for each history
/// day it was already a suspect.
///
/// supplied = area meter energy × CT ratio; sold = Σ customer meters with data;
/// loss = supplied − sold; loss rate = loss / supplied in basis points (0.01 %),
/// rounded half away from zero. The rate is withheld when collection is incomplete,
/// because a missing customer meter looks exactly like loss.

/// One meter's energy for the day and its own recent history.
public struct MeterDay: Hashable, Sendable {
  /// The meter's address (12 digits).
  public var meter: String
  /// The customer it bills (empty for none).
  public var customer: String
  /// The day's energy: freeze(day + 1) − freeze(day), in Wh; nil when a freeze is missing.
  public var energy: Energy?
  /// The energies of previous days that have both freezes, oldest first (missing days left out).
  public var history: [Energy]
  /// The customer's credit grade; nil when unknown.
  public var grade: CreditGrade?
  /// The meter clock's last measured offset from the concentrator's, in seconds
  /// (positive: ahead); nil when never checked.
  public var clockDriftSeconds: Int64?
  /// Collections in the balance's window that found no reading for the meter.
  public var missedReads: Int
  /// Collections in the window the meter should have a reading from.
  public var expectedReads: Int
  /// The meter's relay as the agent knows it in the period: verified open (read back
  /// from the meter after a trip) for part or all of it, with what the meter
  /// registered meanwhile; nil when it was not known open at any time of the period.
  public var openRelay: OpenRelay?
  /// On how many of the history days the meter was already a suspect.
  public var pastSuspectDays: Int

  public init(
    meter: String, customer: String = "", energy: Energy?, history: [Energy] = [], grade: CreditGrade? = nil,
    clockDriftSeconds: Int64? = nil, missedReads: Int = 0, expectedReads: Int = 0,
    openRelay: OpenRelay? = nil,
    pastSuspectDays: Int = 0
  ) {
    self.meter = meter
    self.customer = customer
    self.energy = energy
    self.history = history
    self.grade = grade
    self.clockDriftSeconds = clockDriftSeconds
    self.missedReads = missedReads
    self.expectedReads = expectedReads
    self.openRelay = openRelay
    self.pastSuspectDays = pastSuspectDays
  }
}

/// A meter's relay known open during a balance period, and the energy the meter
/// registered while it was: the evidence of the energy-while-open rule.
public struct OpenRelay: Hashable, Sendable {
  /// When the agent first verified the relay open (Unix ms); it may be before the period.
  public var since: Int64
  /// When a close was next requested (Unix ms); nil when the relay is still open.
  public var until: Int64?
  /// The energy registered (× CT ratio) between the readings at `from` and `to`, the
  /// first and last readings of the period taken while the relay was known open; zero
  /// when fewer than two readings fall in that time.
  public var energy: Energy
  /// The first reading's time (Unix ms) in the open time of the period.
  public var from: Int64
  /// The last reading's time (Unix ms) in the open time of the period.
  public var to: Int64

  public init(since: Int64, until: Int64?, energy: Energy, from: Int64, to: Int64) {
    self.since = since
    self.until = until
    self.energy = energy
    self.from = from
    self.to = to
  }
}

/// What the balance is computed from: the area meter and the customer meters of one area.
public struct BalanceInput: Hashable, Sendable {
  /// The transformer area's name.
  public var area: String
  /// The area meter's address.
  public var areaMeter: String
  /// The area meter's register energy for the day (before the CT ratio); nil when missing.
  public var areaEnergy: Energy?
  /// The area meter's current-transformer ratio (≥ 1): primary energy = register × ratio.
  public var ctRatio: Int64
  /// Every customer meter in the area, with or without data.
  public var customers: [MeterDay]

  public init(area: String, areaMeter: String, areaEnergy: Energy?, ctRatio: Int64, customers: [MeterDay]) {
    self.area = area
    self.areaMeter = areaMeter
    self.areaEnergy = areaEnergy
    self.ctRatio = ctRatio
    self.customers = customers
  }
}

/// The thresholds of the balance and of the anomaly rules.
public struct BalanceThresholds: Hashable, Sendable {
  /// The rate is withheld below this completeness (basis points of meters with data).
  public var minimumCompletenessBasisPoints: Int64 = 9_800
  /// A loss rate above this (basis points) is flagged as high loss.
  public var highLossBasisPoints: Int64 = 800
  /// A day at or below this share (basis points) of the meter's median is a sudden
  /// drop. 65 %, so a bypass carrying half the load is caught also on a day the
  /// customer uses up to 30 % more than usual (at 50 % it would be caught only on days
  /// at or below the median).
  public var suddenDropBasisPoints: Int64 = 6_500
  /// The fewest history days the stopped and drop rules need.
  public var minimumHistoryDays: Int = 3
  /// A meter whose median day is below this is too small to call stopped or dropped.
  public var minimumMedianEnergy = Energy(wattHours: 500)
  /// A meter clock further off than this (seconds, either way) is a clock-drift anomaly.
  public var maximumClockDriftSeconds: Int64 = 60
  /// A meter missing at least this share (basis points) of its expected reads in the
  /// window is a missed-reads anomaly.
  public var missedReadsBasisPoints: Int64 = 2_000
  /// Added to a suspect's score for each credit grade below the best (B +1×, C +2×, …).
  public var gradeWeight: Int64 = 250
  /// Added to a suspect's score for each history day it was already a suspect.
  public var repeatWeight: Int64 = 250
  /// False while the per-meter anomaly rules are off for the period (a planned
  /// outage of the area overlaps it): no suspects, and the balance is flagged
  /// `anomaly-rules-off`.
  public var anomalyRules = true

  public init() {}
}

/// Why a balance has no loss rate.
public struct RateWithheld: Hashable, Sendable, CustomStringConvertible {
  private enum Kind: Hashable, Sendable {
    case areaMeterMissing
    case noSupply
    case incomplete(completeness: Int64, threshold: Int64, missing: Int)
  }

  private let kind: Kind

  static let areaMeterMissing = RateWithheld(kind: .areaMeterMissing)
  static let noSupply = RateWithheld(kind: .noSupply)
  static func incomplete(completeness: Int64, threshold: Int64, missing: Int) -> RateWithheld {
    RateWithheld(kind: .incomplete(completeness: completeness, threshold: threshold, missing: missing))
  }

  /// `area-meter-missing`, `no-supply` or `incomplete-collection`.
  public var code: String {
    switch kind {
    case .areaMeterMissing: return "area-meter-missing"
    case .noSupply: return "no-supply"
    case .incomplete: return "incomplete-collection"
    }
  }

  public var description: String {
    switch kind {
    case .areaMeterMissing:
      return
        "the area meter has no energy for the day (a freeze is missing), so nothing is known of the supply"
    case .noSupply:
      return "the area meter registered no energy for the day, so a rate cannot be formed"
    case .incomplete(let completeness, let threshold, let missing):
      return "collection is " + percentText(completeness) + " complete (" + String(missing)
        + " meter(s) without data), below the " + percentText(threshold)
        + " needed: a missing meter would count as loss"
    }
  }
}

/// An area-level finding.
public struct BalanceFlag: Hashable, Sendable, CustomStringConvertible {
  private enum Kind: Hashable, Sendable {
    case negativeLoss(Energy)
    case highLoss(rate: Int64, threshold: Int64)
    case anomalyRulesOff
  }

  private let kind: Kind

  static func negativeLoss(_ loss: Energy) -> BalanceFlag { BalanceFlag(kind: .negativeLoss(loss)) }
  static func highLoss(rate: Int64, threshold: Int64) -> BalanceFlag {
    BalanceFlag(kind: .highLoss(rate: rate, threshold: threshold))
  }

  static let anomalyRulesOff = BalanceFlag(kind: .anomalyRulesOff)

  /// `negative-loss`, `high-loss` or `anomaly-rules-off`.
  public var code: String {
    switch kind {
    case .negativeLoss: return "negative-loss"
    case .highLoss: return "high-loss"
    case .anomalyRulesOff: return "anomaly-rules-off"
    }
  }

  public var description: String {
    switch kind {
    case .negativeLoss(let loss):
      return "customers registered " + String(-loss.wattHours)
        + " Wh more than the area meter supplied: metering, CT ratio, topology or timing error"
    case .highLoss(let rate, let threshold):
      return "loss rate " + percentText(rate) + " is above the " + percentText(threshold) + " threshold"
    case .anomalyRulesOff:
      return "a planned outage of the area overlaps the period: the per-meter anomaly rules are off"
    }
  }
}

/// One anomaly rule that fired for a meter, with its evidence.
public struct MeterAnomaly: Hashable, Sendable, CustomStringConvertible {
  /// The rules.
  public enum Rule: Hashable, Sendable {
    /// Zero energy for the day while its history shows consumption.
    case stopped
    /// The register went backwards over the day (negative energy).
    case reverseEnergy
    /// The day is at or below the drop threshold of the meter's own median.
    case suddenDrop
    /// The meter's clock is off by more than the limit: its freezes fall at the
    /// wrong time (and a tampered clock shifts energy between tariffs).
    case clockDrift
    /// The meter missed at least the limit's share of its collections in the window.
    case missedReads
    /// The meter registered energy while its relay was open: the supply goes around
    /// the relay (a bypass) or the relay failed.
    case energyWhileOpen

    /// `stopped`, `reverse-energy`, `sudden-drop`, `clock-drift`, `missed-reads`,
    /// `energy-while-open`.
    public var code: String {
      switch self {
      case .stopped: return "stopped"
      case .reverseEnergy: return "reverse-energy"
      case .suddenDrop: return "sudden-drop"
      case .clockDrift: return "clock-drift"
      case .missedReads: return "missed-reads"
      case .energyWhileOpen: return "energy-while-open"
      }
    }

    /// How much the rule weighs in a suspect's score (basis points added to its share).
    public var weight: Int64 {
      switch self {
      case .reverseEnergy, .energyWhileOpen: return 3_000
      case .stopped: return 2_000
      case .suddenDrop: return 1_000
      case .clockDrift, .missedReads: return 500
      }
    }
  }

  public let rule: Rule
  /// The day's energy.
  public let energy: Energy
  /// The median of the meter's history days (zero when it has none).
  public let median: Energy
  /// How many history days the median is over.
  public let historyDays: Int
  /// For `clockDrift`: the clock's offset in seconds, and the limit.
  public let driftSeconds: Int64
  /// For `missedReads`: reads missed and expected in the window; for `clockDrift`
  /// and `missedReads`, `limit` is the threshold (seconds, basis points).
  public let missed: Int
  public let expected: Int
  public let limit: Int64
  /// For `energyWhileOpen`: the relay's open time and the readings bounding `energy`
  /// (the energy registered while it was open, not the period's).
  public let openRelay: OpenRelay?

  init(
    rule: Rule, energy: Energy, median: Energy, historyDays: Int, driftSeconds: Int64 = 0, missed: Int = 0,
    expected: Int = 0, limit: Int64 = 0, openRelay: OpenRelay? = nil
  ) {
    self.rule = rule
    self.energy = energy
    self.median = median
    self.historyDays = historyDays
    self.driftSeconds = driftSeconds
    self.missed = missed
    self.expected = expected
    self.limit = limit
    self.openRelay = openRelay
  }

  public var description: String {
    switch rule {
    case .stopped:
      return "stopped: 0 Wh for the day, median " + String(median.wattHours) + " Wh over the previous "
        + String(historyDays) + " day(s)"
    case .reverseEnergy:
      return "reverse energy: the register went back " + String(-energy.wattHours) + " Wh over the day"
    case .suddenDrop:
      return "sudden drop: " + String(energy.wattHours) + " Wh is "
        + percentText(ratioBasisPoints(energy.wattHours, median.wattHours)) + " of its median "
        + String(median.wattHours) + " Wh over the previous " + String(historyDays) + " day(s)"
    case .clockDrift:
      return "clock drift: the meter's clock is " + String(driftSeconds.magnitude) + " s "
        + (driftSeconds > 0 ? "ahead of" : "behind") + " the concentrator's (limit " + String(limit)
        + " s): its freezes and tariff periods fall at the wrong time"
    case .energyWhileOpen:
      guard let open = openRelay else {
        return "energy while the relay is open: " + String(energy.wattHours)
          + " Wh registered while the supply was cut"
      }
      return "energy while the relay is open: " + String(energy.wattHours) + " Wh registered from "
        + utcText(open.from) + " to " + utcText(open.to) + ", the relay verified open since "
        + utcText(open.since)
        + (open.until.map { " (close requested " + utcText($0) + ")" } ?? " (still open)")
    case .missedReads:
      return "missed reads: " + String(missed) + " of " + String(expected)
        + " collections in the window found no reading ("
        + percentText(ratioBasisPoints(Int64(missed), Int64(expected)))
        + ", limit " + percentText(limit) + ")"
    }
  }
}

/// A meter worth inspecting, with why.
public struct Suspect: Hashable, Sendable {
  public let meter: String
  public let customer: String
  /// The drop against its median: median − the day's energy, in Wh (≥ 0).
  public let drop: Energy
  /// The share of the area's loss that drop would explain, in basis points (0…10,000;
  /// 0 when there is no positive loss).
  public let explainedBasisPoints: Int64
  /// explained share + the weights of the rules that fired + the credit grade's weight.
  public let score: Int64
  public let anomalies: [MeterAnomaly]
  /// The customer's credit grade, when known.
  public let grade: CreditGrade?
  /// On how many of the history days it was already a suspect.
  public let pastSuspectDays: Int
}

/// The balance of one area for one day.
public struct EnergyBalance: Hashable, Sendable {
  public let area: String
  /// Area meter energy × CT ratio; nil when the area meter has no data.
  public let supplied: Energy?
  /// Σ of the customer meters with data.
  public let sold: Energy
  /// supplied − sold; nil when the area meter has no data.
  public let loss: Energy?
  /// loss / supplied in basis points, half away from zero; nil when withheld.
  public let lossRateBasisPoints: Int64?
  /// Why the rate is nil.
  public let withheld: RateWithheld?
  /// Meters in the area, the area meter included.
  public let metersInArea: Int
  /// Meters with the day's energy, the area meter included.
  public let metersWithData: Int
  /// metersWithData / metersInArea in basis points, rounded down (never shows
  /// complete when a meter is missing).
  public let completenessBasisPoints: Int64
  /// The meters without data (the area meter first when it is one of them).
  public let missing: [String]
  public let flags: [BalanceFlag]
  /// Suspects, highest score first (ties by address).
  public let suspects: [Suspect]

  /// Computes the balance of `input`.
  public init(_ input: BalanceInput, thresholds: BalanceThresholds = BalanceThresholds()) {
    area = input.area
    var missing: [String] = []
    if input.areaEnergy == nil { missing.append(input.areaMeter) }
    var sold = Energy.zero
    for customer in input.customers {
      if let energy = customer.energy { sold = sold + energy } else { missing.append(customer.meter) }
    }
    self.sold = sold
    self.missing = missing
    metersInArea = input.customers.count + 1
    metersWithData = metersInArea - missing.count
    completenessBasisPoints = Int64(metersWithData) * 10_000 / Int64(metersInArea)

    var flags: [BalanceFlag] = []
    if let area = input.areaEnergy {
      let supplied = Energy(wattHours: area.wattHours * input.ctRatio)
      let loss = supplied - sold
      self.supplied = supplied
      self.loss = loss
      if loss.wattHours < 0 { flags.append(.negativeLoss(loss)) }
      if supplied.wattHours <= 0 {
        withheld = .noSupply
        lossRateBasisPoints = nil
      } else if completenessBasisPoints < thresholds.minimumCompletenessBasisPoints {
        withheld = .incomplete(
          completeness: completenessBasisPoints, threshold: thresholds.minimumCompletenessBasisPoints,
          missing: missing.count)
        lossRateBasisPoints = nil
      } else {
        let rate = ratioBasisPoints(loss.wattHours, supplied.wattHours)
        withheld = nil
        lossRateBasisPoints = rate
        if rate > thresholds.highLossBasisPoints {
          flags.append(.highLoss(rate: rate, threshold: thresholds.highLossBasisPoints))
        }
      }
    } else {
      supplied = nil
      loss = nil
      withheld = .areaMeterMissing
      lossRateBasisPoints = nil
    }
    if !thresholds.anomalyRules { flags.append(.anomalyRulesOff) }
    self.flags = flags

    var suspects: [Suspect] = []
    let positiveLoss = max(loss?.wattHours ?? 0, 0)
    for customer in input.customers where thresholds.anomalyRules {
      guard let energy = customer.energy else { continue }
      let anomalies = Self.anomalies(customer, energy: energy, thresholds: thresholds)
      guard !anomalies.isEmpty else { continue }
      let median = anomalies[0].median
      let drop = max(median.wattHours - energy.wattHours, 0)
      let explained = positiveLoss > 0 ? min(drop, positiveLoss) * 10_000 / positiveLoss : 0
      var score = explained
      for anomaly in anomalies { score += anomaly.rule.weight }
      if let grade = customer.grade { score += Int64(max(grade.rank - 1, 0)) * thresholds.gradeWeight }
      score += Int64(max(customer.pastSuspectDays, 0)) * thresholds.repeatWeight
      suspects.append(
        Suspect(
          meter: customer.meter, customer: customer.customer, drop: Energy(wattHours: drop),
          explainedBasisPoints: explained, score: score, anomalies: anomalies, grade: customer.grade,
          pastSuspectDays: customer.pastSuspectDays))
    }
    suspects.sort { $0.score != $1.score ? $0.score > $1.score : $0.meter < $1.meter }
    self.suspects = suspects
  }

  /// Every rule that fires for `meter` with the period's `energy`: the energy rules
  /// (`anomalies(energy:history:thresholds:)`; stopped and sudden drop not when the
  /// relay was open in the period: a cut supply explains them), then energy while the
  /// relay is open (the energy of `openRelay`, not the period's), clock drift and
  /// missed reads.
  public static func anomalies(_ meter: MeterDay, energy: Energy, thresholds: BalanceThresholds)
    -> [MeterAnomaly]
  {
    var out = anomalies(energy: energy, history: meter.history, thresholds: thresholds)
    let median = Self.median(meter.history)
    // A cut supply explains a stopped or dropped meter; energy is what is suspect then.
    if let open = meter.openRelay {
      out.removeAll { $0.rule == .stopped || $0.rule == .suddenDrop }
      if open.energy.wattHours > 0 {
        out.append(
          MeterAnomaly(
            rule: .energyWhileOpen, energy: open.energy, median: median, historyDays: meter.history.count,
            openRelay: open))
      }
    }
    if let drift = meter.clockDriftSeconds, drift.magnitude > thresholds.maximumClockDriftSeconds.magnitude {
      out.append(
        MeterAnomaly(
          rule: .clockDrift, energy: energy, median: median, historyDays: meter.history.count,
          driftSeconds: drift, limit: thresholds.maximumClockDriftSeconds))
    }
    if meter.expectedReads > 0, meter.missedReads > 0,
      Int64(meter.missedReads) * 10_000 >= Int64(meter.expectedReads) * thresholds.missedReadsBasisPoints
    {
      out.append(
        MeterAnomaly(
          rule: .missedReads, energy: energy, median: median, historyDays: meter.history.count,
          missed: meter.missedReads, expected: meter.expectedReads, limit: thresholds.missedReadsBasisPoints))
    }
    return out
  }

  /// The rules that fire for a meter's day `energy` against its `history`.
  public static func anomalies(energy: Energy, history: [Energy], thresholds: BalanceThresholds)
    -> [MeterAnomaly]
  {
    let median = Self.median(history)
    var out: [MeterAnomaly] = []
    if energy.wattHours < 0 {
      out.append(
        MeterAnomaly(rule: .reverseEnergy, energy: energy, median: median, historyDays: history.count))
    }
    guard history.count >= thresholds.minimumHistoryDays, median >= thresholds.minimumMedianEnergy else {
      return out
    }
    if energy.wattHours == 0 {
      out.append(MeterAnomaly(rule: .stopped, energy: energy, median: median, historyDays: history.count))
    } else if energy.wattHours > 0,
      energy.wattHours * 10_000 <= median.wattHours * thresholds.suddenDropBasisPoints
    {
      out.append(MeterAnomaly(rule: .suddenDrop, energy: energy, median: median, historyDays: history.count))
    }
    return out
  }

  /// `12.34%` for 1,234 basis points (two decimals, sign for negatives).
  public static func percent(_ basisPoints: Int64) -> String { percentText(basisPoints) }

  /// The median of `days`: the middle one, or the mean of the two middle ones rounded
  /// down for an even count; zero for none.
  public static func median(_ days: [Energy]) -> Energy {
    guard !days.isEmpty else { return .zero }
    let sorted = days.map { $0.wattHours }.sorted()
    let mid = sorted.count / 2
    if sorted.count % 2 == 1 { return Energy(wattHours: sorted[mid]) }
    let sum = sorted[mid - 1] + sorted[mid]
    return Energy(wattHours: sum >= 0 ? sum / 2 : (sum - 1) / 2)
  }
}

/// `a / b` in basis points, rounded half away from zero; 0 when b is 0.
func ratioBasisPoints(_ a: Int64, _ b: Int64) -> Int64 {
  guard b != 0 else { return 0 }
  let numerator = a.magnitude * 10_000
  let denominator = b.magnitude
  let rounded = Int64((numerator + denominator / 2) / denominator)
  return (a < 0) != (b < 0) ? -rounded : rounded
}

/// `2026-01-08T03:00:00Z` for Unix ms (UTC, seconds).
func utcText(_ milliseconds: Int64) -> String {
  let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
  return UTCOffset.utc.localDateTime(fromUnix: seconds).isoText + "Z"
}

/// `12.34%` for 1,234 basis points.
func percentText(_ basisPoints: Int64) -> String {
  let sign = basisPoints < 0 ? "-" : ""
  let magnitude = basisPoints.magnitude
  let hundredths = magnitude % 100
  return sign + String(magnitude / 100) + "." + (hundredths < 10 ? "0" : "") + String(hundredths) + "%"
}

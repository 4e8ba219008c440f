/// Prepaid rules: top-up acceptance, balance thresholds and the arrears rebate.
/// Pure: the ledger (top-ups and charges) is stored by others; these functions
/// decide from the stored values and never change a balance themselves.

/// The balance levels of one credit grade.
///
/// A balance is *below* a level when it is strictly less than it; it *reaches* a
/// level when it is greater than or equal. So a balance of exactly the alarm 1
/// amount raises no alarm, and a balance of exactly the close-permit amount allows
/// reconnection.
public struct PrepaidThresholds: Hashable, Sendable {
  /// The first low-balance alarm (e.g. 20.00 CNY).
  public let alarm1: Money
  /// The second, lower alarm (e.g. 10.00 CNY); ≤ `alarm1`.
  public let alarm2: Money
  /// The lowest balance allowed: zero or negative (e.g. −10.00 CNY of credit). A
  /// balance below it makes the customer liable to disconnection.
  public let overdraftLimit: Money
  /// A disconnected customer may be reconnected once the balance reaches it; above
  /// `overdraftLimit`.
  public let closePermit: Money
  /// The highest balance a top-up may lead to (anti-hoarding, e.g. 5,000.00 CNY).
  public let hoardingLimit: Money

  /// Thresholds, checked for order.
  /// - Throws: `FeeControlConfigError` unless
  ///   `hoardingLimit ≥ alarm1 ≥ alarm2 ≥ overdraftLimit`, `overdraftLimit ≤ 0`,
  ///   `overdraftLimit < closePermit ≤ hoardingLimit` and `hoardingLimit > 0`.
  public init(alarm1: Money, alarm2: Money, overdraftLimit: Money, closePermit: Money, hoardingLimit: Money)
    throws(FeeControlConfigError)
  {
    guard overdraftLimit.fen <= 0 else {
      throw FeeControlConfigError(.thresholds("overdraft limit above zero"))
    }
    guard alarm2 >= overdraftLimit else {
      throw FeeControlConfigError(.thresholds("alarm 2 below the overdraft limit"))
    }
    guard alarm1 >= alarm2 else { throw FeeControlConfigError(.thresholds("alarm 1 below alarm 2")) }
    guard closePermit > overdraftLimit else {
      throw FeeControlConfigError(.thresholds("close-permit amount not above the overdraft limit"))
    }
    guard hoardingLimit.fen > 0, hoardingLimit >= alarm1, hoardingLimit >= closePermit else {
      throw FeeControlConfigError(
        .thresholds("hoarding limit not above zero, alarm 1 and close-permit amount"))
    }
    self.alarm1 = alarm1
    self.alarm2 = alarm2
    self.overdraftLimit = overdraftLimit
    self.closePermit = closePermit
    self.hoardingLimit = hoardingLimit
  }

  /// The amount of `threshold`.
  public func level(of threshold: BalanceThreshold) -> Money {
    switch threshold {
    case .alarm1: return alarm1
    case .alarm2: return alarm2
    case .exhausted: return .zero
    case .overdraftLimit: return overdraftLimit
    case .closePermit: return closePermit
    }
  }

  /// The thresholds crossed when the balance goes from `old` to `new`.
  ///
  /// Down (`old ≥ level > new`): from the highest level to the lowest. Up
  /// (`old < level ≤ new`): from the lowest to the highest. So a charge from 25.00
  /// to 5.00 CNY with alarms at 20 and 10 gives alarm 1 down, then alarm 2 down.
  /// Equal levels come in declaration order going down and the reverse going up.
  public func crossings(from old: Money, to new: Money) -> [ThresholdCrossing] {
    if new < old {
      let crossed = BalanceThreshold.allCases.filter { level(of: $0) <= old && level(of: $0) > new }
      return crossed.sorted { a, b in
        level(of: a) != level(of: b) ? level(of: a) > level(of: b) : a.rawValue < b.rawValue
      }.map { ThresholdCrossing(threshold: $0, direction: .down) }
    } else if new > old {
      let crossed = BalanceThreshold.allCases.filter { level(of: $0) > old && level(of: $0) <= new }
      return crossed.sorted { a, b in
        level(of: a) != level(of: b) ? level(of: a) < level(of: b) : a.rawValue > b.rawValue
      }.map { ThresholdCrossing(threshold: $0, direction: .up) }
    }
    return []
  }

  /// True when `balance` is below the overdraft limit (liable to disconnection).
  public func isBeyondOverdraft(_ balance: Money) -> Bool { balance < overdraftLimit }

  /// True when `balance` allows a disconnected customer to be reconnected.
  public func permitsReconnect(_ balance: Money) -> Bool { balance >= closePermit }
}

/// A balance level that produces an event when crossed.
public enum BalanceThreshold: Int, CaseIterable, Hashable, Sendable {
  case alarm1 = 1
  case alarm2
  /// Zero: the prepaid credit is used up and the overdraft begins.
  case exhausted
  case overdraftLimit
  case closePermit

  /// A stable name for events.
  public var code: String {
    switch self {
    case .alarm1: return "alarm1"
    case .alarm2: return "alarm2"
    case .exhausted: return "exhausted"
    case .overdraftLimit: return "overdraft-limit"
    case .closePermit: return "close-permit"
    }
  }
}

/// Which way a balance crossed a threshold.
public enum CrossingDirection: Hashable, Sendable {
  /// From at or above the level to below it.
  case down
  /// From below the level to at or above it.
  case up
}

/// An event: the balance crossed `threshold` going `direction`.
public struct ThresholdCrossing: Hashable, Sendable {
  public let threshold: BalanceThreshold
  public let direction: CrossingDirection

  public init(threshold: BalanceThreshold, direction: CrossingDirection) {
    self.threshold = threshold
    self.direction = direction
  }
}

/// What to do with a top-up (a purchase made at HQ or a sales point, numbered by the
/// customer's purchase count). Only `apply` changes the balance.
public enum TopUpDecision: Hashable, Sendable {
  /// The next purchase: credit it; the balance becomes `newBalance`.
  case apply(newBalance: Money)
  /// This purchase count was already applied (a resend): nothing to do.
  case duplicate
  /// One or more purchases before this one are missing: refused until they arrive.
  case gap(expected: UInt32)
  /// The balance would exceed the hoarding limit; at most `room` could be accepted now.
  case overHoardingLimit(room: Money)
  /// The amount is zero or negative.
  case invalidAmount

  /// A stable name for results sent to HQ.
  public var code: String {
    switch self {
    case .apply: return "applied"
    case .duplicate: return "duplicate"
    case .gap: return "gap"
    case .overHoardingLimit: return "over-hoarding-limit"
    case .invalidAmount: return "invalid-amount"
    }
  }

  /// Decides a top-up. Checked in this order: a count at or below the last applied
  /// one is a duplicate (a count below it was applied before it, since counts are
  /// applied one by one), a count beyond last + 1 is a gap, then the amount must be
  /// positive, then `balance + amount ≤ hoardingLimit`.
  /// - Parameters:
  ///   - lastAppliedPurchaseCount: the last count applied for the customer; 0 before the first.
  ///   - purchaseCount: this top-up's count; the first purchase is 1.
  ///   - amount: the money bought.
  ///   - balance: the balance before it.
  ///   - hoardingLimit: the customer's `PrepaidThresholds.hoardingLimit`.
  public static func decide(
    lastAppliedPurchaseCount: UInt32, purchaseCount: UInt32, amount: Money, balance: Money,
    hoardingLimit: Money
  ) -> TopUpDecision {
    if purchaseCount <= lastAppliedPurchaseCount { return .duplicate }
    if lastAppliedPurchaseCount == UInt32.max || purchaseCount != lastAppliedPurchaseCount + 1 {
      return .gap(expected: lastAppliedPurchaseCount &+ 1)
    }
    guard amount.fen > 0 else { return .invalidAmount }
    let (after, overflow) = balance.fen.addingReportingOverflow(amount.fen)
    guard !overflow, after <= hoardingLimit.fen else {
      let (room, roomOverflow) = hoardingLimit.fen.subtractingReportingOverflow(balance.fen)
      return .overHoardingLimit(room: Money(fen: roomOverflow ? Int64.max : max(0, room)))
    }
    return .apply(newBalance: Money(fen: after))
  }
}

/// The arrears rebate: arrears repaid quickly earn a credit.
///
/// Precisely: the customer is *in arrears* while the balance is below zero. An
/// arrears episode begins with the first balance below zero after one at or above
/// zero and ends with the first balance at or above zero again. When an episode
/// ends no more than `windowSeconds` after it began, the customer earns
/// `basisPoints` / 10,000 of the deepest arrears of the episode (the magnitude of
/// its lowest balance), rounded half-up to the fen and at most `cap`. An episode
/// that lasts longer earns nothing. The rebate is credited by the caller as a
/// ledger entry of its own.
public struct ArrearsRebateRule: Hashable, Sendable {
  public let windowSeconds: Int64
  /// 0…10,000 (100 = 1 %).
  public let basisPoints: Int64
  public let cap: Money

  /// A rebate rule.
  /// - Throws: `FeeControlConfigError` for a negative window or cap, or basis points outside 0…10,000.
  public init(windowSeconds: Int64, basisPoints: Int64, cap: Money) throws(FeeControlConfigError) {
    guard windowSeconds >= 0 else { throw FeeControlConfigError(.rebate("negative window")) }
    guard basisPoints >= 0, basisPoints <= 10_000 else {
      throw FeeControlConfigError(.rebate("basis points not 0...10000"))
    }
    guard cap.fen >= 0 else { throw FeeControlConfigError(.rebate("negative cap")) }
    self.windowSeconds = windowSeconds
    self.basisPoints = basisPoints
    self.cap = cap
  }

  /// The rebate for an episode from `began` to `ended` (unix seconds) whose lowest
  /// balance was `deepest` (< 0).
  public func rebate(began: Int64, ended: Int64, deepest: Money) -> Money {
    let (elapsed, overflow) = ended.subtractingReportingOverflow(began)
    guard !overflow, elapsed <= windowSeconds, deepest.fen < 0 else { return .zero }
    let product = deepest.fen.magnitude.multipliedFullWidth(by: UInt64(basisPoints))
    // half-up: (product + 5,000) / 10,000, in 128 bits.
    let (low, carry) = product.low.addingReportingOverflow(5000)
    let high = product.high + (carry ? 1 : 0)
    guard high < 10_000 else { return cap }
    let (fen, _) = UInt64(10_000).dividingFullWidth((high: high, low: low))
    return fen > UInt64(cap.fen) ? cap : Money(fen: Int64(fen))
  }
}

/// Follows the balance through the ledger to find arrears episodes (see
/// `ArrearsRebateRule`). Its state is derived by replaying the ledger's balances.
public struct ArrearsTracker: Hashable, Sendable {
  /// When the current episode began; nil when not in arrears.
  public private(set) var arrearsSince: Int64?
  /// The lowest balance of the current episode.
  public private(set) var deepest: Money

  /// Not in arrears.
  public init() {
    arrearsSince = nil
    deepest = .zero
  }

  /// Takes the balance after a ledger entry at `time` (entries in time order).
  /// - Returns: the rebate earned now: non-zero only when this balance ends an
  ///   episode within the rule's window.
  public mutating func observe(balance: Money, at time: Int64, rule: ArrearsRebateRule) -> Money {
    if balance.fen < 0 {
      if arrearsSince == nil {
        arrearsSince = time
        deepest = balance
      } else if balance < deepest {
        deepest = balance
      }
      return .zero
    }
    guard let began = arrearsSince else { return .zero }
    let earned = rule.rebate(began: began, ended: time, deepest: deepest)
    arrearsSince = nil
    deepest = .zero
    return earned
  }
}

/// A fee-control setting from HQ (thresholds, rebate, credit model, disconnect
/// policy) that cannot be used.
public struct FeeControlConfigError: Error, CustomStringConvertible, Equatable, Sendable {
  enum Kind: Equatable, Sendable {
    case thresholds(String)
    case rebate(String)
    case creditModel(String)
    case disconnectPolicy(String)
  }

  let kind: Kind

  init(_ kind: Kind) { self.kind = kind }

  /// A stable identifier of the setting at fault.
  public var code: String {
    switch kind {
    case .thresholds: return "thresholds"
    case .rebate: return "rebate"
    case .creditModel: return "credit-model"
    case .disconnectPolicy: return "disconnect-policy"
    }
  }

  public var description: String {
    switch kind {
    case .thresholds(let why): return "prepaid thresholds: " + why
    case .rebate(let why): return "arrears rebate: " + why
    case .creditModel(let why): return "credit model: " + why
    case .disconnectPolicy(let why): return "disconnect policy: " + why
    }
  }
}

/// The local policy every disconnection and reconnection is checked against,
/// whether the ledger proposed it or HQ ordered it with a signed command.
///
/// Disconnection is refused, for the first reason that applies, in this order:
/// 1. `keep-power`: the customer is flagged keep-power (hospitals, life support);
/// 2. for a disconnection for arrears only: `not-beyond-overdraft` when the balance
///    is not below the overdraft limit, `within-grace` when it has not been below
///    it for longer than the grade's grace;
/// 3. `planned-outage`: the customer's area is in a planned outage HQ announced
///    (the supply is off anyway; a trip would go to a dead meter);
/// 4. `holiday`, `weekend`, `daily-window`: local time falls in a no-disconnect
///    window (listed holiday dates, weekend days, daily windows such as
///    18:00–08:00 which may cross midnight);
/// 5. `rate-limit`: the maximum number of disconnections per hour is reached.
///
/// Reconnection is never blocked by windows or the rate: restoring power is
/// always allowed once the balance reaches the close-permit amount, or at once
/// when HQ orders it.

/// A daily no-disconnect window, from a local time (inclusive) to another
/// (exclusive); it crosses midnight when the end is not after the start.
public struct DailyWindow: Hashable, Sendable {
  /// Minutes after midnight, 0…1439.
  public let startMinute: Int
  /// Minutes after midnight, 0…1439; ≠ `startMinute`.
  public let endMinute: Int

  /// The window from `startHour`:`startMinute` to `endHour`:`endMinute`.
  /// - Returns: nil when a time is outside 00:00…23:59 or the two are equal.
  public init?(startHour: Int, startMinute: Int = 0, endHour: Int, endMinute: Int = 0) {
    guard startHour >= 0, startHour < 24, startMinute >= 0, startMinute < 60, endHour >= 0, endHour < 24,
      endMinute >= 0, endMinute < 60
    else { return nil }
    let start = startHour * 60 + startMinute
    let end = endHour * 60 + endMinute
    guard start != end else { return nil }
    self.startMinute = start
    self.endMinute = end
  }

  /// True when local second of day `secondOfDay` (0…86,399) is in the window.
  public func contains(secondOfDay: Int) -> Bool {
    let start = startMinute * 60
    let end = endMinute * 60
    return start < end
      ? (secondOfDay >= start && secondOfDay < end)
      : (secondOfDay >= start || secondOfDay < end)
  }
}

/// When no disconnection may happen.
public struct NoDisconnectCalendar: Hashable, Sendable {
  public var dailyWindows: [DailyWindow]
  public var weekendDays: Set<Weekday>
  public var holidays: Set<CivilDate>

  public init(dailyWindows: [DailyWindow] = [], weekendDays: Set<Weekday> = [], holidays: Set<CivilDate> = [])
  {
    self.dailyWindows = dailyWindows
    self.weekendDays = weekendDays
    self.holidays = holidays
  }
}

/// Why a disconnection was ordered or proposed.
public enum DisconnectOrigin: Hashable, Sendable {
  /// The local ledger: the balance is below the overdraft limit.
  case arrears
  /// A signed command from HQ (the balance is HQ's business).
  case ordered
}

/// A proposed disconnection of one customer, with everything the policy needs.
public struct DisconnectRequest: Hashable, Sendable {
  public var origin: DisconnectOrigin
  /// The customer is flagged keep-power.
  public var keepPower: Bool
  /// Local time now.
  public var now: LocalDateTime
  /// Disconnections already carried out in the hour before now (all customers of the device).
  public var disconnectsInLastHour: Int
  /// How long the balance has been below the overdraft limit; nil when it is not.
  public var secondsBeyondOverdraft: Int64?
  /// The grace of the customer's grade (`GradeTerms.disconnectGraceSeconds`).
  public var graceSeconds: Int64
  /// The customer's area is in a planned outage announced by HQ.
  public var inPlannedOutage: Bool

  public init(
    origin: DisconnectOrigin, keepPower: Bool, now: LocalDateTime, disconnectsInLastHour: Int,
    secondsBeyondOverdraft: Int64?, graceSeconds: Int64, inPlannedOutage: Bool = false
  ) {
    self.inPlannedOutage = inPlannedOutage
    self.origin = origin
    self.keepPower = keepPower
    self.now = now
    self.disconnectsInLastHour = disconnectsInLastHour
    self.secondsBeyondOverdraft = secondsBeyondOverdraft
    self.graceSeconds = graceSeconds
  }
}

/// Why the policy refused a control action.
public enum ControlRefusal: Hashable, Sendable {
  case keepPower
  case notBeyondOverdraft
  case withinGrace
  case plannedOutage
  case holiday
  case weekend
  case dailyWindow
  case rateLimit
  case belowClosePermit

  /// A stable name for results sent to HQ.
  public var code: String {
    switch self {
    case .keepPower: return "keep-power"
    case .notBeyondOverdraft: return "not-beyond-overdraft"
    case .withinGrace: return "within-grace"
    case .plannedOutage: return "planned-outage"
    case .holiday: return "holiday"
    case .weekend: return "weekend"
    case .dailyWindow: return "daily-window"
    case .rateLimit: return "rate-limit"
    case .belowClosePermit: return "below-close-permit"
    }
  }

  /// A sentence for logs and operators.
  public var description: String {
    switch self {
    case .keepPower: return "the customer is flagged keep-power"
    case .notBeyondOverdraft: return "the balance is not below the overdraft limit"
    case .withinGrace: return "the balance has not been below the overdraft limit for longer than the grace"
    case .plannedOutage: return "the customer's area is in a planned outage announced by HQ"
    case .holiday: return "today is a no-disconnect holiday"
    case .weekend: return "no disconnection on this day of the week"
    case .dailyWindow: return "the time of day is in a no-disconnect window"
    case .rateLimit: return "the maximum number of disconnections per hour is reached"
    case .belowClosePermit: return "the balance is below the close-permit amount"
    }
  }

  /// True when the same request may be allowed later without anything but time
  /// passing (grace, calendar windows, rate limit).
  public var isTemporary: Bool {
    switch self {
    case .withinGrace, .plannedOutage, .holiday, .weekend, .dailyWindow, .rateLimit: return true
    case .keepPower, .notBeyondOverdraft, .belowClosePermit: return false
    }
  }
}

/// The policy's answer.
public enum ControlDecision: Hashable, Sendable {
  case allowed
  case refused(ControlRefusal)
}

/// The local disconnect / reconnect policy of a device.
public struct DisconnectPolicy: Hashable, Sendable {
  public let calendar: NoDisconnectCalendar
  /// At most this many disconnections in any hour (0: none at all).
  public let maximumPerHour: Int

  /// A policy.
  /// - Throws: `FeeControlConfigError` for a negative maximum per hour.
  public init(calendar: NoDisconnectCalendar, maximumPerHour: Int) throws(FeeControlConfigError) {
    guard maximumPerHour >= 0 else {
      throw FeeControlConfigError(.disconnectPolicy("negative maximum per hour"))
    }
    self.calendar = calendar
    self.maximumPerHour = maximumPerHour
  }

  /// Decides a disconnection (the order of the checks is at the top of this file).
  public func decideDisconnect(_ request: DisconnectRequest) -> ControlDecision {
    if request.keepPower { return .refused(.keepPower) }
    if request.origin == .arrears {
      guard let beyond = request.secondsBeyondOverdraft else { return .refused(.notBeyondOverdraft) }
      guard beyond > request.graceSeconds else { return .refused(.withinGrace) }
    }
    if request.inPlannedOutage { return .refused(.plannedOutage) }
    if calendar.holidays.contains(request.now.date) { return .refused(.holiday) }
    if calendar.weekendDays.contains(request.now.weekday) { return .refused(.weekend) }
    for window in calendar.dailyWindows where window.contains(secondOfDay: request.now.secondOfDay) {
      return .refused(.dailyWindow)
    }
    if request.disconnectsInLastHour >= maximumPerHour { return .refused(.rateLimit) }
    return .allowed
  }

  /// Decides a reconnection: HQ's orders always; otherwise when `balance` reaches
  /// `closePermit`. Never blocked by windows or the rate limit.
  public static func decideReconnect(ordered: Bool, balance: Money, closePermit: Money) -> ControlDecision {
    if ordered || balance >= closePermit { return .allowed }
    return .refused(.belowClosePermit)
  }
}

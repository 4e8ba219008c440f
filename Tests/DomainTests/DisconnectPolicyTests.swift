import Testing

@testable import GridEdgeCore

@Suite struct DisconnectPolicyTests {
  // No disconnection 18:00–08:00, on weekends, or on 2028-10-02 (National Day week);
  // at most 10 disconnections an hour.
  let policy = try! DisconnectPolicy(
    calendar: NoDisconnectCalendar(
      dailyWindows: [DailyWindow(startHour: 18, endHour: 8)!], weekendDays: [.saturday, .sunday],
      holidays: [day(2028, 10, 2)]),
    maximumPerHour: 10)

  /// A time on Wednesday 2028-05-10.
  func at(_ hour: Int, _ minute: Int = 0, _ second: Int = 0) -> LocalDateTime {
    on(day(2028, 5, 10), hour, minute, second)
  }

  func on(_ date: CivilDate, _ hour: Int, _ minute: Int = 0, _ second: Int = 0) -> LocalDateTime {
    LocalDateTime(date: date, hour: hour, minute: minute, second: second)!
  }

  func request(
    _ now: LocalDateTime, origin: DisconnectOrigin = .arrears, keepPower: Bool = false, done: Int = 0,
    beyond: Int64? = 100 * 3600, grace: Int64 = 24 * 3600
  ) -> DisconnectRequest {
    DisconnectRequest(
      origin: origin, keepPower: keepPower, now: now, disconnectsInLastHour: done,
      secondsBeyondOverdraft: beyond,
      graceSeconds: grace)
  }

  @Test func anOverdueCustomerOnAWeekdayMorningMayBeDisconnected() {
    #expect(policy.decideDisconnect(request(at(10))) == .allowed)
  }

  @Test func keepPowerCustomersAreNeverDisconnectedEvenWhenOrdered() {
    #expect(policy.decideDisconnect(request(at(10), keepPower: true)) == .refused(.keepPower))
    #expect(
      policy.decideDisconnect(request(at(10), origin: .ordered, keepPower: true)) == .refused(.keepPower))
    // Keep-power is reported before anything else.
    #expect(
      policy.decideDisconnect(request(on(day(2028, 10, 2), 20), keepPower: true)) == .refused(.keepPower))
  }

  @Test func theNightWindowRunsAcrossMidnightWithItsEndExcluded() {
    #expect(policy.decideDisconnect(request(at(17, 59, 59))) == .allowed)
    #expect(policy.decideDisconnect(request(at(18))) == .refused(.dailyWindow))
    #expect(policy.decideDisconnect(request(at(23, 59, 59))) == .refused(.dailyWindow))
    #expect(policy.decideDisconnect(request(at(0))) == .refused(.dailyWindow))
    #expect(policy.decideDisconnect(request(at(7, 59, 59))) == .refused(.dailyWindow))
    #expect(policy.decideDisconnect(request(at(8))) == .allowed)
  }

  @Test func weekendsAndHolidaysAreRefused() {
    // 2028-10-07 is a Saturday, 2028-10-02 a Monday on the holiday list.
    #expect(policy.decideDisconnect(request(on(day(2028, 10, 7), 10))) == .refused(.weekend))
    #expect(policy.decideDisconnect(request(on(day(2028, 10, 2), 10))) == .refused(.holiday))
    #expect(policy.decideDisconnect(request(on(day(2028, 10, 3), 10))) == .allowed)
    // A holiday night reports the holiday (the calendar day first, then the time of day).
    #expect(policy.decideDisconnect(request(on(day(2028, 10, 2), 20))) == .refused(.holiday))
  }

  @Test func theHourlyMaximumIsEnforced() {
    #expect(policy.decideDisconnect(request(at(10), done: 9)) == .allowed)
    #expect(policy.decideDisconnect(request(at(10), done: 10)) == .refused(.rateLimit))
    let none = try! DisconnectPolicy(calendar: NoDisconnectCalendar(), maximumPerHour: 0)
    #expect(none.decideDisconnect(request(at(10))) == .refused(.rateLimit))
    #expect(throws: FeeControlConfigError.self) {
      try DisconnectPolicy(calendar: NoDisconnectCalendar(), maximumPerHour: -1)
    }
  }

  @Test func arrearsDisconnectionNeedsTheBalanceBeyondTheOverdraftForLongerThanTheGrace() {
    #expect(policy.decideDisconnect(request(at(10), beyond: nil)) == .refused(.notBeyondOverdraft))
    #expect(policy.decideDisconnect(request(at(10), beyond: 24 * 3600)) == .refused(.withinGrace))
    #expect(policy.decideDisconnect(request(at(10), beyond: 24 * 3600 + 1)) == .allowed)
    #expect(policy.decideDisconnect(request(at(10), beyond: 0, grace: 0)) == .refused(.withinGrace))
    // An order from HQ does not look at the balance, but still at the calendar and the rate.
    #expect(policy.decideDisconnect(request(at(10), origin: .ordered, beyond: nil)) == .allowed)
    #expect(policy.decideDisconnect(request(at(20), origin: .ordered, beyond: nil)) == .refused(.dailyWindow))
    #expect(policy.decideDisconnect(request(at(10), origin: .ordered, done: 10)) == .refused(.rateLimit))
  }

  @Test func reconnectionIsAllowedFromTheClosePermitAmountWhateverTheTime() {
    #expect(
      DisconnectPolicy.decideReconnect(ordered: false, balance: fen(500), closePermit: fen(500)) == .allowed)
    #expect(
      DisconnectPolicy.decideReconnect(ordered: false, balance: fen(499), closePermit: fen(500))
        == .refused(.belowClosePermit))
    #expect(
      DisconnectPolicy.decideReconnect(ordered: true, balance: fen(-9999), closePermit: fen(500)) == .allowed)
  }

  @Test func dailyWindowsInsideOneDayAndInvalidWindows() {
    let lunch = DailyWindow(startHour: 12, startMinute: 0, endHour: 13, endMinute: 30)!
    #expect(!lunch.contains(secondOfDay: 12 * 3600 - 1))
    #expect(lunch.contains(secondOfDay: 12 * 3600))
    #expect(lunch.contains(secondOfDay: 13 * 3600 + 29 * 60 + 59))
    #expect(!lunch.contains(secondOfDay: 13 * 3600 + 30 * 60))
    #expect(DailyWindow(startHour: 8, endHour: 8) == nil)
    #expect(DailyWindow(startHour: 24, endHour: 8) == nil)
    #expect(DailyWindow(startHour: 8, startMinute: 60, endHour: 9) == nil)
  }

  @Test func refusalCodesAreStableAndTellWhatIsTemporary() {
    let all: [ControlRefusal] = [
      .keepPower, .notBeyondOverdraft, .withinGrace, .holiday, .weekend, .dailyWindow, .rateLimit,
      .belowClosePermit,
    ]
    #expect(
      all.map(\.code) == [
        "keep-power", "not-beyond-overdraft", "within-grace", "holiday", "weekend", "daily-window",
        "rate-limit",
        "below-close-permit",
      ])
    #expect(all.filter(\.isTemporary) == [.withinGrace, .holiday, .weekend, .dailyWindow, .rateLimit])
    #expect(Set(all.map(\.description)).count == all.count)
  }
}

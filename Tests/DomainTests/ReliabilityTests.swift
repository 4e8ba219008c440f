import GridEdgeCore
import Testing

@Suite struct ReliabilityTests {
  private let minute: Int64 = 60_000
  private let day: Int64 = 86_400_000

  @Test func figuresCountInterruptionsCustomerMinutesAndTheLongestWithinTheWindow() {
    let list = [
      Interruption(start: 10 * minute, end: 40 * minute, customers: 6, planned: false),
      Interruption(start: 100 * minute, end: 105 * minute + 30_000, customers: 2, planned: false),
      Interruption(start: 200 * minute, end: 290 * minute, customers: 50, planned: true),
    ]
    let unplanned = ReliabilityFigures(list, from: 0, to: day, now: 2 * day, planned: false)
    #expect(unplanned.interruptions == 2)
    #expect(unplanned.continued == 0 && unplanned.ongoing == 0)
    // 6 × 30 + 2 × 5.5 = 191 customer-minutes.
    #expect(unplanned.customerMinutes == 191)
    #expect(unplanned.longestSeconds == 1_800)
    let planned = ReliabilityFigures(list, from: 0, to: day, now: 2 * day, planned: true)
    #expect(planned.interruptions == 1 && planned.customerMinutes == 4_500 && planned.longestSeconds == 5_400)
  }

  @Test func anInterruptionAcrossMidnightCountsItsPartOnEachDay() {
    let list = [Interruption(start: day - 20 * minute, end: day + 40 * minute, customers: 3, planned: false)]
    let first = ReliabilityFigures(list, from: 0, to: day, now: 2 * day, planned: false)
    #expect(first.interruptions == 1 && first.continued == 0 && first.ongoing == 1)
    #expect(first.customerMinutes == 60 && first.longestSeconds == 1_200)
    let second = ReliabilityFigures(list, from: day, to: 2 * day, now: 2 * day, planned: false)
    #expect(second.interruptions == 1 && second.continued == 1 && second.ongoing == 0)
    #expect(second.customerMinutes == 120 && second.longestSeconds == 2_400)
    #expect(
      ReliabilityFigures(list, from: 2 * day, to: 3 * day, now: 3 * day, planned: false).interruptions == 0)
  }

  @Test func anInterruptionStillLastingCountsUpToNowAndIsOngoing() {
    let list = [Interruption(start: 60 * minute, end: nil, customers: 10, planned: false)]
    let soFar = ReliabilityFigures(list, from: 0, to: day, now: 90 * minute, planned: false)
    #expect(soFar.interruptions == 1 && soFar.ongoing == 1)
    #expect(soFar.customerMinutes == 300 && soFar.longestSeconds == 1_800)
    let wholeDay = ReliabilityFigures(list, from: 0, to: day, now: 3 * day, planned: false)
    #expect(wholeDay.customerMinutes == 10 * (1_440 - 60))
  }

  @Test func customerMinutesAreRoundedHalfUpOnceOverTheSum() {
    // 1 customer × 29.999 s + 1 × 0.001 s = 0.5 minutes: rounded up once, over the sum.
    let list = [
      Interruption(start: 0, end: 29_999, customers: 1, planned: false),
      Interruption(start: minute, end: minute + 1, customers: 1, planned: false),
    ]
    #expect(ReliabilityFigures(list, from: 0, to: day, now: day, planned: false).customerMinutes == 1)
    let below = [Interruption(start: 0, end: 29_999, customers: 1, planned: false)]
    #expect(ReliabilityFigures(below, from: 0, to: day, now: day, planned: false).customerMinutes == 0)
    #expect(ReliabilityFigures([], from: 0, to: day, now: day, planned: false) == ReliabilityFigures())
  }

  @Test func disconnectionIsRefusedInAPlannedOutageButKeepPowerComesFirst() throws {
    let policy = try DisconnectPolicy(calendar: NoDisconnectCalendar(), maximumPerHour: 10)
    let noon = LocalDateTime(date: CivilDate(year: 2026, month: 11, day: 25)!, hour: 12, minute: 0)!
    var request = DisconnectRequest(
      origin: .arrears, keepPower: false, now: noon, disconnectsInLastHour: 0, secondsBeyondOverdraft: 100,
      graceSeconds: 0, inPlannedOutage: true)
    #expect(policy.decideDisconnect(request) == .refused(.plannedOutage))
    #expect(ControlRefusal.plannedOutage.code == "planned-outage" && ControlRefusal.plannedOutage.isTemporary)
    request.origin = .ordered
    #expect(policy.decideDisconnect(request) == .refused(.plannedOutage))
    request.keepPower = true
    #expect(policy.decideDisconnect(request) == .refused(.keepPower))
    request.keepPower = false
    request.inPlannedOutage = false
    #expect(policy.decideDisconnect(request) == .allowed)
  }
}

import DLT645
import Foundation
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// `DailyBalance`: the daily summary and proposed work orders enqueued for HQ, on a real
/// database with the archive and freezes of `BalanceTests` (area TA-1 with meter 03
/// bypassed by half on 2026-01-08; area TA-2 without an area meter).
@Suite(.serialized) struct DailyBalanceTests {
  /// 2026-01-09 00:30 China time, when the freezes of 2026-01-09 are in.
  static let halfPastMidnight = newYear + 8 * 86_400_000 + 30 * 60_000
  static let day8 = CivilDate(year: 2026, month: 1, day: 8)!

  /// The events in the outbox of `store` of `type`, parsed, in enqueue order.
  private func events(_ store: AgentStore, _ type: String) throws -> [[String: Any]] {
    try store.db.query(
      "SELECT record FROM outbox WHERE class = 'events' AND json_extract(record, '$.type') = ?1 ORDER BY id",
      [.text(type)]
    ).map { try jsonObject($0.text(0) ?? "") }
  }

  private func run(_ store: AgentStore, at now: Int64, settings: DailyBalance.Settings = .init()) throws
    -> DailyBalance.Outcome
  {
    try DailyBalance.run(
      store: store, outbox: try Outbox(store: store), offset: .china, now: now, settings: settings)
  }

  private func int(_ value: Any?) -> Int64? { (value as? NSNumber)?.int64Value }

  @Test func yesterdayGoesUpOncePerAreaWithTheBypassedMeterProposedForInspection() throws {
    let s = try BalanceTests().setup("daily-once")
    let outcome = try run(s.store, at: Self.halfPastMidnight)
    #expect(outcome.days == [Self.day8])
    #expect(outcome.summaries == 2)
    #expect(outcome.workOrders == 1)

    let summaries = try events(s.store, "balance.daily")
    #expect(summaries.count == 2)
    let ta1 = try #require(summaries.first { $0["area"] as? String == "TA-1" })
    #expect(ta1["id"] as? String == s.store.storeID + "-balance-TA-1-2026-01-08")
    #expect(ta1["day"] as? String == "2026-01-08")
    #expect(int(ta1["ts"]) == Self.halfPastMidnight)
    #expect(int(ta1["supplied_wh"]) == 52_000)
    #expect(int(ta1["sold_wh"]) == 45_000)
    #expect(int(ta1["loss_wh"]) == 7_000)
    #expect(int(ta1["loss_rate_bp"]) == 1_346)
    #expect(ta1["withheld"] is NSNull)
    #expect(int(ta1["completeness_bp"]) == 10_000)
    #expect((ta1["flags"] as? [[String: Any]])?.map { $0["code"] as? String } == ["high-loss"])
    #expect(int(ta1["suspects_total"]) == 1)
    let suspects = try #require(ta1["suspects"] as? [[String: Any]])
    #expect(suspects.map { $0["meter"] as? String } == ["000000000003"])
    // TA-2 has no area meter: HQ learns why there is no balance.
    let ta2 = try #require(summaries.first { $0["area"] as? String == "TA-2" })
    #expect(
      ta2["error"] as? String == "area 'TA-2' has no area meter in the meter archive (area_meter flag)")
    #expect(ta2["supplied_wh"] == nil)

    let orders = try events(s.store, "workorder.proposed")
    #expect(orders.count == 1)
    let order = try #require(orders.first)
    #expect(order["id"] as? String == s.store.storeID + "-workorder-TA-1-2026-01-08-000000000003")
    #expect(order["kind"] as? String == "inspection")
    #expect(order["meter"] as? String == "000000000003")
    #expect(order["customer"] as? String == "C-3")
    #expect(order["grade"] as? String == "A")
    #expect(int(order["rank"]) == 1)
    #expect(int(order["score"]) == 8_142)
    #expect(int(order["explained_bp"]) == 7_142)
    #expect(int(order["drop_wh"]) == 5_000)
    let evidence = try #require(order["evidence"] as? [[String: Any]])
    #expect(evidence.map { $0["rule"] as? String } == ["sudden-drop"])
    #expect(
      evidence.first?["detail"] as? String
        == "sudden drop: 5000 Wh is 50.00% of its median 10000 Wh over the previous 7 day(s)")

    // The day's suspects are kept for ranking repeated suspects later.
    let kept = try s.store.db.query("SELECT area, day, meter, score, rules FROM balance_suspects")
    #expect(kept.count == 1)
    #expect(kept.first?.text(0) == "TA-1")
    #expect(kept.first?.int64(1) == Self.day8.daysSinceEpoch)
    #expect(kept.first?.text(2) == "000000000003")
    #expect(kept.first?.int64(3) == 8_142)
    #expect(kept.first?.text(4) == "sudden-drop")

    // The same minute again, later that day, and after a restart: nothing more.
    #expect(try run(s.store, at: Self.halfPastMidnight).days.isEmpty)
    #expect(try run(s.store, at: Self.halfPastMidnight + 20 * 3_600_000).days.isEmpty)
    let reopened = try AgentStore(path: s.store.db.path, deviceID: "TA-1", now: 2)
    #expect(try run(reopened, at: Self.halfPastMidnight + 3_600_000).days.isEmpty)
    #expect(try events(reopened, "balance.daily").count == 2)
    #expect(try events(reopened, "workorder.proposed").count == 1)
    #expect(
      try reopened.db.scalarInt("SELECT last_day FROM balance_state") == Self.day8.daysSinceEpoch)
  }

  @Test func incompleteDayWaitsUntilItsFreezesArriveOrItsDeadlinePasses() throws {
    // Meter 02's freeze of 2026-01-09 is missing: 2026-01-08 is incomplete for TA-1.
    let s = try BalanceTests().setup("daily-deadline", skip: ["000000000002@8"])
    var outcome = try run(s.store, at: Self.halfPastMidnight)
    #expect(outcome.days.isEmpty)
    #expect(outcome.waitingFor == Self.day8)
    #expect(try events(s.store, "balance.daily").isEmpty)
    // One minute before the 06:00 deadline: still waiting.
    let deadline = newYear + 8 * 86_400_000 + 360 * 60_000
    #expect(try run(s.store, at: deadline - 60_000).days.isEmpty)
    outcome = try run(s.store, at: deadline)
    #expect(outcome.days == [Self.day8])
    let ta1 = try #require(try events(s.store, "balance.daily").first { $0["area"] as? String == "TA-1" })
    #expect(ta1["loss_rate_bp"] is NSNull)
    let withheld = try #require(ta1["withheld"] as? [String: Any])
    #expect(withheld["code"] as? String == "incomplete-collection")
    #expect(ta1["missing"] as? [String] == ["000000000002"])
    #expect(int(ta1["completeness_bp"]) == 8_333)
  }

  @Test func lateFreezeCompletesTheDayBeforeItsDeadline() throws {
    let s = try BalanceTests().setup("daily-late", skip: ["000000000002@8"])
    #expect(try run(s.store, at: Self.halfPastMidnight).waitingFor == Self.day8)
    // The freeze is read (backfilled) ten minutes later: the day goes up at once, complete.
    let readings = try Readings(store: s.store, outbox: try Outbox(store: s.store))
    try readings.store(
      [
        Reading(
          meter: Address("000000000002")!, identifier: .lastDailyFreezeForwardActive,
          timestamp: newYear + 8 * 86_400_000 + 7_000, value: 1_080_000, quality: .backfilled,
          readAt: Self.halfPastMidnight + 600_000)
      ], now: Self.halfPastMidnight + 600_000)
    let outcome = try run(s.store, at: Self.halfPastMidnight + 600_000)
    #expect(outcome.days == [Self.day8])
    let ta1 = try #require(try events(s.store, "balance.daily").first { $0["area"] as? String == "TA-1" })
    #expect(int(ta1["loss_rate_bp"]) == 1_346)
    #expect(int(ta1["completeness_bp"]) == 10_000)
  }

  @Test func configuredCompletenessSendsTheDayBeforeItsLastFreezes() throws {
    // 5 of TA-1's 6 meters (83.33 %) have the day: enough at 80 %, not at 90 %.
    let s = try BalanceTests().setup("daily-share", skip: ["000000000002@8"])
    var settings = DailyBalance.Settings()
    settings.summaryCompletenessBasisPoints = 9_000
    #expect(try run(s.store, at: Self.halfPastMidnight, settings: settings).waitingFor == Self.day8)
    settings.summaryCompletenessBasisPoints = 8_000
    #expect(try run(s.store, at: Self.halfPastMidnight, settings: settings).days == [Self.day8])
    let ta1 = try #require(try events(s.store, "balance.daily").first { $0["area"] as? String == "TA-1" })
    // Sent, but below balance.min_completeness (98 %): the rate is withheld.
    #expect((ta1["withheld"] as? [String: Any])?["code"] as? String == "incomplete-collection")
  }

  @Test func pauseOfSeveralDaysIsCaughtUpDayByDayWithinTheHistoryWindow() throws {
    let s = try BalanceTests().setup("daily-catch-up")
    // The last summary was of 2026-01-05: 06, 07 and 08 follow, oldest first.
    try s.store.db.run(
      "UPDATE balance_state SET last_day = ?1",
      [.integer(CivilDate(year: 2026, month: 1, day: 5)!.daysSinceEpoch)])
    let outcome = try run(s.store, at: Self.halfPastMidnight)
    #expect(outcome.days.map(\.isoText) == ["2026-01-06", "2026-01-07", "2026-01-08"])
    let ids = try events(s.store, "balance.daily").compactMap { $0["id"] as? String }
    #expect(ids.count == 6)
    #expect(Set(ids).count == 6)
    // Only 2026-01-08 has a suspect: one work order.
    #expect(try events(s.store, "workorder.proposed").count == 1)

    // A summary a month old: only the last balance.history_days days are caught up.
    let t = try BalanceTests().setup("daily-catch-up-cap")
    try t.store.db.run(
      "UPDATE balance_state SET last_day = ?1",
      [.integer(CivilDate(year: 2025, month: 12, day: 1)!.daysSinceEpoch)])
    var settings = DailyBalance.Settings()
    settings.historyDays = 3
    #expect(
      try run(t.store, at: Self.halfPastMidnight, settings: settings).days.map(\.isoText) == [
        "2026-01-06", "2026-01-07", "2026-01-08",
      ])
  }

  @Test func onlySuspectsAtTheConfiguredScoreAndRankBecomeWorkOrders() throws {
    var settings = DailyBalance.Settings()
    settings.workOrderScore = 8_143  // one above meter 03's score
    let s = try BalanceTests().setup("daily-score")
    #expect(try run(s.store, at: Self.halfPastMidnight, settings: settings).workOrders == 0)
    #expect(try events(s.store, "workorder.proposed").isEmpty)

    settings = DailyBalance.Settings()
    settings.topSuspects = 0
    let t = try BalanceTests().setup("daily-top")
    #expect(try run(t.store, at: Self.halfPastMidnight, settings: settings).workOrders == 0)
    let ta1 = try #require(try events(t.store, "balance.daily").first { $0["area"] as? String == "TA-1" })
    #expect((ta1["suspects"] as? [Any])?.isEmpty == true)
    #expect(int(ta1["suspects_total"]) == 1)
  }

  @Test func withoutAreasInTheArchiveNothingIsSentAndNoDayIsUsedUp() throws {
    let dir = try makeTemporaryDirectory("daily-empty")
    let store = try AgentStore(
      path: dir.appendingPathComponent("agent.db").path, deviceID: "TA-1", now: 1)
    #expect(try run(store, at: Self.halfPastMidnight).days.isEmpty)
    #expect(try store.db.query("SELECT last_day FROM balance_state").first?.int64(0) == nil)
  }
}

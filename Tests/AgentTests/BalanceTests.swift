import DLT645
import Foundation
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// `Balance` and `gridedge balance` on a real database: an archive applied through
/// `Archive.apply`, daily freezes stored through `Readings`.
///
/// Area TA-1: area meter 000000009999 behind CT 20; customers 000000000001…05 use
/// 10,000 Wh a day, 04 through a CT of 5 (2,000 Wh on its register). The area meter
/// registers 2,600 Wh a day (52,000 Wh: 4 % technical loss). On 2026-01-08 meter 03
/// registers 5,000 Wh only (a 50 % bypass). Meter 000000000020 is in area TA-2.
@Suite(.serialized) struct BalanceTests {
  static let archive = #"""
    {"op":"snapshot","version":1,"meters":[
      {"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential"},
      {"address":"000000000002","customer":"C-2","area":"TA-1","category":"residential"},
      {"address":"000000000003","customer":"C-3","area":"TA-1","category":"residential"},
      {"address":"000000000004","customer":"C-4","area":"TA-1","ct":5,"category":"commercial"},
      {"address":"000000000005","customer":"C-5","area":"TA-1","category":"residential"},
      {"address":"000000000020","customer":"C-20","area":"TA-2","category":"residential"},
      {"address":"000000009999","customer":"AREA-1","area":"TA-1","phase":"ABC","ct":20,"category":"area","area_meter":true}]}
    """#

  /// 2026-01-08, the day balanced (freezes of 2026-01-01 … 2026-01-09 are stored).
  static let day = CivilDate(year: 2026, month: 1, day: 8)!

  struct Setup {
    let dir: URL
    let config: String
    let store: AgentStore
  }

  /// Writes the archive and the freezes; `skip` names (meter, day index) freezes left out.
  /// - Parameters:
  ///   - start: local midnight (ms) of day index 0; the freezes are of days 0…8 and
  ///     meter 03's drop is on day 7.
  ///   - extraConfig: lines added to the configuration file.
  func setup(_ label: String, skip: Set<String> = [], start: Int64 = newYear, extraConfig: String = "")
    throws -> Setup
  {
    let dir = try makeTemporaryDirectory(label)
    let path = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try "device.id = TA-1\nstore.path = \(path)\n\(extraConfig)\n".write(
      toFile: config, atomically: true, encoding: .utf8)
    let store = try AgentStore(path: path, deviceID: "TA-1", now: 1)
    let outbox = try Outbox(store: store)
    let readings = try Readings(store: store, outbox: outbox)
    try store.db.begin()
    _ = try Archive.apply(body: Self.archive, db: store.db, now: 1)
    try store.db.commit()

    // Register energy per day (Wh) by meter; meter 03 drops to 5,000 on day index 7.
    let perDay: [String: Int64] = [
      "000000000001": 10_000, "000000000002": 10_000, "000000000003": 10_000, "000000000004": 2_000,
      "000000000005": 10_000, "000000000020": 7_000, "000000009999": 2_600,
    ]
    var batch: [Reading] = []
    for (meter, daily) in perDay {
      var register: Int64 = 1_000_000
      for i in 0...8 {
        // Freezes a few seconds after local midnight (the meter's freeze time).
        let ts = start + Int64(i) * 86_400_000 + 7_000
        if !skip.contains(meter + "@" + String(i)) {
          batch.append(
            Reading(
              meter: Address(meter)!, identifier: .lastDailyFreezeForwardActive, timestamp: ts,
              value: register,
              quality: .measured, readAt: ts + 300_000))
        }
        register += (meter == "000000000003" && i == 7) ? 5_000 : daily
      }
      // A realtime reading at midnight must not be taken for a freeze.
      batch.append(
        Reading(
          meter: Address(meter)!, identifier: .forwardActiveBlock, timestamp: start + 7 * 86_400_000,
          value: 99_999_999, quality: .measured, readAt: start + 7 * 86_400_000 + 1_000))
    }
    try readings.store(batch, now: start)
    return Setup(dir: dir, config: config, store: store)
  }

  @Test func balanceOfTheDayFindsTheBypassedMeterFromStoredFreezes() throws {
    let s = try setup("balance-theft")
    let result = try Balance.compute(db: s.store.db, area: "TA-1", day: Self.day, offset: .china)
    let b = result.balance
    #expect(result.input.areaMeter == "000000009999")
    #expect(result.input.ctRatio == 20)
    #expect(result.input.customers.map(\.meter) == (1...5).map { "00000000000" + String($0) })
    // Meter 04's 2,000 Wh register × CT 5.
    #expect(result.input.customers[3].energy == Energy(wattHours: 10_000))
    #expect(result.input.customers[2].history.count == 7)
    // supplied 2,600 × 20 = 52,000; sold 45,000; loss 7,000 → 1,346.15 bp → 1,346.
    #expect(b.supplied == Energy(wattHours: 52_000))
    #expect(b.sold == Energy(wattHours: 45_000))
    #expect(b.loss == Energy(wattHours: 7_000))
    #expect(b.lossRateBasisPoints == 1_346)
    #expect(b.metersInArea == 6)
    #expect(b.completenessBasisPoints == 10_000)
    #expect(b.flags.map(\.code) == ["high-loss"])
    #expect(b.suspects.map(\.meter) == ["000000000003"])
    // 5,000 of 7,000: 7,142 bp + 1,000.
    #expect(b.suspects.first?.score == 8_142)

    // The day before balances at 4 % with no suspects.
    let before = try Balance.compute(
      db: s.store.db, area: "TA-1", day: CivilDate(year: 2026, month: 1, day: 7)!, offset: .china)
    #expect(before.balance.lossRateBasisPoints == 385)
    #expect(before.balance.suspects.isEmpty)
  }

  @Test func areasTheArchiveDoesNotDescribeAreRefused() throws {
    let s = try setup("balance-area")
    #expect(throws: Balance.Failure.self) {
      try Balance.compute(db: s.store.db, area: "TA-9", day: Self.day, offset: .china)
    }
    // TA-2 has a customer meter but no area meter.
    do {
      _ = try Balance.compute(db: s.store.db, area: "TA-2", day: Self.day, offset: .china)
      Issue.record("TA-2 has no area meter and must be refused")
    } catch {
      #expect(error.isArchiveProblem)
      #expect(error.description == "area 'TA-2' has no area meter in the meter archive (area_meter flag)")
    }
  }

  @Test func cliPrintsTheBalanceAsJSON() throws {
    let s = try setup("balance-cli-json")
    let result = try runProduct(
      "gridedge", ["balance", "--config", s.config, "--area", "TA-1", "--day", "2026-01-08", "--json"],
      in: s.dir)
    #expect(result.status == 0, "\(result.stderr)")
    let object = try jsonObject(result.stdout)
    #expect(object["area"] as? String == "TA-1")
    #expect(object["day"] as? String == "2026-01-08")
    #expect((object["supplied_wh"] as? NSNumber)?.int64Value == 52_000)
    #expect((object["sold_wh"] as? NSNumber)?.int64Value == 45_000)
    #expect((object["loss_wh"] as? NSNumber)?.int64Value == 7_000)
    #expect((object["loss_rate_bp"] as? NSNumber)?.int64Value == 1_346)
    #expect(object["withheld"] is NSNull)
    #expect((object["completeness_bp"] as? NSNumber)?.int64Value == 10_000)
    #expect((object["missing"] as? [Any])?.isEmpty == true)
    let flags = try #require(object["flags"] as? [[String: Any]])
    #expect(flags.map { $0["code"] as? String } == ["high-loss"])
    let suspects = try #require(object["suspects"] as? [[String: Any]])
    #expect(suspects.count == 1)
    #expect(suspects.first?["meter"] as? String == "000000000003")
    #expect((suspects.first?["explained_bp"] as? NSNumber)?.int64Value == 7_142)
    let anomalies = try #require(suspects.first?["anomalies"] as? [[String: Any]])
    #expect(anomalies.first?["rule"] as? String == "sudden-drop")
    #expect(
      anomalies.first?["evidence"] as? String
        == "sudden drop: 5000 Wh is 50.00% of its median 10000 Wh over the previous 7 day(s)")
  }

  @Test func cliSaysWhyTheRateIsWithheldWhenAFreezeIsMissing() throws {
    // Meter 02 has no freeze at the end of the day: 5 of 6 meters, 83.33 %.
    let s = try setup("balance-cli-missing", skip: ["000000000002@8"])
    let result = try runProduct(
      "gridedge", ["balance", "--config", s.config, "--area", "TA-1", "--day", "2026-01-08"], in: s.dir)
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    #expect(lines.first == "area TA-1, 2026-01-08 (local, UTC+08:00)")
    #expect(lines.contains("supplied      52.00 kWh  (area meter 000000009999: 2.60 kWh × CT 20)"))
    #expect(lines.contains("sold          35.00 kWh  (4 of 5 customer meters)"))
    #expect(
      lines.contains(
        "loss rate     withheld: collection is 83.33% complete (1 meter(s) without data), below the 98.00% needed: a missing meter would count as loss"
      ))
    #expect(lines.contains("completeness  83.33% (5 of 6 meters)"))
    #expect(lines.contains("missing       000000000002"))
    // Loss 17,000 (partly meter 02's missing day): meter 03's 5,000 Wh explain 29.41 %.
    #expect(lines.contains("  1. 000000000003 (C-3)  score 3941, drop 5.00 kWh explains 29.41% of the loss"))
  }

  @Test func cliRefusesABadDayOrAnUnknownArea() throws {
    let s = try setup("balance-cli-bad")
    var result = try runProduct(
      "gridedge", ["balance", "--config", s.config, "--area", "TA-1", "--day", "2026-02-30"], in: s.dir)
    #expect(result.status == 2)
    #expect(result.stderr.contains("--day '2026-02-30' is not a date YYYY-MM-DD"))
    result = try runProduct(
      "gridedge", ["balance", "--config", s.config, "--area", "TA-9", "--day", "2026-01-08"], in: s.dir)
    #expect(result.status == 2)
    #expect(result.stderr.contains("area 'TA-9' has no meters in the meter archive"))
    result = try runProduct("gridedge", ["balance", "--config", s.config, "--area", "TA-1"], in: s.dir)
    #expect(result.status == 2)
  }

  @Test func clockDriftMissedFreezesAndTheCreditGradeComeFromTheDatabase() throws {
    // Meter 02's clock was found 300 s ahead; meter 05 lacks the freezes of days 2 and 3
    // (2 of the window's 9); meter 03's customer has grade C.
    let s = try setup("balance-rules", skip: ["000000000005@2", "000000000005@3"])
    try s.store.db.run("INSERT INTO meter_state (meter, clock_drift) VALUES ('000000000002', 300)")
    try s.store.db.run("UPDATE archive_meters SET grade = 'C' WHERE address = '000000000003'")
    let result = try runProduct(
      "gridedge", ["balance", "--config", s.config, "--area", "TA-1", "--day", "2026-01-08", "--json"],
      in: s.dir)
    #expect(result.status == 0, "\(result.stderr)")
    let suspects = try #require(try jsonObject(result.stdout)["suspects"] as? [[String: Any]])
    #expect(suspects.map { $0["meter"] as? String } == ["000000000003", "000000000002", "000000000005"])
    // 7,142 explained + 1,000 sudden drop + 2 × 250 for grade C.
    #expect((suspects[0]["score"] as? NSNumber)?.int64Value == 8_642)
    #expect(suspects[0]["grade"] as? String == "C")
    let drift = try #require((suspects[1]["anomalies"] as? [[String: Any]])?.first)
    #expect(drift["rule"] as? String == "clock-drift")
    #expect((drift["drift_s"] as? NSNumber)?.int64Value == 300)
    let missed = try #require((suspects[2]["anomalies"] as? [[String: Any]])?.first)
    #expect(missed["rule"] as? String == "missed-reads")
    #expect((missed["missed"] as? NSNumber)?.intValue == 2)
    #expect((missed["expected"] as? NSNumber)?.intValue == 9)
  }

  @Test func aSuspectOfEarlierDaysRanksHigher() throws {
    let s = try setup("balance-repeat")
    // Meter 03 was a suspect on 2026-01-06 and -07 (in the 7-day history), on
    // 2025-12-01 (outside it) and in another area.
    for (area, day) in [("TA-1", 6), ("TA-1", 7), ("TA-9", 5)] {
      try s.store.db.run(
        "INSERT INTO balance_suspects VALUES (?1, ?2, '000000000003', 1000, 'sudden-drop')",
        [.text(area), .integer(CivilDate(year: 2026, month: 1, day: day)!.daysSinceEpoch)])
    }
    try s.store.db.run(
      "INSERT INTO balance_suspects VALUES ('TA-1', ?1, '000000000003', 1000, 'sudden-drop')",
      [.integer(CivilDate(year: 2025, month: 12, day: 1)!.daysSinceEpoch)])
    let b = try Balance.compute(db: s.store.db, area: "TA-1", day: Self.day, offset: .china).balance
    #expect(b.suspects.first?.pastSuspectDays == 2)
    // 8,142 + 2 × 250.
    #expect(b.suspects.first?.score == 8_642)
  }

  @Test func areaWithoutAnyReadingsHasEveryMeterMissing() throws {
    let dir = try makeTemporaryDirectory("balance-empty")
    let store = try AgentStore(path: dir.appendingPathComponent("agent.db").path, deviceID: "TA-1", now: 1)
    try store.db.begin()
    _ = try Archive.apply(body: Self.archive, db: store.db, now: 1)
    try store.db.commit()
    let b = try Balance.compute(db: store.db, area: "TA-1", day: Self.day, offset: .china).balance
    #expect(b.withheld?.code == "area-meter-missing")
    #expect(b.missing.count == 6)
    #expect(b.suspects.isEmpty)
    let hour = try Balance.computeHour(db: store.db, area: "TA-1", day: Self.day, hour: 0, offset: .china)
    #expect(hour.balance.missing.count == 6)
  }
}

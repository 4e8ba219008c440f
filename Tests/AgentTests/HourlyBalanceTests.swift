import DLT645
import Foundation
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// `Balance.computeHour` and `gridedge balance --hour` on a real database: the archive
/// of `BalanceTests` and 15-minute real-time readings from 14:00 to 15:00 on
/// 2026-01-01 … 2026-01-08. Each customer uses 1,000 Wh in that hour (meter 04: 200 Wh
/// on its register, CT 5); the area meter registers 260 Wh (× CT 20 = 5,200 Wh: 4 %
/// loss). On 2026-01-08 meter 03 registers 500 Wh (a bypass). Meter 05 answers only
/// the total (00 01 00 00), not the block.
@Suite(.serialized) struct HourlyBalanceTests {
  static let day = CivilDate(year: 2026, month: 1, day: 8)!

  /// The database; `skip` names readings left out as "meter@day@minute" (minute 0 or 60).
  private func setup(_ label: String, skip: Set<String> = []) throws -> BalanceTests.Setup {
    let dir = try makeTemporaryDirectory(label)
    let path = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try "device.id = TA-1\nstore.path = \(path)\n".write(toFile: config, atomically: true, encoding: .utf8)
    let store = try AgentStore(path: path, deviceID: "TA-1", now: 1)
    let readings = try Readings(store: store, outbox: try Outbox(store: store))
    try store.db.begin()
    _ = try Archive.apply(body: BalanceTests.archive, db: store.db, now: 1)
    try store.db.commit()
    let perHour: [String: Int64] = [
      "000000000001": 1_000, "000000000002": 1_000, "000000000003": 1_000, "000000000004": 200,
      "000000000005": 1_000, "000000009999": 260,
    ]
    var batch: [Reading] = []
    for (meter, hourly) in perHour {
      for day in 0...7 {
        let used = meter == "000000000003" && day == 7 ? hourly / 2 : hourly
        let before = 1_000_000 + Int64(day) * 20_000
        for quarter in 0...4 where !skip.contains(meter + "@" + String(day) + "@" + String(quarter * 15)) {
          let ts = newYear + Int64(day) * 86_400_000 + 14 * 3_600_000 + Int64(quarter) * 900_000
          batch.append(
            Reading(
              meter: Address(meter)!,
              identifier: meter == "000000000005" ? .forwardActiveTotal : .forwardActiveBlock,
              timestamp: ts, value: before + used * Int64(quarter) / 4, quality: .measured,
              readAt: ts + 20_000))
        }
      }
    }
    try readings.store(batch, now: newYear)
    return BalanceTests.Setup(dir: dir, config: config, store: store)
  }

  @Test func hourFromTheQuarterHourReadingsFindsTheBypassedMeter() throws {
    let s = try setup("hourly-theft")
    let result = try Balance.computeHour(
      db: s.store.db, area: "TA-1", day: Self.day, hour: 14, offset: .china)
    let b = result.balance
    #expect(result.hour == 14)
    #expect(b.supplied == Energy(wattHours: 5_200))
    #expect(b.sold == Energy(wattHours: 4_500))
    #expect(b.loss == Energy(wattHours: 700))
    #expect(b.lossRateBasisPoints == 1_346)
    #expect(b.completenessBasisPoints == 10_000)
    #expect(b.flags.map(\.code) == ["high-loss"])
    // History: the same hour of the 7 days before.
    #expect(result.input.customers[2].history == Array(repeating: Energy(wattHours: 1_000), count: 7))
    #expect(b.suspects.map(\.meter) == ["000000000003"])
    #expect(b.suspects.first?.score == 8_142)
    // The hour before has no readings at its start: nothing known, nothing invented.
    let before = try Balance.computeHour(
      db: s.store.db, area: "TA-1", day: Self.day, hour: 13, offset: .china)
    #expect(before.balance.withheld?.code == "area-meter-missing")
    #expect(before.balance.metersWithData == 0)
  }

  @Test func meterMissingTheHoursEndReadingWithholdsTheRate() throws {
    let s = try setup("hourly-missing", skip: ["000000000002@7@60"])
    let b = try Balance.computeHour(db: s.store.db, area: "TA-1", day: Self.day, hour: 14, offset: .china)
      .balance
    #expect(b.missing == ["000000000002"])
    #expect(b.lossRateBasisPoints == nil)
    #expect(b.withheld?.code == "incomplete-collection")
  }

  @Test func cliShowsTheHourAndRefusesABadOne() throws {
    let s = try setup("hourly-cli")
    var result = try runProduct(
      "gridedge",
      ["balance", "--config", s.config, "--area", "TA-1", "--day", "2026-01-08", "--hour", "14", "--json"],
      in: s.dir)
    #expect(result.status == 0, "\(result.stderr)")
    let object = try jsonObject(result.stdout)
    #expect((object["hour"] as? NSNumber)?.intValue == 14)
    #expect((object["loss_rate_bp"] as? NSNumber)?.int64Value == 1_346)
    #expect((object["suspects"] as? [[String: Any]])?.first?["meter"] as? String == "000000000003")
    result = try runProduct(
      "gridedge", ["balance", "--config", s.config, "--area", "TA-1", "--day", "2026-01-08", "--hour", "14"],
      in: s.dir)
    #expect(
      result.stdout.hasPrefix("area TA-1, 2026-01-08 14:00-15:00 (local, UTC+08:00)\n"), "\(result.stdout)")
    result = try runProduct(
      "gridedge", ["balance", "--config", s.config, "--area", "TA-1", "--day", "2026-01-08", "--hour", "24"],
      in: s.dir)
    #expect(result.status == 2)
    #expect(result.stderr.contains("--hour '24' is not an hour 0-23"))
  }
}

import DLT645
import Foundation
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// `gridedge readings`, `gridedge status` (last cycle) and `gridedge check-config`
/// (buses and meter list) as processes, on a database filled through `Readings`.
@Suite(.serialized) struct ReadingsReportTests {
  struct Setup {
    let dir: URL
    let config: String
    let db: String
  }

  private func setup(_ label: String, extra: String = "", fill: Bool = true) throws -> Setup {
    let dir = try makeTemporaryDirectory(label)
    let db = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try "device.id = TA-1\nstore.path = \(db)\n\(extra)".write(
      toFile: config, atomically: true, encoding: .utf8)
    if fill {
      let store = try AgentStore(path: db, deviceID: "TA-1", now: 1)
      let outbox = try Outbox(store: store)
      let readings = try Readings(store: store, outbox: outbox)
      var batch: [Reading] = []
      for slot in 0..<4 {
        batch.append(
          Reading(
            meter: meterA, identifier: .forwardActiveBlock, timestamp: newYear + Int64(slot) * 900_000,
            value: 1_234_560 + Int64(slot) * 10,
            tariffs: [100_000, 200_000, 300_000, 634_560 + Int64(slot) * 10],
            quality: .measured, readAt: newYear + Int64(slot) * 900_000 + 5000))
      }
      batch.append(
        Reading(
          meter: meterA, identifier: .lastDailyFreezeForwardActive, timestamp: newYear, value: 1_234_000,
          tariffs: [1, 2, 3, 4], quality: .backfilled, readAt: newYear + 3_600_000))
      batch.append(
        Reading(
          meter: meterB, identifier: .forwardActiveTotal, timestamp: newYear, value: 10,
          quality: .clockSuspect,
          readAt: newYear + 1000))
      // The day before: outside a one-day query.
      batch.append(
        Reading(
          meter: meterA, identifier: .forwardActiveBlock, timestamp: newYear - 900_000, value: 1,
          quality: .measured,
          readAt: newYear - 899_000))
      try readings.store(batch, now: newYear)
      try store.db.run(
        """
        INSERT INTO acquisition_cycles (slot, started_at, finished_at, meters, answered, missing, errors, stored)
        VALUES (?1, ?1, ?2, 51, 49, 2, 3, 147)
        """, [.integer(newYear), .integer(newYear + 12_000)])
    }
    return Setup(dir: dir, config: config, db: db)
  }

  @Test func jsonListsTheMetersReadingsInTheRangeAsTheyAreSent() throws {
    let s = try setup("report-json")
    let result = try runProduct(
      "gridedge",
      [
        "readings", "--config", s.config, "--meter", "000012345678", "--from", "2026-01-01", "--to",
        "2026-01-01",
        "--json",
      ], in: s.dir)
    #expect(result.status == 0, "\(result.stderr)")
    let list = try #require(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
    #expect(list.count == 5)
    #expect(list.allSatisfy { $0["meter"] as? String == "000012345678" })
    #expect(
      list.map { ($0["ts"] as? NSNumber)?.int64Value ?? 0 } == [
        newYear, newYear, newYear + 900_000, newYear + 1_800_000, newYear + 2_700_000,
      ])
    #expect(list.first { $0["di"] as? String == "05060101" }?["q"] as? String == "backfilled")
    #expect((list.last?["v"] as? NSNumber)?.int64Value == 1_234_590)
  }

  @Test func tableShowsLocalTimesAndKilowattHours() throws {
    let s = try setup("report-text")
    let result = try runProduct(
      "gridedge",
      [
        "readings", "--config", s.config, "--meter", "000012345678", "--from", "2026-01-01T00:10", "--to",
        "2026-01-01T00:30",
      ], in: s.dir)
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    #expect(
      lines.first == "meter 000012345678, 2026-01-01 00:10 to 2026-01-01 00:30 (UTC+08:00): 2 reading(s)")
    #expect(lines.count == 4)
    #expect(
      lines[2].hasPrefix("2026-01-01 00:15  0001FF00  1234.57     measured       100.00 200.00 300.00 634.57")
    )
  }

  @Test func meterWithNothingStoredSaysSo() throws {
    let s = try setup("report-empty")
    let result = try runProduct(
      "gridedge", ["readings", "--config", s.config, "--meter", "000099999999", "--from", "2026-01-01"],
      in: s.dir)
    #expect(result.status == 0)
    #expect(result.stdout.hasSuffix(": 0 reading(s)\n"))
  }

  @Test func badArgumentsAreRefusedWithExitCodeTwo() throws {
    let s = try setup("report-bad", fill: false)
    let noMeter = try runProduct("gridedge", ["readings", "--config", s.config], in: s.dir)
    #expect(noMeter.status == 2 && noMeter.stderr.contains("--meter ADDRESS is required"))
    let badMeter = try runProduct(
      "gridedge", ["readings", "--config", s.config, "--meter", "12AB"], in: s.dir)
    #expect(badMeter.status == 2 && badMeter.stderr.contains("'12AB' is not a meter address"))
    let badFrom = try runProduct(
      "gridedge", ["readings", "--config", s.config, "--meter", "000012345678", "--from", "yesterday"],
      in: s.dir)
    #expect(badFrom.status == 2 && badFrom.stderr.contains("--from 'yesterday' is not YYYY-MM-DD"))
    let noDatabase = try runProduct(
      "gridedge", ["readings", "--config", s.config, "--meter", "000012345678"], in: s.dir)
    #expect(noDatabase.status == 1 && noDatabase.stderr.contains("the agent has not run yet"))
  }

  @Test func statusShowsTheLastCycle() throws {
    let s = try setup("report-status", extra: "meter.file = /nonexistent\n")
    let text = try runProduct("gridedge", ["status", "--config", s.config], in: s.dir)
    #expect(text.status == 0, "\(text.stderr)")
    #expect(
      text.stdout.contains(
        "meters    last cycle 2025-12-31T16:00:00Z: 49 of 51 answered, 2 missing, 3 error(s), 147 reading(s) stored"
      ))
    let json = try jsonObject(
      try runProduct("gridedge", ["status", "--config", s.config, "--json"], in: s.dir).stdout)
    let cycle = try #require(json["last_cycle"] as? [String: Any])
    #expect((cycle["missing"] as? NSNumber)?.intValue == 2)
    #expect((cycle["slot"] as? NSNumber)?.int64Value == newYear)
  }

  @Test func checkConfigValidatesBusesAndTheMeterList() throws {
    let dir = try makeTemporaryDirectory("report-check")
    let meters = dir.appendingPathComponent("meters.txt").path
    try "# address bus\n000000000001 1 customer=C-1 area=TA-1\n000000000002 2\n".write(
      toFile: meters, atomically: true, encoding: .utf8)
    func check(_ text: String) throws -> CommandResult {
      let config = dir.appendingPathComponent("c.conf").path
      try ("device.id = TA-1\nmeter.file = \(meters)\n" + text).write(
        toFile: config, atomically: true, encoding: .utf8)
      return try runProduct("gridedge", ["check-config", "--config", config], in: dir)
    }
    let good = try check("bus.1 = serial /dev/ttyS1 2400 8E1\nbus.2 = tcp 192.168.1.50:8899\n")
    #expect(good.status == 0, "\(good.stderr)")
    let badSpec = try check("bus.1 = serial /dev/ttyS1 2400 8E1\nbus.2 = tcp 192.168.1.50\n")
    #expect(badSpec.status == 2)
    #expect(
      badSpec.stderr.contains("c.conf:4: key 'bus.2': '192.168.1.50' is not ADDRESS:PORT"),
      "\(badSpec.stderr)")
    let missingBus = try check("bus.1 = serial /dev/ttyS1\n")
    #expect(missingBus.status == 2)
    #expect(
      missingBus.stderr.contains("meters.txt:3: bus '2' is not configured (configured: bus.1)"),
      "\(missingBus.stderr)")
    let order = try check(
      "bus.1 = serial /dev/ttyS1\nbus.2 = serial /dev/ttyS2\nbus.reconnect_min = 5000\nbus.reconnect_max = 2000\n"
    )
    #expect(order.status == 2 && order.stderr.contains("must not be less than bus.reconnect_min"))
  }

  @Test func timesAndEnergyAreWrittenForPeople() {
    let china = UTCOffset.china
    #expect(ReadingsReport.parseLocal("2026-01-01", offset: china, endOfDay: false) == newYear)
    #expect(ReadingsReport.parseLocal("2026-01-01", offset: china, endOfDay: true) == newYear + 86_399_999)
    #expect(
      ReadingsReport.parseLocal("2026-01-01T08:15", offset: china, endOfDay: false) == newYear + 29_700_000)
    #expect(
      ReadingsReport.parseLocal("2026-01-01 08:15", offset: china, endOfDay: false) == newYear + 29_700_000)
    #expect(ReadingsReport.parseLocal("2026-02-30", offset: china, endOfDay: false) == nil)
    #expect(ReadingsReport.parseLocal("2026-01-01T24:00", offset: china, endOfDay: false) == nil)
    #expect(ReadingsReport.kilowattHours(1_234_560) == "1234.56")
    #expect(ReadingsReport.kilowattHours(50) == "0.05")
    #expect(ReadingsReport.kilowattHours(-10) == "-0.01")
    #expect(ReadingsReport.offsetText(UTCOffset(seconds: -(3 * 3600 + 1800))!) == "-03:30")
    #expect(ReadingsReport.localText(newYear, china) == "2026-01-01 00:00")
  }
}

@Suite struct MeterArchiveTests {
  @Test func meterListLinesWithOptionalFields() throws {
    let archive = try MeterArchive.parse(
      "# comment\n\n000012345678 1 customer=C-1 area=TA-9 # trailing\r\n000012345679\t2\n", file: "m.txt")
    #expect(archive.meters.count == 2)
    #expect(
      archive.meters[0] == MeterEntry(address: meterA, bus: "1", customer: "C-1", area: "TA-9", line: 3))
    #expect(archive.meters[1] == MeterEntry(address: meterB, bus: "2", line: 4))
    #expect(archive.meters(onBus: "2").map { $0.address } == [meterB])
    #expect(archive.entry(meterB)?.line == 4)
  }

  private func failure(_ text: String) -> String {
    do {
      _ = try MeterArchive.parse(text, file: "m.txt")
      return "accepted"
    } catch {
      return error.description
    }
  }

  @Test func badLinesNameTheFileAndLine() {
    #expect(failure("12345678 1\n") == "m.txt:1: '12345678' is not a meter address (12 digits 0-9)")
    #expect(failure("AAAAAAAAAAAA 1\n") == "m.txt:1: 'AAAAAAAAAAAA' is not a meter address (12 digits 0-9)")
    #expect(failure("\n000012345678\n").hasPrefix("m.txt:2: meter 000012345678 has no bus"))
    #expect(
      failure("000012345678 1 phase=3\n")
        == "m.txt:1: unknown field 'phase=3' (expected customer=... or area=...)")
    #expect(
      failure("000012345678 1\n000012345678 2\n")
        == "m.txt:2: meter 000012345678 is listed twice (first on line 1)")
  }

  @Test func missingFileIsNamed() {
    do {
      _ = try MeterArchive.load(path: "/nonexistent/meters.txt")
      Issue.record("loaded a missing file")
    } catch {
      #expect(error.description.hasPrefix("/nonexistent/meters.txt: open /nonexistent/meters.txt"))
    }
  }
}

import Foundation
import SQLiteStore
import TestSupport
import Testing

/// Meter reading end to end: `gridedge-sim` serving simulated meters on TCP (a
/// serial-to-Ethernet gateway), `gridedge run` with that gateway as bus 1, a real
/// mosquitto and `gridedge-hq`. Faults injected: 3 % corrupt replies, 2 % silent
/// meters, a stopped meter, a meter whose clock gained 15 minutes.
@Suite(.serialized) struct AcquisitionEndToEndTests {
  /// The simulator's model options (the same options give the same meters).
  private func model(meters: Int, start: Int64) -> [String] {
    [
      "--meters", String(meters), "--start", String(start), "--history-days", "3", "--corrupt", "30",
      "--silent", "2%", "--stopped", "7", "--drift", "5:300",
    ]
  }

  /// Customers and the area meter from `gridedge-sim list --json` or `truth`.
  private func meters(_ json: [String: Any]) -> [[String: Any]] {
    var all = json["customers"] as? [[String: Any]] ?? []
    if let area = json["area"] as? [String: Any] { all.append(area) }
    return all
  }

  private func truth(_ model: [String], at seconds: Int64, in dir: URL) throws -> [String: [String: Any]] {
    let out = try runProduct(
      "gridedge-sim", ["truth"] + model + ["--at", String(seconds)], in: dir, timeout: 60)
    guard out.status == 0 else { throw TestFailure("gridedge-sim truth: \(out.stderr)") }
    var byAddress: [String: [String: Any]] = [:]
    for meter in meters(try jsonObject(out.stdout)) { byAddress[meter["address"] as? String ?? ""] = meter }
    return byAddress
  }

  /// Seconds into the local (UTC+8) day.
  private func chinaSecondOfDay() -> Int64 { (Int64(Date().timeIntervalSince1970) + 8 * 3600) % 86_400 }

  @Test func simulatedMetersOnAGatewayAreReadStoredAndDeliveredWithEveryBadFrameCounted() throws {
    let dir = try makeTemporaryDirectory("acq-e2e")
    let help = try runProduct("gridedge-sim", ["--help"], in: dir)
    guard help.stdout.contains("gridedge-sim serve") else {
      throw TestFailure("gridedge-sim has no 'serve' command: the simulator is needed for this test")
    }
    // One cycle a day (at local midnight) so that no second cycle starts during the
    // test; not near midnight: freezes are not due yet just after it, the drifting
    // meter (300 s/day over 3 simulated days: 15 min ahead) has frozen its next day
    // from 23:45, and the agent sends no time-set within 5 minutes of midnight.
    // (A run that starts in that window waits for it to pass: at most 30 minutes.)
    while chinaSecondOfDay() > 86_400 - 20 * 60 || chinaSecondOfDay() < 10 * 60 { sleep(5) }
    let count = 60
    let start = Int64(Date().timeIntervalSince1970)
    let model = model(meters: count, start: start)
    let list = meters(
      try jsonObject(try runProduct("gridedge-sim", ["list"] + model + ["--json"], in: dir).stdout))
    #expect(list.count == count + 1)
    let silent = Set(
      list.filter { ($0["faults"] as? [String: Any])?["silent"] as? Bool == true }.map {
        $0["address"] as? String ?? ""
      })
    #expect(silent.count == 1)
    let meterFile = dir.appendingPathComponent("meters.txt")
    // Two buses (two connections to the gateway), meters alternating between them: each
    // bus numbers its requests from 1, so this also checks replies reach the right meter.
    try list.enumerated().map { ($1["address"] as? String ?? "") + " \($0 % 2 + 1) area=TA-E2E" }
      .joined(separator: "\n").write(to: meterFile, atomically: true, encoding: .utf8)

    let (sim, simPort) = try startSimulator(model, in: dir)
    let rig = try HQUnderTest(in: dir)
    let hqDB = rig.db
    let agentDB = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try """
    device.id = TA-E2E
    store.path = \(agentDB)
    mqtt.port = \(rig.port)
    meter.file = \(meterFile.path)
    bus.1 = tcp 127.0.0.1:\(simPort) 9600 8E1
    bus.2 = tcp 127.0.0.1:\(simPort) 9600 8E1
    bus.timeout = 300
    bus.gap = 5
    acquisition.interval = 1440
    acquisition.backfill_days = 7
    log.level = info
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("reading(s) stored", timeout: 60)

    let db = try readOnlyConnection(agentDB)
    let cycle = try #require(
      try db.query("SELECT slot, meters, answered, missing, errors, stored FROM acquisition_cycles").first)
    #expect(cycle.int64(1) == Int64(count + 1))
    #expect(cycle.int64(2) == Int64(count + 1 - silent.count))
    #expect(cycle.int64(3) == Int64(silent.count))
    let slot = cycle.int64(0) ?? 0

    // Real-time readings: one per answering meter, within the simulator's registers
    // just before and just after the cycle (registers only grow).
    let realtime = try db.query(
      "SELECT meter, value, tariffs, read_at, quality FROM readings WHERE di = '0001FF00' AND ts = ?1",
      [.integer(slot)])
    #expect(
      Set(realtime.map { $0.text(0) ?? "" })
        == Set(list.map { $0["address"] as? String ?? "" }).subtracting(silent))
    let firstRead = realtime.compactMap { $0.int64(3) }.min() ?? 0
    let lastRead = realtime.compactMap { $0.int64(3) }.max() ?? 0
    let before = try truth(model, at: max(start, firstRead / 1000 - 3), in: dir)
    let after = try truth(model, at: lastRead / 1000 + 2, in: dir)
    for row in realtime {
      let address = row.text(0) ?? ""
      let low = (before[address]?["forward_centi_kwh"] as? [Int64] ?? []).map { $0 * 10 }
      let high = (after[address]?["forward_centi_kwh"] as? [Int64] ?? []).map { $0 * 10 }
      let tariffs =
        (try JSONSerialization.jsonObject(with: Data((row.text(2) ?? "[]").utf8)) as? [Int64]) ?? []
      let stored = [row.int64(1) ?? -1] + tariffs
      #expect(low.count == 5 && stored.count == 5, "meter \(address): \(stored)")
      for i in 0..<min(5, low.count, high.count, stored.count) {
        #expect(
          low[i] <= stored[i] && stored[i] <= high[i],
          "meter \(address) register \(i): \(stored[i]) not in \(low[i])...\(high[i])")
      }
      if address == "000000000007" { #expect(low == high, "the stopped meter moved in the simulator") }
      #expect(row.text(4) == "measured")
    }

    // Daily freezes: exactly the simulator's records, each once.
    for meter in list {
      let address = meter["address"] as? String ?? ""
      let stored = try db.query(
        "SELECT ts, value, tariffs, quality FROM readings WHERE meter = ?1 AND di = '05060101' ORDER BY ts",
        [.text(address)])
      if silent.contains(address) {
        #expect(stored.isEmpty)
        continue
      }
      let records = (after[address]?["freezes"] as? [[String: Any]] ?? []).reversed()
      #expect(
        stored.count == records.count && records.count == 3, "meter \(address): \(stored.count) freezes")
      for (row, record) in zip(stored, records) {
        let registers = (record["forward_centi_kwh"] as? [Int64] ?? []).map { $0 * 10 }
        let tariffs =
          (try JSONSerialization.jsonObject(with: Data((row.text(2) ?? "[]").utf8)) as? [Int64]) ?? []
        #expect(
          [row.int64(1) ?? -1] + tariffs == registers, "meter \(address) freeze \(record["date"] ?? "")")
        let date = Date(timeIntervalSince1970: TimeInterval((row.int64(0) ?? 0) / 1000 + 8 * 3600))
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        #expect(formatter.string(from: date) == record["date"] as? String)
        let expected =
          address == "000000000005"
          ? "clock-suspect" : (record["previous"] as? Int == 1 ? "measured" : "backfilled")
        #expect(row.text(3) == expected, "meter \(address) freeze \(record["date"] ?? "")")
      }
    }

    // The drifting meter got one broadcast time.
    #expect(try db.scalarInt("SELECT count(*) FROM meter_state WHERE time_set_day IS NOT NULL") == 1)
    #expect(agent.log.contains("for meter 000000000005"))

    // Everything stored reaches HQ.
    let cached = try db.scalarInt("SELECT count(*) FROM readings") ?? 0
    #expect(cached == Int64(cycle.int64(5) ?? 0))
    var atHQ: Int64 = 0
    let delivered = waitUntil(timeout: 30) {
      guard FileManager.default.fileExists(atPath: hqDB),
        let hqConnection = try? readOnlyConnection(hqDB)
      else { return false }
      atHQ =
        (try? hqConnection.scalarInt(
          "SELECT count(DISTINCT key) FROM records WHERE device_id = 'TA-E2E' AND class = 'readings'")) ?? 0
      return atHQ == cached
    }
    #expect(delivered, "HQ holds \(atHQ) of \(cached) readings")

    // Every corrupt frame counted is reported to HQ in a meter.comm_errors event.
    let counted = try db.scalarInt("SELECT coalesce(sum(corrupt_frames), 0) FROM meter_state") ?? -1
    var reported: Int64 = -1
    let eventsDelivered = waitUntil(timeout: 30) {
      guard let hqConnection = try? readOnlyConnection(hqDB) else { return false }
      reported =
        (try? hqConnection.scalarInt(
          """
          SELECT coalesce(sum(json_extract(body, '$.corrupt_frames')), 0) FROM records
          WHERE device_id = 'TA-E2E' AND class = 'events' AND json_extract(body, '$.type') = 'meter.comm_errors'
          """)) ?? -1
      return reported == counted
    }
    #expect(eventsDelivered, "HQ got events for \(reported) corrupt frames, the agent counted \(counted)")

    // Stop the agent (the bus is idle: the cycle is over), then the simulator, and
    // compare the corrupted replies it sent with the corrupt frames the agent counted.
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    sim.signal(SIGTERM)
    #expect(try sim.wait(timeout: 10) == 0)
    let corruptedText = try #require(
      sim.log.components(separatedBy: " replies (").last?.prefix { $0.isNumber })
    let corrupted = Int64(corruptedText) ?? -1
    #expect(corrupted > 0, "the simulator corrupted no reply: \(sim.log.suffix(300))")
    #expect(counted == corrupted, "agent counted \(counted) corrupt frames, the simulator sent \(corrupted)")
    // gridedge readings shows what was stored for one meter.
    let report = try runProduct(
      "gridedge",
      ["readings", "--config", config, "--meter", "000000000001", "--from", "2020-01-01", "--json"],
      in: dir)
    let shown = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [[String: Any]]
    #expect(shown?.count == 4, "\(report.stdout) \(report.stderr)")
    let status = try runProduct("gridedge", ["status", "--config", config], in: dir)
    #expect(status.stdout.contains("of \(count + 1) answered, \(silent.count) missing"), "\(status.stdout)")
    withExtendedLifetime(rig) {}
  }
}

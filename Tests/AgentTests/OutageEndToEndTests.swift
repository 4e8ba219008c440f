import Foundation
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Outages end to end: `gridedge-sim --outage` drops an area's supply (or a phase) for
/// a while, `gridedge run` reads the meters every minute, a real mosquitto, and
/// `gridedge-hq serve` storing what arrives.
@Suite(.serialized) struct OutageEndToEndTests {
  /// The archive: the area meter and customer meters 1…n on the phases the simulator
  /// gives them (A, B, C in turn); C-2 is outage-sensitive.
  static func archive(customers n: Int) -> String {
    var meters = [
      #"{"address":"900000000001","customer":"AREA","area":"TA-1","phase":"ABC","category":"area","area_meter":true}"#
    ]
    for i in 1...n {
      meters.append(
        #"{"address":"\#(String(format: "%012d", i))","customer":"C-\#(i)","area":"TA-1","phase":"\#(["A", "B", "C"][(i - 1) % 3])","category":"residential","outage_sensitive":\#(i == 2)}"#
      )
    }
    return #"{"op":"snapshot","version":1,"meters":["# + meters.joined(separator: ",") + "]}"
  }

  /// A meter file with the customer meters 1…n and the area meter.
  static func meterFile(_ dir: URL, customers n: Int) throws -> URL {
    let url = dir.appendingPathComponent("meters.txt")
    try ((1...n).map { String(format: "%012d 1\n", $0) }.joined() + "900000000001 1\n").write(
      to: url, atomically: true, encoding: .utf8)
    return url
  }

  /// `gridedge-sim` with customer meters 1…n and `simulator` options, mosquitto and
  /// `gridedge-hq`, and the agent's configuration: those meters and the area meter read
  /// every minute, relays controlled at any time, a silent meter alarmed after one cycle.
  private func setUp(
    device: String, dir: URL, keys: String, customers n: Int, simulator: [String], extra: String = ""
  ) throws -> (sim: Child, rig: HQUnderTest, config: String) {
    let (sim, simPort) = try startSimulator(["--meters", String(n)] + simulator, in: dir)
    let rig = try HQUnderTest(in: dir)
    let config = dir.appendingPathComponent("agent.conf").path
    try
      (agentBaseConfig(device: device, dir: dir, port: rig.port, keys: keys)
      + simulatedRelayConfig(meterFile: try Self.meterFile(dir, customers: n), simPort: simPort)
      + "acquisition.silent_cycles = 1\n" + extra).write(toFile: config, atomically: true, encoding: .utf8)
    return (sim, rig, config)
  }

  private func events(_ hqDB: String, _ device: String, _ type: String) -> [[String: Any]] {
    storedAtHQ(hqDB, device: device, "events").filter { $0["type"] as? String == type }
  }

  private func int(_ value: Any?) -> Int64? { (value as? NSNumber)?.int64Value }

  @Test func anAreaOutageReachesHQWithinACycleAndARestartKeepsItsStartForTheRestoration() throws {
    let device = "TA-OUTAGE"
    let dir = try makeTemporaryDirectory("outage-e2e")
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    let offset = UTCOffset.china
    let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
    // The device recorded an outage yesterday (10:00–10:30 local, 6 customers): its
    // daily figures go to HQ once the agent runs.
    let today = offset.localDateTime(fromUnix: nowMs / 1000).date
    let yesterday = today.adding(days: -1)
    let yesterdayTen = (offset.unixSeconds(startOf: yesterday) + 36_000) * 1000
    do {
      let store = try AgentStore(
        path: dir.appendingPathComponent("agent.db").path, deviceID: device, now: nowMs)
      try store.db.run(
        """
        INSERT INTO outages (area, phases, causes, started_at, ended_at, customers, meters)
        VALUES ('TA-1', 'ABC', 'voltage', ?1, ?2, 6, '[]')
        """, [.integer(yesterdayTen), .integer(yesterdayTen + 1_800_000)])
    }
    // The drop 15 s after the start, for 80 s: whenever in the agent's minute it
    // falls, the next cycle sees it, and the restart below comes before its end.
    let start = Int64(Date().timeIntervalSince1970)
    let after: Int64 = 15
    let dropAt = start + after
    let (sim, rig, config) = try setUp(
      device: device, dir: dir, keys: keys, customers: 6,
      simulator: ["--profile", "residential", "--start", String(start), "--outage", "area@\(after)+80"])
    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String {
      [agent, sim, rig.hq].map { String($0.log.suffix(5000)) }.joined(separator: "\n----\n")
    }
    let sent = try hqSend(
      "archive", Self.archive(customers: 6), device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir
    )
    #expect(sent.status == 0, "\(sent.stderr)")

    // Yesterday's figures.
    var daily: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 20) {
        daily = events(rig.db, device, "outage.daily").first { $0["area"] as? String == "TA-1" }
        return daily != nil
      }, "no outage.daily at HQ\n\(logs())")
    #expect(daily?["day"] as? String == yesterday.isoText)
    #expect(int(daily?["interruptions"]) == 1)
    #expect(int(daily?["customer_minutes"]) == 180)
    #expect(int(daily?["longest_s"]) == 1_800)
    #expect(int((daily?["planned"] as? [String: Any])?["interruptions"]) == 0)

    // The drop reaches HQ within one cycle (60 s, and the bus's timeouts).
    var begun: [String: Any]? = nil
    #expect(
      waitUntil(timeout: Double(dropAt - Int64(Date().timeIntervalSince1970)) + 75) {
        begun = events(rig.db, device, "outage.start").first
        return begun != nil
      }, "no outage.start at HQ\n\(logs())")
    let heardAfter = Date().timeIntervalSince1970 - Double(dropAt)
    print("outage-e2e: outage.start at HQ \(String(format: "%.1f", heardAfter)) s after the drop")
    #expect(heardAfter < 66, "HQ heard of the drop \(heardAfter) s after it")
    let begunAt = try #require(int(begun?["start"]))
    #expect(begunAt >= dropAt * 1000)
    #expect(begun?["area"] as? String == "TA-1")
    #expect(begun?["phases"] as? String == "ABC")
    #expect(begun?["causes"] as? [String] == ["voltage"])
    #expect(begun?["kind"] as? String == "unplanned")
    #expect(begun?["customers"] as? [String] == (1...6).map { "C-\($0)" })
    #expect((begun?["sensitive"] as? [[String: String]]) == [["customer": "C-2", "meter": "000000000002"]])

    // A restart in the middle of it.
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("has been without supply since")

    // Back at dropAt + 80: the restoration, with the first start, within a cycle.
    var ended: [String: Any]? = nil
    #expect(
      waitUntil(timeout: Double(dropAt + 80 - Int64(Date().timeIntervalSince1970)) + 75) {
        ended = events(rig.db, device, "outage.end").first
        return ended != nil
      }, "no outage.end at HQ\n\(logs())")
    let endedAt = try #require(int(ended?["end"]))
    #expect(int(ended?["start"]) == begunAt)
    #expect(int(ended?["duration_s"]) == (endedAt - begunAt) / 1000)
    #expect(endedAt >= (dropAt + 80) * 1000 && endedAt < (dropAt + 80 + 66) * 1000, "ended at \(endedAt)")
    #expect(int(ended?["customer_minutes"]) == ((endedAt - begunAt) * 6 + 30_000) / 60_000)
    #expect(events(rig.db, device, "outage.start").count == 1, "a second start after the restart")
    // No missing-read alarm for the meters without supply (silent_cycles is 1).
    #expect(events(rig.db, device, "archive.silent").isEmpty, "\(events(rig.db, device, "archive.silent"))")
    #expect(events(rig.db, device, "meter.no_answer").isEmpty, "\(events(rig.db, device, "meter.no_answer"))")

    // What an engineer on site sees: the outage and today's figures so far.
    let report = try runProduct("gridedge", ["outages", "--config", config, "--json"], in: dir)
    #expect(report.status == 0, "\(report.stderr)")
    let shown = try jsonObject(report.stdout)
    let listed = try #require((shown["outages"] as? [[String: Any]])?.first)
    #expect(int(listed["start"]) == begunAt && int(listed["end"]) == endedAt)
    let todayFigures = try #require(
      (shown["today"] as? [[String: Any]])?.first { $0["area"] as? String == "TA-1" })
    #expect(int(todayFigures["interruptions"]) == 1)
    #expect(int(todayFigures["customers"]) == 6)
    #expect(int(todayFigures["customer_minutes"]) == int(ended?["customer_minutes"]))

    // What HQ shows: the outage with its end and the customer to call first.
    let hqReport = try runProduct("gridedge-hq", ["report", "--db", rig.db, "--json"], in: dir)
    #expect(hqReport.status == 0, "\(hqReport.stderr)")
    let devices = try #require(
      try JSONSerialization.jsonObject(with: Data(hqReport.stdout.utf8)) as? [[String: Any]])
    let atHQ = try #require(
      (devices.first { $0["device"] as? String == device }?["outages"] as? [[String: Any]])?.first)
    #expect(int(atHQ["start"]) == begunAt && int(atHQ["end"]) == endedAt)
    #expect(atHQ["kind"] as? String == "unplanned" && atHQ["sensitive"] as? String == "C-2")
    #expect(int(atHQ["customers"]) == 6)

    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    sim.signal(SIGTERM)
    _ = try sim.wait(timeout: 10)
    withExtendedLifetime(rig) {}
  }

  @Test func aPlannedOutageIsReportedAsPlannedAndNoCustomerIsDisconnectedDuringIt() throws {
    let device = "TA-PLANNED"
    let dir = try makeTemporaryDirectory("planned-outage-e2e")
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    // Start in the first half of a minute, so that phase B's drop 20 s before the next
    // minute comes after the agent's first cycle.
    while Int64(Date().timeIntervalSince1970) % 60 > 30 { usleep(200_000) }
    let start = Int64(Date().timeIntervalSince1970)
    let nextMinute = start - start % 60 + 60
    let truthFile = dir.appendingPathComponent("truth.json")
    // 120 simulated seconds a real second: customer 1 runs through its small credit
    // between the first two cycles. Phase B (meter 2) drops from 20 s before the next
    // minute for 40 s.
    let (sim, rig, config) = try setUp(
      device: device, dir: dir, keys: keys, customers: 3,
      simulator: [
        "--profile", "residential", "--speed", "120", "--start", String(start), "--outage",
        "B@\((nextMinute - 20 - start) * 120)+\(40 * 120)", "--truth-file", truthFile.path, "--truth-every",
        "200",
      ], extra: "prepaid.overdraft_limit = -100\n")
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String {
      [agent, sim, rig.hq].map { String($0.log.suffix(5000)) }.joined(separator: "\n----\n")
    }
    var counter = 0
    func send(_ type: String, _ body: String) throws -> [String: Any] {
      let out = try hqSend(type, body, device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir)
      guard out.status == 0 else { throw TestFailure("gridedge-hq send \(type): \(out.stderr)") }
      counter += 1
      var found: [String: Any]? = nil
      _ = waitUntil(timeout: 20) {
        found = storedAtHQ(rig.db, device: device, "results").last { $0["ctr"] as? String == String(counter) }
        return found != nil
      }
      guard let found else { throw TestFailure("no result for command \(counter) at HQ\n\(logs())") }
      return found
    }
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    let windowEnd = (nextMinute + 45) * 1000
    #expect(try send("archive", Self.archive(customers: 3))["outcome"] as? String == "applied")
    // Malformed and expired announcements are refused with the reason.
    let malformed = try send("planned-outage", #"{"id":"PO-0","area":"TA-1","from":\#(now)}"#)
    #expect(malformed["outcome"] as? String == "rejected" && malformed["reason"] as? String == "malformed")
    let expired = try send(
      "planned-outage", #"{"id":"PO-0","area":"TA-1","from":\#(now - 7_200_000),"to":\#(now - 60_000)}"#)
    #expect(expired["outcome"] as? String == "rejected" && expired["reason"] as? String == "expired")
    let planned = try send(
      "planned-outage",
      #"{"id":"PO-1","area":"TA-1","from":\#(now),"to":\#(windowEnd),"reason":"maintenance"}"#)
    #expect(planned["outcome"] as? String == "applied", "\(planned)")
    _ = try send(
      "tariff", #"{"id":"RES-1","category":"residential","effective_from":"2020-01-01","flat":100000}"#)
    #expect(
      try send("topup", #"{"customer":"C-1","purchase":1,"amount":100}"#)["outcome"] as? String == "applied")
    _ = try send("topup", #"{"customer":"C-2","purchase":1,"amount":400000}"#)
    _ = try send("topup", #"{"customer":"C-3","purchase":1,"amount":400000}"#)
    // HQ's own disconnect order is refused during the window too.
    let ordered = try send("disconnect", #"{"meter":"000000000003"}"#)
    #expect(ordered["reason"] as? String == "planned-outage", "\(ordered)")

    // Customer 1 runs into arrears in the window: not cut, and HQ is told why.
    #expect(
      waitUntil(timeout: Double(nextMinute + 30 - Int64(Date().timeIntervalSince1970))) {
        events(rig.db, device, "relay.refused").contains {
          $0["customer"] as? String == "C-1" && $0["reason"] as? String == "planned-outage"
        }
      }, "no planned-outage refusal for C-1 at HQ\n\(logs())")
    // Phase B's loss is reported as planned.
    var begun: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 30) {
        begun = events(rig.db, device, "outage.start").first
        return begun != nil
      }, "no outage.start at HQ\n\(logs())")
    #expect(
      begun?["kind"] as? String == "planned" && begun?["planned"] as? String == "PO-1", "\(begun ?? [:])")
    #expect(begun?["phases"] as? String == "B")
    #expect(begun?["customers"] as? [String] == ["C-2"])
    // Nobody is cut until the window ends.
    while Date().timeIntervalSince1970 * 1000 < Double(windowEnd - 1_000) {
      #expect(simulatorRelayOpen(truthFile, "000000000001") == false, "meter 1 cut in the window\n\(logs())")
      #expect(simulatorRelayOpen(truthFile, "000000000003") == false, "meter 3 cut in the window")
      usleep(2_000_000)
    }
    // After it, the arrears take their course (which shows what held them).
    #expect(
      waitUntil(timeout: 40) { simulatorRelayOpen(truthFile, "000000000001") == true },
      "meter 1 not cut after the window\n\(logs())")
    var ended: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 40) {
        ended = events(rig.db, device, "outage.end").first
        return ended != nil
      }, "no outage.end at HQ\n\(logs())")
    #expect(ended?["kind"] as? String == "planned" && ended?["planned"] as? String == "PO-1")
    #expect(events(rig.db, device, "archive.silent").isEmpty, "\(events(rig.db, device, "archive.silent"))")
    #expect(simulatorRelayOpen(truthFile, "000000000003") == false)

    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    sim.signal(SIGTERM)
    _ = try sim.wait(timeout: 10)
    withExtendedLifetime(rig) {}
  }

  /// The board's power-fail signal (a GPIO value file, read every second): HQ hears of
  /// the outage within seconds, while the board still runs on its reserve; the board
  /// then dies (kill -9), and when the supply is back the agent's first second ends the
  /// outage with the start it had before.
  @Test func thePowerFailSignalReachesHQWithinSecondsAndTheRestartAfterItEndsTheOutage() throws {
    let device = "TA-POWERFAIL"
    let dir = try makeTemporaryDirectory("outage-powerfail")
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    let signal = dir.appendingPathComponent("power_fail")
    try "0\n".write(to: signal, atomically: true, encoding: .utf8)
    let (sim, rig, config) = try setUp(
      device: device, dir: dir, keys: keys, customers: 3, simulator: ["--profile", "residential"],
      extra: "outage.power_fail_path = \(signal.path)\n")
    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String {
      [agent, sim, rig.hq].map { String($0.log.suffix(5000)) }.joined(separator: "\n----\n")
    }
    let sent = try hqSend(
      "archive", Self.archive(customers: 3), device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir
    )
    #expect(sent.status == 0, "\(sent.stderr)")
    #expect(
      waitUntil(timeout: 20) {
        storedAtHQ(rig.db, device: device, "results").contains { $0["outcome"] as? String == "applied" }
      }, "archive not applied\n\(logs())")
    usleep(1_500_000)
    #expect(events(rig.db, device, "outage.start").isEmpty, "an outage before the signal\n\(logs())")

    // The supply fails: the signal file says 1.
    let failedAt = Int64(Date().timeIntervalSince1970 * 1000)
    try "1\n".write(to: signal, atomically: true, encoding: .utf8)
    var begun: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 10) {
        begun = events(rig.db, device, "outage.start").first
        return begun != nil
      }, "no outage.start at HQ\n\(logs())")
    let heard = Double(Int64(Date().timeIntervalSince1970 * 1000) - failedAt) / 1000
    print("outage-powerfail: outage.start at HQ \(String(format: "%.1f", heard)) s after the signal")
    #expect(heard < 5, "HQ heard of the power failure \(heard) s after it")
    let begunAt = try #require(int(begun?["start"]))
    #expect(begunAt >= failedAt && begunAt < failedAt + 2_000, "start \(begunAt), signal at \(failedAt)")
    #expect(begun?["causes"] as? [String] == ["power-fail"])
    #expect(begun?["phases"] as? String == "ABC")
    #expect(begun?["customers"] as? [String] == (1...3).map { "C-\($0)" })
    // What an engineer on site sees meanwhile.
    let status = try runProduct("gridedge", ["status", "--config", config], in: dir)
    #expect(
      status.stdout.contains("outage    TA-1 without supply since ")
        && status.stdout.contains("(power-fail; phases ABC, 3 customer(s), unplanned"), "\(status.stdout)")
    let statusJSON = try jsonObject(
      try runProduct("gridedge", ["status", "--config", config, "--json"], in: dir).stdout)
    let listed = try #require((statusJSON["outages"] as? [[String: Any]])?.first, "\(statusJSON)")
    #expect(listed["area"] as? String == "TA-1" && listed["causes"] as? [String] == ["power-fail"])
    #expect(int(listed["start"]) == begunAt)

    // The reserve runs out: the board dies. The supply comes back before it boots.
    agent.signal(SIGKILL)
    _ = try agent.wait(timeout: 10)
    try "0\n".write(to: signal, atomically: true, encoding: .utf8)
    let backAt = Int64(Date().timeIntervalSince1970 * 1000)
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    var ended: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 20) {
        ended = events(rig.db, device, "outage.end").first
        return ended != nil
      }, "no outage.end at HQ\n\(logs())")
    let endedAt = try #require(int(ended?["end"]))
    #expect(int(ended?["start"]) == begunAt)
    #expect(endedAt >= backAt && endedAt < backAt + 5_000, "end \(endedAt), back at \(backAt)")
    #expect(int(ended?["duration_s"]) == (endedAt - begunAt) / 1000)
    #expect(events(rig.db, device, "outage.start").count == 1, "a second start after the restart")

    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    sim.signal(SIGTERM)
    _ = try sim.wait(timeout: 10)
    withExtendedLifetime(rig) {}
  }
}

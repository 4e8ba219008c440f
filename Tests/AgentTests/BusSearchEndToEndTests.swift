import Foundation
import SQLiteStore
import TestSupport
import Testing

/// The bus search end to end: `gridedge-sim` answers address patterns (colliding
/// replies when several meters match), the agent searches its bus after the first
/// cycle and tells HQ (real mosquitto, `gridedge-hq`) which meters answer but are not
/// in its meter list.
@Suite(.serialized) struct BusSearchEndToEndTests {
  @Test func metersOnTheBusButNotInTheListAreFoundReportedOnceAndShownByArchiveDiff() throws {
    let dir = try makeTemporaryDirectory("bus-search-e2e")
    let model = ["--meters", "30", "--start", String(Int64(Date().timeIntervalSince1970))]
    let listed = try jsonObject(try runProduct("gridedge-sim", ["list"] + model + ["--json"], in: dir).stdout)
    var all = (listed["customers"] as? [[String: Any]] ?? []).map { $0["address"] as? String ?? "" }
    if let area = listed["area"] as? [String: Any] { all.append(area["address"] as? String ?? "") }
    #expect(all.count == 31)
    // Three meters on the bus are left out of the list; one listed meter is not there.
    let unlisted = ["000000000004", "000000000017", "000000000030"]
    #expect(Set(unlisted).isSubset(of: Set(all)))
    let meterFile = dir.appendingPathComponent("meters.txt")
    try (all.filter { !unlisted.contains($0) } + ["000000000099"]).map { $0 + " 1 area=TA-SEARCH" }
      .joined(separator: "\n").write(to: meterFile, atomically: true, encoding: .utf8)

    let (sim, simPort) = try startSimulator(model, in: dir)
    defer { sim.signal(SIGKILL) }
    let rig = try HQUnderTest(in: dir)
    let config = dir.appendingPathComponent("agent.conf").path
    try """
    device.id = TA-SEARCH
    store.path = \(dir.appendingPathComponent("agent.db").path)
    mqtt.port = \(rig.port)
    mqtt.reconnect_min = 100
    mqtt.reconnect_max = 1000
    meter.file = \(meterFile.path)
    bus.1 = tcp 127.0.0.1:\(simPort) 9600 8E1
    bus.timeout = 200
    acquisition.interval = 1440
    acquisition.backfill_days = 0
    acquisition.clock_check = 0
    acquisition.search_hours = 24
    log.level = info
    """.write(toFile: config, atomically: true, encoding: .utf8)
    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    defer { agent.signal(SIGKILL) }

    let events = { storedAtHQ(rig.db, device: "TA-SEARCH", "events") }
    let summary = { events().first { $0["type"] as? String == "bus.search" } }
    #expect(
      waitUntil(timeout: 150) { summary() != nil },
      "no bus.search event at HQ; agent log:\n\(agent.log.suffix(3000))")
    let done = try #require(summary())
    #expect(done["bus"] as? String == "1")
    #expect(done["found"] as? Int == 31, "\(done)")
    #expect(Set(done["unknown"] as? [String] ?? []) == Set(unlisted))
    #expect((done["duplicate_addresses"] as? [String])?.isEmpty == true)
    let probes = done["probes"] as? Int ?? 0
    #expect(probes > 31 && probes < 400, "\(probes) probes")
    let unknown = events().filter { $0["type"] as? String == "meter.unknown" }
    #expect(Set(unknown.map { $0["meter"] as? String ?? "" }) == Set(unlisted))
    #expect(unknown.count == 3)
    #expect(unknown.allSatisfy { $0["how"] as? String == "bus-search" && $0["bus"] as? String == "1" })
    // The probes are not held against the listed meters: no comm errors, and only the
    // missing meter is silent.
    #expect(!events().contains { $0["type"] as? String == "meter.comm_errors" }, "\(events())")
    let silent = events().filter { $0["type"] as? String == "meter.no_answer" }.map { $0["meter"] as? String }
    #expect(silent == ["000000000099"])

    // archive diff shows them (nothing comes from HQ's archive here: every meter of the
    // list is "not in the archive" as well; the found ones say how they were found).
    let diff = try jsonObject(
      try runProduct("gridedge", ["archive", "diff", "--config", config, "--json"], in: dir).stdout)
    let found = (diff["meters"] as? [[String: Any]] ?? []).filter {
      $0["found_by"] as? String == "bus-search"
    }
    #expect(Set(found.map { $0["address"] as? String ?? "" }) == Set(unlisted))
    #expect(found.allSatisfy { $0["state"] as? String == "not-in-archive" })

    // A restart within search_hours does not search again, so nothing is reported twice.
    agent.signal(SIGTERM)
    _ = try agent.wait(timeout: 20)
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("reading(s) stored", timeout: 60)
    Thread.sleep(forTimeInterval: 5)
    #expect(!agent.log.contains("searching for meters"), "\(agent.log)")
    #expect(events().filter { $0["type"] as? String == "meter.unknown" }.count == 3)
    withExtendedLifetime(rig) {}
  }
}

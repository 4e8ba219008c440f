import Foundation
import SQLiteStore
import TestSupport
import Testing

/// The bus search end to end: `gridedge-sim` answers address patterns (colliding
/// replies when several meters match), the agent searches its bus after the first
/// cycle and tells HQ (real mosquitto, `gridedge-hq`) which meters answer but are not
/// in its meter list.
@Suite(.serialized) struct BusSearchEndToEndTests {
  /// Three meters on the bus left out of the list.
  private let unlisted = ["000000000004", "000000000017", "000000000030"]

  /// `gridedge-sim` with 30 meters and an area meter, a meter list without the
  /// `unlisted` ones but with one meter that is not there, a broker and HQ, and the
  /// agent's configuration.
  private func setUp(_ label: String, searchHours: Int, busTimeout: Int = 200) throws -> (
    dir: URL, sim: Child, rig: HQUnderTest, config: String
  ) {
    let dir = try makeTemporaryDirectory(label)
    let model = ["--meters", "30", "--start", String(Int64(Date().timeIntervalSince1970))]
    let listed = try jsonObject(try runProduct("gridedge-sim", ["list"] + model + ["--json"], in: dir).stdout)
    var all = (listed["customers"] as? [[String: Any]] ?? []).map { $0["address"] as? String ?? "" }
    if let area = listed["area"] as? [String: Any] { all.append(area["address"] as? String ?? "") }
    #expect(all.count == 31)
    #expect(Set(unlisted).isSubset(of: Set(all)))
    let meterFile = dir.appendingPathComponent("meters.txt")
    try (all.filter { !unlisted.contains($0) } + ["000000000099"]).map { $0 + " 1 area=TA-SEARCH" }
      .joined(separator: "\n").write(to: meterFile, atomically: true, encoding: .utf8)

    let (sim, simPort) = try startSimulator(model, in: dir)
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
    bus.timeout = \(busTimeout)
    acquisition.interval = 1440
    acquisition.backfill_days = 0
    acquisition.clock_check = 0
    acquisition.search_hours = \(searchHours)
    log.level = info
    """.write(toFile: config, atomically: true, encoding: .utf8)
    return (dir, sim, rig, config)
  }

  @Test func metersOnTheBusButNotInTheListAreFoundReportedOnceAndShownByArchiveDiff() throws {
    let (dir, sim, rig, config) = try setUp("bus-search-e2e", searchHours: 24)
    defer { sim.signal(SIGKILL) }
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

  /// With `acquisition.search_hours = 0` the agent never searches by itself;
  /// `gridedge archive search` makes it search now, and says so when no agent runs.
  @Test func archiveSearchMakesTheRunningAgentSearchItsBusesNow() throws {
    let (dir, sim, rig, config) = try setUp("bus-search-manual", searchHours: 0, busTimeout: 100)
    defer { sim.signal(SIGKILL) }
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    defer { agent.signal(SIGKILL) }
    try agent.waitForLog("reading(s) stored", timeout: 60)
    try agent.waitForLog("birth published", timeout: 20)
    Thread.sleep(forTimeInterval: 2)
    #expect(!agent.log.contains("searching for meters"), "searched with search_hours 0:\n\(agent.log)")

    let asked = try runProduct("gridedge", ["archive", "search", "--config", config], in: dir)
    #expect(asked.status == 0, "\(asked)")
    #expect(asked.stdout.contains("asked the agent (pid \(agent.child.pid))"), "\(asked.stdout)")
    let events = { storedAtHQ(rig.db, device: "TA-SEARCH", "events") }
    var summary: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 150) {
        summary = events().first { $0["type"] as? String == "bus.search" }
        return summary != nil
      }, "no bus.search event at HQ; agent log:\n\(agent.log.suffix(3000))")
    #expect(Set(summary?["unknown"] as? [String] ?? []) == Set(unlisted), "\(summary ?? [:])")
    #expect(agent.log.contains("bus search requested by hand"))
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 20) == 0, "the agent did not stop cleanly after SIGUSR1:\n\(agent.log)")

    // No agent: a clear refusal.
    let refused = try runProduct("gridedge", ["archive", "search", "--config", config], in: dir)
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("a bus search needs the buses, which the agent holds"), "\(refused)")
    withExtendedLifetime(rig) {}
  }
}

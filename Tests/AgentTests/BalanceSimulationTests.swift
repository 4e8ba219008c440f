import Foundation
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// The energy balance from meters read over the bus: `gridedge-sim serve` with
/// residential customers, an area meter registering their true use + 5 % and faults
/// injected from the start of yesterday (`--faults-from`, so the meters' own history
/// is honest); `gridedge run` reads every meter and backfills its daily freezes, then
/// `gridedge balance --day <yesterday> --json` is checked. No broker: the balance
/// needs none (mqtt.port is a closed port).
@Suite(.serialized) struct BalanceSimulationTests {
  struct Run {
    let dir: URL
    let config: String
    let store: AgentStore
    let customers: [String]
    let areaMeter: String
    let yesterday: String
  }

  /// The archive snapshot of the simulated area TA-SIM (`ct`: CT ratios by meter number).
  private func archive(_ customers: [String], areaMeter: String, version: Int, ct: [Int: Int] = [:]) -> String
  {
    var meters = customers.enumerated().map { i, address in
      #"{"address":"\#(address)","customer":"C-\#(i + 1)","area":"TA-SIM","ct":\#(ct[i + 1] ?? 1),"category":"residential"}"#
    }
    meters.append(
      #"{"address":"\#(areaMeter)","customer":"AREA","area":"TA-SIM","phase":"ABC","category":"area","area_meter":true}"#
    )
    return #"{"op":"snapshot","version":\#(version),"meters":["# + meters.joined(separator: ",") + "]}"
  }

  /// Simulates `meters` customers with `faults`, reads them once with the agent and
  /// stops it.
  private func simulate(_ label: String, meters: Int, faults: [String]) throws
    -> Run
  {
    // Not within 5 minutes of local midnight: the day must not change under the test.
    while chinaSecondOfDay() > 86_400 - 300 || chinaSecondOfDay() < 120 { sleep(5) }
    let dir = try makeTemporaryDirectory(label)
    let now = Int64(Date().timeIntervalSince1970)
    let today = (now + 8 * 3600) / 86_400
    let yesterdayStart = (today - 1) * 86_400 - 8 * 3600
    let model =
      [
        "--meters", String(meters), "--seed", "5", "--profile", "residential", "--start", String(now),
        "--history-days", "10", "--faults-from", String(yesterdayStart),
      ] + faults
    let listed = try runProduct("gridedge-sim", ["list", "--json"] + model, in: dir)
    guard listed.status == 0 else { throw TestFailure("gridedge-sim list: \(listed.stderr)") }
    let json = try jsonObject(listed.stdout)
    let customers = (json["customers"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
    let areaMeter = try #require((json["area"] as? [String: Any])?["address"] as? String)
    #expect(customers.count == meters)

    let sim = try Child("gridedge-sim", ["serve"] + model + ["--tcp", "0", "--log-level", "info"], in: dir)
    try sim.waitForLog("listening on tcp 127.0.0.1:")
    let simPort = try #require(
      sim.log.components(separatedBy: "listening on tcp 127.0.0.1:").last?.prefix { $0.isNumber })
    let meterFile = dir.appendingPathComponent("meters.txt")
    try (customers + [areaMeter]).map { $0 + " 1" }.joined(separator: "\n").write(
      to: meterFile, atomically: true, encoding: .utf8)
    let path = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try """
    device.id = TA-SIM
    store.path = \(path)
    mqtt.port = \(try freeLoopbackPort())
    meter.file = \(meterFile.path)
    bus.1 = tcp 127.0.0.1:\(simPort) 9600 8E1
    bus.timeout = 300
    acquisition.interval = 1440
    acquisition.freeze_delay = 0
    acquisition.backfill_days = 9
    acquisition.clock_check = 0
    log.level = info
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let store = try AgentStore(path: path, deviceID: "TA-SIM", now: now * 1000)
    try store.db.begin()
    _ = try Archive.apply(body: archive(customers, areaMeter: areaMeter, version: 1), db: store.db, now: 1)
    try store.db.commit()

    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("reading(s) stored", timeout: 120)
    #expect(agent.log.contains("cycle 1 for"), "\(agent.log)")
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)
    sim.signal()
    _ = try sim.wait(timeout: 15)
    return Run(
      dir: dir, config: config, store: store, customers: customers, areaMeter: areaMeter,
      yesterday: CivilDate(daysSinceEpoch: today - 1).isoText)
  }

  private func balance(_ run: Run) throws -> [String: Any] {
    let result = try runProduct(
      "gridedge", ["balance", "--config", run.config, "--area", "TA-SIM", "--day", run.yesterday, "--json"],
      in: run.dir)
    guard result.status == 0 else { throw TestFailure("gridedge balance: \(result.stderr)") }
    return try jsonObject(result.stdout)
  }

  private func int(_ value: Any?) -> Int64? { (value as? NSNumber)?.int64Value }

  @Test func halfBypassIsTheTopSuspectAndAWrongCTRatioShowsAsNegativeLoss() throws {
    // A 50 % bypass on meter 3, with the default thresholds (the drop rule flags a day
    // at or below 65 % of the meter's median: half of a fuller day than usual is more
    // than half the median).
    let run = try simulate("balance-sim-theft", meters: 20, faults: ["--theft", "3:0.5"])
    let b = try balance(run)
    #expect(int(b["completeness_bp"]) == 10_000, "\(b)")
    let supplied = try #require(int(b["supplied_wh"]))
    let loss = try #require(int(b["loss_wh"]))
    // 5 % technical loss plus half of meter 3's day.
    #expect(int(b["loss_rate_bp"]).map { $0 > 476 } == true, "\(b)")
    let suspects = try #require(b["suspects"] as? [[String: Any]])
    let top = try #require(suspects.first)
    #expect(top["meter"] as? String == run.customers[2], "\(suspects)")
    #expect((top["anomalies"] as? [[String: Any]])?.first?["rule"] as? String == "sudden-drop")
    // Its drop explains most of what the 5 % technical loss does not.
    let technical = supplied * 50 / 1_050
    #expect(int(top["drop_wh"]).map { abs($0 - (loss - technical)) * 2 < loss } == true, "\(top)")

    // The same readings with meter 4 recorded behind a CT of 20 it does not have.
    try run.store.db.begin()
    _ = try Archive.apply(
      body: archive(run.customers, areaMeter: run.areaMeter, version: 2, ct: [4: 20]), db: run.store.db,
      now: 2)
    try run.store.db.commit()
    let wrong = try balance(run)
    #expect(int(wrong["loss_wh"]).map { $0 < 0 } == true, "\(wrong)")
    let flags = try #require(wrong["flags"] as? [[String: Any]])
    #expect(flags.map { $0["code"] as? String } == ["negative-loss"])
    #expect((flags.first?["detail"] as? String)?.contains("CT ratio") == true)
  }

  @Test func stoppedMeterIsFoundAndASilentMeterWithholdsTheRate() throws {
    let run = try simulate("balance-sim-stopped", meters: 20, faults: ["--stopped", "5", "--silent", "9"])
    let b = try balance(run)
    #expect(b["missing"] as? [String] == [run.customers[8]], "\(b)")
    #expect(b["loss_rate_bp"] is NSNull)
    #expect((b["withheld"] as? [String: Any])?["code"] as? String == "incomplete-collection")
    #expect(int(b["completeness_bp"]) == 9_523)
    let suspects = try #require(b["suspects"] as? [[String: Any]])
    let stopped = try #require(suspects.first { $0["meter"] as? String == run.customers[4] }, "\(suspects)")
    let anomaly = try #require((stopped["anomalies"] as? [[String: Any]])?.first)
    #expect(anomaly["rule"] as? String == "stopped")
    #expect(int(anomaly["energy_wh"]) == 0)
    #expect(int(anomaly["median_wh"]).map { $0 >= 500 } == true)
  }
}

/// Seconds into the local (UTC+8) day now.
func chinaSecondOfDay() -> Int64 { (Int64(Date().timeIntervalSince1970) + 8 * 3600) % 86_400 }

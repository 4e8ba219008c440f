import Foundation
import SQLiteStore
import TestSupport
import Testing

/// Disconnection and reconnection end to end: `gridedge-sim` meters on TCP (a gateway),
/// a real mosquitto, `gridedge-hq` signing the archive, tariff, top-ups and control
/// commands, and `gridedge run`. The relay states are read from the simulator's side
/// (its live truth file), the outcomes from what reached HQ. Meter 1's relay is
/// bridged in the simulator, so it registers energy while cut: a possible bypass.
@Suite(.serialized) struct RelayEndToEndTests {
  private let device = "TA-RELAY"

  private func hqRecords(_ hqDB: String, _ recordClass: String) -> [[String: Any]] {
    storedAtHQ(hqDB, device: device, recordClass)
  }

  private func hqEvents(_ hqDB: String, _ type: String) -> [[String: Any]] {
    hqRecords(hqDB, "events").filter { $0["type"] as? String == type }
  }

  /// The relay of `address` as the simulator has it (nil while the file is not there).
  private func simRelayOpen(_ truthFile: URL, _ address: String) -> Bool? {
    simulatorRelayOpen(truthFile, address)
  }

  /// Yesterday, today and tomorrow in China (UTC+8), `YYYY-MM-DD,...` (so that a run
  /// at local midnight still has today among them).
  private func chinaDaysAroundToday() -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd"
    formatter.timeZone = TimeZone(secondsFromGMT: 8 * 3600)
    return [-1.0, 0, 1].map { formatter.string(from: Date().addingTimeInterval($0 * 86_400)) }
      .joined(separator: ",")
  }

  @Test func arrearsCutTopUpRestoresKeepPowerStaysOnWindowsRefuseAndSignedOrdersAreExecuted() throws {
    let dir = try makeTemporaryDirectory("relay-e2e")
    let help = try runProduct("gridedge-sim", ["--help"], in: dir)
    guard help.stdout.contains("--truth-file") else {
      throw TestFailure(
        "gridedge-sim has no --truth-file: the simulator's relay state is needed for this test")
    }
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    // Three commercial customers; 120 simulated seconds a second, so a minute's slot
    // registers two hours of load.
    let truthFile = dir.appendingPathComponent("truth.json")
    let (sim, simPort) = try startSimulator(
      [
        "--meters", "3", "--profile", "commercial", "--speed", "120", "--no-area", "--relay-bypass", "1",
        "--truth-file", truthFile.path, "--truth-every", "200",
      ], in: dir)
    let rig = try HQUnderTest(in: dir)
    let hqDB = rig.db
    let meterFile = dir.appendingPathComponent("meters.txt")
    try "000000000001 1\n000000000002 1\n000000000003 1\n".write(
      to: meterFile, atomically: true, encoding: .utf8)
    let config = dir.appendingPathComponent("agent.conf").path
    func writeConfig(_ extra: String) throws {
      let text =
        agentBaseConfig(device: device, dir: dir, port: rig.port, keys: keys)
        + simulatedRelayConfig(meterFile: meterFile, simPort: simPort) + """
          prepaid.overdraft_limit = -100
          \(extra)
          """
      try text.write(toFile: config, atomically: true, encoding: .utf8)
    }
    try writeConfig("")
    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String {
      [agent, sim, rig.hq].map { String($0.log.suffix(4000)) }.joined(separator: "\n----\n")
    }

    func send(_ type: String, _ body: String) throws -> String {
      let out = try hqSend(type, body, device: device, keys: keys, hqDB: hqDB, port: rig.port, in: dir)
      guard out.status == 0 else { throw TestFailure("gridedge-hq send \(type): \(out.stderr)") }
      return out.stdout
    }
    func result(ctr: Int, outcome: String? = nil, timeout: Double = 20) throws -> [String: Any] {
      var found: [String: Any]? = nil
      let arrived = waitUntil(timeout: timeout) {
        found = hqRecords(hqDB, "results").last(where: {
          $0["ctr"] as? String == String(ctr) && (outcome == nil || $0["outcome"] as? String == outcome)
        })
        return found != nil
      }
      guard arrived, let found else {
        throw TestFailure("no result \(outcome ?? "") for command \(ctr) at HQ\n\(logs())")
      }
      return found
    }

    // 1. The archive (customer 2 keep-power), a tariff of 10 CNY/kWh, small top-ups for
    //    customers 1 and 2, a large one for 3.
    _ = try send(
      "archive",
      #"{"op":"snapshot","version":1,"meters":[{"address":"000000000001","customer":"C-1","area":"TA-1","category":"commercial","grade":"C"},{"address":"000000000002","customer":"C-2","area":"TA-1","category":"commercial","keep_power":true},{"address":"000000000003","customer":"C-3","area":"TA-1","category":"commercial"}]}"#
    )
    _ = try send(
      "tariff", #"{"id":"COM-1","category":"commercial","effective_from":"2020-01-01","flat":100000}"#)
    _ = try send("topup", #"{"customer":"C-1","purchase":1,"amount":100}"#)
    _ = try send("topup", #"{"customer":"C-2","purchase":1,"amount":100}"#)
    _ = try send("topup", #"{"customer":"C-3","purchase":1,"amount":400000}"#)
    for ctr in 1...5 { #expect(try result(ctr: ctr)["outcome"] as? String == "applied") }

    // 2. Customer 1 consumes past the overdraft limit (−1.00 CNY): the agent trips the
    //    relay, the simulator's meter is open, and HQ hears of the verified trip.
    #expect(
      waitUntil(timeout: 200) { simRelayOpen(truthFile, "000000000001") == true },
      "meter 1 was not cut\n\(logs())")
    #expect(
      waitUntil(timeout: 20) {
        hqEvents(hqDB, "relay.verified").contains {
          $0["meter"] as? String == "000000000001" && $0["action"] as? String == "trip"
            && $0["why"] as? String == "overdraft" && $0["relay"] as? String == "open"
        }
      }, "no relay.verified trip of meter 1 at HQ\n\(logs())")
    // The keep-power customer 2 comes as deep in arrears (within a cycle or two of
    // customer 1: its load differs), is not cut, and HQ is told why.
    #expect(
      waitUntil(timeout: 200) {
        hqEvents(hqDB, "relay.refused").contains {
          $0["customer"] as? String == "C-2" && $0["reason"] as? String == "keep-power"
        }
      }, "no keep-power refusal for C-2 at HQ\n\(logs())")
    #expect(simRelayOpen(truthFile, "000000000002") == false)
    #expect(simRelayOpen(truthFile, "000000000003") == false)
    let agentDB = try readOnlyConnection(dir.appendingPathComponent("agent.db").path)
    #expect((try agentDB.scalarInt("SELECT balance_fen FROM accounts WHERE customer = 'C-2'") ?? 0) < -100)
    // What an engineer on site sees.
    let status = try runProduct("gridedge", ["status", "--config", config], in: dir)
    #expect(
      status.stdout.contains("relays    1 meter(s) cut (verified open), 0 operation(s) pending, 0 failed"),
      "\(status)")

    // Meter 1's relay is bridged (the simulator's --relay-bypass): it registers energy
    // while recorded open, which the next reading shows — a possible bypass.
    var anomaly: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 150) {
        anomaly = hqEvents(hqDB, "relay.energy_while_open").first { $0["meter"] as? String == "000000000001" }
        return anomaly != nil
      }, "no relay.energy_while_open for meter 1 at HQ\n\(logs())")
    #expect((anomaly?["delta_wh"] as? Int ?? 0) > 0)
    #expect(hqEvents(hqDB, "relay.energy_while_open").count == 1)

    // 3. A top-up to the close-permit amount: closed within the poll cycle, verified.
    let toppedUp = Date()
    _ = try send("topup", #"{"customer":"C-1","purchase":2,"amount":400000}"#)
    #expect(
      waitUntil(timeout: 60) { simRelayOpen(truthFile, "000000000001") == false },
      "meter 1 was not closed after the top-up\n\(logs())")
    let closeSeconds = Date().timeIntervalSince(toppedUp)
    print("relay-e2e: top-up to verified close in the simulator: \(String(format: "%.2f", closeSeconds)) s")
    #expect(closeSeconds < 60, "closing took more than one acquisition cycle")
    #expect(
      waitUntil(timeout: 20) {
        hqEvents(hqDB, "relay.verified").contains {
          $0["meter"] as? String == "000000000001" && $0["action"] as? String == "close"
            && $0["why"] as? String == "topup"
        }
      }, "no relay.verified close of meter 1 at HQ\n\(logs())")

    // 4. HQ orders customer 3 (in credit) cut, then reconnected: each is executed, and
    //    the verified outcome follows the command's acceptance in class results.
    #expect(try send("disconnect", #"{"meter":"000000000003"}"#).hasPrefix("sent command 7 (disconnect)"))
    #expect(try result(ctr: 7, outcome: "applied")["typ"] as? String == "disconnect")
    let executed = try result(ctr: 7, outcome: "executed")
    #expect(executed["meter"] as? String == "000000000003")
    #expect(executed["detail"] as? String == "relay verified open")
    // (The simulator writes its truth file every 200 ms.)
    #expect(waitUntil(timeout: 5) { simRelayOpen(truthFile, "000000000003") == true })
    _ = try send("reconnect", #"{"meter":"000000000003"}"#)
    _ = try result(ctr: 8, outcome: "executed")
    #expect(waitUntil(timeout: 5) { simRelayOpen(truthFile, "000000000003") == false })

    // 5. Today a no-disconnect holiday: HQ's order is refused, and the result says why.
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    try writeConfig("control.holidays = \(chinaDaysAroundToday())")
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    _ = try send("disconnect", #"{"meter":"000000000003"}"#)
    let refused = try result(ctr: 9)
    #expect(refused["outcome"] as? String == "rejected")
    #expect(refused["reason"] as? String == "holiday")
    #expect((refused["detail"] as? String)?.hasPrefix("refused: holiday") == true, "\(refused)")
    usleep(1_000_000)
    #expect(simRelayOpen(truthFile, "000000000003") == false)

    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    let relays = try runProduct("gridedge", ["relays", "--config", config], in: dir)
    #expect(relays.status == 0, "\(relays)")
    #expect(relays.stdout.contains("000000000001  C-1         closed  topup      done"), "\(relays.stdout)")
    #expect(relays.stdout.contains("000000000003  C-3         closed  command    done"), "\(relays.stdout)")
    #expect(relays.stdout.contains("2 meter(s) with relay operations"), "\(relays.stdout)")
    let audit = try runProduct("gridedge", ["audit", "verify", "--config", config], in: dir)
    #expect(audit.status == 0 && audit.stdout.contains("the chain is intact"), "\(audit)")
    sim.signal(SIGTERM)
    _ = try sim.wait(timeout: 10)
    withExtendedLifetime(rig) {}
  }
}

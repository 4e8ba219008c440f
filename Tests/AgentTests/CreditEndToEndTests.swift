import Foundation
import SQLiteStore
import TestSupport
import Testing

/// Fee control per credit grade end to end: `gridedge-sim` meters, a real mosquitto,
/// `gridedge-hq` signing the archive, tariff, top-ups and a credit model, and
/// `gridedge run` with `prepaid.grades` and the arrears rebate.
@Suite(.serialized) struct CreditEndToEndTests {
  private let device = "TA-CREDIT"

  @Test func aGradeCCustomerIsCutWhereGradeAIsNotTheModelRegradesAndRepaymentEarnsARebate() throws {
    let dir = try makeTemporaryDirectory("credit-e2e")
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    let truthFile = dir.appendingPathComponent("truth.json")
    let (sim, simPort) = try startSimulator(
      [
        "--meters", "2", "--profile", "commercial", "--speed", "120", "--no-area", "--truth-file",
        truthFile.path, "--truth-every", "200",
      ], in: dir)
    let rig = try HQUnderTest(in: dir)
    let meterFile = dir.appendingPathComponent("meters.txt")
    try "000000000001 1\n000000000002 1\n".write(to: meterFile, atomically: true, encoding: .utf8)
    let config = dir.appendingPathComponent("agent.conf").path
    // Grade C: no overdraft, alarms at 0.50 / 0.20 CNY; others (A): −1,000.00 CNY of credit.
    try
      (agentBaseConfig(device: device, dir: dir, port: rig.port, keys: keys)
      + simulatedRelayConfig(meterFile: meterFile, simPort: simPort) + """
        prepaid.overdraft_limit = -100000
        prepaid.grades = C:alarm1=50/alarm2=20/overdraft=0/close_permit=1
        prepaid.rebate = 1000
        prepaid.rebate_window = 86400
        """).write(toFile: config, atomically: true, encoding: .utf8)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String {
      [agent, sim, rig.hq].map { String($0.log.suffix(4000)) }.joined(separator: "\n----\n")
    }
    func events(_ type: String) -> [[String: Any]] {
      storedAtHQ(rig.db, device: device, "events").filter { $0["type"] as? String == type }
    }
    func send(_ type: String, _ body: String) throws {
      let out = try hqSend(type, body, device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir)
      guard out.status == 0 else { throw TestFailure("gridedge-hq send \(type): \(out.stderr)") }
    }
    func result(ctr: Int) throws -> [String: Any] {
      var found: [String: Any]? = nil
      guard
        waitUntil(
          timeout: 30,
          {
            found = storedAtHQ(rig.db, device: device, "results").last { $0["ctr"] as? String == String(ctr) }
            return found != nil
          }), let found
      else { throw TestFailure("no result for command \(ctr) at HQ\n\(logs())") }
      return found
    }
    let agentDB = try readOnlyConnection(dir.appendingPathComponent("agent.db").path)
    func balance(_ customer: String) -> Int64 {
      (try? agentDB.scalarInt("SELECT balance_fen FROM accounts WHERE customer = ?1", [.text(customer)]))
        ?? nil
        ?? 0
    }
    func simRelayOpen(_ address: String) -> Bool? { simulatorRelayOpen(truthFile, address) }

    // 1. C-1 grade C, C-2 grade A, 1.00 CNY each, 10 CNY/kWh.
    try send(
      "archive",
      #"{"op":"snapshot","version":1,"meters":[{"address":"000000000001","customer":"C-1","area":"TA-1","category":"commercial","grade":"C"},{"address":"000000000002","customer":"C-2","area":"TA-1","category":"commercial","grade":"A"}]}"#
    )
    try send("tariff", #"{"id":"COM-1","category":"commercial","effective_from":"2020-01-01","flat":100000}"#)
    try send("topup", #"{"customer":"C-1","purchase":1,"amount":100}"#)
    try send("topup", #"{"customer":"C-2","purchase":1,"amount":100}"#)
    for ctr in 1...4 { #expect(try result(ctr: ctr)["outcome"] as? String == "applied") }

    // 2. C-1 is cut as soon as its balance is below zero; C-2, below zero too, is not.
    #expect(
      waitUntil(timeout: 200) { simRelayOpen("000000000001") == true }, "meter 1 was not cut\n\(logs())")
    #expect(
      waitUntil(timeout: 200) { balance("C-2") < 0 }, "C-2 never went below zero\n\(logs())")
    #expect(
      waitUntil(timeout: 30) {
        events("prepaid.threshold").contains {
          $0["customer"] as? String == "C-2" && $0["threshold"] as? String == "exhausted"
        }
      }, "\(logs())")
    #expect(simRelayOpen("000000000002") == false)
    // The alarms (and the close-permit, exhausted and overdraft levels) came at C-1's
    // grade's levels, highest first.
    let alarms = events("prepaid.threshold").filter {
      $0["customer"] as? String == "C-1" && $0["direction"] as? String == "down"
    }.compactMap { $0["level_fen"] as? Int }
    #expect(Array(alarms.prefix(5)) == [50, 20, 1, 0, 0], "\(alarms)")
    #expect(
      !events("relay.requested").contains { $0["customer"] as? String == "C-2" }, "C-2 must not be cut")

    // 3. HQ's credit model (score 2.0 − 0.1 per day in arrears − 0.5 per disconnection;
    //    A from 0.8): C-1 (1 day, at most 1 cut) is regraded A, and HQ hears of it.
    let model =
      #"{"credit":{"version":1,"intercept":20000,"coefficients":{"days_in_arrears":-1000,"topup_regularity":0,"consumption_volatility":0,"past_disconnects":-5000},"boundaries":[8000,5000]}}"#
    try send("config", model)
    #expect(try result(ctr: 5)["outcome"] as? String == "applied")
    #expect(
      waitUntil(timeout: 30) {
        events("credit.grade_changed").contains {
          $0["customer"] as? String == "C-1" && $0["old"] as? String == "C"
        }
      }, "no credit.grade_changed for C-1 at HQ\n\(logs())")
    try send("config", model)
    let stale = try result(ctr: 6)
    #expect(
      stale["outcome"] as? String == "rejected" && stale["reason"] as? String == "stale-version", "\(stale)")

    // 4. C-1 repays within the day: a rebate entry of 10 % of the deepest arrears.
    try send("topup", #"{"customer":"C-1","purchase":2,"amount":100000}"#)
    #expect(try result(ctr: 7)["outcome"] as? String == "applied")
    var rebate: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 30) {
        rebate = storedAtHQ(rig.db, device: device, "ledger").first { $0["kind"] as? String == "rebate" }
        return rebate != nil
      }, "no rebate entry at HQ\n\(logs())")
    #expect((rebate?["amount_fen"] as? Int ?? 0) > 0 && rebate?["customer"] as? String == "C-1")
    #expect(waitUntil(timeout: 60) { simRelayOpen("000000000001") == false }, "meter 1 not closed\n\(logs())")

    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    let verify = try runProduct("gridedge", ["ledger", "verify", "--config", config], in: dir)
    #expect(verify.status == 0, "\(verify)")
    sim.signal(SIGTERM)
    _ = try sim.wait(timeout: 10)
    withExtendedLifetime(rig) {}
  }
}

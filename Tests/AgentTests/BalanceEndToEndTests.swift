import Foundation
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// The daily balance end to end: `gridedge run` with the archive and freezes of
/// `BalanceTests` laid out so that yesterday (China time) is the day meter 03 is
/// bypassed by half, a real mosquitto and `gridedge-hq serve`. The summary and the
/// work order reach HQ's database once, `gridedge-hq report` shows them, and a
/// restarted agent sends nothing again.
@Suite(.serialized) struct BalanceEndToEndTests {
  /// The HQ records of `type` from device TA-1, parsed.
  private func hqEvents(_ path: String, _ type: String) throws -> [[String: Any]] {
    guard FileManager.default.fileExists(atPath: path) else { return [] }
    let db = try readOnlyConnection(path)
    return try db.query(
      """
      SELECT body FROM records WHERE device_id = 'TA-1' AND class = 'events'
        AND json_extract(body, '$.type') = ?1 ORDER BY id
      """, [.text(type)]
    ).map { try jsonObject($0.text(0) ?? "") }
  }

  @Test func dailySummaryAndWorkOrderReachHQOnceAcrossARestart() throws {
    // Not within a minute of local midnight: "yesterday" must not change during the test.
    while chinaSecondOfDay() > 86_400 - 60 { sleep(5) }
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    let today = (now + 8 * 3_600_000) / 86_400_000
    let start = (today - 8) * 86_400_000 - 8 * 3_600_000  // local midnight, 8 days ago
    let yesterday = CivilDate(daysSinceEpoch: today - 1).isoText

    let broker = try MosquittoBroker()
    let s = try BalanceTests().setup(
      "balance-e2e", start: start,
      extraConfig: """
        mqtt.port = \(broker.port)
        mqtt.keepalive = 5
        mqtt.reconnect_min = 100
        mqtt.reconnect_max = 1000
        log.level = info
        """)
    let hqDB = s.dir.appendingPathComponent("hq.db").path
    let hq = try Child(
      "gridedge-hq", ["serve", "--port", String(broker.port), "--db", hqDB, "--log-level", "info"], in: s.dir)
    try hq.waitForLog("connected to")
    var agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    try agent.waitForLog(
      "daily balance of " + yesterday + ": 2 area summary(ies) and 1 proposed work order(s) enqueued for HQ")

    var summaries: [[String: Any]] = []
    var orders: [[String: Any]] = []
    let arrived = waitUntil(timeout: 20) {
      summaries = (try? hqEvents(hqDB, "balance.daily")) ?? []
      orders = (try? hqEvents(hqDB, "workorder.proposed")) ?? []
      return summaries.count == 2 && orders.count == 1
    }
    #expect(arrived, "HQ holds \(summaries.count) summaries and \(orders.count) work orders\n\(agent.log)")
    let ta1 = try #require(summaries.first { $0["area"] as? String == "TA-1" })
    #expect(ta1["day"] as? String == yesterday)
    #expect((ta1["loss_rate_bp"] as? NSNumber)?.int64Value == 1_346)
    #expect((ta1["suspects"] as? [[String: Any]])?.first?["meter"] as? String == "000000000003")
    #expect(orders.first?["meter"] as? String == "000000000003")
    #expect(orders.first?["day"] as? String == yesterday)

    // The report shows the area's newest day.
    let report = try runProduct("gridedge-hq", ["report", "--db", hqDB, "--json"], in: s.dir)
    #expect(report.status == 0, "\(report.stderr)")
    let devices = try #require(
      try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [[String: Any]])
    let balances = try #require(
      devices.first { $0["device"] as? String == "TA-1" }?["balances"] as? [[String: Any]])
    #expect(balances.map { $0["area"] as? String } == ["TA-1", "TA-2"])
    #expect((balances[0]["loss_rate_bp"] as? NSNumber)?.int64Value == 1_346)
    #expect(balances[0]["flags"] as? String == "high-loss")
    #expect(balances[0]["top_suspect"] as? String == "000000000003")
    #expect((balances[0]["work_orders"] as? NSNumber)?.int64Value == 1)
    #expect(balances[1]["withheld"] as? String == "archive-error")
    let text = try runProduct("gridedge-hq", ["report", "--db", hqDB], in: s.dir)
    #expect(
      text.stdout.contains(
        "TA-1          " + yesterday + "  52.00         45.00         13.46%     100.00%   0        high-loss"
      ),
      "\(text.stdout)")

    // A restart the same day sends nothing again.
    agent.signal()
    #expect(try agent.wait(timeout: 10) == 0)
    agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    try agent.waitForLog("birth published")
    sleep(2)
    #expect(!agent.log.contains("daily balance of"), "\(agent.log)")
    #expect(try hqEvents(hqDB, "balance.daily").count == 2)
    #expect(try hqEvents(hqDB, "workorder.proposed").count == 1)
    let duplicates = try JSONSerialization.jsonObject(
      with: Data(try runProduct("gridedge-hq", ["report", "--db", hqDB, "--json"], in: s.dir).stdout.utf8))
    #expect(
      ((duplicates as? [[String: Any]])?.first?["duplicate_records"] as? NSNumber)?.int64Value == 0)
    agent.signal()
    #expect(try agent.wait(timeout: 10) == 0)
    hq.signal()
    _ = try hq.wait(timeout: 10)
  }
}

import Foundation
import SQLiteStore
import TestSupport
import Testing

/// Power loss (issue 8): the agent runs under Tests/Fixtures/powerloss_vfs.c, an
/// SQLite VFS that holds every write until its file is synced and ends the process
/// at a chosen sync, dropping what was not synced — what a board losing power
/// keeps. Top-ups arrive as signed commands all the while. After each cut the agent
/// starts again (without the shim) and must open its database, and every top-up HQ
/// was told was applied must be in the ledger, once.
@Suite(.serialized) struct PowerLossTests {

  /// (ctr, outcome, reason) of every top-up result HQ holds.
  private func topUpResults(_ hqDB: String) throws -> [(ctr: String, outcome: String)] {
    guard FileManager.default.fileExists(atPath: hqDB) else { return [] }
    return try readOnlyConnection(hqDB).query(
      """
      SELECT json_extract(body, '$.ctr'), json_extract(body, '$.outcome') FROM records
      WHERE class = 'results' AND json_extract(body, '$.typ') = 'topup'
      """
    ).map { ($0.text(0) ?? "", $0.text(1) ?? "") }
  }

  @Test func everyTopUpHQSawAppliedSurvivesAPowerLossAndNoneIsAppliedTwice() throws {
    // Rounds of power loss: 6 in `make test`, more in `make soak`.
    let rounds = try soakParameter("GRIDEDGE_POWERLOSS_ROUNDS", default: 6)
    let started = Date()
    let dir = try makeTemporaryDirectory("power-loss")
    let shim = try buildFaultVFS(in: dir)

    let broker = try MosquittoBroker()
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    let device = "TA-POWER-1"
    let hqDB = dir.appendingPathComponent("hq.db").path
    let agentDB = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try """
    device.id = \(device)
    store.path = \(agentDB)
    mqtt.port = \(broker.port)
    mqtt.reconnect_min = 100
    mqtt.reconnect_max = 1000
    sync.backlog_rate = 0
    commands.trusted_keys = \(keys)/trusted-keys
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let hq = try Child("gridedge-hq", ["serve", "--port", String(broker.port), "--db", hqDB], in: dir)
    try hq.waitForLog("connected to")

    /// Sends a command; returns its ctr.
    func send(_ type: String, _ body: String) throws -> String {
      let sent = try runProduct(
        "gridedge-hq",
        [
          "send", "--db", hqDB, "--port", String(broker.port), "--key", "\(keys)/hq1.key", "--kid", "hq1",
          "--dev", device, "--typ", type, "--body", body,
        ], in: dir)
      guard sent.status == 0, let words = sent.stdout.split(separator: "\n").first?.split(separator: " "),
        words.count > 2
      else { throw TestFailure("gridedge-hq send \(type): \(sent.stderr)") }
      return String(words[2])
    }
    func lastPurchase() throws -> Int64 {
      try readOnlyConnection(agentDB).scalarInt("SELECT last_purchase FROM accounts WHERE customer = 'C-1'")
        ?? 0
    }
    /// Starts the agent without the shim, lets it take what the broker kept for it,
    /// and stops it cleanly.
    func recover(_ round: Int) throws {
      let agent = try Child("gridedge", ["run", "--config", config], in: dir)
      try agent.waitForLog("birth published", timeout: 20)
      #expect(!agent.log.contains("quarantined"), "round \(round): \(agent.log)")
      usleep(1_500_000)
      agent.signal()
      #expect(try agent.wait(timeout: 15) == 0, "round \(round): \(agent.log)")
    }

    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    _ = try send(
      "archive",
      #"{"op":"snapshot","version":1,"meters":[{"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential"}]}"#
    )
    #expect(
      waitUntil(timeout: 15) {
        ((try? readOnlyConnection(hqDB).scalarInt(
          """
          SELECT count(*) FROM records WHERE class = 'results' AND json_extract(body, '$.typ') = 'archive'
            AND json_extract(body, '$.outcome') = 'applied'
          """)) ?? 0) == 1
      })
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)

    var ctrOfPurchase: [String: Int64] = [:]
    var cuts = 0
    let powerLog = dir.appendingPathComponent("power.log").path
    for round in 0..<rounds {
      // The power goes at a sync in even rounds, at any write in odd ones.
      let trigger =
        round % 2 == 0
        ? ["POWERLOSS_AT_SYNC": String(Int.random(in: 6...60))]
        : ["POWERLOSS_AT_WRITE": String(Int.random(in: 40...400))]
      agent = try Child(
        "gridedge", ["run", "--config", config], in: dir,
        environment: trigger.merging(["LD_PRELOAD": shim, "POWERLOSS_LOG": powerLog]) { a, _ in a })
      // Top-ups one after another until the power goes (or 40 of them).
      _ = waitUntil(timeout: 20) { agent.log.contains("birth published") || !agent.child.isRunning }
      var purchase = try lastPurchase()
      var sent = 0
      while agent.child.isRunning && sent < 40 {
        purchase += 1
        ctrOfPurchase[try send("topup", #"{"customer":"C-1","amount":100,"purchase":\#(purchase)}"#)] =
          purchase
        sent += 1
        _ = waitUntil(timeout: 2) { (try? lastPurchase()) == purchase || !agent.child.isRunning }
      }
      // Still running: stop it; the power may also go while it stops (its last writes).
      let stopped = agent.child.isRunning
      if stopped { agent.signal() }
      let status = try agent.wait(timeout: 15)
      #expect(
        status == 99 || (stopped && status == 0),
        "round \(round): the agent ended with \(status), not at a simulated power loss:\n\(agent.log)")
      if status == 99 { cuts += 1 }
      try recover(round)
    }
    #expect(cuts >= rounds / 2, "only \(cuts) of \(rounds) rounds ended in a simulated power loss")

    // Everything the agent holds reaches HQ; then the books are compared.
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    let last = try lastPurchase()
    #expect(
      waitUntil(timeout: 30) {
        ((try? self.topUpResults(hqDB)) ?? []).filter { $0.outcome == "applied" }.count >= Int(last)
      })
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)

    let db = try Connection(path: agentDB)
    #expect(try db.query("PRAGMA integrity_check").first?.text(0) == "ok")
    let refs = try db.query("SELECT ref FROM ledger WHERE customer = 'C-1' AND kind = 'topup' ORDER BY id")
      .map { $0.text(0) ?? "" }
    // Each purchase once, in order, and the balance is their sum: none lost, none twice.
    #expect(refs == (0..<Int(last)).map { "purchase:\($0 + 1)" })
    #expect(try db.scalarInt("SELECT balance_fen FROM accounts WHERE customer = 'C-1'") == 100 * last)
    // Every top-up HQ was told was applied is in the ledger.
    let applied = try topUpResults(hqDB).filter { $0.outcome == "applied" }
    var purchases: [Int64] = []
    for result in applied {
      let purchase = try #require(ctrOfPurchase[result.ctr], "a result for ctr \(result.ctr) nobody sent")
      #expect(purchase <= last, "purchase \(purchase) was reported applied but is not in the ledger")
      purchases.append(purchase)
    }
    #expect(purchases.sorted() == (0..<last).map { $0 + 1 }, "applied: \(purchases.sorted())")
    let lost = Set((0..<last).map { $0 + 1 }).subtracting(purchases).count
    soakFigure("powerloss_cuts", cuts, "cuts")
    soakFigure("powerloss_topups_applied", last, "top-ups")
    soakFigure("powerloss_topups_lost_or_twice", lost + (refs.count - Set(refs).count), "top-ups")
    soakFigure("powerloss_seconds", Int(Date().timeIntervalSince(started)), "s")
  }
}

import Foundation
import SQLiteStore
import TestSupport
import Testing

/// Signed commands end to end: `gridedge-hq keygen/send` signs and publishes, the agent
/// verifies, and every outcome comes back to `gridedge-hq` in class `results`.
@Suite(.serialized) struct CommandEndToEndTests {
  private func results(_ hqDB: String) -> [[String: Any]] {
    guard FileManager.default.fileExists(atPath: hqDB) else { return [] }
    guard let db = try? readOnlyConnection(hqDB),
      let rows = try? db.query("SELECT body FROM records WHERE class = 'results' ORDER BY id")
    else { return [] }
    return rows.compactMap { row in
      (try? JSONSerialization.jsonObject(with: Data((row.text(0) ?? "").utf8))) as? [String: Any]
    }
  }

  private func waitForResult(_ hqDB: String, count: Int, logs: [Child]) throws -> [String: Any] {
    var seen: [[String: Any]] = []
    guard
      waitUntil(
        timeout: 20,
        {
          seen = results(hqDB)
          return seen.count >= count
        })
    else {
      throw TestFailure(
        "HQ has \(seen.count) results, expected \(count)\n"
          + logs.map { String($0.log.suffix(3000)) }.joined(separator: "\n----\n"))
    }
    return seen[count - 1]
  }

  private func publish(_ token: String, device: String, port: Int32) throws {
    let out = try runProcess(
      "/usr/bin/mosquitto_pub",
      ["-h", "127.0.0.1", "-p", String(port), "-q", "1", "-t", "gridedge/v1/\(device)/down/cmd", "-m", token])
    guard out.status == 0 else { throw TestFailure("mosquitto_pub: \(out.output)") }
  }

  @Test func everyOutcomeReachesHQAndForgedReplayedOrExpiredCommandsAreRefused() throws {
    let broker = try MosquittoBroker()
    let dir = try makeTemporaryDirectory("commands-e2e")
    let keys = dir.appendingPathComponent("keys").path
    let other = dir.appendingPathComponent("forger").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", other, "--kid", "hq1"], in: dir).status == 0)
    let device = "TA-CMD-1"
    let hqDB = dir.appendingPathComponent("hq.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try
      (agentBaseConfig(device: device, dir: dir, port: broker.port, keys: keys)
      + "commands.max_signature_failures = 3\n").write(toFile: config, atomically: true, encoding: .utf8)
    let hq = try Child("gridedge-hq", ["serve", "--port", String(broker.port), "--db", hqDB], in: dir)
    try hq.waitForLog("connected to")
    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")

    // 1. Genuine commands: the meter archive, then a top-up for one of its customers.
    func send(_ type: String, _ body: String) throws -> CommandResult {
      try hqSend(type, body, device: device, keys: keys, hqDB: hqDB, port: broker.port, in: dir)
    }
    let archive = try send(
      "archive",
      #"{"op":"snapshot","version":1,"meters":[{"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential"}]}"#
    )
    #expect(archive.status == 0, "\(archive.stderr)")
    var result = try waitForResult(hqDB, count: 1, logs: [agent, hq])
    #expect(result["typ"] as? String == "archive")
    #expect(result["outcome"] as? String == "applied", "\(result)")
    let sent = try send("topup", #"{"customer":"C-1","amount":1000,"purchase":1}"#)
    #expect(sent.status == 0, "\(sent.stderr)")
    #expect(sent.stdout.hasPrefix("sent command 2 (topup) to \(device)"))
    let token = String(sent.stdout.split(separator: "\n")[1])
    result = try waitForResult(hqDB, count: 2, logs: [agent, hq])
    #expect(result["ctr"] as? String == "2")
    #expect(result["typ"] as? String == "topup")
    #expect(result["kid"] as? String == "hq1")
    #expect(result["outcome"] as? String == "applied", "\(result)")
    // The ledger entry reached HQ too.
    #expect(
      waitUntil(timeout: 10) {
        let db = try? readOnlyConnection(hqDB)
        return
          (try? db?.scalarInt(
            "SELECT count(*) FROM records WHERE class = 'ledger' AND json_extract(body, '$.balance_fen') = 1000"
          )) == 1
      })

    // 2. The same token again: a replay.
    try publish(token, device: device, port: broker.port)
    result = try waitForResult(hqDB, count: 3, logs: [agent, hq])
    #expect(result["reason"] as? String == "replayed")

    // 3. A replay after a restart: the counter was committed.
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    try publish(token, device: device, port: broker.port)
    result = try waitForResult(hqDB, count: 4, logs: [agent, hq])
    #expect(result["reason"] as? String == "replayed")

    // 4. Another device's command, and an expired one (counter 3, fresh).
    func sign(_ arguments: [String]) throws -> String {
      let out = try runProduct("gridedge-hq", ["sign"] + arguments, in: dir)
      guard out.status == 0 else { throw TestFailure("sign: \(out.stderr)") }
      return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    try publish(
      sign([
        "--key", "\(keys)/hq1.key", "--kid", "hq1", "--dev", "TA-OTHER", "--ctr", "3", "--typ", "topup",
        "--body", "{}",
      ]),
      device: device, port: broker.port)
    result = try waitForResult(hqDB, count: 5, logs: [agent, hq])
    #expect(result["reason"] as? String == "wrong-device")
    let shortLived = try sign([
      "--key", "\(keys)/hq1.key", "--kid", "hq1", "--dev", device, "--ctr", "3", "--typ", "reconnect",
      "--body", "{}",
      "--ttl", "1",
    ])
    usleep(2_100_000)
    try publish(shortLived, device: device, port: broker.port)
    result = try waitForResult(hqDB, count: 6, logs: [agent, hq])
    #expect(result["reason"] as? String == "expired")

    // 5. Forgeries: a key HQ never had (same kid), an unknown kid, garbage. Four
    //    failures pass commands.max_signature_failures = 3: control is suspended.
    let forged = try sign([
      "--key", "\(other)/hq1.key", "--kid", "hq1", "--dev", device, "--ctr", "10", "--typ", "disconnect",
      "--body", "{}",
    ])
    try publish(forged, device: device, port: broker.port)
    result = try waitForResult(hqDB, count: 7, logs: [agent, hq])
    #expect(result["reason"] as? String == "bad-signature")
    #expect(result["ctr"] == nil, "an unverified counter must not be reported as the command's")
    try publish(forged.replacingOccurrences(of: "eyJ", with: "eyK"), device: device, port: broker.port)
    result = try waitForResult(hqDB, count: 8, logs: [agent, hq])
    #expect(result["reason"] as? String == "malformed")
    let headerless = "eyJhbGciOiJub25lIn0." + forged.split(separator: ".")[1] + "."
    try publish(headerless, device: device, port: broker.port)
    result = try waitForResult(hqDB, count: 9, logs: [agent, hq])
    #expect(result["reason"] as? String == "unsupported-algorithm")
    try publish("not a token", device: device, port: broker.port)
    result = try waitForResult(hqDB, count: 10, logs: [agent, hq])
    #expect(result["reason"] as? String == "malformed")
    try agent.waitForLog("control commands suspended until local midnight")

    // 6. A genuine control command is now refused until midnight.
    let after = try send("disconnect", #"{"meter":"000000000001"}"#)
    #expect(after.stdout.hasPrefix("sent command 3 (disconnect)"), "\(after.stderr)")
    result = try waitForResult(hqDB, count: 11, logs: [agent, hq])
    #expect(result["ctr"] as? String == "3")
    #expect(result["reason"] as? String == "suspended")
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)

    // What an engineer on site sees, and what the checks find.
    let ledger = try runProduct("gridedge", ["ledger", "--config", config], in: dir)
    #expect(
      ledger.status == 0 && ledger.stdout.contains("C-1") && ledger.stdout.contains("10.00"), "\(ledger)")
    let verify = try runProduct("gridedge", ["ledger", "verify", "--config", config], in: dir)
    #expect(verify.status == 0, "\(verify)")
    #expect(verify.stdout.contains("1 ledger entries checked: every balance equals its entries"))
    let audit = try runProduct("gridedge", ["audit", "verify", "--config", config], in: dir)
    #expect(audit.status == 0, "\(audit)")
    #expect(audit.stdout.contains("the chain is intact"))
    let db = try Connection(path: dir.appendingPathComponent("agent.db").path)
    try db.run("UPDATE ledger SET amount_fen = 2000")
    try db.run(
      "UPDATE audit SET body = replace(body, '\"outcome\":\"rejected\"', '\"outcome\":\"applied\"') WHERE id = 4"
    )
    db.close()
    let broken = try runProduct("gridedge", ["ledger", "verify", "--config", config], in: dir)
    #expect(broken.status == 1 && broken.stdout.contains("MISMATCH"), "\(broken)")
    let brokenAudit = try runProduct("gridedge", ["audit", "verify", "--config", config], in: dir)
    #expect(brokenAudit.status == 1 && brokenAudit.stdout.contains("edited"), "\(brokenAudit)")
  }
}

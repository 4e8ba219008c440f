import Foundation
import GridEdgeAgent
import SQLiteStore
import TestSupport
import Testing

/// `gridedge`, `gridedge-hq` and `gridedge-sim` as processes, against a real mosquitto
/// started by each test.
@Suite(.serialized) struct AgentProcessTests {
  private func writeConfig(_ dir: URL, device: String, port: Int32, extra: String = "") throws -> String {
    let path = dir.appendingPathComponent("agent.conf").path
    let text = """
      device.id = \(device)
      store.path = \(dir.appendingPathComponent("agent.db").path)
      mqtt.port = \(port)
      mqtt.keepalive = 5
      mqtt.reconnect_min = 200
      mqtt.reconnect_max = 1000
      log.level = debug
      \(extra)
      """
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func executablesAnswerHelpAndVersion() throws {
    let dir = try makeTemporaryDirectory("agent-cli")
    for name in ["gridedge", "gridedge-hq", "gridedge-sim"] {
      let version = try runProduct(name, ["--version"], in: dir)
      #expect(version.status == 0)
      #expect(version.stdout.hasPrefix(name + " 0."))
      let help = try runProduct(name, ["--help"], in: dir)
      #expect(help.status == 0)
      #expect(help.stdout.contains("usage:"))
      let bad = try runProduct(name, ["--frobnicate"], in: dir)
      #expect(bad.status == 2)
      #expect(bad.stderr.contains("unknown option --frobnicate"))
    }
  }

  @Test func runPublishesBirthAndOnSigtermOfflineAndExitsZero() throws {
    let broker = try MosquittoBroker()
    let dir = try makeTemporaryDirectory("agent-run")
    let config = try writeConfig(dir, device: "TA-RUN-1", port: broker.port)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    let birth = try jsonObject(retainedMessage(on: "gridedge/v1/TA-RUN-1/state", port: broker.port))
    #expect(birth["state"] as? String == "online")
    #expect(birth["epoch"] as? Int == 1)
    #expect(birth["dev"] as? String == "TA-RUN-1")
    #expect((birth["store"] as? String)?.count == 16)
    try agent.waitForLog("birth published")

    let status = try runProduct("gridedge", ["status", "--config", config, "--json"], in: dir)
    #expect(status.status == 0, "\(status.stderr)")
    let report = try jsonObject(status.stdout)
    #expect(report["state"] as? String == "running")
    #expect(report["running"] as? Bool == true)
    #expect(report["link"] as? String == "connected")
    #expect(report["store"] as? String == birth["store"] as? String)

    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0, "\(agent.log)")
    let goodbye = try jsonObject(retainedMessage(on: "gridedge/v1/TA-RUN-1/state", port: broker.port))
    #expect(goodbye["state"] as? String == "offline")
    #expect(goodbye["reason"] as? String == "shutdown")
    #expect(goodbye["epoch"] as? Int == 1)

    let after = try jsonObject(
      runProduct("gridedge", ["status", "--config", config, "--json"], in: dir).stdout)
    #expect(after["state"] as? String == "stopped")
    #expect(after["last_stop"] as? String == "SIGTERM")

    // A second run is the next boot epoch of the same store.
    let again = try Child("gridedge", ["run", "--config", config], in: dir)
    try again.waitForLog("birth published")
    let rebirth = try jsonObject(retainedMessage(on: "gridedge/v1/TA-RUN-1/state", port: broker.port))
    #expect(rebirth["epoch"] as? Int == 2)
    #expect(rebirth["store"] as? String == birth["store"] as? String)
    again.signal(SIGINT)
    #expect(try again.wait(timeout: 10) == 0)
  }

  @Test func killedAgentLeavesItsWillWithTheSameEpoch() throws {
    let broker = try MosquittoBroker()
    let dir = try makeTemporaryDirectory("agent-will")
    let config = try writeConfig(dir, device: "TA-WILL-1", port: broker.port)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    agent.signal(SIGKILL)
    _ = try agent.wait(timeout: 5)
    let deadline = Date().addingTimeInterval(15)
    var state: [String: Any] = [:]
    repeat {
      state = try jsonObject(retainedMessage(on: "gridedge/v1/TA-WILL-1/state", port: broker.port))
    } while state["state"] as? String != "offline" && Date() < deadline
    #expect(state["state"] as? String == "offline")
    #expect(state["reason"] as? String == "lost")
    #expect(state["epoch"] as? Int == 1)
    let status = try jsonObject(
      runProduct("gridedge", ["status", "--config", config, "--json"], in: dir).stdout)
    #expect(status["state"] as? String == "not running (ended without a clean stop)")
  }

  @Test func agentReconnectsAfterBrokerRestartAndPublishesBirthAgain() throws {
    let broker = try MosquittoBroker()
    let dir = try makeTemporaryDirectory("agent-reconnect")
    let config = try writeConfig(dir, device: "TA-RECON-1", port: broker.port)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    broker.stop()
    try agent.waitForLog("down (")
    try broker.start()
    // The broker keeps no retained messages across restarts here (persistence off),
    // so a state message now is the agent's new birth.
    let birth = try jsonObject(
      retainedMessage(on: "gridedge/v1/TA-RECON-1/state", port: broker.port, timeout: 20))
    #expect(birth["state"] as? String == "online")
    #expect(birth["epoch"] as? Int == 1)
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
  }

  @Test func agentStartsWithoutBrokerAndConnectsWhenItAppears() throws {
    let broker = try MosquittoBroker()
    broker.stop()
    let dir = try makeTemporaryDirectory("agent-nobroker")
    let config = try writeConfig(dir, device: "TA-LATE-1", port: broker.port)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("down (cannot connect")
    try broker.start()
    try agent.waitForLog("birth published", timeout: 20)
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
  }

  @Test func badConfigurationExitsTwoNamingFileLineAndKey() throws {
    let dir = try makeTemporaryDirectory("agent-badconf")
    let path = dir.appendingPathComponent("bad.conf").path
    try "device.id = TA-1\nmqtt.port = many\n".write(toFile: path, atomically: true, encoding: .utf8)
    let result = try runProduct("gridedge", ["run", "--config", path], in: dir)
    #expect(result.status == 2)
    #expect(result.stderr.contains(path + ":2: key 'mqtt.port': expected an integer"))
    let missing = try runProduct("gridedge", ["run", "--config", path + ".nope"], in: dir)
    #expect(missing.status == 2)
    #expect(missing.stderr.contains(path + ".nope: no such file"))
    let noConfig = try runProduct("gridedge", ["run"], in: dir)
    #expect(noConfig.status == 2)
    #expect(noConfig.stderr.contains("--config FILE is required"))
  }

  @Test func corruptDatabaseIsQuarantinedAndTheAgentExitsThree() throws {
    let dir = try makeTemporaryDirectory("agent-corrupt")
    let config = try writeConfig(dir, device: "TA-CORRUPT-1", port: 1)
    let db = dir.appendingPathComponent("agent.db")
    let garbage = Data(
      String(repeating: "this is not a database, just text that fills a page or two. ", count: 200).utf8)
    try garbage.write(to: db)
    let result = try runProduct("gridedge", ["run", "--config", config], in: dir)
    #expect(result.status == 3, "\(result.stderr)")
    #expect(result.stderr.contains("quarantined to " + db.path + ".corrupt-"))
    #expect(!FileManager.default.fileExists(atPath: db.path))

    // The next start makes a new database and tells HQ what was quarantined beside it.
    let rig = try HQUnderTest(in: dir)
    let restarted = try Child(
      "gridedge", ["run", "--config", try writeConfig(dir, device: "TA-CORRUPT-1", port: rig.port)], in: dir)
    var event: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 20) {
        event = storedAtHQ(rig.db, device: "TA-CORRUPT-1", "events").first {
          $0["type"] as? String == "store.quarantined"
        }
        return event != nil
      }, "no store.quarantined at HQ\n\(restarted.log)")
    let listed = try #require((event?["quarantined"] as? [[String: Any]])?.first)
    #expect((listed["file"] as? String)?.hasPrefix(db.path + ".corrupt-") == true, "\(listed)")
    #expect((listed["bytes"] as? Int) == garbage.count)
    #expect(restarted.log.contains("quarantined database(s) beside it"), "\(restarted.log)")
    restarted.signal()
    #expect(try restarted.wait(timeout: 10) == 0)
  }

  /// A real agent database with some thousands of records, closed cleanly.
  private func makeDatabase(_ dir: URL, device: String) throws -> URL {
    let db = dir.appendingPathComponent("agent.db")
    try fillOutbox(path: db.path, device: device, count: 5000)
    #expect(!FileManager.default.fileExists(atPath: db.path + "-wal"))
    return db
  }

  /// Starts the agent on a damaged database: it must refuse before writing anything,
  /// move the file aside unchanged, say so and exit 3.
  private func expectQuarantined(_ dir: URL, _ db: URL, device: String) throws {
    let damaged = try Data(contentsOf: db)
    let config = try writeConfig(dir, device: device, port: 1)
    let result = try runProduct("gridedge", ["run", "--config", config], in: dir)
    #expect(result.status == 3, "\(result.stderr)")
    #expect(result.stderr.contains("quarantined to " + db.path + ".corrupt-"), "\(result.stderr)")
    #expect(!FileManager.default.fileExists(atPath: db.path))
    let moved = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter {
      $0.hasPrefix("agent.db.corrupt-") && !$0.hasSuffix("-wal") && !$0.hasSuffix("-shm")
    }
    #expect(moved.count == 1)
    if let name = moved.first {
      #expect(
        try Data(contentsOf: dir.appendingPathComponent(name)) == damaged, "the quarantined file changed")
    }
  }

  @Test func databaseWithFlippedBytesIsQuarantinedUnchanged() throws {
    let dir = try makeTemporaryDirectory("agent-flipped")
    let db = try makeDatabase(dir, device: "TA-FLIP-1")
    var bytes = try Data(contentsOf: db)
    // The b-tree page headers of pages 3...12 (type, free block, cell count): flipped.
    for page in 2..<12 {
      for offset in 0..<8 { bytes[page * 4096 + offset] ^= 0xA5 }
    }
    try bytes.write(to: db)
    try expectQuarantined(dir, db, device: "TA-FLIP-1")
  }

  @Test func truncatedDatabaseIsQuarantinedUnchanged() throws {
    let dir = try makeTemporaryDirectory("agent-truncated")
    let db = try makeDatabase(dir, device: "TA-TRUNC-1")
    let bytes = try Data(contentsOf: db)
    try bytes.prefix(bytes.count / 2).write(to: db)
    try expectQuarantined(dir, db, device: "TA-TRUNC-1")
  }

  @Test func lostWriteAheadLogIsReportedAndNoSeqOrRecordIdIsUsedTwice() throws {
    let dir = try makeTemporaryDirectory("agent-lost-wal")
    let live = dir.appendingPathComponent("live.db").path
    // A boot that forms batches 1...3 and dies: they are in its write-ahead log only.
    let store = try AgentStore(path: live, deviceID: "TA-WAL-1", now: 0)
    let epoch = try store.beginBoot(now: 0, pid: 1, version: "test")
    let outbox = try Outbox(store: store)
    var ids: [String] = []
    for _ in 0..<30 {
      let id = try outbox.newRecordID("event")
      ids.append(id)
      try outbox.enqueue(.events, record: #"{"id":"\#(id)"}"#, retention: .billing, now: 0)
    }
    let formed = try outbox.formBatches(count: 3, maxRecords: 10, liveAfter: .zero, backlogBudget: 0, now: 0)
    #expect(formed.batches.map(\.seq) == [1, 2, 3])
    // The database file without its log: what a deleted -wal leaves.
    let db = dir.appendingPathComponent("agent.db")
    try FileManager.default.copyItem(atPath: live, toPath: db.path)
    store.db.close()

    let config = try writeConfig(dir, device: "TA-WAL-1", port: 1)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("write-ahead log")
    #expect(agent.log.contains("boot \(epoch) did not stop cleanly"), "\(agent.log)")
    agent.signal()
    #expect(try agent.wait(timeout: 10) == 0)

    let reopened = try AgentStore(path: db.path, deviceID: "TA-WAL-1", now: 0)
    #expect(reopened.lostLogOfEpoch == nil, "a clean stop leaves nothing to report")
    let again = try Outbox(store: reopened)
    #expect(try !ids.contains(again.newRecordID("event")))
    try again.enqueue(.events, record: #"{"id":"new"}"#, retention: .billing, now: 0)
    let next = try again.formBatches(count: 5, maxRecords: 100, liveAfter: .zero, backlogBudget: 0, now: 0)
    #expect(next.batches.allSatisfy { $0.seq > 3 })
    let event = try reopened.db.query(
      """
      SELECT json_extract(record, '$.reason'), json_extract(record, '$.from'), json_extract(record, '$.to')
      FROM outbox WHERE class = 'events' AND json_extract(record, '$.type') = 'sync.seqs_skipped'
      """)
    #expect(event.first?.values == [.text("log-missing"), .integer(1), .integer(Outbox.lostLogSkip)])
  }

  @Test func hqReceiverTracksOnlineAndOfflineStates() throws {
    let broker = try MosquittoBroker()
    let dir = try makeTemporaryDirectory("hq-states")
    let hqDB = dir.appendingPathComponent("hq.db").path
    let hq = try Child(
      "gridedge-hq", ["serve", "--port", String(broker.port), "--db", hqDB, "--log-level", "debug"], in: dir)
    try hq.waitForLog("connected to")
    let config = try writeConfig(dir, device: "TA-HQ-1", port: broker.port)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try hq.waitForLog("device TA-HQ-1 online (epoch 1)")
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    try hq.waitForLog("device TA-HQ-1 offline (epoch 1, shutdown)")

    let report = try runProduct("gridedge-hq", ["report", "--db", hqDB, "--json"], in: dir)
    #expect(report.status == 0, "\(report.stderr)")
    let devices = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [[String: Any]]
    #expect(devices?.count == 1)
    #expect(devices?.first?["device"] as? String == "TA-HQ-1")
    #expect(devices?.first?["state"] as? String == "offline")
    #expect(devices?.first?["births"] as? Int == 1)
    hq.signal(SIGTERM)
    #expect(try hq.wait(timeout: 10) == 0)
  }

  @Test func hqIgnoresMalformedStateAndStaleWill() throws {
    let broker = try MosquittoBroker()
    let dir = try makeTemporaryDirectory("hq-malformed")
    let hqDB = dir.appendingPathComponent("hq.db").path
    let hq = try Child("gridedge-hq", ["serve", "--port", String(broker.port), "--db", hqDB], in: dir)
    try hq.waitForLog("connected to")
    try publish("gridedge/v1/TA-X/state", "{not json", port: broker.port)
    try hq.waitForLog("malformed state from TA-X")
    try publish(
      "gridedge/v1/TA-X/state", #"{"state":"online","epoch":5,"dev":"TA-X","store":"s","ts":10}"#,
      port: broker.port)
    try hq.waitForLog("device TA-X online (epoch 5)")
    // A will from an older boot arriving late must not mark the device offline.
    try publish(
      "gridedge/v1/TA-X/state",
      #"{"state":"offline","epoch":4,"dev":"TA-X","store":"s","ts":11,"reason":"lost"}"#,
      port: broker.port)
    try publish(
      "gridedge/v1/TA-X/state", #"{"state":"online","epoch":5,"dev":"TA-Y","store":"s","ts":12}"#,
      port: broker.port)
    try hq.waitForLog("names another device (TA-Y)")
    hq.signal(SIGTERM)
    #expect(try hq.wait(timeout: 10) == 0)
    let report = try runProduct("gridedge-hq", ["report", "--db", hqDB, "--json"], in: dir)
    let devices = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [[String: Any]]
    #expect(devices?.count == 1)
    #expect(devices?.first?["state"] as? String == "online")
    #expect(devices?.first?["epoch"] as? Int == 5)
  }

  private func publish(_ topic: String, _ payload: String, port: Int32) throws {
    let pub = Process()
    pub.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_pub")
    pub.arguments = ["-h", "127.0.0.1", "-p", String(port), "-t", topic, "-m", payload, "-q", "1"]
    try pub.run()
    pub.waitUntilExit()
    guard pub.terminationStatus == 0 else { throw TestFailure("mosquitto_pub failed on \(topic)") }
  }
}

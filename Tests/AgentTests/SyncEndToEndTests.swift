import Foundation
import GridEdgeContract
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Store-and-forward end to end: `gridedge` and `gridedge-hq` as processes, a real
/// mosquitto started by each test, real SQLite files on both sides.
@Suite(.serialized) struct SyncEndToEndTests {
  struct Setup {
    let dir: URL
    let device: String
    let agentDB: String
    let hqDB: String
    let config: String
  }

  private func setup(_ label: String, device: String, port: Int32, extra: String = "") throws -> Setup {
    let dir = try makeTemporaryDirectory(label)
    let agentDB = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try """
    device.id = \(device)
    store.path = \(agentDB)
    mqtt.port = \(port)
    mqtt.keepalive = 5
    mqtt.reconnect_min = 100
    mqtt.reconnect_max = 1000
    sync.batch_records = 100
    sync.window = 16
    sync.ack_timeout = 3000
    sync.backlog_rate = 0
    log.level = info
    \(extra)
    """.write(toFile: config, atomically: true, encoding: .utf8)
    return Setup(
      dir: dir, device: device, agentDB: agentDB, hqDB: dir.appendingPathComponent("hq.db").path,
      config: config)
  }

  private func startHQ(_ s: Setup, port: Int32) throws -> Child {
    let hq = try Child(
      "gridedge-hq", ["serve", "--port", String(port), "--db", s.hqDB, "--log-level", "info"], in: s.dir)
    try hq.waitForLog("connected to")
    return hq
  }

  /// Readings HQ holds for `device`: (rows, distinct natural keys).
  private func hqReadings(_ s: Setup) throws -> (rows: Int64, distinct: Int64) {
    guard FileManager.default.fileExists(atPath: s.hqDB) else { return (0, 0) }
    let db = try readOnlyConnection(s.hqDB)
    let row = try db.query(
      "SELECT count(*), count(DISTINCT key) FROM records WHERE device_id = ?1 AND class = 'readings'",
      [.text(s.device)])[0]
    return (row.int64(0) ?? 0, row.int64(1) ?? 0)
  }

  /// What is left in the agent's outbox: (pending records, unacked batches).
  private func agentBacklog(_ s: Setup) throws -> (pending: Int64, unacked: Int64) {
    let db = try readOnlyConnection(s.agentDB)
    let row = try db.query("SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM batches)")[0]
    return (row.int64(0) ?? 0, row.int64(1) ?? 0)
  }

  private func waitForDrain(_ s: Setup, expected: Int64, timeout: Double, logs: [Child]) throws {
    var last: (rows: Int64, distinct: Int64) = (0, 0)
    let drained = waitUntil(timeout: timeout) {
      last = (try? hqReadings(s)) ?? last
      guard last.rows >= expected else { return false }
      let backlog = (try? agentBacklog(s)) ?? (pending: 1, unacked: 1)
      return backlog.pending == 0 && backlog.unacked == 0
    }
    if !drained {
      let backlog = try? agentBacklog(s)
      throw TestFailure(
        "HQ holds \(last.rows) of \(expected) readings after \(timeout) s; agent backlog \(String(describing: backlog))\n"
          + logs.map { String($0.log.suffix(3000)) }.joined(separator: "\n----\n"))
    }
  }

  private func hqReport(_ s: Setup) throws -> [String: Any] {
    let out = try runProduct("gridedge-hq", ["report", "--db", s.hqDB, "--json"], in: s.dir)
    guard out.status == 0,
      let devices = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]],
      let entry = devices.first(where: { $0["device"] as? String == s.device })
    else { throw TestFailure("gridedge-hq report: \(out.stderr) \(out.stdout)") }
    return entry
  }

  @Test func hundredThousandReadingsReachHQExactlyOnce() throws {
    let broker = try MosquittoBroker()
    let s = try setup("sync-100k", device: "TA-SYNC-1", port: broker.port)
    try fillOutbox(path: s.agentDB, device: s.device, count: 100_000)
    let hq = try startHQ(s, port: broker.port)
    let started = Date()
    let agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    try waitForDrain(s, expected: 100_000, timeout: 120, logs: [agent, hq])
    let seconds = Date().timeIntervalSince(started)
    print(
      "drained 100,000 readings through mosquitto and gridedge-hq in \(String(format: "%.1f", seconds)) s")
    let held = try hqReadings(s)
    #expect(held.rows == 100_000)
    #expect(held.distinct == 100_000)
    let report = try hqReport(s)
    #expect(report["records"] as? Int == 100_000)
    #expect(report["batches"] as? Int == 1_000)
    #expect(report["missing_seqs"] as? Int == 0)
    #expect(report["conflicting_batches"] as? Int == 0)
    #expect(report["malformed"] as? Int == 0)
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    let status = try jsonObject(
      runProduct("gridedge", ["status", "--config", s.config, "--json"], in: s.dir).stdout)
    let outbox = status["outbox"] as? [String: Any]
    #expect(outbox?["pending_records"] as? Int == 0)
    #expect(outbox?["unacked_batches"] as? Int == 0)
    #expect(outbox?["last_seq"] as? Int == 1_000)
  }

  @Test func millionReadingsBufferedWhileTheBrokerIsDownAllArriveOnce() throws {
    let broker = try MosquittoBroker()
    broker.stop()
    // Hold the port while the broker is "down", so no other test's broker takes it
    // (the agent would drain into it): connections are accepted and closed at once.
    let squatter = try PortSquatter(port: broker.port)
    let s = try setup(
      "sync-outage", device: "TA-SYNC-2", port: broker.port, extra: "store.max_bytes = 536870912")
    let agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    try agent.waitForLog("retry in")
    // Acquisition goes on while the link is down: a million readings pile up.
    try fillOutbox(path: s.agentDB, device: s.device, count: 1_000_000, meters: 2048, chunk: 50_000)
    let filled = try agentBacklog(s)
    #expect(filled.pending == 1_000_000)
    squatter.release()
    try broker.start()
    let hq = try startHQ(s, port: broker.port)
    let started = Date()
    try waitForDrain(s, expected: 1_000_000, timeout: 600, logs: [agent, hq])
    print(
      "drained a 1,000,000-reading backlog in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    let held = try hqReadings(s)
    #expect(held.rows == 1_000_000)
    #expect(held.distinct == 1_000_000)
    let status = try jsonObject(
      runProduct("gridedge", ["status", "--config", s.config, "--json"], in: s.dir).stdout)
    let outbox = try #require(status["outbox"] as? [String: Any])
    #expect(outbox["evicted_records"] as? Int == 0)
    #expect((outbox["used_bytes"] as? Int ?? .max) <= 536_870_912)
  }

  @Test func killNineAtFiftyRandomPointsDuringIngestAndSyncLosesNothing() throws {
    let broker = try MosquittoBroker()
    let s = try setup("sync-kill9", device: "TA-SYNC-3", port: broker.port)
    let hq = try startHQ(s, port: broker.port)
    var generator = SystemRandomNumberGenerator()
    let perRound = 2_000
    for round in 0..<50 {
      let agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
      // Ingest while the agent syncs, then kill it at a random moment.
      try fillOutbox(
        path: s.agentDB, device: s.device, count: perRound, firstIndex: round * perRound, chunk: 500)
      usleep(UInt32.random(in: 0...300_000, using: &generator))
      agent.signal(SIGKILL)
      _ = try agent.wait(timeout: 10)
    }
    let agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    try waitForDrain(s, expected: Int64(50 * perRound), timeout: 180, logs: [agent, hq])
    let held = try hqReadings(s)
    #expect(held.rows == Int64(50 * perRound))
    #expect(held.distinct == held.rows)
    let report = try hqReport(s)
    #expect(report["conflicting_batches"] as? Int == 0, "a seq was reused")
    #expect(report["missing_seqs"] as? Int == 0)
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    let db = try Connection(path: s.agentDB)
    #expect(try db.integrityCheck().isEmpty)
  }

  @Test func brokerKilledAndRestartedInALoopDuringSyncLosesNothing() throws {
    // 6 kill -9 / restart rounds in `make test`; `make soak` sets more. Readings keep
    // arriving between kills, so that every kill comes while batches are in flight.
    let flaps = try soakParameter("GRIDEDGE_BROKER_FLAPS", default: 6)
    let broker = try MosquittoBroker()
    let s = try setup("sync-flap", device: "TA-SYNC-4", port: broker.port)
    var readings = 200_000
    try fillOutbox(path: s.agentDB, device: s.device, count: readings)
    let hq = try startHQ(s, port: broker.port)
    let started = Date()
    let agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    var killedWhileSyncing = 0
    for _ in 0..<flaps {
      try fillOutbox(path: s.agentDB, device: s.device, count: 5_000, firstIndex: readings, chunk: 5_000)
      readings += 5_000
      usleep(UInt32.random(in: 200_000...600_000))
      if let held = try? hqReadings(s), held.rows < Int64(readings) { killedWhileSyncing += 1 }
      broker.kill()
      usleep(UInt32.random(in: 100_000...500_000))
      try broker.start()
    }
    try waitForDrain(s, expected: Int64(readings), timeout: 180 + Double(flaps), logs: [agent, hq])
    let held = try hqReadings(s)
    #expect(held.rows == Int64(readings))
    #expect(held.distinct == Int64(readings))
    #expect(agent.log.contains("link to"), "the agent never saw the broker go")
    #expect(killedWhileSyncing >= flaps / 2, "only \(killedWhileSyncing) of \(flaps) kills came during sync")
    let report = try hqReport(s)
    #expect(report["missing_seqs"] as? Int == 0)
    #expect(report["conflicting_batches"] as? Int == 0)
    soakFigure("broker_kills", flaps, "kills")
    soakFigure("broker_kills_during_sync", killedWhileSyncing, "kills")
    soakFigure("broker_readings_sent", readings, "readings")
    soakFigure("broker_readings_lost", Int64(readings) - held.distinct, "readings")
    soakFigure("broker_duplicates_at_hq", held.rows - held.distinct, "readings")
    soakFigure("broker_duplicate_batches_removed", report["duplicate_batches"] as? Int ?? -1, "batches")
    soakFigure("broker_seconds", Int(Date().timeIntervalSince(started)), "s")
  }

  @Test func receiverKilledBetweenItsCommitAndItsAckIsDeduplicatedOnResend() throws {
    let broker = try MosquittoBroker()
    let s = try setup("sync-hqcrash", device: "TA-SYNC-5", port: broker.port)
    try fillOutbox(path: s.agentDB, device: s.device, count: 20_000)
    let faulty = try Child(
      "gridedge-hq", ["serve", "--port", String(broker.port), "--db", s.hqDB], in: s.dir,
      // After its first commit: a fast agent can deliver the whole backlog in two or
      // three of the receiver's turns, so a later commit might never come.
      environment: ["GRIDEDGE_HQ_FAULT_EXIT_BEFORE_ACK": "1"])
    try faulty.waitForLog("connected to")
    let agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    #expect(try faulty.wait(timeout: 30) == 70, "\(faulty.log)")
    let committed = try hqReadings(s).rows
    #expect(committed > 0)
    let hq = try startHQ(s, port: broker.port)
    try waitForDrain(s, expected: 20_000, timeout: 120, logs: [agent, hq])
    let held = try hqReadings(s)
    #expect(held.rows == 20_000)
    #expect(held.distinct == 20_000)
    let report = try hqReport(s)
    #expect((report["duplicate_batches"] as? Int ?? 0) > 0, "the unacked batches were not resent")
    #expect(report["conflicting_batches"] as? Int == 0)
  }

  @Test func malformedBatchIsLoggedCountedNeitherStoredNorAcked() throws {
    let broker = try MosquittoBroker()
    let s = try setup("sync-malformed", device: "TA-SYNC-6", port: broker.port)
    let hq = try startHQ(s, port: broker.port)
    let ackWatcher = try ChildProcess(
      "/usr/bin/mosquitto_sub",
      ["-h", "127.0.0.1", "-p", String(broker.port), "-t", "gridedge/v1/TA-SYNC-6/down/ack", "-v"],
      outputFile: s.dir.appendingPathComponent("acks.log"))
    usleep(300_000)
    for payload in [
      "not json",
      #"{"v":1,"dev":"TA-OTHER","store":"0123456789abcdef","seq":1,"class":"readings","records":[]}"#,
      #"{"v":1,"dev":"TA-SYNC-6","store":"0123456789abcdef","seq":1,"class":"events","records":[]}"#,
      #"{"v":1,"dev":"TA-SYNC-6","store":"0123456789abcdef","seq":1,"class":"readings","records":[{"meter":"1"}]}"#,
    ] {
      _ = try runProcess(
        "/usr/bin/mosquitto_pub",
        [
          "-h", "127.0.0.1", "-p", String(broker.port), "-q", "1", "-t", "gridedge/v1/TA-SYNC-6/up/readings",
          "-m", payload,
        ])
    }
    try hq.waitForLog(
      "malformed batch from TA-SYNC-6 on gridedge/v1/TA-SYNC-6/up/readings: payload is not valid JSON")
    #expect(waitUntil(timeout: 10) { (try? hqReport(s)["malformed"] as? Int) == 4 })
    #expect(hq.log.contains(#"dev "TA-OTHER" is not the topic's device"#))
    #expect(hq.log.contains(#"class "events" does not match the topic"#))
    #expect(hq.log.contains("records[0]"))
    // A good batch after them is stored and acked, so the watcher was listening.
    _ = try runProcess(
      "/usr/bin/mosquitto_pub",
      [
        "-h", "127.0.0.1", "-p", String(broker.port), "-q", "1", "-t", "gridedge/v1/TA-SYNC-6/up/events",
        "-m",
        #"{"v":1,"dev":"TA-SYNC-6","store":"0123456789abcdef","seq":9,"class":"events","records":[{"id":"e-1"}]}"#,
      ])
    let acks = s.dir.appendingPathComponent("acks.log")
    #expect(
      waitUntil(timeout: 10) { ((try? String(contentsOf: acks, encoding: .utf8)) ?? "").contains("[[9,9]]") })
    let seen = (try? String(contentsOf: acks, encoding: .utf8)) ?? ""
    #expect(seen.components(separatedBy: "\n").filter { !$0.isEmpty }.count == 1, "acks: \(seen)")
    #expect(try hqReadings(s).rows == 0)
    ackWatcher.terminate()
  }

  @Test func brokerRefusalKeepsTheBatchAndRaisesAnEvent() throws {
    let dir = try makeTemporaryDirectory("sync-acl")
    let acl = dir.appendingPathComponent("acl")
    try """
    topic read gridedge/v1/#
    pattern write gridedge/v1/%c/state
    pattern write gridedge/v1/%c/up/events
    pattern read gridedge/v1/%c/down/#
    """.write(to: acl, atomically: true, encoding: .utf8)
    let broker = try MosquittoBroker(extraConfig: "acl_file \(acl.path)\n")
    let s = try setup("sync-acl", device: "TA-SYNC-7", port: broker.port)
    try fillOutbox(path: s.agentDB, device: s.device, count: 50)
    let events = s.dir.appendingPathComponent("events.log")
    let watcher = try ChildProcess(
      "/usr/bin/mosquitto_sub",
      ["-h", "127.0.0.1", "-p", String(broker.port), "-t", "gridedge/v1/TA-SYNC-7/up/events"],
      outputFile: events)
    usleep(300_000)
    let agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    try agent.waitForLog("broker refused batch 1 with reason code 135")
    #expect(
      waitUntil(timeout: 10) {
        ((try? String(contentsOf: events, encoding: .utf8)) ?? "").contains(#""type":"sync.refused""#)
      })
    let backlog = try agentBacklog(s)
    #expect(backlog.unacked >= 1, "the refused batch must be kept")
    #expect(backlog.pending + backlog.unacked * 100 >= 50)
    watcher.terminate()
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
  }
}

/// Listens on a loopback port and closes every connection at once: a host whose
/// MQTT broker is down, without letting the port go to anyone else.
final class PortSquatter {
  private let fd: Int32
  private let thread: Thread

  init(port: Int32) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard fd >= 0, bound == 0, listen(fd, 16) == 0 else {
      close(fd)
      throw TestFailure("cannot hold port \(port): errno \(errno)")
    }
    self.fd = fd
    thread = Thread {
      while true {
        let client = accept(fd, nil, nil)
        if client < 0 { return }
        close(client)
      }
    }
    thread.start()
  }

  /// Stops listening; the port is free for the broker again.
  func release() {
    shutdown(fd, Int32(SHUT_RDWR))
    close(fd)
  }
}

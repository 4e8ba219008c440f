import Foundation
import SQLiteStore
import TestSupport
import Testing

/// A failing disk (issue 8): the agent runs under Tests/Fixtures/powerloss_vfs.c
/// with every Nth write or sync of its database failing with SQLITE_IOERR or
/// SQLITE_FULL, while it reads `gridedge-sim` meters, syncs through a real mosquitto
/// to `gridedge-hq` and takes signed top-ups. A field agent must survive that: it
/// keeps running (or, when the disk fails while it starts, exits 1 with a message
/// saying so and is started again, as systemd does), logs each failure naming the
/// database and the error, acknowledges and reports nothing it has not stored, and
/// once the disk is sound again delivers everything without a restart. A clean
/// rerun then finds nothing missing and nothing twice.
@Suite(.serialized) struct DiskFaultTests {
  struct Fault: CustomStringConvertible, Sendable {
    /// `ioerr` or `full` (the VFS's FAULT_ERROR).
    let error: String
    /// `write` or `sync`.
    let on: String
    let every: Int
    /// Faults injected per process before the disk is sound again.
    let limit: Int
    var description: String { "\(error) at every \(every)th \(on)" }
    /// What SQLite says about it in the agent's log.
    var message: String { error == "full" ? "database or disk is full" : "disk I/O error" }
  }

  private let device = "TA-DISK"
  private let meters = 40
  private let purchases = 4

  /// The natural keys `meter|di|ts` of the readings in the agent's database.
  private func agentReadings(_ agentDB: String) throws -> [String] {
    try readOnlyConnection(agentDB).query("SELECT meter || '|' || di || '|' || ts FROM readings").map {
      $0.text(0) ?? ""
    }
  }

  /// The same keys of the readings HQ holds for the device.
  private func hqReadings(_ hqDB: String) throws -> [String] {
    guard FileManager.default.fileExists(atPath: hqDB) else { return [] }
    return try readOnlyConnection(hqDB).query(
      """
      SELECT json_extract(body, '$.meter') || '|' || json_extract(body, '$.di') || '|'
        || json_extract(body, '$.ts') FROM records WHERE device_id = ?1 AND class = 'readings'
      """, [.text(device)]
    ).map { $0.text(0) ?? "" }
  }

  private func backlog(_ agentDB: String) throws -> Int64 {
    try readOnlyConnection(agentDB).scalarInt(
      "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM batches)")
      ?? -1
  }

  @Test(arguments: [
    Fault(error: "ioerr", on: "write", every: 23, limit: 12),
    Fault(error: "full", on: "write", every: 29, limit: 12),
    Fault(error: "ioerr", on: "sync", every: 3, limit: 6),
    Fault(error: "full", on: "sync", every: 3, limit: 6),
  ])
  func diskErrorsDuringIngestSyncAndTopUpsAreSurvivedAndNothingIsAckedThatIsNotStored(_ fault: Fault) throws {
    let site = try SimulatedSite(
      "disk-\(fault.error)-\(fault.on)", device: device,
      simulator: ["--meters", String(meters), "--no-area", "--history-days", "2"],
      extra: "acquisition.backfill_days = 2\nsync.batch_records = 20\nsync.ack_timeout = 3000")
    let (dir, keys, sim, rig, agentDB, config) = (
      site.dir, site.keys, site.sim, site.rig, site.agentDB, site.config
    )
    let shim = try buildFaultVFS(in: dir)
    var agents: [Child] = []
    func logs() -> String {
      (agents.suffix(2) + [rig.hq, sim]).map { String($0.log.suffix(5000)) }.joined(separator: "\n----\n")
    }
    func send(_ type: String, _ body: String) throws -> String {
      try hqSendCounter(type, body, device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir)
    }
    func result(_ ctr: String) -> [String: Any]? {
      storedAtHQ(rig.db, device: device, "results").first { $0["ctr"] as? String == ctr }
    }

    // 1. A sound disk: the archive (40 customers) and a tariff.
    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    let setup = [
      try send("archive", residentialArchive(meters: meters)),
      try send("tariff", residentialTariff),
    ]
    #expect(
      waitUntil(timeout: 30) { setup.allSatisfy { result($0)?["outcome"] as? String == "applied" } },
      "archive and tariff not applied\n\(agent.log)")
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)

    // 2. The disk fails: every Nth write or sync, up to `limit` times per process.
    let faultLog = dir.appendingPathComponent("faults.log")
    let environment = [
      "LD_PRELOAD": shim, "FAULT_EVERY_\(fault.on.uppercased())": String(fault.every),
      "FAULT_ERROR": fault.error, "FAULT_LIMIT": String(fault.limit), "FAULT_LOG": faultLog.path,
    ]
    func startFaulty() throws {
      // The faults start at another point in each process, as on a flaky disk.
      let after = ["FAULT_AFTER": String(Int.random(in: 0...(3 * fault.every)))]
      agent = try Child(
        "gridedge", ["run", "--config", config], in: dir,
        environment: environment.merging(after) { a, _ in a })
      agents.append(agent)
    }
    var restarts = 0
    /// As systemd would: an agent that ended is started again. It may end only with
    /// exit 1 and a message that the disk failed, never by a crash.
    func supervise() throws {
      guard !agent.child.isRunning else { return }
      let status = try agent.wait(timeout: 1)
      #expect(status == 1, "the agent ended with \(status) under disk faults:\n\(agent.log)")
      #expect(agent.log.contains("the disk failed while"), "no clear message:\n\(agent.log)")
      #expect(!agent.log.contains("quarantined"), "a failing disk quarantined the database:\n\(agent.log)")
      restarts += 1
      guard restarts <= 20 else { throw TestFailure("the agent keeps ending under disk faults\n\(logs())") }
      try startFaulty()
    }
    try startFaulty()
    func faultsOf(_ pid: pid_t) -> Int {
      ((try? String(contentsOf: faultLog, encoding: .utf8)) ?? "").split(separator: "\n")
        .filter { $0.hasPrefix("pid \(pid) ") }.count
    }

    // Top-ups, each sent again (a new command) until HQ hears it was applied, as an
    // HQ does when no result comes: C-1's purchases 1...4, then C-2's until this
    // agent process has met all its faults (each top-up is a synchronous=FULL commit).
    var purchaseOfCtr: [String: (customer: String, purchase: Int)] = [:]
    var lastPurchase: [String: Int] = [:]
    func topUp(_ customer: String) throws {
      let purchase = lastPurchase[customer, default: 0] + 1
      var applied = false
      for _ in 0..<10 where !applied {
        try supervise()
        let ctr = try send("topup", #"{"customer":"\#(customer)","amount":100,"purchase":\#(purchase)}"#)
        purchaseOfCtr[ctr] = (customer, purchase)
        var outcome: [String: Any]? = nil
        _ = waitUntil(timeout: 8) {
          try? supervise()
          outcome = result(ctr)
          return outcome != nil
        }
        guard let outcome else { continue }
        let code = outcome["outcome"] as? String
        let reason = outcome["reason"] as? String
        // Not applied: a disk error inside the effect ("failed") may be said; a gap
        // or an unknown customer would be a real loss.
        #expect(
          code == "applied" || code == "failed" || (code == "rejected" && reason == "duplicate"),
          "\(customer) purchase \(purchase): \(outcome)\n\(logs())")
        applied = code == "applied" || reason == "duplicate"
      }
      guard applied else { throw TestFailure("\(customer) purchase \(purchase) never applied\n\(logs())") }
      lastPurchase[customer] = purchase
    }
    for _ in 1...purchases { try topUp("C-1") }
    let deadline = Date().addingTimeInterval(100)
    while faultsOf(agent.child.pid) < fault.limit {
      guard Date() < deadline else {
        throw TestFailure(
          "the agent process met only \(faultsOf(agent.child.pid)) of \(fault.limit) faults\n\(logs())")
      }
      try topUp("C-2")
    }
    let injected = ((try? String(contentsOf: faultLog, encoding: .utf8)) ?? "").split(separator: "\n").count

    // 3. Without a restart, everything the agent stored reaches HQ.
    var last: (agent: Int, hq: Int, backlog: Int64) = (0, 0, -1)
    let healed = waitUntil(timeout: 90) {
      guard let stored = try? agentReadings(agentDB), let held = try? hqReadings(rig.db),
        let left = try? backlog(agentDB)
      else { return false }
      last = (stored.count, held.count, left)
      return left == 0 && held.count == stored.count && !stored.isEmpty
    }
    #expect(
      healed, "not healed: agent \(last.agent) readings, HQ \(last.hq), backlog \(last.backlog)\n\(logs())")
    #expect(agent.child.isRunning, "the agent ended\n\(agent.log)")
    // Every failure was logged as an error naming the database and what SQLite said.
    let errors = agents.flatMap { $0.log.split(separator: "\n") }.filter {
      $0.hasPrefix("error") && $0.contains(fault.message) && $0.contains(agentDB)
    }
    #expect(!errors.isEmpty, "no error line names the database and '\(fault.message)'\n\(logs())")
    // The broker stayed up: a failing disk is no reason to drop the MQTT link.
    let drops = agents.flatMap { $0.log.split(separator: "\n") }.filter { $0.contains("mqtt: link to") }
    #expect(drops.isEmpty, "the link was dropped: \(drops.prefix(3))")
    // Nothing HQ holds is missing from the agent's store.
    let stored = Set(try agentReadings(agentDB))
    let held = try hqReadings(rig.db)
    #expect(Set(held).isSubset(of: stored), "HQ holds readings the agent does not")
    agent.signal()
    #expect(try agent.wait(timeout: 20) == 0, "\(agent.log)")

    // 4. A clean rerun: nothing left to send, nothing missing, nothing twice.
    let rerun = try Child("gridedge", ["run", "--config", config], in: dir)
    try rerun.waitForLog("birth published", timeout: 30)
    #expect(!rerun.log.contains("is missing"), "a lost write-ahead log was reported:\n\(rerun.log)")
    #expect(waitUntil(timeout: 30) { (try? backlog(agentDB)) == 0 }, "\(rerun.log)")
    rerun.signal()
    #expect(try rerun.wait(timeout: 20) == 0, "\(rerun.log)")

    let db = try Connection(path: agentDB)
    #expect(try db.integrityCheck().isEmpty)
    let finalStored = try agentReadings(agentDB)
    let finalHeld = try hqReadings(rig.db)
    #expect(
      finalHeld.count == finalStored.count, "HQ \(finalHeld.count) readings, agent \(finalStored.count)")
    #expect(Set(finalHeld) == Set(finalStored))
    let report = try hqReport(rig.db, device: device, in: dir)
    #expect(report["conflicting_batches"] as? Int == 0, "a seq was reused: \(report)")
    #expect(report["missing_seqs"] as? Int == 0, "\(report)")
    // Each purchase once in the ledger, and every top-up HQ heard applied is in it.
    for (customer, last) in lastPurchase {
      let refs = try db.query(
        "SELECT ref FROM ledger WHERE customer = ?1 AND kind = 'topup' ORDER BY id", [.text(customer)]
      ).map { $0.text(0) ?? "" }
      #expect(refs == (1...last).map { "purchase:\($0)" }, "\(customer)")
      let appliedAtHQ = storedAtHQ(rig.db, device: device, "results").filter {
        $0["typ"] as? String == "topup" && $0["outcome"] as? String == "applied"
      }.compactMap { purchaseOfCtr[$0["ctr"] as? String ?? ""] }.filter { $0.customer == customer }
      #expect(appliedAtHQ.map { $0.purchase }.sorted() == Array(1...last), "\(customer)")
    }
    // The log never claims what the database does not hold: every command it says
    // was applied has its applied result at HQ.
    let appliedResults = Set(
      storedAtHQ(rig.db, device: device, "results").filter { $0["outcome"] as? String == "applied" }
        .compactMap {
          $0["ctr"] as? String
        })
    let claimed = agents.flatMap { $0.log.split(separator: "\n") }.compactMap { line -> String? in
      guard line.hasPrefix("info  command:"), line.hasSuffix(" applied"),
        let ctr = line.split(separator: " ").drop(while: { $0 != "ctr" }).dropFirst().first
      else { return nil }
      return String(ctr)
    }
    #expect(!claimed.isEmpty)
    for ctr in claimed { #expect(appliedResults.contains(ctr), "logged as applied, not stored: ctr \(ctr)") }
    #expect(try runProduct("gridedge", ["ledger", "verify", "--config", config], in: dir).status == 0)
    #expect(try runProduct("gridedge", ["audit", "verify", "--config", config], in: dir).status == 0)
    print(
      "fault disk_\(fault.error)_\(fault.on) injected \(injected) restarts \(restarts) readings \(finalStored.count)"
        + " error_lines \(errors.count)")
  }
}

extension DiskFaultTests {
  /// A fresh folder with the fault VFS built, a broker, and an agent configuration
  /// with only the device, its database and the broker.
  private func bareAgent(_ label: String) throws -> (
    dir: URL, shim: String, broker: MosquittoBroker, agentDB: String, config: String
  ) {
    let dir = try makeTemporaryDirectory(label)
    let broker = try MosquittoBroker()
    let agentDB = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try "device.id = \(device)\nstore.path = \(agentDB)\nmqtt.port = \(broker.port)\n".write(
      toFile: config, atomically: true, encoding: .utf8)
    return (dir, try buildFaultVFS(in: dir), broker, agentDB, config)
  }

  @Test(arguments: ["ioerr", "full"])
  func aDiskFailingWhileTheAgentStartsEndsItWithExitOneAndAClearMessageAndKeepsTheDatabase(_ error: String)
    throws
  {
    let (dir, shim, broker, agentDB, config) = try bareAgent("disk-start-\(error)")
    defer { withExtendedLifetime(broker) {} }
    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)
    let storeID = try readOnlyConnection(agentDB).query("SELECT store_id FROM device").first?.text(0)

    // Every write fails: the agent cannot record its boot.
    agent = try Child(
      "gridedge", ["run", "--config", config], in: dir,
      environment: ["LD_PRELOAD": shim, "FAULT_EVERY_WRITE": "1", "FAULT_ERROR": error])
    #expect(try agent.wait(timeout: 15) == 1, "\(agent.log)")
    let message = error == "full" ? "database or disk is full" : "disk I/O error"
    #expect(
      agent.log.contains("the disk failed while recording this boot") && agent.log.contains(message)
        && agent.log.contains(agentDB), "\(agent.log)")
    #expect(!agent.log.contains("quarantined"), "\(agent.log)")

    // Started again on a sound disk: the same database, nothing lost.
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)
    #expect(try readOnlyConnection(agentDB).query("SELECT store_id FROM device").first?.text(0) == storeID)
    #expect(try readOnlyConnection(agentDB).scalarInt("SELECT count(*) FROM boots") == 2)
    #expect(!FileManager.default.fileExists(atPath: agentDB + ".corrupt"))
  }
}

extension DiskFaultTests {
  @Test(arguments: ["ioerr", "full"])
  func aDiskFailingAsTheAgentStopsIsNotTakenForALostLogAtTheNextStart(_ error: String) throws {
    let (dir, shim, broker, agentDB, config) = try bareAgent("disk-stop-\(error)")
    defer { withExtendedLifetime(broker) {} }
    // From just before the stop (once the file `bad-disk` exists), the next writes
    // fail: the stopping status and the three tries of the end-of-boot record. The
    // disk is sound again for the checkpoint at close, which (without the fix) deleted
    // the write-ahead log.
    let badDisk = dir.appendingPathComponent("bad-disk")
    let faultLog = dir.appendingPathComponent("faults.log")
    var agent = try Child(
      "gridedge", ["run", "--config", config], in: dir,
      environment: [
        "LD_PRELOAD": shim, "FAULT_EVERY_WRITE": "1", "FAULT_ERROR": error, "FAULT_WHILE": badDisk.path,
        "FAULT_LIMIT": "4", "FAULT_LOG": faultLog.path,
      ])
    try agent.waitForLog("birth published")
    try Data().write(to: badDisk)
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0, "\(agent.log)")
    #expect(
      agent.log.contains("could not record the end of boot") && agent.log.contains(agentDB)
        && agent.log.contains("write-ahead log is kept"), "\(agent.log)")
    try FileManager.default.removeItem(at: badDisk)

    // The next start sees an unclean stop, not a lost log: no seq is skipped.
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)
    #expect(!agent.log.contains("is missing") && !agent.log.contains("skipped"), "\(agent.log)")
    #expect(try readOnlyConnection(agentDB).scalarInt("SELECT last_seq FROM sync_state") ?? -1 < 1000)
  }
}

extension DiskFaultTests {
  /// The disk fails for good while the agent runs (every write fails while the file
  /// `bad-disk` exists): the agent cannot update its status row, so `gridedge status`
  /// (text and `--json`) must say so from `store.status_file`, naming the error, the
  /// step and the count, and the retained state must tell HQ; once the disk takes
  /// writes again both say it recovered and HQ gets a `store.recovered` event.
  @Test(arguments: ["ioerr", "full"])
  func aDiskThatFailsForGoodWhileTheAgentRunsShowsInStatusAndAtHQUntilItRecovers(_ error: String) throws {
    let dir = try makeTemporaryDirectory("disk-status-\(error)")
    let keys = dir.appendingPathComponent("keys").path
    let keygen = try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir)
    try #require(keygen.status == 0, "\(keygen.stderr)")
    let rig = try HQUnderTest(in: dir)
    defer { withExtendedLifetime(rig) {} }
    let statusFile = dir.appendingPathComponent("run/storage.json")
    try FileManager.default.createDirectory(
      at: statusFile.deletingLastPathComponent(), withIntermediateDirectories: true)
    let config = dir.appendingPathComponent("agent.conf").path
    try
      (agentBaseConfig(device: device, dir: dir, port: rig.port, keys: keys)
      + "store.status_file = \(statusFile.path)\n").write(toFile: config, atomically: true, encoding: .utf8)
    let badDisk = dir.appendingPathComponent("bad-disk")
    let agent = try Child(
      "gridedge", ["run", "--config", config], in: dir,
      environment: [
        "LD_PRELOAD": try buildFaultVFS(in: dir), "FAULT_EVERY_WRITE": "1", "FAULT_ERROR": error,
        "FAULT_WHILE": badDisk.path,
      ])
    try agent.waitForLog("birth published")
    func storage() throws -> [String: Any] {
      let status = try runProduct("gridedge", ["status", "--config", config, "--json"], in: dir)
      return try jsonObject(status.stdout)["storage"] as? [String: Any] ?? [:]
    }
    func statusText() throws -> String {
      try runProduct("gridedge", ["status", "--config", config], in: dir).stdout
    }
    func retainedState() throws -> [String: Any] {
      try jsonObject(retainedMessage(on: "gridedge/v1/\(device)/state", port: rig.port))
    }
    /// A signed command for a customer the device does not know: the agent stores its
    /// (rejected) outcome in one transaction, a write.
    func sendCommand() throws {
      let sent = try hqSend(
        "topup", #"{"customer":"C-404","amount":100,"purchase":1}"#, device: device, keys: keys, hqDB: rig.db,
        port: rig.port, in: dir)
      try #require(sent.status == 0, "\(sent.stderr)")
    }
    let before = try statusText()
    #expect(try storage()["state"] as? String == "ok", "\(before)")
    #expect(before.contains("\nstorage   ok\n"), "\(before)")

    // The disk fails: two commands cannot be stored.
    try Data().write(to: badDisk)
    let message = error == "full" ? "database or disk is full" : "disk I/O error"
    try sendCommand()
    try agent.waitForLog("storage FAILING: \(message) while storing a command")
    try sendCommand()
    var failing: [String: Any] = [:]
    #expect(
      waitUntil(timeout: 10) {
        failing = (try? storage()) ?? [:]
        return failing["failures"] as? Int ?? 0 >= 2
      }, "status does not count two failures: \(failing)\n\(agent.log)")
    #expect(failing["state"] as? String == "failing")
    #expect(failing["error"] as? String == message)
    #expect(failing["step"] as? String == "storing a command")
    #expect(failing["since"] as? Int ?? 0 > 0 && failing["seconds"] as? Int ?? -1 >= 0, "\(failing)")
    let text = try statusText()
    #expect(
      text.contains("storage   FAILING since ") && text.contains("s): \(message) while storing a command; ")
        && text.contains(" failures\n"), "\(text)")
    let state = try retainedState()
    let reported = state["storage"] as? [String: Any]
    #expect(
      state["state"] as? String == "online" && reported?["state"] as? String == "failing"
        && reported?["error"] as? String == message, "retained state: \(state)")
    #expect(
      waitUntil(timeout: 10) { rig.hq.log.contains("its database disk FAILING since") }, "\(rig.hq.log)")

    // The disk is sound again: the next write recovers, and HQ hears of it.
    try FileManager.default.removeItem(at: badDisk)
    try sendCommand()
    try agent.waitForLog("storage recovered after")
    var sound: [String: Any] = [:]
    #expect(
      waitUntil(timeout: 10) {
        sound = (try? storage()) ?? [:]
        return sound["state"] as? String == "ok"
      }, "\(sound)\n\(agent.log)")
    #expect(sound["recovered_at"] as? Int ?? 0 >= failing["since"] as? Int ?? .max, "\(sound)")
    #expect(try statusText().contains("\nstorage   ok (recovered "))
    #expect(try retainedState()["storage"] == nil)
    var recovered: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 15) {
        recovered = storedAtHQ(rig.db, device: device, "events").first {
          $0["type"] as? String == "store.recovered"
        }
        return recovered != nil
      }, "no store.recovered event at HQ\n\(agent.log)")
    #expect(recovered?["failures"] as? Int ?? 0 >= 2, "\(recovered ?? [:])")
    #expect(
      recovered?["error"] as? String == message && recovered?["since"] as? Int == failing["since"] as? Int)
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0, "\(agent.log)")
    #expect(!FileManager.default.fileExists(atPath: statusFile.path), "the status file outlived the agent")
  }
}

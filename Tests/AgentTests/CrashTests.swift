import Foundation
import SQLiteStore
import TestSupport
import Testing

/// Crashes (issue 8): `kill -9` of the agent at random points while it reads
/// `gridedge-sim` meters, bills them, syncs a growing backlog through a real
/// mosquitto to `gridedge-hq` and takes signed top-ups, which HQ sends again when no
/// result comes. Afterwards nothing is lost at HQ, no top-up is in the ledger twice,
/// no seq was used for two batches, and the database passes `integrity_check`.
///
/// GRIDEDGE_KILLS sets the number of kills (default 25; the soak runs 200). The
/// figures are printed as `soak kill9_<name> <value>` lines.
@Suite(.serialized) struct CrashTests {
  private let device = "TA-CRASH"

  private static var kills: Int {
    Int(ProcessInfo.processInfo.environment["GRIDEDGE_KILLS"] ?? "") ?? 25
  }

  /// `meter|di|ts` of the readings HQ holds, with `di` (un)equal to the backlog's.
  private func hqReadings(_ hqDB: String, backlog: Bool) throws -> [String] {
    guard FileManager.default.fileExists(atPath: hqDB) else { return [] }
    return try readOnlyConnection(hqDB).query(
      """
      SELECT json_extract(body, '$.meter') || '|' || json_extract(body, '$.di') || '|' || json_extract(body, '$.ts')
      FROM records WHERE device_id = ?1 AND class = 'readings'
        AND (json_extract(body, '$.di') = '00010000') = ?2
      """, [.text(device), .integer(backlog ? 1 : 0)]
    ).map { $0.text(0) ?? "" }
  }

  @Test func killNineAtRandomPointsDuringIngestSyncAndFeeControlLosesNothingAndAppliesNoTopUpTwice() throws {
    let kills = Self.kills
    let meters = 10
    let site = try SimulatedSite(
      "crash-kill9", device: device, simulator: ["--meters", String(meters), "--no-area"],
      extra: "acquisition.backfill_days = 0\nsync.batch_records = 50\nsync.ack_timeout = 3000")
    let (dir, keys, sim, rig, agentDB, config) = (
      site.dir, site.keys, site.sim, site.rig, site.agentDB, site.config
    )
    var agent = try Child("gridedge", ["run", "--config", config], in: dir)
    func logs() -> String {
      [agent, rig.hq, sim].map { String($0.log.suffix(4000)) }.joined(separator: "\n----\n")
    }
    func send(_ type: String, _ body: String) throws -> String {
      try hqSendCounter(type, body, device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir)
    }
    func results() -> [[String: Any]] { storedAtHQ(rig.db, device: device, "results") }

    // The archive and a tariff, on a calm start.
    try agent.waitForLog("birth published")
    let setup = [
      try send("archive", residentialArchive(meters: meters)),
      try send("tariff", residentialTariff),
    ]
    #expect(
      waitUntil(timeout: 30) {
        setup.allSatisfy { ctr in
          results().contains { $0["ctr"] as? String == ctr && $0["outcome"] as? String == "applied" }
        }
      }, "archive and tariff not applied\n\(logs())")
    agent.signal(SIGKILL)
    _ = try agent.wait(timeout: 10)

    // Top-ups of C-1, C-2 and C-3, one purchase after another each; a purchase
    // without a result 4 s after it was sent is sent again (a new command), as HQ
    // does (the agent's session is clean: what comes while it is down is not kept).
    var purchaseOfCtr: [String: (customer: String, purchase: Int)] = [:]
    var current: [String: (purchase: Int, ctrs: [String], sentAt: Date)] = [
      "C-1": (0, [], .distantPast), "C-2": (0, [], .distantPast), "C-3": (0, [], .distantPast),
    ]
    func answered(_ ctrs: [String], in held: [[String: Any]]) -> Bool {
      held.contains { result in
        ctrs.contains(result["ctr"] as? String ?? "")
          && (result["outcome"] as? String == "applied" || result["reason"] as? String == "duplicate")
      }
    }
    /// Sends what is due; `more`: whether a done purchase is followed by the next.
    /// - Returns: whether every purchase sent so far has its result.
    @discardableResult
    func driveTopUps(more: Bool) throws -> Bool {
      let held = results()
      var allDone = true
      for customer in current.keys.sorted() {
        var state = current[customer]!
        let done = state.purchase == 0 || answered(state.ctrs, in: held)
        if !done { allDone = false }
        if done && more {
          state = (state.purchase + 1, [], .distantPast)
        } else if done || Date().timeIntervalSince(state.sentAt) < 4 {
          continue
        }
        let ctr = try send(
          "topup", #"{"customer":"\#(customer)","amount":1000,"purchase":\#(state.purchase)}"#)
        purchaseOfCtr[ctr] = (customer, state.purchase)
        state.ctrs.append(ctr)
        state.sentAt = Date()
        current[customer] = state
      }
      return allDone
    }

    var backlog = 0
    var generator = SystemRandomNumberGenerator()
    let started = Date()
    for kill in 0..<kills {
      agent = try Child("gridedge", ["run", "--config", config], in: dir)
      // One kill in five while the agent starts; the others once it is online, while
      // top-ups arrive, readings are ingested, billed and synced.
      if kill % 5 == 0 {
        usleep(UInt32.random(in: 0...400_000, using: &generator))
      } else {
        _ = waitUntil(timeout: 10) { agent.log.contains("birth published") || !agent.child.isRunning }
        try driveTopUps(more: true)
        if kill % 2 == 0 {
          // Within the top-ups' handling (a few ms each, synchronous=FULL).
          usleep(UInt32.random(in: 0...150_000, using: &generator))
        } else {
          // Ingest beside the agent: a backlog of readings enqueued while it runs.
          let count = Int.random(in: 100...400, using: &generator)
          try fillOutbox(path: agentDB, device: device, count: count, firstIndex: backlog, chunk: 100)
          backlog += count
          usleep(UInt32.random(in: 0...1_200_000, using: &generator))
        }
      }
      agent.signal(SIGKILL)
      let status = try agent.wait(timeout: 10)
      #expect(status == 128 + SIGKILL, "the agent ended by itself with \(status)\n\(agent.log)")
    }
    let killing = Date().timeIntervalSince(started)

    // A last, calm run: everything drains and every pending top-up gets its result.
    agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published", timeout: 30)
    let pause = { _ = usleep(200_000) }
    let settled = waitUntil(timeout: 120, poll: pause) {
      guard (try? driveTopUps(more: false)) == true, let held = try? hqReadings(rig.db, backlog: true),
        held.count >= backlog,
        let left = try? readOnlyConnection(agentDB).scalarInt(
          "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM batches)")
      else { return false }
      return left == 0
    }
    #expect(settled, "not settled: \(current)\n\(logs())")
    agent.signal()
    #expect(try agent.wait(timeout: 20) == 0, "\(agent.log)")

    // Readings: the backlog and every meter reading the agent stored, each once at HQ.
    let db = try Connection(path: agentDB)
    let integrity = try db.integrityCheck()
    #expect(integrity.isEmpty, "\(integrity)")
    let stored = Set(
      try db.query("SELECT meter || '|' || di || '|' || ts FROM readings").map { $0.text(0) ?? "" })
    let heldBacklog = try hqReadings(rig.db, backlog: true)
    let heldMeters = try hqReadings(rig.db, backlog: false)
    let lost = (backlog - Set(heldBacklog).count) + stored.subtracting(heldMeters).count
    #expect(lost == 0, "\(lost) reading(s) lost")
    #expect(heldBacklog.count == backlog && heldMeters.count == stored.count)
    #expect(Set(heldMeters) == stored)
    #expect(!stored.isEmpty, "no meter was read")
    let report = try hqReport(rig.db, device: device, in: dir)
    let reused = report["conflicting_batches"] as? Int ?? -1
    #expect(reused == 0, "a seq was used for two batches: \(report)")
    #expect(report["missing_seqs"] as? Int == 0, "\(report)")

    // Top-ups: each purchase once in the ledger, applied once at HQ; balances add up.
    var twice = 0
    var appliedCount = 0
    let held = results()
    for (customer, state) in current {
      let last = state.purchase
      let refs = try db.query(
        "SELECT ref FROM ledger WHERE customer = ?1 AND kind = 'topup' ORDER BY id", [.text(customer)]
      ).map { $0.text(0) ?? "" }
      twice += refs.count - Set(refs).count
      #expect(refs == (1...last).map { "purchase:\($0)" }, "\(customer): \(refs)")
      let applied = held.filter { $0["typ"] as? String == "topup" && $0["outcome"] as? String == "applied" }
        .compactMap { purchaseOfCtr[$0["ctr"] as? String ?? ""] }.filter { $0.customer == customer }
        .map { $0.purchase }
      appliedCount += applied.count
      #expect(applied.sorted() == Array(1...last), "\(customer): applied at HQ \(applied.sorted())")
      let sums = try db.query(
        """
        SELECT (SELECT balance_fen FROM accounts WHERE customer = ?1),
          (SELECT coalesce(sum(amount_fen), 0) FROM ledger WHERE customer = ?1),
          (SELECT coalesce(sum(amount_fen), 0) FROM ledger WHERE customer = ?1 AND kind = 'topup')
        """, [.text(customer)])[0]
      #expect(sums.int64(0) == sums.int64(1), "\(customer): balance is not the sum of its entries")
      #expect(sums.int64(2) == Int64(1000 * last), "\(customer): top-ups add up to \(sums.int64(2) ?? -1)")
    }
    // Every result HQ holds is about a command it sent, and a command's outcomes agree.
    for result in held where result["typ"] as? String == "topup" {
      let outcome = result["outcome"] as? String
      let reason = result["reason"] as? String ?? ""
      #expect(
        outcome == "applied" || (outcome == "rejected" && ["duplicate", "replayed"].contains(reason)),
        "unexpected top-up result \(result)")
    }
    #expect(try runProduct("gridedge", ["ledger", "verify", "--config", config], in: dir).status == 0)
    #expect(try runProduct("gridedge", ["audit", "verify", "--config", config], in: dir).status == 0)

    print("soak kill9_points \(kills)")
    print("soak kill9_lost \(lost)")
    print("soak kill9_topups_twice \(twice)")
    print("soak kill9_topups_applied \(appliedCount)")
    print("soak kill9_topups_sent_again \(purchaseOfCtr.count - appliedCount)")
    print("soak kill9_seq_reused \(reused)")
    print("soak kill9_integrity \(integrity.isEmpty ? "ok" : "FAILED")")
    print("soak kill9_seconds \(Int(killing))")
  }
}

import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Archive and top-up commands through the command handler, on a real database file.
@Suite struct LedgerTests {
  struct Fixture {
    let store: AgentStore
    let handler: CommandHandler
    let key: Ed25519KeyPair
    let json: Connection
    var counter: UInt64 = 0
    let now: Int64 = 1_790_000_000

    init(_ label: String, hoardingLimit: Int64 = 500_000, thresholds: GradeThresholds? = nil) throws {
      let dir = try makeTemporaryDirectory(label)
      store = try AgentStore(path: dir.appendingPathComponent("agent.db").path, deviceID: "TA-L-1", now: 0)
      key = try Ed25519KeyPair()
      var keys = TrustedKeys()
      try keys.add(key.publicKey, keyID: "hq1")
      handler = try CommandHandler(
        store: store, outbox: try Outbox(store: store), trustedKeys: keys, clockSkewSeconds: 300,
        offset: .china, maxSignatureFailures: 100, hoardingLimit: Money(fen: hoardingLimit),
        thresholds: thresholds)
      json = try Connection(path: ":memory:")
    }

    /// Signs the next command and hands it to the agent's handler.
    mutating func send(_ type: String, _ body: String) throws -> CommandHandler.Outcome {
      counter += 1
      let token = try Command(
        device: "TA-L-1", counter: counter, issuedAt: now, expiresAt: now + 600,
        type: CommandType(name: type)!, body: body
      ).signed(with: key, keyID: "hq1", json: json)
      return try handler.handle(Array(token.utf8), wall: now * 1000, monotonic: 0)
    }

    func balance(_ customer: String) throws -> Int64? {
      try store.db.query("SELECT balance_fen FROM accounts WHERE customer = ?1", [.text(customer)]).first?
        .int64(0)
    }
  }

  static let snapshot = #"""
    {"op":"snapshot","version":1,"meters":[
      {"address":"000000000001","customer":"C-1","area":"TA-1","phase":"A","category":"residential"},
      {"address":"000000000002","customer":"C-2","area":"TA-1","phase":"B","category":"residential","keep_power":true},
      {"address":"000000009999","customer":"AREA","area":"TA-1","phase":"ABC","ct":40,"category":"area","area_meter":true}]}
    """#

  @Test func archiveSnapshotAndEditsAreVersionedAndAtomic() throws {
    var f = try Fixture("archive")
    #expect(try f.send("archive", Self.snapshot).outcome == "applied")
    #expect(try Archive.version(f.store.db) == 1)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM archive_meters") == 3)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM accounts") == 2, "area meters have no account")
    #expect(
      try f.store.db.scalarInt("SELECT ct_ratio FROM archive_meters WHERE address = '000000009999'") == 40)

    var outcome = try f.send("archive", Self.snapshot)
    #expect(outcome.reason == "stale-version")
    outcome = try f.send(
      "archive",
      #"{"op":"add","version":3,"meters":[{"address":"000000000003","customer":"C-3","area":"TA-1","category":"residential"}]}"#
    )
    #expect(outcome.reason == "version-gap")
    outcome = try f.send(
      "archive",
      #"{"op":"add","version":2,"meters":[{"address":"000000000003","customer":"C-3","area":"TA-1","category":"residential"},{"address":"12345","customer":"C-4","area":"TA-1","category":"residential"}]}"#
    )
    #expect(outcome.reason == "malformed")
    #expect(outcome.detail == "archive meters[1]: address must be 12 digits")
    outcome = try f.send(
      "archive",
      #"{"op":"add","version":2,"meters":[{"address":"000000000001","customer":"C-9","area":"TA-1","category":"residential"}]}"#
    )
    #expect(outcome.reason == "conflict")
    // Nothing above changed the archive.
    #expect(try Archive.version(f.store.db) == 1)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM archive_meters") == 3)

    #expect(
      try f.send(
        "archive",
        #"{"op":"change","version":2,"meters":[{"address":"000000000001","customer":"C-1","area":"TA-1","category":"commercial","grade":"C"}]}"#
      ).outcome == "applied")
    #expect(
      try f.send("archive", #"{"op":"remove","version":3,"meters":[{"address":"000000000002"}]}"#).outcome
        == "applied")
    #expect(
      try f.store.db.query("SELECT category, grade FROM archive_meters WHERE address = '000000000001'")[0]
        .values == ["commercial", "C"])
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM archive_meters") == 2)
    #expect(try Archive.version(f.store.db) == 3)
  }

  @Test func topUpsApplyOnceByPurchaseCountAndRejectsLeaveTheBalance() throws {
    var f = try Fixture("topup", hoardingLimit: 100_000)
    #expect(try f.send("archive", Self.snapshot).outcome == "applied")
    func topUp(_ customer: String, _ purchase: Int, _ amount: Int) throws -> CommandHandler.Outcome {
      try f.send("topup", #"{"customer":"\#(customer)","purchase":\#(purchase),"amount":\#(amount)}"#)
    }
    #expect(try topUp("C-1", 1, 5_000).outcome == "applied")
    #expect(try f.balance("C-1") == 5_000)
    #expect(try topUp("C-1", 1, 5_000).reason == "duplicate")
    #expect(try topUp("C-1", 3, 5_000).reason == "gap")
    #expect(try topUp("C-1", 2, 0).reason == "invalid-amount")
    #expect(try topUp("C-1", 2, 95_001).reason == "over-hoarding-limit")
    #expect(try topUp("NOBODY", 1, 100).reason == "unknown-customer")
    #expect(try topUp("AREA", 1, 100).reason == "unknown-customer")
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":"2","amount":100}"#).reason == "malformed")
    #expect(try f.balance("C-1") == 5_000)
    #expect(try topUp("C-1", 2, 95_000).outcome == "applied")
    #expect(try f.balance("C-1") == 100_000)
    #expect(try topUp("C-2", 1, 1).outcome == "applied")

    // Every applied top-up is a ledger entry, upstream in class ledger, and audited.
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM ledger") == 3)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM outbox WHERE class = 'ledger'") == 3)
    #expect(try Ledger.verify(f.store.db).isEmpty)
    let audit = try AuditChain.verify(f.store.db)
    #expect(audit.problems.isEmpty)
    #expect(audit.entries == 3 + Int(f.counter), "each ledger entry and each command outcome")

    // Tampering is found: an edited balance, an edited audit body, a deleted audit row.
    try f.store.db.run("UPDATE accounts SET balance_fen = balance_fen + 1 WHERE customer = 'C-2'")
    #expect(try Ledger.verify(f.store.db) == ["account C-2: balance 0.02, entries sum to 0.01"])
    try f.store.db.run(
      "UPDATE audit SET body = replace(body, '5000', '6000') WHERE kind = 'ledger' AND id = (SELECT min(id) FROM audit WHERE kind = 'ledger')"
    )
    try f.store.db.run("DELETE FROM audit WHERE id = 5")
    let broken = try AuditChain.verify(f.store.db).problems
    #expect(broken.contains { $0.contains("edited") })
    #expect(broken.contains("audit entries 5...5 are missing"))
  }

  @Test func randomTopUpSequencesApplyEachPurchaseExactlyOnce() throws {
    var f = try Fixture("topup-property", hoardingLimit: 10_000_000_000)
    #expect(try f.send("archive", Self.snapshot).outcome == "applied")
    var generator = SeededGenerator(seed: 645)
    var applied: [Int: Int] = [:]
    var next = 1
    for _ in 0..<300 {
      // Mostly the next purchase, sometimes a resend of an old one or a jump ahead.
      let roll = generator.next() % 10
      let purchase =
        roll < 6
        ? next
        : roll < 8 ? max(1, next - 1 - Int(generator.next() % 3)) : next + 1 + Int(generator.next() % 3)
      let amount = 1 + Int(generator.next() % 10_000)
      let outcome = try f.send("topup", #"{"customer":"C-1","purchase":\#(purchase),"amount":\#(amount)}"#)
      if outcome.outcome == "applied" {
        #expect(purchase == next && applied[purchase] == nil)
        applied[purchase] = amount
        next += 1
      } else {
        #expect(["duplicate", "gap"].contains(outcome.reason))
      }
    }
    #expect(try f.balance("C-1") == Int64(applied.values.reduce(0, +)))
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM ledger") == Int64(applied.count))
    #expect(try Ledger.verify(f.store.db).isEmpty)
  }

  @Test func hundredCapturedCommandsReplayedAfterExecutionRestartAndClockJumpsAreAllRejected() throws {
    var f = try Fixture("replay-100")
    #expect(try f.send("archive", Self.snapshot).outcome == "applied")
    // Capture 100 genuine top-ups as they went over the wire, and execute them.
    var captured: [[UInt8]] = []
    for purchase in 1...100 {
      f.counter += 1
      let token = try Command(
        device: "TA-L-1", counter: f.counter, issuedAt: f.now, expiresAt: f.now + 600,
        type: CommandType(name: "topup")!, body: #"{"customer":"C-1","purchase":\#(purchase),"amount":100}"#
      ).signed(with: f.key, keyID: "hq1", json: f.json)
      captured.append(Array(token.utf8))
      #expect(try f.handler.handle(captured.last!, wall: f.now * 1000, monotonic: 0).outcome == "applied")
    }
    #expect(try f.balance("C-1") == 10_000)
    let entries = try f.store.db.scalarInt("SELECT count(*) FROM ledger")
    func replayAll(_ handler: CommandHandler, wall: Int64) throws -> [String: Int] {
      var reasons: [String: Int] = [:]
      for token in captured {
        let outcome = try handler.handle(token, wall: wall, monotonic: 0)
        #expect(outcome.outcome == "rejected")
        reasons[outcome.reason, default: 0] += 1
      }
      return reasons
    }
    // Right after execution.
    #expect(try replayAll(f.handler, wall: f.now * 1000) == ["replayed": 100])
    // After a restart: a new handler on the same database.
    var keys = TrustedKeys()
    try keys.add(f.key.publicKey, keyID: "hq1")
    let restarted = try CommandHandler(
      store: f.store, outbox: try Outbox(store: f.store), trustedKeys: keys, clockSkewSeconds: 300,
      offset: .china, maxSignatureFailures: 100)
    #expect(try replayAll(restarted, wall: f.now * 1000) == ["replayed": 100])
    // After the clock jumps a year back, a year ahead, and to 1970.
    #expect(try replayAll(restarted, wall: (f.now - 365 * 86_400) * 1000) == ["replayed": 100])
    #expect(try replayAll(restarted, wall: (f.now + 365 * 86_400) * 1000) == ["replayed": 100])
    #expect(try replayAll(restarted, wall: 0) == ["replayed": 100])
    // Zero effects: the balance and the ledger are as the 100 executions left them.
    #expect(try f.balance("C-1") == 10_000)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM ledger") == entries)
    #expect(try Ledger.verify(f.store.db).isEmpty)
  }
}

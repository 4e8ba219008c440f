import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// The arrears rebate (`prepaid.rebate*`): arrears repaid within the window earn a
/// `rebate` ledger entry, once per episode, and `ledger verify` still reconciles.
@Suite struct RebateTests {
  /// 10 % of the deepest arrears when repaid within a day, at most 1.50 CNY.
  private func fixture(_ label: String) throws -> LedgerTests.Fixture {
    var f = try LedgerTests.Fixture(
      label,
      thresholds: try GradeThresholds(
        config: try relayConfig(
          "prepaid.rebate = 1000\nprepaid.rebate_window = 86400\nprepaid.rebate_cap = 150")))
    #expect(try f.send("archive", relayArchive).outcome == "applied")
    return f
  }

  private func entries(_ f: LedgerTests.Fixture, _ customer: String) throws -> [String] {
    try f.store.db.query(
      "SELECT kind, amount_fen, balance_fen FROM ledger WHERE customer = ?1 ORDER BY id", [.text(customer)]
    ).map { "\($0.text(0) ?? "") \($0.int64(1) ?? 0) \($0.int64(2) ?? 0)" }
  }

  @Test func arrearsRepaidWithinTheWindowEarnOneRebateEntry() throws {
    var f = try fixture("rebate-in-time")
    let wall = f.now * 1000
    // C-1: −10.00 for an hour, then repaid in two top-ups; the deepest was −10.00 → 1.00.
    try setBalance(f.store, "C-1", -600, at: wall - 3_600_000)
    try setBalance(f.store, "C-1", -1000, at: wall - 1_800_000)
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":1,"amount":500}"#).outcome == "applied")
    #expect(try entries(f, "C-1").last == "topup 500 -500", "still in arrears: no rebate")
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":2,"amount":700}"#).outcome == "applied")
    #expect(try entries(f, "C-1").suffix(2) == ["topup 700 200", "rebate 100 300"])
    #expect(try f.balance("C-1") == 300)
    // A further top-up ends no episode: no second rebate.
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":3,"amount":100}"#).outcome == "applied")
    #expect(try entries(f, "C-1").filter { $0.hasPrefix("rebate") }.count == 1)
    let rebate = try f.store.db.query("SELECT ref FROM ledger WHERE kind = 'rebate'").first?.text(0)
    let first = try f.store.db.scalarInt("SELECT min(id) FROM ledger WHERE customer = 'C-1'")
    #expect(rebate == "rebate:\(first ?? 0)")
    // It goes up in class ledger and into the audit chain; everything reconciles.
    let uplink = try f.store.db.query("SELECT record FROM outbox WHERE class = 'ledger'").map {
      try jsonObject($0.text(0) ?? "")
    }.filter { $0["kind"] as? String == "rebate" }
    #expect(uplink.count == 1 && uplink.first?["amount_fen"] as? Int == 100)
    #expect(try Ledger.verify(f.store.db).isEmpty)
    #expect(try AuditChain.verify(f.store.db).problems.isEmpty)
  }

  @Test func theRebateIsCappedAndALateRepaymentEarnsNothing() throws {
    var f = try fixture("rebate-late")
    let wall = f.now * 1000
    // C-1: −50.00 repaid after an hour: 10 % = 5.00, capped at 1.50.
    try setBalance(f.store, "C-1", -5000, at: wall - 3_600_000)
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":1,"amount":5000}"#).outcome == "applied")
    #expect(try entries(f, "C-1").suffix(2) == ["topup 5000 0", "rebate 150 150"])
    // C-3: in arrears for two days: nothing.
    try setBalance(f.store, "C-3", -1000, at: wall - 2 * 86_400_000)
    #expect(try f.send("topup", #"{"customer":"C-3","purchase":1,"amount":2000}"#).outcome == "applied")
    #expect(try entries(f, "C-3").last == "topup 2000 1000")
    #expect(try Ledger.verify(f.store.db).isEmpty)
  }

  @Test func withoutPrepaidRebateNoRebateIsCredited() throws {
    var f = try LedgerTests.Fixture(
      "rebate-off", thresholds: try GradeThresholds(config: try relayConfig("prepaid.rebate_window = 86400")))
    #expect(try f.send("archive", relayArchive).outcome == "applied")
    try setBalance(f.store, "C-1", -1000, at: f.now * 1000 - 60_000)
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":1,"amount":2000}"#).outcome == "applied")
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM ledger WHERE kind = 'rebate'") == 0)
  }

  @Test func ledgerVerifyFindsARebateThatRepaidNoArrears() throws {
    var f = try fixture("rebate-forged")
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":1,"amount":1000}"#).outcome == "applied")
    try f.store.db.run(
      "INSERT INTO ledger (customer, ts, kind, amount_fen, balance_fen, ref, detail) VALUES ('C-1', 1, 'rebate', 500, 1500, 'x', '')"
    )
    try f.store.db.run("UPDATE accounts SET balance_fen = 1500 WHERE customer = 'C-1'")
    let problems = try Ledger.verify(f.store.db)
    #expect(
      problems.count == 1 && problems[0].contains("does not follow the repayment of arrears"), "\(problems)")
  }
}

import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Credit grades computed on the device from HQ's signed `config` model.
@Suite struct CreditTests {
  /// Score 1.0000, −0.1000 per day in arrears, −0.5000 per disconnection; A from 0.8,
  /// B from 0.5, C below.
  static func model(version: Int, intercept: String = "10000", boundaries: String = "[8000,5000]") -> String {
    #"{"credit":{"version":"# + String(version) + #","intercept":"# + intercept
      + #","coefficients":{"days_in_arrears":-1000,"topup_regularity":0,"consumption_volatility":0,"past_disconnects":-5000},"boundaries":"#
      + boundaries + "}}"
  }

  private func fixture(_ label: String) throws -> LedgerTests.Fixture {
    var f = try LedgerTests.Fixture(
      label,
      thresholds: try GradeThresholds(
        config: try relayConfig("prepaid.grades = C:overdraft=0/close_permit=1000")))
    #expect(try f.send("archive", relayArchive).outcome == "applied")
    return f
  }

  private func gradeChanges(_ f: LedgerTests.Fixture) throws -> [String] {
    try outboxEvents(f.store, "credit.grade_changed").map {
      "\($0["customer"] ?? "") \($0["old"] as? String ?? "-") \($0["new"] ?? "") \($0["score"] ?? "") v\($0["version"] ?? "")"
    }
  }

  private func grades(_ f: LedgerTests.Fixture) throws -> [String] {
    try f.store.db.query("SELECT customer, grade, score, model_version FROM credit_grades ORDER BY customer")
      .map {
        "\($0.text(0) ?? "") \($0.text(1) ?? "") \($0.int64(2) ?? 0) v\($0.int64(3) ?? 0)"
      }
  }

  @Test func aModelGradesEveryCustomerFromLocalHistoryAndReportsChanges() throws {
    var f = try fixture("credit-grades")
    let wall = f.now * 1000
    // C-3: below zero for the last 5 days (6 local days counting today) → 1.0 − 0.6 = 0.4 → C.
    try setBalance(f.store, "C-3", -500, at: wall - 5 * 86_400_000)
    // C-1: 3 days (4 closing balances) below zero → 0.6 → B.
    try setBalance(f.store, "C-1", -200, at: wall - 3 * 86_400_000)
    let applied = try f.send("config", Self.model(version: 1))
    #expect(applied.outcome == "applied", "\(applied)")
    #expect(try grades(f) == ["C-1 B 6000 v1", "C-2 A 10000 v1", "C-3 C 4000 v1"])
    // C-1 was A (archive), C-2 stays A (the archive's default), C-3 stays C: one event.
    #expect(try gradeChanges(f) == ["C-1 A B 6000 v1"])
    // Features are stored for inspection.
    #expect(try f.store.db.scalarInt("SELECT days_in_arrears FROM credit_grades WHERE customer = 'C-3'") == 6)

    // The device grade governs thresholds: C-1 is now B (prepaid.*), C-2 A.
    #expect(try GradeThresholds.grade(customer: "C-1", db: f.store.db) == "B")
    // C-3 tops up: a grade-C close-permit is 10.00; from the next assessment it is A.
    #expect(try f.send("topup", #"{"customer":"C-3","purchase":1,"amount":2000}"#).outcome == "applied")
    #expect(try f.send("config", Self.model(version: 2, intercept: "16000")).outcome == "applied")
    #expect(try grades(f) == ["C-1 A 12000 v2", "C-2 A 16000 v2", "C-3 A 11000 v2"])
    #expect(try gradeChanges(f).suffix(2) == ["C-1 B A 12000 v2", "C-3 C A 11000 v2"])
    #expect(try GradeThresholds.grade(customer: "C-3", db: f.store.db) == "A")
    #expect(
      try f.store.db.query("SELECT grade FROM archive_meters WHERE customer = 'C-3'").first?.text(0) == "C",
      "the archive's letter is left as HQ sent it")
  }

  @Test func theDailyAssessmentRunsOncePerLocalDayAfterItsTime() throws {
    var f = try fixture("credit-daily")
    let out = try Outbox(store: f.store)
    // No model yet: nothing to do.
    #expect(
      try Credit.assessIfDue(store: f.store, outbox: out, offset: .china, now: f.now * 1000, assessAt: 0)
        == nil)
    #expect(try f.send("config", Self.model(version: 1)).outcome == "applied")
    let wall = f.now * 1000  // 22:13:20 China time
    #expect(
      try Credit.assessIfDue(store: f.store, outbox: out, offset: .china, now: wall, assessAt: 23 * 3600)
        == nil, "not yet 23:00")
    // Three local days below zero: 0.7 → B.
    try setBalance(f.store, "C-2", -100, at: wall - 2 * 86_400_000)
    #expect(try Credit.assessIfDue(store: f.store, outbox: out, offset: .china, now: wall, assessAt: 0) == 1)
    #expect(try grades(f).contains("C-2 B 7000 v1"))
    #expect(
      try Credit.assessIfDue(store: f.store, outbox: out, offset: .china, now: wall + 60_000, assessAt: 0)
        == nil,
      "once a day")
    // The next local day: again (four days in arrears now, still B).
    #expect(
      try Credit.assessIfDue(
        store: f.store, outbox: out, offset: .china, now: wall + 86_400_000, assessAt: 0) == 0)
    #expect(try grades(f).contains("C-2 B 6000 v1"))
  }

  @Test(arguments: [
    (
      #"{"credit":{"version":2,"intercept":1.5,"coefficients":{"days_in_arrears":1,"topup_regularity":0,"consumption_volatility":0,"past_disconnects":0},"boundaries":[1]}}"#,
      "malformed", "credit.intercept must be an integer"
    ),
    (
      #"{"credit":{"version":2,"intercept":1,"coefficients":{"days_in_arrears":1,"topup_regularity":0,"consumption_volatility":0},"boundaries":[1]}}"#,
      "malformed", "needs \"past_disconnects\""
    ),
    (
      #"{"credit":{"version":2,"intercept":1,"coefficients":{"days_in_arrears":1,"topup_regularity":0,"consumption_volatility":0,"past_disconnects":0,"age":3},"boundaries":[1]}}"#,
      "malformed", "unknown coefficient \"age\""
    ),
    (
      #"{"credit":{"version":2,"intercept":1,"coefficients":{"days_in_arrears":"1","topup_regularity":0,"consumption_volatility":0,"past_disconnects":0},"boundaries":[1]}}"#,
      "malformed", "days_in_arrears must be an integer"
    ),
    (CreditTests.model(version: 2, boundaries: "[5000,8000]"), "malformed", "not strictly decreasing"),
    (CreditTests.model(version: 2, boundaries: "[]"), "malformed", "1 to 25 integers"),
    (CreditTests.model(version: 2, boundaries: "[8000,\"x\"]"), "malformed", "integers only"),
    (#"{"credit":{"intercept":1,"coefficients":{},"boundaries":[1]}}"#, "malformed", "needs credit.version"),
    (#"{"tariff":{}}"#, "unsupported", "config section \"tariff\""),
    (CreditTests.model(version: 1), "stale-version", "not above the one in force (1)"),
    (CreditTests.model(version: 0), "malformed", "needs credit.version"),
  ])
  func aMalformedOrOutOfOrderModelIsRefusedAndChangesNothing(body: String, reason: String, detail: String)
    throws
  {
    var f = try fixture("credit-refused")
    #expect(try f.send("config", Self.model(version: 1)).outcome == "applied")
    let before = try grades(f)
    let events = try gradeChanges(f)
    let outcome = try f.send("config", body)
    #expect(outcome.outcome == "rejected" && outcome.reason == reason, "\(outcome)")
    #expect(outcome.detail.contains(detail), "\(outcome.detail)")
    #expect(try f.store.db.scalarInt("SELECT version FROM credit_model") == 1)
    #expect(try grades(f) == before)
    #expect(try gradeChanges(f) == events)
  }
}

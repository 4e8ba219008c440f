import DLT645
import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// `prepaid.grades`: thresholds per credit grade, used for each customer's own grade.
@Suite struct GradeThresholdsTests {
  /// Grade C: alarms at 30.00 / 15.00 CNY, no overdraft, reconnect from 10.00 CNY,
  /// hoarding at 100.00 CNY. Other grades: prepaid.* (overdraft −10.00 CNY).
  static let gradeC = "C:alarm1=3000/alarm2=1500/overdraft=0/close_permit=1000/hoarding=10000"

  private func thresholds(_ grades: String = gradeC) throws -> GradeThresholds {
    try GradeThresholds(config: try relayConfig("prepaid.grades = " + grades))
  }

  @Test func gradesOverrideTheirFieldsAndUnlistedOnesKeepPrepaid() throws {
    let t = try thresholds(Self.gradeC + ",A:overdraft=-5000")
    #expect(t.thresholds(grade: "C").overdraftLimit == .zero)
    #expect(t.thresholds(grade: "C").alarm1 == Money(fen: 3000))
    #expect(t.thresholds(grade: "C").hoardingLimit == Money(fen: 10_000))
    #expect(t.thresholds(grade: "A").overdraftLimit == Money(fen: -5000))
    #expect(t.thresholds(grade: "A").alarm1 == Money(fen: 2000), "unlisted fields keep prepaid.alarm1")
    #expect(t.thresholds(grade: "B") == t.base)
    #expect(t.thresholds(grade: nil).overdraftLimit == Money(fen: -1000))
    let unset = try GradeThresholds(config: try relayConfig())
    #expect(unset.byGrade.isEmpty && unset.json == "{}")
  }

  @Test(arguments: [
    ("C:alarm1=3000,C:alarm2=100", "grade C is listed twice"),
    ("C:alarm3=1", "unknown field 'alarm3'"),
    ("C:alarm1=x", "expected FIELD=FEN"),
    ("C", "expected GRADE:FIELD=FEN"),
    ("C:overdraft=100", "overdraft limit above zero"),
    ("C:alarm1=100/alarm2=200", "alarm 1 below alarm 2"),
    ("C\"x:alarm1=100", "is not one"),
  ])
  func badGradesAreRefusedAtLoadNamingKeyAndLine(grades: String, message: String) throws {
    let text = "device.id = TA-G-1\nprepaid.alarm1 = 2000\nprepaid.grades = " + grades + "\n"
    do {
      _ = try Config.parse(text, file: "grades.conf")
      Issue.record("accepted prepaid.grades = \(grades)")
    } catch {
      #expect(error.description.contains("grades.conf:3"), "\(error)")
      #expect(error.description.contains("prepaid.grades"), "\(error)")
      #expect(error.description.contains(message), "\(error)")
    }
  }

  @Test func aGradeCCustomerIsCutAtItsOwnOverdraftLimitWhereGradeAIsNot() throws {
    let f = try ReadingsFixture("grades-relay")
    try installRelayArchive(f.store)
    let relay = RelayControl(
      store: f.store, outbox: f.outbox, thresholds: try thresholds(),
      settings: try RelaySettings(config: try relayConfig()), acquisition: nil)
    let t0 = RelayDecisionTests.t0
    // −5.00 CNY: within grade A's (prepaid.*) overdraft of −10.00, beyond grade C's 0.
    try setBalance(f.store, "C-1", -500, at: t0)
    try setBalance(f.store, "C-3", -500, at: t0)
    relay.evaluate(wall: t0 + 1000)
    #expect(try relayRow(f.store, "000000000003") == ["open", "overdraft", "pending"])
    #expect(try relayRow(f.store, "000000000001") == nil)
    // A top-up to 5.00 CNY would reconnect grade A (close-permit 0) but not grade C (10.00).
    try f.store.db.run("UPDATE relay SET state = 'done' WHERE meter = '000000000003'")
    try setBalance(f.store, "C-3", 500, at: t0 + 2000)
    relay.evaluate(wall: t0 + 3000)
    #expect(try relayRow(f.store, "000000000003")?[0] == "open")
    try setBalance(f.store, "C-3", 1000, at: t0 + 4000)
    relay.evaluate(wall: t0 + 5000)
    #expect(try relayRow(f.store, "000000000003")?[0] == "closed")
    // Grade A goes beyond its own limit only below −10.00 CNY.
    try setBalance(f.store, "C-1", -1001, at: t0 + 6000)
    relay.evaluate(wall: t0 + 7000)
    #expect(try relayRow(f.store, "000000000001") == ["open", "overdraft", "pending"])
  }

  @Test func billingAlarmsAndTheHoardingLimitFollowTheCustomersGrade() throws {
    var f = try LedgerTests.Fixture("grades-billing", thresholds: try thresholds())
    let store = f.store
    let outbox = try Outbox(store: store)
    let now = f.now
    func send(_ type: String, _ body: String) throws -> CommandHandler.Outcome { try f.send(type, body) }
    #expect(try send("archive", relayArchive).outcome == "applied")
    #expect(
      try send(
        "tariff", #"{"id":"RES-2026","category":"residential","effective_from":"2026-01-01","flat":10000}"#
      ).outcome == "applied")
    // Hoarding: grade C may hold 100.00 CNY at most, grade A 5,000.00.
    let over = try send("topup", #"{"customer":"C-3","purchase":1,"amount":10001}"#)
    #expect(over.outcome == "rejected" && over.reason == "over-hoarding-limit", "\(over)")
    #expect(try send("topup", #"{"customer":"C-3","purchase":1,"amount":4000}"#).outcome == "applied")
    #expect(try send("topup", #"{"customer":"C-1","purchase":1,"amount":10001}"#).outcome == "applied")
    try setBalance(store, "C-1", 4000, at: now * 1000)
    // The same 30.00 CNY of energy from 40.00: grade C crosses its alarms at 30 and 15,
    // grade A only its alarm 1 at 20 (its alarm 2 is at 5).
    let t0 = BillingTests.t0
    func read(_ meter: String, _ ts: Int64, _ wh: Int64) throws {
      _ = try Readings(store: store, outbox: outbox).store(
        [
          Reading(
            meter: Address(meter)!, identifier: .forwardActiveBlock, timestamp: ts, value: wh, tariffs: [],
            quality: .measured, readAt: ts)
        ], now: ts)
    }
    for meter in ["000000000001", "000000000003"] { try read(meter, t0, 0) }
    _ = try Billing.run(store: store, outbox: outbox, offset: .china, now: t0, thresholds: try thresholds())
    for meter in ["000000000001", "000000000003"] { try read(meter, t0 + 900_000, 30_000) }
    let pass = try Billing.run(
      store: store, outbox: outbox, offset: .china, now: t0 + 900_000, thresholds: try thresholds())
    #expect(pass.charged == 2)
    let crossings = try outboxEvents(store, "prepaid.threshold").filter {
      $0["direction"] as? String == "down"
    }
    .map {
      "\($0["customer"] ?? "") \($0["threshold"] ?? "") \($0["level_fen"] ?? "")"
    }
    #expect(crossings == ["C-1 alarm1 2000", "C-3 alarm1 3000", "C-3 alarm2 1500"])
  }
}

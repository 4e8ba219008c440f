import DLT645
import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Real-time fee calculation: readings in the cache, tariffs and the archive from
/// signed commands, charges in the ledger.
@Suite struct BillingTests {
  // 2026-11-20 00:00 China time = 2026-11-19T16:00Z.
  static let t0: Int64 = 1_795_622_400_000
  static let quarter: Int64 = 900_000

  static let archive = #"""
    {"op":"snapshot","version":1,"meters":[
      {"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential"},
      {"address":"000000000002","customer":"C-2","area":"TA-1","category":"commercial"},
      {"address":"000000009999","customer":"AREA","area":"TA-1","category":"area","area_meter":true}]}
    """#

  private func store(
    _ f: LedgerTests.Fixture, _ meter: String, at ts: Int64, _ wh: Int64, registers: [Int64] = [],
    quality: ReadingQuality = .measured
  )
    throws
  {
    let readings = try Readings(store: f.store, outbox: try Outbox(store: f.store))
    _ = try readings.store(
      [
        Reading(
          meter: Address(meter)!, identifier: .forwardActiveBlock, timestamp: ts, value: wh,
          tariffs: registers,
          quality: quality, readAt: ts)
      ], now: ts)
  }

  private func bill(_ f: LedgerTests.Fixture) throws -> Billing.Pass {
    try Billing.run(store: f.store, outbox: try Outbox(store: f.store), offset: .china, now: Self.t0)
  }

  /// A fresh ledger with the archive and a flat residential tariff of 0.5000 CNY/kWh.
  private func flatTariffFixture(_ label: String) throws -> LedgerTests.Fixture {
    var f = try LedgerTests.Fixture(label)
    #expect(try f.send("archive", Self.archive).outcome == "applied")
    let tariff = try f.send(
      "tariff", #"{"id":"RES-2026","category":"residential","effective_from":"2026-01-01","flat":5000}"#)
    #expect(tariff.outcome == "applied", "\(tariff)")
    return f
  }

  @Test func eachReadingIntervalIsChargedOnceAtTheCategorysTariff() throws {
    var f = try flatTariffFixture("billing-flat")
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":1,"amount":10000}"#).outcome == "applied")

    try store(f, "000000000001", at: Self.t0, 1_000_000)
    try store(f, "000000009999", at: Self.t0, 50_000_000)
    #expect(try bill(f) == Billing.Pass(charged: 0, unpriced: 0, baselines: 1, money: .zero))
    // 1.5 kWh at 0.5000 CNY/kWh = 0.75 CNY = 75 fen.
    try store(f, "000000000001", at: Self.t0 + Self.quarter, 1_001_500)
    var pass = try bill(f)
    #expect(pass.charged == 1 && pass.money == Money(fen: 75))
    #expect(try f.balance("C-1") == 10_000 - 75)
    // Nothing new: nothing charged again.
    #expect(try bill(f).charged == 0)
    #expect(try f.balance("C-1") == 9_925)
    // 0.01 kWh = 10 Wh at 0.5 CNY/kWh = 0.5 fen, rounded half-up to 1 fen.
    try store(f, "000000000001", at: Self.t0 + 2 * Self.quarter, 1_001_510)
    pass = try bill(f)
    #expect(pass.money == Money(fen: 1))
    #expect(try f.balance("C-1") == 9_924)
    let entry = try f.store.db.query(
      "SELECT kind, amount_fen, balance_fen, ref FROM ledger WHERE kind = 'charge' ORDER BY id")
    #expect(entry.count == 2)
    #expect(
      entry[0].values == [
        .text("charge"), .integer(-75), .integer(9_925),
        .text("reading:000000000001:\(Self.t0 + Self.quarter)"),
      ])
    #expect(try Ledger.verify(f.store.db).isEmpty)
    #expect(try AuditChain.verify(f.store.db).problems.isEmpty)
    // The area meter is never billed; the charges went upstream in class ledger.
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM ledger WHERE customer = 'AREA'") == 0)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM outbox WHERE class = 'ledger'") == 3)
  }

  @Test func clockSuspectReadingAYearAheadIsNotChargedAndLaterReadingsAre() throws {
    let f = try flatTariffFixture("billing-clock")
    try store(f, "000000000001", at: Self.t0, 1_000_000)
    _ = try bill(f)
    // This device's clock jumped a year ahead: the slot it read is a year off.
    let year: Int64 = 365 * 86_400_000
    try store(f, "000000000001", at: Self.t0 + year, 1_000_500, quality: .clockSuspect)
    #expect(try bill(f).charged == 0)
    // The clock is right again: the energy since the last good reading is charged once,
    // at the tariff of its own time (1.5 kWh, 75 fen), and so is the next.
    try store(f, "000000000001", at: Self.t0 + Self.quarter, 1_001_500)
    let pass = try bill(f)
    #expect(pass.charged == 1 && pass.money == Money(fen: 75))
    try store(f, "000000000001", at: Self.t0 + 2 * Self.quarter, 1_003_500)
    #expect(try bill(f).money == Money(fen: 100))
    #expect(try f.balance("C-1") == -175)
    #expect(try Ledger.verify(f.store.db).isEmpty)
  }

  @Test func energyWithoutATariffIsChargedOnceOneArrivesPerTimeOfUseRegister() throws {
    var f = try LedgerTests.Fixture("billing-tou")
    #expect(try f.send("archive", Self.archive).outcome == "applied")
    // Registers [sharp, peak, flat, valley] in Wh.
    try store(f, "000000000002", at: Self.t0, 400_000, registers: [100_000, 100_000, 100_000, 100_000])
    _ = try bill(f)
    try store(
      f, "000000000002", at: Self.t0 + Self.quarter, 403_000, registers: [100_000, 102_000, 100_000, 101_000])
    var pass = try bill(f)
    #expect(pass.unpriced == 1 && pass.charged == 0)
    #expect(try f.balance("C-2") == 0)
    let tou = #"""
      {"id":"COM-2026","category":"commercial","effective_from":"2026-01-01",
       "tou":{"switches":[["00:00","valley"],["08:00","peak"],["22:00","valley"]],
              "prices":{"sharp":12000,"peak":9000,"flat":6000,"valley":3000}}}
      """#
    #expect(try f.send("tariff", tou).outcome == "applied")
    #expect(try f.send("tariff", tou).reason == "duplicate")
    #expect(
      try f.send("tariff", #"{"id":"X","category":"commercial","effective_from":"2026-13-01","flat":1}"#)
        .reason == "malformed")
    // Still the first base: 2 kWh peak at 0.9 + 1 kWh valley at 0.3 = 1.80 + 0.30 = 2.10 CNY.
    try store(
      f, "000000000002", at: Self.t0 + 2 * Self.quarter, 403_000,
      registers: [100_000, 102_000, 100_000, 101_000])
    // (Both intervals are charged now: the energy up to the unpriced reading, then none.)
    pass = try bill(f)
    #expect(pass.charged == 2, "\(pass)")
    #expect(pass.money == Money(fen: 210))
    #expect(try f.balance("C-2") == -210)
    // A replaced meter (lower register) starts a new base; nothing negative is charged.
    try store(f, "000000000002", at: Self.t0 + 3 * Self.quarter, 10, registers: [0, 10, 0, 0])
    pass = try bill(f)
    #expect(pass.charged == 0 && pass.baselines == 1)
    #expect(try f.balance("C-2") == -210)
    #expect(try Ledger.verify(f.store.db).isEmpty)
  }

  @Test func chargesThatCrossThresholdsRaiseEventsForHQ() throws {
    var f = try LedgerTests.Fixture("billing-alarms")
    #expect(try f.send("archive", Self.archive).outcome == "applied")
    #expect(
      try f.send(
        "tariff", #"{"id":"RES-2026","category":"residential","effective_from":"2026-01-01","flat":10000}"#
      )
      .outcome == "applied")
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":1,"amount":3000}"#).outcome == "applied")
    let thresholds = try PrepaidThresholds(
      alarm1: Money(fen: 2000), alarm2: Money(fen: 500), overdraftLimit: Money(fen: -1000),
      closePermit: Money(fen: 0), hoardingLimit: Money(fen: 500_000))
    func charge(_ at: Int64, _ wh: Int64) throws {
      try store(f, "000000000001", at: at, wh)
      _ = try Billing.run(
        store: f.store, outbox: try Outbox(store: f.store), offset: .china, now: at,
        thresholds: GradeThresholds(base: thresholds))
    }
    // 1.00 CNY/kWh: 15 kWh = 15.00 CNY = 1,500 fen, then 12.00, then 5.00, then 10.00.
    try charge(Self.t0, 0)
    try charge(Self.t0 + Self.quarter, 15_000)
    try charge(Self.t0 + 2 * Self.quarter, 27_000)
    try charge(Self.t0 + 3 * Self.quarter, 32_000)
    try charge(Self.t0 + 4 * Self.quarter, 42_000)
    #expect(try f.balance("C-1") == 3000 - 1500 - 1200 - 500 - 1000)
    let events = try f.store.db.query(
      """
      SELECT json_extract(record, '$.threshold'), json_extract(record, '$.direction'),
        json_extract(record, '$.balance_fen') FROM outbox
      WHERE class = 'events' AND json_extract(record, '$.type') = 'prepaid.threshold' ORDER BY id
      """
    ).map { "\($0.text(0) ?? "") \($0.text(1) ?? "") \($0.int64(2) ?? 0)" }
    #expect(
      events == [
        "alarm1 down 1500", "alarm2 down 300", "exhausted down -200", "close-permit down -200",
        "overdraft-limit down -1200",
      ]
        || events == [
          "alarm1 down 1500", "alarm2 down 300", "close-permit down -200", "exhausted down -200",
          "overdraft-limit down -1200",
        ], "\(events)")
  }

  @Test func readingsOfASlotStoredAfterAPassAreStillCharged() throws {
    var f = try LedgerTests.Fixture("billing-late")
    let archive = #"""
      {"op":"snapshot","version":1,"meters":[
        {"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential"},
        {"address":"000000000003","customer":"C-3","area":"TA-1","category":"residential"}]}
      """#
    #expect(try f.send("archive", archive).outcome == "applied")
    #expect(
      try f.send(
        "tariff", #"{"id":"RES-2026","category":"residential","effective_from":"2026-01-01","flat":10000}"#
      )
      .outcome == "applied")
    try store(f, "000000000001", at: Self.t0, 0)
    try store(f, "000000000003", at: Self.t0, 0)
    _ = try bill(f)
    // A cycle in progress: meter 1 is read, a pass runs, then meter 3 of the same slot.
    try store(f, "000000000001", at: Self.t0 + Self.quarter, 1_000)
    #expect(try bill(f).charged == 1)
    try store(f, "000000000003", at: Self.t0 + Self.quarter, 2_000)
    let late = try bill(f)
    #expect(late.charged == 1 && late.money == Money(fen: 200), "\(late)")
    #expect(try bill(f).charged == 0)
    #expect(try f.balance("C-1") == -100)
    #expect(try f.balance("C-3") == -200)
  }
}

import DLT645
import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Archive edits through signed commands on a real SQLite file: change and meter
/// replacement (op `replace`), with billing continuing across the swap.
@Suite struct ArchiveReplacementTests {
  static let t0 = BillingTests.t0
  static let quarter = BillingTests.quarter
  static let swapAt = t0 + quarter + 300_000

  private func store(_ f: LedgerTests.Fixture, _ meter: String, at ts: Int64, _ wh: Int64) throws {
    let readings = try Readings(store: f.store, outbox: try Outbox(store: f.store))
    _ = try readings.store(
      [
        Reading(
          meter: Address(meter)!, identifier: .forwardActiveBlock, timestamp: ts, value: wh, tariffs: [],
          quality: .measured, readAt: ts)
      ], now: ts)
  }

  private func bill(_ f: LedgerTests.Fixture) throws -> Billing.Pass {
    try Billing.run(store: f.store, outbox: try Outbox(store: f.store), offset: .china, now: Self.t0)
  }

  private func replaceBody(
    version: Int, old: String = "000000000001", new: String = #"{"address":"000000000101","baud":9600}"#,
    oldFinal: Int64 = 1_003_000, newInitial: Int64 = 500, at: Int64 = swapAt
  ) -> String {
    #"{"op":"replace","version":\#(version),"old":"\#(old)","new":\#(new),"old_final_wh":\#(oldFinal),"#
      + #""new_initial_wh":\#(newInitial),"at":\#(at)}"#
  }

  /// The archive as (address, customer, baud) rows, and its version.
  private func archive(_ f: LedgerTests.Fixture) throws -> ([[SQLiteValue]], Int64) {
    (
      try f.store.db.query("SELECT address, customer, baud FROM archive_meters ORDER BY address").map {
        $0.values
      },
      try Archive.version(f.store.db)
    )
  }

  @Test func ledgerAcrossAMeterSwapEqualsTheEnergyConsumedTimesThePrice() throws {
    var f = try LedgerTests.Fixture("archive-replace")
    #expect(try f.send("archive", BillingTests.archive).outcome == "applied")
    let tariff = try f.send(
      "tariff", #"{"id":"RES-2026","category":"residential","effective_from":"2026-01-01","flat":5000}"#)
    #expect(tariff.outcome == "applied", "\(tariff)")
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":1,"amount":10000}"#).outcome == "applied")
    // A change (version 2) is applied and visible.
    let change = try f.send(
      "archive",
      #"{"op":"change","version":2,"meters":[{"address":"000000000001","customer":"C-1","area":"TA-1","#
        + #""category":"residential","baud":4800}]}"#)
    #expect(change.outcome == "applied", "\(change)")
    #expect(
      try f.store.db.scalarInt("SELECT baud FROM archive_meters WHERE address = '000000000001'") == 4800)

    // The old meter: base 1 000 000 Wh, then 2 kWh.
    try store(f, "000000000001", at: Self.t0, 1_000_000)
    try store(f, "000000000001", at: Self.t0 + Self.quarter, 1_002_000)
    _ = try bill(f)
    // Another meter read later moves billing's cursor past the swap time.
    try store(f, "000000000002", at: Self.t0 + 2 * Self.quarter, 400_000)
    _ = try bill(f)
    #expect(try f.balance("C-1") == 10_000 - 100)

    // The swap (after 1 more kWh on the old meter); the new meter starts at 500 Wh.
    let replaced = try f.send("archive", replaceBody(version: 3))
    #expect(replaced.outcome == "applied", "\(replaced)")
    let (meters, version) = try archive(f)
    #expect(version == 3)
    #expect(
      meters == [
        [.text("000000000002"), .text("C-2"), .integer(2400)],
        [.text("000000000101"), .text("C-1"), .integer(9600)],
        [.text("000000009999"), .text("AREA"), .integer(2400)],
      ])
    // The new meter: 2 kWh after its initial reading.
    try store(f, "000000000101", at: Self.t0 + 2 * Self.quarter, 2_500)
    _ = try bill(f)
    #expect(try bill(f).charged == 0, "nothing is charged twice")

    // 2 + 1 + 2 kWh consumed at 0.5000 CNY/kWh = 2.50 CNY, no jump at the swap.
    let charged = try f.store.db.scalarInt(
      "SELECT -sum(amount_fen) FROM ledger WHERE customer = 'C-1' AND kind = 'charge'")
    #expect(charged == 250)
    #expect(try f.balance("C-1") == 10_000 - 250)
    let refs = try f.store.db.query(
      "SELECT ref FROM ledger WHERE customer = 'C-1' AND kind = 'charge' ORDER BY id"
    )
    .compactMap { $0.text(0) }
    #expect(
      refs == [
        "reading:000000000001:\(Self.t0 + Self.quarter)", "reading:000000000001:\(Self.swapAt)",
        "reading:000000000101:\(Self.t0 + 2 * Self.quarter)",
      ])
    // The reading history of both meters is kept.
    #expect(
      try f.store.db.query(
        "SELECT meter, ts, value FROM readings WHERE ts = ?1 ORDER BY meter",
        [
          .integer(Self.swapAt)
        ]
      ).map { $0.values } == [
        [.text("000000000001"), .integer(Self.swapAt), .integer(1_003_000)],
        [.text("000000000101"), .integer(Self.swapAt), .integer(500)],
      ])
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM readings WHERE meter = '000000000001'") == 3)
    #expect(try Ledger.verify(f.store.db).isEmpty)
    // The old meter is no longer billed, even if a late reading of it turned up.
    try store(f, "000000000001", at: Self.t0 + 3 * Self.quarter, 1_009_000)
    #expect(try bill(f).charged == 0)
    #expect(try f.balance("C-1") == 10_000 - 250)
  }

  @Test func badOrOutOfOrderReplacementsAreRefusedWithAReasonAndChangeNothing() throws {
    var f = try LedgerTests.Fixture("archive-replace-refused")
    #expect(try f.send("archive", BillingTests.archive).outcome == "applied")
    try store(f, "000000000001", at: Self.t0 + Self.quarter, 1_002_000)
    let before = try archive(f)
    let readingsBefore = try f.store.db.scalarInt("SELECT count(*) FROM readings")
    let cases: [(String, String, String)] = [
      (replaceBody(version: 3), "version-gap", "current version + 1 (2)"),
      (replaceBody(version: 1), "version-gap", "current version + 1 (2)"),
      (replaceBody(version: 2, old: "000000000077"), "conflict", "000000000077 is not in the archive"),
      (replaceBody(version: 2, new: #"{"address":"000000000002"}"#), "conflict", "already in the archive"),
      (replaceBody(version: 2, at: Self.t0), "conflict", "not after the old meter's last reading"),
      (replaceBody(version: 2, oldFinal: 1_001_000), "conflict", "below the old meter's last reading"),
      (replaceBody(version: 2, new: #"{"address":"12"}"#), "malformed", "12-digit \"address\""),
      (replaceBody(version: 2, new: #"{"address":"000000000101","baud":300}"#), "malformed", "baud"),
      (replaceBody(version: 2, oldFinal: -1), "malformed", "non-negative"),
      (#"{"op":"replace","version":2,"old":"000000000001"}"#, "malformed", "\"new\" must be an object"),
    ]
    for (body, reason, detail) in cases {
      let outcome = try f.send("archive", body)
      #expect(outcome.outcome == "rejected" && outcome.reason == reason, "\(body): \(outcome)")
      #expect(outcome.detail.contains(detail), "\(body): \(outcome.detail)")
    }
    #expect(try archive(f) == before)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM readings") == readingsBefore)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM meter_replacements") == 0)
  }
}

import DLT645
import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// The balance on a real database with the topology of each day (archive commands with
/// `effective`), across a meter replacement (with the customer's ledger), and with the
/// energy-while-open rule fed from the relay control's own tables.
@Suite struct TopologyBalanceTests {
  static let day: Int64 = 86_400_000

  /// Local midnight (China) of 2026-01-01 + `i` days.
  static func midnight(_ i: Int64) -> Int64 { newYear + i * day }

  /// 2026-01-01 + `i` days.
  static func date(_ i: Int64) -> CivilDate { CivilDate(daysSinceEpoch: newYear / day + i + 1) }

  /// Stores daily freezes (7 s after local midnight of `days`) and, with `realtime`,
  /// real-time readings at local midnight, of `meter` reading `register(i)`.
  static func store(
    _ store: AgentStore, _ meter: String, days: ClosedRange<Int64>, realtime: ClosedRange<Int64>? = nil,
    register: (Int64) -> Int64
  ) throws {
    let readings = try Readings(store: store, outbox: try Outbox(store: store))
    var batch: [Reading] = []
    for i in days {
      batch.append(
        Reading(
          meter: Address(meter)!, identifier: .lastDailyFreezeForwardActive, timestamp: midnight(i) + 7_000,
          value: register(i), quality: .measured, readAt: midnight(i) + 300_000))
    }
    for i in realtime.map(Array.init) ?? [] {
      batch.append(
        Reading(
          meter: Address(meter)!, identifier: .forwardActiveBlock, timestamp: midnight(i), value: register(i),
          tariffs: [], quality: .measured, readAt: midnight(i) + 60_000))
    }
    _ = try readings.store(batch, now: midnight(days.upperBound))
  }

  /// The energy of `meter` in `balance`'s input.
  static func energy(_ result: Balance.Result, _ meter: String) -> Int64? {
    result.input.customers.first { $0.meter == meter }?.energy?.wattHours
  }

  // MARK: - Topology with effective dates

  static let twoAreas = #"""
    {"op":"snapshot","version":1,"meters":[
      {"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential"},
      {"address":"000000000002","customer":"C-2","area":"TA-1","category":"residential"},
      {"address":"000000000003","customer":"C-3","area":"TA-1","phase":"C","category":"residential"},
      {"address":"000000009991","customer":"AREA-1","area":"TA-1","phase":"ABC","ct":10,"category":"area","area_meter":true},
      {"address":"000000000011","customer":"C-11","area":"TA-2","category":"residential"},
      {"address":"000000000012","customer":"C-12","area":"TA-2","category":"residential"},
      {"address":"000000009992","customer":"AREA-2","area":"TA-2","phase":"ABC","ct":10,"category":"area","area_meter":true}]}
    """#

  @Test func aMeterMovedToAnotherAreaCountsInTheOldAreaBeforeItsEffectiveDayAndInTheNewFrom() throws {
    var f = try LedgerTests.Fixture("topology-move")
    #expect(try f.send("archive", Self.twoAreas).outcome == "applied")
    // Wh a day; meter 03 moves from TA-1 to TA-2 on 2026-01-05 (day index 4). The area
    // meters (CT 10) register their customers' energy + 5 % loss.
    let daily: [String: Int64] = [
      "000000000001": 10_000, "000000000002": 10_000, "000000000003": 6_000, "000000000011": 8_000,
      "000000000012": 8_000,
    ]
    let moveDay: Int64 = 4
    func customers(_ area: String, _ i: Int64) -> [String] {
      let base = area == "TA-1" ? ["000000000001", "000000000002"] : ["000000000011", "000000000012"]
      let withMoved = (area == "TA-1") == (i < moveDay)
      return (base + (withMoved ? ["000000000003"] : [])).sorted()
    }
    func sold(_ area: String, _ i: Int64) -> Int64 { customers(area, i).map { daily[$0]! }.reduce(0, +) }
    for (meter, energy) in daily {
      try Self.store(f.store, meter, days: 0...8) { 1_000_000 + $0 * energy }
    }
    for (meter, area) in [("000000009991", "TA-1"), ("000000009992", "TA-2")] {
      try Self.store(f.store, meter, days: 0...8) { i in
        (0..<i).map { sold(area, $0) * 105 / 100 / 10 }.reduce(500_000, +)
      }
    }
    let bad = try f.send(
      "archive",
      #"{"op":"change","version":2,"effective":"2026-02-30","meters":[{"address":"000000000003","#
        + #""customer":"C-3","area":"TA-2","phase":"B","category":"residential"}]}"#)
    #expect(bad.outcome == "rejected" && bad.reason == "malformed", "\(bad)")
    let move = try f.send(
      "archive",
      #"{"op":"change","version":2,"effective":"2026-01-05","meters":[{"address":"000000000003","#
        + #""customer":"C-3","area":"TA-2","phase":"B","category":"residential"}]}"#)
    #expect(move.outcome == "applied", "\(move)")
    let rows = try f.store.db.query(
      "SELECT effective_day, area, phase FROM topology WHERE meter = '000000000003' ORDER BY effective_day"
    ).map { $0.values }
    #expect(
      rows == [
        [.integer(Topology.beginning), .text("TA-1"), .text("C")],
        [.integer(Self.date(moveDay).daysSinceEpoch), .text("TA-2"), .text("B")],
      ])

    for i in Int64(1)...7 {
      for area in ["TA-1", "TA-2"] {
        let result = try Balance.compute(db: f.store.db, area: area, day: Self.date(i), offset: .china)
        let b = result.balance
        #expect(result.input.customers.map(\.meter) == customers(area, i), "\(area) \(Self.date(i).isoText)")
        #expect(b.sold.wattHours == sold(area, i), "\(area) \(Self.date(i).isoText)")
        #expect(b.supplied?.wattHours == sold(area, i) * 105 / 100, "\(area) \(Self.date(i).isoText)")
        #expect(b.lossRateBasisPoints == 476, "\(area) \(Self.date(i).isoText)")
        #expect(b.flags.isEmpty && b.suspects.isEmpty, "\(area) \(Self.date(i).isoText): \(b.suspects)")
      }
    }
    // The moved meter keeps its own history in its new area.
    let after = try Balance.compute(db: f.store.db, area: "TA-2", day: Self.date(moveDay), offset: .china)
    #expect(
      after.input.customers.first { $0.meter == "000000000003" }?.history
        == Array(repeating: Energy(wattHours: 6_000), count: Int(moveDay)))

    // A change without a date holds from the local day it is applied (the fixture's
    // clock, months later): January keeps the dated topology.
    let back = try f.send(
      "archive",
      #"{"op":"change","version":3,"meters":[{"address":"000000000003","customer":"C-3","area":"TA-1","#
        + #""phase":"C","category":"residential"}]}"#)
    #expect(back.outcome == "applied", "\(back)")
    #expect(
      try f.store.db.scalarInt("SELECT max(effective_day) FROM topology WHERE meter = '000000000003'")
        == Archive.localDay(f.now * 1000, .china))
    let january = try Balance.compute(db: f.store.db, area: "TA-2", day: Self.date(6), offset: .china)
    #expect(january.input.customers.map(\.meter) == customers("TA-2", 6))
    #expect(try Topology.areas(f.store.db, day: Self.date(6).daysSinceEpoch) == ["TA-1", "TA-2"])

    // `gridedge archive` shows the meter's dated topology.
    let dir = URL(fileURLWithPath: f.store.db.path).deletingLastPathComponent()
    let config = dir.appendingPathComponent("agent.conf").path
    try "device.id = TA-L-1\nstore.path = \(f.store.db.path)\n".write(
      toFile: config, atomically: true, encoding: .utf8)
    let shown = try runProduct("gridedge", ["archive", "--config", config, "--json"], in: dir)
    #expect(shown.status == 0, "\(shown.stderr)")
    let meters = try #require(try jsonObject(shown.stdout)["meters"] as? [[String: Any]])
    let moved = try #require(
      meters.first { $0["address"] as? String == "000000000003" }?["topology"] as? [[String: Any]])
    let today = CivilDate(daysSinceEpoch: Archive.localDay(f.now * 1000, .china)).isoText
    #expect(moved.map { $0["from"] as? String } == [nil, Self.date(moveDay).isoText, today])
    #expect(moved.map { $0["area"] as? String } == ["TA-1", "TA-2", "TA-1"])
    #expect(moved.map { $0["phase"] as? String } == ["C", "B", "C"])
    let text = try runProduct("gridedge", ["archive", "--config", config], in: dir)
    #expect(
      text.stdout.contains("  000000000003  from \(Self.date(moveDay).isoText)  area TA-2, phase B, CT 1"),
      "\(text.stdout)")
  }

  @Test func aDatabaseFromBeforeTheTopologyKeepsItsAreasForEveryEarlierDay() throws {
    let dir = try makeTemporaryDirectory("topology-migrate")
    let path = dir.appendingPathComponent("agent.db").path
    // A database as migration 13 left it, with an archive of area TA-1.
    do {
      let db = try Connection(path: path)
      _ = try Migrator(Array(AgentStore.migrations.prefix(13))).migrate(db)
      try db.run(
        "INSERT INTO device (singleton, device_id, store_id, created_at) VALUES (1, 'TA-1', '00000000000000cd', 0)"
      )
      for (address, customer, ct, areaMeter) in [
        ("000000000001", "C-1", 1, 0), ("000000000002", "C-2", 5, 0), ("000000009999", "AREA", 20, 1),
      ] {
        try db.run(
          """
          INSERT INTO archive_meters (address, customer, area, phase, ct_ratio, category, grade, keep_power,
            outage_sensitive, bus, baud, area_meter, updated_at)
          VALUES (?1, ?2, 'TA-1', 'A', ?3, 'residential', 'A', 0, 0, '1', 2400, ?4, 0)
          """, [.text(address), .text(customer), .integer(Int64(ct)), .integer(Int64(areaMeter))])
      }
      try db.run("UPDATE archive_state SET version = 4")
      db.close()
    }
    let store = try AgentStore(path: path, deviceID: "TA-1", now: 0)
    #expect(
      try store.db.query("SELECT meter, effective_day, area, ct_ratio, version FROM topology ORDER BY meter")
        .map { $0.values } == [
          [.text("000000000001"), .integer(Topology.beginning), .text("TA-1"), .integer(1), .integer(4)],
          [.text("000000000002"), .integer(Topology.beginning), .text("TA-1"), .integer(5), .integer(4)],
          [.text("000000009999"), .integer(Topology.beginning), .text("TA-1"), .integer(20), .integer(4)],
        ])
    try Self.store(store, "000000000001", days: 0...1) { 10_000 + $0 * 7_000 }
    try Self.store(store, "000000000002", days: 0...1) { 20_000 + $0 * 600 }
    try Self.store(store, "000000009999", days: 0...1) { 30_000 + $0 * 525 }
    let b = try Balance.compute(db: store.db, area: "TA-1", day: Self.date(0), offset: .china).balance
    #expect(b.sold.wattHours == 7_000 + 600 * 5)
    #expect(b.supplied?.wattHours == Int64(525 * 20))
    #expect(try store.db.query("SELECT energy_wh FROM relay_log").isEmpty)

    // A meter written into the archive by other means than a command (as the bench
    // does) counts on every day; replaced, it still counts before the swap.
    try store.db.run(
      """
      INSERT INTO archive_meters (address, customer, area, phase, ct_ratio, category, grade, keep_power,
        outage_sensitive, bus, baud, area_meter, updated_at)
      VALUES ('000000000003', 'C-3', 'TA-1', 'B', 1, 'residential', 'A', 0, 0, '1', 2400, 0, 0)
      """)
    try Self.store(store, "000000000003", days: 0...1) { 40_000 + $0 * 2_000 }
    let added = try Balance.compute(db: store.db, area: "TA-1", day: Self.date(0), offset: .china)
    #expect(Self.energy(added, "000000000003") == Int64(2_000))
    try store.db.begin()
    _ = try Archive.apply(
      body: #"{"op":"replace","version":5,"old":"000000000003","new":{"address":"000000000033"},"#
        + #""old_final_wh":43000,"new_initial_wh":0,"at":\#(Self.midnight(1) + Self.day / 2)}"#, db: store.db,
      now: Self.midnight(3), offset: .china)
    try store.db.commit()
    let kept = try Balance.compute(db: store.db, area: "TA-1", day: Self.date(0), offset: .china)
    #expect(kept.input.customers.map(\.meter) == ["000000000001", "000000000002", "000000000003"])
    #expect(Self.energy(kept, "000000000003") == Int64(2_000))
    let swapDay = try Balance.compute(db: store.db, area: "TA-1", day: Self.date(1), offset: .china)
    #expect(swapDay.input.customers.map(\.meter) == ["000000000001", "000000000002", "000000000033"])
  }

  // MARK: - Meter replacement

  @Test func theSwapDayCountsTheOldMetersFinalAndTheNewMetersStartAndTheLedgerAgrees() throws {
    var f = try LedgerTests.Fixture("topology-replace")
    #expect(try f.send("archive", BillingTests.archive).outcome == "applied")
    let tariff = try f.send(
      "tariff", #"{"id":"RES-2026","category":"residential","effective_from":"2026-01-01","flat":5000}"#)
    #expect(tariff.outcome == "applied", "\(tariff)")
    let topUp: Int64 = 100_000
    #expect(try f.send("topup", #"{"customer":"C-1","purchase":1,"amount":\#(topUp)}"#).outcome == "applied")

    // C-1 uses 9 kWh a day, evenly; its meter 01 is swapped for 101 at noon of
    // 2026-01-04 (day index 3). Meter 02 uses 8 kWh; the area meter (CT 1) 5 % more.
    let perDay: Int64 = 9_000
    let swapDay: Int64 = 3
    let at = Self.midnight(swapDay) + Self.day / 2
    let oldStart: Int64 = 1_000_000
    let oldFinal = oldStart + swapDay * perDay + perDay / 2
    let newInitial: Int64 = 700
    let newRegister = { (i: Int64) in newInitial + perDay / 2 + (i - swapDay - 1) * perDay }
    // The old meter's real-time readings end a day before its last freeze.
    try Self.store(f.store, "000000000001", days: 0...swapDay, realtime: 0...(swapDay - 1)) {
      oldStart + $0 * perDay
    }
    try Self.store(f.store, "000000000002", days: 0...6, realtime: 0...6) { 400_000 + $0 * 8_000 }
    try Self.store(f.store, "000000009999", days: 0...6) { 50_000_000 + $0 * 17_850 }
    let billing = { () throws -> Billing.Pass in
      try Billing.run(store: f.store, outbox: try Outbox(store: f.store), offset: .china, now: at)
    }
    _ = try billing()

    func replace(version: Int, final: Int64) -> String {
      #"{"op":"replace","version":\#(version),"old":"000000000001","new":{"address":"000000000101"},"#
        + #""old_final_wh":\#(final),"new_initial_wh":\#(newInitial),"at":\#(at)}"#
    }
    // A final reading below the old meter's last freeze would be energy going backwards.
    let lastFreeze = oldStart + swapDay * perDay
    let refused = try f.send("archive", replace(version: 2, final: lastFreeze - 1_000))
    #expect(refused.outcome == "rejected" && refused.reason == "conflict", "\(refused)")
    #expect(refused.detail.contains("below the old meter's last reading \(lastFreeze)"), "\(refused)")
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM meter_replacements") == 0)

    // Real-time readings an hour before and after the swap (for the hourly balance).
    let hour: Int64 = 3_600_000
    let realtime = { (meter: String, ts: Int64, wh: Int64) throws in
      _ = try Readings(store: f.store, outbox: try Outbox(store: f.store)).store(
        [
          Reading(
            meter: Address(meter)!, identifier: .forwardActiveBlock, timestamp: ts, value: wh, tariffs: [],
            quality: .measured, readAt: ts)
        ], now: ts)
    }
    let perHour = perDay / 24
    try realtime("000000000001", at - hour, oldFinal - perHour)
    let swapped = try f.send("archive", replace(version: 2, final: oldFinal))
    #expect(swapped.outcome == "applied", "\(swapped)")
    try realtime("000000000101", at + hour, newInitial + perHour)
    try Self.store(f.store, "000000000101", days: (swapDay + 1)...6, realtime: (swapDay + 1)...6) {
      newRegister($0)
    }
    _ = try billing()
    // The hours before and after the swap: one place, the hour's energy on either side.
    for h in [Int64(11), 12] {
      let hourly = try Balance.computeHour(
        db: f.store.db, area: "TA-1", day: Self.date(swapDay), hour: Int(h), offset: .china)
      #expect(hourly.input.customers.map(\.meter) == ["000000000002", "000000000101"])
      #expect(Self.energy(hourly, "000000000101") == perHour, "hour \(h)")
    }

    // The freezes as stored, to check the balance against.
    func freeze(_ meter: String, _ i: Int64) throws -> Int64 {
      try #require(
        try f.store.db.scalarInt(
          "SELECT value FROM readings WHERE meter = ?1 AND di = '05060101' AND ts = ?2",
          [.text(meter), .integer(Self.midnight(i) + 7_000)]))
    }
    var total: Int64 = 0
    for i in Int64(0)...5 {
      let result = try Balance.compute(db: f.store.db, area: "TA-1", day: Self.date(i), offset: .china)
      let b = result.balance
      let c1 = i < swapDay ? "000000000001" : "000000000101"
      #expect(result.input.customers.map(\.meter) == ["000000000002", c1].sorted(), "day \(i)")
      let energy = try #require(Self.energy(result, c1), "day \(i)")
      if i == swapDay {
        #expect(
          energy
            == (oldFinal - (try freeze("000000000001", i)))
            + ((try freeze("000000000101", i + 1)) - newInitial))
      } else if i < swapDay {
        #expect(energy == (try freeze("000000000001", i + 1)) - (try freeze("000000000001", i)))
      } else {
        #expect(energy == (try freeze("000000000101", i + 1)) - (try freeze("000000000101", i)))
      }
      // No jump, nothing negative, the same area totals every day.
      #expect(energy == perDay, "day \(i)")
      #expect(b.sold.wattHours == perDay + 8_000, "day \(i)")
      #expect(b.loss?.wattHours == 17_850 - perDay - 8_000, "day \(i)")
      #expect(b.completenessBasisPoints == 10_000 && b.flags.isEmpty, "day \(i)")
      #expect(b.suspects.isEmpty, "day \(i): \(b.suspects)")
      total += energy
    }
    // The new meter's history runs on from the old one's.
    let dayAfter = try Balance.compute(
      db: f.store.db, area: "TA-1", day: Self.date(swapDay + 1), offset: .china)
    #expect(
      dayAfter.input.customers.first { $0.meter == "000000000101" }?.history
        == Array(repeating: Energy(wattHours: perDay), count: Int(swapDay + 1)))
    #expect(
      total
        == (oldFinal - (try freeze("000000000001", 0))) + ((try freeze("000000000101", 6)) - newInitial))

    // The ledger charged the same energy: 0.5000 CNY/kWh, no jump, nothing twice.
    let charged = try #require(
      try f.store.db.scalarInt(
        "SELECT -sum(amount_fen) FROM ledger WHERE customer = 'C-1' AND kind = 'charge'"))
    #expect(charged == total * 5_000 / 100_000)
    #expect(try f.balance("C-1") == topUp - charged)
    #expect(try Ledger.verify(f.store.db).isEmpty)
    // `gridedge balance` shows the swap day as one customer place, without a suspect.
    let dir = URL(fileURLWithPath: f.store.db.path).deletingLastPathComponent()
    let config = dir.appendingPathComponent("agent.conf").path
    try "device.id = TA-L-1\nstore.path = \(f.store.db.path)\n".write(
      toFile: config, atomically: true, encoding: .utf8)
    let shown = try runProduct(
      "gridedge",
      ["balance", "--config", config, "--area", "TA-1", "--day", Self.date(swapDay).isoText, "--json"],
      in: dir)
    #expect(shown.status == 0, "\(shown.stderr)")
    let object = try jsonObject(shown.stdout)
    #expect((object["sold_wh"] as? NSNumber)?.int64Value == perDay + 8_000)
    #expect((object["suspects_total"] as? NSNumber)?.intValue == 0)
    #expect((object["completeness_bp"] as? NSNumber)?.intValue == 10_000)
    // Both meters' reading histories are kept.
    #expect(
      try f.store.db.scalarInt("SELECT count(*) FROM readings WHERE meter = '000000000001'")
        == (swapDay + 1) + swapDay + 2)
    #expect(
      try f.store.db.scalarInt("SELECT count(*) FROM readings WHERE meter = '000000000101'")
        == 2 * (6 - swapDay) + 2)
  }

  /// The area meter is swapped at noon for one behind a CT of 50 (a transformer
  /// upgraded with its metering): the area's supplied energy runs on unchanged every
  /// day, the swap day being the old meter's final − freeze plus (the new one's
  /// freeze − initial) × 50, and the loss with it.
  @Test func anAreaMeterSwappedForOneWithAnotherCTRatioKeepsTheSuppliedEnergy() throws {
    var f = try LedgerTests.Fixture("topology-area-swap")
    #expect(try f.send("archive", BillingTests.archive).outcome == "applied")
    let swapDay: Int64 = 3
    let at = Self.midnight(swapDay) + Self.day / 2
    let areaPerDay: Int64 = 18_000
    let oldStart: Int64 = 50_000_000
    let oldFinal = oldStart + swapDay * areaPerDay + areaPerDay / 2
    let ct: Int64 = 50
    let newInitial: Int64 = 2_000
    try Self.store(f.store, "000000000001", days: 0...6) { 1_000_000 + $0 * 9_000 }
    try Self.store(f.store, "000000000002", days: 0...6) { 400_000 + $0 * 8_000 }
    try Self.store(f.store, "000000009999", days: 0...swapDay) { oldStart + $0 * areaPerDay }
    let swapped = try f.send(
      "archive",
      #"{"op":"replace","version":2,"old":"000000009999","new":{"address":"000000009998","ct":\#(ct)},"#
        + #""old_final_wh":\#(oldFinal),"new_initial_wh":\#(newInitial),"at":\#(at)}"#)
    #expect(swapped.outcome == "applied", "\(swapped)")
    // The new meter registers a fiftieth of the energy.
    try Self.store(f.store, "000000009998", days: (swapDay + 1)...6) {
      newInitial + (areaPerDay / 2 + ($0 - swapDay - 1) * areaPerDay) / ct
    }
    for i in Int64(0)...5 {
      let result = try Balance.compute(db: f.store.db, area: "TA-1", day: Self.date(i), offset: .china)
      let b = result.balance
      #expect(b.supplied?.wattHours == areaPerDay, "day \(i): supplied \(String(describing: b.supplied))")
      #expect(b.sold.wattHours == 17_000, "day \(i)")
      #expect(b.loss?.wattHours == 1_000, "day \(i)")
      #expect(b.flags.isEmpty, "day \(i): \(b.flags)")
    }
  }

  /// A meter taken out, refurbished and installed again at another customer, and
  /// later replaced there too, is the old meter of two swaps: both are kept, each
  /// customer's chain keeps its own time of the meter, and the balance and the ledger
  /// count each of its lives for its own customer once.
  @Test func aMeterReinstalledElsewhereAndReplacedAgainKeepsBothSwaps() throws {
    var f = try LedgerTests.Fixture("topology-twice")
    #expect(try f.send("archive", BillingTests.archive).outcome == "applied")
    for category in ["residential", "commercial"] {
      let tariff = try f.send(
        "tariff",
        #"{"id":"T-\#(category)","category":"\#(category)","effective_from":"2026-01-01","flat":5000}"#)
      #expect(tariff.outcome == "applied", "\(tariff)")
    }
    let noon = { (i: Int64) in Self.midnight(i) + Self.day / 2 }
    func replace(_ version: Int, _ old: String, _ new: String, final: Int64, initial: Int64, at: Int64) throws
    {
      let result = try f.send(
        "archive",
        #"{"op":"replace","version":\#(version),"old":"\#(old)","new":{"address":"\#(new)"},"#
          + #""old_final_wh":\#(final),"new_initial_wh":\#(initial),"at":\#(at)}"#)
      #expect(result.outcome == "applied", "\(result)")
    }
    func bill() throws {
      _ = try Billing.run(store: f.store, outbox: try Outbox(store: f.store), offset: .china, now: 0)
    }
    // C-1 uses 9 kWh a day, C-2 8 kWh; the area meter 18 kWh.
    try Self.store(f.store, "000000009999", days: 0...7) { 50_000_000 + $0 * 18_000 }
    // Meter 01 at C-1 until noon of day 2, then 101.
    try Self.store(f.store, "000000000001", days: 0...2, realtime: 0...2) { 1_000_000 + $0 * 9_000 }
    try Self.store(f.store, "000000000002", days: 0...4, realtime: 0...4) { 400_000 + $0 * 8_000 }
    try bill()
    try replace(2, "000000000001", "000000000101", final: 1_022_500, initial: 500, at: noon(2))
    try Self.store(f.store, "000000000101", days: 3...4, realtime: 3...4) { 5_000 + ($0 - 3) * 9_000 }
    try bill()
    // Meter 01, refurbished (register 0), replaces C-2's 02 at noon of day 4 ...
    try replace(3, "000000000002", "000000000001", final: 436_000, initial: 0, at: noon(4))
    try Self.store(f.store, "000000000001", days: 5...6, realtime: 5...6) { 4_000 + ($0 - 5) * 8_000 }
    try Self.store(f.store, "000000000101", days: 5...6, realtime: 5...6) { 5_000 + ($0 - 3) * 9_000 }
    try bill()
    // ... and is replaced there by 201 at noon of day 6.
    try replace(4, "000000000001", "000000000201", final: 16_000, initial: 100, at: noon(6))
    try Self.store(f.store, "000000000201", days: 7...7, realtime: 7...7) { _ in 4_100 }
    try Self.store(f.store, "000000000101", days: 7...7, realtime: 7...7) { 5_000 + ($0 - 3) * 9_000 }
    try bill()

    #expect(try f.store.db.scalarInt("SELECT count(*) FROM meter_replacements") == 3)
    for i in Int64(0)...6 {
      let result = try Balance.compute(db: f.store.db, area: "TA-1", day: Self.date(i), offset: .china)
      let c1 = i < 2 ? "000000000001" : "000000000101"
      let c2 = i < 4 ? "000000000002" : (i < 6 ? "000000000001" : "000000000201")
      #expect(Self.energy(result, c1) == 9_000, "day \(i): C-1 \(result.input.customers)")
      #expect(Self.energy(result, c2) == 8_000, "day \(i): C-2 \(result.input.customers)")
      #expect(result.balance.sold.wattHours == 17_000, "day \(i)")
      #expect(result.balance.suspects.isEmpty, "day \(i): \(result.balance.suspects)")
    }
    // The ledger: C-1 22.5 + 40.5 kWh, C-2 36 + 16 + 4 kWh, at 0.5000 CNY/kWh.
    let charged = { (customer: String) in
      try f.store.db.scalarInt(
        "SELECT -sum(amount_fen) FROM ledger WHERE customer = ?1 AND kind = 'charge'", [.text(customer)])
    }
    #expect(try charged("C-1") == 63_000 / 20)
    #expect(try charged("C-2") == 56_000 / 20)
    #expect(try Ledger.verify(f.store.db).isEmpty)
  }

  // MARK: - Energy while the relay is open

  @Test func energyRegisteredWhileTheRelayIsVerifiedOpenMakesASuspectWithItsOpenTime() throws {
    let meter = FakeMeter("000000000001")
    let quiet = FakeMeter("000000000003")
    let h = try AcquisitionHarness(
      "topology-relay", meters: [meter, quiet], start: chinaTime(10, 0), settings: quietSettings())
    let store = h.fixture.store
    try installRelayArchive(store)
    let relay = RelayControl(
      store: store, outbox: h.fixture.outbox, thresholds: GradeThresholds(base: relayThresholds),
      settings: try RelaySettings(config: try relayConfig()), acquisition: h.acquisition)
    h.onTurn = { relay.tick(wall: h.wall) }
    #expect(h.runCycle(chinaTime(10, 0)))
    // Both customers in arrears: both meters are cut and verified open at about 10:00.
    try setBalance(store, "C-1", -2000, at: h.wall - 60_000)
    try setBalance(store, "C-3", -2000, at: h.wall - 60_000)
    relay.evaluate(wall: h.wall)
    #expect(
      h.run(timeout: 10) {
        relay.pendingCount == 0 && (try? relayRow(store, "000000000001"))?[2] == "done"
          && (try? relayRow(store, "000000000003"))?[2] == "done"
      })
    let verified = try #require(
      try store.db.query("SELECT verified_at, verified_wh FROM relay WHERE meter = '000000000001'").first)
    let since = try #require(verified.int64(0))
    let base = try #require(verified.int64(1))
    // Meter 01 registers 250 Wh while open (read at 10:15); then a top-up closes it.
    h.line.with {
      meter.registers = EnergyRegisters(total: meter.registers.total + 25, tariffs: meter.registers.tariffs)
    }
    h.jump(to: chinaTime(10, 15))
    #expect(h.runCycle(chinaTime(10, 15)))
    try setBalance(store, "C-1", 500, at: h.wall)
    relay.evaluate(wall: h.wall)
    #expect(h.run(timeout: 10) { relay.pendingCount == 0 })
    let closeRequested = try #require(
      try store.db.scalarInt(
        "SELECT ts FROM relay_log WHERE meter = '000000000001' AND action = 'close' AND outcome = 'requested'"
      ))
    let quietRegister = h.line.with { quiet.registers.total * 10 }

    // Freezes around 2026-01-01 (day index 0): 9 kWh days before; on the day meter 01
    // used 4 kWh before the cut and 3 kWh after the reconnection, meter 03 nothing
    // (cut since 10:00, its register unchanged), meter 02 its usual 9 kWh.
    try Self.store(store, "000000000001", days: -7...1) { i in
      i <= 0 ? base - 4_000 + i * 9_000 : base + 250 + 3_000
    }
    try Self.store(store, "000000000003", days: -7...1) { i in quietRegister + min(i, 0) * 9_000 }
    try Self.store(store, "000000000002", days: -7...1) { 2_000_000 + $0 * 9_000 }
    try Self.store(store, "000000009999", days: -7...1) { 9_000_000 + $0 * 30_000 }

    let result = try Balance.compute(db: store.db, area: "TA-1", day: Self.date(0), offset: .china)
    let b = result.balance
    let dayEnergy: Int64 = 4_000 + 250 + 3_000
    #expect(Self.energy(result, "000000000001") == dayEnergy)
    #expect(Self.energy(result, "000000000003") == Int64(0))
    // Meter 03: cut, so no energy is no stopped meter. Meter 01: the 250 Wh of its open time.
    #expect(b.suspects.map(\.meter) == ["000000000001"], "\(b.suspects)")
    let anomaly = try #require(b.suspects.first?.anomalies.first { $0.rule == .energyWhileOpen })
    #expect(anomaly.energy == Energy(wattHours: 250))
    #expect(anomaly.openRelay?.since == since)
    #expect(anomaly.openRelay?.until == closeRequested)
    #expect(anomaly.openRelay?.from == since)
    #expect(anomaly.openRelay?.to == chinaTime(10, 15))
    let json = try jsonObject(BalanceReport.jsonText(result))
    let shown = try #require(
      ((json["suspects"] as? [[String: Any]])?.first?["anomalies"] as? [[String: Any]])?.first {
        $0["rule"] as? String == "energy-while-open"
      })
    #expect((shown["energy_wh"] as? NSNumber)?.int64Value == 250)
    #expect((shown["open_since"] as? NSNumber)?.int64Value == since)
    #expect((shown["open_until"] as? NSNumber)?.int64Value == closeRequested)
    #expect(
      (shown["evidence"] as? String)?.hasPrefix("energy while the relay is open: 250 Wh registered from ")
        == true)

    // The day before, the relay was closed all day: nothing of the kind.
    let before = try Balance.compute(db: store.db, area: "TA-1", day: Self.date(-1), offset: .china)
    #expect(before.input.customers.allSatisfy { $0.openRelay == nil })
  }
}

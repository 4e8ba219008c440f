import DLT645
import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Outage detection, restoration, reboot, planned outages and daily figures on a real
/// SQLite file: `Outages` fed observations as acquisition feeds them.
@Suite struct OutageDetectionTests {
  /// 2025-11-25 10:00 China time.
  static let t0: Int64 = 1_764_036_000_000
  static let areaMeter = Address("900000000001")!

  /// Area TA-1: the area meter and customers 1..6 on phases A, B, C, A, B, ABC; C-5 is
  /// outage-sensitive; meter 7 is in area TA-2.
  static let archive = """
    {"op":"snapshot","version":1,"meters":[
    {"address":"900000000001","customer":"AREA","area":"TA-1","phase":"ABC","category":"area","area_meter":true},
    {"address":"000000000001","customer":"C-1","area":"TA-1","phase":"A","category":"residential"},
    {"address":"000000000002","customer":"C-2","area":"TA-1","phase":"B","category":"residential"},
    {"address":"000000000003","customer":"C-3","area":"TA-1","phase":"C","category":"residential"},
    {"address":"000000000004","customer":"C-4","area":"TA-1","phase":"A","category":"residential"},
    {"address":"000000000005","customer":"C-5","area":"TA-1","phase":"B","category":"residential","outage_sensitive":true},
    {"address":"000000000006","customer":"C-6","area":"TA-1","phase":"ABC","category":"commercial"},
    {"address":"000000000007","customer":"C-7","area":"TA-2","phase":"A","category":"residential"}]}
    """

  struct Rig {
    let dir: URL
    let path: String
    var store: AgentStore
    var outbox: Outbox
    var outages: Outages

    /// The events enqueued so far of `type`, parsed.
    func events(_ type: String) throws -> [[String: Any]] { try outboxEvents(store, type) }

    /// The same database opened again, as after a reboot.
    mutating func reboot(_ settings: Outages.Settings = Outages.Settings()) throws {
      store = try AgentStore(path: path, deviceID: "TA-OUT", now: OutageDetectionTests.t0)
      outbox = try Outbox(store: store)
      outages = try Outages(store: store, outbox: outbox, settings: settings)
    }
  }

  private func rig(_ label: String, _ settings: Outages.Settings = Outages.Settings()) throws -> Rig {
    let dir = try makeTemporaryDirectory(label)
    let path = dir.appendingPathComponent("agent.db").path
    let store = try AgentStore(path: path, deviceID: "TA-OUT", now: Self.t0)
    _ = try Archive.apply(body: Self.archive, db: store.db, now: Self.t0)
    let outbox = try Outbox(store: store)
    return Rig(
      dir: dir, path: path, store: store, outbox: outbox,
      outages: try Outages(store: store, outbox: outbox, settings: settings))
  }

  private func meter(_ n: Int) -> Address { Address(number: UInt64(n))! }

  @Test func aLostPhaseRaisesAnOutageAtOnceAndItsReturnTheDuration() throws {
    let r = try rig("outage-phase")
    #expect(r.outages.areaMeters == ["900000000001"])
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_201, 2_199, 2_210], wall: Self.t0)
    #expect(try r.events("outage.start").isEmpty)
    #expect(!r.outages.covers(Self.areaMeter, wall: Self.t0))
    // Phase B at 100 V (below 132 V): C-2, C-5 (sensitive) and the three-phase C-6.
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_201, 1_000, 2_210], wall: Self.t0 + 60_000)
    let start = try #require(try r.events("outage.start").first)
    #expect(start["area"] as? String == "TA-1")
    #expect(start["phases"] as? String == "B")
    #expect(start["causes"] as? [String] == ["voltage"])
    #expect(start["kind"] as? String == "unplanned")
    #expect((start["start"] as? NSNumber)?.int64Value == Self.t0 + 60_000)
    #expect(start["customers"] as? [String] == ["C-2", "C-5", "C-6"])
    #expect((start["customers_count"] as? NSNumber)?.intValue == 3)
    let sensitive = try #require(start["sensitive"] as? [[String: String]])
    #expect(sensitive == [["customer": "C-5", "meter": "000000000005"]])
    #expect(r.outages.areasWithoutSupply == ["TA-1"])
    #expect(r.outages.covers(meter(2), wall: Self.t0 + 60_000))
    #expect(r.outages.covers(meter(6), wall: Self.t0 + 60_000))
    #expect(!r.outages.covers(meter(1), wall: Self.t0 + 60_000))
    #expect(!r.outages.covers(meter(7), wall: Self.t0 + 60_000))
    #expect(r.outages.covers(Self.areaMeter, wall: Self.t0 + 60_000))
    // The same reading again changes nothing; phase C too: an update with C-3.
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_201, 0, 2_210], wall: Self.t0 + 120_000)
    #expect(try r.events("outage.update").isEmpty)
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_201, 0, 0], wall: Self.t0 + 180_000)
    let update = try #require(try r.events("outage.update").first)
    #expect(update["phases"] as? String == "BC")
    #expect(update["customers"] as? [String] == ["C-2", "C-3", "C-5", "C-6"])
    // Back on every phase 10 minutes after the start.
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_201, 2_190, 2_180], wall: Self.t0 + 660_000)
    let end = try #require(try r.events("outage.end").first)
    #expect((end["start"] as? NSNumber)?.int64Value == Self.t0 + 60_000)
    #expect((end["end"] as? NSNumber)?.int64Value == Self.t0 + 660_000)
    #expect((end["duration_s"] as? NSNumber)?.intValue == 600)
    #expect((end["customer_minutes"] as? NSNumber)?.intValue == 40)
    #expect(end["id"] as? String == r.store.storeID + "-outage-1-end")
    #expect(r.outages.areasWithoutSupply.isEmpty)
    #expect(try r.events("outage.start").count == 1)
  }

  @Test func aRebootInTheMiddleKeepsTheStartForTheRestoration() throws {
    var r = try rig("outage-reboot")
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [0, 0, 0], wall: Self.t0)
    #expect(try r.events("outage.start").count == 1)
    try r.reboot()
    #expect(r.outages.areasWithoutSupply == ["TA-1"])
    // Every meter silent in the first cycle after the restart: no second start.
    r.outages.cycleEnded((1...6).map { (meter($0), false) }, wall: Self.t0 + 60_000)
    #expect(try r.events("outage.start").count == 1)
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_200, 2_200, 2_200], wall: Self.t0 + 1_800_000)
    let end = try #require(try r.events("outage.end").first)
    #expect((end["start"] as? NSNumber)?.int64Value == Self.t0)
    #expect((end["duration_s"] as? NSNumber)?.intValue == 1_800)
    #expect(end["customers"] as? [String] == ["C-1", "C-2", "C-3", "C-4", "C-5", "C-6"])
    #expect((end["customer_minutes"] as? NSNumber)?.intValue == 180)
  }

  @Test func aShareOfSilentMetersIsAnOutageOnlyAboveTheShareAndTheMinimum() throws {
    var settings = Outages.Settings()
    settings.silentShareBasisPoints = 5_000
    settings.silentMeters = 3
    let r = try rig("outage-silent", settings)
    // Two of six silent: below the minimum of three.
    r.outages.cycleEnded(
      [
        (meter(1), false), (meter(2), false), (meter(3), true), (meter(4), true), (meter(5), true),
        (meter(6), true),
      ],
      wall: Self.t0)
    #expect(try r.events("outage.start").isEmpty)
    // Three of TA-1's six (TA-2's silent meter does not count, and is alone): half, enough.
    r.outages.cycleEnded(
      [
        (meter(1), false), (meter(2), false), (meter(3), false), (meter(4), true), (meter(5), true),
        (meter(6), true), (meter(7), false),
      ], wall: Self.t0 + 60_000)
    #expect(try r.events("outage.start").count == 1)
    let start = try #require(try r.events("outage.start").first)
    #expect(start["causes"] as? [String] == ["silent-meters"])
    #expect(start["customers"] as? [String] == ["C-1", "C-2", "C-3"])
    #expect(start["phases"] as? String == "ABC")
    #expect(start["sensitive"] as? [[String: String]] == [])
    // The area meter's voltages are fine (a branch fuse): the outage stays.
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_200, 2_200, 2_200], wall: Self.t0 + 90_000)
    #expect(try r.events("outage.end").isEmpty)
    // Back: all answer.
    r.outages.cycleEnded((1...6).map { (meter($0), true) }, wall: Self.t0 + 120_000)
    let end = try #require(try r.events("outage.end").first)
    #expect((end["duration_s"] as? NSNumber)?.intValue == 60)
  }

  @Test func anAreaLeavingTheArchiveEndsItsOutage() throws {
    var settings = Outages.Settings()
    settings.silentMeters = 1
    let r = try rig("outage-area-removed", settings)
    r.outages.cycleEnded([(meter(7), false)], wall: Self.t0)
    #expect(r.outages.areasWithoutSupply == ["TA-2"])
    // An archive without TA-2.
    let withoutTA2 = Self.archive.replacingOccurrences(of: #""version":1"#, with: #""version":2"#)
      .replacingOccurrences(
        of:
          #",\#n{"address":"000000000007","customer":"C-7","area":"TA-2","phase":"A","category":"residential"}"#,
        with: "")
    #expect(withoutTA2 != Self.archive.replacingOccurrences(of: #""version":1"#, with: #""version":2"#))
    _ = try Archive.apply(body: withoutTA2, db: r.store.db, now: Self.t0 + 60_000)
    r.outages.reloadArchive(wall: Self.t0 + 60_000)
    let end = try #require(try r.events("outage.end").first)
    #expect(end["area"] as? String == "TA-2" && end["end_reason"] as? String == "area-removed")
    #expect(end["customers"] as? [String] == ["C-7"])
    #expect(r.outages.areasWithoutSupply.isEmpty)
    // TA-1 goes on as before.
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [0, 2_200, 2_200], wall: Self.t0 + 120_000)
    #expect(try r.events("outage.start").map { $0["area"] as? String } == ["TA-2", "TA-1"])
  }

  @Test func thePowerFailSignalCutsEveryAreaAndItsEndRestoresThem() throws {
    let dir = try makeTemporaryDirectory("outage-power-fail")
    let signal = dir.appendingPathComponent("value")
    try "0\n".write(to: signal, atomically: true, encoding: .utf8)
    var settings = Outages.Settings()
    settings.powerFailPath = signal.path
    var r = try rig("outage-power-fail-db", settings)
    r.outages.tick(monotonic: 0, wall: Self.t0)
    #expect(try r.events("outage.start").isEmpty)
    try "1\n".write(to: signal, atomically: true, encoding: .utf8)
    r.outages.tick(monotonic: 500, wall: Self.t0 + 500)
    #expect(try r.events("outage.start").isEmpty, "read at most once a second")
    r.outages.tick(monotonic: 1_000, wall: Self.t0 + 1_000)
    let starts = try r.events("outage.start")
    #expect(starts.map { $0["area"] as? String } == ["TA-1", "TA-2"])
    #expect(
      starts.allSatisfy { $0["causes"] as? [String] == ["power-fail"] && $0["phases"] as? String == "ABC" })
    #expect((starts[0]["customers_count"] as? NSNumber)?.intValue == 6)
    // The board goes down and comes back with its supply: the first read ends both.
    try "0\n".write(to: signal, atomically: true, encoding: .utf8)
    try r.reboot(settings)
    #expect(r.outages.areasWithoutSupply == ["TA-1", "TA-2"])
    r.outages.tick(monotonic: 0, wall: Self.t0 + 301_000)
    let ends = try r.events("outage.end")
    #expect(ends.count == 2)
    #expect(ends.allSatisfy { ($0["duration_s"] as? NSNumber)?.intValue == 300 })
  }

  @Test func plannedOutagesAreRefusedWhenMalformedExpiredOrUnknownAndMarkOutagesAsPlanned() throws {
    let r = try rig("outage-planned")
    let now = Self.t0
    func apply(_ body: String) -> (String, String) {
      do {
        return ("applied", try PlannedOutages.apply(body: body, db: r.store.db, now: now))
      } catch {
        return (error.code, error.description)
      }
    }
    let window = #""from":\#(now + 60_000),"to":\#(now + 3_600_000)"#
    for (body, code) in [
      ("[]", "malformed"),
      (#"{"area":"TA-1",\#(window)}"#, "malformed"),
      (#"{"id":"PO 1","area":"TA-1",\#(window)}"#, "malformed"),
      (#"{"id":"PO-1",\#(window)}"#, "malformed"),
      (#"{"id":"PO-1","area":"TA-1","from":"soon","to":\#(now + 3_600_000)}"#, "malformed"),
      (#"{"id":"PO-1","area":"TA-1","from":\#(now + 60_000),"to":\#(now + 60_000)}"#, "malformed"),
      (#"{"id":"PO-1","area":"TA-1","from":\#(now),"to":\#(now + 32 * 86_400_000)}"#, "malformed"),
      (#"{"id":"PO-1","area":"TA-1",\#(window),"reason":7}"#, "malformed"),
      (#"{"id":"PO-1","area":"TA-1","from":\#(now - 7_200_000),"to":\#(now)}"#, "expired"),
      (#"{"id":"PO-1","area":"TA-9",\#(window)}"#, "unknown-area"),
      (#"{"id":"PO-9","cancel":true}"#, "unknown-outage"),
      (#"{"id":"PO-9","cancel":false}"#, "malformed"),
    ] {
      #expect(apply(body).0 == code, "\(body): \(apply(body))")
    }
    #expect(try r.store.db.scalarInt("SELECT count(*) FROM planned_outages") == 0)
    #expect(apply(#"{"id":"PO-1","area":"TA-1",\#(window),"reason":"transformer change"}"#).0 == "applied")
    #expect(apply(#"{"id":"PO-1","area":"TA-1",\#(window)}"#).0 == "duplicate")
    // Before the window: nothing covered; inside: the area's meters, not TA-2's.
    #expect(!r.outages.covers(meter(1), wall: now + 59_999))
    #expect(r.outages.covers(meter(1), wall: now + 60_000))
    #expect(r.outages.covers(Self.areaMeter, wall: now + 60_000))
    #expect(!r.outages.covers(meter(7), wall: now + 60_000))
    #expect(!r.outages.covers(meter(1), wall: now + 3_600_000))
    // An outage inside it is planned; its restoration too.
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [0, 0, 0], wall: now + 120_000)
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_200, 2_200, 2_200], wall: now + 240_000)
    let start = try #require(try r.events("outage.start").first)
    let end = try #require(try r.events("outage.end").first)
    #expect(start["kind"] as? String == "planned" && start["planned"] as? String == "PO-1")
    #expect(end["kind"] as? String == "planned" && end["planned"] as? String == "PO-1")
    // A cancel ends the window at once.
    #expect(apply(#"{"id":"PO-1","cancel":true}"#).0 == "applied")
    #expect(!r.outages.covers(meter(1), wall: now + 300_000))
    #expect(apply(#"{"id":"PO-1","cancel":true}"#).0 == "unknown-outage")
  }

  @Test func dailyFiguresGoOncePerAreaAndDayWithPlannedApart() throws {
    let r = try rig("outage-daily")
    let offset = UTCOffset.china
    let day = offset.localDateTime(fromUnix: Self.t0 / 1000).date
    let midnight = offset.unixSeconds(startOf: day.adding(days: 1)) * 1000
    _ = try PlannedOutages.apply(
      body: #"{"id":"PO-1","area":"TA-1","from":\#(Self.t0 + 7_200_000),"to":\#(Self.t0 + 10_800_000)}"#,
      db: r.store.db, now: Self.t0)
    // Unplanned: phase A for 30 min (C-1, C-4, C-6); planned: the whole area for an hour.
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [0, 2_200, 2_200], wall: Self.t0)
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_200, 2_200, 2_200], wall: Self.t0 + 1_800_000)
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [0, 0, 0], wall: Self.t0 + 7_200_000)
    r.outages.voltages(meter: Self.areaMeter, deciVolts: [2_200, 2_200, 2_200], wall: Self.t0 + 10_800_000)
    // TA-2 loses its only meter 20 min before midnight, and has it back 10 min after.
    var settings = Outages.Settings()
    settings.silentMeters = 1
    let other = try Outages(store: r.store, outbox: r.outbox, settings: settings)
    other.cycleEnded([(meter(7), false)], wall: midnight - 1_200_000)
    // The day is not over: only the day before (the first figures go for yesterday),
    // without interruptions.
    #expect(try r.outages.sendDailyFigures(wall: midnight - 1) == 2)
    #expect(try r.events("outage.daily").allSatisfy { $0["day"] as? String == day.adding(days: -1).isoText })
    #expect(try r.events("outage.daily").allSatisfy { ($0["interruptions"] as? NSNumber)?.intValue == 0 })
    other.cycleEnded([(meter(7), true)], wall: midnight + 600_000)
    #expect(try r.outages.sendDailyFigures(wall: midnight + 660_000) == 2)
    #expect(try r.outages.sendDailyFigures(wall: midnight + 720_000) == 0, "once per day")
    let figures = try r.events("outage.daily").filter { $0["day"] as? String == day.isoText }
    let ta1 = try #require(figures.first { $0["area"] as? String == "TA-1" })
    #expect(ta1["day"] as? String == day.isoText)
    #expect(ta1["id"] as? String == r.store.storeID + "-outage-daily-TA-1-" + day.isoText)
    #expect((ta1["customers"] as? NSNumber)?.intValue == 6)
    #expect((ta1["interruptions"] as? NSNumber)?.intValue == 1)
    #expect((ta1["customer_minutes"] as? NSNumber)?.intValue == 90)
    #expect((ta1["longest_s"] as? NSNumber)?.intValue == 1_800)
    let planned = try #require(ta1["planned"] as? [String: Any])
    #expect((planned["interruptions"] as? NSNumber)?.intValue == 1)
    #expect((planned["customer_minutes"] as? NSNumber)?.intValue == 360)
    #expect((planned["longest_s"] as? NSNumber)?.intValue == 3_600)
    let ta2 = try #require(figures.first { $0["area"] as? String == "TA-2" })
    #expect((ta2["interruptions"] as? NSNumber)?.intValue == 1)
    #expect((ta2["ongoing"] as? NSNumber)?.intValue == 1)
    #expect((ta2["customer_minutes"] as? NSNumber)?.intValue == 20)
    // The next day counts the 10 minutes after midnight, as continued.
    #expect(try r.outages.sendDailyFigures(wall: midnight + 86_400_000 + 60_000) == 2)
    let next = try #require(
      try r.events("outage.daily").first {
        $0["area"] as? String == "TA-2" && $0["day"] as? String == day.adding(days: 1).isoText
      })
    #expect((next["continued"] as? NSNumber)?.intValue == 1)
    #expect((next["customer_minutes"] as? NSNumber)?.intValue == 10)
  }

  @Test func theEnergyBalanceRunsWithoutAnomalyRulesOnADayAPlannedOutageOverlaps() throws {
    let r = try rig("outage-balance")
    let day = UTCOffset.china.localDateTime(fromUnix: Self.t0 / 1000).date
    let before = try Balance.compute(db: r.store.db, area: "TA-1", day: day, offset: .china)
    #expect(!before.balance.flags.contains { $0.code == "anomaly-rules-off" })
    _ = try PlannedOutages.apply(
      body: #"{"id":"PO-1","area":"TA-1","from":\#(Self.t0),"to":\#(Self.t0 + 3_600_000)}"#, db: r.store.db,
      now: Self.t0)
    let during = try Balance.compute(db: r.store.db, area: "TA-1", day: day, offset: .china)
    #expect(during.balance.flags.map(\.code) == ["anomaly-rules-off"])
    #expect(during.balance.suspects.isEmpty)
    let hour = try Balance.computeHour(db: r.store.db, area: "TA-1", day: day, hour: 10, offset: .china)
    #expect(hour.balance.flags.contains { $0.code == "anomaly-rules-off" })
    let later = try Balance.computeHour(db: r.store.db, area: "TA-1", day: day, hour: 12, offset: .china)
    #expect(!later.balance.flags.contains { $0.code == "anomaly-rules-off" })
  }
}

import DLT645
import Foundation
import GridEdgeCore
import Runtime
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// 2026-01-01 `h`:`m` in China (UTC+8), unix ms, `days` later.
func chinaTime(days: Int64 = 0, _ h: Int64, _ m: Int64, _ s: Int64 = 0) -> Int64 {
  newYear + days * 86_400_000 + (h * 3600 + m * 60 + s) * 1000
}

/// The acquisition over a fake gateway, a real database, and a wall clock the test
/// moves (it runs at real speed between moves, so bus timeouts are real).
final class AcquisitionHarness {
  let fixture: ReadingsFixture
  let line: FakeMeterLine
  var gateway: FakeGateway?
  let port: Int32
  private(set) var acquisition: Acquisition
  var settings: Acquisition.Settings
  let busSettings: MeterBus.Settings
  private let clock = Locked<(wall: Int64, mono: Double)>((0, 0))
  /// Called once per loop turn of `run`, after the acquisition (e.g. relay control).
  var onTurn: (() -> Void)? = nil

  init(
    _ label: String, meters: [FakeMeter], start: Int64, settings: Acquisition.Settings = .init(),
    busSettings: MeterBus.Settings = fastSettings(timeout: 150, retries: 2, gap: 5), listening: Bool = true
  ) throws {
    fixture = try ReadingsFixture(label)
    line = FakeMeterLine(meters)
    self.settings = settings
    self.busSettings = busSettings
    if listening {
      let g = try FakeGateway(line)
      gateway = g
      port = g.port
    } else {
      port = try freeLoopbackPort()
    }
    clock.value = (start, monotonicSeconds())
    acquisition = try Self.make(
      fixture: fixture, meters: meters.map { $0.address }, port: port, settings: settings,
      busSettings: busSettings)
    line.wall = { [clock] in
      let c = clock.value
      return c.wall + Int64((monotonicSeconds() - c.mono) * 1000)
    }
  }

  static func make(
    fixture: ReadingsFixture, meters: [Address], port: Int32, settings: Acquisition.Settings,
    busSettings: MeterBus.Settings
  ) throws -> Acquisition {
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(port), timing: fastTiming),
      settings: busSettings)
    let archive = MeterArchive(
      source: "meters.txt",
      meters: meters.enumerated().map { MeterEntry(address: $1, bus: "1", line: $0 + 1) })
    let acquisition = try Acquisition(
      buses: [bus], archive: archive, store: fixture.store, outbox: fixture.outbox,
      readings: fixture.readings,
      settings: settings)
    try acquisition.loadState()
    return acquisition
  }

  /// A new acquisition on the same database (an agent restart).
  func restart() throws {
    acquisition.close(monotonic: monotonic, wall: wall)
    acquisition = try Self.make(
      fixture: fixture, meters: Array(line.with { line.meters.keys }), port: port, settings: settings,
      busSettings: busSettings)
  }

  var wall: Int64 {
    let c = clock.value
    return c.wall + Int64((monotonicSeconds() - c.mono) * 1000)
  }

  /// What the harness adds to the monotonic clock it gives the acquisition: time that
  /// passed in a `jump(to:)` forward.
  private var monotonicShift: Int64 = 0

  /// The monotonic time the acquisition sees.
  var monotonic: Int64 { monotonicMilliseconds() + monotonicShift }

  /// Time passes: the wall clock reads `wall` now and, when that is later, the
  /// monotonic clock moves on by as much (as on a device that kept running). Use
  /// `stepWallClock(to:)` for a clock set while the device runs.
  func jump(to wall: Int64) {
    let passed = wall - self.wall
    if passed > 0 { monotonicShift += passed }
    clock.value = (wall, monotonicSeconds())
  }

  /// This device's wall clock is set to `wall` (by hand, NTP, a failing RTC); the
  /// monotonic clock is not.
  func stepWallClock(to wall: Int64) { clock.value = (wall, monotonicSeconds()) }

  /// Runs the poll loop until `until` holds.
  @discardableResult
  func run(timeout: Double = 10, until: () -> Bool) -> Bool {
    let end = monotonicSeconds() + timeout
    while true {
      if until() { return true }
      if monotonicSeconds() > end { return false }
      let mono = monotonic
      acquisition.tick(monotonic: mono, wall: wall)
      let requests = acquisition.pollRequests()
      let deadline = acquisition.nextDeadline(monotonic: mono, wall: wall)
      let results =
        (try? Poller.wait(requests, timeoutMilliseconds: Int32(max(0, min(20, deadline - mono))))) ?? []
      acquisition.service(results[...], monotonic: monotonic, wall: wall)
      onTurn?()
    }
  }

  /// Runs until the cycle of the slot starting at `slot` has finished.
  @discardableResult
  func runCycle(_ slot: Int64, timeout: Double = 10) -> Bool {
    run(timeout: timeout) { !acquisition.isCycleRunning && acquisition.lastCycle?.slot == slot }
  }

  func readings(_ meter: Address) throws -> [Reading] {
    try fixture.readings.readings(meter: meter, from: 0, to: .max)
  }

  func events(_ type: String) throws -> [[String: Any]] {
    try fixture.outboxEvents().filter { $0["type"] as? String == type }
  }

  func blockReads(_ meter: FakeMeter) -> Int {
    line.with { meter.reads.filter { $0 == .forwardActiveBlock }.count }
  }

  func reads(_ meter: FakeMeter) -> [DataIdentifier] { line.with { meter.reads } }
}

/// Settings with the clock check off and no backfill, so a test sees only what it is about.
func quietSettings() -> Acquisition.Settings {
  var s = Acquisition.Settings()
  s.clockCheckMinutes = 0
  s.backfillDays = 0
  return s
}

/// A meter with today's freeze (taken at local midnight of `day`).
func meterWithFreeze(_ address: String, day: Int64 = 0) -> FakeMeter {
  let m = FakeMeter(address)
  m.freezes = [
    (try! MeterTimestamp(year: 2026, month: 1, day: 1 + Int(day), hour: 0, minute: 0), m.registers)
  ]
  return m
}

@Suite(.serialized) struct AcquisitionTests {
  @Test func cycleReadsEveryMeterAndStoresEachReadingWithItsRecord() throws {
    let meters = ["000000000001", "000000000002", "000000000003"].map { meterWithFreeze($0) }
    meters[1].registers = EnergyRegisters(total: 500, tariffs: [100, 100, 100, 200])
    meters[1].freezes[0].registers = meters[1].registers
    let h = try AcquisitionHarness(
      "acq-cycle", meters: meters, start: chinaTime(10, 7), settings: quietSettings())
    let slot = chinaTime(10, 0)
    #expect(h.runCycle(slot))
    let summary = try #require(h.acquisition.lastCycle)
    #expect(summary.meters == 3 && summary.answered == 3 && summary.missing == 0 && summary.errors == 0)
    #expect(summary.stored == 6, "3 real-time readings and 3 daily freezes")
    let second = try h.readings(meters[1].address)
    let realtime = try #require(second.first { $0.identifier == .forwardActiveBlock })
    #expect(realtime.timestamp == slot)
    #expect(realtime.value == 5000 && realtime.tariffs == [1000, 1000, 1000, 2000])
    #expect(realtime.quality == .measured)
    let freeze = try #require(second.first { $0.identifier == .lastDailyFreezeForwardActive })
    #expect(freeze.timestamp == chinaTime(0, 0) && freeze.quality == .measured && freeze.value == 5000)
    let records = try h.fixture.outboxReadings()
    #expect(records.count == 6)
    #expect(records.filter { $0.billing }.count == 3, "daily freezes are billing records")
    let row = try #require(
      try h.fixture.store.db.query(
        "SELECT slot, meters, answered, missing, errors, stored FROM acquisition_cycles"
      )
      .first)
    #expect(row.values == [.integer(slot), .integer(3), .integer(3), .integer(0), .integer(0), .integer(6)])
    let cycleEvents = try h.events("acquisition.cycle")
    #expect(cycleEvents.count == 1)
    #expect((cycleEvents.first?["missing"] as? NSNumber)?.intValue == 0)
    #expect((cycleEvents.first?["id"] as? String)?.contains("-event-") == true)
    #expect(try h.events("meter.comm_errors").isEmpty)
    #expect(h.acquisition.takeEnqueued())
  }

  @Test func restartInTheSameSlotReadsNothingAgainAndTheNextSlotReadsAgain() throws {
    let meter = meterWithFreeze("000000000001")
    let h = try AcquisitionHarness(
      "acq-restart", meters: [meter], start: chinaTime(10, 7), settings: quietSettings())
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(h.blockReads(meter) == 1)
    let readsBefore = h.reads(meter).count
    try h.restart()
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(
      h.reads(meter).count == readsBefore, "the restarted agent asked the meter again: \(h.reads(meter))")
    #expect(try h.fixture.outboxReadings().count == 2)
    h.jump(to: chinaTime(10, 15, 1))
    #expect(h.runCycle(chinaTime(10, 15)))
    #expect(h.blockReads(meter) == 2)
    #expect(
      try h.readings(meter.address).filter { $0.identifier == .forwardActiveBlock }.map { $0.timestamp }
        == [chinaTime(10, 0), chinaTime(10, 15)])
    #expect(try h.fixture.outboxReadings().count == 3, "the freeze is read once a day")
  }

  @Test func missedDailyFreezesAreBackfilledFromTheMetersRecords() throws {
    let meter = FakeMeter("000000000001")
    // Today is 2026-01-03: freezes of today, yesterday and 2025-12-31 (the meter was
    // off at midnight on 2026-01-01).
    for (year, month, day, total) in [(2026, 1, 3, 400), (2026, 1, 2, 300), (2025, 12, 31, 100)] {
      meter.freezes.append(
        (
          try MeterTimestamp(year: year, month: month, day: day, hour: 0, minute: 0),
          EnergyRegisters(total: Int64(total), tariffs: [Int64(total), 0, 0, 0])
        ))
    }
    var settings = quietSettings()
    settings.backfillDays = 7
    let h = try AcquisitionHarness(
      "acq-backfill", meters: [meter], start: chinaTime(days: 2, 6, 1), settings: settings)
    #expect(h.runCycle(chinaTime(days: 2, 6, 0)))
    let freezes = try h.readings(meter.address).filter { $0.identifier == .lastDailyFreezeForwardActive }
    #expect(
      freezes.map { $0.timestamp } == [
        chinaTime(days: -1, 0, 0), chinaTime(days: 1, 0, 0), chinaTime(days: 2, 0, 0),
      ])
    #expect(freezes.map { $0.quality } == [.backfilled, .backfilled, .measured])
    #expect(freezes.map { $0.value } == [1000, 3000, 4000])
    // The scan went back until the meter had no more records, then stopped.
    #expect(h.reads(meter).filter { $0.dailyFreezeIndex != nil }.count <= 8)
    let scanned = try h.fixture.store.db.scalarInt("SELECT freeze_scanned_day FROM meter_state")
    #expect(scanned == CivilDate(year: 2026, month: 1, day: 3)!.daysSinceEpoch)
    let readsBefore = h.reads(meter).count
    h.jump(to: chinaTime(days: 2, 6, 16))
    #expect(h.runCycle(chinaTime(days: 2, 6, 15)))
    #expect(h.reads(meter).count == readsBefore + 1, "only the real-time read: \(h.reads(meter).suffix(3))")
  }

  @Test func freezeNotYetTakenIsAskedForAgainInTheNextCycle() throws {
    let meter = FakeMeter("000000000001")
    meter.freezes = [(try MeterTimestamp(year: 2026, month: 1, day: 1, hour: 0, minute: 0), meter.registers)]
    let h = try AcquisitionHarness(
      "acq-freeze-late", meters: [meter], start: chinaTime(days: 1, 0, 16), settings: quietSettings())
    #expect(h.runCycle(chinaTime(days: 1, 0, 15)))
    #expect(try h.readings(meter.address).filter { $0.identifier == .lastDailyFreezeForwardActive }.isEmpty)
    // The meter freezes late (its clock is behind): the next cycle finds it.
    h.line.with {
      meter.freezes.insert(
        (try! MeterTimestamp(year: 2026, month: 1, day: 2, hour: 0, minute: 0), meter.registers), at: 0)
    }
    h.jump(to: chinaTime(days: 1, 0, 31))
    #expect(h.runCycle(chinaTime(days: 1, 0, 30)))
    let freezes = try h.readings(meter.address).filter { $0.identifier == .lastDailyFreezeForwardActive }
    #expect(freezes.map { $0.timestamp } == [chinaTime(days: 1, 0, 0)])
    #expect(freezes.first?.quality == .measured)
  }

  @Test func freezeIsNotReadBeforeTheDelayAfterMidnight() throws {
    let meter = meterWithFreeze("000000000001", day: 1)
    var settings = quietSettings()
    settings.freezeDelayMinutes = 20
    let h = try AcquisitionHarness(
      "acq-freeze-delay", meters: [meter], start: chinaTime(days: 1, 0, 16), settings: settings)
    #expect(h.runCycle(chinaTime(days: 1, 0, 15)))
    #expect(h.reads(meter) == [.forwardActiveBlock])
    h.jump(to: chinaTime(days: 1, 0, 30, 2))
    #expect(h.runCycle(chinaTime(days: 1, 0, 30)))
    #expect(h.reads(meter).contains(DataIdentifier.dailyFreezeTime(previous: 1)!))
  }

  @Test func realTimeBlockRefusedFallsBackToTheTotal() throws {
    let meter = meterWithFreeze("000000000001")
    meter.refused = [DataIdentifier.forwardActiveBlock.rawValue]
    let h = try AcquisitionHarness(
      "acq-fallback", meters: [meter], start: chinaTime(10, 1), settings: quietSettings())
    #expect(h.runCycle(chinaTime(10, 0)))
    let stored = try h.readings(meter.address).filter { $0.identifier.dailyFreezeIndex == nil }
    #expect(stored.count == 1)
    #expect(stored.first?.identifier == .forwardActiveTotal)
    #expect(stored.first?.tariffs == [])
    #expect(stored.first?.value == meter.registers.total * 10)
    #expect(h.acquisition.lastCycle?.missing == 0)
    let errors = try h.events("meter.comm_errors")
    #expect(errors.count == 1)
    #expect((errors.first?["error_replies"] as? NSNumber)?.intValue == 1)
  }

  @Test func commErrorsAreCountedPerMeterAndNothingMalformedIsStored() throws {
    let noisy = FakeMeter("000000000001")
    noisy.corruptReplies = 1
    let liar = FakeMeter("000000000002")
    liar.badValues = [DataIdentifier.forwardActiveBlock.rawValue]
    let stray = FakeMeter("000000000003")
    stray.wrongAddressReplies = 1
    let h = try AcquisitionHarness(
      "acq-errors", meters: [noisy, liar, stray], start: chinaTime(10, 1), settings: quietSettings())
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(try h.readings(noisy.address).map { $0.identifier } == [.forwardActiveBlock])
    #expect(try h.readings(liar.address).isEmpty, "a value that is not BCD was stored")
    #expect(try h.readings(stray.address).count == 1)
    let summary = try #require(h.acquisition.lastCycle)
    #expect(summary.missing == 1 && summary.answered == 3 && summary.errors == 3)
    var byMeter: [String: [String: Any]] = [:]
    for event in try h.events("meter.comm_errors") { byMeter[event["meter"] as? String ?? ""] = event }
    #expect(byMeter.count == 3)
    #expect((byMeter["000000000001"]?["corrupt_frames"] as? NSNumber)?.intValue == 1)
    #expect((byMeter["000000000002"]?["bad_values"] as? NSNumber)?.intValue == 1)
    #expect((byMeter["000000000003"]?["wrong_address"] as? NSNumber)?.intValue == 1)
    #expect(byMeter["000000000001"]?["slot"] as? NSNumber == NSNumber(value: chinaTime(10, 0)))
    let totals = try h.fixture.store.db.query(
      "SELECT meter, corrupt_frames, wrong_address FROM meter_state ORDER BY meter")
    #expect(
      totals.map { $0.values } == [
        [.text("000000000001"), .integer(1), .integer(0)], [.text("000000000002"), .integer(1), .integer(0)],
        [.text("000000000003"), .integer(0), .integer(1)],
      ])
  }

  @Test func meterWithoutFreezeRecordsIsNotAskedAgainTodayNorCountedAsAnError() throws {
    let meter = FakeMeter("000000000001")
    let h = try AcquisitionHarness(
      "acq-no-freeze", meters: [meter], start: chinaTime(10, 1), settings: quietSettings())
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(h.reads(meter) == [.forwardActiveBlock, DataIdentifier.dailyFreezeTime(previous: 1)!])
    #expect(h.acquisition.lastCycle?.errors == 0)
    h.jump(to: chinaTime(10, 15, 1))
    #expect(h.runCycle(chinaTime(10, 15)))
    #expect(h.reads(meter).count == 3)
    #expect(try h.events("meter.comm_errors").isEmpty)
  }

  @Test func silentMeterIsMissingAndReportedWhileTheOthersAreRead() throws {
    let dead = FakeMeter("000000000001")
    dead.silent = true
    let alive = FakeMeter("000000000002")
    let h = try AcquisitionHarness(
      "acq-silent", meters: [dead, alive], start: chinaTime(10, 1), settings: quietSettings())
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(try h.readings(alive.address).count == 1)
    #expect(try h.readings(dead.address).isEmpty)
    let summary = try #require(h.acquisition.lastCycle)
    #expect(summary.answered == 1 && summary.missing == 1)
    let reports = try h.events("meter.no_answer")
    #expect(reports.count == 1)
    #expect(reports.first?["meter"] as? String == "000000000001")
    #expect(
      try h.fixture.store.db.scalarInt("SELECT count(*) FROM meter_state WHERE silent_since IS NOT NULL") == 1
    )
    // Next cycle: still silent, one attempt only, not reported again.
    h.jump(to: chinaTime(10, 15, 1))
    #expect(h.runCycle(chinaTime(10, 15)))
    #expect(try h.events("meter.no_answer").count == 1)
    // It answers again: reported, and no longer missing.
    h.line.with { dead.silent = false }
    h.jump(to: chinaTime(10, 30, 1))
    #expect(h.runCycle(chinaTime(10, 30)))
    #expect(try h.events("meter.answering").count == 1)
    #expect(h.acquisition.lastCycle?.missing == 0)
    #expect(
      try h.fixture.store.db.scalarInt("SELECT count(*) FROM meter_state WHERE silent_since IS NOT NULL") == 0
    )
  }

  @Test func cycleStillRunningAtTheNextSlotEndsWithItsMetersMissing() throws {
    let dead = FakeMeter("000000000001")
    dead.silent = true
    let h = try AcquisitionHarness(
      "acq-overrun", meters: [dead], start: chinaTime(10, 14, 59), settings: quietSettings(),
      busSettings: fastSettings(timeout: 5000, retries: 0))
    // Let the request go out, then move past the slot while the bus waits for the reply.
    #expect(h.run(timeout: 3) { h.line.requestLog.count == 1 })
    h.jump(to: chinaTime(10, 15, 1))
    #expect(h.run(timeout: 3) { h.acquisition.lastCycle?.slot == chinaTime(10, 0) })
    #expect(h.acquisition.lastCycle?.missing == 1)
    #expect(h.acquisition.isCycleRunning, "the next cycle starts at once")
  }

  @Test func unreachableGatewayLeavesEveryMeterMissingAndReportsTheBusOnce() throws {
    let meter = FakeMeter("000000000001")
    var busSettings = fastSettings()
    busSettings.reconnectMinMilliseconds = 20
    busSettings.reconnectMaxMilliseconds = 50
    let h = try AcquisitionHarness(
      "acq-bus-down", meters: [meter], start: chinaTime(10, 14, 58), settings: quietSettings(),
      busSettings: busSettings, listening: false)
    h.run(timeout: 1) { false }
    h.jump(to: chinaTime(10, 15, 1))
    #expect(h.run(timeout: 3) { h.acquisition.lastCycle?.slot == chinaTime(10, 0) })
    #expect(h.acquisition.lastCycle?.missing == 1)
    h.acquisition.close(monotonic: monotonicMilliseconds(), wall: h.wall)
    let down = try h.events("bus.down")
    #expect(down.count == 1)
    #expect((down.first?["reason"] as? String)?.contains("Connection refused") == true)
    #expect(down.first?["line"] as? String == "tcp 127.0.0.1:\(h.port)")
  }

  @Test func driftingClockGetsOneBroadcastPerDayAndItsReadingsAreMarked() throws {
    let meter = FakeMeter("000000000001")
    meter.clockOffsetSeconds = 300
    var settings = quietSettings()
    settings.clockCheckMinutes = 10
    settings.clockThresholdSeconds = 60
    let h = try AcquisitionHarness(
      "acq-clock", meters: [meter], start: chinaTime(10, 0, 30), settings: settings)
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(h.run(timeout: 2) { h.line.broadcastLog.count == 1 })
    let drift = try h.events("meter.clock_drift")
    #expect(drift.count == 1)
    #expect(abs(((drift.first?["drift_s"] as? NSNumber)?.intValue ?? 0) - 300) <= 2)
    #expect(try h.events("meter.time_set").count == 1)
    #expect(abs(h.line.with { meter.clockOffsetSeconds }) <= 2, "the broadcast did not set the meter's clock")
    // Checked again in the next cycle: right now, so readings are measured.
    h.jump(to: chinaTime(10, 15, 1))
    #expect(h.runCycle(chinaTime(10, 15)))
    // The meter drifts again the same day: logged, marked, but no second broadcast.
    h.line.with { meter.clockOffsetSeconds = -200 }
    h.jump(to: chinaTime(10, 30, 1))
    #expect(h.runCycle(chinaTime(10, 30)))
    h.jump(to: chinaTime(10, 45, 1))
    #expect(h.runCycle(chinaTime(10, 45)))
    #expect(h.line.broadcastLog.count == 1)
    // 10:00 before the first check; 10:15 before the re-check confirmed the broadcast;
    // 10:30 before the new drift was found; 10:45 after.
    let qualities = try h.readings(meter.address).map { $0.quality }
    #expect(qualities == [.measured, .clockSuspect, .measured, .clockSuspect])
    #expect(try h.events("meter.clock_drift").count == 1, "drift is reported once per meter and day")
    let state = try h.fixture.store.db.query("SELECT clock_drift, time_set_day FROM meter_state").first
    #expect(abs((state?.int64(0) ?? 0) + 200) <= 2)
    #expect(state?.int64(1) == CivilDate(year: 2026, month: 1, day: 1)!.daysSinceEpoch)
    // Next day: a broadcast is allowed again.
    h.jump(to: chinaTime(days: 1, 10, 0, 1))
    #expect(h.runCycle(chinaTime(days: 1, 10, 0)))
    #expect(h.run(timeout: 2) { h.line.broadcastLog.count == 2 })
  }

  /// One meter, clocks checked daily (threshold 60 s), after its 10:00 cycle.
  private func dailyClockCheckHarness(_ label: String, _ meter: FakeMeter) throws -> AcquisitionHarness {
    var settings = quietSettings()
    settings.clockCheckMinutes = 1440
    settings.clockThresholdSeconds = 60
    let h = try AcquisitionHarness(label, meters: [meter], start: chinaTime(10, 0, 30), settings: settings)
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(!h.acquisition.deviceClockSuspect)
    return h
  }

  @Test func deviceClockJumpMarksReadingsClockSuspectUntilAMeterAgrees() throws {
    let meter = FakeMeter("000000000001")
    let h = try dailyClockCheckHarness("acq-device-clock", meter)
    // This device's clock jumps a year ahead; the meter's stays right.
    let year: Int64 = 365 * 86_400_000
    h.stepWallClock(to: chinaTime(10, 15, 1) + year)
    h.line.with { meter.clockOffsetSeconds = -year / 1000 }
    #expect(h.runCycle(chinaTime(10, 15) + year))
    #expect(h.acquisition.deviceClockSuspect)
    h.jump(to: chinaTime(10, 30, 1) + year)
    #expect(h.runCycle(chinaTime(10, 30) + year))
    // NTP sets it right: suspect until the meter's clock check agrees, then measured.
    h.stepWallClock(to: chinaTime(10, 45, 1))
    h.line.with { meter.clockOffsetSeconds = 0 }
    #expect(h.runCycle(chinaTime(10, 45)))
    #expect(!h.acquisition.deviceClockSuspect)
    h.jump(to: chinaTime(11, 0, 1))
    #expect(h.runCycle(chinaTime(11, 0)))
    let stored = try h.readings(meter.address).map { ($0.timestamp, $0.quality) }
    let expected: [(Int64, ReadingQuality)] = [
      (chinaTime(10, 0), .measured), (chinaTime(10, 45), .clockSuspect), (chinaTime(11, 0), .measured),
      (chinaTime(10, 15) + year, .clockSuspect), (chinaTime(10, 30) + year, .clockSuspect),
    ]
    #expect(stored.map { $0.0 } == expected.map { $0.0 })
    #expect(stored.map { $0.1 } == expected.map { $0.1 })
    #expect(try h.events("device.clock_jump").count == 2)
    #expect(h.line.broadcastLog.isEmpty, "a meter was set from a clock that had just jumped")
  }

  @Test func deviceClockJumpOfAnHourSetsNoMeterClock() throws {
    let meter = FakeMeter("000000000001")
    let h = try dailyClockCheckHarness("acq-device-hour", meter)
    // An hour ahead: within the day a meter's clock would be corrected by, but this
    // device's clock is the one that moved.
    h.stepWallClock(to: chinaTime(11, 15, 1))
    h.line.with { meter.clockOffsetSeconds = -3600 }
    #expect(h.runCycle(chinaTime(11, 15)))
    #expect(!h.run(timeout: 1) { !h.line.broadcastLog.isEmpty }, "the meter's clock was set an hour wrong")
    #expect(try h.readings(meter.address).map { $0.quality } == [.measured, .clockSuspect])
    #expect(h.acquisition.deviceClockSuspect)
  }

  @Test func deviceClockNotSetMeansNoReadingUntilItIs() throws {
    let meter = meterWithFreeze("000000000001")
    // An RTC that lost power: 2000-01-01.
    let h = try AcquisitionHarness(
      "acq-clock-unset", meters: [meter], start: 946_684_800_000, settings: quietSettings())
    h.run(timeout: 0.5) { false }
    #expect(h.reads(meter).isEmpty)
    #expect(!h.acquisition.isCycleRunning)
    h.jump(to: chinaTime(10, 1))
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(h.blockReads(meter) == 1)
  }

  @Test func clockOffByMoreThanADayIsNotCorrected() throws {
    let meter = FakeMeter("000000000001")
    meter.clockOffsetSeconds = 3 * 86_400
    var settings = quietSettings()
    settings.clockCheckMinutes = 1
    let h = try AcquisitionHarness(
      "acq-clock-days", meters: [meter], start: chinaTime(12, 1), settings: settings)
    #expect(h.runCycle(chinaTime(12, 0)))
    #expect(try h.events("meter.clock_drift").count == 1)
    #expect(h.line.broadcastLog.isEmpty)
  }

  @Test func wallClockSetBackStartsTheSlotItNowFallsIn() throws {
    let meter = FakeMeter("000000000001")
    meter.freezes = []
    let h = try AcquisitionHarness(
      "acq-clock-back", meters: [meter], start: chinaTime(days: 1, 10, 1), settings: quietSettings())
    #expect(h.runCycle(chinaTime(days: 1, 10, 0)))
    h.jump(to: chinaTime(10, 1))
    #expect(h.runCycle(chinaTime(10, 0)))
    #expect(h.blockReads(meter) == 2)
  }

  @Test func noBroadcastNearMidnightOrWhenTimeSetIsOff() throws {
    let meter = FakeMeter("000000000001")
    meter.clockOffsetSeconds = 120
    var settings = quietSettings()
    settings.clockCheckMinutes = 1
    let h = try AcquisitionHarness(
      "acq-clock-midnight", meters: [meter], start: chinaTime(23, 57), settings: settings)
    #expect(h.runCycle(chinaTime(23, 45)))
    #expect(try h.events("meter.clock_drift").count == 1)
    #expect(h.line.broadcastLog.isEmpty, "a broadcast within 5 minutes of midnight")
    var off = quietSettings()
    off.clockCheckMinutes = 1
    off.timeSet = false
    let fast = FakeMeter("000000000002")
    fast.clockOffsetSeconds = 600
    let h2 = try AcquisitionHarness("acq-clock-off", meters: [fast], start: chinaTime(12, 1), settings: off)
    #expect(h2.runCycle(chinaTime(12, 0)))
    #expect(try h2.events("meter.clock_drift").count == 1)
    #expect(h2.line.broadcastLog.isEmpty)
  }
}

@Suite struct AcquisitionScheduleTests {
  private func acquisition(interval: Int64, offsetMinutes: Int64 = 480) throws -> Acquisition {
    let f = try ReadingsFixture("acq-slots")
    var settings = Acquisition.Settings()
    settings.intervalMinutes = interval
    settings.utcOffset = UTCOffset(seconds: offsetMinutes * 60)!
    return try Acquisition(
      buses: [], archive: MeterArchive(source: "x", meters: []), store: f.store, outbox: f.outbox,
      readings: f.readings, settings: settings)
  }

  @Test func slotsStartAtMultiplesOfTheIntervalAfterLocalMidnight() throws {
    let a = try acquisition(interval: 15)
    #expect(a.slot(containing: chinaTime(10, 7, 30)) == (chinaTime(10, 0), chinaTime(10, 15)))
    #expect(a.slot(containing: chinaTime(10, 15)) == (chinaTime(10, 15), chinaTime(10, 30)))
    #expect(a.slot(containing: chinaTime(23, 59, 59)) == (chinaTime(23, 45), chinaTime(days: 1, 0, 0)))
  }

  @Test func anIntervalThatDoesNotDivideTheDayEndsAtMidnight() throws {
    let a = try acquisition(interval: 7 * 60)
    #expect(a.slot(containing: chinaTime(22, 0)) == (chinaTime(21, 0), chinaTime(days: 1, 0, 0)))
  }

  @Test func slotsFollowTheConfiguredOffset() throws {
    let utc = try acquisition(interval: 60, offsetMinutes: 0)
    // 10:07 in China is 02:07 UTC.
    #expect(utc.slot(containing: chinaTime(10, 7)) == (chinaTime(10, 0), chinaTime(11, 0)))
    let nepal = try acquisition(interval: 60, offsetMinutes: 345)
    // 10:07 China = 07:52 Nepal (+05:45): the slot began at 07:00 Nepal = 09:15 China.
    #expect(nepal.slot(containing: chinaTime(10, 7)) == (chinaTime(9, 15), chinaTime(10, 15)))
  }

  @Test func meterOnAnUnconfiguredBusIsRefusedWithItsLine() throws {
    let f = try ReadingsFixture("acq-unknown-bus")
    let archive = try MeterArchive.parse("000000000001 1\n000000000002 7\n", file: "meters.txt")
    let bus = MeterBus(name: "1", transport: TCPGateway(host: "127.0.0.1", port: 1), settings: .init())
    do {
      _ = try Acquisition(
        buses: [bus], archive: archive, store: f.store, outbox: f.outbox, readings: f.readings,
        settings: .init())
      Issue.record("accepted a meter on bus 7")
    } catch {
      #expect(error.description == "meters.txt:2: bus '7' is not configured (configured: bus.1)")
    }
  }
}

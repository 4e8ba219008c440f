import DLT645
import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// The thresholds of the relay tests: overdraft limit −10.00 CNY, close-permit 0.
let relayThresholds = try! PrepaidThresholds(
  alarm1: Money(fen: 2000), alarm2: Money(fen: 500), overdraftLimit: Money(fen: -1000), closePermit: .zero,
  hoardingLimit: Money(fen: 500_000))

/// A configuration with the given `control.*` lines (no windows, days or grace unless set).
func relayConfig(_ lines: String = "") throws -> Config {
  var keys: [String: String] = [
    "control.no_disconnect_hours": "none", "control.no_disconnect_days": "none", "control.grace": "*:0",
  ]
  for line in lines.split(separator: "\n") {
    let parts = line.split(separator: "=", maxSplits: 1)
    keys[parts[0].trimmingCharacters(in: .whitespaces)] = parts[1].trimmingCharacters(in: .whitespaces)
  }
  let text =
    "device.id = TA-R-1\n" + keys.sorted { $0.key < $1.key }.map { "\($0) = \($1)" }.joined(separator: "\n")
  return try Config.parse(text, file: "relay.conf")
}

/// The archive of the relay tests: C-1 (grade A, meter 1), C-2 (keep-power, meter 2),
/// C-3 (grade C, meter 3), and an area meter.
let relayArchive = #"""
  {"op":"snapshot","version":1,"meters":[
    {"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential","grade":"A"},
    {"address":"000000000002","customer":"C-2","area":"TA-1","category":"residential","keep_power":true},
    {"address":"000000000003","customer":"C-3","area":"TA-1","category":"residential","grade":"C"},
    {"address":"000000009999","customer":"AREA","area":"TA-1","category":"area","area_meter":true}]}
  """#

/// Installs `relayArchive` in `store` (as a signed archive command would).
func installRelayArchive(_ store: AgentStore) throws {
  _ = try Archive.apply(body: relayArchive, db: store.db, now: 0)
}

/// Sets `customer`'s balance to `fen` with an adjustment entry at `wall`.
func setBalance(_ store: AgentStore, _ customer: String, _ fen: Int64, at wall: Int64) throws {
  let old =
    try store.db.scalarInt("SELECT balance_fen FROM accounts WHERE customer = ?1", [.text(customer)]) ?? 0
  try store.db.run(
    "UPDATE accounts SET balance_fen = ?2 WHERE customer = ?1", [.text(customer), .integer(fen)])
  try Ledger.appendEntry(
    store: store, outbox: try Outbox(store: store), customer: customer, kind: "adjustment",
    amount: Money(fen: fen - old), balanceAfter: Money(fen: fen), ref: "test", detail: "", now: wall)
}

/// Events of `type` in the outbox.
func outboxEvents(_ store: AgentStore, _ type: String) throws -> [[String: Any]] {
  try store.db.query("SELECT record FROM outbox WHERE class = 'events' ORDER BY id").map {
    try jsonObject($0.text(0) ?? "")
  }.filter { $0["type"] as? String == type }
}

/// (desired, why, state) of `meter`'s relay row.
func relayRow(_ store: AgentStore, _ meter: String) throws -> [String]? {
  try store.db.query("SELECT desired, why, state FROM relay WHERE meter = ?1", [.text(meter)]).first.map {
    [$0.text(0) ?? "", $0.text(1) ?? "", $0.text(2) ?? ""]
  }
}

@Suite struct RelaySettingsTests {
  @Test func defaultsAreDocumentedValues() throws {
    let settings = try RelaySettings(config: try Config.parse("device.id = TA-R-1", file: "x.conf"))
    #expect(settings.password == (try Password(level: 2, code: 0)))
    #expect(settings.operatorCode == 0)
    #expect(settings.closeCommand == .closePermit)
    #expect(settings.policy.calendar.dailyWindows == [DailyWindow(startHour: 18, endHour: 8)!])
    #expect(settings.policy.calendar.weekendDays == [.saturday, .sunday])
    #expect(settings.policy.calendar.holidays.isEmpty)
    #expect(settings.policy.maximumPerHour == 20)
    #expect(settings.graceSeconds(grade: "A") == 86_400 && settings.graceSeconds(grade: "Q") == 0)
    #expect(
      [1, 2, 3, 4, 8, 9].map { settings.retryDelay(afterAttempt: $0) } == [
        5000, 10_000, 20_000, 40_000, 300_000, 300_000,
      ])
  }

  @Test func calendarPasswordAndGraceAreRead() throws {
    let settings = try RelaySettings(
      config: try relayConfig(
        """
        control.password = 04:123456
        control.operator = 0000abcd
        control.no_disconnect_hours = 12:00-13:30, 22:00-06:00
        control.no_disconnect_days = sun
        control.holidays = 2026-10-01,2026-10-02
        control.grace = A:600,B:60,*:5
        control.close = direct
        """))
    #expect(settings.password == (try Password(level: 4, code: 0x123456)))
    #expect(settings.operatorCode == 0xABCD)
    #expect(settings.closeCommand == .directClose)
    #expect(settings.policy.calendar.dailyWindows.count == 2)
    #expect(settings.policy.calendar.dailyWindows[0].contains(secondOfDay: 13 * 3600))
    #expect(settings.policy.calendar.dailyWindows[1].contains(secondOfDay: 3 * 3600))
    #expect(settings.policy.calendar.weekendDays == [.sunday])
    #expect(
      settings.policy.calendar.holidays == [
        CivilDate(year: 2026, month: 10, day: 1)!, CivilDate(year: 2026, month: 10, day: 2)!,
      ])
    #expect(settings.graceSeconds(grade: "B") == 60 && settings.graceSeconds(grade: "Z") == 5)
  }

  @Test(arguments: [
    ("control.password = 2:0", "control.password"),
    ("control.operator = 12345", "control.operator"),
    ("control.no_disconnect_hours = 18:00-18:00", "control.no_disconnect_hours"),
    ("control.no_disconnect_hours = 8-18", "control.no_disconnect_hours"),
    ("control.no_disconnect_days = saturday", "control.no_disconnect_days"),
    ("control.holidays = 2026-02-30", "control.holidays"),
    ("control.grace = A:-1", "control.grace"),
    ("control.grace = A:1,A:2", "control.grace"),
  ])
  func badValueIsRefusedAtLoadNamingItsKeyAndLine(line: String, key: String) throws {
    do {
      _ = try relayConfig(line)
      Issue.record("\(line) was accepted")
    } catch let error as ConfigError {
      #expect(error.key == key, "\(error)")
      #expect(error.line > 0, "\(error)")
    }
  }
}

/// The local decisions, on a real database without meter buses (nothing executes).
@Suite struct RelayDecisionTests {
  /// 2026-01-01 (a Thursday) 10:00 in China.
  static let t0 = chinaTime(10, 0)

  private func fixture(_ label: String, _ config: String = "") throws -> (ReadingsFixture, RelayControl) {
    let f = try ReadingsFixture(label)
    try installRelayArchive(f.store)
    let relay = RelayControl(
      store: f.store, outbox: f.outbox, thresholds: GradeThresholds(base: relayThresholds),
      settings: try RelaySettings(config: try relayConfig(config)), acquisition: nil)
    return (f, relay)
  }

  @Test func arrearsBeyondTheOverdraftLimitAreCutOnceTheGradesGraceHasPassed() throws {
    let (f, relay) = try fixture("relay-grace", "control.grace = A:3600,*:0")
    try setBalance(f.store, "C-1", -1001, at: Self.t0)
    try setBalance(f.store, "C-3", -1500, at: Self.t0)
    relay.evaluate(wall: Self.t0 + 1000)
    // C-3 (grade C, no grace) is cut; C-1 (grade A) waits an hour, silently.
    #expect(try relayRow(f.store, "000000000003") == ["open", "overdraft", "pending"])
    #expect(try relayRow(f.store, "000000000001") == nil)
    #expect(try outboxEvents(f.store, "relay.refused").isEmpty)
    relay.evaluate(wall: Self.t0 + 3_600_000)
    #expect(try relayRow(f.store, "000000000001") == nil)
    relay.evaluate(wall: Self.t0 + 3_601_000)
    #expect(try relayRow(f.store, "000000000001") == ["open", "overdraft", "pending"])
    let requested = try outboxEvents(f.store, "relay.requested")
    #expect(requested.map { $0["meter"] as? String } == ["000000000003", "000000000001"])
    #expect(requested[1]["balance_fen"] as? Int == -1001 && requested[1]["action"] as? String == "trip")
    // Evaluating again changes nothing; each decision is in the audit chain.
    relay.evaluate(wall: Self.t0 + 3_700_000)
    #expect(try outboxEvents(f.store, "relay.requested").count == 2)
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM audit WHERE kind = 'relay'") == 2)
    #expect(try AuditChain.verify(f.store.db).problems.isEmpty)
  }

  @Test func balanceAtTheOverdraftLimitIsNotCut() throws {
    let (f, relay) = try fixture("relay-at-limit")
    try setBalance(f.store, "C-3", -1000, at: Self.t0)
    relay.evaluate(wall: Self.t0 + 60_000)
    #expect(try relayRow(f.store, "000000000003") == nil)
  }

  @Test func keepPowerCustomerIsNeverCutAndTheRefusalIsReportedOncePerEpisode() throws {
    let (f, relay) = try fixture("relay-keep-power")
    try setBalance(f.store, "C-2", -5000, at: Self.t0)
    relay.evaluate(wall: Self.t0 + 1000)
    relay.evaluate(wall: Self.t0 + 11_000)
    #expect(try relayRow(f.store, "000000000002") == nil)
    var refused = try outboxEvents(f.store, "relay.refused")
    #expect(refused.count == 1)
    #expect(refused.first?["reason"] as? String == "keep-power")
    #expect(refused.first?["customer"] as? String == "C-2")
    #expect(refused.first?["detail"] as? String == "the customer is flagged keep-power")
    // A top-up ends the episode; the next one is reported again.
    try setBalance(f.store, "C-2", 100, at: Self.t0 + 20_000)
    relay.evaluate(wall: Self.t0 + 21_000)
    try setBalance(f.store, "C-2", -2000, at: Self.t0 + 30_000)
    relay.evaluate(wall: Self.t0 + 31_000)
    refused = try outboxEvents(f.store, "relay.refused")
    #expect(refused.count == 2)
  }

  @Test(arguments: [
    ("control.no_disconnect_hours = 09:00-11:00", "daily-window"),
    ("control.no_disconnect_hours = 22:00-10:30", "daily-window"),
    ("control.holidays = 2026-01-01", "holiday"),
    ("control.no_disconnect_days = thu", "weekend"),
    ("control.max_per_hour = 0", "rate-limit"),
  ])
  func calendarAndHourlyMaximumRefuseWithTheirReasonAndLaterAllow(line: String, reason: String) throws {
    let (f, relay) = try fixture("relay-calendar", line)
    try setBalance(f.store, "C-3", -1500, at: Self.t0 - 60_000)
    relay.evaluate(wall: Self.t0)
    #expect(try relayRow(f.store, "000000000003") == nil)
    let refused = try outboxEvents(f.store, "relay.refused")
    #expect(refused.map { $0["reason"] as? String } == [reason])
    if reason == "daily-window" {
      // Outside the window the same arrears are cut.
      relay.evaluate(wall: chinaTime(11, 30))
      #expect(try relayRow(f.store, "000000000003") == ["open", "overdraft", "pending"])
    }
  }

  @Test func atMostTheHourlyMaximumOfDisconnectionsIsStarted() throws {
    let (f, relay) = try fixture("relay-rate", "control.max_per_hour = 1")
    try setBalance(f.store, "C-1", -1500, at: Self.t0 - 60_000)
    try setBalance(f.store, "C-3", -1500, at: Self.t0 - 60_000)
    relay.evaluate(wall: Self.t0)
    #expect(try relayRow(f.store, "000000000001") == ["open", "overdraft", "pending"])
    #expect(try relayRow(f.store, "000000000003") == nil)
    #expect(try outboxEvents(f.store, "relay.refused").map { $0["reason"] as? String } == ["rate-limit"])
    relay.evaluate(wall: Self.t0 + 3_600_001)
    #expect(try relayRow(f.store, "000000000003") == ["open", "overdraft", "pending"])
  }

  @Test func tripNotCarriedOutYetIsWithdrawnWhenTheArrearsEnd() throws {
    let (f, relay) = try fixture("relay-withdrawn")
    try setBalance(f.store, "C-1", -1500, at: Self.t0 - 60_000)
    relay.evaluate(wall: Self.t0)
    #expect(try relayRow(f.store, "000000000001") == ["open", "overdraft", "pending"])
    // A partial top-up: above the overdraft limit, below the close-permit amount.
    try setBalance(f.store, "C-1", -500, at: Self.t0 + 60_000)
    relay.evaluate(wall: Self.t0 + 61_000)
    #expect(try relayRow(f.store, "000000000001") == ["closed", "withdrawn", "pending"])
  }

  @Test func topUpToTheClosePermitAmountRequestsTheCloseAndNotBefore() throws {
    let (f, relay) = try fixture("relay-close")
    try setBalance(f.store, "C-1", -1500, at: Self.t0 - 60_000)
    relay.evaluate(wall: Self.t0)
    try f.store.db.run("UPDATE relay SET state = 'done', verified = 'open' WHERE meter = '000000000001'")
    // Above the overdraft limit, below the close-permit amount: stays cut.
    try setBalance(f.store, "C-1", -500, at: Self.t0 + 60_000)
    relay.evaluate(wall: Self.t0 + 61_000)
    #expect(try relayRow(f.store, "000000000001") == ["open", "overdraft", "done"])
    try setBalance(f.store, "C-1", 0, at: Self.t0 + 120_000)
    relay.evaluate(wall: Self.t0 + 121_000)
    #expect(try relayRow(f.store, "000000000001") == ["closed", "topup", "pending"])
    #expect(
      try outboxEvents(f.store, "relay.requested").map { $0["action"] as? String } == ["trip", "close"])
  }
}

/// Signed `disconnect` / `reconnect` through the command handler and the policy.
@Suite struct RelayCommandTests {
  private func fixture(_ label: String, _ config: String) throws -> LedgerTests.Fixture {
    let f = try LedgerTests.Fixture(label)
    try installRelayArchive(f.store)
    f.handler.relay = RelayControl(
      store: f.store, outbox: try Outbox(store: f.store), thresholds: GradeThresholds(base: relayThresholds),
      settings: try RelaySettings(config: try relayConfig(config)), acquisition: nil)
    return f
  }

  private func results(_ f: LedgerTests.Fixture) throws -> [[String: Any]] {
    try f.store.db.query("SELECT record FROM outbox WHERE class = 'results' ORDER BY id").map {
      try jsonObject($0.text(0) ?? "")
    }
  }

  @Test func disconnectInANoDisconnectWindowIsRefusedAndTheResultSaysWhy() throws {
    // The fixture's time is 2026-09-21 22:13 China time.
    var f = try fixture("relay-cmd-window", "control.no_disconnect_hours = 18:00-08:00")
    let outcome = try f.send("disconnect", #"{"meter":"000000000001"}"#)
    #expect(outcome.outcome == "rejected")
    #expect(outcome.reason == "daily-window")
    #expect(outcome.detail.hasPrefix("refused: daily-window: "), "\(outcome.detail)")
    #expect(try relayRow(f.store, "000000000001") == nil)
    let result = try #require(try results(f).last)
    #expect(result["outcome"] as? String == "rejected" && result["typ"] as? String == "disconnect")
    #expect((result["detail"] as? String)?.hasPrefix("refused: daily-window") == true)
    let event = try #require(try outboxEvents(f.store, "relay.refused").first)
    #expect(event["ctr"] as? String == "1" && event["why"] as? String == "command")
    // The counter advanced: the same command cannot be replayed after the window.
    #expect(try f.store.db.query("SELECT last_counter FROM command_state").first?.text(0) == "1")
  }

  @Test func disconnectAndReconnectOrdersAreQueuedAndReconnectIsNeverRefused() throws {
    var f = try fixture("relay-cmd", "")
    var outcome = try f.send("disconnect", #"{"customer":"C-1"}"#)
    #expect(outcome.outcome == "applied", "\(outcome)")
    #expect(try relayRow(f.store, "000000000001") == ["open", "command", "pending"])
    #expect(
      try f.store.db.query("SELECT command_ctr FROM relay WHERE meter = '000000000001'").first?.text(0) == "1"
    )
    // Keep-power: refused even when HQ orders it.
    outcome = try f.send("disconnect", #"{"meter":"000000000002"}"#)
    #expect(outcome.reason == "keep-power" && outcome.detail.hasPrefix("refused: keep-power"))
    // Unknown meter, area meter, bad body.
    #expect(try f.send("disconnect", #"{"meter":"000000000077"}"#).reason == "unknown-meter")
    #expect(try f.send("disconnect", #"{"meter":"000000009999"}"#).reason == "unknown-meter")
    #expect(try f.send("reconnect", #"{"who":"C-1"}"#).reason == "malformed")
    // A reconnection during arrears holds the customer connected for the episode.
    try setBalance(f.store, "C-3", -5000, at: f.now * 1000 - 10_000)
    outcome = try f.send("reconnect", #"{"customer":"C-3"}"#)
    #expect(outcome.outcome == "applied")
    #expect(try relayRow(f.store, "000000000003") == ["closed", "command", "pending"])
    f.handler.relay!.evaluate(wall: f.now * 1000 + 60_000)
    #expect(try relayRow(f.store, "000000000003") == ["closed", "command", "pending"])
    #expect(try f.store.db.query("SELECT held_by FROM arrears WHERE customer = 'C-3'").first?.text(0) == "6")
    // A command order is not undone by a top-up: only HQ's reconnect closes it.
    try setBalance(f.store, "C-1", 10_000, at: f.now * 1000 + 70_000)
    f.handler.relay!.evaluate(wall: f.now * 1000 + 71_000)
    #expect(try relayRow(f.store, "000000000001") == ["open", "command", "pending"])
  }
}

/// Execution over a fake gateway: 0x1C between the polls, the relay read back,
/// retries, failure, restart, and energy registered while open.
@Suite(.serialized) struct RelayExecutionTests {
  private func harness(_ label: String, _ meters: [FakeMeter], config: String = "") throws -> (
    AcquisitionHarness, RelaySettings
  ) {
    let h = try AcquisitionHarness(label, meters: meters, start: chinaTime(10, 0), settings: quietSettings())
    try installRelayArchive(h.fixture.store)
    return (h, try RelaySettings(config: try relayConfig(config)))
  }

  private func relay(_ h: AcquisitionHarness, _ settings: RelaySettings) -> RelayControl {
    let relay = RelayControl(
      store: h.fixture.store, outbox: h.fixture.outbox, thresholds: GradeThresholds(base: relayThresholds),
      settings: settings,
      acquisition: h.acquisition)
    h.onTurn = { [h] in relay.tick(wall: h.wall) }
    return relay
  }

  @Test func tripIsVerifiedSurvivesARestartWatchesEnergyAndATopUpClosesIt() throws {
    let meter = FakeMeter("000000000001")
    let other = FakeMeter("000000000003")
    let (h, settings) = try harness("relay-exec", [meter, other])
    #expect(h.runCycle(chinaTime(10, 0)))
    try setBalance(h.fixture.store, "C-1", -2000, at: h.wall - 60_000)
    // Decided by one instance, executed by the next (an agent restart in between).
    let before = relay(h, settings)
    before.evaluate(wall: h.wall)
    #expect(try relayRow(h.fixture.store, "000000000001") == ["open", "overdraft", "pending"])
    let after = relay(h, settings)
    #expect(
      h.run(timeout: 10) {
        after.pendingCount == 0 && (try? relayRow(h.fixture.store, "000000000001"))?[2] == "done"
      })
    #expect(h.line.with { meter.relayOpen && meter.relayCommands == [.trip] })
    #expect(h.line.with { other.relayCommands.isEmpty })
    let row = try #require(
      try h.fixture.store.db.query(
        "SELECT verified, verified_wh, attempts FROM relay WHERE meter = '000000000001'"
      )
      .first)
    #expect(row.text(0) == "open")
    #expect(row.int64(1) == h.line.with { meter.registers.total * 10 })
    #expect(row.int64(2) == 1)
    let verified = try #require(try outboxEvents(h.fixture.store, "relay.verified").first)
    #expect(verified["relay"] as? String == "open" && verified["action"] as? String == "trip")
    // The request went out with the configured password and a valid-until 10 minutes on.
    let controls = h.line.requestLog.compactMap { entry -> ControlRequest? in
      if case .control(let c)? = try? Request(frame: entry.frame) { return c }
      return nil
    }
    let control = try #require(controls.first)
    #expect(control.password == settings.password && control.command == .trip)
    #expect(control.validUntil.hour == 10 && control.validUntil.minute == 10)

    // Energy registered while open: a possible bypass, reported once.
    h.line.with {
      meter.registers = EnergyRegisters(total: meter.registers.total + 25, tariffs: meter.registers.tariffs)
    }
    h.jump(to: chinaTime(10, 15))
    #expect(h.runCycle(chinaTime(10, 15)))
    after.evaluate(wall: h.wall)
    after.evaluate(wall: h.wall + 1000)
    let anomalies = try outboxEvents(h.fixture.store, "relay.energy_while_open")
    #expect(anomalies.count == 1)
    #expect(anomalies.first?["delta_wh"] as? Int == 250)

    // A top-up to the close-permit amount: closed within the loop turn, verified.
    try setBalance(h.fixture.store, "C-1", 500, at: h.wall)
    after.evaluate(wall: h.wall)
    #expect(h.run(timeout: 10) { after.pendingCount == 0 })
    #expect(h.line.with { !meter.relayOpen && meter.relayCommands == [.trip, .closePermit] })
    #expect(try relayRow(h.fixture.store, "000000000001") == ["closed", "topup", "done"])
    #expect(try AuditChain.verify(h.fixture.store.db).problems.isEmpty)
  }

  @Test func relayThatDoesNotMoveIsRetriedWithBackoffThenReportedFailed() throws {
    let meter = FakeMeter("000000000003")
    meter.relayStuck = true
    let (h, settings) = try harness(
      "relay-stuck", [meter], config: "control.attempts = 3\ncontrol.retry_min = 200\ncontrol.retry_max = 300"
    )
    let relay = relay(h, settings)
    try setBalance(h.fixture.store, "C-3", -2000, at: h.wall - 60_000)
    relay.evaluate(wall: h.wall)
    let started = monotonicSeconds()
    #expect(h.run(timeout: 10) { (try? relayRow(h.fixture.store, "000000000003"))?[2] == "failed" })
    // Three tries, 200 ms and 300 ms apart.
    #expect(monotonicSeconds() - started >= 0.5)
    #expect(h.line.with { meter.relayCommands } == [.trip, .trip, .trip])
    let failed = try #require(try outboxEvents(h.fixture.store, "relay.failed").first)
    #expect(failed["attempts"] as? Int == 3)
    #expect((failed["reason"] as? String)?.contains("the relay reads closed after the command") == true)
    #expect(relay.pendingCount == 0)
  }

  @Test func tripDecidedBeforeANoDisconnectWindowWaitsUntilItEnds() throws {
    let meter = FakeMeter("000000000003")
    let (h, settings) = try harness(
      "relay-window", [meter], config: "control.no_disconnect_hours = 09:00-11:00")
    let relay = relay(h, settings)
    try setBalance(h.fixture.store, "C-3", -2000, at: chinaTime(8, 0))
    relay.evaluate(wall: chinaTime(8, 59))
    #expect(try relayRow(h.fixture.store, "000000000003") == ["open", "overdraft", "pending"])
    // 10:00, in the window: nothing goes to the meter.
    h.run(timeout: 1.5) { false }
    #expect(h.line.with { meter.relayCommands.isEmpty })
    #expect(try relayRow(h.fixture.store, "000000000003") == ["open", "overdraft", "pending"])
    h.jump(to: chinaTime(11, 1))
    #expect(h.run(timeout: 10) { relay.pendingCount == 0 })
    #expect(h.line.with { meter.relayOpen && meter.relayCommands == [.trip] })
  }

  @Test func wrongPasswordIsReportedWithTheMetersRefusal() throws {
    let meter = FakeMeter("000000000003")
    let (h, settings) = try harness(
      "relay-password", [meter], config: "control.attempts = 1\ncontrol.password = 02:111111")
    let relay = relay(h, settings)
    try setBalance(h.fixture.store, "C-3", -2000, at: h.wall - 60_000)
    relay.evaluate(wall: h.wall)
    #expect(h.run(timeout: 10) { (try? relayRow(h.fixture.store, "000000000003"))?[2] == "failed" })
    let failed = try #require(try outboxEvents(h.fixture.store, "relay.failed").first)
    #expect((failed["reason"] as? String)?.contains("wrong password or unauthorised") == true, "\(failed)")
  }
}

import Foundation
import GridEdgeContract
import GridEdgeCore
import Runtime
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Work orders (signed `workorder` commands) and the inspector's flow on a real SQLite
/// file: states, checklists, photos in chunks, immutability, cancellations.
@Suite struct InspectionTests {
  private final class Fixture {
    let dir: URL
    let store: AgentStore
    let outbox: Outbox
    let handler: CommandHandler
    let inspection: Inspection
    let key: Ed25519KeyPair
    var counter: UInt64 = 0
    let now: Int64 = 1_790_000_000_000

    init(_ label: String, settings: Inspection.Settings = Inspection.Settings()) throws {
      dir = try makeTemporaryDirectory(label)
      store = try AgentStore(path: dir.appendingPathComponent("agent.db").path, deviceID: "HH-1", now: 0)
      outbox = try Outbox(store: store)
      key = try Ed25519KeyPair()
      var keys = TrustedKeys()
      try keys.add(key.publicKey, keyID: "hq1")
      handler = try CommandHandler(
        store: store, outbox: outbox, trustedKeys: keys, clockSkewSeconds: 300, offset: .china,
        maxSignatureFailures: 100)
      inspection = Inspection(store: store, outbox: outbox, settings: settings)
    }

    /// Sends a signed `workorder` command with `body` through the command handler.
    @discardableResult
    func send(_ body: String, at wall: Int64? = nil) throws -> CommandHandler.Outcome {
      counter += 1
      let json = try Connection(path: ":memory:")
      let seconds = (wall ?? now) / 1000
      let token = try Command(
        device: "HH-1", counter: counter, issuedAt: seconds, expiresAt: seconds + 3600,
        type: CommandType(name: "workorder")!, body: body
      ).signed(with: key, keyID: "hq1", json: json)
      return try handler.handle(Array(token.utf8), wall: wall ?? now, monotonic: 0)
    }

    func records(_ uplink: String) throws -> [[String: Any]] {
      try store.db.query("SELECT record FROM outbox WHERE class = ?1 ORDER BY id", [.text(uplink)]).map {
        try JSONSerialization.jsonObject(with: Data(($0.text(0) ?? "").utf8)) as! [String: Any]
      }
    }

    /// Everything a failed step must leave untouched.
    func snapshot() throws -> [Int64] {
      try [
        "SELECT count(*) FROM outbox", "SELECT count(*) FROM audit",
        "SELECT count(*) FROM work_order_findings",
        "SELECT count(*) FROM work_order_photos", "SELECT count(*) FROM work_orders WHERE state <> 'open'",
        "SELECT count(*) FROM work_orders WHERE rating IS NOT NULL",
      ].map { try store.db.scalarInt($0) ?? -1 }
    }
  }

  static let order = #"""
    {"id":"WO-1","kind":"anti-theft","priority":2,"grade":"A","due":1790086400000,"customer":"C-7",
     "address":"12 Grid Road","meter":"000000000007","last":{"wh":1234500,"ts":1789990000000}}
    """#

  @Test func aWorkOrderIsStoredAndListedKeyCustomersFirstAndABadOneIsRefusedWithNothingStored() throws {
    let f = try Fixture("inspect-orders")
    #expect(try f.send(Self.order).outcome == "applied")
    let later =
      #"{"id":"WO-2","kind":"repair","priority":1,"grade":"C","customer":"C-8","address":"1 Side St"}"#
    #expect(try f.send(later).outcome == "applied")
    let list =
      try JSONSerialization.jsonObject(with: Data(try f.inspection.listJSON(all: false).utf8))
      as! [[String: Any]]
    #expect(
      list.map { $0["id"] as? String } == ["WO-1", "WO-2"], "grade A before a higher priority of grade C")
    #expect(list[0]["meter"] as? String == "000000000007")
    #expect(list[0]["cancelled"] as? Bool == false)

    let again = try f.send(Self.order)
    #expect(again.reason == "duplicate")
    for (body, words) in [
      (#"{"id":"WO-3","kind":"survey","priority":1,"customer":"C","address":"A"}"#, "kind must be"),
      (#"{"id":"WO-3","kind":"reading","priority":1,"customer":"C","address":"A"}"#, "needs a meter"),
      (#"{"id":"WO-3","kind":"repair","priority":0,"customer":"C","address":"A"}"#, "priority"),
      (#"{"id":"WO 3","kind":"repair","priority":1,"customer":"C","address":"A"}"#, "id"),
      (#"{"id":"WO-3","kind":"repair","priority":1,"customer":"C"}"#, "address"),
    ] {
      let outcome = try f.send(body)
      #expect(outcome.outcome == "rejected" && outcome.reason == "malformed", "\(body)")
      #expect(outcome.detail.contains(words), "\(outcome.detail)")
    }
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM work_orders") == 2)
    // Every outcome went to HQ in class results.
    #expect(try f.records("results").count == 8)
  }

  @Test func theWholeFlowMakesRecordsWithServiceFiguresInTheOutboxAndTheAuditChain() throws {
    var settings = Inspection.Settings()
    settings.photoChunkBytes = 1024
    let f = try Fixture("inspect-flow", settings: settings)
    try f.send(Self.order)
    let t0 = f.now
    #expect(try f.inspection.accept("WO-1", now: t0 + 60_000).hasSuffix("-wo-WO-1-accepted"))
    _ = try f.inspection.arrive("WO-1", now: t0 + 1_800_000)
    _ = try f.inspection.finding(
      "WO-1", item: "seals", value: "S-100:intact,S-101:broken", now: t0 + 1_900_000)
    _ = try f.inspection.finding("WO-1", item: "wiring", value: "tampered", now: t0 + 1_900_000)
    let display = try f.inspection.finding("WO-1", item: "display", value: "1200.5", now: t0 + 1_900_000)
    #expect(display == #"{"wh":1200500,"last_wh":1234500,"difference_wh":-34000,"discrepancy":true}"#)
    _ = try f.inspection.finding("WO-1", item: "theft", value: "bypass", now: t0 + 1_900_000)
    _ = try f.inspection.finding(
      "WO-1", item: "notes", value: "jumper \"behind\" the meter", now: t0 + 1_900_000)
    let photoBytes = (0..<2500).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    let path = f.dir.appendingPathComponent("p1.jpg").path
    try Data(photoBytes).write(to: URL(fileURLWithPath: path))
    let photo = try f.inspection.photo("WO-1", path: path, now: t0 + 2_000_000)
    #expect(photo.chunks == 3 && photo.size == 2500)
    #expect(photo.sha256 == SHA256.hash(photoBytes).map { String(format: "%02x", $0) }.joined())
    try f.inspection.confirm("WO-1", by: "Mr. Wang", rating: "4", now: t0 + 2_100_000)
    let record = try f.inspection.complete("WO-1", now: t0 + 2_400_000)

    let chunks = try f.records("attachments")
    #expect(chunks.count == 3)
    var joined: [UInt8] = []
    for (i, chunk) in chunks.enumerated() {
      #expect(
        chunk["index"] as? Int == i && chunk["count"] as? Int == 3 && chunk["order"] as? String == "WO-1")
      joined += try Base64URL.decode(chunk["data"] as! String)
    }
    #expect(joined == photoBytes)
    let records = try f.records("records")
    #expect(
      records.map { $0["type"] as? String } == [
        "workorder.accepted", "workorder.arrived", "workorder.completed",
      ])
    let done = records[2]
    #expect(done["id"] as? String == record)
    let service = done["service"] as! [String: Any]
    #expect(service["dispatch_to_arrival_s"] as? Int == 1800)
    #expect(service["arrival_to_completion_s"] as? Int == 600)
    let findings = done["findings"] as! [String: Any]
    #expect((findings["seals"] as! [[String: String]])[1] == ["number": "S-101", "state": "broken"])
    #expect(findings["notes"] as? String == "jumper \"behind\" the meter")
    #expect(((done["photos"] as! [[String: Any]])[0]["sha256"] as? String) == photo.sha256)
    #expect((done["confirmation"] as! [String: Any])["rating"] as? Int == 4)
    // Each record entered the audit chain, which verifies.
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM audit WHERE kind = 'workorder'") == 4)
    #expect(try AuditChain.verify(f.store.db).problems.isEmpty)
  }

  @Test func completeRefusesAMissingMandatoryItemAndBadInputWritesNothing() throws {
    var settings = Inspection.Settings()
    settings.photoMaxBytes = 1000
    let f = try Fixture("inspect-refusals", settings: settings)
    try f.send(Self.order)
    func refused(_ code: String, _ words: String, _ step: () throws(InspectionError) -> Void) throws {
      let before = try f.snapshot()
      do {
        try step()
        Issue.record("expected \(code)")
      } catch {
        #expect(error.code == code, "\(error)")
        #expect(error.description.contains(words), "\(error)")
      }
      #expect(try f.snapshot() == before, "\(code) wrote something")
    }
    try refused("unknown-order", "no work order WO-9") { () throws(InspectionError) in
      _ = try f.inspection.accept("WO-9", now: f.now)
    }
    try refused("wrong-state", "it must be accepted") { () throws(InspectionError) in
      _ = try f.inspection.arrive("WO-1", now: f.now)
    }
    _ = try f.inspection.accept("WO-1", now: f.now)
    _ = try f.inspection.arrive("WO-1", now: f.now)
    try refused("bad-value", "seal state") { () throws(InspectionError) in
      _ = try f.inspection.finding("WO-1", item: "seals", value: "S-1:gone", now: f.now)
    }
    try refused("bad-value", "unknown checklist item") { () throws(InspectionError) in
      _ = try f.inspection.finding("WO-1", item: "colour", value: "red", now: f.now)
    }
    try refused("bad-value", "kWh") { () throws(InspectionError) in
      _ = try f.inspection.finding("WO-1", item: "display", value: "12.345", now: f.now)
    }
    try refused("photo", "does not exist") { () throws(InspectionError) in
      _ = try f.inspection.photo("WO-1", path: f.dir.appendingPathComponent("none.jpg").path, now: f.now)
    }
    let big = f.dir.appendingPathComponent("big.jpg").path
    try Data(repeating: 7, count: 1001).write(to: URL(fileURLWithPath: big))
    try refused("photo", "above the limit of 1000 (inspection.photo_max_bytes)") {
      () throws(InspectionError) in
      _ = try f.inspection.photo("WO-1", path: big, now: f.now)
    }
    try refused("bad-value", "--rating") { () throws(InspectionError) in
      try f.inspection.confirm("WO-1", by: "X", rating: "6", now: f.now)
    }
    _ = try f.inspection.finding("WO-1", item: "seals", value: "S-1:intact", now: f.now)
    try refused("missing-items", "missing wiring, theft, confirmation") { () throws(InspectionError) in
      _ = try f.inspection.complete("WO-1", now: f.now)
    }
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM work_orders WHERE state = 'arrived'") == 1)
  }

  @Test func aCompletedOrderIsImmutableAndACorrectionIsANewRecordReferringToIt() throws {
    let f = try Fixture("inspect-immutable")
    try f.send(
      #"{"id":"R-1","kind":"reading","priority":5,"customer":"C-1","address":"A","meter":"000000000001"}"#)
    _ = try f.inspection.accept("R-1", now: f.now)
    _ = try f.inspection.arrive("R-1", now: f.now)
    _ = try f.inspection.finding("R-1", item: "display", value: "100.01", now: f.now)
    let completed = try f.inspection.complete("R-1", now: f.now + 1000)
    do {
      _ = try f.inspection.finding("R-1", item: "display", value: "100.02", now: f.now)
      Issue.record("a completed order took a finding")
    } catch {
      #expect(error.code == "wrong-state" && error.description.contains("immutable"), "\(error)")
    }
    // Not even SQL around the code can change it.
    #expect(throws: SQLiteError.self) { try f.store.db.run("UPDATE work_order_findings SET value = '1'") }
    #expect(throws: SQLiteError.self) { try f.store.db.run("UPDATE work_orders SET rating = 5") }
    let correction = try f.inspection.correct(
      "R-1", item: "display", value: "100.02", note: "misread the last digit", now: f.now + 5000)
    let last = try f.records("records").last!
    #expect(last["id"] as? String == correction && last["type"] as? String == "workorder.correction")
    #expect(last["refers_to"] as? String == completed)
    #expect((last["value"] as? [String: Any])?["wh"] as? Int == 100_020)
    #expect(try f.store.db.query("SELECT value FROM work_order_findings").first?.text(0) == #"{"wh":100010}"#)
  }

  @Test func anOrderCancelledAtHQAfterItWasCompletedOfflineIsReportedNotLost() throws {
    let f = try Fixture("inspect-cancel")
    try f.send(
      #"{"id":"R-1","kind":"reading","priority":5,"customer":"C-1","address":"A","meter":"000000000001"}"#)
    try f.send(
      #"{"id":"R-2","kind":"reading","priority":5,"customer":"C-2","address":"B","meter":"000000000002"}"#)
    _ = try f.inspection.accept("R-1", now: f.now)
    _ = try f.inspection.arrive("R-1", now: f.now)
    _ = try f.inspection.finding("R-1", item: "display", value: "5", now: f.now)
    let completed = try f.inspection.complete("R-1", now: f.now)
    let late = try f.send(#"{"id":"R-1","cancel":true,"reason":"customer moved"}"#)
    #expect(late.outcome == "applied" && late.detail.contains("after it was completed"), "\(late)")
    let event = try f.records("events").last!
    #expect(event["type"] as? String == "workorder.cancel_after_close")
    #expect(event["closing_record"] as? String == completed)
    #expect(try f.records("records").contains { $0["id"] as? String == completed })
    do {
      _ = try f.inspection.finding("R-1", item: "notes", value: "late", now: f.now)
      Issue.record("a completed, cancelled order took a finding")
    } catch {
      #expect(error.code == "wrong-state" && error.description.contains("immutable"), "\(error)")
    }
    // A cancellation before any work: the order can no longer be worked on.
    #expect(try f.send(#"{"id":"R-2","cancel":true}"#).outcome == "applied")
    do {
      _ = try f.inspection.accept("R-2", now: f.now)
      Issue.record("a cancelled order was accepted")
    } catch {
      #expect(error.code == "cancelled", "\(error)")
    }
    #expect(try f.send(#"{"id":"R-9","cancel":true}"#).reason == "unknown-order")
  }

  @Test func theMeterReadOnSiteOverASerialPortIsComparedWithHQsLastValue() throws {
    let f = try Fixture("inspect-read")
    let start = Int64(Date().timeIntervalSince1970)
    let model = ["--meters", "2", "--start", String(start), "--seed", "7"]
    let sim = try Child(
      "gridedge-sim", ["serve"] + model + ["--pty", "--tcp", "0", "--log-level", "info"], in: f.dir)
    try sim.waitForLog("pty /dev/")
    let pty = try #require(sim.log.components(separatedBy: "pty ").last?.prefix { !$0.isWhitespace })
    func truth(_ at: Int64) throws -> (wh: Int64, relayOpen: Bool) {
      let out = try runProduct("gridedge-sim", ["truth"] + model + ["--at", String(at)], in: f.dir)
      let customers = try jsonObject(out.stdout)["customers"] as? [[String: Any]] ?? []
      let meter = try #require(customers.first { $0["address"] as? String == "000000000002" })
      // What the meter registers: forward active total in 0.01 kWh.
      let register = (meter["forward_centi_kwh"] as? [Int])?.first ?? -1
      return (Int64(register) * 10, meter["relay_open"] as? Bool ?? true)
    }
    // HQ's last value is above what the meter holds: a discrepancy.
    let above = try truth(start).wh + 50_000
    try f.send(
      #"{"id":"MC-1","kind":"meter-check","priority":3,"customer":"C-2","address":"A","meter":"000000000002","last":{"wh":"#
        + String(above) + #","ts":1}}"#)
    _ = try f.inspection.accept("MC-1", now: f.now)
    _ = try f.inspection.arrive("MC-1", now: f.now)
    let before = Int64(Date().timeIntervalSince1970)
    let json = try f.inspection.readMeter(
      "MC-1", transport: SerialPort(path: String(pty), baud: 2400), clock: SystemClock(), now: f.now)
    let after = Int64(Date().timeIntervalSince1970) + 1
    let reading = try jsonObject(json)
    let wh = Int64(reading["wh"] as? Int ?? -1)
    let low = try truth(before)
    let high = try truth(after).wh
    #expect(wh >= low.wh && wh <= high, "\(json)")
    #expect(reading["relay"] as? String == (low.relayOpen ? "open" : "closed"))
    #expect(reading["discrepancy"] as? Bool == true && reading["difference_wh"] as? Int == Int(wh - above))
    let findings = try f.store.db.query(
      "SELECT item FROM work_order_findings WHERE order_id = 'MC-1' ORDER BY item"
    ).map { $0.text(0) }
    #expect(findings == ["discrepancy", "reading"])
    // A meter that is not on the line: a clear error, nothing written.
    try f.send(
      #"{"id":"MC-2","kind":"meter-check","priority":3,"customer":"C-9","address":"A","meter":"000000000099"}"#
    )
    _ = try f.inspection.accept("MC-2", now: f.now)
    _ = try f.inspection.arrive("MC-2", now: f.now)
    do throws(InspectionError) {
      _ = try f.inspection.readMeter(
        "MC-2", transport: SerialPort(path: String(pty), baud: 2400), clock: SystemClock(), now: f.now)
      Issue.record("an absent meter gave a reading")
    } catch {
      #expect(error.code == "meter" && error.description.contains("000000000099 on serial"), "\(error)")
    }
    #expect(try f.store.db.scalarInt("SELECT count(*) FROM work_order_findings WHERE order_id = 'MC-2'") == 0)

    // The same through the command line and a serial-to-TCP gateway.
    try sim.waitForLog("listening on tcp 127.0.0.1:")
    let port = try #require(
      sim.log.components(separatedBy: "listening on tcp 127.0.0.1:").last?.prefix { $0.isNumber })
    try f.send(
      #"{"id":"MC-3","kind":"meter-check","priority":3,"customer":"C-1","address":"A","meter":"000000000001"}"#
    )
    _ = try f.inspection.accept("MC-3", now: f.now)
    _ = try f.inspection.arrive("MC-3", now: f.now)
    let config = f.dir.appendingPathComponent("handheld.conf").path
    try "device.id = HH-1\ndevice.profile = handheld\nstore.path = \(f.store.db.path)\n".write(
      toFile: config, atomically: true, encoding: .utf8)
    let cli = try runProduct(
      "gridedge",
      ["inspect", "read", "MC-3", "--gateway", "127.0.0.1:\(port)", "--config", config, "--json"], in: f.dir)
    #expect(cli.status == 0, "\(cli.stderr)")
    let value = try jsonObject(cli.stdout)["value"] as? [String: Any]
    #expect((value?["wh"] as? Int ?? 0) > 0 && value?["source"] as? String == "meter", "\(cli.stdout)")
    #expect(value?["discrepancy"] == nil, "no last value from HQ: nothing to compare")
    let bad = try runProduct(
      "gridedge", ["inspect", "read", "MC-3", "--config", config, "--json"], in: f.dir)
    #expect(bad.status == 2 && bad.stdout.contains("--port DEVICE"), "\(bad)")
    sim.signal(SIGTERM)
    _ = try sim.wait(timeout: 10)
  }

  @Test func handBackAndCorrectionThroughTheCommandLineWithClearErrors() throws {
    let f = try Fixture("inspect-cli")
    let config = f.dir.appendingPathComponent("handheld.conf").path
    try "device.id = HH-1\ndevice.profile = handheld\nstore.path = \(f.store.db.path)\n".write(
      toFile: config, atomically: true, encoding: .utf8)
    func inspect(_ words: [String], status: Int32 = 0) throws -> [String: Any] {
      let out = try runProduct("gridedge", ["inspect"] + words + ["--config", config, "--json"], in: f.dir)
      #expect(out.status == status, "inspect \(words): \(out.stderr)")
      return try jsonObject(out.stdout)
    }
    try f.send(#"{"id":"H-1","kind":"repair","priority":2,"customer":"C-1","address":"A"}"#)
    try f.send(
      #"{"id":"R-1","kind":"reading","priority":5,"customer":"C-2","address":"B","meter":"000000000002"}"#)
    #expect(try inspect(["handback", "H-1"], status: 2)["error"] as? String == "bad-value")
    #expect(try inspect(["accept", "H-1"])["state"] as? String == "accepted")
    let back = try inspect(["handback", "H-1", "--reason", "gate locked, nobody home"])
    #expect(back["state"] as? String == "handed-back")
    #expect(try inspect(["arrive", "H-1"], status: 2)["error"] as? String == "wrong-state")
    #expect(try inspect(["accept", "NOPE"], status: 2)["error"] as? String == "unknown-order")
    _ = try inspect(["accept", "R-1"])
    _ = try inspect(["arrive", "R-1"])
    _ = try inspect(["finding", "R-1", "display", "77.7"])
    #expect(
      try inspect(["correct", "R-1", "display", "77.8", "--note", "x"], status: 2)["error"] as? String
        == "wrong-state")
    _ = try inspect(["complete", "R-1"])
    #expect(try inspect(["correct", "R-1", "display", "77.8"], status: 2)["error"] as? String == "bad-value")
    let corrected = try inspect(["correct", "R-1", "display", "77.8", "--note", "digit misread"])
    #expect((corrected["record"] as? String ?? "").hasSuffix("-wo-R-1-correction-1"))
    let records = try f.records("records")
    let handback = try #require(records.first { $0["type"] as? String == "workorder.handed-back" })
    #expect(handback["reason"] as? String == "gate locked, nobody home")
    #expect(records.last?["type"] as? String == "workorder.correction")
    #expect(try AuditChain.verify(f.store.db).problems.isEmpty)
  }
}

import Foundation
import SQLiteStore
import TestSupport
import Testing

/// HQ's archive drives which meters are read, end to end: `gridedge-sim` meters on TCP,
/// a real mosquitto, `gridedge-hq` signing the archive commands, and `gridedge run`
/// without `meter.file`.
@Suite(.serialized) struct ArchiveEndToEndTests {
  private let device = "TA-ARCHIVE"

  /// One archive meter entry on bus `bus`.
  static func meter(_ n: Int, bus: String = "1", customer: String? = nil) -> String {
    let address = String(repeating: "0", count: 11) + String(n)
    return """
      {"address":"\(address)","customer":"\(customer ?? "C-\(n)")","area":"TA-1","category":"residential",\
      "bus":"\(bus)"}
      """
  }

  /// The real-time readings (00 01 FF 00 or 00 01 00 00) of `meter` in the agent's
  /// database, slot timestamps.
  private func readingSlots(_ dbPath: String, _ meter: Int) -> [Int64] {
    guard let db = try? readOnlyConnection(dbPath),
      let rows = try? db.query(
        "SELECT ts FROM readings WHERE meter = ?1 AND di IN ('0001FF00', '00010000') ORDER BY ts",
        [.text(String(repeating: "0", count: 11) + String(meter))])
    else { return [] }
    return rows.compactMap { $0.int64(0) }
  }

  @Test func snapshotAddRemoveAndReplacementChangeTheMetersReadWithoutARestart() throws {
    let dir = try makeTemporaryDirectory("archive-e2e")
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    let (sim, simPort) = try startSimulator(["--meters", "4", "--no-area"], in: dir)
    let rig = try HQUnderTest(in: dir)
    let agentDB = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try
      (agentBaseConfig(device: device, dir: dir, port: rig.port, keys: keys) + """
        bus.1 = tcp 127.0.0.1:\(simPort) 9600 8E1
        bus.timeout = 300
        acquisition.interval = 1
        acquisition.clock_check = 0
        acquisition.backfill_days = 0
        acquisition.silent_cycles = 2
        log.level = info

        """
    ).write(toFile: config, atomically: true, encoding: .utf8)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String {
      [agent, sim, rig.hq].map { String($0.log.suffix(4000)) }.joined(separator: "\n----\n")
    }
    func send(_ body: String) throws {
      let out = try hqSend("archive", body, device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir)
      guard out.status == 0 else { throw TestFailure("gridedge-hq send archive: \(out.stderr)") }
    }
    func waitForLog(_ text: String) throws {
      guard waitUntil(timeout: 60, { agent.log.contains(text) }) else {
        throw TestFailure("agent did not log '\(text)'\n\(logs())")
      }
    }
    // Nothing in the archive yet: nothing is read.
    try waitForLog("reading the 0 meter(s) of HQ's archive version 0")

    // A snapshot with meters 1 and 2 on bus 1, meter 5 on bus 1 that is not there, and
    // meter 9 on bus 2 (not configured).
    try send(
      #"{"op":"snapshot","version":1,"meters":["# + Self.meter(1) + "," + Self.meter(2, bus: "rs485-1") + ","
        + Self.meter(5, bus: "bus.1") + "," + Self.meter(9, bus: "rs485-2") + "]}")
    try waitForLog("archive version 1: 3 meter(s) to read")
    guard waitUntil(timeout: 150, { !readingSlots(agentDB, 1).isEmpty && !readingSlots(agentDB, 2).isEmpty })
    else { throw TestFailure("meters 1 and 2 were not read after the snapshot\n\(logs())") }
    #expect(readingSlots(agentDB, 3).isEmpty, "meter 3 is not in the archive yet")
    #expect(agent.log.contains("archive meter 000000000009 is on bus 'rs485-2'"))

    // An add: meter 3 is read without a restart.
    try send(#"{"op":"add","version":2,"meters":["# + Self.meter(3) + "]}")
    try waitForLog("archive version 2: 4 meter(s) to read")
    guard waitUntil(timeout: 150, { !readingSlots(agentDB, 3).isEmpty }) else {
      throw TestFailure("meter 3 was not read after the add\n\(logs())")
    }

    // A remove: meter 2 is no longer read (from the slot after the remove on).
    try send(#"{"op":"remove","version":3,"meters":[{"address":"000000000002"}]}"#)
    try waitForLog("archive version 3: 3 meter(s) to read")
    let removedAt = Int64(Date().timeIntervalSince1970 * 1000)
    guard
      waitUntil(
        timeout: 200,
        {
          readingSlots(agentDB, 1).contains { $0 > removedAt }
            && readingSlots(agentDB, 3).contains { $0 > removedAt }
        })
    else { throw TestFailure("meters 1 and 3 were not read after the remove\n\(logs())") }
    #expect(!readingSlots(agentDB, 2).contains { $0 > removedAt }, "meter 2 was read after its removal")

    // HQ learnt of the unconfigured bus, and status shows the version.
    guard
      waitUntil(
        timeout: 30,
        {
          (try? hqEventTypes(rig.db))?.contains("archive.unpolled") ?? false
        })
    else { throw TestFailure("no archive.unpolled event at HQ\n\(logs())") }
    let status = try runProduct("gridedge", ["status", "--config", config, "--json"], in: dir)
    let archive = try jsonObject(status.stdout)["archive"] as? [String: Any]
    #expect(archive?["version"] as? Int == 3)
    #expect(archive?["meters"] as? Int == 4)
    #expect(archive?["polled_from"] as? String == "archive")
    // `gridedge archive --json`: the version, the meters, and which are read.
    let shown = try runProduct("gridedge", ["archive", "--config", config, "--json"], in: dir)
    #expect(shown.status == 0, "\(shown.stderr)")
    let list = try jsonObject(shown.stdout)
    #expect(list["version"] as? Int == 3)
    let meters = list["meters"] as? [[String: Any]] ?? []
    #expect(
      meters.compactMap { $0["address"] as? String } == [
        "000000000001", "000000000003", "000000000005", "000000000009",
      ])
    #expect(meters.first?["read_by"] as? String == "bus.1")
    #expect(meters.last?["read_by"] as? String == "not read: bus 'rs485-2' is not configured")
    #expect(meters.first?["customer"] as? String == "C-1")
    let text = try runProduct("gridedge", ["archive", "--config", config], in: dir)
    #expect(text.stdout.hasPrefix("archive version 3 (applied "), "\(text.stdout)")
    // Meter 5 never answers: reported after 2 cycles, and listed by `archive diff`.
    guard
      waitUntil(
        timeout: 200,
        {
          (try? hqEventTypes(rig.db))?.contains("archive.silent") ?? false
        })
    else { throw TestFailure("no archive.silent event at HQ\n\(logs())") }
    #expect(
      agent.log.contains(
        "meter 000000000005 on bus 1 answered nothing in 2 cycle(s) in a row (never answered)"))
    // The bus search (after the first cycle) finds meter 4: on the bus, not in the archive.
    guard waitUntil(timeout: 120, { (try? hqEventTypes(rig.db))?.contains("bus.search") ?? false }) else {
      throw TestFailure("no bus.search event at HQ\n\(logs())")
    }
    let diff = try runProduct("gridedge", ["archive", "diff", "--config", config, "--json"], in: dir)
    #expect(diff.status == 0, "\(diff.stderr)")
    var states: [String: String] = [:]
    for meter in try jsonObject(diff.stdout)["meters"] as? [[String: Any]] ?? [] {
      states[meter["address"] as? String ?? ""] = meter["state"] as? String
    }
    #expect(
      states == [
        "000000000001": "answering", "000000000003": "answering", "000000000005": "silent",
        "000000000009": "not-read", "000000000002": "not-in-archive", "000000000004": "not-in-archive",
      ], "\(diff.stdout)")
    let foundBy = (try jsonObject(diff.stdout)["meters"] as? [[String: Any]] ?? []).filter {
      $0["found_by"] as? String == "bus-search"
    }
    #expect(foundBy.compactMap { $0["address"] as? String }.contains("000000000004"), "\(diff.stdout)")
    let diffText = try runProduct("gridedge", ["archive", "diff", "--config", config], in: dir)
    #expect(diffText.stdout.contains("2 archive meter(s) answering, 4 to look at"), "\(diffText.stdout)")
    #expect(diffText.stdout.contains("found by a search of bus 1"), "\(diffText.stdout)")
    // A replacement: meter 3 swapped for meter 4 (on the bus, not yet in the archive),
    // which takes customer C-3 and is read from then on; meter 3 no longer is. (The
    // final reading is set well above the last one, so a read of meter 3 in between
    // cannot make it lower.)
    let lastOfThree = try lastReading(agentDB, 3)
    let swapAt = Int64(Date().timeIntervalSince1970 * 1000)
    try send(
      #"{"op":"replace","version":4,"old":"000000000003","new":{"address":"000000000004"},"#
        + #""old_final_wh":\#(lastOfThree + 100_000),"new_initial_wh":0,"at":\#(swapAt)}"#)
    try waitForLog("archive version 4: 3 meter(s) to read")
    guard waitUntil(timeout: 150, { readingSlots(agentDB, 4).contains { $0 > swapAt } }) else {
      throw TestFailure("meter 4 was not read after the replacement\n\(logs())")
    }
    #expect(!readingSlots(agentDB, 3).contains { $0 > swapAt }, "meter 3 was read after its replacement")
    let afterSwap = try jsonObject(
      try runProduct("gridedge", ["archive", "--config", config, "--json"], in: dir).stdout)
    #expect(afterSwap["version"] as? Int == 4)
    let swapped = (afterSwap["meters"] as? [[String: Any]] ?? []).first {
      $0["address"] as? String == "000000000004"
    }
    #expect(swapped?["customer"] as? String == "C-3")
    #expect(
      (afterSwap["meters"] as? [[String: Any]] ?? []).allSatisfy {
        $0["address"] as? String != "000000000003"
      })
    agent.signal()
    #expect(try agent.wait(timeout: 20) == 0)
    withExtendedLifetime(rig) {}
  }

  /// The newest real-time reading of `meter` in the agent's database (Wh).
  private func lastReading(_ dbPath: String, _ meter: Int) throws -> Int64 {
    let db = try readOnlyConnection(dbPath)
    guard
      let value = try db.scalarInt(
        "SELECT value FROM readings WHERE meter = ?1 AND di IN ('0001FF00', '00010000') ORDER BY ts DESC LIMIT 1",
        [.text(String(repeating: "0", count: 11) + String(meter))])
    else { throw TestFailure("no reading of meter \(meter)") }
    return value
  }

  /// The event types HQ has received from this device.
  private func hqEventTypes(_ hqDB: String) throws -> [String] {
    let db = try readOnlyConnection(hqDB)
    return try db.query(
      "SELECT json_extract(body, '$.type') FROM records WHERE device_id = ?1 AND class = 'events'",
      [.text(device)]
    ).compactMap { $0.text(0) }
  }
}

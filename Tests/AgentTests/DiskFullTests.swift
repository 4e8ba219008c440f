import Foundation
import SQLiteStore
import TestSupport
import Testing

/// A full disk (issue 8): the agent's database on a small tmpfs, meters read from
/// `gridedge-sim` every minute, the filesystem filled up between two cycles. The
/// agent must keep running, say clearly that the disk is full, hold what it read,
/// and store it once space returns: no reading lost, the database intact.
@Suite(.serialized) struct DiskFullTests {
  @Test func aFullDiskIsReportedNothingIsLostAndTheAgentRecoversWhenSpaceReturns() throws {
    guard getuid() == 0 else {
      throw TestFailure("this test mounts a tmpfs with a size and needs root (make test runs as root in CI)")
    }
    let dir = try makeTemporaryDirectory("disk-full")
    let small = dir.appendingPathComponent("small")
    try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
    let mounted = try runProcess("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", small.path])
    guard mounted.status == 0 else { throw TestFailure("mount -t tmpfs failed: \(mounted.output)") }
    defer { _ = try? runProcess("umount", ["-l", small.path]) }

    let model = ["--meters", "20", "--start", String(Int64(Date().timeIntervalSince1970))]
    let listed = try runProduct("gridedge-sim", ["list", "--json"] + model, in: dir)
    guard listed.status == 0 else { throw TestFailure("gridedge-sim list: \(listed.stderr)") }
    let json = try jsonObject(listed.stdout)
    var meters = (json["customers"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
    if let area = (json["area"] as? [String: Any])?["address"] as? String { meters.append(area) }
    #expect(meters.count == 21)
    let meterFile = dir.appendingPathComponent("meters.txt")
    try meters.map { $0 + " 1" }.joined(separator: "\n").write(
      to: meterFile, atomically: true, encoding: .utf8)
    let (sim, simPort) = try startSimulator(model, in: dir)
    // The database on the small filesystem; the logs stay outside it. No broker: the
    // agent keeps everything in its outbox.
    let agentDB = small.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("agent.conf").path
    try """
    device.id = TA-FULL
    store.path = \(agentDB)
    mqtt.port = \(try freeLoopbackPort())
    meter.file = \(meterFile.path)
    bus.1 = tcp 127.0.0.1:\(simPort) 9600 8E1
    bus.timeout = 300
    acquisition.interval = 1
    acquisition.backfill_days = 0
    log.level = info
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("reading(s) stored", timeout: 60)

    // Fill the filesystem: the next cycle cannot write. The write-ahead log is first
    // cut to nothing (it keeps its size after a checkpoint, and the room left in it
    // would take several cycles' readings, more as the schema grows).
    let emptied = waitUntil(timeout: 30) {
      guard let db = try? Connection(path: agentDB),
        let row = try? db.query("PRAGMA wal_checkpoint(TRUNCATE)").first
      else { return false }
      db.close()
      return row.int64(0) == 0
    }
    #expect(emptied, "the agent's write-ahead log could not be checkpointed and truncated")
    let filler = small.appendingPathComponent("filler")
    let written = try fill(filler)
    #expect(written > 0)
    // The next cycle's readings cannot be stored: said clearly, and held. (Room left in
    // the write-ahead log can take one more cycle's readings: up to two cycles.)
    try agent.waitForLog("reading(s): SQLite error 13 (database or disk is full)", timeout: 170)
    #expect(agent.child.isRunning, "the agent ended on a full disk; log:\n\(agent.log)")

    // Space returns: what was read while the disk was full is stored at the next flush.
    try FileManager.default.removeItem(at: filler)
    let slots: [Int64] = try {
      var found: [Int64] = []
      let ok = waitUntil(timeout: 150) {
        found = (try? realtimeSlots(agentDB, meters: meters.count)) ?? []
        return found.count >= 3
      }
      guard ok else {
        throw TestFailure("fewer than 3 complete cycles stored after space returned: \(found)")
      }
      return found
    }()
    // Every minute from the first cycle on holds all 21 meters: none was lost.
    for (a, b) in zip(slots, slots.dropFirst()) {
      #expect(b - a == 60_000, "a cycle is missing between \(a) and \(b): \(slots)")
    }
    #expect(agent.child.isRunning)
    #expect(sim.child.isRunning)

    agent.signal()
    #expect(try agent.wait(timeout: 20) == 0)
    let db = try Connection(path: agentDB)
    #expect(try db.query("PRAGMA integrity_check").first?.text(0) == "ok")
    soakFigure("diskfull_cycles_after_space_returned", slots.count, "cycles")
    soakFigure(
      "diskfull_cycles_missing",
      slots.count - 1 - zip(slots, slots.dropFirst()).filter { $1 - $0 == 60_000 }.count, "cycles")
  }

  /// Writes `url` until the filesystem is full; returns the bytes written.
  private func fill(_ url: URL) throws -> Int {
    guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
      throw TestFailure("cannot create \(url.path)")
    }
    let handle = try FileHandle(forWritingTo: url)
    defer { try? handle.close() }
    let chunk = Data(count: 64 * 1024)
    var written = 0
    while true {
      do {
        try handle.write(contentsOf: chunk)
        written += chunk.count
      } catch {
        break
      }
    }
    // The last partial chunk: byte by byte is too slow; 1 KiB steps.
    let small = Data(count: 1024)
    while (try? handle.write(contentsOf: small)) != nil { written += small.count }
    return written
  }

  /// The real-time slots (ms) in which every one of `meters` meters has a reading,
  /// oldest first.
  private func realtimeSlots(_ path: String, meters: Int) throws -> [Int64] {
    let db = try readOnlyConnection(path)
    return try db.query(
      "SELECT ts FROM readings WHERE di = '0001FF00' GROUP BY ts HAVING count(*) = ?1 ORDER BY ts",
      [.integer(Int64(meters))]
    ).compactMap { $0.int64(0) }
  }
}

import Foundation
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

@Suite struct AgentStoreTests {
  @Test func identityIsMadeOnceAndKeptAcrossOpens() throws {
    let dir = try makeTemporaryDirectory("agent-store")
    let path = dir.appendingPathComponent("a.db").path
    let first = try AgentStore(path: path, deviceID: "TA-1", now: 1)
    #expect(first.storeID.count == 16)
    #expect(first.storeID.allSatisfy { $0.isHexDigit })
    let second = try AgentStore(path: path, deviceID: "TA-1", now: 2)
    #expect(second.storeID == first.storeID)
    let other = try AgentStore(
      path: dir.appendingPathComponent("b.db").path, deviceID: "TA-1", now: 3)
    #expect(other.storeID != first.storeID)
  }

  /// Migration 17 keeps the swaps recorded before it, and lets a meter be the old one
  /// of a second swap (it was the table's key before).
  @Test func migration17KeepsTheSwapsAndAllowsASecondSwapOfTheSameMeter() throws {
    let dir = try makeTemporaryDirectory("agent-store-17")
    let path = dir.appendingPathComponent("a.db").path
    do {
      let db = try Connection(path: path)
      _ = try Migrator(Array(AgentStore.migrations.prefix { $0.id < 17 })).migrate(db)
      try db.run(
        """
        INSERT INTO meter_replacements (old, new, customer, category, area, at, old_final_wh, new_initial_wh,
          version, applied_at) VALUES ('000000000001', '000000000101', 'C-1', 'residential', 'TA-1', 100, 5, 0, 2, 1)
        """)
      db.close()
    }
    let store = try AgentStore(path: path, deviceID: "TA-1", now: 1)
    let kept = try store.db.query("SELECT id, old, new, at FROM meter_replacements").map { $0.values }
    #expect(kept == [[.integer(1), .text("000000000001"), .text("000000000101"), .integer(100)]])
    try store.db.run(
      """
      INSERT INTO meter_replacements (old, new, customer, category, area, at, old_final_wh, new_initial_wh,
        version, applied_at) VALUES ('000000000001', '000000000201', 'C-2', 'residential', 'TA-1', 900, 9, 0, 4, 2)
      """)
    #expect(try store.db.scalarInt("SELECT count(*) FROM meter_replacements WHERE old = '000000000001'") == 2)
  }

  @Test func bootEpochsCountUpAndAreRecorded() throws {
    let dir = try makeTemporaryDirectory("agent-store")
    let store = try AgentStore(path: dir.appendingPathComponent("a.db").path, deviceID: "TA-1", now: 1)
    #expect(try store.beginBoot(now: 10, pid: 1, version: "t") == 1)
    try store.endBoot(1, now: 20, reason: "SIGTERM")
    #expect(try store.beginBoot(now: 30, pid: 1, version: "t") == 2)
    let rows = try store.db.query("SELECT epoch, stopped_at, stop_reason FROM boots ORDER BY epoch")
    #expect(rows.count == 2)
    #expect(rows[0].text(2) == "SIGTERM")
    #expect(rows[1][1] == .null)
  }

  @Test func databaseOfAnotherDeviceIsRefused() throws {
    let dir = try makeTemporaryDirectory("agent-store")
    let path = dir.appendingPathComponent("a.db").path
    _ = try AgentStore(path: path, deviceID: "TA-1", now: 1)
    do {
      _ = try AgentStore(path: path, deviceID: "TA-2", now: 2)
      Issue.record("expected a refusal")
    } catch {
      #expect(error.description.contains("belongs to device 'TA-1', not 'TA-2'"))
      #expect(error.quarantinedTo == nil)
    }
    #expect(FileManager.default.fileExists(atPath: path))
  }

  @Test func corruptDatabaseIsQuarantinedAndRefused() throws {
    let dir = try makeTemporaryDirectory("agent-store")
    let path = dir.appendingPathComponent("a.db").path
    try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: path))
    do {
      _ = try AgentStore(path: path, deviceID: "TA-1", now: 42)
      Issue.record("expected a refusal")
    } catch {
      #expect(error.quarantinedTo == path + ".corrupt-42")
      #expect(error.description.contains("quarantined to " + path + ".corrupt-42"))
    }
    #expect(!FileManager.default.fileExists(atPath: path))
    #expect(FileManager.default.fileExists(atPath: path + ".corrupt-42"))
    // The next start makes a fresh database.
    _ = try AgentStore(path: path, deviceID: "TA-1", now: 43)
  }
}

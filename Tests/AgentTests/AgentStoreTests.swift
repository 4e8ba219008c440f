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

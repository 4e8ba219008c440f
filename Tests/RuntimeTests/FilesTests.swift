import Foundation
import Testing

@testable import Runtime

@Suite struct FilesTests {
  private func temporaryPath(_ name: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gridedge-runtime-" + UUID().uuidString)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
  }

  @Test func writeAtomicallyThenReadGivesTheSameBytes() throws {
    let path = try temporaryPath("a.bin")
    let bytes: [UInt8] = (0..<10_000).map { UInt8($0 % 251) }
    try Files.writeAtomically(path, bytes)
    #expect(try Files.read(path) == bytes)
    #expect(Files.size(path) == 10_000)
    #expect(!Files.exists(path + ".tmp"))
  }

  @Test func readingAMissingFileNamesItAndSaysNotFound() throws {
    let path = try temporaryPath("missing.conf")
    do {
      _ = try Files.read(path)
      Issue.record("expected an error")
    } catch {
      #expect(error.isNotFound)
      #expect(error.description.contains(path))
    }
  }

  @Test func removeIgnoresMissingFiles() throws {
    let path = try temporaryPath("gone")
    try Files.remove(path)
    try Files.writeAtomically(path, [1])
    try Files.remove(path)
    #expect(!Files.exists(path))
  }
}

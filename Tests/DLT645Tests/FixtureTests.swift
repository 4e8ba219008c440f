import Foundation
import Testing

@testable import DLT645

/// One malformed-input fixture from Tests/Fixtures/dlt645: hex bytes and, in `#` header
/// lines, the layer that must reject them, the error code and a part of the message.
struct Fixture: CustomTestStringConvertible, Sendable {
  let name: String
  let bytes: [UInt8]
  let layer: String
  let error: String
  let message: String
  let framesAfter: Int

  var testDescription: String { name }

  init(url: URL) throws {
    name = url.lastPathComponent
    let text = try String(contentsOf: url, encoding: .utf8)
    var fields: [String: String] = [:]
    var hexLines = ""
    for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
      if line.hasPrefix("#") {
        let body = line.dropFirst().trimmingCharacters(in: .whitespaces)
        if let colon = body.firstIndex(of: ":") {
          let key = String(body[..<colon])
          if ["layer", "error", "message", "frames-after"].contains(key) {
            fields[key] = body[body.index(after: colon)...].trimmingCharacters(in: .whitespaces)
          }
        }
      } else {
        hexLines += line + " "
      }
    }
    bytes = hex(hexLines)
    layer = fields["layer"] ?? ""
    error = fields["error"] ?? ""
    message = fields["message"] ?? ""
    framesAfter = Int(fields["frames-after"] ?? "0") ?? -1
  }
}

let fixtureFiles: [URL] =
  ((try? FileManager.default.contentsOfDirectory(at: fixturesDirectory, includingPropertiesForKeys: nil))
  ?? [])
  .filter { $0.pathExtension == "hex" }
  .sorted { $0.lastPathComponent < $1.lastPathComponent }

@Suite struct FixtureTests {
  @Test func fixturesArePresentAndComplete() throws {
    #expect(fixtureFiles.count >= 20, "fixtures missing from \(fixturesDirectory.path)")
    for url in fixtureFiles {
      let fixture = try Fixture(url: url)
      #expect(!fixture.bytes.isEmpty, "\(fixture.name): no bytes")
      #expect(["frame", "request", "reply", "value"].contains(fixture.layer), "\(fixture.name): layer")
      #expect(!fixture.error.isEmpty && !fixture.message.isEmpty, "\(fixture.name): error and message")
      #expect(fixture.framesAfter >= 0, "\(fixture.name): frames-after")
    }
  }

  @Test(arguments: fixtureFiles)
  func malformedInputProducesItsError(_ url: URL) throws {
    let fixture = try Fixture(url: url)
    switch fixture.layer {
    case "frame":
      var decoder = FrameDecoder()
      decoder.feed(fixture.bytes)
      var frames: [Frame] = []
      var errors: [FrameError] = []
      while true {
        do {
          guard let frame = try decoder.next() else { break }
          frames.append(frame)
        } catch {
          errors.append(error)
        }
      }
      do { try decoder.finish() } catch { errors.append(error) }
      let first = try #require(errors.first, "\(fixture.name): no error")
      check(fixture, first.code.description, first.description)
      #expect(frames.count == fixture.framesAfter, "\(fixture.name): frames decoded after the error")
      #expect(decoder.bufferedByteCount == 0)
    case "request":
      let frame = try #require(decodeOne(fixture.bytes), "\(fixture.name): frame must be well-formed")
      let error = try #require(throws: MessageError.self) { try Request(frame: frame) }
      check(fixture, error.code.description, error.description)
    case "reply":
      let frame = try #require(decodeOne(fixture.bytes), "\(fixture.name): frame must be well-formed")
      let error = try #require(throws: MessageError.self) { try Reply(frame: frame) }
      check(fixture, error.code.description, error.description)
    case "value":
      let frame = try #require(decodeOne(fixture.bytes), "\(fixture.name): frame must be well-formed")
      guard case .readData(let identifier, let value, _) = try Reply(frame: frame) else {
        Issue.record("\(fixture.name): not a read reply")
        return
      }
      let error = try #require(throws: ValueError.self) {
        try MeterValue(decoding: value[...], for: identifier)
      }
      check(fixture, error.code.description, error.description)
    default:
      Issue.record("\(fixture.name): unknown layer \(fixture.layer)")
    }
  }

  private func check(_ fixture: Fixture, _ code: String, _ description: String) {
    #expect(code == fixture.error, "\(fixture.name): \(description)")
    #expect(description.contains(fixture.message), "\(fixture.name): \(description)")
  }
}

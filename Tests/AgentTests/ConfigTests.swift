import Foundation
import Testing

@testable import GridEdgeAgent

@Suite struct ConfigTests {
  private let minimal = "device.id = TA-1\n"

  @Test func minimalFileGetsDefaults() throws {
    let c = try Config.parse(minimal, file: "x.conf")
    #expect(c.string("device.id") == "TA-1")
    #expect(c.string("device.profile") == "concentrator")
    #expect(c.integer("mqtt.port") == 1883)
    #expect(c.string("mqtt.tls.ca_file") == nil)
  }

  @Test func commentsBlankLinesAndSpacesAreIgnored() throws {
    let c = try Config.parse("# hello\n\n  device.id=TA-2  \r\n\tmqtt.port =  8883\n", file: "x.conf")
    #expect(c.string("device.id") == "TA-2")
    #expect(c.integer("mqtt.port") == 8883)
    #expect(c.line(of: "mqtt.port") == 4)
  }

  private func failure(_ text: String) -> String {
    do {
      _ = try Config.parse(text, file: "board.conf")
      return "accepted"
    } catch {
      return error.description
    }
  }

  @Test func unknownKeyNamesFileLineAndKey() {
    #expect(failure(minimal + "mqtt.prot = 1\n") == "board.conf:2: key 'mqtt.prot': unknown key")
  }

  @Test func badValuesNameTheExpectation() {
    #expect(
      failure(minimal + "mqtt.port = 70000\n")
        == "board.conf:2: key 'mqtt.port': expected an integer in 1...65535, got '70000'")
    #expect(
      failure(minimal + "mqtt.port = 18x\n")
        == "board.conf:2: key 'mqtt.port': expected an integer in 1...65535, got '18x'")
    #expect(
      failure(minimal + "device.profile = meter\n")
        == "board.conf:2: key 'device.profile': expected one of concentrator, handheld, got 'meter'")
    #expect(failure("device.id = TA/1\n").hasPrefix("board.conf:1: key 'device.id': expected a device id"))
    #expect(failure(minimal + "mqtt.host =\n") == "board.conf:2: key 'mqtt.host': expected text, got nothing")
  }

  @Test func lineWithoutEqualsIsRefused() {
    #expect(failure("device.id TA-1\n") == "board.conf:1: expected 'key = value', got 'device.id TA-1'")
  }

  @Test func repeatedKeyIsRefused() {
    #expect(
      failure(minimal + "device.id = TA-2\n") == "board.conf:2: key 'device.id': set twice (first on line 1)")
  }

  @Test func missingRequiredKeyIsNamed() {
    #expect(failure("mqtt.port = 1883\n") == "board.conf: key 'device.id': required but not set")
  }

  @Test func tlsFilesMustComeTogether() {
    #expect(failure(minimal + "mqtt.tls.cert_file = a.pem\n").contains("must be set together"))
    #expect(
      failure(minimal + "mqtt.tls.cert_file = a.pem\nmqtt.tls.key_file = a.key\n").contains(
        "needs mqtt.tls.ca_file"))
    #expect(
      failure(minimal + "mqtt.reconnect_min = 5000\nmqtt.reconnect_max = 2000\n").contains("must not be less")
    )
  }

  @Test func missingFileIsNamed() {
    do {
      _ = try Config.load(path: "/nonexistent/gridedge.conf")
      Issue.record("expected an error")
    } catch {
      #expect(error.description == "/nonexistent/gridedge.conf: no such file")
    }
  }

  @Test func everyKeyHasDocumentationAndValidDefault() throws {
    var names = Set<String>()
    for key in ConfigSchema.keys {
      #expect(names.insert(key.name).inserted, "\(key.name) is listed twice")
      #expect(key.summary.hasSuffix("."), "\(key.name) needs a sentence of documentation")
      if let value = key.defaultValue {
        // The default must pass the key's own check.
        let text = key.name == "device.id" ? "device.id = \(value)\n" : minimal + "\(key.name) = \(value)\n"
        _ = try Config.parse(text, file: "defaults.conf")
      }
    }
  }
}

/// The example files in firmware-config/ against the configuration table.
@Suite struct FirmwareConfigTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("firmware-config")

  @Test(arguments: ["concentrator.conf", "handheld.conf"])
  func exampleFileIsValidAndDocumentsEveryKey(name: String) throws {
    let url = Self.root.appendingPathComponent(name)
    let config = try Config.load(path: url.path)
    #expect(config.string("device.profile") == name.replacingOccurrences(of: ".conf", with: ""))
    let lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
    for key in ConfigSchema.keys {
      // The key appears set or commented out ("# key = default"), after a comment with its summary.
      guard
        let index = lines.firstIndex(where: {
          $0.hasPrefix(key.name + " =") || $0.hasPrefix("# " + key.name + " =")
        })
      else {
        Issue.record("\(name) does not list \(key.name)")
        continue
      }
      let before = lines[..<index].suffix(3).joined(separator: "\n")
      #expect(before.contains(key.summary), "\(name): \(key.name) lacks its documentation line")
      if lines[index].hasPrefix("# "), let value = key.defaultValue {
        #expect(
          lines[index] == "# \(key.name) = \(value)",
          "\(name): the commented default of \(key.name) is not \(value)")
      }
    }
  }
}

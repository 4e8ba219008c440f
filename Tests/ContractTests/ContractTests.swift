import Foundation
import SQLiteStore
import Testing

@testable import GridEdgeContract

@Suite struct TopicsTests {
  @Test func topicNamesFollowContractV1() {
    #expect(Topics.state("TA-1") == "gridedge/v1/TA-1/state")
    #expect(Topics.up("TA-1", .readings) == "gridedge/v1/TA-1/up/readings")
    #expect(Topics.downAck("TA-1") == "gridedge/v1/TA-1/down/ack")
    #expect(Topics.downCommand("TA-1") == "gridedge/v1/TA-1/down/cmd")
    #expect(Topics.downAll("TA-1") == "gridedge/v1/TA-1/down/+")
    #expect(Topics.allStates() == "gridedge/v1/+/state")
    #expect(Topics.allStates(sharedGroup: "hq") == "$share/hq/gridedge/v1/+/state")
  }

  @Test func deviceIDsAreOneToThirtyTwoOfAlphanumericAndDash() {
    #expect(Topics.isValidDeviceID("A"))
    #expect(Topics.isValidDeviceID(String(repeating: "z", count: 32)))
    #expect(!Topics.isValidDeviceID(""))
    #expect(!Topics.isValidDeviceID(String(repeating: "z", count: 33)))
    for bad in ["a/b", "a+b", "a#b", "a b", "a_b", "ä", "a\u{0}"] {
      #expect(!Topics.isValidDeviceID(bad), "\(bad) should be refused")
    }
  }

  @Test func parseSplitsDeviceAndRestAndRefusesOthers() {
    let parsed = Topics.parse("gridedge/v1/TA-1/up/readings")
    #expect(parsed?.device == "TA-1")
    #expect(parsed?.rest == "up/readings")
    #expect(Topics.parse("gridedge/v2/TA-1/state") == nil)
    #expect(Topics.parse("gridedge/v1/TA+1/state") == nil)
    #expect(Topics.parse("gridedge/v1/TA-1") == nil)
  }

  @Test func uplinkClassNamesRoundTrip() {
    for c in UplinkClass.allCases { #expect(UplinkClass(name: c.name) == c) }
    #expect(UplinkClass(name: "photos") == nil)
  }
}

@Suite struct StateMessageTests {
  private func database() throws -> Connection {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gridedge-contract-" + UUID().uuidString)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return try Connection(path: dir.appendingPathComponent("c.db").path)
  }

  @Test func birthEncodesMembersInOrderWithoutAbsentOptionals() throws {
    let db = try database()
    let birth = StateMessage(
      state: .online, epoch: 7, device: "TA-1", store: "00ff00ff00ff00ff", time: 1_767_225_600_000,
      version: "0.1.0", profile: "concentrator")
    let text = String(decoding: try birth.encode(db), as: UTF8.self)
    #expect(
      text
        == #"{"state":"online","epoch":7,"dev":"TA-1","store":"00ff00ff00ff00ff","ts":1767225600000,"version":"0.1.0","profile":"concentrator"}"#
    )
    #expect(try StateMessage.decode(Array(text.utf8), db) == birth)
  }

  @Test func willRoundTripsWithReason() throws {
    let db = try database()
    let will = StateMessage(state: .offline, epoch: 1, device: "D", store: "s", time: 5, reason: "lost")
    #expect(try StateMessage.decode(try will.encode(db), db) == will)
  }

  @Test func birthOfADeviceWhoseDiskFailsCarriesTheStorageStateAndRoundTrips() throws {
    let db = try database()
    let birth = StateMessage(
      state: .online, epoch: 3, device: "TA-1", store: "s", time: 9,
      storage: .init(since: 5, error: "disk I/O error", step: "storing readings"))
    let text = String(decoding: try birth.encode(db), as: UTF8.self)
    #expect(
      text
        == #"{"state":"online","epoch":3,"dev":"TA-1","store":"s","ts":9,"storage":{"state":"failing","since":5,"error":"disk I/O error","step":"storing readings"}}"#
    )
    #expect(try StateMessage.decode(Array(text.utf8), db) == birth)
    let sound = #"{"state":"online","epoch":3,"dev":"TA-1","store":"s","ts":9,"storage":{"state":"ok"}}"#
    #expect(try StateMessage.decode(Array(sound.utf8), db).storage == nil)
  }

  @Test func malformedStatesNameWhatIsWrong() throws {
    let db = try database()
    let cases: [(String, String)] = [
      ("not json", "payload is not valid JSON"),
      ("[1,2]", "payload is not valid JSON"),
      (#"{"epoch":1,"dev":"D","store":"s","ts":1}"#, "member \"state\" is missing"),
      (#"{"state":"maybe","epoch":1,"dev":"D","store":"s","ts":1}"#, "member \"state\" is invalid"),
      (#"{"state":"online","epoch":"1","dev":"D","store":"s","ts":1}"#, "member \"epoch\" is invalid"),
      (#"{"state":"online","dev":"D","store":"s","ts":1}"#, "member \"epoch\" is missing"),
      (#"{"state":"online","epoch":1,"dev":"D/x","store":"s","ts":1}"#, "member \"dev\" is invalid"),
      (#"{"state":"online","epoch":1,"dev":"D","ts":1}"#, "member \"store\" is missing"),
      (#"{"state":"online","epoch":1,"dev":"D","store":"s"}"#, "member \"ts\" is missing"),
      (
        #"{"state":"online","epoch":1,"dev":"D","store":"s","ts":1,"storage":{"state":"failing"}}"#,
        "member \"storage\" is invalid"
      ),
    ]
    for (payload, expected) in cases {
      do {
        _ = try StateMessage.decode(Array(payload.utf8), db)
        Issue.record("accepted \(payload)")
      } catch {
        #expect(error.description.hasPrefix(expected), "\(payload): \(error.description)")
      }
    }
  }
}

@Suite struct SHA256Tests {
  private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

  @Test func knownVectorsFromFIPS180() {
    #expect(hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(
      hex(SHA256.hash(Array("abc".utf8)))
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(
      hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
        == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
  }

  @Test func millionAsMatchesTheStandard() {
    #expect(
      hex(SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000)))
        == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }
}

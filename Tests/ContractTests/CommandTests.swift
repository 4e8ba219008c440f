import Foundation
import SQLiteStore
import Testing

@testable import GridEdgeContract

/// The fixtures' setting (Tests/Fixtures/jws/expectations.txt).
enum CommandFixture {
  static let device = "TA-1"
  static let now: Int64 = 1_767_225_660
  static let issuedAt: Int64 = 1_767_225_600
  static let lastCounter: UInt64 = 6
  static let body = #"{"meter":"000000000001","purchase":3,"fen":10000}"#

  static func verifier() throws -> CommandVerifier {
    try CommandVerifier(device: device, trustedKeys: try RFC8037.trusted(), allowedClockSkew: 300)
  }

  /// A valid command of the fixtures' setting, with changes applied.
  static func command(_ change: (inout Command) -> Void = { _ in }) -> Command {
    var command = Command(
      device: device, counter: 7, issuedAt: issuedAt, expiresAt: issuedAt + 3600, type: .topup, body: body)
    change(&command)
    return command
  }

  /// Claims text signed as is with the RFC 8037 key under kid "rfc8037".
  static func token(claims: String) throws -> String {
    try JWS.sign(payload: Array(claims.utf8), key: try RFC8037.keyPair(), keyID: "rfc8037")
  }
}

@Suite struct CommandTypeTests {
  @Test func namesRoundTripAndUnknownNamesAreNil() {
    #expect(
      CommandType.allCases.map(\.name) == [
        "tariff", "topup", "disconnect", "reconnect", "keep-power", "workorder", "config", "archive",
        "outage", "planned-outage",
      ])
    for type in CommandType.allCases { #expect(CommandType(name: type.name) == type) }
    for unknown in ["", "Topup", "keepPower", "keep_power", "reboot", "topup "] {
      #expect(CommandType(name: unknown) == nil, "\(unknown)")
    }
  }
}

@Suite struct CommandTests {
  @Test func parseCounterIsStrictAndCoversAllOfUInt64() {
    #expect(Command.parseCounter("0") == 0)
    #expect(Command.parseCounter("1") == 1)
    #expect(Command.parseCounter("9223372036854775808") == 9_223_372_036_854_775_808)
    #expect(Command.parseCounter("18446744073709551615") == UInt64.max)
    for bad in [
      "", "18446744073709551616", "99999999999999999999", "01", "+1", "-1", " 1", "1 ", "1e3", "1.0", "0x10",
    ] {
      #expect(Command.parseCounter(bad) == nil, "\(bad)")
    }
  }

  @Test func claimsAreWrittenInOrderWithTheBodyMinified() throws {
    let command = CommandFixture.command {
      $0.counter = UInt64.max
      $0.type = .keepPower
      $0.body = #"{ "customer" : "C-1",  "on": true, "big": 18446744073709551616 }"#
    }
    #expect(
      try command.claims(json: try JWSTestSupport.json())
        == #"{"dev":"TA-1","ctr":18446744073709551615,"iat":1767225600,"exp":1767229200,"typ":"keep-power","body":{"customer":"C-1","on":true,"big":18446744073709551616}}"#
    )
  }

  @Test func claimsRefuseWhatNoDeviceWouldAccept() throws {
    let json = try JWSTestSupport.json()
    let cases: [(Command, String)] = [
      (CommandFixture.command { $0.device = "TA/1" }, "is not a device id"),
      (CommandFixture.command { $0.device = #"TA","ctr":99,"x":""# }, "is not a device id"),
      (CommandFixture.command { $0.counter = 0 }, "ctr must be at least 1"),
      (CommandFixture.command { $0.expiresAt = $0.issuedAt }, "before exp"),
      (CommandFixture.command { $0.issuedAt = -1 }, "at least 0"),
      (CommandFixture.command { $0.body = "[1]" }, "body is not a JSON object"),
      (CommandFixture.command { $0.body = #"{"a":1}, "ctr": 99"# }, "body is not a JSON object"),
      (CommandFixture.command { $0.body = #"{"fen":1,"fen":100000}"# }, #"body has the member "fen" twice"#),
      (CommandFixture.command { $0.body = "" }, "body is not a JSON object"),
    ]
    for (command, message) in cases {
      do {
        _ = try command.claims(json: json)
        Issue.record("claims written for \(command)")
      } catch {
        #expect(error.code == "cannot-sign")
        #expect(error.description.contains(message), "\(error.description)")
      }
    }
  }

  @Test func signedCommandVerifiesWithEveryField() throws {
    let command = CommandFixture.command { $0.type = .disconnect }
    let token = try command.signed(
      with: try RFC8037.keyPair(), keyID: "rfc8037", json: try JWSTestSupport.json())
    let verified = try CommandFixture.verifier().verify(
      token, lastCounter: CommandFixture.lastCounter, now: CommandFixture.now)
    #expect(verified.command == command)
    #expect(verified.keyID == "rfc8037")
    #expect(verified.algorithm == "Ed25519")
  }

  @Test func counterAboveInt64MaxIsReadExactly() throws {
    // SQLite's json_extract would give a REAL (1.84467440737096e+19) for these.
    let json = try JWSTestSupport.json()
    let verifier = try CommandFixture.verifier()
    for counter: UInt64 in [UInt64(Int64.max), UInt64(Int64.max) + 1, UInt64.max - 1, UInt64.max] {
      let token = try CommandFixture.command { $0.counter = counter }.signed(
        with: try RFC8037.keyPair(), keyID: "rfc8037", json: json)
      let verified = try verifier.verify(token, lastCounter: counter - 1, now: CommandFixture.now)
      #expect(verified.command.counter == counter)
      #expect(throws: CommandRejection.self) {
        try verifier.verify(token, lastCounter: counter, now: CommandFixture.now)
      }
    }
  }
}

@Suite struct CommandVerifierTests {
  /// The rejection of `token`, or nil when it is accepted.
  private func rejection(
    _ token: String, lastCounter: UInt64 = CommandFixture.lastCounter, now: Int64 = CommandFixture.now,
    device: String = CommandFixture.device, trusted: TrustedKeys? = nil
  ) throws -> CommandRejection? {
    let verifier = try CommandVerifier(
      device: device, trustedKeys: try trusted ?? RFC8037.trusted(), allowedClockSkew: 300)
    do {
      _ = try verifier.verify(token, lastCounter: lastCounter, now: now)
      return nil
    } catch {
      return error
    }
  }

  private func signed(_ change: (inout Command) -> Void = { _ in }) throws -> String {
    try CommandFixture.command(change).signed(
      with: try RFC8037.keyPair(), keyID: "rfc8037", json: try JWSTestSupport.json())
  }

  @Test func validCommandIsAccepted() throws {
    #expect(try rejection(try signed()) == nil)
  }

  @Test func malformedSaysWhat() throws {
    let rejected = try rejection(try CommandFixture.token(claims: #"{"dev":"TA-1"}"#))
    #expect(rejected?.code == "malformed")
    #expect(rejected?.description == "malformed command: claim ctr is missing")
    #expect(rejected?.isAuthentic == true)
    #expect(rejected?.counter == nil)
  }

  @Test func malformedClaimsNameTheClaim() throws {
    let base = #""dev":"TA-1","iat":1767225600,"exp":1767229200,"typ":"topup","body":{}"#
    let cases: [(String, String)] = [
      ("{" + base + #","ctr":"7"}"#, "claim ctr is not an integer (it is text)"),
      ("{" + base + #","ctr":7.5}"#, "claim ctr is not an integer (it is real)"),
      ("{" + base + #","ctr":-7}"#, "claim ctr is negative"),
      (
        "{" + base + #","ctr":18446744073709551616}"#,
        "claim ctr 18446744073709551616 is larger than 18446744073709551615"
      ),
      (
        #"{"dev":7,"ctr":7,"iat":1,"exp":2,"typ":"topup","body":{}}"#,
        "claim dev is not a string (it is integer)"
      ),
      (
        #"{"dev":"TA-1","ctr":7,"iat":1767225600.0,"exp":2,"typ":"topup","body":{}}"#,
        "claim iat is not an integer"
      ),
      (
        #"{"dev":"TA-1","ctr":7,"iat":1,"exp":99999999999999999999,"typ":"topup","body":{}}"#,
        "claim exp is out of range"
      ),
      (#"{"dev":"TA-1","ctr":7,"iat":-1,"exp":2,"typ":"topup","body":{}}"#, "must not be negative"),
      (#"{"dev":"TA-1","ctr":7,"iat":5,"exp":5,"typ":"topup","body":{}}"#, "claim exp is not after iat"),
      (
        #"{"dev":"TA-1","ctr":7,"iat":1,"exp":2,"typ":["topup"],"body":{}}"#,
        "claim typ is not a string (it is array)"
      ),
      (
        #"{"dev":"TA-1","ctr":7,"iat":1,"exp":2,"typ":"topup","body":"{}"}"#,
        "claim body is not an object (it is text)"
      ),
      (#"{"dev":"TA-1","ctr":7,"iat":1,"exp":2,"typ":"topup"}"#, "claim body is missing"),
      (#"[{"dev":"TA-1"}]"#, "the payload is not a JSON object"),
      (#"{"dev":"TA-1","dev":"TA-2"}"#, #"the payload has the member "dev" twice"#),
    ]
    for (claims, message) in cases {
      let rejected = try rejection(try CommandFixture.token(claims: claims))
      #expect(rejected?.code == "malformed", "\(claims)")
      #expect(
        rejected?.description.contains(message) == true, "\(claims): \(rejected?.description ?? "accepted")")
    }
  }

  @Test func aStringEscapingNULOrAnUnpairedSurrogateIsMalformedAndNotSigned() throws {
    let base = #""dev":"TA-1","ctr":7,"iat":1767225600,"exp":1767229200,"typ":"topup""#
    let cases: [(body: String, message: String)] = [
      (#"{"customer":"C-1\u0000X"}"#, "U+0000"),
      (#"{"customer":"C-1","note":"\u0000"}"#, "U+0000"),
      (#"{"list":["a","b\ud800"]}"#, "surrogate"),
      (#"{"x":"\udc00 low first"}"#, "surrogate"),
      (#"{"x":"\ud800\u0041 not a low one"}"#, "surrogate"),
    ]
    for (body, message) in cases {
      let rejected = try rejection(try CommandFixture.token(claims: "{" + base + #","body":"# + body + "}"))
      #expect(rejected?.code == "malformed", "\(body)")
      #expect(
        rejected?.description.contains(message) == true, "\(body): \(rejected?.description ?? "accepted")")
      #expect(throws: JWSError.self, "\(body) was signed") {
        _ = try CommandFixture.command { $0.body = body }.signed(
          with: try RFC8037.keyPair(), keyID: "rfc8037", json: try JWSTestSupport.json())
      }
    }
    // Escaped backslashes before a 'u', a paired surrogate and other escapes are fine.
    for body in [
      #"{"x":"\\u0000 is text"}"#, #"{"x":"\ud83d\udd0c plug"}"#, #"{"x":"\u0001\u001f\"\\\/"}"#,
    ] {
      #expect(unsafeEscape(Array(body.utf8)) == nil, "\(body)")
      #expect(try rejection(try signed { $0.body = body }) == nil, "\(body)")
    }
  }

  @Test func unsupportedAlgorithmIsRefused() throws {
    let token = try signed()
    let header = Base64URL.encode(Array(#"{"alg":"RS256","kid":"rfc8037"}"#.utf8))
    let rejected = try rejection(JWSTestSupport.replacing(part: 0, of: token, with: header))
    #expect(rejected?.code == "unsupported-algorithm")
    #expect(rejected?.description == #"unsupported algorithm "RS256" (accepted: Ed25519, EdDSA)"#)
    #expect(rejected?.isAuthentic == false)
  }

  @Test func unknownKeyNamesTheKeyID() throws {
    let rejected = try rejection(try signed(), trusted: try RFC8037.trusted(as: "hq-other"))
    #expect(rejected?.code == "unknown-key")
    #expect(rejected?.description.contains(#""rfc8037""#) == true)
    #expect(rejected?.isAuthentic == false)
  }

  @Test func badSignatureIsRefusedAndNotAuthentic() throws {
    let token = try signed()
    let forged = JWSTestSupport.replacing(
      part: 1, of: token,
      with: Base64URL.encode(
        Array(try CommandFixture.command { $0.counter = 8 }.claims(json: JWSTestSupport.json()).utf8)))
    let rejected = try rejection(forged)
    #expect(rejected?.code == "bad-signature")
    #expect(rejected?.isAuthentic == false)
    #expect(rejected?.counter == nil)
  }

  @Test func wrongDeviceIsRefused() throws {
    let rejected = try rejection(try signed(), device: "TA-2")
    #expect(rejected?.code == "wrong-device")
    #expect(rejected?.description == #"the command is for device "TA-1", not this one"#)
    #expect(rejected?.isAuthentic == true)
    #expect(rejected?.counter == 7)
    // Byte for byte: no case folding.
    #expect(try rejection(try signed(), device: "ta-1")?.code == "wrong-device")
  }

  @Test func replayedCounterIsRefusedAtAndBelowTheLastAccepted() throws {
    let token = try signed()
    #expect(try rejection(token, lastCounter: 6) == nil)
    for last: UInt64 in [7, 8, UInt64.max] {
      let rejected = try rejection(token, lastCounter: last)
      #expect(rejected?.code == "replayed")
      #expect(rejected?.counter == 7)
      #expect(rejected?.description == "counter 7 is not above the last accepted " + String(last))
    }
  }

  @Test func expiredAtExpAndAfter() throws {
    let token = try signed()
    let exp = CommandFixture.issuedAt + 3600
    #expect(try rejection(token, now: exp - 1) == nil)
    for now in [exp, exp + 1, exp + 86_400] {
      let rejected = try rejection(token, now: now)
      #expect(rejected?.code == "expired")
      #expect(rejected?.description == "expired at 1767229200 (now " + String(now) + ")")
    }
  }

  @Test func notYetValidBeyondTheClockSkew() throws {
    let token = try signed()
    // iat = 1767225600; the skew is 300 s.
    #expect(try rejection(token, now: CommandFixture.issuedAt - 300) == nil)
    let rejected = try rejection(token, now: CommandFixture.issuedAt - 301)
    #expect(rejected?.code == "not-yet-valid")
    #expect(rejected?.description == "issued at 1767225600, in the future (now 1767225299)")
  }

  @Test func unknownTypeIsRefused() throws {
    let claims =
      #"{"dev":"TA-1","ctr":7,"iat":1767225600,"exp":1767229200,"typ":"reboot","body":{}}"#
    let rejected = try rejection(try CommandFixture.token(claims: claims))
    #expect(rejected?.code == "unknown-type")
    #expect(rejected?.description == #"unknown command type "reboot""#)
    #expect(rejected?.counter == 7)
  }

  @Test func rejectionCodesAreStableAndDistinct() {
    #expect(
      CommandRejection.codes == [
        "malformed", "unsupported-algorithm", "unknown-key", "bad-signature", "wrong-device", "replayed",
        "expired", "not-yet-valid", "unknown-type", "internal-error",
      ])
    #expect(Set(CommandRejection.codes).count == CommandRejection.codes.count)
  }

  @Test func firstFailingCheckWins() throws {
    // Wrong device and replayed and expired: the device is checked first.
    let rejected = try rejection(
      try signed(), lastCounter: 100, now: CommandFixture.now + 999_999, device: "TA-9")
    #expect(rejected?.code == "wrong-device")
    // Replayed and expired: a late QoS 1 redelivery is reported as replayed.
    #expect(
      try rejection(try signed(), lastCounter: 7, now: CommandFixture.now + 999_999)?.code == "replayed")
  }

  @Test func byteForByteTheSameTokenAsStringOrBytes() throws {
    let token = try signed()
    let verifier = try CommandFixture.verifier()
    let fromString = try verifier.verify(token, lastCounter: 6, now: CommandFixture.now)
    let fromBytes = try verifier.verify(Array(token.utf8), lastCounter: 6, now: CommandFixture.now)
    #expect(fromString == fromBytes)
  }
}

/// Every token under Tests/Fixtures/jws/tokens/ (written by make_fixtures.py with
/// Python's `cryptography`) gives the code that expectations.txt lists for it.
@Suite struct CommandFixtureTests {
  private func expectations() throws -> [(file: String, code: String)] {
    let text = try String(
      contentsOf: JWSTestSupport.fixtures.appendingPathComponent("expectations.txt"), encoding: .utf8)
    return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map {
      let fields = $0.split(separator: " ")
      return (String(fields[0]), String(fields[1]))
    }
  }

  @Test func everyTokenFileIsListedAndEveryListedFileExists() throws {
    let listed = Set(try expectations().map(\.file))
    let files = Set(
      try FileManager.default.contentsOfDirectory(
        atPath: JWSTestSupport.fixtures.appendingPathComponent("tokens").path))
    #expect(listed == files)
    #expect(listed.count >= 60)
  }

  @Test func everyTokenGivesItsExpectedCode() throws {
    let verifier = try CommandFixture.verifier()
    var seen: Set<String> = []
    for (file, expected) in try expectations() {
      let token = try JWSTestSupport.fixture("tokens/" + file)
      let actual: String
      do {
        _ = try verifier.verify(token, lastCounter: CommandFixture.lastCounter, now: CommandFixture.now)
        actual = "accept"
      } catch {
        actual = error.code
      }
      #expect(actual == expected, "\(file)")
      seen.insert(expected)
    }
    // Every rejection a token can cause (all but internal-error) has a fixture.
    #expect(seen == Set(["accept"] + CommandRejection.codes.filter { $0 != "internal-error" }))
  }
}

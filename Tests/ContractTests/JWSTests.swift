import CCrypto
import Foundation
import SQLiteStore
import Testing

@testable import GridEdgeContract

/// RFC 8037 Appendix A: the example Ed25519 key and the A.4 JWS.
enum RFC8037 {
  static let seed = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
  static let publicKey = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
  static let thumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
  static let header = #"{"alg":"EdDSA"}"#
  static let payload = "Example of Ed25519 signing"
  static let token =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    + "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

  static func keyPair() throws -> Ed25519KeyPair { try Ed25519KeyPair(seed: try Base64URL.decode(seed)) }
  static func trusted(as keyID: String = "rfc8037") throws -> TrustedKeys {
    var keys = TrustedKeys()
    try keys.add(try keyPair().publicKey, keyID: keyID)
    return keys
  }
}

/// Test helpers shared by the JWS and command tests.
enum JWSTestSupport {
  /// The folder `Tests/Fixtures/jws`.
  static var fixtures: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/jws")
  }

  static func fixture(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(name)))
  }

  /// An in-memory connection for the JSON functions.
  static func json() throws -> Connection {
    var options = Connection.Options()
    options.walMode = false
    options.verifyIntegrity = false
    return try Connection(path: ":memory:", options: options)
  }

  static func hex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
      let next = text.index(index, offsetBy: 2)
      out.append(UInt8(text[index..<next], radix: 16)!)
      index = next
    }
    return out
  }

  /// `token` with its part `part` (0, 1, 2) replaced.
  static func replacing(part: Int, of token: String, with text: String) -> String {
    var parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    parts[part] = text
    return parts.joined(separator: ".")
  }
}

@Suite struct Base64URLTests {
  /// RFC 4648 §10, one case per input length 0...6 (every length mod 3, twice).
  @Test func encodesTheRFC4648VectorsOfEveryLengthModThree() throws {
    let vectors = [
      ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
      ("foobar", "Zm9vYmFy"),
    ]
    for (plain, encoded) in vectors {
      #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
      #expect(try Base64URL.decode(encoded) == Array(plain.utf8))
    }
  }

  @Test func usesTheURLAlphabetForTheLastTwoValues() throws {
    #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
    #expect(try Base64URL.decode("-_8") == [0xFB, 0xFF])
    #expect(Base64URL.encode([0xFF, 0xFF, 0xFF]) == "____")
    #expect(Base64URL.encode([0xF8, 0x00, 0x00]) == "-AAA")
  }

  @Test func roundTripsEveryLengthAgainstFoundation() throws {
    var generator = SystemRandomNumberGenerator()
    for length in 0...70 {
      let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
      let ours = Base64URL.encode(bytes)
      let foundation = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
      #expect(ours == foundation, "length \(length)")
      #expect(try Base64URL.decode(ours) == bytes, "length \(length)")
      #expect(ours.utf8.count == (length * 4 + 2) / 3, "length \(length)")
    }
  }

  @Test func decodesASliceOfBytes() throws {
    let token = Array("xx.Zm9vYg.yy".utf8)
    #expect(try Base64URL.decode(token[3..<9]) == Array("foob".utf8))
  }

  @Test func refusesPaddingAndSaysWhere() {
    for (text, offset) in [("Zg==", 2), ("Zm8=", 3), ("Zm9v====", 4), ("=", 0)] {
      #expect(throws: Base64URLError.self) { try Base64URL.decode(text) }
      do {
        _ = try Base64URL.decode(text)
      } catch {
        #expect(error.description.contains("padding '=' at offset \(offset)"), "\(text): \(error)")
      }
    }
  }

  @Test func refusesCharactersOutsideTheAlphabet() {
    let cases: [(String, String)] = [
      ("Zm9v+A", "invalid character 0x2B '+' at offset 4"),
      ("Zm9v/A", "invalid character 0x2F '/' at offset 4"),
      ("Zm 9v", "invalid character 0x20 at offset 2"),
      ("Zm9v\n", "invalid character 0x0A at offset 4"),
      ("Zm9.v", "invalid character 0x2E '.' at offset 3"),
      ("Zé", "invalid character 0xC3 at offset 1"),
      ("\u{0}AAA", "invalid character 0x00 at offset 0"),
    ]
    for (text, message) in cases {
      do {
        let decoded = try Base64URL.decode(text)
        Issue.record("\(text.debugDescription) decoded to \(decoded)")
      } catch {
        #expect(error.description == message, "\(text.debugDescription)")
      }
    }
  }

  @Test func refusesTheImpossibleLengthFourNPlusOne() {
    for text in ["A", "Zm9vY", "Zm9vYmFyY"] {
      do {
        _ = try Base64URL.decode(text)
        Issue.record("\(text) decoded")
      } catch {
        #expect(error.description.contains("length \(text.count) is impossible"))
      }
    }
  }

  @Test func refusesNonCanonicalTrailingBits() throws {
    // "Zg" is 'f'; "Zh" ... "Zv" carry the same byte with non-zero unused bits.
    #expect(try Base64URL.decode("Zg") == [0x66])
    for last in ["h", "i", "p", "v"] {
      #expect(throws: Base64URLError.self) { try Base64URL.decode("Z" + last) }
    }
    // Two bytes: the last character's low 2 bits are unused ("Zm8" is canonical).
    #expect(try Base64URL.decode("Zm8") == [0x66, 0x6F])
    for last in ["9", "-", "_"] {
      do {
        _ = try Base64URL.decode("Zm" + last)
        Issue.record("Zm\(last) decoded")
      } catch {
        #expect(error.description.contains("non-zero unused bits"))
      }
    }
  }

  @Test func decodesEmptyTextToNoBytes() throws {
    #expect(try Base64URL.decode("") == [])
    #expect(Base64URL.encode([UInt8]()) == "")
  }
}

@Suite struct Ed25519Tests {
  @Test func rfc8037KeyHasTheRFCPublicKeyAndThumbprint() throws {
    let key = try RFC8037.keyPair()
    #expect(Base64URL.encode(key.publicKey.rawRepresentation) == RFC8037.publicKey)
    #expect(key.publicKey.thumbprint == RFC8037.thumbprint)
    #expect(Base64URL.encode(try key.seed()) == RFC8037.seed)
  }

  /// RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte).
  @Test func signsTheRFC8032TestVectors() throws {
    let vectors: [(seed: String, publicKey: String, message: String, signature: String)] = [
      (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
      ),
      (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
      ),
    ]
    for vector in vectors {
      let key = try Ed25519KeyPair(seed: JWSTestSupport.hex(vector.seed))
      #expect(key.publicKey.rawRepresentation == JWSTestSupport.hex(vector.publicKey))
      let message = JWSTestSupport.hex(vector.message)
      let signature = try key.sign(message)
      #expect(signature == JWSTestSupport.hex(vector.signature))
      #expect(key.publicKey.isValidSignature(signature, for: message))
    }
  }

  @Test func generatedKeysDifferAndRoundTripThroughTheirSeed() throws {
    let a = try Ed25519KeyPair()
    let b = try Ed25519KeyPair()
    #expect(a.publicKey != b.publicKey)
    let again = try Ed25519KeyPair(seed: try a.seed())
    #expect(again.publicKey == a.publicKey)
    let message = Array("disconnect 000000000001".utf8)
    #expect(try again.sign(message) == (try a.sign(message)))
  }

  @Test func verifyRefusesTamperedMessageSignatureOrKey() throws {
    let key = try Ed25519KeyPair()
    let other = try Ed25519KeyPair()
    let message = Array("topup 10000 fen".utf8)
    let signature = try key.sign(message)
    #expect(key.publicKey.isValidSignature(signature, for: message))
    var changedMessage = message
    changedMessage[0] ^= 1
    #expect(!key.publicKey.isValidSignature(signature, for: changedMessage))
    for i in [0, 31, 32, 63] {
      var changed = signature
      changed[i] ^= 0x80
      #expect(!key.publicKey.isValidSignature(changed, for: message), "bit flipped in byte \(i)")
    }
    #expect(!other.publicKey.isValidSignature(signature, for: message))
    #expect(!key.publicKey.isValidSignature(Array(signature.dropLast()), for: message))
    #expect(!key.publicKey.isValidSignature(signature + [0], for: message))
    #expect(!key.publicKey.isValidSignature([], for: message))
    #expect(!key.publicKey.isValidSignature([UInt8](repeating: 0, count: 64), for: message))
  }

  @Test func failedVerificationLeavesLibcryptoErrorQueueEmpty() throws {
    let key = try Ed25519KeyPair()
    ERR_clear_error()
    _ = key.publicKey.isValidSignature([UInt8](repeating: 0xFF, count: 64), for: [1, 2, 3])
    _ = key.publicKey.isValidSignature([UInt8](repeating: 0, count: 63), for: [1, 2, 3])
    #expect(ERR_peek_error() == 0)
  }

  @Test func wrongKeyLengthsAreRefusedWithTheLength() {
    do {
      _ = try Ed25519KeyPair(seed: [UInt8](repeating: 1, count: 31))
      Issue.record("a 31-byte seed was accepted")
    } catch {
      #expect(error.description == "an Ed25519 private key seed is 32 bytes, got 31")
    }
    do {
      _ = try Ed25519PublicKey(rawRepresentation: [UInt8](repeating: 1, count: 33))
      Issue.record("a 33-byte public key was accepted")
    } catch {
      #expect(error.description == "an Ed25519 public key is 32 bytes, got 33")
    }
  }

  @Test func cleanseZeroesTheBytes() {
    var bytes: [UInt8] = [1, 2, 3, 4]
    Ed25519.cleanse(&bytes)
    #expect(bytes == [0, 0, 0, 0])
  }
}

@Suite struct JWSTests {
  @Test func signingTheRFC8037ExampleGivesTheRFCToken() throws {
    let token = try JWS.sign(
      protectedHeader: RFC8037.header, payload: Array(RFC8037.payload.utf8), key: try RFC8037.keyPair())
    #expect(token == RFC8037.token)
  }

  @Test func rfc8037ExampleVerifiesWithAlgEdDSA() throws {
    let token = try JWSTestSupport.fixture("rfc8037-a4.jws")
    #expect(String(decoding: token, as: UTF8.self) == RFC8037.token)
    let verified = try JWS.verify(
      token, key: try RFC8037.keyPair().publicKey, json: try JWSTestSupport.json())
    #expect(verified.algorithm == "EdDSA")
    #expect(verified.keyID == nil)
    #expect(verified.header == RFC8037.header)
    #expect(verified.payload == Array(RFC8037.payload.utf8))
  }

  @Test func verifyingAgainstTrustedKeysNeedsAKeyID() throws {
    // The RFC example has no kid: with trusted keys that is refused, not guessed.
    let trusted = try RFC8037.trusted()
    let json = try JWSTestSupport.json()
    do {
      _ = try JWS.verify(Array(RFC8037.token.utf8), trustedKeys: trusted, json: json)
      Issue.record("a token without kid was accepted against trusted keys")
    } catch {
      #expect(error.code == "malformed")
      #expect(error.description.contains("no kid"))
    }
  }

  @Test func signThenVerifyRoundTripsWithAlgEd25519AndTheKeyID() throws {
    let key = try Ed25519KeyPair()
    var trusted = TrustedKeys()
    try trusted.add(key.publicKey, keyID: "hq-2026a")
    let payload = Array(#"{"hello":"world"}"#.utf8)
    let token = try JWS.sign(payload: payload, key: key, keyID: "hq-2026a")
    let header = try Base64URL.decode(String(token.split(separator: ".")[0]))
    #expect(String(decoding: header, as: UTF8.self) == #"{"alg":"Ed25519","kid":"hq-2026a"}"#)
    let verified = try JWS.verify(Array(token.utf8), trustedKeys: trusted, json: try JWSTestSupport.json())
    #expect(verified.algorithm == "Ed25519")
    #expect(verified.keyID == "hq-2026a")
    #expect(verified.payload == payload)
  }

  @Test func signRefusesAnInvalidKeyID() throws {
    let key = try Ed25519KeyPair()
    for bad in ["", "a b", #"a"b"#, "a\\b", "ä", String(repeating: "k", count: 65)] {
      do {
        _ = try JWS.sign(payload: [1], key: key, keyID: bad)
        Issue.record("signed with key id \(bad.debugDescription)")
      } catch {
        #expect(error.code == "cannot-sign")
      }
    }
  }

  @Test func rotationAcceptsEitherTrustedKeyAndReportsWhich() throws {
    let old = try Ed25519KeyPair()
    let new = try Ed25519KeyPair()
    var trusted = TrustedKeys()
    try trusted.add(old.publicKey, keyID: "hq-old")
    try trusted.add(new.publicKey, keyID: "hq-new")
    let json = try JWSTestSupport.json()
    for (key, id) in [(old, "hq-old"), (new, "hq-new")] {
      let token = try JWS.sign(payload: [0x7B, 0x7D], key: key, keyID: id)
      #expect(try JWS.verify(Array(token.utf8), trustedKeys: trusted, json: json).keyID == id)
    }
    // Signed by the new key but naming the old one: the old key is used, and fails.
    let confused = try JWS.sign(payload: [0x7B, 0x7D], key: new, keyID: "hq-old")
    #expect(throws: JWSError(.badSignature)) {
      try JWS.verify(Array(confused.utf8), trustedKeys: trusted, json: json)
    }
  }

  private func signed() throws -> (token: String, trusted: TrustedKeys, json: Connection) {
    let key = try RFC8037.keyPair()
    let token = try JWS.sign(payload: Array(#"{"ctr":7}"#.utf8), key: key, keyID: "rfc8037")
    return (token, try RFC8037.trusted(), try JWSTestSupport.json())
  }

  private func code(_ token: String, _ trusted: TrustedKeys, _ json: Connection) -> String {
    code(Array(token.utf8), trusted, json).code
  }

  private func code(_ token: [UInt8], _ trusted: TrustedKeys, _ json: Connection) -> (
    code: String, text: String
  ) {
    do {
      _ = try JWS.verify(token, trustedKeys: trusted, json: json)
      return ("accept", "")
    } catch {
      return (error.code, error.description)
    }
  }

  @Test func tamperedHeaderPayloadOrSignatureIsABadSignature() throws {
    let (token, trusted, json) = try signed()
    #expect(code(token, trusted, json) == "accept")
    let header = Base64URL.encode(Array(#"{"alg":"EdDSA","kid":"rfc8037"}"#.utf8))
    #expect(
      code(JWSTestSupport.replacing(part: 0, of: token, with: header), trusted, json) == "bad-signature")
    let payload = Base64URL.encode(Array(#"{"ctr":8}"#.utf8))
    #expect(
      code(JWSTestSupport.replacing(part: 1, of: token, with: payload), trusted, json) == "bad-signature")
    var signature = try Base64URL.decode(String(token.split(separator: ".")[2]))
    signature[10] ^= 0x01
    #expect(
      code(JWSTestSupport.replacing(part: 2, of: token, with: Base64URL.encode(signature)), trusted, json)
        == "bad-signature")
  }

  @Test func wrongNumberOfDotsIsMalformed() throws {
    let (token, trusted, json) = try signed()
    let parts = token.split(separator: ".").map(String.init)
    let cases: [(String, String)] = [
      (parts[0], "found 1"),
      (parts[0] + "." + parts[1], "found 2"),
      (token + "." + parts[2], "found more"),
      (token + ".", "found more"),
      ("", "found 1"),
    ]
    for (bad, message) in cases {
      let result = code(Array(bad.utf8), trusted, json)
      #expect(result.code == "malformed")
      #expect(result.text.contains("expected 3 dot-separated parts, " + message), "\(result.text)")
    }
  }

  @Test func emptyPartsAreMalformed() throws {
    let (token, trusted, json) = try signed()
    let cases: [(Int, String)] = [
      (0, "header part is empty"), (1, "payload part is empty"), (2, "signature part is empty"),
    ]
    for (part, message) in cases {
      let result = code(Array(JWSTestSupport.replacing(part: part, of: token, with: "").utf8), trusted, json)
      #expect(result.code == "malformed")
      #expect(result.text.contains(message), "\(result.text)")
    }
    #expect(code("..", trusted, json) == "malformed")
  }

  @Test func hugeTokenIsRefusedBeforeAnyOtherCheck() throws {
    let (token, trusted, json) = try signed()
    // A valid token padded past the limit, and one that is only dots.
    let padded = token + String(repeating: "A", count: JWS.maximumTokenBytes - token.utf8.count + 1)
    for bad in [Array(padded.utf8), [UInt8](repeating: UInt8(ascii: "."), count: 10 * 1024 * 1024)] {
      let result = code(bad, trusted, json)
      #expect(result.code == "malformed")
      #expect(result.text.contains("more than the limit of 65536"), "\(result.text)")
    }
    // At the limit the size is fine; what fails then is the signature part.
    let atLimit = token + String(repeating: "A", count: JWS.maximumTokenBytes - token.utf8.count)
    let result = code(Array(atLimit.utf8), trusted, json)
    #expect(result.code == "malformed")
    #expect(!result.text.contains("limit"))
  }

  @Test func algNoneIsRefusedWithOrWithoutASignature() throws {
    let (token, trusted, json) = try signed()
    let none = Base64URL.encode(Array(#"{"alg":"none","kid":"rfc8037"}"#.utf8))
    let unsigned = none + "." + token.split(separator: ".")[1] + "."
    let result = code(Array(unsigned.utf8), trusted, json)
    #expect(result.code == "unsupported-algorithm")
    #expect(result.text == #"unsupported algorithm "none" (accepted: Ed25519, EdDSA)"#)
    #expect(
      code(JWSTestSupport.replacing(part: 0, of: token, with: none), trusted, json) == "unsupported-algorithm"
    )
  }

  @Test func hs256KeyedWithThePublicKeyIsRefused() throws {
    // The classic confusion: an HMAC "signature" made with the verifier's public key.
    let (_, trusted, json) = try signed()
    for name in ["alg-hs256-public-key-raw-secret.jws", "alg-hs256-public-key-text-secret.jws"] {
      let token = try JWSTestSupport.fixture("tokens/" + name)
      let result = code(token, trusted, json)
      #expect(result.code == "unsupported-algorithm", "\(name)")
      #expect(result.text.contains(#""HS256""#))
    }
  }

  @Test func headerMustBeAJSONObjectWithoutDuplicates() throws {
    let (token, trusted, json) = try signed()
    let cases: [(String, String)] = [
      ("[1]", "the header is not a JSON object"),
      ("{alg:1}", "the header is not a JSON object"),
      (#"{"alg":"Ed25519","kid":"rfc8037""#, "the header is not a JSON object"),
      (#"{"alg":"Ed25519","kid":"rfc8037","alg":"none"}"#, #"the header has the member "alg" twice"#),
      (#"{"kid":"rfc8037"}"#, "the header has no alg"),
      (#"{"alg":null,"kid":"rfc8037"}"#, "the header's alg is not a string"),
      (#"{"alg":"Ed25519","kid":7}"#, "the header's kid is not a string"),
      (#"{"alg":"Ed25519","kid":"rfc8037","crit":["x"],"x":1}"#, "crit"),
      (#"{"alg":"Ed25519","kid":"rfc8037","b64":false}"#, "b64"),
    ]
    for (header, message) in cases {
      let bad = JWSTestSupport.replacing(part: 0, of: token, with: Base64URL.encode(Array(header.utf8)))
      let result = code(Array(bad.utf8), trusted, json)
      #expect(result.code == "malformed", "\(header)")
      #expect(result.text.contains(message), "\(header): \(result.text)")
    }
    let notBase64 = JWSTestSupport.replacing(part: 0, of: token, with: "eyJ+")
    #expect(code(Array(notBase64.utf8), trusted, json).text.contains("the header is not base64url"))
    let invalidUTF8 = JWSTestSupport.replacing(
      part: 0, of: token,
      with: Base64URL.encode(Array(#"{"alg":"Ed25519","kid":"rfc8037","x":""#.utf8) + [0xFF, 0x22, 0x7D]))
    #expect(code(Array(invalidUTF8.utf8), trusted, json).text.contains("not valid UTF-8"))
  }

  @Test func unknownKeyIDIsNamed() throws {
    let (token, _, json) = try signed()
    let result = code(Array(token.utf8), try RFC8037.trusted(as: "hq-2026b"), json)
    #expect(result.code == "unknown-key")
    #expect(result.text == #"unknown key id "rfc8037" (not among the trusted keys)"#)
    // An id that is not even valid is unknown too, and shown safely.
    let header = Base64URL.encode(Array(#"{"alg":"Ed25519","kid":"a\"b\n"}"#.utf8))
    let bad = JWSTestSupport.replacing(part: 0, of: token, with: header)
    #expect(
      code(Array(bad.utf8), try RFC8037.trusted(), json).text
        == #"unknown key id "a?b?" (not among the trusted keys)"#)
  }

  @Test func signatureOfTheWrongSizeOrEncodingIsMalformed() throws {
    let (token, trusted, json) = try signed()
    let signature = try Base64URL.decode(String(token.split(separator: ".")[2]))
    let short = JWSTestSupport.replacing(part: 2, of: token, with: Base64URL.encode(signature.dropLast()))
    #expect(code(Array(short.utf8), trusted, json).text.contains("the signature is 63 bytes"))
    let padded = token + "=="
    #expect(code(Array(padded.utf8), trusted, json).text.contains("the signature is not base64url"))
  }
}

@Suite struct TrustedKeysTests {
  static let keyA = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
  static let keyB = "d1qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"

  @Test func parsesKeysIgnoringCommentsBlankLinesAndCRLF() throws {
    let text =
      "# HQ command keys\n\n  hq-2026a\t" + Self.keyA + "   # current\r\n"
      + "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k " + Self.keyB + "\n   \n# end"
    let keys = try TrustedKeys(parsing: text)
    #expect(keys.keyIDs == ["hq-2026a", "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"])
    #expect(keys.count == 2)
    #expect(try keys.key(for: "hq-2026a") == Ed25519PublicKey(rawRepresentation: Base64URL.decode(Self.keyA)))
    #expect(keys.key(for: "HQ-2026A") == nil)
    #expect(keys.key(for: "hq-2026") == nil)
  }

  @Test func emptyTextTrustsNothing() throws {
    let keys = try TrustedKeys(parsing: "# nothing yet\n")
    #expect(keys.isEmpty)
    #expect(try TrustedKeys(parsing: "").isEmpty)
  }

  @Test func errorsNameTheSourceTheLineAndWhatIsWrong() {
    let cases: [(String, String)] = [
      ("hq-1\n", "keys.txt:1: expected \"<kid> <base64url public key>\", found 1 field"),
      (
        "# c\nhq-1 " + Self.keyA + " extra\n",
        "keys.txt:2: expected \"<kid> <base64url public key>\", found 3 fields"
      ),
      (
        "\n\nhq-1 " + Self.keyA + "=\n",
        "keys.txt:3: the key of \"hq-1\" is not a base64url Ed25519 public key: padding"
      ),
      (
        "hq-1 " + Base64URL.encode([UInt8](repeating: 7, count: 31)) + "\n",
        "keys.txt:1: the key of \"hq-1\" is not a base64url Ed25519 public key: an Ed25519 public key is 32 bytes, got 31"
      ),
      ("hq,1 " + Self.keyA + "\n", "keys.txt:1: key id \"hq,1\" is not 1 to 64 characters"),
      (String(repeating: "k", count: 65) + " " + Self.keyA, "keys.txt:1: key id \"kkkk"),
      (
        "hq-1 " + Self.keyA + "\nhq-2 " + Self.keyB + "\nhq-1 " + Self.keyB,
        "keys.txt:3: key id \"hq-1\" is listed twice"
      ),
    ]
    for (text, message) in cases {
      do {
        _ = try TrustedKeys(parsing: text, source: "keys.txt")
        Issue.record("accepted: \(text.debugDescription)")
      } catch {
        #expect(error.description.hasPrefix(message), "\(error.description)")
      }
    }
  }

  @Test func errorCarriesTheLineNumber() {
    do {
      _ = try TrustedKeys(parsing: "a " + Self.keyA + "\n\nb x\n")
      Issue.record("accepted")
    } catch {
      #expect(error.line == 3)
      #expect(error.source == "trusted keys")
    }
  }

  @Test func textFormRoundTrips() throws {
    var keys = TrustedKeys()
    try keys.add(try Ed25519KeyPair().publicKey, keyID: "a")
    try keys.add(try Ed25519KeyPair().publicKey, keyID: "b.c:d+e/f=g~h_i-j")
    let again = try TrustedKeys(parsing: keys.text)
    #expect(again.keyIDs == keys.keyIDs)
    for id in keys.keyIDs { #expect(again.key(for: id) == keys.key(for: id)) }
    #expect(TrustedKeys.line(keyID: "x", key: try RFC8037.keyPair().publicKey) == "x " + RFC8037.publicKey)
  }

  @Test func keyIDsAreOneToSixtyFourSafeCharacters() {
    for good in [
      "a", "hq-2026a", "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "2026-01:hq/1+=~.",
      String(repeating: "k", count: 64),
    ] {
      #expect(TrustedKeys.isValidKeyID(good), "\(good)")
    }
    for bad in ["", " ", "a b", "a#b", #"a"b"#, "a\\b", "ä", "a\u{0}", String(repeating: "k", count: 65)] {
      #expect(!TrustedKeys.isValidKeyID(bad), "\(bad.debugDescription)")
    }
  }

  @Test func addRefusesDuplicateAndInvalidIDs() throws {
    var keys = TrustedKeys()
    let key = try Ed25519KeyPair().publicKey
    try keys.add(key, keyID: "hq")
    #expect(throws: TrustedKeysError.self) { try keys.add(key, keyID: "hq") }
    #expect(throws: TrustedKeysError.self) { try keys.add(key, keyID: "h q") }
    #expect(keys.count == 1)
  }
}

import Foundation
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeContract

/// Runs Tests/Fixtures/jws/jws_interop.py (Python's `cryptography`, an independent
/// Ed25519 and JWS implementation). A missing python3 or `cryptography` fails the
/// test, it is never skipped.
enum PythonJWS {
  static var script: String { JWSTestSupport.fixtures.appendingPathComponent("jws_interop.py").path }

  /// Runs the script; exit 3 (the package is missing) fails at once with its message.
  static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
    // runProcess throws when python3 is not on PATH.
    let result = try runProcess("python3", [script] + arguments)
    if result.status == 3 {
      throw TestSupportError("python3 cannot import cryptography: \(result.output)")
    }
    return result
  }

  static func sign(seed: [UInt8], keyID: String, algorithm: String, payload: String) throws -> String {
    let result = try run(["sign", Base64URL.encode(seed), keyID, algorithm, payload])
    guard result.status == 0 else { throw TestSupportError("python sign failed: \(result.output)") }
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
  }
}

@Suite struct JWSInteropTests {
  @Test func pythonAndLibcryptoDeriveTheSamePublicKey() throws {
    for seed in [try Base64URL.decode(RFC8037.seed), try Ed25519KeyPair().seed()] {
      let result = try PythonJWS.run(["public", Base64URL.encode(seed)])
      #expect(result.status == 0, "\(result.output)")
      #expect(
        result.output.trimmingCharacters(in: .whitespacesAndNewlines)
          == Base64URL.encode(try Ed25519KeyPair(seed: seed).publicKey.rawRepresentation))
    }
  }

  @Test func commandsSignedByPythonAreAcceptedWithEitherAlgorithmName() throws {
    let key = try Ed25519KeyPair()
    var trusted = TrustedKeys()
    try trusted.add(key.publicKey, keyID: "hq-py")
    let verifier = try CommandVerifier(device: "TA-1", trustedKeys: trusted)
    let now = Int64(Date().timeIntervalSince1970)
    for (counter, algorithm) in [(UInt64(41), "Ed25519"), (42, "EdDSA")] {
      let claims =
        #"{"dev":"TA-1","ctr":"# + String(counter) + #","iat":"# + String(now) + #","exp":"#
        + String(now + 600) + #","typ":"disconnect","body":{"meter":"000000000001","reason":"arrears"}}"#
      let token = try PythonJWS.sign(
        seed: try key.seed(), keyID: "hq-py", algorithm: algorithm, payload: claims)
      let verified = try verifier.verify(token, lastCounter: counter - 1, now: now)
      #expect(verified.algorithm == algorithm)
      #expect(verified.keyID == "hq-py")
      #expect(verified.command.counter == counter)
      #expect(verified.command.type == .disconnect)
      #expect(verified.command.body == #"{"meter":"000000000001","reason":"arrears"}"#)
    }
  }

  @Test func pythonTokenSignedWithAnUntrustedKeyIsRefused() throws {
    let trustedKey = try Ed25519KeyPair()
    var trusted = TrustedKeys()
    try trusted.add(trustedKey.publicKey, keyID: "hq-py")
    let now = Int64(Date().timeIntervalSince1970)
    let claims =
      #"{"dev":"TA-1","ctr":1,"iat":"# + String(now) + #","exp":"# + String(now + 600)
      + #","typ":"topup","body":{}}"#
    let token = try PythonJWS.sign(
      seed: try Ed25519KeyPair().seed(), keyID: "hq-py", algorithm: "Ed25519", payload: claims)
    #expect(throws: CommandRejection.self) {
      try CommandVerifier(device: "TA-1", trustedKeys: trusted).verify(token, lastCounter: 0, now: now)
    }
  }

  @Test func ourSignaturesVerifyInPythonAndTamperingIsCaughtThere() throws {
    let key = try Ed25519KeyPair()
    let command = Command(
      device: "TA-1", counter: UInt64.max, issuedAt: 1_767_225_600, expiresAt: 1_767_229_200, type: .tariff,
      body: #"{"version":3,"prices":[5880,4850]}"#)
    let json = try JWSTestSupport.json()
    let token = try command.signed(with: key, keyID: "hq-swift", json: json)
    let publicKey = Base64URL.encode(key.publicKey.rawRepresentation)
    let result = try PythonJWS.run(["verify", publicKey, token])
    #expect(result.status == 0, "\(result.output)")
    let lines = result.output.split(separator: "\n").map(String.init)
    #expect(lines.first == #"{"alg":"Ed25519","kid":"hq-swift"}"#)
    #expect(lines.last == (try command.claims(json: json)))
    // The same check in Python must fail for a changed payload.
    let changed = Base64URL.encode(
      Array(
        try Command(
          device: "TA-1", counter: 1, issuedAt: 1_767_225_600, expiresAt: 1_767_229_200, type: .tariff,
          body: #"{"version":3,"prices":[1,1]}"#
        ).claims(json: json).utf8))
    let tampered = try PythonJWS.run([
      "verify", publicKey, JWSTestSupport.replacing(part: 1, of: token, with: changed),
    ])
    #expect(tampered.status == 1, "\(tampered.output)")
    #expect(tampered.output.contains("invalid signature"))
  }
}

/// `gridedge-hq keygen` and `gridedge-hq sign`, run as built, checked by the device's
/// verifier and by Python.
@Suite struct CommandSignerCLITests {
  /// The gridedge-hq executable beside the test bundle (or in GRIDEDGE_BIN_DIR).
  private func hq() throws -> String {
    var directory: URL
    if let dir = ProcessInfo.processInfo.environment["GRIDEDGE_BIN_DIR"] {
      directory = URL(fileURLWithPath: dir)
    } else {
      directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
      while directory.path != "/" {
        directory.deleteLastPathComponent()
        if FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("gridedge-hq").path)
        {
          break
        }
      }
    }
    let path = directory.appendingPathComponent("gridedge-hq").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw TestSupportError(
        "gridedge-hq not found near \(CommandLine.arguments[0]): build the products first")
    }
    return path
  }

  @Test func keygenWritesAPrivateKeyFileAndATrustedKeysLine() throws {
    let dir = try makeTemporaryDirectory("keygen").appendingPathComponent("keys")
    defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
    let first = try runProcess(try hq(), ["keygen", "--out", dir.path, "--kid", "hq-2026a"])
    #expect(first.status == 0, "\(first.output)")
    let second = try runProcess(try hq(), ["keygen", "--out", dir.path])
    #expect(second.status == 0, "\(second.output)")

    let keyFile = dir.appendingPathComponent("hq-2026a.key")
    let attributes = try FileManager.default.attributesOfItem(atPath: keyFile.path)
    #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    let dirAttributes = try FileManager.default.attributesOfItem(atPath: dir.path)
    #expect((dirAttributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)
    let seedText = try String(contentsOf: keyFile, encoding: .utf8)
    let key = try Ed25519KeyPair(seed: try Base64URL.decode(seedText.trimmingCharacters(in: .newlines)))

    let trusted = try TrustedKeys(
      parsing: try String(contentsOf: dir.appendingPathComponent("trusted-keys"), encoding: .utf8))
    #expect(trusted.count == 2)
    #expect(trusted.keyIDs.first == "hq-2026a")
    #expect(trusted.key(for: "hq-2026a") == key.publicKey)
    // Without --kid the id is the key's RFC 7638 thumbprint.
    let defaultID = trusted.keyIDs[1]
    #expect(trusted.key(for: defaultID)?.thumbprint == defaultID)
    #expect(second.output.contains(defaultID))
    #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(defaultID + ".key").path))
  }

  @Test func keygenNeverOverwritesAKeyOrReusesAKeyID() throws {
    let dir = try makeTemporaryDirectory("keygen-twice")
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(try runProcess(try hq(), ["keygen", "--out", dir.path, "--kid", "hq-1"]).status == 0)
    let keyFile = dir.appendingPathComponent("hq-1.key")
    let before = try Data(contentsOf: keyFile)
    let again = try runProcess(try hq(), ["keygen", "--out", dir.path, "--kid", "hq-1"])
    #expect(again.status == 1)
    #expect(again.output.contains(#"key id "hq-1" is already in"#), "\(again.output)")
    #expect(try Data(contentsOf: keyFile) == before)
    // A key file without its trusted-keys line is not overwritten either.
    try FileManager.default.removeItem(at: dir.appendingPathComponent("trusted-keys"))
    let exists = try runProcess(try hq(), ["keygen", "--out", dir.path, "--kid", "hq-1"])
    #expect(exists.status == 1)
    #expect(exists.output.contains("already exists"), "\(exists.output)")
    #expect(try Data(contentsOf: keyFile) == before)
    let badID = try runProcess(try hq(), ["keygen", "--out", dir.path, "--kid", "../evil"])
    #expect(badID.status == 1)
    #expect(
      !FileManager.default.fileExists(
        atPath: dir.deletingLastPathComponent().appendingPathComponent("evil.key").path))
  }

  @Test func signPrintsATokenTheDeviceAndPythonAccept() throws {
    let dir = try makeTemporaryDirectory("sign")
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(try runProcess(try hq(), ["keygen", "--out", dir.path, "--kid", "hq-1"]).status == 0)
    let before = Int64(Date().timeIntervalSince1970)
    let result = try runProcess(
      try hq(),
      [
        "sign", "--key", dir.appendingPathComponent("hq-1.key").path, "--kid", "hq-1", "--dev", "TA-7",
        "--ctr", "18446744073709551615", "--typ", "keep-power", "--body",
        #"{ "customer": "C-9", "on": true }"#,
        "--ttl", "120",
      ])
    let after = Int64(Date().timeIntervalSince1970)
    #expect(result.status == 0, "\(result.output)")
    let token = result.output.trimmingCharacters(in: .whitespacesAndNewlines)

    let trustedText = try String(contentsOf: dir.appendingPathComponent("trusted-keys"), encoding: .utf8)
    let verifier = try CommandVerifier(device: "TA-7", trustedKeys: try TrustedKeys(parsing: trustedText))
    let verified = try verifier.verify(token, lastCounter: UInt64.max - 1, now: after)
    #expect(verified.command.counter == UInt64.max)
    #expect(verified.command.type == .keepPower)
    #expect(verified.command.body == #"{"customer":"C-9","on":true}"#)
    #expect(verified.command.issuedAt >= before && verified.command.issuedAt <= after)
    #expect(verified.command.expiresAt - verified.command.issuedAt == 120)
    #expect(verified.algorithm == "Ed25519")

    let publicKey = try #require(trustedText.split(separator: "\n").last?.split(separator: " ").last)
    let python = try PythonJWS.run(["verify", String(publicKey), token])
    #expect(python.status == 0, "\(python.output)")
  }

  @Test func signRefusesBadArgumentsWithAMessage() throws {
    let dir = try makeTemporaryDirectory("sign-bad")
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(try runProcess(try hq(), ["keygen", "--out", dir.path, "--kid", "hq-1"]).status == 0)
    let key = dir.appendingPathComponent("hq-1.key").path
    let base = ["sign", "--key", key, "--kid", "hq-1", "--dev", "TA-1"]
    let cases: [([String], Int32, String)] = [
      (base + ["--ctr", "1", "--typ", "reboot", "--body", "{}"], 1, #"unknown type "reboot""#),
      (base + ["--ctr", "0", "--typ", "topup", "--body", "{}"], 2, "--ctr must be an integer from 1"),
      (base + ["--ctr", "18446744073709551616", "--typ", "topup", "--body", "{}"], 2, "--ctr must be"),
      (base + ["--ctr", "1", "--typ", "topup", "--body", "[]"], 1, "body is not a JSON object"),
      (base + ["--ctr", "1", "--typ", "topup", "--body", "{}", "--ttl", "0"], 2, "--ttl must be"),
      (base + ["--typ", "topup", "--body", "{}"], 2, "sign needs --ctr"),
      (
        [
          "sign", "--key", key + ".missing", "--kid", "hq-1", "--dev", "TA-1", "--ctr", "1", "--typ", "topup",
          "--body", "{}",
        ], 1, "No such file"
      ),
      (
        [
          "sign", "--key", key, "--kid", "hq 1", "--dev", "TA-1", "--ctr", "1", "--typ", "topup", "--body",
          "{}",
        ], 1, "is not 1 to 64"
      ),
      (
        [
          "sign", "--key", key, "--kid", "hq-1", "--dev", "TA/1", "--ctr", "1", "--typ", "topup", "--body",
          "{}",
        ], 1, "is not a device id"
      ),
    ]
    for (arguments, status, message) in cases {
      let result = try runProcess(try hq(), arguments)
      #expect(result.status == status, "\(arguments): \(result.output)")
      #expect(result.output.contains(message), "\(arguments): \(result.output)")
    }
    // A key file that is not a seed.
    let junk = dir.appendingPathComponent("junk.key")
    try "not a key\n".write(to: junk, atomically: true, encoding: .utf8)
    let result = try runProcess(
      try hq(),
      [
        "sign", "--key", junk.path, "--kid", "hq-1", "--dev", "TA-1", "--ctr", "1", "--typ", "topup",
        "--body", "{}",
      ])
    #expect(result.status == 1)
    #expect(result.output.contains("key file " + junk.path + ": not base64url"), "\(result.output)")
  }
}

import Foundation
import TestSupport
import Testing

/// The example HQ broker configuration in `firmware-config/mosquitto/` (TLS,
/// `require_certificate`, `use_identity_as_username`, the ACL patterns), run for real:
/// a device can neither publish as another nor read another's commands.
@Suite(.serialized) struct BrokerSecurityTests {
  static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("firmware-config/mosquitto")

  /// The example configuration with only paths, the port and logging changed.
  private func startExampleBroker(pki: TestPKI, dir: URL, port: Int32) throws -> ChildProcess {
    var text = try String(
      contentsOf: Self.example.appendingPathComponent("gridedge-hq.conf"), encoding: .utf8)
    let replacements = [
      "listener 8883": "listener \(port) 127.0.0.1",
      "cafile /etc/mosquitto/certs/gridedge-ca.pem": "cafile \(pki.caCertificate.path)",
      "certfile /etc/mosquitto/certs/broker.pem": "certfile \(pki.serverCertificate.path)",
      "keyfile /etc/mosquitto/certs/broker.key": "keyfile \(pki.serverKey.path)",
      "acl_file /etc/mosquitto/gridedge.acl":
        "acl_file \(Self.example.appendingPathComponent("gridedge.acl").path)",
      "persistence true": "persistence false",
      "persistence_location /var/lib/mosquitto/": "",
      "log_dest syslog": "log_dest file \(dir.appendingPathComponent("mosquitto.log").path)",
    ]
    for (from, to) in replacements {
      guard text.contains(from) else { throw TestFailure("the example no longer has '\(from)'") }
      text = text.replacingOccurrences(of: from, with: to)
    }
    // Tests run as root: keep root so the broker can read the test's files.
    text = "user root\n" + text
    let config = dir.appendingPathComponent("broker.conf")
    try text.write(to: config, atomically: true, encoding: .utf8)
    guard let mosquitto = findExecutable("mosquitto", fallbacks: ["/usr/sbin/mosquitto"]) else {
      throw TestFailure("mosquitto not found: install the mosquitto package (make test does)")
    }
    let broker = try ChildProcess(
      mosquitto, ["-c", config.path], outputFile: dir.appendingPathComponent("broker.out"))
    guard waitUntil(timeout: 5, { loopbackPortAccepts(port) }) else {
      throw TestFailure(
        "the example broker did not start: "
          + ((try? String(contentsOf: dir.appendingPathComponent("broker.out"), encoding: .utf8)) ?? ""))
    }
    return broker
  }

  private struct Identity {
    let certificate: URL
    let key: URL
  }

  private func tlsArguments(_ pki: TestPKI, _ id: Identity?, port: Int32, clientID: String) -> [String] {
    var args = ["-h", "127.0.0.1", "-p", String(port), "--cafile", pki.caCertificate.path, "-i", clientID]
    if let id { args += ["--cert", id.certificate.path, "--key", id.key.path] }
    return args
  }

  private func subscribe(
    _ pki: TestPKI, _ id: Identity, port: Int32, clientID: String, topics: [String], output: URL
  ) throws -> ChildProcess {
    var args = tlsArguments(pki, id, port: port, clientID: clientID) + ["-v", "-q", "1"]
    for topic in topics { args += ["-t", topic] }
    return try ChildProcess("/usr/bin/mosquitto_sub", args, outputFile: output)
  }

  @discardableResult
  private func publish(
    _ pki: TestPKI, _ id: Identity?, port: Int32, clientID: String, topic: String, message: String
  ) throws -> Int32 {
    try runProcess(
      "/usr/bin/mosquitto_pub",
      tlsArguments(pki, id, port: port, clientID: clientID) + ["-q", "1", "-t", topic, "-m", message]
    ).status
  }

  /// An agent configuration for `device` on the example broker at `port`, with a
  /// client certificate of CN `device` made by `pki`, and `extra` lines.
  /// - Returns: its path.
  private func writeAgentConfig(_ dir: URL, pki: TestPKI, device: String, port: Int32, extra: String = "")
    throws -> String
  {
    let identity = try pki.makeClientCertificate(commonName: device)
    let config = dir.appendingPathComponent("agent.conf").path
    try """
    device.id = \(device)
    store.path = \(dir.appendingPathComponent("agent.db").path)
    mqtt.host = 127.0.0.1
    mqtt.port = \(port)
    mqtt.tls.ca_file = \(pki.caCertificate.path)
    mqtt.tls.cert_file = \(identity.certificate.path)
    mqtt.tls.key_file = \(identity.key.path)
    \(extra)
    """.write(toFile: config, atomically: true, encoding: .utf8)
    return config
  }

  private func read(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

  @Test func devicesAreConfinedToTheirOwnTopicsByCertificate() throws {
    let dir = try makeTemporaryDirectory("broker-security")
    let pki = try TestPKI()
    let port = try freeLoopbackPort()
    let broker = try startExampleBroker(pki: pki, dir: dir, port: port)
    defer { broker.terminate() }
    func identity(_ cn: String) throws -> Identity {
      let made = try pki.makeClientCertificate(commonName: cn)
      return Identity(certificate: made.certificate, key: made.key)
    }
    let hq = try identity("gridedge-hq-1")
    let a = try identity("TA-A")
    let b = try identity("TA-B")
    let sneaky = try identity(#"TA-E\/up"#)  // CN "TA-E/up" (openssl -subj escapes the slash)
    let plus = try identity("+")
    let hash = try identity("#")

    let hqSeen = dir.appendingPathComponent("hq.txt")
    let aSeen = dir.appendingPathComponent("a.txt")
    let hqSub = try subscribe(
      pki, hq, port: port, clientID: "gridedge-hq-1", topics: ["gridedge/v1/+/up/+", "gridedge/v1/+/state"],
      output: hqSeen)
    defer { hqSub.terminate() }
    // A listens on its own downlink and tries to listen on B's and on everyone's.
    let aSub = try subscribe(
      pki, a, port: port, clientID: "TA-A",
      topics: ["gridedge/v1/TA-A/down/+", "gridedge/v1/TA-B/down/cmd", "gridedge/v1/+/down/+"], output: aSeen)
    defer { aSub.terminate() }
    // Certificates whose CN is a wildcard try to read every device's commands.
    let wildSeen = dir.appendingPathComponent("wild.txt")
    let plusSub = try subscribe(
      pki, plus, port: port, clientID: "wild-plus", topics: ["gridedge/v1/+/down/+"], output: wildSeen)
    defer { plusSub.terminate() }
    let hashSub = try subscribe(
      pki, hash, port: port, clientID: "wild-hash", topics: ["gridedge/v1/#"], output: wildSeen)
    defer { hashSub.terminate() }
    usleep(700_000)

    // A publishes its own uplink (allowed) and B's uplink and state (refused).
    #expect(
      try publish(
        pki, a, port: port, clientID: "TA-A-pub", topic: "gridedge/v1/TA-A/up/events", message: "own") == 0)
    try publish(
      pki, a, port: port, clientID: "TA-A-pub", topic: "gridedge/v1/TA-B/up/readings", message: "forged-up")
    try publish(
      pki, a, port: port, clientID: "TA-A-pub", topic: "gridedge/v1/TA-B/state", message: "forged-state")
    // A certificate CN holding '/': mosquitto 2.0 substitutes it into the %u patterns
    // (it refuses only '+' and '#'), so the CA must never issue one; see the example.
    try publish(
      pki, sneaky, port: port, clientID: "TA-E-pub", topic: "gridedge/v1/TA-E/up/state", message: "sneaky")
    // No client certificate: refused at the TLS handshake.
    #expect(
      try publish(
        pki, nil, port: port, clientID: "anon", topic: "gridedge/v1/TA-A/up/events", message: "anon")
        != 0)
    // HQ sends a command to B and one to A.
    #expect(
      try publish(
        pki, hq, port: port, clientID: "gridedge-hq-1-pub", topic: "gridedge/v1/TA-B/down/cmd",
        message: "for-B") == 0)
    #expect(
      try publish(
        pki, hq, port: port, clientID: "gridedge-hq-1-pub", topic: "gridedge/v1/TA-A/down/cmd",
        message: "for-A") == 0)
    // B publishes its own uplink: HQ sees it.
    #expect(
      try publish(pki, b, port: port, clientID: "TA-B", topic: "gridedge/v1/TA-B/up/events", message: "b-own")
        == 0)

    #expect(waitUntil(timeout: 5) { read(hqSeen).contains("b-own") && read(aSeen).contains("for-A") })
    usleep(300_000)
    let atHQ = read(hqSeen)
    #expect(atHQ.contains("gridedge/v1/TA-A/up/events own"))
    #expect(atHQ.contains("gridedge/v1/TA-B/up/events b-own"))
    #expect(!atHQ.contains("forged"), "A published as B:\n\(atHQ)")
    // Known broker limitation, documented in firmware-config/mosquitto: it lands on a
    // topic that is not a contract uplink (class "state"), which gridedge-hq refuses.
    #expect(atHQ.contains("gridedge/v1/TA-E/up/state sneaky"))
    #expect(!atHQ.contains("anon"))
    let atA = read(aSeen)
    #expect(atA.contains("gridedge/v1/TA-A/down/cmd for-A"))
    #expect(!atA.contains("for-B"), "A read B's command:\n\(atA)")
    #expect(read(wildSeen).isEmpty, "a wildcard CN read commands:\n\(read(wildSeen))")
    // ... and they were connected, so the test could have seen them read.
    let log = read(dir.appendingPathComponent("mosquitto.log"))
    #expect(log.contains("as wild-plus") && log.contains("as wild-hash"), "\(log)")
  }

  @Test func theAgentConnectsToTheExampleBrokerWithItsCertificate() throws {
    let dir = try makeTemporaryDirectory("broker-security-agent")
    let pki = try TestPKI()
    let port = try freeLoopbackPort()
    let broker = try startExampleBroker(pki: pki, dir: dir, port: port)
    defer { broker.terminate() }
    let hqID = try pki.makeClientCertificate(commonName: "gridedge-hq-1")
    let seen = dir.appendingPathComponent("hq.txt")
    let hqSub = try subscribe(
      pki, Identity(certificate: hqID.certificate, key: hqID.key), port: port, clientID: "gridedge-hq-1",
      topics: ["gridedge/v1/+/state"], output: seen)
    defer { hqSub.terminate() }
    let config = try writeAgentConfig(dir, pki: pki, device: "TA-TLS-1", port: port)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    #expect(waitUntil(timeout: 5) { read(seen).contains(#"gridedge/v1/TA-TLS-1/state {"state":"online""#) })
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    #expect(waitUntil(timeout: 5) { read(seen).contains(#""reason":"shutdown""#) })
  }

  /// The whole path through the example broker (TLS, client certificates, the ACL):
  /// `gridedge-hq serve` and `send` with `--tls-*`, an agent with its certificate.
  /// HQ's identity publishes 100 bad commands on the device's command topic: 25
  /// replays of a command already applied, 25 signed with a key HQ never had (same
  /// kid), 25 expired, and 25 others (another device's, an unknown kid, alg none,
  /// not a token). All 100 are rejected with their reason, nothing is applied twice,
  /// and the signature failures suspend control commands for the day.
  @Test func hundredForgedReplayedOrExpiredCommandsThroughTheExampleBrokerAreAllRejected() throws {
    let dir = try makeTemporaryDirectory("broker-security-commands")
    let pki = try TestPKI()
    let port = try freeLoopbackPort()
    let broker = try startExampleBroker(pki: pki, dir: dir, port: port)
    defer { broker.terminate() }
    let hqID = try pki.makeClientCertificate(commonName: "gridedge-hq-1")
    let deviceID = "TA-TLS-2"
    let tls = [
      "--tls-ca", pki.caCertificate.path, "--tls-cert", hqID.certificate.path, "--tls-key", hqID.key.path,
    ]
    let keys = dir.appendingPathComponent("keys").path
    let other = dir.appendingPathComponent("other").path
    for (out, kid) in [(keys, "hq1"), (other, "hq1"), (other, "hq9")] {
      #expect(try runProduct("gridedge-hq", ["keygen", "--out", out, "--kid", kid], in: dir).status == 0)
    }
    let hqDB = dir.appendingPathComponent("hq.db").path
    let hq = try Child(
      "gridedge-hq", ["serve", "--port", String(port), "--db", hqDB, "--client-id", "gridedge-hq-1"] + tls,
      in: dir)
    try hq.waitForLog("connected to")
    let config = try writeAgentConfig(
      dir, pki: pki, device: deviceID, port: port, extra: "commands.trusted_keys = \(keys)/trusted-keys\n")
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String { [agent, hq].map { String($0.log.suffix(4000)) }.joined(separator: "\n----\n") }
    func results() -> [[String: Any]] { storedAtHQ(hqDB, device: deviceID, "results") }

    // One genuine command through gridedge-hq send over TLS; its token is kept.
    let sent = try runProduct(
      "gridedge-hq",
      [
        "send", "--db", hqDB, "--port", String(port), "--key", "\(keys)/hq1.key", "--kid", "hq1", "--dev",
        deviceID, "--typ", "tariff", "--body", residentialTariff,
      ] + tls, in: dir)
    #expect(sent.status == 0, "\(sent.stderr)")
    let token = sent.stdout.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
    #expect(
      waitUntil(timeout: 20) { results().contains { $0["outcome"] as? String == "applied" } },
      "the genuine command was not applied\n\(logs())")

    func sign(_ key: String, kid: String, dev: String = deviceID, ctr: Int, ttl: Int = 3600) throws -> String
    {
      let out = try runProduct(
        "gridedge-hq",
        [
          "sign", "--key", key, "--kid", kid, "--dev", dev, "--ctr", String(ctr), "--typ", "topup", "--body",
          #"{"customer":"C-1","amount":100,"purchase":\#(ctr)}"#, "--ttl", String(ttl),
        ], in: dir)
      guard out.status == 0 else { throw TestFailure("sign: \(out.stderr)") }
      return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    var bad: [(token: String, reason: String)] = []
    bad += Array(repeating: (token, "replayed"), count: 25)
    for n in 0..<25 { bad.append((try sign("\(other)/hq1.key", kid: "hq1", ctr: 100 + n), "bad-signature")) }
    let expiring = try (0..<25).map { try sign("\(keys)/hq1.key", kid: "hq1", ctr: 200 + $0, ttl: 1) }
    for n in 0..<10 {
      bad.append((try sign("\(keys)/hq1.key", kid: "hq1", dev: "TA-OTHER", ctr: 300 + n), "wrong-device"))
    }
    for n in 0..<5 { bad.append((try sign("\(other)/hq9.key", kid: "hq9", ctr: 400 + n), "unknown-key")) }
    let genuine = token.split(separator: ".").map(String.init)
    for n in 0..<5 {
      bad.append(("eyJhbGciOiJub25lIn0." + genuine[1] + "." + String(n), "unsupported-algorithm"))
    }
    for n in 0..<5 { bad.append(("not a token \(n)", "malformed")) }
    usleep(2_100_000)
    bad += expiring.map { ($0, "expired") }
    #expect(bad.count == 100)

    // HQ's identity publishes them all on the device's command topic, one line each.
    let lines = dir.appendingPathComponent("bad-commands.txt")
    try (bad.map { $0.token }.joined(separator: "\n") + "\n").write(
      to: lines, atomically: true, encoding: .utf8)
    let published = try runProcess(
      "/bin/sh",
      [
        "-c",
        "/usr/bin/mosquitto_pub -h 127.0.0.1 -p \(port) --cafile '\(pki.caCertificate.path)' --cert '\(hqID.certificate.path)' --key '\(hqID.key.path)' -i gridedge-hq-1-pub -q 1 -t gridedge/v1/\(deviceID)/down/cmd -l < '\(lines.path)'",
      ])
    #expect(published.status == 0, "\(published.output)")
    #expect(
      waitUntil(timeout: 60) { results().count >= 101 }, "\(results().count) of 101 results at HQ\n\(logs())")
    let held = results()
    let rejected = held.filter { $0["outcome"] as? String == "rejected" }
    #expect(rejected.count == 100, "\(held.count) results, \(rejected.count) rejected")
    var reasons: [String: Int] = [:]
    for result in rejected { reasons[result["reason"] as? String ?? "", default: 0] += 1 }
    var expected: [String: Int] = [:]
    for item in bad { expected[item.reason, default: 0] += 1 }
    #expect(reasons == expected)
    #expect(held.filter { $0["outcome"] as? String == "applied" }.count == 1, "something applied twice")
    let suspended = storedAtHQ(hqDB, device: deviceID, "events").filter {
      $0["type"] as? String == "commands.suspended"
    }
    #expect(suspended.count == 1, "the signature failures did not suspend control: \(suspended)")
    print("soak security_bad_commands_sent \(bad.count) commands")
    print("soak security_bad_commands_rejected \(rejected.count) commands")

    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
  }
}

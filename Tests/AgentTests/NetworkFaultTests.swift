import Foundation
import SQLiteStore
import TestSupport
import Testing

/// A bad network (issue 8): the agent in one network namespace, mosquitto and
/// `gridedge-hq` in another, joined through a third that holds a bad wire
/// (Tests/Fixtures/netem_wire.py: 20 % loss, delay with jitter, reordering,
/// duplication), while the link flaps: the wire's interface goes down (both ends lose
/// carrier) or the wire drops everything (a break further along that neither end
/// sees). Readings are ingested all the while. Then HQ must hold every reading exactly
/// once, and every reconnect must have waited within the backoff bounds.
///
/// `make test` runs it for `GRIDEDGE_NETWORK_SECONDS` = 60 s; `make soak` for minutes.
/// It needs root, `ip` (iproute2), `ethtool` and python3, and fails without them.
@Suite(.serialized) struct NetworkFaultTests {
  static let wire = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures/netem_wire.py")
  static let reconnectMin: Int64 = 200
  static let reconnectMax: Int64 = 2000
  static let keepalive: Int64 = 5
  /// The longest a connection attempt may take on this link: ARP and the SYN under 20 %
  /// loss each way (retransmitted after 1, 2, 4 s), CONNECT and CONNACK after them.
  static let attemptBound: Double = 20

  @Test func lossyFlappingLinkLosesNothingDuplicatesNothingAndReconnectsWithinBackoff() throws {
    let seconds = try soakParameter("GRIDEDGE_NETWORK_SECONDS", default: 60)
    // GRIDEDGE_NETWORK_FAR_CUT=1: cuts let ARP through (a break beyond a router) and
    // last 30 to 45 s. Not in `make test`: it shows the blocking connect (see README).
    let farCut = ProcessInfo.processInfo.environment["GRIDEDGE_NETWORK_FAR_CUT"] == "1"
    let lab = try NetworkLab(cutPassesARP: farCut)
    defer { lab.tearDown() }
    let dir = try makeTemporaryDirectory("network")
    let device = "TA-NET-1"
    let agentDB = dir.appendingPathComponent("agent.db").path
    let hqDB = dir.appendingPathComponent("hq.db").path

    let broker = try lab.startBroker(in: dir)
    defer { broker.terminate(signal: SIGKILL) }
    let hq = try Child(
      "gridedge-hq", ["serve", "--host", "127.0.0.1", "--port", "1883", "--db", hqDB, "--log-level", "info"],
      in: dir, via: lab.exec(lab.brokerSide))
    try hq.waitForLog("connected to")
    let config = dir.appendingPathComponent("agent.conf").path
    try """
    device.id = \(device)
    store.path = \(agentDB)
    mqtt.host = \(NetworkLab.brokerAddress)
    mqtt.port = 1883
    mqtt.keepalive = \(Self.keepalive)
    mqtt.reconnect_min = \(Self.reconnectMin)
    mqtt.reconnect_max = \(Self.reconnectMax)
    sync.batch_records = 100
    sync.window = 8
    sync.ack_timeout = 3000
    sync.backlog_rate = 0
    log.level = info
    """.write(toFile: config, atomically: true, encoding: .utf8)
    try fillOutbox(path: agentDB, device: device, count: 2_000)
    var sent = 2_000
    let agent = try Child("gridedge", ["run", "--config", config], in: dir, via: lab.exec(lab.agentSide))
    let lines = LogFollower(agent.logURL)
    defer { lines.stop() }
    try agent.waitForLog("birth published", timeout: 30)

    // Ingest and flap until the time is up: a flap every 5 to 10 s, 2 to 16 s long.
    let started = Date()
    var restored: [Date] = []
    var flaps = 0
    var nextFlap = Date().addingTimeInterval(Double.random(in: 2...4))
    while Date().timeIntervalSince(started) < Double(seconds) {
      try fillOutbox(path: agentDB, device: device, count: 500, firstIndex: sent, chunk: 500)
      sent += 500
      if Date() >= nextFlap {
        flaps += 1
        // Every third flap outlasts the keepalive (the agent must notice and reconnect);
        // the others are short enough that TCP may ride them out.
        var down = flaps % 3 == 1 ? Double.random(in: 12...16) : Double.random(in: 2...9)
        // A far cut outlasts every SYN retransmission an attempt may wait for.
        if farCut && flaps % 2 == 0 { down = Double.random(in: 30...45) }
        if flaps % 2 == 1 {
          try lab.setWire(up: false)
          usleep(UInt32(down * 1_000_000))
          try lab.setWire(up: true)
        } else {
          lab.cutWire(true)
          usleep(UInt32(down * 1_000_000))
          lab.cutWire(false)
        }
        restored.append(Date())
        nextFlap = Date().addingTimeInterval(Double.random(in: 5...10))
      } else {
        usleep(1_000_000)
      }
    }
    let soaked = Date().timeIntervalSince(started)

    // Everything arrives once the link stays up (still lossy).
    var held: (rows: Int64, distinct: Int64) = (0, 0)
    let drained = waitUntil(timeout: 240) {
      held = (try? hqReadings(hqDB, device: device)) ?? held
      guard held.distinct >= Int64(sent) else { return false }
      return ((try? outboxBacklog(agentDB)) ?? 1) == 0
    }
    #expect(drained, "HQ holds \(held.distinct) of \(sent) readings; agent log:\n\(agent.log.suffix(3000))")
    #expect(held.distinct == Int64(sent), "readings lost")
    #expect(held.rows == held.distinct, "HQ stored \(held.rows - held.distinct) duplicate readings")
    let reported = try runProduct("gridedge-hq", ["report", "--db", hqDB, "--json"], in: dir)
    let devices = try JSONSerialization.jsonObject(with: Data(reported.stdout.utf8)) as? [[String: Any]]
    let entry = devices?.first { $0["device"] as? String == device } ?? [:]
    #expect(entry["missing_seqs"] as? Int == 0)
    #expect(entry["conflicting_batches"] as? Int == 0)

    // The backoff: every delay within min(cap, base · 2^attempt), every attempt made
    // when its delay was up (not before, and not stuck for longer than one attempt).
    let check = BackoffCheck(
      lines: lines.snapshot(), base: Self.reconnectMin, cap: Self.reconnectMax,
      attemptBound: Self.attemptBound)
    for problem in check.problems { Issue.record(Comment(rawValue: problem)) }
    #expect(check.reconnects >= 1, "the agent never lost the link: the flaps did not reach it")
    // After each flap the agent is online again within detection (keepalive · 1.5),
    // the backoff cap and one attempt.
    let bound = Double(Self.keepalive) * 1.5 + Double(Self.reconnectMax) / 1000 + Self.attemptBound
    var worst = 0.0
    for up in restored {
      guard let online = check.onlineAfter(up) else {
        Issue.record("the agent was not online again after the flap that ended at \(up)")
        continue
      }
      worst = max(worst, online.timeIntervalSince(up))
    }
    #expect(worst <= bound, "back online \(worst) s after a flap ended; bound \(bound) s")

    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 20) == 0)
    let wire = lab.stopWire()
    soakFigure("network_seconds", Int(soaked), "s")
    soakFigure("network_flaps", flaps, "flaps")
    soakFigure("network_reconnects", check.reconnects, "reconnects")
    soakFigure("network_readings_sent", sent, "readings")
    soakFigure("network_readings_lost", Int64(sent) - held.distinct, "readings")
    soakFigure("network_duplicates_stored_at_hq", held.rows - held.distinct, "readings")
    soakFigure("network_duplicate_batches_removed", entry["duplicate_batches"] as? Int ?? -1, "batches")
    soakFigure("network_retry_delay_max", check.longestDelay, "ms")
    soakFigure("network_backoff_violations", check.problems.count, "retries")
    soakFigure("network_back_online_max", Int(worst * 1000), "ms")
    for (name, value) in wire.sorted(by: { $0.key < $1.key }) {
      soakFigure("network_wire_\(name)", value, "frames")
    }
  }

  /// (rows, distinct natural keys) of the readings HQ holds for `device`.
  private func hqReadings(_ path: String, device: String) throws -> (rows: Int64, distinct: Int64) {
    guard FileManager.default.fileExists(atPath: path) else { return (0, 0) }
    let row = try readOnlyConnection(path).query(
      "SELECT count(*), count(DISTINCT key) FROM records WHERE device_id = ?1 AND class = 'readings'",
      [.text(device)])[0]
    return (row.int64(0) ?? 0, row.int64(1) ?? 0)
  }

  /// Outbox rows plus unacknowledged batches left in the agent's database.
  private func outboxBacklog(_ path: String) throws -> Int64 {
    let row = try readOnlyConnection(path).query(
      "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM batches)")[0]
    return row.int64(0) ?? 1
  }
}

/// Three network namespaces named `ge-soak-<pid>-a|w|b`: the agent's (`a`), the wire's
/// (`w`) and the broker's (`b`), joined by two veth pairs through the wire, the
/// agent at 198.18.0.1 and the broker at 198.18.0.2 (RFC 2544's benchmarking range,
/// on no network but these namespaces). `tearDown()` removes them; namespaces left by
/// a test process that died are removed when the next lab is made.
final class NetworkLab {
  static let agentAddress = "198.18.0.1"
  static let brokerAddress = "198.18.0.2"
  let prefix = "ge-soak-\(getpid())"
  var agentSide: String { prefix + "-a" }
  var wireSide: String { prefix + "-w" }
  var brokerSide: String { prefix + "-b" }
  let ip: String
  private let ethtool: String
  private let python: String
  private var wire: ChildProcess?
  private var wireOutput: URL?
  private let suffix = String(getpid() % 1_000_000)

  private let cutPassesARP: Bool

  init(cutPassesARP: Bool = false) throws {
    self.cutPassesARP = cutPassesARP
    guard geteuid() == 0 else {
      throw TestFailure("network namespaces need root: run the tests as root (make test does in CI)")
    }
    var found: [String] = []
    for (tool, package) in [("ip", "iproute2"), ("ethtool", "ethtool"), ("python3", "python3")] {
      guard let path = findExecutable(tool, fallbacks: ["/usr/sbin/\(tool)", "/sbin/\(tool)"]) else {
        throw TestFailure("\(tool) not found: install \(package) (make test does, .ci/deps.sh)")
      }
      found.append(path)
    }
    (ip, ethtool, python) = (found[0], found[1], found[2])
    try removeStaleNamespaces()
    do {
      try build()
    } catch {
      tearDown()
      throw error
    }
  }

  /// `ip netns exec NS` as a command prefix.
  func exec(_ namespace: String) -> [String] { [ip, "netns", "exec", namespace] }

  private func run(_ arguments: [String]) throws {
    let result = try runProcess(arguments[0], Array(arguments.dropFirst()))
    guard result.status == 0 else {
      throw TestFailure("\(arguments.joined(separator: " ")) failed (\(result.status)): \(result.output)")
    }
  }

  private func build() throws {
    let (a, w, b) = (agentSide, wireSide, brokerSide)
    let (ga, wa, wb, gb) = ("gea" + suffix, "gwa" + suffix, "gwb" + suffix, "geb" + suffix)
    for ns in [a, w, b] {
      try run([ip, "netns", "add", ns])
      try run([ip, "-n", ns, "link", "set", "lo", "up"])
    }
    try run([ip, "link", "add", ga, "netns", a, "type", "veth", "peer", "name", wa, "netns", w])
    try run([ip, "link", "add", gb, "netns", b, "type", "veth", "peer", "name", wb, "netns", w])
    try run([ip, "-n", a, "addr", "add", Self.agentAddress + "/24", "dev", ga])
    try run([ip, "-n", b, "addr", "add", Self.brokerAddress + "/24", "dev", gb])
    for (ns, dev) in [(a, ga), (w, wa), (w, wb), (b, gb)] {
      try run([ip, "-n", ns, "link", "set", dev, "up"])
      // Frames are read by a packet socket before the kernel fills in checksums or
      // splits segments: both must happen at the sender.
      try run(exec(ns) + [ethtool, "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"])
    }
    let output = try makeTemporaryDirectory("wire").appendingPathComponent("wire.log")
    wireOutput = output
    let process = try ChildProcess(
      ip,
      [
        "netns", "exec", w, python, NetworkFaultTests.wire.path, wa, wb, "--loss", "20", "--delay", "40",
        "--jitter", "20", "--reorder", "25", "--duplicate", "5",
      ] + (cutPassesARP ? ["--cut-passes-arp"] : []), outputFile: output)
    wire = process
    guard
      waitUntil(
        timeout: 10, { (try? String(contentsOf: output, encoding: .utf8))?.contains("wire up") ?? false })
    else {
      throw TestFailure("the wire did not start: \((try? String(contentsOf: output, encoding: .utf8)) ?? "")")
    }
  }

  /// Takes the wire's interface on the agent's side down or up (both ends see the
  /// carrier go).
  func setWire(up: Bool) throws {
    try run([ip, "-n", wireSide, "link", "set", "gwa" + suffix, up ? "up" : "down"])
  }

  /// Cuts the wire (every frame dropped, the carrier stays) or mends it.
  func cutWire(_ cut: Bool) {
    if let pid = wire?.pid { kill(pid, cut ? SIGUSR1 : SIGUSR2) }
  }

  /// Stops the wire; returns its counters (forwarded, dropped, duplicated, reordered, cut).
  func stopWire() -> [String: Int] {
    guard let wire, let wireOutput else { return [:] }
    wire.terminate(signal: SIGTERM, timeout: 5)
    self.wire = nil
    let text = (try? String(contentsOf: wireOutput, encoding: .utf8)) ?? ""
    var counters: [String: Int] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix("wire ") && line.contains("=") {
      for field in line.dropFirst(5).split(separator: " ") {
        let parts = field.split(separator: "=")
        if parts.count == 2, let value = Int(parts[1]) { counters[String(parts[0])] = value }
      }
    }
    return counters
  }

  /// mosquitto in the broker's namespace, listening on all its addresses at 1883.
  func startBroker(in dir: URL) throws -> ChildProcess {
    guard let mosquitto = findExecutable("mosquitto", fallbacks: ["/usr/sbin/mosquitto"]) else {
      throw TestFailure("mosquitto not found: install the mosquitto package (make test does)")
    }
    let log = dir.appendingPathComponent("mosquitto.log")
    let conf = dir.appendingPathComponent("mosquitto.conf")
    try """
    user root
    allow_anonymous true
    persistence false
    log_dest file \(log.path)
    log_type all
    log_timestamp true
    listener 1883
    """.write(to: conf, atomically: true, encoding: .utf8)
    let broker = try ChildProcess(
      ip, ["netns", "exec", brokerSide, mosquitto, "-c", conf.path],
      outputFile: dir.appendingPathComponent("mosquitto.out"))
    guard
      waitUntil(
        timeout: 10, { (try? String(contentsOf: log, encoding: .utf8))?.contains("listen socket") ?? false })
    else {
      broker.terminate(signal: SIGKILL)
      throw TestFailure("mosquitto did not start in \(brokerSide): \((try? String(contentsOf: log)) ?? "")")
    }
    return broker
  }

  /// Stops the wire and removes the three namespaces (their veth pairs go with them).
  func tearDown() {
    wire?.terminate(signal: SIGKILL, timeout: 5)
    wire = nil
    for ns in [agentSide, wireSide, brokerSide] {
      _ = try? runProcess(ip, ["netns", "delete", ns])
    }
  }

  /// Removes `ge-soak-<pid>-*` namespaces whose process is gone (a test that was killed).
  private func removeStaleNamespaces() throws {
    let listed = try runProcess(ip, ["netns", "list"])
    for line in listed.output.split(separator: "\n") {
      let name = String(line.split(separator: " ").first ?? "")
      let parts = name.split(separator: "-")
      guard name.hasPrefix("ge-soak-"), parts.count == 4, let pid = Int32(parts[2]) else { continue }
      if pid == getpid() || kill(pid, 0) != 0 {
        _ = try? runProcess(ip, ["netns", "delete", name])
      }
    }
  }
}

/// Follows a growing log file from a background thread, noting when each line appeared
/// (every 20 ms), since the agent's log lines carry no time.
final class LogFollower: @unchecked Sendable {
  private let url: URL
  private let lock = NSLock()
  private var lines: [(Date, String)] = []
  private var running = true
  private var thread: Thread?

  init(_ url: URL) {
    self.url = url
    let thread = Thread { [self] in follow() }
    self.thread = thread
    thread.start()
  }

  private func follow() {
    var offset = 0
    var partial = Data()
    while lock.withLock({ running }) {
      if let handle = try? FileHandle(forReadingFrom: url) {
        try? handle.seek(toOffset: UInt64(offset))
        let data = handle.readDataToEndOfFile()
        try? handle.close()
        offset += data.count
        partial.append(data)
        let now = Date()
        while let newline = partial.firstIndex(of: 0x0A) {
          let line = String(decoding: partial[partial.startIndex..<newline], as: UTF8.self)
          partial.removeSubrange(partial.startIndex...newline)
          lock.withLock { lines.append((now, line)) }
        }
      }
      usleep(20_000)
    }
  }

  func snapshot() -> [(Date, String)] { lock.withLock { lines } }

  func stop() { lock.withLock { running = false } }
}

/// The agent's MQTT link lines checked against its backoff: `link to H down (...);
/// retry in D ms` must have D ≤ min(cap, base · 2^attempt) (attempts counted since the
/// last `connected to`), and the next link line (the attempt's outcome) must come no
/// sooner than D and no later than D + one attempt.
struct BackoffCheck {
  var problems: [String] = []
  var reconnects = 0
  var longestDelay: Int64 = 0
  private var connectedAt: [Date] = []
  private var downAt: [Date] = []

  init(lines: [(Date, String)], base: Int64, cap: Int64, attemptBound: Double) {
    var attempt = 0
    var pending: (at: Date, delay: Int64)?
    var everConnected = false
    for (at, line) in lines {
      let isConnected = line.contains("mqtt: connected to")
      let isDown = line.contains("mqtt: link to") && line.contains("; retry in ")
      guard isConnected || isDown else { continue }
      if let (retryAt, delay) = pending {
        let waited = at.timeIntervalSince(retryAt)
        // The follower notes lines up to 20 ms late; allow 60 ms either way.
        if waited < Double(delay) / 1000 - 0.06 {
          problems.append("retried after \(Int(waited * 1000)) ms, sooner than the \(delay) ms drawn")
        }
        if waited > Double(delay) / 1000 + attemptBound {
          problems.append("the attempt after a \(delay) ms wait ended \(Int(waited * 1000)) ms later")
        }
        pending = nil
      }
      if isConnected {
        if everConnected { reconnects += 1 }
        everConnected = true
        attempt = 0
        connectedAt.append(at)
      } else {
        downAt.append(at)
        let text = line.components(separatedBy: "; retry in ").last ?? ""
        guard let delay = Int64(text.prefix { $0.isNumber }) else {
          problems.append("no delay in '\(line)'")
          continue
        }
        var ceiling = base
        for _ in 0..<attempt where ceiling < cap { ceiling *= 2 }
        ceiling = min(ceiling, cap)
        if delay > ceiling || delay < 0 {
          problems.append("retry \(attempt + 1) drew \(delay) ms, outside 0...\(ceiling) ms")
        }
        longestDelay = max(longestDelay, delay)
        attempt += 1
        pending = (at, delay)
      }
    }
  }

  /// When the agent was next online at or after `time`: `time` itself when it had not
  /// lost the link, or its next `connected to`.
  func onlineAfter(_ time: Date) -> Date? {
    let lastConnected = connectedAt.last { $0 <= time }
    let lastDown = downAt.last { $0 <= time }
    if let lastConnected, lastDown.map({ $0 < lastConnected }) ?? true {
      // Connected before the flap ended and not seen down since: still up, unless it
      // goes down right after (the loss noticed late), then its next connect counts.
      if let nextDown = downAt.first(where: { $0 > time }),
        nextDown.timeIntervalSince(time) < 1.5 * Double(NetworkFaultTests.keepalive) + 1
      {
        return connectedAt.first { $0 > nextDown }
      }
      return time
    }
    return connectedAt.first { $0 > time }
  }
}

import Foundation
import SQLiteStore
import TestSupport
import Testing

/// This device's clock goes wrong (issue 8): `gridedge run` under libfaketime
/// (LD_PRELOAD; the offset read from a file at every call, so it can be changed while
/// the agent runs; the monotonic clock left alone, as NTP or a failing RTC would),
/// reading `gridedge-sim` meters whose clocks stay right, syncing with `gridedge-hq`.
/// The clock jumps a year ahead, a year back, to 1970, and back to the right time.
/// Then: a signed tariff replayed after every jump is still rejected (applied once),
/// every reading whose timestamp is off is `clock-suspect` at HQ, none is in 1970,
/// none was charged, and readings are `measured` again once the clock is right.
///
/// `make test` runs one round of jumps; `make soak` sets `GRIDEDGE_CLOCK_JUMPS` rounds.
@Suite(.serialized) struct ClockJumpTests {
  static let faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
  private let device = "TA-CLOCK"
  static let year: Int64 = 365 * 86_400

  @Test func clockJumpsKeepReplaysRejectedTariffsAppliedOnceAndFlagReadings() throws {
    guard FileManager.default.fileExists(atPath: Self.faketime) else {
      throw TestFailure("\(Self.faketime) not found: install libfaketime (make test does, .ci/deps.sh)")
    }
    guard let mosquittoPub = findExecutable("mosquitto_pub") else {
      throw TestFailure("mosquitto_pub not found: install mosquitto-clients (make test does)")
    }
    let rounds = try soakParameter("GRIDEDGE_CLOCK_JUMPS", default: 1)
    let dir = try makeTemporaryDirectory("clock-jumps")
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    let (sim, simPort) = try startSimulator(["--meters", "3", "--no-area"], in: dir)
    let rig = try HQUnderTest(in: dir)
    let meterFile = dir.appendingPathComponent("meters.txt")
    try "000000000001 1\n000000000002 1\n000000000003 1\n".write(
      to: meterFile, atomically: true, encoding: .utf8)
    let config = dir.appendingPathComponent("agent.conf").path
    try agentBaseConfig(device: device, dir: dir, port: rig.port, keys: keys)
      .appending(
        """
        meter.file = \(meterFile.path)
        bus.1 = tcp 127.0.0.1:\(simPort) 9600 8E1
        bus.timeout = 300
        acquisition.interval = 1
        acquisition.clock_check = 1440
        acquisition.clock_threshold = 60
        acquisition.backfill_days = 0
        log.level = info
        """
      ).write(toFile: config, atomically: true, encoding: .utf8)
    let offsetFile = dir.appendingPathComponent("faketime.rc")
    func setClock(_ spec: String) throws { try spec.write(to: offsetFile, atomically: true, encoding: .utf8) }
    try setClock("+0")
    let agent = try Child(
      "gridedge", ["run", "--config", config], in: dir,
      environment: [
        "LD_PRELOAD": Self.faketime, "FAKETIME_TIMESTAMP_FILE": offsetFile.path, "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
      ])
    try agent.waitForLog("birth published", timeout: 30)
    func logs() -> String {
      [agent, sim, rig.hq].map { String($0.log.suffix(4000)) }.joined(separator: "\n----\n")
    }
    let agentDB = dir.appendingPathComponent("agent.db").path

    // Archive and top-up through HQ's counter (1, 2); the tariff signed by hand (3)
    // valid for three years, so that only its counter can refuse it after a jump.
    for (type, body) in [
      (
        "archive",
        #"{"op":"snapshot","version":1,"meters":[{"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential"},{"address":"000000000002","customer":"C-2","area":"TA-1","category":"residential"},{"address":"000000000003","customer":"C-3","area":"TA-1","category":"residential"}]}"#
      ), ("topup", #"{"customer":"C-1","purchase":1,"amount":100000}"#),
    ] {
      let out = try hqSend(type, body, device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir)
      guard out.status == 0 else { throw TestFailure("gridedge-hq send \(type): \(out.stderr)") }
    }
    let signed = try runProduct(
      "gridedge-hq",
      [
        "sign", "--key", "\(keys)/hq1.key", "--kid", "hq1", "--dev", device, "--ctr", "3", "--typ", "tariff",
        "--ttl", String(3 * Self.year), "--body",
        #"{"id":"RES-1","category":"residential","effective_from":"2020-01-01","flat":5000}"#,
      ], in: dir)
    let token = signed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    guard signed.status == 0, !token.isEmpty else { throw TestFailure("gridedge-hq sign: \(signed.stderr)") }
    func publishTariff() throws {
      let out = try runProcess(
        mosquittoPub,
        [
          "-h", "127.0.0.1", "-p", String(rig.port), "-q", "1", "-t", "gridedge/v1/\(device)/down/cmd", "-m",
          token,
        ])
      guard out.status == 0 else { throw TestFailure("mosquitto_pub: \(out.output)") }
    }
    func tariffResults() -> [String] {
      storedAtHQ(rig.db, device: device, "results").filter { $0["ctr"] as? String == "3" }.map {
        ($0["outcome"] as? String ?? "?") + ":" + ($0["reason"] as? String ?? "")
      }
    }
    try publishTariff()
    #expect(
      waitUntil(timeout: 20) { tariffResults().count == 1 }, "no result for the tariff\n\(logs())")
    #expect(tariffResults().first?.hasPrefix("applied") == true, "\(tariffResults())")

    /// Waits for readings at HQ whose timestamps fall in `range` (unix ms).
    func readingsAtHQ(in range: ClosedRange<Int64>) -> [[String: Any]] {
      storedAtHQ(rig.db, device: device, "readings").filter {
        guard let ts = ($0["ts"] as? NSNumber)?.int64Value else { return false }
        return range.contains(ts)
      }
    }
    let now = { Int64(Date().timeIntervalSince1970 * 1000) }
    let day: Int64 = 86_400_000
    #expect(
      waitUntil(timeout: 90) { readingsAtHQ(in: (now() - day)...(now() + day)).count >= 3 },
      "no readings at HQ with the right clock\n\(logs())")

    var replays = 1
    var jumps = 0
    let ahead = (now() + 300 * day)...(now() + 400 * day + Int64(rounds) * 3_600_000)
    let behind = (now() - 400 * day)...(now() - 300 * day)
    /// Sets the clock to `spec` and waits until the agent logs `text` once more.
    func setClock(_ spec: String, expecting text: String, timeout: Double = 30) throws {
      let said = agent.log.components(separatedBy: text).count
      try setClock(spec)
      jumps += 1
      #expect(
        waitUntil(timeout: timeout) { agent.log.components(separatedBy: text).count > said },
        "the agent did not log '\(text)' after the clock was set to \(spec)\n\(logs())")
    }
    /// Replays the tariff and waits for its result at HQ.
    func replayTariff() throws {
      try publishTariff()
      replays += 1
      #expect(
        waitUntil(timeout: 20) { tariffResults().count == replays },
        "no result for the replayed tariff\n\(logs())")
    }
    for round in 0..<rounds {
      // An hour more each round, so that every round reads slots of its own.
      let jump = Self.year + Int64(round) * 3600
      for (spec, range) in [("+\(jump)", ahead), ("-\(jump)", behind)] {
        let before = readingsAtHQ(in: range).count
        try setClock(spec, expecting: "clock jumped")
        #expect(
          waitUntil(timeout: 90) { readingsAtHQ(in: range).count >= before + 3 },
          "no readings at HQ taken with the clock at \(spec)\n\(logs())")
        try replayTariff()
      }
      // 1970: the clock is not set; nothing is read until it is.
      try setClock("@1970-01-02 00:00:00", expecting: "meters are not read until it is set")
      try replayTariff()
      // The right time again: measured readings once a meter's clock agrees.
      try setClock("+0", expecting: "readings are no longer clock-suspect", timeout: 90)
    }
    // A cycle with the confirmed clock: measured readings at HQ.
    let settled = now()
    #expect(
      waitUntil(timeout: 90) {
        readingsAtHQ(in: settled...(now() + day)).filter { $0["q"] as? String == "measured" }.count >= 3
      }, "no measured readings after the clock was right again\n\(logs())")

    // Replays: the tariff applied once, every replay refused by its counter.
    let results = tariffResults()
    #expect(results.count == replays)
    #expect(results.filter { $0.hasPrefix("applied") }.count == 1, "\(results)")
    #expect(results.dropFirst().allSatisfy { $0 == "rejected:replayed" }, "\(results)")
    let db = try readOnlyConnection(agentDB)
    #expect(try db.scalarInt("SELECT count(*) FROM tariffs") == 1)
    // Readings: none in 1970, every one a year off suspect, none of those charged.
    let all = storedAtHQ(rig.db, device: device, "readings")
    let plausible: Int64 = 1_704_067_200_000
    let in1970 = all.filter { (($0["ts"] as? NSNumber)?.int64Value ?? 0) < plausible }
    #expect(in1970.isEmpty, "readings stamped before 2024: \(in1970.prefix(3))")
    let offClock = readingsAtHQ(in: ahead) + readingsAtHQ(in: behind)
    #expect(offClock.count >= 6 * rounds)
    let unflagged = offClock.filter { $0["q"] as? String != "clock-suspect" }
    #expect(unflagged.isEmpty, "readings a year off not flagged clock-suspect: \(unflagged.prefix(3))")
    let charged = try db.query("SELECT ref FROM ledger WHERE kind = 'charge'").compactMap { $0.text(0) }
    let chargedOffClock = charged.filter { ref in
      guard let ts = Int64(ref.split(separator: ":").last ?? "") else { return false }
      return ahead.contains(ts) || behind.contains(ts)
    }
    #expect(chargedOffClock.isEmpty, "charged at a timestamp a year off: \(chargedOffClock.prefix(3))")
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 20) == 0)
    let verify = try runProduct("gridedge", ["ledger", "verify", "--config", config], in: dir)
    #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    withExtendedLifetime(rig) {}
    soakFigure("clock_jumps", jumps, "jumps")
    soakFigure(
      "clock_tariff_replays_rejected", results.dropFirst().filter { $0 == "rejected:replayed" }.count,
      "replays")
    soakFigure("clock_tariff_applied", results.filter { $0.hasPrefix("applied") }.count, "times")
    soakFigure("clock_readings_off_clock", offClock.count, "readings")
    soakFigure("clock_readings_off_clock_unflagged", unflagged.count, "readings")
    soakFigure("clock_readings_in_1970", in1970.count, "readings")
    soakFigure("clock_charges_off_clock", chargedOffClock.count, "charges")
  }
}

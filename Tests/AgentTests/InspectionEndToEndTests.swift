import Foundation
import GridEdgeContract
import SQLiteStore
import TestSupport
import Testing

/// Handheld mode end to end: `gridedge-hq send` signs a work order, the agent (handheld
/// profile) receives it, the inspector works it with `gridedge inspect --json` while
/// the broker is down, and once the link is back HQ holds the completion record and
/// both photos byte-identical, exactly once.
@Suite(.serialized) struct InspectionEndToEndTests {
  private func hqQuery(_ hqDB: String, _ sql: String) -> [Row] {
    guard FileManager.default.fileExists(atPath: hqDB), let db = try? readOnlyConnection(hqDB)
    else { return [] }
    return (try? db.query(sql)) ?? []
  }

  /// A broker, HQ's key, a handheld agent's configuration; HQ and the agent are
  /// started by the tests.
  private struct Setup {
    let broker: MosquittoBroker
    let dir: URL
    let keys: String
    let device: String
    let hqDB: String
    let config: String

    init(_ label: String, device: String, extra: String = "") throws {
      broker = try MosquittoBroker()
      dir = try makeTemporaryDirectory(label)
      keys = dir.appendingPathComponent("keys").path
      self.device = device
      hqDB = dir.appendingPathComponent("hq.db").path
      config = dir.appendingPathComponent("handheld.conf").path
      let keygen = try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir)
      guard keygen.status == 0 else { throw TestFailure("keygen: \(keygen.stderr)") }
      try """
      device.id = \(device)
      device.profile = handheld
      store.path = \(dir.appendingPathComponent("agent.db").path)
      mqtt.port = \(broker.port)
      mqtt.reconnect_min = 100
      mqtt.reconnect_max = 1000
      sync.backlog_rate = 0
      sync.ack_timeout = 2000
      commands.trusted_keys = \(keys)/trusted-keys
      \(extra)
      """.write(toFile: config, atomically: true, encoding: .utf8)
    }

    func startHQ(environment: [String: String] = [:]) throws -> Child {
      let hq = try Child(
        "gridedge-hq", ["serve", "--port", String(broker.port), "--db", hqDB], in: dir,
        environment: environment)
      try hq.waitForLog("connected to")
      return hq
    }

    /// `gridedge-hq send --typ workorder`.
    func send(_ body: String) throws {
      let sent = try runProduct(
        "gridedge-hq",
        [
          "send", "--db", hqDB, "--port", String(broker.port), "--key", "\(keys)/hq1.key", "--kid", "hq1",
          "--dev", device, "--typ", "workorder", "--body", body,
        ], in: dir)
      guard sent.status == 0 else { throw TestFailure("gridedge-hq send: \(sent.stderr)") }
    }

    /// `gridedge inspect WORDS --json`, expecting exit code `status`.
    func inspect(_ words: [String], status: Int32 = 0) throws -> [String: Any] {
      let out = try runProduct("gridedge", ["inspect"] + words + ["--config", config, "--json"], in: dir)
      #expect(out.status == status, "inspect \(words): \(out.stderr)")
      return try jsonObject(out.stdout)
    }

    /// A photo of `size` random bytes.
    func photo(_ name: String, size: Int) throws -> (path: String, bytes: Data, sha: String) {
      var bytes = Data(count: size)
      bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, size) }
      let path = dir.appendingPathComponent(name).path
      try bytes.write(to: URL(fileURLWithPath: path))
      return (path, bytes, SHA256.hash(Array(bytes)).map { String(format: "%02x", $0) }.joined())
    }
  }

  @Test func anOrderCompletedOfflineWithTwoPhotosReachesHQByteIdenticalExactlyOnce() throws {
    let s = try Setup("inspect-e2e", device: "HH-E2E-1", extra: "inspection.photo_chunk_bytes = 16384")
    let (broker, dir, device, hqDB, config) = (s.broker, s.dir, s.device, s.hqDB, s.config)
    let hq = try s.startHQ()
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")

    // 1. The work order goes down, signed.
    let order = #"""
      {"id":"WO-77","kind":"anti-theft","priority":1,"grade":"A","due":1790086400000,"customer":"C-77",
       "address":"7 Transformer Lane","meter":"000000000077","last":{"wh":5000000,"ts":1789990000000}}
      """#
    try s.send(order)
    #expect(
      waitUntil(timeout: 20) {
        hqQuery(hqDB, "SELECT json_extract(body, '$.outcome') FROM records WHERE class = 'results'").first?
          .text(0)
          == "applied"
      }, "the work order's result did not reach HQ\n\(agent.log.suffix(3000))")

    // 2. The link goes down; the inspector works the order offline.
    broker.stop()
    try agent.waitForLog("mqtt: link to 127.0.0.1:\(broker.port) down")
    func inspect(_ words: [String], status: Int32 = 0) throws -> [String: Any] {
      try s.inspect(words, status: status)
    }
    let list = try runProduct("gridedge", ["inspect", "list", "--config", config, "--json"], in: dir)
    let orders = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]
    #expect(orders?.first?["id"] as? String == "WO-77", "\(list)")
    let table = try runProduct("gridedge", ["inspect", "list", "--config", config], in: dir)
    #expect(table.stdout.contains("WO-77") && table.stdout.contains("1 work order(s)"), "\(table)")
    #expect(try inspect(["accept", "WO-77"])["state"] as? String == "accepted")
    #expect(try inspect(["arrive", "WO-77"])["state"] as? String == "arrived")
    _ = try inspect(["finding", "WO-77", "seals", "S-7701:broken,S-7702:intact"])
    _ = try inspect(["finding", "WO-77", "wiring", "tampered"])
    let shown = try inspect(["show", "WO-77"])
    #expect(shown["missing"] as? [String] == ["theft", "confirmation"], "\(shown)")
    let details = try runProduct("gridedge", ["inspect", "show", "WO-77", "--config", config], in: dir)
    #expect(details.stdout.contains(#"missing:         ["theft","confirmation"]"#), "\(details)")
    // A mandatory item missing: a clear error, nothing written.
    let refused = try inspect(["complete", "WO-77"], status: 2)
    #expect(refused["error"] as? String == "missing-items")
    #expect((refused["message"] as? String ?? "").contains("theft"), "\(refused)")
    _ = try inspect(["finding", "WO-77", "theft", "bypass"])
    _ = try inspect(["finding", "WO-77", "display", "4990.00"])
    var photos: [(path: String, bytes: Data, sha: String)] = []
    for (i, size) in [100_000, 150_001].enumerated() {
      let photo = try s.photo("photo\(i).jpg", size: size)
      let attached = try inspect(["photo", "WO-77", photo.path])
      #expect(attached["sha256"] as? String == photo.sha)
      #expect(attached["chunks"] as? Int == (size + 16383) / 16384)
      photos.append(photo)
    }
    let missing = try inspect(["photo", "WO-77", dir.appendingPathComponent("nope.jpg").path], status: 2)
    #expect(missing["error"] as? String == "photo")
    _ = try inspect(["confirm", "WO-77"] + ["--by", "Ms. Li", "--rating", "5"])
    let completed = try inspect(["complete", "WO-77"])
    #expect(completed["state"] as? String == "completed")
    let recordID = completed["record"] as? String ?? ""
    #expect(hqQuery(hqDB, "SELECT count(*) FROM photos").first?.int64(0) ?? 0 == 0)

    // 3. The link comes back: HQ gets the record and both photos, exactly once. (A
    //    batch published before HQ has subscribed again on the broker, which keeps no
    //    sessions here, is resent after sync.ack_timeout.)
    try broker.start()
    #expect(
      waitUntil(timeout: 30) {
        hqQuery(hqDB, "SELECT count(*) FROM photos WHERE verified = 1").first?.int64(0) == 2
          && hqQuery(
            hqDB,
            "SELECT count(*) FROM records WHERE class = 'records' AND json_extract(body, '$.type') = 'workorder.completed'"
          ).first?.int64(0) == 1
      }, "HQ did not get the record and the photos\n\(agent.log.suffix(3000))\n----\n\(hq.log.suffix(3000))")
    let held = hqQuery(hqDB, "SELECT sha256, data, size, order_id, device_id FROM photos ORDER BY size")
    #expect(held.count == 2)
    for (row, photo) in zip(held, photos) {
      #expect(row.text(0) == photo.sha)
      #expect(row.text(3) == "WO-77" && row.text(4) == device)
      let data = row.blob(1) ?? []
      #expect(data == Array(photo.bytes), "photo bytes differ")
      #expect(SHA256.hash(data).map { String(format: "%02x", $0) }.joined() == photo.sha)
    }
    let record = hqQuery(
      hqDB,
      "SELECT body FROM records WHERE class = 'records' AND json_extract(body, '$.type') = 'workorder.completed'"
    )
    let body = try jsonObject(record.first?.text(0) ?? "{}")
    #expect(body["id"] as? String == recordID)
    #expect(
      (body["photos"] as? [[String: Any]])?.compactMap { $0["sha256"] as? String }.sorted()
        == photos.map(\.sha).sorted())
    #expect((body["service"] as? [String: Any])?["dispatch_to_arrival_s"] != nil)
    let display = (body["findings"] as? [String: Any])?["display"] as? [String: Any]
    #expect(display?["discrepancy"] as? Bool == true, "4990 kWh shown, HQ's last value 5000 kWh")
    // Exactly once: one row per chunk, each state record once, and the agent's outbox drained.
    let chunks = photos.map { ($0.bytes.count + 16383) / 16384 }.reduce(0, +)
    #expect(
      hqQuery(hqDB, "SELECT count(*) FROM records WHERE class = 'attachments'").first?.int64(0)
        == Int64(chunks))
    #expect(
      hqQuery(
        hqDB,
        "SELECT count(*), count(DISTINCT key) FROM records WHERE class = 'records' AND key LIKE '%-wo-WO-77-%'"
      ).first.map { [$0.int64(0), $0.int64(1)] } == [3, 3])
    // HQ cancels the order it has not seen completed yet: the device reports the clash.
    try s.send(#"{"id":"WO-77","cancel":true,"reason":"customer request"}"#)
    #expect(
      waitUntil(timeout: 20) {
        hqQuery(
          hqDB,
          "SELECT json_extract(body, '$.closing_record') FROM records WHERE class = 'events' AND json_extract(body, '$.type') = 'workorder.cancel_after_close'"
        ).first?.text(0) == recordID
      }, "HQ did not hear that the cancelled order was already completed\n\(agent.log.suffix(2000))")
    let report = try runProduct("gridedge-hq", ["report", "--db", hqDB], in: dir)
    #expect(
      report.stdout.contains("photos received") && report.stdout.contains(photos[0].sha), "\(report.stdout)")
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    let audit = try runProduct("gridedge", ["audit", "verify", "--config", config], in: dir)
    #expect(audit.status == 0 && audit.stdout.contains("the chain is intact"), "\(audit)")
    hq.signal(SIGTERM)
    _ = try hq.wait(timeout: 10)
  }
  @Test func aPhotoUploadCutWhenHQFailsBeforeItsAckResumesAndArrivesExactlyOnce() throws {
    // One batch in flight at a time, 16 chunks of 1 KiB a batch: a 40 KiB photo is 3 batches.
    let s = try Setup(
      "inspect-cut", device: "HH-E2E-2",
      extra: "inspection.photo_chunk_bytes = 1024\nsync.window = 1\nsync.ack_window = 1")
    let agent = try Child("gridedge", ["run", "--config", s.config], in: s.dir)
    try agent.waitForLog("birth published")
    try s.send(
      #"{"id":"R-5","kind":"reading","priority":4,"customer":"C-5","address":"5 Pole St","meter":"000000000005"}"#
    )
    try agent.waitForLog("(workorder) applied")
    _ = try s.inspect(["accept", "R-5"])
    _ = try s.inspect(["arrive", "R-5"])
    _ = try s.inspect(["finding", "R-5", "display", "321.5"])
    let photo = try s.photo("meter.jpg", size: 40 * 1024)
    #expect(try s.inspect(["photo", "R-5", photo.path])["chunks"] as? Int == 40)
    _ = try s.inspect(["complete", "R-5"])

    // HQ commits the results, the records and the first photo batch, then dies before acking that one.
    let faulty = try s.startHQ(environment: ["GRIDEDGE_HQ_FAULT_EXIT_BEFORE_ACK": "3"])
    #expect(try faulty.wait(timeout: 30) == 70, "\(faulty.log)")
    let held =
      hqQuery(s.hqDB, "SELECT count(*) FROM records WHERE class = 'attachments'").first?.int64(0) ?? 0
    #expect(held > 0 && held < 40, "the cut should fall inside the photo: \(held) chunks held")
    #expect(hqQuery(s.hqDB, "SELECT count(*) FROM photos").first?.int64(0) == 0)

    let hq = try s.startHQ()
    #expect(
      waitUntil(timeout: 30) {
        hqQuery(s.hqDB, "SELECT count(*) FROM photos WHERE verified = 1").first?.int64(0) == 1
      }, "the photo did not arrive\n\(agent.log.suffix(3000))\n----\n\(hq.log.suffix(3000))")
    let row = hqQuery(s.hqDB, "SELECT sha256, data FROM photos").first
    #expect(row?.text(0) == photo.sha && row?.blob(1) == Array(photo.bytes))
    #expect(hqQuery(s.hqDB, "SELECT count(*) FROM records WHERE class = 'attachments'").first?.int64(0) == 40)
    #expect(
      hqQuery(s.hqDB, "SELECT duplicate_batches FROM device_counters").first?.int64(0) ?? 0 >= 1,
      "the batch HQ had committed but not acked was not sent again")
    agent.signal(SIGTERM)
    #expect(try agent.wait(timeout: 10) == 0)
    hq.signal(SIGTERM)
    _ = try hq.wait(timeout: 10)
  }
}

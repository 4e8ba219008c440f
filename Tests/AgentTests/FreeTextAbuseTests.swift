import Foundation
import SQLiteStore
import TestSupport
import Testing

/// Free text in every record field (issue 8): quotes, backslashes, control
/// characters and NUL, non-ASCII, strings at and above the limits, invalid UTF-8. Each
/// goes through the real path — `gridedge inspect` on the command line, a signed
/// command from `gridedge-hq`, a raw message on the command topic — up to HQ's
/// database, and is either stored byte-identical everywhere or refused with a reason.
/// The schemas of both databases stay as they were.
@Suite(.serialized) struct FreeTextAbuseTests {
  /// Text that breaks naive JSON, C strings or terminals.
  static let nasty =
    "q\"uo'te \\back\\slash\\ /slash/ \u{0}nul \u{1}\u{1f}\u{7f} tab\tnew\nline\rcr {\"}],: "
    + "€ 电表 🔌 \u{2028}\u{2029} \u{feff}bom"

  /// The schema of a database: every `sqlite_master` row.
  private func schema(_ path: String) throws -> [String] {
    try readOnlyConnection(path).query(
      "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master ORDER BY 1"
    )
    .map { $0.text(0) ?? "" }
  }

  /// The records of `recordClass` at HQ, parsed.
  private func hqRecords(_ hqDB: String, _ device: String, _ recordClass: String) -> [[String: Any]] {
    storedAtHQ(hqDB, device: device, recordClass)
  }

  /// JSON text of `text` as a JSON string literal (escaped by Foundation).
  private func literal(_ text: String) throws -> String {
    String(
      decoding: try JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed]),
      as: UTF8.self
    )
    .dropFirst().dropLast().description
  }

  private func hex(_ text: String) -> String { text.utf8.map { String(format: "%02X", $0) }.joined() }

  @Test func freeTextInWorkOrdersAndInspectionRecordsIsStoredByteIdenticalOrRefusedWithAReason() throws {
    let device = "HH-TEXT-1"
    let dir = try makeTemporaryDirectory("free-text-inspect")
    let keys = dir.appendingPathComponent("keys").path
    #expect(try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir).status == 0)
    let rig = try HQUnderTest(in: dir)
    let agentDB = dir.appendingPathComponent("agent.db").path
    let config = dir.appendingPathComponent("handheld.conf").path
    try
      (agentBaseConfig(device: device, dir: dir, port: rig.port, keys: keys) + "device.profile = handheld\n")
      .write(toFile: config, atomically: true, encoding: .utf8)
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String {
      [agent, rig.hq].map { String($0.log.suffix(3000)) }.joined(separator: "\n----\n")
    }
    let agentSchema = try schema(agentDB)
    let hqSchema = try schema(rig.db)
    func send(_ body: String) throws -> CommandResult {
      try hqSend("workorder", body, device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir)
    }
    func result(_ sent: CommandResult) throws -> [String: Any] {
      guard sent.status == 0, let ctr = sent.stdout.split(separator: " ").dropFirst(2).first else {
        throw TestFailure("gridedge-hq send: \(sent.stderr)")
      }
      var found: [String: Any]? = nil
      _ = waitUntil(timeout: 20) {
        found = hqRecords(rig.db, device, "results").first { $0["ctr"] as? String == String(ctr) }
        return found != nil
      }
      guard let found else { throw TestFailure("no result for command \(ctr)\n\(logs())") }
      return found
    }
    func inspect(_ words: [String], status: Int32 = 0) throws -> [String: Any] {
      let out = try runProduct("gridedge", ["inspect"] + words + ["--config", config, "--json"], in: dir)
      #expect(out.status == status, "inspect \(words.prefix(3)): \(out.stderr.prefix(500))")
      // Whatever the text, --json prints one valid JSON value.
      return try jsonObject(out.stdout)
    }

    // 1. A work order with NUL in its customer (\u0000 in HQ's JSON; SQLite's JSON
    //    functions would cut the text there): refused when signing, with the reason.
    let withNUL =
      #"{"id":"WO-T0","kind":"repair","priority":2,"customer":\#(try literal(Self.nasty)),"address":"A"}"#
    let unsigned = try send(withNUL)
    #expect(unsigned.status != 0 && unsigned.stderr.contains("U+0000"), "\(unsigned)")
    // An unpaired surrogate escape would become invalid UTF-8: refused too.
    let surrogate = try send(
      #"{"id":"WO-T0","kind":"repair","priority":2,"customer":"x\ud800y","address":"A"}"#)
    #expect(surrogate.status != 0 && surrogate.stderr.contains("surrogate"), "\(surrogate)")
    // Everything else is kept: the customer is the nasty text, the address 30,000 bytes of it.
    let customer = Self.nasty.replacingOccurrences(of: "\u{0}", with: "")
    let address = String(repeating: customer, count: 30_000 / customer.utf8.count + 1)
    let order =
      #"{"id":"WO-T1","kind":"repair","priority":2,"customer":\#(try literal(customer)),"address":\#(try literal(address))}"#
    #expect(try result(try send(order))["outcome"] as? String == "applied", "\(logs())")
    let stored = try readOnlyConnection(agentDB).query(
      "SELECT hex(customer), hex(address), length(CAST(address AS BLOB)) FROM work_orders WHERE id = 'WO-T1'")
    #expect(stored.first?.text(0) == hex(customer), "the customer is not stored byte-identical")
    #expect(stored.first?.text(1) == hex(address), "the address is not stored byte-identical")
    let shown = try inspect(["show", "WO-T1"])
    #expect(shown["customer"] as? String == customer)
    #expect(shown["address"] as? String == address)

    // 2. The inspector's free text: notes, the customer's name, a hand-back reason, a
    //    correction's note — at their limits and beyond.
    _ = try inspect(["accept", "WO-T1"])
    _ = try inspect(["arrive", "WO-T1"])
    _ = try inspect(["finding", "WO-T1", "wiring", "fault"])
    _ = try inspect(["finding", "WO-T1", "relay", "closed"])
    // Command-line words cannot hold NUL; everything else can.
    let cli = customer
    let notes =
      String(repeating: cli, count: 2000 / cli.utf8.count)
      + String(repeating: "x", count: 2000 % cli.utf8.count)
    #expect(notes.utf8.count == 2000)
    let tooLong = try inspect(["finding", "WO-T1", "notes", notes + "x"], status: 2)
    #expect(tooLong["error"] as? String == "bad-value")
    #expect((tooLong["message"] as? String ?? "").contains("2000 bytes"), "\(tooLong)")
    #expect(((tooLong["message"] as? String) ?? "").utf8.count < 1000, "a refusal should not echo 2 KB back")
    let noted = try inspect(["finding", "WO-T1", "notes", notes])
    #expect(noted["value"] as? String == notes)
    // Invalid UTF-8 on the command line: refused with a reason, nothing written.
    let invalid = try runProcess(
      "/bin/sh",
      [
        "-c", #""$0" inspect finding WO-T1 notes "$(printf 'ok \377\376 bad')" --config "$1" --json"#,
        try Binaries.path("gridedge"), config,
      ])
    #expect(invalid.status == 2, "\(invalid.output)")
    #expect(invalid.output.contains("UTF-8"), "\(invalid.output)")
    let by = String(cli.prefix(60))
    let overlong = String(repeating: "名", count: 67)  // 201 bytes
    #expect(
      try inspect(["confirm", "WO-T1", "--by", overlong, "--rating", "4"], status: 2)["error"] as? String
        == "bad-value")
    _ = try inspect(["confirm", "WO-T1", "--by", by, "--rating", "4"])
    // A photo whose file name is the nasty text: attached, and --json stays JSON.
    let photoPath = dir.appendingPathComponent(cli.replacingOccurrences(of: "/", with: "_") + ".jpg").path
    try Data(repeating: 7, count: 5000).write(to: URL(fileURLWithPath: photoPath))
    #expect(try inspect(["photo", "WO-T1", photoPath])["size"] as? Int == 5000)
    let missingPhoto = try inspect(["photo", "WO-T1", photoPath + ".missing"], status: 2)
    #expect((missingPhoto["message"] as? String ?? "").contains(photoPath + ".missing"), "\(missingPhoto)")
    let completed = try inspect(["complete", "WO-T1"])
    let recordID = completed["record"] as? String ?? ""
    let note = String(cli.reversed())
    _ = try inspect(["correct", "WO-T1", "notes", cli, "--note", note])

    // A second order handed back with the nasty reason; a cancellation with it.
    #expect(
      try result(
        try send(#"{"id":"WO-T2","kind":"inspection","priority":3,"customer":"C-2","address":"A"}"#))[
          "outcome"] as? String == "applied")
    let reason = String(repeating: cli, count: 500 / cli.utf8.count)
    #expect(
      try inspect(["handback", "WO-T2", "--reason", reason + String(repeating: "y", count: 500)], status: 2)[
        "error"] as? String == "bad-value")
    _ = try inspect(["handback", "WO-T2", "--reason", reason])
    let cancel = #"{"id":"WO-T2","cancel":true,"reason":\#(try literal(customer))}"#
    #expect(try result(try send(cancel))["outcome"] as? String == "applied")

    // 3. Too big for a command: refused by gridedge-hq with the limit named, and a raw
    //    1 MB message on the command topic is refused by the agent with a reason.
    let big = String(repeating: "a", count: 100_000)
    let refused = try send(#"{"id":"WO-T3","kind":"repair","priority":2,"customer":"C","address":"\#(big)"}"#)
    #expect(refused.status != 0, "gridedge-hq signed a command above the token limit")
    #expect(refused.stderr.contains("65536") || refused.stderr.contains("bytes"), "\(refused.stderr)")
    let megabyte = dir.appendingPathComponent("megabyte.txt")
    try Data(repeating: 0x41, count: 1 << 20).write(to: megabyte)
    let published = try runProcess(
      "mosquitto_pub",
      [
        "-h", "127.0.0.1", "-p", String(rig.port), "-q", "1", "-t", "gridedge/v1/\(device)/down/cmd", "-f",
        megabyte.path,
      ])
    #expect(published.status == 0, "\(published.output)")
    var bigResult: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 20) {
        bigResult = hqRecords(rig.db, device, "results").first { $0["reason"] as? String == "malformed" }
        return bigResult != nil
      }, "no refusal of the 1 MB command at HQ\n\(logs())")
    #expect(((bigResult?["detail"] as? String) ?? "").contains("bytes"), "\(bigResult ?? [:])")

    // 4. At HQ every text is what the inspector and HQ typed.
    #expect(
      waitUntil(timeout: 30) {
        hqRecords(rig.db, device, "records").contains { $0["type"] as? String == "workorder.correction" }
          && hqRecords(rig.db, device, "events").contains {
            $0["type"] as? String == "workorder.cancel_after_close"
          }
      }, "records did not reach HQ\n\(logs())")
    let records = hqRecords(rig.db, device, "records")
    let completion = try #require(records.first { $0["id"] as? String == recordID })
    #expect(completion["customer"] as? String == customer, "customer at HQ differs")
    let findings = completion["findings"] as? [String: Any]
    #expect(findings?["notes"] as? String == notes, "notes at HQ differ")
    #expect((completion["confirmation"] as? [String: Any])?["by"] as? String == by)
    let correction = try #require(records.first { $0["type"] as? String == "workorder.correction" })
    #expect(correction["note"] as? String == note)
    #expect(correction["value"] as? String == cli)
    let handedBack = try #require(records.first { $0["type"] as? String == "workorder.handed-back" })
    #expect(handedBack["reason"] as? String == reason)
    let clash = try #require(
      hqRecords(rig.db, device, "events").first { $0["type"] as? String == "workorder.cancel_after_close" })
    #expect(clash["reason"] as? String == customer, "the cancel reason at HQ differs")
    // Byte for byte in HQ's database too (not only equal after JSON decoding).
    let hqHex = try readOnlyConnection(rig.db).query(
      "SELECT hex(json_extract(body, '$.customer')) FROM records WHERE class = 'records' AND json_extract(body, '$.id') = ?1",
      [.text(recordID)])
    #expect(hqHex.first?.text(0) == hex(customer))

    #expect(try schema(agentDB) == agentSchema, "the agent's schema changed")
    #expect(try schema(rig.db) == hqSchema, "HQ's schema changed")
    #expect(try runProduct("gridedge", ["audit", "verify", "--config", config], in: dir).status == 0)
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)
  }
}

extension FreeTextAbuseTests {
  @Test func customerIdsAndAreasOfTheArchiveReachTheLedgerEventsAndHQUnaltered() throws {
    let device = "TA-TEXT-2"
    // Two meters answer; the archive's third never does (archive.silent names its customer).
    let site = try SimulatedSite(
      "free-text-archive", device: device, simulator: ["--meters", "2", "--no-area"],
      extra: "acquisition.backfill_days = 0\nacquisition.silent_cycles = 1")
    let (dir, keys, sim, rig, agentDB, config) = (
      site.dir, site.keys, site.sim, site.rig, site.agentDB, site.config
    )
    let agent = try Child("gridedge", ["run", "--config", config], in: dir)
    try agent.waitForLog("birth published")
    func logs() -> String {
      [agent, rig.hq, sim].map { String($0.log.suffix(3000)) }.joined(separator: "\n----\n")
    }
    let agentSchema = try schema(agentDB)
    func send(_ type: String, _ body: String) throws -> CommandResult {
      try hqSend(type, body, device: device, keys: keys, hqDB: rig.db, port: rig.port, in: dir)
    }
    func applied(_ sent: CommandResult) -> Bool {
      guard sent.status == 0, let ctr = sent.stdout.split(separator: " ").dropFirst(2).first else {
        return false
      }
      return waitUntil(timeout: 20) {
        storedAtHQ(rig.db, device: device, "results").contains {
          $0["ctr"] as? String == String(ctr) && $0["outcome"] as? String == "applied"
        }
      }
    }

    let customer = Self.nasty.replacingOccurrences(of: "\u{0}", with: "")
    let silentCustomer = "silent " + customer
    let area = "TA \"north\"\\\t" + "区"
    func meter(_ n: Int, _ customer: String) throws -> String {
      #"{"address":"\#(String(format: "%012d", n))","customer":\#(try literal(customer)),"area":\#(try literal(area)),"category":"residential"}"#
    }
    // A NUL in a customer id would merge it with another (SQLite cuts it there): refused.
    let merged = try send(
      "archive",
      #"{"op":"snapshot","version":1,"meters":[\#(try meter(1, "C-1\u{0}X")), \#(try meter(2, "C-1"))]}"#)
    #expect(merged.status != 0 && merged.stderr.contains("U+0000"), "\(merged)")
    #expect(
      applied(
        try send(
          "archive",
          #"{"op":"snapshot","version":1,"meters":[\#(try meter(1, customer)),\#(try meter(2, "C-2")),\#(try meter(3, silentCustomer))]}"#
        )), "archive not applied\n\(logs())")
    #expect(applied(try send("topup", #"{"customer":\#(try literal(customer)),"purchase":1,"amount":4242}"#)))

    // The agent's own tables and reports hold the text byte for byte.
    let accounts = try readOnlyConnection(agentDB).query(
      "SELECT hex(customer), balance_fen FROM accounts ORDER BY customer")
    #expect(
      accounts.contains { $0.text(0) == hex(customer) && $0.int64(1) == 4242 },
      "\(accounts.map { $0.text(0) ?? "" })")
    let ledger = try runProduct(
      "gridedge", ["ledger", "--customer", customer, "--config", config, "--json"], in: dir)
    #expect(ledger.status == 0, "\(ledger.stderr)")
    #expect(ledger.stdout.contains("4242"), "\(ledger.stdout)")
    let accountsJSON = try runProduct("gridedge", ["ledger", "--config", config, "--json"], in: dir)
    let listed =
      try JSONSerialization.jsonObject(with: Data(accountsJSON.stdout.utf8)) as? [[String: Any]] ?? []
    #expect(listed.contains { $0["customer"] as? String == customer }, "\(accountsJSON.stdout)")
    let archiveJSON = try jsonObject(
      try runProduct("gridedge", ["archive", "--config", config, "--json"], in: dir).stdout)
    let archived = archiveJSON["meters"] as? [[String: Any]] ?? []
    #expect(archived.contains { $0["customer"] as? String == customer && $0["area"] as? String == area })

    // At HQ: the ledger entry and the silent meter's event, with the same text.
    var silent: [String: Any]? = nil
    #expect(
      waitUntil(timeout: 90) {
        silent = storedAtHQ(rig.db, device: device, "events").first {
          $0["type"] as? String == "archive.silent"
        }
        return silent != nil
          && storedAtHQ(rig.db, device: device, "ledger").contains { $0["customer"] as? String == customer }
      }, "no archive.silent event or ledger entry at HQ\n\(logs())")
    #expect(silent?["customer"] as? String == silentCustomer, "archive.silent customer: \(silent ?? [:])")
    #expect(silent?["area"] as? String == area, "archive.silent area: \(silent ?? [:])")
    #expect(try schema(agentDB) == agentSchema, "the agent's schema changed")
    #expect(try runProduct("gridedge", ["ledger", "verify", "--config", config], in: dir).status == 0)
    agent.signal()
    #expect(try agent.wait(timeout: 15) == 0)
  }
}

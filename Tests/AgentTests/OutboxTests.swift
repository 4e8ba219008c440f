import Foundation
import GridEdgeContract
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent
@testable import GridEdgeHQ

/// A reading record as acquisition will enqueue it.
func readingRecord(meter: Int, ts: Int64, value: Int64 = 0) -> String {
  let address = String(meter).leftPadded(to: 12)
  return #"{"meter":"\#(address)","di":"00010000","ts":\#(ts),"v":\#(value),"q":"measured"}"#
}

extension String {
  func leftPadded(to width: Int) -> String {
    count >= width ? self : String(repeating: "0", count: width - count) + self
  }
}

/// Enqueues `count` readings (meters 1...meters, 15-minute steps) into the outbox of the
/// database at `path`, in transactions of `chunk`.
func fillOutbox(
  path: String, device: String, count: Int, firstIndex: Int = 0, meters: Int = 1000, chunk: Int = 10_000
) throws {
  let store = try AgentStore(path: path, deviceID: device, now: 0)
  let outbox = try Outbox(store: store)
  var index = firstIndex
  while index < firstIndex + count {
    let end = min(firstIndex + count, index + chunk)
    try store.db.transaction { () throws(SQLiteError) in
      for i in index..<end {
        try outbox.enqueue(
          .readings,
          record: readingRecord(
            meter: 1 + i % meters, ts: 1_700_000_000_000 + Int64(i / meters) * 900_000, value: Int64(i)),
          retention: .telemetry, now: 0)
      }
    }
    index = end
  }
  store.db.close()
}

@Suite struct OutboxTests {
  private func makeStore(_ label: String) throws -> (AgentStore, Outbox, String) {
    let dir = try makeTemporaryDirectory(label)
    let path = dir.appendingPathComponent("agent.db").path
    let store = try AgentStore(path: path, deviceID: "TA-OUT-1", now: 0)
    return (store, try Outbox(store: store), path)
  }

  @Test func batchesTakeConsecutiveSeqsAndAStoredBatchIsByteIdentical() throws {
    let (store, outbox, _) = try makeStore("outbox-form")
    for i in 0..<250 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 1), retention: .telemetry, now: 5)
    }
    let formed = try outbox.formBatches(
      count: 10, maxRecords: 100, liveAfter: .zero, backlogBudget: 0, now: 9)
    #expect(formed.batches.map(\.seq) == [1, 2, 3])
    #expect(formed.batches.map(\.records) == [100, 100, 50])
    #expect(try outbox.counts().pendingRecords == 0)
    let first = formed.batches[0]
    let json = try JSONSerialization.jsonObject(with: Data(first.payload)) as! [String: Any]
    #expect(json["v"] as? Int == 1)
    #expect(json["dev"] as? String == "TA-OUT-1")
    #expect(json["store"] as? String == store.storeID)
    #expect(json["seq"] as? Int == 1)
    #expect(json["class"] as? String == "readings")
    let records = json["records"] as! [[String: Any]]
    #expect(records.count == 100)
    #expect(records[0]["meter"] as? String == "000000000000")
    #expect(records[99]["meter"] as? String == "000000000099")
    // The payload validates against the contract and is stored byte for byte.
    let header = try BatchHeader.decode(first.payload, store.db)
    #expect(header.seq == 1 && header.recordCount == 100)
    #expect(try outbox.batch(1)?.payload == first.payload)
    #expect(try outbox.unackedSeqs() == [1, 2, 3])
  }

  @Test func malformedRecordIsRefusedAtEnqueue() throws {
    let (_, outbox, _) = try makeStore("outbox-bad")
    #expect(throws: SQLiteError.self) {
      try outbox.enqueue(.events, record: "{not json", retention: .billing, now: 0)
    }
    #expect(try outbox.counts().pendingRecords == 0)
  }

  @Test func liveRecordsGoBeforeBacklogAndTheBacklogBudgetIsKept() throws {
    let (_, outbox, _) = try makeStore("outbox-live")
    for i in 0..<30 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 1), retention: .telemetry, now: 0)
    }
    let mark = try outbox.marks()
    for i in 100..<105 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 2), retention: .telemetry, now: 0)
    }
    try outbox.enqueue(.events, record: #"{"id":"e1"}"#, retention: .billing, now: 0)
    let formed = try outbox.formBatches(count: 10, maxRecords: 10, liveAfter: mark, backlogBudget: 12, now: 0)
    // Live first (events before readings), then 12 backlog records: 10 + 2.
    #expect(formed.batches.map(\.uplink) == [.events, .readings, .readings, .readings])
    #expect(formed.batches.map(\.records) == [1, 5, 10, 2])
    #expect(formed.backlogRecords == 12)
    let live = try JSONSerialization.jsonObject(with: Data(formed.batches[1].payload)) as! [String: Any]
    #expect(((live["records"] as! [[String: Any]])[0]["meter"] as? String) == "000000000100")
    #expect(try outbox.counts().pendingRecords == 18)
  }

  @Test func releaseDeletesOnlyTheAckedBatchesAndIgnoresUnknownSeqs() throws {
    let (store, outbox, _) = try makeStore("outbox-release")
    for i in 0..<50 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 1), retention: .telemetry, now: 0)
    }
    _ = try outbox.formBatches(count: 5, maxRecords: 10, liveAfter: .zero, backlogBudget: 0, now: 0)
    let released = try outbox.release(Ack(store: store.storeID, ranges: [2...3, 5...9]))
    #expect(released.seqs == [2, 3, 5])
    #expect(released.records == 30)
    #expect(try outbox.unackedSeqs() == [1, 4])
    #expect(try outbox.release(Ack(store: store.storeID, ranges: [2...3])).seqs.isEmpty)
  }

  @Test func seqIsNeverReusedEvenWhenEveryBatchWasAckedAndTheStoreReopened() throws {
    let (store, outbox, path) = try makeStore("outbox-seq")
    try outbox.enqueue(.events, record: #"{"id":"a"}"#, retention: .billing, now: 0)
    _ = try outbox.formBatches(count: 1, maxRecords: 10, liveAfter: .zero, backlogBudget: 0, now: 0)
    _ = try outbox.release(Ack(store: store.storeID, ranges: [1...1]))
    store.db.close()
    let reopened = try AgentStore(path: path, deviceID: "TA-OUT-1", now: 0)
    let again = try Outbox(store: reopened)
    try again.enqueue(.events, record: #"{"id":"b"}"#, retention: .billing, now: 0)
    #expect(
      try again.formBatches(count: 1, maxRecords: 10, liveAfter: .zero, backlogBudget: 0, now: 0).batches.map(
        \.seq) == [2])
    #expect(try again.newRecordID("event") != (try again.newRecordID("event")))
  }

  @Test func recordsStayUntilTheAckAndAResendIsRebuiltByteIdenticalAfterAReopen() throws {
    let (store, outbox, path) = try makeStore("outbox-keep")
    for i in 0..<250 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 1), retention: .telemetry, now: 5)
    }
    let formed = try outbox.formBatches(
      count: 10, maxRecords: 100, liveAfter: .zero, backlogBudget: 0, now: 9)
    #expect(formed.batches.map(\.records) == [100, 100, 50])
    // Formed records stay in the outbox, taken: nothing more to form.
    #expect(try store.db.scalarInt("SELECT count(*) FROM outbox") == 250)
    #expect(
      try outbox.formBatches(count: 10, maxRecords: 100, liveAfter: .zero, backlogBudget: 0, now: 9).batches
        .isEmpty)
    store.db.close()

    let reopened = try AgentStore(path: path, deviceID: "TA-OUT-1", now: 0)
    let again = try Outbox(store: reopened)
    for batch in formed.batches {
      #expect(try again.batch(batch.seq)?.payload == batch.payload)
    }
    // The ack deletes the batch and exactly its records.
    #expect(try again.release([2...2]).records == 100)
    #expect(try reopened.db.scalarInt("SELECT count(*) FROM outbox") == 150)
    #expect(try again.batch(1)?.payload == formed.batches[0].payload)
    #expect(try again.batch(3)?.payload == formed.batches[2].payload)
    // New records form a batch of their own; the taken ones are not taken twice.
    for i in 300..<310 {
      try again.enqueue(.readings, record: readingRecord(meter: i, ts: 2), retention: .telemetry, now: 10)
    }
    let next = try again.formBatches(count: 10, maxRecords: 100, liveAfter: .zero, backlogBudget: 0, now: 11)
    #expect(next.batches.map(\.records) == [10])
    let json = try JSONSerialization.jsonObject(with: Data(next.batches[0].payload)) as! [String: Any]
    #expect(((json["records"] as! [[String: Any]])[0]["meter"] as? String) == "000000000300")
    #expect(try again.counts().pendingRecords == 0)
  }

  @Test func recordsBetweenTakenRangesAreFormedInIdOrder() throws {
    let (_, outbox, _) = try makeStore("outbox-gaps")
    for i in 0..<30 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 1), retention: .telemetry, now: 0)
    }
    // Live first: records 21...30 are taken while 1...20 are backlog.
    var mark = Outbox.Marks.zero
    mark = try outbox.marks()
    for i in 30..<35 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 2), retention: .telemetry, now: 0)
    }
    let live = try outbox.formBatches(count: 1, maxRecords: 10, liveAfter: mark, backlogBudget: 0, now: 0)
    #expect(live.batches.map(\.records) == [5])
    // Then everything else, lowest ids first, around the taken range.
    let rest = try outbox.formBatches(count: 10, maxRecords: 10, liveAfter: .zero, backlogBudget: 0, now: 0)
    #expect(rest.batches.map(\.records) == [10, 10, 10])
    let metersOf = { (batch: Outbox.Batch) -> [String] in
      let json = try! JSONSerialization.jsonObject(with: Data(batch.payload)) as! [String: Any]
      return (json["records"] as! [[String: Any]]).map { $0["meter"] as! String }
    }
    #expect(metersOf(rest.batches[0]).first == "000000000000")
    #expect(metersOf(rest.batches[2]).last == "000000000029")
    #expect(metersOf(live.batches[0]) == (30..<35).map { String($0).leftPadded(to: 12) })
  }

  @Test func evictionNeverTakesRecordsOfAnUnacknowledgedBatch() throws {
    let (store, outbox, _) = try makeStore("outbox-evict-formed")
    let filler = String(repeating: "y", count: 300)
    try store.db.transaction { () throws(SQLiteError) in
      for i in 0..<1000 {
        try outbox.enqueue(
          .readings,
          record: readingRecord(meter: i, ts: 1).replacingOccurrences(
            of: "}", with: #","pad":"\#(filler)"}"#),
          retention: .telemetry, now: Int64(i))
      }
    }
    let formed = try outbox.formBatches(count: 1, maxRecords: 100, liveAfter: .zero, backlogBudget: 0, now: 0)
    let state = try outbox.enforceBudget(capBytes: 8192, step: 200, now: 1)
    #expect(state.full)
    #expect(state.evicted == 900)
    #expect(try store.db.scalarInt("SELECT count(*) FROM outbox") == 100)
    #expect(try outbox.batch(formed.batches[0].seq)?.payload == formed.batches[0].payload)
  }

  @Test func aBatchFormedBeforeMigration8IsSentFromItsStoredPayload() throws {
    let dir = try makeTemporaryDirectory("outbox-migrate")
    let path = dir.appendingPathComponent("agent.db").path
    // A database as version 0.2.0 left it: migrations 1-7, an old-style batch with its
    // payload and a pending record in the single outbox table.
    do {
      let db = try Connection(path: path)
      _ = try Migrator(Array(AgentStore.migrations.prefix(7))).migrate(db)
      try db.run(
        "INSERT INTO device (singleton, device_id, store_id, created_at) VALUES (1, 'TA-OUT-1', '00000000000000ab', 0)"
      )
      try db.run(
        "INSERT INTO batches (seq, class, payload, records, created_at) VALUES (7, 'events', CAST(?1 AS BLOB), 1, 0)",
        [
          .text(
            #"{"v":1,"dev":"TA-OUT-1","store":"00000000000000ab","seq":7,"class":"events","records":[{"id":"x"}]}"#
          )
        ])
      try db.run(
        "INSERT INTO outbox (class, billing, record, created_at) VALUES ('ledger', 1, '{\"id\":\"l1\"}', 0)")
      try db.run("UPDATE sync_state SET last_seq = 7, reserved_until = 7")
      db.close()
    }
    let store = try AgentStore(path: path, deviceID: "TA-OUT-1", now: 0)
    let outbox = try Outbox(store: store)
    let old = try outbox.batch(7)
    #expect(
      old.map { String(decoding: $0.payload, as: UTF8.self) }?.hasSuffix(#""records":[{"id":"x"}]}"#) == true)
    #expect(try store.db.scalarInt("SELECT count(*) FROM outbox_ledger") == 1)
    let formed = try outbox.formBatches(count: 5, maxRecords: 10, liveAfter: .zero, backlogBudget: 0, now: 0)
    #expect(formed.batches.map(\.uplink) == [.ledger])
    #expect(try outbox.release([7...7]).records == 1)
    #expect(try outbox.unackedSeqs() == formed.batches.map(\.seq))
  }

  @Test func budgetEvictsOldestTelemetryOnlyCountsItAndSaysWhenFull() throws {
    let (store, outbox, _) = try makeStore("outbox-budget")
    let filler = String(repeating: "x", count: 200)
    try store.db.transaction { () throws(SQLiteError) in
      // As on a concentrator: mostly interval readings (telemetry), a few billing records.
      for i in 0..<2000 {
        if i % 20 == 0 {
          try outbox.enqueue(
            .events, record: #"{"id":"b\#(i)","pad":"\#(filler)"}"#, retention: .billing, now: 0)
        }
        try outbox.enqueue(
          .readings,
          record: readingRecord(meter: i, ts: 1).replacingOccurrences(
            of: "}", with: #","pad":"\#(filler)"}"#),
          retention: .telemetry, now: 0)
      }
    }
    let used = try outbox.usedBytes()
    let cap = used / 2
    let state = try outbox.enforceBudget(capBytes: cap, step: 100, now: 1)
    #expect(state.evicted > 0)
    #expect(state.usedBytes <= cap)
    #expect(!state.full)
    // Oldest telemetry went first; every billing record is still there.
    let left = try store.db.query("SELECT min(id), count(*) FROM outbox WHERE class = 'readings'")[0]
    #expect(left.int64(1)! == 2000 - state.evicted)
    #expect(try store.db.scalarInt("SELECT count(*) FROM outbox WHERE class = 'events'") == 100)
    #expect(try outbox.unreportedEvictions().map(\.total) == [state.evicted])
    try outbox.markEvictionsReported("readings", total: state.evicted)
    #expect(try outbox.unreportedEvictions().isEmpty)

    // Below what billing data alone needs: everything evictable goes, and it says full.
    let tiny = try outbox.enforceBudget(capBytes: 8192, step: 500, now: 2)
    #expect(tiny.full)
    #expect(try store.db.scalarInt("SELECT count(*) FROM outbox WHERE class = 'readings'") == 0)
    #expect(try store.db.scalarInt("SELECT count(*) FROM outbox WHERE class = 'events'") == 100)
  }
}

@Suite struct HQStoreTests {
  private func batch(_ store: String, _ seq: Int, _ keys: [Int]) -> [UInt8] {
    var records: [String] = []
    for k in keys { records.append(readingRecord(meter: k, ts: 1)) }
    return Array(
      #"{"v":1,"dev":"TA-HQ-1","store":"\#(store)","seq":\#(seq),"class":"readings","records":[\#(records.joined(separator: ","))]}"#
        .utf8)
  }

  @Test func batchesAreDeduplicatedBySeqAndRecordsByNaturalKey() throws {
    let dir = try makeTemporaryDirectory("hqstore")
    let hq = try HQStore(path: dir.appendingPathComponent("hq.db").path)
    let store = "00000000000000aa"
    func put(_ payload: [UInt8]) throws -> HQStore.Outcome {
      let header = try BatchHeader.decode(payload, hq.db)
      return try hq.store(header, payload: payload, receivedAt: 1)
    }
    #expect(try put(batch(store, 1, [1, 2, 3])) == .stored(stored: 3, duplicates: 0))
    #expect(try put(batch(store, 1, [1, 2, 3])) == .duplicateBatch)
    // Another batch carrying a reading already held (e.g. read twice): the record is dropped.
    #expect(try put(batch(store, 2, [3, 4])) == .stored(stored: 1, duplicates: 1))
    // The same seq with other content: a reused seq; its new records are still kept.
    #expect(try put(batch(store, 2, [5])) == .conflictingBatch)
    #expect(try hq.db.scalarInt("SELECT count(*) FROM records") == 5)
    let counters = try hq.db.query(
      "SELECT batches, duplicate_batches, records, duplicate_records, conflicting_batches FROM device_counters"
    )[0]
    #expect(counters.values == [2, 1, 5, 1, 1].map { SQLiteValue.integer($0) })
  }
}

@Suite struct SeqReservationTests {
  @Test func afterARebootTheRestOfTheReservedBlockIsSkippedAndAnnounced() throws {
    let dir = try makeTemporaryDirectory("outbox-seqs")
    let path = dir.appendingPathComponent("agent.db").path
    let store = try AgentStore(path: path, deviceID: "TA-SEQ-1", now: 0)
    let outbox = try Outbox(store: store)
    #expect(try outbox.recoverSeqs(bootID: "boot-a", now: 0) == nil)
    for i in 0..<30 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 1), retention: .telemetry, now: 0)
    }
    let first = try outbox.formBatches(count: 3, maxRecords: 10, liveAfter: .zero, backlogBudget: 0, now: 0)
    #expect(first.batches.map(\.seq) == [1, 2, 3])
    // The same boot (a process restart): nothing is skipped.
    #expect(try outbox.recoverSeqs(bootID: "boot-a", now: 0) == nil)
    // Another boot: a power loss may have taken formations; the block's rest is skipped.
    let skipped = try outbox.recoverSeqs(bootID: "boot-b", now: 5)
    #expect(skipped == 4...Outbox.seqBlock)
    let event = try store.db.query(
      "SELECT json_extract(record, '$.type'), json_extract(record, '$.from'), json_extract(record, '$.to') FROM outbox WHERE class = 'events'"
    )
    #expect(event.first?.values == [.text("sync.seqs_skipped"), .integer(4), .integer(Outbox.seqBlock)])
    try outbox.enqueue(.readings, record: readingRecord(meter: 99, ts: 2), retention: .telemetry, now: 0)
    let next = try outbox.formBatches(count: 2, maxRecords: 10, liveAfter: .zero, backlogBudget: 0, now: 0)
    #expect(next.batches.map(\.seq) == [Outbox.seqBlock + 1, Outbox.seqBlock + 2])
  }
}

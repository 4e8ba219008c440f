import GridEdgeContract
import MosquittoClient
import Runtime
import SQLiteStore

/// The uplink side of store-and-forward (DESIGN.md §5): forms batches from the
/// outbox, publishes them at QoS 1 with a bounded window, and releases them only on
/// HQ's application ack. Driven by the agent's poll loop; owns no thread.
///
/// - A batch is unacknowledged from its publish until HQ acks it; at most
///   `ackWindow` are. Of those, at most `window` await the broker's PUBACK (MQTT QoS 1
///   in flight): the broker's share is bounded like any MQTT client's, while the
///   longer round trip through HQ still keeps the link busy.
/// - A batch not acked within `ackTimeout` is published again (byte-identical), and
///   after a reconnect every unacked batch is.
/// - A PUBACK with a reason code ≥ 0x80 (not authorised, quota exceeded) keeps the
///   batch, holds it for `ackTimeout`, and raises an event (at most one per code per
///   hour).
/// - Live records (enqueued after the link came up) go before backlog; backlog
///   drains at most `backlogRate` records per second (0: no cap).
public final class Sync {
  public struct Settings: Sendable {
    public var batchRecords = 100
    /// Batches published and not yet confirmed by the broker (PUBACK).
    public var window = 16
    /// Batches published and not yet acknowledged by HQ (at least `window`).
    public var ackWindow = 256
    public var ackTimeoutMilliseconds: Int64 = 30_000
    /// Records per second of backlog; 0 for no cap.
    public var backlogRate: Int64 = 0
    public init() {}
  }

  /// Counters since start, for status and logs.
  public struct Figures: Sendable {
    public var batchesPublished: Int64 = 0
    public var batchesResent: Int64 = 0
    public var batchesAcked: Int64 = 0
    public var recordsAcked: Int64 = 0
    public var refusedByBroker: Int64 = 0
    public var malformedAcks: Int64 = 0
    public var lastAckAt: Int64 = 0
  }

  private struct InFlight {
    var mid: Int32
    var sentAt: Int64
  }

  let outbox: Outbox
  private let ackParser: AckParser
  let client: Client
  let settings: Settings
  let deviceID: String
  let storeID: String
  private var connected = false
  private var inFlight: [Int64: InFlight] = [:]
  private var seqOfMid: [Int32: Int64] = [:]
  /// Formed batches to publish (again) before forming new ones, oldest first.
  private var resend: [Int64] = []
  /// Batches formed ahead and not yet published, in publishing order: a formation
  /// prepares up to `formAhead` at once (one transaction) while the PUBACK window
  /// takes them a few at a time.
  private var ready: [Outbox.Batch] = []
  private var readyStart = 0
  /// Live records were enqueued since the last formation: form now, ahead of the
  /// batches already prepared.
  private var livePending = false
  /// Batches the broker refused, with the monotonic time to try again.
  private var held: [Int64: Int64] = [:]
  private var liveAfter = Outbox.Marks.zero
  private var tokens: Int64 = 0
  private var tokensAt: Int64 = 0
  private var refusalEventAt: [Int32: Int64] = [:]
  private var nothingPendingUntil: Int64 = 0
  /// After a database failure nothing is formed or sent before this (monotonic ms).
  private var pausedUntil: Int64 = 0
  /// Seq ranges HQ acknowledged, not yet released in the database.
  private var acknowledgedRanges: [ClosedRange<Int64>] = []
  public private(set) var figures = Figures()

  public init(outbox: Outbox, client: Client, settings: Settings) throws(SQLiteError) {
    self.ackParser = try AckParser(outbox.db)
    self.outbox = outbox
    self.client = client
    self.settings = settings
    self.deviceID = outbox.deviceID
    self.storeID = outbox.storeID
  }

  /// Batches published and not yet acknowledged.
  public var inFlightCount: Int { inFlight.count }

  /// Room to publish: under the PUBACK window.
  private var room: Int { settings.window - seqOfMid.count }

  /// Room to form: under the ack window, counting the batches formed ahead.
  private var formingRoom: Int {
    max(settings.ackWindow, settings.window) - inFlight.count - held.count - (ready.count - readyStart)
  }

  /// Batches one formation prepares at most: a few PUBACK windows' worth, so a fast
  /// link commits once per several windows rather than once per half window.
  private var formAhead: Int { settings.window * 4 }

  /// The link is up (CONNACK accepted): every unacked batch is resent first, and
  /// records enqueued from now on count as live.
  public func linkUp(monotonic now: Int64) throws(SQLiteError) {
    connected = true
    inFlight.removeAll()
    seqOfMid.removeAll()
    held.removeAll()
    dropReady()
    resend = try outbox.unackedSeqs().filter { seq in !acknowledgedRanges.contains { $0.contains(seq) } }
    liveAfter = try outbox.marks()
    tokens = bucketSize
    tokensAt = now
    nothingPendingUntil = 0
    if !resend.isEmpty {
      Log.info("sync", String(resend.count) + " unacknowledged batch(es) to send again")
    }
  }

  /// The link is down: nothing is in flight any more (it is all resent on the next
  /// `linkUp`).
  public func linkDown() {
    connected = false
    inFlight.removeAll()
    seqOfMid.removeAll()
    dropReady()
  }

  /// Batches formed ahead are in the database: the next `linkUp` sends them with the
  /// other unacknowledged ones.
  private func dropReady() {
    ready.removeAll()
    readyStart = 0
  }

  /// The database failed: form and send nothing for `milliseconds` (the link stays
  /// up; what is in flight stays in flight).
  public func pause(monotonic now: Int64, milliseconds: Int64) {
    pausedUntil = now + milliseconds
  }

  /// Whether sync is paused after a database failure.
  public func isPaused(monotonic now: Int64) -> Bool { now < pausedUntil }

  /// Something was enqueued: look for pending records at the next `pump`.
  public func recordsEnqueued() {
    nothingPendingUntil = 0
    livePending = true
  }

  private var bucketSize: Int64 {
    settings.backlogRate == 0 ? Int64.max : max(settings.backlogRate, Int64(settings.batchRecords))
  }

  /// Publishes what the window allows: due resends first, then new batches.
  /// - Parameters:
  ///   - now: monotonic ms; `wall`: wall-clock ms (stored with batches).
  /// - Throws: `SyncError` when the database or the client fails.
  public func pump(monotonic now: Int64, wall: Int64) throws(SyncError) {
    guard now >= pausedUntil else { return }
    guard connected else {
      try releaseAcknowledged(wall: wall)
      return
    }
    expireAcks(now)
    for (seq, at) in held where at <= now {
      held[seq] = nil
      resend.append(seq)
    }
    if !resend.isEmpty { resend.sort() }
    while room > 0, !resend.isEmpty, inFlight.count + held.count < max(settings.ackWindow, settings.window) {
      let seq = resend.removeFirst()
      let batch: Outbox.Batch?
      do {
        batch = try outbox.batch(seq)
      } catch {
        throw SyncError("reading batch " + String(seq) + ": " + error.description, database: true)
      }
      guard let batch else { continue }  // acked meanwhile
      try publish(batch, now: now, again: true)
    }
    try publishReady(now)
    // Form in groups, several windows ahead while the link keeps up, rather than one
    // batch per PUBACK; live records at once, ahead of what is prepared.
    let prepared = ready.count - readyStart
    let free = min(formingRoom, formAhead - prepared)
    guard
      free > 0, now >= nothingPendingUntil,
      livePending || (prepared * 2 < settings.window && (free * 2 >= settings.window || seqOfMid.isEmpty))
    else {
      try releaseAcknowledged(wall: wall)
      return
    }
    livePending = false
    refill(now)
    let formed: Outbox.Formation
    do {
      formed = try outbox.formBatches(
        count: free, maxRecords: settings.batchRecords, liveAfter: liveAfter,
        backlogBudget: tokens >= Int64(Int.max) ? Int.max : Int(tokens), now: wall,
        releasing: acknowledgedRanges)
    } catch {
      throw SyncError("forming batches: " + error.description, database: true)
    }
    acknowledgedRanges.removeAll()
    countReleased(formed.releasedSeqs, records: formed.releasedRecords, wall: wall)
    if settings.backlogRate > 0 { tokens -= Int64(formed.backlogRecords) }
    if formed.batches.isEmpty {
      // Nothing pending (or the backlog cap is spent): look again in a while, or as
      // soon as something is enqueued or acked.
      nothingPendingUntil = now + 200
      return
    }
    // Live batches go before those prepared earlier, backlog ones after them.
    let live = formed.batches.prefix(formed.liveBatches)
    ready = Array(live) + ready[readyStart...] + formed.batches.dropFirst(formed.liveBatches)
    readyStart = 0
    try publishReady(now)
  }

  /// Publishes prepared batches while the PUBACK window has room.
  private func publishReady(_ now: Int64) throws(SyncError) {
    while room > 0, readyStart < ready.count {
      let batch = ready[readyStart]
      readyStart += 1
      try publish(batch, now: now, again: false)
    }
    if readyStart == ready.count { dropReady() }
  }

  /// Releases the batches HQ acknowledged since the last release, in one
  /// transaction (the agent calls this before it stops).
  public func releaseAcknowledged(wall: Int64) throws(SyncError) {
    guard !acknowledgedRanges.isEmpty else { return }
    let released: (seqs: [Int64], records: Int)
    do {
      released = try outbox.release(acknowledgedRanges)
    } catch {
      throw SyncError("releasing acknowledged batches: " + error.description, database: true)
    }
    acknowledgedRanges.removeAll()
    countReleased(released.seqs, records: released.records, wall: wall)
  }

  private func countReleased(_ seqs: [Int64], records: Int, wall: Int64) {
    guard !seqs.isEmpty else { return }
    figures.batchesAcked += Int64(seqs.count)
    figures.recordsAcked += Int64(records)
    figures.lastAckAt = wall
  }

  private func refill(_ now: Int64) {
    guard settings.backlogRate > 0 else {
      tokens = Int64.max
      return
    }
    let elapsed = now - tokensAt
    guard elapsed > 0 else { return }
    tokensAt = now
    let (gained, overflow) = elapsed.multipliedReportingOverflow(by: settings.backlogRate)
    tokens = overflow ? bucketSize : min(bucketSize, tokens + gained / 1000)
  }

  private func publish(_ batch: Outbox.Batch, now: Int64, again: Bool) throws(SyncError) {
    let mid: Int32
    do {
      mid = try client.publish(
        topic: Topics.up(deviceID, batch.uplink), payload: batch.payload, qos: 1, retain: false)
    } catch {
      resend.insert(batch.seq, at: 0)
      throw SyncError("publishing batch " + String(batch.seq) + ": " + error.description)
    }
    inFlight[batch.seq] = InFlight(mid: mid, sentAt: now)
    seqOfMid[mid] = batch.seq
    if again { figures.batchesResent += 1 } else { figures.batchesPublished += 1 }
    Log.debug(
      "sync",
      (again ? "resent" : "sent") + " batch " + String(batch.seq) + " (" + batch.uplink.name + ", "
        + String(batch.records) + " records, " + String(batch.payload.count) + " bytes)")
  }

  private func expireAcks(_ now: Int64) {
    var expired: [Int64] = []
    for (seq, flight) in inFlight where now - flight.sentAt >= settings.ackTimeoutMilliseconds {
      expired.append(seq)
    }
    guard !expired.isEmpty else { return }
    for seq in expired {
      if let flight = inFlight.removeValue(forKey: seq) { seqOfMid[flight.mid] = nil }
      resend.append(seq)
    }
    Log.warn(
      "sync",
      String(expired.count) + " batch(es) not acknowledged by HQ within "
        + String(settings.ackTimeoutMilliseconds) + " ms; sending again")
  }

  /// The broker's PUBACK for message `mid`. A reason code ≥ 0x80 keeps the batch
  /// and holds it for the ack timeout.
  /// - Returns: an event record to enqueue when the refusal should be reported.
  public func published(mid: Int32, reasonCode: Int32, monotonic now: Int64) -> String? {
    guard let seq = seqOfMid.removeValue(forKey: mid) else { return nil }
    guard reasonCode >= 0x80 else { return nil }
    inFlight[seq] = nil
    held[seq] = now + settings.ackTimeoutMilliseconds
    figures.refusedByBroker += 1
    Log.warn(
      "sync",
      "broker refused batch " + String(seq) + " with reason code " + String(reasonCode)
        + "; kept, retry in " + String(settings.ackTimeoutMilliseconds) + " ms")
    if let last = refusalEventAt[reasonCode], now - last < 3_600_000 { return nil }
    refusalEventAt[reasonCode] = now
    return "{\"type\":\"sync.refused\",\"seq\":" + String(seq) + ",\"reason_code\":"
      + String(reasonCode) + "}"
  }

  /// HQ's application acks received in one turn of the loop. The batches they name
  /// are no longer in flight at once; they are released (deleted with their records)
  /// at the next `pump`, in the transaction that forms the next batches, or by
  /// `releaseAcknowledged`. Until then a restart would only send them again, and HQ
  /// deduplicates them.
  /// - Returns: how many batches in flight the acks named.
  @discardableResult
  public func acknowledged(_ payloads: [[UInt8]], monotonic now: Int64, wall: Int64) -> Int {
    var ranges: [ClosedRange<Int64>] = []
    for payload in payloads {
      let ack: Ack
      do {
        ack = try ackParser.decode(payload)
      } catch {
        figures.malformedAcks += 1
        Log.warn("sync", "malformed ack on " + Topics.downAck(deviceID) + ": " + error.description)
        continue
      }
      guard ack.store == storeID else {
        Log.warn("sync", "ack for store " + ack.store + " ignored: this database is store " + storeID)
        continue
      }
      ranges += ack.ranges
    }
    guard !ranges.isEmpty else { return 0 }
    acknowledgedRanges += ranges
    var named: [Int64] = []
    for seq in inFlight.keys where ranges.contains(where: { $0.contains(seq) }) { named.append(seq) }
    for seq in named {
      if let flight = inFlight.removeValue(forKey: seq) { seqOfMid[flight.mid] = nil }
    }
    for seq in held.keys where ranges.contains(where: { $0.contains(seq) }) { held[seq] = nil }
    resend.removeAll { seq in ranges.contains { $0.contains(seq) } }
    nothingPendingUntil = 0
    return named.count
  }

  /// When the loop should call `pump` again at the latest (monotonic ms), or nil.
  public func nextDeadline(monotonic now: Int64) -> Int64? {
    guard connected else { return nil }
    var deadline: Int64? = nil
    func consider(_ t: Int64) { deadline = min(deadline ?? t, t) }
    for (_, flight) in inFlight { consider(flight.sentAt + settings.ackTimeoutMilliseconds) }
    for (_, at) in held { consider(at) }
    if nothingPendingUntil > now { consider(nothingPendingUntil) }
    if pausedUntil > now { consider(pausedUntil) }
    return deadline
  }
}

/// Sync failed on the database or the client.
public struct SyncError: Error, CustomStringConvertible {
  public let description: String
  /// The database failed (the MQTT link may well be fine).
  public let database: Bool
  public init(_ description: String, database: Bool = false) {
    self.description = description
    self.database = database
  }
}

import DLT645
import Runtime

/// One half-duplex meter line (an RS-485 port or a gateway) and the exchanges on it:
/// one request in flight at a time, each with a reply timeout, retries and an
/// inter-frame gap, sent with wake-up bytes (FE FE FE FE).
///
/// A component of the agent's one `poll(2)` loop: it owns no thread and never blocks.
/// Each round the owner asks for `pollRequest`, waits at most until `nextDeadline`,
/// then calls `service(_:now:)` with the poll result and `tick(now:)`; finished
/// exchanges are collected with `takeCompletions()`, line trouble (corrupt frames,
/// replies from the wrong meter, meters that stop answering, the line going down)
/// with `takeIncidents()`. No closures are stored, so nothing keeps the owner alive.
///
/// - A meter that does not answer any attempt is marked silent and reported once
///   (`Incident.noAnswer`); while silent its requests get one attempt, no retries, so
///   a dead meter costs the bus one timeout per request, not `1 + retries`.
/// - A frame from another address (a late reply) is counted and ignored; the wait
///   for the right one goes on. An echo of the request itself (adapters that hear
///   their own transmission) is ignored.
/// - A corrupt frame is counted; the attempt waits a short settle time for a good
///   frame and is then retried.
/// - When the line fails (the gateway closes, the port errors), the exchange in
///   flight goes back to the head of the queue and the line is reopened after an
///   exponential backoff with full jitter. Queued requests wait; the owner cancels
///   what it no longer wants (`cancel(tag:)`).
///
/// Times are monotonic milliseconds, passed in (tests drive them).
public final class MeterBus {
  /// The quiet time between exchanges: `settings.gapMilliseconds`, at least 4
  /// character times at the line's baud rate.
  private var gapMilliseconds: Int64 { max(settings.gapMilliseconds, transport.timing.milliseconds(4)) }

  /// Timing and retry settings (`bus.*` configuration keys).
  public struct Settings: Sendable {
    /// How long to wait for a reply once the request is on the wire, on top of the
    /// time the expected reply takes to transmit at the line's baud rate.
    public var replyTimeoutMilliseconds: Int64 = 1500
    /// Attempts after the first one for a meter that is not marked silent.
    public var retries = 2
    /// Quiet time between the end of one exchange and the next request; the bus keeps
    /// at least 4 character times at its baud rate (like Modbus RTU's 3.5), so a meter's
    /// transmitter has released the line (5 ms at 9600 Bd, 37 ms at 1200 Bd, 8E1).
    public var gapMilliseconds: Int64 = 5
    /// 0xFE bytes sent before each request to wake the meters' receivers.
    public var wakeUpBytes = 4
    /// Reopen backoff base and cap (full jitter).
    public var reconnectMinMilliseconds: Int64 = 1000
    public var reconnectMaxMilliseconds: Int64 = 60_000
    /// The longest a TCP connect may take.
    public var connectTimeoutMilliseconds: Int64 = 10_000

    public init() {}
  }

  /// How an exchange ended.
  public enum Outcome: Sendable {
    /// The meter replied (normal or error reply; the reply fits the request).
    case reply(Reply)
    /// No attempt got anything from the meter.
    case noAnswer
    /// Every attempt got a corrupt frame or a reply that does not fit the request.
    case badReplies
    /// A broadcast was sent (meters do not reply to broadcasts).
    case sent
    /// The owner cancelled it before it finished.
    case cancelled
  }

  /// A finished exchange.
  public struct Completion: Sendable {
    /// The number `submit` returned.
    public let ticket: Int64
    /// The owner's tag given to `submit`.
    public let tag: Int64
    public let meter: Address
    public let request: Request
    public let outcome: Outcome
    /// Requests sent for it (0 when cancelled before the first).
    public let attempts: Int
    /// The address the reply came from: `meter`, or for a probe the meter its
    /// pattern matched.
    public var from: Address? = nil
  }

  /// Something that went wrong on the line, for the owner to count and report.
  public enum Incident: Sendable {
    /// A malformed frame while waiting for `meter`'s reply.
    case corruptFrame(meter: Address, FrameError)
    /// A reply from `from` while waiting for `meter`'s.
    case wrongAddress(meter: Address, from: Address)
    /// A well-formed frame from `meter` that is not a reply to the request.
    case unexpectedReply(meter: Address, reason: String)
    /// `meter` did not answer any attempt and is now marked silent.
    case noAnswer(meter: Address)
    /// `meter`, marked silent, answered again.
    case answering(meter: Address)
    /// The line failed; it is reopened after a backoff.
    case lineDown(reason: String)
    /// The line is open (again).
    case lineUp
  }

  private struct Exchange {
    let ticket: Int64
    let tag: Int64
    let meter: Address
    let request: Request
    let bytes: [UInt8]
    let expectedReplyBytes: Int
    /// A bus-search probe: tried once, never marks anything silent, and a reply from
    /// any meter the address (a pattern) matches counts.
    var probe = false
    var attempts = 0
    var badFrames = 0
    var timeouts = 0
  }

  private enum Line {
    case down(retryAt: Int64)
    case opening(deadline: Int64)
    case up
  }

  private enum Phase {
    case idle
    case sending(Exchange, written: Int, deadline: Int64)
    case awaiting(Exchange, deadline: Int64, settling: Bool)
  }

  /// The bus name (`1` for `bus.1`), as meters refer to it.
  public let name: String
  public let transport: any MeterTransport
  public let settings: Settings
  private var line: Line = .down(retryAt: 0)
  private var phase: Phase = .idle
  private var readyAt: Int64 = 0
  private var queue: [Exchange] = []
  private var queueHead = 0
  private var nextTicket: Int64 = 1
  private var decoder = FrameDecoder()
  private var backoff: Backoff
  private var silent: Set<Address> = []
  private var completions: [Completion] = []
  private var incidents: [Incident] = []
  private var closed = false

  /// Bytes read while no reply was awaited (late replies, noise), since start.
  public private(set) var strayBytes = 0

  /// A bus over `transport` (not opened until the first `tick`).
  public init(name: String, transport: any MeterTransport, settings: Settings) {
    self.name = name
    self.transport = transport
    self.settings = settings
    self.backoff = Backoff(
      baseMilliseconds: max(1, settings.reconnectMinMilliseconds),
      capMilliseconds: max(max(1, settings.reconnectMinMilliseconds), settings.reconnectMaxMilliseconds))
  }

  // MARK: - Requests

  /// Queues `request` for `meter`.
  /// - Parameters:
  ///   - tag: the owner's number, returned in the completion and used by `cancel(tag:)`.
  ///   - first: put it at the head of the queue (a follow-up that should not wait
  ///     behind a whole cycle).
  ///   - probe: a bus-search probe (`meter` may be a pattern): sent once; the
  ///     completion's `from` names the meter that answered; no answer marks nothing
  ///     silent.
  /// - Returns: the ticket that the completion carries.
  @discardableResult
  public func submit(
    _ request: Request, to meter: Address, tag: Int64 = 0, first: Bool = false, probe: Bool = false
  ) -> Int64 {
    let ticket = nextTicket
    nextTicket += 1
    let frame = request.frame(to: meter)
    let exchange = Exchange(
      ticket: ticket, tag: tag, meter: meter, request: request,
      bytes: frame.encoded(wakeUpBytes: settings.wakeUpBytes),
      expectedReplyBytes: Self.expectedReplyBytes(request), probe: probe)
    if first {
      if queueHead > 0 {
        queueHead -= 1
        queue[queueHead] = exchange
      } else {
        queue.insert(exchange, at: 0)
      }
    } else {
      queue.append(exchange)
    }
    return ticket
  }

  /// Cancels the queued exchanges with `tag` (the one in flight, if it has the tag,
  /// finishes normally). Each gets a `.cancelled` completion.
  /// - Returns: how many were cancelled.
  @discardableResult
  public func cancel(tag: Int64) -> Int {
    var kept: [Exchange] = []
    var count = 0
    for exchange in queue[queueHead...] {
      if exchange.tag == tag {
        count += 1
        completions.append(
          Completion(
            ticket: exchange.ticket, tag: exchange.tag, meter: exchange.meter, request: exchange.request,
            outcome: .cancelled, attempts: exchange.attempts))
      } else {
        kept.append(exchange)
      }
    }
    queue = kept
    queueHead = 0
    return count
  }

  /// Exchanges queued and not yet sent (the one in flight not counted).
  public var queuedCount: Int { queue.count - queueHead }

  /// True when nothing is queued or in flight.
  public var isIdle: Bool {
    if case .idle = phase { return queuedCount == 0 }
    return false
  }

  /// True when the line is open.
  public var isUp: Bool {
    if case .up = line { return true }
    return false
  }

  /// True when `meter` is marked silent (its last exchange got no answer at all).
  public func isSilent(_ meter: Address) -> Bool { silent.contains(meter) }

  /// Marks `meter` silent without asking it (it was silent before a restart): one
  /// attempt per request until it answers.
  public func markSilent(_ meter: Address) { silent.insert(meter) }

  /// The exchanges finished since the last call, in the order they finished.
  public func takeCompletions() -> [Completion] {
    defer { completions.removeAll(keepingCapacity: true) }
    return completions
  }

  /// The incidents since the last call, in order.
  public func takeIncidents() -> [Incident] {
    defer { incidents.removeAll(keepingCapacity: true) }
    return incidents
  }

  // MARK: - Poll loop

  /// What to poll for this round, or nil while the line is closed.
  public var pollRequest: PollRequest? {
    let fd = transport.fd
    guard fd >= 0 else { return nil }
    switch (line, phase) {
    case (.opening, _): return PollRequest(fd: fd, read: false, write: true)
    case (.up, .sending): return PollRequest(fd: fd, read: true, write: true)
    default: return PollRequest(fd: fd, read: true, write: false)
    }
  }

  /// The next time `tick` has something to do, or nil when it has nothing without I/O.
  public var nextDeadline: Int64? {
    if closed { return nil }
    switch line {
    case .down(let retryAt): return retryAt
    case .opening(let deadline): return deadline
    case .up:
      switch phase {
      case .idle: return queuedCount > 0 ? readyAt : nil
      case .sending(_, _, let deadline): return deadline
      case .awaiting(_, let deadline, _): return deadline
      }
    }
  }

  /// Handles what `poll` reported for `pollRequest`'s descriptor.
  public func service(_ result: PollResult, now: Int64) {
    guard !closed, result.fd == transport.fd, transport.fd >= 0 else { return }
    switch line {
    case .opening:
      guard result.writable || result.failed || result.readable else { return }
      do {
        if try transport.finishOpening() { lineUp(now) }
      } catch {
        lineFailed(error.description, now: now)
      }
      return
    case .down:
      return
    case .up:
      break
    }
    if result.readable || result.failed {
      let bytes: [UInt8]
      do {
        bytes = try transport.read()
      } catch {
        lineFailed(error.description, now: now)
        return
      }
      received(bytes, now: now)
    }
    if result.writable, case .sending = phase { flush(now) }
    tick(now: now)
  }

  /// Acts on deadlines: reopens the line, times out a reply, starts the next request
  /// once the inter-frame gap has passed.
  public func tick(now: Int64) {
    guard !closed else { return }
    switch line {
    case .down(let retryAt):
      guard now >= retryAt else { return }
      open(now)
      guard case .up = line else { return }
    case .opening(let deadline):
      if now >= deadline { lineFailed("connect timed out", now: now) }
      return
    case .up:
      break
    }
    switch phase {
    case .sending(let exchange, _, let deadline):
      if now >= deadline { attemptFailed(exchange, now: now, reason: "could not send the request in time") }
    case .awaiting(let exchange, let deadline, _):
      if now >= deadline { replyTimedOut(exchange, now: now) }
    case .idle:
      break
    }
    if case .idle = phase, queuedCount > 0, now >= readyAt { start(now) }
  }

  /// Closes the line for good; queued exchanges are dropped without completions.
  public func close() {
    closed = true
    transport.close()
    queue.removeAll()
    queueHead = 0
    phase = .idle
  }

  // MARK: - Line

  private func open(_ now: Int64) {
    do {
      if try transport.open() {
        lineUp(now)
      } else {
        line = .opening(deadline: now + settings.connectTimeoutMilliseconds)
      }
    } catch {
      lineFailed(error.description, now: now)
    }
  }

  private func lineUp(_ now: Int64) {
    line = .up
    backoff.reset()
    decoder.reset()
    readyAt = now
    incidents.append(.lineUp)
    Log.info("bus", "bus " + name + " (" + transport.label + ") open")
  }

  private func lineFailed(_ reason: String, now: Int64) {
    transport.close()
    decoder.reset()
    // The exchange in flight was not the meter's fault: send it again after reopening.
    switch phase {
    case .sending(var exchange, _, _), .awaiting(var exchange, _, _):
      exchange.attempts = max(0, exchange.attempts - 1)
      requeueFirst(exchange)
    case .idle:
      break
    }
    phase = .idle
    let delay = backoff.nextDelay()
    line = .down(retryAt: now + delay)
    incidents.append(.lineDown(reason: reason))
    Log.warn("bus", "bus " + name + ": " + reason + "; reopening in " + String(delay) + " ms")
  }

  // MARK: - Exchanges

  private func start(_ now: Int64) {
    guard queueHead < queue.count else { return }
    var exchange = queue[queueHead]
    queueHead += 1
    if queueHead > 64 && queueHead * 2 > queue.count {
      queue.removeFirst(queueHead)
      queueHead = 0
    }
    do {
      strayBytes += try transport.discardInput()
    } catch {
      requeueFirst(exchange)
      lineFailed(error.description, now: now)
      return
    }
    decoder.reset()
    exchange.attempts += 1
    let timing = transport.timing
    let deadline =
      now + timing.milliseconds(exchange.bytes.count) + timing.milliseconds(exchange.expectedReplyBytes)
      + settings.replyTimeoutMilliseconds
    phase = .sending(exchange, written: 0, deadline: deadline)
    flush(now)
  }

  private func flush(_ now: Int64) {
    guard case .sending(let exchange, var written, let deadline) = phase else { return }
    do {
      while written < exchange.bytes.count {
        let n = try transport.write(exchange.bytes[written...])
        if n == 0 { break }
        written += n
      }
    } catch {
      lineFailed(error.description, now: now)
      return
    }
    guard written == exchange.bytes.count else {
      phase = .sending(exchange, written: written, deadline: deadline)
      return
    }
    if case .broadcastTime = exchange.request {
      // Meters do not answer a broadcast: let it leave the UART, then the gap.
      finish(exchange, .sent, now: now)
      readyAt = now + transport.timing.milliseconds(exchange.bytes.count) + gapMilliseconds
      return
    }
    phase = .awaiting(exchange, deadline: deadline, settling: false)
  }

  private func received(_ bytes: [UInt8], now: Int64) {
    guard !bytes.isEmpty else { return }
    guard case .awaiting(var exchange, var deadline, var settling) = phase else {
      strayBytes += bytes.count
      return
    }
    decoder.feed(bytes)
    while true {
      let frame: Frame
      do {
        guard let next = try decoder.next() else { break }
        frame = next
      } catch {
        incidents.append(.corruptFrame(meter: exchange.meter, error))
        exchange.badFrames += 1
        if !settling {
          // The meter spoke, badly: wait a little for a good frame, then retry.
          settling = true
          deadline = min(deadline, now + max(2 * gapMilliseconds, 100))
        }
        continue
      }
      // An adapter that hears its own transmission: skip the echo.
      if !frame.control.isReply { continue }
      guard frame.address == exchange.meter || (exchange.probe && exchange.meter.matches(frame.address))
      else {
        incidents.append(.wrongAddress(meter: exchange.meter, from: frame.address))
        continue
      }
      let reply: Reply
      do {
        reply = try Reply(frame: frame)
      } catch {
        incidents.append(.unexpectedReply(meter: exchange.meter, reason: error.description))
        exchange.badFrames += 1
        attemptFailed(exchange, now: now, reason: error.description)
        return
      }
      if let mismatch = Self.mismatch(reply, exchange.request) {
        incidents.append(.unexpectedReply(meter: exchange.meter, reason: mismatch))
        exchange.badFrames += 1
        attemptFailed(exchange, now: now, reason: mismatch)
        return
      }
      if silent.remove(frame.address) != nil { incidents.append(.answering(meter: frame.address)) }
      finish(exchange, .reply(reply), from: frame.address, now: now)
      readyAt = now + gapMilliseconds
      return
    }
    phase = .awaiting(exchange, deadline: deadline, settling: settling)
  }

  private func replyTimedOut(_ exchange: Exchange, now: Int64) {
    var exchange = exchange
    do {
      try decoder.finish()
    } catch {
      incidents.append(.corruptFrame(meter: exchange.meter, error))
      exchange.badFrames += 1
    }
    if exchange.badFrames == 0 { exchange.timeouts += 1 }
    attemptFailed(exchange, now: now, reason: "no reply")
  }

  private func attemptFailed(_ exchange: Exchange, now: Int64, reason: String) {
    phase = .idle
    readyAt = now + gapMilliseconds
    // A probe (bus search) is tried once: a collision would only collide again.
    let allowed = silent.contains(exchange.meter) || exchange.probe ? 1 : 1 + max(0, settings.retries)
    if exchange.attempts < allowed {
      Log.debug(
        "bus",
        "bus " + name + ": meter " + exchange.meter.description + ": " + reason + ", attempt "
          + String(exchange.attempts) + " of " + String(allowed))
      requeueFirst(exchange)
      return
    }
    if exchange.badFrames == 0 {
      // A probe nobody answered says nothing about any listed meter.
      if !exchange.probe, silent.insert(exchange.meter).inserted {
        incidents.append(.noAnswer(meter: exchange.meter))
      }
      finish(exchange, .noAnswer, now: now)
    } else {
      finish(exchange, .badReplies, now: now)
    }
  }

  private func finish(_ exchange: Exchange, _ outcome: Outcome, from: Address? = nil, now: Int64) {
    phase = .idle
    completions.append(
      Completion(
        ticket: exchange.ticket, tag: exchange.tag, meter: exchange.meter, request: exchange.request,
        outcome: outcome, attempts: exchange.attempts, from: from))
  }

  private func requeueFirst(_ exchange: Exchange) {
    if queueHead > 0 {
      queueHead -= 1
      queue[queueHead] = exchange
    } else {
      queue.insert(exchange, at: 0)
    }
  }

  // MARK: - Helpers

  /// Why `reply` does not answer `request`, or nil when it does.
  static func mismatch(_ reply: Reply, _ request: Request) -> String? {
    switch (request, reply) {
    case (.read(let wanted), .readData(let got, _, _)):
      return wanted == got ? nil : "reply for " + got.description + " to a read of " + wanted.description
    case (.read, .readError): return nil
    case (.readFollowUp(let wanted, _), .readFollowUpData(let got, _, _, _)):
      return wanted == got ? nil : "follow-up reply for " + got.description + " to " + wanted.description
    case (.readFollowUp, .readFollowUpError): return nil
    case (.readAddress, .address): return nil
    case (.control, .controlAccepted), (.control, .controlRefused), (.control, .controlRefusedStatus):
      return nil
    default:
      return "reply " + reply.control.description + " does not answer a "
        + Control(request.function).functionName
        + " request"
    }
  }

  /// The length on the wire of the reply a request expects (for timing): the frame,
  /// up to 4 wake-up bytes, the identifier and the value.
  static func expectedReplyBytes(_ request: Request) -> Int {
    let overhead = 12 + 4
    switch request {
    case .read(let identifier), .readFollowUp(let identifier, _):
      let value = identifier.format?.byteCount ?? 4 * 5
      return overhead + 4 + value + 1
    case .readAddress: return overhead + 6
    case .broadcastTime: return 0
    case .control: return overhead + 2
    }
  }
}

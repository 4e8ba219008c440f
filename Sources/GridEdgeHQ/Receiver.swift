import GridEdgeContract
import MosquittoClient
import Runtime
import SQLiteStore

/// `gridedge-hq serve`: subscribes to every device's state (optionally as a shared
/// subscription `$share/<group>/...`, so several receivers split the load on an
/// MQTT v5 broker or cluster) and keeps what it learns in its database.
///
/// Uplink batches are validated, stored deduplicated by (device, store, seq) and by
/// each record's natural key, and acknowledged on `down/ack` only after the
/// transaction holding them has committed (`synchronous=FULL`). Everything received
/// in one turn of the loop is committed together, then acked. A malformed batch is
/// logged with its device and topic, counted, never stored and never acked.
public final class Receiver<C: Clock> {
  public struct Options {
    public var host = "127.0.0.1"
    public var port: Int32 = 1883
    public var databasePath = "gridedge-hq.db"
    public var clientID = "gridedge-hq"
    public var sharedGroup: String? = nil
    /// TLS to the broker (the example broker requires a client certificate).
    public var tls: TLSOptions? = nil
    /// Fault injection for tests: exit with status 70 after this many commits,
    /// before publishing their acks (0: never). Set from the environment variable
    /// `GRIDEDGE_HQ_FAULT_EXIT_BEFORE_ACK`.
    public var exitBeforeAckAfterCommits =
      Int(Process.environment("GRIDEDGE_HQ_FAULT_EXIT_BEFORE_ACK") ?? "") ?? 0
    public init() {}
  }

  let options: Options
  let clock: C
  let store: HQStore
  let client: Client
  let signals: TerminationSignals
  private var connected = false
  private var stopping = false
  private var backoff = Backoff(baseMilliseconds: 500, capMilliseconds: 30_000)
  private var timers = TimerQueue<Int>()
  private var commits = 0

  public init(options: Options, clock: C) throws(ReceiverError) {
    self.options = options
    self.clock = clock
    do {
      store = try HQStore(path: options.databasePath)
    } catch {
      throw ReceiverError("database " + options.databasePath + ": " + error.description)
    }
    do {
      signals = try TerminationSignals()
    } catch {
      throw ReceiverError(error.description)
    }
    var clientOptions = ClientOptions(clientID: options.clientID)
    clientOptions.protocolVersion = .v5
    clientOptions.tls = options.tls
    do {
      client = try Client(clientOptions)
    } catch {
      throw ReceiverError("MQTT client: " + error.description)
    }
  }

  /// Runs until SIGTERM/SIGINT. - Returns: the exit code.
  public func run() -> Int32 {
    Log.info("hq", "receiver " + options.clientID + " on " + broker + ", database " + options.databasePath)
    connect()
    while !stopping {
      let now = clock.monotonicMilliseconds
      if !timers.takeDue(now: now).isEmpty { connect() }
      var requests = [PollRequest(fd: signals.fd)]
      let socket = client.socket
      if socket >= 0 { requests.append(PollRequest(fd: socket, read: true, write: client.wantsWrite)) }
      let results: [PollResult]
      do {
        results = try Poller.wait(requests, timeoutMilliseconds: timers.timeout(now: now, limit: 1000))
      } catch {
        Log.error("hq", error.description)
        return 1
      }
      if results[0].readable, let signal = signals.take().first {
        Log.info("hq", "stopping on " + TerminationSignals.name(signal))
        stopping = true
      }
      if socket >= 0 {
        do {
          try client.service(
            readable: results[1].readable || results[1].failed, writable: results[1].writable)
          if results[1].readable { try readMore(socket) }
        } catch {
          lost(error.description)
        }
      }
      handleEvents()
    }
    if connected { try? client.disconnect() }
    return 0
  }

  /// libmosquitto reads about one packet per `mosquitto_loop_read`; keep reading what
  /// has already arrived (up to 512 packets), so one transaction and one fsync cover
  /// many batches.
  private func readMore(_ socket: Int32) throws(MosquittoError) {
    for _ in 0..<512 {
      guard let ready = try? Poller.wait([PollRequest(fd: socket, read: true)], timeoutMilliseconds: 0),
        ready[0].readable
      else { return }
      try client.loopRead()
    }
  }

  private var broker: String { options.host + ":" + String(options.port) }

  private func connect() {
    do {
      try client.connect(host: options.host, port: options.port)
    } catch {
      lost(error.description)
    }
  }

  private func lost(_ why: String) {
    guard !stopping else { return }
    if connected || !timers.isScheduled(0) {
      connected = false
      let delay = backoff.nextDelay()
      Log.warn("hq", "broker " + broker + " unavailable (" + why + "); retry in " + String(delay) + " ms")
      timers.schedule(0, at: clock.monotonicMilliseconds + delay)
    }
  }

  private func handleEvents() {
    var uplinks: [Message] = []
    for event in client.takeEvents() {
      switch event {
      case .connected(let code):
        guard code == 0 else {
          lost("CONNACK reason code " + String(code))
          continue
        }
        connected = true
        backoff.reset()
        Log.info("hq", "connected to " + broker)
        do {
          try client.subscribe(Topics.allStates(sharedGroup: options.sharedGroup), qos: 1)
          try client.subscribe(Topics.allUplinks(sharedGroup: options.sharedGroup), qos: 1)
        } catch {
          lost(error.description)
        }
      case .disconnected(let code):
        lost("disconnected, reason code " + String(code))
      case .message(let message):
        if message.topic.hasSuffix("/state") {
          receive(message)
        } else {
          uplinks.append(message)
        }
      case .published, .subscribed:
        break
      }
    }
    if !uplinks.isEmpty { receiveBatches(uplinks) }
  }

  /// Stores a turn's batches in one transaction, then acks them.
  private func receiveBatches(_ messages: [Message]) {
    let now = clock.wallMilliseconds
    var acks: [String: [Int64]] = [:]  // "device store" -> seqs
    do {
      try store.db.transaction(.full) { () throws(SQLiteError) in
        for message in messages {
          guard let header = validate(message, now: now) else { continue }
          let outcome = try store.store(header, payload: message.payload, receivedAt: now)
          switch outcome {
          case .stored(let stored, let duplicates):
            Log.debug(
              "hq",
              "batch " + String(header.seq) + " of " + header.device + "/" + header.store + " ("
                + header.uplink.name + "): " + String(stored) + " stored, " + String(duplicates)
                + " duplicate record(s)")
          case .duplicateBatch:
            Log.debug(
              "hq", "batch " + String(header.seq) + " of " + header.device + " again: acked, not stored")
          case .conflictingBatch:
            Log.error(
              "hq",
              "batch " + String(header.seq) + " of " + header.device + "/" + header.store
                + " differs from the one stored under the same seq: the device reused a seq;"
                + " its new records kept, acked")
          }
          acks[header.device + " " + header.store, default: []].append(header.seq)
        }
      }
    } catch {
      Log.error(
        "hq", "storing " + String(messages.count) + " batch(es): " + error.description + "; not acked")
      return
    }
    commits += 1
    Log.debug("hq", "commit " + String(commits) + ": " + String(messages.count) + " message(s)")
    if options.exitBeforeAckAfterCommits > 0 && commits >= options.exitBeforeAckAfterCommits {
      Log.warn("hq", "fault injection: exiting after commit " + String(commits) + ", before its acks")
      Process.exit(70)
    }
    for (key, seqs) in acks {
      let parts = key.split(separator: " ")
      let device = String(parts[0])
      let ack = Ack(store: String(parts[1]), seqs: seqs)
      do {
        _ = try client.publish(topic: Topics.downAck(device), payload: ack.encode(), qos: 1, retain: false)
      } catch {
        Log.warn("hq", "ack to " + device + " not sent (" + error.description + "); the device will resend")
      }
    }
  }

  /// The batch's header, or nil (logged and counted) when the message is malformed.
  private func validate(_ message: Message, now: Int64) -> BatchHeader? {
    guard let (device, rest) = Topics.parse(message.topic), rest.hasPrefix("up/") else {
      Log.warn("hq", "ignored message on unexpected topic " + message.topic)
      return nil
    }
    func malformed(_ why: String) -> BatchHeader? {
      Log.warn(
        "hq",
        "malformed batch from " + device + " on " + message.topic + ": " + why + "; not stored, not acked")
      do {
        try store.countMalformed(device, now: now)
      } catch {
        Log.error("hq", "counting a malformed batch: " + error.description)
      }
      return nil
    }
    let header: BatchHeader
    do {
      header = try BatchHeader.decode(message.payload, store.db)
    } catch {
      return malformed(error.description)
    }
    guard header.device == device else {
      return malformed("dev \"" + header.device + "\" is not the topic's device")
    }
    guard rest == "up/" + header.uplink.name else {
      return malformed("class \"" + header.uplink.name + "\" does not match the topic")
    }
    return header
  }

  private func receive(_ message: Message) {
    guard let (device, rest) = Topics.parse(message.topic), rest == "state" else {
      Log.warn("hq", "ignored message on unexpected topic " + message.topic)
      return
    }
    guard !message.payload.isEmpty else { return }  // a cleared retained state
    let state: StateMessage
    do {
      state = try StateMessage.decode(message.payload, store.db)
    } catch {
      Log.warn("hq", "malformed state from " + device + " on " + message.topic + ": " + error.description)
      return
    }
    guard state.device == device else {
      Log.warn("hq", "state on " + message.topic + " names another device (" + state.device + "); ignored")
      return
    }
    do {
      if try store.record(state, receivedAt: clock.wallMilliseconds) {
        var line = "device " + device + " " + state.state.name + " (epoch " + String(state.epoch)
        if let reason = state.reason { line += ", " + reason }
        if let storage = state.storage {
          Log.warn(
            "hq",
            line + "): its database disk FAILING since " + formatUTC(milliseconds: storage.since) + ": "
              + storage.error + " while " + storage.step)
        } else {
          Log.info("hq", line + ")")
        }
      }
    } catch {
      Log.error("hq", "storing state of " + device + ": " + error.description)
    }
  }
}

/// The receiver could not start.
public struct ReceiverError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

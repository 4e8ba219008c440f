import CLibc
import GridEdgeContract
import GridEdgeCore
import MosquittoClient
import Runtime
import SQLiteStore

/// The agent: one thread, one `poll(2)` loop over the stop signals and the MQTT
/// socket, with timers on the monotonic clock (DESIGN.md §3).
///
/// This first version keeps the device's identity and boots in its database,
/// connects to the broker with a will, publishes its retained birth, subscribes to
/// its downlink, reconnects with backoff and full jitter, and on SIGTERM/SIGINT
/// publishes `offline` and exits 0. It watches every write to its database
/// (`StorageHealth`) and says when the disk fails and recovers.
public final class Agent<C: Clock> {
  private enum Timer: Hashable {
    case reconnect
    case stopDeadline
    case budget
    case billing
    case balance
  }

  private enum Link {
    case idle, connecting, connected, disconnected
  }

  let config: Config
  let clock: C
  let store: AgentStore
  let client: Client
  let outbox: Outbox
  let sync: Sync
  let commands: CommandHandler
  /// Meter reading over the meter buses (the meters of `meter.file`, or else of HQ's
  /// archive); nil when neither `meter.file` nor a `bus.N` key is configured.
  let acquisition: Acquisition?
  /// Disconnection and reconnection over the meter buses; nil without them.
  let relay: RelayControl?
  /// Loss and return of supply, planned outages, daily reliability figures.
  let outages: Outages
  let capBytes: Int64
  let signals: TerminationSignals
  let epoch: Int64
  let host: String
  let port: Int32
  /// The longest the TCP handshake with the broker may take (`mqtt.connect_timeout`).
  let connectTimeout: Int64
  /// The non-blocking TCP connect made before the MQTT connect, and when it gives up:
  /// libmosquitto's connect blocks the loop until the kernel's SYN timeout (a minute
  /// or two) when the network drops packets silently; the probe finds that out
  /// without stopping the meters, the relays or the signals.
  private var probe: TCPGateway? = nil
  private var probeDeadline: Int64 = 0
  private var timers = TimerQueue<Timer>()
  private var backoff: Backoff
  /// The pause of sync after a database failure: up to 250 ms, doubling up to 10 s
  /// while the failures go on (full jitter).
  private var databasePause = Backoff(baseMilliseconds: 250, capMilliseconds: 10_000)
  private var link: Link = .idle
  private var stopReason: String? = nil
  private var offlineMessageID: Int32? = nil
  private var finished = false
  private var full = false
  private var pendingAcks: [[UInt8]] = []
  /// Readings were stored since the last billing pass.
  private var unbilled = true
  let offset: UTCOffset
  let thresholds: GradeThresholds
  /// The database disk's health, from every write's outcome (issue 8).
  let health = StorageHealth()
  /// `store.status_file`: where the storage state is written, off the database disk.
  let statusFile: String?
  /// The status file needs writing: for a new state at once, for a new failure
  /// count within a second; when it was last written (monotonic ms).
  private var statusFileDue = true
  private var statusFileCountDue = false
  private var statusFileWrittenAt: Int64 = 0
  private var statusFileWarned = false
  /// `store.recovered` events not stored yet (the disk failed again first).
  private var recoveries: [String] = []

  /// The broker as `host:port`, for logs and status.
  public var broker: String { host + ":" + String(port) }

  /// Opens the database, records this boot and prepares the MQTT client (with a will
  /// that says `offline` with this boot's epoch).
  /// - Throws: `AgentError` naming what could not be set up.
  public init(config: Config, clock: C) throws(AgentError) {
    self.config = config
    self.clock = clock
    self.statusFile = config.string("store.status_file")
    let deviceID = config.string("device.id") ?? ""
    let path = config.string("store.path") ?? ""
    do {
      self.store = try AgentStore(path: path, deviceID: deviceID, now: clock.wallMilliseconds)
    } catch {
      throw AgentError(error.description, exitCode: error.diskFailure ? ExitCode.failure : ExitCode.database)
    }
    do {
      self.epoch = try store.beginBoot(
        now: clock.wallMilliseconds, pid: Process.id, version: BuildInfo.version)
    } catch {
      throw AgentError.database(path, "recording this boot", error)
    }
    do {
      self.signals = try TerminationSignals()
    } catch {
      throw AgentError(error.description, exitCode: ExitCode.failure)
    }
    self.host = config.string("mqtt.host") ?? "127.0.0.1"
    self.port = Int32(config.integer("mqtt.port"))
    self.connectTimeout = config.integer("mqtt.connect_timeout")
    self.backoff = Backoff(
      baseMilliseconds: config.integer("mqtt.reconnect_min"),
      capMilliseconds: config.integer("mqtt.reconnect_max"))
    let will: [UInt8]
    do {
      will = try Self.stateMessage(
        .offline, epoch: epoch, store: store, config: config, reason: "lost", clock: clock)
    } catch {
      throw AgentError("forming the will: " + error.description, exitCode: ExitCode.failure)
    }
    var settings = Sync.Settings()
    settings.batchRecords = Int(config.integer("sync.batch_records"))
    settings.window = Int(config.integer("sync.window"))
    settings.ackWindow = Int(config.integer("sync.ack_window"))
    settings.ackTimeoutMilliseconds = config.integer("sync.ack_timeout")
    settings.backlogRate = config.integer("sync.backlog_rate")
    self.capBytes = config.integer("store.max_bytes")
    var options = ClientOptions(clientID: deviceID)
    options.maxInflightMessages = Int32(settings.window)
    options.protocolVersion = config.string("mqtt.protocol") == "v311" ? .v311 : .v5
    options.keepAliveSeconds = Int32(config.integer("mqtt.keepalive"))
    options.will = Will(topic: Topics.state(deviceID), payload: will, qos: 1, retain: true)
    options.username = config.string("mqtt.username")
    if let passwordFile = config.string("mqtt.password_file") {
      do {
        let text = try Files.readText(passwordFile)
        options.password = String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
      } catch {
        throw AgentError(
          config.error("mqtt.password_file", error.description).description, exitCode: ExitCode.config)
      }
    }
    if let ca = config.string("mqtt.tls.ca_file") {
      options.tls = TLSOptions(
        caFile: ca, certFile: config.string("mqtt.tls.cert_file"),
        keyFile: config.string("mqtt.tls.key_file"))
    }
    do {
      self.client = try Client(options)
    } catch {
      throw AgentError("MQTT client: " + error.description, exitCode: ExitCode.config)
    }
    do {
      self.outbox = try Outbox(store: store)
    } catch {
      throw AgentError.database(path, "preparing the outbox", error)
    }
    do {
      if let epoch = store.lostLogOfEpoch {
        let skipped = try outbox.skipAfterLostLog(epoch: epoch, now: clock.wallMilliseconds)
        Log.error(
          "store",
          "boot " + String(epoch) + " did not stop cleanly and its write-ahead log " + path
            + "-wal is missing: what it committed after its last checkpoint is lost; seqs "
            + String(skipped.lowerBound) + "..." + String(skipped.upperBound)
            + " and as many record ids are skipped so none is used twice (announced to HQ)")
      }
      if store.created {
        try Outbox.reportQuarantined(path: path, outbox: outbox, now: clock.wallMilliseconds)
      }
      let bootID = (try? Files.readText("/proc/sys/kernel/random/boot_id")) ?? ""
      if let skipped = try outbox.recoverSeqs(bootID: bootID, now: clock.wallMilliseconds) {
        Log.warn(
          "sync",
          "the board restarted since seqs were reserved: seqs " + String(skipped.lowerBound) + "..."
            + String(skipped.upperBound) + " are skipped (announced to HQ)")
      }
      self.sync = try Sync(outbox: outbox, client: client, settings: settings)
    } catch {
      throw AgentError.database(path, "recovering the sync state", error)
    }
    let trusted: TrustedKeys?
    do {
      trusted = try CommandHandler.trustedKeys(config)
    } catch {
      throw AgentError(error.description, exitCode: ExitCode.config)
    }
    let offset = UTCOffset(seconds: config.integer("device.utc_offset") * 60) ?? .china
    self.offset = offset
    let thresholds: GradeThresholds
    do {
      thresholds = try GradeThresholds(config: config)
    } catch {
      throw AgentError(error.description, exitCode: ExitCode.config)
    }
    self.thresholds = thresholds
    do {
      self.commands = try CommandHandler(
        store: store, outbox: outbox, trustedKeys: trusted,
        clockSkewSeconds: config.integer("commands.clock_skew"), offset: offset,
        maxSignatureFailures: config.integer("commands.max_signature_failures"),
        thresholds: thresholds)
    } catch {
      throw AgentError.database(path, "preparing command handling", error)
    }
    self.acquisition = try Acquisition.make(config: config, store: store, outbox: outbox)
    do {
      self.outages = try Outages(store: store, outbox: outbox, settings: Outages.Settings(config: config))
    } catch {
      throw AgentError("database " + path + ": " + error.description, exitCode: ExitCode.database)
    }
    acquisition?.outages = outages
    let relaySettings: RelaySettings
    do {
      relaySettings = try RelaySettings(config: config)
    } catch {
      throw AgentError(error.description, exitCode: ExitCode.config)
    }
    if let acquisition {
      let relay = RelayControl(
        store: store, outbox: outbox, thresholds: thresholds, settings: relaySettings,
        acquisition: acquisition)
      self.relay = relay
      commands.relay = relay
    } else {
      self.relay = nil
    }
    store.db.writeObserver = { [health, clock] error in health.observe(error, now: clock.wallMilliseconds) }
  }

  /// Runs until a stop signal, then says goodbye to the broker.
  /// - Returns: the process exit code (0 after a requested stop).
  public func run() -> Int32 {
    Log.info(
      "agent",
      "device " + store.deviceID + " store " + store.storeID + " epoch " + String(epoch)
        + ", database " + store.db.path + ", broker " + broker)
    setStatus(phase: "running", detail: "started")
    watchStorage()
    checkBudget()
    bill()
    summariseBalance()
    connect()
    while !finished {
      watchStorage()
      let now = clock.monotonicMilliseconds
      for timer in timers.takeDue(now: now) { fire(timer) }
      if finished { break }
      if let acquisition {
        health.during("storing readings") { acquisition.tick(monotonic: now, wall: clock.wallMilliseconds) }
        if acquisition.takeEnqueued() {
          sync.recordsEnqueued()
          unbilled = true
        }
      }
      tickRelay()
      tickOutages()
      if link == .connected && stopReason == nil { pump() }
      checkProbe(now)
      var requests = [PollRequest(fd: signals.fd)]
      let socket = client.socket
      if socket >= 0 { requests.append(PollRequest(fd: socket, read: true, write: client.wantsWrite)) }
      let probing = probe?.fd ?? -1
      if probing >= 0 { requests.append(PollRequest(fd: probing, read: false, write: true)) }
      let busStart = requests.count
      if let acquisition { requests += acquisition.pollRequests() }
      var limit: Int64 = 1000
      if let deadline = sync.nextDeadline(monotonic: now) { limit = max(0, min(limit, deadline - now)) }
      if let deadline = acquisition?.nextDeadline(monotonic: now, wall: clock.wallMilliseconds) {
        limit = max(0, min(limit, deadline - now))
      }
      if let deadline = relay?.nextDeadline(wall: clock.wallMilliseconds) {
        limit = max(0, min(limit, deadline - clock.wallMilliseconds))
      }
      limit = max(0, min(limit, outages.nextDeadline(monotonic: now) - now))
      if probing >= 0 { limit = max(0, min(limit, probeDeadline - now)) }
      let results: [PollResult]
      do {
        results = try Poller.wait(requests, timeoutMilliseconds: timers.timeout(now: now, limit: limit))
      } catch {
        Log.error("agent", error.description)
        return ExitCode.failure
      }
      if results[0].readable {
        for signal in signals.take() {
          guard signal == TerminationSignals.userRequest else {
            beginStop(TerminationSignals.name(signal))
            continue
          }
          // `gridedge archive search`.
          if let acquisition {
            acquisition.requestSearch()
          } else {
            Log.warn("agent", "SIGUSR1 asks for a bus search, but this agent reads no meter bus")
          }
        }
      }
      if socket >= 0 { service(results[1]) }
      if probing >= 0, results[busStart - 1].writable || results[busStart - 1].failed {
        finishProbe()
      }
      handleEvents()
      if let acquisition {
        health.during("storing readings") {
          acquisition.service(
            results[busStart...], monotonic: clock.monotonicMilliseconds, wall: clock.wallMilliseconds)
        }
        if acquisition.takeEnqueued() {
          sync.recordsEnqueued()
          unbilled = true
        }
      }
      tickRelay()
      tickOutages()
    }
    health.during("storing readings") {
      acquisition?.close(monotonic: clock.monotonicMilliseconds, wall: clock.wallMilliseconds)
    }
    do {
      try sync.releaseAcknowledged(wall: clock.wallMilliseconds)
    } catch {
      Log.warn("sync", error.description + " (they are sent again at the next start)")
    }
    let reason = stopReason ?? "stopped"
    recordEndOfBoot(reason)
    setStatus(phase: "stopped", linkState: "closed", detail: "stopped on " + reason)
    if let statusFile { try? Files.remove(statusFile) }
    Log.info("agent", "stopped on " + reason)
    return ExitCode.ok
  }

  /// Records how this boot ended; a disk error is tried again twice. If it still
  /// fails, the write-ahead log is kept at close: a next start that finds this boot
  /// unfinished and no log would take the log for lost and skip a million seqs.
  private func recordEndOfBoot(_ reason: String) {
    var failure = ""
    for _ in 0..<3 {
      do {
        try health.during("recording the end of this boot") { () throws(SQLiteError) in
          try store.endBoot(epoch, now: clock.wallMilliseconds, reason: reason)
        }
        return
      } catch {
        failure = error.description
      }
    }
    let kept = store.db.keepWriteAheadLogAtClose()
    Log.error(
      "agent",
      "could not record the end of boot " + String(epoch) + " in " + store.db.path + ": " + failure
        + (kept
          ? "; its write-ahead log is kept, so the next start sees an unclean stop, not a lost log" : ""))
  }

  // MARK: - MQTT link

  /// Starts a connection: first a non-blocking TCP connect to the broker (a numeric
  /// address; a host name goes to libmosquitto directly), then, once that handshake
  /// succeeded, the MQTT connect.
  private func connect() {
    link = .connecting
    setStatus(phase: "running", detail: "connecting")
    let attempt = TCPGateway(host: host, port: UInt16(truncatingIfNeeded: port))
    do {
      if try attempt.open() {
        attempt.close()
        connectMQTT()
      } else {
        probe = attempt
        probeDeadline = clock.monotonicMilliseconds + connectTimeout
      }
    } catch {
      if error.errno == EINVAL {
        connectMQTT()  // not a numeric address: libmosquitto resolves it (blocking)
      } else {
        linkLost("cannot connect: " + error.description)
      }
    }
  }

  /// The probe's socket is writable: the handshake is done, one way or the other.
  private func finishProbe() {
    guard let attempt = probe else { return }
    do {
      guard try attempt.finishOpening() else { return }
      probe = nil
      attempt.close()
      connectMQTT()
    } catch {
      probe = nil
      attempt.close()
      linkLost("cannot connect: " + error.description)
    }
  }

  /// Gives up a handshake that took longer than `connectTimeout`.
  private func checkProbe(_ now: Int64) {
    guard let attempt = probe, now >= probeDeadline else { return }
    probe = nil
    attempt.close()
    linkLost(
      "cannot connect: no TCP handshake with " + broker + " within " + String(connectTimeout)
        + " ms (mqtt.connect_timeout)")
  }

  private func connectMQTT() {
    do {
      try client.connect(host: host, port: port)
      Log.debug("mqtt", "TCP connected to " + broker + ", waiting for CONNACK")
    } catch {
      linkLost("cannot connect: " + error.description)
    }
  }

  private func service(_ result: PollResult) {
    do {
      try client.service(readable: result.readable || result.failed, writable: result.writable)
    } catch {
      if link != .disconnected { linkLost(error.description) }
    }
  }

  private func handleEvents() {
    defer { flushAcks() }
    for event in client.takeEvents() {
      switch event {
      case .connected(let reasonCode):
        if reasonCode == 0 {
          linkUp()
        } else {
          Log.error("mqtt", "broker " + broker + " refused the connection, reason code " + String(reasonCode))
          linkLost("refused, reason code " + String(reasonCode))
        }
      case .disconnected(let reasonCode):
        if stopReason != nil {
          finished = true
        } else if link != .disconnected {
          linkLost("disconnected, reason code " + String(reasonCode))
        }
      case .published(let mid, let reasonCode):
        if let event = sync.published(
          mid: mid, reasonCode: reasonCode, monotonic: clock.monotonicMilliseconds)
        {
          enqueueEvent(event)
        } else if reasonCode >= 0x80 {
          Log.warn("mqtt", "broker refused message " + String(mid) + ", reason code " + String(reasonCode))
        }
        if mid == offlineMessageID {
          Log.debug("mqtt", "offline state acknowledged; disconnecting")
          do {
            try client.disconnect()
          } catch {
            finished = true
          }
        }
      case .message(let message):
        downlink(message)
      case .subscribed:
        break
      }
    }
  }

  private func linkUp() {
    link = .connected
    backoff.reset()
    timers.cancel(.reconnect)
    guard let birth = birthMessage() else { return }
    do {
      try health.during("syncing with HQ") { () throws(SQLiteError) in
        try sync.linkUp(monotonic: clock.monotonicMilliseconds)
      }
    } catch {
      Log.error("sync", "reading unacknowledged batches: " + error.description)
    }
    do {
      try client.subscribe(Topics.downAll(store.deviceID), qos: 1)
      try client.publish(topic: Topics.state(store.deviceID), payload: birth, qos: 1, retain: true)
      Log.info("mqtt", "connected to " + broker + "; birth published (epoch " + String(epoch) + ")")
      setStatus(phase: "running", detail: "online, birth published")
    } catch {
      linkLost("after connect: " + error.description)
    }
  }

  private func linkLost(_ why: String) {
    link = .disconnected
    sync.linkDown()
    if stopReason != nil {
      finished = true
      return
    }
    let delay = backoff.nextDelay()
    timers.schedule(.reconnect, at: clock.monotonicMilliseconds + delay)
    Log.warn("mqtt", "link to " + broker + " down (" + why + "); retry in " + String(delay) + " ms")
    setStatus(phase: "running", detail: why)
  }

  private func fire(_ timer: Timer) {
    switch timer {
    case .reconnect:
      if stopReason == nil { connect() }
    case .stopDeadline:
      Log.warn("agent", "broker did not confirm the offline state in time; closing")
      finished = true
    case .budget:
      checkBudget()
    case .billing:
      bill()
    case .balance:
      summariseBalance()
      assessCredit()
    }
  }

  private func beginStop(_ reason: String) {
    guard stopReason == nil else { return }
    stopReason = reason
    Log.info("agent", "stopping on " + reason)
    setStatus(phase: "stopping", detail: "stopping on " + reason)
    guard link == .connected else {
      finished = true
      return
    }
    let goodbye: [UInt8]
    do {
      goodbye = try Self.stateMessage(
        .offline, epoch: epoch, store: store, config: config, reason: "shutdown", clock: clock)
    } catch {
      Log.error("agent", "forming the offline state: " + error.description)
      finished = true
      return
    }
    do {
      offlineMessageID = try client.publish(
        topic: Topics.state(store.deviceID), payload: goodbye, qos: 1, retain: true)
      timers.schedule(.stopDeadline, at: clock.monotonicMilliseconds + 3000)
    } catch {
      Log.warn("agent", "could not publish the offline state: " + error.description)
      finished = true
    }
  }

  // MARK: - Sync

  private func pump() {
    let outer = health.enter("syncing with HQ")
    defer { health.leave(outer) }
    do {
      try sync.pump(monotonic: clock.monotonicMilliseconds, wall: clock.wallMilliseconds)
    } catch {
      if error.database {
        // The link is fine: keep it, and try the database again after a pause
        // (doubling while it keeps failing), so the loop does not spin on it.
        let pause = databasePause.nextDelay()
        sync.pause(monotonic: clock.monotonicMilliseconds, milliseconds: pause)
        Log.error(
          "sync",
          "database " + store.db.path + " failed: " + error.description + "; nothing is released or sent"
            + " that is not stored; trying again in " + String(pause) + " ms")
        return
      }
      Log.error("sync", error.description)
      if link == .connected {
        // A client failure means the link is gone.
        try? client.disconnect()
        linkLost(error.description)
      }
    }
    if !sync.isPaused(monotonic: clock.monotonicMilliseconds) { databasePause.reset() }
  }

  private func downlink(_ message: Message) {
    let ackTopic = Topics.downAck(store.deviceID)
    if message.topic == ackTopic {
      pendingAcks.append(message.payload)
      return
    }
    if message.topic == Topics.downCommand(store.deviceID) {
      handleCommand(message.payload)
      return
    }
    Log.warn("mqtt", "ignored downlink on unexpected topic " + message.topic)
  }

  /// Hands this turn's acks to sync (released at the next pump, in one transaction).
  private func flushAcks() {
    guard !pendingAcks.isEmpty else { return }
    let payloads = pendingAcks
    pendingAcks.removeAll()
    sync.acknowledged(payloads, monotonic: clock.monotonicMilliseconds, wall: clock.wallMilliseconds)
  }

  private func handleCommand(_ payload: [UInt8]) {
    let outer = health.enter("storing a command")
    defer { health.leave(outer) }
    do {
      try commands.handle(payload, wall: clock.wallMilliseconds, monotonic: clock.monotonicMilliseconds)
      sync.recordsEnqueued()
      // An applied archive command changes the meters read (when they come from it).
      acquisition?.followArchive()
      outages.reloadArchive(wall: clock.wallMilliseconds)
      // A top-up may permit a reconnection, a command may have queued an operation:
      // decide now, so the close goes out in this loop turn.
      if let relay {
        relay.reload()
        relay.evaluate(wall: clock.wallMilliseconds)
        tickRelay()
      }
    } catch {
      // Nothing was committed: the broker redelivers nothing (QoS 1 was acked), so HQ
      // sees no result and sends the command again. What the command changed in
      // memory (a queued relay operation) goes back to what the database holds.
      Log.error(
        "command",
        "could not store a command's outcome, so it was not applied and HQ gets no result (HQ sends it"
          + " again): " + error.description)
      relay?.reload()
    }
  }

  /// Enqueues an event record (`body` is a JSON object without `id`/`ts`).
  /// - Returns: whether it was stored (a failure is logged).
  @discardableResult
  private func enqueueEvent(_ body: String) -> Bool {
    let now = clock.wallMilliseconds
    let outer = health.enter("storing an event")
    defer { health.leave(outer) }
    do {
      try store.db.transaction { () throws(SQLiteError) in
        let id = try outbox.newRecordID("event")
        let inner = body.utf8.count > 2 ? "," + String(body.dropFirst().dropLast()) : ""
        try outbox.enqueue(
          .events, record: "{\"id\":\"" + id + "\",\"ts\":" + String(now) + inner + "}",
          retention: .billing, now: now)
      }
      sync.recordsEnqueued()
      return true
    } catch {
      Log.error("agent", "could not enqueue event " + body + ": " + error.description)
      return false
    }
  }

  /// Outages: the power-fail signal, the daily figures, and the events acquisition's
  /// observations raised.
  private func tickOutages() {
    let outer = health.enter("recording outages")
    defer { health.leave(outer) }
    outages.tick(monotonic: clock.monotonicMilliseconds, wall: clock.wallMilliseconds)
    if outages.takeEnqueued() { sync.recordsEnqueued() }
  }

  /// Relay operations: completions in, due tries out.
  private func tickRelay() {
    guard let relay else { return }
    let outer = health.enter("controlling relays")
    defer { health.leave(outer) }
    relay.tick(wall: clock.wallMilliseconds)
    if relay.takeEnqueued() { sync.recordsEnqueued() }
  }

  /// Charges the readings stored since the last pass (every 10 s when there are any),
  /// then takes the disconnect / reconnect decisions.
  private func bill() {
    timers.schedule(.billing, at: clock.monotonicMilliseconds + 10_000)
    let outer = health.enter("billing")
    defer { health.leave(outer) }
    defer {
      relay?.evaluate(wall: clock.wallMilliseconds)
      tickRelay()
    }
    guard unbilled else { return }
    unbilled = false
    // The pass is one transaction: what it notes is logged only if it commits.
    let pass: Billing.Pass
    do {
      pass = try Billing.run(
        store: store, outbox: outbox, offset: offset, now: clock.wallMilliseconds, thresholds: thresholds)
    } catch {
      store.publishNotices(committed: false)
      Log.error("billing", error.description + " (nothing was charged; the next pass tries again)")
      unbilled = true
      return
    }
    store.publishNotices(committed: true)
    if pass.charged > 0 {
      sync.recordsEnqueued()
      Log.info(
        "billing",
        "charged " + String(pass.charged) + " reading interval(s), " + pass.money.yuanText + " in all"
          + (pass.unpriced > 0 ? "; " + String(pass.unpriced) + " without a tariff yet" : ""))
    }
  }

  /// Sends yesterday's energy balance of every area to HQ once it is complete or its
  /// deadline has passed (`DailyBalance`); checked every minute.
  private func summariseBalance() {
    timers.schedule(.balance, at: clock.monotonicMilliseconds + 60_000)
    let outer = health.enter("summarising the daily balance")
    defer { health.leave(outer) }
    do {
      let done = try DailyBalance.run(
        store: store, outbox: outbox, offset: offset, now: clock.wallMilliseconds,
        settings: DailyBalance.Settings(config: config))
      guard !done.days.isEmpty else { return }
      sync.recordsEnqueued()
      var days = ""
      for day in done.days { days += (days.isEmpty ? "" : ", ") + day.isoText }
      Log.info(
        "balance",
        "daily balance of " + days + ": " + String(done.summaries) + " area summary(ies) and "
          + String(done.workOrders) + " proposed work order(s) enqueued for HQ")
    } catch {
      Log.error("balance", "daily summary: " + error.description)
    }
  }

  /// Grades every customer with HQ's credit model once a day at `credit.assess_at`
  /// (`Credit`); checked every minute with the daily balance.
  private func assessCredit() {
    // Checked at load (Config.load), so the fallback (02:30) is never used.
    let assessAt = (try? Credit.assessAt(config)) ?? 9000
    let outer = health.enter("grading credit")
    defer { health.leave(outer) }
    do {
      guard
        let changed = try Credit.assessIfDue(
          store: store, outbox: outbox, offset: offset, now: clock.wallMilliseconds, assessAt: assessAt)
      else { return }
      if changed > 0 { sync.recordsEnqueued() }
      Log.info("credit", "daily credit grading: " + String(changed) + " grade(s) changed")
    } catch {
      Log.error("credit", "daily credit grading: " + error.description)
    }
  }

  /// Keeps the database within `store.max_bytes`, reports evictions upstream, and says
  /// clearly when only billing data is left. Runs every 5 s.
  private func checkBudget() {
    timers.schedule(.budget, at: clock.monotonicMilliseconds + 5000)
    let outer = health.enter("checking the disk budget")
    defer { health.leave(outer) }
    let state: Outbox.BudgetState
    do {
      state = try outbox.enforceBudget(capBytes: capBytes, now: clock.wallMilliseconds)
      for (name, new, total) in try outbox.unreportedEvictions() {
        enqueueEvent(
          "{\"type\":\"outbox.evicted\",\"class\":\"" + name + "\",\"evicted\":" + String(new)
            + ",\"total\":" + String(total) + "}")
        try outbox.markEvictionsReported(name, total: total)
      }
    } catch {
      Log.error("store", "disk budget check: " + error.description)
      return
    }
    if state.evicted > 0 {
      Log.warn(
        "store",
        "database at its cap of " + String(capBytes) + " bytes (store.max_bytes): evicted "
          + String(state.evicted) + " unsent telemetry record(s), oldest first")
    }
    if state.full != full {
      full = state.full
      if full {
        Log.error(
          "store",
          "database FULL: " + String(state.usedBytes) + " bytes in use, cap " + String(capBytes)
            + " (store.max_bytes); only billing data is left, nothing more can be evicted")
        enqueueEvent(
          "{\"type\":\"store.full\",\"used_bytes\":" + String(state.usedBytes) + ",\"cap_bytes\":"
            + String(capBytes) + "}")
        setStatus(phase: "running", detail: "database full (store.max_bytes)")
      } else {
        Log.info("store", "database below its cap again")
      }
    }
  }

  // MARK: - Helpers

  private static func stateMessage(
    _ state: StateMessage.State, epoch: Int64, store: AgentStore, config: Config, reason: String?,
    clock: C, storage: StorageHealth.Failing? = nil
  ) throws(SQLiteError) -> [UInt8] {
    try StateMessage(
      state: state, epoch: epoch, device: store.deviceID, store: store.storeID,
      time: clock.wallMilliseconds, version: BuildInfo.version,
      profile: config.string("device.profile"), reason: reason,
      storage: storage.map { StateMessage.StorageFailure(since: $0.since, error: $0.error, step: $0.step) }
    ).encode(store.db)
  }

  /// The retained birth, with the storage state when the disk fails; nil (logged)
  /// when it cannot be formed.
  private func birthMessage() -> [UInt8]? {
    do {
      return try Self.stateMessage(
        .online, epoch: epoch, store: store, config: config, reason: nil, clock: clock,
        storage: health.failing)
    } catch {
      Log.error("agent", "forming the birth message: " + error.description)
      return nil
    }
  }

  // MARK: - Storage health

  /// Says what changed in the database disk's health (issue 8): logs a spell of
  /// failing writes when it starts and ends, publishes the retained state again,
  /// keeps the status file (`store.status_file`) current, and stores a
  /// `store.recovered` event once the database takes writes again. Every loop turn.
  private func watchStorage() {
    let (changes, counted) = health.takeChanges()
    for change in changes {
      switch change {
      case .failing(let spell):
        Log.error(
          "store",
          "storage FAILING: " + spell.error + " while " + spell.step + " (database " + store.db.path
            + "); the agent keeps running and tries again, but stores nothing until the disk takes writes;"
            + " gridedge status shows it" + (statusFile == nil ? " only with store.status_file set" : ""))
      case .recovered(let spell, let at):
        Log.info(
          "store",
          "storage recovered after " + String((at - spell.since) / 1000) + " s: the database " + store.db.path
            + " takes writes again (" + String(spell.failures) + " failed write(s) since "
            + formatUTC(milliseconds: spell.since) + ", the last: " + spell.error + " while " + spell.step
            + ")")
        recoveries.append(StorageHealth.recoveredEvent(spell, at: at))
      }
    }
    if !changes.isEmpty {
      statusFileDue = true
      publishBirthAgain()
    }
    // A new failure count alone is written at most once a second.
    if counted { statusFileCountDue = true }
    let now = clock.monotonicMilliseconds
    if statusFileDue || (statusFileCountDue && now - statusFileWrittenAt >= 1000) { writeStatusFile(now) }
    while health.failing == nil, let event = recoveries.first, enqueueEvent(event) {
      recoveries.removeFirst()
    }
  }

  /// Publishes the retained birth again, so HQ sees the storage state change.
  private func publishBirthAgain() {
    guard link == .connected, stopReason == nil, let birth = birthMessage() else { return }
    do {
      try client.publish(topic: Topics.state(store.deviceID), payload: birth, qos: 1, retain: true)
    } catch {
      Log.warn("mqtt", "could not publish the state again: " + error.description)
    }
  }

  /// Rewrites the status file (a temporary file renamed over it); a failure is
  /// logged once until it works again.
  private func writeStatusFile(_ now: Int64) {
    statusFileDue = false
    statusFileCountDue = false
    statusFileWrittenAt = now
    guard let statusFile else { return }
    let text = health.statusFileText(
      device: store.deviceID, store: store.storeID, epoch: epoch, pid: Process.id, now: clock.wallMilliseconds
    )
    do {
      try Files.writeAtomically(statusFile, Array(text.utf8))
      statusFileWarned = false
    } catch {
      if !statusFileWarned {
        Log.warn(
          "store",
          "cannot write store.status_file " + statusFile + ": " + error.description
            + " (gridedge status cannot show a failing database disk)")
      }
      statusFileWarned = true
    }
  }

  private func setStatus(phase: String, linkState: String? = nil, detail: String) {
    let status = AgentStatus(
      epoch: epoch, pid: Process.id, phase: phase, link: linkState ?? linkName, broker: broker,
      detail: detail, updatedAt: clock.wallMilliseconds)
    do {
      try health.during("storing the status") { () throws(SQLiteError) in try store.setStatus(status) }
    } catch {
      Log.warn("agent", "could not store the status: " + error.description)
    }
  }

  private var linkName: String {
    switch link {
    case .idle: return "idle"
    case .connecting: return "connecting"
    case .connected: return "connected"
    case .disconnected: return "disconnected"
    }
  }
}

/// The agent could not start: what went wrong, and the exit code to end with.
public struct AgentError: Error, CustomStringConvertible {
  public let description: String
  public let exitCode: Int32

  public init(_ description: String, exitCode: Int32) {
    self.description = description
    self.exitCode = exitCode
  }
}

extension AgentError {
  /// A database failure while starting: a failing disk (I/O error, full) is a runtime
  /// failure (exit 1: the service manager starts the agent again), anything else
  /// refuses the database (exit 3).
  /// - Parameters:
  ///   - path: the database file; `step`: what the agent was doing.
  static func database(_ path: String, _ step: String, _ error: SQLiteError) -> AgentError {
    if AgentStore.isDiskFailure(error) {
      return AgentError(
        "database " + path + ": the disk failed while " + step + ": " + error.description
          + " (nothing was changed; exiting so the agent is started again)", exitCode: ExitCode.failure)
    }
    return AgentError(
      "database " + path + " (" + step + "): " + error.description, exitCode: ExitCode.database)
  }
}

/// The exit codes of `gridedge` (documented in the README).
public enum ExitCode {
  public static let ok: Int32 = 0
  /// A runtime failure.
  public static let failure: Int32 = 1
  /// A bad command line or configuration file.
  public static let config: Int32 = 2
  /// The database was refused (corrupt: quarantined; or another device's).
  public static let database: Int32 = 3
}

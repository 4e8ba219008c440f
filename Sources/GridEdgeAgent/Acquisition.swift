import DLT645
import GridEdgeContract
import GridEdgeCore
import Runtime
import SQLiteStore

/// Reads the meters on schedule over the meter buses and stores what they say in the
/// reading cache, each reading with its outbox record (DESIGN.md §1, §7).
///
/// A **cycle** starts at every multiple of `acquisition.interval` minutes after local
/// midnight (and once at start-up, for the current slot). In a cycle each meter gets a
/// small job, its requests sent one after the other on its bus:
///
/// 1. real-time energy: the forward active block 00 01 FF 00 (total and tariffs in one
///    read; 00 01 00 00, the total alone, when the meter refuses the block), stored
///    with the slot's start as its timestamp — unless already stored for that slot;
/// 2. a clock check when due (every `acquisition.clock_check` minutes): date
///    04 00 01 01 and time 04 00 01 02 against this device's clock. Beyond
///    `acquisition.clock_threshold` the meter's readings are `clock-suspect` until a
///    check finds it right again, and a broadcast time (0x08) goes out on its bus —
///    at most once per meter per local day, never within 5 minutes of midnight (the
///    freeze), and checked again in the next cycle;
/// 3. the daily freeze, in the first cycle at least `acquisition.freeze_delay` minutes
///    after local midnight: freeze time 05 06 00 nn then freeze energy 05 06 01 nn,
///    n = 1 for the last freeze and further back (n ≤ 62) for days missing in the
///    cache within `acquisition.backfill_days` (stored `backfilled`). Freezes are
///    stored under 05 06 01 01 with the meter's freeze time as timestamp, so a day
///    has one key whichever n it was read through.
///
/// A meter that does not answer its first request is skipped for the rest of the
/// cycle (its bus marks it silent). Corrupt frames, replies from the wrong address,
/// error replies and undecodable values are counted per meter and reported as one
/// `meter.comm_errors` event per meter and cycle; nothing malformed is stored. A cycle
/// still running when the next slot starts is ended: its unfinished meters count as
/// missing. Each cycle leaves a row in `acquisition_cycles` (`gridedge status`) and an
/// `acquisition.cycle` event.
///
/// A component of the agent's poll loop, like `MeterBus`: `pollRequests()`,
/// `service(_:monotonic:wall:)`, `tick(monotonic:wall:)`, `nextDeadline(...)`. One thread.
public final class Acquisition {
  /// Schedule settings (`acquisition.*` keys) and the local time offset.
  public struct Settings: Sendable {
    public var intervalMinutes: Int64 = 15
    public var freezeDelayMinutes: Int64 = 5
    public var backfillDays: Int64 = 7
    /// 0: clocks are never checked.
    public var clockCheckMinutes: Int64 = 1440
    public var clockThresholdSeconds: Int64 = 60
    public var timeSet = true
    public var keepDays: Int64 = 93
    /// Cycles in a row without any answer before a meter is reported silent.
    public var silentCycles: Int64 = 3
    /// Hours between searches of each bus for meters (0: never).
    public var searchHours: Int64 = 24
    public var utcOffset: UTCOffset = .china

    public init() {}

    /// The settings of `config`.
    public init(config: Config) {
      intervalMinutes = config.integer("acquisition.interval")
      freezeDelayMinutes = config.integer("acquisition.freeze_delay")
      backfillDays = config.integer("acquisition.backfill_days")
      clockCheckMinutes = config.integer("acquisition.clock_check")
      clockThresholdSeconds = config.integer("acquisition.clock_threshold")
      timeSet = config.string("acquisition.time_set") != "off"
      keepDays = config.integer("acquisition.keep_days")
      silentCycles = config.integer("acquisition.silent_cycles")
      searchHours = config.integer("acquisition.search_hours")
      utcOffset = UTCOffset(seconds: config.integer("device.utc_offset") * 60) ?? .china
    }
  }

  /// What one cycle did, as stored in `acquisition_cycles`.
  public struct CycleSummary: Hashable, Sendable {
    /// The slot's start, unix ms.
    public var slot: Int64
    public var startedAt: Int64
    public var finishedAt: Int64
    /// Meters in the list.
    public var meters: Int
    /// Meters that answered at least one request.
    public var answered: Int
    /// Meters without a real-time reading for the slot at the end of the cycle.
    public var missing: Int
    /// Corrupt frames, wrong addresses, error replies and bad values in the cycle.
    public var errors: Int
    /// Readings stored in the cycle (new ones).
    public var stored: Int
  }

  /// Per-meter counts of trouble in one cycle.
  struct Trouble: Hashable {
    var corruptFrames = 0
    var wrongAddress = 0
    var errorReplies = 0
    var badValues = 0
    var noAnswer = 0
    var total: Int { corruptFrames + wrongAddress + errorReplies + badValues }
  }

  private enum Task: Equatable {
    case voltage
    case realtime
    case clock
    case freeze
  }

  private enum Step {
    case voltageBlock
    case realtimeBlock
    case realtimeTotal
    case clockDate
    case clockTime(MeterDate)
    case freezeTime(Int)
    case freezeEnergy(Int, ts: Int64, day: Int64)
  }

  private struct Job {
    var tasks: [Task]
    var step: Step
    /// Freeze days (local day numbers) wanted and not yet found.
    var wantedDays: Set<Int64> = []
    var freezeWindowStart: Int64 = 0
  }

  private struct MeterState {
    let entry: MeterEntry
    let bus: Int
    var freezeScannedDay: Int64?
    var clockCheckedAt: Int64?
    var clockDrift: Int64?
    var timeSetDay: Int64?
    var clockRecheck = false
    var driftReportedDay: Int64?
    var job: Job?
    var trouble = Trouble()
    var answered = false
    var hasRealtime = false
    var silentSince: Int64?
    var lastAnswerAt: Int64?
    /// Cycles in a row in which the meter was asked and answered nothing.
    var silentCycles: Int64 = 0
    /// This silence was reported (`archive.silent`).
    var silenceReported = false
  }

  public let settings: Settings
  public let buses: [MeterBus]
  /// The meters read: the list of `meter.file`, or HQ's archive (`followsArchive`).
  public private(set) var archive: MeterArchive
  /// True when the meters read are the archive's (no `meter.file`): the agent calls
  /// `followArchive()` after an archive command is applied.
  public private(set) var followsArchive = false
  /// The archive version the meter list was last taken from (`followsArchive`).
  public private(set) var archiveVersion: Int64 = 0
  /// A new meter list, applied as soon as no cycle is running.
  private var pendingArchive: MeterArchive? = nil
  let readings: Readings
  let store: AgentStore
  let outbox: Outbox
  /// Loss of supply: told the area meters' voltages and who answered in each cycle,
  /// asked whether a silent meter is in an outage (no missing-read alarm then).
  public var outages: Outages? = nil
  private var meters: [MeterState] = []
  private var meterIndex: [Address: Int] = [:]
  /// Requests in flight: (bus, ticket) -> meter. Each bus numbers its tickets from 1,
  /// so the bus is part of the key.
  private var inFlight: [FlightKey: Int] = [:]

  private struct FlightKey: Hashable {
    let bus: Int
    let ticket: Int64
  }
  /// Relay control exchanges in flight (`submitControl`): (bus, ticket) -> meter.
  private var controlFlights: [FlightKey: Address] = [:]
  private var controlCompletions: [MeterBus.Completion] = []
  /// The newest real-time total read from each meter in this run: Wh and when read (wall ms).
  private var latestEnergy: [Address: (wattHours: Int64, readAt: Int64)] = [:]
  private var cycleID: Int64 = 0
  private var cycleSlot: Int64? = nil
  private var cycleStartedAt: Int64 = 0
  private var cycleStored = 0
  private var nextSlot: Int64? = nil
  private var pendingReadings: [Reading] = []
  private var pendingEvents: [String] = []
  private var pendingSince: Int64? = nil
  private var enqueued = false
  private var polled: [Int] = []
  private var busDown: [Bool]
  private var prunedDay: Int64? = nil
  private var lastSlotStart: Int64 = 0
  private var clockWarned = false
  /// `wall - monotonic` at the last turn: a change beyond the clock threshold is a jump
  /// of this device's wall clock (set by hand, by NTP, or an RTC gone wrong).
  private var wallOffset: Int64? = nil
  /// True from a jump of this device's clock (or a clock behind the last cycle at
  /// start-up) until a meter's clock check agrees with it: readings taken meanwhile
  /// are `clock-suspect`, and no meter's clock is set from it.
  public private(set) var deviceClockSuspect = false
  public private(set) var lastCycle: CycleSummary? = nil
  /// Per bus: the search running, its probe in flight, when the last one finished.
  private var searches: [BusSearch?]
  private var searchTickets: [Int64?]
  private var lastSearchAt: [Int64?]
  /// Per bus: a search asked for by hand (`requestSearch`), due whatever `searchHours`.
  private var searchRequested: [Bool]

  /// The realtime block and total identifiers, the freeze key.
  static let freezeKey = DataIdentifier.lastDailyFreezeForwardActive

  /// An acquisition over `buses` for the meters of `archive`.
  /// - Throws: `MeterArchiveError` when a meter names a bus that is not in `buses`.
  public init(
    buses: [MeterBus], archive: MeterArchive, store: AgentStore, outbox: Outbox, readings: Readings,
    settings: Settings
  ) throws(MeterArchiveError) {
    self.buses = buses
    self.archive = archive
    self.store = store
    self.outbox = outbox
    self.readings = readings
    self.settings = settings
    self.busDown = Array(repeating: false, count: buses.count)
    self.searches = Array(repeating: nil, count: buses.count)
    self.searchTickets = Array(repeating: nil, count: buses.count)
    self.lastSearchAt = Array(repeating: nil, count: buses.count)
    self.searchRequested = Array(repeating: false, count: buses.count)
    var index: [String: Int] = [:]
    for (i, bus) in buses.enumerated() { index[bus.name] = i }
    for entry in archive.meters {
      guard let bus = index[entry.bus] else {
        throw MeterArchiveError(
          file: archive.source, line: entry.line, .unknownBus(entry.bus, known: buses.map { $0.name }))
      }
      meterIndex[entry.address] = meters.count
      meters.append(MeterState(entry: entry, bus: bus))
    }
  }

  /// The acquisition `config` describes, or nil when `meter.file` is not set.
  /// - Throws: `AgentError` (exit code 2) naming the file, line and key at fault, or
  ///   (exit code 3) the database.
  public static func make(config: Config, store: AgentStore, outbox: Outbox) throws(AgentError)
    -> Acquisition?
  {
    guard let (buses, file) = try parts(config) else { return nil }
    var archive = file ?? MeterArchive(source: "archive", meters: [])
    var version: Int64 = 0
    var unpolled: [ArchiveMeters.Unpolled] = []
    if file == nil {
      do {
        version = try Archive.version(store.db)
        (archive, unpolled) = try ArchiveMeters.polled(store.db, buses: buses.map { $0.name })
      } catch {
        throw AgentError.database(store.db.path, "reading the archive", error)
      }
    }
    let readings: Readings
    do {
      readings = try Readings(store: store, outbox: outbox)
    } catch {
      throw AgentError.database(store.db.path, "preparing the readings", error)
    }
    let acquisition: Acquisition
    do {
      acquisition = try Acquisition(
        buses: buses, archive: archive, store: store, outbox: outbox, readings: readings,
        settings: Settings(config: config))
    } catch {
      throw AgentError(
        config.error("meter.file", error.description).description, exitCode: ExitCode.config)
    }
    do {
      try acquisition.loadState()
    } catch {
      throw AgentError.database(store.db.path, "loading the meter state", error)
    }
    if file == nil {
      acquisition.followsArchive = true
      acquisition.archiveVersion = version
      acquisition.report(unpolled)
      Log.info(
        "acquisition",
        "no meter.file: reading the " + String(archive.meters.count) + " meter(s) of HQ's archive version "
          + String(version))
    }
    return acquisition
  }

  /// Takes the meter list from HQ's archive again when its version changed (after an
  /// archive command was applied): applied at once when no cycle is running (and a
  /// cycle for the current slot reads the new meters), otherwise when the running
  /// cycle ends. Does nothing when the meters come from `meter.file`.
  public func followArchive() {
    guard followsArchive else { return }
    do {
      let version = try Archive.version(store.db)
      guard version != archiveVersion else { return }
      let (list, unpolled) = try ArchiveMeters.polled(store.db, buses: buses.map { $0.name })
      archiveVersion = version
      pendingArchive = list
      report(unpolled)
      Log.info(
        "acquisition",
        "archive version " + String(version) + ": " + String(list.meters.count) + " meter(s) to read")
    } catch {
      Log.error("acquisition", "reading the archive: " + error.description)
    }
  }

  /// Reports a listed meter that answered nothing in `settings.silentCycles` cycles
  /// (event `archive.silent`), so HQ can correct the archive.
  private func reportSilent(_ m: MeterState) {
    let address = m.entry.address.description
    Log.warn(
      "acquisition",
      "meter " + address + " on bus " + buses[m.bus].name + " answered nothing in " + String(m.silentCycles)
        + " cycle(s) in a row" + (m.lastAnswerAt == nil ? " (never answered)" : "") + ": reported to HQ")
    pendingEvents.append(
      "\"type\":\"archive.silent\",\"meter\":\"" + address + "\",\"bus\":\"" + buses[m.bus].name
        + "\",\"customer\":" + (m.entry.customer.map { "\"" + jsonEscaped($0) + "\"" } ?? "null")
        + ",\"area\":" + (m.entry.area.map { "\"" + jsonEscaped($0) + "\"" } ?? "null") + ",\"cycles\":"
        + String(m.silentCycles) + ",\"since\":" + (m.silentSince.map { String($0) } ?? "null")
        + ",\"last_answer_at\":" + (m.lastAnswerAt.map { String($0) } ?? "null")
        + ",\"found\":\"no-answer\",\"source\":\"" + (followsArchive ? "archive" : "meter.file") + "\"")
  }

  /// Reports archive meters on a bus that is not configured (event `archive.unpolled`).
  private func report(_ unpolled: [ArchiveMeters.Unpolled]) {
    for meter in unpolled {
      Log.warn(
        "acquisition",
        "archive meter " + meter.address + " is on bus '" + meter.bus
          + "', which is not configured (bus.1..bus.4): not read")
      pendingEvents.append(
        "\"type\":\"archive.unpolled\",\"meter\":\"" + meter.address + "\",\"bus\":\""
          + jsonEscaped(meter.bus) + "\",\"version\":" + String(archiveVersion)
          + ",\"reason\":\"bus-not-configured\"")
    }
  }

  /// Replaces the meter list (no cycle is running): a meter kept keeps its state, a new
  /// one takes what `meter_state` holds for it.
  private func install(_ list: MeterArchive) {
    var old: [Address: MeterState] = [:]
    for m in meters { old[m.entry.address] = m }
    var index: [String: Int] = [:]
    for (i, bus) in buses.enumerated() { index[bus.name] = i }
    archive = list
    meters = []
    meterIndex = [:]
    for entry in list.meters {
      guard let bus = index[entry.bus] else { continue }
      var state = old[entry.address] ?? MeterState(entry: entry, bus: bus)
      state = MeterState(
        entry: entry, bus: bus, freezeScannedDay: state.freezeScannedDay,
        clockCheckedAt: state.clockCheckedAt,
        clockDrift: state.clockDrift, timeSetDay: state.timeSetDay, clockRecheck: state.clockRecheck,
        driftReportedDay: state.driftReportedDay, silentSince: state.silentSince,
        lastAnswerAt: state.lastAnswerAt, silentCycles: state.silentCycles,
        silenceReported: state.silenceReported)
      meterIndex[entry.address] = meters.count
      meters.append(state)
    }
    do {
      try loadState(only: Set(list.meters.map { $0.address }).subtracting(old.keys))
    } catch {
      Log.error("acquisition", "reading the state of new meters: " + error.description)
    }
  }

  /// Checks the `bus.N` keys and the meter list of `config` without opening anything
  /// (`gridedge check-config`).
  /// - Throws: `AgentError` (exit code 2) naming the file, line and key at fault.
  public static func validate(config: Config) throws(AgentError) {
    guard let (buses, file) = try parts(config), let archive = file else { return }
    let names = Set(buses.map { $0.name })
    for entry in archive.meters where !names.contains(entry.bus) {
      throw AgentError(
        config.error(
          "meter.file",
          MeterArchiveError(
            file: archive.source, line: entry.line, .unknownBus(entry.bus, known: buses.map { $0.name })
          ).description
        ).description, exitCode: ExitCode.config)
    }
  }

  /// The buses (not opened) and the meter list of `config`; nil without `meter.file`
  /// and without any `bus.N` key; the list is nil without `meter.file` (the archive's
  /// meters are read).
  private static func parts(_ config: Config) throws(AgentError) -> ([MeterBus], MeterArchive?)? {
    let file = config.string("meter.file")
    var busSettings = MeterBus.Settings()
    busSettings.replyTimeoutMilliseconds = config.integer("bus.timeout")
    busSettings.retries = Int(config.integer("bus.retries"))
    busSettings.gapMilliseconds = config.integer("bus.gap")
    busSettings.wakeUpBytes = Int(config.integer("bus.wakeup"))
    busSettings.reconnectMinMilliseconds = config.integer("bus.reconnect_min")
    busSettings.reconnectMaxMilliseconds = config.integer("bus.reconnect_max")
    if busSettings.reconnectMaxMilliseconds < busSettings.reconnectMinMilliseconds {
      throw AgentError(
        config.error("bus.reconnect_max", "must not be less than bus.reconnect_min").description,
        exitCode: ExitCode.config)
    }
    var buses: [MeterBus] = []
    for n in 1...4 {
      let key = "bus." + String(n)
      guard let text = config.string(key) else { continue }
      let spec: BusSpec
      do {
        spec = try BusSpec.parse(text)
      } catch {
        throw AgentError(config.error(key, error.description).description, exitCode: ExitCode.config)
      }
      buses.append(MeterBus(name: String(n), transport: spec.makeTransport(), settings: busSettings))
    }
    guard let file else { return buses.isEmpty ? nil : (buses, nil) }
    let archive: MeterArchive
    do {
      archive = try MeterArchive.load(path: file)
    } catch {
      throw AgentError(
        config.error("meter.file", error.description).description, exitCode: ExitCode.config)
    }
    return (buses, archive)
  }

  /// Reads the per-meter state (`meter_state`) kept across restarts.
  public func loadState() throws(SQLiteError) {
    try loadState(only: nil)
    if let row = try store.db.query(
      "SELECT slot, started_at, finished_at, meters, answered, missing, errors, stored FROM acquisition_cycles ORDER BY id DESC LIMIT 1"
    ).first {
      lastCycle = CycleSummary(
        slot: row.int64(0) ?? 0, startedAt: row.int64(1) ?? 0, finishedAt: row.int64(2) ?? 0,
        meters: Int(row.int64(3) ?? 0), answered: Int(row.int64(4) ?? 0), missing: Int(row.int64(5) ?? 0),
        errors: Int(row.int64(6) ?? 0), stored: Int(row.int64(7) ?? 0))
    }
    for row in try store.db.query("SELECT bus, finished_at FROM bus_searches") {
      if let b = buses.firstIndex(where: { $0.name == row.text(0) }) { lastSearchAt[b] = row.int64(1) }
    }
  }

  /// Reads `meter_state` for the meters in `only` (every listed meter when nil).
  private func loadState(only: Set<Address>?) throws(SQLiteError) {
    for row in try store.db.query(
      "SELECT meter, freeze_scanned_day, clock_checked_at, clock_drift, time_set_day, silent_since, last_answer_at FROM meter_state"
    ) {
      guard let address = Address(row.text(0) ?? ""), let i = meterIndex[address],
        only?.contains(address) ?? true
      else { continue }
      meters[i].freezeScannedDay = row.int64(1)
      meters[i].clockCheckedAt = row.int64(2)
      meters[i].clockDrift = row.int64(3)
      meters[i].timeSetDay = row.int64(4)
      meters[i].silentSince = row.int64(5)
      meters[i].lastAnswerAt = row.int64(6)
      if meters[i].silentSince != nil { buses[meters[i].bus].markSilent(address) }
    }
  }

  // MARK: - Poll loop

  /// The descriptors to poll this round (one per open bus), in the order
  /// `service(_:monotonic:wall:)` expects their results.
  public func pollRequests() -> [PollRequest] {
    polled.removeAll(keepingCapacity: true)
    var out: [PollRequest] = []
    for (i, bus) in buses.enumerated() {
      if let request = bus.pollRequest {
        polled.append(i)
        out.append(request)
      }
    }
    return out
  }

  /// Handles the poll results for the requests of the last `pollRequests()`, in order.
  public func service(_ results: ArraySlice<PollResult>, monotonic: Int64, wall: Int64) {
    for (n, result) in results.enumerated() where n < polled.count {
      buses[polled[n]].service(result, now: monotonic)
    }
    process(monotonic: monotonic, wall: wall)
  }

  /// Acts on deadlines: starts cycles, times out replies, stores what is pending.
  public func tick(monotonic: Int64, wall: Int64) {
    for bus in buses { bus.tick(now: monotonic) }
    process(monotonic: monotonic, wall: wall)
  }

  /// The next monotonic time `tick` has something to do.
  public func nextDeadline(monotonic: Int64, wall: Int64) -> Int64 {
    var next = monotonic + 60_000
    for bus in buses {
      if let deadline = bus.nextDeadline { next = min(next, deadline) }
    }
    if let slot = nextSlot { next = min(next, monotonic + max(0, slot - wall)) }
    if let since = pendingSince { next = min(next, since + Self.flushAfterMilliseconds) }
    return next
  }

  /// True once after readings or events were enqueued (to wake the uplink).
  public func takeEnqueued() -> Bool {
    defer { enqueued = false }
    return enqueued
  }

  /// True while a cycle is running.
  public var isCycleRunning: Bool { cycleSlot != nil }

  // MARK: - Relay control

  /// The tag of relay control exchanges (cycles are numbered from 1, so a cycle's end
  /// never cancels them).
  static let controlTag: Int64 = -1

  /// True when `meter` is in the meter list (so it has a bus).
  public func knows(_ meter: Address) -> Bool { meterIndex[meter] != nil }

  /// Queues a relay control exchange (0x1C, or the reads that verify it) for `meter`
  /// at the head of its bus's queue: it goes between the polls of a cycle, before
  /// them. Its completion comes back from `takeControlCompletions()`, not to the cycle.
  /// - Returns: the bus ticket its completion carries; nil when `meter` is not in the
  ///   meter list.
  @discardableResult
  public func submitControl(_ request: Request, to meter: Address) -> Int64? {
    guard let i = meterIndex[meter] else { return nil }
    let bus = meters[i].bus
    let ticket = buses[bus].submit(request, to: meter, tag: Self.controlTag, first: true)
    controlFlights[FlightKey(bus: bus, ticket: ticket)] = meter
    return ticket
  }

  /// The relay control exchanges finished since the last call.
  public func takeControlCompletions() -> [MeterBus.Completion] {
    defer { controlCompletions.removeAll(keepingCapacity: true) }
    return controlCompletions
  }

  /// The newest real-time energy total read from `meter` since start-up (Wh) and when it
  /// was read (wall ms), if any.
  public func latestEnergy(_ meter: Address) -> (wattHours: Int64, readAt: Int64)? { latestEnergy[meter] }

  /// Stores what is pending and closes the buses (the agent is stopping).
  public func close(monotonic: Int64, wall: Int64) {
    if cycleSlot != nil { endCycle(monotonic: monotonic, wall: wall, reason: "stopped") }
    flush(wall: wall)
    for bus in buses { bus.close() }
  }

  /// Pending readings are stored at least this often (and at 100, and at cycle end).
  static let flushAfterMilliseconds: Int64 = 1000

  /// 2024-01-01T00:00:00Z: a wall clock before it is not set.
  static let plausibleWall: Int64 = 1_704_067_200_000

  /// A meter clock further off than this is not corrected by a broadcast: this
  /// device's clock is more likely wrong than the meter's (or the meter is broken).
  static let largestCorrectedDriftSeconds: Int64 = 86_400

  /// Notices a jump of this device's wall clock against the monotonic clock (and, at
  /// the first turn, a clock behind the last cycle's start): the device clock is then
  /// suspect and every meter's clock is checked again in the next cycle.
  private func watchDeviceClock(monotonic: Int64, wall: Int64) {
    let offset = wall - monotonic
    defer { wallOffset = offset }
    let threshold = settings.clockThresholdSeconds * 1000
    var jump: Int64? = nil
    if let previous = wallOffset {
      if abs(offset - previous) > threshold { jump = offset - previous }
    } else if let last = lastCycle, wall < last.startedAt - threshold {
      jump = wall - last.startedAt
    }
    guard let jump else { return }
    deviceClockSuspect = true
    for i in meters.indices { meters[i].clockRecheck = true }
    Log.warn(
      "acquisition",
      "this device's clock jumped by " + String(jump / 1000) + " s (now " + formatUTC(milliseconds: wall)
        + "): readings are clock-suspect until a meter's clock agrees with it")
    pendingEvents.append(
      "\"type\":\"device.clock_jump\",\"jump_s\":" + String(jump / 1000) + ",\"now\":\""
        + formatUTC(milliseconds: wall) + "\"")
  }

  private func process(monotonic: Int64, wall: Int64) {
    watchDeviceClock(monotonic: monotonic, wall: wall)
    for (b, bus) in buses.enumerated() {
      for incident in bus.takeIncidents() { handle(incident, bus: b, wall: wall) }
      for completion in bus.takeCompletions() { handle(completion, bus: b, monotonic: monotonic, wall: wall) }
    }
    if wall < Self.plausibleWall {
      // The board's clock is not set (an RTC that lost power): readings would get
      // timestamps decades off, and a broadcast time would set every meter wrong.
      if !clockWarned {
        clockWarned = true
        Log.error(
          "acquisition",
          "this device's clock says " + formatUTC(milliseconds: wall)
            + ": meters are not read until it is set (NTP)")
      }
      if cycleSlot != nil { endCycle(monotonic: monotonic, wall: wall, reason: "clock not set") }
      nextSlot = nil
    } else if clockWarned {
      // Said again if the clock is lost again; the cycle starts at the next turn.
      clockWarned = false
      Log.info(
        "acquisition", "this device's clock is set (" + formatUTC(milliseconds: wall) + "): reading meters")
    } else if cycleSlot == nil, let list = pendingArchive {
      // A new archive: the new list, and a cycle for the current slot that reads
      // the meters without a reading for it yet.
      pendingArchive = nil
      install(list)
      startCycle(monotonic: monotonic, wall: wall)
    } else if nextSlot == nil || wall >= nextSlot! || wall < lastSlotStart {
      // (Also when the wall clock went back before the current slot.)
      if cycleSlot != nil { endCycle(monotonic: monotonic, wall: wall, reason: "next slot") }
      if let list = pendingArchive {
        pendingArchive = nil
        install(list)
      }
      startCycle(monotonic: monotonic, wall: wall)
    } else if cycleSlot != nil, inFlight.isEmpty {
      endCycle(monotonic: monotonic, wall: wall, reason: nil)
    }
    driveSearches(wall: wall)
    if pendingReadings.count >= 100 || pendingEvents.count >= 100
      || (pendingSince.map { monotonic - $0 >= Self.flushAfterMilliseconds } ?? false)
    {
      flush(wall: wall)
    }
    if pendingSince == nil && (!pendingReadings.isEmpty || !pendingEvents.isEmpty) {
      pendingSince = monotonic
    }
    for bus in buses { bus.tick(now: monotonic) }
  }

  // MARK: - Time

  private func localDay(_ wall: Int64) -> Int64 {
    settings.utcOffset.localDateTime(fromUnix: unixSeconds(milliseconds: wall)).date.daysSinceEpoch
  }

  private func midnight(_ day: Int64) -> Int64 {
    settings.utcOffset.unixSeconds(startOf: CivilDate(daysSinceEpoch: day)) * 1000
  }

  /// The start of the slot `wall` falls in, and the start of the next one.
  func slot(containing wall: Int64) -> (start: Int64, next: Int64) {
    let day = localDay(wall)
    let dayStart = midnight(day)
    let step = settings.intervalMinutes * 60_000
    let start = dayStart + (wall - dayStart) / step * step
    return (start, min(start + step, midnight(day + 1)))
  }

  private func unixMilliseconds(_ t: MeterTimestamp) -> Int64? {
    guard let date = CivilDate(year: Int64(t.year), month: t.month, day: t.day),
      let local = LocalDateTime(date: date, hour: t.hour, minute: t.minute)
    else { return nil }
    return settings.utcOffset.unixSeconds(of: local) * 1000
  }

  // MARK: - Cycles

  private func startCycle(monotonic: Int64, wall: Int64) {
    let (start, next) = slot(containing: wall)
    nextSlot = next
    lastSlotStart = start
    cycleID += 1
    cycleSlot = start
    cycleStartedAt = wall
    cycleStored = 0
    let today = localDay(wall)
    pruneIfNewDay(today, wall: wall)
    var done = Set<String>()
    do {
      done = try readings.meters(with: .forwardActiveBlock, at: start)
      done.formUnion(try readings.meters(with: .forwardActiveTotal, at: start))
    } catch {
      Log.error("acquisition", "reading the cache: " + error.description)
    }
    let secondOfDay = (wall - midnight(today)) / 1000
    let freezeDue = secondOfDay >= settings.freezeDelayMinutes * 60
    var jobs = 0
    // Area meters first: their voltages tell at once whether the area has supply.
    let areaMeters = outages?.areaMeters ?? []
    let order =
      meters.indices.filter { areaMeters.contains(meters[$0].entry.address.description) }
      + meters.indices.filter { !areaMeters.contains(meters[$0].entry.address.description) }
    for i in order {
      meters[i].trouble = Trouble()
      meters[i].answered = false
      meters[i].hasRealtime = done.contains(meters[i].entry.address.description)
      var tasks: [Task] = []
      if areaMeters.contains(meters[i].entry.address.description) { tasks.append(.voltage) }
      if !meters[i].hasRealtime { tasks.append(.realtime) }
      if clockCheckDue(meters[i], wall: wall) { tasks.append(.clock) }
      if freezeDue && meters[i].freezeScannedDay != today { tasks.append(.freeze) }
      meters[i].job = nil
      if begin(i, tasks: tasks, wall: wall) { jobs += 1 }
    }
    Log.info(
      "acquisition",
      "cycle " + String(cycleID) + " for " + formatUTC(milliseconds: start) + ": " + String(jobs) + " of "
        + String(meters.count) + " meter(s) to read")
  }

  private func clockCheckDue(_ m: MeterState, wall: Int64) -> Bool {
    guard settings.clockCheckMinutes > 0 else { return false }
    if m.clockRecheck { return true }
    guard let at = m.clockCheckedAt else { return true }
    return wall - at >= settings.clockCheckMinutes * 60_000 || wall < at
  }

  private func endCycle(monotonic: Int64, wall: Int64, reason: String?) {
    guard let slotStart = cycleSlot else { return }
    for bus in buses { bus.cancel(tag: cycleID) }
    // Cancelled completions are collected now so their meters are freed.
    for (b, bus) in buses.enumerated() {
      for completion in bus.takeCompletions() { handle(completion, bus: b, monotonic: monotonic, wall: wall) }
    }
    inFlight.removeAll()
    var answered = 0
    var missing = 0
    var errors = 0
    if let outages {
      // A meter silent since before the last `silent_cycles` cycles, outside any
      // outage, is dead or gone (and reported `archive.silent`), no sign of a new
      // outage: it counts neither among the silent nor among the asked.
      let deadBefore = slotStart - settings.silentCycles * settings.intervalMinutes * 60_000
      var asked: [(meter: Address, answered: Bool)] = []
      for m in meters where m.answered || m.trouble.noAnswer > 0 {
        if !m.answered, let since = m.silentSince, since < deadBefore,
          !outages.covers(m.entry.address, wall: wall)
        {
          continue
        }
        asked.append((m.entry.address, m.answered))
      }
      outages.cycleEnded(asked, wall: wall)
    }
    for i in meters.indices {
      meters[i].job = nil
      if meters[i].answered { answered += 1 }
      if !meters[i].hasRealtime { missing += 1 }
      let t = meters[i].trouble
      errors += t.total
      if meters[i].answered {
        meters[i].silentCycles = 0
        meters[i].silenceReported = false
      } else if t.noAnswer > 0 && outages?.covers(meters[i].entry.address, wall: wall) == true {
        // Without supply (an outage, or a planned one): no missing-read alarm, and the
        // cycle does not count towards one.
        meters[i].silentCycles = 0
      } else if t.noAnswer > 0 {
        meters[i].silentCycles += 1
        if meters[i].silentCycles >= settings.silentCycles && !meters[i].silenceReported {
          meters[i].silenceReported = true
          reportSilent(meters[i])
        }
      }
      if t.total > 0 {
        pendingEvents.append(
          "\"type\":\"meter.comm_errors\",\"meter\":\"" + meters[i].entry.address.description
            + "\",\"bus\":\""
            + buses[meters[i].bus].name + "\",\"slot\":" + String(slotStart) + ",\"corrupt_frames\":"
            + String(t.corruptFrames) + ",\"wrong_address\":" + String(t.wrongAddress) + ",\"error_replies\":"
            + String(t.errorReplies) + ",\"bad_values\":" + String(t.badValues))
      }
    }
    flush(wall: wall)
    let summary = CycleSummary(
      slot: slotStart, startedAt: cycleStartedAt, finishedAt: wall, meters: meters.count, answered: answered,
      missing: missing, errors: errors, stored: cycleStored)
    lastCycle = summary
    pendingEvents.append(
      "\"type\":\"acquisition.cycle\",\"slot\":" + String(slotStart) + ",\"meters\":" + String(meters.count)
        + ",\"answered\":" + String(answered) + ",\"missing\":" + String(missing) + ",\"errors\":"
        + String(errors) + ",\"stored\":" + String(cycleStored))
    do {
      try store.db.transaction { () throws(SQLiteError) in
        try store.db.run(
          """
          INSERT INTO acquisition_cycles (slot, started_at, finished_at, meters, answered, missing, errors, stored)
          VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
          """,
          [
            .integer(slotStart), .integer(cycleStartedAt), .integer(wall), .integer(Int64(meters.count)),
            .integer(Int64(answered)), .integer(Int64(missing)), .integer(Int64(errors)),
            .integer(Int64(cycleStored)),
          ])
        for m in meters where m.trouble != Trouble() {
          try store.db.run(
            """
            INSERT INTO meter_state (meter, corrupt_frames, wrong_address, error_replies, no_answer)
            VALUES (?1, ?2, ?3, ?4, ?5)
            ON CONFLICT (meter) DO UPDATE SET corrupt_frames = corrupt_frames + excluded.corrupt_frames,
              wrong_address = wrong_address + excluded.wrong_address,
              error_replies = error_replies + excluded.error_replies, no_answer = no_answer + excluded.no_answer
            """,
            [
              .text(m.entry.address.description),
              .integer(Int64(m.trouble.corruptFrames + m.trouble.badValues)),
              .integer(Int64(m.trouble.wrongAddress)), .integer(Int64(m.trouble.errorReplies)),
              .integer(Int64(m.trouble.noAnswer)),
            ])
        }
      }
    } catch {
      Log.error("acquisition", "recording the cycle: " + error.description)
    }
    flush(wall: wall)
    cycleSlot = nil
    var text = "cycle " + String(cycleID) + " for " + formatUTC(milliseconds: slotStart) + " "
    if let reason { text += "ended (" + reason + ")" } else { text += "done" }
    text += ": " + String(answered) + " of " + String(meters.count) + " meter(s) answered, "
    text += String(missing) + " missing, " + String(errors) + " error(s), "
    text += String(cycleStored) + " reading(s) stored"
    if missing > 0 || errors > 0 { Log.warn("acquisition", text) } else { Log.info("acquisition", text) }
  }

  private func pruneIfNewDay(_ today: Int64, wall: Int64) {
    // A clock that jumped a year ahead would make every reading look old: the cache is
    // pruned only by a clock a meter has confirmed.
    guard prunedDay != today, !deviceClockSuspect else { return }
    prunedDay = today
    let cutoff = midnight(today - settings.keepDays)
    do {
      let n = try readings.prune(before: cutoff)
      try store.db.run("DELETE FROM acquisition_cycles WHERE slot < ?1", [.integer(cutoff)])
      if n > 0 { Log.info("acquisition", "pruned " + String(n) + " reading(s) older than the keep period") }
    } catch {
      Log.error("acquisition", "pruning old readings: " + error.description)
    }
  }

  // MARK: - Jobs

  /// Starts meter `i`'s tasks; false when it has none.
  private func begin(_ i: Int, tasks: [Task], wall: Int64) -> Bool {
    var tasks = tasks
    while let task = tasks.first {
      var job = Job(tasks: tasks, step: .realtimeBlock)
      switch task {
      case .voltage:
        job.step = .voltageBlock
      case .realtime:
        job.step = .realtimeBlock
      case .clock:
        job.step = .clockDate
      case .freeze:
        let today = localDay(wall)
        let start = max(today - settings.backfillDays, (meters[i].freezeScannedDay ?? Int64.min / 2) + 1)
        var wanted = Set<Int64>()
        if start <= today {
          // Freezes are normally taken at local midnight: look those keys up (a day
          // whose freeze has another time is read again, and stored once).
          var stored = Set<Int64>()
          do {
            stored = try readings.stored(
              meter: meters[i].entry.address, identifier: Self.freezeKey,
              at: (start...today).map { midnight($0) })
          } catch {
            Log.error("acquisition", "reading the cache: " + error.description)
          }
          for day in start...today where !stored.contains(midnight(day)) { wanted.insert(day) }
        }
        if wanted.isEmpty {
          meters[i].freezeScannedDay = today
          saveFreezeScan(i)
          tasks.removeFirst()
          continue
        }
        job.wantedDays = wanted
        job.freezeWindowStart = start
        job.step = .freezeTime(1)
      }
      meters[i].job = job
      submit(i)
      return true
    }
    meters[i].job = nil
    return false
  }

  private func submit(_ i: Int) {
    guard let job = meters[i].job else { return }
    let identifier: DataIdentifier
    switch job.step {
    case .voltageBlock: identifier = .voltageBlock
    case .realtimeBlock: identifier = .forwardActiveBlock
    case .realtimeTotal: identifier = .forwardActiveTotal
    case .clockDate: identifier = .date
    case .clockTime: identifier = .time
    case .freezeTime(let n): identifier = DataIdentifier.dailyFreezeTime(previous: n)!
    case .freezeEnergy(let n, _, _): identifier = DataIdentifier.dailyFreezeForwardActive(previous: n)!
    }
    let ticket = buses[meters[i].bus].submit(.read(identifier), to: meters[i].entry.address, tag: cycleID)
    inFlight[FlightKey(bus: meters[i].bus, ticket: ticket)] = i
  }

  /// Moves meter `i` to its next task (or ends its job).
  private func nextTask(_ i: Int, wall: Int64) {
    guard var tasks = meters[i].job?.tasks, !tasks.isEmpty else {
      meters[i].job = nil
      return
    }
    tasks.removeFirst()
    _ = begin(i, tasks: tasks, wall: wall)
  }

  private func handle(_ completion: MeterBus.Completion, bus: Int, monotonic: Int64, wall: Int64) {
    if completion.tag == Self.searchTag {
      searched(completion, bus: bus, wall: wall)
      return
    }
    if controlFlights.removeValue(forKey: FlightKey(bus: bus, ticket: completion.ticket)) != nil {
      controlCompletions.append(completion)
      return
    }
    guard let i = inFlight.removeValue(forKey: FlightKey(bus: bus, ticket: completion.ticket)) else {
      if case .sent = completion.outcome {
        Log.debug("acquisition", "broadcast time sent (for meter " + completion.meter.description + ")")
      }
      return
    }
    guard meters[i].job != nil else { return }
    switch completion.outcome {
    case .cancelled:
      meters[i].job = nil
    case .noAnswer:
      meters[i].trouble.noAnswer += 1
      if meters[i].silentSince == nil {
        meters[i].silentSince = wall
        saveSilence(i)
      }
      // A silent meter is not asked anything more this cycle.
      meters[i].job = nil
    case .badReplies, .sent:
      nextTask(i, wall: wall)
    case .reply(let reply):
      meters[i].answered = true
      meters[i].lastAnswerAt = wall
      if meters[i].silentSince != nil {
        meters[i].silentSince = nil
        saveSilence(i)
      }
      handle(reply, meter: i, wall: wall)
    }
  }

  private func handle(_ reply: Reply, meter i: Int, wall: Int64) {
    guard let job = meters[i].job else { return }
    let value: MeterValue
    switch reply {
    case .readData(let identifier, let bytes, _):
      do {
        value = try MeterValue(decoding: bytes[...], for: identifier)
      } catch {
        meters[i].trouble.badValues += 1
        Log.warn(
          "acquisition",
          "meter " + meters[i].entry.address.description + ": " + identifier.description + ": "
            + error.description)
        nextTask(i, wall: wall)
        return
      }
    case .readError(let word):
      if case .freezeTime(let n) = job.step, word == .noRequestedData {
        // No such record: the meter's freeze history ends here (the normal answer
        // past its last record, so not counted as an error). A meter with no freeze
        // record at all is not asked again today.
        finishFreeze(i, wall: wall, noRecords: n == 1)
        return
      }
      meters[i].trouble.errorReplies += 1
      Log.debug(
        "acquisition", "meter " + meters[i].entry.address.description + " refused a read: " + word.description
      )
      switch job.step {
      case .realtimeBlock:
        meters[i].job!.step = .realtimeTotal
        submit(i)
      case .freezeTime:
        finishFreeze(i, wall: wall)
      default:
        nextTask(i, wall: wall)
      }
      return
    default:
      nextTask(i, wall: wall)
      return
    }
    switch (job.step, value) {
    case (.voltageBlock, .voltages(let volts)):
      outages?.voltages(meter: meters[i].entry.address, deciVolts: volts.map { Int64($0) }, wall: wall)
      nextTask(i, wall: wall)
    case (.realtimeBlock, .energyRegisters(let registers)):
      storeRealtime(
        i, identifier: .forwardActiveBlock, total: registers.total, tariffs: registers.tariffs, wall: wall)
      nextTask(i, wall: wall)
    case (.realtimeTotal, .energy(let centi)):
      storeRealtime(i, identifier: .forwardActiveTotal, total: centi, tariffs: [], wall: wall)
      nextTask(i, wall: wall)
    case (.clockDate, .date(let date)):
      meters[i].job!.step = .clockTime(date)
      submit(i)
    case (.clockTime(let date), .time(let time)):
      checkClock(i, date: date, time: time, wall: wall)
      nextTask(i, wall: wall)
    case (.freezeTime(let n), .timestamp(let t)):
      guard let ts = unixMilliseconds(t) else {
        meters[i].trouble.badValues += 1
        nextTask(i, wall: wall)
        return
      }
      let day = localDay(ts)
      if job.wantedDays.contains(day) {
        meters[i].job!.step = .freezeEnergy(n, ts: ts, day: day)
        submit(i)
      } else {
        continueFreeze(i, after: n, day: day, wall: wall)
      }
    case (.freezeEnergy(let n, let ts, let day), .energyRegisters(let registers)):
      let today = localDay(wall)
      var quality: ReadingQuality = (n == 1 && day == today) ? .measured : .backfilled
      if clockSuspect(i) { quality = .clockSuspect }
      pendingReadings.append(
        Reading(
          meter: meters[i].entry.address, identifier: Self.freezeKey, timestamp: ts,
          value: registers.total * 10, tariffs: registers.tariffs.map { $0 * 10 }, quality: quality,
          readAt: wall))
      meters[i].job!.wantedDays.remove(day)
      continueFreeze(i, after: n, day: day, wall: wall)
    default:
      meters[i].trouble.badValues += 1
      nextTask(i, wall: wall)
    }
  }

  private func clockSuspect(_ i: Int) -> Bool {
    if deviceClockSuspect { return true }
    guard let drift = meters[i].clockDrift else { return false }
    return abs(drift) > settings.clockThresholdSeconds
  }

  private func storeRealtime(
    _ i: Int, identifier: DataIdentifier, total: Int64, tariffs: [Int64], wall: Int64
  ) {
    guard let slotStart = cycleSlot else { return }
    pendingReadings.append(
      Reading(
        meter: meters[i].entry.address, identifier: identifier, timestamp: slotStart, value: total * 10,
        tariffs: tariffs.map { $0 * 10 }, quality: clockSuspect(i) ? .clockSuspect : .measured, readAt: wall))
    meters[i].hasRealtime = true
    latestEnergy[meters[i].entry.address] = (total * 10, wall)
  }

  /// After freeze record n (of local day `day`): read further back while wanted days
  /// older than `day` remain, else finish.
  private func continueFreeze(_ i: Int, after n: Int, day: Int64, wall: Int64) {
    guard let job = meters[i].job else { return }
    let older = job.wantedDays.contains { $0 < day }
    if older && n < 62 && day >= job.freezeWindowStart {
      meters[i].job!.step = .freezeTime(n + 1)
      submit(i)
    } else {
      finishFreeze(i, wall: wall)
    }
  }

  /// The freeze scan of meter `i` is over: the days before today are settled (found,
  /// or not in the meter); today is settled only when its freeze was found.
  private func finishFreeze(_ i: Int, wall: Int64, noRecords: Bool = false) {
    let today = localDay(wall)
    let todayMissing = meters[i].job?.wantedDays.contains(today) ?? true
    meters[i].freezeScannedDay = todayMissing && !noRecords ? today - 1 : today
    if noRecords {
      Log.info(
        "acquisition",
        "meter " + meters[i].entry.address.description + " has no daily freeze record; asked again tomorrow")
    }
    if let wanted = meters[i].job?.wantedDays, !wanted.isEmpty {
      let days = wanted.filter { $0 != today }.count
      if days > 0 {
        Log.debug(
          "acquisition",
          "meter " + meters[i].entry.address.description + ": " + String(days)
            + " daily freeze(s) within the backfill window are not in the meter")
      }
    }
    saveFreezeScan(i)
    nextTask(i, wall: wall)
  }

  private func checkClock(_ i: Int, date: MeterDate, time: MeterTime, wall: Int64) {
    let address = meters[i].entry.address.description
    let ours = settings.utcOffset.localDateTime(fromUnix: unixSeconds(milliseconds: wall))
    // The date and the time are two reads: near midnight they may straddle it.
    if ours.secondOfDay < 30 || ours.secondOfDay > 86_370
      || (time.hour == 0 && time.minute == 0 && time.second < 30)
    {
      Log.debug("acquisition", "meter " + address + ": clock check skipped near midnight")
      meters[i].clockRecheck = true
      return
    }
    guard let civil = CivilDate(year: Int64(date.year), month: date.month, day: date.day),
      let local = LocalDateTime(date: civil, hour: time.hour, minute: time.minute, second: time.second)
    else { return }
    let drift = settings.utcOffset.unixSeconds(of: local) - unixSeconds(milliseconds: wall + 500)
    meters[i].clockCheckedAt = wall
    meters[i].clockDrift = drift
    meters[i].clockRecheck = false
    let today = localDay(wall)
    if abs(drift) <= settings.clockThresholdSeconds {
      if deviceClockSuspect {
        deviceClockSuspect = false
        Log.info(
          "acquisition",
          "meter " + address + " clock agrees with this device's (" + String(drift)
            + " s): readings are no longer clock-suspect")
      }
      saveClock(i)
      return
    }
    Log.warn(
      "acquisition",
      "meter " + address + " clock is " + String(drift) + " s off (threshold "
        + String(settings.clockThresholdSeconds) + " s, acquisition.clock_threshold)")
    if meters[i].driftReportedDay != today {
      meters[i].driftReportedDay = today
      pendingEvents.append(
        "\"type\":\"meter.clock_drift\",\"meter\":\"" + address + "\",\"drift_s\":" + String(drift))
    }
    let nearMidnight = ours.secondOfDay < 300 || ours.secondOfDay > 86_100
    if deviceClockSuspect {
      Log.warn(
        "acquisition",
        "meter " + address + " clock not corrected: this device's clock jumped and is not confirmed yet")
    } else if abs(drift) > Self.largestCorrectedDriftSeconds {
      Log.warn(
        "acquisition",
        "meter " + address + " clock differs from this device's by more than a day: not corrected;"
          + " check both clocks")
    } else if settings.timeSet && meters[i].timeSetDay != today && !nearMidnight,
      let now = try? MeterDateTime(
        year: Int(ours.date.year), month: ours.date.month, day: ours.date.day, hour: ours.hour,
        minute: ours.minute, second: ours.second)
    {
      let bus = buses[meters[i].bus]
      bus.submit(.broadcastTime(now), to: meters[i].entry.address, tag: 0, first: true)
      meters[i].timeSetDay = today
      meters[i].clockRecheck = true
      Log.warn(
        "acquisition",
        "broadcast time " + now.description + " on bus " + bus.name + " for meter " + address + " ("
          + String(drift) + " s off); checked again next cycle")
      pendingEvents.append(
        "\"type\":\"meter.time_set\",\"meter\":\"" + address + "\",\"bus\":\"" + bus.name + "\",\"drift_s\":"
          + String(drift) + ",\"time\":\"" + now.description + "\"")
    }
    saveClock(i)
  }

  // MARK: - Incidents

  private func handle(_ incident: MeterBus.Incident, bus b: Int, wall: Int64) {
    switch incident {
    case .corruptFrame(let meter, let error):
      if let i = meterIndex[meter] { meters[i].trouble.corruptFrames += 1 }
      Log.debug(
        "bus",
        "bus " + buses[b].name + ": corrupt frame for meter " + meter.description + ": " + error.description)
    case .wrongAddress(let meter, let from):
      if let i = meterIndex[meter] { meters[i].trouble.wrongAddress += 1 }
      Log.debug(
        "bus",
        "bus " + buses[b].name + ": reply from " + from.description + " while waiting for "
          + meter.description)
    case .unexpectedReply(let meter, let reason):
      if let i = meterIndex[meter] { meters[i].trouble.corruptFrames += 1 }
      Log.debug("bus", "bus " + buses[b].name + ": meter " + meter.description + ": " + reason)
    case .noAnswer(let meter):
      if outages?.covers(meter, wall: wall) == true {
        Log.info(
          "bus",
          "bus " + buses[b].name + ": meter " + meter.description + " does not answer (its supply is out)")
        return
      }
      Log.warn(
        "bus", "bus " + buses[b].name + ": meter " + meter.description + " does not answer; marked silent")
      pendingEvents.append(
        "\"type\":\"meter.no_answer\",\"meter\":\"" + meter.description + "\",\"bus\":\"" + buses[b].name
          + "\"")
    case .answering(let meter):
      Log.info("bus", "bus " + buses[b].name + ": meter " + meter.description + " answers again")
      pendingEvents.append(
        "\"type\":\"meter.answering\",\"meter\":\"" + meter.description + "\",\"bus\":\"" + buses[b].name
          + "\"")
    case .lineDown(let reason):
      if !busDown[b] {
        busDown[b] = true
        pendingEvents.append(
          "\"type\":\"bus.down\",\"bus\":\"" + buses[b].name + "\",\"line\":\""
            + jsonEscaped(buses[b].transport.label)
            + "\",\"reason\":\"" + jsonEscaped(reason) + "\"")
      }
    case .lineUp:
      if busDown[b] {
        busDown[b] = false
        pendingEvents.append("\"type\":\"bus.up\",\"bus\":\"" + buses[b].name + "\"")
      }
    }
  }

  // MARK: - Bus search

  /// The tag of bus-search probes.
  static let searchTag: Int64 = -2

  /// What a probe asks: the forward active total, which every meter answers.
  static let probeRequest = Request.read(.forwardActiveTotal)

  /// Asks for a search of every bus now (`gridedge archive search`, SIGUSR1), even
  /// with `searchHours` 0; a bus already being searched goes on with its search. It
  /// starts between cycles, once a cycle has run.
  public func requestSearch() {
    for b in buses.indices where searches[b] == nil { searchRequested[b] = true }
    Log.info(
      "acquisition",
      "bus search requested by hand: " + String(searchRequested.filter { $0 }.count)
        + " bus(es), between reading cycles")
  }

  /// Sends the next probe of each bus's search, between cycles only (a search never
  /// delays a reading), and starts a search every `searchHours` once a cycle has run,
  /// or when one was requested.
  private func driveSearches(wall: Int64) {
    guard cycleSlot == nil, lastCycle != nil, wall >= Self.plausibleWall else { return }
    for b in buses.indices where searchTickets[b] == nil && !busDown[b] {
      if searches[b] == nil {
        let every = settings.searchHours * 3_600_000
        let due =
          settings.searchHours > 0 && (lastSearchAt[b].map { wall - $0 >= every || wall < $0 } ?? true)
        guard due || searchRequested[b] else { continue }
        searchRequested[b] = false
        searches[b] = BusSearch()
        Log.info("acquisition", "bus " + buses[b].name + ": searching for meters")
      }
      guard let address = searches[b]!.next() else {
        finishSearch(b, wall: wall)
        continue
      }
      searchTickets[b] = buses[b].submit(Self.probeRequest, to: address, tag: Self.searchTag, probe: true)
    }
  }

  private func searched(_ completion: MeterBus.Completion, bus b: Int, wall: Int64) {
    guard completion.ticket == searchTickets[b], var search = searches[b] else { return }
    searchTickets[b] = nil
    switch completion.outcome {
    case .reply:
      if let from = completion.from { search.record(.one(from)) } else { search.record(.none) }
    case .noAnswer:
      search.record(.none)
    case .badReplies:
      search.record(.several)
    case .cancelled, .sent:
      search.retry()
    }
    searches[b] = search
    if search.isFinished { finishSearch(b, wall: wall) }
  }

  /// Stores what a finished search found: meters not in the meter list go to
  /// `found_meters` and up as `meter.unknown` (once per meter); a `bus.search` event
  /// sums it up.
  private func finishSearch(_ b: Int, wall: Int64) {
    guard let search = searches[b] else { return }
    searches[b] = nil
    lastSearchAt[b] = wall
    let bus = buses[b].name
    let unknown = search.found.filter { meterIndex[$0] == nil }
    var new: [Address] = []
    do {
      try store.db.transaction { () throws(SQLiteError) in
        for address in unknown {
          let known = try store.db.scalarInt(
            "SELECT count(*) FROM found_meters WHERE address = ?1", [.text(address.description)])
          if known == 0 { new.append(address) }
          try store.db.run(
            """
            INSERT INTO found_meters (address, bus, how, first_found_at, last_found_at)
            VALUES (?1, ?2, 'bus-search', ?3, ?3)
            ON CONFLICT (address) DO UPDATE SET bus = excluded.bus, last_found_at = excluded.last_found_at
            """, [.text(address.description), .text(bus), .integer(wall)])
        }
        try store.db.run(
          """
          INSERT INTO bus_searches (bus, finished_at, probes, found, unknown) VALUES (?1, ?2, ?3, ?4, ?5)
          ON CONFLICT (bus) DO UPDATE SET finished_at = excluded.finished_at, probes = excluded.probes,
            found = excluded.found, unknown = excluded.unknown
          """,
          [
            .text(bus), .integer(wall), .integer(Int64(search.probes)), .integer(Int64(search.found.count)),
            .integer(Int64(unknown.count)),
          ])
      }
    } catch {
      Log.error("acquisition", "bus " + bus + ": storing the search's findings: " + error.description)
      return
    }
    for address in new {
      Log.warn(
        "acquisition",
        "bus " + bus + ": meter " + address.description + " answers but is not in the meter list")
      pendingEvents.append(
        "\"type\":\"meter.unknown\",\"meter\":\"" + address.description + "\",\"bus\":\"" + bus
          + "\",\"how\":\"bus-search\"")
    }
    for address in search.duplicates {
      Log.warn(
        "acquisition", "bus " + bus + ": more than one meter answers to address " + address.description)
    }
    Log.info(
      "acquisition",
      "bus " + bus + ": search done: " + String(search.found.count) + " meter(s) found, "
        + String(unknown.count) + " not in the meter list, " + String(search.probes) + " probe(s)")
    let list = { (addresses: [Address]) -> String in
      addresses.map { "\"" + $0.description + "\"" }.joined(separator: ",")
    }
    pendingEvents.append(
      "\"type\":\"bus.search\",\"bus\":\"" + bus + "\",\"probes\":" + String(search.probes) + ",\"found\":"
        + String(search.found.count) + ",\"unknown\":[" + list(unknown) + "],\"duplicate_addresses\":["
        + list(search.duplicates) + "]")
  }

  // MARK: - Storage

  private func flush(wall: Int64) {
    pendingSince = nil
    if !pendingReadings.isEmpty {
      do {
        let added = try readings.store(pendingReadings, now: wall)
        cycleStored += added
        if added > 0 { enqueued = true }
        pendingReadings.removeAll(keepingCapacity: true)
      } catch {
        Log.error(
          "acquisition", "storing " + String(pendingReadings.count) + " reading(s): " + error.description)
        if pendingReadings.count > 20_000 { pendingReadings.removeFirst(pendingReadings.count - 20_000) }
      }
    }
    if !pendingEvents.isEmpty {
      do {
        try store.db.transaction { () throws(SQLiteError) in
          for body in pendingEvents {
            let id = try outbox.newRecordID("event")
            try outbox.enqueue(
              .events, record: "{\"id\":\"" + id + "\",\"ts\":" + String(wall) + "," + body + "}",
              retention: .billing, now: wall)
          }
        }
        enqueued = true
        pendingEvents.removeAll(keepingCapacity: true)
      } catch {
        Log.error(
          "acquisition", "enqueueing " + String(pendingEvents.count) + " event(s): " + error.description)
        if pendingEvents.count > 1000 { pendingEvents.removeFirst(pendingEvents.count - 1000) }
      }
    }
  }

  private func upsertState(_ i: Int, _ column: String, _ value: SQLiteValue) {
    // `column` is one of this file's literal column names, never outside input.
    do {
      try store.db.run(
        "INSERT INTO meter_state (meter, " + column + ") VALUES (?1, ?2) ON CONFLICT (meter) DO UPDATE SET "
          + column + " = excluded." + column, [.text(meters[i].entry.address.description), value])
    } catch {
      Log.error(
        "acquisition",
        "saving the state of meter " + meters[i].entry.address.description + ": " + error.description)
    }
  }

  private func saveFreezeScan(_ i: Int) {
    upsertState(i, "freeze_scanned_day", meters[i].freezeScannedDay.map { .integer($0) } ?? .null)
  }

  private func saveSilence(_ i: Int) {
    upsertState(i, "silent_since", meters[i].silentSince.map { .integer($0) } ?? .null)
  }

  private func saveClock(_ i: Int) {
    let m = meters[i]
    do {
      try store.db.run(
        """
        INSERT INTO meter_state (meter, clock_checked_at, clock_drift, time_set_day, last_answer_at)
        VALUES (?1, ?2, ?3, ?4, ?5)
        ON CONFLICT (meter) DO UPDATE SET clock_checked_at = excluded.clock_checked_at,
          clock_drift = excluded.clock_drift, time_set_day = excluded.time_set_day,
          last_answer_at = excluded.last_answer_at
        """,
        [
          .text(m.entry.address.description), m.clockCheckedAt.map { .integer($0) } ?? .null,
          m.clockDrift.map { .integer($0) } ?? .null, m.timeSetDay.map { .integer($0) } ?? .null,
          m.lastAnswerAt.map { .integer($0) } ?? .null,
        ])
    } catch {
      Log.error(
        "acquisition",
        "saving the clock state of meter " + m.entry.address.description + ": " + error.description)
    }
  }
}

/// Whole unix seconds of a time in unix ms (rounded down, also before 1970).
func unixSeconds(milliseconds: Int64) -> Int64 {
  let q = milliseconds / 1000
  return (milliseconds % 1000 != 0 && milliseconds < 0) ? q - 1 : q
}

/// `text` escaped for the inside of a JSON string (`jsonString` without the quotes):
/// control characters are escaped, never dropped, so a customer id or a reason
/// reaches HQ exactly as it was.
func jsonEscaped(_ text: String) -> String {
  String(jsonString(text).dropFirst().dropLast())
}

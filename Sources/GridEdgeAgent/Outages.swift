import DLT645
import GridEdgeContract
import GridEdgeCore
import Runtime
import SQLiteStore

/// Loss and return of supply in the areas this concentrator reads (DESIGN.md §6),
/// reported to HQ at once, kept in `outages` (migration 16) so a reboot in the middle
/// keeps the start.
///
/// An area is without supply while any of these says so:
/// - **voltage**: its area meter (archive `area_meter`) reports a phase voltage below
///   `outage.voltage_threshold` (acquisition reads 02 01 FF 00 from area meters first
///   in every cycle); the customer meters on the lost phases (archive `phase`; `ABC`
///   meters whenever a phase is lost) are without supply;
/// - **silent-meters**: at the end of a cycle, at least `outage.silent_meters` of the
///   area's customer meters asked in it, and at least `outage.silent_share` of them,
///   answered nothing (a branch fuse, or an area without an area meter); those meters
///   are without supply;
/// - **power-fail**: the board's own power-fail signal (`outage.power_fail_path`, a
///   GPIO value file read every second, reads `outage.power_fail_value`): every area,
///   every phase.
///
/// `outage.start` goes to HQ when an area loses supply (area, phases, causes, start,
/// the customers and meters without supply, the outage-sensitive ones listed apart so
/// HQ can call them first), `outage.update` when more meters lose supply during it,
/// and `outage.end` with the duration and customer-minutes when it is back: when the
/// area meter's voltages are all back (which also ends the silence of the meters it
/// feeds), the silent share falls below the threshold, and the power-fail signal is
/// off. Start and end are detection times: within one acquisition cycle of the real
/// ones (at once for the power-fail signal). An outage inside a planned outage of its
/// area (`PlannedOutages`) is reported with `"kind":"planned"` and the plan's id.
///
/// After a restart the open outages are taken from the database with the causes
/// they had; each ends once an observation says its cause is gone (for a power-fail
/// outage: the signal read off at the first second, the board being back on).
/// Meters of an open outage, and of an area in a planned window, raise no missing-read
/// alarms (`archive.silent`, `meter.no_answer`: `covers(_:wall:)`).
///
/// Once a local day is over, `outage.daily` goes to HQ per area with the day's
/// reliability figures (`ReliabilityFigures`, unplanned and planned apart).
///
/// A component of the agent's loop: `tick(wall:)` every turn; acquisition calls
/// `voltages(meter:deciVolts:wall:)` and `cycleEnded(_:wall:)`. One thread.
public final class Outages {
  /// The `outage.*` settings.
  public struct Settings: Sendable {
    /// A phase below this (0.1 V) is lost.
    public var voltageThresholdDeciVolts: Int64 = 1_320
    /// The share of an area's asked customer meters that must be silent, basis points.
    public var silentShareBasisPoints: Int64 = 5_000
    /// The fewest silent customer meters that make an outage.
    public var silentMeters = 3
    /// The power-fail signal's value file, if any.
    public var powerFailPath: String? = nil
    /// What the file holds while the board's supply has failed.
    public var powerFailValue = "1"
    public var utcOffset: UTCOffset = .china

    public init() {}

    /// The settings of `config`.
    public init(config: Config) {
      voltageThresholdDeciVolts = config.integer("outage.voltage_threshold") * 10
      silentShareBasisPoints = config.integer("outage.silent_share")
      silentMeters = Int(config.integer("outage.silent_meters"))
      powerFailPath = config.string("outage.power_fail_path")
      powerFailValue = config.string("outage.power_fail_value") ?? "1"
      utcOffset = UTCOffset(seconds: config.integer("device.utc_offset") * 60) ?? .china
    }
  }

  /// A customer meter of an area.
  struct Meter {
    let address: String
    let customer: String
    /// `A`, `B`, `C` or `ABC`.
    let phase: String
    let sensitive: Bool
  }

  struct Area {
    var areaMeter: String? = nil
    var meters: [String: Meter] = [:]
  }

  /// What the observations say now, per area.
  struct Detection {
    /// Phases the area meter reports below the threshold.
    var lostPhases: Set<String> = []
    /// Customer meters silent in the last cycle, when they were enough to be an outage.
    var silentMeters: Set<String> = []
  }

  /// An outage not over yet.
  struct Open {
    let id: Int64
    let startedAt: Int64
    var phases: Set<String>
    var causes: Set<String>
    var meters: Set<String>
    let planned: String?
  }

  let store: AgentStore
  let outbox: Outbox
  let settings: Settings
  private var areas: [String: Area] = [:]
  private var areaOfMeter: [String: String] = [:]
  private var areaOfAreaMeter: [String: String] = [:]
  private var detection: [String: Detection] = [:]
  private var open: [String: Open] = [:]
  private var powerFailed = false
  private var nextPowerCheck: Int64 = 0
  private var nextFiguresCheck: Int64 = 0
  private var powerFileWarned = false
  private var enqueued = false

  /// The areas of the archive and the outages left open by the last run.
  /// - Throws: `SQLiteError` reading them.
  public init(store: AgentStore, outbox: Outbox, settings: Settings) throws(SQLiteError) {
    self.store = store
    self.outbox = outbox
    self.settings = settings
    try loadArchive()
    for row in try store.db.query(
      "SELECT id, area, phases, causes, started_at, meters, planned FROM outages WHERE ended_at IS NULL")
    {
      let area = row.text(1) ?? ""
      let causes = Set((row.text(3) ?? "").split(separator: ",").map { String($0) })
      let phases = Set((row.text(2) ?? "").utf8.map { String(UnicodeScalar($0)) })
      var meters = Set<String>()
      for meter in try store.db.query("SELECT value FROM json_each(?1)", [.text(row.text(5) ?? "[]")]) {
        if let address = meter.text(0) { meters.insert(address) }
      }
      open[area] = Open(
        id: row.int64(0) ?? 0, startedAt: row.int64(4) ?? 0, phases: phases, causes: causes, meters: meters,
        planned: row.text(6))
      // Until observed again, the causes hold.
      var d = Detection()
      if causes.contains("voltage") { d.lostPhases = phases }
      if causes.contains("silent-meters") { d.silentMeters = meters }
      detection[area] = d
      if causes.contains("power-fail") { powerFailed = true }
      Log.warn(
        "outage",
        "area " + area + " has been without supply since " + formatUTC(milliseconds: row.int64(4) ?? 0)
          + " (" + (row.text(3) ?? "") + "), as recorded before this start")
    }
  }

  /// Reads the areas from the archive again (after an archive command). The outage
  /// of an area that left the archive ends at `wall` (`"end_reason":"area-removed"`):
  /// nothing would observe its end any more.
  public func reloadArchive(wall: Int64) {
    do {
      try loadArchive(endingRemovedAt: wall)
    } catch {
      Log.error("outage", "reading the archive: " + error.description)
    }
  }

  private func loadArchive(endingRemovedAt wall: Int64? = nil) throws(SQLiteError) {
    var loaded: [String: Area] = [:]
    var ofMeter: [String: String] = [:]
    var ofAreaMeter: [String: String] = [:]
    for row in try store.db.query(
      "SELECT address, customer, area, phase, outage_sensitive, area_meter FROM archive_meters WHERE area IS NOT NULL"
    ) {
      let address = row.text(0) ?? ""
      let area = row.text(2) ?? ""
      if (row.int64(5) ?? 0) != 0 {
        loaded[area, default: Area()].areaMeter = address
        ofAreaMeter[address] = area
      } else {
        loaded[area, default: Area()].meters[address] = Meter(
          address: address, customer: row.text(1) ?? "", phase: row.text(3) ?? "A",
          sensitive: (row.int64(4) ?? 0) != 0)
        ofMeter[address] = area
      }
    }
    if let wall {
      for (area, outage) in open where loaded[area] == nil {
        Log.warn("outage", "area " + area + " left the archive while without supply: its outage ends")
        try end(area, outage, wall: wall, reason: "area-removed")
        detection[area] = nil
      }
    }
    areas = loaded
    areaOfMeter = ofMeter
    areaOfAreaMeter = ofAreaMeter
  }

  /// The area meters, whose voltages acquisition reads in every cycle.
  public var areaMeters: Set<String> { Set(areaOfAreaMeter.keys) }

  /// True once after events were enqueued (to wake the uplink).
  public func takeEnqueued() -> Bool {
    defer { enqueued = false }
    return enqueued
  }

  /// The areas without supply now.
  public var areasWithoutSupply: [String] { open.keys.sorted() }

  // MARK: - Observations

  /// The phase voltages an area meter reported (0.1 V; nil for a phase it does not
  /// give).
  public func voltages(meter: Address, deciVolts: [Int64?], wall: Int64) {
    guard let area = areaOfAreaMeter[meter.description] else { return }
    var lost = Set<String>()
    for (i, value) in deciVolts.enumerated() where i < 3 {
      if let value, value < settings.voltageThresholdDeciVolts { lost.insert(["A", "B", "C"][i]) }
    }
    var d = detection[area] ?? Detection()
    d.lostPhases = lost
    // The supply is back at the transformer: the meters it feeds are expected back too.
    if lost.isEmpty, open[area]?.causes.contains("voltage") == true { d.silentMeters = [] }
    detection[area] = d
    evaluate(area, wall: wall)
  }

  /// The end of an acquisition cycle: for each meter asked in it, whether it answered.
  public func cycleEnded(_ asked: [(meter: Address, answered: Bool)], wall: Int64) {
    var askedPerArea: [String: Int] = [:]
    var silentPerArea: [String: Set<String>] = [:]
    for (meter, answered) in asked {
      let address = meter.description
      guard let area = areaOfMeter[address] else { continue }
      askedPerArea[area, default: 0] += 1
      if !answered { silentPerArea[area, default: []].insert(address) }
    }
    for (area, count) in askedPerArea {
      let silent = silentPerArea[area] ?? []
      let enough =
        silent.count >= max(1, settings.silentMeters)
        && Int64(silent.count) * 10_000 >= settings.silentShareBasisPoints * Int64(count)
      var d = detection[area] ?? Detection()
      d.silentMeters = enough ? silent : []
      detection[area] = d
      evaluate(area, wall: wall)
    }
  }

  /// True when `meter` is without supply in an outage, or its area in a planned
  /// outage: its silence is no missing-read alarm.
  public func covers(_ meter: Address, wall: Int64) -> Bool {
    let address = meter.description
    guard let area = areaOfMeter[address] ?? areaOfAreaMeter[address] else { return false }
    if let outage = open[area] {
      // The area meter itself may be without supply (no auxiliary supply).
      if outage.meters.contains(address) || areaOfAreaMeter[address] != nil { return true }
      if let phase = areas[area]?.meters[address]?.phase,
        phase.utf8.contains(where: { outage.phases.contains(String(UnicodeScalar($0))) })
      {
        return true
      }
    }
    return (try? PlannedOutages.active(store.db, area: area, at: wall)) != nil
  }

  // MARK: - Loop

  /// Reads the power-fail signal (every second) and sends the daily figures of the
  /// days that ended (checked every minute).
  public func tick(monotonic: Int64, wall: Int64) {
    if monotonic >= nextPowerCheck {
      nextPowerCheck = monotonic + 1_000
      checkPowerFail(wall: wall)
    }
    if monotonic >= nextFiguresCheck {
      nextFiguresCheck = monotonic + 60_000
      do {
        if try sendDailyFigures(wall: wall) > 0 { enqueued = true }
      } catch {
        Log.error("outage", "daily reliability figures: " + error.description)
      }
    }
  }

  /// The next monotonic time `tick` has something to do.
  public func nextDeadline(monotonic: Int64) -> Int64 {
    min(settings.powerFailPath != nil || powerFailed ? nextPowerCheck : Int64.max, nextFiguresCheck)
  }

  private func checkPowerFail(wall: Int64) {
    var failed = false
    if let path = settings.powerFailPath {
      do {
        let text = try Files.readText(path)
        failed = trimmed(text) == settings.powerFailValue
        powerFileWarned = false
      } catch {
        if !powerFileWarned {
          powerFileWarned = true
          Log.warn(
            "outage", "outage.power_fail_path " + path + ": " + error.description + " (taken as power on)")
        }
      }
    }
    guard failed != powerFailed else { return }
    powerFailed = failed
    Log.warn("outage", failed ? "power-fail signal on: the supply is lost" : "power-fail signal off")
    for area in areas.keys.sorted() { evaluate(area, wall: wall) }
    for area in open.keys.sorted() where areas[area] == nil { evaluate(area, wall: wall) }
  }

  private func trimmed(_ text: String) -> String {
    var scalars = Substring(text)
    while let last = scalars.last, last == "\n" || last == " " || last == "\r" || last == "\t" {
      scalars = scalars.dropLast()
    }
    while let first = scalars.first, first == " " || first == "\t" { scalars = scalars.dropFirst() }
    return String(scalars)
  }

  // MARK: - Decisions

  /// Opens, widens or ends `area`'s outage as the observations say.
  private func evaluate(_ area: String, wall: Int64) {
    let d = detection[area] ?? Detection()
    var causes = Set<String>()
    if !d.lostPhases.isEmpty { causes.insert("voltage") }
    if !d.silentMeters.isEmpty { causes.insert("silent-meters") }
    if powerFailed { causes.insert("power-fail") }
    do {
      if causes.isEmpty {
        if let outage = open[area] { try end(area, outage, wall: wall) }
        return
      }
      let model = areas[area] ?? Area()
      var phases = d.lostPhases
      var meters = d.silentMeters
      if powerFailed {
        phases = ["A", "B", "C"]
        meters.formUnion(model.meters.keys)
      } else {
        for (address, meter) in model.meters
        where meter.phase.utf8.contains(where: { d.lostPhases.contains(String(UnicodeScalar($0))) }) {
          meters.insert(address)
        }
        for address in d.silentMeters {
          for unit in (model.meters[address]?.phase ?? "").utf8 { phases.insert(String(UnicodeScalar(unit))) }
        }
      }
      if var outage = open[area] {
        let grew = !meters.isSubset(of: outage.meters)
        let changed = grew || !phases.isSubset(of: outage.phases) || !causes.isSubset(of: outage.causes)
        guard changed else { return }
        outage.meters.formUnion(meters)
        outage.phases.formUnion(phases)
        outage.causes.formUnion(causes)
        try update(area, outage, report: grew, wall: wall)
        open[area] = outage
      } else {
        try start(area, phases: phases, causes: causes, meters: meters, wall: wall)
      }
    } catch {
      Log.error("outage", "recording the supply of area " + area + ": " + error.description)
    }
  }

  private func start(
    _ area: String, phases: Set<String>, causes: Set<String>, meters: Set<String>, wall: Int64
  ) throws(SQLiteError) {
    let planned = try PlannedOutages.active(store.db, area: area, at: wall)
    let outage = try store.db.transaction(.full) { () throws(SQLiteError) -> Open in
      try store.db.run(
        """
        INSERT INTO outages (area, phases, causes, started_at, customers, meters, planned)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
        """,
        [
          .text(area), .text(joined(phases, "")), .text(joined(causes, ",")), .integer(wall),
          .integer(Int64(customers(area, meters).count)), .text(jsonList(meters.sorted())),
          planned.map { .text($0) } ?? .null,
        ])
      let outage = Open(
        id: store.db.lastInsertRowID, startedAt: wall, phases: phases, causes: causes, meters: meters,
        planned: planned)
      try enqueue("start", area, outage, wall: wall)
      return outage
    }
    open[area] = outage
    enqueued = true
    Log.warn(
      "outage",
      "area " + area + " lost supply (" + joined(causes, ", ") + "; phases " + joined(phases, "") + ", "
        + String(customers(area, meters).count) + " customer(s))"
        + (planned.map { " in planned outage " + $0 } ?? ""))
  }

  private func update(_ area: String, _ outage: Open, report: Bool, wall: Int64) throws(SQLiteError) {
    try store.db.transaction(.full) { () throws(SQLiteError) in
      try store.db.run(
        "UPDATE outages SET phases = ?2, causes = ?3, customers = ?4, meters = ?5 WHERE id = ?1",
        [
          .integer(outage.id), .text(joined(outage.phases, "")), .text(joined(outage.causes, ",")),
          .integer(Int64(customers(area, outage.meters).count)), .text(jsonList(outage.meters.sorted())),
        ])
      if report { try enqueue("update", area, outage, wall: wall) }
    }
    if report { enqueued = true }
  }

  private func end(_ area: String, _ outage: Open, wall: Int64, reason: String? = nil) throws(SQLiteError) {
    let endedAt = max(wall, outage.startedAt)
    try store.db.transaction(.full) { () throws(SQLiteError) in
      try store.db.run(
        "UPDATE outages SET ended_at = ?2 WHERE id = ?1", [.integer(outage.id), .integer(endedAt)])
      try enqueue("end", area, outage, wall: endedAt, endReason: reason)
    }
    open[area] = nil
    enqueued = true
    Log.info(
      "outage",
      "area " + area + ": supply back after " + String((endedAt - outage.startedAt) / 1000) + " s")
  }

  /// The distinct customers of `meters` (sorted).
  private func customers(_ area: String, _ meters: Set<String>) -> [String] {
    var out = Set<String>()
    for address in meters {
      if let customer = areas[area]?.meters[address]?.customer, !customer.isEmpty { out.insert(customer) }
    }
    return out.sorted()
  }

  /// Enqueues `outage.<what>` for `outage`.
  private func enqueue(_ what: String, _ area: String, _ outage: Open, wall: Int64, endReason: String? = nil)
    throws(SQLiteError)
  {
    let q = { (text: String) -> String in "\"" + jsonEscaped(text) + "\"" }
    let list = customers(area, outage.meters)
    var sensitive = ""
    for address in outage.meters.sorted() {
      guard let meter = areas[area]?.meters[address], meter.sensitive else { continue }
      sensitive +=
        (sensitive.isEmpty ? "" : ",") + "{\"customer\":" + q(meter.customer) + ",\"meter\":" + q(address)
        + "}"
    }
    let suffix = what == "update" ? "update-" + String(wall) : what
    var record =
      "{\"id\":" + q(store.storeID + "-outage-" + String(outage.id) + "-" + suffix) + ",\"ts\":"
      + String(wall)
      + ",\"type\":\"outage." + what + "\",\"outage\":" + String(outage.id) + ",\"area\":" + q(area)
      + ",\"kind\":" + (outage.planned == nil ? "\"unplanned\"" : "\"planned\"") + ",\"planned\":"
      + (outage.planned.map(q) ?? "null") + ",\"phases\":" + q(joined(outage.phases, "")) + ",\"causes\":"
      + jsonList(outage.causes.sorted()) + ",\"start\":" + String(outage.startedAt)
    if what == "end" {
      let duration = wall - outage.startedAt
      record +=
        ",\"end\":" + String(wall) + ",\"duration_s\":" + String(duration / 1000) + ",\"customer_minutes\":"
        + String((duration * Int64(list.count) + 30_000) / 60_000)
      if let endReason { record += ",\"end_reason\":" + q(endReason) }
    }
    record +=
      ",\"customers_count\":" + String(list.count) + ",\"meters_count\":" + String(outage.meters.count)
      + ",\"customers\":" + jsonList(list) + ",\"sensitive\":[" + sensitive + "]}"
    try outbox.enqueue(.events, record: record, retention: .billing, now: wall)
  }

  // MARK: - Daily figures

  /// Sends `outage.daily` for every area and every local day that ended and was not
  /// sent yet (at most 7 days back; before the first, yesterday).
  /// - Returns: the records enqueued.
  func sendDailyFigures(wall: Int64) throws(SQLiteError) -> Int {
    let offset = settings.utcOffset
    let today = offset.localDateTime(fromUnix: unixSeconds(milliseconds: wall)).date.daysSinceEpoch
    let yesterday = today - 1
    let last = try store.db.query("SELECT figures_day FROM outage_state WHERE singleton = 1").first?.int64(0)
    var day = max(last.map { $0 + 1 } ?? yesterday, yesterday - 6)
    guard day <= yesterday else { return 0 }
    var sent = 0
    while day <= yesterday {
      let records = try Self.dailyRecords(
        store: store, day: CivilDate(daysSinceEpoch: day), offset: offset, now: wall)
      try store.db.transaction(.full) { () throws(SQLiteError) in
        for record in records { try outbox.enqueue(.events, record: record, retention: .billing, now: wall) }
        try store.db.run(
          "UPDATE outage_state SET figures_day = ?1 WHERE singleton = 1", [.integer(day)])
      }
      if !records.isEmpty {
        Log.info(
          "outage",
          "reliability figures of " + CivilDate(daysSinceEpoch: day).isoText + " for " + String(records.count)
            + " area(s) enqueued for HQ")
      }
      sent += records.count
      day += 1
    }
    return sent
  }

  /// The `outage.daily` records of `day`, one per area of the archive.
  static func dailyRecords(store: AgentStore, day: CivilDate, offset: UTCOffset, now: Int64)
    throws(SQLiteError) -> [String]
  {
    var records: [String] = []
    for figures in try Self.figures(store.db, day: day, offset: offset, now: now) {
      records.append(
        "{\"id\":\"" + store.storeID + "-outage-daily-" + jsonEscaped(figures.area) + "-" + day.isoText
          + "\",\"ts\":" + String(now) + ",\"type\":\"outage.daily\"," + String(figures.json.dropFirst()))
    }
    return records
  }

  /// The reliability figures of one area and day.
  public struct AreaFigures: Sendable {
    public let area: String
    public let day: CivilDate
    /// Customers in the area (archive).
    public let customers: Int
    public let unplanned: ReliabilityFigures
    public let planned: ReliabilityFigures

    /// `{"area","day","customers","interruptions","continued","ongoing","customer_minutes",
    /// "longest_s","planned":{...the same}}`.
    public var json: String {
      func body(_ f: ReliabilityFigures) -> String {
        "\"interruptions\":" + String(f.interruptions) + ",\"continued\":" + String(f.continued)
          + ",\"ongoing\":" + String(f.ongoing) + ",\"customer_minutes\":" + String(f.customerMinutes)
          + ",\"longest_s\":" + String(f.longestSeconds)
      }
      return "{\"area\":\"" + jsonEscaped(area) + "\",\"day\":\"" + day.isoText + "\",\"customers\":"
        + String(customers) + "," + body(unplanned) + ",\"planned\":{" + body(planned) + "}}"
    }
  }

  /// The figures of every area of the archive (and every area with an outage) for
  /// local `day`, an outage still open counted up to `now`.
  public static func figures(_ db: Connection, day: CivilDate, offset: UTCOffset, now: Int64)
    throws(SQLiteError) -> [AreaFigures]
  {
    let from = offset.unixSeconds(startOf: day) * 1000
    let to = offset.unixSeconds(startOf: day.adding(days: 1)) * 1000
    var interruptions: [String: [Interruption]] = [:]
    for row in try db.query(
      """
      SELECT area, started_at, ended_at, customers, planned FROM outages
      WHERE started_at < ?2 AND (ended_at IS NULL OR ended_at > ?1 OR started_at >= ?1) ORDER BY id
      """, [.integer(from), .integer(to)])
    {
      interruptions[row.text(0) ?? "", default: []].append(
        Interruption(
          start: row.int64(1) ?? 0, end: row.int64(2), customers: Int(row.int64(3) ?? 0),
          planned: row.text(4) != nil))
    }
    var customers: [String: Int] = [:]
    for row in try db.query(
      """
      SELECT area, count(DISTINCT customer) FROM archive_meters
      WHERE area IS NOT NULL AND area_meter = 0 GROUP BY area
      """)
    {
      customers[row.text(0) ?? ""] = Int(row.int64(1) ?? 0)
    }
    var out: [AreaFigures] = []
    for area in Set(customers.keys).union(interruptions.keys).sorted() {
      let list = interruptions[area] ?? []
      out.append(
        AreaFigures(
          area: area, day: day, customers: customers[area] ?? 0,
          unplanned: ReliabilityFigures(list, from: from, to: to, now: now, planned: false),
          planned: ReliabilityFigures(list, from: from, to: to, now: now, planned: true)))
    }
    return out
  }
}

/// `items` sorted and joined with `separator`.
private func joined(_ items: Set<String>, _ separator: String) -> String {
  var out = ""
  for (i, item) in items.sorted().enumerated() { out += (i == 0 ? "" : separator) + item }
  return out
}

/// A JSON array of strings.
func jsonList(_ items: [String]) -> String {
  var out = "["
  for (i, item) in items.enumerated() { out += (i == 0 ? "\"" : ",\"") + jsonEscaped(item) + "\"" }
  return out + "]"
}

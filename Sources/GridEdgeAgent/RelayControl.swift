import DLT645
import GridEdgeContract
import GridEdgeCore
import Runtime
import SQLiteStore

/// Disconnection and reconnection of customers (DESIGN.md §6): decided locally from
/// the prepaid ledger or ordered by signed commands, always checked against the local
/// policy first, executed over the meter buses with DL/T 645 0x1C and verified by
/// reading the relay back.
///
/// - **Decision** (`evaluate`, after every billing pass and every command): a customer
///   whose balance is below the overdraft limit (`prepaid.overdraft_limit`) is a
///   candidate for each of its meters, checked with `DisconnectPolicy` (keep-power from
///   the archive, the `control.*` calendar, hourly maximum and grace of its grade). A
///   meter cut for arrears is closed again once the balance reaches the close-permit
///   amount (`prepaid.close_permit`); a meter cut by HQ's order only by HQ's
///   `reconnect`. A `reconnect` during arrears holds the customer connected until the
///   balance is back above the overdraft limit. A refusal is reported once per arrears
///   episode and reason as a `relay.refused` event (not `within-grace`, which only waits).
///   A trip for arrears not carried out yet is withdrawn when its ground goes away.
///   No trip goes out in a no-disconnect window, whenever it was decided.
/// - **State** (table `relay`, migration 10): per meter the desired state, why, the
///   ordering command, tries, the next try's time, and the last verified state; pending
///   operations continue after a restart.
/// - **Execution**: the 0x1C request (trip, or close-permit / direct close with
///   valid-until) goes to the head of the meter's bus queue through `Acquisition`, so it
///   runs between the polls, before them, on the bus's one line. Then run status word 3
///   (04 00 05 03) is read: the relay must read open (D4) after a trip, closed after a
///   close (or, with close-permit, the close command registered, D6, waiting for the
///   customer's button). After a verified trip the energy total is read as the base
///   for the bypass check. A failed try is retried after `control.retry_min` doubled
///   per try (at most `control.retry_max`); after `control.attempts` tries `relay.failed`.
/// - **Anomaly**: a meter verified open whose real-time energy rises above that base
///   raises `relay.energy_while_open` (possible bypass) once per opening.
/// - Every decision, refusal, verification and failure is an event (class `events`) and
///   an entry of the audit chain; a command's final outcome also goes up in class
///   `results` (`executed` or `failed`).
///
/// A component of the agent's poll loop: `tick(wall:)` after the acquisition's,
/// `nextDeadline(wall:)`. One thread.
public final class RelayControl {
  public let settings: RelaySettings
  let store: AgentStore
  let outbox: Outbox
  let thresholds: GradeThresholds
  let acquisition: Acquisition?

  /// A pending operation as stored in `relay`.
  struct Operation: Equatable {
    var meter: String
    var customer: String
    var open: Bool
    var why: String
    var command: String?
    var counter: String?
    var attempts: Int
    var nextAttemptAt: Int64
  }

  private enum Step: Equatable {
    case command
    case status
    case energy
  }

  private struct Flight {
    var open: Bool
    var step: Step
    /// The bus ticket of the exchange awaited.
    var ticket: Int64
    /// The meter's refusal of the 0x1C request, if it refused (the relay is still read).
    var refusal: String?
  }

  /// A meter verified open, watched for energy.
  private struct OpenMeter {
    var customer: String
    var verifiedAt: Int64
    var baseWattHours: Int64?
  }

  private var operations: [String: Operation] = [:]
  private var flights: [String: Flight] = [:]
  private var openMeters: [String: OpenMeter] = [:]
  private var dirty = true
  private var enqueued = false

  public init(
    store: AgentStore, outbox: Outbox, thresholds: GradeThresholds, settings: RelaySettings,
    acquisition: Acquisition?
  ) {
    self.store = store
    self.outbox = outbox
    self.thresholds = thresholds
    self.settings = settings
    self.acquisition = acquisition
  }

  /// True once after records were enqueued (to wake the uplink).
  public func takeEnqueued() -> Bool {
    defer { enqueued = false }
    return enqueued
  }

  /// Pending operations (after `tick`).
  public var pendingCount: Int { operations.count }

  // MARK: - Poll loop

  /// Collects finished exchanges and starts the operations that are due.
  public func tick(wall: Int64) {
    if dirty { reload() }
    if let acquisition {
      for completion in acquisition.takeControlCompletions() { handle(completion, wall: wall) }
    }
    var blocked: Bool? = nil
    for (meter, operation) in operations where flights[meter] == nil {
      // A wait longer than any backoff means the wall clock was set back: try now.
      guard operation.nextAttemptAt <= wall || operation.nextAttemptAt - wall > settings.retryMaxMilliseconds
      else { continue }
      // Tries wait while this device's clock is not set, and trips while the local time
      // is in a no-disconnect window (a trip decided or ordered before it, or retried
      // into it, goes out after it).
      if operation.open && blocked == nil { blocked = inNoDisconnectWindow(wall: wall) }
      if wall < Acquisition.plausibleWall
        || (operation.open && (blocked == true || inPlannedOutage(meter, wall)))
      {
        operations[meter]?.nextAttemptAt = wall + Self.postponeMilliseconds
        continue
      }
      start(operation, wall: wall)
    }
  }

  /// True when `meter`'s area is in a planned outage at `wall`: its trips wait.
  private func inPlannedOutage(_ meter: String, _ wall: Int64) -> Bool {
    do {
      return
        (try store.db.scalarInt(
          """
          SELECT count(*) FROM planned_outages p JOIN archive_meters m ON m.area = p.area
          WHERE m.address = ?1 AND p.starts_at <= ?2 AND ?2 < p.ends_at AND p.cancelled_at IS NULL
          """, [.text(meter), .integer(wall)]) ?? 0) > 0
    } catch {
      Log.error("relay", "reading the planned outages: " + error.description)
      return false
    }
  }

  /// How long a try waits for a no-disconnect window (or an unset clock) to pass before
  /// it looks again.
  static let postponeMilliseconds: Int64 = 60_000

  /// True when local time `wall` is in a no-disconnect window (holiday, day, hours).
  func inNoDisconnectWindow(wall: Int64) -> Bool {
    let request = DisconnectRequest(
      origin: .ordered, keepPower: false,
      now: settings.utcOffset.localDateTime(fromUnix: unixSeconds(milliseconds: wall)),
      disconnectsInLastHour: 0, secondsBeyondOverdraft: nil, graceSeconds: 0)
    switch settings.policy.decideDisconnect(request) {
    case .refused(.holiday), .refused(.weekend), .refused(.dailyWindow): return true
    default: return false
    }
  }

  /// The wall time of the next try waiting for its time, if any.
  public func nextDeadline(wall: Int64) -> Int64? {
    var next: Int64? = nil
    for (meter, operation) in operations where flights[meter] == nil {
      next = min(next ?? operation.nextAttemptAt, operation.nextAttemptAt)
    }
    return next
  }

  /// Reads the pending operations and the open meters from the database.
  func reload() {
    do {
      var loaded: [String: Operation] = [:]
      for row in try store.db.query(
        """
        SELECT meter, customer, desired, why, command, command_ctr, attempts, next_attempt_at
        FROM relay WHERE state = 'pending'
        """)
      {
        let meter = row.text(0) ?? ""
        loaded[meter] = Operation(
          meter: meter, customer: row.text(1) ?? "", open: row.text(2) == "open", why: row.text(3) ?? "",
          command: row.text(4), counter: row.text(5), attempts: Int(row.int64(6) ?? 0),
          nextAttemptAt: row.int64(7) ?? 0)
      }
      var open: [String: OpenMeter] = [:]
      for row in try store.db.query(
        """
        SELECT meter, customer, verified_at, verified_wh FROM relay
        WHERE desired = 'open' AND state = 'done' AND verified = 'open' AND anomaly_at IS NULL
        """)
      {
        open[row.text(0) ?? ""] = OpenMeter(
          customer: row.text(1) ?? "", verifiedAt: row.int64(2) ?? 0, baseWattHours: row.int64(3))
      }
      operations = loaded
      openMeters = open
      // A flight whose operation changed or went away is abandoned.
      for (meter, flight) in flights where operations[meter]?.open != flight.open { flights[meter] = nil }
      dirty = false
    } catch {
      Log.error("relay", "reading relay operations: " + error.description)
    }
  }

  // MARK: - Decisions

  /// The local decisions: disconnections for arrears, reconnections after top-ups,
  /// the end of arrears episodes, and the bypass check of open meters.
  public func evaluate(wall: Int64) {
    do {
      try store.db.transaction { () throws(SQLiteError) in
        try decide(wall: wall)
      }
    } catch {
      Log.error("relay", "deciding disconnections: " + error.description)
    }
    if dirty { reload() }
    checkOpenMeters(wall: wall)
  }

  private func decide(wall: Int64) throws(SQLiteError) {
    let db = store.db
    // Each customer's own grade's limits: the base ones as ?1, the grades' as JSON in ?2.
    let overdraft: [SQLiteValue] = [.integer(thresholds.base.overdraftLimit.fen), .text(thresholds.json)]
    let belowOverdraft = GradeThresholds.overdraftSQL(of: "a.customer", base: 1, json: 2)
    let now = settings.utcOffset.localDateTime(fromUnix: unixSeconds(milliseconds: wall))
    var lastHour = try disconnectsInLastHour(wall: wall)
    // Arrears episodes that ended, or whose customer left the archive.
    try db.run(
      """
      DELETE FROM arrears WHERE customer NOT IN (SELECT a.customer FROM accounts a WHERE a.balance_fen <
      """ + belowOverdraft + ")", overdraft)
    let rows = try db.query(
      """
      SELECT a.customer, a.balance_fen, m.address, m.keep_power,
        coalesce((SELECT cg.grade FROM credit_grades cg WHERE cg.customer = a.customer), m.grade), r.desired,
        ar.beyond_since,
        ar.held_by, ar.refused, po.area IS NOT NULL
      FROM accounts a JOIN archive_meters m ON m.customer = a.customer AND m.area_meter = 0
      LEFT JOIN relay r ON r.meter = m.address LEFT JOIN arrears ar ON ar.customer = a.customer
      LEFT JOIN (SELECT DISTINCT area FROM planned_outages
        WHERE starts_at <= ?3 AND ?3 < ends_at AND cancelled_at IS NULL) po ON po.area = m.area
      WHERE a.balance_fen <
      """ + belowOverdraft + " ORDER BY a.balance_fen, a.customer, m.address", overdraft + [.integer(wall)])
    // Deepest arrears first: under the hourly maximum they are cut first.
    var since: [String: Int64] = [:]
    var reported: [String: String] = [:]
    for row in rows {
      let customer = row.text(0) ?? ""
      let balance = row.int64(1) ?? 0
      let meter = row.text(2) ?? ""
      if row.text(7) != nil { continue }  // HQ ordered the customer reconnected during this episode
      if since[customer] == nil {
        if let stored = row.int64(6) {
          since[customer] = stored
          reported[customer] = row.text(8) ?? ""
        } else {
          let start = try beyondSince(customer: customer, wall: wall)
          try db.run(
            "INSERT INTO arrears (customer, beyond_since) VALUES (?1, ?2)",
            [.text(customer), .integer(start)])
          since[customer] = start
          reported[customer] = ""
        }
      }
      if row.text(5) == "open" { continue }  // cut, or being cut
      let request = DisconnectRequest(
        origin: .arrears, keepPower: (row.int64(3) ?? 0) != 0, now: now, disconnectsInLastHour: lastHour,
        secondsBeyondOverdraft: max(0, unixSeconds(milliseconds: wall - (since[customer] ?? wall))),
        graceSeconds: settings.graceSeconds(grade: row.text(4) ?? ""), inPlannedOutage: row.int64(9) == 1)
      switch settings.policy.decideDisconnect(request) {
      case .allowed:
        try self.request(
          meter: meter, customer: customer, open: true, why: "overdraft", command: nil, counter: nil,
          balance: balance, wall: wall)
        lastHour += 1
      case .refused(let refusal):
        guard refusal != .withinGrace, reported[customer] != refusal.code else { continue }
        reported[customer] = refusal.code
        try db.run(
          "UPDATE arrears SET refused = ?2 WHERE customer = ?1", [.text(customer), .text(refusal.code)])
        try refused(
          meter: meter, customer: customer, origin: "overdraft", refusal: refusal, balance: balance,
          counter: nil,
          wall: wall)
      }
    }
    // Reconnections: meters cut for arrears whose balance reached the close-permit amount.
    for row in try db.query(
      """
      SELECT r.meter, r.customer, a.balance_fen FROM relay r JOIN accounts a ON a.customer = r.customer
      WHERE r.desired = 'open' AND r.why = 'overdraft' AND a.balance_fen >=
      """ + GradeThresholds.closePermitSQL(of: "a.customer", base: 1, json: 2),
      [.integer(thresholds.base.closePermit.fen), .text(thresholds.json)])
    {
      try request(
        meter: row.text(0) ?? "", customer: row.text(1) ?? "", open: false, why: "topup", command: nil,
        counter: nil, balance: row.int64(2) ?? 0, wall: wall)
    }
    // Trips for arrears not carried out yet whose ground went away (a top-up above the
    // overdraft limit, keep-power flagged since): withdrawn, the relay kept closed.
    for row in try db.query(
      """
      SELECT r.meter, r.customer, a.balance_fen FROM relay r JOIN accounts a ON a.customer = r.customer
      LEFT JOIN archive_meters m ON m.address = r.meter
      WHERE r.desired = 'open' AND r.why = 'overdraft' AND r.state = 'pending'
        AND (coalesce(m.keep_power, 0) != 0 OR a.balance_fen >=
      """ + belowOverdraft + ")", overdraft)
    {
      try request(
        meter: row.text(0) ?? "", customer: row.text(1) ?? "", open: false, why: "withdrawn", command: nil,
        counter: nil, balance: row.int64(2) ?? 0, wall: wall)
    }
  }

  /// When the customer's balance went below the overdraft limit: the first ledger
  /// entry after the last one at or above it (`wall` when there is none).
  private func beyondSince(customer: String, wall: Int64) throws(SQLiteError) -> Int64 {
    let limit = try thresholds.thresholds(customer: customer, db: store.db).overdraftLimit
    return try store.db.scalarInt(
      """
      SELECT min(ts) FROM ledger WHERE customer = ?1 AND id > coalesce(
        (SELECT max(id) FROM ledger WHERE customer = ?1 AND balance_fen >= ?2), 0)
      """, [.text(customer), .integer(limit.fen)]) ?? wall
  }

  private func disconnectsInLastHour(wall: Int64) throws(SQLiteError) -> Int {
    Int(
      try store.db.scalarInt(
        "SELECT count(*) FROM relay_log WHERE action = 'trip' AND outcome = 'requested' AND ts > ?1",
        [.integer(wall - 3_600_000)]) ?? 0)
  }

  // MARK: - Commands

  /// Applies a verified `disconnect` or `reconnect` command, inside the command's
  /// transaction. Body: `{"meter":"<12 digits>"}` or `{"customer":"<id>"}` (every meter
  /// of the customer). A disconnection is checked against the local policy as HQ's
  /// order (no balance or grace check); a reconnection is never refused by policy.
  /// - Returns: the outcome for HQ: `applied` (queued; `executed` or `failed` follows
  ///   per meter in class results), or `rejected` with the policy's reason and a detail
  ///   starting "refused: ".
  func command(
    open: Bool, body: String, digest: String, counter: UInt64, wall: Int64
  ) throws(SQLiteError) -> CommandHandler.Outcome {
    let db = store.db
    let typeName = open ? "disconnect" : "reconnect"
    guard
      let fields = try db.query(
        """
        SELECT json_valid(?1) AND json_type(?1) = 'object', json_type(?1, '$.meter'), json_extract(?1, '$.meter'),
          json_type(?1, '$.customer'), json_extract(?1, '$.customer')
        """, [.text(body)]
      ).first, fields.int64(0) == 1
    else { return rejected("malformed", typeName + " body is not a JSON object") }
    let rows: [Row]
    if fields.text(1) == "text", let meter = fields.text(2) {
      rows = try db.query(
        """
        SELECT m.address, m.customer, m.keep_power, coalesce(a.balance_fen, 0), po.area IS NOT NULL
        FROM archive_meters m LEFT JOIN accounts a ON a.customer = m.customer
        LEFT JOIN (SELECT DISTINCT area FROM planned_outages
          WHERE starts_at <= ?2 AND ?2 < ends_at AND cancelled_at IS NULL) po ON po.area = m.area
        WHERE m.address = ?1 AND m.area_meter = 0
        """, [.text(meter), .integer(wall)])
      guard !rows.isEmpty else {
        return rejected("unknown-meter", "meter " + meter + " is not a customer meter in the archive")
      }
    } else if fields.text(3) == "text", let customer = fields.text(4) {
      rows = try db.query(
        """
        SELECT m.address, m.customer, m.keep_power, coalesce(a.balance_fen, 0), po.area IS NOT NULL
        FROM archive_meters m LEFT JOIN accounts a ON a.customer = m.customer
        LEFT JOIN (SELECT DISTINCT area FROM planned_outages
          WHERE starts_at <= ?2 AND ?2 < ends_at AND cancelled_at IS NULL) po ON po.area = m.area
        WHERE m.customer = ?1 AND m.area_meter = 0 ORDER BY m.address
        """, [.text(customer), .integer(wall)])
      guard !rows.isEmpty else {
        return rejected("unknown-customer", "customer " + customer + " has no meter in the archive")
      }
    } else {
      return rejected("malformed", typeName + " needs \"meter\" (12 digits) or \"customer\" (a string)")
    }
    let ctr = String(counter)
    if open {
      let now = settings.utcOffset.localDateTime(fromUnix: unixSeconds(milliseconds: wall))
      let lastHour = try disconnectsInLastHour(wall: wall)
      for row in rows {
        let request = DisconnectRequest(
          origin: .ordered, keepPower: (row.int64(2) ?? 0) != 0, now: now,
          disconnectsInLastHour: lastHour + rows.count - 1, secondsBeyondOverdraft: nil, graceSeconds: 0,
          inPlannedOutage: row.int64(4) == 1)
        if case .refused(let refusal) = settings.policy.decideDisconnect(request) {
          try refused(
            meter: row.text(0) ?? "", customer: row.text(1) ?? "", origin: "command", refusal: refusal,
            balance: row.int64(3) ?? 0, counter: ctr, wall: wall)
          return rejected(
            refusal.code,
            "refused: " + refusal.code + ": " + refusal.description + " (meter " + (row.text(0) ?? "") + ")")
        }
      }
    }
    var meters: [String] = []
    for row in rows {
      let meter = row.text(0) ?? ""
      let customer = row.text(1) ?? ""
      let balance = row.int64(3) ?? 0
      try request(
        meter: meter, customer: customer, open: open, why: "command", command: digest, counter: ctr,
        balance: balance, wall: wall)
      let limit = try thresholds.thresholds(customer: customer, db: db).overdraftLimit
      if !open && balance < limit.fen {
        // HQ's order holds the customer connected for the rest of this arrears episode.
        try db.run(
          """
          INSERT INTO arrears (customer, beyond_since, held_by) VALUES (?1, ?2, ?3)
          ON CONFLICT (customer) DO UPDATE SET held_by = excluded.held_by
          """, [.text(customer), .integer(wall), .text(ctr)])
      }
      meters.append(meter)
    }
    var list = ""
    for meter in meters { list += (list.isEmpty ? "" : ", ") + meter }
    return CommandHandler.Outcome(
      outcome: "applied", reason: "",
      detail: typeName + " of meter " + list + " queued; the verified relay state follows in class results")
  }

  private func rejected(_ reason: String, _ detail: String) -> CommandHandler.Outcome {
    CommandHandler.Outcome(outcome: "rejected", reason: reason, detail: detail)
  }

  // MARK: - Requests and their records

  /// Records a new desired state for `meter` (pending, tries from 0), in the caller's
  /// transaction, with its log row, event and audit entry.
  private func request(
    meter: String, customer: String, open: Bool, why: String, command: String?, counter: String?,
    balance: Int64, wall: Int64
  ) throws(SQLiteError) {
    let desired = open ? "open" : "closed"
    try store.db.run(
      """
      INSERT INTO relay (meter, customer, desired, why, command, command_ctr, requested_at, state, attempts,
        next_attempt_at)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?7)
      ON CONFLICT (meter) DO UPDATE SET customer = excluded.customer, desired = excluded.desired,
        why = excluded.why, command = excluded.command, command_ctr = excluded.command_ctr,
        requested_at = excluded.requested_at, state = 'pending', attempts = 0,
        next_attempt_at = excluded.next_attempt_at, last_error = NULL
      """,
      [
        .text(meter), .text(customer), .text(desired), .text(why), optionalText(command),
        optionalText(counter),
        .integer(wall),
      ])
    let action = open ? "trip" : "close"
    try log(
      meter: meter, customer: customer, action: action, why: why, outcome: "requested", detail: "", wall: wall
    )
    try event(
      "relay.requested", wall: wall,
      [
        ("meter", .text(meter)), ("customer", .text(customer)), ("action", .text(action)),
        ("why", .text(why)),
        ("ctr", optionalText(counter)), ("balance_fen", .integer(balance)),
      ])
    Log.info(
      "relay",
      "meter " + meter + " (" + customer + "): " + action + " requested (" + why
        + (counter.map { " ctr " + $0 } ?? "") + "), balance " + Money(fen: balance).yuanText)
    dirty = true
  }

  private func refused(
    meter: String, customer: String, origin: String, refusal: ControlRefusal, balance: Int64,
    counter: String?,
    wall: Int64
  ) throws(SQLiteError) {
    try log(
      meter: meter, customer: customer, action: "trip", why: origin, outcome: "refused", detail: refusal.code,
      wall: wall)
    try event(
      "relay.refused", wall: wall,
      [
        ("meter", .text(meter)), ("customer", .text(customer)), ("action", .text("trip")),
        ("why", .text(origin)),
        ("ctr", optionalText(counter)), ("reason", .text(refusal.code)),
        ("detail", .text(refusal.description)),
        ("balance_fen", .integer(balance)),
      ])
    Log.warn(
      "relay",
      "meter " + meter + " (" + customer + "): disconnection refused by local policy: " + refusal.code + " ("
        + refusal.description + ")")
  }

  /// Appends a row to `relay_log`; `wattHours` is the energy register read with it
  /// (after a verified trip: the base of the energy-while-open rule of the balance).
  private func log(
    meter: String, customer: String, action: String, why: String, outcome: String, detail: String,
    wall: Int64,
    wattHours: Int64? = nil
  ) throws(SQLiteError) {
    try store.db.run(
      """
      INSERT INTO relay_log (ts, meter, customer, action, why, outcome, detail, energy_wh)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
      """,
      [
        .integer(wall), .text(meter), .text(customer), .text(action), .text(why), .text(outcome),
        .text(detail), wattHours.map { .integer($0) } ?? .null,
      ])
  }

  /// Enqueues an event (class `events`) and appends it to the audit chain.
  private func event(_ type: String, wall: Int64, _ fields: [(String, SQLiteValue)]) throws(SQLiteError) {
    let record = try json(
      [("id", .text(try outbox.newRecordID("event"))), ("ts", .integer(wall)), ("type", .text(type))] + fields
    )
    try outbox.enqueue(.events, record: record, retention: .billing, now: wall)
    try AuditChain.append(store.db, kind: "relay", body: record, now: wall)
    enqueued = true
  }

  /// The final result of a commanded operation (class `results`).
  private func result(_ operation: Operation, outcome: String, reason: String, detail: String, wall: Int64)
    throws(SQLiteError)
  {
    guard let command = operation.command else { return }
    let record = try json([
      ("id", .text(try outbox.newRecordID("result"))), ("ts", .integer(wall)), ("cmd", .text(command)),
      ("ctr", optionalText(operation.counter)), ("typ", .text(operation.open ? "disconnect" : "reconnect")),
      ("meter", .text(operation.meter)), ("outcome", .text(outcome)), ("reason", .text(reason)),
      ("detail", .text(detail)),
    ])
    try outbox.enqueue(.results, record: record, retention: .billing, now: wall)
    try AuditChain.append(store.db, kind: "command", body: record, now: wall)
    enqueued = true
  }

  /// A JSON object of `fields` (nulls left out), built by SQLite's JSON1.
  private func json(_ fields: [(String, SQLiteValue)]) throws(SQLiteError) -> String {
    var sql = "SELECT json_patch('{}', json_object("
    var values: [SQLiteValue] = []
    for (i, field) in fields.enumerated() {
      sql += (i == 0 ? "" : ", ") + "?" + String(2 * i + 1) + ", ?" + String(2 * i + 2)
      values.append(.text(field.0))
      values.append(field.1)
    }
    sql += "))"
    return try store.db.query(sql, values).first?.text(0) ?? "{}"
  }

  // MARK: - Execution

  private func start(_ operation: Operation, wall: Int64) {
    var operation = operation
    guard let address = Address(operation.meter), let acquisition, acquisition.knows(address) else {
      operation.attempts += 1
      attemptFailed(
        operation, "the meter is not in the meter list (meter.file), so it has no bus", wall: wall)
      return
    }
    let local = settings.utcOffset.localDateTime(
      fromUnix: unixSeconds(milliseconds: wall) + settings.validForMinutes * 60)
    guard
      let validUntil = try? MeterDateTime(
        year: Int(local.date.year), month: local.date.month, day: local.date.day, hour: local.hour,
        minute: local.minute, second: local.second)
    else {
      operation.attempts += 1
      attemptFailed(
        operation, "this device's clock is not set (valid-until " + local.isoText + ")", wall: wall)
      return
    }
    operation.attempts += 1
    operations[operation.meter] = operation
    do {
      try store.db.run(
        "UPDATE relay SET attempts = ?2 WHERE meter = ?1 AND state = 'pending'",
        [.text(operation.meter), .integer(Int64(operation.attempts))])
    } catch {
      Log.error("relay", "recording a try of meter " + operation.meter + ": " + error.description)
    }
    let command = operation.open ? RelayCommand.trip : settings.closeCommand
    let ticket = acquisition.submitControl(
      .control(
        ControlRequest(
          password: settings.password, operatorCode: settings.operatorCode, command: command,
          validUntil: validUntil)), to: address)
    flights[operation.meter] = Flight(open: operation.open, step: .command, ticket: ticket ?? 0, refusal: nil)
    Log.info(
      "relay",
      "meter " + operation.meter + ": " + (operation.open ? "trip" : "close") + " (0x1C N1 "
        + hexString([command.rawValue]) + ", valid until " + validUntil.description + "), try "
        + String(operation.attempts) + " of " + String(settings.attempts))
  }

  private func handle(_ completion: MeterBus.Completion, wall: Int64) {
    let meter = completion.meter.description
    guard var flight = flights[meter], flight.ticket == completion.ticket else { return }
    guard let operation = operations[meter], operation.open == flight.open else {
      flights[meter] = nil  // superseded by a newer decision: started again by `tick`
      return
    }
    guard case .reply(let reply) = completion.outcome else {
      let why: String
      switch completion.outcome {
      case .noAnswer: why = "no answer"
      case .badReplies: why = "only corrupt or unfitting replies"
      case .cancelled: why = "cancelled"
      default: why = "no reply"
      }
      switch flight.step {
      case .command, .status: attemptFailed(operation, why, wall: wall)
      case .energy: verified(operation, open: true, wattHours: nil, wall: wall)
      }
      return
    }
    switch (flight.step, reply) {
    case (.command, .controlAccepted):
      read(.runStatusWord3, meter: completion.meter, flight: &flight)
    case (.command, .controlRefused(let word)):
      flight.refusal = "the meter refused the 0x1C request: " + word.description
      read(.runStatusWord3, meter: completion.meter, flight: &flight)
    case (.command, .controlRefusedStatus(let status)):
      flight.refusal =
        "the meter refused the 0x1C request: status "
        + hexString([
          UInt8(truncatingIfNeeded: status.rawValue >> 8), UInt8(truncatingIfNeeded: status.rawValue),
        ])
      read(.runStatusWord3, meter: completion.meter, flight: &flight)
    case (.status, .readData(let identifier, let bytes, _)):
      guard identifier == .runStatusWord3,
        case .runStatusWord3(let word)? = try? MeterValue(decoding: bytes[...], for: identifier)
      else {
        attemptFailed(operation, "run status word 3 could not be decoded", wall: wall)
        return
      }
      let ok =
        operation.open
        ? word.relayOpen
        : (!word.relayOpen || (settings.closeCommand == .closePermit && !word.relayCommandOpen))
      guard ok else {
        attemptFailed(
          operation,
          "the relay reads " + (word.relayOpen ? "open" : "closed") + " after the command"
            + (flight.refusal.map { " (" + $0 + ")" } ?? ""), wall: wall)
        return
      }
      if operation.open {
        read(.forwardActiveTotal, meter: completion.meter, flight: &flight)
      } else {
        verified(operation, open: word.relayOpen, wattHours: nil, wall: wall)
      }
    case (.energy, .readData(let identifier, let bytes, _)):
      var wattHours: Int64? = nil
      if case .energy(let centi)? = try? MeterValue(decoding: bytes[...], for: identifier) {
        wattHours = centi * 10
      }
      verified(operation, open: true, wattHours: wattHours, wall: wall)
    case (.energy, _):
      verified(operation, open: true, wattHours: nil, wall: wall)
    default:
      attemptFailed(operation, "unexpected reply " + reply.control.description, wall: wall)
    }
  }

  private func read(_ identifier: DataIdentifier, meter: Address, flight: inout Flight) {
    flight.step = identifier == .runStatusWord3 ? .status : .energy
    flight.ticket = acquisition?.submitControl(.read(identifier), to: meter) ?? 0
    flights[meter.description] = flight
  }

  /// The relay reads as desired: the operation is done.
  private func verified(_ operation: Operation, open: Bool, wattHours: Int64?, wall: Int64) {
    flights[operation.meter] = nil
    operations[operation.meter] = nil
    let state = open ? "open" : "closed"
    let detail =
      "relay verified " + state
      + (!operation.open && open ? " (close permitted, waiting for the customer)" : "")
    conclude(
      operation, outcome: "verified", detail: detail, event: "relay.verified",
      [("relay", .text(state)), ("energy_wh", wattHours.map { .integer($0) } ?? .null)],
      result: ("executed", ""), wattHours: wattHours, wall: wall
    ) { () throws(SQLiteError) in
      try store.db.run(
        """
        UPDATE relay SET state = 'done', last_error = NULL, verified = ?3, verified_at = ?4, verified_wh = ?5,
          anomaly_at = NULL
        WHERE meter = ?1 AND desired = ?2 AND state = 'pending'
        """,
        [
          .text(operation.meter), .text(operation.open ? "open" : "closed"), .text(state), .integer(wall),
          wattHours.map { .integer($0) } ?? .null,
        ])
    }
    Log.info(
      "relay",
      "meter " + operation.meter + " (" + operation.customer + "): " + (operation.open ? "trip" : "close")
        + " done, " + detail + " after " + String(operation.attempts) + " try(s)")
  }

  /// A try failed: try again after the backoff, or give up after `control.attempts`.
  private func attemptFailed(_ operation: Operation, _ reason: String, wall: Int64) {
    flights[operation.meter] = nil
    var operation = operation
    let action = operation.open ? "trip" : "close"
    if operation.attempts < settings.attempts {
      operation.nextAttemptAt = wall + settings.retryDelay(afterAttempt: operation.attempts)
      operations[operation.meter] = operation
      do {
        try store.db.run(
          """
          UPDATE relay SET next_attempt_at = ?2, last_error = ?3, attempts = ?4
          WHERE meter = ?1 AND state = 'pending'
          """,
          [
            .text(operation.meter), .integer(operation.nextAttemptAt), .text(reason),
            .integer(Int64(operation.attempts)),
          ])
      } catch {
        Log.error("relay", "recording a failed try of meter " + operation.meter + ": " + error.description)
      }
      Log.warn(
        "relay",
        "meter " + operation.meter + ": " + action + " try " + String(operation.attempts) + " failed: "
          + reason + "; again in " + String(operation.nextAttemptAt - wall) + " ms")
      return
    }
    operations[operation.meter] = nil
    conclude(
      operation, outcome: "failed", detail: reason, event: "relay.failed", [("reason", .text(reason))],
      result: ("failed", "relay-failed"), wall: wall
    ) { () throws(SQLiteError) in
      try store.db.run(
        "UPDATE relay SET state = 'failed', last_error = ?2, attempts = ?3 WHERE meter = ?1 AND state = 'pending'",
        [.text(operation.meter), .text(reason), .integer(Int64(operation.attempts))])
    }
    Log.error(
      "relay",
      "meter " + operation.meter + " (" + operation.customer + "): " + action + " FAILED after "
        + String(operation.attempts) + " tries: " + reason)
  }

  /// Ends an operation in one `synchronous=FULL` transaction: `update`, the log row,
  /// the event (with the operation's fields and `fields`), and the command's result.
  private func conclude(
    _ operation: Operation, outcome: String, detail: String, event type: String,
    _ fields: [(String, SQLiteValue)], result: (outcome: String, reason: String), wattHours: Int64? = nil,
    wall: Int64, update: () throws(SQLiteError) -> Void
  ) {
    let action = operation.open ? "trip" : "close"
    do {
      try store.db.transaction(.full) { () throws(SQLiteError) in
        try update()
        try log(
          meter: operation.meter, customer: operation.customer, action: action, why: operation.why,
          outcome: outcome, detail: detail, wall: wall, wattHours: wattHours)
        try event(
          type, wall: wall,
          [
            ("meter", .text(operation.meter)), ("customer", .text(operation.customer)),
            ("action", .text(action)),
            ("why", .text(operation.why)), ("ctr", optionalText(operation.counter)),
            ("attempts", .integer(Int64(operation.attempts))),
          ] + fields)
        try self.result(operation, outcome: result.outcome, reason: result.reason, detail: detail, wall: wall)
      }
    } catch {
      Log.error(
        "relay", "recording the end of the operation on meter " + operation.meter + ": " + error.description)
    }
    dirty = true
  }

  // MARK: - Bypass check

  /// Meters verified open whose energy register rose: `relay.energy_while_open`.
  private func checkOpenMeters(wall: Int64) {
    guard let acquisition else { return }
    for (meter, state) in openMeters {
      guard let address = Address(meter), let latest = acquisition.latestEnergy(address),
        latest.readAt > state.verifiedAt
      else { continue }
      guard let base = state.baseWattHours else {
        // The energy read after the trip failed: the first reading after it is the base.
        openMeters[meter]?.baseWattHours = latest.wattHours
        try? store.db.run(
          "UPDATE relay SET verified_wh = ?2 WHERE meter = ?1 AND verified_wh IS NULL",
          [.text(meter), .integer(latest.wattHours)])
        continue
      }
      guard latest.wattHours > base else { continue }
      openMeters[meter] = nil
      do {
        try store.db.transaction { () throws(SQLiteError) in
          try store.db.run(
            "UPDATE relay SET anomaly_at = ?2 WHERE meter = ?1", [.text(meter), .integer(wall)])
          try log(
            meter: meter, customer: state.customer, action: "check", why: "open",
            outcome: "energy-while-open",
            detail: String(latest.wattHours - base) + " Wh", wall: wall)
          try event(
            "relay.energy_while_open", wall: wall,
            [
              ("meter", .text(meter)), ("customer", .text(state.customer)), ("base_wh", .integer(base)),
              ("energy_wh", .integer(latest.wattHours)), ("delta_wh", .integer(latest.wattHours - base)),
              ("open_since", .integer(state.verifiedAt)), ("read_at", .integer(latest.readAt)),
            ])
        }
      } catch {
        Log.error("relay", "recording an anomaly of meter " + meter + ": " + error.description)
      }
      Log.warn(
        "relay",
        "meter " + meter + " (" + state.customer + ") registered " + String(latest.wattHours - base)
          + " Wh while its relay is open: possible bypass")
    }
  }
}

private func optionalText(_ text: String?) -> SQLiteValue {
  guard let text else { return .null }
  return .text(text)
}

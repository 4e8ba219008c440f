import GridEdgeContract
import GridEdgeCore
import Runtime
import SQLiteStore

/// Credit grades computed on the device (DESIGN.md §6): HQ fits a linear discriminant
/// model and sends it as a signed `config` command; the agent scores each customer's
/// local features with `CreditModel` and keeps the grade in `credit_grades`.
///
/// - Body: `{"credit":{"version":N,"intercept":I,"coefficients":{"days_in_arrears":..,
///   "topup_regularity":..,"consumption_volatility":..,"past_disconnects":..},
///   "boundaries":[B1,B2,...]}}`, integers only (units of `CreditModel`: 0.0001 per
///   feature unit; boundaries strictly decreasing, 1 to 25 of them, so grades A…Z).
///   `version` must be above the stored one. Anything else is refused with a reason
///   and changes nothing.
/// - A model is stored and every customer assessed in the command's transaction; the
///   assessment is repeated daily at `credit.assess_at` local time.
/// - The device grade is kept apart from the archive's grade letter (HQ's record,
///   left as sent) and takes precedence over it for thresholds (`prepaid.grades`) and
///   disconnect grace (`control.grace`); a customer not assessed yet keeps the
///   archive's letter. A change of a customer's effective grade raises
///   `credit.grade_changed` (customer, old, new, score, version).
public enum Credit {
  /// The features' names in the body, in `CreditCoefficients` order.
  static let featureNames = [
    "days_in_arrears", "topup_regularity", "consumption_volatility", "past_disconnects",
  ]

  /// Applies a `config` command body inside the command's transaction.
  /// - Returns: a one-line summary.
  /// - Throws: `Archive.Refusal` (`malformed`, `stale-version`, `unsupported`, `internal-error`).
  public static func apply(
    body: String, store: AgentStore, outbox: Outbox, offset: UTCOffset, now: Int64, command: String
  ) throws(Archive.Refusal) -> String {
    let db = store.db
    func malformed(_ why: String) -> Archive.Refusal { Archive.Refusal("malformed", "config: " + why) }
    let valid = try Archive.Refusal.catching { () throws(SQLiteError) -> Bool in
      try db.scalarInt("SELECT json_valid(?1) AND json_type(?1) = 'object'", [.text(body)]) == 1
    }
    guard valid else { throw malformed("the body is not a JSON object") }
    let sections = try Archive.Refusal.catching { () throws(SQLiteError) -> [Row] in
      try db.query("SELECT key FROM json_each(?1)", [.text(body)])
    }
    for row in sections where row.text(0) != "credit" {
      throw Archive.Refusal(
        "unsupported", "config section \"" + (row.text(0) ?? "") + "\" is not supported (only \"credit\")")
    }
    let credit = try Archive.Refusal.catching { () throws(SQLiteError) -> [Row] in
      try db.query("SELECT key, type, atom FROM json_each(?1, '$.credit')", [.text(body)])
    }
    guard !sections.isEmpty,
      try Archive.Refusal.catching({ () throws(SQLiteError) -> String? in
        try db.query("SELECT json_type(?1, '$.credit')", [.text(body)]).first?.text(0)
      }) == "object"
    else { throw malformed("needs \"credit\" (an object)") }
    var version: Int64? = nil
    var intercept: Int64? = nil
    for row in credit {
      let key = row.text(0) ?? ""
      switch key {
      case "version", "intercept":
        guard row.text(1) == "integer", let value = row.int64(2) else {
          throw malformed("credit." + key + " must be an integer")
        }
        if key == "version" { version = value } else { intercept = value }
      case "coefficients", "boundaries":
        continue
      default:
        throw malformed("unknown field credit." + key)
      }
    }
    guard let version, version >= 1 else { throw malformed("needs credit.version (an integer from 1)") }
    guard let intercept else { throw malformed("needs credit.intercept (an integer)") }
    var coefficients: [String: Int64] = [:]
    let pairs = try Archive.Refusal.catching { () throws(SQLiteError) -> [Row] in
      try db.query(
        "SELECT key, type, atom FROM json_each(?1, '$.credit.coefficients') WHERE json_type(?1, '$.credit.coefficients') = 'object'",
        [.text(body)])
    }
    for row in pairs {
      let key = row.text(0) ?? ""
      guard featureNames.contains(key) else { throw malformed("unknown coefficient \"" + key + "\"") }
      guard row.text(1) == "integer", let value = row.int64(2) else {
        throw malformed("coefficient " + key + " must be an integer")
      }
      coefficients[key] = value
    }
    for name in featureNames where coefficients[name] == nil {
      throw malformed("credit.coefficients needs \"" + name + "\" (an integer)")
    }
    let items = try Archive.Refusal.catching { () throws(SQLiteError) -> [Row] in
      try db.query(
        "SELECT type, atom FROM json_each(?1, '$.credit.boundaries') WHERE json_type(?1, '$.credit.boundaries') = 'array' ORDER BY key",
        [.text(body)])
    }
    var boundaries: [Int64] = []
    for row in items {
      guard row.text(0) == "integer", let value = row.int64(1) else {
        throw malformed("credit.boundaries must hold integers only")
      }
      boundaries.append(value)
    }
    guard boundaries.count >= 1, boundaries.count <= 25 else {
      throw malformed("credit.boundaries needs 1 to 25 integers (grades A...Z)")
    }
    let model: CreditModel
    do throws(FeeControlConfigError) {
      model = try CreditModel(
        coefficients: CreditCoefficients(
          intercept: intercept, daysInArrears: coefficients["days_in_arrears"] ?? 0,
          topUpRegularity: coefficients["topup_regularity"] ?? 0,
          consumptionVolatility: coefficients["consumption_volatility"] ?? 0,
          pastDisconnects: coefficients["past_disconnects"] ?? 0), boundaries: boundaries)
    } catch {
      throw malformed(error.description)
    }
    let stored = try Archive.Refusal.catching { () throws(SQLiteError) -> Int64? in
      try db.scalarInt("SELECT version FROM credit_model WHERE singleton = 1")
    }
    if let stored, version <= stored {
      throw Archive.Refusal(
        "stale-version",
        "credit model version " + String(version) + " is not above the one in force (" + String(stored)
          + "); nothing changed")
    }
    var list = "["
    for (index, boundary) in boundaries.enumerated() { list += (index == 0 ? "" : ",") + String(boundary) }
    list += "]"
    let changed = try Archive.Refusal.catching { () throws(SQLiteError) -> Int in
      try db.run(
        """
        INSERT INTO credit_model (singleton, version, intercept, days_in_arrears, topup_regularity,
          consumption_volatility, past_disconnects, boundaries, command, applied_at)
        VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
        ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, intercept = excluded.intercept,
          days_in_arrears = excluded.days_in_arrears, topup_regularity = excluded.topup_regularity,
          consumption_volatility = excluded.consumption_volatility,
          past_disconnects = excluded.past_disconnects, boundaries = excluded.boundaries,
          command = excluded.command, applied_at = excluded.applied_at
        """,
        [
          .integer(version), .integer(intercept), .integer(model.coefficients.daysInArrears),
          .integer(model.coefficients.topUpRegularity), .integer(model.coefficients.consumptionVolatility),
          .integer(model.coefficients.pastDisconnects), .text(list), .text(command), .integer(now),
        ])
      return try assess(
        store: store, outbox: outbox, model: model, version: version, offset: offset, now: now)
    }
    return "credit model " + String(version) + " (" + String(model.gradeCount) + " grades) in force; "
      + String(changed) + " customer grade(s) changed"
  }

  /// The model in force and its version, if HQ sent one.
  public static func model(_ db: Connection) throws(SQLiteError) -> (version: Int64, model: CreditModel)? {
    guard
      let row = try db.query(
        """
        SELECT version, intercept, days_in_arrears, topup_regularity, consumption_volatility, past_disconnects,
          boundaries FROM credit_model WHERE singleton = 1
        """
      ).first
    else { return nil }
    let boundaries = try db.query(
      "SELECT atom FROM json_each(?1) ORDER BY key", [.text(row.text(6) ?? "[]")]
    ).map { $0.int64(0) ?? 0 }
    do throws(FeeControlConfigError) {
      let model = try CreditModel(
        coefficients: CreditCoefficients(
          intercept: row.int64(1) ?? 0, daysInArrears: row.int64(2) ?? 0, topUpRegularity: row.int64(3) ?? 0,
          consumptionVolatility: row.int64(4) ?? 0, pastDisconnects: row.int64(5) ?? 0),
        boundaries: boundaries)
      return (row.int64(0) ?? 0, model)
    } catch {
      // Checked before it was stored; a row edited since is not used.
      Log.error("credit", "the stored credit model is unusable: " + error.description)
      return nil
    }
  }

  /// Assesses every customer once a day at `assessAt` (seconds into the local day),
  /// when a model is in force. Call inside no transaction.
  /// - Returns: the number of grades changed, or nil when no assessment was due.
  public static func assessIfDue(
    store: AgentStore, outbox: Outbox, offset: UTCOffset, now: Int64, assessAt: Int64
  ) throws(SQLiteError) -> Int? {
    let local = offset.localDateTime(fromUnix: floorDivide(now, by: 1000))
    guard Int64(local.secondOfDay) >= assessAt else { return nil }
    let today = local.date.daysSinceEpoch
    let db = store.db
    return try db.transaction(.full) { () throws(SQLiteError) -> Int? in
      guard let (version, model) = try model(db),
        try db.scalarInt("SELECT coalesce(assessed_day, -1) FROM credit_model WHERE singleton = 1") != today
      else { return nil }
      let changed = try assess(
        store: store, outbox: outbox, model: model, version: version, offset: offset, now: now)
      try db.run("UPDATE credit_model SET assessed_day = ?1 WHERE singleton = 1", [.integer(today)])
      return changed
    }
  }

  /// Scores every customer with `model`, stores the grades and raises
  /// `credit.grade_changed` for each effective grade that changed. Call inside a transaction.
  /// - Returns: the number of grades changed.
  static func assess(
    store: AgentStore, outbox: Outbox, model: CreditModel, version: Int64, offset: UTCOffset, now: Int64
  ) throws(SQLiteError) -> Int {
    let db = store.db
    var changed = 0
    let customers = try db.query(
      "SELECT a.customer, " + GradeThresholds.gradeSQL(of: "a.customer")
        + " FROM accounts a ORDER BY a.customer")
    for row in customers {
      let customer = row.text(0) ?? ""
      let features = try Self.features(customer: customer, db: db, offset: offset, now: now)
      let score = model.score(features)
      let grade = model.grade(score: score).letter
      try db.run(
        """
        INSERT INTO credit_grades (customer, grade, score, model_version, days_in_arrears, topup_regularity,
          consumption_volatility, past_disconnects, assessed_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
        ON CONFLICT (customer) DO UPDATE SET grade = excluded.grade, score = excluded.score,
          model_version = excluded.model_version, days_in_arrears = excluded.days_in_arrears,
          topup_regularity = excluded.topup_regularity, consumption_volatility = excluded.consumption_volatility,
          past_disconnects = excluded.past_disconnects, assessed_at = excluded.assessed_at
        """,
        [
          .text(customer), .text(grade), .integer(score), .integer(version), .integer(features.daysInArrears),
          .integer(features.topUpRegularity), .integer(features.consumptionVolatility),
          .integer(features.pastDisconnects), .integer(now),
        ])
      let old = row.text(1)
      guard old != grade else { continue }
      changed += 1
      let event =
        try db.query(
          """
          SELECT json_object('id', ?1, 'ts', ?2, 'type', 'credit.grade_changed', 'customer', ?3, 'old', ?4,
            'new', ?5, 'score', ?6, 'version', ?7)
          """,
          [
            .text(try outbox.newRecordID("event")), .integer(now), .text(customer),
            old.map { .text($0) } ?? .null,
            .text(grade), .integer(score), .integer(version),
          ]
        ).first?.text(0) ?? "{}"
      try outbox.enqueue(.events, record: event, retention: .billing, now: now)
      Log.info(
        "credit", customer + ": grade " + (old ?? "none") + " -> " + grade + " (score " + String(score) + ")")
    }
    return changed
  }

  /// The local features of `customer` over the 365 local days up to `now`: days whose
  /// closing balance was below zero (from the ledger), top-up regularity (ledger
  /// top-ups), consumption volatility (daily energy from the real-time readings of its
  /// meters) and disconnections for arrears (verified trips in `relay_log`).
  static func features(
    customer: String, db: Connection, offset: UTCOffset, now: Int64
  ) throws(SQLiteError) -> CreditFeatures {
    let off = offset.seconds
    let today = floorDivide(floorDivide(now, by: 1000) + off, by: 86_400)
    let firstDay = today - 364
    let start = (firstDay * 86_400 - off) * 1000
    let who = SQLiteValue.text(customer)
    // Daily closing balances, carried over days without entries.
    var balance =
      try db.scalarInt(
        "SELECT balance_fen FROM ledger WHERE customer = ?1 AND ts < ?2 ORDER BY id DESC LIMIT 1",
        [who, .integer(start)]) ?? 0
    var closing: [Int64: Int64] = [:]
    for row in try db.query(
      """
      SELECT (ts / 1000 + ?3) / 86400 AS day, balance_fen, max(id) FROM ledger
      WHERE customer = ?1 AND ts >= ?2 AND ts <= ?4 GROUP BY day
      """, [who, .integer(start), .integer(off), .integer(now)])
    {
      closing[row.int64(0) ?? 0] = row.int64(1) ?? 0
    }
    var balances: [Money] = []
    for day in firstDay...today {
      if let value = closing[day] { balance = value }
      balances.append(Money(fen: balance))
    }
    let topUps = try db.query(
      "SELECT ts FROM ledger WHERE customer = ?1 AND kind = 'topup' AND ts >= ?2 AND ts <= ?3 ORDER BY id",
      [who, .integer(start), .integer(now)]
    ).map { floorDivide($0.int64(0) ?? 0, by: 1000) }
    // Each meter's highest register per local day; a day's energy is the rise since the
    // meter's previous day with a reading.
    var daily: [Int64: Int64] = [:]
    var previous: (meter: String, value: Int64)? = nil
    for row in try db.query(
      """
      SELECT meter, (ts / 1000 + ?3) / 86400 AS day, max(value) FROM readings
      WHERE di = '0001FF00' AND ts >= ?2 AND ts <= ?4
        AND meter IN (SELECT address FROM archive_meters WHERE customer = ?1 AND area_meter = 0)
      GROUP BY meter, day ORDER BY meter, day
      """, [who, .integer(start - 86_400_000), .integer(off), .integer(now)])
    {
      let meter = row.text(0) ?? ""
      let day = row.int64(1) ?? 0
      let value = row.int64(2) ?? 0
      if let previous, previous.meter == meter, day >= firstDay {
        daily[day, default: 0] += value - previous.value
      }
      previous = (meter, value)
    }
    let energies = daily.keys.sorted().map { Energy(wattHours: daily[$0] ?? 0) }
    let disconnects =
      try db.scalarInt(
        """
        SELECT count(*) FROM relay_log WHERE customer = ?1 AND action = 'trip' AND why = 'overdraft'
          AND outcome = 'verified' AND ts >= ?2 AND ts <= ?3
        """, [who, .integer(start), .integer(now)]) ?? 0
    return CreditFeatures(
      daysInArrears: CreditFeatures.daysInArrears(dailyClosingBalances: balances),
      topUpRegularity: CreditFeatures.topUpRegularity(topUpTimes: topUps),
      consumptionVolatility: CreditFeatures.consumptionVolatility(dailyEnergy: energies),
      pastDisconnects: disconnects)
  }

  /// `credit.assess_at` (`HH:MM`) as seconds into the local day.
  /// - Throws: `ConfigError` naming the key and line.
  public static func assessAt(_ config: Config) throws(ConfigError) -> Int64 {
    let text = config.string("credit.assess_at") ?? "02:30"
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 2, parts[0].utf8.count == 2, parts[1].utf8.count == 2,
      let h = Int64(String(parts[0])),
      let m = Int64(String(parts[1])), h >= 0, h < 24, m >= 0, m < 60
    else { throw config.error("credit.assess_at", "expected a local time HH:MM, got '" + text + "'") }
    return h * 3600 + m * 60
  }

  private static func floorDivide(_ a: Int64, by b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
  }
}

import GridEdgeCore
import Runtime
import SQLiteStore

/// Real-time fee calculation (DESIGN.md §6): every new energy reading of a customer
/// meter is charged against the tariff of the customer's category, as a ledger entry.
///
/// - Tariffs arrive as signed `tariff` commands (`Tariffs.apply`), versioned with an
///   effective date per customer category.
/// - A pass walks the real-time readings (00 01 FF 00) from the newest slot it saw
///   onwards (that slot again, as a cycle stores its readings over time), in time order; per meter it charges the interval from its previous reading (per
///   time-of-use register when both readings have them) with `FeeCalculator`, keeps
///   the customer's tier usage, debits the account and appends the ledger entry, all
///   in one transaction per pass. Charging is idempotent: a reading is charged once.
/// - Only meters in the archive are billed (never an area meter, never an unknown one),
///   and a replaced meter (`Archive.replace`) up to its final reading.
///   A meter whose category has no tariff yet keeps its previous reading as the base,
///   so the energy is charged once a tariff arrives.
/// - A lower register than before (a replaced or reset meter) starts a new base and is
///   reported, never charged negatively.
/// - A `clock-suspect` reading is never charged: its timestamp may be a year off (this
///   device's clock jumped), which would price it at the wrong tariff and move the
///   cursor past every later reading. Its energy is charged with the next good reading.
public enum Billing {
  /// What one pass did.
  public struct Pass: Equatable, Sendable {
    public var charged = 0
    public var unpriced = 0
    public var baselines = 0
    public var money = Money.zero
  }

  /// Charges the readings stored since the last pass.
  public static func run(
    store: AgentStore, outbox: Outbox, offset: UTCOffset, now: Int64, thresholds: GradeThresholds? = nil
  ) throws(SQLiteError) -> Pass {
    let db = store.db
    return try db.transaction { () throws(SQLiteError) -> Pass in
      var pass = Pass()
      let cursor = try db.scalarInt("SELECT cursor_ts FROM billing_state WHERE singleton = 1") ?? 0
      let rows = try db.query(
        """
        SELECT r.ts, r.meter, r.value, r.tariffs, m.customer, m.category
        FROM readings r JOIN (
          SELECT address, customer, category,
            (SELECT max(p.at) FROM meter_replacements p WHERE p.new = address) AS since, NULL AS until
          FROM archive_meters WHERE area_meter = 0
          UNION ALL SELECT o.old, o.customer, o.category,
            (SELECT max(p.at) FROM meter_replacements p WHERE p.new = o.old AND p.at < o.at), o.at
          FROM meter_replacements o
        ) m ON m.address = r.meter
        WHERE r.di = '0001FF00' AND r.ts >= ?1 AND r.quality != 'clock-suspect'
          AND (m.since IS NULL OR r.ts >= m.since) AND (m.until IS NULL OR r.ts <= m.until)
        ORDER BY r.ts, r.meter
        """, [.integer(cursor)])
      // The cursor's own slot is read again: a cycle stores its readings (all with the
      // slot's timestamp) over time, and those stored after a pass must still be
      // charged. A reading already charged is skipped by its meter's base below.
      let maxTS = try db.scalarInt(
        "SELECT max(ts) FROM readings WHERE di = '0001FF00' AND ts >= ?1 AND quality != 'clock-suspect'",
        [.integer(cursor)])
      guard !rows.isEmpty || maxTS != nil else { return pass }
      let book: TariffBook
      do throws(TariffParseError) {
        book = try Tariffs.book(db)
      } catch {
        Log.error("billing", "tariffs: " + error.description + "; nothing charged")
        return pass
      }
      let calculator = FeeCalculator(tariffs: book, offset: offset)
      for row in rows {
        let ts = row.int64(0) ?? 0
        let meter = row.text(1) ?? ""
        let value = row.int64(2) ?? 0
        let registers = parseRegisters(row.text(3))
        let customer = row.text(4) ?? ""
        let category = CustomerCategory(row.text(5) ?? "")
        guard
          let base = try db.query(
            "SELECT last_ts, last_wh, last_registers FROM meter_billing WHERE meter = ?1", [.text(meter)]
          ).first, let baseTS = base.int64(0), let baseWh = base.int64(1)
        else {
          try setBase(db, meter: meter, ts: ts, wh: value, registers: row.text(3))
          pass.baselines += 1
          continue
        }
        guard ts > baseTS else { continue }
        guard value >= baseWh else {
          Log.warn(
            "billing",
            "meter " + meter + " reads " + String(value) + " Wh, below its last " + String(baseWh)
              + " Wh: replaced or reset? A new base is taken, nothing charged")
          try setBase(db, meter: meter, ts: ts, wh: value, registers: row.text(3))
          pass.baselines += 1
          continue
        }
        var energy = IntervalEnergy.total(Energy(wattHours: value - baseWh))
        if let now = registers, let before = parseRegisters(base.text(2)) {
          let deltas = zip(now, before).map { $0 - $1 }
          if deltas.allSatisfy({ $0 >= 0 }) && deltas.reduce(0, +) == value - baseWh {
            energy = .registers(
              RegisterEnergy(
                sharp: Energy(wattHours: deltas[0]), peak: Energy(wattHours: deltas[1]),
                flat: Energy(wattHours: deltas[2]), valley: Energy(wattHours: deltas[3])))
          }
        }
        let account = try db.query(
          "SELECT balance_fen, tier_cycle_start, tier_energy_wh FROM accounts WHERE customer = ?1",
          [.text(customer)]
        ).first
        guard let account, let balance = account.int64(0) else { continue }
        var usage: TierUsage? = nil
        if let start = account.int64(1) {
          usage = TierUsage(
            cycleStart: CivilDate(daysSinceEpoch: start), energy: Energy(wattHours: account.int64(2) ?? 0))
        }
        let interval = MeterInterval(start: baseTS / 1000, end: ts / 1000, energy: energy)
        let result: FeeResult
        do throws(FeeError) {
          result = try calculator.charge(interval, category: category, tierUsage: usage)
        } catch {
          // No tariff for the category (yet), or one that does not cover the interval:
          // keep the base, so the energy is charged when a tariff arrives.
          pass.unpriced += 1
          Log.debug("billing", "meter " + meter + " not charged: " + error.description)
          continue
        }
        let newBalance = Money(fen: balance) - result.total
        try db.run(
          """
          UPDATE accounts SET balance_fen = ?2, tier_cycle_start = ?3, tier_energy_wh = ?4 WHERE customer = ?1
          """,
          [
            .text(customer), .integer(newBalance.fen),
            result.tierUsage.map { .integer($0.cycleStart.daysSinceEpoch) } ?? .null,
            .integer(result.tierUsage?.energy.wattHours ?? 0),
          ])
        var detail = String(value - baseWh) + " Wh"
        for line in result.lines {
          detail +=
            "; " + String(line.energy.wattHours) + " Wh"
            + (line.register.map { " " + $0.code } ?? "") + (line.tier.map { " tier " + String($0) } ?? "")
            + " at " + String(line.price.tenThousandthsPerKilowattHour) + " = " + line.money.yuanText
            + " (" + line.tariffVersionID + ")"
        }
        try Ledger.appendEntry(
          store: store, outbox: outbox, customer: customer, kind: "charge", amount: -result.total,
          balanceAfter: newBalance, ref: "reading:" + meter + ":" + String(ts), detail: detail, now: now,
          thresholds: try thresholds?.thresholds(customer: customer, db: db))
        try setBase(db, meter: meter, ts: ts, wh: value, registers: row.text(3))
        pass.charged += 1
        pass.money = pass.money + result.total
      }
      try db.run(
        "UPDATE billing_state SET cursor_ts = ?1 WHERE singleton = 1", [.integer(maxTS ?? cursor)])
      return pass
    }
  }

  private static func setBase(_ db: Connection, meter: String, ts: Int64, wh: Int64, registers: String?)
    throws(SQLiteError)
  {
    try db.run(
      """
      INSERT INTO meter_billing (meter, last_ts, last_wh, last_registers) VALUES (?1, ?2, ?3, ?4)
      ON CONFLICT (meter) DO UPDATE SET last_ts = excluded.last_ts, last_wh = excluded.last_wh,
        last_registers = excluded.last_registers
      """, [.text(meter), .integer(ts), .integer(wh), registers.map { .text($0) } ?? .null])
  }

  /// `[sharp, peak, flat, valley]` in Wh from the stored JSON array, or nil.
  static func parseRegisters(_ text: String?) -> [Int64]? {
    guard let text, text.hasPrefix("["), text.hasSuffix("]") else { return nil }
    var values: [Int64] = []
    for part in text.dropFirst().dropLast().split(separator: ",") {
      guard let v = Int64(String(part)) else { return nil }
      values.append(v)
    }
    return values.count == 4 ? values : nil
  }
}

/// Tariff versions from signed `tariff` commands:
/// `{"id":"RES-2026","category":"residential","effective_from":"2026-01-01",
///   "flat":4883}` — or instead of `flat`,
/// `"tou":{"switches":[["00:00","valley"],["08:00","peak"],["22:00","valley"]],
///   "prices":{"sharp":..,"peak":..,"flat":..,"valley":..}}` — and optionally
/// `"tiers":{"cycle":"monthly","reset_day":1}` or
/// `{"cycle":"annual","reset_month":1,"reset_day":1}` with
/// `"blocks":[[2160000,0],[4200000,500],[null,3000]]` (upper bound in Wh or null for
/// the last block, increment in 0.0001 CNY/kWh). Prices in 0.0001 CNY/kWh.
public enum Tariffs {
  /// Validates and stores a tariff version (a new id; an existing id with the same
  /// body is a duplicate, with another body a conflict).
  public static func apply(body: String, db: Connection, now: Int64) throws(Archive.Refusal) -> String {
    let version: TariffVersion
    do {
      version = try parse(body, db)
    } catch {
      throw Archive.Refusal("malformed", error.description)
    }
    let existing: Row?
    do {
      existing = try db.query("SELECT body FROM tariffs WHERE id = ?1", [.text(version.id)]).first
    } catch {
      throw Archive.Refusal("internal-error", error.description)
    }
    if let existing {
      throw Archive.Refusal(
        existing.text(0) == body ? "duplicate" : "conflict",
        "tariff version " + version.id + " is already installed")
    }
    // The whole book must still be consistent with the new version in it.
    var versions: [TariffVersion]
    do {
      versions = try all(db)
    } catch {
      throw Archive.Refusal("internal-error", error.description)
    }
    versions.append(version)
    do {
      _ = try TariffBook(versions)
    } catch {
      throw Archive.Refusal("conflict", error.description)
    }
    do {
      try db.run(
        "INSERT INTO tariffs (id, category, effective_from, body, installed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        [
          .text(version.id), .text(version.category.code), .text(version.effectiveFrom.isoText), .text(body),
          .integer(now),
        ])
    } catch {
      throw Archive.Refusal("internal-error", error.description)
    }
    return "tariff " + version.id + " for " + version.category.code + " from " + version.effectiveFrom.isoText
  }

  /// The installed tariff book.
  public static func book(_ db: Connection) throws(TariffParseError) -> TariffBook {
    let versions: [TariffVersion]
    do {
      versions = try all(db)
    } catch {
      throw TariffParseError(error.description)
    }
    do {
      return try TariffBook(versions)
    } catch {
      throw TariffParseError(error.description)
    }
  }

  static func all(_ db: Connection) throws(TariffParseError) -> [TariffVersion] {
    let rows: [Row]
    do {
      rows = try db.query("SELECT body FROM tariffs ORDER BY id")
    } catch {
      throw TariffParseError(error.description)
    }
    var versions: [TariffVersion] = []
    for row in rows { versions.append(try parse(row.text(0) ?? "", db)) }
    return versions
  }

  /// Parses one tariff version body.
  public static func parse(_ body: String, _ db: Connection) throws(TariffParseError) -> TariffVersion {
    func q(_ sql: String) throws(TariffParseError) -> [Row] {
      do {
        return try db.query(sql, [.text(body)])
      } catch {
        throw TariffParseError("not a JSON object")
      }
    }
    guard try q("SELECT json_valid(?1) AND json_type(?1) = 'object'").first?.int64(0) == 1 else {
      throw TariffParseError("not a JSON object")
    }
    let head = try q(
      """
      SELECT json_extract(?1, '$.id'), json_extract(?1, '$.category'), json_extract(?1, '$.effective_from'),
        json_type(?1, '$.flat'), json_extract(?1, '$.flat'), json_type(?1, '$.tou'), json_type(?1, '$.tiers')
      """)[0]
    guard let id = head.text(0), !id.isEmpty else { throw TariffParseError("\"id\" is missing") }
    guard let category = head.text(1), !category.isEmpty else {
      throw TariffParseError("\"category\" is missing")
    }
    guard let from = head.text(2), let date = parseDate(from) else {
      throw TariffParseError("\"effective_from\" must be YYYY-MM-DD")
    }
    let pricing: EnergyPricing
    if head.text(3) == "integer", let price = head.int64(4) {
      pricing = .flat(Price(tenThousandthsPerKilowattHour: price))
    } else if head.text(5) == "object" {
      var switches: [PeriodSwitch] = []
      for s in try q(
        "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1, '$.tou.switches')"
      ) {
        let time = (s.text(0) ?? "").split(separator: ":")
        guard time.count == 2, let h = Int(String(time[0])), let m = Int(String(time[1])),
          let period = TimeOfUsePeriod(code: s.text(1) ?? ""),
          let change = PeriodSwitch(hour: h, minute: m, period: period)
        else { throw TariffParseError("tou.switches: each is [\"hh:mm\", \"sharp|peak|flat|valley\"]") }
        switches.append(change)
      }
      let p = try q(
        """
        SELECT json_extract(?1, '$.tou.prices.sharp'), json_extract(?1, '$.tou.prices.peak'),
          json_extract(?1, '$.tou.prices.flat'), json_extract(?1, '$.tou.prices.valley')
        """)[0]
      guard let sharp = p.int64(0), let peak = p.int64(1), let flat = p.int64(2), let valley = p.int64(3)
      else {
        throw TariffParseError("tou.prices needs sharp, peak, flat and valley")
      }
      do {
        pricing = .timeOfUse(
          TimeOfUseSchedule(allYear: try DaySchedule(switches)),
          PeriodPrices(
            sharp: Price(tenThousandthsPerKilowattHour: sharp),
            peak: Price(tenThousandthsPerKilowattHour: peak),
            flat: Price(tenThousandthsPerKilowattHour: flat),
            valley: Price(tenThousandthsPerKilowattHour: valley)))
      } catch {
        throw TariffParseError("tou: " + error.description)
      }
    } else {
      throw TariffParseError("either \"flat\" (a price) or \"tou\" is needed")
    }
    var tiers: TierSchedule? = nil
    if head.text(6) == "object" {
      let t = try q(
        """
        SELECT json_extract(?1, '$.tiers.cycle'), json_extract(?1, '$.tiers.reset_day'),
          json_extract(?1, '$.tiers.reset_month')
        """)[0]
      let cycle: TierCycle
      switch t.text(0) {
      case "monthly": cycle = .monthly(resetDay: Int(t.int64(1) ?? 1))
      case "annual": cycle = .annual(resetMonth: Int(t.int64(2) ?? 1), resetDay: Int(t.int64(1) ?? 1))
      default: throw TariffParseError("tiers.cycle must be monthly or annual")
      }
      var blocks: [TierBlock] = []
      for b in try q(
        "SELECT json_type(value, '$[0]'), json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1, '$.tiers.blocks')"
      ) {
        guard let increment = b.int64(2) else {
          throw TariffParseError("tiers.blocks: each is [upToWh|null, increment]")
        }
        let upTo: Energy? = b.text(0) == "null" ? nil : b.int64(1).map { Energy(wattHours: $0) }
        blocks.append(TierBlock(upTo: upTo, increment: Price(tenThousandthsPerKilowattHour: increment)))
      }
      do {
        tiers = try TierSchedule(cycle: cycle, blocks: blocks)
      } catch {
        throw TariffParseError("tiers: " + error.description)
      }
    }
    do {
      return try TariffVersion(
        id: id, category: CustomerCategory(category), effectiveFrom: date, pricing: pricing, tiers: tiers)
    } catch {
      throw TariffParseError(error.description)
    }
  }

  static func parseDate(_ text: String) -> CivilDate? {
    let parts = text.split(separator: "-")
    guard parts.count == 3, let y = Int64(String(parts[0])), let m = Int(String(parts[1])),
      let d = Int(String(parts[2]))
    else { return nil }
    return CivilDate(year: y, month: m, day: d)
  }
}

/// A tariff body that could not be read.
public struct TariffParseError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

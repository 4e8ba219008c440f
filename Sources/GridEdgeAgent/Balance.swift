import DLT645
import GridEdgeCore
import SQLiteStore

/// The energy balance of one transformer area for one local day, from the daily
/// freezes in the reading cache and the area's topology in force that day (`Topology`:
/// the archive's areas, phases and CT ratios with their effective days), and for one
/// local hour from the 15-minute real-time readings (`computeHour`).
///
/// A meter's energy for local day D is freeze(D + 1) − freeze(D), where freeze(D) is
/// its earliest daily freeze (stored under 05 06 01 01 with the meter's freeze time as
/// timestamp) whose time falls in local day D; times are placed in days with
/// `device.utc_offset`. Energies are register values × the meter's CT ratio in force
/// that day (1 for a direct-connected meter). The area meter is the one meter of the
/// area with `area_meter` set.
///
/// A replaced meter and its successor are one place (`MeterChain`): on the day of the
/// swap the customer's energy is the old meter's final reading − its freeze plus the
/// new meter's freeze − its initial reading, its history continues across the swap,
/// and the old meter is not listed from that day. A meter whose relay the agent
/// verified open during the period (`relay_log`, `relay`) carries the energy it
/// registered while open, for the energy-while-open rule.
public enum Balance {
  /// Why a balance could not be computed.
  public struct Failure: Error, CustomStringConvertible {
    private enum Kind {
      case unknownArea(String)
      case noAreaMeter(String)
      case severalAreaMeters(String, [String])
      case database(SQLiteError)
    }

    private let kind: Kind

    static func unknownArea(_ area: String) -> Failure { Failure(kind: .unknownArea(area)) }
    static func noAreaMeter(_ area: String) -> Failure { Failure(kind: .noAreaMeter(area)) }
    static func severalAreaMeters(_ area: String, _ meters: [String]) -> Failure {
      Failure(kind: .severalAreaMeters(area, meters))
    }
    static func database(_ error: SQLiteError) -> Failure { Failure(kind: .database(error)) }

    /// True when the archive, not the database, is at fault (a bad `--area`, or an
    /// area without exactly one area meter).
    public var isArchiveProblem: Bool { databaseError == nil }

    /// The database error, when the database and not the archive is at fault.
    public var databaseError: SQLiteError? {
      if case .database(let error) = kind { return error }
      return nil
    }

    public var description: String {
      switch kind {
      case .unknownArea(let area):
        return "area '" + area + "' has no meters in the meter archive"
      case .noAreaMeter(let area):
        return "area '" + area + "' has no area meter in the meter archive (area_meter flag)"
      case .severalAreaMeters(let area, let meters):
        var list = ""
        for meter in meters { list += (list.isEmpty ? "" : ", ") + meter }
        return "area '" + area + "' has several area meters in the meter archive: " + list
      case .database(let error):
        return error.description
      }
    }
  }

  /// A computed balance with what it was computed from.
  public struct Result: Sendable {
    /// The local day.
    public let day: CivilDate
    /// The local hour (0…23) for an hourly balance; nil for the whole day.
    public let hour: Int?
    /// The input handed to the core (energies already × CT ratio for customers).
    public let input: BalanceInput
    /// The balance.
    public let balance: EnergyBalance
  }

  /// Computes the balance of `area` for local `day`.
  /// - Parameters:
  ///   - db: the agent's database (read-only is enough).
  ///   - historyDays: how many days before `day` form each meter's history (the
  ///     stopped and sudden-drop rules compare against their median).
  /// - Throws: `Failure` for an area that has no meters in the topology that day or
  ///   not exactly one area meter, or a database error.
  public static func compute(
    db: Connection, area: String, day: CivilDate, offset: UTCOffset, historyDays: Int = 7,
    thresholds: BalanceThresholds = BalanceThresholds()
  ) throws(Failure) -> Result {
    let dayNumber = day.daysSinceEpoch
    let firstDay = dayNumber - Int64(historyDays)
    let place = try Self.place(
      db, area: area, day: dayNumber,
      dayEnd: offset.unixSeconds(startOf: CivilDate(daysSinceEpoch: dayNumber + 1)) * 1000)
    // Each place's freeze of a local day: the earliest of its meters' in their time
    // (rows come in time order, so the first one of a day is kept).
    let span = Int(dayNumber + 2 - firstDay)
    var points: [String: [MeterChain.Point?]] = [:]
    // The freeze identifier is written into the SQL, not bound: only then can the
    // planner use the partial index of daily freezes (migration 9) instead of
    // walking every 15-minute reading of the window.
    assert(DataIdentifier.lastDailyFreezeForwardActive.description == "05060101")
    do {
      let rows = try db.query(
        """
        SELECT meter, ts, value FROM readings
        WHERE ts >= ?1 AND ts < ?2 AND di = '05060101' AND meter IN (SELECT value FROM json_each(?3))
        ORDER BY ts
        """,
        [
          .integer(offset.unixSeconds(startOf: CivilDate(daysSinceEpoch: firstDay)) * 1000),
          .integer(offset.unixSeconds(startOf: CivilDate(daysSinceEpoch: dayNumber + 2)) * 1000),
          .text(Topology.jsonArray(place.meters)),
        ])
      for row in rows {
        guard let meter = row.text(0), let ts = row.int64(1), let value = row.int64(2) else { continue }
        let index = Int(Archive.localDay(ts, offset) - firstDay)
        guard index >= 0, index < span else { continue }
        for (owner, segment) in place.owners(of: meter) where place.chain(owner).segments[segment].holds(ts) {
          if points[owner] == nil { points[owner] = Array(repeating: nil, count: span) }
          if points[owner]?[index] == nil {
            points[owner]?[index] = MeterChain.Point(segment: segment, ts: ts, value: value)
          }
        }
      }
    } catch {
      throw .database(error)
    }
    func point(_ meter: String, _ d: Int64) -> MeterChain.Point? {
      guard d >= firstDay, d < dayNumber + 2, let days = points[meter] else { return nil }
      return days[Int(d - firstDay)]
    }
    // Missed reads: the window's freezes a place lacks, from the first day any place
    // of the area has one (so a new installation is not a list of missed reads).
    var firstHeld = dayNumber + 2
    for days in points.values {
      if let i = days.firstIndex(where: { $0 != nil }) { firstHeld = min(firstHeld, firstDay + Int64(i)) }
    }
    let window = firstHeld..<(dayNumber + 2)
    let input = try Self.input(
      place, db: db, period: dayNumber, history: Array(firstDay..<dayNumber), periodDay: { $0 },
      pastSuspects: try pastSuspects(db, area: area, days: firstDay..<dayNumber),
      reads: { meter in
        let held = window.filter { point(meter, $0) != nil }.count
        return (window.count - held, window.count)
      },
      energy: { chain, d, ct in
        guard let start = point(chain.meter, d), let end = point(chain.meter, d + 1) else { return nil }
        return chain.energy(from: start, to: end, ct: ct)
      },
      bounds: { chain in
        guard let start = point(chain.meter, dayNumber), let end = point(chain.meter, dayNumber + 1),
          end.ts > start.ts
        else { return nil }
        return (start.ts, end.ts)
      })
    let thresholds = try withoutAnomalyRulesInPlannedOutages(
      thresholds, db: db, area: area, from: offset.unixSeconds(startOf: day) * 1000,
      to: offset.unixSeconds(startOf: day.adding(days: 1)) * 1000)
    return Result(day: day, hour: nil, input: input, balance: EnergyBalance(input, thresholds: thresholds))
  }

  /// Computes the balance of `area` for one local hour, from the 15-minute real-time
  /// readings (00 01 FF 00, or 00 01 00 00 from a meter without the block) stored at
  /// the hour's start and end: a meter's energy for the hour is the difference of
  /// those two readings (× CT ratio); a meter lacking either has no data. Each meter's
  /// history is the same hour of the `historyDays` days before, so the stopped and
  /// sudden-drop rules compare like with like (with the thresholds of the daily
  /// balance, `minimumMedianEnergy` included: small hourly loads are not judged).
  /// - Parameters:
  ///   - hour: the local hour, 0…23 (23 ends at the next day's midnight reading).
  /// - Throws: like `compute`.
  public static func computeHour(
    db: Connection, area: String, day: CivilDate, hour: Int, offset: UTCOffset, historyDays: Int = 7,
    thresholds: BalanceThresholds = BalanceThresholds()
  ) throws(Failure) -> Result {
    let dayNumber = day.daysSinceEpoch
    let place = try Self.place(
      db, area: area, day: dayNumber,
      dayEnd: offset.unixSeconds(startOf: CivilDate(daysSinceEpoch: dayNumber + 1)) * 1000)
    let start = (offset.unixSeconds(startOf: day) + Int64(hour) * 3600) * 1000
    // Period k: the hour k days back; its readings at its start and end.
    var times: [SQLiteValue] = []
    for k in 0...Int64(historyDays) {
      times.append(.integer(start - k * 86_400_000))
      times.append(.integer(start - k * 86_400_000 + 3_600_000))
    }
    var placeholders = ""
    for i in 0..<times.count { placeholders += (i == 0 ? "?" : ", ?") + String(i + 2) }
    var registers: [String: [Int64: Int64]] = [:]
    do {
      // A meter with both identifiers at one time: the block (sorted last, so it wins).
      let rows = try db.query(
        "SELECT meter, ts, value FROM readings WHERE ts IN (" + placeholders
          + ") AND di IN ('0001FF00', '00010000')"
          + " AND meter IN (SELECT value FROM json_each(?1)) ORDER BY ts, di",
        [.text(Topology.jsonArray(place.meters))] + times)
      for row in rows {
        guard let meter = row.text(0), let ts = row.int64(1), let value = row.int64(2) else { continue }
        registers[meter, default: [:]][ts] = value
      }
    } catch {
      throw .database(error)
    }
    let history = (1...Int64(max(historyDays, 1))).reversed().map { -$0 }
    // Missed reads: the window's readings a place lacks, from the first time any
    // meter of the area has one.
    let first = registers.values.compactMap { $0.keys.min() }.min() ?? Int64.max
    var window: [Int64] = []
    for case .integer(let t) in times where t >= first { window.append(t) }
    let end = start + 3_600_000
    let input = try Self.input(
      place, db: db, period: 0, history: historyDays > 0 ? history : [], periodDay: { dayNumber + $0 },
      pastSuspects: [:],
      reads: { meter in
        let chain = place.chain(meter)
        let held = window.filter { chain.point(at: $0, registers) != nil }.count
        return (window.count - held, window.count)
      },
      energy: { chain, k, ct in
        let from = start + k * 86_400_000
        guard let a = chain.point(at: from, registers), let b = chain.point(at: from + 3_600_000, registers)
        else { return nil }
        return chain.energy(from: a, to: b, ct: ct)
      },
      bounds: { chain in
        guard chain.point(at: start, registers) != nil, chain.point(at: end, registers) != nil else {
          return nil
        }
        return (start, end)
      })
    let thresholds = try withoutAnomalyRulesInPlannedOutages(
      thresholds, db: db, area: area, from: start, to: start + 3_600_000)
    return Result(day: day, hour: hour, input: input, balance: EnergyBalance(input, thresholds: thresholds))
  }

  /// `thresholds` with the anomaly rules off when a planned outage of `area` overlaps
  /// `from..<to` (unix ms): a day without supply is no sudden drop or stopped meter.
  private static func withoutAnomalyRulesInPlannedOutages(
    _ thresholds: BalanceThresholds, db: Connection, area: String, from: Int64, to: Int64
  ) throws(Failure) -> BalanceThresholds {
    var thresholds = thresholds
    do {
      // (A database from before migration 16, opened read-only, has no planned outages.)
      if try db.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'planned_outages'") == 1,
        try PlannedOutages.overlaps(db, area: area, from: from, to: to)
      {
        thresholds.anomalyRules = false
      }
    } catch {
      throw .database(error)
    }
    return thresholds
  }

  /// On how many of `days` each meter of `area` was a suspect in a daily summary
  /// (`balance_suspects`, migration 9; none when the database predates it).
  private static func pastSuspects(_ db: Connection, area: String, days: Range<Int64>) throws(Failure)
    -> [String: Int]
  {
    var out: [String: Int] = [:]
    do {
      guard try db.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'balance_suspects'") == 1 else {
        return out
      }
      for row in try db.query(
        "SELECT meter, count(*) FROM balance_suspects WHERE area = ?1 AND day >= ?2 AND day < ?3 GROUP BY meter",
        [.text(area), .integer(days.lowerBound), .integer(days.upperBound)])
      {
        if let meter = row.text(0), let n = row.int64(1) { out[meter] = Int(n) }
      }
    } catch {
      throw .database(error)
    }
    return out
  }

  /// An area on one day: its meters from the topology in force that day, each with the
  /// chain of meters that held its place, and their assignments over time (CT ratios).
  private struct AreaPlace {
    let area: String
    let areaMeter: Topology.Assignment
    let customers: [(assignment: Topology.Assignment, grade: CreditGrade?)]
    /// The meters listed that day.
    let listed: [String]
    /// The chains of the listed meters that took part in a replacement (a meter
    /// without one is a chain of itself).
    let chains: [String: MeterChain]
    /// Per meter of those chains, the listed meters whose chains hold it and where.
    let members: [String: [(owner: String, segment: Int)]]
    let history: Topology.History

    /// The chain of listed `meter`.
    func chain(_ meter: String) -> MeterChain { chains[meter] ?? MeterChain(single: meter) }

    /// Which listed meters' chains a reading of `meter` may belong to, and as which segment.
    func owners(of meter: String) -> [(owner: String, segment: Int)] { members[meter] ?? [(meter, 0)] }

    /// Every meter whose readings count: the listed ones and those of their chains.
    var meters: [String] { listed + members.keys.filter { chains[$0] == nil } }
  }

  /// The area's place on local day `day` (ending at `dayEnd`, Unix ms): its meters,
  /// and each meter's chain in the life it had that day (a meter taken out and
  /// installed again elsewhere has one chain per life).
  private static func place(_ db: Connection, area: String, day: Int64, dayEnd: Int64) throws(Failure)
    -> AreaPlace
  {
    // The whole topology (a concentrator's meters, a few rows each): the day's
    // assignments and every CT ratio in force come from it.
    let history: Topology.History
    do {
      history = try Topology.history(db)
    } catch {
      throw .database(error)
    }
    let rows = history.meters(area: area, day: day)
    guard !rows.isEmpty else { throw .unknownArea(area) }
    let areaMeters = rows.filter { $0.areaMeter }
    guard let areaMeter = areaMeters.first else { throw .noAreaMeter(area) }
    guard areaMeters.count == 1 else { throw .severalAreaMeters(area, areaMeters.map { $0.meter }) }
    do {
      let replacements = try MeterChain.replacements(db)
      var chains: [String: MeterChain] = [:]
      var members: [String: [(owner: String, segment: Int)]] = [:]
      if !replacements.isEmpty {
        for row in rows {
          let chain = MeterChain(meter: row.meter, replacements: replacements, installedBefore: dayEnd)
          guard chain.segments.count > 1 else { continue }
          chains[row.meter] = chain
          for (i, segment) in chain.segments.enumerated() {
            members[segment.meter, default: []].append((row.meter, i))
          }
        }
        // A listed meter that is also in another's chain still owns its own readings.
        for row in rows where members[row.meter] != nil && chains[row.meter] == nil {
          members[row.meter]?.append((row.meter, 0))
        }
      }
      // The archive grade of each meter; for one no longer in the archive, its customer's.
      var grades: [String: String] = [:]
      var customerGrades: [String: String] = [:]
      for row in try db.query("SELECT address, customer, grade FROM archive_meters ORDER BY address DESC") {
        guard let address = row.text(0), let customer = row.text(1), let grade = row.text(2) else { continue }
        grades[address] = grade
        customerGrades[customer] = grade
      }
      var customers: [(assignment: Topology.Assignment, grade: CreditGrade?)] = []
      for row in rows where !row.areaMeter {
        customers.append((row, grade(grades[row.meter] ?? customerGrades[row.customer])))
      }
      return AreaPlace(
        area: area, areaMeter: areaMeter, customers: customers, listed: rows.map { $0.meter }, chains: chains,
        members: members, history: history)
    } catch {
      throw .database(error)
    }
  }

  /// The grade of an archive letter: `A` is rank 1, `B` 2, …; nil for anything else.
  static func grade(_ letter: String?) -> CreditGrade? {
    guard let letter, letter.utf8.count == 1, let byte = letter.utf8.first, byte >= 0x41, byte <= 0x5A else {
      return nil
    }
    return CreditGrade(rank: Int(byte - 0x40))
  }

  /// The core's input: each place's energy of `period` (× the CT ratios of its meters
  /// on the period's day; the area meter's register energy and its ratio go into the
  /// input apart) and of the `history` periods, oldest first, missing ones left out;
  /// with each customer's credit grade, its reads missed in the window, its clock
  /// drift (`meter_state`) and its relay when the agent knew it open in the period
  /// (`openRelay`).
  /// - Parameters:
  ///   - periodDay: the local day of a period (for the CT ratios in force).
  ///   - energy: a place's energy of a period, with the CT ratio of each meter.
  ///   - bounds: the times of the readings that bound a place's `period` energy.
  private static func input(
    _ place: AreaPlace, db: Connection, period: Int64, history: [Int64], periodDay: (Int64) -> Int64,
    pastSuspects: [String: Int], reads: (String) -> (missed: Int, expected: Int),
    energy: (MeterChain, Int64, (String) -> Int64) -> Int64?, bounds: (MeterChain) -> (Int64, Int64)?
  ) throws(Failure) -> BalanceInput {
    var drift: [String: Int64] = [:]
    let relays: RelayHistory
    do {
      for row in try db.query(
        """
        SELECT meter, clock_drift FROM meter_state
        WHERE clock_drift IS NOT NULL AND meter IN (SELECT value FROM json_each(?1))
        """, [.text(Topology.jsonArray(place.customers.map { $0.assignment.meter }))])
      {
        if let meter = row.text(0), let seconds = row.int64(1) { drift[meter] = seconds }
      }
      var meters: [String] = []
      for customer in place.customers { meters += place.chain(customer.assignment.meter).meters }
      relays = try RelayHistory(db, meters: meters)
    } catch {
      throw .database(error)
    }
    var customers: [MeterDay] = []
    for (assignment, grade) in place.customers {
      let chain = place.chain(assignment.meter)
      var past: [Energy] = []
      for p in history {
        let day = periodDay(p)
        if let e = energy(chain, p, { place.history.ctRatio($0, day: day) }) {
          past.append(Energy(wattHours: e))
        }
      }
      let day = periodDay(period)
      let ct = { (meter: String) in place.history.ctRatio(meter, day: day) }
      var open: OpenRelay? = nil
      if let (from, to) = bounds(chain) {
        do {
          open = try relays.openRelay(db, chain: chain, from: from, to: to, ct: ct)
        } catch {
          throw .database(error)
        }
      }
      let (missed, expected) = reads(assignment.meter)
      customers.append(
        MeterDay(
          meter: assignment.meter, customer: assignment.customer,
          energy: energy(chain, period, ct).map { Energy(wattHours: $0) }, history: past, grade: grade,
          clockDriftSeconds: drift[assignment.meter], missedReads: max(missed, 0), expectedReads: expected,
          openRelay: open, pastSuspectDays: pastSuspects[assignment.meter] ?? 0))
    }
    // The area meter's register energy and ratio; in primary Wh with ratio 1 when a
    // swap changed the CT ratio of its place.
    let areaDay = periodDay(period)
    let areaCT = place.areaMeter.ctRatio
    var areaEnergy: Energy? = nil
    var ratio = areaCT
    let areaChain = place.chain(place.areaMeter.meter)
    if areaChain.meters.allSatisfy({ place.history.ctRatio($0, day: areaDay) == areaCT }) {
      areaEnergy = energy(areaChain, period, { _ in 1 }).map { Energy(wattHours: $0) }
    } else {
      areaEnergy = energy(areaChain, period, { place.history.ctRatio($0, day: areaDay) }).map {
        Energy(wattHours: $0)
      }
      ratio = 1
    }
    return BalanceInput(
      area: place.area, areaMeter: place.areaMeter.meter, areaEnergy: areaEnergy, ctRatio: ratio,
      customers: customers)
  }

  /// What the relay log (`relay_log`, migration 10) and the relay state (`relay`) say
  /// of when meters' relays were known open: from each verified trip until the next
  /// close was requested (or still), with the energy register read at the trip's
  /// verification (`relay_log.energy_wh`, migration 15).
  struct RelayHistory {
    /// Per meter the times its relay was known open: verified open at `since`, a close
    /// requested at `until` (nil: still open).
    var open: [String: [(since: Int64, until: Int64?)]] = [:]
    /// Per meter the registers read when its trips were verified (`relay_log.energy_wh`)
    /// and, for the current one, the base the relay control watches (`relay.verified_wh`).
    var bases: [String: [(ts: Int64, wattHours: Int64)]] = [:]

    init(_ db: Connection, meters: [String]) throws(SQLiteError) {
      guard !meters.isEmpty else { return }
      let list = Topology.jsonArray(meters)
      var started: [String: Int64] = [:]
      for row in try db.query(
        """
        SELECT meter, ts, action, outcome, energy_wh FROM relay_log
        WHERE meter IN (SELECT value FROM json_each(?1)) AND action IN ('trip', 'close') ORDER BY ts, id
        """, [.text(list)])
      {
        guard let meter = row.text(0), let ts = row.int64(1) else { continue }
        if row.text(2) == "trip", row.text(3) == "verified" {
          if started[meter] == nil { started[meter] = ts }
          if let wh = row.int64(4) { bases[meter, default: []].append((ts, wh)) }
        } else if row.text(2) == "close", let since = started[meter] {
          open[meter, default: []].append((since, ts))
          started[meter] = nil
        }
      }
      for (meter, since) in started { open[meter, default: []].append((since, nil)) }
      for row in try db.query(
        """
        SELECT meter, verified_at, verified_wh FROM relay WHERE meter IN (SELECT value FROM json_each(?1))
          AND desired = 'open' AND verified = 'open' AND verified_at IS NOT NULL AND verified_wh IS NOT NULL
        """, [.text(list)])
      {
        if let meter = row.text(0), let ts = row.int64(1), let wh = row.int64(2) {
          bases[meter, default: []].append((ts, wh))
        }
      }
    }

    /// The relay of `chain`'s meters known open within [`from`, `to`] (Unix ms), with
    /// the energy registered meanwhile: per open time, the last reading in it − the
    /// first (real-time readings, freezes and the register read after the trip; × `ct`);
    /// nil when no relay of the chain was known open then.
    func openRelay(_ db: Connection, chain: MeterChain, from: Int64, to: Int64, ct: (String) -> Int64)
      throws(SQLiteError) -> OpenRelay?
    {
      var since: Int64? = nil
      var until: Int64? = nil
      var stillOpen = false
      var energy: Int64 = 0
      var first: Int64? = nil
      var last: Int64? = nil
      for segment in chain.segments {
        for interval in open[segment.meter] ?? [] {
          let start = max(interval.since, from, segment.from)
          let end = min(
            interval.until ?? Int64.max, to, segment.until == Int64.max ? Int64.max : segment.until)
          guard start < end else { continue }
          since = min(since ?? interval.since, interval.since)
          if let closed = interval.until { until = max(until ?? closed, closed) } else { stillOpen = true }
          var readings = try db.query(
            """
            SELECT ts, value FROM readings WHERE meter = ?1 AND di IN ('0001FF00', '00010000', '05060101')
              AND ts >= ?2 AND ts <= ?3 ORDER BY ts
            """, [.text(segment.meter), .integer(start), .integer(end)]
          ).compactMap { row -> (Int64, Int64)? in
            guard let ts = row.int64(0), let value = row.int64(1) else { return nil }
            return (ts, value)
          }
          for base in bases[segment.meter] ?? [] where base.ts >= start && base.ts <= end {
            readings.append(base)
          }
          readings.sort { $0.0 < $1.0 }
          guard let a = readings.first, let b = readings.last else {
            first = min(first ?? start, start)
            last = max(last ?? end, end)
            continue
          }
          if b.0 > a.0 { energy += (b.1 - a.1) * ct(segment.meter) }
          first = min(first ?? a.0, a.0)
          last = max(last ?? b.0, b.0)
        }
      }
      guard let since else { return nil }
      return OpenRelay(
        since: since, until: stillOpen ? nil : until, energy: Energy(wattHours: energy), from: first ?? from,
        to: last ?? to)
    }
  }
}

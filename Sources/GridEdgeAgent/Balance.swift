import DLT645
import GridEdgeCore
import SQLiteStore

/// The energy balance of one transformer area for one local day, from the daily
/// freezes in the reading cache and the area's topology in the meter archive (and
/// for one local hour from the 15-minute real-time readings: `computeHour`).
///
/// A meter's energy for local day D is freeze(D + 1) − freeze(D), where freeze(D) is
/// its earliest daily freeze (stored under 05 06 01 01 with the meter's freeze time as
/// timestamp) whose time falls in local day D; times are placed in days with
/// `device.utc_offset`. Energies are register values × the meter's CT ratio from the
/// archive (`ct_ratio`, 1 for a direct-connected meter). The area meter is the one
/// meter of the area with `area_meter` set.
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
  /// - Throws: `Failure` for an area that is not in the archive or has not exactly
  ///   one area meter, or a database error.
  public static func compute(
    db: Connection, area: String, day: CivilDate, offset: UTCOffset, historyDays: Int = 7,
    thresholds: BalanceThresholds = BalanceThresholds()
  ) throws(Failure) -> Result {
    let dayNumber = day.daysSinceEpoch
    let firstDay = dayNumber - Int64(historyDays)
    let archive = try Self.archive(db, area: area)
    var freezes: [String: [Int64: Int64]] = [:]
    // The freeze identifier is written into the SQL, not bound: only then can the
    // planner use the partial index of daily freezes (migration 9) instead of
    // walking every 15-minute reading of the window.
    assert(DataIdentifier.lastDailyFreezeForwardActive.description == "05060101")
    do {
      let rows = try db.query(
        """
        SELECT meter, ts, value FROM readings
        WHERE ts >= ?1 AND ts < ?2 AND di = '05060101'
          AND meter IN (SELECT address FROM archive_meters WHERE area = ?3)
        ORDER BY ts
        """,
        [
          .integer(offset.unixSeconds(startOf: CivilDate(daysSinceEpoch: firstDay)) * 1000),
          .integer(offset.unixSeconds(startOf: CivilDate(daysSinceEpoch: dayNumber + 2)) * 1000),
          .text(area),
        ])
      for row in rows {
        guard let meter = row.text(0), let ts = row.int64(1), let value = row.int64(2) else { continue }
        let seconds = ts >= 0 ? ts / 1000 : (ts - 999) / 1000
        let local = offset.localDateTime(fromUnix: seconds).date.daysSinceEpoch
        if freezes[meter]?[local] == nil { freezes[meter, default: [:]][local] = value }
      }
    } catch {
      throw .database(error)
    }
    // Missed reads: the window's freezes a meter lacks, from the first day any meter
    // of the area has one (so a new installation is not a list of missed reads).
    let window =
      min(freezes.values.compactMap { $0.keys.min() }.min() ?? dayNumber + 2, dayNumber + 2)..<(dayNumber + 2)
    let input = try Self.input(
      archive, db: db, period: dayNumber, history: Array(firstDay..<dayNumber),
      pastSuspects: try pastSuspects(db, area: area, days: firstDay..<dayNumber),
      reads: { meter in
        let held = freezes[meter]?.keys.filter { window.contains($0) }.count ?? 0
        return (window.count - held, window.count)
      },
      energy: { meter, d in
        guard let days = freezes[meter], let start = days[d], let end = days[d + 1] else { return nil }
        return end - start
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
    let archive = try Self.archive(db, area: area)
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
          + " AND meter IN (SELECT address FROM archive_meters WHERE area = ?1) ORDER BY ts, di",
        [.text(area)] + times)
      for row in rows {
        guard let meter = row.text(0), let ts = row.int64(1), let value = row.int64(2) else { continue }
        registers[meter, default: [:]][ts] = value
      }
    } catch {
      throw .database(error)
    }
    let history = (1...Int64(max(historyDays, 1))).reversed().map { -$0 }
    // Missed reads: the window's readings a meter lacks, from the first time any
    // meter of the area has one.
    let first = registers.values.compactMap { $0.keys.min() }.min() ?? Int64.max
    let expected = times.filter { if case .integer(let t) = $0 { return t >= first } else { return false } }
      .count
    let input = try Self.input(
      archive, db: db, period: 0, history: historyDays > 0 ? history : [], pastSuspects: [:],
      reads: { meter in
        let held = registers[meter]?.keys.filter { $0 >= first }.count ?? 0
        return (expected - held, expected)
      },
      energy: { meter, k in
        let from = start + k * 86_400_000
        guard let values = registers[meter], let a = values[from], let b = values[from + 3_600_000] else {
          return nil
        }
        return b - a
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
      // (A database from before migration 14, opened read-only, has no planned outages.)
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

  /// The area's meters in the archive (by address) and which one is the area meter.
  private struct AreaArchive {
    let area: String
    let areaMeter: (address: String, ct: Int64)
    let customers: [(address: String, customer: String, ct: Int64, grade: CreditGrade?)]
  }

  private static func archive(_ db: Connection, area: String) throws(Failure) -> AreaArchive {
    let rows: [Row]
    do {
      rows = try db.query(
        "SELECT address, customer, ct_ratio, area_meter, grade FROM archive_meters WHERE area = ?1 ORDER BY address",
        [.text(area)])
    } catch {
      throw .database(error)
    }
    guard !rows.isEmpty else { throw .unknownArea(area) }
    let areaMeters = rows.filter { $0.int64(3) == 1 }
    guard let areaRow = areaMeters.first else { throw .noAreaMeter(area) }
    guard areaMeters.count == 1 else { throw .severalAreaMeters(area, areaMeters.map { $0.text(0) ?? "" }) }
    return AreaArchive(
      area: area, areaMeter: (areaRow.text(0) ?? "", max(areaRow.int64(2) ?? 1, 1)),
      customers: rows.filter { $0.int64(3) != 1 }.map {
        ($0.text(0) ?? "", $0.text(1) ?? "", max($0.int64(2) ?? 1, 1), grade($0.text(4)))
      })
  }

  /// The grade of an archive letter: `A` is rank 1, `B` 2, …; nil for anything else.
  static func grade(_ letter: String?) -> CreditGrade? {
    guard let letter, letter.utf8.count == 1, let byte = letter.utf8.first, byte >= 0x41, byte <= 0x5A else {
      return nil
    }
    return CreditGrade(rank: Int(byte - 0x40))
  }

  /// The core's input: each meter's register energy of `period` (× its CT ratio for
  /// customers; the area meter's ratio goes into the input) and of the `history`
  /// periods, oldest first, missing ones left out; with each customer's credit grade,
  /// its reads missed in the window and its clock drift (`meter_state`).
  private static func input(
    _ archive: AreaArchive, db: Connection, period: Int64, history: [Int64], pastSuspects: [String: Int],
    reads: (String) -> (missed: Int, expected: Int), energy: (String, Int64) -> Int64?
  ) throws(Failure) -> BalanceInput {
    var drift: [String: Int64] = [:]
    do {
      for row in try db.query(
        """
        SELECT meter, clock_drift FROM meter_state
        WHERE clock_drift IS NOT NULL AND meter IN (SELECT address FROM archive_meters WHERE area = ?1)
        """, [.text(archive.area)])
      {
        if let meter = row.text(0), let seconds = row.int64(1) { drift[meter] = seconds }
      }
    } catch {
      throw .database(error)
    }
    var customers: [MeterDay] = []
    for meter in archive.customers {
      var past: [Energy] = []
      for p in history {
        if let e = energy(meter.address, p) { past.append(Energy(wattHours: e * meter.ct)) }
      }
      let (missed, expected) = reads(meter.address)
      // relayOpen stays false: the agent does not read relay states back yet (the
      // disconnect work), so the energy-while-open rule cannot fire on the device.
      customers.append(
        MeterDay(
          meter: meter.address, customer: meter.customer,
          energy: energy(meter.address, period).map { Energy(wattHours: $0 * meter.ct) }, history: past,
          grade: meter.grade, clockDriftSeconds: drift[meter.address], missedReads: max(missed, 0),
          expectedReads: expected, pastSuspectDays: pastSuspects[meter.address] ?? 0))
    }
    return BalanceInput(
      area: archive.area, areaMeter: archive.areaMeter.address,
      areaEnergy: energy(archive.areaMeter.address, period).map { Energy(wattHours: $0) },
      ctRatio: archive.areaMeter.ct, customers: customers)
  }
}

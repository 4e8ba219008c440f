import DLT645
import GridEdgeCore
import SQLiteStore

/// The energy balance of one transformer area for one local day, from the daily
/// freezes in the reading cache and the area's topology in the meter archive.
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
    var archive: [Row] = []
    var freezes: [String: [Int64: Int64]] = [:]
    // The freeze identifier is written into the SQL, not bound: only then can the
    // planner use the partial index of daily freezes (migration 10) instead of
    // walking every 15-minute reading of the window.
    assert(DataIdentifier.lastDailyFreezeForwardActive.description == "05060101")
    do {
      archive = try db.query(
        "SELECT address, customer, ct_ratio, area_meter FROM archive_meters WHERE area = ?1 ORDER BY address",
        [.text(area)])
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
    guard !archive.isEmpty else { throw .unknownArea(area) }
    let areaMeters = archive.filter { $0.int64(3) == 1 }
    guard let areaRow = areaMeters.first else { throw .noAreaMeter(area) }
    guard areaMeters.count == 1 else { throw .severalAreaMeters(area, areaMeters.map { $0.text(0) ?? "" }) }

    /// freeze(d + 1) − freeze(d) for `meter`, register units.
    func energy(_ meter: String, _ d: Int64) -> Int64? {
      guard let days = freezes[meter], let start = days[d], let end = days[d + 1] else { return nil }
      return end - start
    }
    var customers: [MeterDay] = []
    for row in archive where row.int64(3) != 1 {
      let meter = row.text(0) ?? ""
      let ct = max(row.int64(2) ?? 1, 1)
      var history: [Energy] = []
      for d in firstDay..<dayNumber {
        if let e = energy(meter, d) { history.append(Energy(wattHours: e * ct)) }
      }
      customers.append(
        MeterDay(
          meter: meter, customer: row.text(1) ?? "",
          energy: energy(meter, dayNumber).map { Energy(wattHours: $0 * ct) },
          history: history))
    }
    let areaMeter = areaRow.text(0) ?? ""
    let input = BalanceInput(
      area: area, areaMeter: areaMeter,
      areaEnergy: energy(areaMeter, dayNumber).map { Energy(wattHours: $0) },
      ctRatio: max(areaRow.int64(2) ?? 1, 1), customers: customers)
    return Result(day: day, input: input, balance: EnergyBalance(input, thresholds: thresholds))
  }
}

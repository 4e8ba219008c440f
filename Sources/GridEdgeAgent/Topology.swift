import GridEdgeCore
import SQLiteStore

/// The area topology with effective dates (migration 15, table `topology`): which area,
/// phase and CT ratio each meter had from which local day, and whether it was its
/// area's meter. The energy balance of a day uses the assignments in force that day,
/// so a meter moved from area A to area B on day D counts in A before D and in B from D.
///
/// The topology is kept by the archive commands, not by a second source: the archive
/// already carries area, phase and CT per meter, is signed and versioned by HQ, and
/// one place to state where a meter is cannot disagree with itself. After each
/// applied archive command, every meter whose area, phase, CT ratio, area-meter flag or
/// customer differs from its newest assignment gets a new one, and a meter that left
/// the archive gets one without an area, effective from:
///
/// - the command's `effective` (`"YYYY-MM-DD"`, local), when given;
/// - else, for a meter never assigned before, `beginning` (its first assignment holds
///   for the days before it, e.g. a new concentrator's snapshot for the backfilled
///   days);
/// - else the local day the command is applied.
///
/// A new assignment replaces the meter's assignments from its effective day on (HQ's
/// newest word wins). A meter of `archive_meters` without any assignment (a row
/// written there by other means than an archive command) holds its archive
/// assignment for every day: the view `meter_topology` reads both. A replacement
/// (`op` `replace`) ends the old meter's assignment and starts the new one's on the
/// local day of the swap; the balance joins the two meters into one place
/// (`MeterChain`).
public enum Topology {
  /// The effective day of an assignment that holds for every earlier day too.
  public static let beginning: Int64 = -1_000_000_000

  /// One meter's assignment from `effectiveDay` on.
  public struct Assignment: Hashable, Sendable {
    public let meter: String
    public let effectiveDay: Int64
    /// The area; nil when the meter is in none (removed from the archive, replaced).
    public let area: String?
    public let phase: String
    public let ctRatio: Int64
    public let areaMeter: Bool
    public let customer: String
  }

  /// Every assignment of some meters, to look one up by day.
  public struct History: Sendable {
    var byMeter: [String: [Assignment]] = [:]

    /// The assignment of `meter` in force on local day `day` (days since 1970-01-01).
    public func at(_ meter: String, day: Int64) -> Assignment? {
      guard let rows = byMeter[meter] else { return nil }
      var found: Assignment? = nil
      for row in rows where row.effectiveDay <= day { found = row }
      return found
    }

    /// The meters in `area` on local day `day`, by address.
    public func meters(area: String, day: Int64) -> [Assignment] {
      var out: [Assignment] = []
      for meter in byMeter.keys {
        if let row = at(meter, day: day), row.area == area { out.append(row) }
      }
      return out.sorted { $0.meter < $1.meter }
    }

    /// The CT ratio of `meter` on `day` (its earliest one before its first assignment; 1 unknown).
    public func ctRatio(_ meter: String, day: Int64) -> Int64 {
      max(at(meter, day: day)?.ctRatio ?? byMeter[meter]?.first?.ctRatio ?? 1, 1)
    }
  }

  /// Every meter's assignments (`meter_topology`), oldest first per meter.
  public static func history(_ db: Connection) throws(SQLiteError) -> History {
    var history = History()
    let rows = try db.query(
      """
      SELECT meter, effective_day, area, phase, ct_ratio, area_meter, customer FROM meter_topology
      ORDER BY meter, effective_day
      """)
    for row in rows {
      let assignment = Self.assignment(row)
      history.byMeter[assignment.meter, default: []].append(assignment)
    }
    return history
  }

  /// The areas with at least one meter on local day `day`, sorted.
  public static func areas(_ db: Connection, day: Int64) throws(SQLiteError) -> [String] {
    try db.query(
      """
      SELECT DISTINCT area FROM meter_topology t
      WHERE area IS NOT NULL AND effective_day = (
        SELECT max(effective_day) FROM meter_topology WHERE meter = t.meter AND effective_day <= ?1)
      ORDER BY area
      """, [.integer(day)]
    ).compactMap { $0.text(0) }
  }

  /// Gives every meter of `archive_meters` without an assignment (written there by
  /// other means) its archive assignment from `beginning`, as `meter_topology` shows it,
  /// so that an archive command changing or removing it keeps its earlier days. Called
  /// before an archive command changes `archive_meters`, in its transaction.
  static func seed(_ db: Connection, version: Int64, now: Int64) throws(SQLiteError) {
    try db.run(
      """
      INSERT INTO topology (meter, effective_day, area, phase, ct_ratio, area_meter, customer, version, source,
        recorded_at)
      SELECT address, ?1, area, phase, ct_ratio, area_meter, customer, ?2, 'archive', ?3 FROM archive_meters
      WHERE address NOT IN (SELECT meter FROM topology)
      """, [.integer(beginning), .integer(version), .integer(now)])
  }

  /// Brings the topology in line with `archive_meters` after an archive command, in
  /// the caller's transaction (see the type's rules for the effective day).
  /// - Parameters:
  ///   - effective: the command's `effective` day, if it gave one.
  ///   - today: the local day the command is applied.
  /// - Returns: how many assignments were recorded.
  static func record(_ db: Connection, effective: Int64?, today: Int64, version: Int64, now: Int64)
    throws(SQLiteError) -> Int
  {
    let latest = """
      (SELECT t.* FROM topology t WHERE t.effective_day = (
        SELECT max(effective_day) FROM topology WHERE meter = t.meter))
      """
    let changed = try db.query(
      """
      SELECT m.address, m.area, m.phase, m.ct_ratio, m.area_meter, m.customer, l.meter IS NULL
      FROM archive_meters m LEFT JOIN
      """ + latest
        + """
         l ON l.meter = m.address
        WHERE l.meter IS NULL OR l.area IS NOT m.area OR l.phase IS NOT m.phase OR l.ct_ratio IS NOT m.ct_ratio
          OR l.area_meter IS NOT m.area_meter OR l.customer IS NOT m.customer
        """)
    let removed = try db.query(
      "SELECT l.meter, NULL, l.phase, l.ct_ratio, l.area_meter, l.customer, 0 FROM " + latest
        + " l WHERE l.area IS NOT NULL AND l.meter NOT IN (SELECT address FROM archive_meters)")
    for row in changed + removed {
      let first = row.int64(6) == 1
      try assign(
        db, meter: row.text(0) ?? "", day: effective ?? (first ? beginning : today), area: row.text(1),
        phase: row.text(2) ?? "A", ct: row.int64(3) ?? 1, areaMeter: row.int64(4) ?? 0,
        customer: row.text(5) ?? "", version: version, source: "archive", now: now)
    }
    return changed.count + removed.count
  }

  /// A meter replacement on local day `day`: the old meter leaves its area and the new
  /// one takes its place (as the archive now has it), both from `day`.
  static func recordReplacement(
    _ db: Connection, old: String, new: String, day: Int64, version: Int64, now: Int64
  ) throws(SQLiteError) {
    for row in try db.query(
      "SELECT address, area, phase, ct_ratio, area_meter, customer FROM archive_meters WHERE address = ?1",
      [.text(new)])
    {
      try assign(
        db, meter: new, day: day, area: row.text(1), phase: row.text(2) ?? "A", ct: row.int64(3) ?? 1,
        areaMeter: row.int64(4) ?? 0, customer: row.text(5) ?? "", version: version, source: "replace",
        now: now)
    }
    let last = try db.query(
      """
      SELECT phase, ct_ratio, area_meter, customer FROM topology WHERE meter = ?1
      ORDER BY effective_day DESC LIMIT 1
      """, [.text(old)]
    ).first
    if let last {
      try assign(
        db, meter: old, day: day, area: nil, phase: last.text(0) ?? "A", ct: last.int64(1) ?? 1,
        areaMeter: last.int64(2) ?? 0, customer: last.text(3) ?? "", version: version, source: "replace",
        now: now)
    }
  }

  private static func assign(
    _ db: Connection, meter: String, day: Int64, area: String?, phase: String, ct: Int64, areaMeter: Int64,
    customer: String, version: Int64, source: String, now: Int64
  ) throws(SQLiteError) {
    try db.run(
      "DELETE FROM topology WHERE meter = ?1 AND effective_day >= ?2", [.text(meter), .integer(day)])
    try db.run(
      """
      INSERT INTO topology (meter, effective_day, area, phase, ct_ratio, area_meter, customer, version, source,
        recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
      """,
      [
        .text(meter), .integer(day), area.map { .text($0) } ?? .null, .text(phase), .integer(ct),
        .integer(areaMeter), .text(customer), .integer(version), .text(source), .integer(now),
      ])
  }

  private static func assignment(_ row: Row) -> Assignment {
    Assignment(
      meter: row.text(0) ?? "", effectiveDay: row.int64(1) ?? beginning, area: row.text(2),
      phase: row.text(3) ?? "A", ctRatio: max(row.int64(4) ?? 1, 1), areaMeter: row.int64(5) == 1,
      customer: row.text(6) ?? "")
  }

  /// `["a","b"]` for SQLite's `json_each` (addresses and ids hold no characters to escape
  /// but are escaped anyway).
  static func jsonArray(_ values: [String]) -> String {
    var out = "["
    for (i, value) in values.enumerated() { out += (i == 0 ? "" : ",") + BalanceReport.quoted(value) }
    return out + "]"
  }
}

/// The meters that held one place one after another: a meter with the meters it
/// replaced and those that replaced it (`meter_replacements`), each for its time. Energy
/// between two readings of different meters of a chain is the earlier meter's final
/// reading − its reading, the whole time of any meter between (final − initial), and
/// the later meter's reading − its initial reading, each × its CT ratio: no jump and
/// nothing lost or counted twice at a swap.
struct MeterChain: Sendable {
  /// One meter's time in the chain, [from, until) in Unix ms.
  struct Segment: Sendable {
    let meter: String
    let from: Int64
    let until: Int64
    /// The register at `from` (the replacement's initial reading; 0 for the first meter).
    let initial: Int64
    /// The register at `until` (the replacement's final reading; 0 for the last meter).
    let final: Int64

    func holds(_ ts: Int64) -> Bool { ts >= from && ts < until }
  }

  /// A register reading of the chain: which segment's meter, when, what.
  struct Point: Sendable {
    let segment: Int
    let ts: Int64
    let value: Int64
  }

  /// A swap as `meter_replacements` keeps it.
  struct Replacement: Sendable {
    let old: String
    let new: String
    let at: Int64
    let oldFinal: Int64
    let newInitial: Int64
  }

  /// The meter listed (the one the topology places in the area).
  let meter: String
  /// The chain's meters in time order.
  let segments: [Segment]

  /// The chain through `meter` in the life it began last before `installedBefore`
  /// (a meter taken out and installed again later is in one chain per life), at most
  /// 16 swaps either way.
  init(meter: String, replacements: [Replacement], installedBefore: Int64 = Int64.max) {
    func installing(_ m: String, before bound: Int64) -> Replacement? {
      replacements.filter { $0.new == m && $0.at < bound }.max { $0.at < $1.at }
    }
    func removing(_ m: String, after bound: Int64) -> Replacement? {
      replacements.filter { $0.old == m && $0.at > bound }.min { $0.at < $1.at }
    }
    let installed = installing(meter, before: installedBefore)
    let removed = removing(meter, after: installed?.at ?? Int64.min)
    var segments = [
      Segment(
        meter: meter, from: installed?.at ?? Int64.min, until: removed?.at ?? Int64.max,
        initial: installed?.newInitial ?? 0, final: removed?.oldFinal ?? 0)
    ]
    var step = installed
    var count = 0
    while let swap = step, count < 16 {
      let earlier = installing(swap.old, before: swap.at)
      segments.insert(
        Segment(
          meter: swap.old, from: earlier?.at ?? Int64.min, until: swap.at, initial: earlier?.newInitial ?? 0,
          final: swap.oldFinal), at: 0)
      step = earlier
      count += 1
    }
    step = removed
    count = 0
    while let swap = step, count < 16 {
      let later = removing(swap.new, after: swap.at)
      segments.append(
        Segment(
          meter: swap.new, from: swap.at, until: later?.at ?? Int64.max, initial: swap.newInitial,
          final: later?.oldFinal ?? 0))
      step = later
      count += 1
    }
    self.meter = meter
    self.segments = segments
  }

  /// A meter that was never swapped: a chain of itself.
  init(single meter: String) {
    self.meter = meter
    segments = [Segment(meter: meter, from: Int64.min, until: Int64.max, initial: 0, final: 0)]
  }

  /// Every swap recorded.
  static func replacements(_ db: Connection) throws(SQLiteError) -> [Replacement] {
    try db.query("SELECT old, new, at, old_final_wh, new_initial_wh FROM meter_replacements").map {
      Replacement(
        old: $0.text(0) ?? "", new: $0.text(1) ?? "", at: $0.int64(2) ?? 0, oldFinal: $0.int64(3) ?? 0,
        newInitial: $0.int64(4) ?? 0)
    }
  }

  /// The meters of the chain.
  var meters: [String] { segments.map { $0.meter } }

  /// The energy from `a` to `b` (Wh, × each meter's `ct`); nil when `b` is not after `a`.
  func energy(from a: Point, to b: Point, ct: (String) -> Int64) -> Int64? {
    guard b.ts > a.ts, b.segment >= a.segment else { return nil }
    let first = segments[a.segment]
    if a.segment == b.segment { return (b.value - a.value) * ct(first.meter) }
    var total = (first.final - a.value) * ct(first.meter)
    for i in (a.segment + 1)..<b.segment {
      total += (segments[i].final - segments[i].initial) * ct(segments[i].meter)
    }
    let last = segments[b.segment]
    return total + (b.value - last.initial) * ct(last.meter)
  }

  /// The reading at exactly `ts` of the meter whose time holds it.
  func point(at ts: Int64, _ registers: [String: [Int64: Int64]]) -> Point? {
    for (i, segment) in segments.enumerated() where segment.holds(ts) {
      if let value = registers[segment.meter]?[ts] { return Point(segment: i, ts: ts, value: value) }
    }
    return nil
  }
}

import GridEdgeCore
import Runtime
import SQLiteStore

/// `gridedge outages [--json]`: the areas without supply now, the recent outages, the
/// planned outages not over yet and today's reliability figures so far, read-only
/// (works whether or not the agent runs).
public enum OutageReport {
  /// Prints the report.
  /// - Parameters:
  ///   - now: wall time, unix ms (today is the local day of it).
  public static func show(config: Config, json: Bool, now: Int64) -> Int32 {
    guard let db = LedgerReport.open(config) else { return ExitCode.database }
    let offset = UTCOffset(seconds: config.integer("device.utc_offset") * 60) ?? .china
    let today = offset.localDateTime(fromUnix: unixSeconds(milliseconds: now)).date
    do {
      let outages = try db.query(
        """
        SELECT json_object('outage', id, 'area', area, 'kind', CASE WHEN planned IS NULL THEN 'unplanned'
            ELSE 'planned' END, 'planned', planned, 'phases', phases, 'causes', json('["' || replace(causes, ',',
            '","') || '"]'), 'start', started_at, 'end', ended_at,
          'duration_s', (coalesce(ended_at, ?1) - started_at) / 1000, 'customers_count', customers,
          'meters', json(meters)),
          id, area, planned, phases, causes, started_at, ended_at, customers
        FROM outages ORDER BY id DESC LIMIT 50
        """, [.integer(now)])
      let planned = try db.query(
        """
        SELECT json_object('id', id, 'area', area, 'from', starts_at, 'to', ends_at, 'reason', reason,
          'active', json(CASE WHEN starts_at <= ?1 THEN 'true' ELSE 'false' END)),
          id, area, starts_at, ends_at, reason
        FROM planned_outages WHERE ends_at > ?1 AND cancelled_at IS NULL ORDER BY starts_at, id
        """, [.integer(now)])
      let figures = try Outages.figures(db, day: today, offset: offset, now: now)
      if json {
        var out = "{\"now\":" + String(now) + ",\"outages\":["
        for (i, row) in outages.enumerated() { out += (i == 0 ? "" : ",") + (row.text(0) ?? "{}") }
        out += "],\"planned\":["
        for (i, row) in planned.enumerated() { out += (i == 0 ? "" : ",") + (row.text(0) ?? "{}") }
        out += "],\"today\":["
        for (i, area) in figures.enumerated() { out += (i == 0 ? "" : ",") + area.json }
        Console.writeLine(out + "]}")
        return ExitCode.ok
      }
      let pad = ArchiveReport.pad
      let open = outages.filter { $0.int64(7) == nil }
      Console.writeLine(
        open.isEmpty
          ? "every area has supply"
          : String(open.count) + " area(s) without supply: "
            + open.map { ($0.text(2) ?? "") + " since " + formatUTC(milliseconds: $0.int64(6) ?? 0) }
            .joined(separator: ", "))
      Console.writeLine("")
      Console.writeLine(
        "outage  area      kind       phases  causes                  start                 duration  customers"
      )
      for row in outages {
        let start = row.int64(6) ?? 0
        let duration = ((row.int64(7) ?? now) - start) / 1000
        Console.writeLine(
          pad(String(row.int64(1) ?? 0), 7) + pad(row.text(2) ?? "", 9)
            + pad(row.text(3) == nil ? "unplanned" : "planned", 10) + pad(row.text(4) ?? "", 7)
            + pad(row.text(5) ?? "", 23) + pad(formatUTC(milliseconds: start), 21)
            + pad(String(duration) + " s" + (row.int64(7) == nil ? "+" : ""), 9) + String(row.int64(8) ?? 0))
      }
      Console.writeLine("")
      Console.writeLine(String(planned.count) + " planned outage(s) not over yet")
      for row in planned {
        Console.writeLine(
          "  " + pad(row.text(1) ?? "", 12) + pad(row.text(2) ?? "", 9)
            + formatUTC(milliseconds: row.int64(3) ?? 0) + " .. " + formatUTC(milliseconds: row.int64(4) ?? 0)
            + ((row.text(5) ?? "").isEmpty ? "" : "  " + (row.text(5) ?? "")))
      }
      Console.writeLine("")
      Console.writeLine("today (" + today.isoText + ") so far, unplanned / planned:")
      Console.writeLine("area      customers  interruptions  customer-minutes  longest (s)")
      for area in figures {
        Console.writeLine(
          pad(area.area, 9) + pad(String(area.customers), 10)
            + pad(String(area.unplanned.interruptions) + " / " + String(area.planned.interruptions), 14)
            + pad(String(area.unplanned.customerMinutes) + " / " + String(area.planned.customerMinutes), 17)
            + String(area.unplanned.longestSeconds) + " / " + String(area.planned.longestSeconds))
      }
      return ExitCode.ok
    } catch {
      Log.error("outage", error.description)
      return ExitCode.failure
    }
  }
}

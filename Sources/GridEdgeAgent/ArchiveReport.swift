import Runtime
import SQLiteStore

/// `gridedge archive [--json]`: HQ's meter archive as this device holds it, read-only
/// (works whether or not the agent runs).
public enum ArchiveReport {
  /// Prints the archive version and every meter, and which configured bus reads it;
  /// with each meter its dated topology (`topology`: `from` a local day, null for the
  /// assignment that holds from the beginning), and in the text the dated changes.
  public static func show(config: Config, json: Bool) -> Int32 {
    guard let db = LedgerReport.open(config) else { return ExitCode.database }
    var configured: [String] = []
    for n in 1...4 where config.string("bus." + String(n)) != nil { configured.append(String(n)) }
    let fromFile = config.string("meter.file")
    do {
      let state = try db.query("SELECT version, updated_at FROM archive_state WHERE singleton = 1").first
      let version = state?.int64(0) ?? 0
      let rows = try db.query(
        """
        SELECT address, customer, area, phase, ct_ratio, category, grade, keep_power, outage_sensitive, bus,
          baud, area_meter, updated_at
        FROM archive_meters ORDER BY area, address
        """)
      // How each meter is read: "bus.N", or why not.
      func polled(_ field: String) -> String {
        if let file = fromFile { return "meter.file " + file }
        guard let bus = ArchiveMeters.busName(field), configured.contains(bus) else {
          return "not read: bus '" + field + "' is not configured"
        }
        return "bus." + bus
      }
      if json {
        var meters = "["
        for (i, row) in rows.enumerated() {
          let object =
            try db.query(
              """
              SELECT json_object('address', ?1, 'customer', ?2, 'area', ?3, 'phase', ?4, 'ct', ?5, 'category', ?6,
                'grade', ?7, 'keep_power', json(CASE WHEN ?8 THEN 'true' ELSE 'false' END),
                'outage_sensitive', json(CASE WHEN ?9 THEN 'true' ELSE 'false' END), 'bus', ?10, 'baud', ?11,
                'area_meter', json(CASE WHEN ?12 THEN 'true' ELSE 'false' END), 'updated_at', ?13, 'read_by', ?14,
                'topology', (SELECT json_group_array(json_object('from', CASE WHEN effective_day = ?15 THEN NULL
                  ELSE date(effective_day * 86400, 'unixepoch') END, 'area', area, 'phase', phase, 'ct', ct_ratio,
                  'area_meter', json(CASE WHEN area_meter THEN 'true' ELSE 'false' END)))
                  FROM (SELECT * FROM meter_topology WHERE meter = ?1 ORDER BY effective_day)))
              """,
              [
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                row[11],
                row[12], .text(polled(row.text(9) ?? "")), .integer(Topology.beginning),
              ]
            ).first?.text(0) ?? "{}"
          meters += (i == 0 ? "" : ",") + object
        }
        meters += "]"
        Console.writeLine(
          "{\"version\":" + String(version) + ",\"updated_at\":"
            + (state?.int64(1).map { String($0) } ?? "null") + ",\"meters\":" + meters + "}")
        return ExitCode.ok
      }
      Console.writeLine(
        "archive version " + String(version)
          + (version > 0 ? " (applied " + formatUTC(milliseconds: state?.int64(1) ?? 0) + ")" : " (none yet)")
          + ", " + String(rows.count) + " meter(s)")
      Console.writeLine("meter         customer    area      phase  ct   category      grade  flags  read by")
      for row in rows {
        var flags = ""
        if (row.int64(11) ?? 0) != 0 { flags += "M" }
        if (row.int64(7) ?? 0) != 0 { flags += "K" }
        if (row.int64(8) ?? 0) != 0 { flags += "O" }
        Console.writeLine(
          pad(row.text(0) ?? "", 14) + pad(row.text(1) ?? "", 12) + pad(row.text(2) ?? "", 10)
            + pad(row.text(3) ?? "", 7) + pad(String(row.int64(4) ?? 1), 5) + pad(row.text(5) ?? "", 14)
            + pad(row.text(6) ?? "", 7) + pad(flags.isEmpty ? "-" : flags, 7) + polled(row.text(9) ?? ""))
      }
      Console.writeLine("flags: M area meter, K keep-power, O outage-sensitive")
      // Dated assignments (the balance of a day uses the one in force that day).
      let dated = try db.query(
        """
        SELECT meter, date(effective_day * 86400, 'unixepoch'), coalesce(area, '(none)'), phase, ct_ratio
        FROM topology WHERE effective_day <> ?1 ORDER BY meter, effective_day
        """, [.integer(Topology.beginning)])
      if !dated.isEmpty {
        Console.writeLine("topology changes (from the local day on):")
        for row in dated {
          Console.writeLine(
            "  " + pad(row.text(0) ?? "", 13) + "from " + (row.text(1) ?? "") + "  area "
              + (row.text(2) ?? "")
              + ", phase " + (row.text(3) ?? "") + ", CT " + String(row.int64(4) ?? 1))
        }
      }
      return ExitCode.ok
    } catch {
      Log.error("archive", error.description)
      return ExitCode.failure
    }
  }

  /// `gridedge archive diff [--json]`: the archive against what the bus shows: per
  /// archive meter `answering`, `silent` (marked silent by its bus), `never-answered`
  /// or `not-read` (its bus is not configured); and meters that answered before but
  /// are not in the archive (`not-in-archive`: removed or replaced, or found by a bus
  /// search: `found_by` `bus-search`).
  /// `gridedge archive search`: asks the running agent (SIGUSR1) to search its buses
  /// for meters now, between reading cycles, instead of waiting for
  /// `acquisition.search_hours`. The agent holds the buses, so it must be running.
  /// - Returns: 0 once asked; 1 when no agent runs on this database.
  public static func search(config: Config) -> Int32 {
    guard let db = LedgerReport.open(config) else { return ExitCode.database }
    let row = try? db.query("SELECT pid, phase FROM agent_status WHERE singleton = 1").first
    let pid = Int32(truncatingIfNeeded: row?.int64(0) ?? 0)
    guard row?.text(1) != "stopped", Process.isAlive(pid) else {
      Log.error(
        "archive",
        "no agent runs on " + (config.string("store.path") ?? "") + ": a bus search needs the buses,"
          + " which the agent holds (start it; it also searches after its first cycle when"
          + " acquisition.search_hours has passed)")
      return ExitCode.failure
    }
    guard Process.send(TerminationSignals.userRequest, to: pid) else {
      Log.error("archive", "could not signal the agent (pid " + String(pid) + "): run as its user")
      return ExitCode.failure
    }
    Console.writeLine(
      "asked the agent (pid " + String(pid) + ") to search its buses between reading cycles; meters not in"
        + " the meter list go to HQ as meter.unknown and show in 'gridedge archive diff'")
    return ExitCode.ok
  }

  public static func diff(config: Config, json: Bool) -> Int32 {
    guard let db = LedgerReport.open(config) else { return ExitCode.database }
    var configured: [String] = []
    for n in 1...4 where config.string("bus." + String(n)) != nil { configured.append(String(n)) }
    do {
      let version = try db.scalarInt("SELECT version FROM archive_state WHERE singleton = 1") ?? 0
      // Last answer: the meter state's, or the newest reading's read time.
      let rows = try db.query(
        """
        WITH heard AS (
          SELECT meter, max(at) AS last FROM (
            SELECT meter, last_answer_at AS at FROM meter_state
            UNION ALL SELECT meter, max(read_at) FROM readings GROUP BY meter) GROUP BY meter)
        SELECT m.address, m.customer, m.bus, h.last, s.silent_since, 1, NULL FROM archive_meters m
          LEFT JOIN heard h ON h.meter = m.address LEFT JOIN meter_state s ON s.meter = m.address
        UNION ALL
        SELECT h.meter, NULL, f.bus, max(h.last, coalesce(f.last_found_at, 0)), s.silent_since, 0, f.how
          FROM heard h LEFT JOIN meter_state s ON s.meter = h.meter
          LEFT JOIN found_meters f ON f.address = h.meter
          WHERE h.last IS NOT NULL AND h.meter NOT IN (SELECT address FROM archive_meters)
        UNION ALL
        SELECT f.address, NULL, f.bus, f.last_found_at, NULL, 0, f.how FROM found_meters f
          WHERE f.address NOT IN (SELECT address FROM archive_meters)
            AND f.address NOT IN (SELECT meter FROM heard WHERE last IS NOT NULL)
        ORDER BY 6 DESC, 1
        """)
      var entries: [(address: String, state: String, row: Row)] = []
      for row in rows {
        let address = row.text(0) ?? ""
        let state: String
        if row.int64(5) == 0 {
          state = "not-in-archive"
        } else if let bus = ArchiveMeters.busName(row.text(2) ?? ""),
          configured.contains(bus)
            || config.string("meter.file") != nil
        {
          if row.int64(4) != nil {
            state = "silent"
          } else {
            state = row.int64(3) == nil ? "never-answered" : "answering"
          }
        } else {
          state = "not-read"
        }
        entries.append((address, state, row))
      }
      if json {
        var out = "{\"version\":" + String(version) + ",\"meters\":["
        for (i, entry) in entries.enumerated() {
          out +=
            (i == 0 ? "" : ",") + "{\"address\":\"" + entry.address + "\",\"state\":\"" + entry.state
            + "\",\"customer\":" + (entry.row.text(1).map { "\"" + jsonEscaped($0) + "\"" } ?? "null")
            + ",\"bus\":" + (entry.row.text(2).map { "\"" + jsonEscaped($0) + "\"" } ?? "null")
            + ",\"last_answer_at\":" + (entry.row.int64(3).map { String($0) } ?? "null")
            + ",\"silent_since\":" + (entry.row.int64(4).map { String($0) } ?? "null") + ",\"found_by\":"
            + (entry.row.text(6).map { "\"" + jsonEscaped($0) + "\"" } ?? "null") + "}"
        }
        Console.writeLine(out + "]}")
        return ExitCode.ok
      }
      Console.writeLine("archive version " + String(version) + " against the bus")
      var answering = 0
      for entry in entries {
        guard entry.state != "answering" else {
          answering += 1
          continue
        }
        var line = pad(entry.address, 14) + pad(entry.state, 15)
        if let since = entry.row.int64(4) { line += "silent since " + formatUTC(milliseconds: since) + "; " }
        line +=
          entry.row.int64(3).map { "last answer " + formatUTC(milliseconds: $0) } ?? "no answer ever"
        if entry.state == "not-read" { line += "; bus '" + (entry.row.text(2) ?? "") + "' is not configured" }
        if entry.row.text(6) == "bus-search" {
          line += "; found by a search of bus " + (entry.row.text(2) ?? "")
        }
        Console.writeLine(line)
      }
      Console.writeLine(
        String(answering) + " archive meter(s) answering, " + String(entries.count - answering)
          + " to look at")
      return ExitCode.ok
    } catch {
      Log.error("archive", error.description)
      return ExitCode.failure
    }
  }

  static func pad(_ text: String, _ width: Int) -> String {
    var out = text
    while out.utf8.count < width { out += " " }
    return out + " "
  }
}

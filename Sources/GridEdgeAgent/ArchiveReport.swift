import Runtime
import SQLiteStore

/// `gridedge archive [--json]`: HQ's meter archive as this device holds it, read-only
/// (works whether or not the agent runs).
public enum ArchiveReport {
  /// Prints the archive version and every meter, and which configured bus reads it.
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
                'area_meter', json(CASE WHEN ?12 THEN 'true' ELSE 'false' END), 'updated_at', ?13, 'read_by', ?14)
              """,
              [
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                row[11],
                row[12], .text(polled(row.text(9) ?? "")),
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
      return ExitCode.ok
    } catch {
      Log.error("archive", error.description)
      return ExitCode.failure
    }
  }

  private static func pad(_ text: String, _ width: Int) -> String {
    var out = text
    while out.utf8.count < width { out += " " }
    return out + " "
  }
}

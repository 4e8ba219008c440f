import Runtime
import SQLiteStore

/// `gridedge-hq report`: per device, what HQ knows.
public enum Report {
  /// Prints the devices table, or a JSON array with `json`. - Returns: the exit code.
  public static func run(databasePath: String, json: Bool) -> Int32 {
    guard Files.exists(databasePath) else {
      Log.error("report", "no database at " + databasePath)
      return 1
    }
    do {
      let store = try HQStore(path: databasePath)
      if json {
        let rows = try store.db.query(
          """
          SELECT json_group_array(json_object('device', device_id, 'state', state, 'epoch', epoch,
            'store', store_id, 'version', version, 'profile', profile, 'reason', reason,
            'births', births, 'last_seen', last_seen)) FROM (SELECT * FROM devices ORDER BY device_id)
          """)
        Console.writeLine(rows.first?.text(0) ?? "[]")
        return 0
      }
      let rows = try store.db.query(
        "SELECT device_id, state, epoch, births, last_seen, coalesce(reason, '') FROM devices ORDER BY device_id"
      )
      Console.writeLine(
        "device                            state    epoch  births  last seen             reason")
      for row in rows {
        Console.writeLine(
          pad(row.text(0) ?? "", 34) + pad(row.text(1) ?? "", 9) + pad(String(row.int64(2) ?? 0), 7)
            + pad(String(row.int64(3) ?? 0), 8) + pad(formatUTC(milliseconds: row.int64(4) ?? 0), 22)
            + (row.text(5) ?? ""))
      }
      Console.writeLine(String(rows.count) + " device(s)")
      return 0
    } catch {
      Log.error("report", "database " + databasePath + ": " + error.description)
      return 1
    }
  }

  private static func pad(_ text: String, _ width: Int) -> String {
    var out = text
    while out.utf8.count < width { out += " " }
    return out + (out.utf8.count > width ? " " : "")
  }
}

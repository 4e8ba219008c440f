import Runtime
import SQLiteStore

/// `gridedge-hq report`: per device, what arrived, the gaps in its sequence numbers
/// (less the ranges the device announced as skipped after a reboot), the duplicates
/// dropped and when it was last seen.
public enum Report {
  /// One row per device known from its state or its batches.
  static let query = """
    WITH ids AS (SELECT device_id FROM devices UNION SELECT device_id FROM device_counters),
    skipped AS (
      SELECT device_id, json_extract(body, '$.store') AS store_id,
        sum(json_extract(body, '$.to') - json_extract(body, '$.from') + 1) AS n
      FROM records WHERE class = 'events' AND json_extract(body, '$.type') = 'sync.seqs_skipped'
      GROUP BY device_id, store_id),
    gaps AS (
      SELECT device_id, sum(missing) AS missing, count(*) AS stores FROM (
        SELECT b.device_id, b.store_id, max(b.seq) - count(*) - coalesce(
          (SELECT n FROM skipped k WHERE k.device_id = b.device_id AND k.store_id = b.store_id), 0) AS missing
        FROM batches b GROUP BY b.device_id, b.store_id)
      GROUP BY device_id)
    SELECT ids.device_id AS device, coalesce(d.state, 'unknown') AS state, coalesce(d.epoch, 0) AS epoch,
      coalesce(d.births, 0) AS births, coalesce(c.batches, 0) AS batches, coalesce(c.records, 0) AS records,
      coalesce(c.duplicate_batches, 0) AS duplicate_batches,
      coalesce(c.duplicate_records, 0) AS duplicate_records,
      coalesce(c.conflicting_batches, 0) AS conflicting_batches, coalesce(c.malformed, 0) AS malformed,
      coalesce(g.missing, 0) AS missing_seqs, coalesce(g.stores, 0) AS stores,
      max(coalesce(d.last_seen, 0), coalesce(c.last_batch_at, 0)) AS last_seen,
      coalesce(d.reason, '') AS reason
    FROM ids LEFT JOIN devices d USING (device_id) LEFT JOIN device_counters c USING (device_id)
      LEFT JOIN gaps g USING (device_id)
    ORDER BY ids.device_id
    """

  /// Prints the table, or a JSON array with `json`. - Returns: the exit code.
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
          SELECT json_group_array(json_object('device', device, 'state', state, 'epoch', epoch,
            'births', births, 'batches', batches, 'records', records,
            'duplicate_batches', duplicate_batches, 'duplicate_records', duplicate_records,
            'conflicting_batches', conflicting_batches, 'malformed', malformed,
            'missing_seqs', missing_seqs, 'stores', stores, 'last_seen', last_seen, 'reason', reason))
          FROM (
          """ + query + ")")
        Console.writeLine(rows.first?.text(0) ?? "[]")
        return 0
      }
      let rows = try store.db.query(query)
      Console.writeLine(
        "device                            state    epoch  batches  records  dup.batches  dup.records  "
          + "conflicts  malformed  missing  last seen")
      for row in rows {
        Console.writeLine(
          pad(row.text(0) ?? "", 34) + pad(row.text(1) ?? "", 9) + pad(String(row.int64(2) ?? 0), 7)
            + pad(String(row.int64(4) ?? 0), 9) + pad(String(row.int64(5) ?? 0), 9)
            + pad(String(row.int64(6) ?? 0), 13) + pad(String(row.int64(7) ?? 0), 13)
            + pad(String(row.int64(8) ?? 0), 11) + pad(String(row.int64(9) ?? 0), 11)
            + pad(String(row.int64(10) ?? 0), 9) + formatUTC(milliseconds: row.int64(12) ?? 0))
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

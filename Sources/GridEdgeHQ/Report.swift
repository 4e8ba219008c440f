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

  /// The newest `balance.daily` summary per device and area, with the number of
  /// inspection work orders proposed for that area and day (one row each).
  static let balances = """
    WITH daily AS (
      SELECT device_id, json_extract(body, '$.area') AS area, json_extract(body, '$.day') AS day, body,
        row_number() OVER (PARTITION BY device_id, json_extract(body, '$.area')
          ORDER BY json_extract(body, '$.day') DESC) AS n
      FROM records WHERE class = 'events' AND json_extract(body, '$.type') = 'balance.daily'),
    orders AS (
      SELECT device_id, json_extract(body, '$.area') AS area, json_extract(body, '$.day') AS day,
        count(*) AS n
      FROM records WHERE class = 'events' AND json_extract(body, '$.type') = 'workorder.proposed'
      GROUP BY 1, 2, 3)
    SELECT d.device_id AS device, d.area AS area, d.day AS day,
      json_extract(body, '$.supplied_wh') AS supplied_wh, json_extract(body, '$.sold_wh') AS sold_wh,
      json_extract(body, '$.loss_wh') AS loss_wh, json_extract(body, '$.loss_rate_bp') AS loss_rate_bp,
      coalesce(json_extract(body, '$.withheld.code'),
        CASE WHEN json_type(body, '$.error') IS NOT NULL THEN 'archive-error' END) AS withheld,
      json_extract(body, '$.completeness_bp') AS completeness_bp,
      coalesce(json_array_length(body, '$.missing'), 0) AS missing,
      coalesce((SELECT group_concat(json_extract(value, '$.code'), ',') FROM json_each(body, '$.flags')), '')
        AS flags,
      coalesce(json_extract(body, '$.suspects_total'), 0) AS suspects,
      coalesce(json_extract(body, '$.suspects[0].meter'), '') AS top_suspect,
      coalesce(o.n, 0) AS work_orders, json_extract(body, '$.error') AS error
    FROM daily d LEFT JOIN orders o USING (device_id, area, day)
    WHERE d.n = 1
    ORDER BY d.device_id, d.area
    """

  /// Every outage HQ heard of, newest first: its `outage.start` with its `outage.end`
  /// (joined by their natural keys); one still open has no end.
  static let outages = """
    SELECT s.device_id AS device, json_extract(s.body, '$.area') AS area, json_extract(s.body, '$.kind') AS kind,
      json_extract(s.body, '$.planned') AS planned, json_extract(coalesce(e.body, s.body), '$.phases') AS phases,
      json_extract(s.body, '$.start') AS start, json_extract(e.body, '$.end') AS ended,
      json_extract(e.body, '$.duration_s') AS duration_s,
      json_extract(coalesce(e.body, s.body), '$.customers_count') AS customers,
      json_extract(e.body, '$.customer_minutes') AS customer_minutes,
      coalesce((SELECT group_concat(json_extract(value, '$.customer'), ',')
        FROM json_each(coalesce(e.body, s.body), '$.sensitive')), '') AS sensitive
    FROM records s LEFT JOIN records e ON e.device_id = s.device_id AND e.class = 'events'
      AND e.key = replace(s.key, '-start', '-end')
    WHERE s.class = 'events' AND json_extract(s.body, '$.type') = 'outage.start'
    ORDER BY json_extract(s.body, '$.start') DESC, s.device_id
    """

  /// Prints the table, or a JSON array with `json` (each device with its `balances`:
  /// the newest daily energy balance per area, and its `outages`, newest first).
  /// - Returns: the exit code.
  public static func run(databasePath: String, json: Bool) -> Int32 {
    guard Files.exists(databasePath) else {
      Log.error("report", "no database at " + databasePath)
      return 1
    }
    do {
      let store = try HQStore(path: databasePath)
      if json {
        let rows = try store.db.query(
          "WITH balances AS (" + balances + "), outages AS (" + outages + ")"
            + """
            SELECT json_group_array(json_object('device', device, 'state', state, 'epoch', epoch,
              'births', births, 'batches', batches, 'records', records,
              'duplicate_batches', duplicate_batches, 'duplicate_records', duplicate_records,
              'conflicting_batches', conflicting_batches, 'malformed', malformed,
              'missing_seqs', missing_seqs, 'stores', stores, 'last_seen', last_seen, 'reason', reason,
              'balances', (SELECT json_group_array(json_object('area', area, 'day', day,
                'supplied_wh', supplied_wh, 'sold_wh', sold_wh, 'loss_wh', loss_wh,
                'loss_rate_bp', loss_rate_bp, 'withheld', withheld, 'completeness_bp', completeness_bp,
                'missing', missing, 'flags', flags, 'suspects', suspects, 'top_suspect', top_suspect,
                'work_orders', work_orders, 'error', error)) FROM balances b WHERE b.device = devices.device),
              'photos', (SELECT json_group_array(json_object('photo', photo_id, 'order', order_id,
                'sha256', sha256, 'size', size, 'chunks', chunks, 'verified', verified = 1, 'problem', problem))
                FROM (SELECT * FROM photos p WHERE p.device_id = devices.device ORDER BY received_at, photo_id)),
              'outages', (SELECT json_group_array(json_object('area', area, 'kind', kind, 'planned', planned,
                'phases', phases, 'start', start, 'end', ended, 'duration_s', duration_s, 'customers', customers,
                'customer_minutes', customer_minutes, 'sensitive', sensitive))
                FROM outages o WHERE o.device = devices.device)))
            FROM (
            """ + query + ") AS devices")
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
      let photos = try store.db.query(
        """
        SELECT device_id, order_id, photo_id, size, sha256, verified, coalesce(problem, '')
        FROM photos ORDER BY device_id, received_at, photo_id
        """)
      section(
        "photos received (work orders):",
        "device                            order               photo                            bytes      "
          + "sha256 / problem", photos
      ) { row in
        pad(row.text(0) ?? "", 34) + pad(row.text(1) ?? "", 20) + pad(row.text(2) ?? "", 33)
          + pad(String(row.int64(3) ?? 0), 11)
          + (row.int64(5) == 1 ? row.text(4) ?? "" : "CORRUPT: " + (row.text(6) ?? ""))
      }
      section(
        "outages, newest first (sensitive: outage-sensitive customers, to call first):",
        "device                            area          kind       phases  start                 "
          + "end                   duration  customers  sensitive", try store.db.query(outages)
      ) { row in
        pad(row.text(0) ?? "", 34) + pad(row.text(1) ?? "", 14) + pad(row.text(2) ?? "", 11)
          + pad(row.text(4) ?? "", 8) + pad(formatUTC(milliseconds: row.int64(5) ?? 0), 22)
          + pad(row.int64(6).map { formatUTC(milliseconds: $0) } ?? "ongoing", 22)
          + pad(row.int64(7).map { String($0) + " s" } ?? "-", 10) + pad(String(row.int64(8) ?? 0), 11)
          + (row.text(10) ?? "")
      }
      section(
        "energy balance, newest day per device and area (kWh):",
        "device                            area          day         supplied      sold          loss rate  "
          + "complete  missing  flags                    suspects  orders  top suspect",
        try store.db.query(balances)
      ) { row in
        pad(row.text(0) ?? "", 34) + pad(row.text(1) ?? "", 14) + pad(row.text(2) ?? "", 12)
          + pad(kWh(row.int64(3)), 14) + pad(kWh(row.int64(4)), 14)
          + pad(row.int64(6).map(percent) ?? "-", 11) + pad(row.int64(8).map(percent) ?? "-", 10)
          + pad(String(row.int64(9) ?? 0), 9) + pad(flagText(row.text(10) ?? "", row.text(7)), 25)
          + pad(String(row.int64(11) ?? 0), 10) + pad(String(row.int64(13) ?? 0), 8) + (row.text(12) ?? "")
      }
      return 0
    } catch {
      Log.error("report", "database " + databasePath + ": " + error.description)
      return 1
    }
  }

  /// Prints a blank line, `title`, `header` and one line per row; nothing without rows.
  private static func section(_ title: String, _ header: String, _ rows: [Row], _ line: (Row) -> String) {
    guard !rows.isEmpty else { return }
    Console.writeLine("")
    Console.writeLine(title)
    Console.writeLine(header)
    for row in rows { Console.writeLine(line(row)) }
  }

  /// `1234.56` for 1,234,560 Wh (two decimals, truncated toward zero); `-` for none.
  static func kWh(_ wattHours: Int64?) -> String {
    guard let wattHours else { return "-" }
    let magnitude = wattHours.magnitude
    let hundredths = magnitude / 10 % 100
    return (wattHours < 0 ? "-" : "") + String(magnitude / 1000) + "." + (hundredths < 10 ? "0" : "")
      + String(hundredths)
  }

  /// `13.46%` for 1,346 basis points.
  static func percent(_ basisPoints: Int64) -> String {
    let magnitude = basisPoints.magnitude
    let hundredths = magnitude % 100
    return (basisPoints < 0 ? "-" : "") + String(magnitude / 100) + "." + (hundredths < 10 ? "0" : "")
      + String(hundredths) + "%"
  }

  /// The flags, and why the rate is withheld (or the area's error), in one column.
  private static func flagText(_ flags: String, _ withheld: String?) -> String {
    let parts = [flags, withheld.map { "withheld: " + $0 } ?? ""].filter { !$0.isEmpty }
    var out = ""
    for part in parts { out += (out.isEmpty ? "" : ", ") + part }
    return out.isEmpty ? "none" : out
  }

  private static func pad(_ text: String, _ width: Int) -> String {
    var out = text
    while out.utf8.count < width { out += " " }
    return out + (out.utf8.count > width ? " " : "")
  }
}

import GridEdgeContract
import GridEdgeCore
import SQLiteStore

/// The meter archive as HQ manages it (signed commands of type `archive`): for each
/// meter its address, customer, area, phase, CT ratio, tariff category, credit grade,
/// keep-power and outage-sensitive flags, bus and baud rate. Applied atomically,
/// versioned; every customer in it has a prepaid account.
///
/// Command bodies:
/// - `{"op":"snapshot","version":V,"meters":[...]}` replaces the whole archive;
///   V must be above the current version;
/// - `{"op":"add"|"change"|"remove","version":V,"meters":[...]}` edits it; V must be
///   the current version + 1; `remove` needs only `address` per meter.
///
/// A meter: `{"address":"000000000001","customer":"C-1","area":"TA-1","phase":"A",
/// "ct":1,"category":"residential","grade":"A","keep_power":false,
/// "outage_sensitive":false,"bus":"rs485-1","baud":2400,"area_meter":false}`
/// (`phase` A, B, C or ABC; `ct`, `baud`, `grade`, the flags and `area_meter` optional).
/// - `{"op":"replace",...}` swaps one meter for another (`replace(body:version:db:now:)`).
///
/// A snapshot or edit may carry `"effective":"YYYY-MM-DD"`, the local day from which the
/// areas, phases and CT ratios it changes hold for the energy balance (`Topology`).
public enum Archive {
  /// Why an archive command was refused; `code` goes to HQ in the result.
  public struct Refusal: Error, CustomStringConvertible {
    public let code: String
    public let description: String
    init(_ code: String, _ description: String) {
      self.code = code
      self.description = description
    }

    /// The result of `work`, a database error turned into an `internal-error` refusal.
    static func sql<R>(_ work: () throws(SQLiteError) -> R) throws(Refusal) -> R {
      do {
        return try work()
      } catch {
        throw Refusal("internal-error", error.description)
      }
    }
  }

  /// The version the device runs (0 before the first archive).
  public static func version(_ db: Connection) throws(SQLiteError) -> Int64 {
    try db.scalarInt("SELECT version FROM archive_state WHERE singleton = 1") ?? 0
  }

  /// Applies an archive command body inside the caller's transaction.
  /// - Parameters:
  ///   - offset: the device's local time (`device.utc_offset`), which places `now`
  ///     and the swap time of a replacement in local days for the topology.
  /// - Returns: a one-line summary.
  /// - Throws: `Refusal` for a body that is not valid (nothing changed: the caller
  ///   rolls back), or a wrapped `SQLiteError` as `Refusal` with code `internal-error`.
  public static func apply(body: String, db: Connection, now: Int64, offset: UTCOffset = .china)
    throws(Refusal) -> String
  {
    let header = try Refusal.sql { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT json_extract(?1, '$.op'), json_type(?1, '$.version'), json_extract(?1, '$.version'),
          json_type(?1, '$.meters'), json_array_length(?1, '$.meters'), json_type(?1, '$.effective'),
          json_extract(?1, '$.effective')
        """, [.text(body)]
      ).first
    }
    guard let header else { throw Refusal("malformed", "archive body is not a JSON object") }
    guard let op = header.text(0), ["snapshot", "add", "change", "remove", "replace"].contains(op) else {
      throw Refusal("malformed", "archive \"op\" must be snapshot, add, change, remove or replace")
    }
    guard header.text(1) == "integer", let version = header.int64(2), version > 0 else {
      throw Refusal("malformed", "archive \"version\" must be a positive integer")
    }
    if op == "replace" { return try replace(body: body, version: version, db: db, now: now, offset: offset) }
    var effective: Int64? = nil
    if header.text(5) != nil {
      guard header.text(5) == "text", let date = BalanceReport.parseDay(header.text(6) ?? "") else {
        throw Refusal("malformed", "archive \"effective\" must be a local day YYYY-MM-DD")
      }
      effective = date.daysSinceEpoch
    }
    guard header.text(3) == "array", let count = header.int64(4) else {
      throw Refusal("malformed", "archive \"meters\" must be an array")
    }
    let current = try Refusal.sql { () throws(SQLiteError) in try Self.version(db) }
    if op == "snapshot" {
      guard version > current else {
        throw Refusal(
          "stale-version",
          "snapshot version " + String(version) + " is not above the current " + String(current))
      }
    } else {
      guard version == current + 1 else {
        throw Refusal(
          "version-gap",
          op + " version " + String(version) + " must be the current version + 1 (" + String(current + 1)
            + ")")
      }
    }
    // Validate every entry before touching anything.
    let bad = try Refusal.sql { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT key, CASE
          WHEN type <> 'object' THEN 'not an object'
          WHEN json_type(value, '$.address') IS NOT 'text' OR length(json_extract(value, '$.address')) <> 12
            OR json_extract(value, '$.address') GLOB '*[^0-9]*' THEN 'address must be 12 digits'
          WHEN ?2 = 'remove' THEN NULL
          WHEN json_type(value, '$.customer') IS NOT 'text' OR json_extract(value, '$.customer') = ''
            THEN 'customer must be a non-empty string'
          WHEN json_type(value, '$.area') IS NOT 'text' THEN 'area must be a string'
          WHEN coalesce(json_extract(value, '$.phase'), 'A') NOT IN ('A', 'B', 'C', 'ABC')
            THEN 'phase must be A, B, C or ABC'
          WHEN json_type(value, '$.category') IS NOT 'text' THEN 'category must be a string'
          WHEN json_type(value, '$.ct') IS NOT NULL AND (json_type(value, '$.ct') <> 'integer'
            OR json_extract(value, '$.ct') < 1) THEN 'ct must be a positive integer'
          WHEN json_type(value, '$.baud') IS NOT NULL AND json_extract(value, '$.baud')
            NOT IN (1200, 2400, 4800, 9600) THEN 'baud must be 1200, 2400, 4800 or 9600'
          END AS problem
        FROM json_each(?1, '$.meters') WHERE problem IS NOT NULL ORDER BY key LIMIT 1
        """, [.text(body), .text(op)]
      ).first
    }
    if let bad {
      throw Refusal(
        "malformed", "archive meters[" + String(bad.int64(0) ?? 0) + "]: " + (bad.text(1) ?? "invalid"))
    }
    let duplicates = try Refusal.sql { () throws(SQLiteError) -> Int64 in
      try db.scalarInt(
        """
        SELECT count(*) - count(DISTINCT json_extract(value, '$.address')) FROM json_each(?1, '$.meters')
        """, [.text(body)]) ?? 0
    }
    guard duplicates == 0 else { throw Refusal("malformed", "archive lists a meter address twice") }
    if op == "add" || op == "change" {
      let known = try Refusal.sql { () throws(SQLiteError) -> Int64 in
        try db.scalarInt(
          """
          SELECT count(*) FROM json_each(?1, '$.meters')
          WHERE json_extract(value, '$.address') IN (SELECT address FROM archive_meters)
          """, [.text(body)]) ?? 0
      }
      if op == "add" && known > 0 {
        throw Refusal("conflict", "add: " + String(known) + " of the meters are already in the archive")
      }
      if op == "change" && known != count {
        throw Refusal(
          "conflict", "change: " + String(count - known) + " of the meters are not in the archive")
      }
    }
    let changed = try Refusal.sql { () throws(SQLiteError) -> Int in
      let upsert = """
        INSERT INTO archive_meters (address, customer, area, phase, ct_ratio, category, grade, keep_power,
          outage_sensitive, bus, baud, area_meter, updated_at)
        SELECT json_extract(value, '$.address'), json_extract(value, '$.customer'),
          json_extract(value, '$.area'), coalesce(json_extract(value, '$.phase'), 'A'),
          coalesce(json_extract(value, '$.ct'), 1), json_extract(value, '$.category'),
          coalesce(json_extract(value, '$.grade'), 'A'), coalesce(json_extract(value, '$.keep_power'), 0),
          coalesce(json_extract(value, '$.outage_sensitive'), 0), coalesce(json_extract(value, '$.bus'), ''),
          coalesce(json_extract(value, '$.baud'), 2400), coalesce(json_extract(value, '$.area_meter'), 0), ?2
        FROM json_each(?1, '$.meters') WHERE true
        ON CONFLICT (address) DO UPDATE SET customer = excluded.customer, area = excluded.area,
          phase = excluded.phase, ct_ratio = excluded.ct_ratio, category = excluded.category,
          grade = excluded.grade, keep_power = excluded.keep_power,
          outage_sensitive = excluded.outage_sensitive, bus = excluded.bus, baud = excluded.baud,
          area_meter = excluded.area_meter, updated_at = excluded.updated_at
        """
      try Topology.seed(db, version: current, now: now)
      switch op {
      case "snapshot":
        try db.run(
          "DELETE FROM archive_meters WHERE address NOT IN (SELECT json_extract(value, '$.address') FROM json_each(?1, '$.meters'))",
          [.text(body)])
        try db.run(upsert, [.text(body), .integer(now)])
      case "add", "change":
        try db.run(upsert, [.text(body), .integer(now)])
      default:
        try db.run(
          "DELETE FROM archive_meters WHERE address IN (SELECT json_extract(value, '$.address') FROM json_each(?1, '$.meters'))",
          [.text(body)])
      }
      try db.run(
        "UPDATE archive_state SET version = ?1, updated_at = ?2 WHERE singleton = 1",
        [
          .integer(version), .integer(now),
        ])
      // Every customer in the archive has a prepaid account (balance 0 when new).
      try db.run(
        """
        INSERT OR IGNORE INTO accounts (customer, balance_fen, last_purchase, opened_at)
        SELECT DISTINCT customer, 0, 0, ?1 FROM archive_meters WHERE area_meter = 0
        """, [.integer(now)])
      _ = try Topology.record(
        db, effective: effective, today: localDay(now, offset), version: version, now: now)
      return Int(count)
    }
    return "archive " + op + " version " + String(version) + ": " + String(changed) + " meter(s)"
  }

  /// A meter replacement (a faulty or upgraded meter), in the caller's transaction:
  /// `{"op":"replace","version":V,"old":"<addr>","new":{"address":"<addr>",...},
  /// "old_final_wh":N,"new_initial_wh":M,"at":ms}`; V must be the current version + 1.
  ///
  /// The new meter takes the old one's archive entry (customer, area, phase, CT,
  /// category, grade, flags, bus, baud; `phase`, `ct`, `bus` and `baud` in `new`
  /// override them) and the old one leaves the archive. Both readings are stored as
  /// real-time readings at `at`, so the history of both meters is kept, and billing
  /// continues without a jump: the old meter's final reading is charged against its
  /// base (`meter_replacements` keeps it billable up to `at`), and the new meter's
  /// base is its initial reading at `at`.
  static func replace(body: String, version: Int64, db: Connection, now: Int64, offset: UTCOffset)
    throws(Refusal) -> String
  {
    let current = try Refusal.sql { () throws(SQLiteError) in try Self.version(db) }
    guard version == current + 1 else {
      throw Refusal(
        "version-gap",
        "replace version " + String(version) + " must be the current version + 1 (" + String(current + 1)
          + ")")
    }
    let fields = try Refusal.sql { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT json_type(?1, '$.old'), json_extract(?1, '$.old'), json_type(?1, '$.new'),
          json_type(?1, '$.new.address'), json_extract(?1, '$.new.address'),
          json_type(?1, '$.old_final_wh'), json_extract(?1, '$.old_final_wh'),
          json_type(?1, '$.new_initial_wh'), json_extract(?1, '$.new_initial_wh'),
          json_type(?1, '$.at'), json_extract(?1, '$.at'),
          coalesce(json_extract(?1, '$.new.phase'), 'A') IN ('A', 'B', 'C', 'ABC'),
          json_type(?1, '$.new.ct') IS NULL OR (json_type(?1, '$.new.ct') = 'integer'
            AND json_extract(?1, '$.new.ct') >= 1),
          json_type(?1, '$.new.baud') IS NULL OR json_extract(?1, '$.new.baud') IN (1200, 2400, 4800, 9600),
          json_type(?1, '$.new.bus') IS NULL OR json_type(?1, '$.new.bus') = 'text'
        """, [.text(body)]
      ).first
    }
    func isAddress(_ text: String?) -> Bool {
      guard let text else { return false }
      return text.utf8.count == 12 && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }
    guard let fields, fields.text(0) == "text", isAddress(fields.text(1)), let old = fields.text(1) else {
      throw Refusal("malformed", "replace: \"old\" must be the 12-digit address of the meter taken out")
    }
    guard fields.text(2) == "object", fields.text(3) == "text", isAddress(fields.text(4)),
      let new = fields.text(4)
    else {
      throw Refusal(
        "malformed", "replace: \"new\" must be an object with the new meter's 12-digit \"address\"")
    }
    guard new != old else { throw Refusal("malformed", "replace: the new meter is the old one") }
    guard fields.text(5) == "integer", let oldFinal = fields.int64(6), oldFinal >= 0,
      fields.text(7) == "integer", let newInitial = fields.int64(8), newInitial >= 0
    else {
      throw Refusal(
        "malformed", "replace: \"old_final_wh\" and \"new_initial_wh\" must be non-negative integers (Wh)")
    }
    guard fields.text(9) == "integer", let at = fields.int64(10), at > 0 else {
      throw Refusal("malformed", "replace: \"at\" must be the time of the swap (unix ms)")
    }
    guard fields.int64(11) == 1, fields.int64(12) == 1, fields.int64(13) == 1, fields.int64(14) == 1 else {
      throw Refusal(
        "malformed",
        "replace: in \"new\", phase must be A, B, C or ABC, ct a positive integer, baud 1200, 2400, 4800 or 9600"
          + " and bus a string")
    }
    let entry = try Refusal.sql { () throws(SQLiteError) -> Row? in
      try db.query("SELECT customer, category, area FROM archive_meters WHERE address = ?1", [.text(old)])
        .first
    }
    guard let entry else { throw Refusal("conflict", "replace: meter " + old + " is not in the archive") }
    let taken = try Refusal.sql { () throws(SQLiteError) -> Int64 in
      try db.scalarInt("SELECT count(*) FROM archive_meters WHERE address = ?1", [.text(new)]) ?? 0
    }
    guard taken == 0 else {
      throw Refusal("conflict", "replace: meter " + new + " is already in the archive")
    }
    // The final reading must not go back in time or below what was read from the old meter.
    let last = try Refusal.sql { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT ts, value FROM readings WHERE meter = ?1 AND di IN ('0001FF00', '00010000', '05060101')
        ORDER BY ts DESC, value DESC LIMIT 1
        """, [.text(old)]
      ).first
    }
    if let last, let lastTS = last.int64(0), let lastWh = last.int64(1) {
      guard at > lastTS else {
        throw Refusal(
          "conflict",
          "replace: \"at\" " + String(at) + " is not after the old meter's last reading (" + String(lastTS)
            + ")")
      }
      guard oldFinal >= lastWh else {
        throw Refusal(
          "conflict",
          "replace: old_final_wh " + String(oldFinal) + " is below the old meter's last reading "
            + String(lastWh)
            + " Wh")
      }
    }
    try Refusal.sql { () throws(SQLiteError) in
      try Topology.seed(db, version: current, now: now)
      try db.run(
        """
        INSERT INTO archive_meters (address, customer, area, phase, ct_ratio, category, grade, keep_power,
          outage_sensitive, bus, baud, area_meter, updated_at)
        SELECT ?2, customer, area, coalesce(json_extract(?3, '$.new.phase'), phase),
          coalesce(json_extract(?3, '$.new.ct'), ct_ratio), category, grade, keep_power, outage_sensitive,
          coalesce(json_extract(?3, '$.new.bus'), bus), coalesce(json_extract(?3, '$.new.baud'), baud),
          area_meter, ?4
        FROM archive_meters WHERE address = ?1
        """, [.text(old), .text(new), .text(body), .integer(now)])
      try db.run("DELETE FROM archive_meters WHERE address = ?1", [.text(old)])
      // Both readings kept in the history (the final one is charged to the customer).
      try db.run(
        """
        INSERT OR REPLACE INTO readings (ts, meter, di, value, tariffs, quality, read_at)
        VALUES (?1, ?2, '0001FF00', ?3, NULL, 'measured', ?5), (?1, ?4, '0001FF00', ?6, NULL, 'measured', ?5)
        """, [.integer(at), .text(old), .integer(oldFinal), .text(new), .integer(now), .integer(newInitial)])
      try db.run(
        """
        INSERT INTO meter_replacements (old, new, customer, category, area, at, old_final_wh, new_initial_wh,
          version, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
        ON CONFLICT (old, at) DO UPDATE SET new = excluded.new, customer = excluded.customer,
          category = excluded.category, area = excluded.area, at = excluded.at,
          old_final_wh = excluded.old_final_wh, new_initial_wh = excluded.new_initial_wh,
          version = excluded.version, applied_at = excluded.applied_at
        """,
        [
          .text(old), .text(new), entry[0], entry[1], entry[2], .integer(at), .integer(oldFinal),
          .integer(newInitial), .integer(version), .integer(now),
        ])
      // The new meter's billing base is its initial reading; billing looks at `at`
      // again, so the old meter's final reading is charged even when `at` is past.
      try db.run(
        """
        INSERT INTO meter_billing (meter, last_ts, last_wh, last_registers) VALUES (?1, ?2, ?3, NULL)
        ON CONFLICT (meter) DO UPDATE SET last_ts = excluded.last_ts, last_wh = excluded.last_wh,
          last_registers = NULL
        """, [.text(new), .integer(at), .integer(newInitial)])
      try db.run(
        "UPDATE billing_state SET cursor_ts = min(cursor_ts, ?1) WHERE singleton = 1", [.integer(at)])
      // The balance joins both meters into one place from the swap's local day.
      try Topology.recordReplacement(
        db, old: old, new: new, day: localDay(at, offset), version: version, now: now)
      try db.run(
        "UPDATE archive_state SET version = ?1, updated_at = ?2 WHERE singleton = 1",
        [.integer(version), .integer(now)])
    }
    return "archive replace version " + String(version) + ": meter " + old + " replaced by " + new + " ("
      + String(oldFinal) + " Wh final, " + String(newInitial) + " Wh initial)"
  }

  /// The local day (days since 1970-01-01) of Unix ms `ms`.
  static func localDay(_ ms: Int64, _ offset: UTCOffset) -> Int64 {
    offset.localDateTime(fromUnix: ms >= 0 ? ms / 1000 : (ms - 999) / 1000).date.daysSinceEpoch
  }
}

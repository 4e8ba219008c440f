import GridEdgeContract
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
public enum Archive {
  /// Why an archive command was refused; `code` goes to HQ in the result.
  public struct Refusal: Error, CustomStringConvertible {
    public let code: String
    public let description: String
    init(_ code: String, _ description: String) {
      self.code = code
      self.description = description
    }
  }

  /// The version the device runs (0 before the first archive).
  public static func version(_ db: Connection) throws(SQLiteError) -> Int64 {
    try db.scalarInt("SELECT version FROM archive_state WHERE singleton = 1") ?? 0
  }

  /// Applies an archive command body inside the caller's transaction.
  /// - Returns: a one-line summary.
  /// - Throws: `Refusal` for a body that is not valid (nothing changed: the caller
  ///   rolls back), or a wrapped `SQLiteError` as `Refusal` with code `internal-error`.
  public static func apply(body: String, db: Connection, now: Int64) throws(Refusal) -> String {
    func sql<R>(_ work: () throws(SQLiteError) -> R) throws(Refusal) -> R {
      do {
        return try work()
      } catch {
        throw Refusal("internal-error", error.description)
      }
    }
    let header = try sql { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT json_extract(?1, '$.op'), json_type(?1, '$.version'), json_extract(?1, '$.version'),
          json_type(?1, '$.meters'), json_array_length(?1, '$.meters')
        """, [.text(body)]
      ).first
    }
    guard let header else { throw Refusal("malformed", "archive body is not a JSON object") }
    guard let op = header.text(0), ["snapshot", "add", "change", "remove"].contains(op) else {
      throw Refusal("malformed", "archive \"op\" must be snapshot, add, change or remove")
    }
    guard header.text(1) == "integer", let version = header.int64(2), version > 0 else {
      throw Refusal("malformed", "archive \"version\" must be a positive integer")
    }
    guard header.text(3) == "array", let count = header.int64(4) else {
      throw Refusal("malformed", "archive \"meters\" must be an array")
    }
    let current = try sql { () throws(SQLiteError) in try Self.version(db) }
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
    let bad = try sql { () throws(SQLiteError) -> Row? in
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
    let duplicates = try sql { () throws(SQLiteError) -> Int64 in
      try db.scalarInt(
        """
        SELECT count(*) - count(DISTINCT json_extract(value, '$.address')) FROM json_each(?1, '$.meters')
        """, [.text(body)]) ?? 0
    }
    guard duplicates == 0 else { throw Refusal("malformed", "archive lists a meter address twice") }
    if op == "add" || op == "change" {
      let known = try sql { () throws(SQLiteError) -> Int64 in
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
    let changed = try sql { () throws(SQLiteError) -> Int in
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
      return Int(count)
    }
    return "archive " + op + " version " + String(version) + ": " + String(changed) + " meter(s)"
  }
}

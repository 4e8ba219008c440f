import Runtime
import SQLiteStore

/// Signed `planned-outage` commands: HQ announces that an area's supply will be off
/// for a window (maintenance, a transformer change), or cancels the announcement.
///
/// Body: `{"id":"PO-1","area":"TA-1","from":ms,"to":ms,"reason":"..."}` (unix ms,
/// `reason` optional) or `{"id":"PO-1","cancel":true}`. From `from` (inclusive) to `to`
/// (exclusive) the area's customers are not disconnected for arrears or by HQ's
/// `disconnect` (`planned-outage`; a trip decided before waits for the end), their
/// silence raises no missing-read alarm, the energy balance runs without the anomaly
/// rules for the periods it overlaps, and a loss of supply in the window is reported
/// as planned (`Outages`). Kept in `planned_outages` (migration 16).
///
/// Refused, nothing changed: `malformed` (fields missing or of the wrong type, an id
/// not of 1–64 `A-Z a-z 0-9 . _ -`, `to` not after `from`, a window longer than 31
/// days), `expired` (`to` already past), `unknown-area` (no meter of the archive is in
/// it), `duplicate` (the id is known), `unknown-outage` (a cancel of an unknown id).
public enum PlannedOutages {
  /// The longest window accepted: 31 days.
  static let longestMilliseconds: Int64 = 31 * 86_400_000

  /// Applies a `planned-outage` command body inside the command's transaction.
  /// - Returns: a one-line summary.
  /// - Throws: `Archive.Refusal`; nothing is changed then.
  public static func apply(body: String, db: Connection, now: Int64) throws(Archive.Refusal) -> String {
    let fields = try Archive.Refusal.sql { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT json_type(?1, '$.id'), json_extract(?1, '$.id'), json_type(?1, '$.area'),
          json_extract(?1, '$.area'), json_type(?1, '$.from'), json_extract(?1, '$.from'),
          json_type(?1, '$.to'), json_extract(?1, '$.to'), json_type(?1, '$.reason'),
          json_extract(?1, '$.reason'), json_type(?1, '$.cancel')
        FROM (SELECT 1) WHERE json_valid(?1) AND json_type(?1) = 'object'
        """, [.text(body)]
      ).first
    }
    guard let fields else { throw Archive.Refusal("malformed", "planned-outage body is not a JSON object") }
    guard fields.text(0) == "text", let id = fields.text(1), validID(id) else {
      throw Archive.Refusal("malformed", "planned-outage needs \"id\": 1-64 of A-Z a-z 0-9 . _ -")
    }
    if let cancel = fields.text(10) {
      guard cancel == "true" else { throw Archive.Refusal("malformed", "\"cancel\" must be true") }
      let known = try Archive.Refusal.sql { () throws(SQLiteError) -> Int in
        try db.run(
          "UPDATE planned_outages SET cancelled_at = ?2 WHERE id = ?1 AND cancelled_at IS NULL",
          [.text(id), .integer(now)])
        return db.changes
      }
      guard known > 0 else {
        throw Archive.Refusal("unknown-outage", "no planned outage " + id + " to cancel")
      }
      return "planned outage " + id + " cancelled"
    }
    guard fields.text(2) == "text", let area = fields.text(3), !area.isEmpty else {
      throw Archive.Refusal("malformed", "planned-outage needs \"area\" (a string)")
    }
    guard fields.text(4) == "integer", fields.text(6) == "integer", let from = fields.int64(5),
      let to = fields.int64(7)
    else {
      throw Archive.Refusal("malformed", "planned-outage needs \"from\" and \"to\" (unix ms, integers)")
    }
    guard to > from, to - from <= longestMilliseconds else {
      throw Archive.Refusal("malformed", "\"to\" must be after \"from\", and the window at most 31 days")
    }
    guard fields.text(8) == nil || fields.text(8) == "text" else {
      throw Archive.Refusal("malformed", "\"reason\" must be a string")
    }
    guard to > now else {
      throw Archive.Refusal("expired", "the window of planned outage " + id + " is already over")
    }
    let inArchive = try Archive.Refusal.sql { () throws(SQLiteError) -> Int64 in
      try db.scalarInt("SELECT count(*) FROM archive_meters WHERE area = ?1", [.text(area)]) ?? 0
    }
    guard inArchive > 0 else {
      throw Archive.Refusal("unknown-area", "no meter of the archive is in area " + area)
    }
    let exists = try Archive.Refusal.sql { () throws(SQLiteError) -> Int64 in
      try db.scalarInt("SELECT count(*) FROM planned_outages WHERE id = ?1", [.text(id)]) ?? 0
    }
    guard exists == 0 else {
      throw Archive.Refusal("duplicate", "planned outage " + id + " is already known")
    }
    try Archive.Refusal.sql { () throws(SQLiteError) in
      try db.run(
        """
        INSERT INTO planned_outages (id, area, starts_at, ends_at, reason, received_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6)
        """,
        [.text(id), .text(area), .integer(from), .integer(to), .text(fields.text(9) ?? ""), .integer(now)])
    }
    return "planned outage " + id + " of area " + area + " from " + formatUTC(milliseconds: from) + " to "
      + formatUTC(milliseconds: to)
  }

  /// The id of the planned outage of `area` that `at` (unix ms) falls in, if any.
  public static func active(_ db: Connection, area: String, at: Int64) throws(SQLiteError) -> String? {
    try db.query(
      """
      SELECT id FROM planned_outages
      WHERE area = ?1 AND starts_at <= ?2 AND ?2 < ends_at AND cancelled_at IS NULL
      ORDER BY starts_at, id LIMIT 1
      """, [.text(area), .integer(at)]
    ).first?.text(0)
  }

  /// True when a planned outage of `area` overlaps `from..<to`.
  public static func overlaps(_ db: Connection, area: String, from: Int64, to: Int64) throws(SQLiteError)
    -> Bool
  {
    (try db.scalarInt(
      """
      SELECT count(*) FROM planned_outages
      WHERE area = ?1 AND starts_at < ?3 AND ?2 < ends_at AND cancelled_at IS NULL
      """, [.text(area), .integer(from), .integer(to)]) ?? 0) > 0
  }

  private static func validID(_ id: String) -> Bool {
    let count = id.utf8.count
    guard count >= 1, count <= 64 else { return false }
    return id.utf8.allSatisfy { c in
      (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E
        || c == 0x5F || c == 0x2D
    }
  }
}

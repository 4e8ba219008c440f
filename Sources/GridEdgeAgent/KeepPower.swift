import SQLiteStore

/// Signed `keep-power` commands: HQ flags a customer's supply as one never to cut
/// (a hospital, life support) or lifts the flag, without waiting for the next
/// archive version.
///
/// Body: `{"meter":"000000000001","keep_power":true}` or
/// `{"customer":"C-1","keep_power":false}` (every meter of the customer). The flag
/// is the archive's `keep_power`: relay control reads it for every decision, so a
/// trip not yet carried out is withdrawn at once; a meter already cut stays cut until
/// HQ sends `reconnect`. The next archive snapshot or change that lists the meter
/// sets the flag as HQ's archive says.
public enum KeepPower {
  /// Applies a keep-power command body inside the command's transaction.
  /// - Returns: a one-line summary.
  /// - Throws: `Archive.Refusal` (`malformed`, `unknown-meter`, `unknown-customer`);
  ///   nothing is changed then.
  public static func apply(body: String, db: Connection) throws(Archive.Refusal) -> String {
    let fields = try Archive.Refusal.sql { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT json_type(?1, '$.meter'), json_extract(?1, '$.meter'), json_type(?1, '$.customer'),
          json_extract(?1, '$.customer'), json_type(?1, '$.keep_power')
        FROM (SELECT 1) WHERE json_valid(?1) AND json_type(?1) = 'object'
        """, [.text(body)]
      ).first
    }
    guard let fields else { throw Archive.Refusal("malformed", "keep-power body is not a JSON object") }
    let flag: Int64
    switch fields.text(4) {
    case "true": flag = 1
    case "false": flag = 0
    default: throw Archive.Refusal("malformed", "keep-power needs \"keep_power\": true or false")
    }
    let meter = fields.text(0) == "text" ? fields.text(1) : nil
    let customer = fields.text(2) == "text" ? fields.text(3) : nil
    guard (meter == nil) != (customer == nil) else {
      throw Archive.Refusal(
        "malformed", "keep-power needs exactly one of \"meter\" or \"customer\" (a string)")
    }
    let changed = try Archive.Refusal.sql { () throws(SQLiteError) -> Int in
      if let meter {
        try db.run(
          "UPDATE archive_meters SET keep_power = ?2 WHERE address = ?1", [.text(meter), .integer(flag)])
      } else if let customer {
        try db.run(
          "UPDATE archive_meters SET keep_power = ?2 WHERE customer = ?1 AND area_meter = 0",
          [.text(customer), .integer(flag)])
      }
      return db.changes
    }
    guard changed > 0 else {
      if let meter {
        throw Archive.Refusal("unknown-meter", "meter " + meter + " is not in the meter archive")
      }
      throw Archive.Refusal(
        "unknown-customer", "customer " + (customer ?? "") + " has no meter in the meter archive")
    }
    let what = meter.map { "meter " + $0 } ?? "customer " + (customer ?? "")
    return what + ": keep-power " + (flag == 1 ? "on" : "off") + " (" + String(changed) + " meter(s))"
  }
}

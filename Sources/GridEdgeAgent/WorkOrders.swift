import GridEdgeContract
import Runtime
import SQLiteStore

/// Work orders from HQ (signed commands of type `workorder`, handheld mode): stored in
/// `work_orders` inside the command's `synchronous=FULL` transaction.
///
/// Command bodies:
/// - a new order `{"id":"WO-1","kind":"inspection","priority":1,"grade":"A","due":ms,
///   "customer":"C-1","address":"...","meter":"000000000001","last":{"wh":N,"ts":ms}}`:
///   `id` 1-64 of `A-Z a-z 0-9 . _ -`; `kind` inspection, anti-theft, meter-check,
///   repair or reading; `priority` 1 (first) to 9; `grade` the customer value grade
///   A (key customer) to E, optional; `due` Unix ms, optional; `meter` 12 digits,
///   optional (required for meter-check and reading); `last` the last register value
///   HQ holds for the meter (Wh and when), optional;
/// - a cancellation `{"id":"WO-1","cancel":true,"reason":"..."}`. An order already
///   completed or handed back on the device (offline) stays so: the cancellation is
///   applied, and a `workorder.cancel_after_close` event tells HQ what was done.
public enum WorkOrders {
  /// The order kinds and their checklists: each item and whether it is mandatory.
  public static let kinds = ["inspection", "anti-theft", "meter-check", "repair", "reading"]

  /// Applies a `workorder` command body inside the command's transaction.
  /// - Returns: a one-line summary.
  /// - Throws: `Archive.Refusal` with the reason code for HQ (nothing written).
  public static func apply(body: String, store: AgentStore, outbox: Outbox, now: Int64) throws(Archive
    .Refusal)
    -> String
  {
    let db = store.db
    let row = try refusingSQL { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT json_type(?1, '$.id'), json_extract(?1, '$.id'), json_extract(?1, '$.cancel'),
          json_extract(?1, '$.reason')
        """, [.text(body)]
      ).first
    }
    guard let row, row.text(0) == "text", let id = row.text(1), isOrderID(id) else {
      throw Archive.Refusal("malformed", "workorder needs \"id\": 1-64 of A-Z a-z 0-9 . _ -")
    }
    if row.int64(2) == 1 {
      return try cancel(id, reason: row.text(3) ?? "", store: store, outbox: outbox, now: now)
    }
    let problem = try refusingSQL { () throws(SQLiteError) -> String? in
      try db.query(
        """
        SELECT CASE
          WHEN json_extract(?1, '$.kind') IS NULL OR json_extract(?1, '$.kind')
            NOT IN ('inspection', 'anti-theft', 'meter-check', 'repair', 'reading')
            THEN 'kind must be inspection, anti-theft, meter-check, repair or reading'
          WHEN json_type(?1, '$.priority') IS NOT 'integer' OR json_extract(?1, '$.priority') NOT BETWEEN 1 AND 9
            THEN 'priority must be an integer from 1 (first) to 9'
          WHEN json_type(?1, '$.grade') IS NOT NULL AND (json_type(?1, '$.grade') <> 'text'
            OR json_extract(?1, '$.grade') NOT IN ('A', 'B', 'C', 'D', 'E'))
            THEN 'grade must be A (key customer) to E'
          WHEN json_type(?1, '$.due') IS NOT NULL AND json_type(?1, '$.due') <> 'integer'
            THEN 'due must be Unix milliseconds'
          WHEN json_type(?1, '$.customer') IS NOT 'text' OR json_extract(?1, '$.customer') = ''
            THEN 'customer must be a non-empty string'
          WHEN json_type(?1, '$.address') IS NOT 'text' OR json_extract(?1, '$.address') = ''
            THEN 'address must be a non-empty string'
          WHEN json_type(?1, '$.meter') IS NOT NULL AND (json_type(?1, '$.meter') <> 'text'
            OR length(json_extract(?1, '$.meter')) <> 12 OR json_extract(?1, '$.meter') GLOB '*[^0-9]*')
            THEN 'meter must be 12 digits'
          WHEN json_extract(?1, '$.kind') IN ('meter-check', 'reading') AND json_type(?1, '$.meter') IS NULL
            THEN 'a ' || json_extract(?1, '$.kind') || ' order needs a meter'
          WHEN json_type(?1, '$.last') IS NOT NULL AND (json_type(?1, '$.last.wh') IS NOT 'integer'
            OR json_extract(?1, '$.last.wh') < 0 OR json_type(?1, '$.last.ts') IS NOT 'integer')
            THEN 'last must be {"wh": Wh >= 0, "ts": Unix ms}'
          END
        """, [.text(body)]
      ).first?.text(0)
    }
    if let problem { throw Archive.Refusal("malformed", "workorder " + id + ": " + problem) }
    let known = try refusingSQL { () throws(SQLiteError) -> Int64 in
      try db.scalarInt("SELECT count(*) FROM work_orders WHERE id = ?1", [.text(id)]) ?? 0
    }
    guard known == 0 else {
      throw Archive.Refusal("duplicate", "work order " + id + " is already on this device")
    }
    try refusingSQL { () throws(SQLiteError) in
      try db.run(
        """
        INSERT INTO work_orders (id, kind, priority, grade, due, customer, address, meter, last_wh, last_at,
          body, state, received_at)
        SELECT ?1, json_extract(?2, '$.kind'), json_extract(?2, '$.priority'), json_extract(?2, '$.grade'),
          json_extract(?2, '$.due'), json_extract(?2, '$.customer'), json_extract(?2, '$.address'),
          json_extract(?2, '$.meter'), json_extract(?2, '$.last.wh'), json_extract(?2, '$.last.ts'), json(?2),
          'open', ?3
        """, [.text(id), .text(body), .integer(now)])
    }
    return "work order " + id + " received"
  }

  private static func cancel(
    _ id: String, reason: String, store: AgentStore, outbox: Outbox, now: Int64
  ) throws(Archive.Refusal) -> String {
    let db = store.db
    let order = try refusingSQL { () throws(SQLiteError) -> Row? in
      try db.query(
        "SELECT state, cancelled_at, closing_record, closed_at FROM work_orders WHERE id = ?1", [.text(id)]
      ).first
    }
    guard let order else {
      throw Archive.Refusal("unknown-order", "work order " + id + " is not on this device")
    }
    if order.int64(1) != nil { return "work order " + id + " was already cancelled" }
    let state = order.text(0) ?? ""
    let closed = state == "completed" || state == "handed-back"
    try refusingSQL { () throws(SQLiteError) in
      try db.run(
        "UPDATE work_orders SET cancelled_at = ?2, cancel_reason = ?3 WHERE id = ?1",
        [.text(id), .integer(now), .text(reason)])
      guard closed else { return }
      let event =
        try db.query(
          """
          SELECT json_object('id', ?1, 'ts', ?2, 'type', 'workorder.cancel_after_close', 'order', ?3,
            'state', ?4, 'closed_at', ?5, 'closing_record', ?6, 'reason', ?7)
          """,
          [
            .text(store.storeID + "-wo-" + id + "-cancel-after-close"), .integer(now), .text(id),
            .text(state),
            .integer(order.int64(3) ?? 0), .text(order.text(2) ?? ""), .text(reason),
          ]
        ).first?.text(0) ?? "{}"
      try outbox.enqueue(.events, record: event, retention: .billing, now: now)
      try AuditChain.append(db, kind: "workorder", body: event, now: now)
    }
    guard closed else { return "work order " + id + " cancelled" }
    Log.warn("inspect", "work order " + id + " was cancelled at HQ after it was " + state + " on this device")
    return "work order " + id + " cancelled at HQ after it was " + state
      + " on this device: the record stands (workorder.cancel_after_close)"
  }

  /// True for 1-64 of `A-Z a-z 0-9 . _ -`.
  public static func isOrderID(_ id: String) -> Bool {
    let bytes = Array(id.utf8)
    guard !bytes.isEmpty, bytes.count <= 64 else { return false }
    return bytes.allSatisfy { b in
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E
        || b == 0x5F || b == 0x2D
    }
  }
}

/// Runs database work for a command effect, turning a `SQLiteError` into the
/// `internal-error` refusal.
func refusingSQL<R>(_ work: () throws(SQLiteError) -> R) throws(Archive.Refusal) -> R {
  do {
    return try work()
  } catch {
    throw Archive.Refusal("internal-error", error.description)
  }
}

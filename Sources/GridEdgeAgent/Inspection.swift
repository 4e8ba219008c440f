import DLT645
import GridEdgeContract
import Runtime
import SQLiteStore

/// What an inspector does with a work order on a handheld (`gridedge inspect`): accept,
/// arrive, record findings and photos, the customer's confirmation, complete or hand
/// back; a completed order is immutable and a correction is a new record referring to
/// it.
///
/// Every state change is one `synchronous=FULL` transaction that stores it, enqueues
/// a record in class `records` (natural key `<store>-wo-<order>-<what>`) and appends
/// that record to the audit chain. A photo is read, checked against the size limit,
/// hashed (SHA-256) and enqueued in chunks in class `attachments` in one transaction,
/// so a cut link resumes at the next chunk HQ has not acknowledged. Bad input throws
/// an `InspectionError` and writes nothing.
public final class Inspection {
  /// Limits from the configuration.
  public struct Settings: Sendable {
    /// `inspection.photo_max_bytes`.
    public var photoMaxBytes: Int64 = 10_485_760
    /// `inspection.photo_chunk_bytes`.
    public var photoChunkBytes: Int = 49_152
    public init() {}
  }

  /// One checklist item of an order kind.
  public struct Item: Sendable {
    public let name: String
    public let mandatory: Bool
  }

  public let store: AgentStore
  public let outbox: Outbox
  public let settings: Settings

  public init(store: AgentStore, outbox: Outbox, settings: Settings = Settings()) {
    self.store = store
    self.outbox = outbox
    self.settings = settings
  }

  /// The items every kind may record: `seals` (`NUMBER:STATE,...`, state intact,
  /// broken, missing or replaced), `wiring` (ok, fault, tampered), `display` (the
  /// meter's display in kWh, up to 2 decimals, compared with the last value HQ sent),
  /// `relay` (closed, open), `theft` (the evidence category), `notes` (free text).
  public static let items = ["seals", "wiring", "display", "relay", "theft", "notes"]
  /// Theft evidence categories.
  public static let theftCategories = [
    "none", "bypass", "magnet", "tampered-seal", "reversed-wiring", "meter-damage", "other",
  ]

  /// The checklist of `kind`: every item, mandatory or not.
  public static func checklist(_ kind: String) -> [Item] {
    let mandatory: [String]
    switch kind {
    case "inspection": mandatory = ["seals", "wiring", "display"]
    case "anti-theft": mandatory = ["seals", "wiring", "theft"]
    case "meter-check": mandatory = ["seals", "display", "relay"]
    case "repair": mandatory = ["wiring", "relay", "notes"]
    default: mandatory = ["display"]
    }
    return items.map { Item(name: $0, mandatory: mandatory.contains($0)) }
  }

  /// Whether completing `kind` needs the customer's confirmation and rating.
  public static func needsConfirmation(_ kind: String) -> Bool { kind != "reading" }

  // MARK: - Reading

  /// The orders, key customers (grade A) first, then by priority and due time, as a JSON array.
  public func listJSON(all: Bool) throws(SQLiteError) -> String {
    try store.db.query(
      """
      SELECT json_group_array(json_object('id', id, 'kind', kind, 'state', state, 'priority', priority,
        'grade', grade, 'due', due, 'customer', customer, 'address', address, 'meter', meter,
        'cancelled', json(CASE WHEN cancelled_at IS NULL THEN 'false' ELSE 'true' END)))
      FROM (SELECT * FROM work_orders WHERE ?1 OR (state NOT IN ('completed', 'handed-back')
        AND cancelled_at IS NULL)
        ORDER BY coalesce(grade, 'Z'), priority, coalesce(due, 9223372036854775807), id)
      """, [.integer(all ? 1 : 0)]
    ).first?.text(0) ?? "[]"
  }

  /// One order with its findings, photos, corrections and what its checklist still
  /// misses, as a JSON object.
  /// - Throws: `InspectionError` for an unknown order.
  public func showJSON(_ id: String) throws(InspectionError) -> String {
    let order = try load(id)
    let missing = try missingItems(order)
    return try sqlError {
      () throws(SQLiteError) -> String in
      try store.db.query(
        """
        SELECT json_object('id', id, 'kind', kind, 'state', state, 'priority', priority, 'grade', grade,
          'due', due, 'customer', customer, 'address', address, 'meter', meter, 'last_wh', last_wh,
          'received_at', received_at, 'accepted_at', accepted_at, 'arrived_at', arrived_at,
          'closed_at', closed_at, 'confirmed_by', confirmed_by, 'rating', rating,
          'handback_reason', handback_reason, 'record', closing_record, 'cancelled_at', cancelled_at,
          'findings', (SELECT json_group_object(item, json(value)) FROM work_order_findings WHERE order_id = ?1),
          'photos', (SELECT json_group_array(json_object('id', id, 'sha256', sha256, 'size', size,
            'chunks', chunks, 'source', source))
            FROM (SELECT * FROM work_order_photos WHERE order_id = ?1 ORDER BY rowid)),
          'corrections', (SELECT json_group_array(json_object('id', id, 'item', item, 'value', json(value),
            'note', note)) FROM work_order_corrections WHERE order_id = ?1),
          'missing', json(?2))
        FROM work_orders WHERE id = ?1
        """, [.text(id), .text(jsonArray(missing))]
      ).first?.text(0) ?? "{}"
    }
  }

  // MARK: - State changes

  /// Accepts an open order.
  public func accept(_ id: String, now: Int64) throws(InspectionError) -> String {
    let order = try load(id)
    try order.require(["open"], to: "accept")
    return try change(order, now: now, what: "accepted") { () throws(SQLiteError) in
      try self.store.db.run(
        "UPDATE work_orders SET state = 'accepted', accepted_at = ?2 WHERE id = ?1",
        [.text(id), .integer(now)])
    }
  }

  /// Marks arrival on site (timestamped); the record carries dispatch→arrival in seconds.
  public func arrive(_ id: String, now: Int64) throws(InspectionError) -> String {
    let order = try load(id)
    try order.require(["accepted"], to: "arrive at")
    return try change(
      order, now: now, what: "arrived", extra: ["dispatch_to_arrival_s": (now - order.receivedAt) / 1000]
    ) { () throws(SQLiteError) in
      try self.store.db.run(
        "UPDATE work_orders SET state = 'arrived', arrived_at = ?2 WHERE id = ?1", [.text(id), .integer(now)])
    }
  }

  /// Records (or replaces) one checklist item while on site.
  /// - Returns: the stored value as JSON.
  public func finding(_ id: String, item: String, value: String, now: Int64) throws(InspectionError) -> String
  {
    let order = try load(id)
    try order.require(["arrived"], to: "record findings for")
    let json = try Self.validate(item: item, value: value, order: order)
    try write { () throws(SQLiteError) in try self.storeFinding(id, item, json, now: now) }
    return json
  }

  private func storeFinding(_ id: String, _ item: String, _ json: String, now: Int64) throws(SQLiteError) {
    try store.db.run(
      """
      INSERT INTO work_order_findings (order_id, item, value, recorded_at) VALUES (?1, ?2, json(?3), ?4)
      ON CONFLICT (order_id, item) DO UPDATE SET value = excluded.value, recorded_at = excluded.recorded_at
      """, [.text(id), .text(item), .text(json), .integer(now)])
  }

  /// Reads the order's meter on site over `transport` and records finding `reading`
  /// (`wh`, `relay` when the meter reports it, HQ's `last_wh`, `difference_wh` and
  /// `discrepancy` — true when the register is below HQ's last value — and, when the
  /// display was recorded, `display_wh` and `display_matches`). A discrepancy is also
  /// recorded as finding `discrepancy`.
  /// - Returns: the `reading` finding as JSON.
  public func readMeter(
    _ id: String, transport: any MeterTransport, clock: some Clock, timeoutMilliseconds: Int64 = 10_000,
    now: Int64
  ) throws(InspectionError) -> String {
    let order = try load(id)
    try order.require(["arrived"], to: "read the meter of")
    guard let meterText = order.meter, let meter = Address(meterText) else {
      throw InspectionError("bad-value", "work order " + id + " names no meter to read")
    }
    let read = try OnSiteReading.read(
      meter: meter, transport: transport, clock: clock, timeoutMilliseconds: timeoutMilliseconds)
    let display = try sqlError { () throws(SQLiteError) -> Int64? in
      try store.db.query(
        "SELECT json_extract(value, '$.wh') FROM work_order_findings WHERE order_id = ?1 AND item = 'display'",
        [.text(id)]
      ).first?.int64(0)
    }
    var json = "{\"wh\":" + String(read.wattHours) + ",\"source\":\"meter\""
    if let open = read.relayOpen { json += ",\"relay\":\"" + (open ? "open" : "closed") + "\"" }
    var discrepancy = false
    if let last = order.lastWh {
      discrepancy = read.wattHours < last
      json +=
        ",\"last_wh\":" + String(last) + ",\"difference_wh\":" + String(read.wattHours - last)
        + ",\"discrepancy\":" + (discrepancy ? "true" : "false")
    }
    if let display {
      // The display shows 0.01 kWh: it matches the register within 10 Wh.
      json +=
        ",\"display_wh\":" + String(display) + ",\"display_matches\":"
        + (abs(display - read.wattHours) < 10 ? "true" : "false")
    }
    json += "}"
    let reading = json
    try write { () throws(SQLiteError) in
      try self.storeFinding(id, "reading", reading, now: now)
      if discrepancy { try self.storeFinding(id, "discrepancy", reading, now: now) }
    }
    return reading
  }

  /// Attaches the photo at `path`: size-limited, SHA-256, enqueued in chunks in class
  /// `attachments`, all in one transaction.
  /// - Returns: (photo id, sha256 hex, size, chunks).
  public func photo(_ id: String, path: String, now: Int64) throws(InspectionError) -> (
    id: String, sha256: String, size: Int64, chunks: Int
  ) {
    let order = try load(id)
    try order.require(["arrived"], to: "attach photos to")
    guard let size = Files.size(path) else {
      throw InspectionError("photo", "photo file " + path + " does not exist or cannot be read")
    }
    guard size > 0 else { throw InspectionError("photo", "photo file " + path + " is empty") }
    guard size <= settings.photoMaxBytes else {
      throw InspectionError(
        "photo",
        "photo file " + path + " is " + String(size) + " bytes, above the limit of "
          + String(settings.photoMaxBytes) + " (inspection.photo_max_bytes)")
    }
    let bytes: [UInt8]
    do {
      bytes = try Files.read(path)
    } catch {
      throw InspectionError("photo", "photo file " + path + ": " + error.description)
    }
    guard Int64(bytes.count) == size, Int64(bytes.count) <= settings.photoMaxBytes else {
      throw InspectionError("photo", "photo file " + path + " changed while it was read")
    }
    let digest = hexString(SHA256.hash(bytes))
    let chunk = max(1, settings.photoChunkBytes)
    let count = (bytes.count + chunk - 1) / chunk
    let db = store.db
    let duplicate = try sqlError { () throws(SQLiteError) -> Int64 in
      try db.scalarInt(
        "SELECT count(*) FROM work_order_photos WHERE order_id = ?1 AND sha256 = ?2",
        [.text(id), .text(digest)])
        ?? 0
    }
    guard duplicate == 0 else {
      throw InspectionError("photo", "this photo (SHA-256 " + digest + ") is already attached to " + id)
    }
    let photoID = try write { () throws(SQLiteError) -> String in
      let photoID = try outbox.newRecordID("photo")
      try db.run(
        """
        INSERT INTO work_order_photos (id, order_id, sha256, size, chunks, source, added_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
        """,
        [
          .text(photoID), .text(id), .text(digest), .integer(size), .integer(Int64(count)), .text(path),
          .integer(now),
        ])
      for index in 0..<count {
        let part = bytes[(index * chunk)..<min(bytes.count, (index + 1) * chunk)]
        // Every member is an id, a hex digest, an integer or base64url text: no escaping needed.
        let record =
          "{\"id\":\"" + photoID + "-" + String(index) + "\",\"ts\":" + String(now) + ",\"photo\":\""
          + photoID
          + "\",\"order\":\"" + id + "\",\"sha256\":\"" + digest + "\",\"size\":" + String(size)
          + ",\"index\":" + String(index) + ",\"count\":" + String(count) + ",\"data\":\""
          + Base64URL.encode(part) + "\"}"
        try outbox.enqueue(.attachments, record: record, retention: .billing, now: now)
      }
      let meta =
        "{\"id\":\"" + photoID + "\",\"ts\":" + String(now) + ",\"type\":\"workorder.photo\",\"order\":\""
        + id
        + "\",\"sha256\":\"" + digest + "\",\"size\":" + String(size) + ",\"chunks\":" + String(count) + "}"
      try AuditChain.append(db, kind: "workorder", body: meta, now: now)
      return photoID
    }
    return (photoID, digest, size, count)
  }

  /// Records the customer's confirmation (`by`, a name) and service rating 1-5.
  public func confirm(_ id: String, by: String, rating: String, now: Int64) throws(InspectionError) {
    let order = try load(id)
    try order.require(["arrived"], to: "confirm")
    guard !by.isEmpty, by.utf8.count <= 200 else {
      throw InspectionError("bad-value", "--by must name who confirmed (1-200 bytes)")
    }
    guard let stars = Int64(rating), stars >= 1, stars <= 5 else {
      throw InspectionError("bad-value", "--rating must be 1 to 5, not '" + rating + "'")
    }
    try write { () throws(SQLiteError) in
      try self.store.db.run(
        "UPDATE work_orders SET confirmed_by = ?2, rating = ?3 WHERE id = ?1",
        [.text(id), .text(by), .integer(stars)])
    }
  }

  /// Completes an order on site. Refused, writing nothing, when a mandatory checklist
  /// item or the customer's confirmation is missing. The record carries the findings,
  /// the photos, the confirmation and the service figures (dispatch→arrival,
  /// arrival→completion, s); when HQ had cancelled the order meanwhile, it says so.
  /// - Returns: the completion record's id.
  public func complete(_ id: String, now: Int64) throws(InspectionError) -> String {
    let order = try load(id)
    try order.require(["arrived"], to: "complete")
    let missing = try missingItems(order)
    guard missing.isEmpty else {
      var list = ""
      for (i, m) in missing.enumerated() { list += (i == 0 ? "" : ", ") + m }
      throw InspectionError(
        "missing-items", "work order " + id + " (" + order.kind + ") cannot be completed: missing " + list)
    }
    let arrived = order.arrivedAt ?? now
    return try change(
      order, now: now, what: "completed",
      extra: [
        "dispatch_to_arrival_s": (arrived - order.receivedAt) / 1000,
        "arrival_to_completion_s": (now - arrived) / 1000,
      ], details: true
    ) { () throws(SQLiteError) in
      try self.store.db.run(
        "UPDATE work_orders SET state = 'completed', closed_at = ?2, closing_record = ?3 WHERE id = ?1",
        [.text(id), .integer(now), .text(self.recordID(id, "completed"))])
    }
  }

  /// Hands an order back to HQ with a reason.
  public func handBack(_ id: String, reason: String, now: Int64) throws(InspectionError) -> String {
    let order = try load(id)
    try order.require(["open", "accepted", "arrived"], to: "hand back")
    guard !reason.isEmpty, reason.utf8.count <= 500 else {
      throw InspectionError("bad-value", "--reason must say why the order is handed back (1-500 bytes)")
    }
    return try change(order, now: now, what: "handed-back", reason: reason) { () throws(SQLiteError) in
      try self.store.db.run(
        """
        UPDATE work_orders SET state = 'handed-back', closed_at = ?2, handback_reason = ?3, closing_record = ?4
        WHERE id = ?1
        """, [.text(id), .integer(now), .text(reason), .text(self.recordID(id, "handed-back"))])
    }
  }

  /// A correction of a completed order: a new record referring to the completion
  /// record; the completed order itself never changes.
  public func correct(_ id: String, item: String, value: String, note: String, now: Int64)
    throws(InspectionError)
    -> String
  {
    let order = try load(id, allowCancelled: true)
    guard order.state == "completed", let refers = order.closingRecord else {
      throw InspectionError(
        "wrong-state", "work order " + id + " is " + order.state + ": only a completed order is corrected")
    }
    guard !note.isEmpty else {
      throw InspectionError("bad-value", "--note must say why the correction is made")
    }
    let json = try Self.validate(item: item, value: value, order: order)
    let db = store.db
    return try write { () throws(SQLiteError) -> String in
      let n =
        (try db.scalarInt("SELECT count(*) FROM work_order_corrections WHERE order_id = ?1", [.text(id)]) ?? 0)
        + 1
      let recordID = self.recordID(id, "correction-" + String(n))
      try db.run(
        """
        INSERT INTO work_order_corrections (id, order_id, refers_to, item, value, note, recorded_at)
        VALUES (?1, ?2, ?3, ?4, json(?5), ?6, ?7)
        """,
        [.text(recordID), .text(id), .text(refers), .text(item), .text(json), .text(note), .integer(now)])
      let record =
        try db.query(
          """
          SELECT json_object('id', ?1, 'ts', ?2, 'type', 'workorder.correction', 'order', ?3, 'refers_to', ?4,
            'item', ?5, 'value', json(?6), 'note', ?7)
          """,
          [.text(recordID), .integer(now), .text(id), .text(refers), .text(item), .text(json), .text(note)]
        ).first?.text(0) ?? "{}"
      try self.outbox.enqueue(.records, record: record, retention: .billing, now: now)
      try AuditChain.append(db, kind: "workorder", body: record, now: now)
      return recordID
    }
  }

  // MARK: - Parts

  struct Order {
    var id: String
    var kind: String
    var state: String
    var customer: String
    var meter: String?
    var lastWh: Int64?
    var receivedAt: Int64
    var arrivedAt: Int64?
    var confirmedBy: String?
    var cancelledAt: Int64?
    var closingRecord: String?

    func require(_ states: [String], to verb: String) throws(InspectionError) {
      let closed = state == "completed" || state == "handed-back"
      if !closed, let cancelledAt {
        throw InspectionError(
          "cancelled",
          "work order " + id + " was cancelled at HQ (" + formatUTC(milliseconds: cancelledAt)
            + "): nothing to "
            + verb)
      }
      guard states.contains(state) else {
        var text = "cannot " + verb + " work order " + id + ": it is " + state
        if state == "completed" {
          text += " (immutable; use 'gridedge inspect correct' for a correction)"
        } else {
          var list = ""
          for (i, s) in states.enumerated() { list += (i == 0 ? "" : " or ") + s }
          text += ", it must be " + list
        }
        throw InspectionError("wrong-state", text)
      }
    }
  }

  func load(_ id: String, allowCancelled: Bool = false) throws(InspectionError) -> Order {
    let row = try sqlError { () throws(SQLiteError) -> Row? in
      try store.db.query(
        """
        SELECT id, kind, state, customer, meter, last_wh, received_at, arrived_at, confirmed_by, cancelled_at,
          closing_record
        FROM work_orders WHERE id = ?1
        """, [.text(id)]
      ).first
    }
    guard let row else {
      throw InspectionError(
        "unknown-order", "no work order " + id + " on this device ('gridedge inspect list')")
    }
    var order = Order(
      id: id, kind: row.text(1) ?? "", state: row.text(2) ?? "", customer: row.text(3) ?? "",
      meter: row.text(4),
      lastWh: row.int64(5), receivedAt: row.int64(6) ?? 0, arrivedAt: row.int64(7), confirmedBy: row.text(8),
      cancelledAt: row.int64(9), closingRecord: row.text(10))
    if allowCancelled { order.cancelledAt = nil }
    return order
  }

  /// The mandatory checklist items (and `confirmation`) not recorded yet.
  func missingItems(_ order: Order) throws(InspectionError) -> [String] {
    let have = try sqlError { () throws(SQLiteError) -> [String] in
      try store.db.query("SELECT item FROM work_order_findings WHERE order_id = ?1", [.text(order.id)])
        .compactMap { $0.text(0) }
    }
    var missing = Self.checklist(order.kind).filter { $0.mandatory && !have.contains($0.name) }.map {
      $0.name
    }
    if Self.needsConfirmation(order.kind) && order.confirmedBy == nil { missing.append("confirmation") }
    return missing
  }

  /// Checks one item's value; returns it as JSON.
  static func validate(item: String, value: String, order: Order) throws(InspectionError) -> String {
    func bad(_ why: String) -> InspectionError {
      // A long value is not echoed back whole.
      let shown =
        value.utf8.count > 60
        ? String(value.prefix(40)) + "… (" + String(value.utf8.count) + " bytes)" : value
      return InspectionError("bad-value", "finding " + item + " '" + shown + "': " + why)
    }
    switch item {
    case "seals":
      var out = "["
      let seals = value.split(separator: ",")
      guard !seals.isEmpty else { throw bad("give NUMBER:STATE[,NUMBER:STATE...]") }
      for (i, seal) in seals.enumerated() {
        let parts = seal.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, WorkOrders.isOrderID(String(parts[0])), parts[0].utf8.count <= 32 else {
          throw bad("each seal is NUMBER:STATE, NUMBER 1-32 of A-Z a-z 0-9 . _ -")
        }
        guard ["intact", "broken", "missing", "replaced"].contains(String(parts[1])) else {
          throw bad("seal state must be intact, broken, missing or replaced")
        }
        out += (i == 0 ? "" : ",") + "{\"number\":\"" + parts[0] + "\",\"state\":\"" + parts[1] + "\"}"
      }
      return out + "]"
    case "wiring":
      guard ["ok", "fault", "tampered"].contains(value) else { throw bad("must be ok, fault or tampered") }
      return "\"" + value + "\""
    case "relay":
      guard ["closed", "open"].contains(value) else { throw bad("must be closed or open") }
      return "\"" + value + "\""
    case "theft":
      guard theftCategories.contains(value) else {
        var list = ""
        for (i, c) in theftCategories.enumerated() { list += (i == 0 ? "" : ", ") + c }
        throw bad("must be one of " + list)
      }
      return "\"" + value + "\""
    case "display":
      guard let wh = kWhToWh(value) else { throw bad("must be the displayed kWh, e.g. 12345.67") }
      var out = "{\"wh\":" + String(wh)
      if let last = order.lastWh {
        out +=
          ",\"last_wh\":" + String(last) + ",\"difference_wh\":" + String(wh - last)
          + ",\"discrepancy\":" + (wh < last ? "true" : "false")
      }
      return out + "}"
    case "notes":
      guard !value.isEmpty, value.utf8.count <= 2000 else { throw bad("notes must be 1-2000 bytes") }
      return jsonString(value)
    default:
      var list = ""
      for (i, c) in items.enumerated() { list += (i == 0 ? "" : ", ") + c }
      throw InspectionError("bad-value", "unknown checklist item '" + item + "' (one of " + list + ")")
    }
  }

  /// "12345.67" kWh → 12345670 Wh; nil when not a non-negative number with ≤ 2 decimals.
  static func kWhToWh(_ text: String) -> Int64? {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count <= 2, let whole = Int64(parts[0]), whole >= 0, parts[0].utf8.count <= 9,
      parts[0].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
    else { return nil }
    var fraction: Int64 = 0
    if parts.count == 2 {
      let f = parts[1]
      guard !f.isEmpty, f.utf8.count <= 2, f.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = Int64(f)
      else {
        return nil
      }
      fraction = f.utf8.count == 1 ? v * 100 : v * 10
    }
    return whole * 1000 + fraction
  }

  func recordID(_ order: String, _ what: String) -> String { store.storeID + "-wo-" + order + "-" + what }

  /// Stores a state change and its record (class `records`, audit chain) in one
  /// `synchronous=FULL` transaction.
  private func change(
    _ order: Order, now: Int64, what: String, extra: [String: Int64] = [:], reason: String? = nil,
    details: Bool = false, _ update: () throws(SQLiteError) -> Void
  ) throws(InspectionError) -> String {
    let id = recordID(order.id, what)
    let db = store.db
    try write { () throws(SQLiteError) in
      try update()
      var service = "{"
      for (i, key) in extra.keys.sorted().enumerated() {
        service += (i == 0 ? "" : ",") + "\"" + key + "\":" + String(extra[key] ?? 0)
      }
      service += "}"
      let record =
        try db.query(
          """
          SELECT json_patch(json_object('id', ?1, 'ts', ?2, 'type', 'workorder.' || ?3, 'order', o.id,
            'kind', o.kind, 'customer', o.customer, 'meter', o.meter, 'state', o.state, 'reason', ?4,
            'service', json(?5)),
            CASE WHEN ?6 THEN json_object(
              'received_at', o.received_at, 'accepted_at', o.accepted_at, 'arrived_at', o.arrived_at,
              'findings', (SELECT json_group_object(item, json(value)) FROM work_order_findings
                WHERE order_id = o.id),
              'photos', (SELECT json_group_array(json_object('id', id, 'sha256', sha256, 'size', size,
                'chunks', chunks)) FROM (SELECT * FROM work_order_photos WHERE order_id = o.id ORDER BY rowid)),
              'confirmation', json_object('by', o.confirmed_by, 'rating', o.rating),
              'cancelled_at_hq', o.cancelled_at) ELSE '{}' END)
          FROM work_orders o WHERE o.id = ?7
          """,
          [
            .text(id), .integer(now), .text(what), reason.map { .text($0) } ?? .null, .text(service),
            .integer(details ? 1 : 0), .text(order.id),
          ]
        ).first?.text(0) ?? "{}"
      try self.outbox.enqueue(.records, record: record, retention: .billing, now: now)
      try AuditChain.append(db, kind: "workorder", body: record, now: now)
    }
    Log.info("inspect", "work order " + order.id + " " + what)
    return id
  }

  /// A short `synchronous=FULL` transaction; a database failure becomes an `InspectionError`.
  @discardableResult
  private func write<R>(_ body: () throws(SQLiteError) -> R) throws(InspectionError) -> R {
    try sqlError { () throws(SQLiteError) -> R in try store.db.transaction(.full, body) }
  }

  private func sqlError<R>(_ body: () throws(SQLiteError) -> R) throws(InspectionError) -> R {
    do {
      return try body()
    } catch {
      throw InspectionError("database", store.db.path + ": " + error.description)
    }
  }

  private func jsonArray(_ words: [String]) -> String {
    var out = "["
    for (i, w) in words.enumerated() { out += (i == 0 ? "" : ",") + "\"" + w + "\"" }
    return out + "]"
  }
}

/// JSON string literal of `text` (quotes, backslashes and control characters escaped).
func jsonString(_ text: String) -> String {
  var out: [UInt8] = [0x22]
  let hex = Array("0123456789abcdef".utf8)
  for b in text.utf8 {
    switch b {
    case 0x22: out += [0x5C, 0x22]
    case 0x5C: out += [0x5C, 0x5C]
    case 0x0A: out += [0x5C, 0x6E]
    case 0x0D: out += [0x5C, 0x72]
    case 0x09: out += [0x5C, 0x74]
    case 0..<0x20: out += [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]]
    default: out.append(b)
    }
  }
  out.append(0x22)
  return String(decoding: out, as: UTF8.self)
}

/// Why an inspection step was refused; nothing was written.
public struct InspectionError: Error, CustomStringConvertible, Sendable {
  /// `unknown-order`, `wrong-state`, `cancelled`, `missing-items`, `bad-value`, `photo`, `meter` or
  /// `database`.
  public let code: String
  public let description: String
  public init(_ code: String, _ description: String) {
    self.code = code
    self.description = description
  }
}

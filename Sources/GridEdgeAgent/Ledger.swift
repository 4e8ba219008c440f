import GridEdgeContract
import GridEdgeCore
import Runtime
import SQLiteStore

/// The per-customer prepaid ledger (DESIGN.md §6): every change of a balance is an
/// entry (top-up, charge, adjustment, rebate) carrying the balance after it, so
/// balance = Σ entries and `gridedge ledger verify` can recompute it. Each entry goes
/// upstream in class `ledger` and into the audit chain, in the transaction that
/// makes it.
public enum Ledger {
  /// Applies a top-up command body `{"customer":C,"purchase":N,"amount":fen}` inside
  /// the command's transaction. Idempotent by purchase count: last + 1 is applied; an
  /// equal or lower count is a duplicate, a higher one a gap, above the hoarding limit
  /// refused (the customer's grade's limit with `thresholds`, else `hoardingLimit`);
  /// the balance never changes on a refusal.
  /// - Returns: a one-line summary of what was applied.
  /// - Throws: `Archive.Refusal` with the reason code for HQ.
  public static func topUp(
    body: String, store: AgentStore, outbox: Outbox, hoardingLimit: Money, command: String, now: Int64,
    thresholds: GradeThresholds? = nil
  ) throws(Archive.Refusal) -> String {
    let db = store.db
    let fields = try Archive.Refusal.catching { () throws(SQLiteError) -> Row? in
      try db.query(
        """
        SELECT json_type(?1, '$.customer'), json_extract(?1, '$.customer'), json_type(?1, '$.purchase'),
          json_extract(?1, '$.purchase'), json_type(?1, '$.amount'), json_extract(?1, '$.amount')
        """, [.text(body)]
      ).first
    }
    guard let fields, fields.text(0) == "text", let customer = fields.text(1) else {
      throw Archive.Refusal("malformed", "topup needs \"customer\" (a string)")
    }
    guard fields.text(2) == "integer", let purchase = fields.int64(3), purchase >= 1,
      purchase <= Int64(UInt32.max)
    else { throw Archive.Refusal("malformed", "topup needs \"purchase\" (an integer from 1)") }
    guard fields.text(4) == "integer", let amount = fields.int64(5) else {
      throw Archive.Refusal("malformed", "topup needs \"amount\" (an integer number of fen)")
    }
    let account = try Archive.Refusal.catching { () throws(SQLiteError) -> Row? in
      try db.query("SELECT balance_fen, last_purchase FROM accounts WHERE customer = ?1", [.text(customer)])
        .first
    }
    guard let account, let balance = account.int64(0), let last = account.int64(1) else {
      throw Archive.Refusal("unknown-customer", "customer " + customer + " is not in the meter archive")
    }
    let own = try Archive.Refusal.catching { () throws(SQLiteError) -> PrepaidThresholds? in
      try thresholds?.thresholds(customer: customer, db: db)
    }
    let hoardingLimit = own?.hoardingLimit ?? hoardingLimit
    let decision = TopUpDecision.decide(
      lastAppliedPurchaseCount: UInt32(truncatingIfNeeded: last), purchaseCount: UInt32(purchase),
      amount: Money(fen: amount), balance: Money(fen: balance), hoardingLimit: hoardingLimit)
    switch decision {
    case .apply(let newBalance):
      try Archive.Refusal.catching { () throws(SQLiteError) in
        try db.run(
          "UPDATE accounts SET balance_fen = ?2, last_purchase = ?3 WHERE customer = ?1",
          [.text(customer), .integer(newBalance.fen), .integer(purchase)])
        try appendEntry(
          store: store, outbox: outbox, customer: customer, kind: "topup", amount: Money(fen: amount),
          balanceAfter: newBalance, ref: "purchase:" + String(purchase), detail: "command " + command,
          now: now, thresholds: own)
        if let rule = thresholds?.rebate, balance < 0, newBalance.fen >= 0 {
          try creditRebate(
            store: store, outbox: outbox, customer: customer, rule: rule, balance: newBalance, now: now,
            thresholds: own)
        }
      }
      return "top-up " + String(purchase) + " of " + customer + ": +" + Money(fen: amount).yuanText
        + ", balance "
        + newBalance.yuanText
    case .duplicate:
      throw Archive.Refusal(
        "duplicate",
        "purchase " + String(purchase) + " of " + customer + " was already applied (last "
          + String(last) + "); balance unchanged")
    case .gap(let expected):
      throw Archive.Refusal(
        "gap",
        "purchase " + String(purchase) + " of " + customer + " skips purchase " + String(expected)
          + "; balance unchanged")
    case .overHoardingLimit(let room):
      throw Archive.Refusal(
        "over-hoarding-limit",
        "the balance would exceed the hoarding limit " + hoardingLimit.yuanText
          + " (room " + room.yuanText + "); balance unchanged")
    case .invalidAmount:
      throw Archive.Refusal("invalid-amount", "the amount must be positive")
    }
  }

  /// The arrears rebate (`prepaid.rebate*`): called after the entry that brought the
  /// customer's balance from below zero to `balance` (≥ 0), which ends an arrears
  /// episode. The episode (the entries since the last one at or above zero) is
  /// replayed with `ArrearsTracker`; when it ended within the rule's window, the
  /// rebate is credited as an entry of kind `rebate`, ref `rebate:<first entry of the
  /// episode>`, so once per episode. Call inside the transaction of that entry.
  static func creditRebate(
    store: AgentStore, outbox: Outbox, customer: String, rule: ArrearsRebateRule, balance: Money, now: Int64,
    thresholds: PrepaidThresholds?
  ) throws(SQLiteError) {
    let db = store.db
    let rows = try db.query(
      """
      SELECT id, ts, balance_fen FROM ledger WHERE customer = ?1 AND id > coalesce(
        (SELECT max(id) FROM ledger WHERE customer = ?1 AND balance_fen >= 0
          AND id < (SELECT max(id) FROM ledger WHERE customer = ?1)), 0)
      ORDER BY id
      """, [.text(customer)])
    var tracker = ArrearsTracker()
    var earned = Money.zero
    for row in rows {
      earned = tracker.observe(
        balance: Money(fen: row.int64(2) ?? 0), at: (row.int64(1) ?? 0) / 1000, rule: rule)
    }
    guard earned.fen > 0, let first = rows.first?.int64(0) else { return }
    let after = balance + earned
    try db.run(
      "UPDATE accounts SET balance_fen = ?2 WHERE customer = ?1", [.text(customer), .integer(after.fen)])
    try appendEntry(
      store: store, outbox: outbox, customer: customer, kind: "rebate", amount: earned, balanceAfter: after,
      ref: "rebate:" + String(first),
      detail: "arrears repaid within " + String(rule.windowSeconds) + " s: " + String(rule.basisPoints)
        + " bp of the deepest arrears", now: now, thresholds: thresholds)
    store.notice("prepaid", customer + ": arrears repaid in time, rebate " + earned.yuanText)
  }

  /// Appends a ledger entry (the account row is updated by the caller), enqueues it in
  /// class `ledger` and adds it to the audit chain. Call inside a transaction. With
  /// `thresholds`, every threshold the balance crossed (alarm 1, alarm 2, exhausted,
  /// overdraft limit, close-permit; down or up) is raised as a `prepaid.threshold`
  /// event, so HQ can send the customer a message.
  public static func appendEntry(
    store: AgentStore, outbox: Outbox, customer: String, kind: String, amount: Money, balanceAfter: Money,
    ref: String, detail: String, now: Int64, thresholds: PrepaidThresholds? = nil
  ) throws(SQLiteError) {
    let db = store.db
    try db.run(
      """
      INSERT INTO ledger (customer, ts, kind, amount_fen, balance_fen, ref, detail)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
      """,
      [
        .text(customer), .integer(now), .text(kind), .integer(amount.fen), .integer(balanceAfter.fen),
        .text(ref), .text(detail),
      ])
    let id = db.lastInsertRowID
    let record =
      try db.query(
        """
        SELECT json_object('id', ?1, 'ts', ?2, 'customer', ?3, 'kind', ?4, 'amount_fen', ?5,
          'balance_fen', ?6, 'ref', ?7, 'detail', ?8)
        """,
        [
          .text(store.storeID + "-ledger-" + String(id)), .integer(now), .text(customer), .text(kind),
          .integer(amount.fen), .integer(balanceAfter.fen), .text(ref), .text(detail),
        ]
      ).first?.text(0) ?? "{}"
    try outbox.enqueue(.ledger, record: record, retention: .billing, now: now)
    try AuditChain.append(db, kind: "ledger", body: record, now: now)
    guard let thresholds else { return }
    for crossing in thresholds.crossings(from: balanceAfter - amount, to: balanceAfter) {
      let event =
        try db.query(
          """
          SELECT json_object('id', ?1, 'ts', ?2, 'type', 'prepaid.threshold', 'customer', ?3,
            'threshold', ?4, 'direction', ?5, 'level_fen', ?6, 'balance_fen', ?7)
          """,
          [
            .text(try outbox.newRecordID("event")), .integer(now), .text(customer),
            .text(crossing.threshold.code),
            .text(crossing.direction == .down ? "down" : "up"),
            .integer(thresholds.level(of: crossing.threshold).fen), .integer(balanceAfter.fen),
          ]
        ).first?.text(0) ?? "{}"
      try outbox.enqueue(.events, record: event, retention: .billing, now: now)
      store.notice(
        "prepaid",
        customer + ": balance " + balanceAfter.yuanText + " crossed " + crossing.threshold.code + " going "
          + (crossing.direction == .down ? "down" : "up"))
    }
  }

  /// Recomputes every account from its entries: each entry's balance must equal the
  /// previous one plus its amount, and the account's balance the last entry's. A
  /// `rebate` entry must be positive and directly follow (for its customer) the entry
  /// that ended an arrears episode (balance from below zero to zero or more), at most
  /// one per episode.
  /// - Returns: the problems found, one line each; empty when the ledger is consistent.
  public static func verify(_ db: Connection) throws(SQLiteError) -> [String] {
    var problems: [String] = []
    var running: [String: Int64] = [:]
    // Customers whose last entry ended an arrears episode.
    var repaid: Set<String> = []
    for row in try db.query("SELECT id, customer, amount_fen, balance_fen, kind FROM ledger ORDER BY id") {
      let customer = row.text(1) ?? ""
      let before = running[customer] ?? 0
      let expected = before + (row.int64(2) ?? 0)
      if row.text(4) == "rebate" && (!repaid.contains(customer) || (row.int64(2) ?? 0) <= 0) {
        problems.append(
          "ledger entry " + String(row.int64(0) ?? 0) + " of " + customer
            + ": a rebate that does not follow the repayment of arrears (or is not positive)")
      }
      if before < 0 && expected >= 0 && row.text(4) != "rebate" {
        repaid.insert(customer)
      } else {
        repaid.remove(customer)
      }
      if expected != row.int64(3) {
        problems.append(
          "ledger entry " + String(row.int64(0) ?? 0) + " of " + customer + ": balance "
            + Money(fen: row.int64(3) ?? 0).yuanText + ", recomputed " + Money(fen: expected).yuanText)
      }
      running[customer] = expected
    }
    for row in try db.query("SELECT customer, balance_fen FROM accounts ORDER BY customer") {
      let customer = row.text(0) ?? ""
      let recomputed = running[customer] ?? 0
      if recomputed != row.int64(1) {
        problems.append(
          "account " + customer + ": balance " + Money(fen: row.int64(1) ?? 0).yuanText + ", entries sum to "
            + Money(fen: recomputed).yuanText)
      }
    }
    return problems
  }
}

extension Archive.Refusal {
  /// Runs `work`, turning a database error into an `internal-error` refusal.
  static func catching<R>(_ work: () throws(SQLiteError) -> R) throws(Archive.Refusal) -> R {
    do {
      return try work()
    } catch {
      throw Archive.Refusal("internal-error", error.description)
    }
  }
}

/// The audit hash chain (DESIGN.md §6): every ledger entry, command outcome and relay
/// operation, each entry's hash = SHA-256(previous hash ‖ "\n" ‖ kind ‖ "\n" ‖ body).
/// An edited or deleted row breaks the chain at that point. (A deleted tail is found
/// against HQ, which holds the same entries.)
public enum AuditChain {
  static let genesis = String(repeating: "0", count: 64)

  static func hash(previous: String, kind: String, body: String) -> String {
    hexString(SHA256.hash(Array((previous + "\n" + kind + "\n" + body).utf8)))
  }

  /// Appends an entry. Call inside the transaction that makes the audited change.
  public static func append(_ db: Connection, kind: String, body: String, now: Int64) throws(SQLiteError) {
    let previous = try db.query("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").first?.text(0) ?? genesis
    try db.run(
      "INSERT INTO audit (ts, kind, body, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
      [
        .integer(now), .text(kind), .text(body), .text(previous),
        .text(hash(previous: previous, kind: kind, body: body)),
      ])
  }

  /// Walks the chain. - Returns: (entries checked, problems found, one line each).
  public static func verify(_ db: Connection) throws(SQLiteError) -> (entries: Int, problems: [String]) {
    var previous = genesis
    var expectedID: Int64 = 1
    var count = 0
    var problems: [String] = []
    for row in try db.query("SELECT id, kind, body, prev, hash FROM audit ORDER BY id") {
      let id = row.int64(0) ?? 0
      if id != expectedID {
        problems.append("audit entries " + String(expectedID) + "..." + String(id - 1) + " are missing")
      }
      if row.text(3) != previous {
        problems.append(
          "audit entry " + String(id) + ": does not follow the entry before it (deleted or reordered)")
      }
      let computed = hash(previous: row.text(3) ?? "", kind: row.text(1) ?? "", body: row.text(2) ?? "")
      if computed != row.text(4) {
        problems.append(
          "audit entry " + String(id) + " (" + (row.text(1) ?? "") + "): edited, its hash does not match")
      }
      previous = row.text(4) ?? ""
      expectedID = id + 1
      count += 1
    }
    return (count, problems)
  }
}

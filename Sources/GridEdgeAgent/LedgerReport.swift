import GridEdgeCore
import Runtime
import SQLiteStore

/// `gridedge ledger`, `gridedge audit verify` and `gridedge relays`: the prepaid
/// accounts and their entries, recomputed and checked, and the relay operations, read
/// from the agent's database.
public enum LedgerReport {
  static func open(_ config: Config) -> Connection? {
    let path = config.string("store.path") ?? ""
    guard Files.exists(path) else {
      Log.error("ledger", "no database at " + path + " (store.path in " + config.file + ")")
      return nil
    }
    var options = Connection.Options()
    options.readOnly = true
    do {
      return try Connection(path: path, options: options)
    } catch {
      Log.error("ledger", "database " + path + ": " + error.description)
      return nil
    }
  }

  /// `gridedge ledger [--customer C] [--json]`: accounts, or one account's entries.
  public static func show(config: Config, customer: String?, json: Bool) -> Int32 {
    guard let db = open(config) else { return ExitCode.database }
    do {
      if let customer {
        let rows = try db.query(
          "SELECT ts, kind, amount_fen, balance_fen, ref, detail FROM ledger WHERE customer = ?1 ORDER BY id",
          [.text(customer)])
        if json {
          Console.writeLine(
            try db.query(
              """
              SELECT json_group_array(json_object('ts', ts, 'kind', kind, 'amount_fen', amount_fen,
                'balance_fen', balance_fen, 'ref', ref, 'detail', detail))
              FROM (SELECT * FROM ledger WHERE customer = ?1 ORDER BY id)
              """, [.text(customer)]
            ).first?.text(0) ?? "[]")
          return ExitCode.ok
        }
        Console.writeLine("time (UTC)               kind        amount     balance  ref")
        for row in rows {
          Console.writeLine(
            pad(formatUTC(milliseconds: row.int64(0) ?? 0), 25) + pad(row.text(1) ?? "", 8)
              + leftPad(Money(fen: row.int64(2) ?? 0).yuanText, 10)
              + leftPad(Money(fen: row.int64(3) ?? 0).yuanText, 12)
              + "  " + (row.text(4) ?? ""))
        }
        Console.writeLine(String(rows.count) + " entr" + (rows.count == 1 ? "y" : "ies") + " for " + customer)
        return ExitCode.ok
      }
      if json {
        Console.writeLine(
          try db.query(
            """
            SELECT json_group_array(json_object('customer', customer, 'balance_fen', balance_fen,
              'last_purchase', last_purchase)) FROM (SELECT * FROM accounts ORDER BY customer)
            """
          ).first?.text(0) ?? "[]")
        return ExitCode.ok
      }
      let rows = try db.query("SELECT customer, balance_fen, last_purchase FROM accounts ORDER BY customer")
      Console.writeLine("customer                 balance  purchases")
      for row in rows {
        Console.writeLine(
          pad(row.text(0) ?? "", 17) + leftPad(Money(fen: row.int64(1) ?? 0).yuanText, 14) + "  "
            + String(row.int64(2) ?? 0))
      }
      Console.writeLine(String(rows.count) + " account(s)")
      return ExitCode.ok
    } catch {
      Log.error("ledger", error.description)
      return ExitCode.failure
    }
  }

  /// `gridedge ledger verify`: recomputes every balance from its entries.
  /// - Returns: 0 when consistent, 1 when not (each problem printed).
  public static func verify(config: Config) -> Int32 {
    guard let db = open(config) else { return ExitCode.database }
    do {
      let problems = try Ledger.verify(db)
      let entries = try db.scalarInt("SELECT count(*) FROM ledger") ?? 0
      for problem in problems { Console.writeLine("MISMATCH " + problem) }
      Console.writeLine(
        String(entries) + " ledger entries checked: "
          + (problems.isEmpty ? "every balance equals its entries" : String(problems.count) + " problem(s)"))
      return problems.isEmpty ? ExitCode.ok : ExitCode.failure
    } catch {
      Log.error("ledger", error.description)
      return ExitCode.failure
    }
  }

  /// `gridedge audit verify`: walks the audit hash chain.
  /// - Returns: 0 when intact, 1 when an entry was edited or deleted.
  public static func verifyAudit(config: Config) -> Int32 {
    guard let db = open(config) else { return ExitCode.database }
    do {
      let (entries, problems) = try AuditChain.verify(db)
      for problem in problems { Console.writeLine("BROKEN " + problem) }
      let head = try db.query("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").first?.text(0) ?? "(empty)"
      Console.writeLine(
        String(entries) + " audit entries checked: "
          + (problems.isEmpty ? "the chain is intact, head " + head : String(problems.count) + " problem(s)"))
      return problems.isEmpty ? ExitCode.ok : ExitCode.failure
    } catch {
      Log.error("audit", error.description)
      return ExitCode.failure
    }
  }

  /// `gridedge relays [--json]`: every meter with a relay operation, its desired and
  /// last verified state, why, tries and the last error (from table `relay`).
  public static func relays(config: Config, json: Bool) -> Int32 {
    guard let db = open(config) else { return ExitCode.database }
    do {
      if json {
        Console.writeLine(
          try db.query(
            """
            SELECT json_group_array(json_object('meter', meter, 'customer', customer, 'desired', desired,
              'why', why, 'ctr', command_ctr, 'requested_at', requested_at, 'state', state, 'attempts', attempts,
              'next_attempt_at', next_attempt_at, 'last_error', last_error, 'verified', verified,
              'verified_at', verified_at, 'verified_wh', verified_wh, 'energy_while_open_at', anomaly_at))
            FROM (SELECT * FROM relay ORDER BY meter)
            """
          ).first?.text(0) ?? "[]")
        return ExitCode.ok
      }
      let rows = try db.query(
        """
        SELECT meter, customer, desired, why, state, attempts, verified, verified_at, last_error, anomaly_at
        FROM relay ORDER BY meter
        """)
      Console.writeLine("meter         customer    wanted  why        state    tries  verified")
      for row in rows {
        var line =
          pad(row.text(0) ?? "", 14) + pad(row.text(1) ?? "", 12) + pad(row.text(2) ?? "", 8)
          + pad(row.text(3) ?? "", 11) + pad(row.text(4) ?? "", 9) + pad(String(row.int64(5) ?? 0), 7)
        if let verified = row.text(6) {
          line += verified + " at " + formatUTC(milliseconds: row.int64(7) ?? 0)
        } else {
          line += "-"
        }
        if row.int64(9) != nil { line += "; ENERGY WHILE OPEN" }
        if let error = row.text(8) { line += "; last error: " + error }
        Console.writeLine(line)
      }
      Console.writeLine(String(rows.count) + " meter(s) with relay operations")
      return ExitCode.ok
    } catch {
      Log.error("relays", error.description)
      return ExitCode.failure
    }
  }

  private static func pad(_ text: String, _ width: Int) -> String {
    var out = text
    while out.utf8.count < width { out += " " }
    return out
  }

  private static func leftPad(_ text: String, _ width: Int) -> String {
    var out = text
    while out.utf8.count < width { out = " " + out }
    return out
  }
}

import GridEdgeContract
import GridEdgeCore
import Runtime
import SQLiteStore

/// Receives signed commands from `down/cmd` (DESIGN.md §5): verifies each one,
/// commits its outcome and the new counter in one `synchronous=FULL` transaction,
/// and reports every outcome upstream in class `results`.
///
/// - The counter advances for every command that passes verification (signature,
///   device, counter, validity time, type), whatever its outcome: a command refused by
///   local policy (a disconnect at night) cannot be replayed later to take effect. A
///   command that fails verification leaves the counter alone.
/// - Signature failures (unsigned, unknown key, bad signature, wrong algorithm,
///   malformed) are counted per local day; above `maxSignatureFailures` control
///   commands are suspended for the rest of that day, by the monotonic clock (a clock
///   set back does not lift it) and by the stored day (a restart does not either).
/// - Handlers: `archive`, `tariff`, `topup`, and `disconnect` / `reconnect` (through
///   `RelayControl`, which checks the local policy); a type without a handler is
///   refused as `unsupported`.
public final class CommandHandler {
  /// What happened to one command.
  public struct Outcome: Equatable, Sendable {
    /// `applied`, `rejected` or `failed`.
    public var outcome: String
    /// A stable code: a `CommandRejection` code, `unsupported`, `suspended`, or "" when applied.
    public var reason: String
    public var detail: String
  }

  let store: AgentStore
  let outbox: Outbox
  let verifier: CommandVerifier?
  let offset: UTCOffset
  let maxSignatureFailures: Int64
  let hoardingLimit: Money
  let thresholds: GradeThresholds?
  /// Monotonic time until which control commands are suspended.
  private var suspendedUntil: Int64 = 0
  /// Relay control for `disconnect` and `reconnect`; nil without meter buses (the
  /// commands are then refused as `unsupported`).
  public var relay: RelayControl? = nil

  /// - Parameters:
  ///   - trustedKeys: nil when `commands.trusted_keys` is unset: every command is refused.
  public init(
    store: AgentStore, outbox: Outbox, trustedKeys: TrustedKeys?, clockSkewSeconds: Int64,
    offset: UTCOffset, maxSignatureFailures: Int64, hoardingLimit: Money = Money(fen: 500_000),
    thresholds: GradeThresholds? = nil
  ) throws(SQLiteError) {
    self.hoardingLimit = thresholds?.base.hoardingLimit ?? hoardingLimit
    self.thresholds = thresholds
    self.store = store
    self.outbox = outbox
    self.offset = offset
    self.maxSignatureFailures = maxSignatureFailures
    if let trustedKeys {
      verifier = try CommandVerifier(
        device: store.deviceID, trustedKeys: trustedKeys, allowedClockSkew: clockSkewSeconds)
    } else {
      verifier = nil
    }
  }

  /// Reads `commands.trusted_keys`, if set.
  /// - Throws: `ConfigError` naming the file, line and what is wrong.
  public static func trustedKeys(_ config: Config) throws(ConfigError) -> TrustedKeys? {
    guard let path = config.string("commands.trusted_keys") else { return nil }
    let text: String
    do {
      text = try Files.readText(path)
    } catch {
      throw config.error("commands.trusted_keys", error.description)
    }
    do {
      return try TrustedKeys(parsing: text, source: path)
    } catch {
      throw config.error("commands.trusted_keys", error.description)
    }
  }

  /// Handles one `down/cmd` payload.
  /// - Parameters:
  ///   - wall: wall-clock ms; `monotonic`: monotonic ms.
  /// - Returns: what happened (also logged, stored and enqueued for HQ).
  /// - Throws: `SQLiteError` when the outcome could not be stored; the counter has
  ///   then not advanced either (the transaction rolled back).
  @discardableResult
  public func handle(_ payload: [UInt8], wall: Int64, monotonic: Int64) throws(SQLiteError) -> Outcome {
    let digest = hexString(Array(SHA256.hash(payload).prefix(16)))
    let nowSeconds = roundingDownDivision(wall, 1000)
    let today = offset.localDateTime(fromUnix: nowSeconds).date.daysSinceEpoch
    let suspendedBefore = suspendedUntil
    let handled: (result: Outcome, what: String)
    // What the effect notes (a balance crossing a threshold) is logged only once committed.
    do throws(SQLiteError) {
      handled = try handleInTransaction(
        payload, digest: digest, nowSeconds: nowSeconds, today: today, wall: wall, monotonic: monotonic)
      store.publishNotices(committed: true)
    } catch {
      store.publishNotices(committed: false)
      // Nothing of it was committed (not its effect, not its counter, not its result).
      suspendedUntil = suspendedBefore
      throw error.prefixed("command " + digest + " not handled, nothing of it kept: ")
    }
    // Logged once committed: a log line never claims what the database does not hold.
    if handled.result.outcome == "applied" {
      Log.info("command", handled.what + " applied")
    } else {
      Log.warn(
        "command",
        handled.what + " " + handled.result.outcome + ": " + handled.result.reason + ": "
          + handled.result.detail)
    }
    return handled.result
  }

  private func handleInTransaction(
    _ payload: [UInt8], digest: String, nowSeconds: Int64, today: Int64, wall: Int64, monotonic: Int64
  ) throws(SQLiteError) -> (result: Outcome, what: String) {
    try store.db.transaction(.full) { () throws(SQLiteError) -> (result: Outcome, what: String) in
      let state = try store.db.query(
        "SELECT last_counter, failure_day, failures, suspended_day FROM command_state WHERE singleton = 1"
      ).first
      let last = Command.parseCounter(state?.text(0) ?? "0") ?? 0
      var failures = state?.int64(1) == today ? state?.int64(2) ?? 0 : 0
      let suspendedToday = state?.int64(3) == today || monotonic < suspendedUntil
      var result: Outcome
      var kid: String? = nil
      var counter: UInt64? = nil
      var typeName: String? = nil
      var verifiedCounter: UInt64? = nil
      if let verifier {
        var verified: VerifiedCommand? = nil
        result = Outcome(outcome: "rejected", reason: "", detail: "")
        do throws(CommandRejection) {
          verified = try verifier.verify(payload, lastCounter: last, now: nowSeconds)
        } catch {
          kid = error.keyID
          counter = error.counter
          result = Outcome(outcome: "rejected", reason: error.code, detail: error.description)
          if !error.isAuthentic && error.code != "internal-error" { failures += 1 }
        }
        if let verified {
          kid = verified.keyID
          counter = verified.command.counter
          typeName = verified.command.type.name
          verifiedCounter = verified.command.counter
          if suspendedToday && Self.isControl(verified.command.type) {
            result = Outcome(
              outcome: "rejected", reason: "suspended",
              detail: "control commands are suspended for the rest of the day after "
                + String(failures) + " signature failures")
          } else {
            result = try apply(verified, digest: digest, wall: wall)
          }
        }
      } else {
        result = Outcome(
          outcome: "rejected", reason: "unknown-key",
          detail: "no trusted keys are configured (commands.trusted_keys)")
        failures += 1
      }
      var newLast = last
      if let verifiedCounter { newLast = verifiedCounter }
      var suspendDay: Int64? = state?.int64(3)
      if failures > maxSignatureFailures && !suspendedToday {
        suspendDay = today
        let endOfDay = offset.unixSeconds(
          startOf: offset.localDateTime(fromUnix: nowSeconds).date.adding(days: 1))
        suspendedUntil = monotonic + max(0, endOfDay * 1000 - wall)
        Log.error(
          "command",
          String(failures) + " command signature failures today (commands.max_signature_failures "
            + String(maxSignatureFailures) + "): control commands suspended until local midnight")
        try enqueueEvent(
          "{\"type\":\"commands.suspended\",\"failures\":" + String(failures) + ",\"day\":\""
            + offset.localDateTime(fromUnix: nowSeconds).date.isoText + "\"}", wall: wall)
      }
      try store.db.run(
        """
        UPDATE command_state SET last_counter = ?1, failure_day = ?2, failures = ?3, suspended_day = ?4
        WHERE singleton = 1
        """, [.text(String(newLast)), .integer(today), .integer(failures), optional(suspendDay)])
      try store.db.run(
        """
        INSERT INTO commands (received_at, digest, kid, counter, type, outcome, reason, detail)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
        """,
        [
          .integer(wall), .text(digest), optional(kid), optional(counter.map { String($0) }),
          optional(typeName), .text(result.outcome), .text(result.reason), .text(result.detail),
        ])
      let id = try outbox.newRecordID("result")
      let record =
        try store.db.query(
          """
          SELECT json_patch('{}', json_object('id', ?1, 'ts', ?2, 'cmd', ?3, 'kid', ?4, 'ctr', ?5, 'typ', ?6,
            'outcome', ?7, 'reason', ?8, 'detail', ?9))
          """,
          [
            .text(id), .integer(wall), .text(digest), optional(kid), optional(counter.map { String($0) }),
            optional(typeName), .text(result.outcome), .text(result.reason), .text(result.detail),
          ]
        ).first?.text(0) ?? "{}"
      try outbox.enqueue(.results, record: record, retention: .billing, now: wall)
      try AuditChain.append(store.db, kind: "command", body: record, now: wall)
      let what =
        "command " + digest + (counter.map { " ctr " + String($0) } ?? "")
        + (typeName.map { " (" + $0 + ")" } ?? "")
      return (result, what)
    }
  }

  /// Commands that operate supply or money, which a suspension blocks.
  static func isControl(_ type: CommandType) -> Bool {
    switch type.name {
    case "topup", "disconnect", "reconnect", "keep-power", "tariff": return true
    default: return false
    }
  }

  /// The effect of a verified command, inside the command's transaction. A refusal
  /// rolls back whatever the effect had written (a savepoint), so only the outcome
  /// and the counter are committed.
  private func apply(_ verified: VerifiedCommand, digest: String, wall: Int64) throws(SQLiteError) -> Outcome
  {
    let command = verified.command
    if command.type == .disconnect || command.type == .reconnect {
      guard let relay else {
        return Outcome(
          outcome: "rejected", reason: "unsupported",
          detail: "no meter is read (no bus.N with meter.file or an archive), so relays cannot be operated")
      }
      return try relay.command(
        open: command.type == .disconnect, body: command.body, digest: digest, counter: command.counter,
        wall: wall)
    }
    let run: (() throws(Archive.Refusal) -> String)?
    switch command.type.name {
    case "archive":
      run = { () throws(Archive.Refusal) -> String in
        try Archive.apply(body: command.body, db: self.store.db, now: wall, offset: self.offset)
      }
    case "tariff":
      run = { () throws(Archive.Refusal) -> String in
        try Tariffs.apply(body: command.body, db: self.store.db, now: wall)
      }
    case "topup":
      run = { () throws(Archive.Refusal) -> String in
        try Ledger.topUp(
          body: command.body, store: self.store, outbox: self.outbox, hoardingLimit: self.hoardingLimit,
          command: digest, now: wall, thresholds: self.thresholds)
      }
    case "config":
      run = { () throws(Archive.Refusal) -> String in
        try Credit.apply(
          body: command.body, store: self.store, outbox: self.outbox, offset: self.offset, now: wall,
          command: digest)
      }
    case "keep-power":
      run = { () throws(Archive.Refusal) -> String in
        try KeepPower.apply(body: command.body, db: self.store.db)
      }
    case "planned-outage":
      run = { () throws(Archive.Refusal) -> String in
        try PlannedOutages.apply(body: command.body, db: self.store.db, now: wall)
      }
    case "workorder":
      run = { () throws(Archive.Refusal) -> String in
        try WorkOrders.apply(body: command.body, store: self.store, outbox: self.outbox, now: wall)
      }
    default:
      run = nil
    }
    guard let run else {
      return Outcome(
        outcome: "rejected", reason: "unsupported",
        detail: "command type " + command.type.name + " is not supported by this version")
    }
    try store.db.execute("SAVEPOINT command_effect")
    var summary = ""
    var refusal: Archive.Refusal? = nil
    do throws(Archive.Refusal) {
      summary = try run()
    } catch {
      refusal = error
    }
    guard let refusal else {
      try store.db.execute("RELEASE command_effect")
      return Outcome(outcome: "applied", reason: "", detail: summary)
    }
    try store.db.execute("ROLLBACK TO command_effect")
    try store.db.execute("RELEASE command_effect")
    return Outcome(
      outcome: refusal.code == "internal-error" ? "failed" : "rejected", reason: refusal.code,
      detail: refusal.description)
  }

  private func enqueueEvent(_ body: String, wall: Int64) throws(SQLiteError) {
    let id = try outbox.newRecordID("event")
    try outbox.enqueue(
      .events, record: "{\"id\":\"" + id + "\",\"ts\":" + String(wall) + "," + String(body.dropFirst()),
      retention: .billing, now: wall)
  }
}

private func optional(_ text: String?) -> SQLiteValue {
  guard let text else { return .null }
  return .text(text)
}

private func optional(_ value: Int64?) -> SQLiteValue {
  guard let value else { return .null }
  return .integer(value)
}

private func roundingDownDivision(_ a: Int64, _ b: Int64) -> Int64 {
  let q = a / b
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

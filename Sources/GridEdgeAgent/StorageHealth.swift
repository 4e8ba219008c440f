import Runtime
import SQLiteStore

/// The health of the disk under the agent's database, kept in memory (issue 8).
///
/// A disk that fails for good cannot say so in the database itself: the status row
/// `gridedge status` reads would go stale as if all were well. So the database's
/// write observer (`Connection.writeObserver`) notes every write that failed with a
/// storage failure (`AgentStore.isStorageFailure`) here, and the next write that
/// succeeds clears it. The agent reports the changes: its log, the status file
/// (`store.status_file`, on another file system), its retained MQTT state, and a
/// `store.recovered` event once the database takes writes again.
final class StorageHealth {
  /// A spell of failing writes.
  struct Failing: Equatable {
    /// Wall time of the first failed write (ms).
    var since: Int64
    /// What SQLite said about the last failed write (`disk I/O error`).
    var error: String
    /// What the agent was doing then (`storing readings`).
    var step: String
    /// Failed writes in this spell.
    var failures: Int64
    /// Wall time of the last failed write (ms).
    var lastAt: Int64
  }

  /// A change of state, in the order it happened.
  enum Change: Equatable {
    case failing(Failing)
    /// The spell ended at the given wall time with a write that succeeded.
    case recovered(Failing, at: Int64)
  }

  /// The current spell; nil while writes succeed.
  private(set) var failing: Failing? = nil
  /// When the last spell ended (wall ms); nil when none ended in this process.
  private(set) var recoveredAt: Int64? = nil
  /// What the agent is doing, named when a write fails during it (set by `during`).
  private(set) var step = "starting"
  private var changes: [Change] = []
  /// The spell's failure count went up since the last `takeChanges`.
  private var counted = false

  /// Notes a write's outcome (the database's write observer).
  /// - Parameters:
  ///   - error: nil when the write succeeded; an error that is no storage failure
  ///     (a constraint, a busy database) changes nothing.
  ///   - now: wall time (ms).
  func observe(_ error: SQLiteError?, now: Int64) {
    guard let error else {
      guard let spell = failing else { return }
      failing = nil
      recoveredAt = now
      changes.append(.recovered(spell, at: now))
      return
    }
    guard AgentStore.isStorageFailure(error) else { return }
    guard var spell = failing else {
      let spell = Failing(since: now, error: error.message, step: step, failures: 1, lastAt: now)
      failing = spell
      changes.append(.failing(spell))
      return
    }
    spell.error = error.message
    spell.step = step
    spell.failures += 1
    spell.lastAt = now
    failing = spell
    counted = true
  }

  /// Runs `body` with `step` named as what the agent is doing; the step before is
  /// restored afterwards.
  func during<R, E: Error>(_ step: String, _ body: () throws(E) -> R) throws(E) -> R {
    let outer = enter(step)
    defer { leave(outer) }
    return try body()
  }

  /// Names `step` as what the agent is doing until `leave` with what this returns.
  func enter(_ step: String) -> String {
    defer { self.step = step }
    return self.step
  }

  /// Ends a step begun with `enter`: `outer` is what it returned.
  func leave(_ outer: String) {
    step = outer
  }

  /// The changes of state since the last call, and whether only the failure count
  /// went up (`counted`).
  func takeChanges() -> (changes: [Change], counted: Bool) {
    defer {
      changes.removeAll()
      counted = false
    }
    return (changes, counted)
  }

  /// The status file's text: the boot that wrote it and the storage state, as
  /// `gridedge status --json` shows it (`storage`).
  /// - Parameters:
  ///   - device, store, epoch, pid: who wrote it (status trusts only the running
  ///     boot's file).
  ///   - now: wall time (ms).
  func statusFileText(device: String, store: String, epoch: Int64, pid: Int32, now: Int64) -> String {
    "{\"dev\":" + jsonString(device) + ",\"store\":" + jsonString(store) + ",\"epoch\":" + String(epoch)
      + ",\"pid\":" + String(pid) + ",\"ts\":" + String(now) + ",\"storage\":" + stateJSON + "}\n"
  }

  /// `{"state":"failing","since":ms,"error":E,"step":S,"failures":N,"last_failure_at":ms}`,
  /// or `{"state":"ok"}` (with `recovered_at` after a spell).
  var stateJSON: String {
    guard let spell = failing else {
      return "{\"state\":\"ok\"" + (recoveredAt.map { ",\"recovered_at\":" + String($0) } ?? "") + "}"
    }
    return "{\"state\":\"failing\",\"since\":" + String(spell.since) + ",\"error\":" + jsonString(spell.error)
      + ",\"step\":" + jsonString(spell.step) + ",\"failures\":" + String(spell.failures)
      + ",\"last_failure_at\":" + String(spell.lastAt) + "}"
  }

  /// The `store.recovered` event of a spell that ended at `at`.
  static func recoveredEvent(_ spell: Failing, at: Int64) -> String {
    "{\"type\":\"store.recovered\",\"since\":" + String(spell.since) + ",\"seconds\":"
      + String((at - spell.since) / 1000) + ",\"failures\":" + String(spell.failures) + ",\"error\":"
      + jsonString(spell.error) + ",\"step\":" + jsonString(spell.step) + "}"
  }
}

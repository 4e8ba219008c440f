import GridEdgeContract
import GridEdgeCore
import Runtime
import SQLiteStore

/// The daily energy-balance summary sent to HQ (DESIGN.md §6): once a local day has
/// ended and its closing freezes are in, the agent computes the balance of every area
/// in the topology of that day (`Topology`) and enqueues, in one transaction that also
/// records the day as summarised:
///
/// - one `balance.daily` event per area: what `gridedge balance --json` shows (supplied,
///   sold, loss, rate or why it is withheld, completeness, missing meters, flags), with
///   the `balance.top_suspects` highest-ranked suspects and `suspects_total`; an area the
///   archive does not describe well enough (no or several area meters) gets an `error`
///   instead;
/// - one `workorder.proposed` event per suspect among those whose score reaches
///   `balance.workorder_score`: an inspection proposed to HQ with the meter, customer,
///   credit grade, rank, score and evidence.
///
/// A day is summarised as soon as the share of meters with the day's energy (both
/// freezes) reaches `balance.summary_completeness` in every area (default: all of
/// them), or else once `balance.summary_deadline` minutes of the next local day have
/// passed (then with what is there: the rate is withheld below
/// `balance.min_completeness` and the missing meters are listed). Each day is
/// summarised once: the last summarised day is kept in `balance_state` (migration 9),
/// and the records' ids are natural keys (`<store>-balance-<area>-<day>`,
/// `<store>-workorder-<area>-<day>-<meter>`), so HQ deduplicates them even if a day
/// were ever sent again. Every suspect of the day is kept in `balance_suspects`, so
/// later days rank a repeated suspect higher (`balance.repeat_weight`). After a pause
/// the agent catches up on at most
/// `balance.history_days` days; before the first summary it starts with yesterday.
public enum DailyBalance {
  /// The thresholds and limits, from the `balance.*` keys.
  public struct Settings: Sendable {
    public var thresholds = BalanceThresholds()
    public var historyDays = 7
    /// Minutes after local midnight by which yesterday is summarised however incomplete.
    public var deadlineMinutes: Int64 = 360
    /// The completeness (basis points, every area) at which yesterday is summarised
    /// at once.
    public var summaryCompletenessBasisPoints: Int64 = 10_000
    /// Suspects at or above this score are proposed as inspection work orders.
    public var workOrderScore: Int64 = 2_000
    /// The most suspects in a summary (and so the most work orders per area and day).
    public var topSuspects = 5

    public init() {}

    /// The settings of `config`.
    public init(config: Config) {
      thresholds.minimumCompletenessBasisPoints = config.integer("balance.min_completeness")
      thresholds.highLossBasisPoints = config.integer("balance.high_loss")
      thresholds.suddenDropBasisPoints = config.integer("balance.sudden_drop")
      thresholds.maximumClockDriftSeconds = config.integer("acquisition.clock_threshold")
      thresholds.missedReadsBasisPoints = config.integer("balance.missed_reads")
      thresholds.gradeWeight = config.integer("balance.grade_weight")
      thresholds.repeatWeight = config.integer("balance.repeat_weight")
      historyDays = Int(config.integer("balance.history_days"))
      deadlineMinutes = config.integer("balance.summary_deadline")
      summaryCompletenessBasisPoints = config.integer("balance.summary_completeness")
      workOrderScore = config.integer("balance.workorder_score")
      topSuspects = Int(config.integer("balance.top_suspects"))
    }
  }

  /// What one call did.
  public struct Outcome: Equatable, Sendable {
    /// The days summarised, oldest first.
    public var days: [CivilDate] = []
    /// `balance.daily` records enqueued.
    public var summaries = 0
    /// `workorder.proposed` records enqueued.
    public var workOrders = 0
    /// The day summarised only when its deadline passes (not complete yet), if any.
    public var waitingFor: CivilDate? = nil
  }

  /// Summarises every finished day not summarised yet whose data is complete or whose
  /// deadline has passed. Cheap to call often: it returns at once when yesterday is
  /// summarised.
  /// - Parameters:
  ///   - now: wall time in ms (the local day is taken with `offset`).
  /// - Throws: `SQLiteError`; nothing is recorded for a day unless all of it is.
  public static func run(
    store: AgentStore, outbox: Outbox, offset: UTCOffset, now: Int64, settings: Settings
  ) throws(SQLiteError) -> Outcome {
    var outcome = Outcome()
    let db = store.db
    let seconds = now >= 0 ? now / 1000 : (now - 999) / 1000
    let local = offset.localDateTime(fromUnix: seconds)
    let yesterday = local.date.daysSinceEpoch - 1
    let last = try db.query("SELECT last_day FROM balance_state WHERE singleton = 1").first?.int64(0)
    var day = max(last.map { $0 + 1 } ?? yesterday, yesterday - Int64(max(settings.historyDays, 1)) + 1)
    guard day <= yesterday else { return outcome }
    guard try db.scalarInt("SELECT count(*) FROM archive_meters") ?? 0 > 0 else { return outcome }
    while day <= yesterday {
      let date = CivilDate(daysSinceEpoch: day)
      // The areas of the topology in force that day.
      let areas = try Topology.areas(db, day: day)
      var results: [(area: String, result: Swift.Result<Balance.Result, Balance.Failure>)] = []
      var complete = true
      for area in areas {
        do throws(Balance.Failure) {
          let result = try Balance.compute(
            db: db, area: area, day: date, offset: offset, historyDays: settings.historyDays,
            thresholds: settings.thresholds)
          if result.balance.completenessBasisPoints < settings.summaryCompletenessBasisPoints {
            complete = false
          }
          results.append((area, .success(result)))
        } catch {
          if let databaseError = error.databaseError { throw databaseError }
          results.append((area, .failure(error)))
        }
      }
      let deadline =
        (offset.unixSeconds(startOf: date.adding(days: 1)) + settings.deadlineMinutes * 60) * 1000
      guard complete || now >= deadline else {
        outcome.waitingFor = date
        break
      }
      let records = try self.records(results, day: date, store: store, now: now, settings: settings)
      try db.transaction(.full) { () throws(SQLiteError) in
        for record in records.summaries {
          try outbox.enqueue(.events, record: record, retention: .billing, now: now)
        }
        for record in records.workOrders {
          try outbox.enqueue(.events, record: record, retention: .billing, now: now)
        }
        for (area, result) in results {
          guard case .success(let balance) = result else { continue }
          for suspect in balance.balance.suspects {
            var rules = ""
            for anomaly in suspect.anomalies { rules += (rules.isEmpty ? "" : ",") + anomaly.rule.code }
            try db.run(
              "INSERT OR REPLACE INTO balance_suspects (area, day, meter, score, rules) VALUES (?1, ?2, ?3, ?4, ?5)",
              [.text(area), .integer(day), .text(suspect.meter), .integer(suspect.score), .text(rules)])
          }
        }
        try db.run(
          "UPDATE balance_state SET last_day = ?1, summarised_at = ?2 WHERE singleton = 1",
          [.integer(day), .integer(now)])
      }
      outcome.days.append(date)
      outcome.summaries += records.summaries.count
      outcome.workOrders += records.workOrders.count
      day += 1
    }
    return outcome
  }

  /// The day's `balance.daily` and `workorder.proposed` records.
  static func records(
    _ results: [(area: String, result: Swift.Result<Balance.Result, Balance.Failure>)], day: CivilDate,
    store: AgentStore, now: Int64, settings: Settings
  ) throws(SQLiteError) -> (summaries: [String], workOrders: [String]) {
    var summaries: [String] = []
    var workOrders: [String] = []
    let quoted = BalanceReport.quoted
    for (area, result) in results {
      let head =
        "{\"id\":" + quoted(store.storeID + "-balance-" + area + "-" + day.isoText) + ",\"ts\":"
        + String(now) + ",\"type\":\"balance.daily\""
      switch result {
      case .failure(let failure):
        summaries.append(
          head + ",\"area\":" + quoted(area) + ",\"day\":" + quoted(day.isoText) + ",\"error\":"
            + quoted(failure.description) + "}")
      case .success(let balance):
        let body = BalanceReport.jsonText(balance, suspectLimit: settings.topSuspects)
        summaries.append(head + "," + String(body.dropFirst()))
        for (rank, suspect) in balance.balance.suspects.prefix(settings.topSuspects).enumerated()
        where suspect.score >= settings.workOrderScore {
          let grade =
            try store.db.query(
              "SELECT grade FROM archive_meters WHERE address = ?1", [.text(suspect.meter)]
            ).first?.text(0) ?? ""
          var evidence = ""
          for anomaly in suspect.anomalies {
            evidence +=
              (evidence.isEmpty ? "" : ",") + "{\"rule\":" + quoted(anomaly.rule.code) + ",\"detail\":"
              + quoted(anomaly.description) + "}"
          }
          workOrders.append(
            "{\"id\":"
              + quoted(store.storeID + "-workorder-" + area + "-" + day.isoText + "-" + suspect.meter)
              + ",\"ts\":" + String(now) + ",\"type\":\"workorder.proposed\",\"kind\":\"inspection\""
              + ",\"area\":" + quoted(area) + ",\"day\":" + quoted(day.isoText) + ",\"meter\":"
              + quoted(suspect.meter) + ",\"customer\":" + quoted(suspect.customer) + ",\"grade\":"
              + quoted(grade) + ",\"rank\":" + String(rank + 1) + ",\"score\":" + String(suspect.score)
              + ",\"explained_bp\":" + String(suspect.explainedBasisPoints) + ",\"drop_wh\":"
              + String(suspect.drop.wattHours) + ",\"loss_wh\":"
              + (balance.balance.loss.map { String($0.wattHours) } ?? "null") + ",\"evidence\":["
              + evidence + "]}")
        }
      }
    }
    return (summaries, workOrders)
  }
}

import Runtime
import SQLiteStore

/// `gridedge status`: what the agent on this device is doing, read from its database
/// (the running agent keeps a status row up to date) and, since a failing database
/// disk cannot say so in the database, from `store.status_file` (`storage`), for an
/// engineer on site or, with `--json`, for scripts.
public enum StatusReport {
  /// Prints the status of the agent configured by `config`.
  /// - Returns: the exit code: 0 when the database could be read.
  public static func run(config: Config, json: Bool) -> Int32 {
    let path = config.string("store.path") ?? ""
    guard Files.exists(path) else {
      Log.error(
        "status", "no database at " + path + " (store.path in " + config.file + "): the agent has not run yet"
      )
      return ExitCode.failure
    }
    var options = Connection.Options()
    options.readOnly = true
    options.verifyIntegrity = false
    do {
      let db = try Connection(path: path, options: options)
      let rows = try db.query(
        """
        SELECT d.device_id, d.store_id, s.epoch, s.pid, s.phase, s.link, s.broker, s.detail,
          s.updated_at, (SELECT count(*) FROM boots),
          (SELECT stop_reason FROM boots ORDER BY epoch DESC LIMIT 1), (SELECT max(epoch) FROM boots)
        FROM device d LEFT JOIN agent_status s ON s.singleton = 1
        """)
      guard let row = rows.first else {
        Log.error("status", "database " + path + " has no device identity yet")
        return ExitCode.failure
      }
      let pid = Int32(truncatingIfNeeded: row.int64(3) ?? 0)
      let phase = row.text(4) ?? "never started"
      let storage = try Self.storage(
        config: config, db: db, store: row.text(1) ?? "", epoch: row.int64(11) ?? 0)
      // A failing disk may have kept the agent from storing its status row.
      let alive = (phase != "stopped" && Process.isAlive(pid)) || storage.line != nil
      let state: String
      if alive {
        state = phase == "stopped" ? "running" : phase
      } else if phase == "stopped" {
        state = "stopped"
      } else if row.int64(2) == nil {
        state = "never started"
      } else {
        state = "not running (ended without a clean stop)"
      }
      // The outbox tables exist once an agent of version 0.2 or later has run.
      let sync = try? db.query(
        """
        SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM batches),
          (SELECT last_seq FROM sync_state), (SELECT coalesce(sum(evicted), 0) FROM outbox_evictions),
          ((SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count()))
            * (SELECT page_size FROM pragma_page_size())
        """
      ).first
      let pending = sync?.int64(0) ?? 0
      let unacked = sync?.int64(1) ?? 0
      let lastSeq = sync?.int64(2) ?? 0
      let evicted = sync?.int64(3) ?? 0
      let used = sync?.int64(4) ?? 0
      // The meter reading's last cycle (tables of migration 4, version 0.3 on).
      let cycle = try? db.query(
        "SELECT slot, finished_at, meters, answered, missing, errors, stored FROM acquisition_cycles ORDER BY id DESC LIMIT 1"
      ).first
      // HQ's meter archive (migration 5): its version and size.
      let archive = try? db.query(
        "SELECT (SELECT version FROM archive_state WHERE singleton = 1), (SELECT count(*) FROM archive_meters)"
      ).first
      let archiveVersion = archive?.int64(0) ?? 0
      let archiveMeters = archive?.int64(1) ?? 0
      let meterSource = config.string("meter.file").map { "meter.file " + $0 } ?? "archive"
      // Relay control (migration 10): meters cut, operations pending or failed.
      let relays = try? db.query(
        """
        SELECT count(*) FILTER (WHERE desired = 'open' AND state = 'done'),
          count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'failed'),
          (SELECT group_concat(meter, ', ') FROM (SELECT meter FROM relay WHERE state = 'failed' ORDER BY meter LIMIT 5))
        FROM relay
        """
      ).first
      var relayJSON = "null"
      if let relays {
        relayJSON =
          "{\"open\":" + String(relays.int64(0) ?? 0) + ",\"pending\":" + String(relays.int64(1) ?? 0)
          + ",\"failed\":" + String(relays.int64(2) ?? 0) + "}"
      }
      // Areas without supply now (migration 16): the open outages, oldest first.
      let open =
        (try? db.query(
          """
          SELECT area, phases, causes, started_at, customers, planned FROM outages
          WHERE ended_at IS NULL ORDER BY started_at, area
          """)) ?? []
      let outagesJSON =
        (try? db.query(
          """
          SELECT json_group_array(json_object('area', area, 'phases', phases, 'causes', json('["' || replace(causes, ',', '","') || '"]'),
            'start', started_at, 'customers', customers, 'planned', planned))
          FROM (SELECT * FROM outages WHERE ended_at IS NULL ORDER BY started_at, area)
          """
        ).first?.text(0)) ?? "null"
      var cycleJSON = "null"
      if let cycle {
        let names = ["slot", "finished_at", "meters", "answered", "missing", "errors", "stored"]
        cycleJSON = "{"
        for (i, name) in names.enumerated() {
          cycleJSON += (i == 0 ? "\"" : ",\"") + name + "\":" + String(cycle.int64(i) ?? 0)
        }
        cycleJSON += "}"
      }
      if json {
        let out = try db.query(
          """
          SELECT json_object('device', ?1, 'store', ?2, 'profile', ?3, 'state', ?4, 'running', json(?5),
            'epoch', ?6, 'pid', ?7, 'link', ?8, 'broker', ?9, 'detail', ?10, 'updated_at', ?11,
            'boots', ?12, 'last_stop', ?13, 'database', ?14,
            'outbox', json_object('pending_records', ?15, 'unacked_batches', ?16, 'last_seq', ?17,
              'evicted_records', ?18, 'used_bytes', ?19, 'cap_bytes', ?20), 'last_cycle', json(?21),
            'relays', json(?22),
            'archive', json_object('version', ?23, 'meters', ?24, 'polled_from', ?25), 'storage', json(?26),
            'outages', json(?27))
          """,
          [
            row[0], row[1], .text(config.string("device.profile") ?? ""), .text(state),
            .text(alive ? "true" : "false"), row[2], row[3], row[5], row[6], row[7], row[8], row[9],
            row[10], .text(path), .integer(pending), .integer(unacked), .integer(lastSeq),
            .integer(evicted), .integer(used), .integer(config.integer("store.max_bytes")), .text(cycleJSON),
            .text(relayJSON), .integer(archiveVersion), .integer(archiveMeters), .text(meterSource),
            .text(storage.json), .text(outagesJSON),
          ])
        Console.writeLine(out.first?.text(0) ?? "{}")
        return ExitCode.ok
      }
      var lines: [(String, String)] = [
        ("device", row.text(0) ?? ""),
        ("store", row.text(1) ?? ""),
        ("profile", config.string("device.profile") ?? ""),
        ("agent", state + (alive ? " (pid " + String(pid) + ")" : "")),
      ]
      if alive { lines.append(("storage", storage.line ?? storage.unknown)) }
      if let epoch = row.int64(2) {
        lines.append(("epoch", String(epoch) + " of " + String(row.int64(9) ?? 0) + " boots"))
        lines.append(("link", (row.text(5) ?? "") + " (" + (row.text(6) ?? "") + ")"))
        lines.append(("detail", row.text(7) ?? ""))
        lines.append(("updated", formatUTC(milliseconds: row.int64(8) ?? 0)))
      }
      lines.append(
        (
          "outbox",
          String(pending) + " record(s) pending, " + String(unacked)
            + " batch(es) awaiting HQ's ack, last seq "
            + String(lastSeq) + (evicted > 0 ? ", " + String(evicted) + " telemetry record(s) evicted" : "")
        ))
      if let cycle {
        let missing = cycle.int64(4) ?? 0
        lines.append(
          (
            "meters",
            "last cycle " + formatUTC(milliseconds: cycle.int64(0) ?? 0) + ": "
              + String(cycle.int64(3) ?? 0) + " of " + String(cycle.int64(2) ?? 0) + " answered, "
              + String(missing) + " missing, " + String(cycle.int64(5) ?? 0) + " error(s), "
              + String(cycle.int64(6) ?? 0) + " reading(s) stored"
          ))
      } else if config.string("meter.file") != nil {
        lines.append(("meters", "no acquisition cycle finished yet"))
      }
      lines.append(
        (
          "archive",
          "version " + String(archiveVersion) + ", " + String(archiveMeters) + " meter(s); meters read from "
            + meterSource
        ))
      if let relays, (relays.int64(0) ?? 0) + (relays.int64(1) ?? 0) + (relays.int64(2) ?? 0) > 0 {
        let failed = relays.int64(2) ?? 0
        lines.append(
          (
            "relays",
            String(relays.int64(0) ?? 0) + " meter(s) cut (verified open), " + String(relays.int64(1) ?? 0)
              + " operation(s) pending, " + String(failed) + " failed"
              + (failed > 0 ? " (" + (relays.text(3) ?? "") + (failed > 5 ? ", ..." : "") + ")" : "")
          ))
      }
      for row in open {
        lines.append(
          (
            "outage",
            (row.text(0) ?? "") + " without supply since " + formatUTC(milliseconds: row.int64(3) ?? 0)
              + " (" + (row.text(2) ?? "") + "; phases " + (row.text(1) ?? "") + ", "
              + String(row.int64(4) ?? 0)
              + " customer(s), "
              + (row.text(5).map { "planned " + $0 } ?? "unplanned") + "; gridedge outages)"
          ))
      }
      lines.append(
        (
          "database",
          path + " (" + String(used / 1024) + " KiB of " + String(config.integer("store.max_bytes") / 1024)
            + " KiB)"
        ))
      for (label, value) in lines {
        var padded = label
        while padded.utf8.count < 10 { padded += " " }
        Console.writeLine(padded + value)
      }
      return ExitCode.ok
    } catch {
      Log.error("status", "database " + path + ": " + error.description)
      return ExitCode.database
    }
  }

  /// The storage state the running agent wrote to `store.status_file` (its database
  /// cannot say that its disk fails).
  /// - Parameters:
  ///   - store, epoch: the database's store id and its latest boot: a file of another
  ///     database or boot, or of a process that is gone, is not used.
  /// - Returns: `json` for `--json` (`state` `ok`, `failing` or `unknown`); `line`
  ///   for the text output when the file is the running agent's, else `unknown`.
  static func storage(config: Config, db: Connection, store: String, epoch: Int64) throws(SQLiteError) -> (
    json: String, line: String?, unknown: String
  ) {
    guard let file = config.string("store.status_file") else {
      return ("{\"state\":\"unknown\",\"file\":null}", nil, "unknown (store.status_file is not set)")
    }
    let unknown = "unknown (" + file + " is not the running agent's)"
    let text = (try? Files.readText(file)) ?? ""
    let now = SystemClock().wallMilliseconds
    guard
      let row = try db.query(
        """
        SELECT json_extract(?1, '$.pid'), json_extract(?1, '$.storage.state'),
          json_extract(?1, '$.storage.since'), json_extract(?1, '$.storage.error'),
          json_extract(?1, '$.storage.step'), json_extract(?1, '$.storage.failures'),
          json_extract(?1, '$.storage.recovered_at'),
          json_patch(json_extract(?1, '$.storage'), json_object('file', ?4,
            'seconds', (?5 - json_extract(?1, '$.storage.since')) / 1000))
        FROM (SELECT 1) WHERE json_valid(?1) AND json_extract(?1, '$.store') = ?2
          AND json_extract(?1, '$.epoch') = ?3 AND json_type(?1, '$.storage') = 'object'
        """, [.text(text), .text(store), .integer(epoch), .text(file), .integer(now)]
      ).first, Process.isAlive(Int32(truncatingIfNeeded: row.int64(0) ?? 0))
    else {
      return ("{\"state\":\"unknown\",\"file\":" + jsonString(file) + "}", nil, unknown)
    }
    let json = row.text(7) ?? "{}"
    guard row.text(1) == "failing", let since = row.int64(2) else {
      let recovered = row.int64(6).map { " (recovered " + formatUTC(milliseconds: $0) + ")" } ?? ""
      return (json, "ok" + recovered, unknown)
    }
    return (
      json,
      "FAILING since " + formatUTC(milliseconds: since) + " (" + String((now - since) / 1000) + " s): "
        + (row.text(3) ?? "") + " while " + (row.text(4) ?? "") + "; " + String(row.int64(5) ?? 0)
        + (row.int64(5) == 1 ? " failure" : " failures"),
      unknown
    )
  }
}

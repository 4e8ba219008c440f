import Runtime
import SQLiteStore

/// The agent's database: schema, identity (device and store id), boots and the
/// status row that `gridedge status` reads.
public final class AgentStore {
  public let db: Connection
  /// The random 64-bit id of this database, as 16 hex digits (DESIGN.md §5).
  public let storeID: String
  /// True when this open made the database (a first start, or one after a quarantine).
  public private(set) var created = false
  public let deviceID: String

  /// The agent's migrations: numbered, append-only; never edit one that has shipped.
  public static let migrations: [Migration] = [
    Migration(
      id: 1, name: "identity, boots and status",
      sql: """
        CREATE TABLE device (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          device_id TEXT NOT NULL,
          store_id TEXT NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE boots (
          epoch INTEGER PRIMARY KEY,
          started_at INTEGER NOT NULL,
          pid INTEGER NOT NULL,
          version TEXT NOT NULL,
          stopped_at INTEGER,
          stop_reason TEXT
        ) STRICT;
        CREATE TABLE agent_status (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          epoch INTEGER NOT NULL,
          pid INTEGER NOT NULL,
          phase TEXT NOT NULL,
          link TEXT NOT NULL,
          broker TEXT NOT NULL,
          detail TEXT NOT NULL,
          updated_at INTEGER NOT NULL
        ) STRICT;
        """),
    Migration(
      id: 2, name: "outbox and batches",
      sql: """
        CREATE TABLE outbox (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          class TEXT NOT NULL,
          billing INTEGER NOT NULL CHECK (billing IN (0, 1)),
          record TEXT NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX outbox_by_class ON outbox (class, id);
        CREATE INDEX outbox_telemetry ON outbox (id) WHERE billing = 0;
        CREATE TABLE batches (
          seq INTEGER PRIMARY KEY,
          class TEXT NOT NULL,
          payload BLOB NOT NULL,
          records INTEGER NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE sync_state (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          last_seq INTEGER NOT NULL,
          last_record INTEGER NOT NULL
        ) STRICT;
        INSERT INTO sync_state (singleton, last_seq, last_record) VALUES (1, 0, 0);
        CREATE TABLE outbox_evictions (
          class TEXT PRIMARY KEY,
          evicted INTEGER NOT NULL,
          reported INTEGER NOT NULL,
          last_at INTEGER
        ) STRICT;
        """),
    Migration(
      id: 3, name: "signed commands",
      sql: """
        CREATE TABLE command_state (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          last_counter TEXT NOT NULL,
          failure_day INTEGER,
          failures INTEGER NOT NULL,
          suspended_day INTEGER
        ) STRICT;
        INSERT INTO command_state (singleton, last_counter, failures) VALUES (1, '0', 0);
        CREATE TABLE commands (
          id INTEGER PRIMARY KEY,
          received_at INTEGER NOT NULL,
          digest TEXT NOT NULL,
          kid TEXT,
          counter TEXT,
          type TEXT,
          outcome TEXT NOT NULL,
          reason TEXT,
          detail TEXT NOT NULL
        ) STRICT;
        CREATE INDEX commands_by_digest ON commands (digest);
        """),
    Migration(
      id: 4, name: "readings",
      sql: """
        CREATE TABLE readings (
          ts INTEGER NOT NULL,
          meter TEXT NOT NULL,
          di TEXT NOT NULL,
          value INTEGER NOT NULL,
          tariffs TEXT,
          quality TEXT NOT NULL CHECK (quality IN ('measured', 'backfilled', 'clock-suspect')),
          read_at INTEGER NOT NULL,
          PRIMARY KEY (ts, meter, di)
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE meter_state (
          meter TEXT PRIMARY KEY,
          freeze_scanned_day INTEGER,
          clock_checked_at INTEGER,
          clock_drift INTEGER,
          time_set_day INTEGER,
          last_answer_at INTEGER,
          silent_since INTEGER,
          corrupt_frames INTEGER NOT NULL DEFAULT 0,
          wrong_address INTEGER NOT NULL DEFAULT 0,
          error_replies INTEGER NOT NULL DEFAULT 0,
          no_answer INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        CREATE TABLE acquisition_cycles (
          id INTEGER PRIMARY KEY,
          slot INTEGER NOT NULL,
          started_at INTEGER NOT NULL,
          finished_at INTEGER,
          meters INTEGER NOT NULL,
          answered INTEGER NOT NULL,
          missing INTEGER NOT NULL,
          errors INTEGER NOT NULL,
          stored INTEGER NOT NULL
        ) STRICT;
        """),
    Migration(
      id: 5, name: "meter archive, prepaid accounts, ledger and audit chain",
      sql: """
        CREATE TABLE archive_state (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          version INTEGER NOT NULL,
          updated_at INTEGER
        ) STRICT;
        INSERT INTO archive_state (singleton, version) VALUES (1, 0);
        CREATE TABLE archive_meters (
          address TEXT PRIMARY KEY,
          customer TEXT NOT NULL,
          area TEXT NOT NULL,
          phase TEXT NOT NULL,
          ct_ratio INTEGER NOT NULL,
          category TEXT NOT NULL,
          grade TEXT NOT NULL,
          keep_power INTEGER NOT NULL,
          outage_sensitive INTEGER NOT NULL,
          bus TEXT NOT NULL,
          baud INTEGER NOT NULL,
          area_meter INTEGER NOT NULL,
          updated_at INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE accounts (
          customer TEXT PRIMARY KEY,
          balance_fen INTEGER NOT NULL,
          last_purchase INTEGER NOT NULL,
          opened_at INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE ledger (
          id INTEGER PRIMARY KEY,
          customer TEXT NOT NULL,
          ts INTEGER NOT NULL,
          kind TEXT NOT NULL,
          amount_fen INTEGER NOT NULL,
          balance_fen INTEGER NOT NULL,
          ref TEXT NOT NULL,
          detail TEXT NOT NULL
        ) STRICT;
        CREATE INDEX ledger_by_customer ON ledger (customer, id);
        CREATE TABLE audit (
          id INTEGER PRIMARY KEY,
          ts INTEGER NOT NULL,
          kind TEXT NOT NULL,
          body TEXT NOT NULL,
          prev TEXT NOT NULL,
          hash TEXT NOT NULL
        ) STRICT;
        """),
    Migration(
      id: 6, name: "seq reservation",
      sql: """
        ALTER TABLE sync_state ADD COLUMN reserved_until INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sync_state ADD COLUMN boot_id TEXT;
        UPDATE sync_state SET reserved_until = last_seq;
        """),
    Migration(
      id: 7, name: "tariffs and billing",
      sql: """
        CREATE TABLE tariffs (
          id TEXT PRIMARY KEY,
          category TEXT NOT NULL,
          effective_from TEXT NOT NULL,
          body TEXT NOT NULL,
          installed_at INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE meter_billing (
          meter TEXT PRIMARY KEY,
          last_ts INTEGER NOT NULL,
          last_wh INTEGER NOT NULL,
          last_registers TEXT
        ) STRICT;
        CREATE TABLE billing_state (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          cursor_ts INTEGER NOT NULL
        ) STRICT;
        INSERT INTO billing_state (singleton, cursor_ts) VALUES (1, 0);
        ALTER TABLE accounts ADD COLUMN tier_cycle_start INTEGER;
        ALTER TABLE accounts ADD COLUMN tier_energy_wh INTEGER NOT NULL DEFAULT 0;
        """),
    Migration(
      id: 8, name: "one outbox table per class; batches as id ranges",
      sql: """
        CREATE TABLE outbox_results (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          billing INTEGER NOT NULL CHECK (billing IN (0, 1)),
          record TEXT NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        INSERT INTO outbox_results (id, billing, record, created_at)
          SELECT id, billing, record, created_at FROM outbox WHERE class = 'results' ORDER BY id;
        CREATE TABLE outbox_events (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          billing INTEGER NOT NULL CHECK (billing IN (0, 1)),
          record TEXT NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        INSERT INTO outbox_events (id, billing, record, created_at)
          SELECT id, billing, record, created_at FROM outbox WHERE class = 'events' ORDER BY id;
        CREATE TABLE outbox_ledger (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          billing INTEGER NOT NULL CHECK (billing IN (0, 1)),
          record TEXT NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        INSERT INTO outbox_ledger (id, billing, record, created_at)
          SELECT id, billing, record, created_at FROM outbox WHERE class = 'ledger' ORDER BY id;
        CREATE TABLE outbox_records (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          billing INTEGER NOT NULL CHECK (billing IN (0, 1)),
          record TEXT NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        INSERT INTO outbox_records (id, billing, record, created_at)
          SELECT id, billing, record, created_at FROM outbox WHERE class = 'records' ORDER BY id;
        CREATE TABLE outbox_readings (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          billing INTEGER NOT NULL CHECK (billing IN (0, 1)),
          record TEXT NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        INSERT INTO outbox_readings (id, billing, record, created_at)
          SELECT id, billing, record, created_at FROM outbox WHERE class = 'readings' ORDER BY id;
        CREATE TABLE outbox_attachments (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          billing INTEGER NOT NULL CHECK (billing IN (0, 1)),
          record TEXT NOT NULL,
          created_at INTEGER NOT NULL
        ) STRICT;
        INSERT INTO outbox_attachments (id, billing, record, created_at)
          SELECT id, billing, record, created_at FROM outbox WHERE class = 'attachments' ORDER BY id;
        DROP TABLE outbox;
        CREATE VIEW outbox (id, class, billing, record, created_at) AS
          SELECT id, 'results', billing, record, created_at FROM outbox_results
          UNION ALL SELECT id, 'events', billing, record, created_at FROM outbox_events
          UNION ALL SELECT id, 'ledger', billing, record, created_at FROM outbox_ledger
          UNION ALL SELECT id, 'records', billing, record, created_at FROM outbox_records
          UNION ALL SELECT id, 'readings', billing, record, created_at FROM outbox_readings
          UNION ALL SELECT id, 'attachments', billing, record, created_at FROM outbox_attachments;
        ALTER TABLE batches ADD COLUMN first_id INTEGER;
        ALTER TABLE batches ADD COLUMN last_id INTEGER;
        """),
    Migration(
      id: 9, name: "daily balance summaries, suspects and the index of daily freezes",
      sql: """
        CREATE TABLE balance_state (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          last_day INTEGER,
          summarised_at INTEGER
        ) STRICT;
        INSERT INTO balance_state (singleton) VALUES (1);
        CREATE TABLE balance_suspects (
          area TEXT NOT NULL,
          day INTEGER NOT NULL,
          meter TEXT NOT NULL,
          score INTEGER NOT NULL,
          rules TEXT NOT NULL,
          PRIMARY KEY (area, day, meter)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX readings_daily_freezes ON readings (ts, meter, value) WHERE di = '05060101';
        """),
    Migration(
      id: 10, name: "relay control",
      sql: """
        CREATE TABLE relay (
          meter TEXT PRIMARY KEY,
          customer TEXT NOT NULL,
          desired TEXT NOT NULL CHECK (desired IN ('open', 'closed')),
          why TEXT NOT NULL,
          command TEXT,
          command_ctr TEXT,
          requested_at INTEGER NOT NULL,
          state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
          attempts INTEGER NOT NULL,
          next_attempt_at INTEGER NOT NULL,
          last_error TEXT,
          verified TEXT CHECK (verified IN ('open', 'closed')),
          verified_at INTEGER,
          verified_wh INTEGER,
          anomaly_at INTEGER
        ) STRICT;
        CREATE INDEX relay_pending ON relay (state) WHERE state = 'pending';
        CREATE TABLE relay_log (
          id INTEGER PRIMARY KEY,
          ts INTEGER NOT NULL,
          meter TEXT NOT NULL,
          customer TEXT NOT NULL,
          action TEXT NOT NULL,
          why TEXT NOT NULL,
          outcome TEXT NOT NULL,
          detail TEXT NOT NULL
        ) STRICT;
        CREATE INDEX relay_log_by_time ON relay_log (action, ts);
        CREATE TABLE arrears (
          customer TEXT PRIMARY KEY,
          beyond_since INTEGER NOT NULL,
          held_by TEXT,
          refused TEXT
        ) STRICT;
        """),
    Migration(
      id: 11, name: "work orders, findings, photos and corrections (handheld mode)",
      sql: """
        CREATE TABLE work_orders (
          id TEXT PRIMARY KEY,
          kind TEXT NOT NULL CHECK (kind IN ('inspection', 'anti-theft', 'meter-check', 'repair', 'reading')),
          priority INTEGER NOT NULL,
          grade TEXT,
          due INTEGER,
          customer TEXT NOT NULL,
          address TEXT NOT NULL,
          meter TEXT,
          last_wh INTEGER,
          last_at INTEGER,
          body TEXT NOT NULL,
          state TEXT NOT NULL
            CHECK (state IN ('open', 'accepted', 'arrived', 'completed', 'handed-back')),
          received_at INTEGER NOT NULL,
          accepted_at INTEGER,
          arrived_at INTEGER,
          confirmed_by TEXT,
          rating INTEGER CHECK (rating BETWEEN 1 AND 5),
          closed_at INTEGER,
          handback_reason TEXT,
          closing_record TEXT,
          cancelled_at INTEGER,
          cancel_reason TEXT
        ) STRICT;
        CREATE TABLE work_order_findings (
          order_id TEXT NOT NULL REFERENCES work_orders (id),
          item TEXT NOT NULL,
          value TEXT NOT NULL,
          recorded_at INTEGER NOT NULL,
          PRIMARY KEY (order_id, item)
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE work_order_photos (
          id TEXT PRIMARY KEY,
          order_id TEXT NOT NULL REFERENCES work_orders (id),
          sha256 TEXT NOT NULL,
          size INTEGER NOT NULL,
          chunks INTEGER NOT NULL,
          source TEXT NOT NULL,
          added_at INTEGER NOT NULL,
          UNIQUE (order_id, sha256)
        ) STRICT;
        CREATE TABLE work_order_corrections (
          id TEXT PRIMARY KEY,
          order_id TEXT NOT NULL REFERENCES work_orders (id),
          refers_to TEXT NOT NULL,
          item TEXT NOT NULL,
          value TEXT NOT NULL,
          note TEXT NOT NULL,
          recorded_at INTEGER NOT NULL
        ) STRICT;
        CREATE TRIGGER work_orders_closed_immutable BEFORE UPDATE ON work_orders
        WHEN OLD.state IN ('completed', 'handed-back') AND (NEW.state IS NOT OLD.state
          OR NEW.closed_at IS NOT OLD.closed_at OR NEW.confirmed_by IS NOT OLD.confirmed_by
          OR NEW.rating IS NOT OLD.rating OR NEW.arrived_at IS NOT OLD.arrived_at
          OR NEW.closing_record IS NOT OLD.closing_record OR NEW.body IS NOT OLD.body)
        BEGIN SELECT RAISE(ABORT, 'a closed work order is immutable'); END;
        CREATE TRIGGER work_order_findings_closed_insert BEFORE INSERT ON work_order_findings
        WHEN (SELECT state FROM work_orders WHERE id = NEW.order_id) IN ('completed', 'handed-back')
        BEGIN SELECT RAISE(ABORT, 'a closed work order is immutable'); END;
        CREATE TRIGGER work_order_findings_closed_update BEFORE UPDATE ON work_order_findings
        WHEN (SELECT state FROM work_orders WHERE id = OLD.order_id) IN ('completed', 'handed-back')
        BEGIN SELECT RAISE(ABORT, 'a closed work order is immutable'); END;
        CREATE TRIGGER work_order_findings_closed_delete BEFORE DELETE ON work_order_findings
        WHEN (SELECT state FROM work_orders WHERE id = OLD.order_id) IN ('completed', 'handed-back')
        BEGIN SELECT RAISE(ABORT, 'a closed work order is immutable'); END;
        CREATE TRIGGER work_order_photos_closed_insert BEFORE INSERT ON work_order_photos
        WHEN (SELECT state FROM work_orders WHERE id = NEW.order_id) IN ('completed', 'handed-back')
        BEGIN SELECT RAISE(ABORT, 'a closed work order is immutable'); END;
        CREATE TRIGGER work_order_photos_delete BEFORE DELETE ON work_order_photos
        BEGIN SELECT RAISE(ABORT, 'a photo is never deleted'); END;
        """),
    Migration(
      id: 12, name: "credit model from HQ and credit grades computed on the device",
      sql: """
        CREATE TABLE credit_model (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          version INTEGER NOT NULL,
          intercept INTEGER NOT NULL,
          days_in_arrears INTEGER NOT NULL,
          topup_regularity INTEGER NOT NULL,
          consumption_volatility INTEGER NOT NULL,
          past_disconnects INTEGER NOT NULL,
          boundaries TEXT NOT NULL,
          command TEXT NOT NULL,
          applied_at INTEGER NOT NULL,
          assessed_day INTEGER
        ) STRICT;
        CREATE TABLE credit_grades (
          customer TEXT PRIMARY KEY,
          grade TEXT NOT NULL,
          score INTEGER NOT NULL,
          model_version INTEGER NOT NULL,
          days_in_arrears INTEGER NOT NULL,
          topup_regularity INTEGER NOT NULL,
          consumption_volatility INTEGER NOT NULL,
          past_disconnects INTEGER NOT NULL,
          assessed_at INTEGER NOT NULL
        ) STRICT;
        """),
    Migration(
      id: 13, name: "meter replacements (archive op replace)",
      sql: """
        CREATE TABLE meter_replacements (
          old TEXT PRIMARY KEY,
          new TEXT NOT NULL,
          customer TEXT NOT NULL,
          category TEXT NOT NULL,
          area TEXT NOT NULL,
          at INTEGER NOT NULL,
          old_final_wh INTEGER NOT NULL,
          new_initial_wh INTEGER NOT NULL,
          version INTEGER NOT NULL,
          applied_at INTEGER NOT NULL
        ) STRICT;
        """),
    Migration(
      id: 14, name: "bus search: meters found on the buses, last search per bus",
      sql: """
        CREATE TABLE found_meters (
          address TEXT PRIMARY KEY,
          bus TEXT NOT NULL,
          how TEXT NOT NULL,
          first_found_at INTEGER NOT NULL,
          last_found_at INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE bus_searches (
          bus TEXT PRIMARY KEY,
          finished_at INTEGER NOT NULL,
          probes INTEGER NOT NULL,
          found INTEGER NOT NULL,
          unknown INTEGER NOT NULL
        ) STRICT;
        """),
    Migration(
      id: 15, name: "topology with effective dates; the energy register in the relay log",
      sql: """
        CREATE TABLE topology (
          meter TEXT NOT NULL,
          effective_day INTEGER NOT NULL,
          area TEXT,
          phase TEXT NOT NULL,
          ct_ratio INTEGER NOT NULL,
          area_meter INTEGER NOT NULL,
          customer TEXT NOT NULL,
          version INTEGER NOT NULL,
          source TEXT NOT NULL,
          recorded_at INTEGER NOT NULL,
          PRIMARY KEY (meter, effective_day)
        ) STRICT, WITHOUT ROWID;
        INSERT INTO topology (meter, effective_day, area, phase, ct_ratio, area_meter, customer, version, source,
          recorded_at)
        SELECT address, -1000000000, area, phase, ct_ratio, area_meter, customer,
          (SELECT version FROM archive_state WHERE singleton = 1), 'migration', updated_at
        FROM archive_meters;
        CREATE VIEW meter_topology (meter, effective_day, area, phase, ct_ratio, area_meter, customer) AS
          SELECT meter, effective_day, area, phase, ct_ratio, area_meter, customer FROM topology
          UNION ALL
          SELECT address, -1000000000, area, phase, ct_ratio, area_meter, customer FROM archive_meters
          WHERE address NOT IN (SELECT meter FROM topology);
        ALTER TABLE relay_log ADD COLUMN energy_wh INTEGER;
        """),
    Migration(
      id: 16, name: "outages, planned outages and daily reliability figures",
      sql: """
        CREATE TABLE outages (
          id INTEGER PRIMARY KEY,
          area TEXT NOT NULL,
          phases TEXT NOT NULL,
          causes TEXT NOT NULL,
          started_at INTEGER NOT NULL,
          ended_at INTEGER,
          customers INTEGER NOT NULL,
          meters TEXT NOT NULL,
          planned TEXT
        ) STRICT;
        CREATE UNIQUE INDEX outages_open ON outages (area) WHERE ended_at IS NULL;
        CREATE INDEX outages_started ON outages (started_at);
        CREATE TABLE planned_outages (
          id TEXT PRIMARY KEY,
          area TEXT NOT NULL,
          starts_at INTEGER NOT NULL,
          ends_at INTEGER NOT NULL,
          reason TEXT NOT NULL,
          received_at INTEGER NOT NULL,
          cancelled_at INTEGER
        ) STRICT;
        CREATE INDEX planned_outages_area ON planned_outages (area, ends_at);
        CREATE TABLE outage_state (
          singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
          figures_day INTEGER
        ) STRICT;
        INSERT INTO outage_state (singleton, figures_day) VALUES (1, NULL);
        """),
    Migration(
      id: 17, name: "meter replacements: a meter may be the old one of several swaps",
      sql: """
        CREATE TABLE meter_replacements_17 (
          id INTEGER PRIMARY KEY,
          old TEXT NOT NULL,
          new TEXT NOT NULL,
          customer TEXT NOT NULL,
          category TEXT NOT NULL,
          area TEXT NOT NULL,
          at INTEGER NOT NULL,
          old_final_wh INTEGER NOT NULL,
          new_initial_wh INTEGER NOT NULL,
          version INTEGER NOT NULL,
          applied_at INTEGER NOT NULL,
          UNIQUE (old, at)
        ) STRICT;
        INSERT INTO meter_replacements_17 (old, new, customer, category, area, at, old_final_wh,
          new_initial_wh, version, applied_at)
        SELECT old, new, customer, category, area, at, old_final_wh, new_initial_wh, version, applied_at
        FROM meter_replacements ORDER BY at;
        DROP TABLE meter_replacements;
        ALTER TABLE meter_replacements_17 RENAME TO meter_replacements;
        CREATE INDEX meter_replacements_new ON meter_replacements (new, at);
        """),
  ]

  /// Opens (creating if needed) the database at `path` for device `deviceID`.
  ///
  /// The databases quarantined beside `path` (`<path>.corrupt-<ms>`, without their
  /// `-wal` and `-shm`): file names, sizes in bytes and when they were moved (ms).
  public static func quarantined(beside path: String) -> [(file: String, bytes: Int64, at: Int64)] {
    var directory = "."
    var base = path
    if let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) {
      directory = String(path[..<slash])
      base = String(path[path.utf8.index(after: slash)...])
      if directory.isEmpty { directory = "/" }
    }
    let prefix = base + ".corrupt-"
    var out: [(file: String, bytes: Int64, at: Int64)] = []
    for name in (try? Files.list(directory)) ?? [] where name.hasPrefix(prefix) {
      guard let at = Int64(String(name.dropFirst(prefix.count))) else { continue }  // not -wal/-shm
      let full = directory == "/" ? "/" + name : directory + "/" + name
      out.append((full, Files.size(full) ?? 0, at))
    }
    return out.sorted { $0.at < $1.at }
  }

  /// A database that fails `quick_check` is moved aside (quarantined) and refused.
  /// - Throws: `StoreOpenError` saying what was wrong and, for a corrupt file, where
  ///   it was moved.
  public init(path: String, deviceID: String, now: Int64) throws(StoreOpenError) {
    // After an unclean stop SQLite keeps the write-ahead log beside the database; a
    // database whose last boot did not stop cleanly but has no log lost that log.
    let hadLog = Files.exists(path + "-wal")
    let db: Connection
    do {
      db = try Connection(path: path)
    } catch {
      if error.code == .corrupt || error.code == .notADatabase {
        let moved = path + ".corrupt-" + String(now)
        var movedTo: String? = nil
        if (try? Files.move(path, to: moved)) != nil {
          movedTo = moved
          for suffix in ["-wal", "-shm"] where Files.exists(path + suffix) {
            try? Files.move(path + suffix, to: moved + suffix)
          }
        }
        throw StoreOpenError(path: path, reason: error.description, quarantinedTo: movedTo)
      }
      throw StoreOpenError(
        path: path, reason: error.description, quarantinedTo: nil, diskFailure: Self.isDiskFailure(error))
    }
    func refuse(_ error: SQLiteError) -> StoreOpenError {
      StoreOpenError(
        path: path, reason: error.description, quarantinedTo: nil, diskFailure: Self.isDiskFailure(error))
    }
    let existing: Row?
    do {
      // Delivered outbox records are deleted all the time; Debian's SQLite is built
      // with secure_delete on, which would also write every freed page out again
      // (zeroed). FAST still zeroes deleted content on pages written anyway.
      try db.execute("PRAGMA secure_delete = FAST")
      // The write-ahead log is reused from its start after each checkpoint but never
      // shrinks by itself: a drain or a burst that grew it would hold that disk space
      // for good (outside the disk budget). Past 4 MiB it is cut back at the reset.
      _ = try db.query("PRAGMA journal_size_limit = 4194304")
      _ = try Migrator(Self.migrations).migrate(db)
      existing = try db.query("SELECT device_id, store_id FROM device").first
    } catch {
      throw refuse(error)
    }
    if let existing {
      let owner = existing.text(0) ?? ""
      guard owner == deviceID else {
        throw StoreOpenError(
          path: path,
          reason: "the database belongs to device '" + owner + "', not '" + deviceID
            + "' (device.id); use another store.path", quarantinedTo: nil)
      }
      self.storeID = existing.text(1) ?? ""
    } else {
      created = true
      let id = hexString(SecureRandom.bytes(8))
      do {
        try db.transaction(.full) { () throws(SQLiteError) in
          try db.run(
            "INSERT INTO device (singleton, device_id, store_id, created_at) VALUES (1, ?, ?, ?)",
            [.text(deviceID), .text(id), .integer(now)])
        }
      } catch {
        throw refuse(error)
      }
      self.storeID = id
    }
    self.db = db
    self.deviceID = deviceID
    if !hadLog {
      self.lostLogOfEpoch = try? db.scalarInt(
        "SELECT epoch FROM boots WHERE epoch = (SELECT max(epoch) FROM boots) AND stopped_at IS NULL")
    }
  }

  /// Set when the database was opened without the write-ahead log its last boot (this
  /// epoch) left when it did not stop cleanly: what that boot committed after its last
  /// checkpoint is gone (the file was deleted, or lost with its filesystem). The
  /// database is consistent but older than HQ may have seen; the agent skips seqs and
  /// record ids it may have used (`Outbox.skipAfterLostLog`).
  public private(set) var lostLogOfEpoch: Int64? = nil

  /// Whether `error` is the disk failing (an I/O error, a full file system, no
  /// memory) rather than the database being wrong: the same database may work on the
  /// next try.
  public static func isDiskFailure(_ error: SQLiteError) -> Bool {
    isStorageFailure(error) || error.code == .noMemory || error.code == .busy || error.code == .locked
  }

  /// Whether `error` is the storage itself failing (an I/O error, a full or
  /// read-only file system, a file that cannot be opened), not contention for the
  /// database or memory: what `gridedge status` reports as failing storage.
  public static func isStorageFailure(_ error: SQLiteError) -> Bool {
    error.code == .ioError || error.code == .full || error.code == .readOnly || error.code == .cantOpen
  }

  /// Records a new boot and returns its epoch (one more than the last). The boot is
  /// checkpointed into the database file at once, so a lost write-ahead log shows
  /// (`lostLogOfEpoch` at the next open).
  public func beginBoot(now: Int64, pid: Int32, version: String) throws(SQLiteError) -> Int64 {
    let epoch = try db.transaction(.full) { () throws(SQLiteError) -> Int64 in
      let last = try db.scalarInt("SELECT coalesce(max(epoch), 0) FROM boots") ?? 0
      try db.run(
        "INSERT INTO boots (epoch, started_at, pid, version) VALUES (?, ?, ?, ?)",
        [.integer(last + 1), .integer(now), .integer(Int64(pid)), .text(version)])
      return last + 1
    }
    do {
      _ = try db.query("PRAGMA wal_checkpoint(PASSIVE)")
    } catch {
      // The boot is committed; only a lost log would now go unnoticed for it.
      Log.warn(
        "store",
        "could not checkpoint boot " + String(epoch) + " into " + db.path + ": " + error.description
          + " (a write-ahead log lost before the next checkpoint would not be noticed)")
    }
    return epoch
  }

  /// Info lines about what the open transaction does (a balance crossing a
  /// threshold), held until it ends: a log line never claims what did not commit.
  private var notices: [(component: String, message: String)] = []

  /// Holds an info line until `publishNotices(committed:)`. Call inside a transaction.
  func notice(_ component: String, _ message: String) {
    notices.append((component, message))
  }

  /// Ends the held lines of a transaction: logs them if it committed, else drops them.
  func publishNotices(committed: Bool) {
    if committed { for notice in notices { Log.info(notice.component, notice.message) } }
    notices.removeAll()
  }

  /// Records how boot `epoch` ended.
  public func endBoot(_ epoch: Int64, now: Int64, reason: String) throws(SQLiteError) {
    try db.run(
      "UPDATE boots SET stopped_at = ?, stop_reason = ? WHERE epoch = ?",
      [.integer(now), .text(reason), .integer(epoch)])
  }

  /// Replaces the status row that `gridedge status` shows.
  public func setStatus(_ status: AgentStatus) throws(SQLiteError) {
    try db.run(
      """
      INSERT INTO agent_status (singleton, epoch, pid, phase, link, broker, detail, updated_at)
      VALUES (1, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (singleton) DO UPDATE SET epoch = excluded.epoch, pid = excluded.pid,
        phase = excluded.phase, link = excluded.link, broker = excluded.broker,
        detail = excluded.detail, updated_at = excluded.updated_at
      """,
      [
        .integer(status.epoch), .integer(Int64(status.pid)), .text(status.phase), .text(status.link),
        .text(status.broker), .text(status.detail), .integer(status.updatedAt),
      ])
  }
}

/// What the agent is doing, as stored for `gridedge status`.
public struct AgentStatus: Sendable {
  public var epoch: Int64
  public var pid: Int32
  /// `starting`, `running`, `stopping` or `stopped`.
  public var phase: String
  /// `connecting`, `connected`, `disconnected` or `closed`.
  public var link: String
  /// `host:port` of the broker.
  public var broker: String
  /// The last notable thing that happened to the link.
  public var detail: String
  public var updatedAt: Int64

  public init(
    epoch: Int64, pid: Int32, phase: String, link: String, broker: String, detail: String,
    updatedAt: Int64
  ) {
    self.epoch = epoch
    self.pid = pid
    self.phase = phase
    self.link = link
    self.broker = broker
    self.detail = detail
    self.updatedAt = updatedAt
  }
}

/// The database could not be opened for the agent.
public struct StoreOpenError: Error, CustomStringConvertible {
  public let path: String
  public let reason: String
  /// Where a corrupt database was moved, if it was.
  public let quarantinedTo: String?
  /// The disk failed (I/O error, file system full) rather than the database being
  /// refused: nothing was quarantined and a later start may succeed.
  public let diskFailure: Bool

  public init(path: String, reason: String, quarantinedTo: String?, diskFailure: Bool = false) {
    self.path = path
    self.reason = reason
    self.quarantinedTo = quarantinedTo
    self.diskFailure = diskFailure
  }

  public var description: String {
    if diskFailure {
      return "database " + path + " could not be opened, the disk failed: " + reason
        + " (nothing was quarantined; the agent exits and is started again)"
    }
    var text = "database " + path + " refused: " + reason
    if let quarantinedTo {
      text += "; quarantined to " + quarantinedTo + " (a new database is made on the next start)"
    }
    return text
  }
}

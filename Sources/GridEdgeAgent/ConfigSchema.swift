/// The type of a configuration value and how it is checked.
public enum ConfigValueKind: Sendable {
  /// Any text without leading or trailing blanks.
  case text
  /// A device id: 1–32 of `[A-Za-z0-9-]`.
  case deviceID
  /// A file path.
  case path
  /// A whole number in a closed range.
  case integer(Int64, Int64)
  /// One of the listed words.
  case choice([String])

  /// What a valid value looks like, for error messages and the documentation.
  public var expectation: String {
    switch self {
    case .text: return "text"
    case .deviceID: return "a device id (1-32 of A-Z a-z 0-9 -)"
    case .path: return "a file path"
    case .integer(let lo, let hi): return "an integer in " + String(lo) + "..." + String(hi)
    case .choice(let words):
      var text = "one of "
      for (i, w) in words.enumerated() { text += (i == 0 ? "" : ", ") + w }
      return text
    }
  }
}

/// One configuration key: its type, default, unit and documentation. Every key the
/// agent reads is in `ConfigSchema.keys`, and the example files in
/// `firmware-config/` are checked against that table by a test.
public struct ConfigKey: Sendable {
  public let name: String
  public let kind: ConfigValueKind
  /// The value used when the file does not set the key; nil when there is none.
  public let defaultValue: String?
  /// True when the file must set the key.
  public let required: Bool
  /// The unit of an integer (`s`, `ms`, `bytes`), or "".
  public let unit: String
  /// One sentence saying what the key does.
  public let summary: String

  public init(
    _ name: String, _ kind: ConfigValueKind, default defaultValue: String? = nil,
    required: Bool = false, unit: String = "", _ summary: String
  ) {
    self.name = name
    self.kind = kind
    self.defaultValue = defaultValue
    self.required = required
    self.unit = unit
    self.summary = summary
  }
}

/// The one table of configuration keys (STYLE.md 13).
public enum ConfigSchema {
  public static let keys: [ConfigKey] = [
    ConfigKey(
      "device.id", .deviceID, required: true,
      "This device's id in MQTT topics; equal to the CN of its TLS client certificate."),
    ConfigKey(
      "device.profile", .choice(["concentrator", "handheld"]), default: "concentrator",
      "What this device is: a transformer-area data concentrator or an inspector's handheld."),
    ConfigKey(
      "device.utc_offset", .integer(-720, 840), default: "480", unit: "min",
      "Local time as minutes east of UTC, for tariffs, freezes and no-disconnect windows (China: 480)."),
    ConfigKey(
      "store.path", .path, default: "/var/lib/gridedge/gridedge.db",
      "The SQLite database file; its -wal and -shm files live beside it."),
    ConfigKey(
      "store.max_bytes", .integer(1_048_576, 1_099_511_627_776), default: "268435456", unit: "bytes",
      "Disk budget: above it, unsent telemetry is evicted oldest first (billing data never is)."),
    ConfigKey(
      "store.status_file", .path,
      "A JSON file on another file system (tmpfs) where the agent says whether its database disk fails, for gridedge status; unset: none."
    ),
    ConfigKey(
      "mqtt.host", .text, default: "127.0.0.1", "The MQTT broker's host name or address."),
    ConfigKey(
      "mqtt.port", .integer(1, 65535), default: "1883",
      "The MQTT broker's TCP port (8883 is usual with TLS)."),
    ConfigKey(
      "mqtt.protocol", .choice(["v5", "v311"]), default: "v5",
      "MQTT protocol version: v5, or v311 for brokers that lack MQTT 5."),
    ConfigKey(
      "mqtt.keepalive", .integer(5, 3600), default: "60", unit: "s",
      "MQTT keepalive interval; the broker publishes the will after 1.5 times this silence."),
    ConfigKey(
      "mqtt.username", .text, "MQTT user name; unset for none (with TLS the certificate CN is usual)."),
    ConfigKey(
      "mqtt.password_file", .path,
      "A file whose first line is the MQTT password; unset for none."),
    ConfigKey(
      "mqtt.tls.ca_file", .path,
      "CA certificates (PEM) that sign the broker's certificate; setting it turns TLS on."),
    ConfigKey(
      "mqtt.tls.cert_file", .path,
      "This device's client certificate (PEM); needs mqtt.tls.key_file and mqtt.tls.ca_file."),
    ConfigKey(
      "mqtt.tls.key_file", .path,
      "The private key (PEM) of mqtt.tls.cert_file."),
    ConfigKey(
      "mqtt.reconnect_min", .integer(100, 600_000), default: "1000", unit: "ms",
      "Reconnect backoff base: the first retry waits up to this long (full jitter)."),
    ConfigKey(
      "mqtt.reconnect_max", .integer(1000, 3_600_000), default: "120000", unit: "ms",
      "Reconnect backoff cap: no retry waits longer than this."),
    ConfigKey(
      "mqtt.connect_timeout", .integer(100, 120_000), default: "10000", unit: "ms",
      "The longest the TCP handshake with the broker may take before the attempt counts as failed."),
    ConfigKey(
      "sync.batch_records", .integer(1, 10_000), default: "100",
      "The most records one uplink batch carries."),
    ConfigKey(
      "sync.window", .integer(1, 1000), default: "16",
      "The most batches published and not yet confirmed by the broker (MQTT QoS 1 in flight)."),
    ConfigKey(
      "sync.ack_window", .integer(1, 100_000), default: "256",
      "The most batches published and not yet acknowledged by HQ (all sent again after a reconnect)."),
    ConfigKey(
      "sync.ack_timeout", .integer(1000, 3_600_000), default: "30000", unit: "ms",
      "A batch HQ has not acknowledged within this time is sent again."),
    ConfigKey(
      "sync.backlog_rate", .integer(0, 10_000_000), default: "2000", unit: "records/s",
      "Cap on backlog drained after an outage (live data always goes first); 0 for no cap."),
    ConfigKey(
      "meter.file", .path,
      "The meter list, one meter per line: '<12-digit address> <bus> [customer=<id>] [area=<id>]', taking precedence over HQ's archive; unset: the archive's meters are read."
    ),
    ConfigKey(
      "bus.1", .text,
      "Meter bus 1: 'serial <device> [<baud> [<format>]] [rs485]' (an RS-485 port, default 2400 8E1) or 'tcp <address>:<port> [<baud> [<format>]]' (a serial-to-Ethernet gateway); unset: not used."
    ),
    ConfigKey("bus.2", .text, "Meter bus 2, written as bus.1; unset: not used."),
    ConfigKey("bus.3", .text, "Meter bus 3, written as bus.1; unset: not used."),
    ConfigKey("bus.4", .text, "Meter bus 4, written as bus.1; unset: not used."),
    ConfigKey(
      "bus.timeout", .integer(100, 60_000), default: "1500", unit: "ms",
      "How long to wait for a meter's reply once the request is sent (the reply's own transmission time at the line's baud rate is added)."
    ),
    ConfigKey(
      "bus.retries", .integer(0, 5), default: "2",
      "Times a request is sent again when a meter does not answer properly; a meter that answers none is marked silent and gets no retries until it answers."
    ),
    ConfigKey(
      "bus.gap", .integer(0, 5000), default: "5", unit: "ms",
      "Quiet time on a bus between the end of one exchange and the next request; never less than 4 character times."
    ),
    ConfigKey(
      "bus.wakeup", .integer(0, 4), default: "4",
      "Wake-up bytes (FE) sent before each request."),
    ConfigKey(
      "bus.reconnect_min", .integer(100, 600_000), default: "1000", unit: "ms",
      "Backoff base for reopening a failed bus (a serial port that errs, a gateway that closes), with full jitter."
    ),
    ConfigKey(
      "bus.reconnect_max", .integer(1000, 3_600_000), default: "60000", unit: "ms",
      "Backoff cap for reopening a failed bus."),
    ConfigKey(
      "acquisition.interval", .integer(1, 1440), default: "15", unit: "min",
      "Real-time energy (00 01 FF 00: total and tariffs) is read from every meter at each multiple of this many minutes after local midnight."
    ),
    ConfigKey(
      "acquisition.freeze_delay", .integer(0, 720), default: "5", unit: "min",
      "Daily freezes (05 06 00 01 time, 05 06 01 01 energy) are read in the first cycle at least this long after local midnight."
    ),
    ConfigKey(
      "acquisition.backfill_days", .integer(0, 62), default: "7", unit: "days",
      "Missed daily freezes up to this many days back are read from the meters' freeze records (05 06 01 nn)."
    ),
    ConfigKey(
      "acquisition.clock_check", .integer(0, 10_080), default: "1440", unit: "min",
      "How often each meter's clock (04 00 01 01 and 04 00 01 02) is compared with this device's; 0: never."),
    ConfigKey(
      "acquisition.clock_threshold", .integer(1, 3600), default: "60", unit: "s",
      "Clock drift beyond which a meter's readings are marked clock-suspect and its bus gets a broadcast time (0x08), at most once per meter per day."
    ),
    ConfigKey(
      "acquisition.time_set", .choice(["on", "off"]), default: "on",
      "Whether drifting meter clocks are corrected with a broadcast time; off: drift is only logged and reported."
    ),
    ConfigKey(
      "acquisition.keep_days", .integer(1, 3650), default: "93", unit: "days",
      "Readings older than this are deleted from the local cache (the outbox still holds what HQ has not acknowledged)."
    ),
    ConfigKey(
      "acquisition.silent_cycles", .integer(1, 1000), default: "3", unit: "cycles",
      "A listed meter that answers nothing in this many cycles in a row is reported to HQ (event archive.silent)."
    ),
    ConfigKey(
      "acquisition.search_hours", .integer(0, 8760), default: "24", unit: "hours",
      "Each bus is searched for meters (address patterns, between cycles) this often; meters not in the archive go to HQ as meter.unknown. 0: only when asked (gridedge archive search)."
    ),
    ConfigKey(
      "outage.voltage_threshold", .integer(0, 400), default: "132", unit: "V",
      "An area meter phase voltage below this is a lost phase: its area is without supply (event outage.start)."
    ),
    ConfigKey(
      "outage.silent_share", .integer(1, 10_000), default: "5000", unit: "bp",
      "At least this share of an area's customer meters asked in a cycle answering nothing is an outage of those meters."
    ),
    ConfigKey(
      "outage.silent_meters", .integer(1, 100_000), default: "3", unit: "meters",
      "The fewest silent customer meters of an area that make an outage (with outage.silent_share)."),
    ConfigKey(
      "outage.power_fail_path", .path,
      "The board's power-fail signal (e.g. /sys/class/gpio/gpio17/value), read every second; unset: none."),
    ConfigKey(
      "outage.power_fail_value", .text, default: "1",
      "What outage.power_fail_path holds while the board's supply has failed: every area is then without supply."
    ),
    ConfigKey(
      "commands.trusted_keys", .path,
      "HQ's command signing keys, one '<kid> <base64url Ed25519 public key>' per line; unset: every command is refused."
    ),
    ConfigKey(
      "commands.clock_skew", .integer(0, 86_400), default: "300", unit: "s",
      "How far in the future a command's iat may be, for clock differences with HQ."),
    ConfigKey(
      "commands.max_signature_failures", .integer(1, 100_000), default: "20",
      "Signature failures in one local day above which control commands are suspended for the rest of it."),
    ConfigKey(
      "prepaid.hoarding_limit", .integer(1, 100_000_000_000), default: "500000", unit: "fen",
      "A top-up that would lift a balance above this is refused (anti-hoarding)."),
    ConfigKey(
      "prepaid.alarm1", .integer(-100_000_000, 100_000_000_000), default: "2000", unit: "fen",
      "A balance falling below this raises alarm 1 (HQ sends the customer a reminder)."),
    ConfigKey(
      "prepaid.alarm2", .integer(-100_000_000, 100_000_000_000), default: "500", unit: "fen",
      "A balance falling below this raises alarm 2 (the last warning before the overdraft)."),
    ConfigKey(
      "prepaid.overdraft_limit", .integer(-100_000_000, 0), default: "-1000", unit: "fen",
      "The lowest balance allowed (zero or negative); below it the supply may be cut."),
    ConfigKey(
      "prepaid.close_permit", .integer(-100_000_000, 100_000_000_000), default: "0", unit: "fen",
      "A balance at or above this after a top-up permits reconnecting the supply."),
    ConfigKey(
      "prepaid.grades", .text,
      "Thresholds per credit grade, 'GRADE:FIELD=FEN/...' separated by commas (alarm1, alarm2, overdraft, close_permit, hoarding); unset: prepaid.* for all."
    ),
    ConfigKey(
      "prepaid.rebate", .integer(0, 10_000), default: "0", unit: "bp",
      "Arrears repaid within prepaid.rebate_window earn this share of the deepest arrears as a rebate entry; 0: none."
    ),
    ConfigKey(
      "prepaid.rebate_window", .integer(0, 31_536_000), default: "604800", unit: "s",
      "The longest arrears episode (balance below zero until repaid) that earns the rebate."),
    ConfigKey(
      "prepaid.rebate_cap", .integer(0, 100_000_000), default: "5000", unit: "fen",
      "The largest rebate for one arrears episode."),
    ConfigKey(
      "credit.assess_at", .text, default: "02:30",
      "Local time (HH:MM) of the daily credit grading of every customer with HQ's model (also run when a model arrives)."
    ),
    ConfigKey(
      "control.password", .text, default: "02:000000",
      "The meters' 0x1C control password as LEVEL:CODE in hex (PA, then P2 P1 P0)."),
    ConfigKey(
      "control.operator", .text, default: "00000000",
      "The operator code (8 hex digits) the meters record with each 0x1C relay command."),
    ConfigKey(
      "control.valid_for", .integer(1, 1440), default: "10", unit: "min",
      "Each 0x1C trip or close carries a valid-until this far after the local time it is sent."),
    ConfigKey(
      "control.close", .choice(["permit", "direct"]), default: "permit",
      "How a reconnection closes the relay: close-permit (1B, the customer presses the button) or direct close (1C)."
    ),
    ConfigKey(
      "control.attempts", .integer(1, 20), default: "5",
      "Tries of one relay operation (command, then the relay read back) before it is reported as relay.failed."
    ),
    ConfigKey(
      "control.retry_min", .integer(100, 3_600_000), default: "5000", unit: "ms",
      "Wait before the second try of a relay operation; doubled for each further try."),
    ConfigKey(
      "control.retry_max", .integer(100, 86_400_000), default: "300000", unit: "ms",
      "The longest wait between tries of a relay operation."),
    ConfigKey(
      "control.max_per_hour", .integer(0, 100_000), default: "20",
      "At most this many disconnections are started in any hour (all meters of this device)."),
    ConfigKey(
      "control.no_disconnect_hours", .text, default: "18:00-08:00",
      "Local daily windows without disconnections, 'HH:MM-HH:MM' separated by commas (may cross midnight), or none."
    ),
    ConfigKey(
      "control.no_disconnect_days", .text, default: "sat,sun",
      "Days of the week without disconnections (mon,tue,wed,thu,fri,sat,sun separated by commas), or none."),
    ConfigKey(
      "control.holidays", .text,
      "Local dates without disconnections, 'YYYY-MM-DD' separated by commas; unset: none."),
    ConfigKey(
      "control.grace", .text, default: "A:86400,B:21600,C:3600,*:0",
      "Seconds a balance must stay below the overdraft limit before a disconnection, per credit grade ('GRADE:SECONDS', * for others)."
    ),
    ConfigKey(
      "balance.min_completeness", .integer(0, 10_000), default: "9800", unit: "bp",
      "The energy balance gives a loss rate only when this share of the area's meters has data."),
    ConfigKey(
      "balance.high_loss", .integer(0, 10_000), default: "800", unit: "bp",
      "A loss rate above this is flagged as high loss (theft or fault suspected)."),
    ConfigKey(
      "balance.sudden_drop", .integer(0, 10_000), default: "6500", unit: "bp",
      "A meter's day at or below this share of its own median is a sudden drop."),
    ConfigKey(
      "balance.history_days", .integer(3, 62), default: "7", unit: "days",
      "Days of a meter's own history its day is compared with."),
    ConfigKey(
      "balance.missed_reads", .integer(1, 10_000), default: "2000", unit: "bp",
      "A meter that missed at least this share of its collections in the balance's window is a missed-reads anomaly."
    ),
    ConfigKey(
      "balance.grade_weight", .integer(0, 10_000), default: "250",
      "Added to a suspect's score for each credit grade below A (B once, C twice, ...)."),
    ConfigKey(
      "balance.summary_deadline", .integer(0, 1440), default: "360", unit: "min",
      "Minutes after local midnight by which yesterday's balance goes to HQ even if freezes are still missing (it goes as soon as all are in)."
    ),
    ConfigKey(
      "balance.repeat_weight", .integer(0, 10_000), default: "250",
      "Added to a suspect's score for each of the history days it was already a suspect in a daily summary."),
    ConfigKey(
      "balance.summary_completeness", .integer(1, 10_000), default: "10000", unit: "bp",
      "Yesterday's balance goes to HQ as soon as this share of every area's meters has the day's freezes (else at balance.summary_deadline)."
    ),
    ConfigKey(
      "balance.workorder_score", .integer(0, 100_000), default: "2000",
      "Suspects in the daily summary with at least this score are proposed to HQ as inspection work orders."),
    ConfigKey(
      "balance.top_suspects", .integer(0, 100), default: "5",
      "The most suspects per area in the daily summary, and so the most work orders proposed per area and day."
    ),
    ConfigKey(
      "inspection.photo_max_bytes", .integer(1, 67_108_864), default: "10485760", unit: "bytes",
      "The largest photo file gridedge inspect photo attaches to a work order."),
    ConfigKey(
      "inspection.photo_chunk_bytes", .integer(1024, 131_072), default: "49152", unit: "bytes",
      "Photos go to HQ in chunks of this many bytes (class attachments), so a cut link resumes at the next chunk."
    ),
    ConfigKey(
      "log.level", .choice(["debug", "info", "warn", "error"]), default: "info",
      "The least severe log level written to stderr (journald)."),
  ]

  /// The key named `name`, if the table has it.
  public static func key(_ name: String) -> ConfigKey? {
    for key in keys where key.name == name { return key }
    return nil
  }
}

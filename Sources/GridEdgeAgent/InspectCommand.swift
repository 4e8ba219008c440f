import Runtime
import SQLiteStore

/// `gridedge inspect ...`: the inspector's flow on a handheld, on the agent's own
/// database (the agent may be running: the same file, its busy timeout, short
/// `synchronous=FULL` transactions). Every subcommand takes `--json` for a
/// touch-screen app: it then prints one JSON object (or array) on success and
/// `{"error":code,"message":text}` on a refusal.
public enum InspectCommand {
  public static let usage = """
      gridedge inspect list [--all] --config FILE [--json]
      gridedge inspect show ORDER | accept ORDER | arrive ORDER | complete ORDER --config FILE [--json]
      gridedge inspect finding ORDER ITEM VALUE --config FILE [--json]
                                        ITEM: seals (NUMBER:intact|broken|missing|replaced,...),
                                        wiring (ok|fault|tampered), display (kWh), relay
                                        (closed|open), theft (none|bypass|magnet|tampered-seal|
                                        reversed-wiring|meter-damage|other), notes (text)
      gridedge inspect photo ORDER PATH --config FILE [--json]
      gridedge inspect read ORDER (--port DEVICE [--baud 2400] | --gateway HOST:PORT) --config FILE [--json]
                                        read the order's meter on site (optical probe,
                                        RS-485 adapter or TCP gateway) and compare
      gridedge inspect confirm ORDER --by NAME --rating 1-5 --config FILE [--json]
      gridedge inspect handback ORDER --reason TEXT --config FILE [--json]
      gridedge inspect correct ORDER ITEM VALUE --note TEXT --config FILE [--json]
                                        a correction of a completed order (a new record)
    """

  /// Runs `gridedge inspect <words>`.
  /// - Parameters:
  ///   - words: the positional words after `inspect`.
  ///   - options: `by`, `rating`, `reason`, `note`, `port`, `baud`, `gateway` option values.
  /// - Returns: the exit code: 0 done, 2 bad input (nothing written), 1 failure (the
  ///   database, or a meter read on site), 3 no database.
  public static func run(
    config: Config, words: [String], options: [String: String], all: Bool, json: Bool, now: Int64
  ) -> Int32 {
    guard let sub = words.first else {
      Console.writeError("gridedge inspect: a subcommand is required\n" + usage + "\n")
      return ExitCode.config
    }
    let arity: [String: Int] = [
      "list": 0, "show": 1, "accept": 1, "arrive": 1, "complete": 1, "finding": 3, "photo": 2, "confirm": 1,
      "handback": 1, "correct": 3, "read": 1,
    ]
    guard let needed = arity[sub] else {
      Console.writeError("gridedge inspect: unknown subcommand '" + sub + "'\n" + usage + "\n")
      return ExitCode.config
    }
    guard words.count == needed + 1 else {
      Console.writeError(
        "gridedge inspect " + sub + ": expects " + String(needed) + " argument(s)\n" + usage + "\n")
      return ExitCode.config
    }
    let path = config.string("store.path") ?? ""
    guard Files.exists(path) else {
      Log.error(
        "inspect",
        "no database at " + path + " (store.path in " + config.file + "): the agent has not run yet")
      return ExitCode.database
    }
    let inspection: Inspection
    do {
      let store = try AgentStore(path: path, deviceID: config.string("device.id") ?? "", now: now)
      var settings = Inspection.Settings()
      settings.photoMaxBytes = config.integer("inspection.photo_max_bytes")
      settings.photoChunkBytes = Int(config.integer("inspection.photo_chunk_bytes"))
      do {
        inspection = Inspection(store: store, outbox: try Outbox(store: store), settings: settings)
      } catch {
        Log.error("inspect", path + ": " + error.description)
        return ExitCode.failure
      }
    } catch {
      Log.error("inspect", error.description)
      return ExitCode.database
    }
    let order = words.count > 1 ? words[1] : ""
    do throws(InspectionError) {
      var out: String
      var text: String
      switch sub {
      case "list":
        do {
          out = try inspection.listJSON(all: all)
          text = try listText(out, inspection.store.db)
        } catch {
          throw InspectionError("database", error.description)
        }
      case "show":
        out = try inspection.showJSON(order)
        do {
          text = try showText(out, inspection.store.db)
        } catch {
          throw InspectionError("database", error.description)
        }
      case "accept":
        let record = try inspection.accept(order, now: now)
        (out, text) = (done(order, "accepted", record), "work order " + order + " accepted")
      case "arrive":
        let record = try inspection.arrive(order, now: now)
        (out, text) = (
          done(order, "arrived", record), "arrived at " + order + " " + formatUTC(milliseconds: now)
        )
      case "finding":
        let value = try inspection.finding(order, item: words[2], value: words[3], now: now)
        out = "{\"order\":\"" + order + "\",\"item\":\"" + words[2] + "\",\"value\":" + value + "}"
        text = order + ": " + words[2] + " = " + value
      case "photo":
        let photo = try inspection.photo(order, path: words[2], now: now)
        out =
          "{\"order\":\"" + order + "\",\"photo\":\"" + photo.id + "\",\"sha256\":\"" + photo.sha256
          + "\",\"size\":" + String(photo.size) + ",\"chunks\":" + String(photo.chunks) + "}"
        text =
          "photo " + photo.id + " attached to " + order + ": " + String(photo.size) + " bytes, SHA-256 "
          + photo.sha256 + ", " + String(photo.chunks) + " chunk(s) queued"
      case "read":
        let transport: any MeterTransport
        if let gateway = options["gateway"] {
          let parts = gateway.split(separator: ":")
          guard parts.count == 2, let port = UInt16(parts[1]) else {
            throw InspectionError("bad-value", "--gateway must be HOST:PORT, not '" + gateway + "'")
          }
          transport = TCPGateway(host: String(parts[0]), port: port)
        } else if let device = options["port"] {
          guard let baud = Int(options["baud"] ?? "2400"), [1200, 2400, 4800, 9600].contains(baud) else {
            throw InspectionError("bad-value", "--baud must be 1200, 2400, 4800 or 9600")
          }
          transport = SerialPort(path: device, baud: baud)
        } else {
          throw InspectionError(
            "bad-value", "read needs --port DEVICE (optical probe, RS-485) or --gateway HOST:PORT")
        }
        let reading = try inspection.readMeter(order, transport: transport, clock: SystemClock(), now: now)
        out = "{\"order\":\"" + order + "\",\"item\":\"reading\",\"value\":" + reading + "}"
        text = order + ": reading = " + reading
      case "confirm":
        try inspection.confirm(order, by: options["by"] ?? "", rating: options["rating"] ?? "", now: now)
        out = "{\"order\":\"" + order + "\",\"confirmed\":true}"
        text = order + ": confirmed by the customer"
      case "complete":
        let record = try inspection.complete(order, now: now)
        (out, text) = (
          done(order, "completed", record), "work order " + order + " completed (record " + record + ")"
        )
      case "handback":
        let record = try inspection.handBack(order, reason: options["reason"] ?? "", now: now)
        (out, text) = (done(order, "handed-back", record), "work order " + order + " handed back")
      default:
        let record = try inspection.correct(
          order, item: words[2], value: words[3], note: options["note"] ?? "", now: now)
        (out, text) = (done(order, "corrected", record), "correction " + record + " recorded for " + order)
      }
      Console.writeLine(json ? out : text)
      return ExitCode.ok
    } catch {
      if json {
        Console.writeLine(
          "{\"error\":\"" + error.code + "\",\"message\":" + jsonString(error.description) + "}")
      }
      Console.writeError("gridedge inspect " + sub + ": " + error.description + "\n")
      return error.code == "database" || error.code == "meter" ? ExitCode.failure : ExitCode.config
    }
  }

  /// One line per order: id, kind, state, grade and priority, due, customer, address, meter.
  private static func listText(_ json: String, _ db: Connection) throws(SQLiteError) -> String {
    var lines = [
      "order             kind         state                  grade prio  due (UTC)          customer    meter         address"
    ]
    for row in try db.query(
      """
      SELECT json_extract(value, '$.id'), json_extract(value, '$.kind'), json_extract(value, '$.state')
          || CASE WHEN json_extract(value, '$.cancelled') THEN ' (cancelled)' ELSE '' END,
        coalesce(json_extract(value, '$.grade'), '-'), json_extract(value, '$.priority'),
        json_extract(value, '$.due'), json_extract(value, '$.customer'), coalesce(json_extract(value, '$.meter'), '-'),
        json_extract(value, '$.address')
      FROM json_each(?1) ORDER BY key
      """, [.text(json)])
    {
      let due = row.int64(5).map { String(formatUTC(milliseconds: $0).prefix(16)) } ?? "-"
      lines.append(
        pad(row.text(0) ?? "", 18) + pad(row.text(1) ?? "", 13) + pad(row.text(2) ?? "", 23)
          + pad(row.text(3) ?? "", 6) + pad(String(row.int64(4) ?? 0), 6) + pad(due, 19)
          + pad(row.text(6) ?? "", 12)
          + pad(row.text(7) ?? "", 14) + (row.text(8) ?? ""))
    }
    lines.append(String(lines.count - 1) + " work order(s)")
    var text = ""
    for (i, line) in lines.enumerated() { text += (i == 0 ? "" : "\n") + line }
    return text
  }

  /// One line per member of the order: `key: value` (null members left out).
  private static func showText(_ json: String, _ db: Connection) throws(SQLiteError) -> String {
    var text = ""
    for row in try db.query(
      """
      SELECT key, CASE
        WHEN type IN ('object', 'array') THEN json(value)
        WHEN type IN ('true', 'false') THEN type
        WHEN type = 'integer' AND (key = 'due' OR key LIKE '%_at')
          THEN strftime('%Y-%m-%dT%H:%M:%SZ', value / 1000, 'unixepoch')
        ELSE CAST(value AS TEXT) END
      FROM json_each(?1) WHERE type <> 'null'
      """, [.text(json)])
    {
      text += (text.isEmpty ? "" : "\n") + pad((row.text(0) ?? "") + ":", 17) + (row.text(1) ?? "")
    }
    return text
  }

  private static func pad(_ text: String, _ width: Int) -> String {
    var out = text
    while out.utf8.count < width { out += " " }
    return out
  }

  private static func done(_ order: String, _ state: String, _ record: String) -> String {
    "{\"order\":\"" + order + "\",\"state\":\"" + state + "\",\"record\":\"" + record + "\"}"
  }
}

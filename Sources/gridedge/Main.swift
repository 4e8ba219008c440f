import GridEdgeAgent
import Runtime

/// `gridedge`: the field agent. Parses the command line and wires the parts.
@main
struct Main {
  static let usage = """
    gridedge — edge agent for electricity distribution (concentrators and handhelds)

    usage:
      gridedge run --config FILE        run the agent until SIGTERM/SIGINT
      gridedge status --config FILE [--json]
                                        what the agent on this device is doing
      gridedge readings --config FILE --meter ADDRESS [--from T] [--to T] [--json]
                                        the readings stored for one meter; T is a
                                        local YYYY-MM-DD or YYYY-MM-DDThh:mm
                                        (default: the last 24 hours)
      gridedge ledger --config FILE [--customer C] [--json]
                                        prepaid accounts, or one customer's entries
      gridedge ledger verify --config FILE
                                        recompute every balance from its entries
      gridedge relays --config FILE [--json]
                                        every meter's relay operation: wanted and
                                        verified state, why, tries, last error
      gridedge archive --config FILE [--json]
                                        HQ's meter archive (version, every meter) and
                                        the bus that reads each meter
      gridedge archive diff --config FILE [--json]
                                        the archive against the bus: meters silent,
                                        never answering, not read, or not in it
      gridedge archive search --config FILE
                                        ask the running agent to search its buses for
                                        meters now (between reading cycles)
      gridedge balance --config FILE --area AREA --day YYYY-MM-DD [--hour H] [--json]
                                        the energy balance (line loss) of a transformer
                                        area for one local day (from the daily freezes)
                                        or one hour H, 0-23 (from the 15-minute
                                        readings), with suspects
      gridedge outages --config FILE [--json]
                                        areas without supply, recent outages (planned
                                        or not), planned outages to come, and today's
                                        reliability figures so far
      gridedge audit verify --config FILE
                                        walk the audit hash chain (ledger entries,
                                        command outcomes, relay operations, work order
                                        records): finds edited or deleted rows
      gridedge inspect SUBCOMMAND ...   the inspector's work orders (handheld mode):
    """ + "\n" + InspectCommand.usage + """

        gridedge check-config --config FILE
                                          validate a configuration file (and the
                                          meter list and buses it names) and exit
        gridedge --help | --version

      exit codes: 0 ok, 1 runtime failure, 2 bad command line or configuration,
                  3 database refused (corrupt: quarantined, or another device's)
      """

  static func main() {
    Process.prepare()
    if let bad = Process.invalidUTF8Argument() {
      let message =
        "argument " + String(bad) + " is not valid UTF-8: refused, nothing written (text is kept exactly as"
        + " given, so it must be UTF-8)"
      // `inspect --json` promises a JSON refusal on stdout.
      if Process.arguments().contains("--json") {
        Console.writeLine("{\"error\":\"bad-value\",\"message\":\"" + message + "\"}")
      }
      Console.writeError("gridedge: " + message + "\n")
      Process.exit(ExitCode.config)
    }
    Process.exit(run(Array(Process.arguments().dropFirst())))
  }

  static func run(_ words: [String]) -> Int32 {
    let arguments: Arguments
    do {
      arguments = try Arguments(
        words,
        valued: [
          "config", "meter", "from", "to", "customer", "area", "day", "hour", "by", "rating", "reason",
          "note", "port", "baud", "gateway",
        ],
        flags: ["help", "version", "json", "all"])
    } catch {
      Console.writeError("gridedge: " + error.description + "\n\n" + usage + "\n")
      return ExitCode.config
    }
    if arguments.has("version") {
      Console.writeLine("gridedge " + BuildInfo.version)
      return ExitCode.ok
    }
    guard let command = arguments.positional.first, !arguments.has("help") else {
      Console.write(usage + "\n")
      return arguments.has("help") ? ExitCode.ok : ExitCode.config
    }
    let verify =
      ["ledger", "audit"].contains(command) && arguments.positional.count == 2
      && arguments.positional[1] == "verify"
    let diff = command == "archive" && arguments.positional.count == 2 && arguments.positional[1] == "diff"
    let search =
      command == "archive" && arguments.positional.count == 2 && arguments.positional[1] == "search"
    guard arguments.positional.count == 1 || verify || diff || search || command == "inspect" else {
      Console.writeError("gridedge: unexpected argument '" + arguments.positional[1] + "'\n")
      return ExitCode.config
    }
    guard command != "audit" || verify else {
      Console.writeError("gridedge: did you mean 'gridedge audit verify'?\n")
      return ExitCode.config
    }
    guard
      [
        "run", "status", "readings", "ledger", "relays", "archive", "balance", "audit", "inspect",
        "check-config", "outages",
      ]
      .contains(
        command)
    else {
      Console.writeError("gridedge: unknown command '" + command + "'\n\n" + usage + "\n")
      return ExitCode.config
    }
    guard let path = arguments.value("config") else {
      Console.writeError("gridedge " + command + ": --config FILE is required\n")
      return ExitCode.config
    }
    let config: Config
    do {
      config = try Config.load(path: path)
    } catch {
      Console.writeError("gridedge: configuration error: " + error.description + "\n")
      return ExitCode.config
    }
    Log.level = LogLevel(name: config.string("log.level") ?? "info") ?? .info
    switch command {
    case "check-config":
      do {
        try Acquisition.validate(config: config)
      } catch {
        Console.writeError("gridedge: configuration error: " + error.description + "\n")
        return error.exitCode
      }
      Console.writeLine(path + ": ok")
      return ExitCode.ok
    case "readings":
      guard let meter = arguments.value("meter") else {
        Console.writeError("gridedge readings: --meter ADDRESS is required\n")
        return ExitCode.config
      }
      return ReadingsReport.run(
        config: config, meter: meter, from: arguments.value("from"), to: arguments.value("to"),
        json: arguments.has("json"), now: SystemClock().wallMilliseconds)
    case "status":
      return StatusReport.run(config: config, json: arguments.has("json"))
    case "ledger":
      if verify { return LedgerReport.verify(config: config) }
      return LedgerReport.show(
        config: config, customer: arguments.value("customer"), json: arguments.has("json"))
    case "relays":
      return LedgerReport.relays(config: config, json: arguments.has("json"))
    case "archive":
      if diff { return ArchiveReport.diff(config: config, json: arguments.has("json")) }
      if search { return ArchiveReport.search(config: config) }
      return ArchiveReport.show(config: config, json: arguments.has("json"))
    case "balance":
      guard let area = arguments.value("area"), let day = arguments.value("day") else {
        Console.writeError("gridedge balance: --area AREA and --day YYYY-MM-DD are required\n")
        return ExitCode.config
      }
      return BalanceReport.run(
        config: config, area: area, day: day, hour: arguments.value("hour"), json: arguments.has("json"))
    case "audit":
      return LedgerReport.verifyAudit(config: config)
    case "outages":
      return OutageReport.show(
        config: config, json: arguments.has("json"), now: SystemClock().wallMilliseconds)
    case "inspect":
      var options: [String: String] = [:]
      for name in ["by", "rating", "reason", "note", "port", "baud", "gateway"] {
        options[name] = arguments.value(name)
      }
      return InspectCommand.run(
        config: config, words: Array(arguments.positional.dropFirst()), options: options,
        all: arguments.has("all"),
        json: arguments.has("json"), now: SystemClock().wallMilliseconds)
    default:
      do {
        let agent = try Agent(config: config, clock: SystemClock())
        return agent.run()
      } catch {
        Log.error("agent", error.description)
        return error.exitCode
      }
    }
  }
}

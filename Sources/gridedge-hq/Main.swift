import GridEdgeHQ
import Runtime

/// `gridedge-hq`: the reference HQ receiver and command tool.
@main
struct Main {
  static let usage = """
    gridedge-hq — reference HQ receiver for the GridEdge MQTT contract v1

    usage:
      gridedge-hq serve [--host H] [--port P] [--db FILE] [--client-id ID] [--group G]
          subscribe to every device's state (as $share/G/... with --group) and
          keep it in FILE (default gridedge-hq.db) until SIGTERM/SIGINT
      gridedge-hq report [--db FILE] [--json]
          per device: state, boot epoch, births, last seen
      gridedge-hq --help | --version
    """

  static func main() {
    Process.prepare()
    Process.exit(run(Array(Process.arguments().dropFirst())))
  }

  static func run(_ words: [String]) -> Int32 {
    let arguments: Arguments
    do {
      arguments = try Arguments(
        words, valued: ["host", "port", "db", "client-id", "group", "log-level"],
        flags: ["help", "version", "json"])
    } catch {
      Console.writeError("gridedge-hq: " + error.description + "\n\n" + usage + "\n")
      return 2
    }
    if arguments.has("version") {
      Console.writeLine("gridedge-hq " + BuildInfo.version)
      return 0
    }
    guard let command = arguments.positional.first, !arguments.has("help") else {
      Console.write(usage + "\n")
      return arguments.has("help") ? 0 : 2
    }
    if let level = arguments.value("log-level") {
      guard let parsed = LogLevel(name: level) else {
        Console.writeError("gridedge-hq: --log-level must be debug, info, warn or error\n")
        return 2
      }
      Log.level = parsed
    }
    var options = Receiver<SystemClock>.Options()
    if let db = arguments.value("db") { options.databasePath = db }
    switch command {
    case "serve":
      if let host = arguments.value("host") { options.host = host }
      if let text = arguments.value("port") {
        guard let port = Int32(text), port > 0, port < 65536 else {
          Console.writeError("gridedge-hq: --port must be a TCP port, got '" + text + "'\n")
          return 2
        }
        options.port = port
      }
      if let id = arguments.value("client-id") { options.clientID = id }
      options.sharedGroup = arguments.value("group")
      do {
        return try Receiver(options: options, clock: SystemClock()).run()
      } catch {
        Log.error("hq", error.description)
        return 1
      }
    case "report":
      return Report.run(databasePath: options.databasePath, json: arguments.has("json"))
    default:
      Console.writeError("gridedge-hq: unknown command '" + command + "'\n\n" + usage + "\n")
      return 2
    }
  }
}

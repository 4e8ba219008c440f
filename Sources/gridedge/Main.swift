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
      gridedge check-config --config FILE
                                        validate a configuration file and exit
      gridedge --help | --version

    exit codes: 0 ok, 1 runtime failure, 2 bad command line or configuration,
                3 database refused (corrupt: quarantined, or another device's)
    """

  static func main() {
    Process.prepare()
    Process.exit(run(Array(Process.arguments().dropFirst())))
  }

  static func run(_ words: [String]) -> Int32 {
    let arguments: Arguments
    do {
      arguments = try Arguments(words, valued: ["config"], flags: ["help", "version", "json"])
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
    guard arguments.positional.count == 1 else {
      Console.writeError("gridedge: unexpected argument '" + arguments.positional[1] + "'\n")
      return ExitCode.config
    }
    guard ["run", "status", "check-config"].contains(command) else {
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
      Console.writeLine(path + ": ok")
      return ExitCode.ok
    case "status":
      return StatusReport.run(config: config, json: arguments.has("json"))
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

import MeterSim
import Runtime

/// `gridedge-sim`: simulated DL/T 645-2007 meters.
@main
struct Main {
  static let usage = """
    gridedge-sim — simulated DL/T 645-2007 meters for GridEdge

    usage:
      gridedge-sim serve --meters N (--tcp PORT [--host 127.0.0.1] | --pty | both) [model options]
          [--truth-file PATH [--truth-every MS]] [--log-level L]
          serve the meters until SIGTERM/SIGINT: every TCP connection is one RS-485
          bus (a serial-to-Ethernet gateway), --pty adds a pseudo-terminal (its path
          is printed as "pty /dev/pts/N"); --tcp 0 takes any free port (logged).
          --truth-file writes the registers as JSON every MS (default 5000) real
          milliseconds, on SIGHUP and at exit
      gridedge-sim list --meters N [model options] [--json | --area]
          print the customer addresses, one per line (--area: the area meter's
          address; --json: every meter with its profile and injected faults)
      gridedge-sim truth --meters N --start T --at T2 [model options]
          print the registers every meter has at simulated time T2 (unix seconds)
          as JSON, for a run started at --start T that received no commands
      gridedge-sim --help | --version

    model options (the same options give the same meters and registers):
      --seed S                 seed of every random quantity (default 1)
      --start T                simulated unix seconds at start-up (default now)
      --speed X                simulated seconds per real second (default 1; 96 = 15 min per 9.4 s)
      --history-days D         simulate D days before --start at start-up (daily freezes at once)
      --profile P              residential, commercial or mixed (default mixed: ~15 % commercial)
      --first-address ADDR     meter 1's address; the others follow (default 000000000001)
      --area-address ADDR      the area (transformer) meter (default 900000000001); --no-area for none
      --loss PERMILLE          area meter = customers' true consumption × (1000 + loss) / 1000 (default 50)
      --price P                prepaid flat price in 0.0001 CNY/kWh (default 4883)
      --password LEVEL:CODE    control (0x1C) password in hex (default 02:000000)
      --baud B                 pace replies at B bit/s, 11 bits a byte (default 0: no pacing)
    faults (SEL is a meter number 1…N, a range A-B, or a share like 5% picked from the seed;
    several items separated by commas):
      --theft SEL:FACTOR       meter registers FACTOR (0…1) of the true energy (bypass)
      --stopped SEL            registers stand still; current and power still show load
      --reverse SEL            energy goes to the reverse register; negative power
      --silent SEL             never answers
      --drift SEL:SECONDS      clock gains SECONDS per day (negative: loses)
      --slow SEL:MS            replies MS milliseconds late
      --relay-bypass SEL       the relay is bridged: the meter still registers the load when open
      --corrupt PERMILLE       that share of all replies has a wrong checksum
      --faults-from T          theft, stopped and reverse act from simulated unix second T
                               (before it the meters register honestly; default: always)
      --outage TARGET@START+DURATION
                               loss of supply START simulated seconds after the start (or 90s,
                               5m, 1h) for DURATION: TARGET area (every phase, every customer),
                               phases A, B, C or AB... (the area meter shows 0 V on them; the
                               customers on them, meter n on phase A, B, C for n-1 mod 3 = 0, 1,
                               2, three-phase ones only when all are lost) or meters SEL (a
                               branch: the area meter's voltages stay); cut-off meters neither
                               answer nor consume; several items separated by commas
    """

  static func main() {
    Process.prepare()
    Process.exit(run(Array(Process.arguments().dropFirst())))
  }

  static func run(_ words: [String]) -> Int32 {
    let arguments: Arguments
    do {
      arguments = try Arguments(
        words,
        valued: SimulatorOptions.valued.union(ServeOptions.valued).union(["at", "log-level"]),
        flags: SimulatorOptions.flags.union(ServeOptions.flags).union(["help", "version", "json", "area"]))
    } catch {
      return usageError(error.description)
    }
    if arguments.has("version") {
      Console.writeLine("gridedge-sim " + BuildInfo.version)
      return 0
    }
    guard let command = arguments.positional.first, !arguments.has("help") else {
      Console.write(usage + "\n")
      return arguments.has("help") ? 0 : 2
    }
    if let level = arguments.value("log-level") {
      guard let parsed = LogLevel(name: level) else {
        return usageError("--log-level must be debug, info, warn or error")
      }
      Log.level = parsed
    }
    let now = SystemClock().wallMilliseconds
    do {
      switch command {
      case "serve":
        let options = try SimulatorOptions(arguments: arguments, now: now)
        let serve = try ServeOptions(arguments: arguments)
        return SimulatorServer(options: options, serve: serve).run()
      case "list":
        var options = try SimulatorOptions(arguments: arguments, now: now)
        options.historyDays = 0
        let simulator = Simulator(options: options)
        if arguments.has("json") {
          Console.write(simulator.listJSON())
        } else if arguments.has("area") {
          guard let line = simulator.areaAddressLine() else {
            return usageError("list --area: the simulation has --no-area")
          }
          Console.write(line)
        } else {
          Console.write(simulator.addressLines())
        }
        return 0
      case "truth":
        guard arguments.value("start") != nil, let atText = arguments.value("at") else {
          return usageError("truth needs --start T (the serve's start) and --at T2 (unix seconds)")
        }
        let options = try SimulatorOptions(arguments: arguments, now: now)
        guard let at = Int64(atText), at * 1_000 >= options.startMilliseconds, at <= 4_102_444_799 else {
          return usageError("--at must be unix seconds, not before --start, got '" + atText + "'")
        }
        let simulator = Simulator(options: options)
        simulator.advance(to: at * 1_000)
        simulator.writeTruth { Console.write($0) }
        return 0
      default:
        return usageError("unknown command '" + command + "'")
      }
    } catch {
      return usageError(error.description)
    }
  }

  static func usageError(_ message: String) -> Int32 {
    Console.writeError("gridedge-sim: " + message + "\n\n" + usage + "\n")
    return 2
  }
}

import Runtime

/// `gridedge-sim`: simulated DL/T 645 meters.
@main
struct Main {
  static let usage = """
    gridedge-sim — simulated DL/T 645-2007 meters for GridEdge

    usage:
      gridedge-sim --help | --version

    This version has the meter register model only; serving meters on TCP or a
    pty, consumption profiles and injected faults come with the meter issue.
    """

  static func main() {
    Process.prepare()
    let words = Array(Process.arguments().dropFirst())
    let arguments: Arguments
    do {
      arguments = try Arguments(words, valued: [], flags: ["help", "version"])
    } catch {
      Console.writeError("gridedge-sim: " + error.description + "\n\n" + usage + "\n")
      Process.exit(2)
    }
    if arguments.has("version") {
      Console.writeLine("gridedge-sim " + BuildInfo.version)
      Process.exit(0)
    }
    Console.write(usage + "\n")
    Process.exit(arguments.has("help") ? 0 : 2)
  }
}

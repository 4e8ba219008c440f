import Foundation
import SQLiteStore
import TestSupport
import Testing

/// Where the test run's product executables are: beside the test bundle, unless
/// GRIDEDGE_BIN_DIR names another folder (e.g. the Embedded build in .cross/bin/x86_64).
enum Binaries {
  static var directory: URL {
    if let dir = ProcessInfo.processInfo.environment["GRIDEDGE_BIN_DIR"] {
      return URL(fileURLWithPath: dir)
    }
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" {
      url.deleteLastPathComponent()
      if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("gridedge").path) {
        return url
      }
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(
      ".build/debug")
  }

  static func path(_ name: String) throws -> String {
    let path = directory.appendingPathComponent(name).path
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw TestFailure("executable \(name) not found at \(path): build the products first (swift build)")
    }
    return path
  }
}

struct TestFailure: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// The result of a finished command.
struct CommandResult {
  let status: Int32
  let stdout: String
  let stderr: String
}

/// A long-running product executable (agent, receiver) as a child process, started
/// with TestSupport's `ChildProcess` (clean signal mask, no inherited sockets); its
/// stdout and stderr go to one log file.
final class Child {
  let child: ChildProcess
  let logURL: URL

  /// - Parameter via: a command that runs the product, e.g. `["/usr/sbin/ip", "netns",
  ///   "exec", NS]` (it must exec the product in its own process, so that signals reach it).
  init(
    _ name: String, _ arguments: [String], in dir: URL, environment: [String: String] = [:],
    via: [String] = []
  ) throws {
    logURL = dir.appendingPathComponent(name + "-" + UUID().uuidString.prefix(8) + ".log")
    let product = try Binaries.path(name)
    if let wrapper = via.first {
      child = try ChildProcess(
        wrapper, Array(via.dropFirst()) + [product] + arguments, outputFile: logURL, environment: environment)
    } else {
      child = try ChildProcess(product, arguments, outputFile: logURL, environment: environment)
    }
  }

  /// Everything the process wrote so far.
  var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

  /// Sends `signal` (SIGTERM by default).
  func signal(_ signal: Int32 = SIGTERM) { kill(child.pid, signal) }

  /// Waits at most `timeout` seconds for the process to end.
  /// - Returns: its exit code, or 128 + the signal that ended it.
  func wait(timeout: TimeInterval) throws -> Int32 {
    guard waitUntil(timeout: timeout, { !self.child.isRunning }) else {
      child.terminate(signal: SIGKILL)
      throw TestFailure("process did not end within \(timeout) s; log:\n\(log)")
    }
    let status = child.terminationStatus ?? 0
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
  }

  /// Waits until `text` appears in the log, or fails with the log so far.
  func waitForLog(_ text: String, timeout: TimeInterval = 15) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while !log.contains(text) {
      if Date() > deadline { throw TestFailure("'\(text)' not logged within \(timeout) s; log:\n\(log)") }
      if !child.isRunning && !log.contains(text) {
        throw TestFailure("process ended before logging '\(text)'; log:\n\(log)")
      }
      usleep(20_000)
    }
  }

  deinit { child.terminate(signal: SIGKILL) }
}

/// Runs a product executable to completion (at most `timeout` seconds), capturing
/// stdout and stderr apart.
func runProduct(_ name: String, _ arguments: [String], in dir: URL, timeout: TimeInterval = 20) throws
  -> CommandResult
{
  let process = Process()
  process.executableURL = URL(fileURLWithPath: try Binaries.path(name))
  process.arguments = arguments
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  let deadline = Date().addingTimeInterval(timeout)
  // Small outputs: the pipes cannot fill before exit.
  while process.isRunning {
    if Date() > deadline {
      kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
      throw TestFailure("\(name) \(arguments) did not finish within \(timeout) s")
    }
    usleep(10_000)
  }
  return CommandResult(
    status: process.terminationStatus,
    stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
    stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}

/// Reads the retained message on `topic` with mosquitto_sub (from the mosquitto-clients package).
func retainedMessage(on topic: String, port: Int32, timeout: Int = 10) throws -> String {
  let sub = Process()
  guard
    let path = ["/usr/bin/mosquitto_sub", "/usr/local/bin/mosquitto_sub"].first(where: {
      FileManager.default.isExecutableFile(atPath: $0)
    })
  else {
    throw TestFailure("mosquitto_sub not found: install mosquitto-clients (make test does)")
  }
  sub.executableURL = URL(fileURLWithPath: path)
  sub.arguments = ["-h", "127.0.0.1", "-p", String(port), "-t", topic, "-C", "1", "-W", String(timeout)]
  let pipe = Pipe()
  sub.standardOutput = pipe
  try sub.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  sub.waitUntilExit()
  guard sub.terminationStatus == 0 else {
    throw TestFailure(
      "no message on \(topic) within \(timeout) s (mosquitto_sub status \(sub.terminationStatus))")
  }
  return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Decodes a JSON object.
func jsonObject(_ text: String) throws -> [String: Any] {
  guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
    throw TestFailure("not a JSON object: \(text)")
  }
  return object
}

/// `gridedge-sim serve <arguments> --tcp 0` started in `dir`, once it listens.
/// - Returns: the simulator and its TCP port.
func startSimulator(_ arguments: [String], in dir: URL) throws -> (sim: Child, port: String) {
  let sim = try Child("gridedge-sim", ["serve"] + arguments + ["--tcp", "0", "--log-level", "info"], in: dir)
  try sim.waitForLog("listening on tcp 127.0.0.1:")
  let port = sim.log.components(separatedBy: "listening on tcp 127.0.0.1:").last?.prefix { $0.isNumber } ?? ""
  guard !port.isEmpty else { throw TestFailure("gridedge-sim did not say its port: \(sim.log)") }
  return (sim, String(port))
}

/// A mosquitto broker and `gridedge-hq serve` on it, its database in a test's folder.
/// Both stop when this is released: keep it to the end of the test
/// (`withExtendedLifetime`).
final class HQUnderTest {
  let broker: MosquittoBroker
  let hq: Child
  /// HQ's database.
  let db: String
  var port: Int32 { broker.port }

  init(in dir: URL) throws {
    broker = try MosquittoBroker()
    db = dir.appendingPathComponent("hq.db").path
    hq = try Child("gridedge-hq", ["serve", "--port", String(broker.port), "--db", db], in: dir)
    try hq.waitForLog("connected to")
  }
}

/// The configuration lines every command-taking agent of the end-to-end tests has:
/// device, database in `dir`, the broker with quick reconnects, HQ's keys in `keys`.
func agentBaseConfig(device: String, dir: URL, port: Int32, keys: String) -> String {
  """
  device.id = \(device)
  store.path = \(dir.appendingPathComponent("agent.db").path)
  mqtt.port = \(port)
  mqtt.reconnect_min = 100
  mqtt.reconnect_max = 1000
  sync.backlog_rate = 0
  commands.trusted_keys = \(keys)/trusted-keys

  """
}

/// `gridedge-hq send`: signs device `device`'s next command with `keys`/hq1.key and
/// publishes it through the broker on `port`.
func hqSend(
  _ type: String, _ body: String, device: String, keys: String, hqDB: String, port: Int32, in dir: URL
) throws -> CommandResult {
  try runProduct(
    "gridedge-hq",
    [
      "send", "--db", hqDB, "--port", String(port), "--key", "\(keys)/hq1.key", "--kid", "hq1", "--dev",
      device,
      "--typ", type, "--body", body,
    ], in: dir)
}

/// The records of `recordClass` that `gridedge-hq` stored for `device`, oldest first
/// (empty while its database is not there yet).
func storedAtHQ(_ hqDB: String, device: String, _ recordClass: String) -> [[String: Any]] {
  guard FileManager.default.fileExists(atPath: hqDB) else { return [] }
  guard let db = try? readOnlyConnection(hqDB),
    let rows = try? db.query(
      "SELECT body FROM records WHERE device_id = ?1 AND class = ?2 ORDER BY id",
      [.text(device), .text(recordClass)])
  else { return [] }
  return rows.compactMap { row in
    (try? JSONSerialization.jsonObject(with: Data((row.text(0) ?? "").utf8))) as? [String: Any]
  }
}

/// The relay of `address` as `gridedge-sim` has it in its `--truth-file` (nil while
/// the file is not there).
func simulatorRelayOpen(_ truthFile: URL, _ address: String) -> Bool? {
  guard let data = try? Data(contentsOf: truthFile),
    let truth = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
    let customers = truth["customers"] as? [[String: Any]],
    let meter = customers.first(where: { $0["address"] as? String == address })
  else { return nil }
  return meter["relay_open"] as? Bool
}

/// The lines of an agent that reads `gridedge-sim` meters over TCP every second and
/// controls relays at any time without grace (no windows, days or backoff to wait out).
func simulatedRelayConfig(meterFile: URL, simPort: String) -> String {
  """
  meter.file = \(meterFile.path)
  bus.1 = tcp 127.0.0.1:\(simPort) 9600 8E1
  bus.timeout = 300
  acquisition.interval = 1
  acquisition.clock_check = 0
  acquisition.backfill_days = 0
  control.no_disconnect_hours = none
  control.no_disconnect_days = none
  control.grace = *:0
  control.valid_for = 1440
  control.retry_min = 500
  log.level = info

  """
}

/// Builds Tests/Fixtures/powerloss_vfs.c (the fault-injecting SQLite VFS, loaded
/// with LD_PRELOAD: power losses, I/O errors, a full disk) into `dir`.
/// - Returns: the path of the shared object.
func buildFaultVFS(in dir: URL) throws -> String {
  let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/powerloss_vfs.c")
  let shim = dir.appendingPathComponent("powerloss_vfs.so").path
  let built = try runProcess(
    "cc", ["-O2", "-shared", "-fPIC", "-o", shim, source.path, "-lsqlite3"], in: dir)
  guard built.status == 0 else { throw TestFailure("building the fault VFS failed: \(built.output)") }
  return shim
}

/// `gridedge-hq report --json`'s entry for `device`.
func hqReport(_ hqDB: String, device: String, in dir: URL) throws -> [String: Any] {
  let out = try runProduct("gridedge-hq", ["report", "--db", hqDB, "--json"], in: dir)
  guard out.status == 0,
    let devices = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]],
    let entry = devices.first(where: { $0["device"] as? String == device })
  else { throw TestFailure("gridedge-hq report: \(out.stderr) \(out.stdout)") }
  return entry
}

/// The configuration of an agent of the end-to-end tests (`agentBaseConfig`) that reads
/// `gridedge-sim` meters over TCP port `simPort` as bus 1, a cycle a minute, without
/// backfill or clock checks; `extra` lines are appended.
func simulatedMetersConfig(
  device: String, dir: URL, port: Int32, keys: String, simPort: String, extra: String = ""
) -> String {
  agentBaseConfig(device: device, dir: dir, port: port, keys: keys) + """
    bus.1 = tcp 127.0.0.1:\(simPort) 9600 8E1
    bus.timeout = 300
    acquisition.interval = 1
    acquisition.clock_check = 0
    \(extra)

    """
}

/// `hqSend`, failing unless it succeeded.
/// - Returns: the command's counter (`sent command N ...`).
func hqSendCounter(
  _ type: String, _ body: String, device: String, keys: String, hqDB: String, port: Int32, in dir: URL
) throws -> String {
  let out = try hqSend(type, body, device: device, keys: keys, hqDB: hqDB, port: port, in: dir)
  guard out.status == 0, let ctr = out.stdout.split(separator: " ").dropFirst(2).first else {
    throw TestFailure("gridedge-hq send \(type): \(out.stderr)")
  }
  return String(ctr)
}

/// A tariff for every residential customer: flat 0.5 CNY/kWh from 2020.
let residentialTariff = #"{"id":"RES-1","category":"residential","effective_from":"2020-01-01","flat":5000}"#

/// An archive snapshot (version 1) of meters 1...`meters` (`000000000001`...), customer
/// `C-<n>` each, area TA-1, residential.
func residentialArchive(meters: Int) -> String {
  let list = (1...meters).map {
    #"{"address":"\#(String(format: "%012d", $0))","customer":"C-\#($0)","area":"TA-1","category":"residential"}"#
  }
  return #"{"op":"snapshot","version":1,"meters":[\#(list.joined(separator: ","))]}"#
}

/// A read-only connection to a database another process writes (no integrity check).
func readOnlyConnection(_ path: String) throws -> Connection {
  var options = Connection.Options()
  options.readOnly = true
  options.verifyIntegrity = false
  return try Connection(path: path, options: options)
}

/// What the end-to-end tests with simulated meters share: a fresh folder, HQ's key
/// (kid hq1), `gridedge-sim` on TCP, a broker with `gridedge-hq`, and the agent's
/// configuration file (`simulatedMetersConfig`). The processes stop when it is released.
struct SimulatedSite {
  let dir: URL
  let keys: String
  let sim: Child
  let rig: HQUnderTest
  let agentDB: String
  let config: String

  init(_ label: String, device: String, simulator: [String], extra: String) throws {
    dir = try makeTemporaryDirectory(label)
    keys = dir.appendingPathComponent("keys").path
    let keygen = try runProduct("gridedge-hq", ["keygen", "--out", keys, "--kid", "hq1"], in: dir)
    guard keygen.status == 0 else { throw TestFailure("gridedge-hq keygen: \(keygen.stderr)") }
    let simPort: String
    (sim, simPort) = try startSimulator(simulator, in: dir)
    rig = try HQUnderTest(in: dir)
    agentDB = dir.appendingPathComponent("agent.db").path
    config = dir.appendingPathComponent("agent.conf").path
    try simulatedMetersConfig(
      device: device, dir: dir, port: rig.port, keys: keys, simPort: simPort, extra: extra
    ).write(toFile: config, atomically: true, encoding: .utf8)
  }
}

import DLT645
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `gridedge-sim` as a process: serve on TCP and a pty, list, truth.
@Suite(.serialized) struct ProcessTests {
  /// A start on a whole minute: 2026-01-01 08:00 in China.
  private let start = "1767225600"

  @Test func serveAnswersAReadOfForwardEnergyOverTCPAsTheTruthSays() throws {
    let port = try freeLoopbackPort()
    let sim = try SimProcess([
      "serve", "--meters", "5", "--tcp", String(port), "--seed", "7", "--start", start, "--silent", "3",
    ])
    try sim.waitForLog("listening on tcp 127.0.0.1:\(port)")
    #expect(sim.log.contains("5 meters 000000000001…000000000005"))
    #expect(sim.log.contains("seed 7"))
    let bus = try BusClient(port: port)
    let result = try bus.exchange(Request.read(.forwardActiveTotal).frame(to: Address("000000000002")!))
    guard case .frame(let frame) = result,
      case .readData(.forwardActiveTotal, let bytes, _) = try Reply(frame: frame)
    else { throw TestFailure("no read reply: \(result)\n\(sim.log)") }
    #expect(frame.address == Address("000000000002"))
    guard
      case .energy(let centiKilowattHours) = try MeterValue(decoding: bytes[...], for: .forwardActiveTotal)
    else {
      throw TestFailure("not energy")
    }
    // Real time: the register read lies between the truth at the start and a minute later.
    let atStart = try truthTotal(meter: 2, at: start, extra: ["--silent", "3"])
    let later = try truthTotal(meter: 2, at: String(Int(start)! + 60), extra: ["--silent", "3"])
    #expect(centiKilowattHours >= atStart && centiKilowattHours <= later)

    // The silent meter: nothing comes back.
    let silent = try bus.exchange(
      Request.read(.forwardActiveTotal).frame(to: Address("000000000003")!), timeout: 0.5)
    guard case .nothing = silent else { throw TestFailure("silent meter answered: \(silent)") }

    sim.signal(SIGTERM)
    #expect(try sim.wait(timeout: 10) == 0)
    #expect(sim.log.contains("SIGTERM received, stopping"))
    #expect(sim.log.contains("stopped after 2 requests, 1 replies"))
  }

  @Test func corruptedRepliesFailTheChecksum() throws {
    let port = try freeLoopbackPort()
    let sim = try SimProcess([
      "serve", "--meters", "2", "--tcp", String(port), "--corrupt", "1000", "--start", start,
    ])
    try sim.waitForLog("listening on tcp")
    let bus = try BusClient(port: port)
    let result = try bus.exchange(Request.read(.forwardActiveTotal).frame(to: Address("000000000001")!))
    guard case .malformed(let error) = result else {
      throw TestFailure("expected a bad checksum, got \(result)")
    }
    #expect(error.code == .checksumMismatch)
  }

  @Test func lineRateAndSlowMeterDelayTheReply() throws {
    let port = try freeLoopbackPort()
    let sim = try SimProcess([
      "serve", "--meters", "2", "--tcp", String(port), "--baud", "1200", "--slow", "2:300", "--start", start,
    ])
    try sim.waitForLog("listening on tcp")
    let bus = try BusClient(port: port)
    // Request 4 + 16 bytes, reply 4 + 18 bytes: 42 × 11 bits at 1200 Bd = 385 ms.
    var began = Date()
    guard
      case .frame = try bus.exchange(Request.read(.forwardActiveTotal).frame(to: Address("000000000001")!))
    else {
      throw TestFailure("no reply")
    }
    let paced = Date().timeIntervalSince(began)
    #expect(paced >= 0.37 && paced < 1.5, "\(paced) s")
    began = Date()
    guard
      case .frame = try bus.exchange(Request.read(.forwardActiveTotal).frame(to: Address("000000000002")!))
    else {
      throw TestFailure("no reply")
    }
    let slow = Date().timeIntervalSince(began)
    #expect(slow >= 0.67 && slow < 2, "\(slow) s")
  }

  @Test func ptyServesTheSameBus() throws {
    let sim = try SimProcess(["serve", "--meters", "1", "--no-area", "--pty", "--start", start])
    try sim.waitForLog("listening on pty /dev/pts/")
    guard let line = sim.log.split(separator: "\n").first(where: { $0.hasPrefix("pty /dev/pts/") }) else {
      throw TestFailure("no pty line on stdout:\n\(sim.log)")
    }
    let path = String(line.dropFirst(4))
    let fd = open(path, O_RDWR | O_NOCTTY)
    #expect(fd >= 0, "open \(path)")
    defer { close(fd) }
    var settings = termios()
    tcgetattr(fd, &settings)
    cfmakeraw(&settings)
    tcsetattr(fd, TCSANOW, &settings)
    let bus = BusClient(fd: fd)
    let result = try bus.exchange(Request.readAddress.frame(to: .wildcard))
    guard case .frame(let frame) = result else { throw TestFailure("no reply on the pty: \(result)") }
    #expect(try Reply(frame: frame) == .address(Address("000000000001")!))
  }

  @Test func truthFileFollowsTheAcceleratedClockAndMatchesWhatTheMetersSay() throws {
    let dir = try makeTemporaryDirectory("sim-truth")
    let file = dir.appendingPathComponent("truth.json")
    let port = try freeLoopbackPort()
    let sim = try SimProcess([
      "serve", "--meters", "3", "--tcp", String(port), "--truth-file", file.path, "--truth-every", "100",
      "--speed", "3600", "--start", start, "--history-days", "1",
    ])
    try sim.waitForLog("listening on tcp")
    // 3600× real time: a simulated hour passes every second.
    let startMilliseconds = Int(start)! * 1_000
    #expect(
      waitUntil(timeout: 10) {
        ((try? readJSON(file))?["time_ms"] as? Int ?? 0) >= startMilliseconds + 3_600_000
      })
    let bus = try BusClient(port: port)
    let trip = ControlRequest(
      password: try Password(level: 2, code: 0), operatorCode: 1, command: .trip,
      validUntil: try MeterDateTime(year: 2099, month: 1, day: 1, hour: 0, minute: 0, second: 0))
    guard case .frame(let frame) = try bus.exchange(Request.control(trip).frame(to: Address("000000000001")!))
    else {
      throw TestFailure("no control reply")
    }
    #expect(try Reply(frame: frame) == .controlAccepted)
    // The last daily freeze read over the wire, as the agent will store it.
    guard
      case .frame(let freezeFrame) = try bus.exchange(
        Request.read(.lastDailyFreezeForwardActive).frame(to: Address("000000000002")!)),
      case .readData(_, let bytes, _) = try Reply(frame: freezeFrame),
      case .energyRegisters(let frozen) = try MeterValue(
        decoding: bytes[...], for: .lastDailyFreezeForwardActive)
    else { throw TestFailure("no freeze reply") }

    sim.signal(SIGTERM)
    #expect(try sim.wait(timeout: 10) == 0)
    let object = try readJSON(file)
    let customers = object["customers"] as? [[String: Any]] ?? []
    #expect(customers.count == 3)
    #expect(customers.first?["relay_open"] as? Bool == true)
    #expect(customers.last?["relay_open"] as? Bool == false)
    let freezes = customers[1]["freezes"] as? [[String: Any]] ?? []
    #expect(freezes.first?["date"] as? String == "2026-01-01")
    #expect(
      freezes.first?["forward_centi_kwh"] as? [Int] == ([frozen.total] + frozen.tariffs).map { Int($0) })
    #expect((object["area"] as? [String: Any])?["address"] as? String == "900000000001")
  }

  @Test func listPrintsTheAddressesAndTheirFaults() throws {
    let plain = try runSim(["list", "--meters", "3", "--first-address", "000012340000"])
    #expect(plain.status == 0)
    #expect(plain.stdout == "000012340000\n000012340001\n000012340002\n")
    let area = try runSim(["list", "--meters", "3", "--area"])
    #expect(area.stdout == "900000000001\n")
    let json = try runSim(["list", "--meters", "4", "--json", "--theft", "2:0.4", "--profile", "residential"])
    let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
    let customers = object?["customers"] as? [[String: Any]] ?? []
    #expect(customers.count == 4)
    #expect(customers[1]["address"] as? String == "000000000002")
    #expect(customers[1]["profile"] as? String == "residential")
    #expect((customers[1]["faults"] as? [String: Any])?["registered_permille"] as? Int == 400)
    #expect((customers[0]["faults"] as? [String: Any])?["registered_permille"] as? Int == 1_000)
  }

  @Test func badCommandLinesExitWithUsageAndTheReason() throws {
    let unknown = try runSim(["serve", "--meters", "3", "--tcp", "0", "--stopped", "9"])
    #expect(unknown.status == 2)
    #expect(unknown.stderr.contains("--stopped '9': expected meter numbers from 1 to 3"))
    let noListener = try runSim(["serve", "--meters", "3"])
    #expect(noListener.status == 2)
    #expect(noListener.stderr.contains("serve needs --tcp PORT, --pty or both"))
    let truth = try runSim(["truth", "--meters", "3", "--at", start])
    #expect(truth.status == 2)
    #expect(truth.stderr.contains("truth needs --start"))
    let help = try runSim(["--help"])
    #expect(help.status == 0 && help.stdout.contains("usage:") && help.stdout.contains("--theft SEL:FACTOR"))
  }

  /// The forward total of meter `meter` (0.01 kWh) from `gridedge-sim truth`.
  private func truthTotal(meter: Int, at: String, extra: [String]) throws -> Int64 {
    let result = try runSim(["truth", "--meters", "5", "--seed", "7", "--start", start, "--at", at] + extra)
    guard result.status == 0,
      let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
      let customers = object["customers"] as? [[String: Any]],
      let registers = customers[meter - 1]["forward_centi_kwh"] as? [Int]
    else { throw TestFailure("truth failed: \(result.stderr)") }
    return Int64(registers[0])
  }
}

/// A JSON object from a file.
func readJSON(_ url: URL) throws -> [String: Any] {
  guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
    throw TestFailure("\(url.path) is not a JSON object")
  }
  return object
}

/// `gridedge-sim serve` as a child process; stdout and stderr go to one log file.
final class SimProcess {
  let child: ChildProcess
  let logURL: URL

  init(_ arguments: [String]) throws {
    logURL = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gridedge-sim-\(UUID().uuidString).log")
    child = try ChildProcess(try Binaries.path("gridedge-sim"), arguments, outputFile: logURL)
  }

  /// Everything the process wrote so far.
  var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

  func signal(_ signal: Int32) { kill(child.pid, signal) }

  /// Waits until `text` is in the log, or fails with the log so far.
  func waitForLog(_ text: String, timeout: Double = 15) throws {
    guard waitUntil(timeout: timeout, { log.contains(text) || !child.isRunning }), log.contains(text) else {
      throw TestFailure("'\(text)' not logged; log:\n\(log)")
    }
  }

  /// The exit code (128 + signal when killed).
  func wait(timeout: Double) throws -> Int32 {
    guard waitUntil(timeout: timeout, { !child.isRunning }) else {
      child.terminate(signal: SIGKILL)
      throw TestFailure("gridedge-sim did not stop; log:\n\(log)")
    }
    let status = child.terminationStatus ?? 0
    return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
  }

  deinit {
    child.terminate(signal: SIGKILL)
    try? FileManager.default.removeItem(at: logURL)
  }
}

/// The master's end of a bus: a TCP connection to the simulator, or a pty.
final class BusClient {
  enum Result {
    case nothing
    case frame(Frame)
    case malformed(FrameError)
  }

  let fd: Int32
  private let owns: Bool

  init(port: Int32) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard rc == 0 else {
      close(fd)
      throw TestFailure("connect 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
    }
    self.fd = fd
    self.owns = true
  }

  init(fd: Int32) {
    self.fd = fd
    self.owns = false
  }

  deinit { if owns { close(fd) } }

  /// Sends `frame` (with 4 wake-up bytes) and waits up to `timeout` seconds for one
  /// reply frame.
  func exchange(_ frame: Frame, timeout: Double = 5) throws -> Result {
    let bytes = frame.encoded(wakeUpBytes: 4)
    let sent = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard sent == bytes.count else { throw TestFailure("write failed") }
    var decoder = FrameDecoder()
    let deadline = Date().addingTimeInterval(timeout)
    var buffer = [UInt8](repeating: 0, count: 512)
    while Date() < deadline {
      var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let wait = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
      guard poll(&poller, 1, wait) > 0 else { continue }
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      guard n > 0 else { throw TestFailure("connection closed") }
      decoder.feed(buffer[0..<n])
      do {
        if let frame = try decoder.next() { return .frame(frame) }
      } catch {
        return .malformed(error)
      }
    }
    return .nothing
  }
}

/// The result of a finished `gridedge-sim` command.
struct CommandResult {
  let status: Int32
  let stdout: String
  let stderr: String
}

/// Runs `gridedge-sim` with `arguments` to completion.
func runSim(_ arguments: [String]) throws -> CommandResult {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: try Binaries.path("gridedge-sim"))
  process.arguments = arguments
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  // Read while it runs: a truth document can be larger than a pipe's buffer.
  let output = out.fileHandleForReading.readDataToEndOfFile()
  let errors = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return CommandResult(
    status: process.terminationStatus, stdout: String(decoding: output, as: UTF8.self),
    stderr: String(decoding: errors, as: UTF8.self))
}

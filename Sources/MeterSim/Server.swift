import CLibc
import DLT645
import Runtime

/// `gridedge-sim serve`: the simulator behind a TCP port and/or a pty, in one
/// `poll(2)` loop (no threads), until SIGTERM or SIGINT.
///
/// Each TCP connection is one RS-485 bus (as a serial-to-Ethernet gateway gives it);
/// the pty is one more. Simulated time is `start + (monotonic − monotonic at start) ×
/// speed`; the meters are advanced to it before every batch of requests. SIGHUP
/// writes the truth file (when one is configured) without stopping.
public final class SimulatorServer {
  /// At most this many TCP connections at once; more are closed at once.
  public static let maximumConnections = 32

  private let simulator: Simulator
  private let serve: ServeOptions
  private let clock = SystemClock()
  private let monotonicStart: Int64
  private var listener: TCPListener?
  private var pty: PseudoTerminal?
  private var connections: [BusConnection] = []
  private var nextTruthWrite: Int64 = 0
  private var requestCount = 0
  private var replyCount = 0

  /// A server for `options` (already validated), listening as `serve` says. Builds
  /// the meters (and their history) at once.
  public init(options: SimulatorOptions, serve: ServeOptions) {
    self.simulator = Simulator(options: options)
    self.serve = serve
    self.monotonicStart = clock.monotonicMilliseconds
  }

  /// The simulated time now, unix milliseconds.
  private var simulatedNow: Int64 {
    let elapsed = clock.monotonicMilliseconds - monotonicStart
    return simulator.options.startMilliseconds + elapsed * simulator.options.speedPermille / 1_000
  }

  /// Listens and serves until SIGTERM/SIGINT.
  /// - Returns: the exit code: 0 after a clean stop, 1 when listening failed.
  public func run() -> Int32 {
    let signals: TerminationSignals
    do {
      signals = try TerminationSignals()
      if let port = serve.tcpPort { listener = try TCPListener(host: serve.host, port: port) }
      if serve.pty { pty = try PseudoTerminal() }
    } catch {
      Log.error("sim", error.description)
      return 1
    }
    announce()
    if let pty {
      connections.append(BusConnection(fd: pty.masterFD, name: "pty " + pty.slavePath, ownsDescriptor: false))
    }
    nextTruthWrite = clock.monotonicMilliseconds
    var running = true
    while running {
      var requests = [PollRequest(fd: signals.fd)]
      if let listener { requests.append(PollRequest(fd: listener.fd)) }
      for connection in connections {
        requests.append(PollRequest(fd: connection.fd, read: true, write: connection.isBlocked))
      }
      let results: [PollResult]
      do {
        results = try Poller.wait(requests, timeoutMilliseconds: timeout())
      } catch {
        Log.error("sim", error.description)
        return 1
      }
      let now = clock.monotonicMilliseconds
      simulator.advance(to: simulatedNow)
      if results[0].readable {
        for signal in signals.take() {
          if signal == SIGHUP {
            writeTruth()
          } else {
            Log.info("sim", TerminationSignals.name(signal) + " received, stopping")
            running = false
          }
        }
      }
      var index = 1
      if let listener {
        if results[1].readable { accept(listener) }
        index = 2
      }
      var closed: [Int32] = []
      for result in results[index...] where result.readable || result.failed {
        guard let connection = connections.first(where: { $0.fd == result.fd }) else { continue }
        if !receive(on: connection, at: now) { closed.append(connection.fd) }
      }
      for connection in connections where !connection.flush(now: clock.monotonicMilliseconds) {
        closed.append(connection.fd)
      }
      if !closed.isEmpty {
        for connection in connections where closed.contains(connection.fd) {
          Log.info("sim", connection.name + " closed")
        }
        connections.removeAll { closed.contains($0.fd) }
      }
      if serve.truthFile != nil && clock.monotonicMilliseconds >= nextTruthWrite {
        writeTruth()
      }
    }
    simulator.advance(to: simulatedNow)
    writeTruth()
    connections.removeAll()
    Log.info(
      "sim",
      "stopped after " + String(requestCount) + " requests, " + String(replyCount) + " replies ("
        + String(simulator.corruptedReplyCount) + " corrupted)")
    return 0
  }

  /// The start-up line (where it listens, how many meters, the seed) and the pty
  /// path on stdout.
  private func announce() {
    let options = simulator.options
    var line =
      String(options.meterCount) + " meters " + options.firstAddress.description + "…"
      + options.customerAddress(number: options.meterCount).description
    if let area = options.areaAddress {
      line += " + area meter " + area.description + " (loss " + String(options.lossPermille) + "‰)"
    }
    line += ", seed " + String(options.seed) + ", profile " + options.profile.name
    line +=
      ", speed " + decimalText(options.speedPermille) + ", start "
      + formatUTC(milliseconds: options.startMilliseconds)
    if options.baud > 0 { line += ", " + String(options.baud) + " Bd" }
    if let listener { line += "; listening on tcp " + serve.host + ":" + String(listener.port) }
    if let pty {
      line += (listener == nil ? "; listening on " : ", ") + "pty " + pty.slavePath
      Console.writeLine("pty " + pty.slavePath)
    }
    Log.info("sim", line)
    var faulty = 0
    for meter in simulator.meters where !meter.faults.isNone { faulty += 1 }
    if faulty > 0 || options.corruptPermille > 0 {
      Log.info(
        "sim",
        String(faulty) + " meters with injected faults, " + String(options.corruptPermille)
          + "‰ of replies corrupted (gridedge-sim list --json shows which)")
    }
  }

  /// Milliseconds until the next reply is due or the truth file is written, at most 1 s.
  private func timeout() -> Int32 {
    let now = clock.monotonicMilliseconds
    var deadline = now + 1_000
    for connection in connections {
      if let due = connection.nextDue { deadline = min(deadline, due) }
    }
    if serve.truthFile != nil { deadline = min(deadline, nextTruthWrite) }
    return Int32(max(0, deadline - now))
  }

  private func accept(_ listener: TCPListener) {
    while let fd = listener.accept() {
      guard connections.count < SimulatorServer.maximumConnections else {
        Log.warn(
          "sim", "more than " + String(SimulatorServer.maximumConnections) + " connections, closing one")
        close(fd)
        continue
      }
      let connection = BusConnection(fd: fd, name: "tcp connection " + String(fd), ownsDescriptor: true)
      connections.append(connection)
      Log.info("sim", connection.name + " opened")
    }
  }

  /// Reads what arrived on `connection` and answers every complete request.
  /// - Returns: false when the peer closed or the descriptor failed.
  private func receive(on connection: BusConnection, at now: Int64) -> Bool {
    var buffer = [UInt8](repeating: 0, count: 4_096)
    while true {
      let n = buffer.withUnsafeMutableBytes { CLibc.read(connection.fd, $0.baseAddress, $0.count) }
      if n == 0 { return false }
      if n < 0 {
        let code = clibc_errno()
        if code == EINTR { continue }
        return code == EAGAIN || code == EWOULDBLOCK
      }
      connection.decoder.feed(buffer[0..<n])
      while true {
        let before = connection.decoder.position
        do {
          guard let frame = try connection.decoder.next() else { break }
          requestCount += 1
          let reply = simulator.handle(frame)
          if reply != nil { replyCount += 1 }
          connection.schedule(
            requestBytes: connection.decoder.position - before, arrivedAt: now, reply: reply,
            baud: simulator.options.baud)
        } catch {
          Log.debug("sim", connection.name + ": " + error.description)
        }
      }
      if n < buffer.count { return true }
    }
  }

  /// Writes the truth file now (when configured) and books the next write: piece by
  /// piece into PATH.tmp, then renamed over PATH, so a reader sees a whole document.
  /// (No fsync: it is a test aid, not data to keep over a power cut.)
  private func writeTruth() {
    guard let path = serve.truthFile else { return }
    nextTruthWrite = clock.monotonicMilliseconds + serve.truthEveryMilliseconds
    let temporary = path + ".tmp"
    let fd = clibc_open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      Log.warn("sim", "truth file: " + SystemError.current("open " + temporary).description)
      return
    }
    var failure: SystemError? = nil
    simulator.writeTruth { piece in
      guard failure == nil else { return }
      let bytes = Array(piece.utf8)
      var done = 0
      while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 {
          if clibc_errno() == EINTR { continue }
          failure = SystemError.current("write " + temporary)
          return
        }
        done += n
      }
    }
    close(fd)
    if failure == nil && rename(temporary, path) != 0 { failure = SystemError.current("rename " + path) }
    if let failure { Log.warn("sim", "truth file: " + failure.description) }
  }
}

/// "96" or "0.5" for a value in ‰.
func decimalText(_ permille: Int64) -> String {
  let whole = String(permille / 1_000)
  var fraction = permille % 1_000
  guard fraction != 0 else { return whole }
  var digits = ""
  var width = 3
  while fraction % 10 == 0 {
    fraction /= 10
    width -= 1
  }
  digits = String(fraction)
  while digits.utf8.count < width { digits = "0" + digits }
  return whole + "." + digits
}

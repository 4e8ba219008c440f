// Shared helpers for GridEdge tests: temporary directories, waiting, and a real
// mosquitto broker per test. Generic on purpose (no dependency on GridEdge targets).
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A failure in the test harness itself (broker missing, broker not starting...).
public struct TestSupportError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// Makes a fresh, unique directory under the system temporary directory.
/// - Parameter label: a readable prefix, e.g. the test name.
public func makeTemporaryDirectory(_ label: String) throws -> URL {
  let safe = label.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }
  let url = FileManager.default.temporaryDirectory
    .appendingPathComponent("gridedge-\(String(safe))-\(UUID().uuidString)", isDirectory: true)
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// Calls `poll` then checks `condition`, repeatedly, until the condition holds or
/// `timeout` seconds pass. `poll` should block briefly (e.g. poll(2) with a 50 ms
/// timeout) or the loop sleeps 10 ms between rounds when it returns at once.
/// - Returns: whether the condition held in time.
public func waitUntil(timeout: Double, poll: () -> Void = {}, _ condition: () -> Bool) -> Bool {
  let deadline = Date().addingTimeInterval(timeout)
  while true {
    if condition() { return true }
    if Date() >= deadline { return false }
    let before = Date()
    poll()
    if Date().timeIntervalSince(before) < 0.001 { usleep(10_000) }
  }
}

/// A whole-number soak parameter from the environment: `make soak` (.ci/soak.sh) sets
/// the long forms' counts and durations (e.g. `GRIDEDGE_BROKER_FLAPS=60`); `make test`
/// leaves them unset and the short form's `default` applies.
/// - Throws: `TestSupportError` when the variable is set but not a whole number ≥ 1 (a
///   typo must not quietly run the short form).
public func soakParameter(_ variable: String, default value: Int) throws -> Int {
  guard let text = ProcessInfo.processInfo.environment[variable], !text.isEmpty else { return value }
  guard let number = Int(text), number >= 1 else {
    throw TestSupportError("\(variable) must be a whole number of at least 1, not '\(text)'")
  }
  return number
}

/// Prints one figure for `make soak`'s table: `soak NAME VALUE UNIT` alone on a line
/// (.ci/soak.sh collects these lines from the test output, as .ci/bench.sh does `bench`
/// lines).
public func soakFigure(_ name: String, _ value: some CustomStringConvertible, _ unit: String) {
  print("soak \(name) \(value) \(unit)")
}

/// A free TCP port on 127.0.0.1 at the time of the call (bind to port 0, read the
/// port, close). Another process could take it before it is used; `MosquittoBroker`
/// retries with a new port when that happens.
public func freeLoopbackPort() throws -> Int32 {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { throw TestSupportError("socket(): \(String(cString: strerror(errno)))") }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = 0
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let bound = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
      bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
    }
  }
  guard bound else { throw TestSupportError("bind 127.0.0.1:0: \(String(cString: strerror(errno)))") }
  return Int32(UInt16(bigEndian: address.sin_port))
}

/// True when something accepts TCP connections on 127.0.0.1:`port` right now.
public func loopbackPortAccepts(_ port: Int32) -> Bool {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return false }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = UInt16(port).bigEndian
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  return withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
    }
  }
}

/// The mosquitto broker executable: on PATH, else /usr/sbin/mosquitto.
public func findExecutable(_ name: String, fallbacks: [String] = []) -> String? {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
  let candidates = path.split(separator: ":").map { "\($0)/\(name)" } + fallbacks
  return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// A child process started with `posix_spawn`, with what Foundation's `Process` does not
/// give on Linux:
/// * an empty signal mask and default signal actions. A test runs on a Dispatch worker
///   thread that blocks most signals, and `Process` passes that mask on: mosquitto
///   would then never see SIGTERM;
/// * no inherited descriptors beyond stdin/stdout/stderr, so a child never keeps another
///   test's MQTT socket open (which would stop the broker from noticing that a client
///   went away, and so from sending its will).
public final class ChildProcess {
  public let pid: pid_t
  public let executable: String
  private var exitStatus: Int32?

  /// Starts `executable` with `arguments`; stdin is /dev/null, stdout and stderr go
  /// to `outputFile` (or /dev/null); `environment` is added to this process's.
  public init(
    _ executable: String, _ arguments: [String], outputFile: URL? = nil, directory: URL? = nil,
    environment: [String: String] = [:]
  ) throws {
    self.executable = executable
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    var all = sigset_t()
    sigfillset(&all)
    sigdelset(&all, SIGKILL)
    sigdelset(&all, SIGSTOP)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(
      &actions, 1, outputFile?.path ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    closeInheritedDescriptors(&actions)

    // Arguments: exec in `directory` through /bin/sh when asked (posix_spawn has no
    // portable chdir action in Swift's Glibc).
    var argv = [executable] + arguments
    var path = executable
    if let directory {
      argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory.path, executable] + arguments
      path = "/bin/sh"
    }
    var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for argument in cArguments { free(argument) } }
    var variables = ProcessInfo.processInfo.environment
    for (name, value) in environment { variables[name] = value }
    var cEnvironment: [UnsafeMutablePointer<CChar>?] =
      variables.map { strdup($0.key + "=" + $0.value) } + [nil]
    defer { for variable in cEnvironment { free(variable) } }
    var child: pid_t = 0
    let rc = posix_spawn(&child, path, &actions, &attributes, &cArguments, &cEnvironment)
    guard rc == 0 else {
      throw TestSupportError("posix_spawn \(executable): \(String(cString: strerror(rc)))")
    }
    pid = child
  }

  deinit { terminate() }

  /// Whether the process is still running (reaps it when it has exited).
  public var isRunning: Bool {
    if exitStatus != nil { return false }
    var status: Int32 = 0
    let rc = waitpid(pid, &status, WNOHANG)
    if rc == pid || (rc < 0 && errno == ECHILD) {
      exitStatus = status
      return false
    }
    return true
  }

  /// The raw wait status once the process has exited.
  public var terminationStatus: Int32? {
    _ = isRunning
    return exitStatus
  }

  /// Sends `signal`, then waits up to `timeout` seconds for the exit; SIGKILL after that.
  public func terminate(signal: Int32 = SIGTERM, timeout: Double = 5) {
    guard isRunning else { return }
    _ = Glibc.kill(pid, signal)
    if !waitUntil(timeout: timeout, { !self.isRunning }) {
      _ = Glibc.kill(pid, SIGKILL)
      waitForExit()
    }
  }

  /// Blocks until the process exits.
  public func waitForExit() {
    guard exitStatus == nil else { return }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    exitStatus = status
  }
}

/// Adds "close every descriptor from 3 up" to `actions`: glibc's
/// `posix_spawn_file_actions_addclosefrom_np` (2.34+, not exported to Swift, so found
/// with dlsym), else one close action per descriptor open now.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
  typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
  if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
    let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
    if closeFrom(&actions, 3) == 0 { return }
  }
  let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
  for fd in open.compactMap({ Int32($0) }) where fd > 2 {
    posix_spawn_file_actions_addclose(&actions, fd)
  }
}

/// A real mosquitto broker on a free loopback port, for one test.
///
/// Its configuration and log live in a fresh temporary directory: a plain listener on
/// `127.0.0.1:<port>`, anonymous clients allowed, no persistence, everything logged.
/// `extraConfig` is appended: start it with its own `listener <port> 127.0.0.1` line to
/// add e.g. a TLS listener (settings after a `listener` line apply to that listener),
/// and pass that port in `waitForPorts`.
///
/// Missing mosquitto is an error, never a skip: tests that need a broker fail loudly.
public final class MosquittoBroker {
  public let host = "127.0.0.1"
  public private(set) var port: Int32
  /// The temporary directory holding `mosquitto.conf` and `mosquitto.log`.
  public let directory: URL
  public let configFile: URL
  public let logFile: URL
  /// mosquitto's stdout and stderr (startup errors land here, not in the log).
  public let outputFile: URL
  private let executable: String
  private let extraConfig: String
  private let extraPorts: [Int32]
  private var process: ChildProcess?

  /// Starts a broker and waits (up to `startTimeout` seconds) until it accepts TCP.
  /// - Throws: `TestSupportError` when mosquitto is not installed or does not start
  ///   (the message includes its log).
  public init(extraConfig: String = "", waitForPorts extraPorts: [Int32] = [], startTimeout: Double = 5)
    throws
  {
    guard let executable = findExecutable("mosquitto", fallbacks: ["/usr/sbin/mosquitto"]) else {
      throw TestSupportError("mosquitto not found: install the mosquitto package (make test does)")
    }
    self.executable = executable
    self.extraConfig = extraConfig
    self.extraPorts = extraPorts
    directory = try makeTemporaryDirectory("mosquitto")
    configFile = directory.appendingPathComponent("mosquitto.conf")
    logFile = directory.appendingPathComponent("mosquitto.log")
    outputFile = directory.appendingPathComponent("output.log")
    port = try freeLoopbackPort()
    // The free port may be taken between the check and the broker's bind: retry.
    var attempt = 0
    while true {
      attempt += 1
      do {
        try writeConfig()
        try start(timeout: startTimeout)
        return
      } catch {
        if attempt < 3 && (log + output).contains("Address already in use") {
          port = try freeLoopbackPort()
          continue
        }
        throw error
      }
    }
  }

  deinit {
    stop()
    try? FileManager.default.removeItem(at: directory)
  }

  /// Everything the broker logged so far.
  public var log: String {
    (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
  }

  private var output: String {
    (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
  }

  /// Whether the broker process is running.
  public var isRunning: Bool { process?.isRunning ?? false }

  /// The broker's process id (0 when stopped).
  public var processIdentifier: Int32 { isRunning ? process?.pid ?? 0 : 0 }

  private func writeConfig() throws {
    // As root, mosquitto would switch to the `mosquitto` user, which cannot read the
    // temporary directory's files (TLS keys are 0600); `user root` keeps it as is.
    // As any other user the setting has no effect.
    let user = geteuid() == 0 ? "user root" : ""
    let config = """
      # Written by TestSupport.MosquittoBroker
      \(user)
      per_listener_settings false
      allow_anonymous true
      persistence false
      log_dest file \(logFile.path)
      log_type all
      connection_messages true
      log_timestamp true
      listener \(port) 127.0.0.1
      \(extraConfig)

      """
    try config.write(to: configFile, atomically: true, encoding: .utf8)
  }

  /// Starts the broker again (after `stop()` or `kill()`) on the same port, and waits
  /// until it accepts connections.
  public func start() throws {
    try start(timeout: 5)
  }

  private func start(timeout: Double) throws {
    if isRunning { return }
    let process = try ChildProcess(executable, ["-c", configFile.path], outputFile: outputFile)
    self.process = process
    let ports = [port] + extraPorts
    let up = waitUntil(timeout: timeout) {
      !process.isRunning || ports.allSatisfy(loopbackPortAccepts)
    }
    if !up || !process.isRunning {
      process.terminate(signal: SIGKILL)
      self.process = nil
      throw TestSupportError(
        "mosquitto did not start on 127.0.0.1:\(ports) within \(timeout) s"
          + " (wait status \(process.terminationStatus.map { "\($0)" } ?? "-"))\n"
          + "--- output ---\n\(output)--- log ---\n\(log)")
    }
  }

  /// Stops the broker with SIGTERM (it closes client connections) and waits for it
  /// (SIGKILL after 5 s).
  public func stop() {
    process?.terminate(signal: SIGTERM)
    process = nil
  }

  /// Kills the broker with SIGKILL (as a crash or power loss would) and waits for it.
  public func kill() {
    process?.terminate(signal: SIGKILL)
    process = nil
  }
}

/// Runs a command to completion and returns its exit status and combined output.
/// Handy for CLI tools in tests (`openssl`, `mosquitto_sub`, `mosquitto_pub`).
/// - Parameter executable: an absolute path or a name looked up on PATH.
@discardableResult
public func runProcess(_ executable: String, _ arguments: [String], in directory: URL? = nil) throws
  -> (status: Int32, output: String)
{
  var path = executable
  if !executable.hasPrefix("/") {
    guard let found = findExecutable(executable) else {
      throw TestSupportError("\(executable) not found on PATH")
    }
    path = found
  }
  let scratch = try makeTemporaryDirectory("run")
  defer { try? FileManager.default.removeItem(at: scratch) }
  let outputFile = scratch.appendingPathComponent("output")
  let process = try ChildProcess(path, arguments, outputFile: outputFile, directory: directory)
  process.waitForExit()
  let raw = process.terminationStatus ?? -1
  // WIFEXITED ? WEXITSTATUS : 128 + signal, as a shell reports it.
  let status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
  let output = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
  return (status, output)
}

/// A throwaway PKI made with the `openssl` CLI: a CA, a server certificate for
/// 127.0.0.1 / localhost, and client certificates on demand (EC P-256, valid 2 days).
public struct TestPKI {
  public let directory: URL
  public let caCertificate: URL
  public let serverCertificate: URL
  public let serverKey: URL

  /// Makes the CA and the server certificate in a fresh temporary directory.
  public init() throws {
    directory = try makeTemporaryDirectory("pki")
    caCertificate = directory.appendingPathComponent("ca.crt")
    serverCertificate = directory.appendingPathComponent("server.crt")
    serverKey = directory.appendingPathComponent("server.key")
    try openssl([
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=GridEdge Test CA",
    ])
    try issue(
      commonName: "127.0.0.1", name: "server",
      extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
  }

  /// Issues a client certificate signed by the CA, e.g. for a device id.
  /// - Returns: the certificate and its unencrypted key (PEM files).
  public func makeClientCertificate(commonName: String) throws -> (certificate: URL, key: URL) {
    let name = "client-" + commonName.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    try issue(commonName: commonName, name: name, extensions: "extendedKeyUsage=clientAuth\n")
    return (directory.appendingPathComponent("\(name).crt"), directory.appendingPathComponent("\(name).key"))
  }

  /// mosquitto.conf lines for a TLS listener on 127.0.0.1:`port` with this PKI; with
  /// `requireCertificate` clients must present a certificate from the CA, and its CN
  /// becomes their username.
  public func mosquittoListener(port: Int32, requireCertificate: Bool = true) -> String {
    """
    listener \(port) 127.0.0.1
    cafile \(caCertificate.path)
    certfile \(serverCertificate.path)
    keyfile \(serverKey.path)
    require_certificate \(requireCertificate)
    use_identity_as_username \(requireCertificate)
    """
  }

  private func issue(commonName: String, name: String, extensions: String) throws {
    try extensions.write(
      to: directory.appendingPathComponent("\(name).ext"), atomically: true, encoding: .utf8)
    try openssl([
      "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(commonName)",
    ])
    try openssl([
      "x509", "-req", "-in", "\(name).csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", "\(name).crt", "-days", "2", "-extfile", "\(name).ext",
    ])
  }

  private func openssl(_ arguments: [String]) throws {
    let result = try runProcess("openssl", arguments, in: directory)
    guard result.status == 0 else {
      throw TestSupportError(
        "openssl \(arguments.joined(separator: " ")) failed (\(result.status)):\n\(result.output)")
    }
  }
}

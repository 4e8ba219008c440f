import CLibc
import DLT645
import Runtime

/// Sets `O_NONBLOCK` on `fd`.
private func setNonBlocking(_ fd: Int32) -> Bool {
  let flags = clibc_fcntl_getfl(fd)
  return flags >= 0 && clibc_fcntl_setfl(fd, flags | O_NONBLOCK) == 0
}

/// A listening IPv4 TCP socket, non-blocking. Owns its descriptor.
final class TCPListener {
  /// The listening descriptor.
  let fd: Int32
  /// The port bound (the kernel's choice when 0 was asked for).
  let port: Int32

  /// Binds `host`:`port` (`SO_REUSEADDR`) and listens.
  /// - Throws: `SystemError` naming the address (`socket`, `bind`, `listen`), or with
  ///   errno EINVAL when `host` is not an IPv4 address.
  init(host: String, port: Int32) throws(SystemError) {
    let endpoint = host + ":" + String(port)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(truncatingIfNeeded: port).bigEndian
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
      throw SystemError(errno: EINVAL, operation: "listen on " + endpoint + " (not an IPv4 address)")
    }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemError.current("socket for " + endpoint) }
    var one: Int32 = 1
    _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard bound == 0 else {
      let error = SystemError.current("bind " + endpoint)
      close(fd)
      throw error
    }
    guard listen(fd, 16) == 0, setNonBlocking(fd) else {
      let error = SystemError.current("listen on " + endpoint)
      close(fd)
      throw error
    }
    var actual = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &actual) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    self.fd = fd
    self.port = Int32(UInt16(bigEndian: actual.sin_port))
  }

  deinit { close(fd) }

  /// A new connection's descriptor (non-blocking), or nil when none is waiting.
  func accept() -> Int32? {
    let client = CLibc.accept(fd, nil, nil)
    guard client >= 0 else { return nil }
    guard setNonBlocking(client) else {
      close(client)
      return nil
    }
    var one: Int32 = 1
    _ = setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    return client
  }
}

/// A pseudo-terminal pair: the simulator serves the master side; the agent opens
/// `slavePath` like a serial port. The slave side is kept open here too (in raw mode),
/// so the master never sees a hang-up while the agent reopens the port.
final class PseudoTerminal {
  /// The master descriptor (non-blocking).
  let masterFD: Int32
  /// The simulator's own slave descriptor, held open.
  private let slaveFD: Int32
  /// The slave's path, e.g. /dev/pts/3.
  let slavePath: String

  /// Opens a pty (`posix_openpt`, `grantpt`, `unlockpt`, `ptsname_r`) and sets the
  /// slave to raw mode (`cfmakeraw`).
  /// - Throws: `SystemError` naming the step that failed.
  init() throws(SystemError) {
    let master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)
    guard master >= 0 else { throw SystemError.current("posix_openpt") }
    var name = [CChar](repeating: 0, count: 128)
    let named = name.withUnsafeMutableBufferPointer { ptsname_r(master, $0.baseAddress, $0.count) }
    guard grantpt(master) == 0, unlockpt(master) == 0, named == 0, setNonBlocking(master) else {
      let error = SystemError.current("pty set-up (grantpt, unlockpt, ptsname_r)")
      close(master)
      throw error
    }
    let path = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    let slave = clibc_open(path, O_RDWR | O_NOCTTY | O_CLOEXEC, 0)
    guard slave >= 0 else {
      let error = SystemError.current("open " + path)
      close(master)
      throw error
    }
    var settings = termios()
    if tcgetattr(slave, &settings) == 0 {
      cfmakeraw(&settings)
      _ = tcsetattr(slave, TCSANOW, &settings)
    }
    masterFD = master
    slaveFD = slave
    slavePath = path
  }

  deinit {
    close(slaveFD)
    close(masterFD)
  }
}

/// One RS-485 bus: a TCP connection from a serial-to-Ethernet gateway's master, or
/// the pty. Half duplex: requests and replies take turns on a shared timeline, so
/// with a line rate set, a reply starts only after the request's last bit and ends
/// its own wire time later.
final class BusConnection {
  /// The descriptor read and written.
  let fd: Int32
  /// "tcp 127.0.0.1:41234" or "pty /dev/pts/3", for logs.
  let name: String
  /// True when this connection closes `fd` (TCP); the pty owns its own.
  private let ownsDescriptor: Bool
  /// The request decoder of this bus.
  var decoder = FrameDecoder()
  /// Replies waiting for their time, in order: (due, monotonic ms; bytes).
  private var queue: [(due: Int64, bytes: [UInt8])] = []
  /// Bytes of the head reply already written.
  private var written = 0
  /// When the bus is free again (monotonic ms), for line-rate pacing.
  private var busFreeAt: Int64 = 0

  init(fd: Int32, name: String, ownsDescriptor: Bool) {
    self.fd = fd
    self.name = name
    self.ownsDescriptor = ownsDescriptor
  }

  deinit { if ownsDescriptor { close(fd) } }

  /// Milliseconds `count` bytes take at `baud` (11 bits each: start, 8 data, even
  /// parity, stop), rounded up; 0 without pacing.
  static func wireTime(bytes count: Int, baud: Int) -> Int64 {
    guard baud > 0 else { return 0 }
    return (Int64(count) * 11 * 1_000 + Int64(baud) - 1) / Int64(baud)
  }

  /// Books a request of `requestBytes` wire bytes that arrived at `now` and, if there
  /// is one, its reply: due after the request's wire time, the meter's extra delay and
  /// the reply's own wire time.
  func schedule(requestBytes: Int, arrivedAt now: Int64, reply: SimulatedReply?, baud: Int) {
    let requestEnd = max(now, busFreeAt) + BusConnection.wireTime(bytes: requestBytes, baud: baud)
    guard let reply else {
      busFreeAt = requestEnd
      return
    }
    let due =
      requestEnd + reply.extraDelayMilliseconds + BusConnection.wireTime(bytes: reply.bytes.count, baud: baud)
    busFreeAt = due
    queue.append((due: due, bytes: reply.bytes))
  }

  /// The earliest due time of a waiting reply.
  var nextDue: Int64? { queue.first?.due }

  /// True when a reply was only partly written (wait for POLLOUT).
  var isBlocked: Bool { written > 0 }

  /// Writes the replies due at `now`.
  /// - Returns: false when the descriptor failed (the connection should be closed).
  func flush(now: Int64) -> Bool {
    while let head = queue.first, head.due <= now {
      let count = head.bytes.count - written
      let n = head.bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, count) }
      if n < 0 {
        let code = clibc_errno()
        if code == EAGAIN || code == EWOULDBLOCK || code == EINTR { return true }
        return false
      }
      written += n
      if written < head.bytes.count { return true }
      written = 0
      queue.removeFirst()
    }
    return true
  }
}

import CLibc
import Runtime

/// A TCP connection to a serial-to-Ethernet gateway (transparent mode: the bytes
/// written go out on the gateway's RS-485 side, the meters' bytes come back).
///
/// The address is numeric (IPv4 `192.168.1.50` or IPv6 `fe80::1`): it is parsed with
/// `getaddrinfo(AI_NUMERICHOST)`, which never blocks on DNS. The connect is
/// non-blocking: `open()` starts it, `finishOpening()` reads its outcome (`SO_ERROR`)
/// once the socket polls writable. Reconnecting with backoff is the bus's job.
///
/// Owns one socket (closed by `close()` and `deinit`). One thread.
public final class TCPGateway: MeterTransport {
  public let host: String
  public let port: UInt16
  public let label: String
  public let timing: LineTiming
  public private(set) var fd: Int32 = -1
  public private(set) var isConnected = false

  /// A gateway, not yet connected.
  /// - Parameter timing: the gateway's serial side, to time replies.
  public init(host: String, port: UInt16, timing: LineTiming = LineTiming(baud: 2400, bitsPerCharacter: 11)) {
    self.host = host
    self.port = port
    self.timing = timing
    self.label = "tcp " + (host.contains(":") ? "[" + host + "]" : host) + ":" + String(port)
  }

  deinit { close() }

  /// Starts a non-blocking connect (`socket(2)`, `connect(2)`).
  /// - Returns: true when connected at once (loopback can be), false while in progress.
  /// - Throws: `TransportError` for a bad address or a failed `socket`/`connect`.
  public func open() throws(TransportError) -> Bool {
    close()
    var hints = addrinfo()
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>? = nil
    let rc = getaddrinfo(host, String(port), &hints, &list)
    guard rc == 0, let info = list else {
      let reason = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
      throw .system(
        SystemError(
          errno: EINVAL, operation: "address " + host + " (" + reason + "; a numeric address is needed)"),
        line: label)
    }
    defer { freeaddrinfo(list) }
    let socketType =
      Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    let descriptor = socket(info.pointee.ai_family, socketType, 0)
    guard descriptor >= 0 else { throw .system(SystemError.current("socket"), line: label) }
    var one: Int32 = 1
    _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    _ = setsockopt(descriptor, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
    if connect(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
      fd = descriptor
      isConnected = true
      return true
    }
    let errno = clibc_errno()
    guard errno == EINPROGRESS || errno == EINTR else {
      CLibc.close(descriptor)
      throw .system(SystemError(errno: errno, operation: "connect"), line: label)
    }
    fd = descriptor
    return false
  }

  /// Reads the outcome of the connect (`getsockopt(SO_ERROR)`).
  public func finishOpening() throws(TransportError) -> Bool {
    guard fd >= 0 else { throw .notOpen(line: label) }
    if isConnected { return true }
    var error: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else {
      throw .system(SystemError.current("getsockopt SO_ERROR"), line: label)
    }
    if error == EINPROGRESS || error == EALREADY { return false }
    guard error == 0 else { throw .system(SystemError(errno: error, operation: "connect"), line: label) }
    isConnected = true
    return true
  }

  public func write(_ bytes: ArraySlice<UInt8>) throws(TransportError) -> Int {
    guard fd >= 0, isConnected else { throw .notOpen(line: label) }
    guard !bytes.isEmpty else { return 0 }
    while true {
      let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if n >= 0 { return n }
      let errno = clibc_errno()
      if errno == EINTR { continue }
      if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
      throw .system(SystemError(errno: errno, operation: "send"), line: label)
    }
  }

  public func read() throws(TransportError) -> [UInt8] {
    guard fd >= 0, isConnected else { throw .notOpen(line: label) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1024)
    while true {
      let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
      if n > 0 {
        out.append(contentsOf: chunk[0..<n])
        if n < chunk.count { return out }
        continue
      }
      if n == 0 {
        // End of file: report what came first; the next read reports the close.
        if !out.isEmpty { return out }
        throw .closedByPeer(line: label)
      }
      let errno = clibc_errno()
      if errno == EINTR { continue }
      if errno == EAGAIN || errno == EWOULDBLOCK { return out }
      throw .system(SystemError(errno: errno, operation: "recv"), line: label)
    }
  }

  public func discardInput() throws(TransportError) -> Int { try read().count }

  public func close() {
    guard fd >= 0 else { return }
    CLibc.close(fd)
    fd = -1
    isConnected = false
  }
}

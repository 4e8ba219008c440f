import CLibc
import Runtime

/// An RS-485 serial port through termios: raw, non-blocking, 1200–9600 baud, 8E1 by
/// default as DL/T 645 meters use.
///
/// Owns one descriptor (closed by `close()` and `deinit`). Parity errors are checked
/// by the UART and the bad characters dropped (`INPCK | IGNPAR`), so a damaged frame
/// arrives short and the frame decoder reports it. No flow control, no modem lines
/// (`CLOCAL`). One thread.
public final class SerialPort: MeterTransport {
  public let path: String
  public let baud: Int
  public let dataBits: Int
  public let parity: Parity
  public let stopBits: Int
  /// Whether to turn on the kernel's RS-485 mode (`TIOCSRS485`).
  public let rs485: Bool
  public let label: String
  public let timing: LineTiming
  public private(set) var fd: Int32 = -1

  /// A port, not yet open.
  public init(
    path: String, baud: Int, dataBits: Int = 8, parity: Parity = .even, stopBits: Int = 1, rs485: Bool = false
  ) {
    self.path = path
    self.baud = baud
    self.dataBits = dataBits
    self.parity = parity
    self.stopBits = stopBits
    self.rs485 = rs485
    self.label =
      "serial " + path + " " + String(baud) + " " + String(dataBits) + parity.letter + String(stopBits)
      + (rs485 ? " rs485" : "")
    self.timing = LineTiming(
      baud: baud, bitsPerCharacter: 1 + dataBits + (parity == .none ? 0 : 1) + stopBits)
  }

  deinit { close() }

  public var isConnected: Bool { fd >= 0 }

  /// Opens and configures the port (`open(2)`, `tcsetattr(3)`), then reads the
  /// settings back to check that the driver took them.
  /// - Returns: true (a serial port is open at once).
  /// - Throws: `TransportError` naming the call that failed.
  public func open() throws(TransportError) -> Bool {
    close()
    let descriptor = clibc_open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0)
    guard descriptor >= 0 else { throw .system(SystemError.current("open " + path), line: label) }
    do {
      try configure(descriptor)
    } catch {
      CLibc.close(descriptor)
      throw error
    }
    fd = descriptor
    return true
  }

  public func finishOpening() throws(TransportError) -> Bool { fd >= 0 }

  /// The termios speed constant for `baud`.
  static func speed(_ baud: Int) -> speed_t? {
    switch baud {
    case 1200: return speed_t(B1200)
    case 2400: return speed_t(B2400)
    case 4800: return speed_t(B4800)
    case 9600: return speed_t(B9600)
    default: return nil
    }
  }

  /// `base` set up for this port: raw, `CLOCAL | CREAD`, the data bits, parity and
  /// stop bits, no flow control, parity checked with bad characters dropped,
  /// `VMIN = VTIME = 0` (reads return at once), and the baud rate.
  /// - Returns: nil for a baud rate termios does not name.
  func attributes(from base: termios) -> termios? {
    guard let speed = Self.speed(baud) else { return nil }
    var t = base
    cfmakeraw(&t)
    let size: tcflag_t
    switch dataBits {
    case 5: size = tcflag_t(CS5)
    case 6: size = tcflag_t(CS6)
    case 7: size = tcflag_t(CS7)
    default: size = tcflag_t(CS8)
    }
    t.c_cflag &= ~(tcflag_t(CSIZE | PARENB | PARODD | CSTOPB) | clibc_crtscts())
    t.c_cflag |= tcflag_t(CREAD | CLOCAL) | size
    switch parity {
    case .none: break
    case .even: t.c_cflag |= tcflag_t(PARENB)
    case .odd: t.c_cflag |= tcflag_t(PARENB | PARODD)
    }
    if stopBits == 2 { t.c_cflag |= tcflag_t(CSTOPB) }
    t.c_iflag &= ~tcflag_t(IXON | IXOFF | IXANY | INPCK | IGNPAR)
    if parity != .none { t.c_iflag |= tcflag_t(INPCK | IGNPAR) }
    clibc_termios_set_vmin_vtime(&t, 0, 0)
    guard cfsetispeed(&t, speed) == 0, cfsetospeed(&t, speed) == 0 else { return nil }
    return t
  }

  private func configure(_ descriptor: Int32) throws(TransportError) {
    var current = termios()
    guard tcgetattr(descriptor, &current) == 0 else {
      throw .system(SystemError.current("tcgetattr " + path), line: label)
    }
    guard var t = attributes(from: current) else {
      throw .system(SystemError(errno: EINVAL, operation: "baud rate " + String(baud)), line: label)
    }
    guard tcsetattr(descriptor, TCSANOW, &t) == 0 else {
      throw .system(SystemError.current("tcsetattr " + path), line: label)
    }
    // tcsetattr succeeds when any of the changes took: read them back.
    var check = termios()
    guard tcgetattr(descriptor, &check) == 0 else {
      throw .system(SystemError.current("tcgetattr " + path), line: label)
    }
    guard cfgetospeed(&check) == cfgetospeed(&t) else {
      throw .system(
        SystemError(errno: EINVAL, operation: "the driver of " + path + " refused " + String(baud) + " baud"),
        line: label)
    }
    // Some drivers fix the character format (a pty is always 8N1): say so, go on.
    let mask = tcflag_t(CSIZE | PARENB | PARODD | CSTOPB)
    if check.c_cflag & mask != t.c_cflag & mask {
      Log.warn(
        "bus",
        label + ": the driver did not keep the character format " + String(dataBits) + parity.letter
          + String(stopBits) + "; meters may not understand this line")
    }
    if rs485, clibc_serial_rs485(descriptor, 1) != 0 {
      throw .system(SystemError.current("RS-485 mode (TIOCSRS485) on " + path), line: label)
    }
    _ = tcflush(descriptor, TCIOFLUSH)
  }

  public func write(_ bytes: ArraySlice<UInt8>) throws(TransportError) -> Int {
    guard fd >= 0 else { throw .notOpen(line: label) }
    guard !bytes.isEmpty else { return 0 }
    while true {
      let n = bytes.withUnsafeBytes { CLibc.write(fd, $0.baseAddress, $0.count) }
      if n >= 0 { return n }
      let errno = clibc_errno()
      if errno == EINTR { continue }
      if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
      throw .system(SystemError(errno: errno, operation: "write " + path), line: label)
    }
  }

  public func read() throws(TransportError) -> [UInt8] {
    guard fd >= 0 else { throw .notOpen(line: label) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 512)
    while true {
      let n = chunk.withUnsafeMutableBytes { CLibc.read(fd, $0.baseAddress, $0.count) }
      if n > 0 {
        out.append(contentsOf: chunk[0..<n])
        if n < chunk.count { return out }
        continue
      }
      // VMIN = VTIME = 0: 0 means nothing more has arrived (not end of file).
      if n == 0 { return out }
      let errno = clibc_errno()
      if errno == EINTR { continue }
      if errno == EAGAIN || errno == EWOULDBLOCK { return out }
      throw .system(SystemError(errno: errno, operation: "read " + path), line: label)
    }
  }

  public func discardInput() throws(TransportError) -> Int {
    let dropped = try read().count
    _ = tcflush(fd, TCIFLUSH)
    return dropped
  }

  public func close() {
    guard fd >= 0 else { return }
    CLibc.close(fd)
    fd = -1
  }
}

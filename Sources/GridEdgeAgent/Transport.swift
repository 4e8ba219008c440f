import Runtime

/// A line to meters: an RS-485 serial port or a TCP connection to a serial-to-Ethernet
/// gateway. Non-blocking throughout; `MeterBus` polls `fd` in the agent's one loop.
///
/// One owner (the bus), one thread. A transport knows nothing of DL/T 645: it moves
/// bytes and says how long they take on the wire.
public protocol MeterTransport: AnyObject {
  /// What the line is, for logs: `serial /dev/ttyS1 2400 8E1`, `tcp 10.0.0.5:8899`.
  var label: String { get }
  /// The descriptor to poll, or -1 while closed.
  var fd: Int32 { get }
  /// True once open (serial) or connected (TCP).
  var isConnected: Bool { get }
  /// Starts opening the line.
  /// - Returns: true when it is open at once (a serial port); false while a TCP
  ///   connect is in progress: poll `fd` for writable, then call `finishOpening()`.
  /// - Throws: `TransportError` when the line cannot be opened or configured.
  func open() throws(TransportError) -> Bool
  /// Completes a connect in progress after `fd` polled writable or failed.
  /// - Returns: true when connected, false when still in progress.
  /// - Throws: `TransportError` when the connect failed.
  func finishOpening() throws(TransportError) -> Bool
  /// Writes as much of `bytes` as the line takes without blocking.
  /// - Returns: how many bytes were written (0 when the line is full).
  func write(_ bytes: ArraySlice<UInt8>) throws(TransportError) -> Int
  /// Reads what has arrived, without blocking; empty when nothing has.
  /// - Throws: `TransportError` on end of file (the gateway closed) or a read error.
  func read() throws(TransportError) -> [UInt8]
  /// Drops bytes received and not yet read (a late reply to an earlier request).
  /// - Returns: how many bytes were dropped, when known.
  func discardInput() throws(TransportError) -> Int
  /// Closes the descriptor; `open()` may be called again.
  func close()
  /// The line's character format, for timing.
  var timing: LineTiming { get }
}

/// Baud rate and character size of a serial line, to compute how long bytes take on
/// the wire (a request must be fully sent before its reply timeout starts).
public struct LineTiming: Hashable, Sendable {
  /// Bits per second.
  public var baud: Int
  /// Bits per character: start + data + parity + stop (11 for 8E1).
  public var bitsPerCharacter: Int

  public init(baud: Int, bitsPerCharacter: Int) {
    self.baud = baud
    self.bitsPerCharacter = bitsPerCharacter
  }

  /// Milliseconds `count` characters take on the line, rounded up.
  public func milliseconds(_ count: Int) -> Int64 {
    guard baud > 0, count > 0 else { return 0 }
    let bits = Int64(count) * Int64(bitsPerCharacter) * 1000
    return (bits + Int64(baud) - 1) / Int64(baud)
  }
}

/// Serial parity.
public enum Parity: Sendable {
  case none, even, odd

  /// `N`, `E` or `O`, as in `8E1`.
  public var letter: String {
    switch self {
    case .none: return "N"
    case .even: return "E"
    case .odd: return "O"
    }
  }
}

/// A meter line that failed: what was attempted on which line, and why.
public struct TransportError: Error, CustomStringConvertible, Sendable {
  private enum Kind: Sendable {
    case system(SystemError)
    case closedByPeer
    case notOpen
  }

  private let kind: Kind
  /// The line's label (`serial /dev/ttyS1 2400 8E1`).
  public let line: String

  private init(_ kind: Kind, line: String) {
    self.kind = kind
    self.line = line
  }

  /// A failed system call on `line`.
  static func system(_ error: SystemError, line: String) -> TransportError {
    TransportError(.system(error), line: line)
  }

  /// The other end closed the connection.
  static func closedByPeer(line: String) -> TransportError { TransportError(.closedByPeer, line: line) }

  /// An operation on a line that is not open.
  static func notOpen(line: String) -> TransportError { TransportError(.notOpen, line: line) }

  /// The errno of a failed system call, or 0.
  public var errno: Int32 {
    switch kind {
    case .system(let error): return error.errno
    case .closedByPeer, .notOpen: return 0
    }
  }

  public var description: String {
    switch kind {
    case .system(let error): return line + ": " + error.description
    case .closedByPeer: return line + ": closed by the other end"
    case .notOpen: return line + ": not open"
    }
  }
}

/// A bus as configured by a `bus.N` key: its kind, where it goes and its line format.
///
/// Syntax (words separated by blanks):
/// - `serial DEVICE [BAUD [FORMAT]] [rs485]`: an RS-485 port; BAUD 1200, 2400, 4800 or
///   9600 (default 2400); FORMAT data bits, parity and stop bits, `8E1` by default as
///   DL/T 645 meters use (`8N1`, `8O1`, `8E2`, … also accepted); `rs485` turns on the
///   kernel's RS-485 mode (the driver switches the transceiver's direction with RTS).
/// - `tcp ADDRESS:PORT [BAUD [FORMAT]]`: a serial-to-Ethernet gateway at a numeric IPv4
///   address (or `[IPv6]:PORT`); BAUD and FORMAT are the gateway's serial side, used
///   only to time replies (default 2400 8E1).
public struct BusSpec: Hashable, Sendable {
  public enum Kind: Hashable, Sendable {
    case serial(device: String, rs485: Bool)
    case tcp(host: String, port: UInt16)
  }

  public var kind: Kind
  public var baud: Int
  public var dataBits: Int
  public var parity: Parity
  public var stopBits: Int

  /// The baud rates accepted.
  public static let baudRates = [1200, 2400, 4800, 9600]

  /// Parses a bus specification.
  /// - Throws: `BusSpecError` saying what is wrong (the caller adds file, line and key).
  public static func parse(_ text: String) throws(BusSpecError) -> BusSpec {
    let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    guard let first = words.first else { throw BusSpecError("empty bus specification") }
    var spec = BusSpec(kind: .tcp(host: "", port: 0), baud: 2400, dataBits: 8, parity: .even, stopBits: 1)
    var rest = Array(words.dropFirst())
    var rs485 = false
    if first == "serial", let last = rest.last, last == "rs485" {
      rs485 = true
      rest.removeLast()
    }
    switch first {
    case "serial":
      guard let device = rest.first, device.hasPrefix("/") else {
        throw BusSpecError("'serial' needs a device path, e.g. 'serial /dev/ttyS1 2400 8E1'")
      }
      spec.kind = .serial(device: device, rs485: rs485)
    case "tcp":
      guard let target = rest.first else {
        throw BusSpecError("'tcp' needs ADDRESS:PORT, e.g. 'tcp 192.168.1.50:8899'")
      }
      guard let colon = target.lastIndex(of: ":"), let port = UInt16(target[target.index(after: colon)...]),
        port > 0
      else {
        throw BusSpecError("'" + target + "' is not ADDRESS:PORT with a port 1-65535")
      }
      var host = String(target[..<colon])
      if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      guard !host.isEmpty else { throw BusSpecError("'" + target + "' has no address") }
      spec.kind = .tcp(host: host, port: port)
    default:
      throw BusSpecError("expected 'serial DEVICE ...' or 'tcp ADDRESS:PORT ...', got '" + first + "'")
    }
    rest.removeFirst()
    if let baudText = rest.first {
      guard let baud = Int(baudText), baudRates.contains(baud) else {
        throw BusSpecError("baud rate '" + baudText + "' is not 1200, 2400, 4800 or 9600")
      }
      spec.baud = baud
      rest.removeFirst()
    }
    if let format = rest.first {
      let chars = Array(format.utf8)
      guard chars.count == 3, (0x35...0x38).contains(chars[0]), chars[2] == 0x31 || chars[2] == 0x32 else {
        throw BusSpecError("line format '" + format + "' is not like 8E1 (data bits 5-8, N/E/O, stop 1-2)")
      }
      spec.dataBits = Int(chars[0] - 0x30)
      switch chars[1] {
      case 0x4E, 0x6E: spec.parity = .none
      case 0x45, 0x65: spec.parity = .even
      case 0x4F, 0x6F: spec.parity = .odd
      default:
        throw BusSpecError("line format '" + format + "': parity must be N, E or O")
      }
      spec.stopBits = Int(chars[2] - 0x30)
      rest.removeFirst()
    }
    if let extra = rest.first {
      throw BusSpecError("unexpected '" + extra + "'")
    }
    return spec
  }

  /// `8E1`.
  public var formatText: String { String(dataBits) + parity.letter + String(stopBits) }

  /// Character timing on the (serial side of the) line.
  public var timing: LineTiming {
    LineTiming(baud: baud, bitsPerCharacter: 1 + dataBits + (parity == .none ? 0 : 1) + stopBits)
  }

  /// Opens nothing: makes the transport this spec describes.
  public func makeTransport() -> any MeterTransport {
    switch kind {
    case .serial(let device, let rs485):
      return SerialPort(
        path: device, baud: baud, dataBits: dataBits, parity: parity, stopBits: stopBits, rs485: rs485)
    case .tcp(let host, let port):
      return TCPGateway(host: host, port: port, timing: timing)
    }
  }
}

/// Why a `bus.N` value is not a bus specification.
public struct BusSpecError: Error, CustomStringConvertible, Sendable {
  public let description: String
  init(_ description: String) { self.description = description }
}

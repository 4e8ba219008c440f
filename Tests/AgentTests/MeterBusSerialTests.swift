import DLT645
import Foundation
import Runtime
import TestSupport
import Testing

@testable import GridEdgeAgent

/// The serial transport on a pseudo-terminal pair: termios configuration read back
/// from the slave, and DL/T 645 round trips with a fake meter on the master side.
@Suite(.serialized) struct MeterBusSerialTests {
  private func attributes(_ fd: Int32) throws -> termios {
    var t = termios()
    guard tcgetattr(fd, &t) == 0 else { throw TestFailure("tcgetattr: \(String(cString: strerror(errno)))") }
    return t
  }

  /// Linux ptys force CS8 and clear PARENB whatever is asked (`pty_set_termios` in
  /// drivers/tty/pty.c), so data bits and parity are checked on the attributes the port
  /// computes; everything else is read back from the pty after `open()`.
  @Test func serialPortIsConfiguredRaw8E1AtTheAskedBaudRate() throws {
    let pty = try PtyPair()
    let port = SerialPort(path: pty.slavePath, baud: 2400)
    let computed = try #require(port.attributes(from: termios()))
    #expect(computed.c_cflag & tcflag_t(CSIZE) == tcflag_t(CS8))
    #expect(computed.c_cflag & tcflag_t(PARENB) != 0)
    #expect(
      computed.c_iflag & tcflag_t(INPCK | IGNPAR) == tcflag_t(INPCK | IGNPAR), "parity errors not checked")
    #expect(try port.open())
    defer { port.close() }
    let t = try attributes(port.fd)
    #expect(t.c_cflag & tcflag_t(PARODD) == 0)
    #expect(t.c_cflag & tcflag_t(CSTOPB) == 0)
    #expect(t.c_cflag & tcflag_t(CLOCAL | CREAD) == tcflag_t(CLOCAL | CREAD))
    #expect(withUnsafePointer(to: t) { cfgetospeed($0) } == speed_t(B2400))
    #expect(withUnsafePointer(to: t) { cfgetispeed($0) } == speed_t(B2400))
    #expect(t.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0, "not raw")
    #expect(t.c_oflag & tcflag_t(OPOST) == 0, "output processing left on")
    #expect(t.c_iflag & tcflag_t(IXON | IXOFF | ICRNL) == 0)
    let vmin = withUnsafeBytes(of: t.c_cc) { $0[Int(VMIN)] }
    let vtime = withUnsafeBytes(of: t.c_cc) { $0[Int(VTIME)] }
    #expect(vmin == 0 && vtime == 0)
    #expect(fcntl(port.fd, F_GETFL) & O_NONBLOCK != 0)
    #expect(port.label == "serial " + pty.slavePath + " 2400 8E1")
  }

  @Test(arguments: [
    (1200, Parity.odd, 2, speed_t(B1200)), (4800, Parity.none, 1, speed_t(B4800)),
    (9600, Parity.even, 2, speed_t(B9600)),
  ])
  func otherBaudRatesParitiesAndStopBits(baud: Int, parity: Parity, stopBits: Int, speed: speed_t) throws {
    let pty = try PtyPair()
    let port = SerialPort(path: pty.slavePath, baud: baud, parity: parity, stopBits: stopBits)
    let computed = try #require(port.attributes(from: termios()))
    #expect((computed.c_cflag & tcflag_t(PARENB) != 0) == (parity != .none))
    #expect((computed.c_iflag & tcflag_t(INPCK) != 0) == (parity != .none))
    #expect(try port.open())
    defer { port.close() }
    let t = try attributes(port.fd)
    #expect(withUnsafePointer(to: t) { cfgetospeed($0) } == speed)
    #expect((t.c_cflag & tcflag_t(PARODD) != 0) == (parity == .odd))
    #expect((t.c_cflag & tcflag_t(CSTOPB) != 0) == (stopBits == 2))
    #expect(port.timing.bitsPerCharacter == 1 + 8 + (parity == .none ? 0 : 1) + stopBits)
  }

  @Test func sevenDataBitsAreAsked() throws {
    let port = SerialPort(path: "/dev/null", baud: 2400, dataBits: 7)
    let computed = try #require(port.attributes(from: termios()))
    #expect(computed.c_cflag & tcflag_t(CSIZE) == tcflag_t(CS7))
    #expect(SerialPort(path: "/dev/null", baud: 19200).attributes(from: termios()) == nil)
  }

  @Test func missingDeviceIsReportedWithItsPathAndTheBusRetries() throws {
    let port = SerialPort(path: "/dev/gridedge-no-such-port", baud: 2400)
    do {
      _ = try port.open()
      Issue.record("opened a missing device")
    } catch {
      #expect(
        error.description.hasPrefix(
          "serial /dev/gridedge-no-such-port 2400 8E1: open /dev/gridedge-no-such-port"))
      #expect(error.errno == ENOENT)
    }
    let bus = MeterBus(name: "1", transport: port, settings: fastSettings())
    bus.submit(.read(.forwardActiveTotal), to: Address("000012345678")!)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 2) { $0.lineDownIncidents >= 2 })
    #expect(log.completions.isEmpty)
  }

  @Test func rs485ModeOnAPtyFailsClearly() throws {
    let pty = try PtyPair()
    let port = SerialPort(path: pty.slavePath, baud: 2400, rs485: true)
    do {
      _ = try port.open()
      Issue.record("a pty accepted TIOCSRS485")
    } catch {
      #expect(error.description.contains("RS-485 mode (TIOCSRS485)"))
    }
    #expect(port.fd == -1, "the descriptor must be closed after a failed open")
  }

  @Test func readRoundTripThroughAPty() throws {
    let pty = try PtyPair()
    let meter = FakeMeter("000012345678")
    let other = FakeMeter("000012345679")
    other.silent = true
    let line = FakeMeterLine([meter, other])
    let stop = Locked(false)
    line.serve(fd: pty.master, closeWhenDone: false) { stop.value }
    defer { stop.value = true }
    let bus = MeterBus(
      name: "1", transport: SerialPort(path: pty.slavePath, baud: 9600),
      settings: fastSettings(timeout: 200, retries: 1))
    let read = bus.submit(.read(.forwardActiveBlock), to: meter.address)
    let silent = bus.submit(.read(.forwardActiveBlock), to: other.address)
    let time = bus.submit(.read(.time), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completions.count == 3 })
    guard case .reply(.readData(_, let bytes, _)) = log.outcome(read) else {
      Issue.record("expected read data, got \(String(describing: log.outcome(read)))")
      return
    }
    #expect(
      try MeterValue(decoding: bytes[...], for: .forwardActiveBlock) == .energyRegisters(meter.registers))
    guard case .noAnswer = log.outcome(silent) else {
      Issue.record("expected no answer, got \(String(describing: log.outcome(silent)))")
      return
    }
    guard case .reply(.readData(.time, _, _)) = log.outcome(time) else {
      Issue.record("expected the time, got \(String(describing: log.outcome(time)))")
      return
    }
    #expect(line.requestLog.allSatisfy { $0.wakeUps == 4 })
  }

  @Test func corruptFrameOnThePtyIsCountedAndRetried() throws {
    let pty = try PtyPair()
    let meter = FakeMeter("000012345678")
    meter.corruptReplies = 1
    let line = FakeMeterLine([meter])
    let stop = Locked(false)
    line.serve(fd: pty.master, closeWhenDone: false) { stop.value }
    defer { stop.value = true }
    let bus = MeterBus(
      name: "1", transport: SerialPort(path: pty.slavePath, baud: 9600), settings: fastSettings())
    let ticket = bus.submit(.read(.forwardActiveTotal), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    guard case .reply(.readData) = log.outcome(ticket) else {
      Issue.record("expected read data, got \(String(describing: log.outcome(ticket)))")
      return
    }
    #expect(log.corruptIncidents == 1)
  }
}

/// A value shared with a serving thread.
final class Locked<T>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: T
  init(_ value: T) { stored = value }
  var value: T {
    get {
      lock.lock()
      defer { lock.unlock() }
      return stored
    }
    set {
      lock.lock()
      stored = newValue
      lock.unlock()
    }
  }
}

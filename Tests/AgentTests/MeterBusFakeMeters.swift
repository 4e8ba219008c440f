import DLT645
import Foundation
import TestSupport

/// One simulated meter for the bus and acquisition tests: registers, a clock, freeze
/// records, and faults to inject. Mutated only under `FakeMeterLine.lock`.
final class FakeMeter {
  let address: Address
  /// Forward active registers in 0.01 kWh: total then 4 tariffs.
  var registers = EnergyRegisters(total: 123_456, tariffs: [10_000, 20_000, 30_000, 63_456])
  /// Seconds the meter's clock is ahead of the line's wall clock.
  var clockOffsetSeconds: Int64 = 0
  /// Daily freeze records, newest first (05 06 00 nn / 05 06 01 nn with nn = index + 1).
  var freezes: [(time: MeterTimestamp, registers: EnergyRegisters)] = []
  /// Never answers.
  var silent = false
  /// The next N replies go out with a wrong checksum.
  var corruptReplies = 0
  /// The next N replies come from another address (the real reply is not sent).
  var wrongAddressReplies = 0
  /// Identifiers answered with an error reply ("no requested data").
  var refused: Set<UInt32> = []
  /// Identifiers whose value goes out with a non-BCD byte (checksum right).
  var badValues: Set<UInt32> = []
  /// Whether a broadcast time sets this meter's clock.
  var obeysBroadcastTime = true
  /// Reads this meter received (each attempt counts).
  var reads: [DataIdentifier] = []
  /// The relay is open (supply cut).
  var relayOpen = false
  /// The relay does not move whatever the meter is told (a welded contact).
  var relayStuck = false
  /// The 0x1C password the meter accepts.
  var password = try! Password(level: 0x02, code: 0)
  /// 0x1C commands accepted (N1), in order.
  var relayCommands: [RelayCommand] = []
  /// Phase voltages A, B, C in 0.1 V (02 01 FF 00).
  var voltages: [Int32] = [2_200, 2_200, 2_200]

  init(_ address: String) {
    self.address = Address(address)!
  }
}

/// The meters on one line (a pty or TCP connections to a fake gateway), answering
/// DL/T 645 requests with the codec. Each served descriptor gets its own thread.
final class FakeMeterLine: @unchecked Sendable {
  let lock = NSLock()
  private(set) var meters: [Address: FakeMeter] = [:]
  /// The line's wall clock in ms (the tests' fake wall time).
  var wall: () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
  var utcOffsetSeconds: Int64 = 8 * 3600
  /// Wake-up bytes the meters put before their replies.
  var replyWakeUpBytes = 2
  /// Every request frame received, with the time (monotonic s) and whether it came
  /// right after wake-up bytes.
  private(set) var requests: [(at: Double, frame: Frame, wakeUps: Int)] = []
  /// Times (monotonic s) replies were finished writing.
  private(set) var repliesSentAt: [Double] = []
  private(set) var broadcasts: [MeterDateTime] = []

  init(_ meters: [FakeMeter]) {
    for m in meters { self.meters[m.address] = m }
  }

  func with<T>(_ body: () -> T) -> T {
    lock.lock()
    defer { lock.unlock() }
    return body()
  }

  func meter(_ address: String) -> FakeMeter { with { meters[Address(address)!]! } }

  func add(_ meter: FakeMeter) { with { meters[meter.address] = meter } }

  /// Serves `fd` on a new thread until it reaches end of file or `stop` is set;
  /// closes it afterwards when `closeWhenDone`.
  func serve(fd: Int32, closeWhenDone: Bool, stop: @escaping @Sendable () -> Bool) {
    let thread = Thread { [self] in
      var decoder = FrameDecoder()
      var buffer = [UInt8](repeating: 0, count: 1024)
      var pendingWakeUps = 0
      while !stop() {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&p, 1, 50)
        if rc == 0 { continue }
        if rc < 0 {
          if errno == EINTR { continue }
          break
        }
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 {
          if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
          break
        }
        let chunk = Array(buffer[0..<n])
        var leading = 0
        while leading < chunk.count && chunk[leading] == 0xFE { leading += 1 }
        if leading > 0 && decoder.bufferedByteCount == 0 { pendingWakeUps = leading }
        decoder.feed(chunk)
        while true {
          let frame: Frame?
          do { frame = try decoder.next() } catch { continue }
          guard let frame else { break }
          let reply = self.handle(frame, wakeUps: pendingWakeUps)
          pendingWakeUps = 0
          if !reply.isEmpty {
            var written = 0
            while written < reply.count {
              let w = reply[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
              if w <= 0 { break }
              written += w
            }
            self.with { self.repliesSentAt.append(monotonicSeconds()) }
          }
        }
      }
      if closeWhenDone { close(fd) }
    }
    thread.start()
  }

  /// The reply bytes for one request frame (empty: no reply).
  func handle(_ frame: Frame, wakeUps: Int) -> [UInt8] {
    lock.lock()
    defer { lock.unlock() }
    requests.append((monotonicSeconds(), frame, wakeUps))
    guard let request = try? Request(frame: frame) else { return [] }
    if case .broadcastTime(let time) = request {
      broadcasts.append(time)
      let ours = localNow()
      for meter in meters.values where meter.obeysBroadcastTime {
        meter.clockOffsetSeconds = unix(time) - unix(ours) + 0
      }
      return []
    }
    guard let meter = meters[frame.address], !meter.silent else { return [] }
    if case .control(let control) = request {
      let reply: Reply
      if control.password != meter.password {
        reply = .controlRefused(.unauthorized)
      } else {
        meter.relayCommands.append(control.command)
        if !meter.relayStuck {
          if control.command == .trip { meter.relayOpen = true }
          if control.command == .closePermit || control.command == .directClose { meter.relayOpen = false }
        }
        reply = .controlAccepted
      }
      return (try! reply.frame(from: meter.address)).encoded(wakeUpBytes: replyWakeUpBytes)
    }
    guard case .read(let identifier) = request else { return [] }
    meter.reads.append(identifier)
    var from = meter.address
    if meter.wrongAddressReplies > 0 {
      meter.wrongAddressReplies -= 1
      from = Address(number: (meter.address.number! + 1) % 1_000_000_000_000)!
    }
    let reply: Reply
    if meter.refused.contains(identifier.rawValue) {
      reply = .readError(.noRequestedData)
    } else if let value = value(meter, identifier) {
      var bytes = (try? value.encoded()) ?? []
      if meter.badValues.contains(identifier.rawValue), !bytes.isEmpty { bytes[0] = 0xAB }
      reply = .readData(identifier, bytes, hasFollowUp: false)
    } else {
      reply = .readError(.noRequestedData)
    }
    var out = (try! reply.frame(from: from)).encoded(wakeUpBytes: replyWakeUpBytes)
    if meter.corruptReplies > 0 {
      meter.corruptReplies -= 1
      out[out.count - 2] &+= 1
    }
    return out
  }

  private func value(_ meter: FakeMeter, _ identifier: DataIdentifier) -> MeterValue? {
    switch identifier {
    case .forwardActiveBlock: return .energyRegisters(meter.registers)
    case .forwardActiveTotal: return .energy(centiKilowattHours: meter.registers.total)
    case .voltageBlock: return .voltages(meter.voltages)
    case .runStatusWord3:
      var word = RunStatusWord3(rawValue: 0x0200)
      word.relayOpen = meter.relayOpen
      word.relayCommandOpen = meter.relayCommands.last == .trip
      return .runStatusWord3(word)
    case .date, .time:
      let t = localNow(offset: meter.clockOffsetSeconds)
      if identifier == .date {
        return .date(try! MeterDate(year: t.year, month: t.month, day: t.day, weekday: 1))
      }
      return .time(try! MeterTime(hour: t.hour, minute: t.minute, second: t.second))
    default:
      guard let n = identifier.dailyFreezeIndex else { return nil }
      guard n <= meter.freezes.count else { return nil }
      let record = meter.freezes[n - 1]
      return identifier.rawValue & 0xFF00 == 0 ? .timestamp(record.time) : .energyRegisters(record.registers)
    }
  }

  /// The line's local time now, plus `offset` seconds.
  func localNow(offset: Int64 = 0) -> MeterDateTime {
    let seconds = wall() / 1000 + utcOffsetSeconds + offset
    let date = Date(timeIntervalSince1970: TimeInterval(seconds))
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    return try! MeterDateTime(
      year: c.year!, month: c.month!, day: c.day!, hour: c.hour!, minute: c.minute!, second: c.second!)
  }

  private func unix(_ t: MeterDateTime) -> Int64 {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let d = calendar.date(
      from: DateComponents(
        year: t.year, month: t.month, day: t.day, hour: t.hour, minute: t.minute, second: t.second))!
    return Int64(d.timeIntervalSince1970)
  }

  /// Request frames received so far, copied.
  var requestLog: [(at: Double, frame: Frame, wakeUps: Int)] { with { requests } }
  var broadcastLog: [MeterDateTime] { with { broadcasts } }
  var replyTimes: [Double] { with { repliesSentAt } }
}

/// Monotonic seconds.
func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Monotonic milliseconds (the buses' time base in tests).
func monotonicMilliseconds() -> Int64 { Int64(monotonicSeconds() * 1000) }

/// A serial-to-Ethernet gateway on 127.0.0.1 in front of a `FakeMeterLine`: accepts
/// TCP connections and serves each on its own thread.
final class FakeGateway: @unchecked Sendable {
  let line: FakeMeterLine
  let port: Int32
  private let listener: Int32
  private let lock = NSLock()
  private var clients: [Int32] = []
  private var stopped = false
  private(set) var accepted = 0

  init(_ line: FakeMeterLine, port: Int32 = 0) throws {
    self.line = line
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard ok else {
      close(fd)
      throw TestFailure("bind/listen on 127.0.0.1:\(port) failed: \(String(cString: strerror(errno)))")
    }
    listener = fd
    self.port = Int32(UInt16(bigEndian: address.sin_port))
    let thread = Thread { [self] in
      while !self.isStopped {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 50) > 0 else { continue }
        let client = accept(fd, nil, nil)
        guard client >= 0 else { continue }
        self.lock.lock()
        self.clients.append(client)
        self.accepted += 1
        self.lock.unlock()
        line.serve(fd: client, closeWhenDone: false) { [self] in self.isStopped || !self.isOpen(client) }
      }
      close(fd)
    }
    thread.start()
  }

  var isStopped: Bool {
    lock.lock()
    defer { lock.unlock() }
    return stopped
  }

  private func isOpen(_ client: Int32) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    return clients.contains(client)
  }

  var acceptedCount: Int {
    lock.lock()
    defer { lock.unlock() }
    return accepted
  }

  /// Closes every open client connection (the gateway "reboots" its TCP side).
  func dropConnections() {
    lock.lock()
    let open = clients
    clients.removeAll()
    lock.unlock()
    for fd in open {
      shutdown(fd, Int32(SHUT_RDWR))
      close(fd)
    }
  }

  /// Stops listening and closes every connection.
  func stop() {
    lock.lock()
    stopped = true
    lock.unlock()
    dropConnections()
  }

  deinit { stop() }
}

/// A pseudo-terminal pair: the slave's path for `SerialPort`, the master served by a
/// `FakeMeterLine` (or read directly).
final class PtyPair {
  let master: Int32
  let slavePath: String

  // posix_openpt & co. are not declared by the Glibc module (they need _XOPEN_SOURCE);
  // they are in libc all the same.
  private typealias OpenPT = @convention(c) (Int32) -> Int32
  private typealias PTOp = @convention(c) (Int32) -> Int32
  private typealias PTSName = @convention(c) (Int32, UnsafeMutablePointer<CChar>, Int) -> Int32

  private static func symbol<T>(_ name: String, as type: T.Type) throws -> T {
    guard let pointer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else {
      throw TestFailure("\(name) not found in libc")
    }
    return unsafeBitCast(pointer, to: type)
  }

  init() throws {
    let openpt = try Self.symbol("posix_openpt", as: OpenPT.self)
    let grant = try Self.symbol("grantpt", as: PTOp.self)
    let unlock = try Self.symbol("unlockpt", as: PTOp.self)
    let name = try Self.symbol("ptsname_r", as: PTSName.self)
    let fd = openpt(O_RDWR | O_NOCTTY)
    var buffer = [CChar](repeating: 0, count: 128)
    guard fd >= 0, grant(fd) == 0, unlock(fd) == 0, name(fd, &buffer, buffer.count) == 0 else {
      throw TestFailure("posix_openpt failed: \(String(cString: strerror(errno)))")
    }
    master = fd
    slavePath = String(cString: buffer)
  }

  deinit { close(master) }
}

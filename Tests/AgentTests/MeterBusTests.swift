import DLT645
import Foundation
import Runtime
import TestSupport
import Testing

@testable import GridEdgeAgent

/// Drives `buses` in a poll loop like the agent's until `until` holds or `timeout`
/// seconds pass; completions and incidents are collected into `log`.
final class BusLog {
  var completions: [MeterBus.Completion] = []
  var incidents: [MeterBus.Incident] = []

  func outcome(_ ticket: Int64) -> MeterBus.Outcome? {
    completions.first { $0.ticket == ticket }?.outcome
  }

  func completion(_ ticket: Int64) -> MeterBus.Completion? {
    completions.first { $0.ticket == ticket }
  }

  var noAnswerIncidents: Int {
    incidents.filter { if case .noAnswer = $0 { return true } else { return false } }.count
  }
  var corruptIncidents: Int {
    incidents.filter { if case .corruptFrame = $0 { return true } else { return false } }.count
  }
  var wrongAddressIncidents: Int {
    incidents.filter { if case .wrongAddress = $0 { return true } else { return false } }.count
  }
  var lineDownIncidents: Int {
    incidents.filter { if case .lineDown = $0 { return true } else { return false } }.count
  }
  var lineUpIncidents: Int {
    incidents.filter { if case .lineUp = $0 { return true } else { return false } }.count
  }
}

@discardableResult
func drive(_ buses: [MeterBus], log: BusLog, timeout: Double, until: (BusLog) -> Bool) -> Bool {
  let end = monotonicSeconds() + timeout
  while true {
    for bus in buses {
      log.completions += bus.takeCompletions()
      log.incidents += bus.takeIncidents()
    }
    if until(log) { return true }
    if monotonicSeconds() > end { return false }
    let now = monotonicMilliseconds()
    for bus in buses { bus.tick(now: now) }
    var requests: [PollRequest] = []
    var owners: [MeterBus] = []
    for bus in buses {
      if let request = bus.pollRequest {
        requests.append(request)
        owners.append(bus)
      }
    }
    var wait: Int64 = 20
    for bus in buses {
      if let deadline = bus.nextDeadline { wait = min(wait, max(0, deadline - now)) }
    }
    let results = (try? Poller.wait(requests, timeoutMilliseconds: Int32(wait))) ?? []
    let after = monotonicMilliseconds()
    for (i, result) in results.enumerated() { owners[i].service(result, now: after) }
  }
}

func fastSettings(timeout: Int64 = 300, retries: Int = 2, gap: Int64 = 10) -> MeterBus.Settings {
  var s = MeterBus.Settings()
  s.replyTimeoutMilliseconds = timeout
  s.retries = retries
  s.gapMilliseconds = gap
  s.reconnectMinMilliseconds = 50
  s.reconnectMaxMilliseconds = 200
  return s
}

/// A fast gateway timing: 9600 baud, so line times stay small in tests.
let fastTiming = LineTiming(baud: 9600, bitsPerCharacter: 11)

@Suite(.serialized) struct MeterBusTests {
  @Test func readGetsTheMetersReplyOverATCPGateway() throws {
    let meter = FakeMeter("000012345678")
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings())
    let ticket = bus.submit(.read(.forwardActiveBlock), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    guard case .reply(.readData(let identifier, let bytes, _)) = log.outcome(ticket) else {
      Issue.record("expected read data, got \(String(describing: log.outcome(ticket)))")
      return
    }
    #expect(identifier == .forwardActiveBlock)
    #expect(try MeterValue(decoding: bytes[...], for: identifier) == .energyRegisters(meter.registers))
    #expect(log.completion(ticket)?.attempts == 1)
    #expect(log.lineUpIncidents == 1)
    #expect(line.requestLog.map { $0.wakeUps } == [4])
  }

  @Test func requestCarriesTheConfiguredNumberOfWakeUpBytes() throws {
    let meter = FakeMeter("000012345678")
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    var settings = fastSettings()
    settings.wakeUpBytes = 2
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: settings)
    let ticket = bus.submit(.read(.forwardActiveTotal), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    #expect(line.requestLog.map { $0.wakeUps } == [2])
  }

  @Test func silentMeterIsMarkedReportedOnceAndDoesNotStallTheBus() throws {
    let dead = FakeMeter("000000000001")
    dead.silent = true
    let alive = FakeMeter("000000000002")
    let line = FakeMeterLine([dead, alive])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings(timeout: 150, retries: 2))
    let first = bus.submit(.read(.forwardActiveTotal), to: dead.address)
    let other = bus.submit(.read(.forwardActiveTotal), to: alive.address)
    let second = bus.submit(.read(.forwardActiveTotal), to: dead.address)
    let log = BusLog()
    let started = monotonicSeconds()
    #expect(drive([bus], log: log, timeout: 5) { $0.completions.count == 3 })
    let elapsed = monotonicSeconds() - started
    guard case .noAnswer = log.outcome(first) else {
      Issue.record("expected no answer, got \(String(describing: log.outcome(first)))")
      return
    }
    #expect(log.completion(first)?.attempts == 3)
    guard case .reply = log.outcome(other) else {
      Issue.record("the answering meter was not read: \(String(describing: log.outcome(other)))")
      return
    }
    guard case .noAnswer = log.outcome(second) else {
      Issue.record("expected no answer, got \(String(describing: log.outcome(second)))")
      return
    }
    // Marked silent: one attempt, no retries.
    #expect(log.completion(second)?.attempts == 1)
    #expect(bus.isSilent(dead.address))
    #expect(log.noAnswerIncidents == 1)
    // 4 timeouts of ~150 ms plus line time, not more.
    #expect(elapsed < 2.0)
  }

  @Test func silentMeterThatAnswersAgainIsUnmarkedAndReported() throws {
    let meter = FakeMeter("000000000001")
    meter.silent = true
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings(timeout: 100, retries: 0))
    let first = bus.submit(.read(.forwardActiveTotal), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(first) != nil })
    #expect(bus.isSilent(meter.address))
    line.with { meter.silent = false }
    let second = bus.submit(.read(.forwardActiveTotal), to: meter.address)
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(second) != nil })
    #expect(!bus.isSilent(meter.address))
    #expect(
      log.incidents.contains {
        if case .answering(let m) = $0 { return m == meter.address } else { return false }
      })
  }

  @Test func corruptReplyIsCountedAndRetried() throws {
    let meter = FakeMeter("000012345678")
    meter.corruptReplies = 1
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings())
    let ticket = bus.submit(.read(.forwardActiveBlock), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    guard case .reply(.readData) = log.outcome(ticket) else {
      Issue.record("expected read data after a retry, got \(String(describing: log.outcome(ticket)))")
      return
    }
    #expect(log.completion(ticket)?.attempts == 2)
    #expect(log.corruptIncidents == 1)
  }

  @Test func meterThatOnlySendsCorruptFramesEndsAsBadRepliesNotSilent() throws {
    let meter = FakeMeter("000012345678")
    meter.corruptReplies = 10
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings(retries: 2))
    let ticket = bus.submit(.read(.forwardActiveBlock), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    guard case .badReplies = log.outcome(ticket) else {
      Issue.record("expected bad replies, got \(String(describing: log.outcome(ticket)))")
      return
    }
    #expect(log.corruptIncidents == 3)
    #expect(!bus.isSilent(meter.address))
  }

  @Test func replyFromAnotherAddressIsCountedAndIgnored() throws {
    let meter = FakeMeter("000012345678")
    meter.wrongAddressReplies = 1
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings(timeout: 150, retries: 1))
    let ticket = bus.submit(.read(.forwardActiveTotal), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    guard case .reply(.readData) = log.outcome(ticket) else {
      Issue.record("expected read data, got \(String(describing: log.outcome(ticket)))")
      return
    }
    #expect(log.wrongAddressIncidents == 1)
    #expect(log.completion(ticket)?.attempts == 2)
  }

  @Test func errorReplyCompletesWithTheErrorWord() throws {
    let meter = FakeMeter("000012345678")
    meter.refused = [DataIdentifier.forwardActiveBlock.rawValue]
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings())
    let ticket = bus.submit(.read(.forwardActiveBlock), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    guard case .reply(.readError(let word)) = log.outcome(ticket) else {
      Issue.record("expected an error reply, got \(String(describing: log.outcome(ticket)))")
      return
    }
    #expect(word == .noRequestedData)
    #expect(log.completion(ticket)?.attempts == 1)
  }

  @Test func gatewayThatClosesIsReconnectedAndTheExchangeCompletes() throws {
    let meter = FakeMeter("000012345678")
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings())
    let log = BusLog()
    let first = bus.submit(.read(.forwardActiveTotal), to: meter.address)
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(first) != nil })
    gateway.dropConnections()
    usleep(50_000)
    let second = bus.submit(.read(.forwardActiveTotal), to: meter.address)
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(second) != nil })
    guard case .reply(.readData) = log.outcome(second) else {
      Issue.record("expected read data after reconnecting, got \(String(describing: log.outcome(second)))")
      return
    }
    #expect(log.lineDownIncidents >= 1)
    #expect(log.lineUpIncidents == 2)
    #expect(gateway.acceptedCount == 2)
  }

  @Test func unreachableGatewayIsRetriedWithBackoffUntilItListens() throws {
    let port = try freeLoopbackPort()
    let meter = FakeMeter("000012345678")
    let line = FakeMeterLine([meter])
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(port), timing: fastTiming),
      settings: fastSettings())
    let ticket = bus.submit(.read(.forwardActiveTotal), to: meter.address)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 1) { $0.lineDownIncidents >= 2 })
    #expect(!bus.isUp)
    #expect(log.completion(ticket) == nil, "a request must wait for the line, not fail")
    let gateway = try FakeGateway(line, port: port)
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    guard case .reply(.readData) = log.outcome(ticket) else {
      Issue.record("expected read data, got \(String(describing: log.outcome(ticket)))")
      return
    }
    #expect(gateway.acceptedCount == 1)
  }

  @Test func interFrameGapIsKeptBetweenExchanges() throws {
    let meter = FakeMeter("000012345678")
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings(gap: 200))
    let log = BusLog()
    bus.submit(.read(.forwardActiveTotal), to: meter.address)
    bus.submit(.read(.forwardActiveTotal), to: meter.address)
    bus.submit(.read(.forwardActiveTotal), to: meter.address)
    #expect(drive([bus], log: log, timeout: 5) { $0.completions.count == 3 })
    #expect(waitUntil(timeout: 2) { line.replyTimes.count == 3 })
    let requests = line.requestLog.map { $0.at }
    let replies = line.replyTimes
    #expect(requests.count == 3 && replies.count == 3)
    for i in 1..<min(requests.count, replies.count) {
      #expect(requests[i] - replies[i - 1] >= 0.19, "gap \(requests[i] - replies[i - 1]) s")
    }
  }

  @Test func twoBusesWaitForTheirMetersAtTheSameTime() throws {
    let a = FakeMeter("000000000001")
    a.silent = true
    let b = FakeMeter("000000000002")
    b.silent = true
    let lineA = FakeMeterLine([a])
    let lineB = FakeMeterLine([b])
    let gatewayA = try FakeGateway(lineA)
    let gatewayB = try FakeGateway(lineB)
    let settings = fastSettings(timeout: 800, retries: 0)
    let busA = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gatewayA.port), timing: fastTiming),
      settings: settings)
    let busB = MeterBus(
      name: "2", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gatewayB.port), timing: fastTiming),
      settings: settings)
    let log = BusLog()
    // Open both lines first, so only the reply waits are timed.
    #expect(drive([busA, busB], log: log, timeout: 5) { _ in busA.isUp && busB.isUp })
    busA.submit(.read(.forwardActiveTotal), to: a.address)
    busA.submit(.read(.forwardActiveTotal), to: a.address)
    busB.submit(.read(.forwardActiveTotal), to: b.address)
    busB.submit(.read(.forwardActiveTotal), to: b.address)
    let started = monotonicSeconds()
    #expect(drive([busA, busB], log: log, timeout: 5) { $0.completions.count == 4 })
    let elapsed = monotonicSeconds() - started
    // Two timeouts in a row on each bus (~1.65 s); one bus after the other would be ~3.3 s.
    #expect(elapsed < 2.8, "took \(elapsed) s")
    #expect(elapsed >= 1.6)
  }

  @Test func cancelByTagCompletesQueuedExchangesAsCancelled() throws {
    let meter = FakeMeter("000012345678")
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings())
    bus.submit(.read(.forwardActiveTotal), to: meter.address, tag: 1)
    bus.submit(.read(.forwardActiveTotal), to: meter.address, tag: 2)
    let kept = bus.submit(.read(.forwardActiveTotal), to: meter.address, tag: 1)
    #expect(bus.cancel(tag: 2) == 1)
    #expect(bus.queuedCount == 2)
    let log = BusLog()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(kept) != nil })
    #expect(
      log.completions.filter { if case .cancelled = $0.outcome { return true } else { return false } }.count
        == 1)
    #expect(line.requestLog.count == 2)
  }

  @Test func broadcastTimeIsSentToEveryMeterWithoutWaitingForAReply() throws {
    let meter = FakeMeter("000012345678")
    let line = FakeMeterLine([meter])
    let gateway = try FakeGateway(line)
    let bus = MeterBus(
      name: "1", transport: TCPGateway(host: "127.0.0.1", port: UInt16(gateway.port), timing: fastTiming),
      settings: fastSettings(timeout: 2000))
    let time = try MeterDateTime(year: 2026, month: 1, day: 2, hour: 10, minute: 0, second: 0)
    let ticket = bus.submit(.broadcastTime(time), to: meter.address)
    let log = BusLog()
    let started = monotonicSeconds()
    #expect(drive([bus], log: log, timeout: 5) { $0.completion(ticket) != nil })
    #expect(monotonicSeconds() - started < 1.0, "a broadcast must not wait for the reply timeout")
    guard case .sent = log.outcome(ticket) else {
      Issue.record("expected sent, got \(String(describing: log.outcome(ticket)))")
      return
    }
    #expect(waitUntil(timeout: 2) { line.broadcastLog == [time] })
    #expect(line.requestLog.first?.frame.address == .broadcast)
  }

  @Test func replyTimeIncludesTheLineTimeOfRequestAndReply() {
    let timing = LineTiming(baud: 2400, bitsPerCharacter: 11)
    // 20 characters of 11 bits at 2400 baud: 91.67 ms, rounded up.
    #expect(timing.milliseconds(20) == 92)
    #expect(LineTiming(baud: 1200, bitsPerCharacter: 10).milliseconds(12) == 100)
    #expect(timing.milliseconds(0) == 0)
    // A block read: frame 12 + 4 wake-up + DI 4 + 20 value + 1.
    #expect(MeterBus.expectedReplyBytes(.read(.forwardActiveBlock)) == 41)
    #expect(MeterBus.expectedReplyBytes(.read(.time)) == 12 + 4 + 4 + 3 + 1)
  }
}

@Suite struct BusSpecTests {
  @Test func serialSpecWithDefaults() throws {
    let spec = try BusSpec.parse("serial /dev/ttyS1")
    #expect(spec.kind == .serial(device: "/dev/ttyS1", rs485: false))
    #expect(spec.baud == 2400 && spec.formatText == "8E1")
    #expect(spec.timing == LineTiming(baud: 2400, bitsPerCharacter: 11))
  }

  @Test func serialSpecWithEverything() throws {
    let spec = try BusSpec.parse("serial  /dev/ttyUSB0\t9600 8N2 rs485")
    #expect(spec.kind == .serial(device: "/dev/ttyUSB0", rs485: true))
    #expect(spec.baud == 9600 && spec.formatText == "8N2")
    #expect(spec.timing.bitsPerCharacter == 11)
    #expect(try BusSpec.parse("serial /dev/ttyS2 1200 7O1").timing.bitsPerCharacter == 10)
  }

  @Test func tcpSpecs() throws {
    let spec = try BusSpec.parse("tcp 192.168.1.50:8899")
    #expect(spec.kind == .tcp(host: "192.168.1.50", port: 8899))
    #expect(try BusSpec.parse("tcp [fe80::1]:502 4800 8E1").kind == .tcp(host: "fe80::1", port: 502))
    #expect(try BusSpec.parse("tcp 10.0.0.1:1 4800").baud == 4800)
  }

  private func failure(_ text: String) -> String {
    do {
      _ = try BusSpec.parse(text)
      return "accepted"
    } catch {
      return error.description
    }
  }

  @Test func badSpecsSayWhatIsWrong() {
    #expect(failure("") == "empty bus specification")
    #expect(failure("rs485 /dev/ttyS1").hasPrefix("expected 'serial DEVICE ...' or 'tcp ADDRESS:PORT ...'"))
    #expect(failure("serial ttyS1").hasPrefix("'serial' needs a device path"))
    #expect(failure("serial /dev/ttyS1 19200") == "baud rate '19200' is not 1200, 2400, 4800 or 9600")
    #expect(failure("serial /dev/ttyS1 2400 8X1") == "line format '8X1': parity must be N, E or O")
    #expect(failure("serial /dev/ttyS1 2400 9E1").hasPrefix("line format '9E1' is not like 8E1"))
    #expect(failure("serial /dev/ttyS1 2400 8E1 extra") == "unexpected 'extra'")
    #expect(failure("tcp 10.0.0.1") == "'10.0.0.1' is not ADDRESS:PORT with a port 1-65535")
    #expect(failure("tcp 10.0.0.1:0") == "'10.0.0.1:0' is not ADDRESS:PORT with a port 1-65535")
    #expect(failure("tcp :502") == "':502' has no address")
    #expect(failure("tcp") == "'tcp' needs ADDRESS:PORT, e.g. 'tcp 192.168.1.50:8899'")
  }

  @Test func hostNameIsRefusedWhenConnectingBecauseItWouldBlock() {
    let gateway = TCPGateway(host: "gateway.example", port: 8899)
    do {
      _ = try gateway.open()
      Issue.record("a host name was accepted")
    } catch {
      #expect(error.description.contains("a numeric address is needed"))
      #expect(error.description.hasPrefix("tcp gateway.example:8899: "))
    }
  }
}

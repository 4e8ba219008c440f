import DLT645
import GridEdgeCore
import Testing

@testable import MeterSim

/// Requests encoded with the DLT645 codec, answered by `Simulator.handle`, replies
/// decoded again: what the agent's meter bus will see.
@Suite struct RequestHandlingTests {
  @Test func readOfForwardTotalAnswersWithTheRegisterFromTheMetersAddress() throws {
    let simulator = Simulator(options: makeOptions(meters: 3))
    let result = try exchange(simulator, .read(.forwardActiveTotal), to: meterAddress(2))
    guard case .reply(.readData(let identifier, let bytes, hasFollowUp: false), let from) = result else {
      throw TestFailure("\(result)")
    }
    #expect(identifier == .forwardActiveTotal)
    #expect(from == meterAddress(2))
    let value = try MeterValue(decoding: bytes[...], for: .forwardActiveTotal)
    #expect(value == .energy(centiKilowattHours: simulator.meters[1].registers.forwardTotalRegister))
  }

  @Test func everyIdentifierTheAgentReadsHasAValueOfItsFormat() throws {
    let simulator = Simulator(options: makeOptions(meters: 2, historyDays: 2, profile: .commercial))
    var identifiers: [DataIdentifier] = [
      .forwardActiveTotal, .forwardActiveBlock, .reverseActiveTotal, .voltageBlock, .currentBlock,
      .totalActivePower, .date, .time, .runStatusWord3, .lastDailyFreezeTime, .lastDailyFreezeForwardActive,
      .remainingMoney, .overdraftMoney, .purchaseCount,
      DataIdentifier.dailyFreezeTime(previous: 2)!, DataIdentifier.dailyFreezeForwardActive(previous: 2)!,
    ]
    identifiers += DataIdentifier.Tariff.allCases.map { DataIdentifier.forwardActive($0) }
    identifiers += DataIdentifier.Phase.allCases.flatMap { [DataIdentifier.voltage($0), .current($0)] }
    for identifier in identifiers {
      let value = try readValue(simulator, identifier, from: meterAddress(1))
      #expect(value.format == identifier.format, "\(identifier)")
    }
    guard case .voltages(let volts) = try readValue(simulator, .voltageBlock, from: meterAddress(1)) else {
      throw TestFailure("not voltages")
    }
    #expect(volts.allSatisfy { (2_134...2_266).contains($0) })
    guard case .date(let date) = try readValue(simulator, .date, from: meterAddress(1)) else {
      throw TestFailure("not a date")
    }
    #expect(date == (try MeterDate(year: 2026, month: 1, day: 1, weekday: 4)))
  }

  @Test func unknownIdentifierIsAnsweredWithNoRequestedData() throws {
    let simulator = Simulator(options: makeOptions(meters: 1))
    for raw: UInt32 in [0x0400_0401, 0x0003_0000, 0x0332_0201, 0x0506_0000, 0xFFFF_FFFF] {
      let reply = try exchange(simulator, .read(DataIdentifier(rawValue: raw)), to: meterAddress(1)).reply
      #expect(reply == .readError(.noRequestedData), "\(DataIdentifier(rawValue: raw))")
    }
    // No freeze yet: the freeze records do not exist.
    #expect(
      try exchange(simulator, .read(.lastDailyFreezeForwardActive), to: meterAddress(1)).reply
        == .readError(.noRequestedData))
  }

  @Test func singlePhaseMeterHasNoPhaseBOrCButTheAreaMeterHas() throws {
    let simulator = Simulator(options: makeOptions(meters: 1, profile: .residential))
    #expect(
      try exchange(simulator, .read(.voltage(.b)), to: meterAddress(1)).reply == .readError(.noRequestedData))
    guard case .currents(let currents) = try readValue(simulator, .currentBlock, from: meterAddress(1)) else {
      throw TestFailure("not currents")
    }
    #expect(
      currents[0] > 0 && currents[1] == 0 && currents[2] == 0,
      "\(currents) \(simulator.meters[0].measuredWatts)")
    guard case .voltage = try readValue(simulator, .voltage(.c), from: simulator.area!.address) else {
      throw TestFailure("no phase C voltage on the area meter")
    }
    #expect(
      try exchange(simulator, .read(.remainingMoney), to: simulator.area!.address).reply
        == .readError(.noRequestedData))
  }

  @Test func requestToAnAddressNobodyHasGetsNoReply() throws {
    let simulator = Simulator(options: makeOptions(meters: 3))
    #expect(try exchange(simulator, .read(.forwardActiveTotal), to: meterAddress(4)).reply == nil)
  }

  @Test func readAddressToTheWildcardIsUnderstoodOnlyWhenOneMeterIsOnTheBus() throws {
    let alone = Simulator(options: makeOptions(meters: 1, area: false))
    #expect(try exchange(alone, .readAddress, to: .wildcard).reply == .address(meterAddress(1)))
    let crowd = Simulator(options: makeOptions(meters: 3))
    // Several answer at once: their replies collide into bytes that do not decode.
    guard case .malformed = try exchange(crowd, .readAddress, to: .wildcard) else {
      throw TestFailure("a collision decoded")
    }
    // A pattern that fits one meter: A…A01 with meters 1–3 and the area meter 900000000001.
    let pattern = Address("AAAAAAAAAA02")!
    #expect(try exchange(crowd, .readAddress, to: pattern).reply == .address(meterAddress(2)))
    guard case .malformed = try exchange(crowd, .readAddress, to: Address("AAAAAAAAAA01")!) else {
      throw TestFailure("meter 1 and the area meter did not collide")
    }
    #expect(try exchange(crowd, .readAddress, to: Address("AAAAAAAAAA05")!).reply == nil)  // nobody
    // A read collides too; a control request to a pattern gets no reply and moves nothing.
    guard case .malformed = try exchange(crowd, .read(.forwardActiveTotal), to: .wildcard) else {
      throw TestFailure("a read collision decoded")
    }
    #expect(try exchange(crowd, controlRequest(.trip), to: .wildcard).reply == nil)
    #expect(crowd.meters.allSatisfy { !$0.relayOpen })
    // Its own address always works.
    #expect(try exchange(crowd, .readAddress, to: meterAddress(3)).reply == .address(meterAddress(3)))
  }

  @Test func silentMeterNeverAnswersAndDoesNotCollide() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 2, area: false) {
        $0.faults = [FaultRule(kind: .silent, selection: .numbers(1...1))]
      })
    #expect(try exchange(simulator, .read(.forwardActiveTotal), to: meterAddress(1)).reply == nil)
    #expect(try exchange(simulator, controlRequest(.trip), to: meterAddress(1)).reply == nil)
    #expect(!simulator.meters[0].relayOpen)
    #expect(try exchange(simulator, .readAddress, to: .wildcard).reply == .address(meterAddress(2)))
  }

  @Test func broadcastTimeSetsEveryClockAndGetsNoReply() throws {
    let simulator = Simulator(options: makeOptions(meters: 3))
    let time = try MeterDateTime(year: 2026, month: 1, day: 1, hour: 8, minute: 5, second: 30)
    #expect(try exchange(simulator, .broadcastTime(time), to: .broadcast).reply == nil)
    for meter in simulator.meters + [simulator.area!] {
      #expect(meter.meterTime == testStart + 5 * 60_000 + 30_000)
      guard case .time(let shown) = try readValue(simulator, .time, from: meter.address) else {
        throw TestFailure("not a time")
      }
      #expect(shown == (try MeterTime(hour: 8, minute: 5, second: 30)))
    }
    simulator.advance(to: testStart + hour)
    #expect(simulator.meters[0].meterTime == testStart + hour + 330_000)
  }

  @Test func broadcastTimeOverMidnightTakesThatDaysFreezeOnce() throws {
    let simulator = Simulator(options: makeOptions(meters: 1, area: false))
    let nextDay = try MeterDateTime(year: 2026, month: 1, day: 2, hour: 0, minute: 0, second: 5)
    _ = try exchange(simulator, .broadcastTime(nextDay), to: .broadcast)
    #expect(simulator.meters[0].registers.freezeCount == 1)
    // Set back and over midnight again: no second freeze for the same day.
    _ = try exchange(
      simulator,
      .broadcastTime(try MeterDateTime(year: 2026, month: 1, day: 1, hour: 23, minute: 59, second: 0)),
      to: .broadcast)
    simulator.advance(to: simulator.now + 2 * 60_000)
    #expect(simulator.meters[0].registers.freezeCount == 1)
  }

  @Test func controlWithAWrongPasswordIsRefusedAsUnauthorised() throws {
    let simulator = Simulator(options: makeOptions(meters: 1))
    let wrong = try Password(level: 0x02, code: 0x123456)
    #expect(
      try exchange(simulator, controlRequest(.trip, password: wrong), to: meterAddress(1)).reply
        == .controlRefused(.unauthorized))
    let otherLevel = try Password(level: 0x04, code: 0)
    #expect(
      try exchange(simulator, controlRequest(.trip, password: otherLevel), to: meterAddress(1)).reply
        == .controlRefused(.unauthorized))
    #expect(!simulator.meters[0].relayOpen)
  }

  @Test func controlPastItsValidUntilTimeIsRefused() throws {
    let simulator = Simulator(options: makeOptions(meters: 1))
    // The meters show 2026-01-01 08:00; valid until 07:59:59.
    let expired = try MeterDateTime(year: 2026, month: 1, day: 1, hour: 7, minute: 59, second: 59)
    #expect(
      try exchange(simulator, controlRequest(.trip, validUntil: expired), to: meterAddress(1)).reply
        == .controlRefusedStatus(.validUntilExpired))
    let valid = try MeterDateTime(year: 2026, month: 1, day: 1, hour: 8, minute: 0, second: 0)
    #expect(
      try exchange(simulator, controlRequest(.trip, validUntil: valid), to: meterAddress(1)).reply
        == .controlAccepted)
  }

  @Test func keepPowerRefusesTripsUntilReleased() throws {
    let simulator = Simulator(options: makeOptions(meters: 1))
    let address = meterAddress(1)
    #expect(try exchange(simulator, controlRequest(.keepPower), to: address).reply == .controlAccepted)
    #expect(try readStatus(simulator, from: address).keepPower)
    #expect(
      try exchange(simulator, controlRequest(.trip), to: address).reply
        == .controlRefusedStatus(.tripRefusedKeepPower))
    #expect(!simulator.meters[0].relayOpen)
    #expect(try exchange(simulator, controlRequest(.keepPowerRelease), to: address).reply == .controlAccepted)
    #expect(try exchange(simulator, controlRequest(.trip), to: address).reply == .controlAccepted)
    #expect(simulator.meters[0].relayOpen)
    #expect(try exchange(simulator, controlRequest(.closePermit), to: address).reply == .controlAccepted)
    let status = try readStatus(simulator, from: address)
    #expect(!status.relayOpen && !status.relayCommandOpen)
    #expect(try exchange(simulator, controlRequest(.alarm), to: address).reply == .controlAccepted)
    #expect(try readStatus(simulator, from: address).preTripAlarm)
    #expect(try exchange(simulator, controlRequest(.alarmRelease), to: address).reply == .controlAccepted)
    #expect(try !readStatus(simulator, from: address).preTripAlarm)
  }

  @Test func areaMeterHasNoRelayToControl() throws {
    let simulator = Simulator(options: makeOptions(meters: 1))
    #expect(
      try exchange(simulator, controlRequest(.trip), to: simulator.area!.address).reply
        == .controlRefused(.other))
    #expect(try !readStatus(simulator, from: simulator.area!.address).relayOpen)
  }

  @Test func followUpReadAndUnsupportedFunctionsGetAbnormalReplies() throws {
    let simulator = Simulator(options: makeOptions(meters: 1))
    #expect(
      try exchange(simulator, .readFollowUp(.forwardActiveTotal, sequence: 1), to: meterAddress(1)).reply
        == .readFollowUpError(.noRequestedData))
    // Write data (0x14): abnormal reply 0xD4 with "other error".
    let write = try Frame(
      address: meterAddress(1), control: Control(.write), data: [0x01, 0x01, 0x00, 0x04, 0x02])
    var decoder = FrameDecoder()
    decoder.feed(simulator.handle(write)!.bytes)
    let reply = try decoder.next()!
    #expect(reply.control.rawValue == 0xD4)
    #expect(reply.data == [ErrorWord.other.rawValue])
    // A read with a wrong length is malformed: a meter stays quiet.
    let bad = try Frame(address: meterAddress(1), control: Control(.read), data: [0x00, 0x00, 0x01])
    #expect(simulator.handle(bad) == nil)
  }

  @Test func repliesPickedForCorruptionFailTheChecksumAtAboutTheGivenShare() throws {
    let all = Simulator(options: makeOptions(meters: 1) { $0.corruptPermille = 1_000 })
    guard case .malformed(let error) = try exchange(all, .read(.forwardActiveTotal), to: meterAddress(1))
    else {
      throw TestFailure("a corrupted reply decoded")
    }
    #expect(error.code == .checksumMismatch)

    let some = Simulator(options: makeOptions(meters: 1) { $0.corruptPermille = 250 })
    var corrupted = 0
    for _ in 0..<2_000 {
      if case .malformed = try exchange(some, .read(.forwardActiveTotal), to: meterAddress(1)) {
        corrupted += 1
      }
    }
    #expect(corrupted == some.corruptedReplyCount)
    #expect((400...600).contains(corrupted))
  }

  @Test func slowMeterRepliesCarryTheirExtraDelay() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 2) {
        $0.faults = [FaultRule(kind: .slow, selection: .numbers(2...2), value: 350)]
      })
    let fast = simulator.handle(Request.read(.forwardActiveTotal).frame(to: meterAddress(1)))!
    let slow = simulator.handle(Request.read(.forwardActiveTotal).frame(to: meterAddress(2)))!
    #expect(fast.extraDelayMilliseconds == 0)
    #expect(slow.extraDelayMilliseconds == 350)
    #expect(slow.meterNumber == 2)
  }
}

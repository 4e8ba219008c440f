import Testing

@testable import DLT645

/// A frame from its parts (data plain).
private func frame(_ control: UInt8, _ data: [UInt8], to address: Address = meter) throws -> Frame {
  try Frame(address: address, control: Control(rawValue: control), data: data)
}

private func requestError(_ frame: Frame) throws -> MessageError {
  try #require(throws: MessageError.self) { try Request(frame: frame) }
}

private func replyError(_ frame: Frame) throws -> MessageError {
  try #require(throws: MessageError.self) { try Reply(frame: frame) }
}

@Suite struct RequestParsingTests {
  @Test func readNeedsExactlyFourDataBytes() throws {
    for count in [0, 3, 5, 10] {
      let error = try requestError(try frame(0x11, [UInt8](repeating: 0, count: count)))
      #expect(error.code == .unexpectedDataLength, "\(count) bytes")
    }
    #expect(try Request(frame: try frame(0x11, [0x00, 0x00, 0x01, 0x00])) == .read(.forwardActiveTotal))
    let error = try requestError(try frame(0x11, [0, 0, 1]))
    #expect(
      error.description
        == "frame with control 0x11 (read): data field must be 4 bytes (the data identifier), got 3 bytes")
  }

  @Test func readFollowUpNeedsIdentifierAndSequence() throws {
    #expect(try requestError(try frame(0x12, [0, 0, 1, 0])).code == .unexpectedDataLength)
    #expect(try requestError(try frame(0x12, [0, 0, 1, 0, 1, 2])).code == .unexpectedDataLength)
    #expect(
      try Request(frame: try frame(0x12, [0x00, 0x00, 0x01, 0x00, 0xFF]))
        == .readFollowUp(.forwardActiveTotal, sequence: 0xFF))
  }

  @Test func readAddressCarriesNoData() throws {
    #expect(try Request(frame: try frame(0x13, [], to: .wildcard)) == .readAddress)
    #expect(try requestError(try frame(0x13, [0])).code == .unexpectedDataLength)
  }

  @Test func broadcastTimeMustGoToTheBroadcastAddress() throws {
    let time: [UInt8] = [0x20, 0x14, 0x09, 0x16, 0x05, 0x24]
    let error = try requestError(try frame(0x08, time))
    #expect(error.code == .notBroadcast)
    #expect(error.description == "broadcast time (0x08) must be sent to 999999999999, not 000012345678")
    let request = try Request(frame: try frame(0x08, time, to: .broadcast))
    #expect(
      request
        == .broadcastTime(try MeterDateTime(year: 2024, month: 5, day: 16, hour: 9, minute: 14, second: 20)))
    #expect(
      try requestError(try frame(0x08, Array(time.prefix(5)), to: .broadcast)).code == .unexpectedDataLength)
  }

  @Test func broadcastTimeFrameAlwaysUsesTheBroadcastAddress() throws {
    let request = Request.broadcastTime(
      try MeterDateTime(year: 2024, month: 5, day: 16, hour: 9, minute: 14, second: 20))
    #expect(request.frame(to: meter).address == .broadcast)
  }

  @Test func broadcastTimeWithABadTimeIsAnInvalidField() throws {
    // Second 60.
    let error = try requestError(try frame(0x08, [0x60, 0x14, 0x09, 0x16, 0x05, 0x24], to: .broadcast))
    #expect(error.code == .invalidField)
    #expect(error.description.contains("second 60 is outside 0...59"))
  }

  @Test func controlFieldsDecode() throws {
    let data: [UInt8] = [
      0x04, 0x56, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12, 0x3A, 0x00, 0x59, 0x59, 0x23, 0x31, 0x12, 0x99,
    ]
    guard case .control(let control) = try Request(frame: try frame(0x1C, data)) else {
      Issue.record("not a control request")
      return
    }
    #expect(control.password == (try Password(level: 0x04, code: 0x12_3456)))
    #expect(control.operatorCode == 0x1234_5678)
    #expect(control.command == .keepPower)
    #expect(control.reserved == 0)
    #expect(control.validUntil.description == "2099-12-31 23:59:59")
    #expect(control.plainBytes == data)
  }

  @Test func everyRelayCommandRoundTrips() throws {
    let until = try MeterDateTime(year: 2024, month: 2, day: 29, hour: 0, minute: 0, second: 0)
    for command in RelayCommand.allCases {
      let request = Request.control(
        ControlRequest(
          password: try Password(level: 2, code: 0), operatorCode: 0, command: command, validUntil: until))
      let wire = request.frame(to: meter).encoded()
      #expect(wire[9] == 0x10)
      #expect(wire[18] == command.rawValue &+ 0x33)
      #expect(try Request(frame: try #require(decodeOne(wire))) == request)
    }
    #expect(RelayCommand.allCases.map(\.rawValue) == [0x1A, 0x1B, 0x1C, 0x2A, 0x2B, 0x3A, 0x3B])
  }

  @Test func controlWithAnUnknownCommandOrLengthIsRejected() throws {
    var data: [UInt8] = [0x02, 0, 0, 0, 0, 0, 0, 0, 0x1A, 0, 0, 0, 0, 0x01, 0x01, 0x24]
    _ = try Request(frame: try frame(0x1C, data))
    data[8] = 0x1D
    let error = try requestError(try frame(0x1C, data))
    #expect(error.code == .invalidField)
    #expect(error.description.contains("command N1 is invalid: 0x1D"))
    #expect(try requestError(try frame(0x1C, Array(data.prefix(15)))).code == .unexpectedDataLength)
    // An encrypted control (PA 98, 8-byte header + 20-byte cipher) is not supported.
    #expect(try requestError(try frame(0x1C, [UInt8](repeating: 0, count: 28))).code == .unexpectedDataLength)
  }

  @Test func passwordCodeHasSixHexDigits() throws {
    #expect(try Password(level: 2, code: 0xFF_FFFF).plainBytes == [0x02, 0xFF, 0xFF, 0xFF])
    let error = try #require(throws: ValueError.self) { try Password(level: 2, code: 0x100_0000) }
    #expect(error.code == .outOfRange)
  }

  @Test func repliesFlagsAndOtherFunctionsAreNotRequests() throws {
    #expect(try requestError(try frame(0x91, [0, 0, 1, 0])).code == .wrongDirection)
    #expect(try requestError(try frame(0x51, [0, 0, 1, 0])).code == .unexpectedFlags)
    #expect(try requestError(try frame(0x31, [0, 0, 1, 0])).code == .unexpectedFlags)
    for code: UInt8 in [0x00, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1D, 0x1F] {
      #expect(try requestError(try frame(code, [])).code == .unsupportedFunction, "\(code)")
    }
  }
}

@Suite struct ReplyParsingTests {
  @Test func readReplyNeedsAnIdentifier() throws {
    for count in 0..<4 {
      #expect(
        try replyError(try frame(0x91, [UInt8](repeating: 0, count: count))).code == .unexpectedDataLength)
    }
    // An identifier alone is a reply with an empty value (the value decoder judges it).
    #expect(
      try Reply(frame: try frame(0x91, [0, 0, 1, 0]))
        == .readData(.forwardActiveTotal, [], hasFollowUp: false))
  }

  @Test func abnormalRepliesCarryOneErrorByte() throws {
    #expect(try Reply(frame: try frame(0xD1, [0x06])) == .readError([.noRequestedData, .unauthorized]))
    #expect(try replyError(try frame(0xD1, [])).code == .unexpectedDataLength)
    #expect(try replyError(try frame(0xD1, [1, 2])).code == .unexpectedDataLength)
    #expect(try replyError(try frame(0xF1, [1])).code == .unexpectedFlags)
    #expect(try Reply(frame: try frame(0xD2, [0x01])) == .readFollowUpError(.other))
  }

  @Test func followUpReplyNeedsIdentifierAndSequence() throws {
    #expect(try replyError(try frame(0x92, [0, 0, 1, 0])).code == .unexpectedDataLength)
    #expect(
      try Reply(frame: try frame(0x92, [0, 0, 1, 0, 7]))
        == .readFollowUpData(.forwardActiveTotal, [], sequence: 7, hasFollowUp: false))
  }

  @Test func addressReplyMustBeAConcreteAddress() throws {
    #expect(try Reply(frame: try frame(0x93, meter.wireBytes)) == .address(meter))
    #expect(try replyError(try frame(0x93, Array(meter.wireBytes.prefix(5)))).code == .unexpectedDataLength)
    #expect(try replyError(try frame(0x93, [0x78, 0x56, 0x3B, 0x12, 0, 0])).code == .invalidField)
    #expect(try replyError(try frame(0x93, Address.wildcard.wireBytes)).code == .invalidField)
    #expect(try replyError(try frame(0xB3, meter.wireBytes)).code == .unexpectedFlags)
  }

  @Test func controlRepliesByLength() throws {
    #expect(try Reply(frame: try frame(0x9C, [])) == .controlAccepted)
    #expect(try replyError(try frame(0x9C, [0])).code == .unexpectedDataLength)
    #expect(try replyError(try frame(0xDC, [])).code == .unexpectedDataLength)
    #expect(try replyError(try frame(0xDC, [1, 2, 3])).code == .unexpectedDataLength)
    #expect(try replyError(try frame(0xBC, [])).code == .unexpectedFlags)
    #expect(
      try Reply(frame: try frame(0xDC, [0x10, 0x01]))
        == .controlRefusedStatus([.validUntilExpired, .preTripRefusedTripped]))
  }

  @Test func requestsAndUnsupportedFunctionsAreNotReplies() throws {
    #expect(try replyError(try frame(0x11, [0, 0, 1, 0])).code == .wrongDirection)
    #expect(try replyError(try frame(0x88, [])).code == .unsupportedFunction)
    #expect(try replyError(try frame(0x94, [])).code == .unsupportedFunction)
  }

  @Test func replyDataLongerThanAFrameIsAFrameError() throws {
    let reply = Reply.readData(.forwardActiveTotal, [UInt8](repeating: 0, count: 252), hasFollowUp: false)
    let error = try #require(throws: FrameError.self) { try reply.frame(from: meter) }
    #expect(error.code == .dataTooLong)
    _ = try Reply.readData(.forwardActiveTotal, [UInt8](repeating: 0, count: 251), hasFollowUp: false)
      .frame(from: meter)
  }

  @Test func errorWordNamesEachBit() {
    #expect(ErrorWord(rawValue: 0).description == "no reason given")
    #expect(ErrorWord.noRequestedData.description == "no requested data")
    #expect(
      ErrorWord(rawValue: 0xFF).description
        == "other error, no requested data, wrong password or unauthorised, baud rate cannot change, year time zones exceeded, day periods exceeded, tariff count exceeded, reserved bit D7"
    )
    let bits: [ErrorWord] = [
      .other, .noRequestedData, .unauthorized, .baudRateUnchangeable, .yearZonesExceeded, .dayPeriodsExceeded,
      .tariffsExceeded,
    ]
    #expect(bits.map(\.rawValue) == [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40])
  }
}

import Testing

@testable import DLT645

private func decode(_ bytes: [UInt8], _ format: ValueFormat) throws -> MeterValue {
  try MeterValue(decoding: bytes[...], as: format)
}

private func decodeError(_ bytes: [UInt8], _ format: ValueFormat) throws -> ValueError {
  try #require(throws: ValueError.self) { try MeterValue(decoding: bytes[...], as: format) }
}

private func encodeError(_ value: MeterValue) throws -> ValueError {
  try #require(throws: ValueError.self) { try value.encoded() }
}

/// Every fixed-size format with a valid value of that size.
private let fixedFormats: [(ValueFormat, [UInt8])] = [
  (.energy, [0x67, 0x45, 0x23, 0x01]), (.money, [0x45, 0x23, 0x01, 0x00]), (.count, [0x17, 0x00]),
  (.voltage, [0x01, 0x22]), (.voltageBlock, [0x01, 0x22, 0x98, 0x21, 0x00, 0x23]),
  (.current, [0x23, 0x51, 0x00]), (.currentBlock, [0x23, 0x51, 0x00, 0x00, 0x15, 0x80, 0x99, 0x99, 0x79]),
  (.activePower, [0x45, 0x23, 0x01]), (.date, [0x04, 0x16, 0x05, 0x24]), (.time, [0x20, 0x14, 0x09]),
  (.freezeTime, [0x00, 0x00, 0x16, 0x05, 0x24]), (.runStatusWord3, [0x50, 0x02]),
]

@Suite struct ValueLengthTests {
  @Test func emptyTruncatedAndOverlongDataIsWrongLength() throws {
    for (format, good) in fixedFormats {
      #expect(format.byteCount == good.count)
      _ = try decode(good, format)
      for bad in [[], Array(good.dropLast()), good + [0x00]] {
        let error = try decodeError(bad, format)
        #expect(error.code == .wrongLength, "\(format) with \(bad.count) bytes")
        #expect(error.description.contains("must be \(good.count) bytes, got \(bad.count)"))
      }
    }
  }

  @Test func energyBlockIsTotalPlusZeroToSixtyTwoTariffs() throws {
    #expect(ValueFormat.energyBlock.byteCount == nil)
    #expect(
      try decode([0x01, 0x00, 0x00, 0x00], .energyBlock)
        == .energyRegisters(EnergyRegisters(total: 1, tariffs: [])))
    let full = try decode([UInt8](repeating: 0x99, count: 252), .energyBlock)
    guard case .energyRegisters(let registers) = full else {
      Issue.record("not registers")
      return
    }
    #expect(registers.tariffs.count == 62)
    #expect(registers.total == 99_999_999)
    for count in [0, 3, 5, 6, 256] {
      #expect(try decodeError([UInt8](repeating: 0, count: count), .energyBlock).code == .wrongLength)
    }
  }
}

@Suite struct EnergyAndMoneyValueTests {
  @Test func energyBoundaries() throws {
    #expect(try decode([0, 0, 0, 0], .energy) == .energy(centiKilowattHours: 0))
    #expect(try decode([0x99, 0x99, 0x99, 0x99], .energy) == .energy(centiKilowattHours: 99_999_999))
    #expect(try MeterValue.energy(centiKilowattHours: 99_999_999).encoded() == [0x99, 0x99, 0x99, 0x99])
    #expect(try MeterValue.energy(centiKilowattHours: 0).encoded() == [0, 0, 0, 0])
    #expect(try encodeError(.energy(centiKilowattHours: 100_000_000)).code == .notEncodable)
    let negative = try encodeError(.energy(centiKilowattHours: -1))
    #expect(negative.code == .notEncodable)
    #expect(negative.description == "XXXXXX.XX kWh value cannot be encoded: -1 is not 0…99999999")
  }

  @Test func energyNotBCDNamesTheByte() throws {
    let error = try decodeError([0x67, 0x45, 0x23, 0xA1], .energy)
    #expect(error.code == .notBCD)
    #expect(error.description == "XXXXXX.XX kWh value: data byte 3 is 0xA1, not BCD")
  }

  @Test func blockNotBCDNamesTheByteInTheBlock() throws {
    var bytes = [UInt8](repeating: 0, count: 20)
    bytes[13] = 0x0F
    let error = try decodeError(bytes, .energyBlock)
    #expect(error.description.contains("data byte 13 is 0x0F"))
  }

  @Test func moneyIsInFen() throws {
    #expect(try decode([0x45, 0x23, 0x01, 0x00], .money) == .money(fen: 12_345))
    #expect(try decode([0x99, 0x99, 0x99, 0x99], .money) == .money(fen: 99_999_999))
    #expect(try MeterValue.money(fen: 1).encoded() == [0x01, 0, 0, 0])
    #expect(try encodeError(.money(fen: -1)).code == .notEncodable)
  }

  @Test func countBoundaries() throws {
    #expect(try decode([0x00, 0x00], .count) == .count(0))
    #expect(try decode([0x99, 0x99], .count) == .count(9999))
    #expect(try MeterValue.count(9999).encoded() == [0x99, 0x99])
    #expect(try encodeError(.count(10_000)).code == .notEncodable)
    #expect(try decodeError([0x0A, 0x00], .count).code == .notBCD)
  }

  @Test func registersByTariff() {
    let registers = EnergyRegisters(total: 10, tariffs: [1, 2, 3, 4])
    #expect(registers[.sharp] == 1)
    #expect(registers[.valley] == 4)
    #expect(EnergyRegisters(total: 10, tariffs: [1])[.peak] == nil)
  }

  @Test func blocksEncodeAndRejectTooManyTariffs() throws {
    let registers = EnergyRegisters(total: 1_234_567, tariffs: [10_000, 20_000, 30_000, 1_174_567])
    let bytes = try MeterValue.energyRegisters(registers).encoded()
    #expect(bytes.count == 20)
    #expect(try decode(bytes, .energyBlock) == .energyRegisters(registers))
    let tooMany = EnergyRegisters(total: 0, tariffs: [Int64](repeating: 0, count: 63))
    #expect(try encodeError(.energyRegisters(tooMany)).code == .notEncodable)
  }
}

@Suite struct InstantaneousValueTests {
  @Test func voltageBoundaries() throws {
    #expect(try decode([0x00, 0x00], .voltage) == .voltage(deciVolts: 0))
    #expect(try decode([0x99, 0x99], .voltage) == .voltage(deciVolts: 9999))
    #expect(try encodeError(.voltage(deciVolts: 10_000)).code == .notEncodable)
    #expect(try decodeError([0x01, 0xF2], .voltage).code == .notBCD)
    #expect(try encodeError(.voltages([2200, 2200])).code == .notEncodable)
  }

  @Test func currentSignIsBitD7OfTheTopByte() throws {
    #expect(try decode([0x00, 0x15, 0x80], .current) == .current(milliAmperes: -1500))
    #expect(try decode([0x00, 0x15, 0x00], .current) == .current(milliAmperes: 1500))
    // "Minus zero" is zero.
    #expect(try decode([0x00, 0x00, 0x80], .current) == .current(milliAmperes: 0))
    #expect(try decode([0x99, 0x99, 0x79], .current) == .current(milliAmperes: 799_999))
    #expect(try decode([0x99, 0x99, 0xF9], .current) == .current(milliAmperes: -799_999))
    #expect(try MeterValue.current(milliAmperes: -1500).encoded() == [0x00, 0x15, 0x80])
    #expect(try MeterValue.current(milliAmperes: -799_999).encoded() == [0x99, 0x99, 0xF9])
    let error = try encodeError(.current(milliAmperes: 800_000))
    #expect(error.description == "XXX.XXX A value cannot be encoded: 800000 is not within ±799999")
    #expect(try encodeError(.current(milliAmperes: -800_000)).code == .notEncodable)
  }

  @Test func currentNotBCDIgnoresTheSignBit() throws {
    // FA: sign set, then 7A: A is not a digit.
    let error = try decodeError([0x00, 0x00, 0xFA], .current)
    #expect(error.code == .notBCD)
    #expect(error.description.contains("data byte 2 is 0xFA"))
    #expect(try decodeError([0x0C, 0x00, 0x00], .current).code == .notBCD)
  }

  @Test func currentBlockDecodesEachPhase() throws {
    #expect(
      try decode([0x23, 0x51, 0x00, 0x00, 0x15, 0x80, 0x99, 0x99, 0x79], .currentBlock)
        == .currents([5123, -1500, 799_999]))
    #expect(try encodeError(.currents([1, 2, 3, 4])).code == .notEncodable)
  }

  @Test func activePowerIsInTenThousandthsOfAKilowatt() throws {
    #expect(try decode([0x45, 0x23, 0x01], .activePower) == .activePower(deciWatts: 12_345))
    #expect(try decode([0x00, 0x50, 0x80], .activePower) == .activePower(deciWatts: -5000))
    #expect(try decode([0x99, 0x99, 0x79], .activePower) == .activePower(deciWatts: 799_999))
    #expect(try MeterValue.activePower(deciWatts: -5000).encoded() == [0x00, 0x50, 0x80])
    #expect(try encodeError(.activePower(deciWatts: 800_000)).code == .notEncodable)
  }
}

@Suite struct DateAndTimeValueTests {
  @Test func dateFieldsAndBoundaries() throws {
    #expect(
      try decode([0x04, 0x16, 0x05, 0x24], .date)
        == .date(try MeterDate(year: 2024, month: 5, day: 16, weekday: 4)))
    #expect(
      try decode([0x00, 0x01, 0x01, 0x00], .date)
        == .date(try MeterDate(year: 2000, month: 1, day: 1, weekday: 0)))
    #expect(
      try decode([0x06, 0x31, 0x12, 0x99], .date)
        == .date(try MeterDate(year: 2099, month: 12, day: 31, weekday: 6)))
    // 2024 is a leap year, 2023 is not; 2000 is.
    _ = try decode([0x04, 0x29, 0x02, 0x24], .date)
    _ = try decode([0x02, 0x29, 0x02, 0x00], .date)
    #expect(try decodeError([0x03, 0x29, 0x02, 0x23], .date).description == "day 29 is outside 1...28")
    #expect(try decodeError([0x03, 0x31, 0x04, 0x23], .date).description == "day 31 is outside 1...30")
    #expect(try decodeError([0x03, 0x00, 0x04, 0x23], .date).code == .outOfRange)
    #expect(try decodeError([0x03, 0x01, 0x13, 0x23], .date).description == "month 13 is outside 1...12")
    #expect(try decodeError([0x03, 0x01, 0x00, 0x23], .date).code == .outOfRange)
    #expect(try decodeError([0x07, 0x01, 0x01, 0x23], .date).description == "weekday 7 is outside 0...6")
    #expect(
      try decodeError([0x03, 0x1A, 0x01, 0x23], .date).description
        == "YYMMDDWW value: data byte 1 is 0x1A, not BCD")
  }

  @Test func timeFieldsAndBoundaries() throws {
    #expect(try decode([0x20, 0x14, 0x09], .time) == .time(try MeterTime(hour: 9, minute: 14, second: 20)))
    #expect(try decode([0x00, 0x00, 0x00], .time) == .time(try MeterTime(hour: 0, minute: 0, second: 0)))
    #expect(try decode([0x59, 0x59, 0x23], .time) == .time(try MeterTime(hour: 23, minute: 59, second: 59)))
    #expect(try decodeError([0x00, 0x00, 0x24], .time).description == "hour 24 is outside 0...23")
    #expect(try decodeError([0x00, 0x60, 0x00], .time).description == "minute 60 is outside 0...59")
    #expect(try decodeError([0x60, 0x00, 0x00], .time).description == "second 60 is outside 0...59")
    #expect(try MeterTime(hour: 23, minute: 59, second: 59).description == "23:59:59")
  }

  @Test func freezeTimeFieldsAndBoundaries() throws {
    let value = try decode([0x30, 0x23, 0x31, 0x12, 0x99], .freezeTime)
    #expect(value == .timestamp(try MeterTimestamp(year: 2099, month: 12, day: 31, hour: 23, minute: 30)))
    #expect(
      try MeterTimestamp(year: 2024, month: 5, day: 16, hour: 0, minute: 0).description == "2024-05-16 00:00")
    // All zeros (a meter that never froze) is not a time.
    #expect(try decodeError([0, 0, 0, 0, 0], .freezeTime).description == "month 0 is outside 1...12")
    #expect(try decodeError([0x00, 0x24, 0x01, 0x01, 0x24], .freezeTime).code == .outOfRange)
  }

  @Test func dateTimeRoundTripsAndChecksItsFields() throws {
    let time = try MeterDateTime(year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 59)
    #expect(time.plainBytes == [0x59, 0x59, 0x23, 0x29, 0x02, 0x24])
    #expect(try MeterDateTime(plainBytes: time.plainBytes[...]) == time)
    #expect(time.description == "2024-02-29 23:59:59")
    #expect(throws: ValueError.self) {
      try MeterDateTime(year: 2100, month: 1, day: 1, hour: 0, minute: 0, second: 0)
    }
    #expect(throws: ValueError.self) {
      try MeterDateTime(year: 1999, month: 1, day: 1, hour: 0, minute: 0, second: 0)
    }
    #expect(throws: ValueError.self) { try MeterDateTime(plainBytes: [0, 0, 0, 1, 1][...]) }
  }
}

@Suite struct RunStatusWord3Tests {
  @Test func bitsAsTheTablesDefineThem() {
    let word = RunStatusWord3(rawValue: 0b1111_0000_1101_1001)
    #expect(word.secondDayPeriodTable)  // D0
    #expect(word.powerSupply == .main)  // D1-D2 = 00
    #expect(word.programmingAllowed)  // D3
    #expect(word.relayOpen)  // D4
    #expect(!word.secondYearZoneTable)  // D5
    #expect(word.relayCommandOpen)  // D6
    #expect(word.preTripAlarm)  // D7
    #expect(word.meterType == .notPrepaid)  // D8-D9 = 00
    #expect(!word.secondTariffSet)  // D10
    #expect(!word.secondStepTable)  // D11
    #expect(word.keepPower)  // D12
    #expect(word.identityAuthenticated)  // D13
    #expect(word.localAccountNotOpened)  // D14
    #expect(word.remoteAccountNotOpened)  // D15
    #expect(RunStatusWord3(rawValue: 0b0100).powerSupply == .battery)
    #expect(RunStatusWord3(rawValue: 0b0010).powerSupply == .auxiliary)
    #expect(RunStatusWord3(rawValue: 0x0200).meterType == .moneyPrepaid)
    #expect(RunStatusWord3(rawValue: 0x0100).meterType == .energyPrepaid)
    #expect(RunStatusWord3(rawValue: 0x0C00).secondTariffSet)
  }

  @Test func relayBitsCanBeSetForTheSimulator() throws {
    var word = RunStatusWord3(rawValue: 0)
    word.relayOpen = true
    word.relayCommandOpen = true
    word.keepPower = true
    word.preTripAlarm = true
    #expect(word.rawValue == 0x10D0)
    word.relayOpen = false
    #expect(word.rawValue == 0x10C0)
    // D0 goes in the first byte.
    #expect(try MeterValue.runStatusWord3(word).encoded() == [0xC0, 0x10])
    #expect(try decode([0x10, 0x00], .runStatusWord3) == .runStatusWord3(RunStatusWord3(rawValue: 0x0010)))
  }
}

@Suite struct DataIdentifierTests {
  @Test func bytesAndText() {
    let di = DataIdentifier(0x00, 0x01, 0x02, 0x03)
    #expect(di.rawValue == 0x0001_0203)
    #expect(di.plainBytes == [0x03, 0x02, 0x01, 0x00])
    #expect(DataIdentifier(plainBytes: [0x03, 0x02, 0x01, 0x00]) == di)
    #expect(DataIdentifier(plainBytes: [0x03, 0x02, 0x01]) == nil)
    #expect(di.description == "00010203")
    #expect(DataIdentifier.runStatusWord3.description == "04000503")
  }

  @Test func constantsMatchTheTables() {
    let table: [(DataIdentifier, UInt32, ValueFormat)] = [
      (.forwardActiveTotal, 0x0001_0000, .energy), (.forwardActive(.sharp), 0x0001_0100, .energy),
      (.forwardActive(.peak), 0x0001_0200, .energy), (.forwardActive(.flat), 0x0001_0300, .energy),
      (.forwardActive(.valley), 0x0001_0400, .energy), (.forwardActiveBlock, 0x0001_FF00, .energyBlock),
      (.reverseActiveTotal, 0x0002_0000, .energy), (.voltage(.a), 0x0201_0100, .voltage),
      (.voltage(.b), 0x0201_0200, .voltage), (.voltage(.c), 0x0201_0300, .voltage),
      (.voltageBlock, 0x0201_FF00, .voltageBlock), (.current(.a), 0x0202_0100, .current),
      (.current(.b), 0x0202_0200, .current), (.current(.c), 0x0202_0300, .current),
      (.currentBlock, 0x0202_FF00, .currentBlock), (.totalActivePower, 0x0203_0000, .activePower),
      (.date, 0x0400_0101, .date), (.time, 0x0400_0102, .time),
      (.runStatusWord3, 0x0400_0503, .runStatusWord3),
      (.lastDailyFreezeTime, 0x0506_0001, .freezeTime),
      (.lastDailyFreezeForwardActive, 0x0506_0101, .energyBlock), (.remainingMoney, 0x0090_0200, .money),
      (.overdraftMoney, 0x0090_0201, .money), (.purchaseCount, 0x0333_0201, .count),
      (.purchaseCountEnergyType, 0x0332_0201, .count),
    ]
    for (di, raw, format) in table {
      #expect(di.rawValue == raw, "\(di)")
      #expect(di.format == format, "\(di)")
    }
  }

  @Test func dailyFreezesGoBackSixtyTwoDays() {
    #expect(DataIdentifier.dailyFreezeTime(previous: 0) == nil)
    #expect(DataIdentifier.dailyFreezeTime(previous: 63) == nil)
    #expect(DataIdentifier.dailyFreezeTime(previous: 1) == .lastDailyFreezeTime)
    #expect(DataIdentifier.dailyFreezeForwardActive(previous: 1) == .lastDailyFreezeForwardActive)
    #expect(DataIdentifier.dailyFreezeTime(previous: 62)?.rawValue == 0x0506_003E)
    #expect(DataIdentifier.dailyFreezeForwardActive(previous: 62)?.rawValue == 0x0506_013E)
    for n in 1...62 {
      #expect(DataIdentifier.dailyFreezeTime(previous: n)?.dailyFreezeIndex == n)
      #expect(DataIdentifier.dailyFreezeTime(previous: n)?.format == .freezeTime)
      #expect(DataIdentifier.dailyFreezeForwardActive(previous: n)?.format == .energyBlock)
    }
    #expect(DataIdentifier(rawValue: 0x0506_003F).format == nil)
    #expect(DataIdentifier(rawValue: 0x0506_0000).dailyFreezeIndex == nil)
  }

  @Test func unknownIdentifiersHaveNoFormat() throws {
    let address = DataIdentifier(rawValue: 0x0400_0401)
    #expect(address.format == nil)
    let error = try #require(throws: ValueError.self) {
      try MeterValue(decoding: [0, 0, 0, 0, 0, 0][...], for: address)
    }
    #expect(error.code == .unknownIdentifier)
    #expect(error.description == "data identifier 04000401 has no known format")
    #expect(throws: ValueError.self) { try MeterValue.count(1).encoded(for: address) }
  }

  @Test func valuesMustMatchTheIdentifiersFormat() throws {
    let error = try #require(throws: ValueError.self) {
      try MeterValue.voltage(deciVolts: 2200).encoded(for: .forwardActiveTotal)
    }
    #expect(error.code == .notEncodable)
    #expect(error.description == "XXX.X V value cannot be encoded: data identifier 00010000 is XXXXXX.XX kWh")
  }
}

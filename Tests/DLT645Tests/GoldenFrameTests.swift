import Testing

@testable import DLT645

// Golden frames worked by hand from DL/T 645-2007 (§4 frame format, appendix A data
// identifiers and formats). Every frame is 68 A0…A5 68 C L DATA CS 16; data bytes go on
// the wire + 33H; CS is the sum modulo 256 of 68 through the last data byte. The meter
// address 000012345678 is sent 78 56 34 12 00 00, so 68 + A0…A5 + 68 already sums to
// 68+78+56+34+12+00+00+68 = 1E4 → E4 ("E4 (68 A0…A5 68)" below).

/// A read request golden frame: the identifier and the exact bytes.
struct RequestGolden: CustomTestStringConvertible, Sendable {
  let request: Request
  let address: Address
  let wire: String
  init(_ request: Request, to address: Address = meter, _ wire: String) {
    self.request = request
    self.address = address
    self.wire = wire
  }
  var testDescription: String { wire }
}

/// A read reply golden frame: identifier, decoded value and the exact bytes.
struct ReadGolden: CustomTestStringConvertible, Sendable {
  let identifier: DataIdentifier
  let value: MeterValue
  let wire: String
  init(_ identifier: DataIdentifier, _ value: MeterValue, _ wire: String) {
    self.identifier = identifier
    self.value = value
    self.wire = wire
  }
  var testDescription: String { identifier.description }
}

/// A reply golden frame for the other functions.
struct ReplyGolden: CustomTestStringConvertible, Sendable {
  let reply: Reply
  let wire: String
  init(_ reply: Reply, _ wire: String) {
    self.reply = reply
    self.wire = wire
  }
  var testDescription: String { wire }
}

let controlTrip = ControlRequest(
  password: try! Password(level: 0x02, code: 0x12_3456), operatorCode: 0x1234_5678, command: .trip,
  validUntil: try! MeterDateTime(year: 2024, month: 5, day: 16, hour: 10, minute: 0, second: 0))

let requestGoldens: [RequestGolden] = [
  // Read 00 01 00 00: data = DI0…DI3 00 00 01 00 → +33 = 33 33 34 33;
  // CS = E4 + 11 + 04 + 33+33+34+33 = 1C6 → C6.
  RequestGolden(.read(.forwardActiveTotal), "68 78 56 34 12 00 00 68 11 04 33 33 34 33 C6 16"),
  // 00 01 01 00 … 00 01 04 00: DI1 goes 01…04, so its wire byte 34…37 and CS C7…CA.
  RequestGolden(.read(.forwardActive(.sharp)), "68 78 56 34 12 00 00 68 11 04 33 34 34 33 C7 16"),
  RequestGolden(.read(.forwardActive(.peak)), "68 78 56 34 12 00 00 68 11 04 33 35 34 33 C8 16"),
  RequestGolden(.read(.forwardActive(.flat)), "68 78 56 34 12 00 00 68 11 04 33 36 34 33 C9 16"),
  RequestGolden(.read(.forwardActive(.valley)), "68 78 56 34 12 00 00 68 11 04 33 37 34 33 CA 16"),
  // 00 01 FF 00: DI1 FF + 33 = 32 (mod 256); CS = E4 + 11 + 04 + 33+32+34+33 = 1C5 → C5.
  RequestGolden(.read(.forwardActiveBlock), "68 78 56 34 12 00 00 68 11 04 33 32 34 33 C5 16"),
  // 00 02 00 00: 33 33 35 33; CS = E4 + 11 + 04 + 33+33+35+33 = 1C7 → C7.
  RequestGolden(.read(.reverseActiveTotal), "68 78 56 34 12 00 00 68 11 04 33 33 35 33 C7 16"),
  // 02 01 0n 00: 33 3n+3 34 35; CS = E4 + 11 + 04 + 33+34+34+35 = 1C9 → C9 for phase A.
  RequestGolden(.read(.voltage(.a)), "68 78 56 34 12 00 00 68 11 04 33 34 34 35 C9 16"),
  RequestGolden(.read(.voltage(.b)), "68 78 56 34 12 00 00 68 11 04 33 35 34 35 CA 16"),
  RequestGolden(.read(.voltage(.c)), "68 78 56 34 12 00 00 68 11 04 33 36 34 35 CB 16"),
  // 02 01 FF 00: 33 32 34 35; CS = E4 + 11 + 04 + 33+32+34+35 = 1C7 → C7.
  RequestGolden(.read(.voltageBlock), "68 78 56 34 12 00 00 68 11 04 33 32 34 35 C7 16"),
  // 02 02 0n 00: 33 3n+3 35 35; CS = E4 + 11 + 04 + 33+34+35+35 = 1CA → CA for phase A.
  RequestGolden(.read(.current(.a)), "68 78 56 34 12 00 00 68 11 04 33 34 35 35 CA 16"),
  RequestGolden(.read(.current(.b)), "68 78 56 34 12 00 00 68 11 04 33 35 35 35 CB 16"),
  RequestGolden(.read(.current(.c)), "68 78 56 34 12 00 00 68 11 04 33 36 35 35 CC 16"),
  // 02 03 00 00: 33 33 36 35; CS = E4 + 11 + 04 + 33+33+36+35 = 1CA → CA.
  RequestGolden(.read(.totalActivePower), "68 78 56 34 12 00 00 68 11 04 33 33 36 35 CA 16"),
  // 04 00 01 01: 34 34 33 37; CS = E4 + 11 + 04 + 34+34+33+37 = 1CB → CB.
  RequestGolden(.read(.date), "68 78 56 34 12 00 00 68 11 04 34 34 33 37 CB 16"),
  // 04 00 01 02: 35 34 33 37; CS = 1CC → CC.
  RequestGolden(.read(.time), "68 78 56 34 12 00 00 68 11 04 35 34 33 37 CC 16"),
  // 05 06 00 01: 34 33 39 38; CS = E4 + 11 + 04 + 34+33+39+38 = 1D1 → D1.
  RequestGolden(.read(.lastDailyFreezeTime), "68 78 56 34 12 00 00 68 11 04 34 33 39 38 D1 16"),
  // 05 06 01 01: 34 34 39 38; CS = 1D2 → D2.
  RequestGolden(.read(.lastDailyFreezeForwardActive), "68 78 56 34 12 00 00 68 11 04 34 34 39 38 D2 16"),
  // The 62nd previous: DI0 = 3E → 71; 05 06 00 3E: 71 33 39 38; CS = E4 + 11 + 04 + 71+33+39+38 = 20E → 0E.
  RequestGolden(.read(.dailyFreezeTime(previous: 62)!), "68 78 56 34 12 00 00 68 11 04 71 33 39 38 0E 16"),
  RequestGolden(
    .read(.dailyFreezeForwardActive(previous: 62)!), "68 78 56 34 12 00 00 68 11 04 71 34 39 38 0F 16"),
  // 00 90 02 00: 33 35 C3 33; CS = E4 + 11 + 04 + 33+35+C3+33 = 257 → 57.
  RequestGolden(.read(.remainingMoney), "68 78 56 34 12 00 00 68 11 04 33 35 C3 33 57 16"),
  // 03 33 02 01: 34 35 66 36; CS = E4 + 11 + 04 + 34+35+66+36 = 1FE → FE.
  RequestGolden(.read(.purchaseCount), "68 78 56 34 12 00 00 68 11 04 34 35 66 36 FE 16"),
  // 04 00 05 03: 36 38 33 37; CS = E4 + 11 + 04 + 36+38+33+37 = 1D1 → D1.
  RequestGolden(.read(.runStatusWord3), "68 78 56 34 12 00 00 68 11 04 36 38 33 37 D1 16"),
  // Read follow-up 0x12 of 05 06 01 01, sequence 01: data 01 01 06 05 01 → 34 34 39 38 34;
  // CS = E4 + 12 + 05 + 34+34+39+38+34 = 208 → 08.
  RequestGolden(
    .readFollowUp(.lastDailyFreezeForwardActive, sequence: 1),
    "68 78 56 34 12 00 00 68 12 05 34 34 39 38 34 08 16"),
  // Read address 0x13 to AA AA AA AA AA AA, no data: CS = 68+6×AA+68 + 13 + 00 = 4DF → DF.
  RequestGolden(.readAddress, to: .wildcard, "68 AA AA AA AA AA AA 68 13 00 DF 16"),
  // Broadcast time 0x08 to 99…99, 2024-05-16 09:14:20: ss mm hh DD MM YY = 20 14 09 16 05 24
  // → 53 47 3C 49 38 57; CS = 68+6×99+68 (= 466 → 66) + 08 + 06 + 53+47+3C+49+38+57 = 222 → 22.
  RequestGolden(
    .broadcastTime(try! MeterDateTime(year: 2024, month: 5, day: 16, hour: 9, minute: 14, second: 20)),
    to: .broadcast, "68 99 99 99 99 99 99 68 08 06 53 47 3C 49 38 57 22 16"),
  // Control 0x1C, trip (N1 = 1A), password level 02 code 123456 (PA P0 P1 P2 = 02 56 34 12),
  // operator 12345678 (C0…C3 = 78 56 34 12), N2 = 00, valid until 2024-05-16 10:00:00
  // (N3…N8 = 00 00 10 16 05 24): 16 bytes, +33 → 35 89 67 45 AB 89 67 45 4D 33 33 33 43 49 38 57;
  // CS = E4 + 1C + 10 + (sum of those 16 = 54B) = 65B → 5B.
  RequestGolden(
    .control(controlTrip),
    "68 78 56 34 12 00 00 68 1C 10 35 89 67 45 AB 89 67 45 4D 33 33 33 43 49 38 57 5B 16"),
]

// Read replies 0x91: data = DI + value, each byte + 33.
let readGoldens: [ReadGolden] = [
  // .forwardActiveTotal: 12345.67 kWh = 01234567 → 67 45 23 01
  //   data = DI 00 00 01 00 + value 67 45 23 01; +33 → 33 33 34 33 9A 78 56 34
  //   CS = E4 (68 A0…A5 68) + 91 + 08 + data bytes = 3E6 → E6
  ReadGolden(
    .forwardActiveTotal, .energy(centiKilowattHours: 1_234_567),
    "68 78 56 34 12 00 00 68 91 08 33 33 34 33 9A 78 56 34 E6 16"),
  // .forwardActive(.sharp): 1234.56 kWh
  //   data = DI 00 01 01 00 + value 56 34 12 00; +33 → 33 34 34 33 89 67 45 33
  //   CS = E4 (68 A0…A5 68) + 91 + 08 + data bytes = 3B3 → B3
  ReadGolden(
    .forwardActive(.sharp), .energy(centiKilowattHours: 123_456),
    "68 78 56 34 12 00 00 68 91 08 33 34 34 33 89 67 45 33 B3 16"),
  // .forwardActive(.peak): 2345.67 kWh
  //   data = DI 00 02 01 00 + value 67 45 23 00; +33 → 33 35 34 33 9A 78 56 33
  //   CS = E4 (68 A0…A5 68) + 91 + 08 + data bytes = 3E7 → E7
  ReadGolden(
    .forwardActive(.peak), .energy(centiKilowattHours: 234_567),
    "68 78 56 34 12 00 00 68 91 08 33 35 34 33 9A 78 56 33 E7 16"),
  // .forwardActive(.flat): 3456.78 kWh
  //   data = DI 00 03 01 00 + value 78 56 34 00; +33 → 33 36 34 33 AB 89 67 33
  //   CS = E4 (68 A0…A5 68) + 91 + 08 + data bytes = 41B → 1B
  ReadGolden(
    .forwardActive(.flat), .energy(centiKilowattHours: 345_678),
    "68 78 56 34 12 00 00 68 91 08 33 36 34 33 AB 89 67 33 1B 16"),
  // .forwardActive(.valley): 4567.89 kWh
  //   data = DI 00 04 01 00 + value 89 67 45 00; +33 → 33 37 34 33 BC 9A 78 33
  //   CS = E4 (68 A0…A5 68) + 91 + 08 + data bytes = 44F → 4F
  ReadGolden(
    .forwardActive(.valley), .energy(centiKilowattHours: 456_789),
    "68 78 56 34 12 00 00 68 91 08 33 37 34 33 BC 9A 78 33 4F 16"),
  // .forwardActiveBlock: total 11111.10, tariffs 1000.00, 2000.00, 3000.00, 5111.10 kWh
  //   data = DI 00 FF 01 00 + value 10 11 11 01 00 00 10 00 00 00 20 00 00 00 30 00 10 11 51 00; +33 → 33 32 34 33 43 44 44 34 33 33 43 33 33 33 53 33 33 33 63 33 43 44 84 33
  //   CS = E4 (68 A0…A5 68) + 91 + 18 + data bytes = 75A → 5A
  ReadGolden(
    .forwardActiveBlock,
    .energyRegisters(EnergyRegisters(total: 1_111_110, tariffs: [100_000, 200_000, 300_000, 511_110])),
    "68 78 56 34 12 00 00 68 91 18 33 32 34 33 43 44 44 34 33 33 43 33 33 33 53 33 33 33 63 33 43 44 84 33 5A 16"
  ),
  // .reverseActiveTotal: 12.34 kWh
  //   data = DI 00 00 02 00 + value 34 12 00 00; +33 → 33 33 35 33 67 45 33 33
  //   CS = E4 (68 A0…A5 68) + 91 + 08 + data bytes = 35D → 5D
  ReadGolden(
    .reverseActiveTotal, .energy(centiKilowattHours: 1_234),
    "68 78 56 34 12 00 00 68 91 08 33 33 35 33 67 45 33 33 5D 16"),
  // .voltage(.a): 220.1 V
  //   data = DI 00 01 01 02 + value 01 22; +33 → 33 34 34 35 34 55
  //   CS = E4 (68 A0…A5 68) + 91 + 06 + data bytes = 2D4 → D4
  ReadGolden(
    .voltage(.a), .voltage(deciVolts: 2201),
    "68 78 56 34 12 00 00 68 91 06 33 34 34 35 34 55 D4 16"),
  // .voltage(.b): 219.8 V
  //   data = DI 00 02 01 02 + value 98 21; +33 → 33 35 34 35 CB 54
  //   CS = E4 (68 A0…A5 68) + 91 + 06 + data bytes = 36B → 6B
  ReadGolden(
    .voltage(.b), .voltage(deciVolts: 2198),
    "68 78 56 34 12 00 00 68 91 06 33 35 34 35 CB 54 6B 16"),
  // .voltage(.c): 230.0 V
  //   data = DI 00 03 01 02 + value 00 23; +33 → 33 36 34 35 33 56
  //   CS = E4 (68 A0…A5 68) + 91 + 06 + data bytes = 2D6 → D6
  ReadGolden(
    .voltage(.c), .voltage(deciVolts: 2300),
    "68 78 56 34 12 00 00 68 91 06 33 36 34 35 33 56 D6 16"),
  // .voltageBlock: 220.1, 219.8, 230.0 V
  //   data = DI 00 FF 01 02 + value 01 22 98 21 00 23; +33 → 33 32 34 35 34 55 CB 54 33 56
  //   CS = E4 (68 A0…A5 68) + 91 + 0A + data bytes = 47E → 7E
  ReadGolden(
    .voltageBlock, .voltages([2201, 2198, 2300]),
    "68 78 56 34 12 00 00 68 91 0A 33 32 34 35 34 55 CB 54 33 56 7E 16"),
  // .current(.a): 5.123 A
  //   data = DI 00 01 02 02 + value 23 51 00; +33 → 33 34 35 35 56 84 33
  //   CS = E4 (68 A0…A5 68) + 91 + 07 + data bytes = 35A → 5A
  ReadGolden(
    .current(.a), .current(milliAmperes: 5_123),
    "68 78 56 34 12 00 00 68 91 07 33 34 35 35 56 84 33 5A 16"),
  // .current(.b): -1.500 A (D7 set: reverse)
  //   data = DI 00 02 02 02 + value 00 15 80; +33 → 33 35 35 35 33 48 B3
  //   CS = E4 (68 A0…A5 68) + 91 + 07 + data bytes = 37C → 7C
  ReadGolden(
    .current(.b), .current(milliAmperes: -1_500),
    "68 78 56 34 12 00 00 68 91 07 33 35 35 35 33 48 B3 7C 16"),
  // .current(.c): 799.999 A (the largest)
  //   data = DI 00 03 02 02 + value 99 99 79; +33 → 33 36 35 35 CC CC AC
  //   CS = E4 (68 A0…A5 68) + 91 + 07 + data bytes = 493 → 93
  ReadGolden(
    .current(.c), .current(milliAmperes: 799_999),
    "68 78 56 34 12 00 00 68 91 07 33 36 35 35 CC CC AC 93 16"),
  // .currentBlock: 5.123, -1.500, 799.999 A
  //   data = DI 00 FF 02 02 + value 23 51 00 00 15 80 99 99 79; +33 → 33 32 35 35 56 84 33 33 48 B3 CC CC AC
  //   CS = E4 (68 A0…A5 68) + 91 + 0D + data bytes = 6D0 → D0
  ReadGolden(
    .currentBlock, .currents([5_123, -1_500, 799_999]),
    "68 78 56 34 12 00 00 68 91 0D 33 32 35 35 56 84 33 33 48 B3 CC CC AC D0 16"),
  // .totalActivePower: 1.2345 kW
  //   data = DI 00 00 03 02 + value 45 23 01; +33 → 33 33 36 35 78 56 34
  //   CS = E4 (68 A0…A5 68) + 91 + 07 + data bytes = 34F → 4F
  ReadGolden(
    .totalActivePower, .activePower(deciWatts: 12_345),
    "68 78 56 34 12 00 00 68 91 07 33 33 36 35 78 56 34 4F 16"),
  // .date: 2024-05-16, Thursday: YYMMDDWW 24 05 16 04, sent WW first
  //   data = DI 01 01 00 04 + value 04 16 05 24; +33 → 34 34 33 37 37 49 38 57
  //   CS = E4 (68 A0…A5 68) + 91 + 08 + data bytes = 35E → 5E
  ReadGolden(
    .date, .date(try! MeterDate(year: 2024, month: 5, day: 16, weekday: 4)),
    "68 78 56 34 12 00 00 68 91 08 34 34 33 37 37 49 38 57 5E 16"),
  // .time: 09:14:20: hhmmss sent ss first
  //   data = DI 02 01 00 04 + value 20 14 09; +33 → 35 34 33 37 53 47 3C
  //   CS = E4 (68 A0…A5 68) + 91 + 07 + data bytes = 325 → 25
  ReadGolden(
    .time, .time(try! MeterTime(hour: 9, minute: 14, second: 20)),
    "68 78 56 34 12 00 00 68 91 07 35 34 33 37 53 47 3C 25 16"),
  // .lastDailyFreezeTime: 2024-05-16 00:00: YYMMDDhhmm sent mm first
  //   data = DI 01 00 06 05 + value 00 00 16 05 24; +33 → 34 33 39 38 33 33 49 38 57
  //   CS = E4 (68 A0…A5 68) + 91 + 09 + data bytes = 394 → 94
  ReadGolden(
    .lastDailyFreezeTime, .timestamp(try! MeterTimestamp(year: 2024, month: 5, day: 16, hour: 0, minute: 0)),
    "68 78 56 34 12 00 00 68 91 09 34 33 39 38 33 33 49 38 57 94 16"),
  // .lastDailyFreezeForwardActive: total 12345.67, tariffs 100.00, 200.00, 300.00, 11745.67 kWh
  //   data = DI 01 01 06 05 + value 67 45 23 01 00 00 01 00 00 00 02 00 00 00 03 00 67 45 17 01; +33 → 34 34 39 38 9A 78 56 34 33 33 34 33 33 33 35 33 33 33 36 33 9A 78 4A 34
  //   CS = E4 (68 A0…A5 68) + 91 + 18 + data bytes = 7FC → FC
  ReadGolden(
    .lastDailyFreezeForwardActive,
    .energyRegisters(EnergyRegisters(total: 1_234_567, tariffs: [10_000, 20_000, 30_000, 1_174_567])),
    "68 78 56 34 12 00 00 68 91 18 34 34 39 38 9A 78 56 34 33 33 34 33 33 33 35 33 33 33 36 33 9A 78 4A 34 FC 16"
  ),
  // .dailyFreezeTime(previous: 62)!: the 62nd previous (DI0 = 3E), 2024-03-15 00:00
  //   data = DI 3E 00 06 05 + value 00 00 15 03 24; +33 → 71 33 39 38 33 33 48 36 57
  //   CS = E4 (68 A0…A5 68) + 91 + 09 + data bytes = 3CE → CE
  ReadGolden(
    .dailyFreezeTime(previous: 62)!,
    .timestamp(try! MeterTimestamp(year: 2024, month: 3, day: 15, hour: 0, minute: 0)),
    "68 78 56 34 12 00 00 68 91 09 71 33 39 38 33 33 48 36 57 CE 16"),
  // .dailyFreezeForwardActive(previous: 62)!: the 62nd previous, all registers 0
  //   data = DI 3E 01 06 05 + value 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00; +33 → 71 34 39 38 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33
  //   CS = E4 (68 A0…A5 68) + 91 + 18 + data bytes = 69F → 9F
  ReadGolden(
    .dailyFreezeForwardActive(previous: 62)!,
    .energyRegisters(EnergyRegisters(total: 0, tariffs: [0, 0, 0, 0])),
    "68 78 56 34 12 00 00 68 91 18 71 34 39 38 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 33 9F 16"
  ),
  // .remainingMoney: 123.45 yuan = 12345 fen
  //   data = DI 00 02 90 00 + value 45 23 01 00; +33 → 33 35 C3 33 78 56 34 33
  //   CS = E4 (68 A0…A5 68) + 91 + 08 + data bytes = 410 → 10
  ReadGolden(
    .remainingMoney, .money(fen: 12_345),
    "68 78 56 34 12 00 00 68 91 08 33 35 C3 33 78 56 34 33 10 16"),
  // .purchaseCount: 17 purchases
  //   data = DI 01 02 33 03 + value 17 00; +33 → 34 35 66 36 4A 33
  //   CS = E4 (68 A0…A5 68) + 91 + 06 + data bytes = 2FD → FD
  ReadGolden(
    .purchaseCount, .count(17),
    "68 78 56 34 12 00 00 68 91 06 34 35 66 36 4A 33 FD 16"),
  // .runStatusWord3: D4 relay open, D6 command open, D8–D9 = 10 money prepaid: 0x0250, sent 50 02
  //   data = DI 03 05 00 04 + value 50 02; +33 → 36 38 33 37 83 35
  //   CS = E4 (68 A0…A5 68) + 91 + 06 + data bytes = 30B → 0B
  ReadGolden(
    .runStatusWord3, .runStatusWord3(RunStatusWord3(rawValue: 0x0250)),
    "68 78 56 34 12 00 00 68 91 06 36 38 33 37 83 35 0B 16"),

]

let replyGoldens: [ReplyGolden] = [
  // 0xB1: normal reply with a follow-up frame, first part of 05 06 01 01 (total 12345.67):
  // 34 34 39 38 9A 78 56 34; CS = E4 + B1 + 08 + 34+34+39+38+9A+78+56+34 = 412 → 12.
  ReplyGolden(
    .readData(.lastDailyFreezeForwardActive, [0x67, 0x45, 0x23, 0x01], hasFollowUp: true),
    "68 78 56 34 12 00 00 68 B1 08 34 34 39 38 9A 78 56 34 12 16"),
  // 0xD1: abnormal read reply, ERR = 02 (no requested data) → 35; CS = E4 + D1 + 01 + 35 = 1EB → EB.
  ReplyGolden(.readError(.noRequestedData), "68 78 56 34 12 00 00 68 D1 01 35 EB 16"),
  // 0x92: follow-up data, 05 06 01 01, value 00 00 01 00, sequence 01:
  // 34 34 39 38 33 33 34 33 34; CS = E4 + 92 + 09 + 34+34+39+38+33+33+34+33+34 = 359 → 59.
  ReplyGolden(
    .readFollowUpData(
      .lastDailyFreezeForwardActive, [0x00, 0x00, 0x01, 0x00], sequence: 1, hasFollowUp: false),
    "68 78 56 34 12 00 00 68 92 09 34 34 39 38 33 33 34 33 34 59 16"),
  // 0xB2: the same with more to follow: C = B2, so CS = 359 + 20 = 379 → 79.
  ReplyGolden(
    .readFollowUpData(
      .lastDailyFreezeForwardActive, [0x00, 0x00, 0x01, 0x00], sequence: 1, hasFollowUp: true),
    "68 78 56 34 12 00 00 68 B2 09 34 34 39 38 33 33 34 33 34 79 16"),
  // 0xD2: abnormal follow-up reply, ERR 02: CS = E4 + D2 + 01 + 35 = 1EC → EC.
  ReplyGolden(.readFollowUpError(.noRequestedData), "68 78 56 34 12 00 00 68 D2 01 35 EC 16"),
  // 0x93: the address in the data field too: 78 56 34 12 00 00 → AB 89 67 45 33 33;
  // CS = E4 + 93 + 06 + AB+89+67+45+33+33 = 3C3 → C3.
  ReplyGolden(.address(meter), "68 78 56 34 12 00 00 68 93 06 AB 89 67 45 33 33 C3 16"),
  // 0x9C: control accepted, no data: CS = E4 + 9C + 00 = 180 → 80.
  ReplyGolden(.controlAccepted, "68 78 56 34 12 00 00 68 9C 00 80 16"),
  // 0xDC: control refused, ERR = 04 (wrong password / unauthorised) → 37; CS = E4 + DC + 01 + 37 = 1F8 → F8.
  ReplyGolden(.controlRefused(.unauthorized), "68 78 56 34 12 00 00 68 DC 01 37 F8 16"),
  // 0xDC with a 2-byte status 0x0020 (trip refused, keep-power) → 20 00 → 53 33;
  // CS = E4 + DC + 02 + 53+33 = 248 → 48.
  ReplyGolden(.controlRefusedStatus(.tripRefusedKeepPower), "68 78 56 34 12 00 00 68 DC 02 53 33 48 16"),
]

@Suite struct GoldenRequestTests {
  @Test(arguments: requestGoldens)
  func requestEncodesToExactBytes(_ golden: RequestGolden) {
    #expect(hexText(golden.request.frame(to: golden.address).encoded()) == golden.wire)
  }

  @Test(arguments: requestGoldens)
  func requestDecodesToExactFields(_ golden: RequestGolden) throws {
    let frame = try #require(decodeOne(hex(golden.wire)))
    #expect(frame.address == golden.address)
    #expect(frame.control == Control(golden.request.function))
    #expect(try Request(frame: frame) == golden.request)
  }

  @Test func publishedReadExampleMatches() throws {
    // A read of 00 01 00 00 from meter 000000000161 as published with a DL/T 645
    // troubleshooting example: FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16.
    let frame = Request.read(.forwardActiveTotal).frame(to: Address("000000000161")!)
    #expect(
      hexText(frame.encoded(wakeUpBytes: 4)) == "FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16")
  }
}

@Suite struct GoldenReadReplyTests {
  @Test(arguments: readGoldens)
  func readReplyDecodesToExactValue(_ golden: ReadGolden) throws {
    let frame = try #require(decodeOne(hex(golden.wire)))
    #expect(frame.address == meter)
    #expect(frame.control.rawValue == 0x91)
    guard case .readData(let identifier, let bytes, let more) = try Reply(frame: frame) else {
      Issue.record("not a read reply")
      return
    }
    #expect(identifier == golden.identifier)
    #expect(!more)
    #expect(try MeterValue(decoding: bytes[...], for: identifier) == golden.value)
  }

  @Test(arguments: readGoldens)
  func readReplyEncodesToExactBytes(_ golden: ReadGolden) throws {
    let value = try golden.value.encoded(for: golden.identifier)
    let frame = try Reply.readData(golden.identifier, value, hasFollowUp: false).frame(from: meter)
    #expect(hexText(frame.encoded()) == golden.wire)
  }

  @Test func publishedReplyExamplesMatch() throws {
    // Published replies from meter 000000000161: 000000.26 kWh and 100.1 V.
    let energy = try #require(decodeOne(hex("68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16")))
    guard case .readData(let di, let bytes, _) = try Reply(frame: energy) else {
      Issue.record("not a read reply")
      return
    }
    #expect(try MeterValue(decoding: bytes[...], for: di) == .energy(centiKilowattHours: 26))
    let volts = try #require(decodeOne(hex("68 61 01 00 00 00 00 68 91 06 33 34 34 35 34 43 10 16")))
    guard case .readData(let di2, let bytes2, _) = try Reply(frame: volts) else {
      Issue.record("not a read reply")
      return
    }
    #expect(di2 == .voltage(.a))
    #expect(try MeterValue(decoding: bytes2[...], for: di2) == .voltage(deciVolts: 1001))
  }
}

@Suite struct GoldenReplyTests {
  @Test(arguments: replyGoldens)
  func replyEncodesToExactBytes(_ golden: ReplyGolden) throws {
    #expect(hexText(try golden.reply.frame(from: meter).encoded()) == golden.wire)
  }

  @Test(arguments: replyGoldens)
  func replyDecodesToExactFields(_ golden: ReplyGolden) throws {
    let frame = try #require(decodeOne(hex(golden.wire)))
    #expect(frame.address == meter)
    #expect(frame.control == golden.reply.control)
    #expect(try Reply(frame: frame) == golden.reply)
  }

  @Test func publishedControlAcceptedExampleMatches() throws {
    // A 0x9C reply from meter 111111111111 as published with a remote-trip example:
    // FE FE 68 11 11 11 11 11 11 68 9C 00 D2 16 (CS = 68+6×11+68 + 9C + 00 = 1D2 → D2).
    let frame = try #require(decodeOne(hex("FE FE 68 11 11 11 11 11 11 68 9C 00 D2 16")))
    #expect(frame.address == Address("111111111111")!)
    #expect(try Reply(frame: frame) == .controlAccepted)
  }
}

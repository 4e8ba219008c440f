/// How a data identifier's value is laid out on the wire (plain bytes, least
/// significant first, after the 0x33 offset is removed).
public enum ValueFormat: Hashable, Sendable, CustomStringConvertible {
  /// XXXXXX.XX kWh, 4 bytes BCD → hundredths of a kWh (10 Wh).
  case energy
  /// Total then tariffs 1…M, each XXXXXX.XX kWh: 4 × (M + 1) bytes, M = 0…62.
  case energyBlock
  /// XXX.X V, 2 bytes BCD → tenths of a volt.
  case voltage
  /// Phases A, B, C, each XXX.X V: 6 bytes.
  case voltageBlock
  /// XXX.XXX A, 3 bytes BCD, D7 of the top byte = reverse direction → milliamperes.
  case current
  /// Phases A, B, C, each XXX.XXX A: 9 bytes.
  case currentBlock
  /// XX.XXXX kW, 3 bytes BCD, D7 of the top byte = reverse → 0.0001 kW (0.1 W).
  case activePower
  /// YYMMDDWW, 4 bytes BCD.
  case date
  /// hhmmss, 3 bytes BCD.
  case time
  /// YYMMDDhhmm, 5 bytes BCD.
  case freezeTime
  /// XXXXXX.XX yuan, 4 bytes BCD → fen.
  case money
  /// XXXX, 2 bytes BCD (a count, e.g. of purchases).
  case count
  /// Run status word 3, 2 bytes binary (D0 in the first byte).
  case runStatusWord3

  /// The fixed size in bytes, or nil for `energyBlock` (its size depends on M).
  public var byteCount: Int? {
    switch self {
    case .energy, .money, .date: return 4
    case .energyBlock: return nil
    case .voltage, .count, .runStatusWord3: return 2
    case .voltageBlock: return 6
    case .current, .activePower, .time: return 3
    case .currentBlock: return 9
    case .freezeTime: return 5
    }
  }

  /// The standard's notation, e.g. "XXXXXX.XX kWh".
  public var description: String {
    switch self {
    case .energy: return "XXXXXX.XX kWh"
    case .energyBlock: return "XXXXXX.XX kWh block"
    case .voltage: return "XXX.X V"
    case .voltageBlock: return "XXX.X V block"
    case .current: return "XXX.XXX A"
    case .currentBlock: return "XXX.XXX A block"
    case .activePower: return "XX.XXXX kW"
    case .date: return "YYMMDDWW"
    case .time: return "hhmmss"
    case .freezeTime: return "YYMMDDhhmm"
    case .money: return "XXXXXX.XX yuan"
    case .count: return "XXXX"
    case .runStatusWord3: return "run status word 3"
    }
  }
}

/// Energy registers read as a block: the total and each tariff, in hundredths of a
/// kWh (the meter's XXXXXX.XX kWh, i.e. 10 Wh steps).
public struct EnergyRegisters: Hashable, Sendable {
  /// The total register.
  public var total: Int64
  /// Tariffs 1…M in register order; on a 4-tariff meter sharp, peak, flat, valley.
  public var tariffs: [Int64]

  /// Registers; each value 0…99 999 999 (999 999.99 kWh) to be encodable.
  public init(total: Int64, tariffs: [Int64]) {
    self.total = total
    self.tariffs = tariffs
  }

  /// The register of `tariff`, or nil when the meter has fewer tariffs.
  public subscript(tariff: DataIdentifier.Tariff) -> Int64? {
    let index = Int(tariff.rawValue) - 1
    return index < tariffs.count ? tariffs[index] : nil
  }
}

/// Electricity meter run status word 3 (电表运行状态字3, operation class, DI 04 00 05 03).
///
/// Bits as listed by meter firmware and concentrator sources for DL/T 645-2007 with
/// the State Grid smart-meter additions (several agree): D0 current day-period table
/// (0 first set, 1 second), D1–D2 power supply (00 main, 01 auxiliary, 10 battery),
/// D3 programming allowed, D4 relay state (0 closed/通, 1 open/断), D5 current year-zone
/// table, D6 relay command state (0 close, 1 trip), D7 pre-trip alarm (预跳闸报警状态),
/// D8–D9 meter type (00 not prepaid, 01 energy prepaid, 10 money prepaid), D10 current
/// tariff price set, D11 current step (tier) set, D12 keep-power (保电), D13 identity
/// authentication valid, D14 local account not opened, D15 remote account not opened.
/// D10–D15 come from the later smart-meter specifications; older meters send 0 there.
public struct RunStatusWord3: Hashable, Sendable {
  /// How the meter is powered (D1–D2).
  public enum PowerSupply: UInt8, Sendable {
    case main = 0
    case auxiliary = 1
    case battery = 2
    /// 11: not defined by the standard.
    case reserved = 3
  }

  /// What kind of prepayment the meter does (D8–D9).
  public enum MeterType: UInt8, Sendable {
    case notPrepaid = 0
    case energyPrepaid = 1
    case moneyPrepaid = 2
    /// 11: not defined by the standard.
    case reserved = 3
  }

  /// D0 in bit 0 … D15 in bit 15.
  public var rawValue: UInt16

  public init(rawValue: UInt16) { self.rawValue = rawValue }

  private func bit(_ n: UInt16) -> Bool { rawValue >> n & 1 == 1 }
  private mutating func set(_ n: UInt16, _ on: Bool) {
    if on { rawValue |= 1 << n } else { rawValue &= ~(1 << n) }
  }

  /// D0: the second day-period table is in use.
  public var secondDayPeriodTable: Bool { bit(0) }
  /// D1–D2: the power supply.
  public var powerSupply: PowerSupply { PowerSupply(rawValue: UInt8(rawValue >> 1 & 0b11))! }
  /// D3: programming allowed (programming key / infrared authentication).
  public var programmingAllowed: Bool { bit(3) }
  /// D4: the relay is open (断, supply cut); false = closed (通). This is the relay's
  /// actual state, what a disconnect is verified against.
  public var relayOpen: Bool {
    get { bit(4) }
    set { set(4, newValue) }
  }
  /// D5: the second year-zone table is in use.
  public var secondYearZoneTable: Bool { bit(5) }
  /// D6: the last relay command was "open" (trip); false = "close".
  public var relayCommandOpen: Bool {
    get { bit(6) }
    set { set(6, newValue) }
  }
  /// D7: pre-trip alarm (预跳闸报警) is active, e.g. low prepaid balance.
  public var preTripAlarm: Bool {
    get { bit(7) }
    set { set(7, newValue) }
  }
  /// D8–D9: the meter type.
  public var meterType: MeterType { MeterType(rawValue: UInt8(rawValue >> 8 & 0b11))! }
  /// D10: the second tariff price set is in use.
  public var secondTariffSet: Bool { bit(10) }
  /// D11: the second step (tier) table is in use.
  public var secondStepTable: Bool { bit(11) }
  /// D12: keep-power (保电) is on: the meter will not trip.
  public var keepPower: Bool {
    get { bit(12) }
    set { set(12, newValue) }
  }
  /// D13: identity authentication is valid.
  public var identityAuthenticated: Bool { bit(13) }
  /// D14: the local account is not opened (本地开户 1 = 未开户).
  public var localAccountNotOpened: Bool { bit(14) }
  /// D15: the remote account is not opened (远程开户 1 = 未开户).
  public var remoteAccountNotOpened: Bool { bit(15) }
}

/// A decoded data value, in integers with the unit in the case name.
public enum MeterValue: Hashable, Sendable {
  /// Energy in hundredths of a kWh (XXXXXX.XX kWh; ×10 for Wh).
  case energy(centiKilowattHours: Int64)
  /// A block of energy registers.
  case energyRegisters(EnergyRegisters)
  /// Voltage in tenths of a volt (XXX.X V).
  case voltage(deciVolts: Int32)
  /// Phase A, B, C voltages in tenths of a volt.
  case voltages([Int32])
  /// Current in milliamperes (XXX.XXX A), negative for the reverse direction.
  case current(milliAmperes: Int32)
  /// Phase A, B, C currents in milliamperes.
  case currents([Int32])
  /// Active power in 0.0001 kW = 0.1 W (XX.XXXX kW), negative for reverse.
  case activePower(deciWatts: Int32)
  /// The meter's date (YYMMDDWW).
  case date(MeterDate)
  /// The meter's time (hhmmss).
  case time(MeterTime)
  /// A freeze time (YYMMDDhhmm).
  case timestamp(MeterTimestamp)
  /// Money in fen (XXXXXX.XX yuan).
  case money(fen: Int64)
  /// A count (XXXX), e.g. purchases.
  case count(Int)
  /// Run status word 3.
  case runStatusWord3(RunStatusWord3)

  /// The format this value is encoded in.
  public var format: ValueFormat {
    switch self {
    case .energy: return .energy
    case .energyRegisters: return .energyBlock
    case .voltage: return .voltage
    case .voltages: return .voltageBlock
    case .current: return .current
    case .currents: return .currentBlock
    case .activePower: return .activePower
    case .date: return .date
    case .time: return .time
    case .timestamp: return .freezeTime
    case .money: return .money
    case .count: return .count
    case .runStatusWord3: return .runStatusWord3
    }
  }

  /// Decodes the value of `identifier` from the plain bytes after the identifier in a
  /// read reply.
  /// - Throws: `ValueError`: `unknownIdentifier` when the identifier has no known
  ///   format, otherwise as `init(decoding:as:)`.
  public init(decoding data: ArraySlice<UInt8>, for identifier: DataIdentifier) throws(ValueError) {
    guard let format = identifier.format else {
      throw ValueError(.unknownIdentifier(identifier.description))
    }
    try self.init(decoding: data, as: format)
  }

  /// Decodes plain value bytes in `format`.
  /// - Throws: `ValueError`: `wrongLength`, `notBCD` (with the byte's index) or
  ///   `outOfRange` (a date or time field).
  public init(decoding data: ArraySlice<UInt8>, as format: ValueFormat) throws(ValueError) {
    if let count = format.byteCount, data.count != count {
      throw ValueError(
        .wrongLength(format: format.description, expected: String(count) + " bytes", actual: data.count))
    }
    let d = Array(data)
    switch format {
    case .energy:
      self = .energy(centiKilowattHours: try Self.unsigned(d[...], format))
    case .money:
      self = .money(fen: try Self.unsigned(d[...], format))
    case .count:
      self = .count(Int(try Self.unsigned(d[...], format)))
    case .voltage:
      self = .voltage(deciVolts: Int32(try Self.unsigned(d[...], format)))
    case .energyBlock:
      guard d.count >= 4, d.count <= 252, d.count % 4 == 0 else {
        throw ValueError(
          .wrongLength(
            format: format.description, expected: "4 × (1 + M) bytes, M = 0…62", actual: d.count))
      }
      var values: [Int64] = []
      for i in stride(from: 0, to: d.count, by: 4) {
        values.append(try Self.unsigned(d[i..<(i + 4)], format))
      }
      self = .energyRegisters(EnergyRegisters(total: values[0], tariffs: Array(values.dropFirst())))
    case .voltageBlock:
      var values: [Int32] = []
      for i in stride(from: 0, to: 6, by: 2) {
        values.append(Int32(try Self.unsigned(d[i..<(i + 2)], format)))
      }
      self = .voltages(values)
    case .current:
      self = .current(milliAmperes: Int32(try Self.signed(d[...], format)))
    case .currentBlock:
      var values: [Int32] = []
      for i in stride(from: 0, to: 9, by: 3) {
        values.append(Int32(try Self.signed(d[i..<(i + 3)], format)))
      }
      self = .currents(values)
    case .activePower:
      self = .activePower(deciWatts: Int32(try Self.signed(d[...], format)))
    case .date:
      self = .date(try MeterDate(plainBytes: d[...]))
    case .time:
      self = .time(try MeterTime(plainBytes: d[...]))
    case .freezeTime:
      self = .timestamp(try MeterTimestamp(plainBytes: d[...]))
    case .runStatusWord3:
      self = .runStatusWord3(RunStatusWord3(rawValue: UInt16(d[0]) | UInt16(d[1]) << 8))
    }
  }

  /// The plain value bytes (to follow the identifier in a read reply).
  /// - Throws: `ValueError` (`notEncodable`) when a number is negative where the
  ///   format has no sign, or does not fit in the format's digits, or a block has the
  ///   wrong number of values.
  public func encoded() throws(ValueError) -> [UInt8] {
    let format = self.format
    switch self {
    case .energy(let v), .money(let v):
      return try Self.encodeUnsigned(v, count: 4, format)
    case .count(let v):
      return try Self.encodeUnsigned(Int64(v), count: 2, format)
    case .voltage(let v):
      return try Self.encodeUnsigned(Int64(v), count: 2, format)
    case .energyRegisters(let registers):
      guard registers.tariffs.count <= 62 else {
        throw ValueError(.notEncodable(format: format.description, reason: "more than 62 tariffs"))
      }
      var out = try Self.encodeUnsigned(registers.total, count: 4, format)
      for tariff in registers.tariffs { out += try Self.encodeUnsigned(tariff, count: 4, format) }
      return out
    case .voltages(let values):
      try Self.checkPhases(values, format)
      var out: [UInt8] = []
      for v in values { out += try Self.encodeUnsigned(Int64(v), count: 2, format) }
      return out
    case .current(let v), .activePower(let v):
      return try Self.encodeSigned(Int64(v), count: 3, format)
    case .currents(let values):
      try Self.checkPhases(values, format)
      var out: [UInt8] = []
      for v in values { out += try Self.encodeSigned(Int64(v), count: 3, format) }
      return out
    case .date(let date): return date.plainBytes
    case .time(let time): return time.plainBytes
    case .timestamp(let timestamp): return timestamp.plainBytes
    case .runStatusWord3(let word):
      return [UInt8(truncatingIfNeeded: word.rawValue), UInt8(truncatingIfNeeded: word.rawValue >> 8)]
    }
  }

  /// The plain value bytes for a read reply to `identifier`.
  /// - Throws: `ValueError`: `unknownIdentifier` when the identifier has no known
  ///   format, `notEncodable` when this value is of another format than the
  ///   identifier's, or as `encoded()`.
  public func encoded(for identifier: DataIdentifier) throws(ValueError) -> [UInt8] {
    guard let expected = identifier.format else {
      throw ValueError(.unknownIdentifier(identifier.description))
    }
    guard expected == format else {
      throw ValueError(
        .notEncodable(
          format: format.description,
          reason: "data identifier " + identifier.description + " is " + expected.description))
    }
    return try encoded()
  }

  /// Unsigned BCD from a slice of the value's bytes (indices are positions in the value).
  private static func unsigned(_ bytes: ArraySlice<UInt8>, _ format: ValueFormat) throws(ValueError) -> Int64
  {
    if let index = BCD.firstInvalidIndex(bytes) {
      throw ValueError(.notBCD(format: format.description, index: index, byte: bytes[index]))
    }
    return Int64(BCD.decodeLittleEndian(bytes)!)
  }

  /// BCD with the sign in D7 of the top byte, from a slice of the value's bytes.
  private static func signed(_ bytes: ArraySlice<UInt8>, _ format: ValueFormat) throws(ValueError) -> Int64 {
    var magnitude = bytes
    magnitude[bytes.endIndex - 1] &= 0x7F
    if let index = BCD.firstInvalidIndex(magnitude) {
      throw ValueError(.notBCD(format: format.description, index: index, byte: bytes[index]))
    }
    return BCD.decodeSignedLittleEndian(bytes)!
  }

  private static func encodeUnsigned(_ value: Int64, count: Int, _ format: ValueFormat) throws(ValueError)
    -> [UInt8]
  {
    guard value >= 0, let out = BCD.encodeLittleEndian(UInt64(value), count: count) else {
      throw ValueError(
        .notEncodable(
          format: format.description,
          reason: String(value) + " is not 0…" + String(maxValue(digits: 2 * count))))
    }
    return out
  }

  private static func encodeSigned(_ value: Int64, count: Int, _ format: ValueFormat) throws(ValueError)
    -> [UInt8]
  {
    guard let out = BCD.encodeSignedLittleEndian(value, count: count) else {
      let limit = 8 * maxValue(digits: 2 * count - 1) + 7
      throw ValueError(
        .notEncodable(
          format: format.description, reason: String(value) + " is not within ±" + String(limit)))
    }
    return out
  }

  private static func checkPhases(_ values: [Int32], _ format: ValueFormat) throws(ValueError) {
    guard values.count == 3 else {
      throw ValueError(
        .notEncodable(
          format: format.description, reason: "needs 3 phase values, got " + String(values.count)))
    }
  }

  /// 10^digits − 1.
  private static func maxValue(digits: Int) -> Int64 {
    var value: Int64 = 1
    for _ in 0..<digits { value *= 10 }
    return value - 1
  }
}

/// The error word ERR (错误信息字) of an abnormal reply (0xD1, 0xD2, 0xDC, …): one bit
/// per reason, D7 reserved.
public struct ErrorWord: OptionSet, Hashable, Sendable, CustomStringConvertible {
  public let rawValue: UInt8

  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// D0 其他错误: another error.
  public static let other = ErrorWord(rawValue: 0x01)
  /// D1 无请求数据: the meter has no such data (unknown identifier, no such record yet).
  public static let noRequestedData = ErrorWord(rawValue: 0x02)
  /// D2 密码错/未授权: wrong password or not authorised.
  public static let unauthorized = ErrorWord(rawValue: 0x04)
  /// D3 通信速率不能更改: the baud rate cannot be changed.
  public static let baudRateUnchangeable = ErrorWord(rawValue: 0x08)
  /// D4 年时区数超: too many year time zones.
  public static let yearZonesExceeded = ErrorWord(rawValue: 0x10)
  /// D5 日时段数超: too many day periods.
  public static let dayPeriodsExceeded = ErrorWord(rawValue: 0x20)
  /// D6 费率数超: too many tariffs.
  public static let tariffsExceeded = ErrorWord(rawValue: 0x40)

  /// The reasons in words, "no requested data, unauthorised"; "no reason given" for 0.
  public var description: String {
    let names: [(UInt8, String)] = [
      (0x01, "other error"), (0x02, "no requested data"), (0x04, "wrong password or unauthorised"),
      (0x08, "baud rate cannot change"), (0x10, "year time zones exceeded"),
      (0x20, "day periods exceeded"), (0x40, "tariff count exceeded"), (0x80, "reserved bit D7"),
    ]
    var parts: [String] = []
    for (bit, name) in names where rawValue & bit != 0 { parts.append(name) }
    guard !parts.isEmpty else { return "no reason given" }
    var text = parts[0]
    for part in parts.dropFirst() { text += ", " + part }
    return text
  }
}

/// The two-byte error status some smart meters return in an abnormal control reply
/// (0xDC with L = 2) instead of the one-byte `ErrorWord`.
///
/// Bit meanings as a meter firmware lists them for the State Grid 2013/2014
/// control-command requirements (a single source; treat names other than
/// `unauthorized` as indicative and log the raw value).
public struct ControlErrorStatus: OptionSet, Hashable, Sendable {
  public let rawValue: UInt16

  public init(rawValue: UInt16) { self.rawValue = rawValue }

  /// D0 电表挂起: the meter is suspended.
  public static let meterSuspended = ControlErrorStatus(rawValue: 0x0001)
  /// D1 MAC错误: the MAC of an encrypted command did not verify.
  public static let macError = ControlErrorStatus(rawValue: 0x0002)
  /// D2 密码错误/未授权: wrong password or not authorised (the catch-all).
  public static let unauthorized = ControlErrorStatus(rawValue: 0x0004)
  /// D3 身份认证超时: identity authentication timed out or was not done.
  public static let authenticationTimeout = ControlErrorStatus(rawValue: 0x0008)
  /// D4 执行时间无效: the command's valid-until time has passed.
  public static let validUntilExpired = ControlErrorStatus(rawValue: 0x0010)
  /// D5 跳闸失败(保电): trip refused because keep-power is on.
  public static let tripRefusedKeepPower = ControlErrorStatus(rawValue: 0x0020)
  /// D6 预跳闸失败(保电): pre-trip refused because keep-power is on.
  public static let preTripRefusedKeepPower = ControlErrorStatus(rawValue: 0x0040)
  /// D7 预跳闸持续时间无效: the pre-trip duration is 0.
  public static let preTripDurationInvalid = ControlErrorStatus(rawValue: 0x0080)
  /// D8 预跳闸失败(跳闸): pre-trip refused because the relay is already tripped.
  public static let preTripRefusedTripped = ControlErrorStatus(rawValue: 0x0100)
}

/// The control command type N1 of a relay control request (0x1C).
public enum RelayCommand: UInt8, CaseIterable, Sendable {
  /// 1AH 跳闸: open the relay (disconnect).
  case trip = 0x1A
  /// 1BH 合闸允许: allow closing (the customer closes by pressing the button or
  /// inserting the card).
  case closePermit = 0x1B
  /// 1CH 直接合闸: close the relay now.
  case directClose = 0x1C
  /// 2AH 报警: start the alarm.
  case alarm = 0x2A
  /// 2BH 报警解除: stop the alarm.
  case alarmRelease = 0x2B
  /// 3AH 保电: keep power on (the meter refuses trips until released).
  case keepPower = 0x3A
  /// 3BH 保电解除: release keep-power.
  case keepPowerRelease = 0x3B
}

/// The password field PA P0 P1 P2 of a control or write command.
public struct Password: Hashable, Sendable {
  /// PA: the password level (authority), e.g. 0x02 or 0x04 for plaintext commands.
  public let level: UInt8
  /// P2 P1 P0 as six hex digits as written (0x123456 goes on the wire as 56 34 12).
  public let code: UInt32

  /// A password.
  /// - Throws: `ValueError` (`outOfRange`) when `code` has more than six hex digits.
  public init(level: UInt8, code: UInt32) throws(ValueError) {
    guard code <= 0xFF_FFFF else {
      throw ValueError(.outOfRange(field: "password code", value: Int(code), range: 0...0xFF_FFFF))
    }
    self.level = level
    self.code = code
  }

  init(plainBytes b: ArraySlice<UInt8>) {
    let i = b.startIndex
    level = b[i]
    code = UInt32(b[i + 1]) | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]) << 16
  }

  /// PA P0 P1 P2.
  public var plainBytes: [UInt8] {
    [
      level, UInt8(truncatingIfNeeded: code), UInt8(truncatingIfNeeded: code >> 8),
      UInt8(truncatingIfNeeded: code >> 16),
    ]
  }
}

/// A plaintext relay control request (0x1C): password, operator, command N1, N2
/// (reserved) and the valid-until time N3…N8. The data field is 16 bytes:
/// PA P0 P1 P2 C0 C1 C2 C3 N1 N2 ss mm hh DD MM YY.
public struct ControlRequest: Hashable, Sendable {
  /// PA P0 P1 P2.
  public var password: Password
  /// C3 C2 C1 C0, the operator code the meter records (0x12345678 goes on the wire as
  /// 78 56 34 12).
  public var operatorCode: UInt32
  /// N1.
  public var command: RelayCommand
  /// N2, reserved (00).
  public var reserved: UInt8
  /// N3…N8: the meter ignores the command once its clock is past this time.
  public var validUntil: MeterDateTime

  /// A control request.
  public init(
    password: Password, operatorCode: UInt32, command: RelayCommand, validUntil: MeterDateTime,
    reserved: UInt8 = 0
  ) {
    self.password = password
    self.operatorCode = operatorCode
    self.command = command
    self.reserved = reserved
    self.validUntil = validUntil
  }

  /// The 16 plain data bytes.
  public var plainBytes: [UInt8] {
    var out = password.plainBytes
    for shift in stride(from: 0, to: 32, by: 8) {
      out.append(UInt8(truncatingIfNeeded: operatorCode >> UInt32(shift)))
    }
    out.append(command.rawValue)
    out.append(reserved)
    out += validUntil.plainBytes
    return out
  }
}

/// What a master (concentrator, handheld) sends: the requests GridEdge uses.
public enum Request: Hashable, Sendable {
  /// 0x11 read data: the identifier (L = 4).
  case read(DataIdentifier)
  /// 0x12 read follow-up data: the identifier and the frame sequence number (L = 5).
  case readFollowUp(DataIdentifier, sequence: UInt8)
  /// 0x13 read communication address (L = 0), normally sent to `Address.wildcard`.
  case readAddress
  /// 0x08 broadcast time (L = 6), always to 99 99 99 99 99 99; meters do not reply.
  case broadcastTime(MeterDateTime)
  /// 0x1C relay control (L = 16, plaintext).
  case control(ControlRequest)

  /// The function code of this request.
  public var function: Control.Function {
    switch self {
    case .read: return .read
    case .readFollowUp: return .readFollowUp
    case .readAddress: return .readAddress
    case .broadcastTime: return .broadcastTime
    case .control: return .control
    }
  }

  /// The request carried by `frame`.
  /// - Throws: `MessageError`: `wrongDirection` for a reply, `unexpectedFlags` when D6
  ///   or D5 is set, `unsupportedFunction`, `unexpectedDataLength`, `notBroadcast` for a
  ///   broadcast time not sent to 99…99, `invalidField` for a bad time or command.
  public init(frame: Frame) throws(MessageError) {
    let control = frame.control
    let data = frame.data
    guard !control.isReply else {
      throw MessageError(.wrongDirection(control: control.rawValue, expectedReply: false))
    }
    guard !control.isAbnormal, !control.hasFollowUp else {
      throw MessageError(.unexpectedFlags(control: control.rawValue))
    }
    switch control.function {
    case .read:
      try expectLength(data, 4, "4 bytes (the data identifier)", control)
      self = .read(DataIdentifier(plainBytes: data)!)
    case .readFollowUp:
      try expectLength(data, 5, "5 bytes (data identifier, sequence number)", control)
      self = .readFollowUp(DataIdentifier(plainBytes: data[0..<4])!, sequence: data[4])
    case .readAddress:
      try expectLength(data, 0, "empty", control)
      self = .readAddress
    case .broadcastTime:
      try expectLength(data, 6, "6 bytes (ssmmhhDDMMYY)", control)
      guard frame.address.isBroadcast else {
        throw MessageError(.notBroadcast(address: frame.address.description))
      }
      self = .broadcastTime(
        try field("the time", control) { () throws(ValueError) in
          try MeterDateTime(plainBytes: data[...])
        })
    case .control:
      try expectLength(
        data, 16, "16 bytes (password, operator, N1, N2, valid-until; encrypted commands are not supported)",
        control)
      guard let command = RelayCommand(rawValue: data[8]) else {
        throw MessageError(
          .invalidField(
            control: control.rawValue, field: "command N1",
            reason: Hex.byte(data[8]) + " is not 1A, 1B, 1C, 2A, 2B, 3A or 3B"))
      }
      let validUntil = try field("the valid-until time N3…N8", control) { () throws(ValueError) in
        try MeterDateTime(plainBytes: data[10..<16])
      }
      let operatorCode =
        UInt32(data[4]) | UInt32(data[5]) << 8 | UInt32(data[6]) << 16 | UInt32(data[7]) << 24
      self = .control(
        ControlRequest(
          password: Password(plainBytes: data[0..<4]), operatorCode: operatorCode, command: command,
          validUntil: validUntil, reserved: data[9]))
    default:
      throw MessageError(.unsupportedFunction(control: control.rawValue))
    }
  }

  /// The frame that sends this request to `address` (broadcast time always goes to
  /// `Address.broadcast`, whatever `address` is).
  public func frame(to address: Address) -> Frame {
    let control = Control(function)
    switch self {
    case .read(let identifier):
      return Frame(address: address, control: control, fixedData: identifier.plainBytes)
    case .readFollowUp(let identifier, let sequence):
      return Frame(address: address, control: control, fixedData: identifier.plainBytes + [sequence])
    case .readAddress:
      return Frame(address: address, control: control, fixedData: [])
    case .broadcastTime(let time):
      return Frame(address: .broadcast, control: control, fixedData: time.plainBytes)
    case .control(let request):
      return Frame(address: address, control: control, fixedData: request.plainBytes)
    }
  }
}

/// What a meter sends back: the replies to the requests in `Request`.
public enum Reply: Hashable, Sendable {
  /// 0x91 (0xB1 with `hasFollowUp`): the identifier and its value bytes (plain; decode
  /// them with `MeterValue(decoding:for:)`).
  case readData(DataIdentifier, [UInt8], hasFollowUp: Bool)
  /// 0xD1: the read was refused.
  case readError(ErrorWord)
  /// 0x92 (0xB2 with `hasFollowUp`): follow-up data: the identifier, value bytes and the
  /// sequence number of the request it answers.
  case readFollowUpData(DataIdentifier, [UInt8], sequence: UInt8, hasFollowUp: Bool)
  /// 0xD2: the follow-up read was refused.
  case readFollowUpError(ErrorWord)
  /// 0x93: the meter's address (also in the frame's address field).
  case address(Address)
  /// 0x9C: the control command was accepted.
  case controlAccepted
  /// 0xDC with one byte: the control command was refused.
  case controlRefused(ErrorWord)
  /// 0xDC with two bytes: the control command was refused (smart-meter status form).
  case controlRefusedStatus(ControlErrorStatus)

  /// The control byte of this reply.
  public var control: Control {
    switch self {
    case .readData(_, _, let more): return Control(.read, isReply: true, hasFollowUp: more)
    case .readError: return Control(.read, isReply: true, isAbnormal: true)
    case .readFollowUpData(_, _, _, let more): return Control(.readFollowUp, isReply: true, hasFollowUp: more)
    case .readFollowUpError: return Control(.readFollowUp, isReply: true, isAbnormal: true)
    case .address: return Control(.readAddress, isReply: true)
    case .controlAccepted: return Control(.control, isReply: true)
    case .controlRefused, .controlRefusedStatus: return Control(.control, isReply: true, isAbnormal: true)
    }
  }

  /// The reply carried by `frame`.
  /// - Throws: `MessageError`: `wrongDirection` for a request, `unexpectedFlags` for a
  ///   follow-up flag where there can be none, `unsupportedFunction`,
  ///   `unexpectedDataLength`, `invalidField` for a bad address in a 0x93 reply.
  public init(frame: Frame) throws(MessageError) {
    let control = frame.control
    let data = frame.data
    guard control.isReply else {
      throw MessageError(.wrongDirection(control: control.rawValue, expectedReply: true))
    }
    if control.isAbnormal && control.hasFollowUp {
      throw MessageError(.unexpectedFlags(control: control.rawValue))
    }
    switch control.function {
    case .read:
      if control.isAbnormal {
        try expectLength(data, 1, "1 byte (the error word)", control)
        self = .readError(ErrorWord(rawValue: data[0]))
      } else {
        guard data.count >= 4 else {
          throw MessageError(
            .unexpectedDataLength(
              control: control.rawValue, expected: "at least 4 bytes (the data identifier)",
              actual: data.count))
        }
        self = .readData(
          DataIdentifier(plainBytes: data[0..<4])!, Array(data[4...]), hasFollowUp: control.hasFollowUp)
      }
    case .readFollowUp:
      if control.isAbnormal {
        try expectLength(data, 1, "1 byte (the error word)", control)
        self = .readFollowUpError(ErrorWord(rawValue: data[0]))
      } else {
        guard data.count >= 5 else {
          throw MessageError(
            .unexpectedDataLength(
              control: control.rawValue, expected: "at least 5 bytes (data identifier, sequence number)",
              actual: data.count))
        }
        self = .readFollowUpData(
          DataIdentifier(plainBytes: data[0..<4])!, Array(data[4..<(data.count - 1)]),
          sequence: data[data.count - 1], hasFollowUp: control.hasFollowUp)
      }
    case .readAddress:
      guard !control.isAbnormal, !control.hasFollowUp else {
        throw MessageError(.unexpectedFlags(control: control.rawValue))
      }
      try expectLength(data, 6, "6 bytes (the address)", control)
      guard let address = Address(wireBytes: data), !address.hasWildcard else {
        throw MessageError(
          .invalidField(
            control: control.rawValue, field: "the address",
            reason: Hex.bytes(data) + " is not 12 BCD digits"))
      }
      self = .address(address)
    case .control:
      guard !control.hasFollowUp else { throw MessageError(.unexpectedFlags(control: control.rawValue)) }
      if !control.isAbnormal {
        try expectLength(data, 0, "empty", control)
        self = .controlAccepted
      } else if data.count == 1 {
        self = .controlRefused(ErrorWord(rawValue: data[0]))
      } else if data.count == 2 {
        self = .controlRefusedStatus(ControlErrorStatus(rawValue: UInt16(data[0]) | UInt16(data[1]) << 8))
      } else {
        throw MessageError(
          .unexpectedDataLength(
            control: control.rawValue, expected: "1 or 2 bytes (the error word or status)", actual: data.count
          ))
      }
    default:
      // Includes broadcast time, which has no reply.
      throw MessageError(.unsupportedFunction(control: control.rawValue))
    }
  }

  /// The frame that sends this reply from the meter at `address` (its real address,
  /// also when the request used wildcards).
  /// - Throws: `FrameError` (`dataTooLong`) when the value bytes make the data field
  ///   longer than 255 bytes.
  public func frame(from address: Address) throws(FrameError) -> Frame {
    let data: [UInt8]
    switch self {
    case .readData(let identifier, let value, _):
      data = identifier.plainBytes + value
    case .readFollowUpData(let identifier, let value, let sequence, _):
      data = identifier.plainBytes + value + [sequence]
    case .readError(let error), .readFollowUpError(let error), .controlRefused(let error):
      data = [error.rawValue]
    case .address(let meter):
      data = meter.wireBytes
    case .controlAccepted:
      data = []
    case .controlRefusedStatus(let status):
      data = [UInt8(truncatingIfNeeded: status.rawValue), UInt8(truncatingIfNeeded: status.rawValue >> 8)]
    }
    return try Frame(address: address, control: control, data: data)
  }
}

/// Throws `unexpectedDataLength` unless `data` has `count` bytes.
private func expectLength(_ data: [UInt8], _ count: Int, _ expected: String, _ control: Control)
  throws(MessageError)
{
  guard data.count == count else {
    throw MessageError(
      .unexpectedDataLength(control: control.rawValue, expected: expected, actual: data.count))
  }
}

/// Runs a field decoder, turning its `ValueError` into `invalidField`.
private func field<T>(_ name: String, _ control: Control, _ decode: () throws(ValueError) -> T)
  throws(MessageError) -> T
{
  do {
    return try decode()
  } catch {
    throw MessageError(.invalidField(control: control.rawValue, field: name, reason: error.description))
  }
}

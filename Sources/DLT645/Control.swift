/// The control byte C: direction (D7), abnormal reply (D6), follow-up frame (D5) and
/// the function code (D4–D0).
public struct Control: Hashable, Sendable, CustomStringConvertible {
  /// The DL/T 645-2007 function codes (D4–D0 of the control byte).
  public enum Function: UInt8, Sendable {
    /// 0x08 broadcast time (广播校时): ssmmhhDDMMYY to 99…99, no reply.
    case broadcastTime = 0x08
    /// 0x11 read data (读数据).
    case read = 0x11
    /// 0x12 read follow-up data (读后续数据), with a frame sequence number.
    case readFollowUp = 0x12
    /// 0x13 read communication address (读通信地址).
    case readAddress = 0x13
    /// 0x14 write data (写数据).
    case write = 0x14
    /// 0x15 write communication address (写通信地址).
    case writeAddress = 0x15
    /// 0x16 freeze (冻结命令).
    case freeze = 0x16
    /// 0x17 change baud rate (更改通信速率).
    case changeBaudRate = 0x17
    /// 0x18 change password (修改密码).
    case changePassword = 0x18
    /// 0x19 clear maximum demand (最大需量清零).
    case clearDemand = 0x19
    /// 0x1A clear meter (电表清零).
    case clearMeter = 0x1A
    /// 0x1B clear events (事件清零).
    case clearEvents = 0x1B
    /// 0x1C relay control (跳闸、合闸允许、直接合闸、报警、保电 …).
    case control = 0x1C
  }

  /// The whole byte as sent.
  public let rawValue: UInt8

  /// A control byte from the wire; any value is accepted (unknown functions are the
  /// message layer's business).
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// A control byte for `function` with the given flags.
  /// - Parameters:
  ///   - function: D4–D0.
  ///   - isReply: D7, true for frames sent by the meter (slave).
  ///   - isAbnormal: D6, true for an abnormal (error) reply.
  ///   - hasFollowUp: D5, true when more data follows in a follow-up frame.
  public init(
    _ function: Function, isReply: Bool = false, isAbnormal: Bool = false, hasFollowUp: Bool = false
  ) {
    var raw = function.rawValue
    if isReply { raw |= 0x80 }
    if isAbnormal { raw |= 0x40 }
    if hasFollowUp { raw |= 0x20 }
    self.rawValue = raw
  }

  /// D7: the frame was sent by the meter (a reply).
  public var isReply: Bool { rawValue & 0x80 != 0 }
  /// D6: an abnormal reply (the data field is an error word).
  public var isAbnormal: Bool { rawValue & 0x40 != 0 }
  /// D5: a follow-up frame comes after this one.
  public var hasFollowUp: Bool { rawValue & 0x20 != 0 }
  /// D4–D0 as sent.
  public var functionCode: UInt8 { rawValue & 0x1F }
  /// The function, or nil for a code DL/T 645-2007 does not define.
  public var function: Function? { Function(rawValue: functionCode) }

  /// "read", "read follow-up", ... or "function 0x05" for unknown codes.
  public var functionName: String {
    switch function {
    case .broadcastTime: return "broadcast time"
    case .read: return "read"
    case .readFollowUp: return "read follow-up"
    case .readAddress: return "read address"
    case .write: return "write"
    case .writeAddress: return "write address"
    case .freeze: return "freeze"
    case .changeBaudRate: return "change baud rate"
    case .changePassword: return "change password"
    case .clearDemand: return "clear demand"
    case .clearMeter: return "clear meter"
    case .clearEvents: return "clear events"
    case .control: return "control"
    case nil: return "function " + Hex.byte(functionCode)
    }
  }

  /// "0x91 (read, reply)" style text.
  public var description: String {
    var text = Hex.byte(rawValue) + " (" + functionName
    if isReply { text += isAbnormal ? ", abnormal reply" : ", reply" }
    if hasFollowUp { text += ", follow-up" }
    return text + ")"
  }
}

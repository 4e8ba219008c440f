/// A DL/T 645-2007 data identifier DI3 DI2 DI1 DI0 (4 bytes, sent DI0 first, each
/// + 0x33 like all data).
///
/// `rawValue` reads as the standard's tables write it: 00 01 00 00 (forward active
/// total energy) is `0x0001_0000`. The constants below are the identifiers GridEdge
/// reads, checked against the standard's appendix A tables as reproduced by meter and
/// concentrator sources (see each constant); `format` tells how to decode their value.
public struct DataIdentifier: Hashable, Sendable, CustomStringConvertible {
  /// The time-of-use tariffs of a 4-tariff meter, in register order (费率 1–4).
  public enum Tariff: UInt8, CaseIterable, Sendable {
    /// Tariff 1, 尖 (sharp / critical peak).
    case sharp = 1
    /// Tariff 2, 峰 (peak).
    case peak = 2
    /// Tariff 3, 平 (flat / shoulder).
    case flat = 3
    /// Tariff 4, 谷 (valley / off-peak).
    case valley = 4
  }

  /// The three phases, as DI1 numbers them (A = 1).
  public enum Phase: UInt8, CaseIterable, Sendable {
    case a = 1
    case b = 2
    case c = 3
  }

  /// DI3 DI2 DI1 DI0 as one number, DI3 most significant.
  public let rawValue: UInt32

  /// An identifier from its number (`0x0001_0000` for 00 01 00 00).
  public init(rawValue: UInt32) { self.rawValue = rawValue }

  /// An identifier from its four bytes as the tables write them (DI3 first).
  public init(_ di3: UInt8, _ di2: UInt8, _ di1: UInt8, _ di0: UInt8) {
    rawValue = UInt32(di3) << 24 | UInt32(di2) << 16 | UInt32(di1) << 8 | UInt32(di0)
  }

  /// The identifier from the first four plain data bytes (DI0 first).
  /// - Returns: nil unless `bytes` has exactly 4 bytes.
  public init?<C: Collection>(plainBytes bytes: C) where C.Element == UInt8 {
    guard bytes.count == 4 else { return nil }
    var raw: UInt32 = 0
    var shift: UInt32 = 0
    for byte in bytes {
      raw |= UInt32(byte) << shift
      shift += 8
    }
    rawValue = raw
  }

  /// DI0 DI1 DI2 DI3: the plain bytes as they go into the data field (before + 0x33).
  public var plainBytes: [UInt8] {
    [
      UInt8(truncatingIfNeeded: rawValue), UInt8(truncatingIfNeeded: rawValue >> 8),
      UInt8(truncatingIfNeeded: rawValue >> 16), UInt8(truncatingIfNeeded: rawValue >> 24),
    ]
  }

  /// "00010000": the eight hex digits, DI3 first, as tables and logs write them.
  public var description: String { Hex.digits(UInt64(rawValue), width: 8) }

  // MARK: Energy (DI3 = 00), XXXXXX.XX kWh, 4 bytes each

  /// 00 01 00 00 (当前)正向有功总电能: forward active energy, total.
  public static let forwardActiveTotal = DataIdentifier(rawValue: 0x0001_0000)
  /// 00 01 01 00 … 00 01 04 00 (当前)正向有功费率1–4电能: forward active energy of one tariff.
  public static func forwardActive(_ tariff: Tariff) -> DataIdentifier {
    DataIdentifier(rawValue: 0x0001_0000 | UInt32(tariff.rawValue) << 8)
  }
  /// 00 01 FF 00 (当前)正向有功电能数据块: total then tariffs 1…M, 4 × (M + 1) bytes
  /// (20 on a 4-tariff meter).
  public static let forwardActiveBlock = DataIdentifier(rawValue: 0x0001_FF00)
  /// 00 02 00 00 (当前)反向有功总电能: reverse active energy, total.
  public static let reverseActiveTotal = DataIdentifier(rawValue: 0x0002_0000)

  // MARK: Instantaneous values (DI3 = 02)

  /// 02 01 01 00 … 02 01 03 00 A/B/C相电压: phase voltage, XXX.X V, 2 bytes.
  public static func voltage(_ phase: Phase) -> DataIdentifier {
    DataIdentifier(rawValue: 0x0201_0000 | UInt32(phase.rawValue) << 8)
  }
  /// 02 01 FF 00 电压数据块: the three phase voltages, 6 bytes.
  public static let voltageBlock = DataIdentifier(rawValue: 0x0201_FF00)
  /// 02 02 01 00 … 02 02 03 00 A/B/C相电流: phase current, XXX.XXX A, 3 bytes, D7 of the
  /// top byte set for the reverse direction.
  public static func current(_ phase: Phase) -> DataIdentifier {
    DataIdentifier(rawValue: 0x0202_0000 | UInt32(phase.rawValue) << 8)
  }
  /// 02 02 FF 00 电流数据块: the three phase currents, 9 bytes.
  public static let currentBlock = DataIdentifier(rawValue: 0x0202_FF00)
  /// 02 03 00 00 瞬时总有功功率: total active power, XX.XXXX kW, 3 bytes, signed like
  /// currents.
  public static let totalActivePower = DataIdentifier(rawValue: 0x0203_0000)

  // MARK: Parameters (DI3 = 04)

  /// 04 00 01 01 日期及星期: meter date, YYMMDDWW (WW = 0 for Sunday), 4 bytes.
  public static let date = DataIdentifier(rawValue: 0x0400_0101)
  /// 04 00 01 02 时间: meter time, hhmmss, 3 bytes.
  public static let time = DataIdentifier(rawValue: 0x0400_0102)
  /// 04 00 05 03 电表运行状态字3 (操作类): run status word 3, 2 bytes; see `RunStatusWord3`.
  public static let runStatusWord3 = DataIdentifier(rawValue: 0x0400_0503)

  // MARK: Freezes (DI3 = 05)

  /// 05 06 00 01 (上1次)日冻结时间: time of the last daily freeze, YYMMDDhhmm, 5 bytes.
  public static let lastDailyFreezeTime = DataIdentifier(rawValue: 0x0506_0001)
  /// 05 06 01 01 (上1次)日冻结正向有功电能数据: forward active energy at the last daily
  /// freeze, total then tariffs 1…M, 4 × (M + 1) bytes.
  public static let lastDailyFreezeForwardActive = DataIdentifier(rawValue: 0x0506_0101)

  /// 05 06 00 nn (上n次)日冻结时间, n = 1 (the last) … 62 (DI0 = 01H … 3EH).
  /// - Returns: nil when `previous` is outside 1...62.
  public static func dailyFreezeTime(previous: Int) -> DataIdentifier? {
    guard (1...62).contains(previous) else { return nil }
    return DataIdentifier(rawValue: 0x0506_0000 | UInt32(previous))
  }

  /// 05 06 01 nn (上n次)日冻结正向有功电能数据, n = 1 (the last) … 62.
  /// - Returns: nil when `previous` is outside 1...62.
  public static func dailyFreezeForwardActive(previous: Int) -> DataIdentifier? {
    guard (1...62).contains(previous) else { return nil }
    return DataIdentifier(rawValue: 0x0506_0100 | UInt32(previous))
  }

  /// For a daily freeze identifier (05 06 00 nn or 05 06 01 nn), which previous freeze
  /// it names (1 = the last); nil for other identifiers.
  public var dailyFreezeIndex: Int? {
    let group = rawValue & 0xFFFF_FF00
    let n = Int(rawValue & 0xFF)
    guard group == 0x0506_0000 || group == 0x0506_0100, (1...62).contains(n) else { return nil }
    return n
  }

  // MARK: Prepayment

  /// 00 90 02 00 (当前)剩余金额: prepaid remaining money, XXXXXX.XX yuan, 4 bytes (decoded
  /// in fen).
  public static let remainingMoney = DataIdentifier(rawValue: 0x0090_0200)
  /// 00 90 02 01 (当前)透支金额: overdraft money, XXXXXX.XX yuan, 4 bytes (decoded in fen).
  public static let overdraftMoney = DataIdentifier(rawValue: 0x0090_0201)
  /// 03 33 02 01 (上1次)购电后总购电次数: the purchase count after the last purchase,
  /// XXXX, 2 bytes.
  ///
  /// Source and choice: the purchase records of money-type prepaid meters are the
  /// 03 33 xx 01 group (03 33 01 01 date, 03 33 02 01 count, 03 33 03 01 amount,
  /// … 03 33 06 01 accumulated amount); 03 32 02 01 is the same count in the 03 32
  /// group of energy-type (kWh) prepaid meters. Several concentrator and test-bench
  /// sources agree on 03 33 02 01, 2 bytes, next to 00 90 02 00 for money meters; one
  /// lists 03 32 02 01 beside the money DIs, which is the energy-type group. GridEdge
  /// charges in money (remaining amount 00 90 02 00), so it reads 03 33 02 01; an
  /// energy-type meter answers it with "no requested data", and
  /// `purchaseCountEnergyType` is there for those.
  public static let purchaseCount = DataIdentifier(rawValue: 0x0333_0201)
  /// 03 32 02 01: the purchase count of energy-type (kWh) prepaid meters, XXXX, 2 bytes.
  public static let purchaseCountEnergyType = DataIdentifier(rawValue: 0x0332_0201)

  /// How the value of this identifier is encoded, or nil when this codec does not
  /// know it.
  public var format: ValueFormat? {
    switch rawValue {
    case 0x0001_0000, 0x0001_0100, 0x0001_0200, 0x0001_0300, 0x0001_0400, 0x0002_0000:
      return .energy
    case 0x0001_FF00: return .energyBlock
    case 0x0201_0100, 0x0201_0200, 0x0201_0300: return .voltage
    case 0x0201_FF00: return .voltageBlock
    case 0x0202_0100, 0x0202_0200, 0x0202_0300: return .current
    case 0x0202_FF00: return .currentBlock
    case 0x0203_0000: return .activePower
    case 0x0400_0101: return .date
    case 0x0400_0102: return .time
    case 0x0400_0503: return .runStatusWord3
    case 0x0090_0200, 0x0090_0201: return .money
    case 0x0333_0201, 0x0332_0201: return .count
    default:
      guard dailyFreezeIndex != nil else { return nil }
      return rawValue & 0xFF00 == 0 ? .freezeTime : .energyBlock
    }
  }
}

/// Energy in integer watt-hours. Meters register XXXXXX.XX kWh, i.e. 10 Wh steps.
public struct Energy: Hashable, Comparable, Sendable {
  public var wattHours: Int64

  public init(wattHours: Int64) { self.wattHours = wattHours }

  /// From a meter register value in hundredths of a kWh (the DL/T 645 XXXXXX.XX form).
  public init(centiKilowattHours: Int64) { self.wattHours = centiKilowattHours * 10 }

  public static let zero = Energy(wattHours: 0)

  public static func + (a: Energy, b: Energy) -> Energy { Energy(wattHours: a.wattHours + b.wattHours) }
  public static func - (a: Energy, b: Energy) -> Energy { Energy(wattHours: a.wattHours - b.wattHours) }
  public static func < (a: Energy, b: Energy) -> Bool { a.wattHours < b.wattHours }
}

/// Money in integer fen (0.01 CNY).
public struct Money: Hashable, Comparable, Sendable {
  public var fen: Int64

  public init(fen: Int64) { self.fen = fen }

  public static let zero = Money(fen: 0)

  public static func + (a: Money, b: Money) -> Money { Money(fen: a.fen + b.fen) }
  public static func - (a: Money, b: Money) -> Money { Money(fen: a.fen - b.fen) }
  public static prefix func - (a: Money) -> Money { Money(fen: -a.fen) }
  public static func < (a: Money, b: Money) -> Bool { a.fen < b.fen }

  /// `12.34` style text (yuan with two decimals), for logs and reports.
  public var yuanText: String {
    let sign = fen < 0 ? "-" : ""
    let magnitude = fen.magnitude
    let cents = magnitude % 100
    return sign + String(magnitude / 100) + "." + (cents < 10 ? "0" : "") + String(cents)
  }
}

/// An energy price in 0.0001 CNY per kWh (tariff tables give four decimals:
/// 0.4883 CNY/kWh is `Price(tenThousandthsPerKilowattHour: 4883)`).
public struct Price: Hashable, Comparable, Sendable {
  public var tenThousandthsPerKilowattHour: Int64

  public init(tenThousandthsPerKilowattHour: Int64) {
    self.tenThousandthsPerKilowattHour = tenThousandthsPerKilowattHour
  }

  public static func < (a: Price, b: Price) -> Bool {
    a.tenThousandthsPerKilowattHour < b.tenThousandthsPerKilowattHour
  }
}

/// A charge could not be computed because it does not fit in 64 bits.
public struct ArithmeticOverflow: Error, Sendable {
  public init() {}
}

extension Money {
  /// The charge for `energy` at `price`, rounded half-up to the fen (half away from
  /// zero for negative energy), once per charge.
  ///
  /// fen = Wh × (0.0001 CNY/kWh) = Wh × price / 100,000.
  /// - Throws: `ArithmeticOverflow` when Wh × price exceeds Int64.
  public static func charge(for energy: Energy, at price: Price) throws(ArithmeticOverflow) -> Money {
    let (product, overflow) = energy.wattHours.multipliedReportingOverflow(
      by: price.tenThousandthsPerKilowattHour)
    guard !overflow else { throw ArithmeticOverflow() }
    let divisor: Int64 = 100_000
    let half = divisor / 2
    let magnitude = product.magnitude
    let rounded = Int64((magnitude + UInt64(half)) / UInt64(divisor))
    return Money(fen: product < 0 ? -rounded : rounded)
  }
}

/// The daily shape of a customer's load, by local hour.
///
/// Loads are drawn per meter and per 15-minute slot as
/// `base × shape(hour) × noise`, with `base` fixed per meter (residential
/// 150…600 W, commercial 1.5…8 kW) and `noise` in 0.75…1.25, all from the seed;
/// the load is constant within a slot.
public enum LoadProfile: UInt8, Sendable {
  /// A household: low at night, a morning bump, an evening peak around 19–21 h.
  case residential = 0
  /// A shop or office: open 8–18 h on weekdays, about half as busy at weekends.
  case commercial = 1

  /// `residential` or `commercial`.
  public var name: String {
    switch self {
    case .residential: return "residential"
    case .commercial: return "commercial"
    }
  }

  /// The profile called `name`.
  public init?(name: String) {
    switch name {
    case "residential": self = .residential
    case "commercial": self = .commercial
    default: return nil
    }
  }

  /// Residential: permille of the base load at local hour 0…23 (averages about 1,000).
  private static let residentialShape: [Int64] = [
    450, 380, 350, 340, 350, 450, 800, 1200, 1000, 750, 700, 750,
    850, 750, 700, 700, 850, 1300, 1900, 2100, 1900, 1500, 1000, 650,
  ]

  /// Commercial, weekdays: permille of the base load at local hour 0…23.
  private static let commercialShape: [Int64] = [
    300, 300, 300, 300, 300, 350, 500, 900, 1600, 1900, 2000, 2000,
    1800, 1900, 2000, 2000, 1900, 1600, 1100, 800, 600, 450, 350, 300,
  ]

  /// The shape value in permille of the base load at local `hour` (0…23).
  func shapePermille(hour: Int, weekend: Bool) -> Int64 {
    switch self {
    case .residential:
      // People are home at weekends: the day is fuller.
      let value = Self.residentialShape[hour]
      return weekend && hour >= 9 && hour < 17 ? value + 250 : value
    case .commercial:
      let value = Self.commercialShape[hour]
      return weekend && value > 500 ? value * 55 / 100 : value
    }
  }

  /// The range the meter's base load (W) is drawn from.
  var baseWattsRange: ClosedRange<Int64> {
    switch self {
    case .residential: return 150...600
    case .commercial: return 1_500...8_000
    }
  }

  /// True for meters of this profile with three phases (commercial); households are
  /// single-phase.
  var isThreePhase: Bool { self == .commercial }
}

/// Which profiles the customers get.
public enum ProfileChoice: Sendable {
  /// Every customer is a household.
  case residential
  /// Every customer is a shop or office.
  case commercial
  /// About 85 % households and 15 % shops, drawn per meter from the seed.
  case mixed

  /// `residential`, `commercial` or `mixed`.
  public var name: String {
    switch self {
    case .residential: return "residential"
    case .commercial: return "commercial"
    case .mixed: return "mixed"
    }
  }

  /// The choice called `name`.
  public init?(name: String) {
    switch name {
    case "residential": self = .residential
    case "commercial": self = .commercial
    case "mixed": self = .mixed
    default: return nil
    }
  }
}

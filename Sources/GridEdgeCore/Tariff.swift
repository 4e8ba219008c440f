/// Tariff tables: versioned, per customer category, flat or time-of-use prices,
/// optionally with tiered blocks. Pure data with validation; `FeeCalculator`
/// (TariffCalculation.swift) turns meter intervals into charges with them.
///
/// Every price of a tariff is "period price + tier increment":
///
/// | structure | period price | tier increment |
/// |---|---|---|
/// | flat | the one price | none (no tiers) |
/// | tiered blocks | the one price (the base) | per block, e.g. +0.05, +0.30 CNY/kWh |
/// | time-of-use | sharp / peak / flat / valley | none |
/// | tiered + time-of-use | the period's price | the block's increment |
///
/// This is the common Chinese residential scheme, where blocks are defined as
/// increments over the base (or over each time-of-use price).

/// A time-of-use period, numbered as DL/T 645-2007 numbers tariff registers:
/// rate 1…4 = sharp, peak, flat, valley (forward active energy DI 00 01 01 00 …
/// 00 01 04 00).
public enum TimeOfUsePeriod: Int, CaseIterable, Hashable, Comparable, Sendable {
  /// 尖峰, the highest price (often summer afternoons only).
  case sharp = 1
  /// 高峰.
  case peak = 2
  /// 平段.
  case flat = 3
  /// 低谷, the lowest price (nights).
  case valley = 4

  /// A stable lower-case name for storage and messages.
  public var code: String {
    switch self {
    case .sharp: return "sharp"
    case .peak: return "peak"
    case .flat: return "flat"
    case .valley: return "valley"
    }
  }

  /// The period named `code` (see `code`).
  public init?(code: String) {
    switch code {
    case "sharp": self = .sharp
    case "peak": self = .peak
    case "flat": self = .flat
    case "valley": self = .valley
    default: return nil
    }
  }

  public static func < (a: TimeOfUsePeriod, b: TimeOfUsePeriod) -> Bool { a.rawValue < b.rawValue }
}

/// A customer category (residential, commercial, …): tariffs are chosen by it.
/// A string code, so that HQ can introduce categories without a firmware change.
public struct CustomerCategory: Hashable, Comparable, Sendable {
  /// The stable code, e.g. "residential".
  public let code: String

  public init(_ code: String) { self.code = code }

  public static let residential = CustomerCategory("residential")
  public static let commercial = CustomerCategory("commercial")
  public static let industrial = CustomerCategory("industrial")
  public static let agricultural = CustomerCategory("agricultural")

  public static func < (a: CustomerCategory, b: CustomerCategory) -> Bool { a.code < b.code }
}

/// One price per time-of-use period.
public struct PeriodPrices: Hashable, Sendable {
  public var sharp: Price
  public var peak: Price
  public var flat: Price
  public var valley: Price

  public init(sharp: Price, peak: Price, flat: Price, valley: Price) {
    self.sharp = sharp
    self.peak = peak
    self.flat = flat
    self.valley = valley
  }

  /// The price of `period`.
  public subscript(period: TimeOfUsePeriod) -> Price {
    switch period {
    case .sharp: return sharp
    case .peak: return peak
    case .flat: return flat
    case .valley: return valley
    }
  }
}

/// From a time of day on, a time-of-use period applies (one entry of a meter's
/// daily period table, DL/T 645 "日时段表": hh:mm + rate number).
public struct PeriodSwitch: Hashable, Sendable {
  /// Minutes after local midnight, 0…1439.
  public let minuteOfDay: Int
  public let period: TimeOfUsePeriod

  /// From `hour`:`minute` on, `period` applies.
  /// - Returns: nil when the time is not within 00:00…23:59.
  public init?(hour: Int, minute: Int, period: TimeOfUsePeriod) {
    guard hour >= 0, hour < 24, minute >= 0, minute < 60 else { return nil }
    self.minuteOfDay = hour * 60 + minute
    self.period = period
  }
}

/// The periods of one day: a list of switch times. Before the day's first switch,
/// the day's last period applies, so a period that starts in the evening runs
/// across midnight (valley 23:00–07:00 is a switch to valley at 23:00 and the
/// next period's switch at 07:00).
public struct DaySchedule: Hashable, Sendable {
  /// Sorted by time, times strictly increasing.
  public let switches: [PeriodSwitch]

  /// A day schedule from its switches.
  /// - Throws: `TariffError` when there is no switch or the times are not strictly increasing.
  public init(_ switches: [PeriodSwitch]) throws(TariffError) {
    guard !switches.isEmpty else { throw TariffError(.emptyDaySchedule) }
    for index in switches.indices.dropFirst()
    where switches[index].minuteOfDay <= switches[index - 1].minuteOfDay {
      throw TariffError(.switchesNotIncreasing(minuteOfDay: switches[index].minuteOfDay))
    }
    self.switches = switches
  }

  /// The period in force at `secondOfDay` (0…86,399).
  public func period(atSecondOfDay secondOfDay: Int) -> TimeOfUsePeriod {
    var current = switches[switches.count - 1].period  // from the previous evening
    for entry in switches {
      if entry.minuteOfDay * 60 > secondOfDay { break }
      current = entry.period
    }
    return current
  }

  /// The second of the day of the first switch after `secondOfDay`, or 86,400
  /// (midnight, when the next day's schedule takes over) when there is none.
  public func nextSwitchSecond(after secondOfDay: Int) -> Int {
    for entry in switches where entry.minuteOfDay * 60 > secondOfDay {
      return entry.minuteOfDay * 60
    }
    return 86_400
  }
}

/// A season: a day schedule used in a range of months. The range may wrap over
/// the new year (November…February).
public struct Season: Hashable, Sendable {
  /// 1…12.
  public let firstMonth: Int
  /// 1…12; before `firstMonth` when the season wraps over the new year.
  public let lastMonth: Int
  public let day: DaySchedule

  /// A season from `firstMonth` through `lastMonth` (inclusive) with `day`'s periods.
  /// - Throws: `TariffError` when a month is outside 1…12.
  public init(firstMonth: Int, lastMonth: Int, day: DaySchedule) throws(TariffError) {
    for month in [firstMonth, lastMonth] where month < 1 || month > 12 {
      throw TariffError(.monthOutOfRange(month))
    }
    self.firstMonth = firstMonth
    self.lastMonth = lastMonth
    self.day = day
  }

  /// January through December.
  init(allYear day: DaySchedule) {
    self.firstMonth = 1
    self.lastMonth = 12
    self.day = day
  }

  /// True when `month` (1…12) is in the season.
  public func contains(month: Int) -> Bool {
    firstMonth <= lastMonth
      ? (month >= firstMonth && month <= lastMonth)
      : (month >= firstMonth || month <= lastMonth)
  }
}

/// A time-of-use schedule: seasons that together cover every month exactly once.
/// A day uses the schedule of its own month from 00:00 to 24:00 (also for the
/// part of a period that began the evening before).
public struct TimeOfUseSchedule: Hashable, Sendable {
  public let seasons: [Season]
  private let seasonOfMonth: [Int]  // index 0…11 → index into seasons

  /// A schedule from its seasons.
  /// - Throws: `TariffError` when a month is in no season or in two.
  public init(seasons: [Season]) throws(TariffError) {
    var seasonOfMonth = [Int](repeating: -1, count: 12)
    for (index, season) in seasons.enumerated() {
      for month in 1...12 where season.contains(month: month) {
        guard seasonOfMonth[month - 1] < 0 else { throw TariffError(.monthInTwoSeasons(month)) }
        seasonOfMonth[month - 1] = index
      }
    }
    if let missing = seasonOfMonth.firstIndex(of: -1) { throw TariffError(.monthInNoSeason(missing + 1)) }
    self.seasons = seasons
    self.seasonOfMonth = seasonOfMonth
  }

  /// One day schedule all year.
  public init(allYear day: DaySchedule) {
    self.seasons = [Season(allYear: day)]
    self.seasonOfMonth = [Int](repeating: 0, count: 12)
  }

  /// The day schedule used in `month` (1…12).
  public func daySchedule(month: Int) -> DaySchedule {
    seasons[seasonOfMonth[month - 1]].day
  }

  /// The period in force at local time `local`.
  public func period(at local: LocalDateTime) -> TimeOfUsePeriod {
    daySchedule(month: local.date.month).period(atSecondOfDay: local.secondOfDay)
  }
}

/// How energy is priced before tier increments.
public enum EnergyPricing: Hashable, Sendable {
  /// One price at all times.
  case flat(Price)
  /// A price per time-of-use period, periods by `schedule`.
  case timeOfUse(TimeOfUseSchedule, PeriodPrices)
}

/// One block of a tiered tariff: the energy of the tier cycle up to `upperBound`
/// (inclusive) costs `increment` more than the period price.
public struct TierBlock: Hashable, Sendable {
  /// The cumulative energy of the cycle up to which (inclusive) this block applies;
  /// nil for the last, unbounded block.
  public let upperBound: Energy?
  /// Added to the period price, e.g. 0.0500 CNY/kWh for the second block.
  public let increment: Price

  public init(upTo upperBound: Energy?, increment: Price) {
    self.upperBound = upperBound
    self.increment = increment
  }
}

/// When tier usage restarts at zero: at 00:00 local time of the reset day.
///
/// Reset days are limited to 1…28 so that every month and year has one.
public enum TierCycle: Hashable, Sendable {
  /// Every month on `resetDay` (1 for calendar months, or the meter reading day).
  case monthly(resetDay: Int)
  /// Every year on `resetMonth`-`resetDay` (the settlement day; January 1 in most provinces).
  case annual(resetMonth: Int, resetDay: Int)

  /// The first day of the cycle that contains `date`.
  public func cycleStart(containing date: CivilDate) -> CivilDate {
    switch self {
    case .monthly(let resetDay):
      if date.day >= resetDay { return CivilDate(validYear: date.year, month: date.month, day: resetDay) }
      return date.month == 1
        ? CivilDate(validYear: date.year - 1, month: 12, day: resetDay)
        : CivilDate(validYear: date.year, month: date.month - 1, day: resetDay)
    case .annual(let resetMonth, let resetDay):
      let reached = date.month > resetMonth || (date.month == resetMonth && date.day >= resetDay)
      return CivilDate(validYear: reached ? date.year : date.year - 1, month: resetMonth, day: resetDay)
    }
  }

  /// The first day of the cycle after the one starting on `start`.
  public func nextCycleStart(after start: CivilDate) -> CivilDate {
    switch self {
    case .monthly(let resetDay):
      return start.month == 12
        ? CivilDate(validYear: start.year + 1, month: 1, day: resetDay)
        : CivilDate(validYear: start.year, month: start.month + 1, day: resetDay)
    case .annual(let resetMonth, let resetDay):
      return CivilDate(validYear: start.year + 1, month: resetMonth, day: resetDay)
    }
  }
}

/// Tiered blocks and the cycle over which their energy accumulates.
public struct TierSchedule: Hashable, Sendable {
  public let cycle: TierCycle
  /// Ordered by upper bound; the last one is unbounded.
  public let blocks: [TierBlock]

  /// A tier schedule.
  /// - Throws: `TariffError` when there is no block, the bounds are not positive and
  ///   strictly increasing, only the last block is unbounded, an increment is negative,
  ///   or the reset day or month is out of range.
  public init(cycle: TierCycle, blocks: [TierBlock]) throws(TariffError) {
    switch cycle {
    case .monthly(let resetDay):
      guard resetDay >= 1, resetDay <= 28 else { throw TariffError(.resetDayOutOfRange(resetDay)) }
    case .annual(let resetMonth, let resetDay):
      guard resetMonth >= 1, resetMonth <= 12 else { throw TariffError(.monthOutOfRange(resetMonth)) }
      guard resetDay >= 1, resetDay <= 28 else { throw TariffError(.resetDayOutOfRange(resetDay)) }
    }
    guard !blocks.isEmpty else { throw TariffError(.noTierBlocks) }
    var previous = Energy.zero
    for (index, block) in blocks.enumerated() {
      guard block.increment.tenThousandthsPerKilowattHour >= 0 else {
        throw TariffError(.negativePrice("tier " + String(index + 1) + " increment"))
      }
      let isLast = index == blocks.count - 1
      if let bound = block.upperBound {
        guard !isLast else { throw TariffError(.lastTierBounded) }
        guard bound > previous else { throw TariffError(.tierBoundsNotIncreasing(tier: index + 1)) }
        previous = bound
      } else {
        guard isLast else { throw TariffError(.unboundedTierNotLast(tier: index + 1)) }
      }
    }
    self.cycle = cycle
    self.blocks = blocks
  }

  /// The energy that falls in each block when the cycle's usage grows from
  /// `usage` by `added` (both ≥ 0); Σ result = `added`.
  /// - Returns: nil when `usage + added` overflows.
  func split(added: Energy, after usage: Energy) -> [Energy]? {
    let (after, overflow) = usage.wattHours.addingReportingOverflow(added.wattHours)
    guard !overflow else { return nil }
    var parts: [Energy] = []
    parts.reserveCapacity(blocks.count)
    var lower: Int64 = 0
    for block in blocks {
      let upper = block.upperBound?.wattHours ?? Int64.max
      let clampedAfter = min(max(after, lower), upper)
      let clampedBefore = min(max(usage.wattHours, lower), upper)
      parts.append(Energy(wattHours: clampedAfter - clampedBefore))
      lower = upper
    }
    return parts
  }
}

/// One version of the tariff of one customer category, in force from local midnight
/// at the start of `effectiveFrom` until the next version of the category.
public struct TariffVersion: Hashable, Sendable {
  /// A unique id HQ gives the version ("ZJ-RES-2012-07"); it is on every charge line.
  public let id: String
  public let category: CustomerCategory
  public let effectiveFrom: CivilDate
  public let pricing: EnergyPricing
  /// nil: not tiered.
  public let tiers: TierSchedule?

  /// A tariff version.
  /// - Throws: `TariffError` when the id is empty or a price is negative.
  public init(
    id: String, category: CustomerCategory, effectiveFrom: CivilDate, pricing: EnergyPricing,
    tiers: TierSchedule? = nil
  ) throws(TariffError) {
    guard !id.isEmpty else { throw TariffError(.emptyID) }
    switch pricing {
    case .flat(let price):
      guard price.tenThousandthsPerKilowattHour >= 0 else { throw TariffError(.negativePrice("flat price")) }
    case .timeOfUse(_, let prices):
      for period in TimeOfUsePeriod.allCases where prices[period].tenThousandthsPerKilowattHour < 0 {
        throw TariffError(.negativePrice(period.code + " price"))
      }
    }
    self.id = id
    self.category = category
    self.effectiveFrom = effectiveFrom
    self.pricing = pricing
    self.tiers = tiers
  }

  /// True when prices depend on the time of day.
  public var isTimeOfUse: Bool {
    if case .timeOfUse = pricing { return true }
    return false
  }

  /// The period price of `period` (the one price for flat pricing).
  public func periodPrice(_ period: TimeOfUsePeriod) -> Price {
    switch pricing {
    case .flat(let price): return price
    case .timeOfUse(_, let prices): return prices[period]
    }
  }
}

/// All tariff versions the device knows, for every category.
public struct TariffBook: Hashable, Sendable {
  private var byCategory: [CustomerCategory: [TariffVersion]]

  /// A book of `versions`.
  /// - Throws: `TariffError` when two versions share an id, or a category has two
  ///   versions with the same effective date.
  public init(_ versions: [TariffVersion]) throws(TariffError) {
    var ids = Set<String>()
    var byCategory: [CustomerCategory: [TariffVersion]] = [:]
    for version in versions {
      guard ids.insert(version.id).inserted else { throw TariffError(.duplicateID(version.id)) }
      byCategory[version.category, default: []].append(version)
    }
    for (category, list) in byCategory {
      let sorted = list.sorted { $0.effectiveFrom < $1.effectiveFrom }
      for index in sorted.indices.dropFirst()
      where sorted[index].effectiveFrom == sorted[index - 1].effectiveFrom {
        throw TariffError(.duplicateEffectiveDate(category: category.code, date: sorted[index].effectiveFrom))
      }
      byCategory[category] = sorted
    }
    self.byCategory = byCategory
  }

  /// The versions of `category`, oldest first.
  public func versions(for category: CustomerCategory) -> [TariffVersion] {
    byCategory[category] ?? []
  }

  /// The version of `category` in force on `date`: the latest with `effectiveFrom ≤ date`.
  public func version(for category: CustomerCategory, on date: CivilDate) -> TariffVersion? {
    versions(for: category).last { $0.effectiveFrom <= date }
  }

  /// The first effective date of a version of `category` after `date`.
  public func nextChange(for category: CustomerCategory, after date: CivilDate) -> CivilDate? {
    versions(for: category).first { $0.effectiveFrom > date }?.effectiveFrom
  }
}

/// A tariff definition that cannot be used.
public struct TariffError: Error, CustomStringConvertible, Equatable, Sendable {
  fileprivate enum Kind: Equatable, Sendable {
    case emptyID
    case negativePrice(String)
    case emptyDaySchedule
    case switchesNotIncreasing(minuteOfDay: Int)
    case monthOutOfRange(Int)
    case monthInTwoSeasons(Int)
    case monthInNoSeason(Int)
    case resetDayOutOfRange(Int)
    case noTierBlocks
    case tierBoundsNotIncreasing(tier: Int)
    case lastTierBounded
    case unboundedTierNotLast(tier: Int)
    case duplicateID(String)
    case duplicateEffectiveDate(category: String, date: CivilDate)
  }

  fileprivate let kind: Kind

  fileprivate init(_ kind: Kind) { self.kind = kind }

  /// A stable identifier of the kind of problem, for results sent to HQ.
  public var code: String {
    switch kind {
    case .emptyID: return "empty-id"
    case .negativePrice: return "negative-price"
    case .emptyDaySchedule: return "empty-day-schedule"
    case .switchesNotIncreasing: return "switches-not-increasing"
    case .monthOutOfRange: return "month-out-of-range"
    case .monthInTwoSeasons: return "month-in-two-seasons"
    case .monthInNoSeason: return "month-in-no-season"
    case .resetDayOutOfRange: return "reset-day-out-of-range"
    case .noTierBlocks: return "no-tier-blocks"
    case .tierBoundsNotIncreasing: return "tier-bounds-not-increasing"
    case .lastTierBounded: return "last-tier-bounded"
    case .unboundedTierNotLast: return "unbounded-tier-not-last"
    case .duplicateID: return "duplicate-id"
    case .duplicateEffectiveDate: return "duplicate-effective-date"
    }
  }

  public var description: String {
    switch kind {
    case .emptyID:
      return "tariff version id is empty"
    case .negativePrice(let what):
      return "negative " + what
    case .emptyDaySchedule:
      return "day schedule has no period switch"
    case .switchesNotIncreasing(let minute):
      return "period switch at " + padded(UInt64(minute / 60), width: 2) + ":"
        + padded(UInt64(minute % 60), width: 2) + " is not after the previous one"
    case .monthOutOfRange(let month):
      return "month " + String(month) + " is not 1...12"
    case .monthInTwoSeasons(let month):
      return "month " + String(month) + " is in two seasons"
    case .monthInNoSeason(let month):
      return "month " + String(month) + " is in no season"
    case .resetDayOutOfRange(let day):
      return "tier reset day " + String(day) + " is not 1...28"
    case .noTierBlocks:
      return "tier schedule has no block"
    case .tierBoundsNotIncreasing(let tier):
      return "tier " + String(tier) + " upper bound is not above the previous one"
    case .lastTierBounded:
      return "the last tier must be unbounded"
    case .unboundedTierNotLast(let tier):
      return "tier " + String(tier) + " is unbounded but not the last"
    case .duplicateID(let id):
      return "tariff version id '" + id + "' used twice"
    case .duplicateEffectiveDate(let category, let date):
      return "two '" + category + "' tariff versions take effect on " + date.isoText
    }
  }
}

import Foundation

@testable import GridEdgeCore

// Helpers shared by the fee-control tests. Times are computed with Foundation's
// Gregorian calendar, independently of GridEdgeCore's CivilTime.

/// Unix seconds of a China Standard Time (UTC+8) wall-clock time, via Foundation.
func cst(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0, _ second: Int = 0)
  -> Int64
{
  var calendar = Calendar(identifier: .gregorian)
  calendar.timeZone = TimeZone(secondsFromGMT: 8 * 3600)!
  let components = DateComponents(
    year: year, month: month, day: day, hour: hour, minute: minute, second: second)
  return Int64(calendar.date(from: components)!.timeIntervalSince1970)
}

/// A valid civil date.
func day(_ year: Int64, _ month: Int, _ day: Int) -> CivilDate {
  CivilDate(year: year, month: month, day: day)!
}

func wh(_ wattHours: Int64) -> Energy { Energy(wattHours: wattHours) }

func kwh(_ kilowattHours: Int64) -> Energy { Energy(wattHours: kilowattHours * 1000) }

/// A price from its tariff-table form in 0.0001 CNY/kWh: `price(5380)` is 0.5380 CNY/kWh.
func price(_ tenThousandths: Int64) -> Price { Price(tenThousandthsPerKilowattHour: tenThousandths) }

func fen(_ value: Int64) -> Money { Money(fen: value) }

func switchAt(_ hour: Int, _ minute: Int, _ period: TimeOfUsePeriod) -> PeriodSwitch {
  PeriodSwitch(hour: hour, minute: minute, period: period)!
}

/// SplitMix64: a small seeded generator, so property tests are reproducible.
struct SeededGenerator: RandomNumberGenerator {
  private var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// Published tariffs the tests are worked from.
enum PublishedTariffs {
  /// Zhejiang residential tiers, annual (China Daily, "China implements new electricity
  /// pricing system", 2012-07-02, europe.chinadaily.com.cn/business/2012-07/02/content_15542605.htm):
  /// up to 2,760 kWh a year at 0.538 CNY/kWh; 2,761–4,800 kWh 50 CNY more per 1,000 kWh
  /// (+0.05); above 4,800 kWh 300 CNY more per 1,000 kWh (+0.30). Settlement on January 1.
  static func zhejiangResidentialTiers(
    resetMonth: Int = 1, resetDay: Int = 1, effectiveFrom: CivilDate = day(2012, 7, 1), id: String = "ZJ-RES"
  ) -> TariffVersion {
    try! TariffVersion(
      id: id, category: .residential, effectiveFrom: effectiveFrom, pricing: .flat(price(5380)),
      tiers: TierSchedule(
        cycle: .annual(resetMonth: resetMonth, resetDay: resetDay),
        blocks: [
          TierBlock(upTo: kwh(2760), increment: price(0)),
          TierBlock(upTo: kwh(4800), increment: price(500)),
          TierBlock(upTo: nil, increment: price(3000)),
        ]))
  }

  /// Beijing residential tiers, monthly (same article, and China Daily 2012-06-12):
  /// up to 240 kWh a month at 0.4883 CNY/kWh; 241–400 kWh +0.05; above 400 kWh +0.30.
  static let beijingMonthlyBlocks: [TierBlock] = [
    TierBlock(upTo: kwh(240), increment: price(0)),
    TierBlock(upTo: kwh(400), increment: price(500)),
    TierBlock(upTo: nil, increment: price(3000)),
  ]

  /// A day of time-of-use periods as the climatescorecard.org article "Time-of-Use
  /// Electricity Price Plan" (2019-02) gives the usual Chinese peak and valley hours:
  /// peak 08:30–11:30 and 18:00–23:00, valley 23:00–07:00 (across midnight), flat
  /// otherwise. Sharp is not used in this schedule.
  static let peakValleyDay = try! DaySchedule([
    switchAt(7, 0, .flat),
    switchAt(8, 30, .peak),
    switchAt(11, 30, .flat),
    switchAt(18, 0, .peak),
    switchAt(23, 0, .valley),
  ])

  /// Shenzhen commercial time-of-use prices, 1–10 kV, 250 kWh and below (Shenzhen
  /// investment office, "Cost of Electricity", effective 2005-06-01,
  /// www.szinvest.gov.cn/info/3.htm): peak 1.1046, average (flat) 0.8246, valley
  /// 0.4746 CNY/kWh. Sharp is priced as peak.
  static let shenzhenCommercialPrices = PeriodPrices(
    sharp: price(11046), peak: price(11046), flat: price(8246), valley: price(4746))

  /// Shenzhen commercial prices with the peak/valley day all year, not tiered.
  static func shenzhenTimeOfUse(category: CustomerCategory = .commercial) -> TariffVersion {
    try! TariffVersion(
      id: "SZ-COM-TOU", category: category, effectiveFrom: day(2005, 6, 1),
      pricing: .timeOfUse(TimeOfUseSchedule(allYear: peakValleyDay), shenzhenCommercialPrices))
  }
}

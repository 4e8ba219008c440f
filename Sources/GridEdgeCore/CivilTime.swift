/// Civil (calendar) time with a fixed UTC offset: what the fee rules see of the clock.
///
/// China uses one offset all year (UTC+8, no daylight saving time), so a fixed
/// offset in seconds is all a device needs. Every conversion here is total: any
/// `Int64` unix time, negative ones included, gives a date and time without
/// trapping. The proleptic Gregorian calendar is used throughout.

/// A fixed offset from UTC, in seconds east of Greenwich.
public struct UTCOffset: Hashable, Sendable {
  /// Seconds east of UTC (China: 28,800).
  public let seconds: Int64

  /// The largest offset accepted either way: 18 hours (the ISO 8601 / RFC 3339 range).
  public static let maximumSeconds: Int64 = 18 * 3600

  /// China Standard Time, UTC+8.
  public static let china = UTCOffset(unchecked: 8 * 3600)

  /// UTC itself.
  public static let utc = UTCOffset(unchecked: 0)

  /// An offset of `seconds` east of UTC.
  /// - Returns: nil when `seconds` is beyond ±18 hours.
  public init?(seconds: Int64) {
    guard seconds >= -UTCOffset.maximumSeconds, seconds <= UTCOffset.maximumSeconds else { return nil }
    self.seconds = seconds
  }

  private init(unchecked seconds: Int64) { self.seconds = seconds }

  /// The local date and time at unix time `unixSeconds`.
  public func localDateTime(fromUnix unixSeconds: Int64) -> LocalDateTime {
    // Split first, then add the offset, so nothing overflows near Int64's ends.
    var days = floorDivide(unixSeconds, by: 86_400)
    var secondOfDay = floorModulo(unixSeconds, by: 86_400) + seconds
    if secondOfDay < 0 {
      secondOfDay += 86_400
      days -= 1
    } else if secondOfDay >= 86_400 {
      secondOfDay -= 86_400
      days += 1
    }
    return LocalDateTime(date: CivilDate(daysSinceEpoch: days), secondOfDay: Int(secondOfDay))
  }

  /// The unix time of the local date and time `local`.
  ///
  /// Saturates at `Int64.min` / `Int64.max` for the few local times (in the year
  /// ±292 billion) that have no unix time in 64 bits.
  public func unixSeconds(of local: LocalDateTime) -> Int64 {
    // days × 86,400 + (secondOfDay − offset), arranged so that no intermediate
    // value leaves Int64 when the result does not: the day count absorbs whole
    // days of the seconds, and a negative day count is multiplied one day closer
    // to zero.
    let secondsIntoDay = Int64(local.secondOfDay) - seconds
    let days = local.date.daysSinceEpoch + floorDivide(secondsIntoDay, by: 86_400)
    let rest = floorModulo(secondsIntoDay, by: 86_400)  // 0..<86,400
    let (dayStart, overflow) =
      days >= 0
      ? days.multipliedReportingOverflow(by: 86_400) : (days + 1).multipliedReportingOverflow(by: 86_400)
    guard !overflow else { return days < 0 ? Int64.min : Int64.max }
    let (result, overflow2) = dayStart.addingReportingOverflow(days >= 0 ? rest : rest - 86_400)
    guard !overflow2 else { return days < 0 ? Int64.min : Int64.max }
    return result
  }

  /// The unix time of local midnight at the start of `date`.
  public func unixSeconds(startOf date: CivilDate) -> Int64 {
    unixSeconds(of: LocalDateTime(date: date, secondOfDay: 0))
  }
}

/// A day of the week, numbered as ISO 8601 does (Monday = 1 … Sunday = 7).
public enum Weekday: Int, CaseIterable, Hashable, Sendable {
  case monday = 1
  case tuesday
  case wednesday
  case thursday
  case friday
  case saturday
  case sunday

  /// True for Saturday and Sunday.
  public var isWeekend: Bool { self == .saturday || self == .sunday }
}

/// A calendar date (proleptic Gregorian), without a time or an offset.
public struct CivilDate: Hashable, Comparable, Sendable {
  /// The year, astronomical numbering (year 0 is 1 BC). 64-bit so that every unix
  /// time has a date even on 32-bit ARM.
  public let year: Int64
  /// 1…12.
  public let month: Int
  /// 1…31, valid for the month.
  public let day: Int

  /// The years a date may be built for: enough for every 64-bit unix time.
  public static let supportedYears: ClosedRange<Int64> = -300_000_000_000...300_000_000_000

  /// The date `year`-`month`-`day`.
  /// - Returns: nil when the month is not 1…12, the day does not exist in that
  ///   month (2027-02-29), or the year is outside `supportedYears`.
  public init?(year: Int64, month: Int, day: Int) {
    guard CivilDate.supportedYears.contains(year), month >= 1, month <= 12, day >= 1,
      day <= CivilDate.daysIn(month: month, year: year)
    else { return nil }
    self.year = year
    self.month = month
    self.day = day
  }

  /// The day numbers a date is built for: every 64-bit unix time falls in it.
  public static let supportedDays: ClosedRange<Int64> = -109_000_000_000_000...109_000_000_000_000

  /// The date `daysSinceEpoch` days after 1970-01-01 (negative: before it),
  /// clamped to `supportedDays`.
  public init(daysSinceEpoch: Int64) {
    let days = min(
      max(daysSinceEpoch, CivilDate.supportedDays.lowerBound), CivilDate.supportedDays.upperBound)
    // Count from 0000-03-01, so that the leap day is the last day of a
    // (March-based) year, in 400-year eras of 146,097 days.
    let shifted = days + 719_468
    let era = floorDivide(shifted, by: 146_097)
    let dayOfEra = shifted - era * 146_097  // 0…146,096
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365  // 0…399
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)  // 0…365, from March 1
    let marchBasedMonth = (5 * dayOfYear + 2) / 153  // 0 = March … 11 = February
    let day = dayOfYear - (153 * marchBasedMonth + 2) / 5 + 1
    let month = marchBasedMonth < 10 ? marchBasedMonth + 3 : marchBasedMonth - 9
    self.year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    self.month = Int(month)
    self.day = Int(day)
  }

  /// Days from 1970-01-01 to this date (negative before it).
  public var daysSinceEpoch: Int64 {
    let marchBasedYear = year - (month <= 2 ? 1 : 0)
    let era = floorDivide(marchBasedYear, by: 400)
    let yearOfEra = marchBasedYear - era * 400  // 0…399
    let marchBasedMonth = Int64(month > 2 ? month - 3 : month + 9)  // 0 = March
    let dayOfYear = (153 * marchBasedMonth + 2) / 5 + Int64(day) - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
  }

  /// The day of the week.
  public var weekday: Weekday {
    // 1970-01-01 was a Thursday (ISO 4).
    Weekday(rawValue: Int(floorModulo(daysSinceEpoch + 3, by: 7)) + 1)!
  }

  /// The date `days` days later (earlier when negative), clamped to `supportedDays`.
  public func adding(days: Int64) -> CivilDate {
    let (sum, overflow) = daysSinceEpoch.addingReportingOverflow(days)
    return CivilDate(daysSinceEpoch: overflow ? (days < 0 ? Int64.min : Int64.max) : sum)
  }

  /// Days from `self` to `other` (positive when `other` is later).
  public func days(to other: CivilDate) -> Int64 {
    other.daysSinceEpoch - daysSinceEpoch
  }

  /// `YYYY-MM-DD` (ISO 8601; years outside 0…9999 get a sign and more digits).
  public var isoText: String {
    var text = ""
    if year < 0 {
      text = "-" + padded(year.magnitude, width: 4)
    } else if year > 9999 {
      text = "+" + padded(year.magnitude, width: 4)
    } else {
      text = padded(year.magnitude, width: 4)
    }
    return text + "-" + padded(UInt64(month), width: 2) + "-" + padded(UInt64(day), width: 2)
  }

  /// True when `year` has a February 29.
  public static func isLeapYear(_ year: Int64) -> Bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
  }

  /// The number of days in `month` (1…12) of `year`; 0 for a month outside 1…12.
  public static func daysIn(month: Int, year: Int64) -> Int {
    switch month {
    case 1, 3, 5, 7, 8, 10, 12: return 31
    case 4, 6, 9, 11: return 30
    case 2: return isLeapYear(year) ? 29 : 28
    default: return 0
    }
  }

  public static func < (a: CivilDate, b: CivilDate) -> Bool {
    if a.year != b.year { return a.year < b.year }
    if a.month != b.month { return a.month < b.month }
    return a.day < b.day
  }

  /// Internal: a date known to be valid (callers computed it from a valid one).
  init(validYear year: Int64, month: Int, day: Int) {
    self.year = year
    self.month = month
    self.day = day
  }
}

/// A local date and time of day, to the second, without an offset.
public struct LocalDateTime: Hashable, Comparable, Sendable {
  public let date: CivilDate
  /// Seconds since local midnight, 0…86,399.
  public let secondOfDay: Int

  /// `date` at `hour`:`minute`:`second`.
  /// - Returns: nil when a field is out of range (leap seconds are not represented).
  public init?(date: CivilDate, hour: Int, minute: Int, second: Int = 0) {
    guard hour >= 0, hour < 24, minute >= 0, minute < 60, second >= 0, second < 60 else { return nil }
    self.date = date
    self.secondOfDay = hour * 3600 + minute * 60 + second
  }

  /// Internal: `secondOfDay` known to be in 0..<86,400.
  init(date: CivilDate, secondOfDay: Int) {
    self.date = date
    self.secondOfDay = secondOfDay
  }

  /// 0…23.
  public var hour: Int { secondOfDay / 3600 }
  /// 0…59.
  public var minute: Int { secondOfDay / 60 % 60 }
  /// 0…59.
  public var second: Int { secondOfDay % 60 }
  /// Minutes since local midnight, 0…1439.
  public var minuteOfDay: Int { secondOfDay / 60 }
  /// The day of the week of `date`.
  public var weekday: Weekday { date.weekday }

  /// `YYYY-MM-DDThh:mm:ss` (local, no offset).
  public var isoText: String {
    date.isoText + "T" + padded(UInt64(hour), width: 2) + ":" + padded(UInt64(minute), width: 2) + ":"
      + padded(UInt64(second), width: 2)
  }

  public static func < (a: LocalDateTime, b: LocalDateTime) -> Bool {
    a.date != b.date ? a.date < b.date : a.secondOfDay < b.secondOfDay
  }
}

/// ⌊a / b⌋ for b > 0 (Swift's `/` truncates toward zero).
func floorDivide(_ a: Int64, by b: Int64) -> Int64 {
  let quotient = a / b
  return (a % b != 0 && a < 0) ? quotient - 1 : quotient
}

/// a mod b in 0..<b for b > 0.
func floorModulo(_ a: Int64, by b: Int64) -> Int64 {
  let remainder = a % b
  return remainder < 0 ? remainder + b : remainder
}

/// `value` in decimal, left-padded with zeros to `width` digits.
func padded(_ value: UInt64, width: Int) -> String {
  let digits = String(value)
  return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

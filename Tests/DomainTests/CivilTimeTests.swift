import Foundation
import Testing

@testable import GridEdgeCore

@Suite struct CivilTimeTests {
  let china = UTCOffset.china

  @Test func unixEpochIsEightInTheMorningOfAThursdayInChina() {
    let local = china.localDateTime(fromUnix: 0)
    #expect(local.date == day(1970, 1, 1))
    #expect(local.hour == 8 && local.minute == 0 && local.second == 0)
    #expect(local.weekday == .thursday)
    #expect(local.isoText == "1970-01-01T08:00:00")
  }

  @Test func leapDayOf2028ExistsAndConvertsBothWays() {
    let leapDay = day(2028, 2, 29)
    #expect(leapDay.weekday == .tuesday)
    #expect(leapDay.daysSinceEpoch == 21_243)
    #expect(china.unixSeconds(startOf: leapDay) == cst(2028, 2, 29))
    #expect(leapDay.adding(days: 1) == day(2028, 3, 1))
    #expect(day(2028, 3, 1).adding(days: -1) == leapDay)
    let lastSecond = china.localDateTime(fromUnix: cst(2028, 2, 29, 23, 59, 59))
    #expect(lastSecond.date == leapDay && lastSecond.secondOfDay == 86_399)
    #expect(china.localDateTime(fromUnix: cst(2028, 3, 1)).date == day(2028, 3, 1))
  }

  @Test func februaryTwentyNinthIsRejectedInCommonYearsAndCenturies() {
    #expect(CivilDate(year: 2027, month: 2, day: 29) == nil)
    #expect(CivilDate(year: 2100, month: 2, day: 29) == nil)
    #expect(CivilDate(year: 2000, month: 2, day: 29) != nil)
    #expect(CivilDate(year: 2028, month: 4, day: 31) == nil)
    #expect(CivilDate(year: 2028, month: 13, day: 1) == nil)
    #expect(CivilDate(year: 2028, month: 0, day: 1) == nil)
    #expect(CivilDate(year: 2028, month: 1, day: 0) == nil)
    #expect(CivilDate.isLeapYear(2028) && !CivilDate.isLeapYear(2100) && CivilDate.isLeapYear(2000))
  }

  @Test func theLastSecondOfAYearIsFollowedByTheNewYear() {
    let last = china.localDateTime(fromUnix: cst(2024, 12, 31, 23, 59, 59))
    #expect(last.isoText == "2024-12-31T23:59:59")
    let next = china.localDateTime(fromUnix: cst(2024, 12, 31, 23, 59, 59) + 1)
    #expect(next.isoText == "2025-01-01T00:00:00")
    #expect(next.weekday == .wednesday)
  }

  @Test func monthEndsRollOverToTheFirstOfTheNextMonth() {
    let ends: [(CivilDate, CivilDate)] = [
      (day(2028, 1, 31), day(2028, 2, 1)), (day(2027, 2, 28), day(2027, 3, 1)),
      (day(2028, 4, 30), day(2028, 5, 1)), (day(2028, 12, 31), day(2029, 1, 1)),
    ]
    for (end, first) in ends {
      #expect(end.adding(days: 1) == first)
      #expect(end.days(to: first) == 1)
      #expect(china.unixSeconds(startOf: first) - china.unixSeconds(startOf: end) == 86_400)
    }
  }

  @Test func theOffsetMovesTheDateAtLocalMidnight() {
    // 16:00 UTC is midnight in China.
    let utcAfternoon = cst(2025, 1, 1, 23, 59, 59)  // 2025-01-01T15:59:59Z
    #expect(UTCOffset.utc.localDateTime(fromUnix: utcAfternoon).date == day(2025, 1, 1))
    #expect(china.localDateTime(fromUnix: utcAfternoon).isoText == "2025-01-01T23:59:59")
    #expect(china.localDateTime(fromUnix: utcAfternoon + 1).isoText == "2025-01-02T00:00:00")
    let west = UTCOffset(seconds: -5 * 3600)!
    #expect(west.localDateTime(fromUnix: 0).isoText == "1969-12-31T19:00:00")
  }

  @Test func negativeUnixTimesGiveDatesBefore1970() {
    #expect(UTCOffset.utc.localDateTime(fromUnix: -1).isoText == "1969-12-31T23:59:59")
    #expect(china.localDateTime(fromUnix: -1).isoText == "1970-01-01T07:59:59")
    #expect(china.localDateTime(fromUnix: -3_155_760_001).isoText == "1869-12-31T07:59:59")
    #expect(day(1969, 12, 31).daysSinceEpoch == -1)
    #expect(day(1969, 12, 31).weekday == .wednesday)
    #expect(CivilDate(daysSinceEpoch: -719_528) == day(0, 1, 1))
  }

  @Test func extremeUnixTimesDoNotTrap() {
    for value in [Int64.min, Int64.min + 1, Int64.max, Int64.max - 1] {
      for offset in [UTCOffset.china, UTCOffset(seconds: -18 * 3600)!, .utc] {
        let local = offset.localDateTime(fromUnix: value)
        #expect(local.secondOfDay >= 0 && local.secondOfDay < 86_400)
        #expect(offset.unixSeconds(of: local) == value)
      }
    }
    #expect(day(2028, 1, 1).adding(days: Int64.max).daysSinceEpoch == CivilDate.supportedDays.upperBound)
    #expect(day(2028, 1, 1).adding(days: Int64.min).daysSinceEpoch == CivilDate.supportedDays.lowerBound)
  }

  @Test func offsetsBeyondEighteenHoursAreRejected() {
    #expect(UTCOffset(seconds: 18 * 3600) != nil)
    #expect(UTCOffset(seconds: 18 * 3600 + 1) == nil)
    #expect(UTCOffset(seconds: -18 * 3600 - 1) == nil)
  }

  @Test func localDateTimeRejectsOutOfRangeFields() {
    #expect(LocalDateTime(date: day(2028, 1, 1), hour: 24, minute: 0) == nil)
    #expect(LocalDateTime(date: day(2028, 1, 1), hour: 23, minute: 60) == nil)
    #expect(LocalDateTime(date: day(2028, 1, 1), hour: 23, minute: 59, second: 60) == nil)
    #expect(LocalDateTime(date: day(2028, 1, 1), hour: -1, minute: 0) == nil)
    let time = LocalDateTime(date: day(2028, 1, 1), hour: 23, minute: 59, second: 59)!
    #expect(time.secondOfDay == 86_399 && time.minuteOfDay == 1439)
  }

  @Test func everyDayFrom1900To2100FollowsThePreviousOne() {
    // Walks day numbers and checks each date is the calendar successor of the last.
    var previous = CivilDate(daysSinceEpoch: day(1900, 1, 1).daysSinceEpoch)
    #expect(previous == day(1900, 1, 1))
    var weekday = previous.weekday
    for number in (day(1900, 1, 1).daysSinceEpoch + 1)...day(2100, 12, 31).daysSinceEpoch {
      let date = CivilDate(daysSinceEpoch: number)
      let expected: CivilDate =
        previous.day < CivilDate.daysIn(month: previous.month, year: previous.year)
        ? day(previous.year, previous.month, previous.day + 1)
        : (previous.month < 12 ? day(previous.year, previous.month + 1, 1) : day(previous.year + 1, 1, 1))
      guard date == expected, date.daysSinceEpoch == number else {
        Issue.record("day \(number): got \(date.isoText), expected \(expected.isoText)")
        return
      }
      let nextWeekday = Weekday(rawValue: weekday.rawValue % 7 + 1)!
      guard date.weekday == nextWeekday else {
        Issue.record("day \(number): weekday \(date.weekday) after \(weekday)")
        return
      }
      previous = date
      weekday = nextWeekday
    }
  }

  @Test func conversionsAgreeWithFoundationForRandomTimes() {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(secondsFromGMT: 8 * 3600)!
    var generator = SeededGenerator(seed: 0x5EED_CA1E)
    // 1600…2400: Foundation's Gregorian calendar switches to Julian before 1582.
    let range = cst(1600, 1, 1)...cst(2400, 1, 1)
    for _ in 0..<2000 {
      let unix = Int64.random(in: range, using: &generator)
      let parts = calendar.dateComponents(
        [.year, .month, .day, .hour, .minute, .second, .weekday],
        from: Date(timeIntervalSince1970: TimeInterval(unix)))
      let local = china.localDateTime(fromUnix: unix)
      #expect(local.date.year == Int64(parts.year!) && local.date.month == parts.month!)
      #expect(local.date.day == parts.day! && local.hour == parts.hour! && local.minute == parts.minute!)
      #expect(local.second == parts.second!)
      // Foundation: Sunday = 1 … Saturday = 7; ISO: Monday = 1 … Sunday = 7.
      #expect(local.weekday.rawValue == (parts.weekday! + 5) % 7 + 1)
      #expect(china.unixSeconds(of: local) == unix)
    }
  }

  @Test func isoTextPadsYearsMonthsAndDays() {
    #expect(day(2028, 2, 9).isoText == "2028-02-09")
    #expect(day(5, 1, 1).isoText == "0005-01-01")
    #expect(day(-1, 1, 1).isoText == "-0001-01-01")
    #expect(day(10_000, 1, 1).isoText == "+10000-01-01")
  }
}

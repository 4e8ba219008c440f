/// Checks `value` against `range`, naming `field` in the error.
func checkRange(_ field: String, _ value: Int, _ range: ClosedRange<Int>) throws(ValueError) {
  guard range.contains(value) else {
    throw ValueError(.outOfRange(field: field, value: value, range: range))
  }
}

/// Days in `month` (1–12) of `year` (Gregorian; every year 2000–2099 divisible by 4 is
/// a leap year, and 2000 is one too).
func daysIn(month: Int, year: Int) -> Int {
  switch month {
  case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
  case 4, 6, 9, 11: return 30
  default: return 31
  }
}

/// Checks a calendar date; the year is the full year 2000–2099 (meters send YY).
func checkDate(year: Int, month: Int, day: Int) throws(ValueError) {
  try checkRange("year", year, 2000...2099)
  try checkRange("month", month, 1...12)
  try checkRange("day", day, 1...daysIn(month: month, year: year))
}

/// Decodes BCD date/time bytes, each 00–99, naming `format` in errors.
func decodeBCDFields(_ bytes: ArraySlice<UInt8>, count: Int, format: String) throws(ValueError) -> [Int] {
  guard bytes.count == count else {
    throw ValueError(.wrongLength(format: format, expected: String(count) + " bytes", actual: bytes.count))
  }
  var out: [Int] = []
  out.reserveCapacity(count)
  for (i, byte) in bytes.enumerated() {
    guard let value = BCD.decodeByte(byte) else {
      throw ValueError(.notBCD(format: format, index: i, byte: byte))
    }
    out.append(value)
  }
  return out
}

/// Two-digit text with a leading zero.
func twoDigits(_ value: Int) -> String { value < 10 ? "0" + String(value) : String(value) }

/// A date and time to the second, as DL/T 645 sends it in broadcast time (0x08) and
/// as a control command's valid-until time: ssmmhhDDMMYY, seconds first on the wire.
public struct MeterDateTime: Hashable, Sendable, CustomStringConvertible {
  /// Full year, 2000–2099 (the wire carries YY).
  public let year: Int
  /// 1–12.
  public let month: Int
  /// 1–28/29/30/31.
  public let day: Int
  /// 0–23.
  public let hour: Int
  /// 0–59.
  public let minute: Int
  /// 0–59.
  public let second: Int

  /// A date and time.
  /// - Throws: `ValueError` (`outOfRange`) when a field is outside its range (the day
  ///   is checked against the month, leap years included).
  public init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) throws(ValueError) {
    try checkDate(year: year, month: month, day: day)
    try checkRange("hour", hour, 0...23)
    try checkRange("minute", minute, 0...59)
    try checkRange("second", second, 0...59)
    self.year = year
    self.month = month
    self.day = day
    self.hour = hour
    self.minute = minute
    self.second = second
  }

  /// Decodes the six plain bytes ss mm hh DD MM YY.
  /// - Throws: `ValueError` for a wrong length, a non-BCD byte or a field out of range.
  public init(plainBytes: ArraySlice<UInt8>) throws(ValueError) {
    let f = try decodeBCDFields(plainBytes, count: 6, format: "ssmmhhDDMMYY")
    try self.init(year: 2000 + f[5], month: f[4], day: f[3], hour: f[2], minute: f[1], second: f[0])
  }

  /// The six plain bytes ss mm hh DD MM YY.
  public var plainBytes: [UInt8] {
    [second, minute, hour, day, month, year - 2000].map { BCD.encodeByte($0) }
  }

  /// "2024-05-16 09:14:20".
  public var description: String {
    String(year) + "-" + twoDigits(month) + "-" + twoDigits(day) + " " + twoDigits(hour) + ":"
      + twoDigits(minute) + ":" + twoDigits(second)
  }
}

/// The meter's date with its day of the week (04 00 01 01, YYMMDDWW: WW DD MM YY on
/// the wire).
public struct MeterDate: Hashable, Sendable, CustomStringConvertible {
  /// Full year, 2000–2099.
  public let year: Int
  /// 1–12.
  public let month: Int
  /// 1–28/29/30/31.
  public let day: Int
  /// 0 = Sunday, 1 = Monday … 6 = Saturday, as the meter keeps it (not checked
  /// against the date).
  public let weekday: Int

  /// A date.
  /// - Throws: `ValueError` (`outOfRange`) when a field is outside its range.
  public init(year: Int, month: Int, day: Int, weekday: Int) throws(ValueError) {
    try checkDate(year: year, month: month, day: day)
    try checkRange("weekday", weekday, 0...6)
    self.year = year
    self.month = month
    self.day = day
    self.weekday = weekday
  }

  /// Decodes the four plain bytes WW DD MM YY.
  /// - Throws: `ValueError` for a wrong length, a non-BCD byte or a field out of range.
  public init(plainBytes: ArraySlice<UInt8>) throws(ValueError) {
    let f = try decodeBCDFields(plainBytes, count: 4, format: "YYMMDDWW")
    try self.init(year: 2000 + f[3], month: f[2], day: f[1], weekday: f[0])
  }

  /// The four plain bytes WW DD MM YY.
  public var plainBytes: [UInt8] { [weekday, day, month, year - 2000].map { BCD.encodeByte($0) } }

  /// "2024-05-16 (4)": the date and the weekday number.
  public var description: String {
    String(year) + "-" + twoDigits(month) + "-" + twoDigits(day) + " (" + String(weekday) + ")"
  }
}

/// The meter's time of day (04 00 01 02, hhmmss: ss mm hh on the wire).
public struct MeterTime: Hashable, Sendable, CustomStringConvertible {
  /// 0–23.
  public let hour: Int
  /// 0–59.
  public let minute: Int
  /// 0–59.
  public let second: Int

  /// A time of day.
  /// - Throws: `ValueError` (`outOfRange`) when a field is outside its range.
  public init(hour: Int, minute: Int, second: Int) throws(ValueError) {
    try checkRange("hour", hour, 0...23)
    try checkRange("minute", minute, 0...59)
    try checkRange("second", second, 0...59)
    self.hour = hour
    self.minute = minute
    self.second = second
  }

  /// Decodes the three plain bytes ss mm hh.
  /// - Throws: `ValueError` for a wrong length, a non-BCD byte or a field out of range.
  public init(plainBytes: ArraySlice<UInt8>) throws(ValueError) {
    let f = try decodeBCDFields(plainBytes, count: 3, format: "hhmmss")
    try self.init(hour: f[2], minute: f[1], second: f[0])
  }

  /// The three plain bytes ss mm hh.
  public var plainBytes: [UInt8] { [second, minute, hour].map { BCD.encodeByte($0) } }

  /// "09:14:20".
  public var description: String {
    twoDigits(hour) + ":" + twoDigits(minute) + ":" + twoDigits(second)
  }
}

/// A time to the minute, as freeze records carry it (05 06 00 01, YYMMDDhhmm:
/// mm hh DD MM YY on the wire).
public struct MeterTimestamp: Hashable, Sendable, CustomStringConvertible {
  /// Full year, 2000–2099.
  public let year: Int
  /// 1–12.
  public let month: Int
  /// 1–28/29/30/31.
  public let day: Int
  /// 0–23.
  public let hour: Int
  /// 0–59.
  public let minute: Int

  /// A timestamp.
  /// - Throws: `ValueError` (`outOfRange`) when a field is outside its range.
  public init(year: Int, month: Int, day: Int, hour: Int, minute: Int) throws(ValueError) {
    try checkDate(year: year, month: month, day: day)
    try checkRange("hour", hour, 0...23)
    try checkRange("minute", minute, 0...59)
    self.year = year
    self.month = month
    self.day = day
    self.hour = hour
    self.minute = minute
  }

  /// Decodes the five plain bytes mm hh DD MM YY.
  /// - Throws: `ValueError` for a wrong length, a non-BCD byte or a field out of range.
  public init(plainBytes: ArraySlice<UInt8>) throws(ValueError) {
    let f = try decodeBCDFields(plainBytes, count: 5, format: "YYMMDDhhmm")
    try self.init(year: 2000 + f[4], month: f[3], day: f[2], hour: f[1], minute: f[0])
  }

  /// The five plain bytes mm hh DD MM YY.
  public var plainBytes: [UInt8] { [minute, hour, day, month, year - 2000].map { BCD.encodeByte($0) } }

  /// "2024-05-16 00:00".
  public var description: String {
    String(year) + "-" + twoDigits(month) + "-" + twoDigits(day) + " " + twoDigits(hour) + ":"
      + twoDigits(minute)
  }
}

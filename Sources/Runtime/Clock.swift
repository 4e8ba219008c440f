import CLibc

/// Wall and monotonic time in milliseconds.
///
/// The agent takes a clock as a generic parameter so that tests can drive time
/// (`ManualClock`); field code uses `SystemClock`.
public protocol Clock: AnyObject {
  /// Milliseconds since the Unix epoch (may jump when the board's clock is set).
  var wallMilliseconds: Int64 { get }
  /// Milliseconds on a clock that never jumps (for timeouts and backoff).
  var monotonicMilliseconds: Int64 { get }
}

/// `clock_gettime(CLOCK_REALTIME / CLOCK_MONOTONIC)`.
public final class SystemClock: Clock {
  public init() {}

  public var wallMilliseconds: Int64 { Self.read(CLOCK_REALTIME) }
  public var monotonicMilliseconds: Int64 { Self.read(CLOCK_MONOTONIC) }

  private static func read(_ id: clockid_t) -> Int64 {
    var ts = timespec()
    clock_gettime(id, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
  }
}

/// A clock that moves only when told to.
public final class ManualClock: Clock {
  public var wallMilliseconds: Int64
  public var monotonicMilliseconds: Int64

  public init(wallMilliseconds: Int64 = 1_767_225_600_000, monotonicMilliseconds: Int64 = 0) {
    self.wallMilliseconds = wallMilliseconds
    self.monotonicMilliseconds = monotonicMilliseconds
  }

  /// Moves both clocks forward by `milliseconds`.
  public func advance(_ milliseconds: Int64) {
    wallMilliseconds += milliseconds
    monotonicMilliseconds += milliseconds
  }
}

/// `2026-11-22T08:55:01Z` for a wall time in milliseconds since the Unix epoch.
public func formatUTC(milliseconds: Int64) -> String {
  var seconds = time_t(milliseconds / 1000)
  var parts = tm()
  gmtime_r(&seconds, &parts)
  func two(_ v: Int32) -> String { v < 10 ? "0" + String(v) : String(v) }
  return String(parts.tm_year + 1900) + "-" + two(parts.tm_mon + 1) + "-" + two(parts.tm_mday) + "T"
    + two(parts.tm_hour) + ":" + two(parts.tm_min) + ":" + two(parts.tm_sec) + "Z"
}

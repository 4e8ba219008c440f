/// Named deadlines on the monotonic clock, for a `poll(2)` loop.
///
/// No closures are stored (Embedded Swift has no weak references, and a timer
/// closure capturing its owner would keep it alive): the owner asks which timers
/// are due and acts on them itself.
public struct TimerQueue<ID: Hashable> {
  private var deadlines: [ID: Int64] = [:]

  public init() {}

  /// Sets (or moves) timer `id` to fire at `deadline` (monotonic milliseconds).
  public mutating func schedule(_ id: ID, at deadline: Int64) { deadlines[id] = deadline }

  /// Removes timer `id` if it is set.
  public mutating func cancel(_ id: ID) { deadlines[id] = nil }

  /// True when timer `id` is set.
  public func isScheduled(_ id: ID) -> Bool { deadlines[id] != nil }

  /// The deadline of timer `id`, if set.
  public func deadline(of id: ID) -> Int64? { deadlines[id] }

  /// The earliest deadline, if any timer is set.
  public var nextDeadline: Int64? { deadlines.values.min() }

  /// Removes and returns the timers due at `now`, earliest first.
  public mutating func takeDue(now: Int64) -> [ID] {
    var due: [(ID, Int64)] = []
    for (id, at) in deadlines where at <= now { due.append((id, at)) }
    due.sort { $0.1 < $1.1 }
    for (id, _) in due { deadlines[id] = nil }
    return due.map { $0.0 }
  }

  /// Milliseconds from `now` to the next deadline, at most `limit` (for `poll`).
  public func timeout(now: Int64, limit: Int64) -> Int32 {
    guard let next = nextDeadline else { return Int32(limit) }
    return Int32(max(0, min(next - now, limit)))
  }
}

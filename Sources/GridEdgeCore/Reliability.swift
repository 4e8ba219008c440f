/// Supply reliability of a transformer area (DESIGN.md §6): the interruptions the
/// device recorded, and the figures HQ's reliability indices (SAIFI, SAIDI) are
/// built from. Pure: no I/O.
///
/// Figures are for a window of time (a local day): every interruption with a part
/// in the window counts, and only that part — one that crosses midnight counts on
/// both days (`continued` says how many began before the window, so a sum over days
/// can leave them out). Planned and unplanned interruptions are counted apart.

/// One interruption of supply in an area, as the device recorded it.
public struct Interruption: Hashable, Sendable {
  /// When the loss of supply was detected, unix ms.
  public var start: Int64
  /// When supply was back, unix ms; nil while it lasts.
  public var end: Int64?
  /// Customers without supply during it.
  public var customers: Int
  /// Inside a planned outage announced by HQ.
  public var planned: Bool

  public init(start: Int64, end: Int64?, customers: Int, planned: Bool) {
    self.start = start
    self.end = end
    self.customers = customers
    self.planned = planned
  }
}

/// The reliability figures of one kind (planned or unplanned) over a window.
public struct ReliabilityFigures: Hashable, Sendable {
  /// Interruptions with a part in the window.
  public var interruptions = 0
  /// Of those, the ones that began before the window.
  public var continued = 0
  /// Of those, the ones still lasting at the window's end (or now, when earlier).
  public var ongoing = 0
  /// Σ customers × minutes without supply within the window, rounded half up once
  /// (from customer-milliseconds).
  public var customerMinutes: Int64 = 0
  /// The longest time without supply within the window of one interruption, whole
  /// seconds (rounded down).
  public var longestSeconds: Int64 = 0

  public init() {}

  /// The figures of the `planned` (or unplanned) interruptions in `from..<to`, an
  /// interruption still lasting counted up to `now` when that is earlier than `to`.
  public init(_ interruptions: [Interruption], from: Int64, to: Int64, now: Int64, planned: Bool) {
    var customerMilliseconds: Int64 = 0
    let windowEnd = min(to, max(now, from))
    for interruption in interruptions where interruption.planned == planned {
      let end = interruption.end ?? windowEnd
      let overlapStart = max(interruption.start, from)
      let overlapEnd = min(end, windowEnd)
      // An interruption that began in the window counts even when it lasted less
      // than a millisecond; one from before counts if it reaches into it.
      let begins = interruption.start >= from && interruption.start < to && interruption.start <= windowEnd
      guard begins || overlapEnd > overlapStart else { continue }
      self.interruptions += 1
      if interruption.start < from { continued += 1 }
      if interruption.end == nil || (interruption.end ?? 0) > to { ongoing += 1 }
      let duration = max(0, overlapEnd - overlapStart)
      customerMilliseconds += duration * Int64(max(0, interruption.customers))
      longestSeconds = max(longestSeconds, duration / 1000)
    }
    customerMinutes = (customerMilliseconds + 30_000) / 60_000
  }
}

/// The faults injected into one meter.
public struct MeterFaults: Hashable, Sendable {
  /// The share of the true energy the meter registers, in ‰: 1,000 for an honest
  /// meter, less for a theft bypass (500 = half the current goes around the meter).
  /// Current and power show the same share.
  public var registeredPermille: Int64 = 1_000
  /// The registers stand still while current and power still show the load.
  public var stopped = false
  /// The meter is wired backwards: the energy goes to the reverse register and
  /// current and power are negative.
  public var reverse = false
  /// The meter never answers (it still consumes, and obeys broadcast time).
  public var silent = false
  /// Clock drift in milliseconds per day (positive: the clock runs fast).
  public var driftMillisecondsPerDay: Int64 = 0
  /// Extra reply delay in milliseconds (real time).
  public var extraDelayMilliseconds: Int64 = 0
  /// The relay is bridged (a jumper across its contacts): opening it does not stop the
  /// load, and the meter goes on registering it.
  public var relayBypassed = false
  /// True time (unix ms) from which the theft, stopped and reverse faults act; before
  /// it the meter registers honestly, so its own history shows the change
  /// (`--faults-from`). `Int64.min`: from the start.
  public var activeFromMilliseconds = Int64.min

  public init() {}

  /// How the meter registers at true time `time`: the share of the true energy in ‰,
  /// whether its registers stand still, whether it is wired backwards.
  func registering(at time: Int64) -> (permille: Int64, stopped: Bool, reverse: Bool) {
    guard time >= activeFromMilliseconds else { return (1_000, false, false) }
    return (registeredPermille, stopped, reverse)
  }

  /// True when nothing is injected (whenever it would act).
  public var isNone: Bool {
    var plain = self
    plain.activeFromMilliseconds = Int64.min
    return plain == MeterFaults()
  }
}

/// Which meters a fault option names: meter numbers (1…N, the n-th address) and
/// ranges, or a share of all meters picked from the seed.
public enum MeterSelection: Hashable, Sendable {
  /// Meters `range.lowerBound` … `range.upperBound` (numbers 1…N).
  case numbers(ClosedRange<Int>)
  /// A share of the meters, in 1/100,000 (5 % = 5,000), rounded to a whole count,
  /// picked by a seeded shuffle (a different shuffle per fault kind).
  case share(perHundredThousand: Int64)

  /// The meter numbers (1…`meterCount`) selected, ascending; a share is picked by a
  /// seeded shuffle that `salt` varies (one per fault kind, another for outages).
  func meterNumbers(meterCount: Int, seed: UInt64, salt: UInt64) -> [Int] {
    switch self {
    case .numbers(let range):
      return Array(range.clamped(to: 1...max(1, meterCount)))
    case .share(let share):
      let count = Int((Int64(meterCount) * share + 50_000) / 100_000)
      guard count > 0 else { return [] }
      // A seeded Fisher–Yates shuffle of 1…N; its first `count` are chosen.
      var numbers = Array(1...meterCount)
      var random = SplitMix64(seed: mixHash(seed, 0xFA17, salt))
      var i = numbers.count - 1
      while i > 0 {
        let j = Int(random.next(below: UInt64(i + 1)))
        numbers.swapAt(i, j)
        i -= 1
      }
      return numbers[0..<min(count, meterCount)].sorted()
    }
  }
}

/// The kinds of fault an option can inject.
public enum FaultKind: UInt8, Hashable, Sendable, CaseIterable {
  /// `--theft SEL:FACTOR`: the value is the registered share in ‰.
  case theft = 1
  /// `--stopped SEL`.
  case stopped = 2
  /// `--reverse SEL`.
  case reverse = 3
  /// `--silent SEL`.
  case silent = 4
  /// `--drift SEL:SECONDS_PER_DAY`: the value is in ms per day.
  case drift = 5
  /// `--slow SEL:MS`: the value is in ms.
  case slow = 6
  /// `--relay-bypass SEL`.
  case relayBypass = 7

  /// The option that injects this fault, without `--`.
  public var optionName: String {
    switch self {
    case .theft: return "theft"
    case .stopped: return "stopped"
    case .reverse: return "reverse"
    case .silent: return "silent"
    case .drift: return "drift"
    case .slow: return "slow"
    case .relayBypass: return "relay-bypass"
    }
  }

  /// True when the option takes `SEL:VALUE` items rather than bare `SEL`.
  var takesValue: Bool {
    switch self {
    case .theft, .drift, .slow: return true
    case .stopped, .reverse, .silent, .relayBypass: return false
    }
  }
}

/// One item of a fault option: a fault, the meters it applies to, and its value
/// (see `FaultKind` for the unit; 0 for faults without a value).
public struct FaultRule: Hashable, Sendable {
  public var kind: FaultKind
  public var selection: MeterSelection
  public var value: Int64

  public init(kind: FaultKind, selection: MeterSelection, value: Int64 = 0) {
    self.kind = kind
    self.selection = selection
    self.value = value
  }

  /// The meter numbers (1…`meterCount`) this rule names, ascending.
  func meterNumbers(meterCount: Int, seed: UInt64) -> [Int] {
    selection.meterNumbers(meterCount: meterCount, seed: seed, salt: UInt64(kind.rawValue))
  }

  /// Applies this rule to `faults`.
  func apply(to faults: inout MeterFaults) {
    switch kind {
    case .theft: faults.registeredPermille = value
    case .stopped: faults.stopped = true
    case .reverse: faults.reverse = true
    case .silent: faults.silent = true
    case .drift: faults.driftMillisecondsPerDay = value
    case .slow: faults.extraDelayMilliseconds = value
    case .relayBypass: faults.relayBypassed = true
    }
  }
}

/// The faults of every customer meter (index 0 = meter number 1), after applying
/// `rules` in order (a later rule overrides an earlier one's value); the
/// registration faults act from `activeFrom` (true unix ms).
func resolveFaults(_ rules: [FaultRule], meterCount: Int, seed: UInt64, activeFrom: Int64 = Int64.min)
  -> [MeterFaults]
{
  var none = MeterFaults()
  none.activeFromMilliseconds = activeFrom
  var faults = [MeterFaults](repeating: none, count: meterCount)
  for rule in rules {
    for number in rule.meterNumbers(meterCount: meterCount, seed: seed) {
      rule.apply(to: &faults[number - 1])
    }
  }
  return faults
}

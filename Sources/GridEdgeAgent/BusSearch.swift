import DLT645

/// A search for every meter on one bus, with DL/T 645 address patterns (DESIGN.md §1):
/// a request to an address whose high digits are A (wildcard) is answered by every
/// meter whose low digits match. One answer names a meter; none prunes the branch;
/// a corrupt reply means two or more meters answered at once (a collision), so the
/// search fixes one more digit and asks the ten patterns below it. Depth first, so it
/// holds at most 10 patterns per digit (120).
///
/// For n meters with consecutive addresses it takes about 10 + 10·(patterns that
/// collide) probes: 200 meters, about 1,100 probes; most get no answer and cost a
/// reply timeout, so a search is a background job between reading cycles.
///
/// Pure: the acquisition sends the probes and feeds back the outcomes.
struct BusSearch {
  /// What one probe got.
  enum Outcome {
    /// No meter answered.
    case none
    /// One meter answered, with its full address.
    case one(Address)
    /// Replies collided (corrupt frames): more than one meter matched.
    case several
  }

  /// A pattern: the `digits` lowest decimal digits of the address are `value`'s
  /// nibbles, the others are wildcards.
  struct Pattern: Equatable {
    let value: UInt64
    let digits: Int

    var address: Address {
      let known: UInt64 = digits >= 12 ? 0xFFFF_FFFF_FFFF : (1 << UInt64(4 * digits)) - 1
      return Address(rawValue: Address.wildcard.rawValue & ~known | value)!
    }

    /// The ten patterns one digit longer.
    var children: [Pattern] {
      (0..<UInt64(10)).reversed().map { Pattern(value: value | $0 << UInt64(4 * digits), digits: digits + 1) }
    }
  }

  private var stack: [Pattern]
  /// The pattern waiting for its outcome.
  private(set) var asking: Pattern? = nil
  /// Meters found, in the order found.
  private(set) var found: [Address] = []
  /// Full addresses that still collided: two meters with the same address.
  private(set) var duplicates: [Address] = []
  private(set) var probes = 0

  init() { stack = Pattern(value: 0, digits: 0).children }

  /// True when every branch was searched.
  var isFinished: Bool { stack.isEmpty && asking == nil }

  /// The next address to probe (remembered until `record`), or nil when finished or
  /// while a probe is out.
  mutating func next() -> Address? {
    guard asking == nil, let pattern = stack.popLast() else { return nil }
    asking = pattern
    probes += 1
    return pattern.address
  }

  /// The outcome of the probe `next()` gave.
  mutating func record(_ outcome: Outcome) {
    guard let pattern = asking else { return }
    asking = nil
    switch outcome {
    case .none:
      break
    case .one(let address):
      if pattern.address.matches(address), !found.contains(address) { found.append(address) }
    case .several:
      if pattern.digits >= 12 {
        duplicates.append(pattern.address)
      } else {
        stack += pattern.children
      }
    }
  }

  /// The probe was not sent or its answer was lost (the line failed): ask it again.
  mutating func retry() {
    guard let pattern = asking else { return }
    asking = nil
    probes -= 1
    stack.append(pattern)
  }
}

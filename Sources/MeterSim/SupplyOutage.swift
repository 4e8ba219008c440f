/// A loss of supply the simulator plays (`--outage`): for a window of simulated time,
/// the meters it cuts off neither answer nor consume, and the area meter (powered
/// on, by its auxiliary supply) reports 0 V on the phases that are lost.
///
/// Customer meters' phases: a single-phase meter number n is on phase A, B, C for
/// n − 1 ≡ 0, 1, 2 (mod 3); a three-phase meter (commercial) is cut off only when all
/// three are lost (`SimulatedMeter.phase`).
public struct SupplyOutage: Hashable, Sendable {
  /// What loses supply.
  public enum Scope: Hashable, Sendable {
    /// The whole area: every phase at the transformer, every customer.
    case area
    /// Some phases at the transformer (1 = A … 3 = C), ascending: the area meter
    /// shows 0 V on them, and the customers on them lose supply.
    case phases([Int])
    /// Customer meters downstream of the area meter (a branch fuse): they lose supply,
    /// the area meter's voltages stay.
    case meters(MeterSelection)
  }

  public var scope: Scope
  /// When it starts, simulated ms after the simulation's start (`--start`).
  public var startAfterMilliseconds: Int64
  /// How long it lasts, simulated ms (> 0).
  public var durationMilliseconds: Int64

  public init(scope: Scope, startAfterMilliseconds: Int64, durationMilliseconds: Int64) {
    self.scope = scope
    self.startAfterMilliseconds = startAfterMilliseconds
    self.durationMilliseconds = durationMilliseconds
  }

  /// The phases (1…3) the area meter sees lost.
  var lostPhases: [Int] {
    switch scope {
    case .area: return [1, 2, 3]
    case .phases(let phases): return phases
    case .meters: return []
    }
  }

  /// True when customer meter `number` (on `phases`, 1…3) is cut off by this outage.
  func cutsOff(number: Int, phases: [Int], meterCount: Int, seed: UInt64) -> Bool {
    switch scope {
    case .area: return true
    case .phases(let lost): return phases.allSatisfy { lost.contains($0) }
    case .meters(let selection):
      return selection.meterNumbers(meterCount: meterCount, seed: seed, salt: 0x0A7A).contains(number)
    }
  }
}

/// `--outage TARGET@START+DURATION,...`: TARGET is `area`, phases (`A`, `B`, `C` or
/// several, `AC`) or meters (`N`, `A-B`, `P%`); START and DURATION are simulated
/// seconds (or with a unit: `90s`, `5m`, `1h`), START counted from the simulation's
/// start.
func parseOutages(_ text: String) throws(SimulatorOptionError) -> [SupplyOutage] {
  let expected =
    "TARGET@START+DURATION, TARGET area, phases (A, B, C, AB...) or meters (N, A-B, P%), times in"
    + " seconds or with s, m, h (e.g. area@120+5m)"
  var outages: [SupplyOutage] = []
  for item in text.split(separator: ",", omittingEmptySubsequences: false) {
    let parts = item.split(separator: "@", omittingEmptySubsequences: false)
    guard parts.count == 2 else {
      throw SimulatorOptionError(.invalid(option: "outage", value: String(item), expected: expected))
    }
    let times = parts[1].split(separator: "+", omittingEmptySubsequences: false)
    guard times.count == 2, let start = simulatedMilliseconds(times[0]),
      let duration = simulatedMilliseconds(times[1]), duration > 0
    else {
      throw SimulatorOptionError(.invalid(option: "outage", value: String(item), expected: expected))
    }
    let target = parts[0]
    let scope: SupplyOutage.Scope
    if target == "area" {
      scope = .area
    } else if !target.isEmpty, target.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "C") })
    {
      let phases = Set(target.utf8.map { Int($0 - UInt8(ascii: "A")) + 1 })
      guard phases.count == target.utf8.count else {
        throw SimulatorOptionError(.invalid(option: "outage", value: String(item), expected: expected))
      }
      scope = phases.count == 3 ? .area : .phases(phases.sorted())
    } else {
      scope = .meters(try parseSelection(target, option: "outage"))
    }
    outages.append(SupplyOutage(scope: scope, startAfterMilliseconds: start, durationMilliseconds: duration))
  }
  return outages
}

/// `90`, `90s`, `5m` or `2h` in ms; nil for anything else (or beyond 400 days).
private func simulatedMilliseconds(_ text: Substring) -> Int64? {
  var digits = text
  var unit: Int64 = 1_000
  if let last = text.last, last == "s" || last == "m" || last == "h" {
    digits = text.dropLast()
    unit = last == "s" ? 1_000 : last == "m" ? 60_000 : 3_600_000
  }
  guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
    digits.utf8.count <= 9, let value = Int64(digits)
  else { return nil }
  let milliseconds = value * unit
  return milliseconds <= 400 * 86_400_000 ? milliseconds : nil
}

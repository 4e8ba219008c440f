import GridEdgeCore

/// One simulated DL/T 645 meter: its address and its forward active energy
/// register, advanced by a constant load.
///
/// The foundation has only the register model; the DL/T 645 server on TCP or a
/// pty, consumption profiles and injected faults come with the meter issue.
public struct SimulatedMeter: Sendable {
  /// The 12-digit meter address.
  public let address: String
  /// The constant load in watts.
  public var loadWatts: Int64
  /// The forward active energy register.
  public private(set) var forwardEnergy: Energy
  /// Watt-milliseconds not yet worth a whole watt-hour.
  private var remainder: Int64 = 0

  public init(address: String, loadWatts: Int64, forwardEnergy: Energy = .zero) {
    self.address = address
    self.loadWatts = loadWatts
    self.forwardEnergy = forwardEnergy
  }

  /// Runs the load for `milliseconds`; the register grows in whole watt-hours and
  /// carries the fraction to the next call, so nothing is lost to rounding.
  public mutating func advance(milliseconds: Int64) {
    let wattMilliseconds = loadWatts * milliseconds + remainder
    let perWattHour: Int64 = 3_600_000
    forwardEnergy = forwardEnergy + Energy(wattHours: wattMilliseconds / perWattHour)
    remainder = wattMilliseconds % perWattHour
  }
}

import DLT645
import GridEdgeCore

/// The time-of-use periods every simulated meter registers by (its 日时段表): one
/// table all year, switches on whole hours, by the meter's own clock in China
/// Standard Time (UTC+8).
///
/// | from  | period |
/// |-------|--------|
/// | 00:00 | valley |
/// | 07:00 | flat   |
/// | 10:00 | peak   |
/// | 11:00 | sharp  |
/// | 12:00 | peak   |
/// | 15:00 | flat   |
/// | 18:00 | peak   |
/// | 19:00 | sharp  |
/// | 21:00 | peak   |
/// | 22:00 | flat   |
/// | 23:00 | valley |
///
/// Tests and the demo give the agent the same table (`daySchedule`) so that the
/// agent's own period arithmetic can be checked against the meters' registers.
public enum SimulatedTariff {
  /// The switch times of the table above.
  public static let switches: [(hour: Int, period: TimeOfUsePeriod)] = [
    (0, .valley), (7, .flat), (10, .peak), (11, .sharp), (12, .peak), (15, .flat), (18, .peak),
    (19, .sharp), (21, .peak), (22, .flat), (23, .valley),
  ]

  /// The table as a GridEdgeCore day schedule.
  public static var daySchedule: DaySchedule {
    var list: [PeriodSwitch] = []
    for entry in switches {
      list.append(PeriodSwitch(hour: entry.hour, minute: 0, period: entry.period)!)
    }
    // The hours above are strictly increasing, so this cannot throw.
    return try! DaySchedule(list)
  }

  /// The period of each local hour 0…23.
  static let periodOfHour: [TimeOfUsePeriod] = {
    var table: [TimeOfUsePeriod] = []
    var current = TimeOfUsePeriod.valley
    var next = 0
    for hour in 0..<24 {
      while next < switches.count && switches[next].hour <= hour {
        current = switches[next].period
        next += 1
      }
      table.append(current)
    }
    return table
  }()

  /// The period in force at local hour `hour` (0…23).
  public static func period(atLocalHour hour: Int) -> TimeOfUsePeriod {
    periodOfHour[hour]
  }

  /// The register index 0…3 (sharp, peak, flat, valley: DL/T 645 tariffs 1…4) of the
  /// period in force at local hour `hour`.
  static func registerIndex(atLocalHour hour: Int) -> Int {
    periodOfHour[hour].rawValue - 1
  }

  /// The DL/T 645 tariff of a register index 0…3.
  static func tariff(ofRegister index: Int) -> DataIdentifier.Tariff {
    DataIdentifier.Tariff(rawValue: UInt8(index + 1))!
  }
}

import DLT645
import GridEdgeCore

extension Simulator {
  /// The reply to a read (0x11) of `identifier` from `meter` at the current time.
  func read(_ identifier: DataIdentifier, from meter: SimulatedMeter) -> Reply {
    guard let value = value(of: identifier, from: meter),
      let bytes = try? value.encoded(for: identifier)
    else { return .readError(.noRequestedData) }
    return .readData(identifier, bytes, hasFollowUp: false)
  }

  /// The value of `identifier`, or nil when the meter has no such data.
  func value(of identifier: DataIdentifier, from meter: SimulatedMeter) -> MeterValue? {
    let registers = meter.registers
    switch identifier.rawValue {
    case DataIdentifier.forwardActiveTotal.rawValue:
      return .energy(centiKilowattHours: registers.forwardTotalRegister)
    case 0x0001_0100, 0x0001_0200, 0x0001_0300, 0x0001_0400:
      return .energy(centiKilowattHours: registers.tariffRegister(Int(identifier.rawValue >> 8 & 0xFF) - 1))
    case DataIdentifier.forwardActiveBlock.rawValue:
      return .energyRegisters(
        EnergyRegisters(total: registers.forwardTotalRegister, tariffs: registers.tariffRegisters))
    case DataIdentifier.reverseActiveTotal.rawValue:
      return .energy(centiKilowattHours: registers.reverseTotalRegister)
    case 0x0201_0100, 0x0201_0200, 0x0201_0300:
      let phase = Int(identifier.rawValue >> 8 & 0xFF)
      guard phase == 1 || meter.isThreePhase else { return nil }
      return .voltage(deciVolts: voltage(of: meter, phase: phase))
    case DataIdentifier.voltageBlock.rawValue:
      return .voltages([1, 2, 3].map { meter.isThreePhase || $0 == 1 ? voltage(of: meter, phase: $0) : 0 })
    case 0x0202_0100, 0x0202_0200, 0x0202_0300:
      let phase = Int(identifier.rawValue >> 8 & 0xFF)
      guard phase == 1 || meter.isThreePhase else { return nil }
      return .current(milliAmperes: current(of: meter, phase: phase))
    case DataIdentifier.currentBlock.rawValue:
      return .currents([1, 2, 3].map { meter.isThreePhase || $0 == 1 ? current(of: meter, phase: $0) : 0 })
    case DataIdentifier.totalActivePower.rawValue:
      return .activePower(deciWatts: Int32(clamp(meter.measuredWatts * 10, limit: 799_999)))
    case DataIdentifier.date.rawValue:
      let local = SimulatedMeter.zone.localDateTime(fromUnix: floorDivide(meter.meterTime, 1_000))
      guard
        let date = try? MeterDate(
          year: Int(local.date.year), month: local.date.month, day: local.date.day,
          weekday: local.weekday.rawValue % 7)
      else { return nil }
      return .date(date)
    case DataIdentifier.time.rawValue:
      let local = SimulatedMeter.zone.localDateTime(fromUnix: floorDivide(meter.meterTime, 1_000))
      guard let time = try? MeterTime(hour: local.hour, minute: local.minute, second: local.second) else {
        return nil
      }
      return .time(time)
    case DataIdentifier.runStatusWord3.rawValue:
      return .runStatusWord3(meter.status)
    case DataIdentifier.remainingMoney.rawValue:
      guard !meter.isArea else { return nil }
      return .money(fen: max(0, meter.remaining(at: options.price).fen))
    case DataIdentifier.overdraftMoney.rawValue:
      guard !meter.isArea else { return nil }
      return .money(fen: max(0, -meter.remaining(at: options.price).fen))
    case DataIdentifier.purchaseCount.rawValue:
      guard !meter.isArea else { return nil }
      return .count(meter.purchaseCount)
    default:
      guard let previous = identifier.dailyFreezeIndex, let freeze = registers.freeze(previous: previous)
      else {
        return nil
      }
      if identifier.rawValue & 0xFF00 == 0 {
        let date = CivilDate(daysSinceEpoch: freeze.day)
        guard
          let stamp = try? MeterTimestamp(
            year: Int(date.year), month: date.month, day: date.day, hour: 0, minute: 0)
        else { return nil }
        return .timestamp(stamp)
      }
      return .energyRegisters(EnergyRegisters(total: freeze.total, tariffs: freeze.tariffs))
    }
  }

  /// Phase voltage in 0.1 V: 220 V ± 3 %, varying per meter, phase and 15-minute slot.
  func voltage(of meter: SimulatedMeter, phase: Int) -> Int32 {
    if meter.lostPhases.contains(phase) { return 0 }
    let slot = floorDivide(now, SimulatedMeter.slotMilliseconds)
    let wobble = Int32(mixHash(meter.key, UInt64(bitPattern: slot), UInt64(phase)) % 133) - 66
    return 2_200 + wobble
  }

  /// Phase current in mA: the measured power of the phase over its voltage (power
  /// factor 1; three-phase meters split the power evenly); negative when reversed.
  func current(of meter: SimulatedMeter, phase: Int) -> Int32 {
    let phaseWatts = meter.isThreePhase ? meter.measuredWatts / 3 : meter.measuredWatts
    let volts = voltage(of: meter, phase: phase)
    guard volts > 0 else { return 0 }
    let milliAmperes = phaseWatts * 10_000 / Int64(volts)
    return Int32(clamp(milliAmperes, limit: 799_999))
  }
}

/// `value` limited to ±`limit` (the largest magnitude a signed BCD field holds).
private func clamp(_ value: Int64, limit: Int64) -> Int64 {
  min(max(value, -limit), limit)
}

import DLT645
import GridEdgeCore
import Testing

@testable import MeterSim

@Suite struct RegisterModelTests {
  @Test func tariffRegistersAddUpToTheTotalExactlyLiveAndInEveryFreeze() throws {
    let simulator = Simulator(options: makeOptions(meters: 12, seed: 3, historyDays: 9))
    simulator.advance(to: testStart + 37 * hour + 1_234)
    for meter in simulator.meters + [simulator.area!] {
      let block = try readForwardBlock(simulator, from: meter.address)
      #expect(block.tariffs.count == 4)
      #expect(block.total == block.tariffs.reduce(0, +), "meter \(meter.address)")
      #expect(try readEnergy(simulator, .forwardActiveTotal, from: meter.address) == block.total)
      for tariff in DataIdentifier.Tariff.allCases {
        #expect(try readEnergy(simulator, .forwardActive(tariff), from: meter.address) == block[tariff])
      }
      for previous in 1...10 {
        guard
          case .energyRegisters(let frozen) = try readValue(
            simulator, DataIdentifier.dailyFreezeForwardActive(previous: previous)!, from: meter.address)
        else { throw TestFailure("freeze \(previous) is not a block") }
        #expect(frozen.total == frozen.tariffs.reduce(0, +))
      }
    }
  }

  @Test func registersDoNotDependOnHowTimeIsStepped() throws {
    let options = makeOptions(meters: 20, seed: 11, historyDays: 1) {
      $0.faults = [
        FaultRule(kind: .theft, selection: .numbers(2...3), value: 400),
        FaultRule(kind: .drift, selection: .numbers(4...4), value: 90_000),
        FaultRule(kind: .drift, selection: .numbers(5...5), value: -45_000),
        FaultRule(kind: .reverse, selection: .numbers(6...6)),
      ]
    }
    let target = testStart + 3 * day + 17 * hour + 987
    let oneStep = Simulator(options: options)
    oneStep.advance(to: target)
    let manySteps = Simulator(options: options)
    var random = SystemRandomNumberGenerator()
    while manySteps.now < target {
      manySteps.advance(to: min(target, manySteps.now + Int64.random(in: 1...(2 * hour), using: &random)))
    }
    #expect(oneStep.truthJSON() == manySteps.truthJSON())
  }

  @Test func theSameSeedGivesTheSameMetersAndAnotherSeedOthers() {
    let a = Simulator(options: makeOptions(meters: 8, seed: 5))
    let b = Simulator(options: makeOptions(meters: 8, seed: 5))
    let c = Simulator(options: makeOptions(meters: 8, seed: 6))
    for s in [a, b, c] { s.advance(to: testStart + day) }
    #expect(a.truthJSON() == b.truthJSON())
    #expect(a.truthJSON() != c.truthJSON())
  }

  @Test func residentialLoadPeaksInTheEveningAndIsLowAtNight() {
    // 2026-01-06 (a Tuesday) in China: 03:00 local is 19:00 UTC the day before.
    let simulator = Simulator(options: makeOptions(meters: 200, seed: 2, profile: .residential, area: false))
    simulator.advance(to: testStart + 4 * day + 19 * hour)  // 2026-01-06 03:00 local
    let night = simulator.meters.reduce(Int64(0)) { $0 + $1.trueLoadWatts }
    simulator.advance(to: testStart + 5 * day + 12 * hour)  // 2026-01-06 20:00 local
    let evening = simulator.meters.reduce(Int64(0)) { $0 + $1.trueLoadWatts }
    #expect(night > 0)
    #expect(evening > 4 * night)
    // Households average a few hundred watts: 200 of them draw tens of kW, not MW.
    #expect(evening > 50_000 && evening < 400_000)
  }

  @Test func energyIsRegisteredInTheTariffOfTheMetersLocalHour() throws {
    // 2026-01-01 08:00 local (flat until 10:00), one household.
    let simulator = Simulator(options: makeOptions(meters: 1, profile: .residential, area: false))
    let address = meterAddress(1)
    let before = try readForwardBlock(simulator, from: address)
    simulator.advance(to: testStart + 2 * hour)  // 10:00 local
    let flat = try readForwardBlock(simulator, from: address)
    #expect(flat[.flat]! > before[.flat]!)
    #expect(
      flat[.sharp] == before[.sharp] && flat[.peak] == before[.peak] && flat[.valley] == before[.valley])
    simulator.advance(to: testStart + 3 * hour)  // 11:00 local: 10–11 is peak
    let peak = try readForwardBlock(simulator, from: address)
    #expect(peak[.peak]! > flat[.peak]!)
    #expect(peak[.flat] == flat[.flat] && peak[.sharp] == flat[.sharp])
    simulator.advance(to: testStart + 4 * hour)  // 12:00 local: 11–12 is sharp
    let sharp = try readForwardBlock(simulator, from: address)
    #expect(sharp[.sharp]! > peak[.sharp]!)
    #expect(sharp[.peak] == peak[.peak])
    #expect(SimulatedTariff.daySchedule.period(atSecondOfDay: 11 * 3600 + 30 * 60) == .sharp)
  }

  @Test func dailyFreezeIsTakenAtLocalMidnightWithTheRegistersOfThatMoment() throws {
    let simulator = Simulator(options: makeOptions(meters: 2))
    let address = meterAddress(2)
    let midnight = testStart + 16 * hour  // 2026-01-02 00:00 local
    simulator.advance(to: midnight - 1)
    #expect(
      try exchange(simulator, .read(.lastDailyFreezeTime), to: address).reply == .readError(.noRequestedData))
    let justBefore = try readForwardBlock(simulator, from: address)
    simulator.advance(to: midnight)
    guard case .timestamp(let stamp) = try readValue(simulator, .lastDailyFreezeTime, from: address) else {
      throw TestFailure("not a timestamp")
    }
    #expect(stamp == (try MeterTimestamp(year: 2026, month: 1, day: 2, hour: 0, minute: 0)))
    guard
      case .energyRegisters(let frozen) = try readValue(
        simulator, .lastDailyFreezeForwardActive, from: address)
    else { throw TestFailure("not a block") }
    // 1 ms after the last read: the registers can have moved by at most a digit.
    #expect(frozen.total - justBefore.total <= 1)
    #expect(frozen == (try readForwardBlock(simulator, from: address)))
    simulator.advance(to: midnight + 10 * hour)
    #expect(frozen == (try readValue(simulator, .lastDailyFreezeForwardActive, from: address)).registers)
  }

  @Test func onlyTheLast62DailyFreezesAreKept() throws {
    let simulator = Simulator(options: makeOptions(meters: 1, historyDays: 70))
    #expect(simulator.meters[0].registers.freezeCount == 62)
    guard
      case .timestamp(let oldest) = try readValue(
        simulator, DataIdentifier.dailyFreezeTime(previous: 62)!, from: meterAddress(1))
    else { throw TestFailure("not a timestamp") }
    // The last freeze is 2026-01-01 (start 08:00 local); the 62nd back is 61 days earlier.
    #expect(oldest == (try MeterTimestamp(year: 2025, month: 11, day: 1, hour: 0, minute: 0)))
    // Day by day, freeze n + 1 is freeze n of the day before: totals never decrease.
    var newer = Int64.max
    for previous in 1...62 {
      let block = try readValue(
        simulator, DataIdentifier.dailyFreezeForwardActive(previous: previous)!, from: meterAddress(1)
      ).registers!
      #expect(block.total <= newer)
      newer = block.total
    }
  }

  @Test func theftBypassRegistersTheGivenShareOfTheTrueEnergyAndPower() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 2) {
        $0.faults = [FaultRule(kind: .theft, selection: .numbers(1...1), value: 500)]
      })
    let before = simulator.meters
    simulator.advance(to: testStart + 5 * day)
    let after = simulator.meters
    let registered = after[0].registers.forwardWattHours - before[0].registers.forwardWattHours
    let used = after[0].trueEnergy.wattHours - before[0].trueEnergy.wattHours
    #expect(used > 5_000)
    #expect(abs(registered * 2 - used) <= 10)
    #expect(after[0].measuredWatts == after[0].trueLoadWatts / 2)
    #expect(Int64(try readPower(simulator, from: after[0].address)) == after[0].trueLoadWatts / 2 * 10)
    // The honest neighbour registers everything.
    let honestRegistered = after[1].registers.forwardWattHours - before[1].registers.forwardWattHours
    let honestUsed = after[1].trueEnergy.wattHours - before[1].trueEnergy.wattHours
    #expect(abs(honestRegistered - honestUsed) <= 5)
  }

  @Test func faultsFromATimeLeaveTheMeterHonestBeforeIt() throws {
    // Theft on meter 1 and a stopped meter 2 from day 2; meter 3 stays honest.
    let from = testStart + 2 * day + 5 * hour + 123
    let simulator = Simulator(
      options: makeOptions(meters: 3) {
        $0.faults = [
          FaultRule(kind: .theft, selection: .numbers(1...1), value: 500),
          FaultRule(kind: .stopped, selection: .numbers(2...2)),
        ]
        $0.faultsFromMilliseconds = from
      })
    let start = simulator.meters
    simulator.advance(to: from - 1)
    #expect(simulator.meters[0].measuredWatts == simulator.meters[0].trueLoadWatts)
    simulator.advance(to: from)
    let atFrom = simulator.meters
    simulator.advance(to: testStart + 5 * day)
    let end = simulator.meters
    for i in 0..<3 {
      let registered = atFrom[i].registers.forwardWattHours - start[i].registers.forwardWattHours
      let used = atFrom[i].trueEnergy.wattHours - start[i].trueEnergy.wattHours
      #expect(used > 1_000)
      #expect(abs(registered - used) <= 5, "meter \(i + 1) before the faults")
    }
    let theftRegistered = end[0].registers.forwardWattHours - atFrom[0].registers.forwardWattHours
    let theftUsed = end[0].trueEnergy.wattHours - atFrom[0].trueEnergy.wattHours
    #expect(abs(theftRegistered * 2 - theftUsed) <= 10)
    #expect(end[0].measuredWatts == end[0].trueLoadWatts / 2)
    #expect(end[1].registers.forwardWattHours == atFrom[1].registers.forwardWattHours)
    #expect(end[1].trueEnergy.wattHours > atFrom[1].trueEnergy.wattHours)
    #expect(!end[0].faults.isNone)
    #expect(end[2].faults.isNone)
  }

  @Test func stoppedMeterRegistersNothingButStillShowsCurrentAndPower() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 1) { $0.faults = [FaultRule(kind: .stopped, selection: .numbers(1...1))] })
    let address = meterAddress(1)
    let before = try readForwardBlock(simulator, from: address)
    simulator.advance(to: testStart + 2 * day)
    #expect(try readForwardBlock(simulator, from: address) == before)
    #expect(simulator.meters[0].trueEnergy.wattHours > 1_000)
    #expect(try readPower(simulator, from: address) > 0)
    guard case .current(let milliAmperes) = try readValue(simulator, .current(.a), from: address) else {
      throw TestFailure("not a current")
    }
    #expect(milliAmperes > 0)
  }

  @Test func reverseMeterRegistersReverseEnergyAndNegativePower() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 1) { $0.faults = [FaultRule(kind: .reverse, selection: .numbers(1...1))] })
    let address = meterAddress(1)
    let before = try readForwardBlock(simulator, from: address)
    #expect(try readEnergy(simulator, .reverseActiveTotal, from: address) == 0)
    simulator.advance(to: testStart + day)
    #expect(try readForwardBlock(simulator, from: address) == before)
    let reverse = try readEnergy(simulator, .reverseActiveTotal, from: address)
    #expect(abs(reverse * 10 - simulator.meters[0].trueEnergy.wattHours) <= 10)
    #expect(try readPower(simulator, from: address) < 0)
    guard case .current(let milliAmperes) = try readValue(simulator, .current(.a), from: address) else {
      throw TestFailure("not a current")
    }
    #expect(milliAmperes < 0)
  }

  @Test func openRelayStopsConsumptionAndClosingResumesIt() throws {
    let simulator = Simulator(options: makeOptions(meters: 2))
    let address = meterAddress(1)
    #expect(try exchange(simulator, controlRequest(.trip), to: address).reply == .controlAccepted)
    let status = try readStatus(simulator, from: address)
    #expect(status.relayOpen && status.relayCommandOpen)
    let before = try readForwardBlock(simulator, from: address)
    let trueBefore = simulator.meters[0].trueEnergy.wattHours
    let areaBefore = simulator.area!.registers.forwardWattHours
    let neighbourBefore = simulator.meters[1].trueEnergy.wattHours
    simulator.advance(to: testStart + day)
    #expect(try readForwardBlock(simulator, from: address) == before)
    #expect(simulator.meters[0].trueEnergy.wattHours == trueBefore)
    #expect(try readPower(simulator, from: address) == 0)
    // The area meter saw only the neighbour (plus 5 % loss).
    let neighbourUsed = simulator.meters[1].trueEnergy.wattHours - neighbourBefore
    let areaUsed = simulator.area!.registers.forwardWattHours - areaBefore
    #expect(abs(areaUsed - neighbourUsed * 105 / 100) <= 6)

    #expect(try exchange(simulator, controlRequest(.directClose), to: address).reply == .controlAccepted)
    #expect(try !readStatus(simulator, from: address).relayOpen)
    simulator.advance(to: testStart + 2 * day)
    #expect(try readForwardBlock(simulator, from: address).total > before.total)
  }

  @Test func bypassedRelayOpenStillRegistersTheLoad() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 1) {
        $0.faults = [FaultRule(kind: .relayBypass, selection: .numbers(1...1))]
      })
    let address = meterAddress(1)
    #expect(try exchange(simulator, controlRequest(.trip), to: address).reply == .controlAccepted)
    #expect(try readStatus(simulator, from: address).relayOpen)
    let before = try readForwardBlock(simulator, from: address)
    simulator.advance(to: testStart + day)
    #expect(try readForwardBlock(simulator, from: address).total > before.total)
    #expect(simulator.truthJSON().contains("\"relay_bypass\":true"))
  }

  @Test func prepaidRemainingAmountGoesDownWithEnergyAtTheFlatPrice() throws {
    let simulator = Simulator(options: makeOptions(meters: 1, profile: .residential))
    let address = meterAddress(1)
    let remainingBefore = try readRemaining(simulator, from: address)
    let energyBefore = simulator.meters[0].registers.forwardWattHours
    guard case .count(let purchases) = try readValue(simulator, .purchaseCount, from: address) else {
      throw TestFailure("not a count")
    }
    #expect(purchases >= 1)
    simulator.advance(to: testStart + 3 * day)
    let used = simulator.meters[0].registers.forwardWattHours - energyBefore
    let expected = try Money.charge(
      for: Energy(wattHours: used), at: Price(tenThousandthsPerKilowattHour: 4_883))
    let remainingAfter = try readRemaining(simulator, from: address)
    #expect(expected.fen > 500)
    #expect(abs((remainingBefore - remainingAfter) - expected.fen) <= 1)
    #expect(try readValue(simulator, .purchaseCount, from: address) == .count(purchases))
  }

  @Test func remainingAmountBelowZeroIsReportedAsOverdraft() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 1, profile: .commercial) {
        $0.price = Price(tenThousandthsPerKilowattHour: 900_000)
      })
    simulator.advance(to: testStart + 20 * day)
    #expect(simulator.meters[0].remaining(at: simulator.options.price).fen < 0)
    #expect(try readRemaining(simulator, from: meterAddress(1)) == 0)
    guard case .money(let overdraft) = try readValue(simulator, .overdraftMoney, from: meterAddress(1)) else {
      throw TestFailure("not money")
    }
    #expect(overdraft == -simulator.meters[0].remaining(at: simulator.options.price).fen)
  }

  @Test func areaMeterRegistersTheCustomersTrueConsumptionPlusTheLoss() throws {
    let options = makeOptions(meters: 30, seed: 9) {
      $0.lossPermille = 80
      $0.faults = [
        FaultRule(kind: .theft, selection: .numbers(1...3), value: 300),
        FaultRule(kind: .stopped, selection: .numbers(4...4)),
        FaultRule(kind: .reverse, selection: .numbers(5...5)),
      ]
    }
    let simulator = Simulator(options: options)
    let trueBefore = simulator.meters.reduce(Int64(0)) { $0 + $1.trueEnergy.wattHours }
    let areaBefore = simulator.area!.registers.forwardWattHours
    let before = simulator.meters
    simulator.advance(to: testStart + 2 * day)
    let used = simulator.meters.reduce(Int64(0)) { $0 + $1.trueEnergy.wattHours } - trueBefore
    let area = simulator.area!.registers.forwardWattHours - areaBefore
    // Each customer's true count drops under 1 Wh, each area register under 1 Wh.
    #expect(abs(area - used * 1_080 / 1_000) <= 35)
    // Honest meters register what was used; the five faulty ones less (the reverse one
    // into its reverse register): what the energy balance finds.
    var missing: Int64 = 0
    for (index, meter) in simulator.meters.enumerated() {
      let registered = meter.registers.forwardWattHours - before[index].registers.forwardWattHours
      let usedHere = meter.trueEnergy.wattHours - before[index].trueEnergy.wattHours
      if index < 5 {
        #expect(registered < usedHere * 31 / 100 + 5, "meter \(index + 1)")
        missing += usedHere - registered
      } else {
        #expect(abs(registered - usedHere) <= 5, "meter \(index + 1)")
      }
    }
    #expect(missing > 1_000)
    // The area meter is three-phase and shows the total power with the loss.
    #expect(
      Int64(try readPower(simulator, from: simulator.area!.address)) == simulator.area!.measuredWatts * 10)
  }

  @Test func clockDriftMovesTheMetersClockAndItsFreezeTime() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 2) {
        $0.faults = [FaultRule(kind: .drift, selection: .numbers(1...1), value: 600_000)]  // +10 min a day
      })
    simulator.advance(to: testStart + 3 * day)
    #expect(simulator.meters[0].meterTime - simulator.now == 30 * 60_000)
    #expect(simulator.meters[1].meterTime == simulator.now)
    // 2026-01-04 08:00 local true, 08:30 on the drifting meter.
    guard case .time(let time) = try readValue(simulator, .time, from: meterAddress(1)) else {
      throw TestFailure("not a time")
    }
    #expect(time == (try MeterTime(hour: 8, minute: 30, second: 0)))
    guard case .date(let date) = try readValue(simulator, .date, from: meterAddress(1)) else {
      throw TestFailure("not a date")
    }
    #expect(date == (try MeterDate(year: 2026, month: 1, day: 4, weekday: 0)))  // a Sunday
  }
}

extension MeterValue {
  /// The registers of an energy block.
  var registers: EnergyRegisters? {
    if case .energyRegisters(let registers) = self { return registers }
    return nil
  }
}

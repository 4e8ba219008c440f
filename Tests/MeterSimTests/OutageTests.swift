import DLT645
import GridEdgeCore
import Runtime
import Testing

@testable import MeterSim

/// `--outage`: parsing, and what the meters do during and after a loss of supply.
@Suite struct OutageTests {
  @Test func outageItemsTakeAreaPhasesOrMetersAndTimesWithUnits() throws {
    let options = try parseSimulatorOptions([
      "--meters", "10", "--outage", "area@120+5m,B@1h+90s,AC@0+1,3-5@30s+2m,20%@10+10",
    ])
    #expect(
      options.outages == [
        SupplyOutage(scope: .area, startAfterMilliseconds: 120_000, durationMilliseconds: 300_000),
        SupplyOutage(scope: .phases([2]), startAfterMilliseconds: 3_600_000, durationMilliseconds: 90_000),
        SupplyOutage(scope: .phases([1, 3]), startAfterMilliseconds: 0, durationMilliseconds: 1_000),
        SupplyOutage(
          scope: .meters(.numbers(3...5)), startAfterMilliseconds: 30_000, durationMilliseconds: 120_000),
        SupplyOutage(
          scope: .meters(.share(perHundredThousand: 20_000)), startAfterMilliseconds: 10_000,
          durationMilliseconds: 10_000),
      ])
    // All three phases are the whole area.
    #expect(try parseSimulatorOptions(["--outage", "ABC@1+1"]).outages.first?.scope == .area)
  }

  @Test func malformedOutagesAreRefusedNamingTheOption() {
    for bad in [
      "area", "area@10", "area@10+0", "area@+10", "area@10+x", "D@1+1", "AA@1+1", "area@10+5d", "0@1+1",
      "area@-1+10", "@1+1", "area@1+1@2",
    ] {
      let error = simulatorOptionError(["--meters", "4", "--outage", bad])
      #expect(error?.hasPrefix("--outage '") == true, "\(bad): \(error ?? "accepted")")
    }
    #expect(simulatorOptionError(["--meters", "4", "--outage", "3-9@1+1"]) != nil)
    #expect(simulatorOptionError(["--meters", "4", "--outage", "3-4@1+1"]) == nil)
  }

  @Test func anAreaOutageSilencesEveryCustomerAndZeroesTheAreaVoltagesForItsWindow() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 3, profile: .residential) {
        $0.outages = [SupplyOutage(scope: .area, startAfterMilliseconds: hour, durationMilliseconds: hour)]
      })
    let area = simulator.area!.address
    #expect(try exchange(simulator, .read(.forwardActiveTotal), to: meterAddress(2)).reply != nil)
    simulator.advance(to: testStart + hour + 60_000)
    let before = simulator.meters.map { $0.forwardRegisters.total }
    let areaBefore = simulator.area!.forwardRegisters.total
    for number in 1...3 {
      guard case .none = try exchange(simulator, .read(.forwardActiveTotal), to: meterAddress(UInt64(number)))
      else {
        throw TestFailure("meter \(number) answered during the outage")
      }
    }
    #expect(try readValue(simulator, .voltageBlock, from: area) == .voltages([0, 0, 0]))
    #expect(try readValue(simulator, .voltage(.b), from: area) == .voltage(deciVolts: 0))
    #expect(try readValue(simulator, .currentBlock, from: area) == .currents([0, 0, 0]))
    // Nothing is consumed while cut off (the area meter registers nothing either).
    simulator.advance(to: testStart + 2 * hour - 1)
    #expect(simulator.meters.map { $0.forwardRegisters.total } == before)
    #expect(simulator.area!.forwardRegisters.total == areaBefore)
    // Back at the window's end.
    simulator.advance(to: testStart + 2 * hour)
    #expect(try exchange(simulator, .read(.forwardActiveTotal), to: meterAddress(1)).reply != nil)
    guard case .voltages(let volts) = try readValue(simulator, .voltageBlock, from: area) else {
      throw TestFailure("no voltages")
    }
    #expect(volts.allSatisfy { $0 > 2_000 }, "\(volts)")
    simulator.advance(to: testStart + 3 * hour)
    #expect(simulator.meters.allSatisfy { $0.forwardRegisters.total > before[$0.number - 1] })
  }

  @Test func aPhaseOutageCutsOnlyTheSinglePhaseMetersOnItAndOneAreaPhase() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 6, profile: .residential) {
        $0.outages = [
          SupplyOutage(scope: .phases([2]), startAfterMilliseconds: 0, durationMilliseconds: hour)
        ]
      })
    #expect(simulator.meters.map(\.phaseName) == ["A", "B", "C", "A", "B", "C"])
    simulator.advance(to: testStart + 1_000)
    var answering: [Int] = []
    for number in 1...6
    where try exchange(simulator, .read(.forwardActiveTotal), to: meterAddress(UInt64(number))).reply != nil {
      answering.append(number)
    }
    #expect(answering == [1, 3, 4, 6])
    guard case .voltages(let volts) = try readValue(simulator, .voltageBlock, from: simulator.area!.address)
    else { throw TestFailure("no voltages") }
    #expect(volts[1] == 0 && volts[0] > 2_000 && volts[2] > 2_000, "\(volts)")
  }

  @Test func aThreePhaseMeterKeepsAnsweringWhenOnePhaseIsLost() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 2, profile: .commercial) {
        $0.outages = [
          SupplyOutage(scope: .phases([1]), startAfterMilliseconds: 0, durationMilliseconds: hour)
        ]
      })
    simulator.advance(to: testStart + 1_000)
    #expect(simulator.meters.map(\.phaseName) == ["ABC", "ABC"])
    #expect(try exchange(simulator, .read(.forwardActiveTotal), to: meterAddress(1)).reply != nil)
  }

  @Test func aBranchOutageCutsTheSelectedMetersAndLeavesTheAreaVoltages() throws {
    let simulator = Simulator(
      options: makeOptions(meters: 5, profile: .residential) {
        $0.outages = [
          SupplyOutage(scope: .meters(.numbers(2...3)), startAfterMilliseconds: 0, durationMilliseconds: hour)
        ]
      })
    simulator.advance(to: testStart + 1_000)
    #expect(simulator.meters.map(\.supplyLost) == [false, true, true, false, false])
    guard case .voltages(let volts) = try readValue(simulator, .voltageBlock, from: simulator.area!.address)
    else { throw TestFailure("no voltages") }
    #expect(volts.allSatisfy { $0 > 2_000 })
  }
}

import GridEdgeCore
import Testing

@testable import MeterSim

@Suite struct SimulatedMeterRegisterTests {
  @Test func registerCarriesFractionsSoNothingIsLostToRounding() {
    var meter = SimulatedMeter(address: "000000000001", loadWatts: 1_000)
    // 1 kW for 1.8 s = 0.5 Wh; twice gives exactly 1 Wh.
    meter.advance(milliseconds: 1_800)
    #expect(meter.forwardEnergy == Energy(wattHours: 0))
    meter.advance(milliseconds: 1_800)
    #expect(meter.forwardEnergy == Energy(wattHours: 1))
    meter.advance(milliseconds: 3_600_000)
    #expect(meter.forwardEnergy == Energy(wattHours: 1_001))
  }
}

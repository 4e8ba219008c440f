import Testing

@testable import GridEdgeCore

@Suite struct MoneyTests {
  @Test func chargeIsEnergyTimesPriceRoundedHalfUpToTheFen() throws {
    // 1 kWh at 0.4883 CNY/kWh = 48.83 fen → 49 fen.
    #expect(
      try Money.charge(for: Energy(wattHours: 1000), at: Price(tenThousandthsPerKilowattHour: 4883)).fen == 49
    )
    // 10 Wh at 0.5000 = 0.5 fen → 1 fen (half up).
    #expect(
      try Money.charge(for: Energy(wattHours: 10), at: Price(tenThousandthsPerKilowattHour: 5000)).fen == 1)
    // 10 Wh at 0.4999 = 0.4999 fen → 0.
    #expect(
      try Money.charge(for: Energy(wattHours: 10), at: Price(tenThousandthsPerKilowattHour: 4999)).fen == 0)
    // 123.45 kWh at 0.5283 = 6521.8635 fen → 6522.
    #expect(
      try Money.charge(for: Energy(centiKilowattHours: 12345), at: Price(tenThousandthsPerKilowattHour: 5283))
        .fen
        == 6522)
  }

  @Test func negativeEnergyRoundsHalfAwayFromZero() throws {
    #expect(
      try Money.charge(for: Energy(wattHours: -10), at: Price(tenThousandthsPerKilowattHour: 5000)).fen == -1)
  }

  @Test func overflowingChargeThrows() {
    #expect(throws: ArithmeticOverflow.self) {
      try Money.charge(for: Energy(wattHours: Int64.max / 2), at: Price(tenThousandthsPerKilowattHour: 10))
    }
  }

  @Test func yuanTextHasTwoDecimals() {
    #expect(Money(fen: 0).yuanText == "0.00")
    #expect(Money(fen: 5).yuanText == "0.05")
    #expect(Money(fen: 12345).yuanText == "123.45")
    #expect(Money(fen: -101).yuanText == "-1.01")
    #expect(Money(fen: Int64.min).yuanText == "-92233720368547758.08")
  }

  @Test func meterRegisterHundredthsAreTenWattHours() {
    #expect(Energy(centiKilowattHours: 123_456).wattHours == 1_234_560)
  }
}

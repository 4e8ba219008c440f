import DLT645
import GridEdgeCore
import Runtime
import Testing

@testable import MeterSim

@Suite struct OptionsTests {
  @Test func defaultsAreOneMeterAtNowWithAnAreaMeter() throws {
    let options = try parseSimulatorOptions([])
    #expect(options.meterCount == 1)
    #expect(options.startMilliseconds == testStart)
    #expect(options.speedPermille == 1_000)
    #expect(options.firstAddress == Address("000000000001"))
    #expect(options.areaAddress == Address("900000000001"))
    #expect(options.password == (try Password(level: 2, code: 0)))
  }

  @Test func modelOptionsAreParsedWithTheirUnits() throws {
    let options = try parseSimulatorOptions([
      "--meters", "2048", "--seed", "42", "--start", "1767225600", "--speed", "96", "--baud", "9600",
      "--profile", "commercial", "--first-address", "123400000000", "--area-address", "000000000009",
      "--loss", "-20", "--price", "5283", "--password", "04:123456", "--history-days", "3",
    ])
    #expect(options.meterCount == 2_048)
    #expect(options.seed == 42)
    #expect(options.startMilliseconds == 1_767_225_600_000)
    #expect(options.speedPermille == 96_000)
    #expect(options.baud == 9_600)
    #expect(options.profile == .commercial)
    #expect(options.customerAddress(number: 2_048) == Address("123400002047"))
    #expect(options.areaAddress == Address("000000000009"))
    #expect(options.lossPermille == -20)
    #expect(options.price == Price(tenThousandthsPerKilowattHour: 5_283))
    #expect(options.password == (try Password(level: 4, code: 0x123456)))
    #expect(options.epochMilliseconds == 1_767_225_600_000 - 3 * day)
    #expect(try parseSimulatorOptions(["--speed", "0.5"]).speedPermille == 500)
    #expect(try parseSimulatorOptions(["--no-area"]).areaAddress == nil)
  }

  @Test func faultListsTakeNumbersRangesAndShares() throws {
    let options = try parseSimulatorOptions([
      "--meters", "100", "--theft", "3:0.5,10-12:0.25", "--stopped", "5%", "--drift", "7:-30,8:45",
      "--slow", "1:300", "--silent", "99", "--reverse", "0.5%", "--corrupt", "20", "--relay-bypass",
      "4,20-21",
    ])
    #expect(options.corruptPermille == 20)
    let faults = resolveFaults(options.faults, meterCount: 100, seed: options.seed)
    #expect(faults[2].registeredPermille == 500)
    #expect(faults[9].registeredPermille == 250 && faults[11].registeredPermille == 250)
    #expect(faults[12].registeredPermille == 1_000)
    #expect(faults[6].driftMillisecondsPerDay == -30_000 && faults[7].driftMillisecondsPerDay == 45_000)
    #expect(faults[0].extraDelayMilliseconds == 300)
    #expect(faults[98].silent && !faults[97].silent)
    #expect(faults.filter(\.stopped).count == 5)
    #expect(faults.filter(\.reverse).count == 1)  // 0.5 % of 100, rounded
    #expect(faults.indices.filter { faults[$0].relayBypassed } == [3, 19, 20])
  }

  @Test func aShareIsPickedFromTheSeedAndDiffersPerFaultKind() {
    let stopped = FaultRule(kind: .stopped, selection: .share(perHundredThousand: 10_000))
    let silent = FaultRule(kind: .silent, selection: .share(perHundredThousand: 10_000))
    let a = stopped.meterNumbers(meterCount: 500, seed: 1)
    #expect(a.count == 50)
    #expect(a == stopped.meterNumbers(meterCount: 500, seed: 1))
    #expect(a != stopped.meterNumbers(meterCount: 500, seed: 2))
    #expect(a != silent.meterNumbers(meterCount: 500, seed: 1))
    #expect(Set(a).count == 50 && a.allSatisfy { (1...500).contains($0) })
  }

  @Test func badValuesNameTheOptionAndWhatItExpects() {
    #expect(simulatorOptionError(["--meters", "0"])?.hasPrefix("--meters '0'") == true)
    #expect(simulatorOptionError(["--meters", "2049"]) != nil)
    #expect(simulatorOptionError(["--meters", "3", "--theft", "4:0.5"])?.contains("--theft '4'") == true)
    #expect(simulatorOptionError(["--theft", "1:1.5"])?.contains("FACTOR") == true)
    #expect(simulatorOptionError(["--theft", "1"])?.contains("SELECTION:VALUE") == true)
    #expect(simulatorOptionError(["--stopped", "1:2"]) != nil)
    #expect(simulatorOptionError(["--relay-bypass", "1:1"]) != nil)
    #expect(simulatorOptionError(["--stopped", "0"]) != nil)
    #expect(simulatorOptionError(["--stopped", "3-2"]) != nil)
    #expect(simulatorOptionError(["--drift", "1:4000"]) != nil)
    #expect(simulatorOptionError(["--speed", "0"]) != nil)
    #expect(simulatorOptionError(["--password", "2:0"]) != nil)
    #expect(simulatorOptionError(["--first-address", "12345678901A"]) != nil)
    #expect(
      simulatorOptionError(["--meters", "2", "--first-address", "999999999998"])?.contains("no room") == true)
    #expect(
      simulatorOptionError(["--meters", "5", "--area-address", "3"])?.contains(
        "is one of the customer addresses")
        == true)
    #expect(simulatorOptionError(["--no-area", "--area-address", "7"]) != nil)
    #expect(simulatorOptionError(["--start", "100"]) != nil)
  }

  @Test func serveNeedsATCPPortOrAPty() throws {
    let none = try Arguments([], valued: ServeOptions.valued, flags: ServeOptions.flags)
    #expect(throws: SimulatorOptionError.self) { try ServeOptions(arguments: none) }
    let both = try Arguments(
      ["--tcp", "0", "--pty", "--truth-file", "/tmp/x.json", "--truth-every", "250"],
      valued: ServeOptions.valued,
      flags: ServeOptions.flags)
    let serve = try ServeOptions(arguments: both)
    #expect(
      serve.tcpPort == 0 && serve.pty && serve.truthFile == "/tmp/x.json"
        && serve.truthEveryMilliseconds == 250)
  }

  @Test func decimalsParseToTheirScale() {
    #expect(parseDecimal("0.5", fractionDigits: 3) == 500)
    #expect(parseDecimal("96", fractionDigits: 3) == 96_000)
    #expect(parseDecimal("-1.25", fractionDigits: 3) == -1_250)
    #expect(parseDecimal("0.1255", fractionDigits: 3) == nil)
    #expect(parseDecimal(".", fractionDigits: 3) == nil)
    #expect(parseDecimal("1.2.3", fractionDigits: 3) == nil)
    #expect(parseDecimal("", fractionDigits: 3) == nil)
    #expect(decimalText(96_000) == "96" && decimalText(500) == "0.5" && decimalText(1_025) == "1.025")
  }
}

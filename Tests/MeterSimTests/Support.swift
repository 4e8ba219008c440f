import DLT645
import Foundation
import GridEdgeCore
import MeterSim
import Runtime
import TestSupport
import Testing

/// 2026-01-01 00:00:00 UTC (08:00 in China), the start most tests use.
let testStart: Int64 = 1_767_225_600_000
/// One hour and one day in milliseconds.
let hour: Int64 = 3_600_000
let day: Int64 = 86_400_000

struct TestFailure: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// Options for a small simulation starting at `testStart`.
func makeOptions(
  meters: Int = 3, seed: UInt64 = 7, historyDays: Int = 0, profile: ProfileChoice = .mixed,
  area: Bool = true, _ adjust: (inout SimulatorOptions) -> Void = { _ in }
) -> SimulatorOptions {
  var options = SimulatorOptions()
  options.meterCount = meters
  options.seed = seed
  options.startMilliseconds = testStart
  options.historyDays = historyDays
  options.profile = profile
  if !area { options.areaAddress = nil }
  adjust(&options)
  return options
}

/// The address of meter `number` with the default first address.
func meterAddress(_ number: UInt64) -> Address { Address(number: number)! }

/// What went back on the bus for one request: nothing, a reply, or bytes that do
/// not decode.
enum Exchange {
  case none
  case reply(Reply, from: Address)
  case malformed(FrameError)

  var reply: Reply? {
    if case .reply(let reply, _) = self { return reply }
    return nil
  }
}

/// Sends `request` to `address` as a master would (4 wake-up bytes, the frame on
/// the wire), decodes it like a meter, lets the simulator answer, and decodes the
/// reply's wire bytes as the master.
func exchange(_ simulator: Simulator, _ request: Request, to address: Address) throws -> Exchange {
  try exchange(simulator, frame: request.frame(to: address))
}

/// As `exchange(_:_:to:)` for any frame.
func exchange(_ simulator: Simulator, frame: Frame) throws -> Exchange {
  var meterSide = FrameDecoder()
  meterSide.feed(frame.encoded(wakeUpBytes: 4))
  guard let received = try meterSide.next() else { throw TestFailure("request did not decode") }
  guard let reply = simulator.handle(received) else { return .none }
  var masterSide = FrameDecoder()
  masterSide.feed(reply.bytes)
  do {
    guard let replyFrame = try masterSide.next() else { throw TestFailure("reply incomplete") }
    return .reply(try Reply(frame: replyFrame), from: replyFrame.address)
  } catch let error as FrameError {
    return .malformed(error)
  }
}

/// Reads `identifier` from `address` and decodes the value.
func readValue(_ simulator: Simulator, _ identifier: DataIdentifier, from address: Address) throws
  -> MeterValue
{
  let result = try exchange(simulator, .read(identifier), to: address)
  guard case .readData(let echoed, let bytes, _)? = result.reply else {
    throw TestFailure("read \(identifier) from \(address): \(result)")
  }
  #expect(echoed == identifier)
  return try MeterValue(decoding: bytes[...], for: identifier)
}

/// The forward energy block (total, sharp, peak, flat, valley) in 0.01 kWh.
func readForwardBlock(_ simulator: Simulator, from address: Address) throws -> EnergyRegisters {
  guard case .energyRegisters(let registers) = try readValue(simulator, .forwardActiveBlock, from: address)
  else {
    throw TestFailure("block is not energy registers")
  }
  return registers
}

/// A single energy register in 0.01 kWh.
func readEnergy(_ simulator: Simulator, _ identifier: DataIdentifier, from address: Address) throws -> Int64 {
  guard case .energy(let value) = try readValue(simulator, identifier, from: address) else {
    throw TestFailure("\(identifier) is not energy")
  }
  return value
}

/// The active power in 0.1 W.
func readPower(_ simulator: Simulator, from address: Address) throws -> Int32 {
  guard case .activePower(let value) = try readValue(simulator, .totalActivePower, from: address) else {
    throw TestFailure("not a power")
  }
  return value
}

/// Run status word 3.
func readStatus(_ simulator: Simulator, from address: Address) throws -> RunStatusWord3 {
  guard case .runStatusWord3(let value) = try readValue(simulator, .runStatusWord3, from: address) else {
    throw TestFailure("not a status word")
  }
  return value
}

/// Remaining money in fen.
func readRemaining(_ simulator: Simulator, from address: Address) throws -> Int64 {
  guard case .money(let fen) = try readValue(simulator, .remainingMoney, from: address) else {
    throw TestFailure("not money")
  }
  return fen
}

/// A control request with the default password, valid for a day after `testStart`
/// plus `validDays`.
func controlRequest(
  _ command: RelayCommand, password: Password = try! Password(level: 0x02, code: 0),
  validUntil: MeterDateTime? = nil
) -> Request {
  let until =
    validUntil ?? (try! MeterDateTime(year: 2099, month: 12, day: 31, hour: 23, minute: 59, second: 59))
  return .control(
    ControlRequest(password: password, operatorCode: 0x1234_5678, command: command, validUntil: until))
}

/// Parses the truth JSON.
func truth(_ simulator: Simulator) throws -> [String: Any] {
  guard
    let object = try JSONSerialization.jsonObject(with: Data(simulator.truthJSON().utf8)) as? [String: Any]
  else { throw TestFailure("truth is not an object") }
  return object
}

/// Where the test run's product executables are: beside the test bundle, unless
/// GRIDEDGE_BIN_DIR names another folder (e.g. the Embedded build in .cross/bin/x86_64).
/// (The lookup of Tests/AgentTests/Binaries.swift, for gridedge-sim.)
enum Binaries {
  static var directory: URL {
    if let dir = ProcessInfo.processInfo.environment["GRIDEDGE_BIN_DIR"] {
      return URL(fileURLWithPath: dir)
    }
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" {
      url.deleteLastPathComponent()
      if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("gridedge-sim").path) {
        return url
      }
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(
      ".build/debug")
  }

  static func path(_ name: String) throws -> String {
    let path = directory.appendingPathComponent(name).path
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw TestFailure("executable \(name) not found at \(path): build the products first (swift build)")
    }
    return path
  }
}

/// Simulator options from command-line words (the serve options allowed too), with
/// `testStart` as now.
func parseSimulatorOptions(_ words: [String]) throws -> SimulatorOptions {
  let arguments = try Arguments(
    words, valued: SimulatorOptions.valued.union(ServeOptions.valued),
    flags: SimulatorOptions.flags.union(ServeOptions.flags))
  return try SimulatorOptions(arguments: arguments, now: testStart)
}

/// The error `words` give as simulator options, or nil when they parse.
func simulatorOptionError(_ words: [String]) -> String? {
  do {
    _ = try parseSimulatorOptions(words)
    return nil
  } catch let error as SimulatorOptionError {
    return error.description
  } catch {
    return "\(error)"
  }
}

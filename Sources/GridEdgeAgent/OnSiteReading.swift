import DLT645
import Runtime

/// A meter read on site by the inspector's handheld (`gridedge inspect read`): the
/// forward active energy total (00 01 00 00) and, when the meter has it, run status
/// word 3 (04 00 05 03, the relay), over an optical probe or RS-485 adapter
/// (`SerialPort`) or a serial-to-TCP gateway (`TCPGateway`), with the same DL/T 645
/// codec and `MeterBus` as the concentrator.
public enum OnSiteReading {
  /// What the meter said.
  public struct Result: Sendable, Equatable {
    /// Forward active energy total, Wh.
    public var wattHours: Int64
    /// The relay as the meter reports it, nil when it did not answer run status word 3.
    public var relayOpen: Bool?
  }

  /// Reads `meter` over `transport`, waiting at most `timeoutMilliseconds` in all.
  /// - Throws: `InspectionError` (`meter`) naming the meter and the line: the line
  ///   cannot be opened, no answer, corrupt replies, a refusal or a value that does
  ///   not decode.
  public static func read(
    meter: Address, transport: any MeterTransport, clock: some Clock, timeoutMilliseconds: Int64 = 10_000
  ) throws(InspectionError) -> Result {
    var settings = MeterBus.Settings()
    settings.reconnectMinMilliseconds = timeoutMilliseconds
    let bus = MeterBus(name: "onsite", transport: transport, settings: settings)
    defer { bus.close() }
    let what = "meter " + meter.description + " on " + transport.label
    let energy = bus.submit(.read(.forwardActiveTotal), to: meter)
    bus.submit(.read(.runStatusWord3), to: meter)
    var result: Result? = nil
    let end = clock.monotonicMilliseconds + timeoutMilliseconds
    while true {
      let now = clock.monotonicMilliseconds
      bus.tick(now: now)
      for incident in bus.takeIncidents() {
        if case .lineDown(let reason) = incident {
          throw InspectionError("meter", what + ": the line failed: " + reason)
        }
      }
      for completion in bus.takeCompletions() {
        let isEnergy = completion.ticket == energy
        switch completion.outcome {
        case .reply(.readData(let identifier, let bytes, _)):
          let value: MeterValue
          do {
            value = try MeterValue(decoding: bytes[...], for: identifier)
          } catch {
            throw InspectionError("meter", what + ": " + identifier.description + ": " + error.description)
          }
          switch value {
          case .energy(let centi) where isEnergy:
            result = Result(wattHours: centi * 10, relayOpen: nil)
          case .runStatusWord3(let word) where !isEnergy:
            result?.relayOpen = word.relayOpen
            return result ?? Result(wattHours: 0, relayOpen: nil)
          default:
            if isEnergy { throw InspectionError("meter", what + ": unexpected value for the energy total") }
            return result ?? Result(wattHours: 0, relayOpen: nil)
          }
        case .reply(.readError(let word)):
          if isEnergy {
            throw InspectionError("meter", what + " refused to read the energy total: " + word.description)
          }
          return result ?? Result(wattHours: 0, relayOpen: nil)
        case .noAnswer:
          if isEnergy {
            throw InspectionError("meter", what + " did not answer (check the probe and the address)")
          }
          return result ?? Result(wattHours: 0, relayOpen: nil)
        case .badReplies:
          if isEnergy { throw InspectionError("meter", what + ": every reply was corrupt") }
          return result ?? Result(wattHours: 0, relayOpen: nil)
        default:
          if isEnergy { throw InspectionError("meter", what + ": no reading") }
          return result ?? Result(wattHours: 0, relayOpen: nil)
        }
      }
      guard now < end else { throw InspectionError("meter", what + ": no reading within the time allowed") }
      var requests: [PollRequest] = []
      if let request = bus.pollRequest { requests.append(request) }
      let wait = max(0, min(50, (bus.nextDeadline ?? now + 50) - now))
      let results: [PollResult]
      do {
        results = try Poller.wait(requests, timeoutMilliseconds: Int32(wait))
      } catch {
        throw InspectionError("meter", what + ": poll: " + error.description)
      }
      for polled in results { bus.service(polled, now: clock.monotonicMilliseconds) }
    }
  }
}

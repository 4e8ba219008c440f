import DLT645
import GridEdgeCore

/// A reply the simulator sends: the frame, its wire bytes (with a wrong checksum when
/// the reply was picked for corruption) and the meter's extra delay.
public struct SimulatedReply: Sendable {
  /// The reply frame as meant.
  public let frame: Frame
  /// What goes on the wire: 4 wake-up bytes (FE) and the frame.
  public let bytes: [UInt8]
  /// True when the checksum in `bytes` was deliberately broken (`--corrupt`).
  public let corrupted: Bool
  /// Extra delay before the reply, in real milliseconds (`--slow`).
  public let extraDelayMilliseconds: Int64
  /// The meter that answered (0 for the area meter).
  public let meterNumber: Int
}

/// The simulated meters of one area and how they answer DL/T 645-2007 requests.
///
/// Single-threaded and without I/O: `advance(to:)` moves simulated time forward,
/// `handle(_:)` answers one request frame at the current time. `SimulatorServer`
/// puts it behind TCP and a pty; tests drive it directly.
public final class Simulator {
  /// Wake-up bytes (FE) before every reply.
  public static let wakeUpBytes = 4

  public let options: SimulatorOptions
  /// The customer meters; index i is meter number i + 1.
  public private(set) var meters: [SimulatedMeter]
  /// The area meter, unless `--no-area`.
  public private(set) var area: SimulatedMeter?
  /// Simulated time, unix milliseconds.
  public private(set) var now: Int64

  /// Meter index by address (`meters.count` for the area meter).
  private var indexByAddress: [UInt64: Int] = [:]
  /// Replies sent, for the seeded choice of which to corrupt.
  private var replyCount: UInt64 = 0
  /// Replies corrupted so far.
  public private(set) var corruptedReplyCount = 0

  /// An outage of `options.outages` in simulated time, with the customers it cuts off.
  private struct OutageWindow {
    let from: Int64
    let to: Int64
    let lostPhases: [Int]
    /// Customer meter indices (number − 1).
    let cutOff: Set<Int>
  }

  private var outageWindows: [OutageWindow] = []

  /// The meters at the options' epoch (start minus history days), then advanced to
  /// the start.
  /// - Precondition: `options.validate()` passes.
  public init(options: SimulatorOptions) {
    self.options = options
    let epoch = options.epochMilliseconds
    let faults = resolveFaults(
      options.faults, meterCount: options.meterCount, seed: options.seed,
      activeFrom: options.faultsFromMilliseconds ?? Int64.min)
    var meters: [SimulatedMeter] = []
    meters.reserveCapacity(options.meterCount)
    for number in 1...options.meterCount {
      meters.append(
        SimulatedMeter(
          customer: number, address: options.customerAddress(number: number), profileChoice: options.profile,
          faults: faults[number - 1], seed: options.seed, epoch: epoch))
    }
    self.meters = meters
    if let address = options.areaAddress {
      var area = SimulatedMeter(areaAddress: address, seed: options.seed, epoch: epoch)
      area.areaLossPermille = options.lossPermille
      self.area = area
    }
    self.now = epoch
    for (index, meter) in meters.enumerated() { indexByAddress[meter.address.rawValue] = index }
    if let area { indexByAddress[area.address.rawValue] = meters.count }
    for outage in options.outages {
      let from = options.startMilliseconds + outage.startAfterMilliseconds
      var cutOff = Set<Int>()
      for (index, meter) in meters.enumerated()
      where outage.cutsOff(
        number: meter.number, phases: meter.phases, meterCount: options.meterCount, seed: options.seed)
      {
        cutOff.insert(index)
      }
      outageWindows.append(
        OutageWindow(
          from: from, to: from + outage.durationMilliseconds, lostPhases: outage.lostPhases, cutOff: cutOff))
    }
    advance(to: options.startMilliseconds)
  }

  /// The meter with `address`, if it is one of this simulator's.
  public func meter(_ address: Address) -> SimulatedMeter? {
    guard let index = indexByAddress[address.rawValue] else { return nil }
    return index == meters.count ? area : meters[index]
  }

  // MARK: Time

  /// Moves simulated time to `target` (unix ms); earlier targets are ignored.
  ///
  /// Steps slot by slot (15 minutes of true time): each customer takes its demand for
  /// the slot and runs to the slot's end (or `target`), then the area meter runs over
  /// the same stretch at the sum of the customers' true loads plus the loss.
  public func advance(to target: Int64) {
    while now < target {
      applySupply()
      let slot = floorDivide(now, SimulatedMeter.slotMilliseconds)
      var end = min(target, (slot + 1) * SimulatedMeter.slotMilliseconds)
      for window in outageWindows {
        if window.from > now { end = min(end, window.from) }
        if window.to > now { end = min(end, window.to) }
      }
      let total = enterSlot(slot)
      for index in meters.indices { meters[index].advance(to: end) }
      area?.advance(to: end, areaRatePermille: total * (1_000 + options.lossPermille))
      now = end
    }
    // Instantaneous values (power, current) show the slot `now` is in.
    applySupply()
    enterSlot(floorDivide(now, SimulatedMeter.slotMilliseconds))
  }

  /// Cuts off the meters of the outages `now` is in, and restores the others.
  private func applySupply() {
    guard !outageWindows.isEmpty else { return }
    var cutOff = Set<Int>()
    var lost = Set<Int>()
    for window in outageWindows where window.from <= now && now < window.to {
      cutOff.formUnion(window.cutOff)
      lost.formUnion(window.lostPhases)
    }
    for index in meters.indices { meters[index].supplyLost = cutOff.contains(index) }
    area?.lostPhases = lost.sorted()
  }

  /// Gives every customer its demand for `slot` and the area meter their total.
  /// - Returns: the customers' true load in W.
  @discardableResult
  private func enterSlot(_ slot: Int64) -> Int64 {
    let local = SimulatedMeter.zone.localDateTime(fromUnix: slot * SimulatedMeter.slotMilliseconds / 1_000)
    let weekend = local.weekday.isWeekend
    var total: Int64 = 0
    for index in meters.indices {
      meters[index].enterSlot(slot, hour: local.hour, weekend: weekend)
      total += meters[index].trueLoadWatts
    }
    area?.areaLoadWatts = total
    return total
  }

  // MARK: Requests

  /// Answers one frame received on the bus at the current simulated time.
  ///
  /// - Broadcast time (0x08 to 99…99) sets every meter's clock; no reply.
  /// - Otherwise the meters whose address matches (wildcard nibbles A included) are
  ///   found; silent meters never transmit; two or more that would answer a read
  ///   collide on the bus: their replies overlap into one corrupt frame (bytes ORed,
  ///   as the line's idle-high state lets any transmitter pull a bit), which tells a
  ///   bus search that more than one meter matched. That is also why read address
  ///   (0x13) to AA…AA is understood only when one meter is on the bus.
  /// - Reads (0x11) answer the identifiers of `DataIdentifier` GridEdge uses, else
  ///   0xD1 "no requested data"; follow-up reads (0x12) 0xD2 "no requested data".
  /// - Control (0x1C) checks the password and valid-until time and moves the relay;
  ///   0x9C or 0xDC.
  /// - Other functions (write, freeze, …) get an abnormal reply "other error";
  ///   malformed requests and frames sent by meters are ignored.
  /// - Returns: the reply to send, or nil for none.
  public func handle(_ frame: Frame) -> SimulatedReply? {
    if frame.address.isBroadcast {
      if case .broadcastTime(let time)? = try? Request(frame: frame) { broadcastTime(time) }
      return nil
    }
    guard !frame.control.isReply else { return nil }
    let matching = answeringMeters(frame.address)
    if matching.count > 1 { return collision(frame, matching.prefix(2)) }
    guard let index = matching.first else { return nil }
    let reply: Reply
    do {
      reply = answer(try Request(frame: frame), meterIndex: index)
    } catch {
      switch frame.control.function {
      case .read, .readFollowUp, .readAddress, .broadcastTime, .control:
        return nil  // malformed: a meter ignores what it cannot parse
      default:
        return sendAbnormal(frame, meterIndex: index)
      }
    }
    let meter = index == meters.count ? area! : meters[index]
    guard let replyFrame = try? reply.frame(from: meter.address) else { return nil }
    return wire(replyFrame, meter: meter)
  }

  /// The indexes of the meters that would answer `address` (the area meter is
  /// `meters.count`).
  private func answeringMeters(_ address: Address) -> [Int] {
    if !address.hasWildcard {
      guard let index = indexByAddress[address.rawValue] else { return [] }
      let meter = index == meters.count ? area! : meters[index]
      return meter.faults.silent || meter.supplyLost ? [] : [index]
    }
    var found: [Int] = []
    for (index, meter) in meters.enumerated()
    where !meter.faults.silent && !meter.supplyLost && address.matches(meter.address) {
      found.append(index)
    }
    if let area, address.matches(area.address) { found.append(meters.count) }
    return found
  }

  /// Two meters answer a read at once: the line carries their replies ORed, a frame
  /// no checksum fits. Other requests (control, writes) get no reply: a meter acts on
  /// them only when addressed in full.
  private func collision(_ frame: Frame, _ indexes: ArraySlice<Int>) -> SimulatedReply? {
    guard let request = try? Request(frame: frame) else { return nil }
    switch request {
    case .read, .readAddress: break
    default: return nil
    }
    var replies: [(meter: SimulatedMeter, frame: Frame)] = []
    for index in indexes {
      let meter = index == meters.count ? area! : meters[index]
      guard let reply = try? answer(request, meterIndex: index).frame(from: meter.address) else { return nil }
      replies.append((meter, reply))
    }
    var bytes = replies[0].frame.encoded(wakeUpBytes: Simulator.wakeUpBytes)
    for other in replies.dropFirst() {
      let more = other.frame.encoded(wakeUpBytes: Simulator.wakeUpBytes)
      for i in more.indices {
        if i < bytes.count { bytes[i] |= more[i] } else { bytes.append(more[i]) }
      }
    }
    // An ORed frame may still sum right by chance; the line garbles more than a sum.
    let start = Simulator.wakeUpBytes
    let checksum = bytes.count - 2
    let sum = bytes[start..<checksum].reduce(UInt8(0)) { $0 &+ $1 }
    if bytes[checksum] == sum { bytes[checksum] = sum &+ 1 }
    replyCount += 1
    return SimulatedReply(
      frame: replies[0].frame, bytes: bytes, corrupted: true,
      extraDelayMilliseconds: replies.map { $0.meter.faults.extraDelayMilliseconds }.max() ?? 0,
      meterNumber: replies[0].meter.number)
  }

  /// 0x08: every meter's clock (silent ones too) shows `time` from now on.
  private func broadcastTime(_ time: MeterDateTime) {
    guard let meterTime = unixMilliseconds(time) else { return }
    for index in meters.indices { meters[index].setClock(to: meterTime) }
    if area != nil { area!.setClock(to: meterTime) }
  }

  private func answer(_ request: Request, meterIndex index: Int) -> Reply {
    let meter = index == meters.count ? area! : meters[index]
    switch request {
    case .read(let identifier):
      return read(identifier, from: meter)
    case .readFollowUp:
      return .readFollowUpError(.noRequestedData)
    case .readAddress:
      return .address(meter.address)
    case .broadcastTime:
      return .readError(.other)  // not reached: broadcast time is only valid to 99…99
    case .control(let control):
      guard index < meters.count else { return .controlRefused(.other) }  // the area meter has no relay
      return self.control(control, meterIndex: index)
    }
  }

  /// 0x1C: password, then valid-until, then the command.
  private func control(_ request: ControlRequest, meterIndex index: Int) -> Reply {
    guard request.password == options.password else { return .controlRefused(.unauthorized) }
    let meterTime = meters[index].meterTime
    if let until = unixMilliseconds(request.validUntil), meterTime > until {
      return .controlRefusedStatus(.validUntilExpired)
    }
    switch request.command {
    case .trip:
      guard !meters[index].status.keepPower else { return .controlRefusedStatus(.tripRefusedKeepPower) }
      meters[index].status.relayOpen = true
      meters[index].status.relayCommandOpen = true
      meters[index].tripsAccepted += 1
    case .closePermit, .directClose:
      // Close-permit: the simulated customer presses the button at once.
      meters[index].status.relayOpen = false
      meters[index].status.relayCommandOpen = false
      meters[index].closesAccepted += 1
    case .alarm:
      meters[index].status.preTripAlarm = true
    case .alarmRelease:
      meters[index].status.preTripAlarm = false
    case .keepPower:
      meters[index].status.keepPower = true
    case .keepPowerRelease:
      meters[index].status.keepPower = false
    }
    enterSlot(floorDivide(now, SimulatedMeter.slotMilliseconds))  // the area meter sees the relay at once
    return .controlAccepted
  }

  /// A function the simulator does not implement: abnormal reply, "other error".
  private func sendAbnormal(_ frame: Frame, meterIndex index: Int) -> SimulatedReply? {
    let meter = index == meters.count ? area! : meters[index]
    let control = Control(rawValue: frame.control.rawValue & 0x1F | 0xC0)
    guard let reply = try? Frame(address: meter.address, control: control, data: [ErrorWord.other.rawValue])
    else {
      return nil
    }
    return wire(reply, meter: meter)
  }

  /// The reply's wire bytes, corrupting the checksum for the seeded share of replies.
  private func wire(_ frame: Frame, meter: SimulatedMeter) -> SimulatedReply {
    var bytes = frame.encoded(wakeUpBytes: Simulator.wakeUpBytes)
    replyCount += 1
    var corrupted = false
    if options.corruptPermille > 0,
      Int64(mixHash(options.seed, replyCount, 0xBAD) % 1_000) < options.corruptPermille
    {
      bytes[bytes.count - 2] = bytes[bytes.count - 2] &+ 1
      corrupted = true
      corruptedReplyCount += 1
    }
    return SimulatedReply(
      frame: frame, bytes: bytes, corrupted: corrupted,
      extraDelayMilliseconds: meter.faults.extraDelayMilliseconds, meterNumber: meter.number)
  }
}

/// Unix milliseconds of a meter date and time (China Standard Time).
func unixMilliseconds(_ time: MeterDateTime) -> Int64? {
  guard let date = CivilDate(year: Int64(time.year), month: time.month, day: time.day),
    let local = LocalDateTime(date: date, hour: time.hour, minute: time.minute, second: time.second)
  else { return nil }
  return SimulatedMeter.zone.unixSeconds(of: local) * 1_000
}

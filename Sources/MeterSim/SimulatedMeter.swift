import DLT645
import GridEdgeCore

/// What a simulated meter measures.
public enum MeterRole: Hashable, Sendable {
  /// A customer's meter with its load profile; prepaid in money.
  case customer(LoadProfile)
  /// The area (transformer) meter: registers the customers' true consumption plus
  /// the technical loss; three-phase; not prepaid.
  case area
}

/// One simulated DL/T 645 meter: its registers, clock, relay and prepaid state.
///
/// The model moves in simulated unix milliseconds and only forward. Loads are
/// constant within a 15-minute slot of true time; tariff periods and daily freezes
/// follow the meter's own clock (which may drift or be set by broadcast time).
/// Every register is an exact function of the seed, the options and the time
/// (plus the commands received): advancing in one step or in many gives the same
/// registers (see `EnergyAccumulator`).
public struct SimulatedMeter: Sendable {
  /// Length of a load slot: 15 minutes.
  static let slotMilliseconds: Int64 = 900_000
  /// The local offset of every meter clock (China Standard Time).
  static let zone = UTCOffset.china

  /// 1…N for customers (the n-th address), 0 for the area meter.
  public let number: Int
  /// The meter's address.
  public let address: Address
  /// Customer (with its profile) or area meter.
  public let role: MeterRole
  /// The injected faults.
  public let faults: MeterFaults

  /// The base load in W (customers).
  let baseWatts: Int64
  /// This meter's key into the seeded hash.
  let key: UInt64

  var clock: MeterClock
  var registers: RegisterBank
  /// The energy the customer really used (Wh), before theft, stop or reversal.
  var trueEnergy: EnergyAccumulator
  /// Run status word 3: relay state, relay command, alarm, keep-power, meter type.
  var status: RunStatusWord3
  /// 0x1C requests accepted since the simulator started: trips, and closes
  /// (close-permit or direct close). Tests check that a keep-power meter was never
  /// tripped and count the relay operations a crash repeated.
  var tripsAccepted = 0
  var closesAccepted = 0

  /// Prepaid: the remaining amount when `chargedFromWattHours` was the forward energy.
  let creditFen: Int64
  /// Prepaid: the forward energy (Wh) from which charges count.
  let chargedFromWattHours: Int64
  /// Prepaid: purchases so far.
  let purchaseCount: Int

  /// True time up to which the meter has been advanced.
  public private(set) var now: Int64
  /// The slot whose load is in `slotLoadWatts`.
  private var loadSlot: Int64 = Int64.min
  /// The customer's true demand in the current slot, in W (also while the relay is open).
  private(set) var slotLoadWatts: Int64 = 0
  /// For the area meter: the customers' true load now, in W (set by the simulator).
  var areaLoadWatts: Int64 = 0
  /// For the area meter: the technical loss in ‰ (set by the simulator).
  var areaLossPermille: Int64 = 0
  /// A customer meter cut off by an outage (`--outage`): it neither answers nor consumes.
  var supplyLost = false
  /// For the area meter: the phases (1…3) without voltage in an outage.
  var lostPhases: [Int] = []

  /// A customer meter at true time `epoch`, drawn from `seed`.
  init(
    customer number: Int, address: Address, profileChoice: ProfileChoice, faults: MeterFaults, seed: UInt64,
    epoch: Int64
  ) {
    var random = SplitMix64(seed: mixHash(seed, UInt64(number), 0xC057))
    let profile: LoadProfile
    switch profileChoice {
    case .residential: profile = .residential
    case .commercial: profile = .commercial
    case .mixed: profile = random.next(below: 100) < 15 ? .commercial : .residential
    }
    self.number = number
    self.address = address
    self.role = .customer(profile)
    self.faults = faults
    self.key = random.next()
    self.baseWatts = random.next(in: profile.baseWattsRange)
    let totalKilowattHours =
      profile == .residential ? random.next(in: 1_000...20_000) : random.next(in: 10_000...200_000)
    // Typical shares of sharp, peak, flat; valley takes the rest.
    let sharp = random.next(in: 60...120)
    let peak = random.next(in: 250...350)
    let flat = random.next(in: 300...400)
    let shares = [sharp, peak, flat, 1_000 - sharp - peak - flat]
    let initial = shares.map { totalKilowattHours * $0 + random.next(in: 0...999) }
    self.registers = RegisterBank(forwardWattHours: initial, reverseWattHours: 0)
    self.trueEnergy = EnergyAccumulator(wattHours: 0)
    self.clock = MeterClock(epoch: epoch, driftPerDay: faults.driftMillisecondsPerDay)
    var status = RunStatusWord3(rawValue: 0x0200)  // D8–D9 = 10: money prepaid
    status.relayOpen = false
    self.status = status
    self.creditFen =
      profile == .residential ? random.next(in: 5_000...50_000) : random.next(in: 50_000...500_000)
    self.chargedFromWattHours = initial.reduce(0, +)
    self.purchaseCount = Int(random.next(in: 1...60))
    self.now = epoch
  }

  /// The area meter at true time `epoch`.
  init(areaAddress: Address, seed: UInt64, epoch: Int64) {
    var random = SplitMix64(seed: mixHash(seed, 0, 0xA4EA))
    self.number = 0
    self.address = areaAddress
    self.role = .area
    self.faults = MeterFaults()
    self.key = random.next()
    self.baseWatts = 0
    let initial = [Int64](repeating: 0, count: 4).map { _ in random.next(in: 0...2_500_000) }
    self.registers = RegisterBank(forwardWattHours: initial, reverseWattHours: 0)
    self.trueEnergy = EnergyAccumulator(wattHours: 0)
    self.clock = MeterClock(epoch: epoch)
    self.status = RunStatusWord3(rawValue: 0)
    self.creditFen = 0
    self.chargedFromWattHours = 0
    self.purchaseCount = 0
    self.now = epoch
  }

  // MARK: Load

  /// The profile, or nil for the area meter.
  public var profile: LoadProfile? {
    if case .customer(let profile) = role { return profile }
    return nil
  }

  /// True for the area meter.
  public var isArea: Bool { role == .area }

  /// True when the meter has phases B and C (commercial customers and the area).
  public var isThreePhase: Bool { profile?.isThreePhase ?? true }

  /// The phases the meter hangs on (1 = A … 3 = C): all three for a three-phase meter,
  /// else A, B, C in turn by meter number (1 → A, 2 → B, 3 → C, 4 → A, …).
  public var phases: [Int] { isThreePhase ? [1, 2, 3] : [(number - 1) % 3 + 1] }

  /// `phases` as an archive writes them: `A`, `B`, `C` or `ABC`.
  public var phaseName: String {
    isThreePhase ? "ABC" : ["A", "B", "C"][(number - 1) % 3]
  }

  /// The customer's demand in `slot` (absolute 15-minute slot number), in W.
  func demand(inSlot slot: Int64, hour: Int, weekend: Bool) -> Int64 {
    guard let profile else { return 0 }
    let noise = Int64(mixHash(key, UInt64(bitPattern: slot), 0x10AD) % 501) + 750  // 750…1,250 ‰
    return baseWatts * profile.shapePermille(hour: hour, weekend: weekend) / 1_000 * noise / 1_000
  }

  /// Sets the load of `slot` if it is not already the current one.
  mutating func enterSlot(_ slot: Int64, hour: Int, weekend: Bool) {
    guard slot != loadSlot else { return }
    loadSlot = slot
    slotLoadWatts = demand(inSlot: slot, hour: hour, weekend: weekend)
  }

  /// The relay is open (supply cut).
  public var relayOpen: Bool { status.relayOpen }

  /// What the customer really draws now, in W: the slot's demand, or 0 while the
  /// relay is open (unless it is bypassed). For the area meter, the customers' total.
  public var trueLoadWatts: Int64 {
    if isArea { return areaLoadWatts }
    if supplyLost { return 0 }
    return relayOpen && !faults.relayBypassed ? 0 : slotLoadWatts
  }

  /// The power the meter measures now, in W (negative when wired backwards; the
  /// area meter adds the loss).
  public var measuredWatts: Int64 {
    if isArea { return areaLoadWatts * (1_000 + areaLossPermille) / 1_000 }
    let registering = faults.registering(at: now)
    let watts = trueLoadWatts * registering.permille / 1_000
    return registering.reverse ? -watts : watts
  }

  // MARK: Advancing

  /// Runs the meter from `now` to `target` (true time, within one load slot), with
  /// the area meter's rate given by `areaRatePermille` (W × ‰) and a customer's by
  /// its own load and faults.
  mutating func advance(to target: Int64, areaRatePermille: Int64 = 0) {
    guard target > now else { return }
    let from = faults.activeFromMilliseconds
    if now < from && from < target { advance(to: from, areaRatePermille: areaRatePermille) }
    let registering = faults.registering(at: now)
    let load = trueLoadWatts
    var forwardRate: Int64 = 0
    var reverseRate: Int64 = 0
    if isArea {
      forwardRate = areaRatePermille
    } else {
      trueEnergy.add(ratePermille: load * 1_000, milliseconds: target - now)
      if !registering.stopped {
        let rate = load * registering.permille
        if registering.reverse { reverseRate = rate } else { forwardRate = rate }
      }
    }
    // Split at the meter clock's 15-minute boundaries: the tariff changes only there,
    // and local midnight (a freeze) is one of them.
    while now < target {
      let meterNow = clock.meterTime(atTrue: now)
      let boundary =
        (floorDivide(meterNow, SimulatedMeter.slotMilliseconds) + 1) * SimulatedMeter.slotMilliseconds
      let boundaryTrue = max(clock.trueTime(whenMeterReaches: boundary), now + 1)
      let end = min(target, boundaryTrue)
      let duration = end - now
      if forwardRate != 0 {
        let hour = SimulatedMeter.zone.localDateTime(fromUnix: floorDivide(meterNow, 1_000)).hour
        registers.forward[SimulatedTariff.registerIndex(atLocalHour: hour)].add(
          ratePermille: forwardRate, milliseconds: duration)
      }
      if reverseRate != 0 {
        registers.reverse.add(ratePermille: reverseRate, milliseconds: duration)
      }
      now = end
      if end == boundaryTrue {
        let local = SimulatedMeter.zone.localDateTime(
          fromUnix: floorDivide(clock.meterTime(atTrue: end), 1_000))
        if local.secondOfDay == 0 { registers.freeze(day: local.date.daysSinceEpoch) }
      }
    }
  }

  // MARK: Commands

  /// The meter's clock now, unix milliseconds.
  public var meterTime: Int64 { clock.meterTime(atTrue: now) }

  /// Broadcast time: the clock shows `meterTime` from now on; a jump forward over
  /// local midnight takes that day's freeze.
  mutating func setClock(to meterTime: Int64) {
    let before = SimulatedMeter.zone.localDateTime(fromUnix: floorDivide(clock.meterTime(atTrue: now), 1_000))
    clock.set(meterTime: meterTime, atTrue: now)
    let after = SimulatedMeter.zone.localDateTime(fromUnix: floorDivide(meterTime, 1_000))
    if after.date > before.date { registers.freeze(day: after.date.daysSinceEpoch) }
  }

  // MARK: Registers

  /// The forward active registers as the meter reports them (0.01 kWh): the total and
  /// sharp, peak, flat, valley.
  public var forwardRegisters: EnergyRegisters {
    EnergyRegisters(total: registers.forwardTotalRegister, tariffs: registers.tariffRegisters)
  }

  /// The reverse active total register (0.01 kWh).
  public var reverseRegister: Int64 { registers.reverseTotalRegister }

  /// The energy the customer really used since the model's start, in Wh (0 for the
  /// area meter; the simulator's truth sums the customers for it).
  public var trueWattHours: Int64 { isArea ? 0 : trueEnergy.wattHours }

  /// The `previous`-th daily freeze back (1 = the last), if the meter has one.
  public func dailyFreeze(previous: Int) -> DailyFreeze? { registers.freeze(previous: previous) }

  /// The run status word 3 the meter reports.
  public var runStatusWord3: RunStatusWord3 { status }

  // MARK: Prepaid

  /// The remaining prepaid amount: the credit minus the charge, at the flat `price`,
  /// for the forward energy registered since the start (rounded half-up once).
  /// Negative once the customer is in overdraft.
  public func remaining(at price: Price) -> Money {
    let used = Energy(wattHours: registers.forwardWattHours - chargedFromWattHours)
    let charge = (try? Money.charge(for: used, at: price)) ?? Money(fen: Int64.max / 2)
    return Money(fen: creditFen) - charge
  }
}

import DLT645
import GridEdgeCore
import Runtime

/// The ground truth as JSON: what every meter has registered, for tests to compare
/// with what the agent stored.
///
/// `gridedge-sim truth` prints it for a simulated time with no commands received;
/// `gridedge-sim serve --truth-file PATH` writes the live state (after the
/// commands received) every `--truth-every` ms, on SIGHUP and at exit. Layout
/// (registers in 0.01 kWh as the meter reports them; energies in Wh):
///
/// ```
/// {"v":1,"time_ms":T,"time":"2026-01-01T00:00:00Z","seed":S,"price":4883,"loss_permille":50,
///  "tariff_order":["sharp","peak","flat","valley"],
///  "customers":[{"number":1,"address":"000000000001","role":"customer","profile":"residential",
///     "phases":1,"faults":{...},"relay_open":false,"keep_power":false,"trips":0,"closes":0,
///     "status_word_3":512,
///     "meter_time_ms":T,"load_w":350,"measured_w":350,"true_wh":12345,"forward_wh":...,
///     "forward_centi_kwh":[total,sharp,peak,flat,valley],"reverse_centi_kwh":0,
///     "remaining_fen":12345,"purchase_count":7,
///     "freezes":[{"previous":1,"date":"2026-01-01","forward_centi_kwh":[...]},...]}, ...],
///  "area":{... same, "role":"area", without prepaid fields} or null}
/// ```
///
/// A customer's `true_wh` counts from the model's start (the start minus the history
/// days); the area meter's `true_wh` is the customers' sum, so that
/// area forward energy growth = Σ true_wh growth × (1000 + loss) / 1000.
extension Simulator {
  /// The whole state as one JSON document (see the extension's documentation).
  public func truthJSON() -> String {
    var document = ""
    writeTruth { document += $0 }
    return document
  }

  /// The same document in pieces of about one meter each, so that 2,048 meters with
  /// 62 freezes (some 13 MB) never sit in memory at once.
  /// - Parameter sink: called with each piece, in order.
  public func writeTruth(_ sink: (String) -> Void) {
    var out = "{\"v\":1,\"time_ms\":" + String(now) + ",\"time\":\"" + formatUTC(milliseconds: now) + "\""
    out +=
      ",\"seed\":" + String(options.seed) + ",\"price\":"
      + String(options.price.tenThousandthsPerKilowattHour)
    out += ",\"loss_permille\":" + String(options.lossPermille)
    out += ",\"tariff_order\":[\"sharp\",\"peak\",\"flat\",\"valley\"],\"customers\":["
    for (index, meter) in meters.enumerated() {
      if index > 0 { out += "," }
      out += "\n"
      appendMeter(meter, state: true, to: &out)
      sink(out)
      out = ""
    }
    out += "],\n\"area\":"
    if let area { appendMeter(area, state: true, to: &out) } else { out += "null" }
    out += "}\n"
    sink(out)
  }

  /// The meters without their state, for `gridedge-sim list --json`:
  /// `{"customers":[{"number":1,"address":...,"role":...,"profile":...,"phases":1,"faults":{...}}],"area":{...}|null}`.
  public func listJSON() -> String {
    var out = "{\"customers\":["
    for (index, meter) in meters.enumerated() {
      if index > 0 { out += "," }
      out += "\n"
      appendMeter(meter, state: false, to: &out)
    }
    out += "],\n\"area\":"
    if let area { appendMeter(area, state: false, to: &out) } else { out += "null" }
    out += "}\n"
    return out
  }

  /// The customer addresses, one per line, for `gridedge-sim list`.
  public func addressLines() -> String {
    var out = ""
    for meter in meters { out += meter.address.description + "\n" }
    return out
  }

  /// The area meter's address and a newline, or nil with `--no-area`.
  public func areaAddressLine() -> String? {
    area.map { $0.address.description + "\n" }
  }

  private func appendMeter(_ meter: SimulatedMeter, state: Bool, to out: inout String) {
    out += "{\"number\":" + String(meter.number) + ",\"address\":\"" + meter.address.description + "\""
    out += ",\"role\":\"" + (meter.isArea ? "area" : "customer") + "\""
    if let profile = meter.profile { out += ",\"profile\":\"" + profile.name + "\"" }
    out += ",\"phases\":" + (meter.isThreePhase ? "3" : "1") + ",\"phase\":\"" + meter.phaseName + "\""
    let faults = meter.faults
    out += ",\"faults\":{\"registered_permille\":" + String(faults.registeredPermille)
    out += ",\"stopped\":" + bool(faults.stopped) + ",\"reverse\":" + bool(faults.reverse)
    out +=
      ",\"silent\":" + bool(faults.silent) + ",\"drift_ms_per_day\":" + String(faults.driftMillisecondsPerDay)
    out += ",\"slow_ms\":" + String(faults.extraDelayMilliseconds)
    out += ",\"relay_bypass\":" + bool(faults.relayBypassed) + "}"
    guard state else {
      out += "}"
      return
    }
    let registers = meter.registers
    out += ",\"relay_open\":" + bool(meter.relayOpen) + ",\"keep_power\":" + bool(meter.status.keepPower)
    out += ",\"trips\":" + String(meter.tripsAccepted) + ",\"closes\":" + String(meter.closesAccepted)
    out +=
      ",\"supply_lost\":" + bool(meter.supplyLost) + ",\"lost_phases\":"
      + list(meter.lostPhases.map { Int64($0) })
    out += ",\"status_word_3\":" + String(meter.status.rawValue)
    out += ",\"meter_time_ms\":" + String(meter.meterTime)
    out += ",\"load_w\":" + String(meter.trueLoadWatts) + ",\"measured_w\":" + String(meter.measuredWatts)
    let trueWattHours =
      meter.isArea ? meters.reduce(Int64(0)) { $0 + $1.trueEnergy.wattHours } : meter.trueEnergy.wattHours
    out += ",\"true_wh\":" + String(trueWattHours)
    out += ",\"forward_wh\":" + String(registers.forwardWattHours)
    out += ",\"forward_centi_kwh\":" + list([registers.forwardTotalRegister] + registers.tariffRegisters)
    out += ",\"reverse_centi_kwh\":" + String(registers.reverseTotalRegister)
    if !meter.isArea {
      out += ",\"remaining_fen\":" + String(meter.remaining(at: options.price).fen)
      out += ",\"purchase_count\":" + String(meter.purchaseCount)
    }
    out += ",\"freezes\":["
    var previous = 1
    while let freeze = registers.freeze(previous: previous) {
      if previous > 1 { out += "," }
      out +=
        "{\"previous\":" + String(previous) + ",\"date\":\""
        + CivilDate(daysSinceEpoch: freeze.day).isoText + "\",\"forward_centi_kwh\":"
        + list([freeze.total] + freeze.tariffs) + "}"
      previous += 1
    }
    out += "]}"
  }
}

private func bool(_ value: Bool) -> String { value ? "true" : "false" }

private func list(_ values: [Int64]) -> String {
  var out = "["
  for (index, value) in values.enumerated() {
    if index > 0 { out += "," }
    out += String(value)
  }
  return out + "]"
}

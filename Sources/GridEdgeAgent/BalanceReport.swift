import GridEdgeCore
import Runtime
import SQLiteStore

/// `gridedge balance`: the energy balance of one transformer area for one local day,
/// computed from the agent's database (opened read-only; the agent may be running),
/// as a report for an engineer on site or, with `--json`, one JSON object.
public enum BalanceReport {
  /// Computes and prints the balance of `area` for local day `day` (`YYYY-MM-DD`),
  /// or for one local hour of it (`hour`, `0`…`23`, from the 15-minute readings).
  /// - Returns: the exit code: 0 when the balance was computed (also when it is
  ///   flagged or its rate withheld), 2 for a bad argument or an area the archive
  ///   does not describe, 1 without a readable database.
  public static func run(config: Config, area: String, day: String, hour: String? = nil, json: Bool) -> Int32
  {
    let offset = UTCOffset(seconds: config.integer("device.utc_offset") * 60) ?? .china
    guard let date = parseDay(day) else {
      Console.writeError("gridedge balance: --day '" + day + "' is not a date YYYY-MM-DD\n")
      return ExitCode.config
    }
    var hourNumber: Int? = nil
    if let hour {
      guard let h = Int(hour), h >= 0, h <= 23, hour.utf8.count <= 2 else {
        Console.writeError("gridedge balance: --hour '" + hour + "' is not an hour 0-23\n")
        return ExitCode.config
      }
      hourNumber = h
    }
    let path = config.string("store.path") ?? ""
    guard Files.exists(path) else {
      Log.error(
        "balance",
        "no database at " + path + " (store.path in " + config.file + "): the agent has not run yet")
      return ExitCode.failure
    }
    var options = Connection.Options()
    options.readOnly = true
    options.verifyIntegrity = false
    let db: Connection
    do {
      db = try Connection(path: path, options: options)
    } catch {
      Log.error("balance", "database " + path + ": " + error.description)
      return ExitCode.failure
    }
    let result: Balance.Result
    do {
      let settings = DailyBalance.Settings(config: config)
      if let hourNumber {
        result = try Balance.computeHour(
          db: db, area: area, day: date, hour: hourNumber, offset: offset, historyDays: settings.historyDays,
          thresholds: settings.thresholds)
      } else {
        result = try Balance.compute(
          db: db, area: area, day: date, offset: offset, historyDays: settings.historyDays,
          thresholds: settings.thresholds)
      }
    } catch {
      if error.isArchiveProblem {
        Console.writeError("gridedge balance: " + error.description + "\n")
        return ExitCode.config
      }
      Log.error("balance", "database " + path + ": " + error.description)
      return ExitCode.failure
    }
    Console.writeLine(json ? jsonText(result) : text(result, offset: offset))
    return ExitCode.ok
  }

  /// `YYYY-MM-DD` as a date.
  static func parseDay(_ text: String) -> CivilDate? {
    let bytes = Array(text.utf8)
    guard bytes.count == 10, bytes[4] == 0x2D, bytes[7] == 0x2D else { return nil }
    func number(_ range: Range<Int>) -> Int? {
      var value = 0
      for i in range {
        guard bytes[i] >= 0x30 && bytes[i] <= 0x39 else { return nil }
        value = value * 10 + Int(bytes[i] - 0x30)
      }
      return value
    }
    guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10) else { return nil }
    return CivilDate(year: Int64(year), month: month, day: day)
  }

  /// The report for people.
  static func text(_ result: Balance.Result, offset: UTCOffset) -> String {
    let b = result.balance
    let input = result.input
    var lines: [String] = []
    lines.append(
      "area " + b.area + ", " + result.day.isoText + (result.hour.map { " " + hourText($0) } ?? "")
        + " (local, UTC" + ReadingsReport.offsetText(offset) + ")")
    if let supplied = b.supplied, let area = input.areaEnergy {
      lines.append(
        "supplied      " + kWh(supplied) + " kWh  (area meter " + input.areaMeter + ": " + kWh(area)
          + " kWh × CT "
          + String(input.ctRatio) + ")")
    } else {
      lines.append(
        "supplied      unknown (area meter " + input.areaMeter + " has no energy for the "
          + (result.hour == nil ? "day)" : "hour)"))
    }
    let customersWithData = input.customers.filter { $0.energy != nil }.count
    lines.append(
      "sold          " + kWh(b.sold) + " kWh  (" + String(customersWithData) + " of "
        + String(input.customers.count) + " customer meters)")
    lines.append("loss          " + (b.loss.map { kWh($0) + " kWh" } ?? "unknown"))
    if let rate = b.lossRateBasisPoints {
      lines.append("loss rate     " + EnergyBalance.percent(rate))
    } else if let withheld = b.withheld {
      lines.append("loss rate     withheld: " + withheld.description)
    }
    lines.append(
      "completeness  " + EnergyBalance.percent(b.completenessBasisPoints) + " (" + String(b.metersWithData)
        + " of " + String(b.metersInArea) + " meters)")
    var missing = ""
    for meter in b.missing { missing += (missing.isEmpty ? "" : " ") + meter }
    lines.append("missing       " + (missing.isEmpty ? "none" : missing))
    if b.flags.isEmpty {
      lines.append("flags         none")
    } else {
      for flag in b.flags { lines.append("FLAG " + flag.code + ": " + flag.description) }
    }
    if b.suspects.isEmpty {
      lines.append("suspects      none")
    } else {
      lines.append("suspects (highest score first):")
      for (i, s) in b.suspects.prefix(10).enumerated() {
        lines.append(
          "  " + String(i + 1) + ". " + s.meter + (s.customer.isEmpty ? "" : " (" + s.customer + ")")
            + "  score "
            + String(s.score) + ", drop " + kWh(s.drop) + " kWh explains "
            + EnergyBalance.percent(s.explainedBasisPoints) + " of the loss")
        for anomaly in s.anomalies { lines.append("       " + anomaly.description) }
      }
      if b.suspects.count > 10 { lines.append("  … " + String(b.suspects.count - 10) + " more (see --json)") }
    }
    var out = ""
    for (i, line) in lines.enumerated() { out += (i == 0 ? "" : "\n") + line }
    return out
  }

  /// The report as one JSON object: energies in Wh, rates and shares in basis points;
  /// `supplied_wh`, `loss_wh`, `loss_rate_bp` and `withheld` are null when not known.
  /// `suspects` lists at most `suspectLimit`, highest score first; `suspects_total`
  /// says how many there are. An `energy-while-open` anomaly's `energy_wh` is what the
  /// meter registered while its relay was known open, between the readings at
  /// `open_from` and `open_to` (Unix ms); `open_since` is when the trip was verified,
  /// `open_until` when a close was requested (null: still open).
  static func jsonText(_ result: Balance.Result, suspectLimit: Int = Int.max) -> String {
    let b = result.balance
    func int(_ v: Int64?) -> String { v.map { String($0) } ?? "null" }
    var out = "{\"area\":" + quoted(b.area) + ",\"day\":" + quoted(result.day.isoText)
    if let hour = result.hour { out += ",\"hour\":" + String(hour) }
    out +=
      ",\"area_meter\":" + quoted(result.input.areaMeter) + ",\"ct_ratio\":" + String(result.input.ctRatio)
    out += ",\"supplied_wh\":" + int(b.supplied?.wattHours) + ",\"sold_wh\":" + String(b.sold.wattHours)
    out += ",\"loss_wh\":" + int(b.loss?.wattHours) + ",\"loss_rate_bp\":" + int(b.lossRateBasisPoints)
    if let withheld = b.withheld {
      out +=
        ",\"withheld\":{\"code\":" + quoted(withheld.code) + ",\"reason\":" + quoted(withheld.description)
        + "}"
    } else {
      out += ",\"withheld\":null"
    }
    out += ",\"meters\":" + String(b.metersInArea) + ",\"meters_with_data\":" + String(b.metersWithData)
    out += ",\"completeness_bp\":" + String(b.completenessBasisPoints) + ",\"missing\":["
    for (i, meter) in b.missing.enumerated() { out += (i == 0 ? "" : ",") + quoted(meter) }
    out += "],\"flags\":["
    for (i, flag) in b.flags.enumerated() {
      out +=
        (i == 0 ? "" : ",") + "{\"code\":" + quoted(flag.code) + ",\"detail\":" + quoted(flag.description)
        + "}"
    }
    out += "],\"suspects_total\":" + String(b.suspects.count) + ",\"suspects\":["
    for (i, s) in b.suspects.prefix(suspectLimit).enumerated() {
      out += (i == 0 ? "" : ",") + "{\"meter\":" + quoted(s.meter) + ",\"customer\":" + quoted(s.customer)
      out += ",\"grade\":" + (s.grade.map { quoted($0.letter) } ?? "null")
      out += ",\"past_suspect_days\":" + String(s.pastSuspectDays)
      out += ",\"score\":" + String(s.score) + ",\"explained_bp\":" + String(s.explainedBasisPoints)
      out += ",\"drop_wh\":" + String(s.drop.wattHours) + ",\"anomalies\":["
      for (j, a) in s.anomalies.enumerated() {
        out +=
          (j == 0 ? "" : ",") + "{\"rule\":" + quoted(a.rule.code) + ",\"energy_wh\":"
          + String(a.energy.wattHours)
          + ",\"median_wh\":" + String(a.median.wattHours) + ",\"history_days\":" + String(a.historyDays)
          + (a.rule == .clockDrift ? ",\"drift_s\":" + String(a.driftSeconds) : "")
          + (a.rule == .missedReads
            ? ",\"missed\":" + String(a.missed) + ",\"expected\":" + String(a.expected) : "")
          + (a.openRelay.map {
            ",\"open_since\":" + String($0.since) + ",\"open_until\":" + int($0.until) + ",\"open_from\":"
              + String($0.from) + ",\"open_to\":" + String($0.to)
          } ?? "")
          + ",\"evidence\":" + quoted(a.description) + "}"
      }
      out += "]}"
    }
    return out + "]}"
  }

  /// `14:00-15:00` for hour 14.
  static func hourText(_ hour: Int) -> String {
    func two(_ n: Int) -> String { (n < 10 ? "0" : "") + String(n) }
    return two(hour) + ":00-" + two(hour + 1) + ":00"
  }

  /// `1234.56` for 1,234,560 Wh (kWh with two decimals, truncated toward zero).
  static func kWh(_ energy: Energy) -> String { ReadingsReport.kilowattHours(energy.wattHours) }

  /// `text` as a JSON string literal (`jsonString`).
  static func quoted(_ text: String) -> String { jsonString(text) }
}

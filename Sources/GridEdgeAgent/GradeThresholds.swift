import GridEdgeCore
import SQLiteStore

/// The prepaid thresholds per credit grade (DESIGN.md §6): `prepaid.*` for every
/// grade, overridden per grade by `prepaid.grades`. A customer's grade is the one the
/// device computed (`credit_grades`, see `Credit`), else the grade letter of its first
/// customer meter in the archive (`gradeSQL`).
///
/// `prepaid.grades` is `GRADE:FIELD=FEN/FIELD=FEN...` separated by commas, FIELD one
/// of `alarm1`, `alarm2`, `overdraft`, `close_permit`, `hoarding`; a field not listed
/// keeps its `prepaid.*` value, a grade not listed uses `prepaid.*` entirely. Each
/// grade's resulting set must be in order (see `PrepaidThresholds.init`).
public struct GradeThresholds: Sendable {
  /// `prepaid.*`: the thresholds of every grade not in `byGrade`.
  public let base: PrepaidThresholds
  /// The complete thresholds of each listed grade.
  public let byGrade: [String: PrepaidThresholds]
  /// The arrears rebate (`prepaid.rebate*`), carried with the thresholds to where
  /// top-ups are applied; nil: no rebate.
  public var rebate: ArrearsRebateRule? = nil

  /// One set of thresholds for every grade.
  public init(base: PrepaidThresholds, byGrade: [String: PrepaidThresholds] = [:]) {
    self.base = base
    self.byGrade = byGrade
  }

  /// Reads `prepaid.*` and `prepaid.grades`.
  /// - Throws: `ConfigError` naming the key, line and what is wrong.
  public init(config: Config) throws(ConfigError) {
    let base: PrepaidThresholds
    do {
      base = try PrepaidThresholds(
        alarm1: Money(fen: config.integer("prepaid.alarm1")),
        alarm2: Money(fen: config.integer("prepaid.alarm2")),
        overdraftLimit: Money(fen: config.integer("prepaid.overdraft_limit")),
        closePermit: Money(fen: config.integer("prepaid.close_permit")),
        hoardingLimit: Money(fen: config.integer("prepaid.hoarding_limit")))
    } catch {
      // The one key of the set the file sets last is the likeliest culprit; name the set.
      let keys = ["prepaid.alarm1", "prepaid.alarm2", "prepaid.overdraft_limit", "prepaid.close_permit"]
      let key = keys.max { config.line(of: $0) < config.line(of: $1) } ?? "prepaid.hoarding_limit"
      throw config.error(key, "prepaid.* thresholds: " + error.description)
    }
    var byGrade: [String: PrepaidThresholds] = [:]
    if let text = config.string("prepaid.grades") {
      do throws(RelaySettingsError) {
        byGrade = try Self.parse(text, base: base)
      } catch {
        throw config.error("prepaid.grades", error.description)
      }
    }
    self.init(base: base, byGrade: byGrade)
    guard config.integer("prepaid.rebate") > 0 else { return }
    do {
      rebate = try ArrearsRebateRule(
        windowSeconds: config.integer("prepaid.rebate_window"), basisPoints: config.integer("prepaid.rebate"),
        cap: Money(fen: config.integer("prepaid.rebate_cap")))
    } catch {
      throw config.error("prepaid.rebate", error.description)
    }
  }

  /// The thresholds of credit grade `grade` (nil or unlisted: `base`).
  public func thresholds(grade: String?) -> PrepaidThresholds {
    guard let grade, let own = byGrade[grade] else { return base }
    return own
  }

  /// The thresholds of `customer`, by its effective grade.
  public func thresholds(customer: String, db: Connection) throws(SQLiteError) -> PrepaidThresholds {
    thresholds(grade: try Self.grade(customer: customer, db: db))
  }

  /// The effective grade of `customer`: the device's, else the archive's (nil: neither).
  public static func grade(customer: String, db: Connection) throws(SQLiteError) -> String? {
    try db.query("SELECT " + gradeSQL, [.text(customer)]).first?.text(0)
  }

  /// SQL: the effective grade of the customer in `customerColumn` (a column name, or a
  /// parameter): the device's grade, else the archive's letter of its first customer meter.
  static func gradeSQL(of customerColumn: String) -> String {
    "coalesce((SELECT cg.grade FROM credit_grades cg WHERE cg.customer = " + customerColumn
      + "), (SELECT gm.grade FROM archive_meters gm WHERE gm.customer = " + customerColumn
      + " AND gm.area_meter = 0 ORDER BY gm.address LIMIT 1))"
  }

  static let gradeSQL = gradeSQL(of: "?1")

  /// SQL: the overdraft limit (fen) of the customer in `customerColumn`, with the base
  /// limit in parameter `?base` and `json` in parameter `?json`.
  static func overdraftSQL(of customerColumn: String, base: Int, json: Int) -> String {
    "coalesce((SELECT json_extract(value, '$.overdraft') FROM json_each(?" + String(json) + ") WHERE key = "
      + gradeSQL(of: customerColumn) + "), ?" + String(base) + ")"
  }

  /// SQL: the close-permit amount (fen), as `overdraftSQL`.
  static func closePermitSQL(of customerColumn: String, base: Int, json: Int) -> String {
    "coalesce((SELECT json_extract(value, '$.close_permit') FROM json_each(?" + String(json)
      + ") WHERE key = " + gradeSQL(of: customerColumn) + "), ?" + String(base) + ")"
  }

  /// The listed grades' overdraft and close-permit amounts as a JSON object for SQL
  /// (`{"C":{"overdraft":0,"close_permit":1000},...}`), bound as a parameter.
  public var json: String {
    var text = "{"
    for (grade, own) in byGrade.sorted(by: { $0.key < $1.key }) {
      if text.utf8.count > 1 { text += "," }
      // Grade names are checked at parse time to be [A-Za-z0-9_-], so they need no escaping.
      text +=
        "\"" + grade + "\":{\"overdraft\":" + String(own.overdraftLimit.fen) + ",\"close_permit\":"
        + String(own.closePermit.fen) + "}"
    }
    return text + "}"
  }

  /// Parses `prepaid.grades`.
  static func parse(_ text: String, base: PrepaidThresholds) throws(RelaySettingsError) -> [String:
    PrepaidThresholds]
  {
    var out: [String: PrepaidThresholds] = [:]
    let expected =
      "expected GRADE:FIELD=FEN/... separated by commas (FIELD: alarm1, alarm2, overdraft, close_permit, hoarding)"
    for item in RelaySettings.list(text) {
      let parts = item.split(separator: ":", omittingEmptySubsequences: false)
      guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 16,
        parts[0].utf8.allSatisfy({ isGradeByte($0) }), !parts[1].isEmpty
      else { throw RelaySettingsError(expected + "; '" + item + "' is not one") }
      let grade = String(parts[0])
      guard out[grade] == nil else { throw RelaySettingsError("grade " + grade + " is listed twice") }
      var alarm1 = base.alarm1
      var alarm2 = base.alarm2
      var overdraft = base.overdraftLimit
      var closePermit = base.closePermit
      var hoarding = base.hoardingLimit
      var seen: Set<String> = []
      for field in parts[1].split(separator: "/", omittingEmptySubsequences: false) {
        let pair = field.split(separator: "=", omittingEmptySubsequences: false)
        guard pair.count == 2, let fen = Int64(String(pair[1])), fen >= -100_000_000, fen <= 100_000_000_000
        else {
          throw RelaySettingsError(
            "grade " + grade + ": expected FIELD=FEN (an integer number of fen), got '" + String(field) + "'")
        }
        let name = String(pair[0])
        guard seen.insert(name).inserted else {
          throw RelaySettingsError("grade " + grade + ": " + name + " is given twice")
        }
        switch name {
        case "alarm1": alarm1 = Money(fen: fen)
        case "alarm2": alarm2 = Money(fen: fen)
        case "overdraft": overdraft = Money(fen: fen)
        case "close_permit": closePermit = Money(fen: fen)
        case "hoarding": hoarding = Money(fen: fen)
        default:
          throw RelaySettingsError(
            "grade " + grade + ": unknown field '" + name
              + "' (alarm1, alarm2, overdraft, close_permit, hoarding)")
        }
      }
      do {
        out[grade] = try PrepaidThresholds(
          alarm1: alarm1, alarm2: alarm2, overdraftLimit: overdraft, closePermit: closePermit,
          hoardingLimit: hoarding)
      } catch {
        throw RelaySettingsError("grade " + grade + ": " + error.description)
      }
    }
    return out
  }

  private static func isGradeByte(_ byte: UInt8) -> Bool {
    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
      || byte == 0x5F || byte == 0x2D
  }
}

import SQLiteStore

/// What a signed command asks the device to do (its `typ` claim).
public enum CommandType: CaseIterable, Equatable, Sendable {
  /// A new tariff version (prices, periods, blocks, effective date).
  case tariff
  /// A prepaid top-up (idempotent by purchase count).
  case topup
  /// Disconnect a customer (DL/T 645 0x1C trip), subject to local policy.
  case disconnect
  /// Reconnect a customer (DL/T 645 0x1C close).
  case reconnect
  /// Mark or unmark a customer as keep-power (never disconnected).
  case keepPower
  /// An inspection or repair work order (handheld mode).
  case workorder
  /// A configuration change.
  case config
  /// Customer and meter archive (master data) records.
  case archive
  /// A planned or unplanned outage notice for the area.
  case outage
  /// A planned outage of an area: a window without supply HQ announces.
  case plannedOutage

  /// The `typ` value: `tariff`, `topup`, `disconnect`, `reconnect`, `keep-power`,
  /// `workorder`, `config`, `archive`, `outage` or `planned-outage`.
  public var name: String {
    switch self {
    case .tariff: return "tariff"
    case .topup: return "topup"
    case .disconnect: return "disconnect"
    case .reconnect: return "reconnect"
    case .keepPower: return "keep-power"
    case .workorder: return "workorder"
    case .config: return "config"
    case .archive: return "archive"
    case .outage: return "outage"
    case .plannedOutage: return "planned-outage"
    }
  }

  /// The type named `name` (compared byte for byte), nil when unknown.
  public init?(name: String) {
    for type in CommandType.allCases where type.name.utf8.elementsEqual(name.utf8) {
      self = type
      return
    }
    return nil
  }
}

/// The claims of a signed command (DESIGN.md §5): the JWS payload
/// `{"dev":D,"ctr":N,"iat":T,"exp":T,"typ":"...","body":{...}}`.
public struct Command: Equatable, Sendable {
  /// `dev`: the device the command is for.
  public var device: String
  /// `ctr`: HQ's counter for this device, unsigned 64-bit, strictly increasing; the
  /// first command a device accepts has a counter of at least 1.
  public var counter: UInt64
  /// `iat`: when HQ issued it, Unix seconds.
  public var issuedAt: Int64
  /// `exp`: when it stops being valid, Unix seconds (valid while now < exp).
  public var expiresAt: Int64
  /// `typ`: what to do.
  public var type: CommandType
  /// `body`: the type's parameters, the JSON text of an object, for the type's handler.
  public var body: String

  public init(
    device: String, counter: UInt64, issuedAt: Int64, expiresAt: Int64, type: CommandType, body: String
  ) {
    self.device = device
    self.counter = counter
    self.issuedAt = issuedAt
    self.expiresAt = expiresAt
    self.type = type
    self.body = body
  }

  /// The claims JSON, members in a fixed order, `body` minified.
  /// - Parameter json: a connection for the JSON functions (no table is touched).
  /// - Throws: `JWSError` (`cannot-sign`) when `device` is not a device id, `counter`
  ///   is 0, `issuedAt` is negative or not before `expiresAt`, or `body` is not a JSON
  ///   object (with no member twice).
  public func claims(json: Connection) throws(JWSError) -> String {
    guard Topics.isValidDeviceID(device) else {
      throw JWSError(.cannotSign("dev \"" + printableExcerpt(device) + "\" is not a device id"))
    }
    guard counter >= 1 else { throw JWSError(.cannotSign("ctr must be at least 1")) }
    guard issuedAt >= 0, issuedAt < expiresAt else {
      throw JWSError(.cannotSign("iat must be at least 0 and before exp"))
    }
    let text: String
    do throws(JSONCheckError) {
      text = try jsonObjectText(Array(body.utf8), json: json)
    } catch {
      throw JWSError(
        error.isInternal ? .internalError(error.description) : .cannotSign("body " + error.description))
    }
    let minified: String
    do {
      minified = try json.query("SELECT json(?1)", [.text(text)]).first?.text(0) ?? ""
    } catch {
      throw JWSError(.internalError("JSON evaluation failed: " + error.description))
    }
    // Device ids and type names need no JSON escaping; numbers are written as digits.
    return #"{"dev":""# + device + #"","ctr":"# + String(counter) + #","iat":"# + String(issuedAt)
      + #","exp":"# + String(expiresAt) + #","typ":""# + type.name + #"","body":"# + minified + "}"
  }

  /// The command as a compact JWS signed with `key` (`alg` `Ed25519`, `kid` `keyID`).
  /// - Throws: `JWSError` (`cannot-sign`) as `claims(json:)` and `JWS.sign` do.
  public func signed(with key: Ed25519KeyPair, keyID: String, json: Connection) throws(JWSError) -> String {
    try JWS.sign(payload: Array(claims(json: json).utf8), key: key, keyID: keyID)
  }

  /// Parses an unsigned decimal counter strictly: ASCII digits only, no sign, no
  /// leading zero (except "0" itself), at most `UInt64.max`.
  public static func parseCounter(_ text: String) -> UInt64? {
    let digits = Array(text.utf8)
    guard !digits.isEmpty, digits.count == 1 || digits[0] != UInt8(ascii: "0") else { return nil }
    var value: UInt64 = 0
    for d in digits {
      guard d >= 0x30 && d <= 0x39 else { return nil }
      let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
      let (sum, overflow2) = times10.addingReportingOverflow(UInt64(d - 0x30))
      if overflow1 || overflow2 { return nil }
      value = sum
    }
    return value
  }
}

/// A command whose signature, claims, device, counter and times were all accepted.
public struct VerifiedCommand: Equatable, Sendable {
  public let command: Command
  /// The id of the trusted key that signed it.
  public let keyID: String
  /// The header's `alg`: `Ed25519` or `EdDSA`.
  public let algorithm: String
}

/// Checks signed commands for one device (DESIGN.md §5). Pure: it reads no database;
/// the caller passes the last accepted counter and the time, and commits the command's
/// effect together with its counter.
///
/// Checks, in this order (the first failure is the rejection):
/// 1. the JWS (size, form, header, `alg`, `kid`, signature: see `JWS`);
/// 2. the claims: a JSON object with `dev` (string), `ctr` (integer 0 ... 2^64 - 1,
///    read from its JSON text, since SQLite turns integers above `Int64.max` into REAL),
///    `iat` and `exp` (integers ≥ 0, `iat` < `exp`), `typ` (string), `body` (object);
///    no member name twice at any depth;
/// 3. `dev` equals this device (byte for byte) else `wrong-device`;
/// 4. `ctr` > the last accepted counter else `replayed` (a QoS 1 redelivery of the last
///    command is `replayed` with `counter` equal to the last accepted one);
/// 5. `iat` ≤ now + allowed clock skew else `not-yet-valid`;
/// 6. now < `exp` else `expired`;
/// 7. `typ` is a known `CommandType` else `unknown-type`.
public struct CommandVerifier {
  /// This device's id.
  public let device: String
  /// The keys commands may be signed with.
  public let trustedKeys: TrustedKeys
  /// How far in the future `iat` may be (the device's clock may lag HQ's), seconds.
  public let allowedClockSkew: Int64
  private let json: Connection

  /// - Parameters:
  ///   - device: this device's id.
  ///   - trustedKeys: the keys commands may be signed with.
  ///   - allowedClockSkew: seconds `iat` may be ahead of the device's clock (default 300).
  /// - Throws: `SQLiteError` when the in-memory connection for the JSON functions cannot
  ///   be opened.
  public init(device: String, trustedKeys: TrustedKeys, allowedClockSkew: Int64 = 300) throws(SQLiteError) {
    self.device = device
    self.trustedKeys = trustedKeys
    self.allowedClockSkew = max(0, allowedClockSkew)
    var options = Connection.Options()
    options.walMode = false
    options.verifyIntegrity = false
    json = try Connection(path: ":memory:", options: options)
  }

  /// Verifies one command.
  /// - Parameters:
  ///   - token: the compact JWS (the MQTT payload).
  ///   - lastCounter: the highest counter this device accepted so far (0 when none).
  ///   - now: the device's wall time, Unix seconds.
  /// - Returns: the verified command.
  /// - Throws: `CommandRejection` with the reason.
  public func verify(_ token: [UInt8], lastCounter: UInt64, now: Int64) throws(CommandRejection)
    -> VerifiedCommand
  {
    let jws: VerifiedJWS
    do throws(JWSError) {
      jws = try JWS.verify(token, trustedKeys: trustedKeys, json: json)
    } catch {
      throw CommandRejection(jws: error)
    }
    // From here on the command is authentic: it was signed by a trusted key.
    let keyID = jws.keyID ?? ""
    let claims = try readClaims(jws.payload, keyID: keyID)
    let counter = claims.counter
    func reject(_ kind: CommandRejection.Kind) -> CommandRejection {
      CommandRejection(kind, keyID: keyID, counter: counter)
    }
    guard claims.device.utf8.elementsEqual(device.utf8) else { throw reject(.wrongDevice(claims.device)) }
    guard counter > lastCounter else { throw reject(.replayed(counter: counter, last: lastCounter)) }
    let latestIssue = now > Int64.max - allowedClockSkew ? Int64.max : now + allowedClockSkew
    guard claims.issuedAt <= latestIssue else {
      throw reject(.notYetValid(issuedAt: claims.issuedAt, now: now))
    }
    guard now < claims.expiresAt else { throw reject(.expired(expiresAt: claims.expiresAt, now: now)) }
    guard let type = CommandType(name: claims.typeName) else { throw reject(.unknownType(claims.typeName)) }
    return VerifiedCommand(
      command: Command(
        device: claims.device, counter: counter, issuedAt: claims.issuedAt, expiresAt: claims.expiresAt,
        type: type, body: claims.body),
      keyID: keyID, algorithm: jws.algorithm)
  }

  /// Verifies one command given as text.
  public func verify(_ token: String, lastCounter: UInt64, now: Int64) throws(CommandRejection)
    -> VerifiedCommand
  {
    try verify(Array(token.utf8), lastCounter: lastCounter, now: now)
  }

  private struct Claims {
    var device: String
    var counter: UInt64
    var issuedAt: Int64
    var expiresAt: Int64
    var typeName: String
    var body: String
  }

  private func readClaims(_ payload: [UInt8], keyID: String) throws(CommandRejection) -> Claims {
    func malformed(_ what: String) -> CommandRejection {
      CommandRejection(.malformed(what), keyID: keyID, counter: nil)
    }
    let text: String
    do throws(JSONCheckError) {
      text = try jsonObjectText(payload, json: json)
    } catch {
      throw error.isInternal
        ? CommandRejection(.internalError(error.description), keyID: keyID, counter: nil)
        : malformed("the payload " + error.description)
    }
    let rows: [Row]
    do {
      rows = try json.query(
        """
        SELECT json_type(?1, '$.dev'), json_extract(?1, '$.dev'), json_type(?1, '$.ctr'), ?1 -> '$.ctr',
          json_type(?1, '$.iat'), json_extract(?1, '$.iat'), json_type(?1, '$.exp'),
          json_extract(?1, '$.exp'), json_type(?1, '$.typ'), json_extract(?1, '$.typ'),
          json_type(?1, '$.body'), json_extract(?1, '$.body')
        """, [.text(text)])
    } catch {
      throw CommandRejection(
        .internalError("JSON evaluation failed: " + error.description), keyID: keyID, counter: nil)
    }
    guard let row = rows.first else {
      throw CommandRejection(.internalError("JSON evaluation returned no row"), keyID: keyID, counter: nil)
    }
    func presence(_ name: String, _ typeColumn: Int, _ expected: String) -> String {
      row.text(typeColumn) == nil
        ? "claim " + name + " is missing"
        : "claim " + name + " is not " + expected + " (it is " + (row.text(typeColumn) ?? "") + ")"
    }
    guard row.text(0) == "text", let device = row.text(1) else {
      throw malformed(presence("dev", 0, "a string"))
    }
    guard row.text(2) == "integer", let counterText = row.text(3) else {
      throw malformed(presence("ctr", 2, "an integer"))
    }
    guard let counter = Command.parseCounter(counterText) else {
      throw malformed(
        counterText.hasPrefix("-")
          ? "claim ctr is negative"
          : "claim ctr " + printableExcerpt(counterText) + " is larger than 18446744073709551615")
    }
    guard row.text(4) == "integer", let issuedAt = row.int64(5) else {
      throw malformed(
        row.text(4) == "integer" ? "claim iat is out of range" : presence("iat", 4, "an integer"))
    }
    guard row.text(6) == "integer", let expiresAt = row.int64(7) else {
      throw malformed(
        row.text(6) == "integer" ? "claim exp is out of range" : presence("exp", 6, "an integer"))
    }
    guard issuedAt >= 0, expiresAt >= 0 else { throw malformed("claims iat and exp must not be negative") }
    guard issuedAt < expiresAt else { throw malformed("claim exp is not after iat") }
    guard row.text(8) == "text", let typeName = row.text(9) else {
      throw malformed(presence("typ", 8, "a string"))
    }
    guard row.text(10) == "object", let body = row.text(11) else {
      throw malformed(presence("body", 10, "an object"))
    }
    return Claims(
      device: device, counter: counter, issuedAt: issuedAt, expiresAt: expiresAt, typeName: typeName,
      body: body)
  }
}

/// Why a signed command was refused.
///
/// `code` is a stable short name for the `results` class upstream; `description` says
/// what exactly was wrong, for people.
public struct CommandRejection: Error, CustomStringConvertible, Equatable, Sendable {
  enum Kind: Equatable, Sendable {
    case malformed(String)
    case unsupportedAlgorithm(String)
    case unknownKey(String)
    case badSignature
    case wrongDevice(String)
    case replayed(counter: UInt64, last: UInt64)
    case expired(expiresAt: Int64, now: Int64)
    case notYetValid(issuedAt: Int64, now: Int64)
    case unknownType(String)
    case internalError(String)
  }

  let kind: Kind
  /// The signing key's id, when the signature verified (see `isAuthentic`).
  public let keyID: String?
  /// The command's `ctr`, when the signature verified and the claims could be read:
  /// what the rejection is reported against.
  public let counter: UInt64?

  init(_ kind: Kind, keyID: String?, counter: UInt64?) {
    self.kind = kind
    self.keyID = keyID
    self.counter = counter
  }

  init(jws error: JWSError) {
    switch error.kind {
    case .malformed(let what): kind = .malformed(what)
    case .unsupportedAlgorithm(let algorithm): kind = .unsupportedAlgorithm(algorithm)
    case .unknownKey(let keyID): kind = .unknownKey(keyID)
    case .badSignature: kind = .badSignature
    case .cannotSign(let why), .internalError(let why): kind = .internalError(why)
    }
    keyID = nil
    counter = nil
  }

  /// Every `code`, for documentation and for HQ's tables.
  public static let codes = [
    "malformed", "unsupported-algorithm", "unknown-key", "bad-signature", "wrong-device", "replayed",
    "expired", "not-yet-valid", "unknown-type", "internal-error",
  ]

  /// `malformed`, `unsupported-algorithm`, `unknown-key`, `bad-signature`,
  /// `wrong-device`, `replayed`, `expired`, `not-yet-valid`, `unknown-type`, or
  /// `internal-error` (the device failed, not the command).
  public var code: String {
    switch kind {
    case .malformed: return "malformed"
    case .unsupportedAlgorithm: return "unsupported-algorithm"
    case .unknownKey: return "unknown-key"
    case .badSignature: return "bad-signature"
    case .wrongDevice: return "wrong-device"
    case .replayed: return "replayed"
    case .expired: return "expired"
    case .notYetValid: return "not-yet-valid"
    case .unknownType: return "unknown-type"
    case .internalError: return "internal-error"
    }
  }

  /// Whether the command was signed by a trusted key (the rejection is about its
  /// claims). Rejections that are not authentic are what repeated-failure alarms count.
  public var isAuthentic: Bool { keyID != nil }

  public var description: String {
    switch kind {
    case .malformed(let what):
      return "malformed command: " + what
    case .unsupportedAlgorithm(let algorithm):
      return "unsupported algorithm \"" + printableExcerpt(algorithm) + "\" (accepted: Ed25519, EdDSA)"
    case .unknownKey(let keyID):
      return "unknown key id \"" + printableExcerpt(keyID) + "\" (not among the trusted keys)"
    case .badSignature:
      return "the signature does not verify"
    case .wrongDevice(let other):
      return "the command is for device \"" + printableExcerpt(other) + "\", not this one"
    case .replayed(let counter, let last):
      return "counter " + String(counter) + " is not above the last accepted " + String(last)
    case .expired(let expiresAt, let now):
      return "expired at " + String(expiresAt) + " (now " + String(now) + ")"
    case .notYetValid(let issuedAt, let now):
      return "issued at " + String(issuedAt) + ", in the future (now " + String(now) + ")"
    case .unknownType(let name):
      return "unknown command type \"" + printableExcerpt(name) + "\""
    case .internalError(let why):
      return "internal error: " + why
    }
  }
}

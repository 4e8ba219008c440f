import SQLiteStore

/// JWS compact serialization (RFC 7515 §7.1) with Ed25519, as signed commands use it
/// (DESIGN.md §5): `BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)`.
///
/// Signing writes the protected header `{"alg":"Ed25519","kid":"<kid>"}` (the
/// fully-specified algorithm name of RFC 9864). Verifying accepts `alg` `Ed25519` and
/// the polymorphic `EdDSA` of RFC 8037 (the key is always Ed25519), and nothing else:
/// `none`, `HS256` and every other algorithm are refused before any cryptography.
///
/// The header is parsed with SQLite's JSON1 functions on a connection the caller
/// passes (an in-memory one will do). What verification refuses, in this order:
/// a token over `maximumTokenBytes`; not exactly three dot-separated parts; an empty
/// header or payload part; a header that is not strict base64url of a UTF-8 JSON
/// object (no NUL, no duplicate member names at any depth); `alg` missing or not a
/// string; `alg` not accepted; any `crit` (no extension is understood) or `b64` other
/// than `true`; `kid` missing or unknown (when verifying against `TrustedKeys`); an
/// empty signature part, a signature that is not 64 bytes of base64url or does not
/// verify over the ASCII bytes of `header.payload`; a payload that is not strict
/// base64url. Header members such as `jwk`, `jku` or `x5c` are
/// never used to find a key.
public enum JWS {
  /// The algorithm name written when signing (RFC 9864).
  public static let signingAlgorithm = "Ed25519"
  /// The algorithm names accepted when verifying.
  public static let acceptedAlgorithms = ["Ed25519", "EdDSA"]
  /// The longest token accepted, checked before any other work.
  public static let maximumTokenBytes = 64 * 1024

  /// Signs `payload` with `key`: the header is `{"alg":"Ed25519","kid":"<keyID>"}`.
  /// - Parameters:
  ///   - payload: the bytes to sign (for a command, its claims JSON).
  ///   - key: the private key.
  ///   - keyID: the key's id, as the verifier's `TrustedKeys` know it.
  /// - Returns: the compact serialization (ASCII).
  /// - Throws: `JWSError` when `keyID` is not a valid key id or libcrypto fails.
  public static func sign(payload: [UInt8], key: Ed25519KeyPair, keyID: String) throws(JWSError) -> String {
    guard TrustedKeys.isValidKeyID(keyID) else {
      throw JWSError(.cannotSign("key id \"" + printableExcerpt(keyID) + "\" is not a valid key id"))
    }
    // A valid key id needs no JSON escaping.
    return try sign(
      protectedHeader: #"{"alg":""# + signingAlgorithm + #"","kid":""# + keyID + #""}"#, payload: payload,
      key: key)
  }

  /// Signs with a given protected header text (used by the RFC 8037 test vectors).
  static func sign(protectedHeader: String, payload: [UInt8], key: Ed25519KeyPair) throws(JWSError) -> String
  {
    let input = Base64URL.encode(protectedHeader.utf8) + "." + Base64URL.encode(payload)
    let signature: [UInt8]
    do throws(Ed25519Error) {
      signature = try key.sign(Array(input.utf8))
    } catch {
      throw JWSError(.cannotSign(error.description))
    }
    let token = input + "." + Base64URL.encode(signature)
    guard token.utf8.count <= maximumTokenBytes else {
      throw JWSError(
        .cannotSign(
          "the token would be " + String(token.utf8.count) + " bytes, more than "
            + String(maximumTokenBytes)))
    }
    return token
  }

  /// Verifies a token against the trusted keys: its header's `kid` must name one.
  /// - Parameters:
  ///   - token: the compact serialization (e.g. an MQTT payload).
  ///   - trustedKeys: the keys to accept.
  ///   - json: a connection for the JSON functions (no table is touched).
  /// - Returns: the verified header and payload.
  /// - Throws: `JWSError` with the reason (see the type's summary for the order).
  public static func verify(_ token: [UInt8], trustedKeys: TrustedKeys, json: Connection) throws(JWSError)
    -> VerifiedJWS
  {
    try verify(token, keys: .trusted(trustedKeys), json: json)
  }

  /// Verifies a token with one given key; a `kid` in the header is allowed but not
  /// required, and not checked.
  /// - Throws: `JWSError` with the reason.
  public static func verify(_ token: [UInt8], key: Ed25519PublicKey, json: Connection) throws(JWSError)
    -> VerifiedJWS
  {
    try verify(token, keys: .single(key), json: json)
  }

  private enum KeySource {
    case trusted(TrustedKeys)
    case single(Ed25519PublicKey)
  }

  private static func verify(_ token: [UInt8], keys: KeySource, json: Connection) throws(JWSError)
    -> VerifiedJWS
  {
    guard token.count <= maximumTokenBytes else {
      throw JWSError(
        .malformed(
          "token is " + String(token.count) + " bytes, more than the limit of " + String(maximumTokenBytes)))
    }
    var dots: [Int] = []
    for (i, b) in token.enumerated() where b == UInt8(ascii: ".") {
      dots.append(i)
      if dots.count > 2 { break }
    }
    guard dots.count == 2 else {
      throw JWSError(
        .malformed(
          dots.count < 2
            ? "expected 3 dot-separated parts, found " + String(dots.count + 1)
            : "expected 3 dot-separated parts, found more"))
    }
    let headerText = token[0..<dots[0]]
    let payloadText = token[(dots[0] + 1)..<dots[1]]
    let signatureText = token[(dots[1] + 1)...]
    guard !headerText.isEmpty else { throw JWSError(.malformed("the header part is empty")) }
    guard !payloadText.isEmpty else { throw JWSError(.malformed("the payload part is empty")) }

    let headerBytes: [UInt8]
    do throws(Base64URLError) {
      headerBytes = try Base64URL.decode(headerText)
    } catch {
      throw JWSError(.malformed("the header is not base64url: " + error.description))
    }
    let header = try parseHeader(headerBytes, json: json)

    let key: Ed25519PublicKey
    switch keys {
    case .single(let single):
      key = single
    case .trusted(let trusted):
      guard let keyID = header.keyID else {
        throw JWSError(.malformed("the header has no kid (the signing key's id)"))
      }
      guard let found = trusted.key(for: keyID) else { throw JWSError(.unknownKey(keyID)) }
      key = found
    }

    // Checked after the header, so that `alg: none` with no signature is reported as such.
    guard !signatureText.isEmpty else { throw JWSError(.malformed("the signature part is empty")) }
    let signature: [UInt8]
    do throws(Base64URLError) {
      signature = try Base64URL.decode(signatureText)
    } catch {
      throw JWSError(.malformed("the signature is not base64url: " + error.description))
    }
    guard signature.count == Ed25519.signatureBytes else {
      throw JWSError(
        .malformed(
          "the signature is " + String(signature.count) + " bytes, an Ed25519 signature is "
            + String(Ed25519.signatureBytes)))
    }
    // The signing input is the token's own ASCII bytes up to the second dot.
    guard key.isValidSignature(signature, for: token[0..<dots[1]]) else {
      throw JWSError(.badSignature)
    }

    let payload: [UInt8]
    do throws(Base64URLError) {
      payload = try Base64URL.decode(payloadText)
    } catch {
      throw JWSError(.malformed("the payload is not base64url: " + error.description))
    }
    return VerifiedJWS(
      algorithm: header.algorithm, keyID: header.keyID, header: String(decoding: headerBytes, as: UTF8.self),
      payload: payload)
  }

  private struct Header {
    var algorithm: String
    var keyID: String?
  }

  private static func parseHeader(_ bytes: [UInt8], json: Connection) throws(JWSError) -> Header {
    let text: String
    do throws(JSONCheckError) {
      text = try jsonObjectText(bytes, json: json)
    } catch {
      throw JWSError(
        error.isInternal ? .internalError(error.description) : .malformed("the header " + error.description))
    }
    let rows: [Row]
    do {
      rows = try json.query(
        """
        SELECT json_type(?1, '$.alg'), json_extract(?1, '$.alg'), json_type(?1, '$.kid'),
          json_extract(?1, '$.kid'), json_type(?1, '$.crit'), json_type(?1, '$.b64')
        """, [.text(text)])
    } catch {
      throw JWSError(.internalError("JSON evaluation failed: " + error.description))
    }
    guard let row = rows.first else { throw JWSError(.internalError("JSON evaluation returned no row")) }
    guard row.text(0) == "text", let algorithm = row.text(1) else {
      throw JWSError(
        .malformed(row.text(0) == nil ? "the header has no alg" : "the header's alg is not a string"))
    }
    guard acceptedAlgorithms.contains(where: { $0.utf8.elementsEqual(algorithm.utf8) }) else {
      throw JWSError(.unsupportedAlgorithm(algorithm))
    }
    if row.text(4) != nil {
      throw JWSError(.malformed("the header has crit: no JWS extension is supported"))
    }
    if let b64 = row.text(5), b64 != "true" {
      throw JWSError(.malformed("the header has b64 other than true (RFC 7797 is not supported)"))
    }
    var keyID: String? = nil
    if let type = row.text(2) {
      guard type == "text", let value = row.text(3) else {
        throw JWSError(.malformed("the header's kid is not a string"))
      }
      keyID = value
    }
    return Header(algorithm: algorithm, keyID: keyID)
  }
}

/// A token whose signature verified.
public struct VerifiedJWS: Equatable, Sendable {
  /// The header's `alg`: `Ed25519` or `EdDSA`.
  public let algorithm: String
  /// The header's `kid`, when it has one (always, when verified against `TrustedKeys`).
  public let keyID: String?
  /// The protected header's JSON text.
  public let header: String
  /// The decoded payload.
  public let payload: [UInt8]
}

/// Why a JWS was refused, or could not be made.
///
/// `code` is a stable short name for machines (the `results` class upstream);
/// `description` says what exactly is wrong, for people.
public struct JWSError: Error, CustomStringConvertible, Equatable, Sendable {
  enum Kind: Equatable, Sendable {
    case malformed(String)
    case unsupportedAlgorithm(String)
    case unknownKey(String)
    case badSignature
    case cannotSign(String)
    case internalError(String)
  }

  let kind: Kind

  init(_ kind: Kind) { self.kind = kind }

  /// `malformed`, `unsupported-algorithm`, `unknown-key`, `bad-signature`,
  /// `cannot-sign` or `internal-error`.
  public var code: String {
    switch kind {
    case .malformed: return "malformed"
    case .unsupportedAlgorithm: return "unsupported-algorithm"
    case .unknownKey: return "unknown-key"
    case .badSignature: return "bad-signature"
    case .cannotSign: return "cannot-sign"
    case .internalError: return "internal-error"
    }
  }

  public var description: String {
    switch kind {
    case .malformed(let what):
      return "malformed token: " + what
    case .unsupportedAlgorithm(let algorithm):
      return "unsupported algorithm \"" + printableExcerpt(algorithm) + "\" (accepted: Ed25519, EdDSA)"
    case .unknownKey(let keyID):
      return "unknown key id \"" + printableExcerpt(keyID) + "\" (not among the trusted keys)"
    case .badSignature:
      return "the signature does not verify"
    case .cannotSign(let why):
      return "cannot sign: " + why
    case .internalError(let why):
      return "internal error: " + why
    }
  }
}

/// Why a byte string is not a usable JSON object.
/// What is wrong with the `\u` escapes in JSON text `bytes`: one that decodes to
/// U+0000 or an unpaired UTF-16 surrogate; nil when there is none. (Whether the text
/// is valid JSON is `json_valid`'s business; this only walks its strings.)
func unsafeEscape(_ bytes: [UInt8]) -> String? {
  func hexValue(at i: Int) -> Int? {
    guard i + 4 <= bytes.count else { return nil }
    var value = 0
    for b in bytes[i..<(i + 4)] {
      switch b {
      case 0x30...0x39: value = value * 16 + Int(b - 0x30)
      case 0x41...0x46: value = value * 16 + Int(b - 0x41 + 10)
      case 0x61...0x66: value = value * 16 + Int(b - 0x61 + 10)
      default: return nil
      }
    }
    return value
  }
  var inString = false
  var i = 0
  while i < bytes.count {
    let b = bytes[i]
    if !inString {
      if b == 0x22 { inString = true }
      i += 1
      continue
    }
    if b == 0x22 {
      inString = false
      i += 1
      continue
    }
    guard b == 0x5C, i + 1 < bytes.count else {
      i += 1
      continue
    }
    guard bytes[i + 1] == 0x75, let unit = hexValue(at: i + 2) else {
      i += 2
      continue
    }
    if unit == 0 { return "has a string holding U+0000 (NUL, \\u0000), which no field may hold" }
    if unit >= 0xDC00 && unit <= 0xDFFF { return "has an unpaired UTF-16 surrogate escape in a string" }
    if unit >= 0xD800 && unit <= 0xDBFF {
      guard i + 11 < bytes.count, bytes[i + 6] == 0x5C, bytes[i + 7] == 0x75, let low = hexValue(at: i + 8),
        low >= 0xDC00 && low <= 0xDFFF
      else { return "has an unpaired UTF-16 surrogate escape in a string" }
      i += 12
      continue
    }
    i += 6
  }
  return nil
}

/// What makes bytes unsafe to hand to the JSON1 functions (`sqliteSafeText`).
struct UnsafeText: Error, CustomStringConvertible {
  let description: String
}

/// `bytes` as text when the JSON1 functions read them as any other parser does:
/// valid UTF-8, no NUL byte, no string escaping a NUL or an unpaired surrogate.
/// - Returns: the text, or what is wrong ("contains ...", "is not ...", "has ...").
func sqliteSafeText(_ bytes: [UInt8]) -> Result<String, UnsafeText> {
  guard !bytes.contains(0) else { return .failure(UnsafeText(description: "contains a NUL byte")) }
  let text = String(decoding: bytes, as: UTF8.self)
  guard text.utf8.elementsEqual(bytes) else { return .failure(UnsafeText(description: "is not valid UTF-8")) }
  if let problem = unsafeEscape(bytes) { return .failure(UnsafeText(description: problem)) }
  return .success(text)
}

struct JSONCheckError: Error, CustomStringConvertible {
  let description: String
  /// True when SQLite failed, not the input.
  let isInternal: Bool
}

/// `bytes` as text when it is a JSON object that the JSON1 functions read the same
/// way any other parser does: valid UTF-8 without NUL (SQLite would stop at a NUL),
/// no string escaping one either (`\u0000`: `json_extract` cuts the text there) or
/// an unpaired UTF-16 surrogate (`\ud800`: it would yield invalid UTF-8),
/// strict RFC 8259 JSON (`json_valid`), an object, and no member name twice in any
/// object (`json_tree`; parsers differ on which duplicate wins).
/// - Throws: `JSONCheckError` saying what is wrong ("is not ...", "has ...").
func jsonObjectText(_ bytes: [UInt8], json: Connection) throws(JSONCheckError) -> String {
  let text: String
  switch sqliteSafeText(bytes) {
  case .success(let safe): text = safe
  case .failure(let problem): throw JSONCheckError(description: problem.description, isInternal: false)
  }
  let isObject: Bool
  let duplicates: [Row]
  do throws(SQLiteError) {
    isObject =
      try json.scalarInt(
        "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' ELSE 0 END", [.text(text)]) == 1
    duplicates =
      isObject
      ? try json.query(
        """
        SELECT key FROM json_tree(?1) WHERE parent IS NOT NULL GROUP BY parent, key HAVING count(*) > 1
        LIMIT 1
        """, [.text(text)]) : []
  } catch {
    throw JSONCheckError(description: "JSON evaluation failed: " + error.description, isInternal: true)
  }
  guard isObject else { throw JSONCheckError(description: "is not a JSON object", isInternal: false) }
  if let row = duplicates.first {
    throw JSONCheckError(
      description: "has the member \"" + printableExcerpt(row.text(0) ?? "") + "\" twice", isInternal: false)
  }
  return text
}

/// The public keys a device accepts signed commands from, each under a key id (`kid`),
/// so HQ can rotate keys: add the new key, sign with it, remove the old one.
///
/// The text form, one key per line:
///
///     # HQ command keys
///     hq-2026a  11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo
///     hq-2026b  <base64url of the raw 32-byte Ed25519 public key>   # comment
///
/// Blank lines and `#` comments (whole-line or after the key) are ignored; the two
/// fields are separated by spaces or tabs; CRLF line ends are accepted. A key id is 1
/// to 64 characters of `A–Z a–z 0–9 . _ ~ : + / = -` (so JWK thumbprints, UUIDs and
/// dated names all fit); ids are compared byte for byte and must be unique.
public struct TrustedKeys: Sendable {
  private var entries: [(keyID: String, key: Ed25519PublicKey)] = []

  /// No keys: every command is refused.
  public init() {}

  /// Parses the text form.
  /// - Parameters:
  ///   - text: the file's content.
  ///   - source: what to call the text in errors, usually the file path.
  /// - Throws: `TrustedKeysError` naming `source`, the line and what is wrong with it.
  public init(parsing text: String, source: String = "trusted keys") throws(TrustedKeysError) {
    var lineNumber = 0
    for line in splitLinesKeepingEmpty(Array(text.utf8)) {
      lineNumber += 1
      var content = line
      if let hash = content.firstIndex(of: UInt8(ascii: "#")) { content = Array(content[..<hash]) }
      let fields = splitFields(content)
      if fields.isEmpty { continue }
      guard fields.count == 2 else {
        throw TrustedKeysError(
          source: source, line: lineNumber,
          .syntax(
            "expected \"<kid> <base64url public key>\", found " + String(fields.count) + " field"
              + (fields.count == 1 ? "" : "s")))
      }
      let keyID = String(decoding: fields[0], as: UTF8.self)
      let bytes: [UInt8]
      do throws(Base64URLError) {
        bytes = try Base64URL.decode(fields[1])
      } catch {
        throw TrustedKeysError(source: source, line: lineNumber, .badKey(keyID, error.description))
      }
      let key: Ed25519PublicKey
      do throws(Ed25519Error) {
        key = try Ed25519PublicKey(rawRepresentation: bytes)
      } catch {
        throw TrustedKeysError(source: source, line: lineNumber, .badKey(keyID, error.description))
      }
      do throws(TrustedKeysError) {
        try add(key, keyID: keyID)
      } catch {
        throw error.at(source: source, line: lineNumber)
      }
    }
  }

  /// Adds `key` under `keyID`.
  /// - Throws: `TrustedKeysError` when `keyID` is not a valid key id or is already used.
  public mutating func add(_ key: Ed25519PublicKey, keyID: String) throws(TrustedKeysError) {
    guard Self.isValidKeyID(keyID) else { throw TrustedKeysError(.badKeyID(keyID)) }
    guard self.key(for: keyID) == nil else { throw TrustedKeysError(.duplicate(keyID)) }
    entries.append((keyID, key))
  }

  /// The key with id `keyID` (compared byte for byte), if trusted.
  public func key(for keyID: String) -> Ed25519PublicKey? {
    for entry in entries where entry.keyID.utf8.elementsEqual(keyID.utf8) {
      return entry.key
    }
    return nil
  }

  /// The key ids, in the order they were added.
  public var keyIDs: [String] { entries.map { $0.keyID } }

  /// How many keys are trusted.
  public var count: Int { entries.count }

  /// Whether no key is trusted.
  public var isEmpty: Bool { entries.isEmpty }

  /// The text form: one `<kid> <key>` line per key, each ending in a newline.
  public var text: String {
    var out = ""
    for entry in entries { out += Self.line(keyID: entry.keyID, key: entry.key) + "\n" }
    return out
  }

  /// One line of the text form (without the newline).
  public static func line(keyID: String, key: Ed25519PublicKey) -> String {
    keyID + " " + Base64URL.encode(key.rawRepresentation)
  }

  /// The longest key id.
  public static let maximumKeyIDLength = 64

  /// Whether `keyID` is 1 to 64 characters of `A–Z a–z 0–9 . _ ~ : + / = -`. Such an id
  /// needs no escaping in JSON, in a JWS header, or in the text form.
  public static func isValidKeyID(_ keyID: String) -> Bool {
    let bytes = keyID.utf8
    guard bytes.count >= 1 && bytes.count <= maximumKeyIDLength else { return false }
    for b in bytes {
      let ok =
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
        || b == UInt8(ascii: ":") || b == UInt8(ascii: "+") || b == UInt8(ascii: "/")
        || b == UInt8(ascii: "=") || b == UInt8(ascii: "-")
      if !ok { return false }
    }
    return true
  }
}

/// A trusted-keys text that cannot be used, or a key that cannot be added.
public struct TrustedKeysError: Error, CustomStringConvertible, Equatable, Sendable {
  fileprivate enum Kind: Equatable, Sendable {
    case syntax(String)
    case badKeyID(String)
    case badKey(String, String)
    case duplicate(String)
  }

  private let kind: Kind
  /// What the text was called (usually its file path), when it came from a text.
  public let source: String?
  /// The 1-based line at fault, when it came from a text.
  public let line: Int?

  fileprivate init(source: String? = nil, line: Int? = nil, _ kind: Kind) {
    self.kind = kind
    self.source = source
    self.line = line
  }

  fileprivate func at(source: String, line: Int) -> TrustedKeysError {
    TrustedKeysError(source: source, line: line, kind)
  }

  public var description: String {
    var prefix = ""
    if let source { prefix = source + ":" }
    if let line { prefix += String(line) + ":" }
    if !prefix.isEmpty { prefix += " " }
    switch kind {
    case .syntax(let what):
      return prefix + what
    case .badKeyID(let keyID):
      return prefix + "key id \"" + printableExcerpt(keyID)
        + "\" is not 1 to 64 characters of A-Z a-z 0-9 . _ ~ : + / = -"
    case .badKey(let keyID, let why):
      return prefix + "the key of \"" + printableExcerpt(keyID) + "\" is not a base64url Ed25519 public key: "
        + why
    case .duplicate(let keyID):
      return prefix + "key id \"" + printableExcerpt(keyID) + "\" is listed twice"
    }
  }
}

/// The lines of `bytes` split at LF, a trailing CR removed from each; an empty last
/// line (text ending in a newline) is not returned.
private func splitLinesKeepingEmpty(_ bytes: [UInt8]) -> [[UInt8]] {
  var lines: [[UInt8]] = []
  var current: [UInt8] = []
  for b in bytes {
    if b == 0x0A {
      if current.last == 0x0D { current.removeLast() }
      lines.append(current)
      current.removeAll(keepingCapacity: true)
    } else {
      current.append(b)
    }
  }
  if !current.isEmpty {
    if current.last == 0x0D { current.removeLast() }
    lines.append(current)
  }
  return lines
}

/// The non-empty runs of `line` between spaces and tabs.
private func splitFields(_ line: [UInt8]) -> [[UInt8]] {
  var fields: [[UInt8]] = []
  var current: [UInt8] = []
  for b in line {
    if b == 0x20 || b == 0x09 {
      if !current.isEmpty { fields.append(current) }
      current.removeAll(keepingCapacity: true)
    } else {
      current.append(b)
    }
  }
  if !current.isEmpty { fields.append(current) }
  return fields
}

/// `text` made safe to show in a message: at most 64 bytes, and anything outside
/// printable ASCII (or a quote or backslash) shown as `?`. For ids and names that come
/// from untrusted input.
func printableExcerpt(_ text: String) -> String {
  var out: [UInt8] = []
  for b in text.utf8 {
    if out.count == 64 {
      out += Array("...".utf8)
      break
    }
    out.append(b >= 0x20 && b <= 0x7E && b != 0x22 && b != 0x5C ? b : UInt8(ascii: "?"))
  }
  return String(decoding: out, as: UTF8.self)
}

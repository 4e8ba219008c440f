import CLibc
import GridEdgeContract
import Runtime
import SQLiteStore

/// HQ's side of signed commands (DESIGN.md §5): makes Ed25519 key files and signs
/// commands as compact JWS (`alg` `Ed25519`), which devices check with
/// `CommandVerifier`.
///
/// A key file (`<kid>.key`, mode 0600) holds the base64url of the 32-byte private
/// seed on one line. The matching public line (`<kid> <base64url public key>`) goes
/// into a trusted-keys file, the format `TrustedKeys` reads on the device.
public struct CommandSigner {
  /// The id of the signing key, written into every token's header.
  public let keyID: String
  /// The signing key's public half.
  public var publicKey: Ed25519PublicKey { key.publicKey }
  private let key: Ed25519KeyPair
  private let json: Connection

  /// How long a signed command stays valid unless told otherwise, seconds.
  public static let defaultTimeToLive: Int64 = 3600

  /// The file name of the trusted-keys file `generateKey` writes beside the key.
  public static let trustedKeysFileName = "trusted-keys"

  /// A signer with a key held in memory.
  /// - Throws: `CommandSignerError` when `keyID` is not a valid key id or the JSON
  ///   connection cannot be opened.
  public init(key: Ed25519KeyPair, keyID: String) throws(CommandSignerError) {
    guard TrustedKeys.isValidKeyID(keyID) else { throw CommandSignerError(.badKeyID(keyID)) }
    self.key = key
    self.keyID = keyID
    var options = Connection.Options()
    options.walMode = false
    options.verifyIntegrity = false
    do throws(SQLiteError) {
      json = try Connection(path: ":memory:", options: options)
    } catch {
      throw CommandSignerError(.json(error))
    }
  }

  /// A signer with the key of a key file written by `generateKey`.
  /// - Parameters:
  ///   - keyFile: the path of the key file.
  ///   - keyID: the key's id (as in the devices' trusted keys).
  /// - Throws: `CommandSignerError` naming the file when it cannot be read or does not
  ///   hold one base64url 32-byte seed.
  public init(keyFile: String, keyID: String) throws(CommandSignerError) {
    try self.init(key: try Self.loadKey(keyFile), keyID: keyID)
  }

  /// Reads a key file: one line, the base64url of a 32-byte Ed25519 seed.
  /// - Throws: `CommandSignerError` naming the file.
  public static func loadKey(_ path: String) throws(CommandSignerError) -> Ed25519KeyPair {
    var bytes: [UInt8]
    do throws(SystemError) {
      bytes = try Files.read(path)
    } catch {
      throw CommandSignerError(.system(error))
    }
    defer { Ed25519.cleanse(&bytes) }
    var st = stat()
    if stat(path, &st) == 0 && st.st_mode & 0o077 != 0 {
      Log.warn("sign", "key file " + path + " is readable by other users; chmod 600 it")
    }
    // One token; surrounding spaces and the final newline are allowed.
    var start = 0
    var end = bytes.count
    while start < end && isSpace(bytes[start]) { start += 1 }
    while end > start && isSpace(bytes[end - 1]) { end -= 1 }
    var seed: [UInt8]
    do throws(Base64URLError) {
      seed = try Base64URL.decode(bytes[start..<end])
    } catch {
      throw CommandSignerError(.keyFile(path, "not base64url: " + error.description))
    }
    defer { Ed25519.cleanse(&seed) }
    do throws(Ed25519Error) {
      return try Ed25519KeyPair(seed: seed)
    } catch {
      throw CommandSignerError(.keyFile(path, error.description))
    }
  }

  /// Signs `command`.
  /// - Returns: the compact JWS, ready to publish on `gridedge/v1/<dev>/down/cmd`.
  /// - Throws: `CommandSignerError` when the command's fields are not valid (see
  ///   `Command.claims(json:)`).
  public func sign(_ command: Command) throws(CommandSignerError) -> String {
    do throws(JWSError) {
      return try command.signed(with: key, keyID: keyID, json: json)
    } catch {
      throw CommandSignerError(.signing(error))
    }
  }

  /// Signs a command given as text fields (the `gridedge-hq sign` arguments).
  /// - Parameters:
  ///   - device: the device id (`dev`).
  ///   - counter: the device's next counter (`ctr`, at least 1; HQ must keep it
  ///     strictly increasing per device).
  ///   - typeName: the command type (`typ`), e.g. `topup`.
  ///   - body: the JSON object of the type's parameters.
  ///   - timeToLive: seconds from `now` to `exp`.
  ///   - now: Unix seconds (`iat`).
  /// - Throws: `CommandSignerError` naming the field at fault.
  public func sign(
    device: String, counter: UInt64, typeName: String, body: String,
    timeToLive: Int64 = CommandSigner.defaultTimeToLive, now: Int64
  ) throws(CommandSignerError) -> String {
    guard let type = CommandType(name: typeName) else {
      var known = ""
      for type in CommandType.allCases { known += (known.isEmpty ? "" : ", ") + type.name }
      throw CommandSignerError(.badField("typ", "unknown type \"" + typeName + "\" (known: " + known + ")"))
    }
    guard timeToLive > 0, now >= 0, now <= Int64.max - timeToLive else {
      throw CommandSignerError(.badField("ttl", "must be a positive number of seconds"))
    }
    return try sign(
      Command(
        device: device, counter: counter, issuedAt: now, expiresAt: now + timeToLive, type: type, body: body))
  }

  /// Parses a counter argument strictly (`Command.parseCounter`): decimal digits, no
  /// sign, no leading zero, at most 2^64 - 1.
  public static func parseCounter(_ text: String) -> UInt64? { Command.parseCounter(text) }

  /// What `generateKey` made.
  public struct GeneratedKey: Sendable {
    /// The key id (given, or the key's RFC 7638 thumbprint).
    public let keyID: String
    /// The private key file.
    public let keyFile: String
    /// The trusted-keys file the public line was added to.
    public let trustedKeysFile: String
    /// The public line (`<kid> <key>`), for the devices' trusted keys.
    public let trustedKeysLine: String
  }

  /// Generates a key pair: writes `<directory>/<kid>.key` (the private seed, mode 0600;
  /// an existing file is never overwritten) and adds the public line to
  /// `<directory>/trusted-keys` (created when missing).
  /// - Parameters:
  ///   - directory: where to write; created (mode 0700) when missing.
  ///   - keyID: the key id; nil uses the key's RFC 7638 JWK thumbprint.
  /// - Throws: `CommandSignerError` when the key id is invalid or already in the
  ///   trusted-keys file, the key file exists, or a file cannot be written.
  public static func generateKey(directory: String, keyID: String?) throws(CommandSignerError) -> GeneratedKey
  {
    let key: Ed25519KeyPair
    do throws(Ed25519Error) {
      key = try Ed25519KeyPair()
    } catch {
      throw CommandSignerError(.crypto(error))
    }
    let id = keyID ?? key.publicKey.thumbprint
    // The id names a file here: no '/' and no leading '.'.
    guard TrustedKeys.isValidKeyID(id), !id.utf8.contains(UInt8(ascii: "/")), !id.hasPrefix(".") else {
      throw CommandSignerError(.badKeyID(id))
    }
    if !Files.exists(directory) && mkdir(directory, 0o700) != 0 {
      throw CommandSignerError(.system(SystemError.current("mkdir " + directory)))
    }
    let keyFile = directory + "/" + id + ".key"
    let trustedFile = directory + "/" + trustedKeysFileName
    let line = TrustedKeys.line(keyID: id, key: key.publicKey)

    // Check the trusted-keys file before writing anything.
    var trustedText =
      "# GridEdge trusted command keys: <kid> <base64url Ed25519 public key>, one per line.\n"
    if Files.exists(trustedFile) {
      do throws(SystemError) {
        trustedText = try Files.readText(trustedFile)
      } catch {
        throw CommandSignerError(.system(error))
      }
      let existing: TrustedKeys
      do throws(TrustedKeysError) {
        existing = try TrustedKeys(parsing: trustedText, source: trustedFile)
      } catch {
        throw CommandSignerError(.trustedKeys(error))
      }
      if existing.key(for: id) != nil { throw CommandSignerError(.keyIDTaken(id, trustedFile)) }
      if !trustedText.isEmpty && !trustedText.hasSuffix("\n") { trustedText += "\n" }
    }
    trustedText += line + "\n"

    var seed: [UInt8]
    do throws(Ed25519Error) {
      seed = try key.seed()
    } catch {
      throw CommandSignerError(.crypto(error))
    }
    var text = Array((Base64URL.encode(seed) + "\n").utf8)
    Ed25519.cleanse(&seed)
    defer { Ed25519.cleanse(&text) }
    try writeNewPrivateFile(keyFile, text)
    do throws(SystemError) {
      try Files.writeAtomically(trustedFile, Array(trustedText.utf8))
    } catch {
      try? Files.remove(keyFile)
      throw CommandSignerError(.system(error))
    }
    return GeneratedKey(keyID: id, keyFile: keyFile, trustedKeysFile: trustedFile, trustedKeysLine: line)
  }

  /// Creates `path` (it must not exist) with mode 0600 and writes `bytes`, synced.
  private static func writeNewPrivateFile(_ path: String, _ bytes: [UInt8]) throws(CommandSignerError) {
    let fd = clibc_open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      let error = SystemError.current("create " + path)
      if error.errno == EEXIST { throw CommandSignerError(.exists(path)) }
      throw CommandSignerError(.system(error))
    }
    var failure: SystemError? = nil
    // The umask can only remove bits; make sure none were added either way.
    if fchmod(fd, 0o600) != 0 { failure = SystemError.current("chmod " + path) }
    var written = 0
    while failure == nil && written < bytes.count {
      let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
      if n < 0 {
        if clibc_errno() == EINTR { continue }
        failure = SystemError.current("write " + path)
      } else {
        written += n
      }
    }
    if failure == nil && fsync(fd) != 0 { failure = SystemError.current("fsync " + path) }
    close(fd)
    if let failure {
      unlink(path)
      throw CommandSignerError(.system(failure))
    }
  }
}

private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

/// Why a key could not be made or loaded, or a command not signed.
public struct CommandSignerError: Error, CustomStringConvertible {
  fileprivate enum Kind {
    case badKeyID(String)
    case badField(String, String)
    case keyFile(String, String)
    case exists(String)
    case keyIDTaken(String, String)
    case system(SystemError)
    case trustedKeys(TrustedKeysError)
    case crypto(Ed25519Error)
    case signing(JWSError)
    case json(SQLiteError)
  }

  private let kind: Kind

  fileprivate init(_ kind: Kind) { self.kind = kind }

  public var description: String {
    switch kind {
    case .badKeyID(let keyID):
      return "key id \"" + keyID
        + "\" is not 1 to 64 characters of A-Z a-z 0-9 . _ ~ : + / = - (and for a key file: no '/', no leading '.')"
    case .badField(let name, let why):
      return name + ": " + why
    case .keyFile(let path, let why):
      return "key file " + path + ": " + why
    case .exists(let path):
      return path + " already exists; a key file is never overwritten"
    case .keyIDTaken(let keyID, let path):
      return "key id \"" + keyID + "\" is already in " + path + "; choose another --kid"
    case .system(let error):
      return error.description
    case .trustedKeys(let error):
      return error.description
    case .crypto(let error):
      return "libcrypto: " + error.description
    case .signing(let error):
      return error.description
    case .json(let error):
      return "cannot open the JSON connection: " + error.description
    }
  }
}

import CCrypto

/// Ed25519 (RFC 8032) signatures through OpenSSL's libcrypto: keys are `EVP_PKEY`s of
/// type `EVP_PKEY_ED25519`; signing and verifying use `EVP_DigestSign` /
/// `EVP_DigestVerify` with a NULL digest (Ed25519 hashes internally, in one shot).
///
/// Keys are immutable and their `EVP_PKEY` is only read after creation, which
/// libcrypto allows from several threads; GridEdge uses them from one thread anyway.
public enum Ed25519 {
  /// Bytes in a raw public key (the encoded point A).
  public static let publicKeyBytes = 32
  /// Bytes in a private key seed (RFC 8032's 32-byte private key).
  public static let seedBytes = 32
  /// Bytes in a signature (R ‖ S).
  public static let signatureBytes = 64
}

/// An Ed25519 public key: its 32 raw bytes.
public struct Ed25519PublicKey: Equatable, Sendable {
  /// The raw 32-byte encoding (RFC 8032 §5.1.5), as in a JWK's `x`.
  public let rawRepresentation: [UInt8]

  /// A public key from its raw 32 bytes (`EVP_PKEY_new_raw_public_key`).
  /// - Throws: `Ed25519Error` when `rawRepresentation` is not 32 bytes or libcrypto
  ///   refuses it.
  public init(rawRepresentation: [UInt8]) throws(Ed25519Error) {
    guard rawRepresentation.count == Ed25519.publicKeyBytes else {
      throw Ed25519Error(
        .length(what: "public key", expected: Ed25519.publicKeyBytes, got: rawRepresentation.count))
    }
    // Made once here so that a key libcrypto refuses is refused at configuration time.
    _ = try EVPKey(publicKey: rawRepresentation)
    self.rawRepresentation = rawRepresentation
  }

  /// Whether `signature` is a valid Ed25519 signature of `message` by this key
  /// (`EVP_DigestVerifyInit` with a NULL digest, then `EVP_DigestVerify`).
  ///
  /// Fails closed: a signature of the wrong length, or any libcrypto failure, is
  /// `false`. libcrypto's error queue is emptied either way.
  public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
    message.withUnsafeBytes { isValidSignature(signature, for: $0) }
  }

  /// `isValidSignature(_:for:)` for a slice (e.g. the signing input of a JWS).
  public func isValidSignature(_ signature: [UInt8], for message: ArraySlice<UInt8>) -> Bool {
    message.withUnsafeBytes { isValidSignature(signature, for: $0) }
  }

  private func isValidSignature(_ signature: [UInt8], for message: UnsafeRawBufferPointer) -> Bool {
    guard signature.count == Ed25519.signatureBytes,
      let key = try? EVPKey(publicKey: rawRepresentation)
    else {
      _ = ccrypto_take_error(nil, 0)
      return false
    }
    guard let context = EVP_MD_CTX_new() else {
      _ = ccrypto_take_error(nil, 0)
      return false
    }
    defer { EVP_MD_CTX_free(context) }
    guard EVP_DigestVerifyInit(context, nil, nil, nil, key.handle) == 1 else {
      _ = ccrypto_take_error(nil, 0)
      return false
    }
    let rc = signature.withUnsafeBytes { sig in
      EVP_DigestVerify(
        context, sig.baseAddress?.assumingMemoryBound(to: UInt8.self), sig.count,
        message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count)
    }
    // 0 is "does not verify"; a negative value an error. Both leave entries in the queue.
    _ = ccrypto_take_error(nil, 0)
    return rc == 1
  }

  /// The key's JWK thumbprint (RFC 7638 with RFC 8037 §2): base64url of the SHA-256 of
  /// `{"crv":"Ed25519","kty":"OKP","x":"<x>"}`. A stable, standard key id.
  public var thumbprint: String {
    let jwk = #"{"crv":"Ed25519","kty":"OKP","x":""# + Base64URL.encode(rawRepresentation) + #""}"#
    return Base64URL.encode(SHA256.hash(Array(jwk.utf8)))
  }
}

/// An Ed25519 private key with its public key; owns one `EVP_PKEY` (freed, and its
/// secret cleansed by libcrypto, in `deinit`).
public final class Ed25519KeyPair {
  private let key: EVPKey
  /// The public half.
  public let publicKey: Ed25519PublicKey

  /// A new random key pair (`EVP_PKEY_keygen`, libcrypto's CSPRNG).
  /// - Throws: `Ed25519Error` when libcrypto fails.
  public init() throws(Ed25519Error) {
    guard let context = EVP_PKEY_CTX_new_id(ccrypto_pkey_ed25519(), nil) else {
      throw Ed25519Error.libcrypto("EVP_PKEY_CTX_new_id")
    }
    defer { EVP_PKEY_CTX_free(context) }
    guard EVP_PKEY_keygen_init(context) == 1 else { throw Ed25519Error.libcrypto("EVP_PKEY_keygen_init") }
    var handle: OpaquePointer? = nil
    guard EVP_PKEY_keygen(context, &handle) == 1, let handle else {
      throw Ed25519Error.libcrypto("EVP_PKEY_keygen")
    }
    key = EVPKey(owning: handle)
    publicKey = try key.publicKey()
  }

  /// The key pair for a 32-byte private seed (`EVP_PKEY_new_raw_private_key`).
  /// - Throws: `Ed25519Error` when `seed` is not 32 bytes or libcrypto fails.
  public init(seed: [UInt8]) throws(Ed25519Error) {
    guard seed.count == Ed25519.seedBytes else {
      throw Ed25519Error(.length(what: "private key seed", expected: Ed25519.seedBytes, got: seed.count))
    }
    let handle = seed.withUnsafeBufferPointer {
      EVP_PKEY_new_raw_private_key(ccrypto_pkey_ed25519(), nil, $0.baseAddress, $0.count)
    }
    guard let handle else { throw Ed25519Error.libcrypto("EVP_PKEY_new_raw_private_key") }
    key = EVPKey(owning: handle)
    publicKey = try key.publicKey()
  }

  /// The 32-byte private seed (`EVP_PKEY_get_raw_private_key`), to store the key.
  /// The caller should overwrite its copy when done (`Ed25519.cleanse`).
  /// - Throws: `Ed25519Error` when libcrypto fails.
  public func seed() throws(Ed25519Error) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: Ed25519.seedBytes)
    var length = out.count
    let ok = out.withUnsafeMutableBufferPointer {
      EVP_PKEY_get_raw_private_key(key.handle, $0.baseAddress, &length)
    }
    guard ok == 1, length == Ed25519.seedBytes else {
      throw Ed25519Error.libcrypto("EVP_PKEY_get_raw_private_key")
    }
    return out
  }

  /// The 64-byte signature of `message` (`EVP_DigestSignInit` with a NULL digest, then
  /// `EVP_DigestSign`). Ed25519 is deterministic: the same key and message give the
  /// same signature.
  /// - Throws: `Ed25519Error` when libcrypto fails (allocation).
  public func sign(_ message: [UInt8]) throws(Ed25519Error) -> [UInt8] {
    guard let context = EVP_MD_CTX_new() else { throw Ed25519Error.libcrypto("EVP_MD_CTX_new") }
    defer { EVP_MD_CTX_free(context) }
    guard EVP_DigestSignInit(context, nil, nil, nil, key.handle) == 1 else {
      throw Ed25519Error.libcrypto("EVP_DigestSignInit")
    }
    var signature = [UInt8](repeating: 0, count: Ed25519.signatureBytes)
    var length = signature.count
    let ok = signature.withUnsafeMutableBufferPointer { sig in
      message.withUnsafeBufferPointer { msg in
        EVP_DigestSign(context, sig.baseAddress, &length, msg.baseAddress, msg.count)
      }
    }
    guard ok == 1, length == Ed25519.signatureBytes else { throw Ed25519Error.libcrypto("EVP_DigestSign") }
    return signature
  }
}

extension Ed25519 {
  /// Overwrites `bytes` with zeros in a way the compiler does not remove
  /// (`OPENSSL_cleanse`), for copies of a private seed. Best effort: Swift may have
  /// made other copies of the array's storage.
  public static func cleanse(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
  }
}

/// Owns one `EVP_PKEY*`; `EVP_PKEY_free` in `deinit`.
private final class EVPKey {
  let handle: OpaquePointer

  init(owning handle: OpaquePointer) {
    self.handle = handle
  }

  /// `EVP_PKEY_new_raw_public_key` for 32 raw bytes.
  convenience init(publicKey raw: [UInt8]) throws(Ed25519Error) {
    let handle = raw.withUnsafeBufferPointer {
      EVP_PKEY_new_raw_public_key(ccrypto_pkey_ed25519(), nil, $0.baseAddress, $0.count)
    }
    guard let handle else { throw Ed25519Error.libcrypto("EVP_PKEY_new_raw_public_key") }
    self.init(owning: handle)
  }

  deinit {
    EVP_PKEY_free(handle)
  }

  /// The raw public key of this key (`EVP_PKEY_get_raw_public_key`).
  func publicKey() throws(Ed25519Error) -> Ed25519PublicKey {
    var raw = [UInt8](repeating: 0, count: Ed25519.publicKeyBytes)
    var length = raw.count
    let ok = raw.withUnsafeMutableBufferPointer {
      EVP_PKEY_get_raw_public_key(handle, $0.baseAddress, &length)
    }
    guard ok == 1, length == Ed25519.publicKeyBytes else {
      throw Ed25519Error.libcrypto("EVP_PKEY_get_raw_public_key")
    }
    return try Ed25519PublicKey(rawRepresentation: raw)
  }
}

/// An Ed25519 key of the wrong size, or a libcrypto failure.
public struct Ed25519Error: Error, CustomStringConvertible, Equatable, Sendable {
  fileprivate enum Kind: Equatable, Sendable {
    case length(what: String, expected: Int, got: Int)
    case libcrypto(function: String, detail: String)
  }

  private let kind: Kind

  fileprivate init(_ kind: Kind) { self.kind = kind }

  /// A failed libcrypto call, with the oldest error of libcrypto's queue, read (and
  /// the queue emptied) at once.
  fileprivate static func libcrypto(_ function: String) -> Ed25519Error {
    var buffer = [CChar](repeating: 0, count: 256)
    let code = buffer.withUnsafeMutableBufferPointer { ccrypto_take_error($0.baseAddress, $0.count) }
    let detail = code == 0 ? "" : buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    return Ed25519Error(.libcrypto(function: function, detail: detail))
  }

  public var description: String {
    switch kind {
    case .length(let what, let expected, let got):
      return "an Ed25519 " + what + " is " + String(expected) + " bytes, got " + String(got)
    case .libcrypto(let function, let detail):
      return function + " failed" + (detail.isEmpty ? "" : ": " + detail)
    }
  }
}

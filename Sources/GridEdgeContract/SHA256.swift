import CCrypto

/// SHA-256 through OpenSSL's libcrypto (`EVP_Digest` with `EVP_sha256`), for the
/// audit hash chain and attachment digests.
public enum SHA256 {
  /// The 32-byte digest of `bytes`.
  ///
  /// `EVP_Digest` only fails on allocation failure inside libcrypto; that is treated
  /// as fatal, like any other out-of-memory condition in Swift.
  public static func hash(_ bytes: [UInt8]) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    let ok = bytes.withUnsafeBytes { input in
      digest.withUnsafeMutableBytes { output in
        EVP_Digest(
          input.baseAddress, input.count, output.baseAddress?.assumingMemoryBound(to: UInt8.self),
          &length, EVP_sha256(), nil)
      }
    }
    precondition(ok == 1 && length == 32, "EVP_Digest(SHA-256) failed")
    return digest
  }
}

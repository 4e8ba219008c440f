import CMosquitto

/// A failed libmosquitto call: the `MOSQ_ERR_*` code, what was being done, and for
/// `MOSQ_ERR_ERRNO` the `errno` captured right after the call.
///
/// `description` reads, for example,
/// `connect 127.0.0.1:1883: Connection refused (errno 111)` or
/// `publish gridedge/v1/x/#: Invalid arguments provided. (MOSQ_ERR_INVAL)`.
public struct MosquittoError: Error, CustomStringConvertible {
  /// The `MOSQ_ERR_*` code (see the named constants below).
  public let code: Int32
  /// What was being done, with the topic or `host:port` at fault, e.g.
  /// `"connect 127.0.0.1:1883"`, `"publish gridedge/v1/x/state"`.
  public let operation: String
  /// `errno` when `code == MosquittoError.errno`, else 0.
  public let systemErrno: Int32

  public init(code: Int32, operation: String, systemErrno: Int32 = 0) {
    self.code = code
    self.operation = operation
    self.systemErrno = systemErrno
  }

  public var description: String {
    if code == MosquittoError.errno && systemErrno != 0 {
      return operation + ": " + cString(cmosquitto_strerror(systemErrno)) + " (errno "
        + "\(systemErrno))"
    }
    return operation + ": " + cString(mosquitto_strerror(code)) + " (" + MosquittoError.name(of: code)
      + ")"
  }

  /// True when the error means the connection is gone (or was never made), so the owner
  /// should call `reconnect()` after a backoff. Every error thrown by `loopRead`,
  /// `loopWrite` or `loopMisc` closes the socket, whatever its code; this property is
  /// for errors from `publish`/`subscribe`/`connect`.
  public var isConnectionFailure: Bool {
    switch code {
    case MosquittoError.noConnection, MosquittoError.connectionLost, MosquittoError.errno,
      MosquittoError.keepalive, MosquittoError.tls, MosquittoError.lookup,
      MosquittoError.connectionRefused, MosquittoError.protocolError:
      return true
    default:
      return false
    }
  }

  // Named `MOSQ_ERR_*` codes (mosquitto.h `enum mosq_err_t`).
  public static let success = rc(MOSQ_ERR_SUCCESS)
  public static let outOfMemory = rc(MOSQ_ERR_NOMEM)
  public static let protocolError = rc(MOSQ_ERR_PROTOCOL)
  public static let invalidArgument = rc(MOSQ_ERR_INVAL)
  public static let noConnection = rc(MOSQ_ERR_NO_CONN)
  public static let connectionRefused = rc(MOSQ_ERR_CONN_REFUSED)
  public static let notFound = rc(MOSQ_ERR_NOT_FOUND)
  public static let connectionLost = rc(MOSQ_ERR_CONN_LOST)
  public static let tls = rc(MOSQ_ERR_TLS)
  public static let payloadSize = rc(MOSQ_ERR_PAYLOAD_SIZE)
  public static let notSupported = rc(MOSQ_ERR_NOT_SUPPORTED)
  public static let auth = rc(MOSQ_ERR_AUTH)
  public static let aclDenied = rc(MOSQ_ERR_ACL_DENIED)
  public static let unknown = rc(MOSQ_ERR_UNKNOWN)
  public static let errno = rc(MOSQ_ERR_ERRNO)
  public static let addressLookup = rc(MOSQ_ERR_EAI)
  public static let malformedUTF8 = rc(MOSQ_ERR_MALFORMED_UTF8)
  public static let keepalive = rc(MOSQ_ERR_KEEPALIVE)
  public static let lookup = rc(MOSQ_ERR_LOOKUP)
  public static let malformedPacket = rc(MOSQ_ERR_MALFORMED_PACKET)
  public static let duplicateProperty = rc(MOSQ_ERR_DUPLICATE_PROPERTY)
  public static let qosNotSupported = rc(MOSQ_ERR_QOS_NOT_SUPPORTED)
  public static let oversizePacket = rc(MOSQ_ERR_OVERSIZE_PACKET)

  private static func rc(_ value: mosq_err_t) -> Int32 {
    Int32(truncatingIfNeeded: value.rawValue)
  }

  /// The C name of a code, for log lines an engineer can grep the headers for.
  static func name(of code: Int32) -> String {
    switch code {
    case success: return "MOSQ_ERR_SUCCESS"
    case outOfMemory: return "MOSQ_ERR_NOMEM"
    case protocolError: return "MOSQ_ERR_PROTOCOL"
    case invalidArgument: return "MOSQ_ERR_INVAL"
    case noConnection: return "MOSQ_ERR_NO_CONN"
    case connectionRefused: return "MOSQ_ERR_CONN_REFUSED"
    case notFound: return "MOSQ_ERR_NOT_FOUND"
    case connectionLost: return "MOSQ_ERR_CONN_LOST"
    case tls: return "MOSQ_ERR_TLS"
    case payloadSize: return "MOSQ_ERR_PAYLOAD_SIZE"
    case notSupported: return "MOSQ_ERR_NOT_SUPPORTED"
    case auth: return "MOSQ_ERR_AUTH"
    case aclDenied: return "MOSQ_ERR_ACL_DENIED"
    case unknown: return "MOSQ_ERR_UNKNOWN"
    case errno: return "MOSQ_ERR_ERRNO"
    case addressLookup: return "MOSQ_ERR_EAI"
    case malformedUTF8: return "MOSQ_ERR_MALFORMED_UTF8"
    case keepalive: return "MOSQ_ERR_KEEPALIVE"
    case lookup: return "MOSQ_ERR_LOOKUP"
    case malformedPacket: return "MOSQ_ERR_MALFORMED_PACKET"
    case duplicateProperty: return "MOSQ_ERR_DUPLICATE_PROPERTY"
    case qosNotSupported: return "MOSQ_ERR_QOS_NOT_SUPPORTED"
    case oversizePacket: return "MOSQ_ERR_OVERSIZE_PACKET"
    default: return "MOSQ_ERR \(code)"
    }
  }
}

/// The one seam for libmosquitto result codes: returns normally on `MOSQ_ERR_SUCCESS`,
/// else throws with `errno` captured before anything else can change it.
@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(MosquittoError) {
  if rc == MosquittoError.success { return }
  let savedErrno = rc == MosquittoError.errno ? cmosquitto_errno() : 0
  throw MosquittoError(code: rc, operation: operation(), systemErrno: savedErrno)
}

/// Copies a C string (nil becomes "").
func cString(_ pointer: UnsafePointer<CChar>?) -> String {
  guard let pointer else { return "" }
  return String(cString: pointer)
}

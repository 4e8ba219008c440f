import CLibc

/// A failed system call: what was attempted, on what, and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Sendable {
  /// The errno value (0 when the failure was not a system call's).
  public let errno: Int32
  /// What was attempted, with its object: `open /etc/gridedge.conf`.
  public let operation: String

  public init(errno: Int32, operation: String) {
    self.errno = errno
    self.operation = operation
  }

  /// Captures the current `errno` at once, before any other call can change it.
  public static func current(_ operation: String) -> SystemError {
    SystemError(errno: clibc_errno(), operation: operation)
  }

  /// The errno's text, from `strerror`.
  public var reason: String {
    guard errno != 0, let text = strerror(errno) else { return "failed" }
    return String(cString: text)
  }

  public var description: String { operation + ": " + reason }

  /// True when the failure means the file does not exist.
  public var isNotFound: Bool { errno == ENOENT }
}

import CLibc

/// SIGTERM, SIGINT and SIGHUP (stop requests) and SIGUSR1 (a request the program
/// defines, e.g. the agent's bus search) delivered as a readable descriptor
/// (`signalfd(2)`), so that each is one more event of the poll loop.
///
/// The signals are blocked for the process, so create this before any thread
/// exists (the agent has none). SIGPIPE is ignored so that a broken socket is an
/// error code rather than death.
public final class TerminationSignals {
  /// The descriptor to poll for reading.
  public let fd: Int32

  /// - Throws: `SystemError` when the signals cannot be blocked or the fd made.
  public init() throws(SystemError) {
    clibc_ignore_sigpipe()
    let fd = clibc_signalfd_for_termination()
    guard fd >= 0 else { throw SystemError.current("signalfd") }
    self.fd = fd
  }

  deinit { close(fd) }

  /// Reads the pending signals. - Returns: their numbers (SIGTERM = 15, SIGINT = 2, SIGHUP = 1,
  /// SIGUSR1 = 10).
  public func take() -> [Int32] {
    var out: [Int32] = []
    var info = signalfd_siginfo()
    let size = MemoryLayout<signalfd_siginfo>.size
    while withUnsafeMutableBytes(of: &info, { CLibc.read(fd, $0.baseAddress, size) }) == size {
      out.append(Int32(bitPattern: info.ssi_signo))
    }
    return out
  }

  /// SIGUSR1: the program's own request, not a stop.
  public static let userRequest: Int32 = SIGUSR1

  /// The usual name of a signal taken here.
  public static func name(_ signal: Int32) -> String {
    switch signal {
    case SIGTERM: return "SIGTERM"
    case SIGINT: return "SIGINT"
    case SIGHUP: return "SIGHUP"
    case SIGUSR1: return "SIGUSR1"
    default: return "signal " + String(signal)
    }
  }
}

import CLibc

/// Severity of a log line; lines below the configured level are dropped.
public enum LogLevel: Int, Comparable, Sendable {
  case debug = 0
  case info = 1
  case warn = 2
  case error = 3

  /// Parses `debug`, `info`, `warn` or `error`.
  public init?(name: String) {
    switch name {
    case "debug": self = .debug
    case "info": self = .info
    case "warn", "warning": self = .warn
    case "error": self = .error
    default: return nil
    }
  }

  public var name: String {
    switch self {
    case .debug: return "debug"
    case .info: return "info"
    case .warn: return "warn"
    case .error: return "error"
    }
  }

  public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Logging to stderr, one line per event (journald keeps stderr of a systemd unit).
///
/// Lines look like `warn  sync: broker 127.0.0.1:1883 unreachable`. The syslog
/// priority prefix journald understands (`<4>`) is added only when `JOURNAL_STREAM`
/// is set, i.e. when stderr really is the journal.
///
/// Thread affinity: the agent is single-threaded; so is this.
public enum Log {
  nonisolated(unsafe) public static var level: LogLevel = .info
  nonisolated(unsafe) private static var journal: Bool = getenv("JOURNAL_STREAM") != nil

  public static func debug(_ component: String, _ message: String) {
    write(.debug, component, message)
  }
  public static func info(_ component: String, _ message: String) {
    write(.info, component, message)
  }
  public static func warn(_ component: String, _ message: String) {
    write(.warn, component, message)
  }
  public static func error(_ component: String, _ message: String) {
    write(.error, component, message)
  }

  /// Writes one line at `level` if the configured level lets it through.
  public static func write(_ lineLevel: LogLevel, _ component: String, _ message: String) {
    guard lineLevel >= level else { return }
    var line = ""
    if journal {
      switch lineLevel {
      case .debug: line = "<7>"
      case .info: line = "<6>"
      case .warn: line = "<4>"
      case .error: line = "<3>"
      }
    }
    var name = lineLevel.name
    while name.utf8.count < 5 { name += " " }
    line += name + " " + component + ": " + message + "\n"
    Console.writeError(line)
  }
}

/// Direct writes to the standard streams.
public enum Console {
  /// Writes `text` to stderr unbuffered.
  public static func writeError(_ text: String) {
    fputs(text, clibc_stderr())
  }

  /// Writes `text` to stdout (line buffered after `Process.prepare()`).
  public static func write(_ text: String) {
    fputs(text, stdout_stream())
  }

  /// Writes `text` and a newline to stdout.
  public static func writeLine(_ text: String) {
    write(text + "\n")
  }

  private static func stdout_stream() -> UnsafeMutablePointer<FILE> { clibc_stdout() }
}

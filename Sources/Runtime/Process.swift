import CLibc

/// The running process: arguments, id, exit.
public enum Process {
  /// Sets stdout line buffered (an optimised build traps without a message, so each
  /// line must already be out) and ignores SIGPIPE. Call first in `main`.
  public static func prepare() {
    clibc_line_buffer_stdout()
    clibc_ignore_sigpipe()
  }

  /// The command line, program name first, read from `/proc/self/cmdline`.
  ///
  /// Embedded Swift has no `CommandLine`, and SwiftPM renames `main` in test
  /// builds, so the kernel's copy of argv is the one source that works in every
  /// build of the executables.
  public static func arguments() -> [String] {
    rawArguments().map { String(decoding: $0, as: UTF8.self) }
  }

  /// The position (1 = the first after the program name) of the first argument that
  /// is not valid UTF-8, or nil. `arguments()` would have replaced its bad bytes with
  /// U+FFFD: text given on the command line is refused rather than stored altered.
  public static func invalidUTF8Argument() -> Int? {
    for (i, word) in rawArguments().enumerated().dropFirst()
    where !String(decoding: word, as: UTF8.self).utf8.elementsEqual(word) {
      return i
    }
    return nil
  }

  /// The bytes of every argument, program name first.
  private static func rawArguments() -> [[UInt8]] {
    guard let bytes = try? Files.read("/proc/self/cmdline") else { return [] }
    var out: [[UInt8]] = []
    var current: [UInt8] = []
    for b in bytes {
      if b == 0 {
        out.append(current)
        current.removeAll(keepingCapacity: true)
      } else {
        current.append(b)
      }
    }
    if !current.isEmpty { out.append(current) }
    return out
  }

  /// This process's id.
  public static var id: Int32 { getpid() }

  /// True when a process with id `pid` exists (`kill(pid, 0)`).
  public static func isAlive(_ pid: Int32) -> Bool {
    guard pid > 0 else { return false }
    return kill(pid, 0) == 0 || clibc_errno() == EPERM
  }

  /// Sends `signal` to process `pid`. - Returns: whether it was sent.
  public static func send(_ signal: Int32, to pid: Int32) -> Bool {
    pid > 0 && kill(pid, signal) == 0
  }

  /// The value of environment variable `name`.
  public static func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
  }

  /// Ends the process with `code`, flushing stdio.
  public static func exit(_ code: Int32) -> Never {
    CLibc.exit(code)
  }

  /// Peak resident set size of this process in KiB (`getrusage`).
  public static var peakResidentKiB: Int64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int64(usage.ru_maxrss)
  }
}

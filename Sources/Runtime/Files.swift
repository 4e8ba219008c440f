import CLibc

/// Whole-file reads and small file-system operations.
public enum Files {
  /// Reads the whole file at `path`.
  /// - Throws: `SystemError` naming the path (`open`, `read`).
  public static func read(_ path: String) throws(SystemError) -> [UInt8] {
    let fd = clibc_open(path, O_RDONLY | O_CLOEXEC, 0)
    guard fd >= 0 else { throw SystemError.current("open " + path) }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = chunk.withUnsafeMutableBytes { CLibc.read(fd, $0.baseAddress, $0.count) }
      if n < 0 {
        if clibc_errno() == EINTR { continue }
        throw SystemError.current("read " + path)
      }
      if n == 0 { break }
      out.append(contentsOf: chunk[0..<n])
    }
    return out
  }

  /// Reads the whole file at `path` as UTF-8 text (invalid bytes become U+FFFD).
  public static func readText(_ path: String) throws(SystemError) -> String {
    String(decoding: try read(path), as: UTF8.self)
  }

  /// Writes `bytes` to `path` atomically: a temporary file, `fsync`, `rename`.
  public static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(SystemError) {
    let temporary = path + ".tmp"
    let fd = clibc_open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw SystemError.current("open " + temporary) }
    var written = 0
    while written < bytes.count {
      let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
      if n < 0 {
        if clibc_errno() == EINTR { continue }
        let error = SystemError.current("write " + temporary)
        close(fd)
        throw error
      }
      written += n
    }
    if fsync(fd) != 0 {
      let error = SystemError.current("fsync " + temporary)
      close(fd)
      throw error
    }
    close(fd)
    guard rename(temporary, path) == 0 else { throw SystemError.current("rename " + path) }
  }

  /// The names in directory `path` (not `.` and `..`), unsorted.
  /// - Throws: `SystemError` when it cannot be opened.
  public static func list(_ path: String) throws(SystemError) -> [String] {
    guard let dir = opendir(path) else { throw SystemError.current("opendir " + path) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafePointer(to: &entry.pointee.d_name) {
        String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names
  }

  /// True when something exists at `path`.
  public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

  /// Renames `from` to `to` (`rename(2)`).
  public static func move(_ from: String, to: String) throws(SystemError) {
    guard rename(from, to) == 0 else { throw SystemError.current("rename " + from + " to " + to) }
  }

  /// Removes the file at `path`; a missing file is not an error.
  public static func remove(_ path: String) throws(SystemError) {
    if unlink(path) != 0 && clibc_errno() != ENOENT { throw SystemError.current("unlink " + path) }
  }

  /// The size of the file at `path` in bytes, or nil when it does not exist.
  public static func size(_ path: String) -> Int64? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return Int64(st.st_size)
  }
}

import CLibc

/// One descriptor and the events wanted on it, for `Poller.wait`.
public struct PollRequest: Sendable {
  public let fd: Int32
  public let wantRead: Bool
  public let wantWrite: Bool

  public init(fd: Int32, read: Bool = true, write: Bool = false) {
    self.fd = fd
    self.wantRead = read
    self.wantWrite = write
  }
}

/// What `poll(2)` reported for one descriptor.
public struct PollResult: Sendable {
  public let fd: Int32
  public let readable: Bool
  public let writable: Bool
  /// POLLERR, POLLHUP or POLLNVAL: the owner should read to learn the error.
  public let failed: Bool
}

/// The agent's one wait: `poll(2)` over the descriptors of this round.
public enum Poller {
  /// Waits until a descriptor is ready or `timeoutMilliseconds` pass.
  /// - Returns: one result per request, in the same order. EINTR returns no readiness.
  /// - Throws: `SystemError` for any other `poll` failure.
  public static func wait(_ requests: [PollRequest], timeoutMilliseconds: Int32) throws(SystemError)
    -> [PollResult]
  {
    var fds: [pollfd] = requests.map { r in
      var events: Int16 = 0
      if r.wantRead { events |= Int16(POLLIN) }
      if r.wantWrite { events |= Int16(POLLOUT) }
      return pollfd(fd: r.fd, events: events, revents: 0)
    }
    let rc = fds.withUnsafeMutableBufferPointer { buf in
      poll(buf.baseAddress, nfds_t(buf.count), timeoutMilliseconds)
    }
    if rc < 0 {
      let error = SystemError.current("poll")
      if error.errno != EINTR { throw error }
      return requests.map { PollResult(fd: $0.fd, readable: false, writable: false, failed: false) }
    }
    return fds.map { p in
      PollResult(
        fd: p.fd,
        readable: p.revents & Int16(POLLIN) != 0,
        writable: p.revents & Int16(POLLOUT) != 0,
        failed: p.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0)
    }
  }
}

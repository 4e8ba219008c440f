/// A streaming DL/T 645 frame decoder with a bounded buffer.
///
/// Feed it bytes as they arrive (`feed`), then call `next()` until it returns nil:
/// each call returns one frame, nil when more bytes are needed, or throws a
/// `FrameError` for a malformed frame. After a throw the decoder has already moved
/// past the bad bytes and resynchronises on the next 0x68, so keep calling `next()`:
///
/// ```swift
/// decoder.feed(bytesFromTheLine)
/// while true {
///   do {
///     guard let frame = try decoder.next() else { break }
///     handle(frame)
///   } catch {
///     log(error.description)
///   }
/// }
/// ```
///
/// Wake-up bytes (0xFE), trailing 0xFF and any other bytes before a 0x68 are skipped
/// (and counted in `discardedByteCount`). Address bytes and the second 0x68 are checked
/// as soon as they arrive, so line noise that happens to contain 0x68 is rejected early
/// instead of waiting for a length that never comes; and a frame cut off by a new,
/// complete frame is reported (`truncated`) as soon as the new one is in, so the new
/// one is not lost. When the line goes quiet inside a frame (a reply timeout, end of
/// file), call `finish()` to report and drop the partial frame.
///
/// Memory stays bounded: at most `capacity` bytes are held. Buffered bytes without any
/// 0x68 are dropped when new bytes come in; if more than `capacity` unread bytes pile
/// up (the caller fed more without calling `next()`), the oldest are dropped and
/// counted in `overflowByteCount`.
///
/// One decoder per line (serial port or TCP connection); it is a value type with no
/// I/O, so tests can drive it byte by byte.
public struct FrameDecoder: Sendable {
  /// The default buffer bound: room for several of the longest frames (267 bytes).
  public static let defaultCapacity = 1024

  /// The most bytes held at once (at least one longest frame, 267 bytes).
  public let capacity: Int

  private var buffer: [UInt8] = []
  /// Index in `buffer` of the first unread byte.
  private var start = 0
  /// Stream offset of `buffer[0]`.
  private var base = 0

  /// Bytes skipped because they were not part of any frame: wake-up bytes, trailing
  /// 0xFF, noise, and the bytes of malformed frames.
  public private(set) var discardedByteCount = 0
  /// Bytes dropped unread because more than `capacity` were waiting.
  public private(set) var overflowByteCount = 0

  /// A decoder.
  /// - Parameter capacity: the buffer bound in bytes; raised to 267 (one longest
  ///   frame) if smaller.
  public init(capacity: Int = FrameDecoder.defaultCapacity) {
    self.capacity = max(capacity, Frame.maxEncodedLength)
  }

  /// Bytes received but not yet decoded or discarded.
  public var bufferedByteCount: Int { buffer.count - start }

  /// Stream offset of the next unread byte (bytes fed since `init` or `reset()`,
  /// minus those still buffered).
  public var position: Int { base + start }

  /// Appends received bytes. Call `next()` until it returns nil afterwards.
  public mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
    compact()
    // Nothing held can start a frame when it has no 0x68: let it go now.
    if !buffer.isEmpty, !buffer.contains(0x68) {
      discardedByteCount += buffer.count
      base += buffer.count
      buffer.removeAll(keepingCapacity: true)
    }
    buffer.append(contentsOf: bytes)
    if buffer.count > capacity {
      let excess = buffer.count - capacity
      overflowByteCount += excess
      base += excess
      buffer.removeFirst(excess)
    }
  }

  /// The next complete frame.
  /// - Returns: a frame, or nil when more bytes are needed.
  /// - Throws: `FrameError` for a malformed frame. Its bytes are skipped — the whole
  ///   frame for a checksum mismatch with the end byte in place or a wrong length byte,
  ///   the bytes before the next frame when it was cut off by a new one, otherwise just
  ///   the 0x68 it started with — so the next call goes on with what follows.
  public mutating func next() throws(FrameError) -> Frame? {
    // Skip to a start byte.
    while start < buffer.count, buffer[start] != 0x68 {
      start += 1
      discardedByteCount += 1
    }
    let p = start
    let available = buffer.count - p
    guard available > 0 else {
      compact()
      return nil
    }
    // Address bytes, as far as they have arrived.
    for i in 0..<min(6, available - 1) {
      let byte = buffer[p + 1 + i]
      if !Address.isValidByte(byte) {
        throw reject(.addressNotBCD(index: i, byte: byte), skipping: 1)
      }
    }
    if available >= 8 && buffer[p + 7] != 0x68 {
      throw reject(.secondStartMissing(found: buffer[p + 7]), skipping: 1)
    }
    let total = available >= 10 ? 12 + Int(buffer[p + 9]) : nil
    if let total, available >= total {
      let length = total - 12
      let checksum = dlt645Checksum(buffer[p..<(p + 10 + length)])
      let received = buffer[p + 10 + length]
      let end = buffer[p + 11 + length]
      if end == 0x16 && checksum == received {
        return take(at: p, length: length)
      }
      // A valid frame starting inside this one: this one was cut off. (Checked first,
      // so skipping a whole bad frame never swallows the start of a good one.)
      if let q = completeFrame(after: p, before: p + total) {
        throw reject(.cutOff(received: q - p, expected: total), skipping: q - p)
      }
      if end == 0x16 {
        throw reject(
          .checksumMismatch(computed: checksum, received: received, dataLength: length), skipping: total)
      }
      if let actual = consistentLength(at: p, declared: length) {
        throw reject(.lengthMismatch(declared: length, actual: actual), skipping: 12 + actual)
      }
      throw reject(.endByteMissing(found: end, dataLength: length), skipping: 1)
    }
    // Incomplete. A complete frame further on means this one was cut off (the line
    // dropped bytes, or a reply was interrupted): report it now instead of waiting.
    if let q = completeFrame(after: p, before: buffer.count) {
      throw reject(.cutOff(received: q - p, expected: total), skipping: q - p)
    }
    return nil
  }

  /// Ends the input (a reply timeout, end of file): a partial frame still buffered is
  /// dropped and reported. Call it after `next()` returned nil (complete frames are left
  /// for `next()`).
  /// - Throws: `FrameError`: `lengthMismatch` when the bytes held form a complete frame
  ///   shorter than its length byte says, otherwise `truncated` when they hold the start
  ///   of a frame.
  public mutating func finish() throws(FrameError) {
    while start < buffer.count, buffer[start] != 0x68 {
      start += 1
      discardedByteCount += 1
    }
    let available = buffer.count - start
    guard available > 0 else {
      compact()
      return
    }
    guard available >= 10 else {
      throw reject(.truncated(received: available, expected: nil), skipping: available)
    }
    let declared = Int(buffer[start + 9])
    // A complete frame (valid or not) is next()'s business.
    if available >= 12 + declared { return }
    if let actual = consistentLength(at: start, declared: declared), actual < declared {
      throw reject(.lengthMismatch(declared: declared, actual: actual), skipping: available)
    }
    throw reject(.truncated(received: available, expected: 12 + declared), skipping: available)
  }

  /// Forgets everything buffered and restarts stream offsets and counters at 0.
  public mutating func reset() {
    buffer.removeAll(keepingCapacity: true)
    start = 0
    base = 0
    discardedByteCount = 0
    overflowByteCount = 0
  }

  /// The frame at `p` (known complete and valid); consumes it.
  private mutating func take(at p: Int, length: Int) -> Frame {
    // The address bytes were checked on arrival.
    let address = Address(wireBytes: buffer[(p + 1)..<(p + 7)])!
    let control = Control(rawValue: buffer[p + 8])
    let data = DataOffset.remove(buffer[(p + 10)..<(p + 10 + length)])
    start = p + 12 + length
    return Frame(address: address, control: control, fixedData: data)
  }

  /// The error for the frame at `start`, after skipping `count` bytes of it.
  private mutating func reject(_ kind: FrameError.Kind, skipping count: Int) -> FrameError {
    let error = FrameError(kind, offset: base + start)
    start += count
    discardedByteCount += count
    return error
  }

  /// When the declared length does not lead to CS 16, a shorter or longer data length
  /// that does (within the buffered bytes), if any: the frame's length byte is wrong.
  private func consistentLength(at p: Int, declared: Int) -> Int? {
    let limit = min(Frame.maxDataLength, buffer.count - p - 12)
    guard limit >= 0 else { return nil }
    // The sum of the bytes before the checksum, for each candidate length in turn.
    var sum = dlt645Checksum(buffer[p..<(p + 10)])
    for candidate in 0...limit {
      if candidate != declared && buffer[p + 10 + candidate] == sum
        && buffer[p + 11 + candidate] == 0x16
      {
        return candidate
      }
      sum = sum &+ buffer[p + 10 + candidate]
    }
    return nil
  }

  /// The index of the first 0x68 after `p` and before `limit` that starts a complete,
  /// valid frame within the buffered bytes, if any.
  private func completeFrame(after p: Int, before limit: Int) -> Int? {
    var q = p + 1
    while q < limit, q + 12 <= buffer.count {
      if buffer[q] == 0x68, isCompleteFrame(at: q) { return q }
      q += 1
    }
    return nil
  }

  /// Whether the buffer holds a complete, valid frame at `q`.
  private func isCompleteFrame(at q: Int) -> Bool {
    guard q + 12 <= buffer.count, buffer[q + 7] == 0x68 else { return false }
    for i in 1...6 where !Address.isValidByte(buffer[q + i]) { return false }
    let length = Int(buffer[q + 9])
    guard q + 12 + length <= buffer.count, buffer[q + 11 + length] == 0x16 else { return false }
    return dlt645Checksum(buffer[q..<(q + 10 + length)]) == buffer[q + 10 + length]
  }

  /// Drops consumed bytes from the front of the buffer.
  private mutating func compact() {
    guard start > 0 else { return }
    base += start
    buffer.removeFirst(start)
    start = 0
  }
}

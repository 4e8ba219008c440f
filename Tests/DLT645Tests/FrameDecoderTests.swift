import Testing

@testable import DLT645

/// Read 00 01 00 00 from 000012345678 (see GoldenFrameTests for the working).
let readTotal = hex("68 78 56 34 12 00 00 68 11 04 33 33 34 33 C6 16")
/// The reply 12345.67 kWh to it.
let replyTotal = hex("68 78 56 34 12 00 00 68 91 08 33 33 34 33 9A 78 56 34 E6 16")

@Suite struct FrameDecoderTests {
  @Test func decodeReturnsNilOnEmptyInput() throws {
    var decoder = FrameDecoder()
    #expect(try decoder.next() == nil)
    decoder.feed([UInt8]())
    #expect(try decoder.next() == nil)
    try decoder.finish()
    #expect(decoder.bufferedByteCount == 0)
  }

  @Test func decodeReturnsNilOnEveryTruncatedPrefixThenTheFrame() throws {
    for cut in 1..<readTotal.count {
      var decoder = FrameDecoder()
      decoder.feed(readTotal[..<cut])
      #expect(try decoder.next() == nil, "prefix of \(cut) bytes")
      decoder.feed(readTotal[cut...])
      let frame = try #require(try decoder.next(), "completed after \(cut) bytes")
      #expect(frame.address == meter)
      #expect(frame.control == Control(.read))
      #expect(frame.data == [0x00, 0x00, 0x01, 0x00])
      #expect(try decoder.next() == nil)
    }
  }

  @Test func decodesOneByteAtATime() throws {
    var decoder = FrameDecoder()
    var frames: [Frame] = []
    for byte in [0xFE, 0xFE, 0xFE, 0xFE] + replyTotal {
      decoder.feed([byte])
      if let frame = try decoder.next() { frames.append(frame) }
    }
    #expect(frames.count == 1)
    #expect(frames.first?.data == [0x00, 0x00, 0x01, 0x00, 0x67, 0x45, 0x23, 0x01])
  }

  @Test func skipsWakeUpBytesAndToleratesTrailingFF() {
    let input = [0xFE, 0xFE, 0xFE, 0xFE] + readTotal + [0xFF, 0xFF] + [0xFE, 0xFE] + replyTotal + [0xFF]
    let result = decodeAll(input)
    #expect(result.errors.isEmpty)
    #expect(result.frames.count == 2)
    #expect(result.frames.map(\.control.rawValue) == [0x11, 0x91])
  }

  @Test func countsDiscardedBytes() throws {
    var decoder = FrameDecoder()
    decoder.feed([0xFE, 0xFE, 0x00, 0x12] + readTotal + [0xFF])
    #expect(try decoder.next() != nil)
    #expect(try decoder.next() == nil)
    #expect(decoder.discardedByteCount == 5)
    #expect(decoder.position == 4 + readTotal.count + 1)
  }

  @Test func decodesSeveralFramesFromOneFeed() {
    let result = decodeAll(readTotal + replyTotal + readTotal)
    #expect(result.errors.isEmpty)
    #expect(result.frames.count == 3)
  }

  @Test func decodesAFrameSplitAtEveryPosition() throws {
    let input = readTotal + replyTotal
    for cut in 0...input.count {
      var decoder = FrameDecoder()
      var frames: [Frame] = []
      decoder.feed(input[..<cut])
      while let frame = try decoder.next() { frames.append(frame) }
      decoder.feed(input[cut...])
      while let frame = try decoder.next() { frames.append(frame) }
      #expect(frames.count == 2, "split at \(cut)")
    }
  }

  @Test func resynchronisesAfterABadChecksum() throws {
    var bad = readTotal
    bad[14] = 0xC7
    var decoder = FrameDecoder()
    decoder.feed([0xFE, 0xFE] + bad + [0xFE, 0xFE] + replyTotal)
    let error = try #require(throws: FrameError.self) { try decoder.next() }
    #expect(error.code == .checksumMismatch)
    #expect(error.offset == 2)
    #expect(
      error.description
        == "checksum mismatch in the frame at stream offset 2: computed 0xC6, received 0xC7 (frame byte 14)")
    let frame = try #require(try decoder.next())
    #expect(frame.control.rawValue == 0x91)
    #expect(try decoder.next() == nil)
  }

  @Test func resynchronisesOnTheNext68AfterAMissingEndByte() throws {
    // Only the start byte is skipped (the header may have been noise), so the broken
    // frame's second 68 is tried next and rejected too; then the good frame decodes.
    var bad = readTotal
    bad[15] = 0x00
    let result = decodeAll(bad + readTotal)
    #expect(result.errors.map(\.code) == [.endByteMissing, .secondStartMissing])
    #expect(result.errors.map(\.offset) == [0, 7])
    #expect(result.frames.count == 1)
  }

  @Test func reportsAFrameCutOffByANewOneAndDecodesTheNewOne() throws {
    // The first 12 bytes of a 16-byte frame, then a whole frame: the broken one is
    // reported as soon as the new one is complete, without waiting for more input.
    var decoder = FrameDecoder()
    decoder.feed(Array(readTotal.prefix(12)) + replyTotal)
    let error = try #require(throws: FrameError.self) { try decoder.next() }
    #expect(error.code == .truncated)
    #expect(
      error.description
        == "the frame at stream offset 0 was cut off after 12 bytes (its length byte promised 16): a complete frame starts at stream offset 12"
    )
    #expect(try decoder.next()?.control.rawValue == 0x91)
  }

  @Test func aCutOffFrameWhoseEndLooksRightDoesNotSwallowTheNextFrame() throws {
    // Meter 000000160000: its address byte A2 is 16, right where the cut-off frame's
    // end byte was due, so the cut-off frame looks like a checksum mismatch; the next
    // frame must still be decoded whole.
    let next = Request.read(.forwardActiveTotal).frame(to: Address("000000160000")!).encoded()
    #expect(next[3] == 0x16)
    let result = decodeAll(Array(readTotal.prefix(12)) + next)
    #expect(result.errors.map(\.code) == [.truncated])
    #expect(result.frames.count == 1)
    #expect(result.frames.first?.address == Address("000000160000"))
  }

  @Test func reportsACutOffFrameWhoseLengthByteNeverArrived() throws {
    var decoder = FrameDecoder()
    decoder.feed(Array(readTotal.prefix(9)) + replyTotal)
    let error = try #require(throws: FrameError.self) { try decoder.next() }
    #expect(error.code == .truncated)
    #expect(error.description.contains("cut off after 9 bytes"))
    #expect(try decoder.next()?.control.rawValue == 0x91)
  }

  @Test func rejectsANonBCDAddressByteAsSoonAsItArrives() throws {
    var decoder = FrameDecoder()
    decoder.feed([0x68, 0x78, 0x5F])
    let error = try #require(throws: FrameError.self) { try decoder.next() }
    #expect(error.code == .addressNotBCD)
    #expect(error.description.contains("address byte A1 (frame byte 2)"))
    #expect(error.description.contains("0x5F"))
    #expect(try decoder.next() == nil)
  }

  @Test func acceptsWildcardNibblesInTheAddress() throws {
    // 68 AA AA AA AA 12 A0 68 13 00 CS 16: wildcard bytes and a single wildcard nibble.
    let frame = try #require(
      decodeOne(Request.readAddress.frame(to: Address("A012AAAAAAAA")!).encoded()))
    #expect(frame.address.description == "A012AAAAAAAA")
  }

  @Test func rejectsAMissingSecondStartByte() throws {
    var bad = readTotal
    bad[7] = 0x00
    let result = decodeAll(bad)
    #expect(result.errors.first?.code == .secondStartMissing)
    #expect(result.errors.first?.description.contains("0x00, expected the second start byte 0x68") == true)
  }

  @Test func reportsAShortLengthByteAsLengthMismatch() {
    // L = 03 but 4 data bytes follow; CS C5 was computed over what was sent.
    let result = decodeAll(hex("68 78 56 34 12 00 00 68 11 03 33 33 34 33 C5 16") + readTotal)
    #expect(result.errors.map(\.code) == [.lengthMismatch])
    #expect(result.frames.count == 1)
  }

  @Test func finishReportsALongLengthByteAsLengthMismatch() throws {
    var decoder = FrameDecoder()
    decoder.feed(hex("68 78 56 34 12 00 00 68 11 05 33 33 34 33 C7 16"))
    #expect(try decoder.next() == nil)
    let error = try #require(throws: FrameError.self) { try decoder.finish() }
    #expect(error.code == .lengthMismatch)
    #expect(decoder.bufferedByteCount == 0)
  }

  @Test func finishReportsATruncatedFrame() throws {
    var decoder = FrameDecoder()
    decoder.feed([0xFE] + replyTotal.prefix(13))
    #expect(try decoder.next() == nil)
    let error = try #require(throws: FrameError.self) { try decoder.finish() }
    #expect(error.code == .truncated)
    #expect(error.description == "input ended inside the frame at stream offset 1: 13 of 20 bytes received")
    #expect(decoder.bufferedByteCount == 0)
    try decoder.finish()
  }

  @Test func finishLeavesCompleteFramesForNext() throws {
    var decoder = FrameDecoder()
    decoder.feed(readTotal)
    try decoder.finish()
    #expect(try decoder.next() != nil)
  }

  @Test func decodesTheLongestFrameAndEveryDataByteValue() throws {
    let data = (0..<255).map { UInt8($0) }
    let frame = try Frame(address: meter, control: Control(.read, isReply: true), data: data)
    let wire = frame.encoded()
    #expect(wire.count == Frame.maxEncodedLength)
    #expect(wire[9] == 0xFF)
    let decoded = try #require(decodeOne(wire))
    #expect(decoded == frame)
  }

  @Test func decodesAnEmptyDataField() throws {
    let decoded = try #require(decodeOne(hex("68 78 56 34 12 00 00 68 9C 00 80 16")))
    #expect(decoded.data.isEmpty)
  }

  @Test func bufferStaysBoundedUnderGarbageAndCountsOverflow() throws {
    var decoder = FrameDecoder(capacity: 300)
    #expect(decoder.capacity == 300)
    // Garbage without 68 is let go on the next feed.
    for _ in 0..<100 { decoder.feed([UInt8](repeating: 0x00, count: 200)) }
    #expect(decoder.bufferedByteCount <= 300)
    #expect(decoder.overflowByteCount == 0)
    // A run of 68s could start frames, so it is held; beyond 300 the oldest bytes go.
    decoder.feed([UInt8](repeating: 0x68, count: 1000))
    #expect(decoder.bufferedByteCount == 300)
    #expect(decoder.overflowByteCount == 700)
    // Drain the errors, then a good frame still comes through.
    while true {
      do { if try decoder.next() == nil { break } } catch {}
    }
    decoder.feed(readTotal)
    var frames: [Frame] = []
    while true {
      do {
        guard let frame = try decoder.next() else { break }
        frames.append(frame)
      } catch {}
    }
    #expect(frames.count == 1)
  }

  @Test func capacityIsAtLeastOneLongestFrame() {
    #expect(FrameDecoder(capacity: 10).capacity == Frame.maxEncodedLength)
  }

  @Test func resetForgetsBufferedBytesAndCounters() throws {
    var decoder = FrameDecoder()
    decoder.feed([0x00] + readTotal.prefix(5))
    _ = try decoder.next()
    decoder.reset()
    #expect(decoder.bufferedByteCount == 0)
    #expect(decoder.discardedByteCount == 0)
    #expect(decoder.position == 0)
    decoder.feed(readTotal)
    #expect(try decoder.next() != nil)
  }
}

@Suite struct FrameTests {
  @Test func encodesWakeUpBytes() {
    let frame = Request.read(.forwardActiveTotal).frame(to: meter)
    #expect(frame.encoded(wakeUpBytes: 4) == [0xFE, 0xFE, 0xFE, 0xFE] + readTotal)
    #expect(frame.encoded(wakeUpBytes: 0) == readTotal)
    #expect(frame.encoded(wakeUpBytes: -1) == readTotal)
  }

  @Test func rejectsDataLongerThan255Bytes() throws {
    _ = try Frame(address: meter, control: Control(.read), data: [UInt8](repeating: 0, count: 255))
    let error = try #require(throws: FrameError.self) {
      try Frame(address: meter, control: Control(.read), data: [UInt8](repeating: 0, count: 256))
    }
    #expect(error.code == .dataTooLong)
    #expect(error.description.contains("256 bytes"))
  }

  @Test func dataOffsetWrapsOnTheWire() throws {
    // CD + 33 = 00 and FF + 33 = 32 (mod 256).
    let frame = try Frame(address: meter, control: Control(.read, isReply: true), data: [0xCD, 0xFF])
    #expect(Array(frame.encoded()[10...11]) == [0x00, 0x32])
    #expect(decodeOne(frame.encoded()) == frame)
  }
}

@Suite struct ControlByteTests {
  @Test func flagsAndFunction() {
    let c = Control(rawValue: 0xB1)
    #expect(c.isReply && !c.isAbnormal && c.hasFollowUp)
    #expect(c.function == .read)
    #expect(c.description == "0xB1 (read, reply, follow-up)")
    #expect(Control(.read, isReply: true, isAbnormal: true).rawValue == 0xD1)
    #expect(Control(.control, isReply: true).rawValue == 0x9C)
    #expect(Control(.broadcastTime).rawValue == 0x08)
    #expect(Control(rawValue: 0x05).function == nil)
    #expect(Control(rawValue: 0x05).functionName == "function 0x05")
    #expect(Control(rawValue: 0xDC).description == "0xDC (control, abnormal reply)")
  }
}

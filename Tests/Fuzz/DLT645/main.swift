// libFuzzer target for the DL/T 645 codec, built by .ci/fuzz.sh together with
// Sources/DLT645/*.swift (one module, so internal API is visible):
//
//   swiftc -sanitize=fuzzer,address -parse-as-library Sources/DLT645/*.swift \
//     Tests/Fuzz/DLT645/main.swift -o dlt645-fuzz
//
// The first input byte picks how the rest is cut into feeds and the decoder's
// capacity, so one input exercises both split points and buffer bounds. Every
// decoded frame goes through the message and value layers; any invariant that
// fails (a round trip that changes a frame, an unbounded buffer, an empty error
// message) traps, which libFuzzer reports as a crash.

/// Traps with `message` unless `condition` holds (also in optimised builds).
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
  if !condition { fatalError(message()) }
}

let allFormats: [ValueFormat] = [
  .energy, .energyBlock, .voltage, .voltageBlock, .current, .currentBlock, .activePower, .date, .time,
  .freezeTime, .money, .count, .runStatusWord3,
]

/// Decodes `bytes` in `format`; a value that decodes must encode and decode to itself.
func checkValue(_ bytes: ArraySlice<UInt8>, _ format: ValueFormat) {
  do {
    let value = try MeterValue(decoding: bytes, as: format)
    require(value.format == format, "value of format \(format) reports \(value.format)")
    let encoded = try value.encoded()
    let again = try MeterValue(decoding: encoded[...], as: format)
    require(again == value, "value round trip changed \(value) to \(again)")
  } catch {
    require(!error.description.isEmpty, "empty value error")
  }
}

/// Runs one decoded frame through every layer and checks the round trips.
func checkFrame(_ frame: Frame) {
  // The frame re-encodes to bytes that decode to the same frame.
  var decoder = FrameDecoder()
  decoder.feed(frame.encoded(wakeUpBytes: 2))
  do {
    let again = try decoder.next()
    require(again == frame, "frame round trip changed \(frame)")
  } catch {
    fatalError("re-encoded frame does not decode: \(error)")
  }

  if frame.control.isReply {
    do {
      let reply = try Reply(frame: frame)
      let rebuilt = try reply.frame(from: frame.address)
      require(rebuilt == frame, "reply round trip changed \(frame) to \(rebuilt)")
      if case .readData(let identifier, let value, _) = reply, let format = identifier.format {
        checkValue(value[...], format)
      }
      if case .readFollowUpData(let identifier, let value, _, _) = reply, let format = identifier.format {
        checkValue(value[...], format)
      }
    } catch let error as MessageError {
      require(!error.description.isEmpty, "empty message error")
    } catch {
      fatalError("reply rebuild failed: \(error)")
    }
  } else {
    do {
      let request = try Request(frame: frame)
      let rebuilt = request.frame(to: frame.address)
      require(rebuilt == frame, "request round trip changed \(frame) to \(rebuilt)")
    } catch {
      require(!error.description.isEmpty, "empty message error")
    }
  }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard size > 0 else { return 0 }
  let input = Array(UnsafeBufferPointer(start: data, count: size))
  let chunk = Int(input[0] & 0x0F) + 1
  let capacity = input[0] & 0x80 != 0 ? Frame.maxEncodedLength : FrameDecoder.defaultCapacity
  let stream = input[1...]

  var decoder = FrameDecoder(capacity: capacity)
  var index = stream.startIndex
  var frames = 0
  while index < stream.endIndex {
    let end = min(index + chunk, stream.endIndex)
    decoder.feed(stream[index..<end])
    index = end
    require(decoder.bufferedByteCount <= decoder.capacity, "buffer above capacity")
    // Each call consumes at least one byte or returns nil, so this terminates.
    var calls = 0
    while true {
      calls += 1
      require(calls <= decoder.capacity + 2, "next() does not make progress")
      do {
        guard let frame = try decoder.next() else { break }
        frames += 1
        checkFrame(frame)
      } catch {
        require(!error.description.isEmpty, "empty frame error")
      }
    }
  }
  do {
    try decoder.finish()
  } catch {
    require(!error.description.isEmpty, "empty frame error")
  }
  require(decoder.bufferedByteCount == 0 || frames >= 0, "unreachable")

  // The value decoders on raw bytes, in every format.
  if stream.count <= 300 {
    for format in allFormats { checkValue(stream, format) }
  }
  return 0
}

import Foundation

@testable import DLT645

/// Bytes from hex text such as "68 AA AA 68" (spaces and newlines ignored).
func hex(_ text: String) -> [UInt8] {
  let digits = text.filter { !$0.isWhitespace }
  precondition(digits.count % 2 == 0, "odd number of hex digits in \(text)")
  var out: [UInt8] = []
  var index = digits.startIndex
  while index < digits.endIndex {
    let next = digits.index(index, offsetBy: 2)
    out.append(UInt8(digits[index..<next], radix: 16)!)
    index = next
  }
  return out
}

/// "68 AA …" text for bytes, for readable failures.
func hexText(_ bytes: [UInt8]) -> String {
  bytes.map { String(format: "%02X", $0) }.joined(separator: " ")
}

/// The meter address most golden frames use: 000012345678, on the wire 78 56 34 12 00 00.
let meter = Address("000012345678")!

/// Decodes every frame in `bytes` fed at once; errors are collected, not thrown.
func decodeAll(_ bytes: [UInt8], capacity: Int = FrameDecoder.defaultCapacity) -> (
  frames: [Frame], errors: [FrameError]
) {
  var decoder = FrameDecoder(capacity: capacity)
  decoder.feed(bytes)
  var frames: [Frame] = []
  var errors: [FrameError] = []
  while true {
    do {
      guard let frame = try decoder.next() else { break }
      frames.append(frame)
    } catch {
      errors.append(error)
    }
  }
  return (frames, errors)
}

/// The one frame in `bytes`, or nil (with the errors) when there is not exactly one.
func decodeOne(_ bytes: [UInt8]) -> Frame? {
  let result = decodeAll(bytes)
  guard result.errors.isEmpty, result.frames.count == 1 else { return nil }
  return result.frames[0]
}

/// Tests/Fixtures/dlt645, found from this file's path.
let fixturesDirectory = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent()
  .deletingLastPathComponent()
  .appendingPathComponent("Fixtures/dlt645")

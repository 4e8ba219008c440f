// libFuzzer target over the configuration-file parser (a board's config can be
// damaged or hand-edited badly). Built by .ci/fuzz.sh.
import GridEdgeAgent

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  do {
    let config = try Config.parse(text, file: "fuzz.conf")
    // A file that parses has every required key and a valid value for each.
    precondition(config.string("device.id") != nil)
  } catch {
    // Every refusal names the file.
    precondition(error.description.hasPrefix("fuzz.conf"))
  }
  return 0
}

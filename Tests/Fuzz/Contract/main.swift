// libFuzzer target over what a device or HQ parses from the network: signed
// commands (JWS compact + claims), uplink batches and acks. Built by .ci/fuzz.sh.
// The first input byte picks the parser; the rest is the message.
import GridEdgeContract
import SQLiteStore

let json = try! Connection(path: ":memory:")
let key = try! Ed25519KeyPair(seed: [UInt8](repeating: 7, count: 32))
let verifier: CommandVerifier = {
  var keys = TrustedKeys()
  try! keys.add(key.publicKey, keyID: "hq1")
  return try! CommandVerifier(device: "TA-FUZZ-1", trustedKeys: keys)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard size > 0 else { return 0 }
  let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
  switch data[0] % 3 {
  case 0:
    do {
      let verified = try verifier.verify(bytes, lastCounter: 0, now: 1_790_000_000)
      // Only a token signed with the fuzzer's own key can verify.
      precondition(verified.keyID == "hq1")
    } catch {
      precondition(!error.code.isEmpty && !error.description.isEmpty)
    }
  case 1:
    do {
      let header = try BatchHeader.decode(bytes, json)
      precondition(header.seq > 0 && BatchHeader.isStoreID(header.store))
    } catch {
      precondition(!error.description.isEmpty)
    }
  default:
    do {
      let ack = try Ack.decode(bytes, json)
      precondition(ack.ranges.allSatisfy { $0.lowerBound >= 1 })
      // What we decode, we encode back to an equal ack.
      precondition((try? Ack.decode(ack.encode(), json)) == ack)
    } catch {
      precondition(!error.description.isEmpty)
    }
  }
  return 0
}

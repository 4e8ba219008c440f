import Foundation
import GridEdgeContract
import GridEdgeCore
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

@Suite struct CommandHandlerTests {
  private func makeHandler(_ label: String, keys: TrustedKeys?) throws -> (AgentStore, CommandHandler) {
    let dir = try makeTemporaryDirectory(label)
    let store = try AgentStore(path: dir.appendingPathComponent("agent.db").path, deviceID: "TA-H-1", now: 0)
    let outbox = try Outbox(store: store)
    let handler = try CommandHandler(
      store: store, outbox: outbox, trustedKeys: keys, clockSkewSeconds: 300, offset: .china,
      maxSignatureFailures: 1_000_000)
    return (store, handler)
  }

  private func lastCounter(_ store: AgentStore) throws -> String? {
    try store.db.query("SELECT last_counter FROM command_state").first?.text(0)
  }

  @Test func tenThousandMutatedCommandsAreAllRejectedWithAReasonAndTheCounterStays() throws {
    let key = try Ed25519KeyPair()
    var keys = TrustedKeys()
    try keys.add(key.publicKey, keyID: "hq1")
    let (store, handler) = try makeHandler("commands-mutate", keys: keys)
    let json = try Connection(path: ":memory:")
    let now: Int64 = 1_790_000_000
    let token = Array(
      try Command(
        device: "TA-H-1", counter: 7, issuedAt: now, expiresAt: now + 3600, type: CommandType(name: "topup")!,
        body: #"{"customer":"C-1","amount":500,"purchase":1}"#
      ).signed(with: key, keyID: "hq1", json: json).utf8)
    var generator = SeededGenerator(seed: 20_261_125)
    var reasons: [String: Int] = [:]
    let rounds = 10_000
    try store.db.transaction { () throws(SQLiteError) in }  // warm the connection
    for _ in 0..<rounds {
      var mutated = token
      switch generator.next() % 4 {
      case 0:  // flip bits in one byte
        let i = Int(generator.next() % UInt64(mutated.count))
        mutated[i] ^= UInt8(1 + generator.next() % 255)
      case 1:  // delete a byte
        mutated.remove(at: Int(generator.next() % UInt64(mutated.count)))
      case 2:  // insert a byte
        mutated.insert(UInt8(generator.next() % 256), at: Int(generator.next() % UInt64(mutated.count + 1)))
      default:  // truncate
        mutated = Array(mutated.prefix(Int(generator.next() % UInt64(mutated.count))))
      }
      if mutated == token { continue }
      let outcome = try handler.handle(mutated, wall: now * 1000, monotonic: 0)
      #expect(outcome.outcome == "rejected")
      #expect(!outcome.reason.isEmpty && !outcome.detail.isEmpty)
      reasons[outcome.reason, default: 0] += 1
    }
    // None verified (every reason is a verification failure), nothing moved the counter.
    #expect(reasons.keys.allSatisfy { CommandRejection.codes.contains($0) }, "\(reasons)")
    #expect(try lastCounter(store) == "0")
    #expect(try store.db.scalarInt("SELECT count(*) FROM commands") == Int64(reasons.values.reduce(0, +)))
    // The genuine token still verifies afterwards, once.
    // (C-1 is not in the archive: verified, then refused by the ledger.)
    #expect(try handler.handle(token, wall: now * 1000, monotonic: 0).reason == "unknown-customer")
    #expect(try handler.handle(token, wall: now * 1000, monotonic: 0).reason == "replayed")
    #expect(try lastCounter(store) == "7")
  }

  @Test func keepPowerCommandsSetAndLiftTheFlagAndRefuseUnknownOrMalformedBodies() throws {
    let key = try Ed25519KeyPair()
    var keys = TrustedKeys()
    try keys.add(key.publicKey, keyID: "hq1")
    let (store, handler) = try makeHandler("commands-keep-power", keys: keys)
    let json = try Connection(path: ":memory:")
    let now: Int64 = 1_790_000_000
    var counter: UInt64 = 0
    func send(_ type: String, _ body: String) throws -> CommandHandler.Outcome {
      counter += 1
      let token = try Command(
        device: "TA-H-1", counter: counter, issuedAt: now, expiresAt: now + 3600,
        type: CommandType(name: type)!,
        body: body
      ).signed(with: key, keyID: "hq1", json: json)
      return try handler.handle(Array(token.utf8), wall: now * 1000, monotonic: 0)
    }
    let archive = try send(
      "archive",
      #"{"op":"snapshot","version":1,"meters":[{"address":"000000000001","customer":"C-1","area":"TA-1","category":"residential"},{"address":"000000000002","customer":"C-1","area":"TA-1","category":"residential"},{"address":"000000000003","customer":"C-3","area":"TA-1","category":"residential"}]}"#
    )
    #expect(archive.outcome == "applied", "\(archive)")
    func flags() throws -> [Int64] {
      try store.db.query("SELECT keep_power FROM archive_meters ORDER BY address").map { $0.int64(0) ?? -1 }
    }
    #expect(try flags() == [0, 0, 0])
    #expect(try send("keep-power", #"{"customer":"C-1","keep_power":true}"#).outcome == "applied")
    #expect(try flags() == [1, 1, 0])
    #expect(try send("keep-power", #"{"meter":"000000000002","keep_power":false}"#).outcome == "applied")
    #expect(try flags() == [1, 0, 0])
    // Refusals change nothing.
    for (body, reason) in [
      (#"{"meter":"000000000009","keep_power":true}"#, "unknown-meter"),
      (#"{"customer":"NOBODY","keep_power":true}"#, "unknown-customer"),
      (#"{"meter":"000000000003"}"#, "malformed"),
      (#"{"meter":"000000000003","keep_power":1}"#, "malformed"),
      (#"{"meter":"000000000003","customer":"C-3","keep_power":true}"#, "malformed"),
    ] {
      let outcome = try send("keep-power", body)
      #expect(outcome.outcome == "rejected" && outcome.reason == reason, "\(body): \(outcome)")
    }
    #expect(try flags() == [1, 0, 0])
  }

  @Test func withoutTrustedKeysEveryCommandIsRefused() throws {
    let (store, handler) = try makeHandler("commands-nokeys", keys: nil)
    let outcome = try handler.handle(Array("a.b.c".utf8), wall: 1_000, monotonic: 0)
    #expect(
      outcome
        == .init(
          outcome: "rejected", reason: "unknown-key",
          detail: "no trusted keys are configured (commands.trusted_keys)"))
    #expect(try store.db.scalarInt("SELECT count(*) FROM outbox WHERE class = 'results'") == 1)
  }
}

/// SplitMix64: a small seeded generator so a failing run can be repeated.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

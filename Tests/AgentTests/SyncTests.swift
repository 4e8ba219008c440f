import Foundation
import GridEdgeContract
import MosquittoClient
import SQLiteStore
import TestSupport
import Testing

@testable import GridEdgeAgent

#if canImport(Glibc)
  import Glibc
#endif

/// `Sync` driven by a test loop against a real mosquitto: what it forms, in which
/// transaction, and in which order it publishes.
@Suite struct SyncTests {
  /// The agent's client and a subscriber on every topic, serviced by one poll(2) loop;
  /// PUBACKs go to `sync`.
  private final class Loop {
    let agent: Client
    let listener: Client
    var received: [Message] = []
    var connected: Set<String> = []
    var sync: Sync?

    init(broker: MosquittoBroker) throws {
      agent = try Client(ClientOptions(clientID: "sync-agent-\(UUID().uuidString.prefix(6))"))
      listener = try Client(ClientOptions(clientID: "sync-listener-\(UUID().uuidString.prefix(6))"))
      try agent.connect(host: broker.host, port: broker.port)
      try listener.connect(host: broker.host, port: broker.port)
      try run(timeout: 5, "both CONNACKs") { self.connected.count == 2 }
      _ = try listener.subscribe("gridedge/#", qos: 1)
      run(for: 0.3)
    }

    func turn() {
      var fds = [agent, listener].map { client in
        pollfd(
          fd: client.socket, events: Int16(POLLIN) | (client.wantsWrite ? Int16(POLLOUT) : 0), revents: 0)
      }
      _ = poll(&fds, nfds_t(fds.count), 20)
      for (index, (client, name)) in [(agent, "agent"), (listener, "listener")].enumerated() {
        let revents = Int32(fds[index].revents)
        if revents & Int32(POLLIN | POLLHUP | POLLERR) != 0 { try? client.loopRead() }
        if revents & Int32(POLLOUT) != 0 { try? client.loopWrite() }
        try? client.loopMisc()
        for event in client.takeEvents() {
          switch event {
          case .connected(let rc) where rc == 0: connected.insert(name)
          case .published(let mid, let rc) where client === agent:
            _ = sync?.published(mid: mid, reasonCode: rc, monotonic: 0)
          case .message(let message) where client === listener: received.append(message)
          default: break
          }
        }
      }
    }

    func run(timeout: Double, _ what: String, until condition: () -> Bool) throws {
      guard waitUntil(timeout: timeout, poll: { self.turn() }, condition) else {
        throw TestSupportError("timed out waiting for \(what)")
      }
    }

    func run(for seconds: Double) { _ = waitUntil(timeout: seconds, poll: { self.turn() }, { false }) }
  }

  private func meters(_ message: Message) throws -> [String] {
    let batch = try JSONSerialization.jsonObject(with: Data(message.payload)) as! [String: Any]
    return (batch["records"] as! [[String: Any]]).map { $0["meter"] as! String }
  }

  @Test func aFormationPreparesSeveralWindowsAndLiveRecordsOvertakeThem() throws {
    let broker = try MosquittoBroker()
    defer { broker.stop() }
    let dir = try makeTemporaryDirectory("sync-ahead")
    let store = try AgentStore(
      path: dir.appendingPathComponent("agent.db").path, deviceID: "TA-SYNC-1", now: 0)
    let outbox = try Outbox(store: store)
    for i in 0..<200 {
      try outbox.enqueue(.readings, record: readingRecord(meter: i, ts: 1), retention: .telemetry, now: 0)
    }
    let loop = try Loop(broker: broker)
    var settings = Sync.Settings()
    settings.batchRecords = 10
    settings.window = 2
    settings.ackWindow = 100
    let sync = try Sync(outbox: outbox, client: loop.agent, settings: settings)
    loop.sync = sync
    try sync.linkUp(monotonic: 0)

    // One pump: one transaction forms 4 windows' worth (8 batches); 2 go out.
    try sync.pump(monotonic: 0, wall: 0)
    #expect(try outbox.unackedSeqs() == Array(1...8))
    #expect(sync.inFlightCount == 2)

    // A live reading arrives while 6 prepared batches wait for the window.
    try outbox.enqueue(.readings, record: readingRecord(meter: 999, ts: 2), retention: .telemetry, now: 0)
    sync.recordsEnqueued()
    try loop.run(timeout: 10, "12 batches at the listener") {
      try? sync.pump(monotonic: 0, wall: 0)
      return loop.received.count >= 12
    }
    let order = try loop.received.map { try meters($0) }
    let live = try #require(
      order.firstIndex { $0 == ["000000000999"] }, "no batch holds only the live reading")
    // Published at the first free slot after it was enqueued: before the 6 prepared
    // batches (positions 2...7), though formed after them.
    #expect(live <= 3, "live batch published at position \(live): \(order.map { $0.first ?? "" })")
    #expect(order.prefix(live).allSatisfy { $0 != ["000000000999"] })
    // Every backlog record went out once, in id order apart from the live batch.
    let backlog = order.enumerated().filter { $0.offset != live }.flatMap { $0.element }
    #expect(Array(backlog.prefix(110)) == (0..<110).map { String($0).leftPadded(to: 12) })
  }
}

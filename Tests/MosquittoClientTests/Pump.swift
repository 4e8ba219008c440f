// A test-side owner loop for `Client`: poll(2) on the sockets, loopRead / loopWrite /
// loopMisc, events collected per client. The agent's real loop does the same.
import Foundation
import MosquittoClient
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// One client under test with everything it reported.
final class Peer {
  let name: String
  let client: Client
  private(set) var events: [ClientEvent] = []
  private(set) var loopErrors: [MosquittoError] = []

  init(_ name: String, _ configure: (inout ClientOptions) -> Void = { _ in }) throws {
    var options = ClientOptions(clientID: "\(name)-\(UUID().uuidString.prefix(8))")
    options.keepAliveSeconds = 10
    configure(&options)
    self.name = name
    client = try Client(options)
  }

  var connackCodes: [Int32] {
    events.compactMap { if case .connected(let rc) = $0 { rc } else { nil } }
  }
  var disconnectCodes: [Int32] {
    events.compactMap { if case .disconnected(let rc) = $0 { rc } else { nil } }
  }
  var messages: [Message] {
    events.compactMap { if case .message(let m) = $0 { m } else { nil } }
  }
  var published: [(mid: Int32, reasonCode: Int32)] {
    events.compactMap { if case .published(let mid, let rc) = $0 { (mid, rc) } else { nil } }
  }
  var subscribed: [(mid: Int32, grantedQoS: [Int32])] {
    events.compactMap { if case .subscribed(let mid, let qos) = $0 { (mid, qos) } else { nil } }
  }
  func messages(on topic: String) -> [Message] { messages.filter { $0.topic == topic } }

  /// Drains the client's queue into `events`.
  func collect() { events += client.takeEvents() }

  func record(_ error: MosquittoError) { loopErrors.append(error) }

  /// A one-line summary for failure messages.
  var summary: String {
    let names = events.map { event -> String in
      switch event {
      case .connected(let rc): return "connected(\(rc))"
      case .disconnected(let rc): return "disconnected(\(rc))"
      case .published(let mid, let rc): return "published(\(mid), \(rc))"
      case .message(let m): return "message(\(m.topic), \(m.payload.count) B)"
      case .subscribed(let mid, let qos): return "subscribed(\(mid), \(qos))"
      }
    }
    return "\(name): events [\(names.joined(separator: ", "))], loop errors \(loopErrors)"
  }
}

/// One round of the owner loop over `peers`, waiting up to `milliseconds` in poll(2).
func pumpOnce(_ peers: [Peer], milliseconds: Int32 = 20) {
  var fds: [pollfd] = []
  var owners: [Peer] = []
  for peer in peers where peer.client.socket >= 0 {
    var wanted = Int16(POLLIN)
    if peer.client.wantsWrite { wanted |= Int16(POLLOUT) }
    fds.append(pollfd(fd: peer.client.socket, events: wanted, revents: 0))
    owners.append(peer)
  }
  if fds.isEmpty {
    usleep(UInt32(milliseconds) * 1000)
  } else {
    _ = poll(&fds, nfds_t(fds.count), milliseconds)
  }
  for (index, peer) in owners.enumerated() {
    let revents = Int32(fds[index].revents)
    if revents & Int32(POLLIN | POLLHUP | POLLERR) != 0 {
      do throws(MosquittoError) { try peer.client.loopRead() } catch { peer.record(error) }
    }
    if revents & Int32(POLLOUT) != 0 && peer.client.socket >= 0 {
      do throws(MosquittoError) { try peer.client.loopWrite() } catch { peer.record(error) }
    }
  }
  for peer in peers {
    if peer.client.socket >= 0 {
      do throws(MosquittoError) { try peer.client.loopMisc() } catch { peer.record(error) }
    }
    peer.collect()
  }
}

/// Runs the loop until `condition` holds; records an issue naming `what` (with every
/// peer's events) when `timeout` seconds pass first.
@discardableResult
func pump(
  _ peers: [Peer], timeout: Double = 5, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
  until condition: () -> Bool
) -> Bool {
  let ok = waitUntil(timeout: timeout, poll: { pumpOnce(peers) }, condition)
  if !ok {
    let states = peers.map(\.summary).joined(separator: "\n")
    Issue.record(
      "timed out after \(timeout) s waiting for \(what)\n\(states)", sourceLocation: sourceLocation)
  }
  return ok
}

/// Runs the loop for `seconds` whatever happens (to show that something does NOT happen).
func pump(_ peers: [Peer], for seconds: Double) {
  _ = waitUntil(timeout: seconds, poll: { pumpOnce(peers) }, { false })
}

/// Connects each peer to `broker` and runs the loop until every CONNACK arrived.
func connectAll(
  _ peers: [Peer], to broker: MosquittoBroker, sourceLocation: SourceLocation = #_sourceLocation
)
  throws
{
  for peer in peers {
    try peer.client.connect(host: broker.host, port: broker.port)
  }
  pump(peers, "CONNACK for \(peers.map(\.name))", sourceLocation: sourceLocation) {
    peers.allSatisfy { !$0.connackCodes.isEmpty }
  }
}

/// Subscribes and runs the loop until the SUBACK arrived.
func subscribeAndWait(
  _ peer: Peer, _ filter: String, qos: Int32 = 1, sourceLocation: SourceLocation = #_sourceLocation
)
  throws
{
  let mid = try peer.client.subscribe(filter, qos: qos)
  pump([peer], "SUBACK for \(filter)", sourceLocation: sourceLocation) {
    peer.subscribed.contains { $0.mid == mid }
  }
}

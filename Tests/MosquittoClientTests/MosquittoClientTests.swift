// MosquittoClient against a real mosquitto broker started by each test.
import Foundation
import MosquittoClient
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Serialized: every test starts its own broker; running them one at a time keeps
/// timing-sensitive checks (will / no will) away from CPU contention and child processes
/// from inheriting other tests' sockets.
@Suite(.serialized)
struct MosquittoClientTests {
  // MARK: Connecting

  @Test func connectWithMQTT5ReceivesSuccessfulConnack() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("v5") { $0.protocolVersion = .v5 }
    try connectAll([peer], to: broker)
    #expect(peer.connackCodes == [0])
    #expect(peer.client.isConnected)
    #expect(peer.client.socket >= 0)
    #expect(broker.log.contains("as \(peer.client.clientID) (p5,"), "the broker should log an MQTT 5 client")
  }

  @Test func connectWithMQTT311ReceivesSuccessfulConnack() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("v311") { $0.protocolVersion = .v311 }
    try connectAll([peer], to: broker)
    #expect(peer.connackCodes == [0])
    // mosquitto logs its internal protocol enum: p2 = MQTT 3.1.1, p5 = MQTT 5.
    #expect(
      broker.log.contains("as \(peer.client.clientID) (p2,"), "the broker should log an MQTT 3.1.1 client")
  }

  @Test func connectingToAClosedPortThrowsErrorNamingHostAndPort() throws {
    let port = try freeLoopbackPort()  // nothing listens there
    let client = try Client(ClientOptions(clientID: "closed-port"))
    let error = try #require(throws: MosquittoError.self) {
      try client.connect(host: "127.0.0.1", port: port)
    }
    #expect(error.operation == "connect 127.0.0.1:\(port)")
    #expect(error.code == MosquittoError.errno)
    #expect(error.systemErrno == ECONNREFUSED)
    #expect(error.description.contains("127.0.0.1:\(port)"))
    #expect(error.description.contains("Connection refused"), "\(error)")
    #expect(client.socket == -1)
  }

  @Test func clientWithUnreadableTLSFileIsRefusedAtCreationNamingTheFile() throws {
    var options = ClientOptions(clientID: "bad-tls")
    options.tls = TLSOptions(caFile: "/nonexistent/gridedge-ca.pem")
    let error = try #require(throws: MosquittoError.self) { try Client(options) }
    #expect(error.description.contains("/nonexistent/gridedge-ca.pem"), "\(error)")
  }

  // MARK: Publishing and subscribing

  @Test func publishedPayloadArrivesIntactWithZeroBytesAndProperties() throws {
    let broker = try MosquittoBroker()
    let publisher = try Peer("pub")
    let subscriber = try Peer("sub")
    try connectAll([publisher, subscriber], to: broker)
    let topic = "gridedge/v1/dev-1/up/readings"
    try subscribeAndWait(subscriber, topic)

    let payload: [UInt8] = [0x00, 0x01, 0x00, 0xFF, 0x7B, 0x00] + bytes("{\"v\":1}") + [0x00]
    var properties = PublishProperties()
    properties.contentType = "application/json"
    properties.messageExpirySeconds = 3600
    properties.userProperties = [("store", "12345"), ("seq", "7"), ("seq", "8")]
    try publisher.client.publish(
      topic: topic, payload: payload, qos: 1, retain: false, properties: properties)

    pump([publisher, subscriber], "the message") { !subscriber.messages(on: topic).isEmpty }
    let message = try #require(subscriber.messages(on: topic).first)
    #expect(message.payload == payload)
    #expect(message.qos == 1)
    #expect(message.retain == false)
    #expect(message.properties.contentType == "application/json")
    let expiry = try #require(message.properties.messageExpirySeconds)
    #expect(expiry > 3590 && expiry <= 3600)
    #expect(message.properties.userProperties.map(\.0) == ["store", "seq", "seq"])
    #expect(message.properties.userProperties.map(\.1) == ["12345", "7", "8"])
  }

  @Test func emptyPayloadArrivesAsEmpty() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("empty")
    try connectAll([peer], to: broker)
    try subscribeAndWait(peer, "t/empty")
    try peer.client.publish(topic: "t/empty", payload: [], qos: 0, retain: false)
    pump([peer], "the empty message") { !peer.messages(on: "t/empty").isEmpty }
    #expect(peer.messages(on: "t/empty").first?.payload == [])
  }

  @Test func mqtt311RoundTripDeliversPayloadWithoutProperties() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("v311rt") { $0.protocolVersion = .v311 }
    try connectAll([peer], to: broker)
    try subscribeAndWait(peer, "t/311/+")
    try peer.client.publish(topic: "t/311/a", payload: [1, 0, 2], qos: 1, retain: false)
    pump([peer], "the message") { !peer.messages(on: "t/311/a").isEmpty }
    let message = try #require(peer.messages(on: "t/311/a").first)
    #expect(message.payload == [1, 0, 2])
    #expect(message.properties.isEmpty)
  }

  @Test func publishPropertiesOverMQTT311AreRefused() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("v311props") { $0.protocolVersion = .v311 }
    try connectAll([peer], to: broker)
    let error = try #require(throws: MosquittoError.self) {
      try peer.client.publish(
        topic: "t/x", payload: [1], qos: 0, retain: false,
        properties: PublishProperties(contentType: "application/json"))
    }
    #expect(error.code == MosquittoError.notSupported)
  }

  @Test func qos1PublishIsAcknowledgedWithTheMidItReturned() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("qos1")
    try connectAll([peer], to: broker)
    try subscribeAndWait(peer, "t/qos1")  // a subscriber, so PUBACK is 0 rather than 0x10
    let first = try peer.client.publish(topic: "t/qos1", payload: [1], qos: 1, retain: false)
    let second = try peer.client.publish(topic: "t/qos1", payload: [2], qos: 1, retain: false)
    #expect(first != second)
    pump([peer], "both PUBACKs") { peer.published.count >= 2 }
    #expect(peer.published.map(\.mid).sorted() == [first, second].sorted())
    #expect(peer.published.allSatisfy { $0.reasonCode == 0 })
  }

  @Test func subscribeReportsTheGrantedQoS() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("granted")
    try connectAll([peer], to: broker)
    let mid = try peer.client.subscribe("gridedge/v1/+/down/#", qos: 1)
    pump([peer], "SUBACK") { !peer.subscribed.isEmpty }
    #expect(peer.subscribed.first?.mid == mid)
    #expect(peer.subscribed.first?.grantedQoS == [1])
  }

  @Test func unsubscribedFilterNoLongerReceivesMessages() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("unsub")
    try connectAll([peer], to: broker)
    try subscribeAndWait(peer, "t/a")
    try subscribeAndWait(peer, "t/b")
    try peer.client.unsubscribe("t/a")
    pump([peer], for: 0.2)
    try peer.client.publish(topic: "t/a", payload: [1], qos: 1, retain: false)
    try peer.client.publish(topic: "t/b", payload: [2], qos: 1, retain: false)
    pump([peer], "the message on t/b") { !peer.messages(on: "t/b").isEmpty }
    #expect(peer.messages(on: "t/a").isEmpty)
  }

  @Test func retainedMessageIsDeliveredToALateSubscriber() throws {
    let broker = try MosquittoBroker()
    let publisher = try Peer("retainer")
    try connectAll([publisher], to: broker)
    let topic = "gridedge/v1/dev-2/state"
    let mid = try publisher.client.publish(
      topic: topic, payload: bytes("{\"state\":\"online\"}"), qos: 1, retain: true)
    pump([publisher], "PUBACK of the retained message") { publisher.published.contains { $0.mid == mid } }

    let late = try Peer("late")
    try connectAll([late], to: broker)
    try subscribeAndWait(late, "gridedge/v1/+/state")
    pump([late], "the retained message") { !late.messages(on: topic).isEmpty }
    let message = try #require(late.messages(on: topic).first)
    #expect(message.retain)
    #expect(message.payload == bytes("{\"state\":\"online\"}"))
  }

  // MARK: Topics

  @Test func publishingToATopicWithAWildcardIsRefusedWithTheTopicInTheError() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("wild")
    try connectAll([peer], to: broker)
    for topic in ["gridedge/v1/#", "gridedge/+/state", "a\u{0}b", ""] {
      let error = try #require(throws: MosquittoError.self, "publish to \(topic.debugDescription)") {
        try peer.client.publish(topic: topic, payload: [1], qos: 1, retain: false)
      }
      #expect(error.code == MosquittoError.invalidArgument, "\(error)")
      #expect(error.operation == "publish \(topic)")
      #expect(error.description.contains("publish \(topic):"), "\(error)")
    }
    let error = try #require(throws: MosquittoError.self) { try peer.client.subscribe("a/#/b", qos: 1) }
    #expect(error.operation == "subscribe a/#/b")
    // The connection is still usable.
    try subscribeAndWait(peer, "t/ok")
    try peer.client.publish(topic: "t/ok", payload: [1], qos: 0, retain: false)
    pump([peer], "a valid message after the refusals") { !peer.messages(on: "t/ok").isEmpty }
  }

  @Test func topicChecksFollowMQTTRules() {
    #expect(isValidPublishTopic("gridedge/v1/dev-1/up/readings"))
    #expect(isValidPublishTopic("/leading/slash"))
    #expect(isValidPublishTopic("电表/1"))
    #expect(!isValidPublishTopic(""))
    #expect(!isValidPublishTopic("gridedge/v1/+/state"))
    #expect(!isValidPublishTopic("gridedge/v1/#"))
    #expect(!isValidPublishTopic("a\u{0}b"))
    #expect(!isValidPublishTopic(String(repeating: "a", count: 65_536)))
    #expect(isValidPublishTopic(String(repeating: "a", count: 65_535)))

    #expect(isValidSubscriptionFilter("gridedge/v1/+/up/#"))
    #expect(isValidSubscriptionFilter("#"))
    #expect(isValidSubscriptionFilter("$share/hq/gridedge/v1/+/up/#"))
    #expect(!isValidSubscriptionFilter(""))
    #expect(!isValidSubscriptionFilter("a/#/b"))
    #expect(!isValidSubscriptionFilter("a/b#"))
    #expect(!isValidSubscriptionFilter("a/+b"))

    #expect(topic("gridedge/v1/dev-1/up/readings", matchesFilter: "gridedge/v1/+/up/#"))
    #expect(!topic("gridedge/v1/dev-1/down/cmd", matchesFilter: "gridedge/v1/+/up/#"))
  }

  @Test func publishWithoutConnectionThrowsNoConnection() throws {
    let client = try Client(ClientOptions(clientID: "never-connected"))
    let error = try #require(throws: MosquittoError.self) {
      try client.publish(topic: "t/x", payload: [1], qos: 1, retain: false)
    }
    #expect(error.code == MosquittoError.noConnection)
    #expect(error.operation == "publish t/x")
    #expect(client.socket == -1)
    #expect(client.takeEvents().isEmpty)
  }

  // MARK: Will

  @Test func willIsDeliveredWhenClientGoesAwayWithoutDisconnect() throws {
    let broker = try MosquittoBroker()
    let topic = "gridedge/v1/dev-3/state"
    let watcher = try Peer("watcher")
    var device: Peer? = try Peer("device") {
      $0.will = Will(topic: topic, payload: bytes("{\"state\":\"offline\"}"), qos: 1, retain: true)
    }
    try connectAll([watcher, device!], to: broker)
    try subscribeAndWait(watcher, topic)
    pump([watcher, device!], for: 0.2)
    #expect(watcher.messages(on: topic).isEmpty, "no will while the device is connected")

    device = nil  // deinit: mosquitto_destroy closes the socket without DISCONNECT
    pump([watcher], "the will") { !watcher.messages(on: topic).isEmpty }
    #expect(watcher.messages(on: topic).first?.payload == bytes("{\"state\":\"offline\"}"))

    // Retained: a later subscriber sees the device offline too.
    let late = try Peer("late")
    try connectAll([late], to: broker)
    try subscribeAndWait(late, topic)
    pump([late], "the retained will") { !late.messages(on: topic).isEmpty }
    #expect(late.messages(on: topic).first?.retain == true)
  }

  @Test func willIsDeliveredWhenTheSocketIsShutDown() throws {
    let broker = try MosquittoBroker()
    let topic = "gridedge/v1/dev-4/state"
    let watcher = try Peer("watcher")
    let device = try Peer("device") { $0.will = Will(topic: topic, payload: bytes("offline"), qos: 1) }
    try connectAll([watcher, device], to: broker)
    try subscribeAndWait(watcher, topic)

    #expect(shutdown(device.client.socket, Int32(SHUT_RDWR)) == 0)
    pump([watcher, device], "the will and the device's loss of connection") {
      !watcher.messages(on: topic).isEmpty && !device.disconnectCodes.isEmpty
    }
    #expect(watcher.messages(on: topic).first?.payload == bytes("offline"))
    #expect(device.disconnectCodes.first != 0)
    #expect(!device.loopErrors.isEmpty)
    #expect(device.client.socket == -1)
  }

  @Test func gracefulDisconnectDoesNotSendTheWill() throws {
    let broker = try MosquittoBroker()
    let topic = "gridedge/v1/dev-5/state"
    let watcher = try Peer("watcher")
    let device = try Peer("device") { $0.will = Will(topic: topic, payload: bytes("offline"), qos: 1) }
    try connectAll([watcher, device], to: broker)
    try subscribeAndWait(watcher, topic)

    try device.client.disconnect()
    pump([watcher, device], "the device's .disconnected(0)") { device.disconnectCodes == [0] }
    #expect(device.client.socket == -1)
    #expect(!device.client.isConnected)
    pump([watcher], "the broker to log the disconnect") {
      broker.log.contains("Client \(device.client.clientID) disconnected.")
    }
    // Anything published now arrives after a will would have: a marker proves the
    // watcher was listening.
    try watcher.client.publish(topic: topic, payload: bytes("marker"), qos: 1, retain: false)
    pump([watcher], "the marker") { !watcher.messages(on: topic).isEmpty }
    #expect(watcher.messages(on: topic).map(\.payload) == [bytes("marker")])
  }

  // MARK: Reconnecting

  @Test func clientReconnectsAfterTheBrokerRestartsOnTheSamePort() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("reconnect")
    try connectAll([peer], to: broker)
    try subscribeAndWait(peer, "t/before")
    try peer.client.publish(topic: "t/before", payload: [1], qos: 1, retain: false)
    pump([peer], "the first round trip") { !peer.messages(on: "t/before").isEmpty }

    broker.stop()
    pump([peer], "the loss of connection") { !peer.disconnectCodes.isEmpty }
    #expect(!peer.loopErrors.isEmpty, "a loop call throws when the connection is lost")
    #expect(peer.disconnectCodes.first != 0)
    #expect(peer.client.socket == -1)
    #expect(!peer.client.isConnected)
    #expect(throws: MosquittoError.self, "publish while disconnected") {
      try peer.client.publish(topic: "t/before", payload: [2], qos: 1, retain: false)
    }
    let refused = try #require(throws: MosquittoError.self, "reconnect while the broker is down") {
      try peer.client.reconnect()
    }
    #expect(refused.operation == "reconnect 127.0.0.1:\(broker.port)")

    try broker.start()
    try peer.client.reconnect()
    pump([peer], "the CONNACK after reconnect") { peer.connackCodes.count == 2 }
    #expect(peer.connackCodes == [0, 0])
    #expect(peer.client.isConnected)
    // Clean start: the subscription is gone; subscribe again, as the agent must.
    try subscribeAndWait(peer, "t/after")
    try peer.client.publish(topic: "t/after", payload: [3, 0, 3], qos: 1, retain: false)
    pump([peer], "the round trip after reconnect") { !peer.messages(on: "t/after").isEmpty }
    #expect(peer.messages(on: "t/after").first?.payload == [3, 0, 3])
  }

  @Test func unacknowledgedQoS1MessageIsResentAfterReconnect() throws {
    let broker = try MosquittoBroker()
    let device = try Peer("inflight")
    try connectAll([device], to: broker)
    // Freeze the broker so the PUBLISH is never acknowledged, then lose it with the broker.
    #expect(Glibc.kill(broker.processIdentifier, SIGSTOP) == 0)
    let mid = try device.client.publish(topic: "t/inflight", payload: [4, 2], qos: 1, retain: false)
    pump([device], for: 0.1)
    broker.kill()
    pump([device], "the loss of connection") { !device.disconnectCodes.isEmpty }
    #expect(!device.published.contains { $0.mid == mid }, "no PUBACK from a frozen broker")

    try broker.start()
    let watcher = try Peer("watcher")
    try connectAll([watcher], to: broker)
    try subscribeAndWait(watcher, "t/inflight")
    try device.client.reconnect()
    pump([device, watcher], "the resent message and its PUBACK") {
      !watcher.messages(on: "t/inflight").isEmpty && device.published.contains { $0.mid == mid }
    }
    #expect(watcher.messages(on: "t/inflight").map(\.payload) == [[4, 2]])
  }

  @Test func persistentSessionKeepsSubscriptionAndQueuesMessagesWhileOffline() throws {
    let broker = try MosquittoBroker()
    let device = try Peer("persistent") {
      $0.cleanStart = false
      $0.sessionExpirySeconds = 300
    }
    let hq = try Peer("hq")
    try connectAll([device, hq], to: broker)
    try subscribeAndWait(device, "gridedge/v1/dev-9/down/cmd", qos: 1)
    try device.client.disconnect()
    pump([device, hq], "the device's disconnect") { !device.disconnectCodes.isEmpty }

    try hq.client.publish(topic: "gridedge/v1/dev-9/down/cmd", payload: bytes("cmd-1"), qos: 1, retain: false)
    pump([hq], "PUBACK for the command") { !hq.published.isEmpty }

    try device.client.reconnect()  // no subscribe: the session kept it
    pump([device], "the command queued while offline") {
      !device.messages(on: "gridedge/v1/dev-9/down/cmd").isEmpty
    }
    #expect(device.messages.map(\.payload) == [bytes("cmd-1")])
  }

  @Test func clientNoticesABrokerKilledWithSIGKILL() throws {
    let broker = try MosquittoBroker()
    let peer = try Peer("killed")
    try connectAll([peer], to: broker)
    broker.kill()
    pump([peer], "the loss of connection") { !peer.disconnectCodes.isEmpty }
    #expect(peer.client.socket == -1)
    let error = try #require(throws: MosquittoError.self) { try peer.client.loopMisc() }
    #expect(error.code == MosquittoError.noConnection)
  }

  @Test func libraryVersionIsReported() {
    #expect(Client.libraryVersion.split(separator: ".").count == 3)
    #expect(Client.libraryVersion.hasPrefix("2."))
  }
}

/// TLS with client certificates, as field devices connect (certificate CN = device id).
@Suite(.serialized)
struct MosquittoClientTLSTests {
  let pki: TestPKI
  let tlsPort: Int32
  let broker: MosquittoBroker

  init() throws {
    pki = try TestPKI()
    tlsPort = try freeLoopbackPort()
    broker = try MosquittoBroker(extraConfig: pki.mosquittoListener(port: tlsPort), waitForPorts: [tlsPort])
  }

  @Test func clientWithCertificateFromTheCAConnectsOverTLS() throws {
    let (certificate, key) = try pki.makeClientCertificate(commonName: "dev-7")
    let peer = try Peer("tls") {
      $0.tls = TLSOptions(caFile: pki.caCertificate.path, certFile: certificate.path, keyFile: key.path)
    }
    try peer.client.connect(host: broker.host, port: tlsPort)
    pump([peer], "CONNACK over TLS") { !peer.connackCodes.isEmpty }
    #expect(peer.connackCodes == [0])
    // Round trip over the TLS connection.
    try subscribeAndWait(peer, "gridedge/v1/dev-7/down/#")
    try peer.client.publish(topic: "gridedge/v1/dev-7/down/cmd", payload: [9, 0, 9], qos: 1, retain: false)
    pump([peer], "the message over TLS") { !peer.messages.isEmpty }
    #expect(peer.messages.first?.payload == [9, 0, 9])
    #expect(broker.log.contains("u'dev-7'"), "the certificate CN should be the username")
  }

  @Test func clientWithoutCertificateIsRefusedByTheTLSListener() throws {
    let peer = try Peer("no-cert") { $0.tls = TLSOptions(caFile: pki.caCertificate.path) }
    do throws(MosquittoError) {
      try peer.client.connect(host: broker.host, port: tlsPort)
    } catch {
      return  // refused during the handshake inside connect: fine too
    }
    pump([peer], "the refusal") { !peer.disconnectCodes.isEmpty || peer.client.socket < 0 }
    #expect(!peer.connackCodes.contains(0), "a client without certificate must not be accepted")
    #expect(!peer.loopErrors.isEmpty)
    #expect(!peer.client.isConnected)
  }

  @Test func clientRefusesABrokerWhoseCertificateIsFromAnotherCA() throws {
    let otherPKI = try TestPKI()
    let (certificate, key) = try pki.makeClientCertificate(commonName: "dev-8")
    let peer = try Peer("wrong-ca") {
      $0.tls = TLSOptions(caFile: otherPKI.caCertificate.path, certFile: certificate.path, keyFile: key.path)
    }
    do throws(MosquittoError) {
      try peer.client.connect(host: broker.host, port: tlsPort)
    } catch {
      return
    }
    pump([peer], "the refusal") { !peer.disconnectCodes.isEmpty || peer.client.socket < 0 }
    #expect(!peer.connackCodes.contains(0))
  }
}

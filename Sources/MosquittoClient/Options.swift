/// The MQTT protocol level spoken to the broker (`MOSQ_OPT_PROTOCOL_VERSION`).
public enum ProtocolVersion {
  /// MQTT 3.1.1 (protocol level 4). Publish properties are refused with
  /// `MosquittoError.notSupported`.
  case v311
  /// MQTT 5.0 (protocol level 5): reason codes, properties, shared subscriptions.
  case v5
}

/// The last will: what the broker publishes for this client when the connection ends
/// without a DISCONNECT packet (socket closed, keepalive expired, `Client` deinitialised
/// without `disconnect()`). A graceful `disconnect()` discards it.
public struct Will {
  public var topic: String
  public var payload: [UInt8]
  public var qos: Int32
  public var retain: Bool

  public init(topic: String, payload: [UInt8], qos: Int32 = 1, retain: Bool = false) {
    self.topic = topic
    self.payload = payload
    self.qos = qos
    self.retain = retain
  }
}

/// TLS for the connection (`mosquitto_tls_set`, `mosquitto_tls_insecure_set`).
///
/// Files are PEM and are read when `connect` runs; `mosquitto_tls_set` only checks that
/// they can be opened.
public struct TLSOptions: Sendable {
  /// CA certificate(s) the broker's certificate must chain to.
  public var caFile: String
  /// This client's certificate (for brokers with `require_certificate true`).
  public var certFile: String?
  /// The private key of `certFile` (unencrypted PEM).
  public var keyFile: String?
  /// Skips the check that the broker's certificate names the host connected to.
  /// For tests only: it makes man-in-the-middle attacks possible.
  public var insecure: Bool

  public init(caFile: String, certFile: String? = nil, keyFile: String? = nil, insecure: Bool = false) {
    self.caFile = caFile
    self.certFile = certFile
    self.keyFile = keyFile
    self.insecure = insecure
  }
}

/// How a `Client` connects. Everything here is applied in `Client.init`.
public struct ClientOptions {
  /// The MQTT client identifier; must be unique on the broker (a second connection with
  /// the same id makes the broker drop the first).
  public var clientID: String
  public var protocolVersion: ProtocolVersion = .v5
  /// MQTT 5 Clean Start / MQTT 3.1.1 Clean Session.
  public var cleanStart = true
  /// MQTT 5 only: how long the broker keeps the session (subscriptions, queued QoS 1
  /// messages) after the connection ends; 0 ends it with the connection. Sent as the
  /// CONNECT property Session Expiry Interval when non-zero. (With 3.1.1 and
  /// `cleanStart == false` the broker keeps the session until its own
  /// `persistent_client_expiration`.)
  public var sessionExpirySeconds: UInt32 = 0
  /// Seconds between PINGREQs when idle; the broker drops the client after 1.5 × this
  /// without traffic. `loopMisc()` sends the pings, so it must be called at least
  /// once a second or so.
  public var keepAliveSeconds: Int32 = 30
  /// The most QoS 1/2 messages libmosquitto sends before waiting for acknowledgements
  /// (`MOSQ_OPT_SEND_MAXIMUM`; further publishes wait inside the library). With MQTT 5
  /// the broker's Receive Maximum also caps it.
  public var maxInflightMessages: Int32 = 20
  public var username: String?
  public var password: String?
  public var will: Will?
  public var tls: TLSOptions?

  public init(clientID: String) {
    self.clientID = clientID
  }
}

/// MQTT 5 PUBLISH properties: sent with `Client.publish` (v5 only) and received in
/// `Message.properties` (empty for 3.1.1).
public struct PublishProperties {
  /// Content Type, e.g. `"application/json"`.
  public var contentType: String?
  /// Message Expiry Interval: the broker drops the message if undelivered after this.
  public var messageExpirySeconds: UInt32?
  /// User Properties, in order; names may repeat.
  public var userProperties: [(String, String)]

  public init(
    contentType: String? = nil, messageExpirySeconds: UInt32? = nil, userProperties: [(String, String)] = []
  ) {
    self.contentType = contentType
    self.messageExpirySeconds = messageExpirySeconds
    self.userProperties = userProperties
  }

  /// True when no property is set (nothing would be sent).
  public var isEmpty: Bool {
    contentType == nil && messageExpirySeconds == nil && userProperties.isEmpty
  }
}

/// A received PUBLISH, copied out of libmosquitto's buffers (the library frees its own
/// copy when the callback returns).
public struct Message {
  public let topic: String
  public let payload: [UInt8]
  public let qos: Int32
  /// True when the broker delivered it from its retained store (e.g. to a new
  /// subscriber).
  public let retain: Bool
  /// The packet identifier (0 for QoS 0); of no use beyond logging.
  public let mid: Int32
  /// MQTT 5 properties (always empty with 3.1.1).
  public let properties: PublishProperties

  public init(
    topic: String, payload: [UInt8], qos: Int32, retain: Bool, mid: Int32,
    properties: PublishProperties = PublishProperties()
  ) {
    self.topic = topic
    self.payload = payload
    self.qos = qos
    self.retain = retain
    self.mid = mid
    self.properties = properties
  }
}

/// What happened inside a `Client` call. The library callbacks append these to the
/// client's queue; the owner drains it with `takeEvents()` after each loop call.
public enum ClientEvent {
  /// CONNACK. `reasonCode` 0 = accepted. MQTT 5: a reason code ≥ 0x80
  /// (`mosquitto_reason_string`); 3.1.1: a CONNACK return code 1–5
  /// (`mosquitto_connack_string`). On refusal the broker then closes the socket and a
  /// `.disconnected` follows.
  case connected(reasonCode: Int32)
  /// The connection ended. `reasonCode` 0 after `disconnect()`; otherwise a
  /// `MOSQ_ERR_*` code (e.g. `MosquittoError.connectionLost`, `.keepalive`) or, when
  /// the broker sent an MQTT 5 DISCONNECT, its reason code.
  case disconnected(reasonCode: Int32)
  /// QoS 0: the PUBLISH was written to the socket. QoS 1: the PUBACK arrived;
  /// `reasonCode` < 0x80 is success (0, or 0x10 "no matching subscribers"),
  /// ≥ 0x80 a refusal (e.g. 0x87 not authorised).
  case published(mid: Int32, reasonCode: Int32)
  /// A PUBLISH matching one of the subscriptions.
  case message(Message)
  /// SUBACK: one entry per filter; 0–2 = granted QoS, ≥ 0x80 = refused.
  case subscribed(mid: Int32, grantedQoS: [Int32])
}

import CMosquitto

/// `mosquitto_lib_init` runs once, the first time a `Client` is made.
private let libraryInitResult: Int32 = mosquitto_lib_init()

/// An MQTT client: the one owner of one libmosquitto `struct mosquitto *`.
///
/// There is no library thread. The owner runs its own `poll(2)` loop:
///
///     poll client.socket for POLLIN, plus POLLOUT when client.wantsWrite
///     POLLIN  → try client.loopRead()
///     POLLOUT → try client.loopWrite()
///     every round (at least once a second) → try client.loopMisc()   // keepalive
///     for event in client.takeEvents() { ... }
///
/// libmosquitto's callbacks (registered with this object, unretained, as their user
/// data) only append `ClientEvent`s to a queue; nothing runs owner code re-entrantly.
/// Drain the queue after every call into the client, including `connect`, `publish`
/// and `disconnect`, which may queue events themselves.
///
/// Connection loss: any error thrown by `loopRead`/`loopWrite`/`loopMisc` means the
/// socket is closed (`socket` is -1) and a `.disconnected` event is queued. Nothing
/// reconnects automatically: call `reconnect()` after a backoff; it throws while the
/// broker is unreachable. With `cleanStart`, subscriptions are gone after a reconnect,
/// so subscribe again on `.connected(reasonCode: 0)`.
///
/// Not thread-safe: use one client from one thread (the loop's).
/// Deinitialising the client closes the socket without DISCONNECT, so the broker
/// publishes the will; call `disconnect()` first for a clean shutdown.
public final class Client {
  private let handle: OpaquePointer
  /// The MQTT client identifier given in the options.
  public let clientID: String
  private let protocolVersion: ProtocolVersion
  private let keepAliveSeconds: Int32
  private let sessionExpirySeconds: UInt32
  private var events: [ClientEvent] = []
  private var host = ""
  private var port: Int32 = 0

  /// True between a successful CONNACK and the next `.disconnected`.
  public private(set) var isConnected = false

  /// Makes a client and applies `options` (`mosquitto_new`, `MOSQ_OPT_PROTOCOL_VERSION`,
  /// `MOSQ_OPT_SEND_MAXIMUM`, `mosquitto_username_pw_set`, `mosquitto_will_set`,
  /// `mosquitto_tls_set`, `mosquitto_tls_insecure_set`). Does not connect.
  /// - Throws: `MosquittoError` naming the option at fault (e.g. an unreadable TLS file
  ///   or an invalid will topic); no handle is left behind.
  public init(_ options: ClientOptions) throws(MosquittoError) {
    try check(libraryInitResult, "mosquitto_lib_init")
    let made = options.clientID.withCString { mosquitto_new($0, options.cleanStart, nil) }
    guard let made else {
      // mosquitto_new sets errno: EINVAL (bad id / clean session), ENOMEM.
      let savedErrno = cmosquitto_errno()
      throw MosquittoError(
        code: MosquittoError.errno, operation: "create client " + options.clientID, systemErrno: savedErrno)
    }
    do throws(MosquittoError) {
      try Client.configure(made, options)
    } catch {
      mosquitto_destroy(made)
      throw error
    }
    handle = made
    clientID = options.clientID
    protocolVersion = options.protocolVersion
    keepAliveSeconds = options.keepAliveSeconds
    sessionExpirySeconds = options.sessionExpirySeconds
    mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
    Client.registerCallbacks(handle)
  }

  deinit {
    // No callback may reach this object any more (mosquitto_new with a NULL obj would
    // pass the handle itself as user data, so clear it explicitly).
    mosquitto_user_data_set(handle, nil)
    mosquitto_destroy(handle)
  }

  private static func configure(_ h: OpaquePointer, _ options: ClientOptions) throws(MosquittoError) {
    let level = options.protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311
    try check(mosquitto_int_option(h, MOSQ_OPT_PROTOCOL_VERSION, level), "set protocol version")
    try check(
      mosquitto_int_option(h, MOSQ_OPT_SEND_MAXIMUM, options.maxInflightMessages),
      "set max in-flight messages \(options.maxInflightMessages)")
    // Small packets (PUBACKs, acks, commands) must not wait for Nagle's algorithm and
    // the peer's delayed ACK (up to 40 ms each on Linux).
    try check(mosquitto_int_option(h, MOSQ_OPT_TCP_NODELAY, 1), "set TCP_NODELAY")
    if let username = options.username {
      let rc = withOptionalCString(username) { user in
        withOptionalCString(options.password) { password in
          mosquitto_username_pw_set(h, user, password)
        }
      }
      try check(rc, "set username " + username)
    }
    if let will = options.will {
      guard !will.topic.utf8.contains(0), will.payload.count <= maximumPayload else {
        throw MosquittoError(code: MosquittoError.invalidArgument, operation: "set will " + will.topic)
      }
      let rc = will.topic.withCString { topic in
        will.payload.withUnsafeBytes { payload in
          mosquitto_will_set(h, topic, Int32(payload.count), payload.baseAddress, will.qos, will.retain)
        }
      }
      try check(rc, "set will " + will.topic)
    }
    if let tls = options.tls {
      let rc = tls.caFile.withCString { ca in
        withOptionalCString(tls.certFile) { cert in
          withOptionalCString(tls.keyFile) { key in
            mosquitto_tls_set(h, ca, nil, cert, key, nil)
          }
        }
      }
      var files = "ca " + tls.caFile
      if let cert = tls.certFile { files += ", cert " + cert }
      if let key = tls.keyFile { files += ", key " + key }
      try check(rc, "set TLS (" + files + ")")
      if tls.insecure {
        try check(mosquitto_tls_insecure_set(h, true), "set TLS insecure")
      }
    }
  }

  // MARK: Connection

  /// Connects to the broker and sends CONNECT (`mosquitto_connect_bind_v5`). The
  /// CONNACK arrives later, through `loopRead`, as `.connected(reasonCode:)`.
  ///
  /// Blocking: the name lookup and the TCP connect run in the caller's thread (fast on
  /// loopback; up to the kernel's SYN timeout against an unreachable host). The TLS
  /// handshake, if any, continues in the loop calls.
  /// - Throws: `MosquittoError` with operation `"connect <host>:<port>"`, e.g. `errno`
  ///   ECONNREFUSED when nothing listens there.
  public func connect(host: String, port: Int32) throws(MosquittoError) {
    self.host = host
    self.port = port
    isConnected = false
    var properties: OpaquePointer? = nil
    defer { mosquitto_property_free_all(&properties) }
    if protocolVersion == .v5 && sessionExpirySeconds > 0 {
      try check(
        mosquitto_property_add_int32(
          &properties, property(MQTT_PROP_SESSION_EXPIRY_INTERVAL), sessionExpirySeconds),
        "connect " + endpoint + ": session expiry property")
    }
    let rc = host.withCString {
      mosquitto_connect_bind_v5(handle, $0, port, keepAliveSeconds, nil, properties)
    }
    try check(rc, "connect " + endpoint)
  }

  /// Connects again to the same host and port, with the same options
  /// (`mosquitto_reconnect`); closes the old socket first if still open. Blocking like
  /// `connect`. QoS 1 messages still unacknowledged from the previous connection are
  /// sent again after the CONNACK.
  /// - Throws: `MosquittoError` (`"reconnect <host>:<port>"`) while the broker is
  ///   unreachable.
  public func reconnect() throws(MosquittoError) {
    isConnected = false
    try check(mosquitto_reconnect(handle), "reconnect " + endpoint)
  }

  /// Sends DISCONNECT and closes the socket (`mosquitto_disconnect`); the broker
  /// discards the will. Queues `.disconnected(reasonCode: 0)` once the packet is out
  /// (normally before this returns; otherwise after the next `loopWrite`).
  /// - Throws: `MosquittoError.noConnection` when not connected.
  public func disconnect() throws(MosquittoError) {
    try check(mosquitto_disconnect(handle), "disconnect " + endpoint)
  }

  // MARK: Messages

  /// Publishes a message (`mosquitto_publish_v5`). Properties are copied; the caller's
  /// value is not retained.
  ///
  /// Unlike bare libmosquitto, this refuses to publish while there is no socket, so no
  /// message hides in the library's queue while disconnected. QoS 1 messages published
  /// while connected but not yet acknowledged when the connection drops are resent by
  /// libmosquitto after `reconnect()`.
  /// - Returns: the message id that `.published(mid:reasonCode:)` will carry.
  /// - Throws: `MosquittoError` with operation `"publish <topic>"`: `invalidArgument`
  ///   for a topic with wildcards / NUL / bad length, `malformedUTF8`,
  ///   `noConnection`, `notSupported` for properties on MQTT 3.1.1, `payloadSize`.
  @discardableResult
  public func publish(
    topic: String, payload: [UInt8], qos: Int32, retain: Bool, properties: PublishProperties? = nil
  ) throws(MosquittoError) -> Int32 {
    let operation = "publish " + topic
    if topic.utf8.contains(0) {
      throw MosquittoError(code: MosquittoError.invalidArgument, operation: operation)
    }
    if payload.count > maximumPayload {
      throw MosquittoError(code: MosquittoError.payloadSize, operation: operation)
    }
    if mosquitto_socket(handle) < 0 {
      throw MosquittoError(code: MosquittoError.noConnection, operation: operation)
    }
    var list: OpaquePointer? = nil
    defer { mosquitto_property_free_all(&list) }
    if let properties, !properties.isEmpty {
      if protocolVersion != .v5 {
        throw MosquittoError(
          code: MosquittoError.notSupported, operation: operation + " (properties need MQTT 5)")
      }
      try addPublishProperties(properties, to: &list, operation)
    }
    var mid: Int32 = 0
    let rc = topic.withCString { topicC in
      payload.withUnsafeBytes { bytes in
        mosquitto_publish_v5(handle, &mid, topicC, Int32(bytes.count), bytes.baseAddress, qos, retain, list)
      }
    }
    try check(rc, operation)
    return mid
  }

  /// Subscribes to a topic filter (`mosquitto_subscribe`); the SUBACK arrives as
  /// `.subscribed(mid:grantedQoS:)`.
  /// - Returns: the message id of the SUBSCRIBE.
  /// - Throws: `MosquittoError` with operation `"subscribe <filter>"`.
  @discardableResult
  public func subscribe(_ pattern: String, qos: Int32) throws(MosquittoError) -> Int32 {
    let operation = "subscribe " + pattern
    if pattern.utf8.contains(0) {
      throw MosquittoError(code: MosquittoError.invalidArgument, operation: operation)
    }
    if mosquitto_socket(handle) < 0 {
      throw MosquittoError(code: MosquittoError.noConnection, operation: operation)
    }
    var mid: Int32 = 0
    let rc = pattern.withCString { mosquitto_subscribe(handle, &mid, $0, qos) }
    try check(rc, operation)
    return mid
  }

  /// Unsubscribes from a topic filter (`mosquitto_unsubscribe`). No event is queued for
  /// the UNSUBACK.
  /// - Returns: the message id of the UNSUBSCRIBE.
  /// - Throws: `MosquittoError` with operation `"unsubscribe <filter>"`.
  @discardableResult
  public func unsubscribe(_ pattern: String) throws(MosquittoError) -> Int32 {
    let operation = "unsubscribe " + pattern
    if pattern.utf8.contains(0) {
      throw MosquittoError(code: MosquittoError.invalidArgument, operation: operation)
    }
    if mosquitto_socket(handle) < 0 {
      throw MosquittoError(code: MosquittoError.noConnection, operation: operation)
    }
    var mid: Int32 = 0
    let rc = pattern.withCString { mosquitto_unsubscribe(handle, &mid, $0) }
    try check(rc, operation)
    return mid
  }

  // MARK: The owner's loop

  /// The socket to poll (`mosquitto_socket`); -1 when not connected.
  public var socket: Int32 { mosquitto_socket(handle) }

  /// True when there is output waiting for the socket to become writable
  /// (`mosquitto_want_write`): poll for POLLOUT too.
  public var wantsWrite: Bool { mosquitto_want_write(handle) }

  /// Reads and handles what the socket has (`mosquitto_loop_read`). Call on POLLIN.
  /// - Throws: `MosquittoError` (`"read <host>:<port>"`) when the connection is lost
  ///   (`connectionLost`, `noConnection`, `errno`, `tls`, `protocolError`...); the socket
  ///   is then closed and `.disconnected` queued.
  public func loopRead() throws(MosquittoError) {
    try check(mosquitto_loop_read(handle, 1), "read " + endpoint)
  }

  /// Writes queued output (`mosquitto_loop_write`). Call on POLLOUT.
  /// - Throws: like `loopRead`.
  public func loopWrite() throws(MosquittoError) {
    try check(mosquitto_loop_write(handle, 1), "write " + endpoint)
  }

  /// Keepalive (PINGREQ, and dropping a connection whose PINGRESP is overdue)
  /// (`mosquitto_loop_misc`). Call every loop round, at least once a second.
  /// - Throws: `noConnection` when there is no socket; `keepalive` when the broker
  ///   stopped answering (the socket is then closed and `.disconnected` queued).
  public func loopMisc() throws(MosquittoError) {
    try check(mosquitto_loop_misc(handle), "keepalive " + endpoint)
  }

  /// One round of the owner's `poll(2)` loop for this client: read if the socket was
  /// readable (or reported an error), write if it was writable or output is pending,
  /// then keepalive and retries. Call at least once a second while connected.
  /// - Parameters:
  ///   - readable: poll reported POLLIN, POLLERR or POLLHUP on `socket`.
  ///   - writable: poll reported POLLOUT on `socket`.
  /// - Throws: the first loop call's error; the connection is then closed and a
  ///   `.disconnected` event is queued.
  public func service(readable: Bool, writable: Bool) throws(MosquittoError) {
    if readable { try loopRead() }
    if writable || wantsWrite { try loopWrite() }
    try loopMisc()
  }

  /// Returns the events queued since the last call, oldest first, and empties the queue.
  public func takeEvents() -> [ClientEvent] {
    let taken = events
    events = []
    return taken
  }

  /// libmosquitto's version, e.g. `"2.0.11"` (`mosquitto_lib_version`).
  public static var libraryVersion: String {
    var major: Int32 = 0
    var minor: Int32 = 0
    var revision: Int32 = 0
    _ = mosquitto_lib_version(&major, &minor, &revision)
    return "\(major).\(minor).\(revision)"
  }

  private var endpoint: String { host + ":\(port)" }

  // MARK: Callbacks (called by libmosquitto inside this object's calls, same thread)

  fileprivate func append(_ event: ClientEvent) {
    switch event {
    case .connected(let reasonCode): isConnected = reasonCode == 0
    case .disconnected: isConnected = false
    default: break
    }
    events.append(event)
  }

  private static func registerCallbacks(_ h: OpaquePointer) {
    mosquitto_connect_v5_callback_set(h) { _, obj, reasonCode, _, _ in
      client(obj)?.append(.connected(reasonCode: reasonCode))
    }
    mosquitto_disconnect_v5_callback_set(h) { _, obj, reasonCode, _ in
      client(obj)?.append(.disconnected(reasonCode: reasonCode))
    }
    mosquitto_publish_v5_callback_set(h) { _, obj, mid, reasonCode, _ in
      client(obj)?.append(.published(mid: mid, reasonCode: reasonCode))
    }
    mosquitto_subscribe_v5_callback_set(h) { _, obj, mid, count, granted, _ in
      var qos: [Int32] = []
      if let granted, count > 0 {
        qos = Array(UnsafeBufferPointer(start: granted, count: Int(count)))
      }
      client(obj)?.append(.subscribed(mid: mid, grantedQoS: qos))
    }
    mosquitto_message_v5_callback_set(h) { _, obj, message, properties in
      guard let target = client(obj), let message else { return }
      // Copy everything now: libmosquitto frees the message when this returns.
      let m = message.pointee
      var payload: [UInt8] = []
      if let bytes = m.payload, m.payloadlen > 0 {
        payload = Array(UnsafeRawBufferPointer(start: bytes, count: Int(m.payloadlen)))
      }
      target.append(
        .message(
          Message(
            topic: cString(m.topic), payload: payload, qos: m.qos, retain: m.retain, mid: m.mid,
            properties: readPublishProperties(properties))))
    }
  }
}

/// The largest MQTT payload (the remaining length limit of a packet).
let maximumPayload = 268_435_455

private func client(_ obj: UnsafeMutableRawPointer?) -> Client? {
  guard let obj else { return nil }
  return Unmanaged<Client>.fromOpaque(obj).takeUnretainedValue()
}

private func property(_ identifier: mqtt5_property) -> Int32 {
  Int32(truncatingIfNeeded: identifier.rawValue)
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
  guard let string else { return body(nil) }
  return string.withCString { body($0) }
}

private func addPublishProperties(
  _ properties: PublishProperties, to list: inout OpaquePointer?, _ operation: String
) throws(MosquittoError) {
  if let contentType = properties.contentType {
    let rc = contentType.withCString {
      mosquitto_property_add_string(&list, property(MQTT_PROP_CONTENT_TYPE), $0)
    }
    try check(rc, operation + ": content type")
  }
  if let expiry = properties.messageExpirySeconds {
    try check(
      mosquitto_property_add_int32(&list, property(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL), expiry),
      operation + ": message expiry")
  }
  for (name, value) in properties.userProperties {
    let rc = name.withCString { n in
      value.withCString { v in
        mosquitto_property_add_string_pair(&list, property(MQTT_PROP_USER_PROPERTY), n, v)
      }
    }
    try check(rc, operation + ": user property " + name)
  }
}

/// Copies the PUBLISH properties GridEdge uses out of a received property list.
private func readPublishProperties(_ list: OpaquePointer?) -> PublishProperties {
  var result = PublishProperties()
  guard let list else { return result }
  var text: UnsafeMutablePointer<CChar>? = nil
  if mosquitto_property_read_string(list, property(MQTT_PROP_CONTENT_TYPE), &text, false) != nil,
    let text
  {
    result.contentType = String(cString: text)
    cmosquitto_free(text)
  }
  var expiry: UInt32 = 0
  if mosquitto_property_read_int32(list, property(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL), &expiry, false) != nil {
    result.messageExpirySeconds = expiry
  }
  var cursor: OpaquePointer? = list
  var skipFirst = false
  while let current = cursor {
    var name: UnsafeMutablePointer<CChar>? = nil
    var value: UnsafeMutablePointer<CChar>? = nil
    guard
      let found = mosquitto_property_read_string_pair(
        current, property(MQTT_PROP_USER_PROPERTY), &name, &value, skipFirst)
    else { break }
    if let name, let value {
      result.userProperties.append((String(cString: name), String(cString: value)))
    }
    cmosquitto_free(name)
    cmosquitto_free(value)
    cursor = found
    skipFirst = true
  }
  return result
}

import GridEdgeContract
import MosquittoClient
import Runtime
import SQLiteStore

/// `gridedge-hq send`: signs the next command for a device and publishes it on
/// `gridedge/v1/<dev>/down/cmd` at QoS 1.
///
/// The device's counter is allocated and the signed command recorded in HQ's
/// database in one `synchronous=FULL` transaction before anything is published, so
/// a counter is never used twice even when publishing fails.
public enum CommandSender {
  public struct Request: Sendable {
    public var host = "127.0.0.1"
    public var port: Int32 = 1883
    public var databasePath = "gridedge-hq.db"
    public var keyFile = ""
    public var keyID = ""
    public var device = ""
    public var typeName = ""
    public var body = "{}"
    public var timeToLive = CommandSigner.defaultTimeToLive
    /// TLS to the broker.
    public var tls: TLSOptions? = nil
    public init() {}
  }

  /// Allocates, signs, records and publishes one command. - Returns: the exit code.
  public static func run(_ request: Request) -> Int32 {
    let clock = SystemClock()
    let signer: CommandSigner
    do {
      signer = try CommandSigner(keyFile: request.keyFile, keyID: request.keyID)
    } catch {
      Log.error("send", error.description)
      return 1
    }
    guard Topics.isValidDeviceID(request.device) else {
      Log.error("send", "--dev '" + request.device + "' is not a device id (1-32 of A-Z a-z 0-9 -)")
      return 2
    }
    let token: String
    let counter: UInt64
    do {
      let store = try HQStore(path: request.databasePath)
      var signingError: CommandSignerError? = nil
      (counter, token) = try store.db.transaction(.full) { () throws(SQLiteError) -> (UInt64, String) in
        let last =
          Command.parseCounter(
            try store.db.query(
              "SELECT last_counter FROM command_counters WHERE device_id = ?1", [.text(request.device)]
            ).first?.text(0) ?? "0") ?? 0
        let next = last + 1
        let signed: String
        do throws(CommandSignerError) {
          signed = try signer.sign(
            device: request.device, counter: next, typeName: request.typeName, body: request.body,
            timeToLive: request.timeToLive, now: clock.wallMilliseconds / 1000)
        } catch {
          signingError = error
          return (0, "")
        }
        try store.db.run(
          """
          INSERT INTO command_counters (device_id, last_counter) VALUES (?1, ?2)
          ON CONFLICT (device_id) DO UPDATE SET last_counter = excluded.last_counter
          """, [.text(request.device), .text(String(next))])
        try store.db.run(
          "INSERT INTO sent_commands (device_id, counter, type, token, sent_at) VALUES (?1, ?2, ?3, ?4, ?5)",
          [
            .text(request.device), .text(String(next)), .text(request.typeName), .text(signed),
            .integer(clock.wallMilliseconds),
          ])
        return (next, signed)
      }
      if let signingError {
        Log.error("send", signingError.description)
        return 2
      }
    } catch {
      Log.error("send", "database " + request.databasePath + ": " + error.description)
      return 1
    }
    switch publish(Array(token.utf8), on: Topics.downCommand(request.device), request, clock) {
    case nil:
      Console.writeLine(
        "sent command " + String(counter) + " (" + request.typeName + ") to " + request.device)
      Console.writeLine(token)
      return 0
    case let why?:
      Log.error(
        "send",
        "command " + String(counter) + " for " + request.device
          + " was signed and recorded but not published: "
          + why)
      return 1
    }
  }

  /// Connects, publishes at QoS 1, waits for the PUBACK and disconnects.
  /// - Returns: nil on success, else what went wrong.
  static func publish(_ payload: [UInt8], on topic: String, _ request: Request, _ clock: SystemClock)
    -> String?
  {
    var options = ClientOptions(clientID: "gridedge-hq-send-" + hexString(SecureRandom.bytes(4)))
    options.protocolVersion = .v5
    options.tls = request.tls
    let client: Client
    do {
      client = try Client(options)
      try client.connect(host: request.host, port: request.port)
    } catch {
      return error.description
    }
    let deadline = clock.monotonicMilliseconds + 10_000
    var mid: Int32? = nil
    while clock.monotonicMilliseconds < deadline {
      let socket = client.socket
      guard socket >= 0 else { return "the connection to the broker was lost" }
      let ready =
        (try? Poller.wait(
          [PollRequest(fd: socket, read: true, write: client.wantsWrite)], timeoutMilliseconds: 100))
        ?? []
      do {
        try client.service(
          readable: ready.first?.readable ?? false, writable: ready.first?.writable ?? false)
      } catch {
        return error.description
      }
      for event in client.takeEvents() {
        switch event {
        case .connected(let code):
          guard code == 0 else { return "the broker refused the connection, reason code " + String(code) }
          do {
            mid = try client.publish(topic: topic, payload: payload, qos: 1, retain: false)
          } catch {
            return error.description
          }
        case .published(let id, let code) where id == mid:
          try? client.disconnect()
          return code >= 0x80 ? "the broker refused it, reason code " + String(code) : nil
        case .disconnected(let code):
          return "disconnected, reason code " + String(code)
        default:
          break
        }
      }
    }
    return "no PUBACK from " + request.host + ":" + String(request.port) + " within 10 s"
  }
}

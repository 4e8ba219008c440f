import GridEdgeHQ
import MosquittoClient
import Runtime

/// `gridedge-hq`: the reference HQ receiver and command tool.
@main
struct Main {
  static let usage = """
    gridedge-hq — reference HQ receiver for the GridEdge MQTT contract v1

    usage:
      gridedge-hq serve [--host H] [--port P] [--db FILE] [--client-id ID] [--group G] [TLS]
          subscribe to every device's state (as $share/G/... with --group) and
          keep it in FILE (default gridedge-hq.db) until SIGTERM/SIGINT
      gridedge-hq report [--db FILE] [--json]
          per device: state, boot epoch, births, batches, records, duplicates,
          gaps, last seen; and the newest daily energy balance of each area
          (loss rate, completeness, flags, suspects, proposed work orders);
          the work-order photos received, reassembled and checked (SHA-256)
      gridedge-hq keygen --out DIR [--kid K]
          make an Ed25519 command key: DIR/K.key (private seed, mode 0600) and
          the public line added to DIR/trusted-keys (K defaults to the key's
          RFC 7638 thumbprint)
      gridedge-hq sign --key FILE --kid K --dev D --ctr N --typ T --body JSON [--ttl SECONDS]
          print command N for device D as a compact JWS (alg Ed25519), valid
          for SECONDS (default 3600); T is tariff, topup, disconnect, reconnect,
          keep-power, workorder, config, archive, outage or planned-outage
      gridedge-hq send --key FILE --kid K --dev D --typ T --body JSON [--ttl SECONDS]
          [--db FILE] [--host H] [--port P] [TLS]
          sign device D's next command (its counter kept in FILE) and publish it
          on gridedge/v1/D/down/cmd at QoS 1; the outcome comes back in class
          results. A work order: --typ workorder --body '{"id":"WO-1","kind":
          "inspection","priority":1,"customer":"C-1","address":"..."}' (README);
          its cancellation: --body '{"id":"WO-1","cancel":true,"reason":"..."}'
      gridedge-hq --help | --version

    TLS (serve, send): --tls-ca FILE [--tls-cert FILE --tls-key FILE]
        connect with TLS, the broker's certificate checked against the CA in
        FILE; with a client certificate and its key for brokers that require
        one (firmware-config/mosquitto: the CN must be an HQ user of the ACL)
    """

  static func main() {
    Process.prepare()
    if let bad = Process.invalidUTF8Argument() {
      Console.writeError(
        "gridedge-hq: argument " + String(bad)
          + " is not valid UTF-8: refused (text is kept exactly as given, so it"
          + " must be UTF-8)\n")
      Process.exit(2)
    }
    Process.exit(run(Array(Process.arguments().dropFirst())))
  }

  static func run(_ words: [String]) -> Int32 {
    let arguments: Arguments
    do {
      arguments = try Arguments(
        words,
        valued: [
          "host", "port", "db", "client-id", "group", "log-level", "out", "kid", "key", "dev", "ctr", "typ",
          "body", "ttl", "tls-ca", "tls-cert", "tls-key",
        ],
        flags: ["help", "version", "json"])
    } catch {
      Console.writeError("gridedge-hq: " + error.description + "\n\n" + usage + "\n")
      return 2
    }
    if arguments.has("version") {
      Console.writeLine("gridedge-hq " + BuildInfo.version)
      return 0
    }
    guard let command = arguments.positional.first, !arguments.has("help") else {
      Console.write(usage + "\n")
      return arguments.has("help") ? 0 : 2
    }
    if let level = arguments.value("log-level") {
      guard let parsed = LogLevel(name: level) else {
        Console.writeError("gridedge-hq: --log-level must be debug, info, warn or error\n")
        return 2
      }
      Log.level = parsed
    }
    var options = Receiver<SystemClock>.Options()
    if let db = arguments.value("db") { options.databasePath = db }
    switch tls(arguments) {
    case .success(let tls): options.tls = tls
    case .failure(let problem): return usageError(problem.description)
    }
    switch command {
    case "serve":
      if let host = arguments.value("host") { options.host = host }
      if let text = arguments.value("port") {
        guard let port = Int32(text), port > 0, port < 65536 else {
          Console.writeError("gridedge-hq: --port must be a TCP port, got '" + text + "'\n")
          return 2
        }
        options.port = port
      }
      if let id = arguments.value("client-id") { options.clientID = id }
      options.sharedGroup = arguments.value("group")
      do {
        return try Receiver(options: options, clock: SystemClock()).run()
      } catch {
        Log.error("hq", error.description)
        return 1
      }
    case "report":
      return Report.run(databasePath: options.databasePath, json: arguments.has("json"))
    case "keygen":
      return keygen(arguments)
    case "sign":
      return sign(arguments)
    case "send":
      return send(arguments, databasePath: options.databasePath, tls: options.tls)
    default:
      Console.writeError("gridedge-hq: unknown command '" + command + "'\n\n" + usage + "\n")
      return 2
    }
  }

  /// `keygen --out DIR [--kid K]`.
  static func keygen(_ arguments: Arguments) -> Int32 {
    guard let directory = arguments.value("out") else { return usageError("keygen needs --out DIR") }
    do {
      let made = try CommandSigner.generateKey(directory: directory, keyID: arguments.value("kid"))
      Console.writeLine("key id:       " + made.keyID)
      Console.writeLine("private key:  " + made.keyFile + " (keep it secret)")
      Console.writeLine("trusted keys: " + made.trustedKeysFile + " (copy the line below to the devices)")
      Console.writeLine(made.trustedKeysLine)
      return 0
    } catch {
      Console.writeError("gridedge-hq keygen: " + error.description + "\n")
      return 1
    }
  }

  /// `sign --key FILE --kid K --dev D --ctr N --typ T --body JSON [--ttl SECONDS]`.
  static func sign(_ arguments: Arguments) -> Int32 {
    var missing: [String] = []
    for name in ["key", "kid", "dev", "ctr", "typ", "body"] where arguments.value(name) == nil {
      missing.append("--" + name)
    }
    guard missing.isEmpty, let keyFile = arguments.value("key"), let keyID = arguments.value("kid"),
      let device = arguments.value("dev"), let counterText = arguments.value("ctr"),
      let typeName = arguments.value("typ"), let body = arguments.value("body")
    else {
      var list = ""
      for name in missing { list += (list.isEmpty ? "" : ", ") + name }
      return usageError("sign needs " + list)
    }
    guard let counter = CommandSigner.parseCounter(counterText), counter > 0 else {
      return usageError("--ctr must be an integer from 1 to 18446744073709551615, got '" + counterText + "'")
    }
    var timeToLive = CommandSigner.defaultTimeToLive
    if let text = arguments.value("ttl") {
      guard let value = Int64(text), value > 0 else {
        return usageError("--ttl must be a positive number of seconds, got '" + text + "'")
      }
      timeToLive = value
    }
    do {
      let signer = try CommandSigner(keyFile: keyFile, keyID: keyID)
      let token = try signer.sign(
        device: device, counter: counter, typeName: typeName, body: body, timeToLive: timeToLive,
        now: SystemClock().wallMilliseconds / 1000)
      Console.writeLine(token)
      return 0
    } catch {
      Console.writeError("gridedge-hq sign: " + error.description + "\n")
      return 1
    }
  }

  /// `send --key FILE --kid K --dev D --typ T --body JSON [--ttl S] [--db FILE] [--host H] [--port P]`.
  static func send(_ arguments: Arguments, databasePath: String, tls: TLSOptions?) -> Int32 {
    var request = CommandSender.Request()
    request.databasePath = databasePath
    request.tls = tls
    guard let keyFile = arguments.value("key"), let keyID = arguments.value("kid"),
      let device = arguments.value("dev"), let typeName = arguments.value("typ"),
      let body = arguments.value("body")
    else { return usageError("send needs --key, --kid, --dev, --typ and --body") }
    request.keyFile = keyFile
    request.keyID = keyID
    request.device = device
    request.typeName = typeName
    request.body = body
    if let host = arguments.value("host") { request.host = host }
    if let text = arguments.value("port") {
      guard let port = Int32(text), port > 0, port < 65536 else {
        return usageError("--port must be a TCP port, got '" + text + "'")
      }
      request.port = port
    }
    if let text = arguments.value("ttl") {
      guard let value = Int64(text), value > 0 else {
        return usageError("--ttl must be a positive number of seconds, got '" + text + "'")
      }
      request.timeToLive = value
    }
    return CommandSender.run(request)
  }

  struct UsageProblem: Error, CustomStringConvertible {
    let description: String
  }

  /// The TLS options of `--tls-ca`, `--tls-cert` and `--tls-key` (nil: plain TCP).
  static func tls(_ arguments: Arguments) -> Result<TLSOptions?, UsageProblem> {
    let ca = arguments.value("tls-ca")
    let cert = arguments.value("tls-cert")
    let key = arguments.value("tls-key")
    guard (cert == nil) == (key == nil) else {
      return .failure(UsageProblem(description: "--tls-cert and --tls-key go together"))
    }
    guard let ca else {
      return cert == nil
        ? .success(nil) : .failure(UsageProblem(description: "a client certificate needs --tls-ca"))
    }
    for file in [ca, cert, key] {
      if let file, !Files.exists(file) {
        return .failure(UsageProblem(description: "TLS file " + file + " does not exist"))
      }
    }
    return .success(TLSOptions(caFile: ca, certFile: cert, keyFile: key))
  }

  static func usageError(_ message: String) -> Int32 {
    Console.writeError("gridedge-hq: " + message + "\n\n" + usage + "\n")
    return 2
  }
}

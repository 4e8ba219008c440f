import SQLiteStore

/// The retained `gridedge/v1/<dev>/state` message: the birth (`online`) a device
/// publishes on every connection, and the will (`offline`) the broker publishes
/// for it when the connection is lost. Both carry the boot `epoch`, so HQ can
/// tell an old will from a new birth.
///
/// JSON is formed and parsed with SQLite's JSON1 functions (DESIGN.md §7).
public struct StateMessage: Equatable, Sendable {
  public enum State: Equatable, Sendable {
    case online, offline

    public var name: String { self == .online ? "online" : "offline" }
  }

  /// The device's database disk fails: its writes fail since `since` (wall ms) with
  /// `error` (what SQLite says), the first while the agent was doing `step`. A birth
  /// without it says the disk takes writes. `"storage":{"state":"failing",...}`.
  public struct StorageFailure: Equatable, Sendable {
    public var since: Int64
    public var error: String
    public var step: String

    public init(since: Int64, error: String, step: String) {
      self.since = since
      self.error = error
      self.step = step
    }
  }

  public var state: State
  /// The device's boot counter: one more each time the agent starts on its database.
  public var epoch: Int64
  public var device: String
  /// The device database's store id (16 hex digits).
  public var store: String
  /// Wall time of the message in milliseconds since the Unix epoch.
  public var time: Int64
  public var version: String?
  public var profile: String?
  /// Why the device went offline: `shutdown` (it said so) or `lost` (the will).
  public var reason: String?
  /// Set while the device's database disk fails (the device publishes its state
  /// again when that starts and ends).
  public var storage: StorageFailure?

  public init(
    state: State, epoch: Int64, device: String, store: String, time: Int64,
    version: String? = nil, profile: String? = nil, reason: String? = nil, storage: StorageFailure? = nil
  ) {
    self.state = state
    self.epoch = epoch
    self.device = device
    self.store = store
    self.time = time
    self.version = version
    self.profile = profile
    self.reason = reason
    self.storage = storage
  }

  /// The JSON payload, members in a fixed order, absent optionals left out.
  /// - Throws: `SQLiteError` if the JSON functions fail.
  public func encode(_ db: Connection) throws(SQLiteError) -> [UInt8] {
    let rows = try db.query(
      """
      SELECT json_patch('{}', json_object('state', ?1, 'epoch', ?2, 'dev', ?3, 'store', ?4,
        'ts', ?5, 'version', ?6, 'profile', ?7, 'reason', ?8,
        'storage', CASE WHEN ?9 IS NOT NULL
          THEN json_object('state', 'failing', 'since', ?9, 'error', ?10, 'step', ?11) END))
      """,
      [
        .text(state.name), .integer(epoch), .text(device), .text(store), .integer(time),
        optionalText(version), optionalText(profile), optionalText(reason),
        storage.map { .integer($0.since) } ?? .null, optionalText(storage?.error),
        optionalText(storage?.step),
      ])
    return Array((rows.first?.text(0) ?? "").utf8)
  }

  /// Parses and validates a state payload.
  /// - Throws: `ContractError` naming the missing or invalid member.
  public static func decode(_ payload: [UInt8], _ db: Connection) throws(ContractError) -> StateMessage {
    let text = String(decoding: payload, as: UTF8.self)
    // json_type and json_extract raise an error on malformed JSON: validate first.
    let isObject: Bool
    do {
      isObject =
        try db.scalarInt(
          "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' ELSE 0 END", [.text(text)]) == 1
    } catch {
      throw .store(error)
    }
    guard isObject else { throw .notJSON }
    let rows: [Row]
    do {
      rows = try db.query(
        """
        SELECT json_extract(?1, '$.state'), json_type(?1, '$.epoch'), json_extract(?1, '$.epoch'),
          json_extract(?1, '$.dev'), json_extract(?1, '$.store'), json_type(?1, '$.ts'),
          json_extract(?1, '$.ts'), json_extract(?1, '$.version'),
          json_extract(?1, '$.profile'), json_extract(?1, '$.reason'),
          json_extract(?1, '$.storage.state'), json_extract(?1, '$.storage.since'),
          json_extract(?1, '$.storage.error'), json_extract(?1, '$.storage.step')
        """, [.text(text)])
    } catch {
      throw .store(error)
    }
    guard let row = rows.first else { throw .notJSON }
    let state: State
    switch row.text(0) {
    case "online": state = .online
    case "offline": state = .offline
    case nil: throw .missingField("state")
    default: throw .badField("state", "expected \"online\" or \"offline\"")
    }
    guard row.text(1) == "integer", let epoch = row.int64(2) else {
      throw row.text(1) == nil ? .missingField("epoch") : .badField("epoch", "expected an integer")
    }
    guard let device = row.text(3) else { throw .missingField("dev") }
    guard Topics.isValidDeviceID(device) else { throw .badField("dev", "not a device id") }
    guard let store = row.text(4) else { throw .missingField("store") }
    guard row.text(5) == "integer", let time = row.int64(6) else {
      throw row.text(5) == nil ? .missingField("ts") : .badField("ts", "expected an integer")
    }
    var storage: StorageFailure? = nil
    if row.text(10) == "failing" {
      guard let since = row.int64(11) else { throw .badField("storage", "a failing storage needs since") }
      storage = StorageFailure(since: since, error: row.text(12) ?? "", step: row.text(13) ?? "")
    }
    return StateMessage(
      state: state, epoch: epoch, device: device, store: store, time: time,
      version: row.text(7), profile: row.text(8), reason: row.text(9), storage: storage)
  }
}

private func optionalText(_ value: String?) -> SQLiteValue {
  guard let value else { return .null }
  return .text(value)
}

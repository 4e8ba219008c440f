/// The MQTT topic names of contract v1 (DESIGN.md §5).
///
/// `<dev>` is a device id: 1 to 32 characters of `[A-Za-z0-9-]`, equal to the
/// device's TLS certificate CN, so a broker ACL `gridedge/v1/%u/#` confines it.
public enum Topics {
  public static let prefix = "gridedge/v1/"

  /// `gridedge/v1/<dev>/state` (up, retained): birth and will.
  public static func state(_ device: String) -> String { prefix + device + "/state" }

  /// `gridedge/v1/<dev>/up/<class>` (up): a batch.
  public static func up(_ device: String, _ uplink: UplinkClass) -> String {
    prefix + device + "/up/" + uplink.name
  }

  /// `gridedge/v1/<dev>/down/ack` (down): HQ's application acknowledgement.
  public static func downAck(_ device: String) -> String { prefix + device + "/down/ack" }

  /// `gridedge/v1/<dev>/down/cmd` (down): a signed command.
  public static func downCommand(_ device: String) -> String { prefix + device + "/down/cmd" }

  /// `gridedge/v1/<dev>/down/+`: everything a device subscribes to.
  public static func downAll(_ device: String) -> String { prefix + device + "/down/+" }

  /// `gridedge/v1/+/state`, optionally shared: what an HQ receiver subscribes to.
  public static func allStates(sharedGroup: String? = nil) -> String {
    shared(sharedGroup) + prefix + "+/state"
  }

  /// `gridedge/v1/+/up/+`, optionally shared.
  public static func allUplinks(sharedGroup: String? = nil) -> String {
    shared(sharedGroup) + prefix + "+/up/+"
  }

  private static func shared(_ group: String?) -> String {
    guard let group else { return "" }
    return "$share/" + group + "/"
  }

  /// True when `id` is a valid device id: 1–32 of `[A-Za-z0-9-]`.
  public static func isValidDeviceID(_ id: String) -> Bool {
    let bytes = Array(id.utf8)
    guard (1...32).contains(bytes.count) else { return false }
    for b in bytes {
      let ok =
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
      if !ok { return false }
    }
    return true
  }

  /// Splits a contract topic into its device id and the rest
  /// (`gridedge/v1/D/up/readings` → (`D`, `up/readings`)).
  /// - Returns: nil when the topic is not a valid contract v1 topic.
  public static func parse(_ topic: String) -> (device: String, rest: String)? {
    guard topic.hasPrefix(prefix) else { return nil }
    let tail = topic.dropFirst(prefix.utf8.count)
    guard let slash = tail.firstIndex(of: "/") else { return nil }
    let device = String(tail[..<slash])
    guard isValidDeviceID(device) else { return nil }
    return (device, String(tail[tail.index(after: slash)...]))
  }
}

/// The classes of uplink batches.
public enum UplinkClass: CaseIterable, Sendable {
  case readings, events, ledger, records, attachments, results

  public var name: String {
    switch self {
    case .readings: return "readings"
    case .events: return "events"
    case .ledger: return "ledger"
    case .records: return "records"
    case .attachments: return "attachments"
    case .results: return "results"
    }
  }

  public init?(name: String) {
    for c in UplinkClass.allCases where c.name == name {
      self = c
      return
    }
    return nil
  }
}

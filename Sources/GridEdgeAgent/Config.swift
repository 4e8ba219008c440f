import GridEdgeContract
import Runtime

/// A configuration file that cannot be used: names the file, line and key.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
  public let file: String
  /// 1-based line number, or 0 when the problem is not on one line (a missing key).
  public let line: Int
  public let key: String?
  public let message: String

  public init(file: String, line: Int, key: String?, message: String) {
    self.file = file
    self.line = line
    self.key = key
    self.message = message
  }

  public var description: String {
    var text = file
    if line > 0 { text += ":" + String(line) }
    text += ": "
    if let key { text += "key '" + key + "': " }
    return text + message
  }
}

/// A validated configuration: every key known, every value of its type.
public struct Config: Sendable {
  /// The file it was read from.
  public let file: String
  private var values: [String: String]
  private var lines: [String: Int]

  /// Reads and validates the file at `path`.
  /// - Throws: `ConfigError` for a missing or unreadable file, a line that is not
  ///   `key = value`, an unknown or repeated key, a bad value, or a missing required key.
  public static func load(path: String) throws(ConfigError) -> Config {
    let text: String
    do {
      text = try Files.readText(path)
    } catch {
      throw ConfigError(
        file: path, line: 0, key: nil,
        message: error.isNotFound ? "no such file" : "cannot read: " + error.reason)
    }
    return try parse(text, file: path)
  }

  /// Validates configuration text; `file` is used in error messages.
  public static func parse(_ text: String, file: String) throws(ConfigError) -> Config {
    var config = Config(file: file, values: [:], lines: [:])
    var number = 0
    // "\r\n" is one Character in Swift, so it is a separator of its own.
    let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
    for rawLine in lines {
      number += 1
      let line = trimmed(Substring(rawLine))
      if line.isEmpty || line.hasPrefix("#") { continue }
      guard let eq = line.firstIndex(of: "=") else {
        throw ConfigError(
          file: file, line: number, key: nil, message: "expected 'key = value', got '" + line + "'")
      }
      let name = trimmed(line[..<eq])
      let value = trimmed(line[line.index(after: eq)...])
      guard let key = ConfigSchema.key(name) else {
        throw ConfigError(file: file, line: number, key: name, message: "unknown key")
      }
      if let first = config.lines[name] {
        throw ConfigError(
          file: file, line: number, key: name, message: "set twice (first on line " + String(first) + ")")
      }
      if let problem = check(value, against: key.kind) {
        throw ConfigError(file: file, line: number, key: name, message: problem)
      }
      config.values[name] = value
      config.lines[name] = number
    }
    for key in ConfigSchema.keys where key.required && config.values[key.name] == nil {
      throw ConfigError(file: file, line: 0, key: key.name, message: "required but not set")
    }
    try config.checkCombinations()
    // The control.* values (windows, days, dates, grades, password) and the prepaid
    // thresholds per grade are read here, so a
    // bad one stops every command at load with its line.
    _ = try RelaySettings(config: config)
    _ = try GradeThresholds(config: config)
    _ = try Credit.assessAt(config)
    return config
  }

  /// The value of `name`: the file's, else the table's default.
  public func string(_ name: String) -> String? {
    if let value = values[name] { return value }
    return ConfigSchema.key(name)?.defaultValue
  }

  /// The integer value of `name` (validated at load, so present when it has a default).
  public func integer(_ name: String) -> Int64 {
    guard let text = string(name), let value = Int64(text) else { return 0 }
    return value
  }

  /// True when the file itself sets `name`.
  public func isSet(_ name: String) -> Bool { values[name] != nil }

  /// The line that set `name`, or 0.
  public func line(of name: String) -> Int { lines[name] ?? 0 }

  /// An error about key `name`, pointing at the line that set it.
  public func error(_ name: String, _ message: String) -> ConfigError {
    ConfigError(file: file, line: line(of: name), key: name, message: message)
  }

  private func checkCombinations() throws(ConfigError) {
    let cert = isSet("mqtt.tls.cert_file")
    let key = isSet("mqtt.tls.key_file")
    if cert != key {
      throw error(
        cert ? "mqtt.tls.cert_file" : "mqtt.tls.key_file",
        "mqtt.tls.cert_file and mqtt.tls.key_file must be set together")
    }
    if cert && !isSet("mqtt.tls.ca_file") {
      throw error("mqtt.tls.cert_file", "a client certificate needs mqtt.tls.ca_file (TLS)")
    }
    if integer("mqtt.reconnect_max") < integer("mqtt.reconnect_min") {
      throw error("mqtt.reconnect_max", "must not be less than mqtt.reconnect_min")
    }
  }

  private static func check(_ value: String, against kind: ConfigValueKind) -> String? {
    let expected = "expected " + kind.expectation + ", got '" + value + "'"
    switch kind {
    case .text, .path:
      return value.isEmpty ? "expected " + kind.expectation + ", got nothing" : nil
    case .deviceID:
      return Topics.isValidDeviceID(value) ? nil : expected
    case .integer(let lo, let hi):
      guard let n = Int64(value), n >= lo, n <= hi else { return expected }
      return nil
    case .choice(let words):
      return words.contains(value) ? nil : expected
    }
  }

  private static func trimmed(_ text: Substring) -> String {
    var slice = text
    while let first = slice.first, first == " " || first == "\t" || first == "\r" {
      slice = slice.dropFirst()
    }
    while let last = slice.last, last == " " || last == "\t" || last == "\r" { slice = slice.dropLast() }
    return String(slice)
  }
}

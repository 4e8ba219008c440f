/// A command line split into positional words and `--options`.
///
/// Accepted forms: `--name value`, `--name=value`, and flags (`--json`) that take no
/// value. Which options take a value is declared by the caller, so that
/// `--config --json` is an error rather than a config file named `--json`.
public struct Arguments: Sendable {
  public private(set) var positional: [String] = []
  public private(set) var options: [String: String] = [:]
  public private(set) var flags: Set<String> = []

  /// - Parameters:
  ///   - words: the arguments after the program name.
  ///   - valued: option names (without `--`) that take a value.
  ///   - flags: option names that take none.
  /// - Throws: `ArgumentError` naming the unknown option or the missing value.
  public init(_ words: [String], valued: Set<String>, flags knownFlags: Set<String>)
    throws(ArgumentError)
  {
    var i = 0
    while i < words.count {
      let word = words[i]
      i += 1
      guard word.hasPrefix("--"), word.utf8.count > 2 else {
        positional.append(word)
        continue
      }
      var name = String(word.dropFirst(2))
      var inline: String? = nil
      if let eq = name.firstIndex(of: "=") {
        inline = String(name[name.index(after: eq)...])
        name = String(name[..<eq])
      }
      if valued.contains(name) {
        if let inline {
          options[name] = inline
        } else {
          guard i < words.count, !words[i].hasPrefix("--") else {
            throw ArgumentError("option --" + name + " needs a value")
          }
          options[name] = words[i]
          i += 1
        }
      } else if knownFlags.contains(name) {
        guard inline == nil else { throw ArgumentError("option --" + name + " takes no value") }
        flags.insert(name)
      } else {
        throw ArgumentError("unknown option --" + name)
      }
    }
  }

  /// The value of `--name`, if given.
  public func value(_ name: String) -> String? { options[name] }

  /// True when flag `--name` was given.
  public func has(_ name: String) -> Bool { flags.contains(name) }
}

/// A command line the program does not accept.
public struct ArgumentError: Error, CustomStringConvertible, Sendable {
  public let description: String
  public init(_ description: String) { self.description = description }
}

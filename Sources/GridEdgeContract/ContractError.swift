import SQLiteStore

/// A message that does not follow the contract, or a store failure while reading it.
public struct ContractError: Error, CustomStringConvertible {
  enum Kind {
    case notJSON
    case missingField(String)
    case badField(String, String)
    case store(SQLiteError)
  }

  let kind: Kind

  /// The payload is not valid JSON text.
  public static var notJSON: ContractError { ContractError(kind: .notJSON) }
  /// A required member is absent.
  public static func missingField(_ name: String) -> ContractError {
    ContractError(kind: .missingField(name))
  }
  /// A member has the wrong type or value; `why` says what was expected.
  public static func badField(_ name: String, _ why: String) -> ContractError {
    ContractError(kind: .badField(name, why))
  }
  /// The SQLite JSON functions failed.
  public static func store(_ error: SQLiteError) -> ContractError { ContractError(kind: .store(error)) }

  public var description: String {
    switch kind {
    case .notJSON: return "payload is not valid JSON"
    case .missingField(let name): return "member \"" + name + "\" is missing"
    case .badField(let name, let why): return "member \"" + name + "\" is invalid: " + why
    case .store(let error): return "JSON evaluation failed: " + error.description
    }
  }
}

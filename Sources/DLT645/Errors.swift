/// A malformed DL/T 645 frame: what was wrong and where.
///
/// Thrown by `FrameDecoder.next()` (the decoder has already skipped past the bad
/// bytes, so the next call continues with what follows) and by `Frame.init` when the
/// data field is too long.
public struct FrameError: Error, CustomStringConvertible, Sendable {
  /// Which rule the frame broke, for callers that count or test error kinds; the
  /// details are in `description`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private let rawValue: UInt8
    private init(_ rawValue: UInt8) { self.rawValue = rawValue }

    /// An address byte has a nibble that is neither a decimal digit nor the 0xA wildcard.
    public static let addressNotBCD = Code(1)
    /// The byte after the six address bytes is not the second 0x68.
    public static let secondStartMissing = Code(2)
    /// The checksum byte differs from the sum of the frame's bytes.
    public static let checksumMismatch = Code(3)
    /// The byte after the checksum is not 0x16.
    public static let endByteMissing = Code(4)
    /// The length byte disagrees with where the frame really ends.
    public static let lengthMismatch = Code(5)
    /// The input ended inside a frame, or a new frame started before it was complete.
    public static let truncated = Code(6)
    /// The data field is longer than the 255 bytes the length byte can count.
    public static let dataTooLong = Code(7)

    public var description: String {
      switch rawValue {
      case 1: return "addressNotBCD"
      case 2: return "secondStartMissing"
      case 3: return "checksumMismatch"
      case 4: return "endByteMissing"
      case 5: return "lengthMismatch"
      case 6: return "truncated"
      default: return "dataTooLong"
      }
    }
  }

  enum Kind: Sendable {
    case addressNotBCD(index: Int, byte: UInt8)
    case secondStartMissing(found: UInt8)
    case checksumMismatch(computed: UInt8, received: UInt8, dataLength: Int)
    case endByteMissing(found: UInt8, dataLength: Int)
    case lengthMismatch(declared: Int, actual: Int)
    case truncated(received: Int, expected: Int?)
    case cutOff(received: Int, expected: Int?)
    case dataTooLong(count: Int)
  }

  let kind: Kind

  /// Stream offset (bytes since the decoder was made or reset) of the frame's first
  /// 0x68; 0 for errors that do not come from a stream.
  public let offset: Int

  init(_ kind: Kind, offset: Int = 0) {
    self.kind = kind
    self.offset = offset
  }

  /// The rule that was broken.
  public var code: Code {
    switch kind {
    case .addressNotBCD: return .addressNotBCD
    case .secondStartMissing: return .secondStartMissing
    case .checksumMismatch: return .checksumMismatch
    case .endByteMissing: return .endByteMissing
    case .lengthMismatch: return .lengthMismatch
    case .truncated, .cutOff: return .truncated
    case .dataTooLong: return .dataTooLong
    }
  }

  /// A sentence naming what was wrong and where, e.g. "checksum mismatch in the frame at
  /// stream offset 4: computed 0x8A, received 0x8B (frame byte 18)".
  public var description: String {
    let at = "the frame at stream offset " + String(offset)
    switch kind {
    case .addressNotBCD(let index, let byte):
      return "address byte A" + String(index) + " (frame byte " + String(index + 1) + ") of " + at
        + " is " + Hex.byte(byte) + ": not BCD (each nibble must be 0-9, or A as a wildcard)"
    case .secondStartMissing(let found):
      return "frame byte 7 of " + at + " is " + Hex.byte(found)
        + ", expected the second start byte 0x68"
    case .checksumMismatch(let computed, let received, let dataLength):
      return "checksum mismatch in " + at + ": computed " + Hex.byte(computed) + ", received "
        + Hex.byte(received) + " (frame byte " + String(10 + dataLength) + ")"
    case .endByteMissing(let found, let dataLength):
      return "frame byte " + String(11 + dataLength) + " of " + at + " is " + Hex.byte(found)
        + ", expected the end byte 0x16 after " + String(dataLength) + " data bytes"
    case .lengthMismatch(let declared, let actual):
      return "length byte of " + at + " says " + String(declared)
        + " data bytes, but a complete frame (checksum and 0x16) ends after " + String(actual)
    case .truncated(let received, let expected):
      if let expected {
        return "input ended inside " + at + ": " + String(received) + " of " + String(expected)
          + " bytes received"
      }
      return "input ended inside " + at + ": " + String(received)
        + " bytes received, before the length byte"
    case .cutOff(let received, let expected):
      var text = at + " was cut off after " + String(received) + " bytes"
      if let expected { text += " (its length byte promised " + String(expected) + ")" }
      return text + ": a complete frame starts at stream offset " + String(offset + received)
    case .dataTooLong(let count):
      return "data field of " + String(count) + " bytes is longer than the 255 a frame can carry"
    }
  }
}

/// A well-formed frame that is not a valid request or reply: wrong direction, an
/// unsupported function, a data field of the wrong length or with a bad field.
public struct MessageError: Error, CustomStringConvertible, Sendable {
  /// Which rule the frame broke; the details are in `description`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private let rawValue: UInt8
    private init(_ rawValue: UInt8) { self.rawValue = rawValue }

    /// A reply where a request was expected, or the other way round.
    public static let wrongDirection = Code(1)
    /// A request with the abnormal (D6) or follow-up (D5) flag set, or an abnormal
    /// reply with the follow-up flag.
    public static let unexpectedFlags = Code(2)
    /// A function this codec does not handle (write, freeze, ...), or a reply to a
    /// function that has none (broadcast time).
    public static let unsupportedFunction = Code(3)
    /// The data field has the wrong number of bytes for the function.
    public static let unexpectedDataLength = Code(4)
    /// A broadcast-time request not sent to 99 99 99 99 99 99.
    public static let notBroadcast = Code(5)
    /// A field inside the data (a time, the control command, an address) is invalid.
    public static let invalidField = Code(6)

    public var description: String {
      switch rawValue {
      case 1: return "wrongDirection"
      case 2: return "unexpectedFlags"
      case 3: return "unsupportedFunction"
      case 4: return "unexpectedDataLength"
      case 5: return "notBroadcast"
      default: return "invalidField"
      }
    }
  }

  enum Kind: Sendable {
    case wrongDirection(control: UInt8, expectedReply: Bool)
    case unexpectedFlags(control: UInt8)
    case unsupportedFunction(control: UInt8)
    case unexpectedDataLength(control: UInt8, expected: String, actual: Int)
    case notBroadcast(address: String)
    case invalidField(control: UInt8, field: String, reason: String)
  }

  let kind: Kind

  init(_ kind: Kind) { self.kind = kind }

  /// The rule that was broken.
  public var code: Code {
    switch kind {
    case .wrongDirection: return .wrongDirection
    case .unexpectedFlags: return .unexpectedFlags
    case .unsupportedFunction: return .unsupportedFunction
    case .unexpectedDataLength: return .unexpectedDataLength
    case .notBroadcast: return .notBroadcast
    case .invalidField: return .invalidField
    }
  }

  /// A sentence naming the control code and what was wrong, e.g. "frame with control
  /// 0x11 (read): data field must be 4 bytes (the data identifier), got 6".
  public var description: String {
    switch kind {
    case .wrongDirection(let control, let expectedReply):
      return Self.frame(control)
        + (expectedReply
          ? " is a request (D7 = 0), expected a reply" : " is a reply (D7 = 1), expected a request")
    case .unexpectedFlags(let control):
      return Self.frame(control) + " has the abnormal (D6) or follow-up (D5) flag where it is not allowed"
    case .unsupportedFunction(let control):
      return Self.frame(control) + " has a function this codec does not handle"
    case .unexpectedDataLength(let control, let expected, let actual):
      return Self.frame(control) + ": data field must be " + expected + ", got " + String(actual)
        + (actual == 1 ? " byte" : " bytes")
    case .notBroadcast(let address):
      return "broadcast time (0x08) must be sent to 999999999999, not " + address
    case .invalidField(let control, let field, let reason):
      return Self.frame(control) + ": " + field + " is invalid: " + reason
    }
  }

  private static func frame(_ control: UInt8) -> String {
    "frame with control " + Hex.byte(control) + " (" + Control(rawValue: control).functionName + ")"
  }
}

/// A data value that does not fit its DL/T 645 format: wrong length, a nibble that is
/// not a digit, a field out of range, or a value too large to encode.
public struct ValueError: Error, CustomStringConvertible, Sendable {
  /// Which rule the value broke; the details are in `description`.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private let rawValue: UInt8
    private init(_ rawValue: UInt8) { self.rawValue = rawValue }

    /// The data has the wrong number of bytes for the format.
    public static let wrongLength = Code(1)
    /// A nibble is not a decimal digit.
    public static let notBCD = Code(2)
    /// A field (month, hour, ...) is outside its range.
    public static let outOfRange = Code(3)
    /// The data identifier has no known format.
    public static let unknownIdentifier = Code(4)
    /// A value does not fit in the format when encoding, or does not match it.
    public static let notEncodable = Code(5)

    public var description: String {
      switch rawValue {
      case 1: return "wrongLength"
      case 2: return "notBCD"
      case 3: return "outOfRange"
      case 4: return "unknownIdentifier"
      default: return "notEncodable"
      }
    }
  }

  enum Kind: Sendable {
    case wrongLength(format: String, expected: String, actual: Int)
    case notBCD(format: String, index: Int, byte: UInt8)
    case outOfRange(field: String, value: Int, range: ClosedRange<Int>)
    case unknownIdentifier(String)
    case notEncodable(format: String, reason: String)
  }

  let kind: Kind

  init(_ kind: Kind) { self.kind = kind }

  /// The rule that was broken.
  public var code: Code {
    switch kind {
    case .wrongLength: return .wrongLength
    case .notBCD: return .notBCD
    case .outOfRange: return .outOfRange
    case .unknownIdentifier: return .unknownIdentifier
    case .notEncodable: return .notEncodable
    }
  }

  /// A sentence naming the format and what was wrong, e.g. "XXX.X V value: data byte 1
  /// is 0x1A, not BCD".
  public var description: String {
    switch kind {
    case .wrongLength(let format, let expected, let actual):
      return format + " value must be " + expected + ", got " + String(actual)
        + (actual == 1 ? " byte" : " bytes")
    case .notBCD(let format, let index, let byte):
      return format + " value: data byte " + String(index) + " is " + Hex.byte(byte) + ", not BCD"
    case .outOfRange(let field, let value, let range):
      return field + " " + String(value) + " is outside " + String(range.lowerBound) + "..."
        + String(range.upperBound)
    case .unknownIdentifier(let identifier):
      return "data identifier " + identifier + " has no known format"
    case .notEncodable(let format, let reason):
      return format + " value cannot be encoded: " + reason
    }
  }
}

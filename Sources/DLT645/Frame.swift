/// One DL/T 645-2007 frame:
/// `68 A0…A5 68 C L DATA CS 16`, with 0x33 added to every data byte on the wire and
/// CS the sum modulo 256 from the first 0x68 through the last data byte.
///
/// `data` is the plain data field (0x33 already removed); `encoded(wakeUpBytes:)` and
/// `FrameDecoder` deal with the wire form.
public struct Frame: Hashable, Sendable {
  /// The most data bytes the length byte L can count.
  public static let maxDataLength = 255
  /// The longest frame on the wire, without wake-up bytes: 68, six address bytes, 68,
  /// C, L, 255 data bytes, CS, 16.
  public static let maxEncodedLength = 12 + maxDataLength

  /// The meter address (A0…A5).
  public let address: Address
  /// The control byte C.
  public let control: Control
  /// The data field, plain (0x33 removed); at most 255 bytes.
  public let data: [UInt8]

  /// A frame.
  /// - Throws: `FrameError` (`dataTooLong`) when `data` has more than 255 bytes.
  public init(address: Address, control: Control, data: [UInt8] = []) throws(FrameError) {
    guard data.count <= Self.maxDataLength else { throw FrameError(.dataTooLong(count: data.count)) }
    self.address = address
    self.control = control
    self.data = data
  }

  /// A frame whose data is known to fit (the codec's own fixed-size fields).
  init(address: Address, control: Control, fixedData data: [UInt8]) {
    precondition(data.count <= Self.maxDataLength)
    self.address = address
    self.control = control
    self.data = data
  }

  /// The frame on the wire.
  /// - Parameter wakeUpBytes: how many 0xFE bytes to send first (masters usually send
  ///   4 to wake the receiver up; meters send 0 to 4). Negative counts as 0.
  /// - Returns: `wakeUpBytes` × FE, then 68 A0…A5 68 C L DATA+33 CS 16.
  public func encoded(wakeUpBytes: Int = 0) -> [UInt8] {
    let wakeUp = max(0, wakeUpBytes)
    var out: [UInt8] = []
    out.reserveCapacity(wakeUp + 12 + data.count)
    for _ in 0..<wakeUp { out.append(0xFE) }
    let start = out.count
    out.append(0x68)
    out.append(contentsOf: address.wireBytes)
    out.append(0x68)
    out.append(control.rawValue)
    out.append(UInt8(data.count))
    for byte in data { out.append(byte &+ DataOffset.value) }
    out.append(dlt645Checksum(out[start...]))
    out.append(0x16)
    return out
  }
}

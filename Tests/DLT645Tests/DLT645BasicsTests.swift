import Testing

@testable import DLT645

@Suite struct BCDTests {
  @Test func decodesLeastSignificantByteFirst() {
    // 00 01 00 00 register value 12345.67 kWh is sent as 67 45 23 01.
    #expect(BCD.decodeLittleEndian([0x67, 0x45, 0x23, 0x01][...]) == 1_234_567)
    #expect(BCD.decodeLittleEndian([][...]) == 0)
    #expect(BCD.decodeLittleEndian([0x99, 0x99, 0x99, 0x99, 0x99, 0x99][...]) == 999_999_999_999)
  }

  @Test func rejectsNonDecimalNibbles() {
    #expect(BCD.decodeLittleEndian([0x0A][...]) == nil)
    #expect(BCD.decodeLittleEndian([0x12, 0xA0][...]) == nil)
    #expect(BCD.decodeLittleEndian([0xAA, 0xAA][...]) == nil)
  }

  @Test func encodesAndRoundTrips() {
    #expect(BCD.encodeLittleEndian(1_234_567, count: 4) == [0x67, 0x45, 0x23, 0x01])
    #expect(BCD.encodeLittleEndian(0, count: 2) == [0x00, 0x00])
    #expect(BCD.encodeLittleEndian(9999, count: 2) == [0x99, 0x99])
    #expect(BCD.encodeLittleEndian(10000, count: 2) == nil)
    for v: UInt64 in [0, 1, 9, 10, 99, 100, 123_456_789_012] {
      #expect(BCD.decodeLittleEndian(BCD.encodeLittleEndian(v, count: 6)![...]) == v)
    }
  }

  @Test func dataOffsetWrapsModulo256() {
    #expect(DataOffset.apply([0x00, 0xCC, 0xCD, 0xFF]) == [0x33, 0xFF, 0x00, 0x32])
    #expect(DataOffset.remove([0x33, 0xFF, 0x00, 0x32][...]) == [0x00, 0xCC, 0xCD, 0xFF])
  }

  @Test func checksumIsSumModulo256() {
    #expect(dlt645Checksum([][...]) == 0)
    #expect(dlt645Checksum([0x68, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x68, 0x13, 0x00][...]) == 0xDF)
    #expect(dlt645Checksum([0xFF, 0x02][...]) == 0x01)
  }
}

@Suite struct SignedBCDTests {
  @Test func signIsBitD7OfTheMostSignificantByte() {
    #expect(BCD.decodeSignedLittleEndian([0x00, 0x15, 0x80][...]) == -1500)
    #expect(BCD.decodeSignedLittleEndian([0x00, 0x15, 0x00][...]) == 1500)
    #expect(BCD.decodeSignedLittleEndian([][...]) == nil)
    #expect(BCD.decodeSignedLittleEndian([0x0A, 0x00, 0x80][...]) == nil)
    #expect(BCD.encodeSignedLittleEndian(-799_999, count: 3) == [0x99, 0x99, 0xF9])
    #expect(BCD.encodeSignedLittleEndian(800_000, count: 3) == nil)
    #expect(BCD.encodeSignedLittleEndian(1, count: 0) == nil)
  }

  @Test func longInputsDoNotOverflow() {
    #expect(BCD.decodeLittleEndian([UInt8](repeating: 0x99, count: 9)[...]) == 999_999_999_999_999_999)
    #expect(BCD.decodeLittleEndian([UInt8](repeating: 0x99, count: 10)[...]) == nil)
    #expect(BCD.decodeSignedLittleEndian([UInt8](repeating: 0x99, count: 10)[...]) == nil)
  }

  @Test func singleBytes() {
    #expect(BCD.decodeByte(0x59) == 59)
    #expect(BCD.decodeByte(0x5A) == nil)
    #expect(BCD.decodeByte(0xA0) == nil)
    #expect(BCD.encodeByte(0) == 0x00)
    #expect(BCD.encodeByte(99) == 0x99)
    #expect(BCD.firstInvalidIndex([0x12, 0x3F, 0xA0]) == 1)
    #expect(BCD.firstInvalidIndex([0x12]) == nil)
  }
}

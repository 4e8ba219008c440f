import Testing

@testable import DLT645

@Suite struct AddressTests {
  @Test func parsesTwelveDigitsAndSendsThemLeastSignificantByteFirst() throws {
    let address = try #require(Address("000012345678"))
    #expect(address.rawValue == 0x0000_1234_5678)
    #expect(address.wireBytes == [0x78, 0x56, 0x34, 0x12, 0x00, 0x00])
    #expect(address.number == 12_345_678)
    #expect(address.description == "000012345678")
    #expect(Address(wireBytes: [0x78, 0x56, 0x34, 0x12, 0x00, 0x00]) == address)
  }

  @Test func padsShortTextWithLeadingZeros() {
    #expect(Address("12345678") == Address("000012345678"))
    #expect(Address("1")?.description == "000000000001")
  }

  @Test func rejectsEmptyLongAndNonDigitText() {
    #expect(Address("") == nil)
    #expect(Address("0000123456789") == nil)
    #expect(Address("00001234567B") == nil)
    #expect(Address("0000 1234567") == nil)
  }

  @Test func numbersAtTheBoundaries() {
    #expect(Address(number: 0)?.description == "000000000000")
    #expect(Address(number: 999_999_999_999) == .broadcast)
    #expect(Address(number: 1_000_000_000_000) == nil)
  }

  @Test func rawValuesAreCheckedNibbleByNibble() {
    #expect(Address(rawValue: 0xAAAA_AAAA_AAAA) == .wildcard)
    #expect(Address(rawValue: 0x0000_0000_000B) == nil)
    #expect(Address(rawValue: 0x1_0000_0000_0000) == nil)
  }

  @Test func wireBytesMustBeSixBCDOrWildcardBytes() {
    #expect(Address(wireBytes: [0x78, 0x56, 0x34, 0x12, 0x00]) == nil)
    #expect(Address(wireBytes: [0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00]) == nil)
    #expect(Address(wireBytes: [0x78, 0x56, 0x3B, 0x12, 0x00, 0x00]) == nil)
    #expect(Address(wireBytes: [0x7A, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA])?.description == "AAAAAAAAAA7A")
  }

  @Test func broadcastAndWildcard() {
    #expect(Address.broadcast.description == "999999999999")
    #expect(Address.broadcast.isBroadcast)
    #expect(!Address.broadcast.hasWildcard)
    #expect(Address.wildcard.hasWildcard)
    #expect(Address.wildcard.number == nil)
    #expect(Address.wildcard.wireBytes == [UInt8](repeating: 0xAA, count: 6))
  }

  @Test func wildcardNibblesAndBytesMatchAnyDigit() throws {
    let meterAddress = try #require(Address("000012345678"))
    #expect(Address.wildcard.matches(meterAddress))
    #expect(meterAddress.matches(meterAddress))
    // Shortened addressing: low bytes given, high bytes AA.
    #expect(Address("AAAAAA345678")!.matches(meterAddress))
    #expect(Address("AAAAAA345679")!.matches(meterAddress) == false)
    // A single wildcard nibble.
    #expect(Address("00001234567A")!.matches(meterAddress))
    // Broadcast is not a pattern.
    #expect(!Address.broadcast.matches(meterAddress))
  }
}

import Testing
@Test func placeholderRuntimeTests() { #expect(1 + 1 == 2) }

import Testing
@Test func placeholderMosquittoClientTests() { #expect(1 + 1 == 2) }

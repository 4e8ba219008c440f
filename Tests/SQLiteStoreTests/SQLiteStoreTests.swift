import Testing
@Test func placeholderSQLiteStoreTests() { #expect(1 + 1 == 2) }

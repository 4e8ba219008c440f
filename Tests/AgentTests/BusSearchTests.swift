import DLT645
import Foundation
import Testing

@testable import GridEdgeAgent

/// The bus search's pattern walk against a model bus: a probe is answered by the one
/// meter it matches, collides when several do, gets nothing when none does.
@Suite struct BusSearchTests {
  private func search(_ addresses: [Address]) -> BusSearch {
    var search = BusSearch()
    var asked = Set<UInt64>()
    while let pattern = search.next() {
      #expect(asked.insert(pattern.rawValue).inserted, "pattern \(pattern) asked twice")
      let matching = addresses.filter { pattern.matches($0) }
      search.record(matching.isEmpty ? .none : matching.count == 1 ? .one(matching[0]) : .several)
    }
    #expect(search.isFinished)
    return search
  }

  @Test func findsEveryMeterOfAConsecutiveRangeWithAboutTenProbesPerCollidingPattern() {
    let addresses = (1...200).map { Address(number: 10_000_000 + UInt64($0))! } + [Address("900000000001")!]
    let result = search(addresses)
    #expect(Set(result.found) == Set(addresses))
    #expect(result.found.count == addresses.count)
    // 10 one-digit patterns collide; two-digit: 100, of which those with 2+ meters go on.
    #expect(result.probes < 1_500, "\(result.probes) probes")
    #expect(result.duplicates.isEmpty)
  }

  @Test func findsScatteredAddressesAndNothingOnAnEmptyBus() {
    let addresses = ["000000000007", "123456789012", "123456789013", "999999999998", "500000000007"].map {
      Address($0)!
    }
    #expect(Set(search(addresses).found) == Set(addresses))
    let empty = search([])
    #expect(empty.found.isEmpty)
    #expect(empty.probes == 10)
  }

  @Test func twoMetersWithOneAddressAreReportedAsADuplicate() {
    let twin = Address("000000001234")!
    var search = BusSearch()
    while let pattern = search.next() {
      // Both twins answer every pattern that fits them: they collide down to 12 digits.
      search.record(pattern.matches(twin) ? .several : .none)
    }
    #expect(search.found.isEmpty)
    #expect(search.duplicates == [twin])
    #expect(search.probes == 120)
  }

  @Test func aProbeNotAnsweredBecauseTheLineFailedIsAskedAgain() {
    var search = BusSearch()
    let first = search.next()!
    #expect(search.next() == nil, "a second probe while one is out")
    search.retry()
    #expect(search.next() == first)
    #expect(search.probes == 1)
  }

  @Test func aReplyFromAnAddressThePatternDoesNotMatchIsNotTaken() {
    var search = BusSearch()
    let pattern = search.next()!
    let other = Address(rawValue: (pattern.rawValue & ~0xF) | ((pattern.rawValue & 0xF) + 1) % 10)!
    search.record(.one(other))
    #expect(search.found.isEmpty)
  }
}

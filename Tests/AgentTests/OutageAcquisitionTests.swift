import DLT645
import Foundation
import GridEdgeCore
import Testing

@testable import GridEdgeAgent

/// Acquisition feeding `Outages` over a fake gateway: the area meter's voltages read
/// first in every cycle, and no missing-read alarm for meters without supply.
@Suite(.serialized) struct OutageAcquisitionTests {
  @Test func theAreaMeterIsReadFirstAndALostPhaseSilencesNoAlarm() throws {
    let area = FakeMeter("900000000001")
    let customers = ["000000000001", "000000000002", "000000000003", "000000000004"].map { FakeMeter($0) }
    var settings = quietSettings()
    settings.silentCycles = 1
    let h = try AcquisitionHarness(
      "outage-acq", meters: customers + [area], start: chinaTime(10, 7), settings: settings)
    _ = try Archive.apply(
      body: OutageEndToEndTests.archive(customers: 4), db: h.fixture.store.db, now: chinaTime(10, 7))
    // (Silent shares never make an outage here: only the area meter's voltages.)
    var outageSettings = Outages.Settings()
    outageSettings.silentMeters = 10
    let outages = try Outages(store: h.fixture.store, outbox: h.fixture.outbox, settings: outageSettings)
    h.acquisition.outages = outages
    #expect(h.runCycle(chinaTime(10, 0)))
    // The area meter is listed last, asked first, for its voltages first.
    #expect(h.line.requests.first?.frame.address == area.address)
    #expect(h.reads(area).first == .voltageBlock)
    #expect(try h.events("outage.start").isEmpty)

    /// Phase A without supply or with it (meters 1 and 4 are on it), then the cycle at
    /// 10:mm.
    func phaseA(lost: Bool, cycleAt minute: Int64) -> Bool {
      h.line.with {
        area.voltages = [lost ? 0 : 2_200, 2_210, 2_190]
        customers[0].silent = lost
        customers[3].silent = lost
      }
      h.jump(to: chinaTime(10, minute, 1))
      return h.runCycle(chinaTime(10, minute))
    }
    #expect(phaseA(lost: true, cycleAt: 15))
    let start = try #require(try h.events("outage.start").first)
    #expect(start["phases"] as? String == "A")
    #expect(start["customers"] as? [String] == ["C-1", "C-4"])
    let alarms = try h.events("archive.silent") + h.events("meter.no_answer")
    #expect(alarms.isEmpty, "\(alarms)")

    // A meter silent on a phase with supply is alarmed as before.
    h.line.with { customers[1].silent = true }
    h.jump(to: chinaTime(10, 30, 1))
    #expect(h.runCycle(chinaTime(10, 30)))
    #expect(try h.events("archive.silent").map { $0["meter"] as? String } == ["000000000002"])

    // Back: the end, with the duration from the first detection.
    #expect(phaseA(lost: false, cycleAt: 45))
    let end = try #require(try h.events("outage.end").first)
    #expect(end["start"] as? NSNumber == start["start"] as? NSNumber)
    let duration = try #require((end["duration_s"] as? NSNumber)?.int64Value)
    #expect(duration >= 29 * 60 && duration <= 31 * 60, "\(duration)")
  }

  /// Meters dead for long (silent since before the last `silent_cycles` cycles, no
  /// outage) are no evidence of a new outage: two meters going silent beside four
  /// long-dead ones are two of six, not six of ten. A real outage is still found, and
  /// its meters keep counting while it lasts.
  @Test func longDeadMetersDoNotMakeAnOutageOfTwoSilentOnes() throws {
    let area = FakeMeter("900000000001")
    let customers = (1...10).map { FakeMeter(String(format: "%012d", $0)) }
    var settings = quietSettings()
    settings.silentCycles = 2
    let h = try AcquisitionHarness(
      "outage-dead", meters: customers + [area], start: chinaTime(10, 7), settings: settings,
      busSettings: fastSettings(timeout: 60, retries: 0, gap: 5))
    _ = try Archive.apply(
      body: OutageEndToEndTests.archive(customers: 10), db: h.fixture.store.db, now: chinaTime(10, 7))
    let outages = try Outages(store: h.fixture.store, outbox: h.fixture.outbox, settings: Outages.Settings())
    h.acquisition.outages = outages
    var minute: Int64 = 0
    func cycle(silent: [Int]) -> Bool {
      h.line.with { for (i, meter) in customers.enumerated() { meter.silent = silent.contains(i + 1) } }
      minute += 15
      h.jump(to: chinaTime(10, minute, 1))
      return h.runCycle(chinaTime(10, minute))
    }
    #expect(cycle(silent: []))
    // Meters 1-4 die one by one over the morning, each under the threshold.
    #expect(cycle(silent: [1]))
    #expect(cycle(silent: [1, 2]))
    #expect(cycle(silent: [1, 2, 3]))
    #expect(cycle(silent: [1, 2, 3, 4]))
    for _ in 0..<3 { #expect(cycle(silent: [1, 2, 3, 4])) }
    #expect(try h.events("outage.start").isEmpty)
    #expect(Set(try h.events("archive.silent").compactMap { $0["meter"] as? String }).count == 4)
    // Two more go silent: 2 of the 6 alive, under half.
    #expect(cycle(silent: [1, 2, 3, 4, 7, 8]))
    #expect(
      try h.events("outage.start").isEmpty, "two silent meters beside four long-dead ones made an outage")
    // A branch fuse blows: meters 5-10 all silent at once, an outage of those six.
    #expect(cycle(silent: Array(1...10)))
    let start = try #require(try h.events("outage.start").first)
    #expect(Set(start["customers"] as? [String] ?? []) == Set((5...10).map { "C-\($0)" }), "\(start)")
    // It lasts beyond `silent_cycles` cycles: its meters still count.
    for _ in 0..<3 { #expect(cycle(silent: Array(1...10))) }
    #expect(try h.events("outage.end").isEmpty)
    #expect(cycle(silent: [1, 2, 3, 4]))
    #expect(try h.events("outage.end").count == 1)
  }
}

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
}

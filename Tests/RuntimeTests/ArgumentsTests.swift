import Testing

@testable import Runtime

@Suite struct ArgumentsTests {
  @Test func valuedOptionsTakeTheNextWordOrAnInlineValue() throws {
    let a = try Arguments(
      ["run", "--config", "a.conf", "--json", "--db=x.db"], valued: ["config", "db"], flags: ["json"])
    #expect(a.positional == ["run"])
    #expect(a.value("config") == "a.conf")
    #expect(a.value("db") == "x.db")
    #expect(a.has("json"))
    #expect(!a.has("help"))
  }

  @Test func unknownOptionIsRejectedByName() {
    #expect(throws: ArgumentError.self) {
      try Arguments(["--colour"], valued: [], flags: ["json"])
    }
    do {
      _ = try Arguments(["--colour"], valued: [], flags: [])
      Issue.record("expected an error")
    } catch {
      #expect(error.description == "unknown option --colour")
    }
  }

  @Test func valuedOptionWithoutValueIsRejected() {
    do {
      _ = try Arguments(["--config", "--json"], valued: ["config"], flags: ["json"])
      Issue.record("expected an error")
    } catch {
      #expect(error.description == "option --config needs a value")
    }
    #expect(throws: ArgumentError.self) { try Arguments(["--config"], valued: ["config"], flags: []) }
  }

  @Test func flagWithInlineValueIsRejected() {
    #expect(throws: ArgumentError.self) { try Arguments(["--json=yes"], valued: [], flags: ["json"]) }
  }
}

@Suite struct BackoffTests {
  @Test func ceilingDoublesFromBaseUpToCap() {
    var b = Backoff(baseMilliseconds: 1000, capMilliseconds: 5000)
    var ceilings: [Int64] = []
    for _ in 0..<6 {
      ceilings.append(b.currentCeiling)
      _ = b.nextDelay(random: { $0 })
    }
    #expect(ceilings == [1000, 2000, 4000, 5000, 5000, 5000])
  }

  @Test func delayIsDrawnBetweenZeroAndCeiling() {
    var b = Backoff(baseMilliseconds: 100, capMilliseconds: 100_000)
    for _ in 0..<200 {
      let ceiling = b.currentCeiling
      let d = b.nextDelay()
      #expect(d >= 0 && d <= ceiling)
    }
  }

  @Test func resetStartsAgainFromBase() {
    var b = Backoff(baseMilliseconds: 100, capMilliseconds: 10_000)
    for _ in 0..<5 { _ = b.nextDelay(random: { _ in 0 }) }
    #expect(b.currentCeiling == 3200)
    b.reset()
    #expect(b.currentCeiling == 100)
  }

  @Test func hugeAttemptCountsDoNotOverflow() {
    var b = Backoff(baseMilliseconds: 1, capMilliseconds: Int64.max / 2)
    for _ in 0..<200 { _ = b.nextDelay(random: { _ in 0 }) }
    #expect(b.currentCeiling <= Int64.max / 2)
  }
}

@Suite struct TimerQueueTests {
  @Test func dueTimersComeOutEarliestFirstAndOnce() {
    var q = TimerQueue<String>()
    q.schedule("b", at: 200)
    q.schedule("a", at: 100)
    q.schedule("c", at: 300)
    #expect(q.nextDeadline == 100)
    #expect(q.takeDue(now: 250) == ["a", "b"])
    #expect(q.takeDue(now: 250) == [])
    #expect(q.isScheduled("c"))
  }

  @Test func rescheduleMovesAndCancelRemoves() {
    var q = TimerQueue<Int>()
    q.schedule(1, at: 100)
    q.schedule(1, at: 500)
    #expect(q.takeDue(now: 200) == [])
    q.cancel(1)
    #expect(q.nextDeadline == nil)
  }

  @Test func pollTimeoutIsClampedToZeroAndLimit() {
    var q = TimerQueue<Int>()
    #expect(q.timeout(now: 0, limit: 1000) == 1000)
    q.schedule(1, at: 250)
    #expect(q.timeout(now: 100, limit: 1000) == 150)
    #expect(q.timeout(now: 400, limit: 1000) == 0)
    #expect(q.timeout(now: 0, limit: 100) == 100)
  }
}

@Suite struct ClockAndTextTests {
  @Test func utcFormattingOfKnownInstants() {
    #expect(formatUTC(milliseconds: 0) == "1970-01-01T00:00:00Z")
    #expect(formatUTC(milliseconds: 1_767_225_600_000) == "2026-01-01T00:00:00Z")
    #expect(formatUTC(milliseconds: 951_825_599_999) == "2000-02-29T11:59:59Z")
  }

  @Test func hexStringOfBytes() {
    #expect(hexString([]) == "")
    #expect(hexString([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
  }

  @Test func secureRandomGivesRequestedLengthAndVaries() {
    #expect(SecureRandom.bytes(16).count == 16)
    #expect(SecureRandom.bytes(16) != SecureRandom.bytes(16))
  }

  @Test func logLevelsParseAndOrder() {
    #expect(LogLevel(name: "warn") == .warn)
    #expect(LogLevel(name: "loud") == nil)
    #expect(LogLevel.debug < LogLevel.error)
  }
}

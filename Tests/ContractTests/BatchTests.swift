import Foundation
import SQLiteStore
import Testing

@testable import GridEdgeContract

@Suite struct BatchHeaderTests {
  let db = try! Connection(path: ":memory:")

  private func decode(_ text: String) throws -> BatchHeader {
    try BatchHeader.decode(Array(text.utf8), db)
  }

  private func error(_ text: String) -> String? {
    do {
      _ = try decode(text)
      return nil
    } catch {
      return "\(error)"
    }
  }

  @Test func validReadingsBatchDecodes() throws {
    let header = try decode(
      #"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":7,"class":"readings","records":[{"meter":"000000000001","di":"00010000","ts":1700000000000,"v":1234}]}"#
    )
    #expect(
      header
        == BatchHeader(device: "TA-1", store: "0123456789abcdef", seq: 7, uplink: .readings, recordCount: 1))
  }

  @Test func emptyRecordsArrayIsAValidBatch() throws {
    let header = try decode(
      #"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":1,"class":"events","records":[]}"#)
    #expect(header.recordCount == 0)
  }

  @Test func eachMalformedMemberIsNamed() {
    let base = #""dev":"TA-1","store":"0123456789abcdef","seq":1,"class":"events","records":[]"#
    #expect(error("not json") == "payload is not valid JSON")
    #expect(error("[1,2]") == "payload is not valid JSON")
    #expect(error("{" + base + "}") == #"member "v" is missing"#)
    #expect(error(#"{"v":2,"# + base + "}") == #"member "v" is invalid: expected 1"#)
    #expect(
      error(#"{"v":1,"dev":"TA/1","store":"0123456789abcdef","seq":1,"class":"events","records":[]}"#)
        == #"member "dev" is invalid: not a device id"#)
    #expect(
      error(#"{"v":1,"dev":"TA-1","store":"0123456789ABCDEF","seq":1,"class":"events","records":[]}"#)
        == #"member "store" is invalid: expected 16 lowercase hex digits"#)
    #expect(
      error(#"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":0,"class":"events","records":[]}"#)
        == #"member "seq" is invalid: expected a positive integer"#)
    #expect(
      error(#"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":1.5,"class":"events","records":[]}"#)
        == #"member "seq" is invalid: expected a positive integer"#)
    #expect(
      error(#"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":1,"class":"gossip","records":[]}"#)
        == #"member "class" is invalid: unknown class "gossip""#)
    #expect(
      error(#"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":1,"class":"events","records":{}}"#)
        == #"member "records" is invalid: expected an array"#)
    #expect(
      error(
        #"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":1,"class":"events","records":[{"id":"a"},3]}"#)
        == #"member "records[1]" is invalid: expected an object"#)
  }

  @Test func recordsWithoutTheirNaturalKeyAreRefused() {
    #expect(
      error(
        #"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":1,"class":"readings","records":[{"meter":"1","di":"00010000","ts":"late"}]}"#
      ) == #"member "records[0]" is invalid: a reading needs "meter" (text), "di" (text) and "ts" (integer)"#)
    #expect(
      error(
        #"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":1,"class":"ledger","records":[{"id":5}]}"#)
        == #"member "records[0]" is invalid: a record needs "id" (text)"#)
  }

  /// A NUL in a record would cut its strings short in SQLite's JSON functions, so two
  /// records differing after it would share a natural key at HQ and one be dropped as
  /// a duplicate; invalid UTF-8 would be stored altered. The agent never sends either
  /// (it refuses them on input); HQ refuses such a batch, naming why.
  @Test func nulAndInvalidUTF8InRecordsAreRefused() throws {
    let head = #"{"v":1,"dev":"TA-1","store":"0123456789abcdef","seq":1,"class":"readings","records":["#
    func readings(_ meters: [String]) -> String {
      head
        + meters.map { #"{"meter":"\#($0)","di":"00010000","ts":1700000000000,"v":1}"# }
        .joined(separator: ",") + "]}"
    }
    let twins = readings([#"000000000001\u0000a"#, #"000000000001\u0000b"#])
    // Why: SQLite reads both meters as the same text.
    let keys = try db.query(
      "SELECT DISTINCT json_extract(value, '$.meter') FROM json_each(?1, '$.records')", [.text(twins)])
    #expect(keys.count == 1)
    #expect(error(twins)?.contains("U+0000") == true, "\(String(describing: error(twins)))")
    #expect(error(readings([#"000000000001\u0000"#])) != nil)
    #expect(error(readings([#"000000000001\ud800"#]))?.contains("surrogate") == true)
    // An escaped backslash before "u0000" is text, not a NUL.
    #expect(try decode(readings([#"000000000001\\u0000"#])).recordCount == 1)

    func rawError(_ bytes: [UInt8]) -> String? {
      do {
        _ = try BatchHeader.decode(bytes, db)
        return nil
      } catch {
        return error.description
      }
    }
    var raw = Array(readings(["000000000001"]).utf8)
    let at = raw.firstIndex(of: UInt8(ascii: "1"))!
    raw[at] = 0
    #expect(rawError(raw) == #"member "(payload)" is invalid: contains a NUL byte"#)
    raw[at] = 0xFF
    #expect(rawError(raw) == #"member "(payload)" is invalid: is not valid UTF-8"#)
  }

  @Test func oversizedPayloadIsRefusedBeforeParsing() {
    let big = [UInt8](repeating: 0x20, count: BatchHeader.maximumBytes + 1)
    #expect(throws: ContractError.self) { try BatchHeader.decode(big, db) }
  }
}

@Suite struct AckTests {
  let db = try! Connection(path: ":memory:")

  @Test func seqsMergeIntoSortedRanges() {
    let ack = Ack(store: "0123456789abcdef", seqs: [5, 3, 4, 9, 1, 4, 10])
    #expect(ack.ranges == [1...1, 3...5, 9...10])
    #expect(
      String(decoding: ack.encode(), as: UTF8.self)
        == #"{"store":"0123456789abcdef","seq":[[1,1],[3,5],[9,10]]}"#)
  }

  @Test func encodedAckDecodesToTheSameRanges() throws {
    let ack = Ack(store: "00000000000000ff", ranges: [1...100, 200...200])
    #expect(try Ack.decode(ack.encode(), db) == ack)
  }

  @Test func malformedAcksAreRefusedWithTheMemberAtFault() {
    func error(_ text: String) -> String? {
      do {
        _ = try Ack.decode(Array(text.utf8), db)
        return nil
      } catch {
        return "\(error)"
      }
    }
    #expect(error("") == "payload is not valid JSON")
    #expect(error(#"{"seq":[[1,2]]}"#) == #"member "store" is missing"#)
    #expect(
      error(#"{"store":"x","seq":[[1,2]]}"#)
        == #"member "store" is invalid: expected 16 lowercase hex digits"#)
    #expect(error(#"{"store":"0123456789abcdef"}"#) == #"member "seq" is missing"#)
    #expect(
      error(#"{"store":"0123456789abcdef","seq":[[2,1]]}"#)
        == #"member "seq[0]" is invalid: expected 1 <= from <= to"#)
    #expect(
      error(#"{"store":"0123456789abcdef","seq":[[1,2],[3]]}"#)
        == #"member "seq[1]" is invalid: expected [from, to] with two integers"#)
    #expect(
      error(#"{"store":"0123456789abcdef","seq":[[1,"2"]]}"#)
        == #"member "seq[0]" is invalid: expected [from, to] with two integers"#)
    #expect(error(#"{"store":"0123456789abcdef","seq":[]}"#) == nil)
  }
}

import CMosquitto

/// Checks an MQTT topic name for publishing: 1–65535 bytes of valid UTF-8 with no NUL
/// or control characters and no wildcards (`+`, `#`).
/// Wraps `mosquitto_validate_utf8` and `mosquitto_pub_topic_check2`.
public func isValidPublishTopic(_ topic: String) -> Bool {
  withTerminatedUTF8(topic) { chars, count in
    count > 0 && count <= 65_535
      && mosquitto_validate_utf8(chars, Int32(count)) == MosquittoError.success
      && mosquitto_pub_topic_check2(chars, count) == MosquittoError.success
  }
}

/// Checks an MQTT topic filter for subscribing: 1–65535 bytes of valid UTF-8, `+` only
/// as a whole level, `#` only as the whole last level (`$share/<group>/<filter>` is
/// accepted). Wraps `mosquitto_validate_utf8` and `mosquitto_sub_topic_check2`.
public func isValidSubscriptionFilter(_ filter: String) -> Bool {
  withTerminatedUTF8(filter) { chars, count in
    count > 0 && count <= 65_535
      && mosquitto_validate_utf8(chars, Int32(count)) == MosquittoError.success
      && mosquitto_sub_topic_check2(chars, count) == MosquittoError.success
  }
}

/// True when `topic` matches the subscription `filter` (`mosquitto_topic_matches_sub`);
/// false when either is invalid.
public func topic(_ topic: String, matchesFilter filter: String) -> Bool {
  if topic.utf8.contains(0) || filter.utf8.contains(0) { return false }
  var result = false
  let rc = topic.withCString { t in
    filter.withCString { f in mosquitto_topic_matches_sub(f, t, &result) }
  }
  return rc == MosquittoError.success && result
}

/// Calls `body` with the string's UTF-8 bytes followed by a NUL (libmosquitto 2.0's
/// `*2` functions take a length but some still read up to the terminator) and the
/// byte count without it. Embedded NULs stay in and are counted, so they are seen.
private func withTerminatedUTF8<R>(_ string: String, _ body: (UnsafePointer<CChar>, Int) -> R) -> R {
  var bytes = Array(string.utf8)
  let count = bytes.count
  bytes.append(0)
  return bytes.withUnsafeBufferPointer { buffer in
    buffer.withMemoryRebound(to: CChar.self) { body($0.baseAddress!, count) }
  }
}

#!/usr/bin/env python3
"""drain_paho.py: the Python baseline of the drain benchmark (paho-mqtt + sqlite3).

The same work as drain_c.c, written the way a Python programmer would: select
undelivered rows (--batch at a time, by id) from
    outbox(id INTEGER PRIMARY KEY, record TEXT NOT NULL, delivered INTEGER NOT NULL)
join them into the agent's batch envelope
    {"v":1,"dev":D,"store":S,"seq":N,"class":"readings","records":[...]}
publish at QoS 1 (MQTT v5) on gridedge/v1/<dev>/up/readings with at most --window
unacknowledged, and mark the rows delivered on PUBACK. WAL, synchronous=NORMAL,
autocommit. One thread: paho's loop() in the main thread.

Prints one line on stdout when every row is delivered:
    done start_ms=S done_ms=T records=R batches=B rss_hwm=BYTES cpu_ms=C written=BYTES

usage: drain_paho.py --db FILE --port P [--host H] [--batch 100] [--window 16] [--device BENCH-PAHO]
"""

import argparse
import resource
import sqlite3
import sys
import time

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
except ImportError as error:  # the bench script installs it; say so if it did not
    sys.exit("drain_paho.py: error: paho-mqtt (>= 2.0) is not installed: %s" % error)


def now_ms():
    return int(time.time() * 1000)


def peak_rss_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def written_bytes():
    """Bytes this process caused to be written to storage (/proc/self/io)."""
    fields = {}
    with open("/proc/self/io") as io:
        for line in io:
            name, _, value = line.partition(":")
            fields[name] = int(value)
    return fields["write_bytes"] - fields.get("cancelled_write_bytes", 0)


def cpu_ms():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int((usage.ru_utime + usage.ru_stime) * 1000)


def fatal(message):
    sys.exit("drain_paho.py: error: " + message)


class Drain:
    def __init__(self, args):
        self.args = args
        self.db = sqlite3.connect(args.db, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.topic = "gridedge/v1/%s/up/readings" % args.device
        self.in_flight = {}  # mid -> (first id, last id, records)
        self.cursor = 0
        self.seq = 0
        self.delivered = 0
        self.batches = 0
        self.exhausted = False
        self.done = False

    def publish_next(self, client):
        rows = self.db.execute(
            "SELECT id, record FROM outbox WHERE delivered = 0 AND id > ? ORDER BY id LIMIT ?",
            (self.cursor, self.args.batch),
        ).fetchall()
        if not rows:
            return False
        self.seq += 1
        payload = (
            '{"v":1,"dev":"%s","store":"00000000000bc002","seq":%d,"class":"readings","records":['
            % (self.args.device, self.seq)
            + ",".join(record for _, record in rows)
            + "]}"
        )
        info = client.publish(self.topic, payload.encode(), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            fatal("publish: " + mqtt.error_string(info.rc))
        self.in_flight[info.mid] = (rows[0][0], rows[-1][0], len(rows))
        self.cursor = rows[-1][0]
        self.batches += 1
        return True

    def fill_window(self, client):
        while not self.exhausted and len(self.in_flight) < self.args.window:
            if not self.publish_next(client):
                self.exhausted = True
        if self.exhausted and not self.in_flight:
            self.done = True

    def on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            fatal("broker refused the connection: %s" % reason_code)
        self.fill_window(client)

    def on_publish(self, client, userdata, mid, reason_code, properties):
        if reason_code.is_failure:
            fatal("broker refused message %d: %s" % (mid, reason_code))
        first, last, records = self.in_flight.pop(mid)
        self.db.execute("UPDATE outbox SET delivered = 1 WHERE id BETWEEN ? AND ?", (first, last))
        self.delivered += records
        self.fill_window(client)


def main():
    parser = argparse.ArgumentParser(description="Python paho-mqtt baseline of the drain benchmark")
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--device", default="BENCH-PAHO")
    args = parser.parse_args()
    start_ms = now_ms()

    drain = Drain(args)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.device, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(args.window)
    client.on_connect = drain.on_connect
    client.on_publish = drain.on_publish
    client.connect(args.host, args.port, keepalive=60)
    while not drain.done:
        rc = client.loop(timeout=1.0)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            fatal("loop: " + mqtt.error_string(rc))
    done_ms = now_ms()
    print(
        "done start_ms=%d done_ms=%d records=%d batches=%d rss_hwm=%d cpu_ms=%d written=%d"
        % (start_ms, done_ms, drain.delivered, drain.batches, peak_rss_bytes(), cpu_ms(), written_bytes()),
        flush=True,
    )
    client.disconnect()
    drain.db.close()


if __name__ == "__main__":
    main()

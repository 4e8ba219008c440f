#!/usr/bin/env python3
"""A bad wire between two network interfaces, for NetworkFaultTests.

Forwards every Ethernet frame that arrives on one interface out of the other (both
ways), as a cable would, but with what `tc qdisc ... netem` adds: loss, delay with
jitter, reordering and duplication. netem itself needs the kernel's sch_netem, which
the kernels of our machines are built without (CONFIG_NET_SCH_NETEM is not set), so
the same impairments are made here, in user space, with AF_PACKET sockets in a
namespace of their own between the agent's and the broker's.

  netem_wire.py IF_A IF_B --loss 20 --delay 40 --jitter 20 --reorder 25 --duplicate 5

Semantics, as netem's: each frame is dropped with probability loss %, otherwise
duplicated with probability duplicate %; each copy is sent after delay ± jitter ms,
except that with probability reorder % it is sent at once (overtaking the delayed
ones). SIGUSR1 cuts the wire (every frame dropped, as a break further along the
line that neither end can see), SIGUSR2 mends it. With --cut-passes-arp a cut lets
ARP through: the broker's address stays resolved, as a router's would be when the
break is beyond it, so a TCP connect gets no answer at all instead of "host
unreachable". On SIGTERM it prints its counters
as one line `wire forwarded=N dropped=N duplicated=N reordered=N cut=N` and exits.

The ends' checksum and segmentation offloads must be off (ethtool -K IF tx off tso
off gso off gro off): a frame read from a packet socket before the checksum is filled
in would arrive with a bad one.
"""
import argparse
import heapq
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--reorder", type=float, default=0.0)
    parser.add_argument("--duplicate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--cut-passes-arp", action="store_true")
    options = parser.parse_args()
    rng = random.Random(options.seed)

    sockets = {}
    for name in (options.a, options.b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        sockets[name] = s
    other = {sockets[options.a].fileno(): sockets[options.b], sockets[options.b].fileno(): sockets[options.a]}
    counts = {"forwarded": 0, "dropped": 0, "duplicated": 0, "reordered": 0, "cut": 0}
    state = {"cut": False, "running": True}

    def cut(_sig, _frame):
        state["cut"] = True

    def mend(_sig, _frame):
        state["cut"] = False

    def stop(_sig, _frame):
        state["running"] = False

    signal.signal(signal.SIGUSR1, cut)
    signal.signal(signal.SIGUSR2, mend)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("wire up between %s and %s" % (options.a, options.b), flush=True)

    queue = []  # (due, order, socket, frame)
    order = 0
    readable = list(sockets.values())
    while state["running"]:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
                counts["forwarded"] += 1
            except OSError:
                counts["dropped"] += 1  # the far end is down (a link flap)
        timeout = max(0.0, queue[0][0] - now) if queue else 0.5
        try:
            ready, _, _ = select.select(readable, [], [], timeout)
        except InterruptedError:
            continue
        for s in ready:
            while True:
                try:
                    frame, address = s.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break  # the interface went down
                if address[2] == PACKET_OUTGOING:
                    continue  # our own transmission on this interface
                if state["cut"] and not (options.cut_passes_arp and frame[12:14] == b"\x08\x06"):
                    counts["cut"] += 1
                    continue
                if rng.random() * 100 < options.loss:
                    counts["dropped"] += 1
                    continue
                copies = 1
                if rng.random() * 100 < options.duplicate:
                    copies = 2
                    counts["duplicated"] += 1
                for _ in range(copies):
                    now = time.monotonic()
                    if rng.random() * 100 < options.reorder:
                        delay = 0.0
                        counts["reordered"] += 1
                    else:
                        delay = max(0.0, options.delay + rng.uniform(-options.jitter, options.jitter)) / 1000
                    order += 1
                    heapq.heappush(queue, (now + delay, order, other[s.fileno()], frame))
    print("wire " + " ".join("%s=%d" % item for item in counts.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

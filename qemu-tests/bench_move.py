#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench, part three, inside a one-vCPU guest whose clock counts
instructions (QEMU -icount shift=0,align=off,sleep=off): a move of the
client, dissected (issue 16). A stream runs from the client to the server
while the client moves between subnets 1 and 2 (break-before-make: one `ip
-batch` removes the old address, adds the new one and its default route),
VNAT_BENCH_MOVES times. Each step is a timestamp of the guest's monotonic
clock: the trace events of VNAT (vnat:*, tracefs with trace_clock mono)
and of TCP (tcp:tcp_retransmit_skb), kprobes on the kernel's address and
route requests, and the program's own (the `ip` command, each read of the
receiver), so that they compare.

The steps, from the moment the new address is usable (its default route is
in: `ip`'s last route request returned), per move:
the client's vnatd wakes, begins the move, sends the first VCMP byte; the
server's vnatd reads the update, publishes its rules and answers; the
client reads the answer, publishes its rules and kicks the connection; TCP
retransmits; the server's TCP receives the first data after the move (the
data gap); the server program reads. Medians over the moves, with the spread (min to max), in ms, and
the TCP round trip measured before the first move, for the target of
issue 16 (a gap of at most one round trip plus 10 ms).

Then MPTCP's handover in the same guest, VNAT unloaded: the same stream
over an MPTCP connection, the same `ip -batch` with the path manager's
endpoints changed as well, the same marks.

Each system then moves VNAT_BENCH_MOVES times more with the first SYN of
each move lost (the router drops the first SYN to the server's VCMP port,
2031, and to MPTCP's, 7001, after each move begins): the first packet on
a new network often is lost, and TCP sends a lost SYN again only after a
second; the data gap of those moves beside the others."""
import json
import os
import socket
import statistics
import sys
import threading
import time

from tracing import first, netns_inum, read_trace, tracefs
from vnattest import (Topology, insmod, ip_batch, netns, rmmod, round_trip, sh, stats, tcp_connect, tcp_listen, wait_for,
                      wait_keyed)

MOVES = int(os.environ.get("VNAT_BENCH_MOVES", "10"))
# A move after which no data came (before the next one): its gap is
# infinite, and counts so in the medians.
INF = float("inf")


def stream(c, a, move, moved):
    """Streams from `c` to `a` while `move()` runs MOVES times, each once
    `moved(t1)` (t1: when `move` returned) says the move is done, the
    receiver has read since and the stream has run at its new place for
    0.5 s. Returns the moves' (start, end) times and the times of the
    receiver's reads."""
    stamps = []
    stop = threading.Event()

    def send():
        buf = b"z" * 16384
        while not stop.is_set():
            try:
                c.sendall(buf)
            except OSError:
                break

    def recv():
        while not stop.is_set():
            if not a.recv(65536):
                break
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=send, daemon=True), threading.Thread(target=recv, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    moves = []
    for _ in range(MOVES):
        # The server's segments are traced around the move only (there
        # are tens of thousands a second).
        tracefs("events/tcp/tcp_probe/enable", "1")
        t0 = time.monotonic()
        move()
        t1 = time.monotonic()
        moved(t1, stamps)
        # Data read after the move, or 10 s without.
        deadline = t1 + 10
        while not (stamps and stamps[-1] > t1) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.01)
        tracefs("events/tcp/tcp_probe/enable", "0")
        time.sleep(0.5)
        moves.append((t0, t1))
    stop.set()
    return moves, stamps


def marks(events, moves, stamps):
    """Per move, from the kernel's own functions (kprobes, the same for
    both systems): when the old address was gone and when the new address
    was usable (its default route in: `ip`'s last route request returned),
    from `ip`'s start; the data gap: from usable to the first data segment
    the server's TCP receives (tcp:tcp_probe: no segment sent before the
    old address went arrives so late, and none was sent while there was no
    route); and from usable to the server program's first read (which may
    return bytes received before the move: the one vCPU runs `ip` while
    the program waits)."""
    out = []
    for i, (t0, t1) in enumerate(moves):
        end = moves[i + 1][0] if i + 1 < len(moves) else float("inf")
        evs = [e for e in events if t0 <= e[0] < end]
        gone = first(evs, t0, "addr_gone")
        routes = [t for t, n, _ in evs if t <= t1 and n == "route_in"]
        if gone is None or not routes:
            sys.exit(f"move {i}: the address or route event is not in the trace")
        usable = routes[-1]
        after = [s for s in stamps if usable <= s < end]
        got = first(evs, usable, "tcp_probe")
        out.append({"evs": evs, "t0": t0, "ip": (t1 - t0) * 1000, "gone": (gone - t0) * 1000,
                    "usable_at": usable, "usable": (usable - t0) * 1000,
                    "gap": (got - usable) * 1000 if got else INF,
                    "read": (after[0] - usable) * 1000 if after else INF})
    return out


insmod()
topo = Topology()
ip_batch("cli", ["link set c2 up"])
cli, srv_ns = netns_inum("cli"), netns_inum("srv")
srv = tcp_listen("srv", "0.0.0.0", 7000)
c = tcp_connect("cli", topo.server_addr(), 7000)
a, _ = srv.accept()
wait_keyed("cli", "srv")
rtt = round_trip(c, a)

tracefs("trace_clock", "mono")
tracefs("buffer_size_kb", "32768")
# The address's and the route's requests, as they return (IPv4: the
# benchmark's topology is IPv4): the only ones are `ip`'s, in the client.
tracefs("kprobe_events", "r:vnatbench/addr_gone inet_rtm_deladdr\nr:vnatbench/route_in inet_rtm_newroute\n")
tracefs("trace", "")
tracefs("events/vnatbench/enable", "1")
tracefs("events/vnat/enable", "1")
tracefs("events/tcp/tcp_retransmit_skb/enable", "1")
# The server's segments with data: its sockets' local port is 7000 (TCP),
# 7001 (MPTCP's subflows).
tracefs("events/tcp/tcp_probe/filter", "data_len > 0 && (sport == 7000 || sport == 7001)")
tracefs("tracing_on", "1")
done = {}


def switch(extra=()):
    """The move: the old address goes, the new one comes with its default
    route, in one `ip -batch`. Both links stay up (a link brought up in the
    same batch drops what is sent through it until the kernel's linkwatch
    work activates its queue, which runs after `ip` on the one vCPU: one
    move in ten lost VNAT's SYN to it, which TCP sent again a second
    later; a laptop's link comes up long before its new address)."""
    old, new = topo.client_at, 2 if topo.client_at == 1 else 1
    ip_batch("cli", [f"addr del 10.0.{old}.2/24 dev c{old}", f"addr add 10.0.{new}.2/24 dev c{new}",
                     f"route replace default via 10.0.{new}.1", *(e.format(old=old, new=new) for e in extra)])
    topo.client_at = new


def vnat_move():
    done["before"] = stats("cli")["migrations_completed"]
    switch()


def vnat_moved(t1, stamps):
    wait_for(lambda: stats("cli")["migrations_completed"] > done["before"], "migrated", timeout=60)


# The first SYN of a move lost (see the docstring): the router drops the
# first SYN to port 2031 and to 7001, whose port then goes into `dropped`
# and lets the later ones pass, until the set is emptied.
LOSSY = """table inet lossy {
    set dropped { type inet_service; flags dynamic; }
    chain forward {
        type filter hook forward priority 0;
        tcp dport { 2031, 7001 } tcp flags & (syn | ack) == syn tcp dport != @dropped add @dropped { tcp dport } counter drop
    }
}
"""


def lossy_moves(name, c, a, move, moved):
    """MOVES moves of `name` (its stream on `c` and `a`), the first SYN of
    each lost (LOSSY, its set emptied as each move begins); their marks."""
    sh("ip netns exec rtr nft -f -", input=LOSSY)

    def lossy_move():
        sh("ip netns exec rtr nft flush set inet lossy dropped")
        move()
    tracefs("tracing_on", "1")
    ms, stamps = stream(c, a, lossy_move, moved)
    out = marks(read_trace(), ms, stamps)
    ruleset = json.loads(sh("ip netns exec rtr nft -j list table inet lossy"))["nftables"]
    sh("ip netns exec rtr nft delete table inet lossy")
    drops = next(e["counter"]["packets"] for o in ruleset if "rule" in o for e in o["rule"]["expr"] if "counter" in e)
    if drops != MOVES:
        sys.exit(f"the router dropped {drops} SYNs in {MOVES} lossy moves of {name}, not one each")
    return out


moves, stamps = stream(c, a, vnat_move, vnat_moved)
events = read_trace()
vnat_lossy = lossy_moves("VNAT", c, a, vnat_move, vnat_moved)
c.close()
a.close()
srv.close()
rmmod(timeout=300)
vnat = marks(events, moves, stamps)

# MPTCP's handover in the same guest, VNAT unloaded: the same stream over
# an MPTCP connection, the same move, and what the kernel's path manager
# needs to hand over, as NetworkManager configures it (an endpoint per
# address, `subflow`): in the same `ip -batch`, the old address's endpoint
# goes (its subflow is closed, its data sent again on the others) and the
# new address's comes (a subflow joins from it).
for ns in ("cli", "srv"):
    ip_batch(ns, ["mptcp limits set subflows 4 add_addr_accepted 4"])
at = topo.client_at
ip_batch("cli", [f"mptcp endpoint add {topo.client_addr()} dev c{at} id {at} subflow"])
with netns("srv"):
    msrv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
    msrv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    msrv.bind(("0.0.0.0", 7001))
    msrv.listen(4)
with netns("cli"):
    mc = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
    mc.connect((topo.server_addr(), 7001))
ma, _ = msrv.accept()
if sh("ip netns exec cli ss -HMn").count("ESTAB") < 1:
    sys.exit("no MPTCP connection: the kernel fell back to TCP")
mptcp_rtt = round_trip(mc, ma)


def mptcp_move():
    switch(("mptcp endpoint delete id {old}", "mptcp endpoint add 10.0.{new}.2 dev c{new} id {new} subflow"))


def mptcp_moved(t1, stamps):
    pass


tracefs("tracing_on", "1")
mmoves, mstamps = stream(mc, ma, mptcp_move, mptcp_moved)
mptcp = marks(read_trace(), mmoves, mstamps)
mptcp_lossy = lossy_moves("MPTCP", mc, ma, mptcp_move, mptcp_moved)
tracefs("events/enable", "0")
tracefs("kprobe_events", "")
mc.close()
ma.close()
msrv.close()

STEPS = ["client vnatd wakes", "move begins", "first VCMP byte sent", "server reads the update",
         "server's rules live", "server sends the answer", "client reads the answer", "client's rules live",
         "client kicks the connection", "TCP retransmits"]


def dissect(ms):
    """Each step's times (ms from the new address being usable) over the
    moves `ms`, from the trace."""
    rows = {s: [] for s in STEPS}
    for m in ms:
        evs, usable = m["evs"], m["usable_at"]
        up = first(evs, m["t0"], "vnat_address", cli, lambda kv: "up" in kv["_text"].split())
        at = {}
        at["client vnatd wakes"] = first(evs, up or m["t0"], "vnat_wake", cli)
        at["move begins"] = first(evs, up or m["t0"], "vnat_move", cli)
        mv = at["move begins"] or usable
        at["first VCMP byte sent"] = first(evs, mv, "vnat_vcmp_sent", cli, lambda kv: "requests" in kv["_text"])
        sent = at["first VCMP byte sent"] or mv
        at["server reads the update"] = first(evs, sent, "vnat_vcmp_received", srv_ns)
        got = at["server reads the update"] or sent
        at["server's rules live"] = first(evs, got, "vnat_rules", srv_ns)
        at["server sends the answer"] = first(evs, got, "vnat_vcmp_sent", srv_ns, lambda kv: "answers" in kv["_text"])
        ans = at["server sends the answer"] or got
        at["client reads the answer"] = first(evs, ans, "vnat_vcmp_received", cli)
        read = at["client reads the answer"] or ans
        at["client's rules live"] = first(evs, read, "vnat_rules", cli)
        at["client kicks the connection"] = first(evs, read, "vnat_kick", cli)
        kick = at["client kicks the connection"] or read
        at["TCP retransmits"] = first(evs, kick, "tcp_retransmit_skb")
        for s in STEPS:
            if at[s] is not None:
                rows[s].append((at[s] - usable) * 1000)
    return rows


rows = dissect(vnat)
lossy_rows = dissect(vnat_lossy)


def fmt(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "| - | - | 0 |"
    return f"| {statistics.median(xs):.3f} | {min(xs):.3f} to {max(xs):.3f} | {len(xs)} |"


def col(ms, k):
    return [m[k] for m in ms]


print(f"A move dissected: {MOVES} moves of the client while it streams to the server (break-before-make, "
      "one `ip -batch`); guest time (1 vCPU, QEMU -icount shift=0,align=off,sleep=off), from trace events "
      "(trace_clock mono: VNAT's, TCP's and kprobes on the kernel's address and route requests) and the "
      f"program's clock. TCP round trip before the first move: {rtt * 1000:.3f} ms.\n")
print("| step | median (ms) | min to max (ms) | moves |")
print("|---|---:|---:|---:|")
print("| *from `ip`'s start:* | | | |")
print(f"| the old address is gone {fmt(col(vnat, 'gone'))}")
print(f"| the new address is usable (its default route in) {fmt(col(vnat, 'usable'))}")
print(f"| `ip -batch` ends {fmt(col(vnat, 'ip'))}")
print("| *from the new address being usable:* | | | |")
for s in STEPS:
    print(f"| {s} {fmt(rows[s])}")
print(f"| the server's TCP receives data (the data gap) {fmt(col(vnat, 'gap'))}")
print(f"| the server program reads {fmt(col(vnat, 'read'))}")
target = rtt * 1000 + 10
if vnat:
    med = statistics.median(col(vnat, "gap"))
    print(f"\nData gap from the new address being usable to the server's first data: median {med:.3f} ms; the "
          f"target (one round trip plus 10 ms) is {target:.3f} ms: {'met' if med <= target else 'missed'}.")
print(f"\nThe same move under MPTCP, in the same guest (VNAT unloaded; the kernel's path manager with an "
      "endpoint per address, `subflow`, the old endpoint deleted and the new one added in the same `ip -batch`; "
      f"MPTCP round trip before the first move: {mptcp_rtt * 1000:.3f} ms). Medians; the first three "
      "columns from `ip`'s start, the last two from the new address being usable.\n")
print("| system | old address gone (ms) | new address usable (ms) | `ip` ends (ms) | data gap (ms) | "
      "first read (ms) |")
print("|---|---:|---:|---:|---:|---:|")


def med(xs):
    xs = [x for x in xs if x is not None]
    return f"{statistics.median(xs):.3f}" if xs else "-"


for name, ms in (("VNAT", vnat), ("MPTCP", mptcp)):
    print(f"| {name} | {med(col(ms, 'gone'))} | {med(col(ms, 'usable'))} | {med(col(ms, 'ip'))} | "
          f"{med(col(ms, 'gap'))} (max {max(col(ms, 'gap')):.3f}) | "
          f"{med(col(ms, 'read'))} |")
lost = {name: sum(g == INF for g in col(ms, "gap")) for name, ms in (("VNAT", vnat), ("MPTCP", mptcp))}
vm, mm = statistics.median(col(vnat, "gap")), statistics.median(col(mptcp, "gap"))
print(f"\nMedians over {MOVES} moves each; moves after which no data came before the next move (an infinite "
      f"gap): VNAT {lost['VNAT']}, MPTCP {lost['MPTCP']}. VNAT's data gap is "
      f"{'shorter than' if vm < mm else 'not shorter than'} MPTCP's ({vm:.3f} against {mm:.3f} ms).")
print(f"\nThe same moves with the first SYN of each lost (the router drops the first SYN to the VCMP port, 2031, "
      f"and to MPTCP's server port, 7001, after each move begins; {MOVES} moves each), the data gap from the new "
      "address being usable, in ms:\n")
print("| system | SYNs dropped | data gap, median | min to max | moves without data after |")
print("|---|---:|---:|---:|---:|")
for name, ms in (("VNAT", vnat_lossy), ("MPTCP", mptcp_lossy)):
    gaps = col(ms, "gap")
    print(f"| {name} | {MOVES} | {med(gaps)} | {min(gaps):.3f} to {max(gaps):.3f} | {sum(g == INF for g in gaps)} |")
print("\nVNAT's lossy moves dissected (ms from the new address being usable):\n")
print("| step | median (ms) | min to max (ms) | moves |")
print("|---|---:|---:|---:|")
for s_ in STEPS:
    print(f"| {s_} {fmt(lossy_rows[s_])}")
print(f"| the server's TCP receives data (the data gap) {fmt(col(vnat_lossy, 'gap'))}")
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bench-move.json")
with open(out, "w") as f:
    counts = {}
    for _, n, _ in events:
        counts[n] = counts.get(n, 0) + 1
    strip = [[{k: v for k, v in m.items() if k != "evs"} for m in ms] for ms in (vnat, mptcp, vnat_lossy, mptcp_lossy)]
    json.dump({"events": counts, "moves": MOVES, "rtt_ms": rtt * 1000, "mptcp_rtt_ms": mptcp_rtt * 1000,
               "vnat": strip[0], "mptcp": strip[1], "vnat_first_syn_lost": strip[2],
               "mptcp_first_syn_lost": strip[3], "steps": rows,
               "steps_first_syn_lost": lossy_rows}, f, indent=1)

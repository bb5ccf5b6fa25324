#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make demo, inside the guest: a laptop roams across three networks while a
bulk transfer and an interactive line session to a server stay alive, in
the three shapes roaming takes:

1. break-before-make: the laptop leaves network 1, then joins network 2;
2. make-before-break: it joins network 3 while still on 2, the default
   route moves there (`migrate_on` `on-route-change`), and it leaves 2;
3. a captive portal: it joins network 1 again, whose router drops
   everything for 10 s; the move retries until the portal opens.

Prints a throughput timeline every 100 ms with the moves, the data gap of
each move, and a verdict."""
import hashlib
import os
import socket
import threading
import time

from vnattest import (Sink, Topology, ctl, insmod, ip_batch, pong, portal_close, portal_open, stats, tcp_connect,
                      tcp_listen, write_knob)

BOLD, END = "\033[1m", "\033[0m"


def say(msg):
    print(f"\n{BOLD}== {msg}{END}", flush=True)


say("insmod vnat.ko; hosts: laptop (cli), router (rtr), server (srv)")
insmod()
write_knob("migrate_on", "on-route-change")
topo = Topology()
print(f"laptop at {topo.client_addr()} (subnet 1), server at {topo.server_addr()}", flush=True)

# Bulk: laptop -> server, endless until told to stop; the server hashes.
bulk_srv = tcp_listen("srv", "0.0.0.0", 5000)
line_srv = tcp_listen("srv", "0.0.0.0", 5001)
bulk = tcp_connect("cli", topo.server_addr(), 5000)
bulk_in, _ = bulk_srv.accept()
line = tcp_connect("cli", topo.server_addr(), 5001)
line_in, _ = line_srv.accept()
for s in (bulk, bulk_in, line, line_in):
    s.settimeout(60)

stop = threading.Event()
sent_hash = hashlib.sha256()


def sender():
    block = os.urandom(1 << 16)
    while not stop.is_set():
        bulk.sendall(block)
        sent_hash.update(block)
    bulk.shutdown(socket.SHUT_WR)


pings = {"sent": 0, "answered": 0}


def line_client():
    f = line.makefile("rwb", buffering=0)
    while not stop.is_set():
        n = pings["sent"]
        f.write(f"ping {n}\n".encode())
        pings["sent"] += 1
        if f.readline().strip() == f"pong {n}".encode():
            pings["answered"] += 1
        time.sleep(0.2)
    # The server's side ends when it reads the end of the stream.
    line.shutdown(socket.SHUT_WR)


sink = Sink(bulk_in)
threads = [threading.Thread(target=f) for f in (sender, line_client)]
for t in threads:
    t.start()
threads += [sink.thread, pong(line_in)]

# The first stats() parses the family's spec (seconds under TCG, more
# while the transfer runs): done before the timeline, not at its first move.
stats("cli")
say("timeline (throughput every 100 ms; guest time under QEMU emulation)")


def break_before_make(subnet):
    """Leaves the network, then joins the next (one ip batch)."""
    topo.attach_client(subnet)
    return f"the laptop leaves {old}, then joins {topo.client_addr()}"


def make_before_break(subnet):
    """Joins the next network while still on this one; the default route
    moves there, which moves the connections; then leaves this one."""
    ip_batch("cli", [f"link set c{subnet} up", f"addr add 10.0.{subnet}.2/24 dev c{subnet}",
                     f"route replace default via 10.0.{subnet}.1 dev c{subnet}"])
    return f"the laptop joins {topo.client_addr(subnet)} while still at {old}; the default route moves there"


def leave(subnet):
    prev = topo.client_at
    ip_batch("cli", [f"addr del 10.0.{prev}.2/24 dev c{prev}", f"link set c{prev} down"])
    topo.client_at = subnet
    return f"the laptop leaves {topo.client_addr(prev)} (its connections left it already)"


def captive_portal(subnet):
    portal_close("r1")
    topo.attach_client(subnet)
    return f"the laptop leaves {old}, joins {topo.client_addr()}, behind a captive portal (everything dropped)"


def portal_opens(_):
    portal_open()
    return "the captive portal opens: the retrying move goes through"


t0 = time.monotonic()
# (when, what, subnet, is a move whose data gap is measured)
moves = [(2.0, break_before_make, 2, True), (5.0, make_before_break, 3, True), (6.5, leave, 3, False),
         (9.0, captive_portal, 1, True), (19.0, portal_opens, None, False)]
events = []
last = 0
done_at = 32.0
while time.monotonic() - t0 < done_at:
    now = time.monotonic() - t0
    if moves and now >= moves[0][0]:
        _, what, subnet, measured = moves.pop(0)
        old = topo.client_addr()
        t_move = time.monotonic()
        said = what(subnet)
        t_up = time.monotonic()
        if measured:
            events.append((t_move, t_up, what.__name__.replace("_", "-"), old, topo.client_addr(subnet)))
        print(f"{now:5.1f}s  ** {what.__name__.replace('_', '-').upper()}: {said} "
              f"(ip took {t_up - t_move:.2f} s)", flush=True)
    time.sleep(0.1)
    r = sink.received
    mbps = (r - last) * 8 / 0.1 / 1e6
    last = r
    bar = "#" * min(60, int(mbps / 20))
    print(f"{time.monotonic() - t0:5.1f}s  {mbps:8.1f} Mbit/s  {bar}", flush=True)

stop.set()
for t in threads:
    t.join(60)

say("data gap of each move: the server's longest time without data, from the move to 2 s after")
for (t_move, t_up, kind, old, new) in events:
    arrivals = sink.arrivals
    before = [a for a in arrivals if a <= t_move]
    after = [a for a in arrivals if a > t_up]
    if before and after:
        # From the last data before the move to the first data 2 s after
        # ip was done (or the first after it, if the gap is longer).
        end = max(after[0], t_up + 2.0)
        seq = before[-1:] + [a for a in arrivals if t_move < a <= end]
        gap = max(b - a for a, b in zip(seq, seq[1:]))
        print(f"  {kind:18} {old} -> {new}: {gap * 1000:7.1f} ms "
              f"(ip took {(t_up - t_move) * 1000:.0f} ms to change the addresses)", flush=True)
    else:
        print(f"  {kind:18} {old} -> {new}: data never resumed", flush=True)

say("the virtual connection never changed: vnatctl -n cli list")
for row in ctl("cli", "list")[1].splitlines():
    print(f"  {row}")
s = stats("cli")
ok = (sent_hash.hexdigest() == sink.hash.hexdigest() and pings["answered"] == pings["sent"] and len(events) == 3
      and s["migrations_completed"] >= 6 and s["migrations_failed"] == 0)
say("verdict")
print(f"  bulk: {sink.received / 1e6:.1f} MB, SHA-256 {'equal' if sent_hash.hexdigest() == sink.hash.hexdigest() else 'DIFFERENT'}")
print(f"  interactive: {pings['answered']}/{pings['sent']} pings answered")
print(f"  migrations completed {s['migrations_completed']}, failed {s['migrations_failed']}")
print(f"  {BOLD}{'PASS: both connections survived the three moves' if ok else 'FAIL'}{END}", flush=True)
for x in (bulk, bulk_in, line, line_in, bulk_srv, line_srv):
    x.close()
raise SystemExit(0 if ok else 1)

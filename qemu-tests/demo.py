#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make demo, inside the guest: a laptop hops across three networks while a
bulk transfer and an interactive line session to a server stay alive.

Prints a throughput timeline every 100 ms with the moves, the data gap of
each move, and a verdict."""
import hashlib
import os
import socket
import threading
import time

from vnattest import Topology, ctl, insmod, stats, tcp_connect, tcp_listen

BOLD, END = "\033[1m", "\033[0m"


def say(msg):
    print(f"\n{BOLD}== {msg}{END}", flush=True)


say("insmod vnat.ko; hosts: laptop (cli), router (rtr), server (srv)")
insmod()
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
received = [0]
arrivals = []  # times at which the server received data
sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()


def sender():
    block = os.urandom(1 << 16)
    while not stop.is_set():
        bulk.sendall(block)
        sent_hash.update(block)
    bulk.shutdown(socket.SHUT_WR)


def sink():
    while True:
        d = bulk_in.recv(1 << 16)
        if not d:
            break
        got_hash.update(d)
        received[0] += len(d)
        arrivals.append(time.monotonic())


def line_server():
    f = line_in.makefile("rwb", buffering=0)
    for l in f:
        f.write(l.replace(b"ping", b"pong"))


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


threads = [threading.Thread(target=f) for f in (sender, sink, line_server, line_client)]
for t in threads:
    t.start()

# The first stats() parses the family's spec (seconds under TCG, more
# while the transfer runs): done before the timeline, not at its first move.
stats("cli")
say("timeline (throughput every 100 ms; guest time under QEMU emulation)")
t0 = time.monotonic()
moves = [(2.0, 2), (5.0, 3), (8.0, 1)]
events = []
last = 0
done_at = 12.0
while time.monotonic() - t0 < done_at:
    now = time.monotonic() - t0
    if moves and now >= moves[0][0]:
        _, subnet = moves.pop(0)
        before = stats("cli")["migrations_completed"]
        old = topo.client_addr()
        t_move = time.monotonic()
        topo.attach_client(subnet)
        t_up = time.monotonic()
        events.append((t_move, t_up, old, topo.client_addr()))
        print(f"{now:5.1f}s  ** MOVE: laptop leaves {old}, joins {topo.client_addr()} "
              f"(old address removed; new address and route up after {t_up - t_move:.2f} s)", flush=True)
    time.sleep(0.1)
    r = received[0]
    mbps = (r - last) * 8 / 0.1 / 1e6
    last = r
    bar = "#" * min(60, int(mbps / 20))
    print(f"{time.monotonic() - t0:5.1f}s  {mbps:8.1f} Mbit/s  {bar}", flush=True)

stop.set()
for t in threads:
    t.join(60)

say("data gap of each move: the server's time without data")
for (t_move, t_up, old, new) in events:
    before = [a for a in arrivals if a <= t_move]
    after = [a for a in arrivals if a > t_up]
    if before and after:
        print(f"  {old} -> {new}: {(after[0] - before[-1]) * 1000:7.1f} ms "
              f"(of which {(t_up - t_move) * 1000:.0f} ms for ip to change the addresses)", flush=True)
    else:
        print(f"  {old} -> {new}: data never resumed", flush=True)

say("the virtual connection never changed: vnatctl -n cli list")
for row in ctl("cli", "list")[1].splitlines():
    print(f"  {row}")
s = stats("cli")
ok = (sent_hash.hexdigest() == got_hash.hexdigest() and pings["answered"] == pings["sent"] and len(events) == 3
      and s["migrations_completed"] >= 6 and s["migrations_failed"] == 0)
say("verdict")
print(f"  bulk: {received[0] / 1e6:.1f} MB, SHA-256 {'equal' if sent_hash.hexdigest() == got_hash.hexdigest() else 'DIFFERENT'}")
print(f"  interactive: {pings['answered']}/{pings['sent']} pings answered")
print(f"  migrations completed {s['migrations_completed']}, failed {s['migrations_failed']}")
print(f"  {BOLD}{'PASS: both connections survived three moves' if ok else 'FAIL'}{END}", flush=True)
for x in (bulk, bulk_in, line, line_in, bulk_srv, line_srv):
    x.close()
raise SystemExit(0 if ok else 1)

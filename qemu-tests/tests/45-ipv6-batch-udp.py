#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""IPv6 at scale and over UDP (issue 13): 1,000 idle IPv6 connections, a
busy one and a connected UDPv6 flow to an unconnected server socket move
in one move of the client, over one batched VCMP stream.

    cli ─ c1/c2 ── rtr ── s9 ─ srv      fd00:0:s::/64 (and 10.0.s.0/24)

Afterwards every TCP connection carries bytes both ways, every datagram
of the flow comes back intact (also datagrams of 3,000 bytes, which
travel in fragments), the server program only ever sees the
client's first IPv6 endpoint, and the router sees the flow's datagrams
from the new address only.
"""
import os
import resource
from vnattest import *

N = int(os.environ.get("VNAT_IDLE_CONNECTIONS", "1000"))
PORT, UPORT = 5000, 5300
resource.setrlimit(resource.RLIMIT_NOFILE, (4 * N + 256, 4 * N + 256))
insmod()
topo = Topology(ipv6=True)
old, server = topo.client_addr6(), topo.server_addr6()
srv = tcp_listen("srv", "::", PORT, backlog=256)
with netns("srv"):
    us = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    us.bind(("::", UPORT))
pairs = []
for i in range(N):
    c = tcp_connect("cli", server, PORT)
    a, _ = srv.accept()
    pairs.append((c, a))
busy_c = tcp_connect("cli", server, PORT)
busy_a, _ = srv.accept()
with netns("cli"):
    uc = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    uc.connect((server, UPORT))
echo = UdpEcho(us)


def udp_round(i, size=64):
    msg = i.to_bytes(4, "big") + os.urandom(size - 4)
    uc.settimeout(2)
    for _ in range(10):
        uc.send(msg)
        try:
            if uc.recv(65536) == msg:
                return True
        except (socket.timeout, OSError):
            pass
    return False


check(all(udp_round(i) for i in range(5)), "the UDP flow echoes before the move")
stats("cli")
wait_keyed("cli", "srv", timeout=120)
t = Transfer(busy_c, busy_a, 8 << 20)
t.wait_progress(0.2)
before = stats("cli")
topo.attach_client(2)
new = topo.client_addr6()
wait_for(lambda: stats("cli")["migrations_completed"] - before["migrations_completed"] == N + 2,
         f"all {N + 1} IPv6 connections and the UDP flow migrated", timeout=180)
s = stats("cli")
check_eq(s["migrations_failed"], before["migrations_failed"], "no migration failed")
check_eq(s["updates_sent"] - before["updates_sent"], N + 2, "one update per connection")
t.join()
cap = Capture("rtr", f"ip6 and udp port {UPORT}")
ok = sum(udp_round(i) for i in range(20))
cap.stop()
check_eq(ok, 20, "every datagram of the UDP flow comes back intact after the move")
# Larger than the links' MTU: sent in fragments both ways, which the moved
# end must reassemble before its hooks give the datagram its virtual
# destination (before defragmentation came with the hooks, none arrived).
big = sum(udp_round(100 + i, 3000) for i in range(5))
check_eq(big, 5, "datagrams of 3,000 bytes, in fragments on the wire, come back intact after the move")
check(cap.count(f"src host {old}") == 0 and cap.count(f"src host {new}") > 0,
      f"the router sees the flow's datagrams from {new} only")
check_eq(echo.sources, {(old, uc.getsockname()[1])}, "the server program only saw the client's first endpoint")
check_idle_pairs(pairs, f"all {N} idle IPv6 connections carry bytes both ways after the move")
echo.stop()
for c, a in pairs:
    c.close(); a.close()
for x in (busy_c, busy_a, srv, uc, us):
    x.close()
done()

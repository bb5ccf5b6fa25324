#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Path MTU discovery after a move: the router's link to the server gets a
smaller MTU (1,280) after the client moved, so the client's full-size
segments are dropped there, and the router answers each with an ICMP
error quoting it (IPv4: fragmentation needed; IPv6: packet too big) sent
to the client's new, physical address. VNAT gives the quote the
connection's virtual endpoints, so that the client's TCP finds its socket
and sends smaller segments; otherwise the connection stalls (IPv6 routers
never fragment, and IPv4 TCP sets don't-fragment).

    cli ─ c1/c2 ── rtr ── r9 (MTU 1280) ── s9 (MTU 1280) ─ srv

An IPv6 and an IPv4 connection move from subnet 1 to 2; then the MTU
drops; then 4 MiB go each way on each: SHA-256 equal, no reset, ICMP
errors translated on the client.
"""
import os
from vnattest import *

SIZE = int(os.environ.get("VNAT_TRANSFER_MIB", "4")) << 20
insmod()
topo = Topology(ipv6=True)
l6 = tcp_listen("srv", "::", 5000)
c6 = tcp_connect("cli", topo.server_addr6(), 5000)
a6, _ = l6.accept()
l4 = tcp_listen("srv", "0.0.0.0", 5002)
c4 = tcp_connect("cli", topo.server_addr(), 5002)
a4, _ = l4.accept()
stats("cli"); stats("srv")
wait_keyed("cli", "srv")
exchange(c6, a6, "IPv6, before the move", 64 << 10)
exchange(c4, a4, "IPv4, before the move", 64 << 10)

before = stats("cli")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] >= before["migrations_completed"] + 2,
         "both connections moved", timeout=60)
log("the router's link to the server and the server's get MTU 1280")
ip_batch("rtr", ["link set r9 mtu 1280"])
ip_batch("srv", ["link set s9 mtu 1280"])
t6 = Transfer(c6, a6, SIZE)
t4 = Transfer(c4, a4, SIZE)
t6.join()
t4.join()
s = stats("cli")
check(s["icmp_errors_translated"] > before["icmp_errors_translated"],
      f"the client translated the router's ICMP errors ({s['icmp_errors_translated']})")
log("client stats: " + ", ".join(f"{k}={v}" for k, v in s.items() if v and not k.startswith("hook")))
for x in (c6, a6, c4, a4, l6, l4):
    x.close()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A laptop that leaves its network and comes back, again and again: each
time at home it opens a new connection, which gets its key and then
moves with the laptop. The key streams it opened from home cannot be
closed once it has left (a FIN has no address to go from), so the
server holds each until `vcmp_idle_timeout_ms` (30 s); a new stream from
a source at `vcmp_max_clients_per_source` (4) takes the place of the one
silent longest, if that has been silent three seconds with nothing read or unread and every reply sent and
acknowledged (more than the 2 s a peer keeps a stream of keys for the
next ones).

    cli 10.0.1.2 <-> 10.0.2.2 (8 times) --- rtr --- srv 10.0.9.2

Before, the fifth or sixth connection's KEY streams were all refused
(the server's four places for the client were taken by the streams it
left behind): the connection got no key, its move failed at `required`,
and it died at the address the laptop no longer had (found by make
bench: a VNAT2 run that timed out in both guests of a sweep)."""
from vnattest import *

insmod()
# The streams left behind stay until they are replaced, however slow the
# guest: without the change they would fill the server's places.
check_eq(write_knob("vcmp_idle_timeout_ms", "600000"), None, "vcmp_idle_timeout_ms set to 600 s")
topo = Topology()
srv = tcp_listen("srv", "0.0.0.0", 6000)
for i in range(8):
    if topo.client_at != 1:
        topo.attach_client(1)
    c = tcp_connect("cli", topo.server_addr(), 6000)
    a, _ = srv.accept()
    log(f"connection {i}: from {c.getsockname()}")
    if not wait_keyed("cli", "srv"):
        break
    before = stats("cli")["migrations_completed"]
    topo.attach_client(2)
    if not wait_for(lambda: stats("cli")["migrations_completed"] > before, f"connection {i}: its move", timeout=30):
        break
    exchange(c, a, f"connection {i}, after its move", n=64 << 10)
    a.close()
    c.close()
s = stats("srv")
log(f"server: {s['vcmp_clients_accepted']} VCMP streams accepted, {s['vcmp_clients_refused']} refused, "
    f"{s['vcmp_clients_idle_closed']} closed as idle or spent")
check_eq(stats("cli")["keys_failed"], 0, "no key given up")
done()

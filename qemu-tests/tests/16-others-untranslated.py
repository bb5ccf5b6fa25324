#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""While the client migrates, connections between other hosts, and the
client's and server's own connections with third hosts, are never
translated: their packets pass the hooks untouched."""
from vnattest import *

insmod()
topo = Topology()
# A third host on the server's side of the router, and a pair of hosts of their own.
add_netns("third")
sh("ip link add t0 netns third type veth peer name r20 netns rtr")
ip_batch("rtr", ["addr add 10.0.20.1/24 dev r20", "link set r20 up"])
ip_batch("third", ["addr add 10.0.20.2/24 dev t0", "link set t0 up", "route add default via 10.0.20.1"])
add_netns("o1"); add_netns("o2")
veth("o1", "10.30.0.1", "o2", "10.30.0.2")

srv, c, a = topo.connection()
tsrv = tcp_listen("third", "0.0.0.0", 6000)
osrv = tcp_listen("o2", "0.0.0.0", 7000)
srv_third = tcp_connect("srv", "10.0.20.2", 6000)
third_a, _ = tsrv.accept()
o_c = tcp_connect("o1", "10.30.0.2", 7000)
o_a, _ = osrv.accept()
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "client migrated", timeout=30)
for label, x, y in [("server <-> third host", srv_third, third_a), ("o1 <-> o2", o_c, o_a), ("migrated", c, a)]:
    t = Transfer(x, y, 1 << 20)
    t.join()
for ns in ("third", "o1", "o2", "rtr"):
    s = stats(ns)
    check(all(s[k] == 0 for k in s if k.startswith("translated_")), f"{ns}: nothing translated")
rows = [r for r in connection_rows("srv") if r["remote"].startswith("10.0.20.2")]
check(len(rows) == 1 and rows[0]["state"] == "native", f"server's connection to the third host stays native: {rows}")
for s_ in (c, a, srv, tsrv, osrv, srv_third, third_a, o_c, o_a):
    s_.close()
done()

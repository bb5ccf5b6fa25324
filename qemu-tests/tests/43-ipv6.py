#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""IPv6 on the wire (issue 13): a dual-stack laptop moves, and its IPv6
connections move with it as its IPv4 ones do; then the server moves.

    cli ─ c1 ──┐                       ┌── s9 ─ srv
    cli ─ c2 ──┼── rtr (forwards) ─────┼── s10 ─ srv
               └ 10.0.s.0/24 and fd00:0:s::/64 on every link

 1. before insmod: an IPv6 connection is open (it is recorded, then moves);
 2. an IPv6 and an IPv4 transfer both ways, keyed; the client leaves
    subnet 1 for subnet 2 (both of its addresses change at once): every
    byte arrives (SHA-256), the router sees only the client's new IPv6
    address afterwards and no reset, and each connection kept its family;
 3. the server moves from subnet 9 to 10 during another IPv6 transfer;
 4. the client moves twice more, to subnet 3 and back home to 1: the
    connection opened before insmod carries bytes after each move, and
    at home the client's end is at its virtual endpoint again.
"""
import errno
import os
from vnattest import *

SIZE = int(os.environ.get("VNAT_TRANSFER_MIB", "16")) << 20


topo = Topology(ipv6=True)
old6, old4 = topo.client_addr6(), topo.client_addr()
srv6 = tcp_listen("srv", "::", 5000)
pre_c = tcp_connect("cli", topo.server_addr6(), 5000)
pre_a, _ = srv6.accept()
log(f"before insmod: {ep(pre_c.getsockname())} -> {ep(pre_c.getpeername())}")

insmod()
rows = connection_rows("cli")
check([r["local"] for r in rows if r["origin"] == "existing"] == [ep(pre_c.getsockname())],
      f"the IPv6 connection opened before insmod is recorded with its IPv6 endpoints: {rows}")

c6 = tcp_connect("cli", topo.server_addr6(), 5000)
a6, _ = srv6.accept()
srv4 = tcp_listen("srv", "0.0.0.0", 5002)
c4 = tcp_connect("cli", topo.server_addr(), 5002)
a4, _ = srv4.accept()
stats("cli"); stats("srv")
wait_keyed("cli", "srv")
t6 = Transfer(c6, a6, SIZE, hold=0.6)
t4 = Transfer(c4, a4, SIZE, hold=0.6)
t6.wait_progress(0.25)
t4.wait_progress(0.25)
before = stats("cli")["migrations_completed"]

log("the client leaves subnet 1 for subnet 2: 10.0.1.2 and fd00:0:1::2 go, 10.0.2.2 and fd00:0:2::2 come")
topo.attach_client(2)
new6, new4 = topo.client_addr6(), topo.client_addr()
wait_for(lambda: stats("cli")["migrations_completed"] >= before + 3,
         "the client's vnatd moved all three connections", timeout=60)
cap = Capture("rtr", "ip6 and tcp port 5000")
t6.release()
t4.release()
t6.wait_more(0.3)
cap.stop()
t6.join()
t4.join()
check(cap.count(f"host {old6}") == 0, f"the router saw no packet of {old6} after the move")
check(cap.count(f"host {new6}") > 0, f"the router saw packets of {new6}")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset on the wire")

rows = {r["local"]: r for r in connection_rows("cli")}
r6 = rows.get(ep(c6.getsockname()))
check(r6 is not None and r6["state"] == "migrated" and r6["local_physical"].startswith(f"[{new6}]:"),
      f"the IPv6 connection keeps its virtual endpoint in {old6} and is at {new6}: {r6}")
r4 = rows.get(ep(c4.getsockname()))
check(r4 is not None and r4["local_physical"].startswith(f"{new4}:"),
      f"the IPv4 connection moved to {new4}, an IPv4 address: {r4}")
srows = [r for r in connection_rows("srv") if r["remote"] == ep(c6.getsockname())]
check(len(srows) == 1 and srows[0]["remote_physical"].startswith(f"[{new6}]:"),
      f"the server maps the client's virtual {old6} to {new6}: {srows}")
exchange(pre_c, pre_a, "the connection opened before insmod, after the move")
# A connection keeps its family: a resume of the IPv6 one to an IPv4
# address is refused, and counts nothing as moved.
host, port = c6.getsockname()[:2]
err, ext = ynl_error("cli", "conn-resume", {"proto": 6, "local-addr6": host, "local-port": port,
                                            "remote-addr6": topo.server_addr6(), "remote-port": 5000,
                                            "new-addr": new4})
check_eq(err, errno.EAFNOSUPPORT, f"conn-resume of an IPv6 connection to {new4} is refused: {ext}")
s = stats("cli")
check(s["translated_prerouting_packets"] > 0 and s["translated_postrouting_packets"] > 0,
      "the client translates")

log("the server moves from subnet 9 to subnet 10 during an IPv6 transfer")
c6b = tcp_connect("cli", topo.server_addr6(), 5000)
a6b, _ = srv6.accept()
wait_keyed("cli", "srv")
t = Transfer(c6b, a6b, SIZE, hold=0.6)
t.wait_progress(0.25)
before = stats("srv")["migrations_completed"]
topo.attach_server(10)
wait_for(lambda: stats("srv")["migrations_completed"] >= before + 1,
         "the server's vnatd moved its connections", timeout=60)
# Its first completed move may be another connection's: the client sends
# this one's packets to the server's new address once it has its update.
wait_for(lambda: [r for r in ynl_connection_rows("cli") if r["local"] == ep(c6b.getsockname())
                  and r["remote_physical"].startswith("[fd00:0:10::2]:")],
         "the client sends the transfer's packets to fd00:0:10::2", timeout=60)
cap = Capture("rtr", "ip6 and tcp port 5000")
t.release()
t.wait_more(0.3)
cap.stop()
t.join()
check(cap.count("host fd00:0:9::2") == 0, "the router saw no packet of fd00:0:9::2 after the server's move")
check(cap.count("host fd00:0:10::2") > 0, "the router saw packets of fd00:0:10::2")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset on the wire")

log("two more moves of the client, the last one home: subnet 2 -> 3 -> 1")
for s_, addr in ((3, "fd00:0:3::2"), (1, old6)):
    before = stats("cli")["migrations_completed"]
    topo.attach_client(s_)
    wait_for(lambda: stats("cli")["migrations_completed"] > before, f"the client moved to {addr}", timeout=60)
    exchange(pre_c, pre_a, f"the connection opened before insmod, at {addr}")
rows = {r["local"]: r for r in connection_rows("cli")}
r = rows.get(ep(pre_c.getsockname()), {})
check(r.get("local_physical") == r.get("local"),
      f"back home, the client's end is at its virtual endpoint again: {r}")

for s in (pre_c, pre_a, c6, a6, c4, a4, c6b, a6b, srv6, srv4):
    s.close()
wait_for(lambda: stats("cli")["connections"] == 0 and stats("srv")["connections"] == 0,
         "closing the connections removes them on both ends")
done()

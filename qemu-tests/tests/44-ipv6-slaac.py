#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""IPv6 with SLAAC and DAD (issue 13): the laptop joins a network that
gives it its IPv6 address only by router advertisement, and the address is
tentative for a second (duplicate address detection) before it can be
used. The move waits for it, then resumes the IPv6 connection there.

    cli ─ c1 ── fd00:0:1::/64, fd00:0:1::2 by hand ──┐
    cli ─ c2 ── fd00:0:2::/64 by SLAAC, 10.0.2.2 ────┼── rtr ── s9 ── srv
    cli ─ c3 ── 10.0.3.2 only (no IPv6) ─────────────┘
                                                     (rtr sends the RAs)

 1. an IPv6 transfer both ways, keyed;
 2. the client's addresses on c1 go and c1 goes down; c2 comes up with
    10.0.2.2 and no IPv6 address; the router advertises fd00:0:2::/64 on it (as radvd would,
    every 300 ms); the client forms its address, runs DAD, and only then
    may send from it;
 3. every byte arrives (SHA-256), no move failed (a move to the address
    while it is tentative fails: the kernel does not send from it), the
    connection is at the SLAAC address, and the router sees no packet of
    fd00:0:1::2 after the move;
 4. the laptop then goes to subnet 3, which has IPv4 only (c3 gets
    10.0.3.2, no IPv6 address, no RA): its IPv4 connection moves and
    carries its bytes; the IPv6 one is told failed, with the reason, once
    resume_deadline_s (here 3 s) passed without an IPv6 address, and
    nothing else happens to it.
"""
import os
import struct
import threading
import time
from vnattest import *

SIZE = int(os.environ.get("VNAT_TRANSFER_MIB", "8")) << 20


def router_advertisements(ns, dev, prefix, stop):
    """Sends a router advertisement for `prefix`::/64 (on-link,
    autonomous) with this router as default, out of `dev` to all nodes,
    every 300 ms until `stop` is set: what radvd does, faster."""
    with netns(ns):
        ifindex = socket.if_nametoindex(dev)
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    # Type 134, code 0, checksum (the kernel's), hop limit 64, no flags,
    # router lifetime 1800 s, reachable and retransmission timers unset;
    # prefix information: length 64, on-link and autonomous, valid 1 day,
    # preferred 4 h.
    ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    ra += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, prefix)
    while not stop.is_set():
        s.sendto(ra, ("ff02::1", 0, 0, ifindex))
        stop.wait(0.3)
    s.close()


def global_addrs(ns, dev):
    out = sh(f"ip -n {ns} -6 -o addr show dev {dev} scope global")
    return [(l.split()[3].split("/")[0], "tentative" in l) for l in out.splitlines()]


topo = Topology(ipv6=True)
insmod()
srv6 = tcp_listen("srv", "::", 5000)
c = tcp_connect("cli", topo.server_addr6(), 5000)
a, _ = srv6.accept()
stats("cli"); stats("srv")
wait_keyed("cli", "srv")
t = Transfer(c, a, SIZE, hold=0.6)
t.wait_progress(0.25)
before = stats("cli")

log("the client leaves subnet 1; c2 comes up without an address; rtr advertises fd00:0:2::/64 on r2")
ip_batch("cli", ["addr del fd00:0:1::2/64 dev c1", "addr del 10.0.1.2/24 dev c1", "link set c1 down",
                 "link set c2 up", "addr add 10.0.2.2/24 dev c2", "route replace default via 10.0.2.1"])
stop = threading.Event()
ra = threading.Thread(target=router_advertisements, args=("rtr", "r2", "fd00:0:2::", stop))
ra.start()
wait_for(lambda: global_addrs("cli", "c2"), "the client formed an address in fd00:0:2::/64 by SLAAC", timeout=20)
new, tentative = global_addrs("cli", "c2")[0]
log(f"SLAAC address {new}, tentative at first: {tentative}")
wait_for(lambda: stats("cli")["migrations_completed"] > before["migrations_completed"],
         "the connection moved once the address was usable", timeout=30)
check(not any(t for _, t in global_addrs("cli", "c2")), f"{new} is no longer tentative")
cap = Capture("rtr", "ip6 and tcp port 5000")
t.release()
t.wait_more(0.3)
cap.stop()
t.join()
stop.set()
ra.join()
check_eq(stats("cli")["migrations_failed"], before["migrations_failed"], "no move failed")
check(cap.count("host fd00:0:1::2") == 0, "the router saw no packet of fd00:0:1::2 after the move")
check(cap.count(f"host {new}") > 0, f"the router saw packets of {new}")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset on the wire")
rows = [r for r in connection_rows("cli") if r["remote"] == f"[{topo.server_addr6()}]:5000"]
check(len(rows) == 1 and rows[0]["local_physical"].startswith(f"[{new}]:"),
      f"the connection is at the SLAAC address {new}: {rows}")

log("the laptop moves on to subnet 3, which has no IPv6")
check_eq(write_knob("resume_deadline_s", "3"), None, "resume_deadline_s 3")
srv4 = tcp_listen("srv", "0.0.0.0", 5002)
c4 = tcp_connect("cli", topo.server_addr(), 5002)
a4, _ = srv4.accept()
wait_keyed("cli", "srv")
mon = Monitor("cli")
before = stats("cli")
# The deadline counts from the address's loss, early in the batch.
moved = time.monotonic()
ip_batch("cli", [f"addr del {new}/64 dev c2", "addr del 10.0.2.2/24 dev c2", "link set c2 down", "link set c3 up",
                 "addr add 10.0.3.2/24 dev c3", "route replace default via 10.0.3.1"])
ev = mon.until(lambda e: e["event"] == "failed", "the IPv6 connection is told failed", timeout=30)
waited = time.monotonic() - moved
failed = ev[-1] if ev else {}
check(failed.get("local") == ep(c.getsockname()) and "no IPv6 address" in (failed.get("reason") or ""),
      f"the event names the IPv6 connection and why: {failed}")
check(waited >= 3, f"not before resume_deadline_s ({waited:.1f} s)")
check_eq(stats("cli")["migrations_failed"], before["migrations_failed"] + 1, "one migration failed, the IPv6 one")
rows = {r["local"]: r for r in connection_rows("cli")}
check(rows.get(ep(c4.getsockname()), {}).get("local_physical", "").startswith("10.0.3.2:"),
      f"the IPv4 connection moved to 10.0.3.2: {rows.get(ep(c4.getsockname()))}")
exchange(c4, a4, "the IPv4 connection on the IPv4-only network")
mon.stop()
check_eq(write_knob("resume_deadline_s", "120"), None, "resume_deadline_s back to 120")
for s in (c, a, srv6, c4, a4, srv4):
    s.close()
done()

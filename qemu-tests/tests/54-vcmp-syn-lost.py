#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A move whose VCMP connection loses its first SYN: the first packet on
a new network often is lost (a link whose queue is not active yet, a
neighbour not resolved), and TCP sends a lost SYN again only after its
initial retransmission timeout, a second, which the move would wait
through. The move's attempt starts a second connection beside the first,
from another port, when the first is not established 250 ms after it
began (RFC 8305's Connection Attempt Delay, as Happy Eyeballs does), and
goes on with whichever is established first.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2
                                  nft: forward, SYN to port 2031: each
                                  one's source port in a set; the first
                                  dropped

The client's new link is up before the move (so that only the router
drops a SYN). Before, one port came: the move's one connection, whose SYN
TCP sent again after a second. How long a move takes is measured by make
bench (bench_move.py), not here."""
import json

from vnattest import *

insmod()
topo = Topology()
srv, c, a = topo.connection()
wait_keyed("cli", "srv")
ip_batch("cli", ["link set c2 up"])
wait_for(lambda: "state UP" in sh("ip -n cli link show c2"), "the client's new link is up")
sh("ip netns exec rtr nft -f -", input="""table inet syn {
    set ports { type inet_service; flags dynamic; }
    set dropped { type inet_service; flags dynamic; }
    chain forward {
        type filter hook forward priority 0;
        tcp dport 2031 tcp flags & (syn | ack) == syn add @ports { tcp sport } counter
        tcp dport 2031 tcp flags & (syn | ack) == syn tcp dport != @dropped add @dropped { tcp dport } counter drop
    }
}
""")
log("the router drops the first SYN to port 2031 (its port goes in a set, and a SYN to a port in it passes)")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "the connection moves", timeout=30)
check_eq(stats("cli")["migrations_failed"], 0, "no move failed")
exchange(c, a, "after the move")
ruleset = json.loads(sh("ip netns exec rtr nft -j list table inet syn"))["nftables"]
ports = next(o["set"].get("elem", []) for o in ruleset if "set" in o and o["set"]["name"] == "ports")
syns, drops = (e["counter"]["packets"] for o in ruleset if "rule" in o for e in o["rule"]["expr"] if "counter" in e)
log(f"{syns} SYNs to port 2031 came, from ports {ports}; {drops} dropped")
check_eq(drops, 1, "the router dropped one SYN")
check(len(ports) >= 2, "the move's attempt started a second connection, from another port, for the SYN lost")
# The first connection was let go once the second was established, before
# TCP sent its SYN again (a second after it).
check_eq(syns, 2, "two SYNs in all: the first's was never sent again")
for x in (c, a, srv):
    x.close()
done()

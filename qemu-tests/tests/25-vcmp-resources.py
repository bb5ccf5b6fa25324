#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""What a VCMP client can cost vnatd is bounded (issue 11):

    cli 10.0.1.2 --- rtr --- srv 10.0.9.2
                      |
                m 10.0.7.2   has a connection of its own to srv:5001

1. m repeats a valid update of its own connection 300,000 times (6 MB)
   and never reads the replies: vnatd stops reading it once the replies it
   owes fill their buffer (counted), so m's sending stalls instead of the
   daemon's memory growing; the stalled client is closed when it has been
   idle for vcmp_idle_timeout_ms.
2. m opens 64 VCMP connections and dribbles a byte on each, every 0.3 s:
   with the first client, only vcmp_max_clients_per_source connections of m
   are served, the others are refused and counted; bytes that complete no message do not keep a client
   alive (they are closed as idle).
3. Meanwhile the client moves: its vnatd reaches srv's and the migration
   completes, and the moved connection carries bytes both ways.

m's updates are version 1, as a peer that speaks only it sends them
(vcmp_auth=off, so they are believed and nothing closes the stream for
refusals: what is tested is what the client costs, not what it may do; at
the default, required, version 1 is refused and such a stream is closed
after vcmp_max_refusals, test 26)."""
import os
import socket
import struct
import threading
import time
from vnattest import *


def upd(rva, rvp, lva, lvp, lpa, lpp):
    a = socket.inet_aton
    return struct.pack("!BBH4s4s4sHH", 1, 1, rvp, a(rva), a(lva), a(lpa), lvp, lpp)


def vcmp_socket():
    with netns("m"):
        return socket.create_connection((srv_addr, 2031), timeout=10)


insmod()
check_eq(write_knob("vcmp_auth", "off"), None, "vcmp_auth=off: version 1 only, no keys")
check_eq(write_knob("vcmp_idle_timeout_ms", "3000"), None, "vcmp_idle_timeout_ms set to 3000")
topo = Topology()
add_netns("m")
veth("m", "10.0.7.2", "rtr", "10.0.7.1")
sh("ip -n m route add default via 10.0.7.1")
srv, c, a = topo.connection()
srv_addr = topo.server_addr()
# m's own connection to srv, which m may legitimately update.
mine_l = tcp_listen("srv", "0.0.0.0", 5001)
mine = tcp_connect("m", srv_addr, 5001)
mine_a, _ = mine_l.accept()
mport = mine.getsockname()[1]
stats("m")

# 1. A client that never reads.
b = stats("srv")
flood = upd(srv_addr, 5001, "10.0.7.2", mport, "10.0.7.2", mport) * 300_000
hog = vcmp_socket()
hog.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
sent = [0]


def pour():
    hog.settimeout(5)
    try:
        while sent[0] < len(flood):
            sent[0] += hog.send(flood[sent[0]:sent[0] + 65536])
    except OSError:
        pass   # socket.timeout once stalled; a reset once vnatd closed it


pourer = threading.Thread(target=pour)
pourer.start()
wait_for(lambda: stats("srv")["vcmp_reads_paused"] > b["vcmp_reads_paused"],
         "vnatd stops reading the client that does not read its replies", timeout=60)

# 2. Dribblers, while the first client stalls.
b2 = stats("srv")
dribblers = [vcmp_socket() for _ in range(64)]
per_source = int(read_knob("vcmp_max_clients_per_source"))
wait_for(lambda: stats("srv")["vcmp_clients_refused"] - b2["vcmp_clients_refused"] >= 64 - per_source + 1,
         f"of 64 more connections from m, all beyond {per_source} from one address are refused", timeout=30)
stop = threading.Event()


def dribble():
    while not stop.is_set():
        for s in dribblers:
            try:
                s.send(b"\x01")
            except OSError:
                pass
        stop.wait(0.3)


dribbler = threading.Thread(target=dribble)
dribbler.start()

# 3. The client moves meanwhile.
bc = stats("cli")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] > bc["migrations_completed"],
         "the client's migration completes while m floods and dribbles", timeout=60)
c.sendall(b"after the move")
check_eq(recv_exactly(a, 14), b"after the move", "the moved connection carries bytes to the server")
a.sendall(b"and back")
check_eq(recv_exactly(c, 8), b"and back", "and back")

pourer.join()
check(sent[0] < len(flood) // 4, f"the client that never reads stalled after {sent[0]} of {len(flood)} bytes")
took = stats("srv")["updates_accepted"] - b["updates_accepted"]
check(took < 300_000 // 4, f"vnatd took {took} updates of the flood: what the buffers hold, not the flood")
# Closed as idle: what it sent completes no message while it is paused.
wait_for(lambda: stats("srv")["vcmp_clients_idle_closed"] - b["vcmp_clients_idle_closed"] >= per_source,
         "the stalled client and the dribblers are closed as idle", timeout=30)
stop.set()
dribbler.join()
s = stats("srv")
log("srv stats: " + ", ".join(f"{k}={v}" for k, v in s.items() if k.startswith("vcmp")))
for x in [hog, mine, mine_a, mine_l, c, a, srv] + dribblers:
    x.close()
done()

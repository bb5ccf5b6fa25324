#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Connections opened one after another get their keys on one VCMP stream:
the client's vnatd keeps the stream of its KEYs (its X25519 exchange done)
open for two seconds after the last answer, and the KEYs of connections
opened meanwhile go on it; then it closes it, and the next connection's
KEY opens another.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2:5000

Before, every batch of KEYs opened its own stream (a TCP handshake and an
X25519 exchange at both ends per batch): connections opened one at a time
cost one each, which made TCP_CRR with VNAT less than half as fast as
without (issue 16)."""
from vnattest import *

N = 4

insmod()
topo = Topology()
srv = tcp_listen("srv", "0.0.0.0", 5000)
before = stats("srv")["vcmp_clients_accepted"]
pairs = []
for i in range(N):
    c = tcp_connect("cli", topo.server_addr(), 5000)
    a, _ = srv.accept()
    pairs.append((c, a))
    # Each connection is keyed before the next opens: a batch of its own.
    wait_keyed("cli", "srv")
cs, ss = stats("cli"), stats("srv")
check_eq((cs["keys_established"], ss["keys_established"]), (N, N), f"{N} keys, established at each end")
check_eq(ss["vcmp_clients_accepted"] - before, 1, f"the server accepted one VCMP stream for the {N} keys")


def key_streams():
    return sh("ip netns exec cli ss -Htn state established '( dport = :2031 )'").count("\n")


# Kept two seconds after its last answer, then closed (by the client: the
# server's vcmp_idle_timeout_ms is 30 s).
wait_for(lambda: key_streams() == 0, "the client closed its idle stream of keys", timeout=10)
c = tcp_connect("cli", topo.server_addr(), 5000)
a, _ = srv.accept()
pairs.append((c, a))
wait_keyed("cli", "srv")
check_eq(stats("srv")["vcmp_clients_accepted"] - before, 2, "the next key opened a new stream")
# The keys work: the first connection moves under its key.
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == N + 1, "every connection moves", timeout=30)
check_eq(stats("cli")["migrations_failed"], 0, "no move failed")
for c, a in pairs:
    exchange(c, a, "after the move", n=16 << 10)
for c, a in pairs:
    c.close()
    a.close()
srv.close()
done()

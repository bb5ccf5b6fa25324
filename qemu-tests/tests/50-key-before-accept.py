#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A busy server accepts late: the client's vnatd asks for the keys of
connections that are still in the server's accept queue. The server's
vnatd refuses them (it records a connection when the application accepts
it), but not as an attacker's guesses: the connections exist in its
kernel, so the KEY stream is not closed for refusals, and every
connection is keyed once accepted and moves.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2:5000 (backlog 64)

Before, each such refusal counted as suspicious: the ninth closed the
stream with a reset, which could take the KEY_R of a key the server had
just granted with it, leaving the server keyed and the client not; the
connection's move was then refused (make check, 2026-12-04: 19 of 1,001
connections in 14-thousand-connections.py)."""
from vnattest import *

N = 32

insmod()
topo = Topology()
srv = tcp_listen("srv", "0.0.0.0", 5000)
closed = stats("srv")["vcmp_refusals_closed"]
conns = [tcp_connect("cli", topo.server_addr(), 5000) for _ in range(N)]
log(f"{N} connections wait in the server's accept queue")
# The client asks at once and is refused: a KEY for each connection.
wait_for(lambda: stats("cli")["keys_refused"] >= N, f"the server refused the first {N} keys")
pairs = [(c, srv.accept()[0]) for c in conns]
log(f"the server accepted the {N} connections")
wait_keyed("cli", "srv", timeout=30)
cs, ss = stats("cli"), stats("srv")
check_eq((cs["keys_established"], ss["keys_established"]), (N, N), f"{N} keys, established at each end")
check_eq(ss["vcmp_refusals_closed"] - closed, 0, "no KEY stream was closed for refusals")
check_eq(cs["keys_failed"], 0, "no key was given up")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == N, "every connection moves", timeout=30)
check_eq(stats("cli")["migrations_failed"], 0, "no move failed")
check_idle_pairs(pairs, f"all {N} connections carry bytes both ways after the move")
for c, a in pairs:
    c.close()
    a.close()
srv.close()
done()

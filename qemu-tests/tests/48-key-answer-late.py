#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A key whose answer comes late (a busy peer, under load): the server's
vnatd keys the connection when it reads the client's KEY, and its KEY_R
is held back (dropped at the server's output, TCP resends it) for longer
than vcmp_timeout_ms. The client waits for it on the same stream, so both
ends get the same key and the connection moves.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2
                                          nft: output, tcp sport 2031, the
                                          payload's second byte 19 (KEY_R):
                                          dropped for HOLD seconds

Before, the client gave the stream up after vcmp_timeout_ms (2 s) and
asked again on a new one; the server, whose record was keyed, refused
every later request; the client gave up unkeyed after 12 refusals, and
every move of the connection failed (the server believes only version 2
for it). Full make check runs met that twice (tests 45 and 46)."""
from vnattest import *

HOLD = 4   # seconds: longer than vcmp_timeout_ms (2 s) and a tick

insmod()
topo = Topology()
sh("ip netns exec srv nft -f -", input="""table inet late {
    chain out {
        type filter hook output priority 0;
        tcp sport 2031 @ih,8,8 19 counter drop
    }
}
""")
srv, c, a = topo.connection()
t0 = time.monotonic()
wait_for(lambda: "packets 0 " not in sh("ip netns exec srv nft list table inet late"),
         "the server answered the KEY (and its KEY_R was dropped)", timeout=15)
time.sleep(max(0.0, t0 + HOLD - time.monotonic()))
log(f"the server's KEY_R was held back for {time.monotonic() - t0:.1f} s")
log(next(l.strip() for l in sh("ip netns exec srv nft list table inet late").splitlines() if "counter" in l))
sh("ip netns exec srv nft delete table inet late")
wait_keyed("cli", "srv", timeout=40)
cs, ss = stats("cli"), stats("srv")
check_eq((cs["keys_established"], ss["keys_established"]), (1, 1), "one key, established at each end")
check_eq(cs["keys_refused"], 0, "no request of the client refused")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "the connection moves (version 2, under the key)",
         timeout=30)
check_eq(stats("cli")["migrations_failed"], 0, "no move failed")
exchange(c, a, "after the move")
for x in (c, a, srv):
    x.close()
done()

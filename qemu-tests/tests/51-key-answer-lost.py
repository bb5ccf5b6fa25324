#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A key whose answer is lost with its stream: the server's vnatd keys the
connection when it reads the client's KEY, but its KEY_R never arrives
(dropped at the server's output), and after 30 s of silence the client
gives the stream up and asks again on a new one. The server, keyed
already, grants the key again: the request carries the ISN the client
opened the connection with, nothing went under the first key yet, and it
is less than a minute old. Both
ends then have the same key, and the connection moves under it.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2
                                          nft: output, tcp sport 2031, the
                                          payload's second byte 19 (KEY_R):
                                          dropped until the client's second
                                          stream comes (TCP resends what it
                                          dropped of that stream after)

Before, the server refused the second request (keyed already) and every
one after it; the client gave up unkeyed after 12 refusals, and every move
of the connection was refused (the server believes only version 2 for a
keyed connection). The same end came from a stream closed with a reset
while its KEY_R was queued (CI's make check of 2026-12-04, test 14)."""
from vnattest import *

insmod()
topo = Topology()
sh("ip netns exec srv nft -f -", input="""table inet lost {
    chain out {
        type filter hook output priority 0;
        tcp sport 2031 @ih,8,8 19 counter drop
    }
}
""")
streams = stats("srv")["vcmp_clients_accepted"]
srv, c, a = topo.connection()
wait_for(lambda: stats("srv")["keys_established"] == 1, "the server keyed the connection (its KEY_R dropped)")
check_eq(stats("cli")["keys_established"], 0, "the client has no key")
wait_for(lambda: stats("srv")["vcmp_clients_accepted"] > streams + 1,
         "the client gave its silent stream up and opened another", timeout=45)
sh("ip netns exec srv nft delete table inet lost")
log("the KEY_R drop is gone")
wait_keyed("cli", "srv", timeout=20)
cs, ss = stats("cli"), stats("srv")
check_eq((cs["keys_established"], ss["keys_established"], ss["keys_regranted"]), (1, 1, 1),
         "one key at the client; at the server one, granted again once")
check_eq(cs["keys_failed"], 0, "no key given up")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "the connection moves (version 2, under the key)",
         timeout=30)
check_eq(stats("cli")["migrations_failed"], 0, "no move failed")
exchange(c, a, "after the move")
for x in (c, a, srv):
    x.close()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A key whose answer the move cuts off: the client leaves its network
after its KEYs went out and before the answers came. The server keyed the
connections when it read the KEYs; their KEY_Rs go to the address that is
gone. The client cannot ask again from its new address (a key is granted
only to the connection's remote physical address, the old one), so it
takes the key the server granted: both derive the key's id from the
stream key and the request. The move then goes under that key at once.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2
                                          nft: output, tcp sport 2031, the
                                          payload's second byte 19 (KEY_R):
                                          dropped (in flight when the
                                          client moved)

The connection was open before insmod: its key is asked for when VNAT
records it, as in CI's make check of 2026-12-05, test 13, where a slow
guest moved while the key was being agreed. (A connection opened after
insmod takes the same path; it is not here because its KEY may come
before the server's program accepted it, and the refusal that answers
such a KEY, a KEY_R too, would be dropped.) Before, the client waited 30 s
for the answer, gave up (its KEY could not go again from the address that
was gone), and the server, keyed, refused its move: the connection never
moved."""
from vnattest import *

topo = Topology()
srv, c1, a1 = topo.connection()
sh("ip netns exec srv nft -f -", input="""table inet cut {
    chain out {
        type filter hook output priority 0;
        tcp sport 2031 @ih,8,8 19 counter drop
    }
}
""")
insmod()
wait_for(lambda: stats("srv")["keys_established"] == 1, "the server keyed the connection (its KEY_R dropped)")
check_eq(stats("cli")["keys_established"], 0, "the client has no key")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "the connection moves", timeout=15)
cs, ss = stats("cli"), stats("srv")
check_eq((cs["keys_assumed"], cs["keys_failed"]), (1, 0),
         "the client took the key the server granted, and gave none up")
check_eq((ss["updates_accepted"], ss["vcmp_auth_failed"], ss["vcmp_v1_refused"]), (1, 0, 0),
         "the server accepted the move under the key")
check_eq(cs["migrations_failed"], 0, "no move failed")
exchange(c1, a1, "after the move")
for x in (c1, a1, srv):
    x.close()
done()

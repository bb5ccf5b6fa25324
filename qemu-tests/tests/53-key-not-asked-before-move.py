#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A connection whose KEY never reached the server before the client
left its network: the client asks again from its new address, and the
server refuses (a key is granted only to the connection's remote physical
address, which would otherwise let anyone who knows a connection's four
addresses take its key). At the default vcmp_auth (required) the move then
fails, cleanly and within seconds: the connection is left as it was, the
server's end untouched. This is the limit of test 52's case, and why test
13 waits for the key before it moves.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2
    nft (cli, output): from 10.0.1.2 to port 2031, dropped (no KEY goes
    out from the first address)

Before the change of test 52, the client waited for the first stream's
silence (the address gone) and gave the key up; now it asks again at
once, from where it is."""
from vnattest import *

topo = Topology()
srv, c, a = topo.connection()
sh("ip netns exec cli nft -f -", input="""table inet nokey {
    chain out {
        type filter hook output priority 0;
        ip saddr 10.0.1.2 tcp dport 2031 counter drop
    }
}
""")
insmod()
wait_for(lambda: connection_rows("cli")[0]["auth"] == "pending", "the client's connection waits for its key")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_failed"] == 1, "the move fails", timeout=30)
cs, ss = stats("cli"), stats("srv")
log("client: " + nonzero(cs, "key", "migration"))
log("server: " + nonzero(ss, "key", "vcmp", "update"))
check_eq((cs["keys_failed"], cs["keys_established"], cs["keys_assumed"], cs["migrations_completed"]), (1, 0, 0, 0),
         "the client got no key and did not move")
check(ss["keys_refused"] >= 1 and ss["keys_established"] == 0,
      f"the server refused the KEYs from the new address ({ss['keys_refused']}) and granted none")
check_eq(ss["updates_accepted"], 0, "the server accepted no update")
row = connection_rows("srv")[0]
check_eq((row["state"], row["remote_physical"]), ("native", f"10.0.1.2:{c.getsockname()[1]}"),
         "the server's end is as it was")
for x in (c, a, srv):
    x.close()
done()

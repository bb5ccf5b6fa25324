#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The server forgot some of the connections a client moves (its
application dropped them while the client could not hear: the resets were
lost), so it refuses their updates, and after vcmp_max_refusals such
refusals closes the client's VCMP stream, its replies so far sent: the
replies then arrive together with the stream's FIN. The client reads them
all the same: the connection the server still has moves and carries bytes
both ways, the two forgotten ones are reported refused, at the first
attempt.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2:5000
    three connections, keyed; srv drops what it sends from port 5000 with
    RST set, then aborts two of them (SO_LINGER 0): their records go, the
    client's stay
    vcmp_max_refusals=1: the server closes the stream at the second refusal

Before the client read a stream whose peer had closed it (CLOSE_WAIT),
the replies that came with the FIN were never read: the attempt looked
unanswered, every attempt the same, and the move of the connection the
server had moved too failed at the client (no bytes after the move)."""
import socket
import struct
from vnattest import *

insmod()
check_eq(write_knob("vcmp_max_refusals", "1"), None, "vcmp_max_refusals=1")
# A failure is over in seconds rather than resume_deadline_s's minutes.
check_eq(write_knob("vcmp_retries", "1"), None, "vcmp_retries=1")
check_eq(write_knob("resume_deadline_s", "0"), None, "resume_deadline_s=0")
topo = Topology()
srv = tcp_listen("srv", "0.0.0.0", 5000)
pairs = []
for _ in range(3):
    c = tcp_connect("cli", topo.server_addr(), 5000)
    a, _ = srv.accept()
    pairs.append((c, a))
stats("cli"); stats("srv")
check(wait_keyed("cli", "srv"), "the three connections have their keys")
old = topo.client_addr()

# The server's application drops two of them; its resets never arrive.
sh("ip netns exec srv nft -f -", input="""table inet noreset {
    chain out {
        type filter hook output priority 0;
        tcp sport 5000 tcp flags & rst != 0 counter drop
    }
}
""")
for _, a in pairs[1:]:
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    a.close()
wait_for(lambda: stats("srv")["connections"] == 1, "the server forgot two of the three connections")
check_eq(stats("cli")["connections"], 3, "the client still has all three")

c, a = pairs[0]
before = stats("cli")
topo.attach_client(2)
new = topo.client_addr()
wait_for(lambda: stats("cli")["updates_refused"] - before["updates_refused"] == 2
         and stats("cli")["migrations_completed"] - before["migrations_completed"] == 1,
         "the client took the server's answers: one moved, two refused", timeout=30)
cs, ss = stats("cli"), stats("srv")
log("client: " + nonzero(cs, "vcmp", "migration", "update"))
log("server: " + nonzero(ss, "vcmp", "update"))
check(ss["vcmp_refusals_closed"] >= 1, f"the server closed the stream after its refusals ({ss['vcmp_refusals_closed']})")
check_eq(cs["migrations_failed"] - before["migrations_failed"], 2, "only the two refused moves failed")
exchange(c, a, "the connection the server kept, after the move", n=64 << 10)
rows = [r for r in connection_rows("cli") if r["local_physical"].startswith(new + ":")]
check(len(rows) == 1 and rows[0]["local"] == "%s:%d" % c.getsockname(),
      f"only the kept connection is at {new}: {rows}")
for x in (c, a, srv, *(c for c, _ in pairs[1:])):
    x.close()
done()

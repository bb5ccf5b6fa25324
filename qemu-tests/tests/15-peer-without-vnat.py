#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The peer does not run VNAT (here: a firewall drops everything to its port
2031, the worst case, as updates then time out): the migration fails
cleanly after the bounded retries, counted and logged once; the connection
is neither reset nor leaked, and works again when the client returns to its
old network. The client's vnatd gets no key for the connection either (its
HELLOs are dropped too): at vcmp_auth=opportunistic, set here, it then
tries version 1, which is what this test follows; at the default, required,
a connection without a key does not move at all (test 26).
A dropped update cannot be told from a network that is not ready yet, which
a move retries until resume_deadline_s (test 38): set to 0 here, the
paper's bounded retries."""
import socket
from vnattest import *

insmod()
check_eq(write_knob("vcmp_auth", "opportunistic"), None, "vcmp_auth=opportunistic")
topo = Topology()
# Nothing from the server host's VNAT ever answers.
sh("ip netns exec srv nft -f -", input="""
table inet novnat {
    chain in { type filter hook input priority -300; tcp dport 2031 drop; }
}
""")
srv, c, a = topo.connection()
old = topo.client_addr()
check_eq(write_knob("vcmp_retries", "1"), None, "vcmp_retries=1")
check_eq(write_knob("vcmp_timeout_ms", "500"), None, "vcmp_timeout_ms=500")
check_eq(write_knob("resume_deadline_s", "0"), None, "resume_deadline_s=0")
cap = Capture("rtr", "tcp port 5000 and tcp[tcpflags] & tcp-rst != 0")
mark = kmsg_mark()
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_failed"] == 1, "the migration failed", timeout=30)
check(match_line(dmesg_since(mark), r"did not answer after 2 attempt\(s\); 1 connection\(s\) left as they were"), "failure logged")
rows = connection_rows("cli")
check(len(rows) == 1 and rows[0]["state"] == "native" and rows[0]["local_physical"].startswith(old + ":"),
      f"the connection is left as it was: {rows}")
check(rows and (rows[0]["vcmp_state"], rows[0]["vcmp_attempts"]) == ("failed", 2),
      f"vnatctl list says why: the peer's vnatd failed after 2 attempts ({rows})")
check_eq(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0, "the client's socket has no error")
# Back on the old network, the connection simply works again.
topo.attach_client(1)
c.sendall(b"hello again")
a.settimeout(30)
check_eq(a.recv(11), b"hello again", "bytes flow after returning")
cap.stop()
check_eq(cap.count(""), 0, "no reset on port 5000")
check_eq(stats("srv")["translated_local_in_packets"], 0, "the server never translated")
c.close(); a.close(); srv.close()
wait_for(lambda: stats("cli")["connections"] == 0, "and nothing leaks: the record goes at close")
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A peer that answers a move and closes its VCMP stream at once, the
answer and the FIN in one segment (as a paper-only vnatd may, or ours when
it closes a stream after vcmp_max_refusals refusals, its replies so far
sent): the mover reads the answer, and the move completes at its first
attempt.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2:5000
    vcmp_auth=off: the paper's version 1
    srv: nft forwards port 2031 to 2032 (DNAT), where this test answers the
    update 0.2 s later (VNAT_UPD_R: the server's endpoint as it is)
    corked, then closes: one segment carries the reply and the FIN

Before, the mover read replies only from an established stream: one
whose peer had closed it (CLOSE_WAIT) looked dead and unanswered, every
attempt the same, and the move failed."""
import socket
import struct
import threading
import time
from vnattest import *

insmod()
check_eq(write_knob("vcmp_auth", "off"), None, "vcmp_auth=off: version 1")
check_eq(write_knob("vcmp_retries", "1"), None, "vcmp_retries=1")
check_eq(write_knob("resume_deadline_s", "0"), None, "resume_deadline_s=0")
topo = Topology()
srv, c, a = topo.connection()
server = topo.server_addr()
# The new network's link is up before the move, as a laptop's is: a SYN
# sent through a link a moment old may be lost, which starts a second one.
ip_batch("cli", ["link set c2 up"])
sh("ip netns exec srv nft -f -", input=f"""table ip peer {{
    chain pre {{
        type nat hook prerouting priority dstnat;
        tcp dport 2031 dnat to {server}:2032
    }}
}}
""")
peer = tcp_listen("srv", "0.0.0.0", 2032)
updates = []


def answer():
    """Each stream: one VNAT_UPD read, its VNAT_UPD_R and the FIN in one
    segment."""
    while True:
        try:
            s, _ = peer.accept()
        except OSError:
            return
        try:
            msg = recv_exactly(s, 20)
            updates.append(msg)
            # Answered a little later, as a busy peer does: the mover has
            # looked at its stream since and found nothing yet, so the
            # answer and the FIN come to a stream it waits on.
            time.sleep(0.2)
            reply = struct.pack("!BBH4s4s4sHH", 1, 2, 0, bytes(4), bytes(4), socket.inet_aton(server), 0, 5000)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            s.sendall(reply)
        finally:
            s.close()


threading.Thread(target=answer, daemon=True).start()
# On the server's side of the router only (on "any", a forwarded packet
# is seen twice).
cap = Capture("rtr", "tcp dst port 2031 and tcp[tcpflags] & tcp-syn != 0", iface="r9")
# A FIN with data: a payload longer than zero.
fins = Capture("rtr", "tcp src port 2031 and tcp[tcpflags] & tcp-fin != 0"
               " and ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) > 0", iface="r9")
before = stats("cli")
topo.attach_client(2)
new = topo.client_addr()
wait_for(lambda: stats("cli")["migrations_completed"] - before["migrations_completed"] == 1
         or stats("cli")["migrations_failed"] - before["migrations_failed"] == 1,
         "the move is over", timeout=30)
cap.stop()
fins.stop()
cs = stats("cli")
log("client: " + nonzero(cs, "vcmp", "migration", "update"))
check(len(updates) >= 1 and updates[0][:2] == b"\x01\x01", f"the peer read a VNAT_UPD ({updates[:1]})")
check(fins.count("") >= 1, "its answer and its FIN came in one segment")
check_eq((cs["migrations_completed"] - before["migrations_completed"],
          cs["migrations_failed"] - before["migrations_failed"]), (1, 0), "the move completed, none failed")
check_eq(cap.count(""), 1, "at the first attempt: one VCMP connection")
rows = connection_rows("cli")
check(len(rows) == 1 and rows[0]["local_physical"].startswith(new + ":")
      and rows[0]["remote_physical"] == f"{server}:5000" and rows[0]["vcmp_attempts"] == 1,
      f"the client is at {new}, its peer where it said: {rows}")
peer.close()
for x in (c, a, srv):
    x.close()
done()

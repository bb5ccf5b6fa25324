#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The server moves to another network in the middle of a transfer: every
byte arrives intact both ways, nothing is reset, and the router sees only
the server's new address after the move."""
import os
from vnattest import *

SIZE = int(os.environ.get("VNAT_TRANSFER_MIB", "8")) << 20
insmod()
topo = Topology()
srv, c, a = topo.connection()
old = topo.server_addr()
# The senders stop at 60 % until the capture is armed (Transfer.hold).
t = Transfer(c, a, SIZE, hold=0.6)
t.wait_progress(0.25)
before = stats("srv")["migrations_completed"]
topo.attach_server(10)
new = topo.server_addr()
wait_for(lambda: stats("srv")["migrations_completed"] > before, "server's vnatd completed the migration", timeout=30)
cap = Capture("rtr", "tcp port 5000")
t.release()
t.wait_more(0.3)
cap.stop()
t.join()
check(cap.count(f"host {new}") > 0, f"router saw packets of {new}")
check_eq(cap.count(f"host {old}"), 0, f"router packets of {old} after the move")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "resets on the wire")
rows = connection_rows("srv")
check(any(r["local"] == f"{old}:5000" and r["local_physical"] == f"{new}:5000" and r["state"] == "migrated" for r in rows),
      f"server keeps virtual {old}:5000 on physical {new}:5000: {rows}")
rows = connection_rows("cli")
check(any(r["remote"] == f"{old}:5000" and r["remote_physical"] == f"{new}:5000" for r in rows),
      f"client maps the server's virtual {old} to {new}: {rows}")
c.close(); a.close(); srv.close()
done()

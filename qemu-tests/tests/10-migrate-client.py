#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The client moves to another network in the middle of a transfer: the
connection survives with every byte intact both ways, nothing is reset, and
the router sees only the new client address after the move (paper 3.6)."""
import os
from vnattest import *

SIZE = int(os.environ.get("VNAT_TRANSFER_MIB", "8")) << 20
insmod()
topo = Topology()
srv, c, a = topo.connection()
old = topo.client_addr()
# The senders stop at 60 % until the capture is armed (Transfer.hold).
t = Transfer(c, a, SIZE, hold=0.6)
t.wait_progress(0.25)
before = stats("cli")

# The laptop leaves subnet 1 and joins subnet 2: its old address is gone.
topo.attach_client(2)
new = topo.client_addr()
wait_for(lambda: stats("cli")["migrations_completed"] > before["migrations_completed"],
         "client's vnatd completed the migration", timeout=30)
cap = Capture("rtr", "tcp port 5000")
t.release()
t.wait_more(0.3)
cap.stop()
t.join()
n_old, n_new = cap.count(f"host {old}"), cap.count(f"host {new}")
check(n_old == 0, f"router saw no packet of {old} after the move ({n_old})")
check(n_new > 0, f"router saw packets of {new} ({n_new})")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset on the wire")

rows = [r for r in connection_rows("cli") if r["remote"] == f"{topo.server_addr()}:5000"]
check(len(rows) == 1 and rows[0]["state"] == "migrated" and rows[0]["local"].startswith(old + ":")
      and rows[0]["local_physical"].startswith(new + ":"),
      f"client keeps its virtual endpoint {old} and maps it to {new}: {rows}")
srows = [r for r in connection_rows("srv") if r["local"] == f"{topo.server_addr()}:5000"]
check(len(srows) == 1 and srows[0]["remote"].startswith(old + ":")
      and srows[0]["remote_physical"].startswith(new + ":"),
      f"server maps the client's virtual {old} to {new}: {srows}")
s = stats("srv")
check(s["updates_accepted"] >= 1, "server accepted the update")
check(s["translated_local_in_packets"] > 0 and s["translated_local_out_packets"] > 0, "server translates")
s = stats("cli")
check(s["translated_prerouting_packets"] > 0 and s["translated_postrouting_packets"] > 0, "client translates")
log("client stats: " + ", ".join(f"{k}={v}" for k, v in s.items() if v and not k.startswith("hook")))
# Closing removes the state on both ends.
c.close(); a.close(); srv.close()
wait_for(lambda: stats("cli")["connections"] == 0 and stats("srv")["connections"] == 0,
         "closing the migrated connection removes it on both ends")
done()

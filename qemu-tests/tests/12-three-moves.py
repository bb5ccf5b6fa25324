#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Three consecutive moves of the client, A -> B -> C -> back to A, during a
transfer: the virtual connection never changes, bytes stay intact, and back
home nothing is translated any more on either end."""
import os
from vnattest import *

SIZE = int(os.environ.get("VNAT_TRANSFER_MIB", "8")) << 20
insmod()
topo = Topology()
srv, c, a = topo.connection()
virt = ep(c.getsockname())
# The senders stop at 60 % until the moves are over (Transfer.hold): the
# rest of the transfer flows once home.
t = Transfer(c, a, SIZE, hold=0.6)
for step, (subnet, frac) in enumerate([(2, 0.15), (3, 0.3), (1, 0.45)], 1):
    t.wait_progress(frac)
    done_before = stats("cli")["migrations_completed"]
    topo.attach_client(subnet)
    wait_for(lambda: stats("cli")["migrations_completed"] > done_before, f"move {step} to subnet {subnet} completed", timeout=30)
    rows = connection_rows("cli")
    check(len(rows) == 1 and rows[0]["local"] == virt and rows[0]["local_physical"].startswith(topo.client_addr() + ":"),
          f"after move {step}, virtual {virt} on physical {topo.client_addr()}: {rows}")
wait_for(lambda: all(r["state"] == "native" for r in connection_rows("cli") + connection_rows("srv")),
         "back home, both ends are native again")
# From now on nothing is translated while the rest of the transfer flows.
before = {ns: stats(ns) for ns in ("cli", "srv")}
at_home = min(t.progress.values())
t.join()
check(SIZE - at_home >= SIZE // 4, f"{SIZE - at_home} bytes flowed once home")
for ns in ("cli", "srv"):
    after = stats(ns)
    check(all(after[k] == before[ns][k] for k in after if k.startswith("translated_")), f"{ns}: nothing translated once home")
c.close(); a.close(); srv.close()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A connection opened before insmod is a virtual connection too and
migrates like the others (paper section 4)."""
from vnattest import *

topo = Topology()
srv, c, a = topo.connection()
old = topo.client_addr()
insmod()
rows = connection_rows("cli")
check(len(rows) == 1 and rows[0]["origin"] == "existing" and rows[0]["local"] == ep(c.getsockname()),
      f"the client's existing connection is recorded: {rows}")
check(any(r["origin"] == "existing" for r in connection_rows("srv")), "and the server's")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "the existing connection migrated", timeout=30)
t = Transfer(c, a, 4 << 20)
t.join()
c.close(); a.close(); srv.close()
done()

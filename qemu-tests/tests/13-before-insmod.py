#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A connection opened before insmod is a virtual connection too: it is
recorded, gets its key (the end with the lower virtual endpoint asks) and
migrates like the others (paper section 4).

The move waits until both ends have the key: a connection whose KEY had
not reached the peer when its address went cannot move at the default
`vcmp_auth` (`required`; the peer grants keys only to the old address),
and in CI's make check of 2026-12-05 a slow guest moved before the answer
came (that case, a KEY that went out, is test 52's)."""
from vnattest import *

topo = Topology()
srv, c, a = topo.connection()
old = topo.client_addr()
insmod()
rows = connection_rows("cli")
check(len(rows) == 1 and rows[0]["origin"] == "existing" and rows[0]["local"] == ep(c.getsockname()),
      f"the client's existing connection is recorded: {rows}")
check(any(r["origin"] == "existing" for r in connection_rows("srv")), "and the server's")
wait_keyed("cli", "srv")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "the existing connection migrated", timeout=30)
t = Transfer(c, a, 4 << 20)
t.join()
c.close(); a.close(); srv.close()
done()

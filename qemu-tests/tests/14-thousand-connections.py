#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""1,000 idle connections and a busy one migrate in one move, over one
batched VCMP stream; every one of them carries bytes both ways afterwards."""
import os
import resource
from vnattest import *

N = int(os.environ.get("VNAT_IDLE_CONNECTIONS", "1000"))
resource.setrlimit(resource.RLIMIT_NOFILE, (4 * N + 256, 4 * N + 256))
insmod()
topo = Topology()
srv = tcp_listen("srv", "0.0.0.0", 5000)
pairs = []
for i in range(N):
    c = tcp_connect("cli", topo.server_addr(), 5000)
    a, _ = srv.accept()
    pairs.append((c, a))
busy_c = tcp_connect("cli", topo.server_addr(), 5000)
busy_a, _ = srv.accept()
t = Transfer(busy_c, busy_a, 8 << 20)
t.wait_progress(0.2)
before = stats("cli")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] - before["migrations_completed"] == N + 1,
         f"all {N + 1} connections migrated", timeout=120)
s = stats("cli")
check_eq(s["migrations_failed"], before["migrations_failed"], "no migration failed")
check_eq(s["updates_sent"] - before["updates_sent"], N + 1, "one update per connection")
t.join()
check_idle_pairs(pairs, f"all {N} idle connections carry bytes both ways after the move")
for c, a in pairs:
    c.close(); a.close()
busy_c.close(); busy_a.close(); srv.close()
done()

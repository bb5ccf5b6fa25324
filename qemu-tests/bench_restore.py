#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench-restore, inside a one-vCPU guest whose clock counts
instructions (QEMU -icount shift=0,align=off,sleep=off): the paper's Table 1,
restoration time for N connections, extended to 1,000 and 10,000, each
alongside the TCP round-trip time measured in the same run.

Restoration time: from the moment the client's new address is configured
until its vnatd has completed the migration of all N connections."""
import os
import resource
import sys
import time

from vnattest import Topology, insmod, rmmod, round_trip, stats, tcp_connect, tcp_listen, sh

SIZES = [int(x) for x in os.environ.get("VNAT_BENCH_SIZES", "10,50,100,500,1000,10000").split(",")]
resource.setrlimit(resource.RLIMIT_NOFILE, (2 * max(SIZES) + 256, 2 * max(SIZES) + 256))
rows = []
for n in SIZES:
    insmod()
    topo = Topology()
    srv = tcp_listen("srv", "0.0.0.0", 5000)
    srv.listen(4096)
    pairs = []
    for _ in range(n):
        c = tcp_connect("cli", topo.server_addr(), 5000)
        a, _ = srv.accept()
        pairs.append((c, a))
    # Round trip: 1-byte ping-pong on the first connection, median of 50.
    rtt = round_trip(*pairs[0])
    t0 = time.monotonic()
    topo.attach_client(2)
    while stats("cli")["migrations_completed"] < n:
        if time.monotonic() - t0 > 600:
            print(f"# {n}: timed out", flush=True)
            sys.exit(1)
        time.sleep(0.001)
    total = time.monotonic() - t0
    rows.append((n, total, total / n * 1000, rtt * 1000))
    print(f"# {n} connections: {total:.3f} s", flush=True)
    for c, a in pairs:
        c.close()
        a.close()
    srv.close()
    rmmod(timeout=300)   # the closing connections' FIN exchanges first
    for ns in ("cli", "rtr", "srv"):
        sh(f"ip netns del {ns}")

print("| connections | restoration (s) | per connection (ms) | TCP round trip (ms) | per connection / round trip |")
print("|---:|---:|---:|---:|---:|")
for n, total, per, rtt in rows:
    print(f"| {n} | {total:.3f} | {per:.3f} | {rtt:.3f} | {per / rtt:.2f} |")

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench, VNAT_BENCH_ONLY=profile: where VNAT2's per-packet cost goes
(issue 16), inside the benchmark's one-vCPU guest whose clock counts
instructions (QEMU -icount shift=0,align=off,sleep=off). A TCP_STREAM of
VNAT_BENCH_PROFILE_SIZE-byte writes (default 1024) runs from the client
to the server, first with VNAT loaded and nothing migrated (VNAT1), then
with the client moved after connecting (VNAT2: both ends translate every
packet); `perf record -a` samples the vCPU (cpu-clock, 2 s) while it runs.
Then TCP_CRR (connect, one transaction of VNAT_BENCH_PROFILE_SIZE bytes,
close), without the module (vanilla) and with it (VNAT1: every connection
tracked and keyed): where tracking's cost per connection goes.
Printed: each system's rate, the share of the vCPU's busy samples by
object (the kernel, the vnat module, programs) and the symbols with the
most samples. The samples count instructions, as the guest's clock does,
not the host's time."""
import os
import subprocess
import sys
import time

from perf_report import busy_table
from vnattest import Topology, insmod, rmmod, set_sysctl, stats, wait_for

PERF = os.environ["VNAT_PERF"]
SIZE = os.environ.get("VNAT_BENCH_PROFILE_SIZE", "1024")
PORT = 6000


def profile(name, move=None, test="stream"):
    wait = test != "crr"
    p = subprocess.Popen(["ip", "netns", "exec", "cli", PERF, test, f"{topo.server_addr()}:{PORT}", "3",
                          "--size", SIZE] + (["--wait"] if wait else []),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if wait:
        if p.stdout.readline().strip() != "connected":
            sys.exit("vnat-perf did not connect")
        if move:
            move()
        p.stdin.write("\n")
        p.stdin.flush()
    time.sleep(0.5)
    # The guest's /tmp: perf cannot write its data to the shared tree.
    data = f"/tmp/vnat-perf-{name.split(':')[0]}.data"
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-a", "-o", data, "--", "sleep", "2"],
                   check=True, stderr=subprocess.DEVNULL)
    out, _ = p.communicate()
    rate = float(out.strip().splitlines()[-1].split()[0])
    busy, table = busy_table(data)
    shown = f"{rate:.0f} connections/s" if test == "crr" else f"{rate / 1e6:.1f} MB/s"
    print(f"\n{name}: {shown}; the vCPU busy in {busy:.1f} % of the samples.\n")
    print(table)


def move():
    before = stats("cli")["migrations_completed"]
    topo.attach_client(2)
    wait_for(lambda: stats("cli")["migrations_completed"] > before, "migrated", timeout=60)


topo = Topology()
# As bench_overhead.py: TCP_CRR's client reuses ports in TIME_WAIT and has
# the whole range.
set_sysctl("cli", "net.ipv4.tcp_tw_reuse", 1)
set_sysctl("cli", "net.ipv4.ip_local_port_range", "1024 65535")
serve = subprocess.Popen(["ip", "netns", "exec", "srv", PERF, "serve", f"0.0.0.0:{PORT}"])
time.sleep(0.5)
print(f"Profiles of TCP_CRR and TCP_STREAM with {SIZE}-byte messages (perf record -a, cpu-clock; 1 vCPU, "
      "QEMU -icount shift=0,align=off,sleep=off: samples count instructions; the benchmark kernel).")
profile("TCP_CRR, vanilla: no module", test="crr")
insmod()
# The namespaces existed before the module: their state is set up at insmod.
profile("TCP_CRR, VNAT1: every connection tracked and keyed", test="crr")
profile("TCP_STREAM, VNAT1: loaded, not migrated")
profile("TCP_STREAM, VNAT2: migrated, both ends translate", move)
serve.kill()
rmmod(timeout=300)

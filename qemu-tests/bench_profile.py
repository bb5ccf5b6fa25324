#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench, VNAT_BENCH_ONLY=profile: where VNAT2's per-packet cost goes
(issue 16), inside the benchmark's one-vCPU guest whose clock counts
instructions (QEMU -icount shift=0,align=off,sleep=off). A TCP_STREAM of
VNAT_BENCH_PROFILE_SIZE-byte writes (default 1024) runs from the client
to the server, first with VNAT loaded and nothing migrated (VNAT1), then
with the client moved after connecting (VNAT2: both ends translate every
packet); `perf record -a` samples the vCPU (cpu-clock, 2 s) while it runs.
Printed: each system's rate, the share of the vCPU's busy samples by
object (the kernel, the vnat module, programs) and the symbols with the
most samples. The samples count instructions, as the guest's clock does,
not the host's time."""
import os
import subprocess
import sys
import time

from perf_report import busy_table
from vnattest import Topology, insmod, rmmod, stats, wait_for

PERF = os.environ["VNAT_PERF"]
SIZE = os.environ.get("VNAT_BENCH_PROFILE_SIZE", "1024")
PORT = 6000


def profile(name, move=None):
    p = subprocess.Popen(["ip", "netns", "exec", "cli", PERF, "stream", f"{topo.server_addr()}:{PORT}", "3",
                          "--size", SIZE, "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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
    print(f"\n{name}: {rate / 1e6:.1f} MB/s; the vCPU busy in {busy:.1f} % of the samples.\n")
    print(table)


def move():
    before = stats("cli")["migrations_completed"]
    topo.attach_client(2)
    wait_for(lambda: stats("cli")["migrations_completed"] > before, "migrated", timeout=60)


insmod()
topo = Topology()
serve = subprocess.Popen(["ip", "netns", "exec", "srv", PERF, "serve", f"0.0.0.0:{PORT}"])
time.sleep(0.5)
print(f"Profiles of TCP_STREAM with {SIZE}-byte writes (perf record -a, cpu-clock; 1 vCPU, QEMU "
      "-icount shift=0,align=off,sleep=off: samples count instructions; the benchmark kernel).")
profile("VNAT1: loaded, not migrated")
profile("VNAT2: migrated, both ends translate", move)
serve.kill()
rmmod(timeout=300)

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
import re
import subprocess
import sys
import time

from vnattest import Topology, insmod, rmmod, stats, wait_for

PERF = os.environ["VNAT_PERF"]
SIZE = os.environ.get("VNAT_BENCH_PROFILE_SIZE", "1024")
PORT = 6000
IDLE = ("pv_native_safe_halt", "default_idle", "native_safe_halt")


def demangle(sym):
    """A Rust (v0) symbol of the module as its path without the crate
    (`packet::Packet::rewrite`); others as they are."""
    if not sym.startswith("_R"):
        return sym
    s = re.sub(r"Cs[0-9A-Za-z]*_|B[0-9A-Za-z]*_|Ms[0-9A-Za-z]*_", "", sym[2:])
    parts, i = [], 0
    while i < len(s):
        m = re.match(r"\d+", s[i:])
        if not m:
            i += 1
            continue
        n, j = int(m.group()), i + len(m.group())
        if s[j:j + 1] == "_":
            j += 1
        parts.append(s[j:j + n])
        i = j + n
    return "::".join(parts[1:]) or sym


def report(data, sort):
    """`perf report` of `data` sorted by `sort`: (share %, name) rows over
    all samples."""
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none",
                          "--percent-limit", "0.5"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if not parts or line.startswith("#") or not parts[0].endswith("%"):
            continue
        # "[dso] [k] symbol - -" (the last two: perf's IPC columns).
        name = [w for w in parts[1:] if w not in ("[k]", "[.]", "-")]
        rows.append((float(parts[0][:-1]), " ".join(name[:1] + [demangle(w) for w in name[1:]])))
    return rows


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
    syms = report(data, "dso,symbol")
    idle = sum(s for s, n in syms if any(i in n for i in IDLE))
    busy = 100 - idle
    print(f"\n{name}: {rate / 1e6:.1f} MB/s; the vCPU busy in {busy:.1f} % of the samples.\n")
    print("| object | share of busy samples |")
    print("|---|---:|")
    for share, dso in report(data, "dso"):
        # The idle loop is the kernel's: not busy.
        if dso == "[kernel.kallsyms]":
            share -= idle
        print(f"| {dso} | {share / busy * 100:.1f} % |")
    print("\n| symbol | share of busy samples |")
    print("|---|---:|")
    for share, sym in [r for r in syms if not any(i in r[1] for i in IDLE)][:20]:
        print(f"| `{sym}` | {share / busy * 100:.1f} % |")


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

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench, part two, inside a one-vCPU guest whose clock counts
instructions (QEMU -icount shift=0,align=off,sleep=off), on the benchmark
kernel (no debug options): the paper's figures 5-1 to 5-5 (netperf-style
TCP_STREAM, TCP_RR and TCP_CRR, and the CPU each costs) for every message
size of VNAT_BENCH_SIZES, as ratios against a baseline measured in the same
run. The move itself is bench_move.py's.

Client and server namespaces talk through the router namespace. The
systems, in the order they run:
1. "vanilla": no module, no nftables table: netfilter is built in, but no
   hook of conntrack or NAT is registered;
2. "netfilter" (the paper's second system): an empty NAT table at both
   ends, which puts conntrack and NAT in the path, as a plain NAT setup
   would have;
3. "nftables NAT": the rewrite VNAT does for a moved client, done by hand
   with stateful NAT instead: the client at 10.0.2.2 keeps 10.0.1.2 (on
   lo, its connections' source), SNAT to 10.0.2.2 on the way out, and the
   server SNATs 10.0.2.2 back to 10.0.1.2 on input; conntrack reverses both
   for the replies;
4. "VNAT, not migrated" (the paper's VNAT1: loaded, connections
   virtualized, nothing translated), at vcmp_auth's default (required: a
   key agreed for every new connection), and for TCP_CRR once more at
   vcmp_auth=off, so that the cost of key agreement shows;
5. "VNAT, migrated" (VNAT2: the client moved after connecting, both ends
   translate every packet); TCP_CRR has none (a new connection is never
   translated);
6. "vanilla, after rmmod": the baseline again, last, so that an effect of
   the order of the runs shows.
Over IPv6 (issue 13; every link is dual-stack, fd00:0:s::/64 beside
10.0.s.0/24), TCP_STREAM and TCP_RR for vanilla, VNAT1 and VNAT2, as
ratios to vanilla over IPv6, measured in the same run (VNAT_BENCH_IPV6=0
leaves them out). VNAT_BENCH_TESTS (default stream,rr,crr) picks tests.
Each figure is the median of VNAT_BENCH_RUNS runs of VNAT_BENCH_SECS s of
guest time, with the spread (max/min - 1). The CPU cost is the time the
guest's one vCPU was busy (/proc/stat) per transaction, or per megabyte
for TCP_STREAM. A run that fails (its connection broke) is counted and
listed with what both ends say, and the figure is the median of the
others. A table per test goes to standard output; every figure
also to qemu-tests/results/bench-overhead.json (or the file
VNAT_BENCH_OUT names there)."""
import json
import os
import statistics
import subprocess
import sys
import time

import bench_tables
from vnattest import (Topology, insmod, ip_batch, loaded, rmmod, set_sysctl, sh, stats, wait_for, wait_keyed,
                      write_knob)

PERF = os.environ["VNAT_PERF"]
SECS = float(os.environ.get("VNAT_BENCH_SECS", "1"))
RUNS = int(os.environ.get("VNAT_BENCH_RUNS", "5"))
SIZES = [int(n) for n in os.environ.get("VNAT_BENCH_SIZES", "64,128,256,512,1024,2048,4096,8192").split(",")]
PORT = 6000
# The runs that failed: (system, test, size, what vnat-perf said).
FAILED = []
IPV6 = os.environ.get("VNAT_BENCH_IPV6", "1") != "0"
TESTS = os.environ.get("VNAT_BENCH_TESTS", "stream,rr,crr").split(",")

EMPTY_NAT = """table ip bench {
    chain pre { type nat hook prerouting priority -100; }
    chain in { type nat hook input priority 100; }
    chain out { type nat hook output priority -100; }
    chain post { type nat hook postrouting priority 100; }
}"""
CLIENT_NAT = """table ip bench {
    chain post { type nat hook postrouting priority 100; ip saddr 10.0.1.2 oifname "c2" snat to 10.0.2.2; }
}"""
SERVER_NAT = """table ip bench {
    chain in { type nat hook input priority 100; ip saddr 10.0.2.2 snat to 10.0.1.2; }
}"""


def nft(ns, ruleset):
    sh(f"ip netns exec {ns} nft -f -", input=ruleset)


def no_nft():
    for ns in ("cli", "srv"):
        sh(f"ip netns exec {ns} nft delete table ip bench")


def nat_by_hand():
    """System 3: the client at 10.0.2.2 keeps sending from 10.0.1.2, which
    stateful NAT rewrites at both ends."""
    topo.attach_client(2)
    ip_batch("cli", ["addr add 10.0.1.2/32 dev lo", "route replace default via 10.0.2.1 src 10.0.1.2"])
    nft("cli", CLIENT_NAT)
    nft("srv", SERVER_NAT)


def no_nat_by_hand():
    no_nft()
    ip_batch("cli", ["addr del 10.0.1.2/32 dev lo"])
    topo.attach_client(1)


class RunFailed(Exception):
    """A run of vnat-perf failed (its connection broke, or never came)."""


def client(test, size, wait=False, move=None, v6=False):
    """Runs a vnat-perf client in the client namespace (to the server's
    IPv6 address with `v6`); with `move`, the connection is opened,
    `move()` runs, then the measurement starts. Returns (rate, CPU busy
    fraction)."""
    server = f"[{topo.server_addr6()}]:{PORT + 1}" if v6 else f"{topo.server_addr()}:{PORT}"
    args = ["ip", "netns", "exec", "cli", PERF, test, server, str(SECS), "--size", str(size)]
    if wait:
        args.append("--wait")
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if wait:
        line = p.stdout.readline().strip()
        if line != "connected":
            p.kill()
            raise RunFailed(f"vnat-perf: {line!r}")
        if move:
            move()
        p.stdin.write("\n")
        p.stdin.flush()
    out, _ = p.communicate()
    if p.returncode != 0:
        raise RunFailed(f"vnat-perf {test} exited {p.returncode}")
    rate, busy = out.strip().splitlines()[-1].split()
    return float(rate), float(busy)


def move_and_wait():
    # The connection's key first: at vcmp_auth=required (the default) a
    # connection that moves before its key is agreed cannot move (test 53),
    # and it is asked for at the next tick after the connect.
    wait_keyed("cli", "srv")
    before = stats("cli")["migrations_completed"]
    topo.attach_client(2 if topo.client_at == 1 else 1)
    # Completed: the peer confirmed, both ends translate.
    wait_for(lambda: stats("cli")["migrations_completed"] > before, "migrated", timeout=60)


def measure(system, tests=("stream", "rr", "crr"), v6=False):
    """For each test and size: the median of RUNS runs of the rate, the
    spread, and the median CPU cost per operation (busy s per transaction,
    or per byte)."""
    res = {}
    for test in tests:
        if test not in TESTS or (system == "migrated" and test == "crr"):
            continue
        for size in SIZES:
            rates, costs = [], []
            for _ in range(RUNS):
                try:
                    if system == "migrated":
                        # Start each run at home, so that the move is the same one.
                        if topo.client_at != 1:
                            topo.attach_client(1)
                        rate, busy = client(test, size, wait=True, move=move_and_wait, v6=v6)
                    else:
                        # TCP_CRR opens its connections as it measures.
                        rate, busy = client(test, size, wait=test != "crr", v6=v6)
                except RunFailed as e:
                    # Counted and shown with the figures, with what the
                    # two ends say, rather than the whole sweep lost.
                    FAILED.append((system, "IPv6 " + test if v6 else test, size, str(e)))
                    print(f"# {system} {test} {size}: a run failed: {e}", file=sys.stderr, flush=True)
                    for ns in ("cli", "srv"):
                        print(sh(f"ip netns exec {ns} ss -tinHo state all '( dport = {PORT} or sport = {PORT} or "
                                 f"dport = {PORT + 1} or sport = {PORT + 1} )'", check_rc=False),
                              file=sys.stderr, flush=True)
                    if loaded():
                        print(stats("cli"), stats("srv"), file=sys.stderr, flush=True)
                    print(sh("dmesg | tail -n 20", check_rc=False), file=sys.stderr, flush=True)
                    continue
                rates.append(rate)
                costs.append(busy / rate)
            if not rates:
                continue
            res[(test, size)] = (statistics.median(rates), max(rates) / min(rates) - 1, statistics.median(costs))
            print(f"# {system} {test} {size}: {res[(test, size)][0]:.1f} ({res[(test, size)][1] * 100:.1f} %)",
                  file=sys.stderr, flush=True)
    return res


topo = Topology(ipv6=IPV6)
# TCP_CRR opens tens of thousands of connections in a run: its client
# reuses ports in TIME_WAIT (timestamps make it safe) and has the whole
# range, as a netperf host would be set up; otherwise the later runs
# measure the search for a free port.
set_sysctl("cli", "net.ipv4.tcp_tw_reuse", 1)
set_sysctl("cli", "net.ipv4.ip_local_port_range", "1024 65535")
serve = subprocess.Popen(["ip", "netns", "exec", "srv", PERF, "serve", f"0.0.0.0:{PORT}"])
serve6 = IPV6 and subprocess.Popen(["ip", "netns", "exec", "srv", PERF, "serve", f"[::]:{PORT + 1}"])
time.sleep(0.5)
results = {"vanilla": measure("without")}
results6 = {}
V6_TESTS = ("stream", "rr")
if IPV6:
    results6["vanilla (IPv6)"] = measure("without", V6_TESTS, v6=True)
for ns in ("cli", "srv"):
    nft(ns, EMPTY_NAT)
results["netfilter (conntrack, empty NAT table)"] = measure("without")
no_nft()
nat_by_hand()
results["nftables NAT doing VNAT2's rewrite"] = measure("without")
no_nat_by_hand()
insmod()


def without_key(f):
    """`f()` at vcmp_auth=off: no key agreed, moves in version 1."""
    write_knob("vcmp_auth", "off")
    try:
        return f()
    finally:
        write_knob("vcmp_auth", "required")


results["VNAT1: loaded, not migrated"] = measure("native")
results["VNAT1, no key (vcmp_auth=off)"] = without_key(lambda: measure("native", ("crr",)))
results["VNAT2: migrated, both ends translate"] = measure("migrated")
if IPV6:
    results6["VNAT1 (IPv6)"] = measure("native", V6_TESTS, v6=True)
    results6["VNAT2 (IPv6)"] = measure("migrated", V6_TESTS, v6=True)
rmmod(timeout=300)   # the closing connections' FIN exchanges first
# The baseline once more, last: the first and this one bracket the others,
# so an effect of the order of the runs shows as a difference between them.
results["vanilla, after rmmod"] = measure("without")
serve.kill()
if serve6:
    serve6.kill()

data = {"runs": RUNS, "secs": SECS, "sizes": SIZES,
        "systems": {sys_: {f"{t}/{n}": {"rate": v[0], "spread": v[1], "cpu_per_op": v[2]}
                           for (t, n), v in res.items()} for sys_, res in {**results, **results6}.items()},
        "failed": FAILED}
print(bench_tables.tables(data))
# make bench's guests each measure some of the sizes, each in its own file
# (VNAT_BENCH_OUT), which bench_tables.py merges on the host.
out = os.environ.get("VNAT_BENCH_OUT", "bench-overhead.json")
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", out), "w") as f:
    json.dump(data, f, indent=1)

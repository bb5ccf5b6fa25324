#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench, part two, inside a one-vCPU guest whose clock counts
instructions (QEMU -icount shift=0,align=off,sleep=off): the paper's
figures 5-1, 5-3 and 5-5 (netperf TCP_STREAM, TCP_RR, TCP_CRR) as ratios
against a baseline measured in the same run, and the data gap of a move.

Client and server namespaces talk through the router namespace. The three
systems of the paper: "without VNAT" (module not loaded; netfilter is built
in), "VNAT, not migrated" (loaded; the connection is virtualized, nothing
to translate: the paper's VNAT1) and "VNAT, migrated" (the client moved to
another subnet after connecting, so both ends translate every packet: the
paper's VNAT2). Connection setup (TCP_CRR) has no migrated variant: a new
connection is never translated. The baseline is measured first and again
last, after rmmod, so that an effect of the order of the runs shows.

The security key: "VNAT" runs at vcmp_auth's default (required: vnatd
agrees a key for every new connection, and moves go in version 2 under
it); TCP_CRR and the data gap are measured once more at vcmp_auth=off (no
key, version 1), in the same run, so the cost of key agreement and of the
MAC shows as the difference."""
import os
import statistics
import subprocess
import sys
import threading
import time

from vnattest import Topology, insmod, rmmod, round_trip, stats, tcp_connect, tcp_listen, wait_for, write_knob

PERF = os.environ["VNAT_PERF"]
SECS = float(os.environ.get("VNAT_BENCH_SECS", "3"))
RUNS = int(os.environ.get("VNAT_BENCH_RUNS", "3"))
PORT = 6000


def client(test, wait=False, move=None):
    """Runs a vnat-perf client in the client namespace; with `move`, the
    connection is opened, `move()` runs, then the measurement starts."""
    args = ["ip", "netns", "exec", "cli", PERF, test, f"{topo.server_addr()}:{PORT}", str(SECS)]
    if wait:
        args.append("--wait")
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if wait:
        line = p.stdout.readline().strip()
        if line != "connected":
            sys.exit(f"vnat-perf: {line!r}")
        if move:
            move()
        p.stdin.write("\n")
        p.stdin.flush()
    out, _ = p.communicate()
    if p.returncode != 0:
        sys.exit(f"vnat-perf {test} failed")
    return float(out.strip().splitlines()[-1])


def move_and_wait():
    before = stats("cli")["migrations_completed"]
    topo.attach_client(2 if topo.client_at == 1 else 1)
    # Completed: the peer confirmed, both ends translate.
    wait_for(lambda: stats("cli")["migrations_completed"] > before, "migrated", timeout=60)


def measure(system, tests=("stream", "rr", "crr")):
    """Median of RUNS runs of each test for one system."""
    res = {}
    for test in tests:
        if system == "migrated" and test == "crr":
            continue
        vals = []
        for _ in range(RUNS):
            if system == "migrated":
                # Start each run at home, so that the move is the same one.
                if topo.client_at != 1:
                    topo.attach_client(1)
                vals.append(client(test, wait=True, move=move_and_wait))
            else:
                # TCP_CRR opens its connections as it measures.
                vals.append(client(test, wait=test != "crr"))
        res[test] = (statistics.median(vals), max(vals) / min(vals) - 1)
    return res


def data_gap():
    """A stream from client to server while the client moves: the longest
    pause between two reads of the receiver around the move, and the TCP
    round trip measured just before on the same path."""
    srv = tcp_listen("srv", "0.0.0.0", 7000)
    c = tcp_connect("cli", topo.server_addr(), 7000)
    a, _ = srv.accept()
    rtt = round_trip(c, a)
    stamps = []
    stop = threading.Event()

    def send():
        buf = b"z" * 16384
        while not stop.is_set():
            c.sendall(buf)

    def recv():
        while not stop.is_set():
            if not a.recv(65536):
                break
            stamps.append(time.monotonic())

    ts = [threading.Thread(target=send, daemon=True), threading.Thread(target=recv, daemon=True)]
    for t in ts:
        t.start()
    time.sleep(1)
    t_move = time.monotonic()
    before = stats("cli")["migrations_completed"]
    topo.attach_client(2 if topo.client_at == 1 else 1)
    wait_for(lambda: stats("cli")["migrations_completed"] > before, "migrated", timeout=60)
    time.sleep(2)
    stop.set()
    window = [t for t in stamps if t >= t_move - 0.5]
    gaps = [b - a_ for a_, b in zip(window, window[1:])]
    gap = max(gaps) if gaps else float("nan")
    c.close()
    a.close()
    srv.close()
    return gap, rtt


topo = Topology()
serve = subprocess.Popen(["ip", "netns", "exec", "srv", PERF, "serve", f"0.0.0.0:{PORT}"])
time.sleep(0.5)
results = {"without VNAT": measure("without")}
insmod()


def without_key(f):
    """`f()` at vcmp_auth=off: no key agreed, moves in version 1."""
    write_knob("vcmp_auth", "off")
    try:
        return f()
    finally:
        write_knob("vcmp_auth", "required")


results["VNAT, not migrated"] = measure("native")
results["VNAT, not migrated, no key (vcmp_auth=off)"] = without_key(lambda: measure("native", ("crr",)))
results["VNAT, migrated"] = measure("migrated")
gap, rtt = data_gap()
gap_off, rtt_off = without_key(data_gap)
rmmod()
# The baseline once more, last: the first and this one bracket the others,
# so an effect of the order of the runs shows as a difference between them.
results["without VNAT, after rmmod"] = measure("without")
serve.kill()

base = results["without VNAT"]
names = {"stream": "TCP_STREAM (MB/s)", "rr": "TCP_RR (transactions/s)", "crr": "TCP_CRR (connections/s)"}
print(f"Each figure: median of {RUNS} runs of {SECS:g} s (guest time; 1 vCPU, QEMU "
      "-icount shift=0,align=off,sleep=off); spread = max/min - 1 of the runs.\n")
print("| test | system | result | ratio to without VNAT | spread |")
print("|---|---|---:|---:|---:|")
for test in ("stream", "rr", "crr"):
    for system, res in results.items():
        if test not in res:
            continue
        v, spread = res[test]
        shown = v / 1e6 if test == "stream" else v
        print(f"| {names[test]} | {system} | {shown:.1f} | {v / base[test][0]:.3f} | {spread * 100:.1f} % |")
print()
print(f"Data gap of a move (longest pause of a receiving stream around the move): "
      f"{gap * 1000:.1f} ms = {gap / rtt:.1f} TCP round trips of {rtt * 1000:.3f} ms measured in the same run "
      f"(version 2 under the key); without the key (vcmp_auth=off, version 1): {gap_off * 1000:.1f} ms = "
      f"{gap_off / rtt_off:.1f} round trips of {rtt_off * 1000:.3f} ms.")

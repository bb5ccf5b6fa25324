#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench-restore (and make bench), inside a one-vCPU guest whose clock
counts instructions (QEMU -icount shift=0,align=off,sleep=off): the paper's
Table 1, restoration time for N connections (VNAT_BENCH_CONNECTIONS,
default 10 to 10,000), each alongside the TCP round trip measured in the
same run, and split into its parts.

N connections from the client to the server, each keyed; then one `ip
-batch` removes the client's address, adds the new one and its default
route. The parts are timestamps of the guest's monotonic clock from the
trace (`tracing.py`): kprobes on the kernel's address and route requests
(the new address is usable when `ip`'s route request returns), and VNAT's
trace events: the client's first VCMP byte, the server's last answer, the
client's last answer read, its rules live after it, its last kick.
Restored: every connection kicked, from the new address being usable (the
issue 16 target: 10,000 connections within one round trip plus 50 ms) and
from `ip`'s start (the paper's restoration time, which includes the
address change).

With VNAT_BENCH_PERF=1, `perf record -a` samples the vCPU from the move to
the last kick, and the busy samples' share by object and symbol is printed
below each row (the samples count instructions, as the guest's clock
does)."""
import os
import resource
import subprocess
import sys
import time

from perf_report import busy_table
from tracing import first, last, netns_inum, on_cpu, read_trace, tracefs
from vnattest import Topology, insmod, ip_batch, rmmod, round_trip, sh, stats, tcp_connect, tcp_listen, wait_for

PERF = os.environ.get("VNAT_BENCH_PERF") == "1"
COUNTS = [int(x) for x in os.environ.get("VNAT_BENCH_CONNECTIONS", "10,50,100,500,1000,10000").split(",")]
resource.setrlimit(resource.RLIMIT_NOFILE, (2 * max(COUNTS) + 256, 2 * max(COUNTS) + 256))


# How long the keys of N connections may take before the row is given up.
KEY_WAIT_S = 300


def cpu_times():
    """The guest's CPU time so far, in clock ticks (10 ms) by kind, from
    /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:9]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return dict(zip(names, map(int, fields)))


def idle_gaps(evs, start, end, names, top=8):
    """Where the restoration waited: the longest stretches between two
    consecutive trace events from `start` to `end`, with the events on
    either side, and how often vnatd woke because its sleep ran out rather
    than because a socket or request woke it (`vnat_wake requests=0`)."""
    window = [e for e in evs if start <= e[0] <= end]
    gaps = sorted(((b[0] - a[0], a, b) for a, b in zip(window, window[1:])),
                  key=lambda g: -g[0])[:top]
    timeouts = {ns: sum(1 for _, name, kv in window if name == "vnat_wake"
                        and kv.get("netns") == str(ns) and kv.get("requests") == "0") for ns in names}

    def show(e):
        return f"{names.get(int(e[2].get('netns', -1)), '?')} {e[1]} {e[2]['_text']}"

    lines = [f"#   vnatd woke on its timeout: {', '.join(f'{n} {timeouts[ns]}' for ns, n in names.items())};"
             f" the {len(gaps)} longest gaps between events ({sum(g for g, _, _ in gaps) * 1000:.1f} ms"
             f" of {(end - start) * 1000:.1f} ms):"]
    for g, a, b in gaps:
        lines.append(f"#   {g * 1000:8.3f} ms at {(a[0] - start) * 1000:8.3f}: {show(a)} -> {show(b)}")
    return "\n".join(lines)


rows = []
unkeyed = []
for n in COUNTS:
    insmod()
    topo = Topology()
    # The new network's link is up before the move, as a laptop's is
    # before DHCP gives it an address (bench_move.py does the same): up in
    # the move's own `ip` batch, a packet sent at once may be lost while the
    # link comes up, and the move's first SYN then waits TCP's second.
    ip_batch("cli", ["link set c2 up"])
    cli, srv_ns = netns_inum("cli"), netns_inum("srv")
    srv = tcp_listen("srv", "0.0.0.0", 5000)
    srv.listen(4096)
    pairs = []
    for _ in range(n):
        c = tcp_connect("cli", topo.server_addr(), 5000)
        a, _ = srv.accept()
        pairs.append((c, a))
    # Keyed first: a move waits for its connections' keys.
    if not wait_for(lambda: stats("cli")["keys_established"] >= n, f"{n} keys", timeout=KEY_WAIT_S):
        keyed = stats("cli")["keys_established"]
        print(f"# {n} connections: {keyed} keyed after {KEY_WAIT_S} s; not moved", flush=True)
        unkeyed.append((n, keyed))
        for c, a in pairs:
            c.close()
            a.close()
        srv.close()
        rmmod(timeout=300)
        for ns in ("cli", "rtr", "srv"):
            sh(f"ip netns del {ns}")
        continue
    # Round trip: 1-byte ping-pong on the first connection, median of 50.
    rtt = round_trip(*pairs[0]) * 1000
    tracefs("trace_clock", "mono")
    tracefs("buffer_size_kb", "32768")
    # Also the kernel's freeing of deleted namespaces (one workqueue,
    # cleanup_net), which may still run for the rows before while `ip` runs.
    tracefs("kprobe_events", "r:vnatbench/route_in inet_rtm_newroute\n"
            "p:vnatbench/cleanup_in cleanup_net\nr:vnatbench/cleanup_out cleanup_net\n"
            "p:vnatbench/rcu_in synchronize_rcu\nr:vnatbench/rcu_out synchronize_rcu\n")
    tracefs("trace", "")
    tracefs("events/vnatbench/enable", "1")
    tracefs("events/vnat/enable", "1")
    # Which task had the one vCPU when: what each end's vnatd, the idle
    # task and the others took of the restoration.
    tracefs("events/sched/sched_switch/enable", "1")
    tracefs("tracing_on", "1")
    if PERF:
        # The guest's /tmp: perf cannot write its data to the shared tree.
        data = f"/tmp/vnat-restore-{n}.data"
        stop = f"/tmp/vnat-restore-{n}.stop"
        # Sampling until the stop file appears (a signal that came before
        # perf was ready would kill it); its start takes a while here.
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-a", "-o", data, "--",
                                 "sh", "-c", f"while [ ! -e {stop} ]; do sleep 0.05; done"])
        time.sleep(3)
    cpu0 = cpu_times()
    t0 = time.monotonic()
    topo.attach_client(2)
    t1 = time.monotonic()
    # Polled seldom: the one vCPU is vnatd's. The times come from the trace.
    while stats("cli")["migrations_completed"] < n:
        if time.monotonic() - t0 > 600:
            print(f"# {n}: timed out; counters at the client: {stats('cli')}, at the server: {stats('srv')}",
                  flush=True)
            print(sh("dmesg | tail -n 40"), flush=True)
            sys.exit(1)
        time.sleep(0.05)
    cpu1 = cpu_times()
    if PERF:
        open(stop, "w").close()
        perf.wait()
        busy, table = busy_table(data, top=30)
        print(f"# {n} connections, from the move to the last kick: the vCPU busy in {busy:.1f} % of the samples"
              f"\n{table}\n", flush=True)
    evs = [e for e in read_trace() if e[0] >= t0]
    tracefs("events/enable", "0")
    tracefs("kprobe_events", "")
    routes = [t for t, name, _ in evs if name == "route_in" and t <= t1]
    if not routes:
        sys.exit(f"# {n}: no route request in the trace")
    usable = routes[-1]
    # The time the namespace clean-up ran between `ip`'s start and the
    # address being usable.
    cleaning, began = 0.0, None
    for t, name, _ in evs:
        if name == "cleanup_in":
            began = max(t, t0)
        elif name == "cleanup_out":
            # One that began before tracing did counts from `ip`'s start.
            cleaning += max(0.0, min(t, usable) - (t0 if began is None else began))
            began = None
    if began is not None:
        cleaning += max(0.0, usable - began)
    kicked = sum(int(kv.get("connections", 0)) for _, name, kv in evs
                 if name == "vnat_kick" and kv.get("netns") == str(cli))
    at = {
        "sent": first(evs, t0, "vnat_vcmp_sent", cli, lambda kv: "requests" in kv["_text"]),
        "answered": last(evs, "vnat_vcmp_sent", srv_ns, lambda kv: "answers" in kv["_text"]),
        "read": last(evs, "vnat_vcmp_received", cli),
    }
    at["rules"] = first(evs, at["read"] or usable, "vnat_rules", cli)
    at["kicked"] = last(evs, "vnat_kick", cli)
    # Rule tables built from the move to the last kick, at each end, and of
    # them those built whole from every record (the others were patched).
    tables = {ns: [kv for t, name, kv in evs if name == "vnat_rules" and kv.get("netns") == str(ns)
                   and t <= (at["kicked"] or t)] for ns in (cli, srv_ns)}
    built = {ns: f"{len(kvs)} ({sum(kv.get('whole') == '1' for kv in kvs)} whole, "
                 f"{sum(kv.get('copied') == '1' for kv in kvs)} patched copies)" for ns, kvs in tables.items()}
    ms = {k: (v - usable) * 1000 if v is not None else None for k, v in at.items()}
    rows.append((n, (t1 - t0) * 1000, (usable - t0) * 1000, ms, rtt, kicked))
    print(f"# {n} connections: restored {ms['kicked']:.3f} ms after the address was usable "
          f"({kicked} kicked); rule tables built: {built[srv_ns]} at the server, {built[cli]} at the "
          f"client; the kernel freed deleted namespaces (cleanup_net) for {cleaning * 1000:.1f} ms of "
          f"the {(usable - t0) * 1000:.1f} ms from `ip`'s start to the address being usable", flush=True)
    # The grace periods vnatd waited for (the rules' retired tables).
    waits, began = [], None
    for t, name, _ in evs:
        if name == "rcu_in":
            began = t
        elif name == "rcu_out" and began is not None:
            if usable <= began <= (at["kicked"] or began):
                waits.append(t - began)
            began = None
    print(f"#   synchronize_rcu() from the address being usable to the last kick: {len(waits)} calls, "
          f"{sum(waits) * 1000:.1f} ms in all", flush=True)
    # vnatd's rounds, by part, at each end (each round's event comes at its
    # end: those that ended in the window): its thread's CPU time in each.
    parts = ("requests", "serve", "converse", "rules", "kicks", "retire")
    vnatd = {}
    for ns, who in ((cli, "client"), (srv_ns, "server")):
        sums = [0] * len(parts)
        rounds, wall = 0, 0
        for t, name, kv in evs:
            if name == "vnat_round" and kv.get("netns") == str(ns) and usable <= t <= (at["kicked"] or t):
                rounds += 1
                vnatd[kv["_pid"]] = f"{who}'s vnatd"
                wall += int(kv.get("wall_us", 0))
                for i, p in enumerate(parts):
                    sums[i] += int(kv.get(f"{p}_us", 0))
        print(f"#   {who}'s vnatd, {rounds} rounds ({wall / 1000:.1f} ms on the clock), its CPU time: "
              + ", ".join(f"{p} {s / 1000:.1f} ms" for p, s in zip(parts, sums))
              + f"; {sum(sums) / 1000:.1f} ms in all", flush=True)
    if at["kicked"] is not None:
        ran, names = on_cpu(evs, usable, at["kicked"])
        shown = sorted(ran.items(), key=lambda r: -r[1])
        print(f"#   the vCPU from the address being usable to the last kick (sched_switch, "
              f"{(at['kicked'] - usable) * 1000:.1f} ms): "
              + ", ".join(f"{vnatd.get(p, names.get(p, str(p)))} {s * 1000:.1f} ms" for p, s in shown[:8]),
              flush=True)
    spent = {k: cpu1[k] - cpu0[k] for k in cpu0}
    total = sum(spent.values()) or 1
    print(f"#   the vCPU from `ip`'s start to the last kick seen (/proc/stat, {total * 10:.0f} ms): "
          + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in spent.items() if v), flush=True)
    if at["kicked"] is not None:
        # Between VNAT's events and the probes', not the scheduler's.
        steps = [e for e in evs if e[1] != "sched_switch"]
        print(idle_gaps(steps, usable, at["kicked"], {cli: "client", srv_ns: "server"}), flush=True)
    for c, a in pairs:
        c.close()
        a.close()
    srv.close()
    rmmod(timeout=300)   # the closing connections' FIN exchanges first
    for ns in ("cli", "rtr", "srv"):
        sh(f"ip netns del {ns}")


def f(x):
    return f"{x:.3f}" if x is not None else "-"


print("Restoration of N connections (1 vCPU, QEMU -icount shift=0,align=off,sleep=off, guest time; "
      "one move each). Columns after the third: ms from the new address being usable (its default "
      "route in); restored = every connection kicked.\n")
print("| connections | `ip` runs (ms) | usable (ms from `ip`'s start) | first VCMP byte | server's last answer "
      "| client's last answer read | client's rules live | restored | restored from `ip`'s start (ms) "
      "| per connection (ms) | TCP round trip (ms) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for n, ip_ms, usable_ms, ms, rtt, kicked in rows:
    total = (ms["kicked"] or 0) + usable_ms
    print(f"| {n} | {ip_ms:.3f} | {usable_ms:.3f} | {f(ms['sent'])} | {f(ms['answered'])} | {f(ms['read'])} "
          f"| {f(ms['rules'])} | {f(ms['kicked'])} | {total:.3f} | {total / n:.3f} | {rtt:.3f} |")
for n, keyed in unkeyed:
    print(f"| {n} | not moved: {keyed} of {n} connections keyed after {KEY_WAIT_S} s | | | | | | | | | |")
big = [r for r in rows if r[0] == 10000]
if big:
    n, _, _, ms, rtt, _ = big[0]
    target = rtt + 50
    print(f"\n10,000 connections restored {f(ms['kicked'])} ms after the address was usable; the target "
          f"(one round trip plus 50 ms) is {target:.3f} ms: {'met' if (ms['kicked'] or 1e9) <= target else 'missed'}.")

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The control plane: the generic netlink family "vnat" through vnatctl and
through the kernel's own ynl library with the spec vnat/vnat.yaml.

vnatctl list --json shows exactly the connections that are open (tuples,
owners, states), before and after a move, on both ends; vnatctl monitor
sees the events of a migration in order; resume by connection, by pid and
by address each move exactly the connections asked for; bad commands and
bad knob values are refused with the documented message and change
nothing; an unprivileged user sees the connections of its own sockets
only, cannot watch the events and cannot change anything; ynl dumps the same
connections and the same counters (stats-get); without the module,
vnatctl says so (exit 3)."""
import json
import socket
from vnattest import *

YNL_DIR = os.environ["VNAT_YNL"]   # the kernel's tools/net/ynl/pyynl, copied by run.sh
SPEC = "vnat/vnat.yaml"            # validated against the schema by make check's lint stage


insmod()
check_eq(write_knob("auto_migrate", "0"), None, "auto_migrate=0: only commands move things")
# The UDP flow below has an unconnected server socket, whose record the
# client's update makes, where that is allowed (test 24 shows the default).
check_eq(write_knob("vcmp_udp_flows", "1"), None, "vcmp_udp_flows=1: a UDP update may record a flow")
topo = Topology()
check_eq(listing("cli"), [], "nothing open, nothing listed")

# Monitors first. They listen once they have seen a connection of ours
# (the events of connections opened before they joined are not theirs).
mon_cli, mon_srv = Monitor("cli"), Monitor("srv")
srv = tcp_listen("srv", "0.0.0.0", 5000)
lp = monitors_ready(mon_cli, mon_srv, srv, topo.server_addr())
mon_cli.until(lambda e: e["event"] == "closed" and e["local"] == lp, "closed")

# 200 TCP connections and a connected UDP socket of ours, 5 of a helper.
pairs = []
for _ in range(200):
    c = tcp_connect("cli", topo.server_addr(), 5000)
    a, _ = srv.accept()
    pairs.append((c, a))
with netns("srv"):
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # an unconnected UDP server
    us.bind(("0.0.0.0", 5300))
with netns("cli"):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect((topo.server_addr(), 5300))
# The helper runs as nobody: its connections are the only ones nobody sees.
helper = subprocess.Popen(["ip", "netns", "exec", "cli", *NOBODY, "python3", "-c", f"""
import socket, sys
s = [socket.create_connection(("{topo.server_addr()}", 5000)) for _ in range(5)]
print(" ".join("%s:%d" % x.getsockname() for x in s), flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
helper_locals = set(helper.stdout.readline().split())
helper_acc = [srv.accept()[0] for _ in range(5)]
check_eq(len(helper_locals), 5, "the helper opened 5 connections")

want = {("tcp", ep(c.getsockname()), ep(c.getpeername())) for c, _ in pairs}
want.add(("udp", ep(u.getsockname()), ep(u.getpeername())))
want |= {("tcp", l, f"{topo.server_addr()}:5000") for l in helper_locals}
got = listing("cli")
check_eq(len(got), 206, "one record per connection, none twice")
check_same(tuples(got), want, "vnatctl list: the sockets' own tuples")
mine = [r for r in got if r["local"] not in helper_locals]
check(all(r["pid"] == os.getpid() and r["origin"] == "connect" and r["state"] == "native"
          and r["local-phys"] == r["local"] and r["remote-phys"] == r["remote"] for r in mine),
      "owner, origin, state and physical endpoints as opened")
check(all(r["update-age-ms"] is None and r["policy"] == "default" and r["packets-out"] == 0 and r["packets-in"] == 0
          for r in got), "never updated, default policy, nothing translated")
check(all(r["pid"] == helper.pid or r["pid"] > 0 for r in got if r["local"] in helper_locals),
      "the helper's connections have an owner")
helper_pid = {r["pid"] for r in got if r["local"] in helper_locals}
check_eq(len(helper_pid), 1, "one owner for the helper's connections")
helper_pid = helper_pid.pop()
check_eq(len(listing("cli", "--pid", str(helper_pid))), 5, "list --pid filters by owner")
check_eq(len(listing("cli", "--proto", "udp")), 1, "list --proto udp")
# The server's unconnected UDP socket gets the flow's record when the
# client's vnatd asks for its key (origin "update").
wait_keyed("cli", "srv", timeout=60)
sgot = listing("srv")
check_same(tuples(sgot), {(p, r, l) for (p, l, r) in want}, "the server's view: the accepted ends and the UDP flow")
check(all(r["origin"] == ("accept" if r["proto"] == "tcp" else "update") for r in sgot),
      "accepted, and the flow recorded")
check(all(r["auth"] == "keyed" for r in got + sgot), "every connection has its key, at both ends")
rc, out, err = ctl("cli", "list", "--json", as_nobody=True)
theirs = json.loads(out or "[]") if rc == 0 else []
check(rc == 0 and {r["local"] for r in theirs} == helper_locals and {r["pid"] for r in theirs} == {helper_pid},
      f"an unprivileged user sees the connections of its own sockets, with their owner, and no other ({rc} {err}: {len(theirs)} rows)")
rc, out, err = ctl("cli", "monitor", "--json", "--count", "1", as_nobody=True)
check(rc == 4 and "CAP_NET_ADMIN" in err, f"an unprivileged user cannot watch the events: exit 4 ({rc}: {err})")
rc, out, err = ctl("cli", "list")
check(rc == 0 and out.splitlines()[0].split()[:3] == ["Proto", "State", "Local"] and len(out.splitlines()) == 207,
      f"vnatctl list: a table with a header and one line per connection ({err})")

# The kernel's ynl, in this process, with our spec: the same records.
sys.path.insert(0, YNL_DIR)
from pyynl.lib import YnlFamily  # noqa: E402
with netns("cli"):
    ynl = YnlFamily(SPEC, schema="")   # "": validated by the lint stage
dump = ynl.dump("conn-get", {})
check_same({({6: "tcp", 17: "udp"}[d["proto"]], f"{d['local-addr']}:{d['local-port']}", f"{d['remote-addr']}:{d['remote-port']}")
            for d in dump}, want, "ynl --dump conn-get: the same connections")

# The client is now on subnet 2 too; nothing moves by itself.
old = topo.client_addr()
topo.attach_client(2)
new = topo.client_addr()
check_eq(stats("cli")["migrations_completed"], 0, "nothing moved by itself")

# Bad commands: refused with the documented message, nothing changes.
bad = [
    (["resume", "10.9.9.9", new], 1, "no virtual connection is at this address"),
    (["resume", old, "10.9.9.9"], 1, "new-addr is not an address of this host"),
    (["resume", "--pid", "999999", new], 1, "this process has no virtual connection"),
    (["resume", "--conn", "tcp", f"{old}:1", f"{topo.server_addr()}:5000", new], 1, "no such virtual connection"),
    (["resume", "10.0.1", new], 2, "is not an IPv4 address"),
    (["resume", "--conn", "sctp", f"{old}:1", f"{topo.server_addr()}:5000", new], 2, "is not tcp or udp"),
    (["resume"], 2, "one or two addresses"),
    (["resume", "--pid", "1", old, new], 2, "at most the new address"),
]
for args, code, msg in bad:
    rc, out, err = ctl("cli", *args)
    check(rc == code and msg in err, f"vnatctl {' '.join(args)}: exit {code} and '{msg}' (got {rc}: {err})")
rc, out, err = ctl("cli", "resume", old, new, as_nobody=True)
check(rc == 4 and "CAP_NET_ADMIN" in err, f"an unprivileged user cannot resume: exit 4 ({rc}: {err})")
check_eq(stats("cli")["migrations_completed"], 0, "none of that moved anything")

# One connection.
c0, a0 = pairs[0]
l0, r0 = ep(c0.getsockname()), ep(c0.getpeername())
mon_cli.drain()
rc, out, err = ctl("cli", "resume", "--conn", "tcp", l0, r0, new)
check(rc == 0 and "resuming 1 connection(s)" in out, f"resume --conn: one connection ({rc}: {out} {err})")
ev = mon_cli.until(lambda e: e["event"] in ("resumed", "failed") and e["local"] == l0, "the connection resumed")
seq = [e["event"] for e in ev if e["local"] == l0]
check_eq(seq, ["resuming", "resumed"], "events of the move, in order")
check(ev[-1]["local-phys"] == f"{new}:{l0.split(':')[1]}" and ev[-1]["state"] == "migrated", f"resumed at the new address ({ev[-1]})")
mon_srv.until(lambda e: e["event"] == "peer-moved" and e["remote"] == l0 and e["remote-phys"].startswith(new + ":"),
              "the server saw its peer move")
migrated = [r for r in listing("cli") if r["state"] == "migrated"]
check_eq(tuples(migrated), {("tcp", l0, r0)}, "exactly that connection migrated")

# One process.
rc, out, err = ctl("cli", "resume", "--pid", str(helper_pid))
check(rc == 0 and f"resuming 5 connection(s) of process {helper_pid} at {new};" in out,
      f"resume --pid without an address: the helper's 5, at the address routed to the server ({rc}: {out} {err})")
wait_for(lambda: stats("cli")["migrations_completed"] == 6, "6 migrated", timeout=60)
migrated = listing("cli", "--state", "migrated")
check_same({r["local"] for r in migrated}, helper_locals | {l0}, "exactly the helper's connections joined it")

# The rest of the host.
mark = kmsg_mark()
rc, out, err = ctl("cli", "resume", old, new)
check(rc == 0 and "resuming 200 connection(s)" in out, f"resume OLD NEW: the other 200 ({rc}: {out} {err})")
if not wait_for(lambda: stats("cli")["migrations_completed"] == 206, "all 206 migrated", timeout=120):
    for ns in ("cli", "srv"):
        log(f"{ns} stats: " + ", ".join(f"{k}={v}" for k, v in stats(ns).items() if v and not k.startswith(("hook", "translated"))))
    log(dmesg_since(mark))
got = listing("cli")
check(len(got) == 206 and all(r["state"] == "migrated" and r["local-phys"].startswith(new + ":")
                              and r["local"].startswith(old + ":") for r in got),
      "list: all migrated, virtual address kept, physical one new")
check(all(r["update-age-ms"] is not None and r["update-age-ms"] < 600_000 for r in got), "and updated (update-age-ms)")
check(all(r["vcmp-state"] == "idle" and r["vcmp-attempts"] >= 1 for r in got),
      "the peer's side of each move is done, after at least one attempt")
check(all(r["update-age-ms"] is not None for r in listing("srv") if r["proto"] == "tcp"),
      "the server's ends updated too")
rc, out, err = ctl("cli", "resume", old, new)
check(rc == 1 and "no virtual connection is at this address" in err, f"nothing left at the old address ({err})")
rc, out, err = ctl("cli", "resume", "--pid", str(helper_pid), new)
check(rc == 1 and "at new-addr already" in err, f"resuming again where they are: refused ({err})")
for c, a in pairs[:20]:
    c.sendall(b"ping")
    check_eq(a.recv(4), b"ping", "a migrated connection carries bytes")
# Per-connection counts: the 20 pinged connections sent and received
# translated packets; they survive a rebuild of the rule table (a closed
# connection makes one).
pinged = {ep(c.getsockname()) for c, _ in pairs[:20]}
counts = {r["local"]: r for r in listing("cli")}
check(all(counts[l]["packets-out"] >= 1 and counts[l]["bytes-out"] >= 44 and counts[l]["packets-in"] >= 1
          for l in pinged), f"list: translated packets and bytes each way ({counts[next(iter(pinged))]})")
scounts = {r["remote"]: r for r in listing("srv")}
check(all(scounts[l]["packets-in"] >= 1 and scounts[l]["bytes-in"] >= 44 for l in pinged), "and at the server")
last_c, last_a = pairs.pop()
last_c.close()
last_a.close()
wait_for(lambda: len(listing("cli")) == 205, "a closed connection leaves the list", timeout=30)
after = {r["local"]: r for r in listing("cli")}
check(all(after[l]["packets-out"] >= counts[l]["packets-out"] and after[l]["bytes-in"] >= counts[l]["bytes-in"]
          for l in pinged), "counts kept across the rule table's rebuild")

# Knobs through vnatctl config (global; `ip netns exec` hides configfs).
before = read_knob("vcmp_retries")
rc, out, err = ctl(None, "config", "set", "vcmp_retries", "99")
check(rc == 1 and "refused" in err and f"stays {before}" in err, f"a bad knob value: exit 1, old value kept ({err})")
check_eq(read_knob("vcmp_retries"), before, "vcmp_retries unchanged")
rc, out, err = ctl(None, "config", "set", "vcmp_retries", "3")
check_eq((rc, read_knob("vcmp_retries")), (0, "3"), f"a good one is taken ({err})")
rc, out, err = ctl(None, "config", "get", "vcmp_retries")
check_eq(out.strip(), "3", "config get")
rc, out, err = ctl(None, "config", "set", "no_such_knob", "1")
check(rc == 2 and "no knob" in err, f"an unknown knob: exit 2 ({err})")
rc, out, err = ctl(None, "config", "set", "vcmp_retries", "1", as_nobody=True)
check(rc == 4 and read_knob("vcmp_retries") == "3", f"an unprivileged user cannot set a knob: exit 4 ({rc}: {err})")
rc, out, err = ctl("cli", "stats", "--json")
check(rc == 0 and json.loads(out)["migrations_completed"] == 206, f"stats --json ({err})")
counters = ynl_family("cli").do("stats-get", {})
check(counters["migrations-completed"] == 206 and set(counters) == {k.replace("_", "-") for k in json.loads(out)},
      f"ynl --do stats-get: the same counters, by the spec's names ({sorted(counters)[:3]}...)")
rc, out, err = ctl("cli", "stats", "--json", as_nobody=True)
check(rc == 0 and "migrations_completed" in json.loads(out or "{}"), f"an unprivileged user may read the counters ({rc} {err})")

# Closing ends the records on both ends.
helper.stdin.close()
helper.wait()
for c, a in pairs:
    c.close()
    a.close()
for a in helper_acc:
    a.close()
u.close()
us.close()
wait_for(lambda: listing("cli") == [] and listing("srv") == [], "closed connections leave the list", timeout=60)
mon_cli.stop()
mon_srv.stop()
srv.close()
rmmod()
rc, out, err = ctl("cli", "list")
check(rc == 3 and "insmod vnat.ko" in err, f"without the module: exit 3 and what to do ({err})")
done()

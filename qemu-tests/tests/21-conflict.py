#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Virtual address conflict (paper 3.4.3). Connection X leaves the client's
old address; at the new address another connection Y already uses X's
port to the same server port, so after the move both would be the same
packets at the server. With the policy abort (the default) the server
refuses X's update: X fails cleanly and stays as it was, Y is untouched.
With the policy preempt, set on X at the server with `vnatctl policy`, the
server aborts Y (its application sees ECONNABORTED) and X moves and
carries bytes both ways. Each resolution is counted and announced as a
`conflict` event naming the connection in the way; a bad policy value is
refused and the old one kept."""
import errno
import socket
from vnattest import *

topo, srv, mon_cli, mon_srv = commanded_topology()
server = f"{topo.server_addr()}:5000"

old = topo.client_addr()
with netns("cli"):
    x = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    x.bind((old, 0))
    x.connect((topo.server_addr(), 5000))
port = x.getsockname()[1]
xa, _ = srv.accept()
topo.attach_client(2)
new = topo.client_addr()
# Y: from the same port at the new address, to the same server port.
with netns("cli"):
    y = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    y.bind((new, port))
    y.connect((topo.server_addr(), 5000))
ya, _ = srv.accept()
y.sendall(b"y before")
check_eq(ya.recv(8), b"y before", "Y works")
check_eq(ctl(None, "config", "get", "conflict_policy")[1].strip(), "abort", "the default policy is abort")
rc, out, err = ctl(None, "config", "set", "conflict_policy", "maybe")
check(rc == 1 and "refused" in err, f"a bad policy value is refused ({rc}: {err})")
check_eq(read_knob("conflict_policy"), "abort", "and the old one kept")

# Abort: X's update is refused at the server, X stays as it was.
mon_cli.drain()
mon_srv.drain()
rc, out, err = ctl("cli", "resume", old, new)
check(rc == 0 and "resuming 1 connection(s)" in out, f"resume X ({rc}: {out} {err})")
wait_for(lambda: stats("cli")["migrations_failed"] == 1, "X's migration failed", timeout=60)
check_eq(stats("srv")["conflicts_aborted"], 1, "the server counted an aborted conflict")
ev = mon_srv.until(lambda e: e["event"] == "conflict", "conflict event at the server")[-1]
check(ev["remote"] == f"{new}:{port}" and "policy abort" in ev.get("reason", ""),
      f"the event names Y and the policy ({ev})")
ev = mon_cli.until(lambda e: e["event"] in ("failed", "resumed"), "X's end at the client")[-1]
check_eq((ev["event"], ev["local"]), ("failed", f"{old}:{port}"), "the client hears that X failed")
xr = [r for r in listing("cli") if r["local"] == f"{old}:{port}"]
check(len(xr) == 1 and xr[0]["state"] == "native" and xr[0]["local-phys"] == f"{old}:{port}",
      f"X is left as it was ({xr})")
ya.sendall(b"y after abort")
check_eq(y.recv(13), b"y after abort", "Y untouched")

# Preempt, for X only, at the server.
rc, out, err = ctl("srv", "policy", "tcp", server, f"{old}:{port}", "preempt")
check_eq(rc, 0, f"vnatctl policy ... preempt ({err})")
pol = {r["remote"]: r["policy"] for r in listing("srv")}
check_eq((pol.get(f"{old}:{port}"), pol.get(f"{new}:{port}")), ("preempt", "default"),
         "the policy is X's own; Y keeps the default")
rc, out, err = ctl("srv", "policy", "tcp", server, f"{old}:1", "preempt")
check(rc == 1 and "no such virtual connection" in err, f"policy for no connection: refused ({err})")
rc, out, err = ctl("srv", "policy", "tcp", server, f"{old}:{port}", "abort", as_nobody=True)
check_eq(rc, 4, f"an unprivileged user cannot set a policy ({err})")
rc, out, err = ctl("cli", "resume", old, new)
check(rc == 0 and "resuming 1 connection(s)" in out, f"resume X again ({rc}: {out} {err})")
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "X migrated", timeout=60)
check_eq(stats("srv")["conflicts_preempted"], 1, "the server counted a preempted connection")
ev = mon_srv.until(lambda e: e["event"] == "conflict", "conflict event at the server")[-1]
check(ev["remote"] == f"{new}:{port}" and "policy preempt" in ev.get("reason", ""),
      f"the event names Y and the policy ({ev})")
recv_fails(ya, errno.ECONNABORTED, "Y's server end sees ECONNABORTED")
x.sendall(b"x after preempt")
check_eq(xa.recv(15), b"x after preempt", "X carries bytes to the server")
xa.sendall(b"and back")
check_eq(x.recv(8), b"and back", "and from it")
xr = [r for r in listing("cli") if r["local"] == f"{old}:{port}"]
check(len(xr) == 1 and xr[0]["state"] == "migrated" and xr[0]["local-phys"] == f"{new}:{port}",
      f"X migrated ({xr})")
# Y's client end: its packets reach X now, so the client aborted it too.
recv_fails(y, errno.ECONNABORTED, "Y's client end sees ECONNABORTED")
check_eq(stats("cli")["conflicts_preempted"], 1, "the client counted it")
ev = mon_cli.until(lambda e: e["event"] == "conflict", "conflict event at the client")[-1]
check(ev["local"] == f"{new}:{port}" and "the peer let it through" in ev.get("reason", ""),
      f"the event names Y ({ev})")

y.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
for s in (x, xa, y, ya, srv):
    s.close()
mon_cli.stop()
mon_srv.stop()
done()

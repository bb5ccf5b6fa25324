#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Suspend (paper 3.3.1) and the connection migration helpers.

`vnatctl suspend` tells the client's vnatd that connections are about to
go away for a while; it tells each peer's vnatd (VNAT_SUS), which keeps
its end alive with a helper until the connection resumes:

1. keepalive, one connection (--conn): the server's end has an aggressive
   TCP keepalive (dead after ~3 s without answers). The client host drops
   off the network. A control connection, not suspended, dies of its
   keepalive (ETIMEDOUT) - so keepalive really runs - while the suspended
   one outlives it; the client comes back at a new address, resumes, and
   the connection carries bytes both ways, its keepalive on again.
2. stop, one process (--pid): the server's end is served by a forked
   child that sends a heartbeat every 100 ms; suspending the client
   process's connections stops that child (SIGSTOP, state T) and the
   heartbeats stop; resuming in place continues it and they come back.
3. a helper left at work longer than helper_timeout_s is undone.
4. a whole host (ADDR): every connection of the address is suspended and
   resumed, and no helper is left at the server.

Bad requests are refused with the documented message and exit status and
change nothing; bad knob values are refused and the old value kept."""
import errno
import queue
import socket
import subprocess
import sys
import threading
import time
from vnattest import *

HEARTBEAT = """
import os, sys, time
fd = int(sys.argv[1])
while True:
    try:
        os.write(fd, b"h")
    except OSError:
        break
    time.sleep(0.1)
"""

READER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print("%s:%d" % s.getsockname(), flush=True)
while True:
    d = s.recv(4096)
    if not d:
        break
    print(len(d), flush=True)
"""


def aggressive_keepalive(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)


def keepalive_on(s):
    return s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0


def tcp_state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]  # 1: ESTABLISHED


def row(ns, local, remote):
    rs = [r for r in listing(ns) if r["local"] == local and r["remote"] == remote]
    check_eq(len(rs), 1, f"{ns}: one record {local} -> {remote}")
    return rs[0] if rs else {}


topo, srv, mon_cli, mon_srv = commanded_topology()
server = f"{topo.server_addr()}:5000"

# ---- knobs and bad requests ---------------------------------------------
check_eq(ctl(None, "config", "get", "suspend_helper")[1].strip(), "keepalive",
         "the default helper is keepalive")
for knob, bad in (("suspend_helper", "pause"), ("helper_timeout_s", "-1"),
                  ("helper_timeout_s", "604801")):
    old = read_knob(knob)
    rc, out, err = ctl(None, "config", "set", knob, bad)
    check(rc == 1 and "refused" in err, f"{knob}={bad} is refused ({rc}: {err})")
    check_eq(read_knob(knob), old, f"and {knob} stays {old}")

k = tcp_connect("cli", topo.server_addr(), 5000)
ka, _ = srv.accept()
kl, kr = ep(k.getsockname()), server
rc, out, err = ctl("cli", "suspend", "--conn", "tcp", kl, f"{topo.server_addr()}:1")
check(rc == 1 and "no such virtual connection" in err, f"suspend of no connection: refused ({rc}: {err})")
rc, out, err = ctl("cli", "suspend", "10.0.7.7")
check(rc == 1 and "no virtual connection is at this address" in err, f"suspend of an unused address ({rc}: {err})")
rc, out, err = ctl("cli", "suspend")
check(rc == 2 and "suspend ADDR" in err, f"suspend without a selector is a usage error ({rc}: {err})")
rc, out, err = ctl("cli", "suspend", "--conn", "tcp", kl, kr, as_nobody=True)
check_eq(rc, 4, f"an unprivileged user cannot suspend ({err})")
rc, out, err = ctl("srv", "helper", "tcp", server, f"{topo.client_addr()}:1", "stop")
check(rc == 1 and "no such virtual connection" in err, f"helper for no connection: refused ({err})")
check_eq(row("cli", kl, kr).get("state"), "native", "nothing was suspended by the bad requests")

# ---- 3. the helper timeout ------------------------------------------------
check_eq(write_knob("helper_timeout_s", "2"), None, "helper_timeout_s=2")
aggressive_keepalive(ka)
mon_cli.drain()
mon_srv.drain()
rc, out, err = ctl("cli", "suspend", "--conn", "tcp", kl, kr)
check(rc == 0 and "suspending 1 connection(s)" in out, f"suspend one connection ({rc}: {out} {err})")
ev = mon_srv.until(lambda e: e["event"] == "peer-suspended", "peer-suspended at the server")[-1]
check_eq((ev["local"], ev["remote"], ev["helper"]), (server, kl, "keepalive"), "the server keeps it with keepalive")
check(not keepalive_on(ka), "the server's keepalive is off for it")
ev = mon_srv.until(lambda e: e["event"] == "helper-released", "the helper times out")[-1]
check("timed out" in ev.get("reason", ""), f"released because it timed out ({ev})")
check(keepalive_on(ka), "keepalive is on again")
check_eq(stats("srv")["helpers_expired"], 1, "counted as expired")
check_eq(row("srv", server, kl).get("peer-suspended"), False, "the server no longer waits for it")
check_eq(write_knob("helper_timeout_s", "3600"), None, "helper_timeout_s=3600")
# K is still suspended at the client: resume it in place.
rc, out, err = ctl("cli", "resume", "--conn", "tcp", kl, kr)
check(rc == 0, f"resume in place ({rc}: {out} {err})")
wait_for(lambda: row("cli", kl, kr).get("state") == "native", "K back to native", timeout=60)

# ---- 2. stop the server's subprocess, by pid --------------------------------
srv2 = tcp_listen("srv", "0.0.0.0", 5001)
with netns("cli"):
    reader = subprocess.Popen([sys.executable, "-c", READER, topo.server_addr(), "5001"],
                              stdout=subprocess.PIPE, text=True)
sl = reader.stdout.readline().strip()
sa, _ = srv2.accept()
# Fork-after-accept, as a multi-process server does: the child serves it.
child = subprocess.Popen([sys.executable, "-c", HEARTBEAT, str(sa.fileno())], pass_fds=[sa.fileno()])
sa.close()
reader.stdout.readline()
rc, out, err = ctl("srv", "helper", "tcp", f"{topo.server_addr()}:5001", sl, "stop")
check_eq(rc, 0, f"vnatctl helper ... stop ({err})")
mon_cli.drain()
mon_srv.drain()
rc, out, err = ctl("cli", "suspend", "--pid", str(reader.pid))
check(rc == 0 and "suspending 1 connection(s) of process" in out,
      f"suspend exactly the reader's one connection ({rc}: {out} {err})")
ev = mon_cli.until(lambda e: e["event"] == "suspended", "suspended at the client")[-1]
check_eq((ev["local"], ev["helper"], ev["state"]), (sl, "stop", "suspended"),
         "the client hears that the server stopped its end")
check_eq(proc_state(child.pid), "T", "the server's child is stopped")
waiting = [r for r in listing("srv") if r["peer-suspended"]]
check_eq([(r["remote"], r["helper"]) for r in waiting], [(sl, "stop")], "the server keeps only that one")
rc, out, err = ctl("cli", "list")
check(rc == 0 and "peer:stop" in out, f"vnatctl list shows the peer's helper ({out})")
check_eq([r["state"] for r in ynl_connection_rows("cli") if r["local"] == sl], ["suspended"],
         "the kernel's ynl dump (conn-get) shows it suspended too")
# Nothing arrives while the child is stopped: whatever was in flight is
# read, then the reader hears nothing until the resume.
reader_lines = queue.Queue()
threading.Thread(target=lambda: [reader_lines.put(l) for l in reader.stdout], daemon=True).start()
time.sleep(0.5)
while not reader_lines.empty():
    reader_lines.get()
time.sleep(1)
check(reader_lines.empty(), "no heartbeat from the stopped child")
check_eq(row("cli", kl, kr).get("state"), "native", "the test process's own connection is not suspended")
rc, out, err = ctl("cli", "suspend", "--pid", str(reader.pid))
check(rc == 1 and "suspended already" in err, f"suspending again is refused ({rc}: {err})")
rc, out, err = ctl("cli", "resume", "--pid", str(reader.pid))
check(rc == 0 and "resuming 1 connection(s)" in out, f"resume the process in place ({rc}: {out} {err})")
ev = mon_srv.until(lambda e: e["event"] == "helper-released", "helper released at the server")[-1]
check_eq((ev["remote"], ev.get("reason"), ev["helper"]), (sl, "the peer resumed", "stop"),
         "the stop helper is released because the peer resumed")
wait_for(lambda: proc_state(child.pid) != "T", "the server's child continues")
check(reader_lines.get(timeout=10) is not None, "heartbeats arrive again")
check_eq(stats("srv")["helpers_released"], 1, "counted as released")
reader.kill()
reader.wait()
child.wait(timeout=30)

# ---- 1. keepalive, one connection, across a move ------------------------------
c = tcp_connect("cli", topo.server_addr(), 5000)
ca, _ = srv.accept()
aggressive_keepalive(ca)
aggressive_keepalive(ka)
mon_cli.drain()
mon_srv.drain()
rc, out, err = ctl("cli", "suspend", "--conn", "tcp", kl, kr)
check(rc == 0 and "suspending 1 connection(s)" in out, f"suspend K ({rc}: {out} {err})")
mon_srv.until(lambda e: e["event"] == "peer-suspended" and e["remote"] == kl, "the server keeps K")
ev = mon_cli.until(lambda e: e["event"] == "suspended", "K suspended at the client")[-1]
check_eq((ev["local"], ev["helper"]), (kl, "keepalive"), "the client hears the server's helper")
check(not keepalive_on(ka) and keepalive_on(ca), "keepalive is off for K only")
old = topo.client_addr()
sh(f"ip -n cli link set c{topo.client_at} down")  # the laptop leaves the network
recv_fails(ca, errno.ETIMEDOUT, "the control connection dies of its keepalive", timeout=60)
check_eq(tcp_state(ka), 1, "the suspended connection is still established at the server")
time.sleep(3)  # a whole keepalive budget more
check_eq(tcp_state(ka), 1, "and still, one more keepalive budget later")
sh(f"ip -n cli link set c{topo.client_at} up")
topo.attach_client(2)
new = topo.client_addr()
rc, out, err = ctl("cli", "resume", "--conn", "tcp", kl, kr, new)
check(rc == 0 and "resuming 1 connection(s)" in out, f"resume K at {new} ({rc}: {out} {err})")
ev = mon_srv.until(lambda e: e["event"] == "helper-released", "helper released")[-1]
check_eq((ev["remote"], ev["helper"]), (kl, "keepalive"), "K's keepalive helper is released")
wait_for(lambda: row("cli", kl, kr).get("state") == "migrated", "K migrated", timeout=60)
check(keepalive_on(ka), "K's keepalive is on again at the server")
k.sendall(b"k after the move")
check_eq(ka.recv(16), b"k after the move", "K carries bytes to the server")
ka.sendall(b"and back")
check_eq(k.recv(8), b"and back", "and from it")
c.close()

# ---- 4. a whole host ----------------------------------------------------------
k2 = tcp_connect("cli", topo.server_addr(), 5000)
k2a, _ = srv.accept()
here = [r for r in listing("cli") if r["local-phys"].startswith(new + ":") and r["state"] != "suspended"]
check_eq(len(here), 2, f"K and K2 are at {new} ({here})")
rc, out, err = ctl("cli", "suspend", new)
check(rc == 0 and f"suspending {len(here)} connection(s) of {new}" in out,
      f"suspend every connection of {new} ({rc}: {out} {err})")
wait_for(lambda: all(r["state"] == "suspended" for r in listing("cli")
                     if r["local-phys"].startswith(new + ":")), "all of them suspended")
wait_for(lambda: len([r for r in listing("srv") if r["peer-suspended"]]) == 2, "the server keeps both")
rc, out, err = ctl("cli", "resume", new, new)
check(rc == 0, f"resume them where they are ({rc}: {out} {err})")
wait_for(lambda: not any(r["peer-suspended"] for r in listing("srv")), "no helper left at the server", timeout=60)
wait_for(lambda: not any(r["state"] in ("suspended", "resuming") for r in listing("cli")), "all resumed", timeout=60)
k2.sendall(b"whole host")
check_eq(k2a.recv(10), b"whole host", "bytes after the host's resume")
check_eq(stats("cli")["suspends_sent"], 5, "five VNAT_SUS sent (1 + 1 + 1 + 2)")
check_eq(stats("srv")["suspends_accepted"], 5, "five accepted")

# ---- UDP: a connected client, an unconnected server socket ---------------------
# The server's socket has no flow of its own (paper 3.5): the flow's record
# is made when the client's vnatd asks for its key, from the address the
# flow names. The suspension is then accepted there, without a helper (UDP
# has no keepalive, and the socket serves other peers too), and the resume
# in place goes by the key.
with netns("srv"):
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind(("0.0.0.0", 5300))
with netns("cli"):
    uc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uc.connect((topo.server_addr(), 5300))
ul = ep(uc.getsockname())
uc.send(b"ping")
us.settimeout(10)
data, peer = us.recvfrom(100)
check_eq((data, ep(peer)), (b"ping", ul), "a datagram from the client")
wait_for(lambda: [(r["origin"], r["auth"]) for r in ynl_connection_rows("srv") if r["remote"] == ul]
         == [("update", "keyed")], "the server recorded the flow, keyed, when the client asked for its key")
accepted = stats("srv")["suspends_accepted"]
mon_cli.drain()
rc, out, err = ctl("cli", "suspend", "--conn", "udp", ul, f"{topo.server_addr()}:5300")
check(rc == 0 and "suspending 1 connection(s) udp" in out, f"suspend the UDP flow ({rc}: {out} {err})")
ev = mon_cli.until(lambda e: e["event"] == "suspended" and e["local"] == ul, "the UDP flow suspended")[-1]
check(ev["helper"] == "none", f"the server took the suspension, with no helper for a UDP flow ({ev})")
check_eq(stats("srv")["suspends_accepted"], accepted + 1, "the server counted it")
rc, out, err = ctl("cli", "resume", "--conn", "udp", ul, f"{topo.server_addr()}:5300")
check(rc == 0, f"resume the UDP flow in place ({rc}: {out} {err})")
wait_for(lambda: row("cli", ul, f"{topo.server_addr()}:5300").get("state") == "native", "the UDP flow resumed",
         timeout=60)
check_eq([r["origin"] for r in listing("srv") if r["remote"] == ul], ["update"],
         "the server's record of the flow is still the one its key made")
us.sendto(b"pong", peer)
uc.settimeout(10)
check_eq(uc.recv(100), b"pong", "datagrams flow after the resume")

for s in (k, ka, k2, k2a, srv, srv2, us, uc):
    s.close()
mon_cli.stop()
mon_srv.stop()
done()

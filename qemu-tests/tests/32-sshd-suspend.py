#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Suspend with the stop helper on a forking server: sshd (paper 3.3.1).

    cli (10.0.1.2, away, then 10.0.2.2) --- rtr --- srv 10.0.9.2, sshd on 22

The server's sshd drops a client it has not heard from for 3 s
(ClientAliveInterval 1, ClientAliveCountMax 2: its own timeout). An ssh
session runs a command that prints a numbered line every 100 ms. The
client suspends its ssh's connection (`vnatctl suspend --pid`); the
server's vnatd, whose helper is `stop`, stops the processes that hold the
connection's socket (the session's sshd processes, forked by the
listener). The client leaves the network for 10 s, over three times the
server's timeout, comes back at a new address and resumes there. Asserted:
the session's processes were stopped while it was away and run again
after; the listener was not stopped; the command's lines all arrive, in
order, and more after the return; ssh exits 0 with nothing on standard
error; the router sees the session from the new address only."""
import os
import threading
from vnattest import *
from apps import TICKER, Sshd, finished, popen

AWAY_S = 10


def holders(ns, port):
    """The pids of namespace `ns` that have a TCP socket of local `port`,
    other than listening ones, open."""
    inodes = {f"socket:[{inode}]" for lp, _, state, inode in tcp_sockets(ns) if lp == port and state != TCP_LISTEN}
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                pids.add(int(pid))
        except OSError:
            pass
    return pids


insmod()
check_eq(write_knob("suspend_helper", "stop"), None, "this host's helper: stop")
check_eq(write_knob("auto_migrate", "0"), None, "auto_migrate=0: the user suspends and resumes")
topo = Topology()
sshd = Sshd("srv", config="ClientAliveInterval 1\nClientAliveCountMax 2\n")
server = topo.server_addr()
ticker = popen("cli", sshd.argv(server, f"python3 -c \"{TICKER}\""), stdin=subprocess.PIPE, text=True)
lines = []
reader = threading.Thread(target=lambda: [lines.append(l.strip()) for l in ticker.stdout])
reader.start()
wait_for(lambda: len(lines) >= 5, "the session prints its lines", 60)
wait_keyed("cli", "srv", timeout=30)
session = holders("srv", 22)
check(len(session) >= 1 and sshd.server.p.pid not in session,
      f"the session's own processes hold its socket ({sorted(session)}), not the listener")
listener_pids = set(int(p) for p in sh("ip netns pids srv").split()) - session

rc, out, err = ctl("cli", "suspend", "--pid", str(ticker.pid))
check(rc == 0 and "suspending 1 connection(s) of process" in out, f"suspend the ssh's connection ({rc}: {out} {err})")
wait_for(lambda: session and all(proc_state(p) == "T" for p in session),
         "the server's vnatd stops the session's processes", timeout=30)
check(all(proc_state(p) != "T" for p in listener_pids if os.path.exists(f"/proc/{p}")),
      "nothing else of the server is stopped")
old = topo.client_addr()
sh(f"ip -n cli link set c{topo.client_at} down")   # the laptop leaves the network
log(f"the client is away for {AWAY_S} s")
n_away = len(lines)
time.sleep(AWAY_S)   # what is tested: an absence longer than the server's timeout
check(all(proc_state(p) == "T" for p in session), "the session's processes stayed stopped")
check(len(lines) <= n_away + 2, f"no new line while away ({len(lines) - n_away}; in flight at most)")
sh(f"ip -n cli link set c{topo.client_at} up")
topo.attach_client(2)
new = topo.client_addr()
rc, out, err = ctl("cli", "resume", "--pid", str(ticker.pid), new)
check(rc == 0 and "resuming 1 connection(s)" in out, f"resume at {new} ({rc}: {out} {err})")
wait_for(lambda: all(proc_state(p) != "T" for p in session if os.path.exists(f"/proc/{p}")),
         "the session's processes run again", timeout=60)
# Until the resume, the server's TCP resent what it had in flight to the
# old address; from now on it knows the new one.
wait_mapped("srv", new)
cap = Capture("rtr", "tcp port 22")
n_back = len(lines)
wait_for(lambda: len(lines) >= n_back + 10, "ten more lines after the return", 60)
ticker.stdin.close()
finished(ticker, "ssh session", read_stdout=False)
reader.join(30)
cap.stop()
numbers = [l for l in lines if l != "end"]
check(lines and lines[-1] == "end" and numbers == [f"line {i}" for i in range(len(numbers))],
      f"{len(numbers)} lines, all and in order, then the end")
check(cap.count(f"host {new}") > 0, f"router saw the session from {new}")
check_eq(cap.count(f"host {old}"), 0, f"router packets of {old} after the return")
# Which end reset and when, if one did (once, 2026-12-05: 2 resets as the
# session closed; not seen again in two runs).
rst = "tcp[tcpflags] & tcp-rst != 0"
if cap.count(rst):
    log(f"the resets, and the packets before them:\n{cap.show('tcp')[-3000:]}")
check_eq(cap.count(rst), 0, "resets on the wire")
s = stats("srv")
check_eq((s["suspends_accepted"], s["helpers_released"]), (1, 1), "one suspension accepted, its helper released")
sshd.stop()
done()

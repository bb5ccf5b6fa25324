#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The stop helper continues the processes it stopped, and only them. Two
processes of the server hold a connection whose client suspends; both are
stopped. One is killed meanwhile and its pid number is given to a new
process (through ns_last_pid). When the client resumes, the surviving holder
continues and the new process, which catches SIGCONT, receives nothing:
SIGCONT by pid number alone would reach it."""
import signal
import subprocess
import sys
from vnattest import *

HOLDER = """
import time
while True:
    time.sleep(1)
"""

# Reports the signals it catches, in the order it handles them.
CATCHER = """
import signal, sys, time
for s in (signal.SIGCONT, signal.SIGWINCH):
    signal.signal(s, lambda n, f: print(signal.Signals(n).name, flush=True))
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""

topo, srv, mon_cli, mon_srv = commanded_topology()
server = f"{topo.server_addr()}:5000"
c = tcp_connect("cli", topo.server_addr(), 5000)
sa, _ = srv.accept()
cl = ep(c.getsockname())
# Fork-after-accept with two holders; this process lets go of its copy.
keeper = subprocess.Popen([sys.executable, "-c", HOLDER], pass_fds=[sa.fileno()])
doomed = subprocess.Popen([sys.executable, "-c", HOLDER], pass_fds=[sa.fileno()])
sa.close()
rc, out, err = ctl("srv", "helper", "tcp", server, cl, "stop")
check_eq(rc, 0, f"vnatctl helper ... stop at the server ({err})")
rc, out, err = ctl("cli", "suspend", "--conn", "tcp", cl, server)
check(rc == 0 and "suspending 1 connection(s)" in out, f"suspend the connection ({rc}: {out} {err})")
ev = mon_cli.until(lambda e: e["event"] == "suspended", "suspended at the client")[-1]
check_eq(ev["helper"], "stop", "the server stopped its end")
wait_for(lambda: (proc_state(keeper.pid), proc_state(doomed.pid)) == ("T", "T"), "both holders stopped")

nr = doomed.pid
doomed.kill()
doomed.wait()
catcher = None
for _ in range(50):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(nr - 1))
    p = subprocess.Popen([sys.executable, "-c", CATCHER], stdout=subprocess.PIPE, text=True)
    if p.pid == nr:
        catcher = p
        break
    p.kill()
    p.wait()
check(catcher is not None, f"a new process got the dead holder's number {nr}")
check_eq(catcher.stdout.readline().strip(), "ready", "it catches SIGCONT")

mon_srv.drain()
rc, out, err = ctl("cli", "resume", "--conn", "tcp", cl, server)
check(rc == 0 and "resuming 1 connection(s)" in out, f"resume in place ({rc}: {out} {err})")
ev = mon_srv.until(lambda e: e["event"] == "helper-released", "helper released at the server")[-1]
check_eq((ev["remote"], ev["helper"]), (cl, "stop"), "the stop helper is undone")
wait_for(lambda: proc_state(keeper.pid) != "T", "the surviving holder continues")
# The release signalled before its event: a SIGCONT sent to the catcher is
# pending by now, and is handled before a SIGWINCH sent after it.
catcher.send_signal(signal.SIGWINCH)
check_eq(catcher.stdout.readline().strip(), "SIGWINCH", "the new process received no SIGCONT")
for p in (catcher, keeper):
    p.kill()
    p.wait()
c.close()
srv.close()
mon_cli.stop()
mon_srv.stop()
done()

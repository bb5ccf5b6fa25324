#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make demo-process, inside the guest: a process moves to another host
with its connections (paper 3.3). A client process on host A uploads a
stream and plays ping-pong with a server on two connections; criu
checkpoints it on A and restores it on host B, another network, with
vnatctl as criu's action script; the server's program never notices.

    host A   a  10.0.1.2 ---- 10.0.1.1 ┐
                                       ├ rtr 10.0.9.1 ---- srv 10.0.9.2:5000 (upload)
    host B   b  10.0.2.2 ---- 10.0.2.1 ┘                              :5001 (ping-pong)

Prints a timeline (the server's throughput every 250 ms and where the
process runs), the two criu commands as a user types them, the data gap,
and a verdict."""
import ctypes
import json
import os
import subprocess
import tempfile
import time

from vnattest import VNATCTL, Sink, add_netns, ctl, insmod, ip_batch, pong, set_sysctl, stats, tcp_listen, veth

BOLD, END = "\033[1m", "\033[0m"
A, B, SRV = "10.0.1.2", "10.0.2.2", "10.0.9.2"
CRIU = os.environ.get("VNAT_CRIU", "/usr/local/sbin/criu")

# The process that moves: one thread, select() on its two sockets; uploads
# until the file `stop` exists, then writes what it sent and how its
# pings went.
CLIENT = r"""
import hashlib, json, os, select, socket, sys, time
srv, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
up = socket.create_connection((srv, 5000))
pp = socket.create_connection((srv, 5001))
for s in (up, pp):
    s.setblocking(False)
block, sent, h = os.urandom(1 << 14), 0, hashlib.sha256()
pings = pongs = 0
buf, next_ping, uploading = b"", 0.0, True
while True:
    if uploading and os.path.exists(stop):
        up.shutdown(socket.SHUT_WR)
        uploading = False
    if time.monotonic() >= next_ping:
        pp.sendall(b"ping %d\n" % pings)
        pings += 1
        next_ping = time.monotonic() + 0.2
    r, w, _ = select.select([pp], [up] if uploading else [], [], 0.05)
    if w:
        try:
            n = up.send(block)
            h.update(block[:n])
            sent += n
        except BlockingIOError:
            pass
    if r:
        d = pp.recv(4096)
        if not d:
            break   # the server went away: the result says how far it got
        buf += d
        pongs += buf.count(b"\n")
        buf = buf[buf.rfind(b"\n") + 1:]
    if not uploading and pongs >= pings:
        break
with open(out, "w") as f:
    json.dump({"sent": sent, "sha": h.hexdigest(), "pings": pings, "pongs": pongs}, f)
"""


def say(msg):
    print(f"\n{BOLD}== {msg}{END}", flush=True)


def run(ns, argv):
    """Runs a command as a user would on host `ns` (its network namespace
    only), showing it; returns (exit status, seconds)."""
    print(f"  {ns}# {' '.join(argv)}", flush=True)
    t = time.monotonic()
    r = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    took = time.monotonic() - t
    if r.returncode != 0:
        print(f"    exit {r.returncode}: {r.stderr.strip()[-800:]}", flush=True)
    return r.returncode, took


say("insmod vnat.ko; hosts A (a), B (b), a router (rtr) and a server (srv)")
insmod()
for ns in ("a", "b", "rtr", "srv"):
    add_netns(ns)
set_sysctl("rtr", "net.ipv4.ip_forward", 1)
veth("a", A, "rtr", "10.0.1.1", name="n1")
veth("b", B, "rtr", "10.0.2.1", name="n2")
veth("srv", SRV, "rtr", "10.0.9.1", name="n9")
for ns, gw in (("a", "10.0.1.1"), ("b", "10.0.2.1"), ("srv", "10.0.9.1")):
    ip_batch(ns, [f"route add default via {gw}"])
for ns in ("a", "b", "srv"):
    stats(ns)   # the first parses the family's spec: seconds under TCG
print(f"A is {A}, B is {B} (another network), the server {SRV}; criu: "
      f"{' '.join(subprocess.run([CRIU, '--version'], capture_output=True, text=True).stdout.split()[1:2])}", flush=True)

# The server's program: threads of this demo, never touched.
up_l, pp_l = tcp_listen("srv", "0.0.0.0", 5000), tcp_listen("srv", "0.0.0.0", 5001)
work = tempfile.mkdtemp(prefix="vnat-demo-")
os.chmod(work, 0o755)
images, stop, out = f"{work}/img", f"{work}/stop", f"{work}/result.json"
os.mkdir(images)
with open(f"{work}/client.py", "w") as f:
    f.write(CLIENT)
# The restored process is criu's child; once criu exits, this program's.
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
proc = subprocess.Popen(["nsenter", "--net=/run/netns/a", "--", "python3", f"{work}/client.py", SRV, stop, out],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(f"{work}/client.log", "w"),
                        start_new_session=True, cwd=work)
pid = proc.pid
up, _ = up_l.accept()
pp, _ = pp_l.accept()
sink = Sink(up)
threads = [sink.thread, pong(pp)]
ns_ino = {}
for ns in ("a", "b"):
    ns_ino[os.stat(f"/run/netns/{ns}").st_ino] = f"host {ns.upper()}"


def where():
    try:
        return ns_ino.get(os.stat(f"/proc/{pid}/ns/net").st_ino, "?")
    except OSError:
        return "checkpointed (no process)"


say(f"timeline: process {pid} uploads and plays ping-pong (guest time under QEMU emulation)")
t0, last, moved = time.monotonic(), (0, time.monotonic()), {}


def tick(until):
    global last
    while time.monotonic() - t0 < until:
        time.sleep(0.25)
        r, now = sink.received, time.monotonic()
        mbps = (r - last[0]) * 8 / (now - last[1]) / 1e6
        last = (r, now)
        print(f"{time.monotonic() - t0:5.1f}s  {mbps:7.1f} Mbit/s  {'#' * min(50, int(mbps / 4)):50}  "
              f"process {pid}: {where()}", flush=True)


tick(3.0)
print(f"{time.monotonic() - t0:5.1f}s  ** on host A: criu dump (vnatctl saves the connections)", flush=True)
moved["dump"] = time.monotonic()
rc_d, took_d = run("a", [CRIU, "dump", "-t", str(pid), "-D", images, "--tcp-established", "--network-lock",
                         "nftables", "--action-script", VNATCTL])
if rc_d != 0:
    proc.kill()   # criu let it run on where it was
proc.wait(30)
tick(time.monotonic() - t0 + 1.0)
print(f"{time.monotonic() - t0:5.1f}s  ** on host B: criu restore (vnatctl brings the connections, "
      f"B's vnatd tells the server)", flush=True)
moved["restore"] = time.monotonic()
rc_r, took_r = (run("b", [CRIU, "restore", "-D", images, "--tcp-established", "--network-lock", "nftables",
                          "--action-script", VNATCTL, "-d"]) if rc_d == 0 else (None, 0.0))
moved["restored"] = time.monotonic()
tick(time.monotonic() - t0 + 4.0)
say("the connections on host B: vnatctl -n b list")
for row in ctl("b", "list")[1].splitlines():
    print(f"  {row}")
open(stop, "w").close()


def reaped(timeout=60):
    """Whether the restored process (this program's child once criu left
    it) exits with 0 within `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            w, st = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if w:
            return st == 0
        time.sleep(0.1)
    os.kill(pid, 9)
    return False


ok_exit = rc_r == 0 and reaped()
for t in threads:
    t.join(30)
res = json.load(open(out)) if os.path.exists(out) else {}

arrivals = sink.arrivals
after = [a for a in arrivals if a > moved["restored"]]
gap = max(b - a for a, b in zip(arrivals, arrivals[1:])) if after else None
say("verdict")
print(f"  criu dump on A {took_d:.1f} s (exit {rc_d}), criu restore on B {took_r:.1f} s (exit {rc_r})")
if gap is not None:
    print(f"  upload gap: {gap:.1f} s without data at the server (criu's dump and restore under emulation, "
          f"with the debug kernel's KASAN)")
sha_ok = res.get("sha") == sink.hash.hexdigest() and res.get("sent") == sink.received
print(f"  upload: {sink.received / 1e6:.1f} MB, SHA-256 {'equal' if sha_ok else 'DIFFERENT'}")
print(f"  ping-pong: {res.get('pongs')}/{res.get('pings')} answered")
s = stats("srv")
print(f"  the server's vnatd accepted {s['updates_accepted']} updates from B; its program was never told")
ok = ok_exit and sha_ok and res.get("pongs") == res.get("pings") and gap is not None
print(f"  {BOLD}{'PASS: the process moved to B with both connections' if ok else 'FAIL'}{END}", flush=True)
raise SystemExit(0 if ok else 1)

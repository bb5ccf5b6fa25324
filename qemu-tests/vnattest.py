# SPDX-License-Identifier: GPL-2.0
"""Helpers for VNAT's QEMU tests, in the manner of selftests/wireguard/netns.sh.

Each network namespace is a host with its own vnatd. One test process can
act in several namespaces: `netns(name)` switches the calling thread with
setns(2), and sockets keep the namespace they were created in, so a test
can open a connection from host A to host B and then read each host's
/proc/net/vnat files, deterministically and without sleeping.
"""

import contextlib
import ctypes
import os
import re
import socket
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
VNAT_KO = os.environ.get("VNAT_KO", "vnat.ko")
CONFIGFS = "/sys/kernel/config/vnat"
FAILURES = []


def log(msg):
    print(msg, flush=True)


def check(cond, what):
    """Records a failed assertion and goes on, so one run shows them all."""
    if cond:
        log(f"  pass: {what}")
    else:
        log(f"  FAIL: {what}")
        FAILURES.append(what)
    return cond


def check_eq(got, want, what):
    return check(got == want, f"{what}: got {got!r}, want {want!r}")


def done():
    if FAILURES:
        log(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    sys.exit(0)


def sh(cmd, check_rc=True, **kw):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True, **kw)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def insmod(*params):
    sh(f"insmod {VNAT_KO} {' '.join(params)}")


def rmmod():
    sh("rmmod vnat")


def loaded():
    return any(l.split()[0] == "vnat" for l in open("/proc/modules"))


def _setns_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({path}): {os.strerror(e)}")
    finally:
        os.close(fd)


_INIT_NS = os.open("/proc/self/ns/net", os.O_RDONLY)


@contextlib.contextmanager
def netns(name):
    """Runs the block in network namespace `name` (None: the initial one)."""
    cur = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if name is None:
            _libc.setns(_INIT_NS, CLONE_NEWNET)
        else:
            _setns_path(f"/run/netns/{name}")
        yield
    finally:
        _libc.setns(cur, CLONE_NEWNET)
        os.close(cur)


def add_netns(name):
    sh(f"ip netns add {name}")
    sh(f"ip -n {name} link set lo up")


def del_netns(name):
    sh(f"ip netns del {name}")


def veth(ns1, addr1, ns2, addr2, prefix=24, name="v"):
    """A veth pair between two namespaces, with addresses, both ends up."""
    a, b = f"{name}{ns1}"[:15], f"{name}{ns2}"[:15]
    sh(f"ip link add {a} netns {ns1} type veth peer name {b} netns {ns2}")
    sh(f"ip -n {ns1} addr add {addr1}/{prefix} dev {a}")
    sh(f"ip -n {ns2} addr add {addr2}/{prefix} dev {b}")
    sh(f"ip -n {ns1} link set {a} up")
    sh(f"ip -n {ns2} link set {b} up")


def _proc(ns, name):
    with netns(ns):
        with open(f"/proc/thread-self/net/vnat/{name}") as f:
            return f.read()


def stats(ns=None):
    """/proc/net/vnat/stats of a namespace, as a dict of ints."""
    out = {}
    for line in _proc(ns, "stats").splitlines():
        k, v = line.split()
        out[k] = int(v)
    return out


def connections(ns=None):
    """/proc/net/vnat/connections of a namespace: set of (local, remote, pid, origin)."""
    rows = _proc(ns, "connections").splitlines()[1:]
    out = set()
    for r in rows:
        proto, local, remote, pid, origin = r.split()
        out.add((local, remote, int(pid), origin))
    return out


def ep(sockname):
    return f"{sockname[0]}:{sockname[1]}"


def listening_ports(ns=None):
    """TCP ports in LISTEN state in a namespace, from /proc/net/tcp."""
    ports = set()
    with netns(ns):
        with open("/proc/thread-self/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    ports.add(int(fields[1].split(":")[1], 16))
    return ports


def wait_for(cond, what, timeout=10.0):
    """Polls `cond` until it holds, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return check(cond(), f"{what} (within {timeout}s)")


def tcp_listen(ns, addr, port=0):
    with netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(64)
    return s


def tcp_connect(ns, addr, port):
    with netns(ns):
        return socket.create_connection((addr, port), timeout=10)


def knob_path(name):
    return f"{CONFIGFS}/{name}"


def read_knob(name):
    with open(knob_path(name)) as f:
        return f.read().strip()


def write_knob(name, value):
    """Writes a knob; returns None on success or the errno on failure."""
    try:
        with open(knob_path(name), "w") as f:
            f.write(value)
        return None
    except OSError as e:
        return e.errno


def dmesg_tail(n=20):
    return sh(f"dmesg -t | tail -n {n}")


def match_line(text, pattern):
    return re.search(pattern, text, re.M) is not None

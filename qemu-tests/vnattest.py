# SPDX-License-Identifier: GPL-2.0
"""Helpers for VNAT's QEMU tests, in the manner of selftests/wireguard/netns.sh.

Each network namespace is a host with its own vnatd. One test process can
act in several namespaces: `netns(name)` switches the calling thread with
setns(2), and sockets keep the namespace they were created in, so a test
can open a connection from host A to host B and then read each host's
counters and connections (the generic netlink family "vnat", through
vnatctl and the kernel's ynl), deterministically and without sleeping.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import queue
import re
import socket
import struct
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
VNAT_KO = os.environ.get("VNAT_KO", "vnat.ko")
CONFIGFS = "/sys/kernel/config/vnat"
FAILURES = []


# Every line a test prints says when, in seconds since the test began: the
# data for making the suite faster where it is slow.
_T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - _T0:6.1f}] {msg}", flush=True)


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


def recv_fails(s, err, what, timeout=10):
    """Checks that reading socket `s` fails with errno `err` within
    `timeout` seconds (a timeout is an error without that errno)."""
    s.settimeout(timeout)
    try:
        got = s.recv(10)
        return check(False, f"{what} (recv returned {got!r})")
    except OSError as e:
        return check_eq(e.errno, err, what)


def check_same(got, want, what):
    """Compares two sets; on a difference, says only what differs."""
    return check(got == want, f"{what}: {len(got)} got, {len(want)} wanted; only got: "
                 f"{sorted(got - want)[:5]}, only wanted: {sorted(want - got)[:5]}")


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


def rmmod(timeout=10):
    """Unloads vnat. While migrated connections live, the module is in use
    (their packets need its rules: rmmod is refused); this waits up to
    `timeout` s for those that are closing (a FIN exchange) to end. (A
    reference taken between kmod's check and the unload gives EAGAIN.)"""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run(["rmmod", "vnat"], text=True, capture_output=True)
        if r.returncode == 0:
            break
        if ("in use" not in r.stderr and "temporarily unavailable" not in r.stderr) or time.monotonic() > deadline:
            raise RuntimeError(f"rmmod vnat exited {r.returncode}: {r.stderr.strip()}")
        time.sleep(0.1)
    # The family goes with the module; a later insmod registers it anew,
    # under another id, which ynl keeps for the whole process.
    for fam in _YNL_BY_NS.values():
        fam.sock.close()
    _YNL_BY_NS.clear()
    if "pyynl.lib.ynl" in sys.modules:
        sys.modules["pyynl.lib.ynl"].GenlProtocol.genl_family_name_to_id = {}


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


def ip_batch(ns, cmds):
    """Runs `ip` commands (lines without the `ip`) in namespace `ns` (None:
    this one) in one process: each `ip` started costs about a second under
    TCG (an emulated exec of a dynamically linked program), and a topology
    took dozens of them."""
    sh(f"ip {f'-n {ns} ' if ns else ''}-batch -", input="\n".join(cmds) + "\n")



def at_once(*batches):
    """Runs `ip` batches, each a (namespace, commands) pair, at nearly the
    same moment (two hosts that move at once): each `ip` is started first
    (an exec takes about a second under TCG) and waits for its batch on a
    FIFO; then the batches are written one right after the other. Returns,
    when all are done, when the first was written (monotonic) and the
    seconds from it to the last."""
    import tempfile
    d = tempfile.mkdtemp()
    procs = []
    for i, (ns, cmds) in enumerate(batches):
        fifo = f"{d}/{i}"
        os.mkfifo(fifo)
        p = subprocess.Popen(["ip", "-n", ns, "-batch", fifo], stderr=subprocess.PIPE, text=True)
        procs.append((p, fifo, cmds))
    # Opening a FIFO for writing waits until its `ip` opened it to read.
    files = [open(fifo, "w") for _, fifo, _ in procs]
    first = time.monotonic()
    for f, (_, _, cmds) in zip(files, procs):
        f.write("\n".join(cmds) + "\n")
        f.close()
    spread = time.monotonic() - first
    for p, fifo, cmds in procs:
        _, err = p.communicate()
        os.unlink(fifo)
        if p.returncode:
            raise RuntimeError(f"ip -batch {cmds} failed: {err}")
    os.rmdir(d)
    return first, spread

def set_sysctl(ns, key, value):
    """Writes a sysctl of namespace `ns` from this process (no `sysctl`
    started: see ip_batch)."""
    with netns(ns):
        with open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
            f.write(str(value))


def add_netns(name):
    sh(f"ip netns add {name}")
    # lo up, without another process.
    with netns(name):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
            flags = struct.unpack_from("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0)))[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def del_netns(name):
    # A socket held open in a namespace would keep it from being freed.
    if name in _YNL_BY_NS:
        _YNL_BY_NS.pop(name).sock.close()
    sh(f"ip netns del {name}")


def veth(ns1, addr1, ns2, addr2, prefix=24, name="v"):
    """A veth pair between two namespaces, with addresses, both ends up."""
    a, b = f"{name}{ns1}"[:15], f"{name}{ns2}"[:15]
    sh(f"ip link add {a} netns {ns1} type veth peer name {b} netns {ns2}")
    ip_batch(ns1, [f"addr add {addr1}/{prefix} dev {a}", f"link set {a} up"])
    ip_batch(ns2, [f"addr add {addr2}/{prefix} dev {b}", f"link set {b} up"])


def stats(ns=None):
    """The counters of a namespace, as a dict of ints by name: the family's
    stats-get, through the kernel's ynl in this process (tests poll it;
    starting vnatctl takes seconds under TCG). Names as `vnatctl stats
    --json` gives them (test 20 checks that the two agree)."""
    return {k.replace("-", "_"): int(v) for k, v in ynl_family(ns).do("stats-get", {}).items()}


def nonzero(counters, *words):
    """The counters of `counters` (a stats() dict) that are not zero and
    whose names have one of `words`, as "name=value, ...": for a log."""
    return ", ".join(f"{k}={v}" for k, v in counters.items() if v and any(w in k for w in words))




YNL_SPEC = "vnat/vnat.yaml"   # validated against the schema by make check's lint stage


def _pyynl():
    """The kernel's own ynl library (tools/net/ynl/pyynl, copied by run.sh)."""
    if os.environ["VNAT_YNL"] not in sys.path:
        sys.path.insert(0, os.environ["VNAT_YNL"])
    import pyynl.lib
    return pyynl.lib


# One ynl family object per namespace: making one parses the spec (seconds
# under TCG), and its socket stays in the namespace it was opened in.
# del_netns() and rmmod() let go of them.
_YNL_BY_NS = {}


def ynl_family(ns=None):
    """The kernel's ynl on the family, with our spec, on a socket of
    namespace `ns`."""
    if ns not in _YNL_BY_NS:
        with netns(ns):
            _YNL_BY_NS[ns] = _pyynl().YnlFamily(YNL_SPEC, schema="")   # "": validated by the lint stage
    return _YNL_BY_NS[ns]


def ynl_error(ns, op, attrs, dump=False):
    """Sends `op` (a do, or with `dump` a dump) with `attrs` through ynl in
    namespace `ns`; returns (errno, extack dict) of the refusal, or
    (0, reply) if it was taken (a dump's: the list of its messages)."""
    fam = ynl_family(ns)
    try:
        return 0, (fam.dump if dump else fam.do)(op, attrs)
    except _pyynl().NlError as e:
        return e.error, dict(e.nl_msg.extack or {})


def ynl_connection_rows(ns=None):
    """The virtual connections of a namespace as the kernel's own ynl dumps
    them (conn-get), with the keys of `connection_rows`."""
    def ep(d, a, p):
        # An IPv6 connection has the addresses' *-addr6 forms instead.
        return f"{d[a]}:{d[p]}" if a in d else f"[{d[a + '6']}]:{d[p]}"
    return [{"proto": {6: "tcp", 17: "udp"}.get(d["proto"], str(d["proto"])),
             "local": ep(d, "local-addr", "local-port"), "remote": ep(d, "remote-addr", "remote-port"),
             "pid": str(d["pid"]), "origin": d["origin"], "state": d["state"],
             "local_physical": ep(d, "local-phys-addr", "local-phys-port"),
             "remote_physical": ep(d, "remote-phys-addr", "remote-phys-port"),
             "auth": d.get("auth")}
            for d in ynl_family(ns).dump("conn-get", {})]


def connection_rows(ns=None):
    """The virtual connections of a namespace as `vnatctl list --json` shows
    them (so that every test exercises vnatctl)."""
    rc, out, err = ctl(ns, "list", "--json")
    if rc != 0:
        raise RuntimeError(f"vnatctl list in {ns}: exit {rc}: {err}")
    return [{"proto": r["proto"], "local": r["local"], "remote": r["remote"], "pid": str(r["pid"]),
             "origin": r["origin"], "state": r["state"], "local_physical": r["local-phys"],
             "remote_physical": r["remote-phys"], "vcmp_state": r["vcmp-state"],
             "vcmp_attempts": r["vcmp-attempts"], "auth": r["auth"]} for r in json.loads(out)]


def wait_keyed(*nss, timeout=15):
    """Waits until every connection of the namespaces `nss` has its key
    (vnatd agrees it right after the connection is recorded)."""
    def keyed():
        rows = [r for ns in nss for r in ynl_connection_rows(ns)]
        return rows and all(r["auth"] == "keyed" for r in rows)
    if wait_for(keyed, f"every connection of {', '.join(nss)} has its key", timeout=timeout):
        return True
    # Why not: the connections without their key, and what each end's
    # vnatd counted of keys and VCMP.
    for ns in nss:
        log(f"  {ns}, not keyed: {[r for r in ynl_connection_rows(ns) if r['auth'] != 'keyed'][:5]}")
        log(f"  {ns}: " + ", ".join(f"{k}={v}" for k, v in stats(ns).items()
                                    if v and ("key" in k or "vcmp" in k or "auth" in k)))
    return False


def wait_mapped(ns, addr, port=None, timeout=30):
    """Waits until namespace `ns` has connections and maps the remote end
    of every one to physical address `addr` (and `port`, if given)."""
    prefix = f"{addr}:{port if port is not None else ''}"
    def mapped():
        rows = ynl_connection_rows(ns)   # in this process: polled
        return rows and all(r["remote_physical"].startswith(prefix) for r in rows)
    return wait_for(mapped, f"{ns} maps every connection's peer to {prefix}", timeout)


def connections(ns=None):
    """The virtual connections of a namespace: set of (local, remote, pid, origin)."""
    return {(r["local"], r["remote"], int(r["pid"]), r["origin"]) for r in connection_rows(ns)}


def ep(sockname):
    """A socket address as VNAT shows endpoints: a.b.c.d:port, [v6]:port."""
    host, port = sockname[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


TCP_LISTEN, TCP_TIME_WAIT = 0x0A, 0x06


def tcp_sockets(ns=None):
    """The TCP sockets of a namespace, AF_INET and AF_INET6, from
    /proc/net/tcp and tcp6: a list of (local port, remote port, state,
    inode)."""
    out = []
    with netns(ns):
        for table in ("tcp", "tcp6"):
            with open(f"/proc/thread-self/net/{table}") as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    out.append((int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16),
                                int(fields[3], 16), int(fields[9])))
    return out


def udp_ports(ns=None):
    """Local ports of the UDP sockets of a namespace (AF_INET and AF_INET6)."""
    ports = set()
    with netns(ns):
        for table in ("udp", "udp6"):
            with open(f"/proc/thread-self/net/{table}") as f:
                ports |= {int(line.split()[1].split(":")[1], 16) for line in f.readlines()[1:]}
    return ports


def listening_ports(ns=None):
    """TCP ports in LISTEN state in a namespace."""
    return {lp for lp, _, state, _ in tcp_sockets(ns) if state == TCP_LISTEN}


def nics_by_mac(macs):
    """The interfaces of this namespace whose MAC address is a key of
    `macs`: {interface: macs[its address]}."""
    found = {}
    for dev in os.listdir("/sys/class/net"):
        with open(f"/sys/class/net/{dev}/address") as f:
            mac = f.read().strip()
        if mac in macs:
            found[dev] = macs[mac]
    return found


def wait_for(cond, what, timeout=10.0):
    """Polls `cond` until it holds, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return check(cond(), f"{what} (within {timeout}s)")


def tcp_listen(ns, addr, port=0, backlog=64):
    """A listener on `addr`, IPv4 or IPv6 (an IPv6 one with IPV6_V6ONLY:
    IPv6 only)."""
    v6 = ":" in addr
    with netns(ns):
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        s.listen(backlog)
    return s


def tcp_connect(ns, addr, port):
    with netns(ns):
        return socket.create_connection((addr, port), timeout=10)


def recv_exactly(s, n):
    """Reads `n` bytes from socket `s` (fewer if it closes first)."""
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(min(1 << 20, n - len(buf)))
        if not d:
            break
        buf += d
    return bytes(buf)


def check_idle_pairs(pairs, what):
    """Each (client, server) socket pair carries 16 bytes one way and
    back, the i-th pair its own bytes: every connection is alive."""
    bad = 0
    for i, (c, a) in enumerate(pairs):
        msg = i.to_bytes(4, "big") * 4
        c.sendall(msg)
        a.settimeout(20)
        a.sendall(recv_exactly(a, 16)[::-1])
        c.settimeout(20)
        bad += recv_exactly(c, 16) != msg[::-1]
    check_eq(bad, 0, what)


class UdpEcho:
    """A UDP server program on the unconnected socket `sock`: a thread
    echoes every datagram to whoever sent it, counts them in `n`, and
    records the senders' (address, port) in `sources`, until `stop()`."""

    def __init__(self, sock):
        self.sock = sock
        self.sources = set()
        self.n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                d, src = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.sources.add(src[:2])
            self.n += 1
            self.sock.sendto(d, src)

    def stop(self):
        self._stop.set()
        self._thread.join()


def exchange(c, a, what, n=256 << 10):
    """Sends `n` random bytes each way at once over the connection of client
    socket `c` and server socket `a`, and checks that both arrive intact."""
    blob = os.urandom(n)
    for s in (c, a):
        s.settimeout(60)
    got = {}
    readers = [threading.Thread(target=lambda s=s, k=k: got.__setitem__(k, recv_exactly(s, n)))
               for s, k in ((a, "server"), (c, "client"))]
    for r in readers:
        r.start()
    c.sendall(blob)
    a.sendall(blob[::-1])
    for r in readers:
        r.join()
    check(got.get("server") == blob, f"{what}: {n} bytes from the client arrive intact")
    check(got.get("client") == blob[::-1], f"{what}: {n} bytes from the server arrive intact")


def vcmp1(cmd, rv, lv, lp):
    """A version-1 VCMP message (paper figure 3-4) of command `cmd` for
    R_Vir `rv`, L_Vir `lv` and L_Phy `lp`, each (address, port)."""
    a = socket.inet_aton
    return struct.pack("!BBH4s4s4sHH", 1, cmd, rv[1], a(rv[0]), a(lv[0]), a(lp[0]), lv[1], lp[1])


def vcmp2_addr(addr, port):
    """A version-2 endpoint: ::ffff:a.b.c.d and the port."""
    return bytes(10) + b"\xff\xff" + socket.inet_aton(addr) + struct.pack("!H", port)


def vcmp2_update(cmd, key_id, counter, rv, lv, lp, proto=6):
    """A version-2 UPD (20) or SUS (22) for R_Vir `rv`, L_Vir `lv` and L_Phy
    `lp`, each (address, port), under key id `key_id` with `counter`, and a
    MAC of random bytes: what someone without the key can send."""
    return (struct.pack("!BBHB3xIQ", 2, cmd, 90, proto, key_id, counter)
            + vcmp2_addr(*rv) + vcmp2_addr(*lv) + vcmp2_addr(*lp) + os.urandom(16))


def round_trip(c, a, n=50):
    """Median time of `n` one-byte ping-pongs from socket `c` to its peer
    `a` and back."""
    rtts = []
    for _ in range(n):
        t0 = time.monotonic()
        c.send(b"x")
        a.recv(1)
        a.send(b"y")
        c.recv(1)
        rtts.append(time.monotonic() - t0)
    return sorted(rtts)[n // 2]


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


def kmsg_mark():
    """Writes a unique line to the kernel log; `dmesg_since(mark)` is what
    came after it: what an action logged is looked for after a mark made
    just before it (a fixed tail of the log missed it when other output,
    such as KUnit's at insmod, came between)."""
    mark = f"vnattest-mark {os.getpid()} {time.monotonic_ns()}"
    with open("/dev/kmsg", "w") as f:
        f.write(mark + "\n")
    return mark


def dmesg_since(mark):
    out = sh("dmesg -t")
    at = out.rfind(mark)
    return out[at + len(mark):] if at >= 0 else ""


def match_line(text, pattern):
    return re.search(pattern, text, re.M) is not None


# vnatctl, built by make check (guest.sh says where).
VNATCTL = os.environ.get("VNATCTL", "vnatctl")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


def ctl(ns, *args, as_nobody=False):
    """Runs vnatctl in namespace `ns` (None: this one); returns (exit
    status, stdout, stderr)."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + (NOBODY if as_nobody else []) + [VNATCTL, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr.strip()


def listing(ns, *filters):
    rc, out, err = ctl(ns, "list", "--json", *filters)
    check_eq(rc, 0, f"vnatctl list --json {' '.join(filters)} in {ns} ({err})")
    return json.loads(out) if rc == 0 else []


def tuples(recs):
    return {(r["proto"], r["local"], r["remote"]) for r in recs}


class Monitor:
    """vnatctl monitor --json in a namespace; a thread reads its lines at
    once, so that the pipe never fills and the monitor never falls behind."""

    def __init__(self, ns):
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, VNATCTL, "monitor", "--json"],
                                  stdout=subprocess.PIPE, text=True)
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))
        self.q.put(None)

    def until(self, cond, what, timeout=60, must=True):
        """Takes events until `cond(event)` holds; returns the events taken
        (None if `must` is false and it did not hold)."""
        got = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                e = self.q.get(timeout=left)
            except queue.Empty:
                break
            if e is None:
                break
            got.append(e)
            if cond(e):
                return got
        if not must:
            return None
        check(False, f"monitor: {what} (within {timeout}s; saw {[e['event'] for e in got][-10:]})")
        return got

    def drain(self):
        """Forgets the events read so far."""
        while not self.q.empty():
            self.q.get()

    def stop(self):
        self.p.kill()
        self.p.wait()


def monitors_ready(mon_cli, mon_srv, listener, server_addr):
    """Opens connections from "cli" to `listener` until both monitors have
    seen one virtualized (on connect and on accept): from then on they hear
    everything. Returns the client's local endpoint of the one seen."""
    for _ in range(60):
        probe = tcp_connect("cli", server_addr, listener.getsockname()[1])
        probe_a, _ = listener.accept()
        lp = ep(probe.getsockname())
        seen_c = mon_cli.until(lambda e: e["event"] == "virtualized" and e["local"] == lp, "", 1, must=False)
        seen_s = mon_srv.until(lambda e: e["event"] == "virtualized" and e["remote"] == lp, "", 1, must=False)
        probe.close()
        probe_a.close()
        if seen_c and seen_s:
            check_eq(seen_s[-1]["origin"], "accept", "both monitors listen; the server saw an accepted connection")
            return lp
    check(False, "both monitors see a connection virtualized")
    return None


def proc_state(pid):
    """A process's state letter in /proc/PID/stat (T: stopped)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def commanded_topology(port=5000):
    """The set-up of the tests that move connections by command: the module
    loaded with auto_migrate=0, the migration topology, a server listening
    on `port` in "srv" and a monitor on each host that hears everything.
    Returns (topology, listener, client monitor, server monitor)."""
    insmod()
    check_eq(write_knob("auto_migrate", "0"), None, "auto_migrate=0: resume by command")
    topo = Topology()
    srv = tcp_listen("srv", "0.0.0.0", port)
    mon_cli, mon_srv = Monitor("cli"), Monitor("srv")
    monitors_ready(mon_cli, mon_srv, srv, topo.server_addr())
    return topo, srv, mon_cli, mon_srv


class Topology:
    """The migration topology: a server host, a router joining subnets
    10.0.1.0/24 .. 10.0.N.0/24 and 10.0.9.0/24, and a client host that can
    be attached to any of 1..N. Host k of subnet s is 10.0.s.k: the router
    is .1, the client .2; the server sits on 10.0.9.0/24 as 10.0.9.2 and
    can be moved to other server subnets (10.0.10.x, 10.0.11.x).

    With `ipv6`, every subnet is dual-stack: fd00:0:s::/64 beside
    10.0.s.0/24, host k being fd00:0:s::k; a move changes both addresses
    at once, as a laptop's on a dual-stack network. Addresses are added
    `nodad` (duplicate address detection would make them tentative for a
    second)."""

    def __init__(self, subnets=3, server_subnets=(9, 10, 11), ipv6=False):
        self.ipv6 = ipv6
        for ns in ("cli", "rtr", "srv"):
            add_netns(ns)
        set_sysctl("rtr", "net.ipv4.ip_forward", 1)
        if ipv6:
            set_sysctl("rtr", "net.ipv6.conf.all.forwarding", 1)
        links = [(f"c{s}", "cli", s) for s in range(1, subnets + 1)] + [(f"s{s}", "srv", s) for s in server_subnets]
        ip_batch(None, [f"link add {dev} netns {ns} type veth peer name r{s} netns rtr" for dev, ns, s in links])
        ip_batch("rtr", [c for _, _, s in links for c in (f"addr add 10.0.{s}.1/24 dev r{s}", f"link set r{s} up")])
        if ipv6:
            ip_batch("rtr", [f"addr add fd00:0:{s}::1/64 dev r{s} nodad" for _, _, s in links])
        self.client_at = None
        self.server_at = None
        self.attach_client(1)
        self.attach_server(server_subnets[0])
        log("topology: cli, rtr and srv are up")

    def client_addr(self, s=None):
        return f"10.0.{s or self.client_at}.2"

    def server_addr(self, s=None):
        return f"10.0.{s or self.server_at}.2"

    def client_addr6(self, s=None):
        return f"fd00:0:{s or self.client_at}::2"

    def server_addr6(self, s=None):
        return f"fd00:0:{s or self.server_at}::2"

    def _move(self, ns, prefix, old, new):
        """Moves host `ns` from subnet `old` to `new`: the old address goes
        away (as when a laptop leaves a network), then the new one comes
        with its default route."""
        cmds = []
        if old is not None:
            cmds += [f"addr del 10.0.{old}.2/24 dev {prefix}{old}"]
            if self.ipv6:
                cmds += [f"addr del fd00:0:{old}::2/64 dev {prefix}{old}"]
            cmds += [f"link set {prefix}{old} down"]
        cmds += [f"link set {prefix}{new} up", f"addr add 10.0.{new}.2/24 dev {prefix}{new}",
                 f"route replace default via 10.0.{new}.1"]
        if self.ipv6:
            cmds += [f"addr add fd00:0:{new}::2/64 dev {prefix}{new} nodad",
                     f"route replace default via fd00:0:{new}::1"]
        # One ip process: the move takes as little time as the kernel needs.
        ip_batch(ns, cmds)

    def connection(self, port=5000):
        """A TCP connection from the client to the server's `port`:
        returns (listener, client socket, server socket)."""
        srv = tcp_listen("srv", "0.0.0.0", port)
        c = tcp_connect("cli", self.server_addr(), port)
        a, _ = srv.accept()
        # The first stats() of a namespace parses the spec (seconds under
        # TCG): done now, not while a transfer runs past a move.
        if loaded():
            stats("cli")
            stats("srv")
        return srv, c, a

    def bulk_and_paced(self, size, pace_timeout=60):
        """Two connections from the client to the server's port 5000, both
        keyed: a Transfer of `size` bytes each way, running (a quarter
        through) and held at half, and a Pacer whose echoes come back.
        Returns (transfer, pacer, the sockets to close at the end)."""
        srv, c, a = self.connection()
        c2 = tcp_connect("cli", self.server_addr(), 5000)
        a2, _ = srv.accept()
        wait_keyed("cli", "srv")
        t = Transfer(c, a, size, hold=0.5)
        t.wait_progress(0.25)
        pace = Pacer(c2, a2, timeout=pace_timeout)
        pace.wait_more(10, "echoes come back")
        return t, pace, (c, a, c2, a2, srv)

    def attach_client(self, s):
        self._move("cli", "c", self.client_at, s)
        self.client_at = s

    def attach_server(self, s):
        self._move("srv", "s", self.server_at, s)
        self.server_at = s


PORTAL = """table inet portal {{
    chain forward {{
        type filter hook forward priority 0; policy accept;
        iifname "{dev}" drop
        oifname "{dev}" drop
    }}
}}"""


def portal_close(dev):
    """A captive portal at the router: from now on it drops all it forwards
    from and to its interface `dev` (a network that lets nothing through
    until its page is accepted)."""
    sh("ip netns exec rtr nft -f -", input=PORTAL.format(dev=dev))


def portal_open():
    """The portal's page is accepted: the router forwards everything again."""
    sh("ip netns exec rtr nft delete table inet portal")


class Capture:
    """tcpdump in a namespace, to see what the wire carries."""

    def __init__(self, ns, filt, iface="any", snaplen=128):
        self.path = f"/tmp/vnat-{ns}-{os.getpid()}-{time.monotonic_ns()}.pcap"
        self.p = subprocess.Popen(
            # Headers only (-s 128) unless a test reads payloads: the tests
            # count packets, and a capture of megabytes of payload took
            # minutes to read back under TCG.
            # --immediate-mode: packets reach tcpdump as they come, not in
            # blocks of up to a second, which a stop could lose.
            ["ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "-i", iface, "-n", "-U", "--immediate-mode",
             "-s", str(snaplen),
             "-w", self.path, filt],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on" once the capture is armed.
        seen = ""
        while "listening" not in seen:
            line = self.p.stderr.readline()
            if not line:
                raise RuntimeError(f"tcpdump did not start: {seen}")
            seen += line

    def stop(self):
        time.sleep(0.2)  # let tcpdump write out what it has (-U: per packet)
        self.p.terminate()
        self.p.wait()

    def tcp_payloads(self):
        """The payloads of the captured TCP segments, in order, as
        (source, destination, bytes) with endpoints "a.b.c.d:port" (the
        capture is of `-i any`: Linux cooked headers, v1 or v2)."""
        with open(self.path, "rb") as f:
            data = f.read()
        linktype = struct.unpack_from("<I", data, 20)[0]
        link = {113: 16, 276: 20}[linktype]
        out, at = [], 24
        while at + 16 <= len(data):
            incl = struct.unpack_from("<I", data, at + 8)[0]
            pkt = data[at + 16:at + 16 + incl]
            at += 16 + incl
            ip = pkt[link:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
                continue
            tcp = ip[(ip[0] & 15) * 4:]
            payload = tcp[(tcp[12] >> 4) * 4:]
            if payload:
                src = f"{socket.inet_ntoa(ip[12:16])}:{struct.unpack_from('!H', tcp, 0)[0]}"
                dst = f"{socket.inet_ntoa(ip[16:20])}:{struct.unpack_from('!H', tcp, 2)[0]}"
                out.append((src, dst, payload))
        return out

    def first(self, filt):
        """When the first captured packet matching `filt` was seen (seconds,
        the capture's clock), or None."""
        out = sh(f"tcpdump -n -tt -c 1 -r {self.path} '{filt}' 2>/dev/null")
        return float(out.split()[0]) if out.strip() else None

    def show(self, filt):
        """The captured packets matching `filt`, as tcpdump prints them
        (time, endpoints, flags): for a failure's message."""
        return sh(f"tcpdump -n -tt -r {self.path} '{filt}' 2>/dev/null").strip()

    def count(self, filt):
        """How many captured packets match `filt` (counted by tcpdump,
        which prints none of them)."""
        out = sh(f"tcpdump -n --count -r {self.path} '{filt}' 2>/dev/null")
        m = re.match(r"(\d+) packets?", out.strip())
        if not m:
            raise RuntimeError(f"tcpdump --count said {out!r}")
        return int(m.group(1))


class Transfer:
    """A TCP connection carrying `size` random bytes each way at once;
    records SHA-256 of what each end sent and received, and any error.

    With `hold`, each sender stops once it has sent that fraction of `size`
    and waits for `release()`: a test that moves an end and then captures
    the wire knows that bytes are still to come when its capture starts
    (otherwise a fast transfer may be over before the capture, and "the
    wire shows the new address" would see nothing)."""

    def __init__(self, client_sock, server_sock, size, hold=None):
        import hashlib
        import threading
        self.size = size
        self.hold = None if hold is None else int(size * hold)
        self.gate = threading.Event()
        if hold is None:
            self.gate.set()
        self.errors = []
        self.sent = {}
        self.got = {}
        self.progress = {"c": 0, "s": 0}
        self.threads = []
        for name, sock in (("c", client_sock), ("s", server_sock)):
            sock.settimeout(120)
            seed = os.urandom(1 << 16)
            t1 = threading.Thread(target=self._send, args=(name, sock, seed, hashlib.sha256()))
            t2 = threading.Thread(target=self._recv, args=(name, sock, hashlib.sha256()))
            self.threads += [t1, t2]
        for t in self.threads:
            t.start()

    def _send(self, name, sock, seed, h):
        try:
            left = self.size
            i = 0
            while left:
                if self.hold is not None and self.size - left >= self.hold and not self.gate.wait(300):
                    raise TimeoutError("held for 300 s without release()")
                chunk = bytes([i & 255]) + seed[1:min(len(seed), left)]
                sock.sendall(chunk)
                h.update(chunk)
                left -= len(chunk)
                i += 1
            sock.shutdown(socket.SHUT_WR)
        except Exception as e:
            self.errors.append(f"{name} send: {e!r}")
        self.sent[name] = h.hexdigest()

    def _recv(self, name, sock, h):
        try:
            n = 0
            while True:
                d = sock.recv(1 << 16)
                if not d:
                    break
                h.update(d)
                n += len(d)
                self.progress[name] = n
        except Exception as e:
            self.errors.append(f"{name} recv: {e!r}")
        self.got[name] = h.hexdigest()

    def release(self):
        """Lets the senders go on past `hold`."""
        self.gate.set()

    def wait_progress(self, fraction, timeout=120):
        return wait_for(lambda: min(self.progress.values()) >= fraction * self.size,
                        f"transfer reached {int(fraction * 100)}% both ways", timeout)

    def wait_more(self, fraction, timeout=120):
        """Waits until both ways carried another `fraction` of the size from
        now (at most to the end): a capture started now sees that much."""
        now = min(self.progress.values()) / self.size
        return self.wait_progress(min(1.0, now + fraction), timeout)

    def join(self):
        self.release()
        for t in self.threads:
            t.join(300)
        check_eq(self.errors, [], "no application error (no reset, no timeout)")
        check_eq(self.progress["s"], self.size, "server received every byte")
        check_eq(self.progress["c"], self.size, "client received every byte")
        check_eq(self.got.get("s"), self.sent.get("c"), "SHA-256 client -> server equal")
        check_eq(self.got.get("c"), self.sent.get("s"), "SHA-256 server -> client equal")


class Sink:
    """The receiving end of a bulk stream (the demos' server), in a thread
    that ends with the stream: hashes and counts what arrives, and when
    each piece did (the data gap of a move)."""

    def __init__(self, sock):
        import hashlib
        self.received, self.arrivals, self.hash = 0, [], hashlib.sha256()
        self.thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self.thread.start()

    def _run(self, sock):
        while d := sock.recv(1 << 16):
            self.hash.update(d)
            self.received += len(d)
            self.arrivals.append(time.monotonic())


def pong(sock):
    """Answers every line "ping N" on `sock` with "pong N", in a thread
    that ends with the stream (returned)."""
    def run():
        f = sock.makefile("rwb", buffering=0)
        for line in f:
            f.write(line.replace(b"ping", b"pong"))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Pacer:
    """A paced echo on a TCP connection: 64-byte messages every `period`
    s from `sock`, echoed by `peer`; records when each echo came back, so
    that a test sees the data gap a move caused and that nothing was lost
    or reordered."""

    def __init__(self, sock, peer, period=0.02, timeout=60):
        self.sock, self.peer, self.period = sock, peer, period
        self.stop = threading.Event()
        self.arrivals = []
        self.errors = []
        self.sent = 0
        for s in (sock, peer):
            s.settimeout(timeout)
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._send, self._echo, self._recv)]
        for t in self.threads:
            t.start()

    def _send(self):
        try:
            while not self.stop.wait(self.period):
                self.sock.sendall(self.sent.to_bytes(8, "big") * 8)
                self.sent += 1
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors.append(f"send: {e!r}")

    def _echo(self):
        try:
            while d := self.peer.recv(4096):
                self.peer.sendall(d)
            self.peer.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors.append(f"echo: {e!r}")

    def _recv(self):
        try:
            got = b""
            while d := self.sock.recv(4096):
                got += d
                while len(got) >= 64:
                    self.arrivals.append((time.monotonic(), int.from_bytes(got[:8], "big")))
                    got = got[64:]
        except OSError as e:
            self.errors.append(f"recv: {e!r}")

    def wait_more(self, n, what, timeout=30):
        """Waits until `n` more echoes came back."""
        had = len(self.arrivals)
        wait_for(lambda: len(self.arrivals) >= had + n, what, timeout)

    def largest_gap(self, since):
        """The longest time without an echo since `since` (monotonic)."""
        times = [at for at, _ in self.arrivals if at >= since]
        return max((b - a for a, b in zip(times, times[1:])), default=float("inf"))

    def finish(self):
        """Stops, and checks that no error came and every echo came back,
        in order."""
        self.stop.set()
        for t in self.threads:
            t.join(60)
        check_eq(self.errors, [], "no error on the paced connection")
        check([n for _, n in self.arrivals] == list(range(self.sent)),
              f"every echo came back, in order ({self.sent} messages)")

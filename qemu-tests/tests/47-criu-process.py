#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A process moves to another host with CRIU (paper 3.3), its connection
with it: criu checkpoints it on host A and restores it on host B,
and vnatctl, CRIU's action script, carries the connection's VNAT state
(its key included) from the one to the other.

    host A   a  10.0.1.2 ---- r1 10.0.1.1 ┐
                                          ├ rtr 10.0.9.1 ---- srv 10.0.9.2:5000, :5001
    host B   b  10.0.2.2 ---- r2 10.0.2.1 ┘  │                 (the peer: threads
                                              │                 of this test)
                                              10.0.8.1 ---- p2 10.0.8.2:5003 (a second peer)

The two hosts are two network namespaces of this guest (one kernel: the
PID the process had on A is free on B once it is gone). Each runs its own
vnatd. The commands are the ones a user types, each in its host's network
namespace only (nsenter --net: `ip netns exec` would give criu a mount
namespace of its own, which it would then want to dump):

    A# criu dump -t PID -D DIR --tcp-established --network-lock nftables \\
            --action-script "$VNATCTL"
    B# criu restore -D DIR --tcp-established --network-lock nftables \\
            --action-script "$VNATCTL" -d

criu must know this kernel: Debian 12's criu 3.17.1 does not run on Linux
7.3 (no [vvar_vclock] before criu 4.1, SO_PASSCRED refused on TCP sockets
since Linux 6.16, memfd_create(MFD_HUGETLB) ENOSYS without hugetlbfs), so
the set-up builds 4.2.1 (tools/criu.sh, /usr/local/sbin/criu); a failing
criu command is explained, with the remedy (`diagnose`). VNAT_CRIU names
another criu to run.

1. A client process moves in the middle of a stream: a Python process on
   A (its own session, its standard streams files, so no --shell-job)
   sends 4 MiB of a pseudo-random stream to the server and reads the
   server's 4 MiB, hashing both. Both ends stop at 40 % (the server holds
   its reading and sending), so the process is checkpointed with bytes in
   its queues and more to come. criu dump on A (the process is killed
   there), criu restore on B, the server lets the stream go on: both
   SHA-256 equal the streams' at both ends, the router sees B's address
   and never A's after the restore, and no reset; B records the connection
   with virtual local endpoint A's and physical B's, the server maps it to
   B, B imported it and the server accepted B's update; an rmmod of the
   module meanwhile is refused (in use) and changes nothing. Before the
   dump, `vnatctl export --conn` of the connection saves the very record
   `vnatctl export --pid` of the process saves; --pid with --conn is a
   usage error, and conn-export itself refuses pid with a connection,
   local-addr alone and a five-tuple of two families (EINVAL, with a
   reason).
2. Refusals, with the file of `vnatctl export --pid` of that process
   (taken before the dump; no criu needed): `vnatctl import` of a
   truncated file fails with a clear message (and conn-import of a
   truncated record, sent past vnatctl, with EINVAL and a reason), and
   without CAP_NET_ADMIN with EPERM; none changes anything.
3. Suspended while away: another process, idle, whose server end has TCP
   keepalive (dead after 17 s without answers), is dumped with
   VNAT_CRIU_SUSPEND=1 and restored on B 22 s after its last packet: the
   server knew it was away (peer-suspended, its keepalive off meanwhile),
   and after the restore it echoes again, the server's keepalive on.
4. A server process moves: a Python server on A (listening on
   0.0.0.0:6000) with a connection it accepted from srv. After the
   restore on B, that connection echoes on (B records it, origin accept,
   virtual 10.0.1.2:6000 on physical 10.0.2.2:6000), and a new client
   reaches the restored listener at 10.0.2.2:6000.
5. A connected UDP flow moves: a Python process on A sends a numbered
   datagram every 50 ms to a UDP echo server on srv (an unconnected
   socket) and counts the echoes. After the restore on B datagrams and
   echoes flow again, at B's address on the wire, and the server program
   still sees only the process's first address.
6. A process with three connections to two peers (two to srv, one to p2)
   moves: each echoes after the restore on B, B records all three, and
   each peer maps the process's virtual endpoints to B.
"""
import ctypes
import errno
import hashlib
import json
import random
import shutil
import signal
import tempfile
from vnattest import *

SIZE = 4 << 20            # bytes each way
HOLD = 24 * (64 << 10)    # 1.5 MiB: both ends stop there until the move is done
CHUNK = 64 << 10
SEED_C, SEED_S = 47, 74   # the client's and the server's stream
A, B, SRV, PORT = "10.0.1.2", "10.0.2.2", "10.0.9.2", 5000
P2, MPORT = "10.0.8.2", 5003
CRIU = os.environ.get("VNAT_CRIU", "/usr/local/sbin/criu")   # tools/criu.sh
PR_SET_CHILD_SUBREAPER = 36

# The moving process. select() rather than threads or epoll: one thread,
# no file but its socket; it writes what it sent and received, as SHA-256,
# to a file once the server has closed its side.
MOVER = r"""
import hashlib, json, os, random, select, socket, sys
host, port, size, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
res = {}
try:
    s = socket.create_connection((host, port), timeout=30)
    res["local"] = "%s:%d" % s.getsockname()
    s.setblocking(False)
    gen, sent, got = random.Random(seed), hashlib.sha256(), hashlib.sha256()
    pending, left, n, writing = b"", size, 0, True
    while True:
        r, w, _ = select.select([s], [s] if writing else [], [], 300)
        if not r and not w:
            raise TimeoutError("nothing moved for 300 s")
        if r:
            d = s.recv(1 << 16)
            if not d:
                break
            got.update(d)
            n += len(d)
        if w:
            if not pending and left:
                pending = gen.randbytes(min(CHUNK, left))
                left -= len(pending)
                sent.update(pending)
            try:
                pending = pending[s.send(pending):]
            except BlockingIOError:
                pass
            if not pending and not left:
                s.shutdown(socket.SHUT_WR)
                writing = False
    res.update(sent=sent.hexdigest(), got=got.hexdigest(), received=n)
except Exception as e:
    res["error"] = repr(e)
with open(out + ".tmp", "w") as f:
    json.dump(res, f)
os.rename(out + ".tmp", out)
""".replace("CHUNK", str(CHUNK))


# The process of part 3: echoes what comes until the server closes, then
# writes how many bytes it echoed.
ECHOER = r"""
import json, os, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.settimeout(None)
n = 0
while d := s.recv(4096):
    s.sendall(d)
    n += len(d)
with open(sys.argv[3] + ".tmp", "w") as f:
    json.dump({"echoed": n}, f)
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
"""


# The process of part 4, a server: listens on 0.0.0.0:PORT, echoes on every
# connection it accepts; once `n` of them have closed, writes how many bytes
# it echoed and to whom, and exits.
ECHO_SERVER = r"""
import json, os, select, socket, sys
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", port))
l.listen(8)
conns, peers, echoed, closed = [], [], 0, 0
while closed < n:
    for s in select.select([l] + conns, [], [])[0]:
        if s is l:
            c, a = l.accept()
            conns.append(c)
            peers.append("%s:%d" % a)
        elif d := s.recv(4096):
            s.sendall(d)
            echoed += len(d)
        else:
            conns.remove(s)
            s.close()
            closed += 1
with open(out + ".tmp", "w") as f:
    json.dump({"echoed": echoed, "peers": peers}, f)
os.rename(out + ".tmp", out)
"""


# The process of part 5: a connected UDP socket; sends a numbered datagram
# every 50 ms and counts the echoes, until the file `stop` exists.
UDP_CLIENT = r"""
import json, os, socket, sys
host, port, stop, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
s.settimeout(0.05)
local = "%s:%d" % s.getsockname()
sent = echoed = 0
errors = []
while not os.path.exists(stop):
    try:
        s.send(sent.to_bytes(4, "big") * 8)
        sent += 1
    except OSError as e:
        errors.append(repr(e))
    try:
        while True:
            s.recv(64)
            echoed += 1
    except socket.timeout:
        pass
    except OSError as e:
        errors.append(repr(e))
with open(out + ".tmp", "w") as f:
    json.dump({"local": local, "sent": sent, "echoed": echoed, "errors": errors[:5]}, f)
os.rename(out + ".tmp", out)
"""


# The process of part 6: connects to every HOST:PORT it is given, echoes
# on all of them until each is closed, then writes how many bytes it echoed.
MULTI_ECHOER = r"""
import json, os, select, socket, sys
out, conns = sys.argv[1], []
for t in sys.argv[2:]:
    host, port = t.rsplit(":", 1)
    conns.append(socket.create_connection((host, int(port)), timeout=30))
echoed = 0
while conns:
    for s in select.select(conns, [], [])[0]:
        if d := s.recv(4096):
            s.sendall(d)
            echoed += len(d)
        else:
            conns.remove(s)
            s.close()
with open(out + ".tmp", "w") as f:
    json.dump({"echoed": echoed}, f)
os.rename(out + ".tmp", out)
"""


def stream_sha(seed, size):
    """SHA-256 of the stream that the mover and the server each send."""
    gen, h, left = random.Random(seed), hashlib.sha256(), size
    while left:
        d = gen.randbytes(min(CHUNK, left))
        h.update(d)
        left -= len(d)
    return h.hexdigest()


class ServerEnd:
    """The server's end of the connection, threads of this test (never
    moved): sends the stream SEED_S and hashes what comes; both stop at
    HOLD bytes until `release()`."""

    def __init__(self, sock):
        self.sock, self.gate = sock, threading.Event()
        self.sent_n = self.got_n = 0
        self.got, self.errors = hashlib.sha256(), []
        sock.settimeout(300)
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._send, self._recv)]
        for t in self.threads:
            t.start()

    def _send(self):
        try:
            gen, left = random.Random(SEED_S), SIZE
            while left:
                if SIZE - left >= HOLD and not self.gate.wait(600):
                    raise TimeoutError("held for 600 s")
                d = gen.randbytes(min(CHUNK, left))
                self.sock.sendall(d)
                left -= len(d)
                self.sent_n += len(d)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors.append(f"send: {e!r}")

    def _recv(self):
        try:
            while True:
                if self.got_n >= HOLD and not self.gate.wait(600):
                    raise TimeoutError("held for 600 s")
                d = self.sock.recv(CHUNK if self.gate.is_set() else HOLD - self.got_n)
                if not d:
                    break
                self.got.update(d)
                self.got_n += len(d)
        except OSError as e:
            self.errors.append(f"recv: {e!r}")

    def release(self):
        self.gate.set()

    def join(self, timeout):
        for t in self.threads:
            t.join(timeout)


def criu(ns, *args, log_name, env=None):
    """Runs criu in host `ns`'s network namespace (and nothing else of
    it); returns its exit status. Its log (-v4) goes to
    DIR/`log_name`."""
    argv = ["nsenter", f"--net=/run/netns/{ns}", "--", CRIU, *args, "-v4", "-o", log_name]
    log(f"{ns}# {' '.join(f'{k}={v}' for k, v in (env or {}).items())}{' ' if env else ''}{' '.join(argv)}")
    t0 = time.monotonic()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=400,
                       env={**os.environ, **(env or {})})
    took = time.monotonic() - t0
    log(f"  criu exited {r.returncode} after {took:.1f} s{(': ' + r.stderr.strip()[-500:]) if r.stderr.strip() else ''}")
    return r.returncode


def dump(pid, images, what, env=None):
    """The user's criu dump of process `pid` on A into `images`; whether it
    succeeded (checked as `what`)."""
    rc = criu("a", "dump", "-t", str(pid), "-D", images, "--tcp-established", "--network-lock",
                 "nftables", "--action-script", VNATCTL, log_name="dump.log", env=env)
    return criu_ok(rc, what, f"{images}/dump.log")


def restore(images, what):
    """The user's criu restore on B from `images`; whether it succeeded."""
    rc = criu("b", "restore", "-D", images, "--tcp-established", "--network-lock", "nftables",
                 "--action-script", VNATCTL, "-d", log_name="restore.log")
    return criu_ok(rc, what, f"{images}/restore.log")


def criu_ok(rc, what, path):
    """Checks that criu succeeded (with the known reasons if not); shows
    what vnatctl logged, or on a failure the log and what VNAT says."""
    ok = check(rc == 0, f"{what}: exit {rc}{''.join('; ' + w for w in diagnose(path))}")
    if ok:
        show_log(path, lines=0, pattern=r"vnat|Script|action")
    else:
        show_log(path)
        evidence(mark)
    return ok


def show_log(path, lines=60, pattern=r"Error|error|Warn|vnat|Script|action|\bfail"):
    """Logs the end of a criu log and its lines that matter."""
    try:
        text = open(path, errors="replace").read().splitlines()
    except OSError as e:
        log(f"  {path}: {e}")
        return
    picked = [l for l in text if re.search(pattern, l)]
    log(f"  {path}: {len(text)} lines; matching lines (last 40):")
    for l in picked[-40:]:
        log(f"    {l}")
    if lines:
        log(f"  its last {lines} lines:")
        for l in text[-lines:]:
            log(f"    {l}")


# What makes a criu fail on this kernel, as its log says it, and the remedy.
KNOWN = (
    (r"Unexpected rt vDSO area bounds",
     "criu before 4.1 does not know the vDSO of Linux 6.13 and later ([vvar_vclock] between [vvar] "
     "and [vdso]): boot with vdso=0 (no vDSO at all), or a criu 4.1 or later"),
    (r'Unexpected error from memfd_create\("", MFD_HUGETLB\)',
     "memfd_create(MFD_HUGETLB) gives ENOSYS without hugetlbfs, which criu before 4.2 takes for a "
     "fatal error: CONFIG_HUGETLBFS=y in the kernel, or a criu 4.2 or later"),
    (r"Can't get 1:(16|34) opt: Operation not supported",
     "Linux 6.16 and later refuse SO_PASSCRED and SO_PASSSEC on TCP sockets, which criu before 4.2 "
     "reads of every socket: it cannot dump any; a criu 4.2 or later"),
)


def diagnose(path):
    """The known reasons in a criu log for its failure, each with its remedy."""
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return []
    found = [i for i, (pattern, _) in enumerate(KNOWN) if re.search(pattern, text)]
    if found:
        # criu stops at the first: say what would stop it next.
        m = re.search(r"(\d+)\.(\d+)", subprocess.run([CRIU, "--version"], capture_output=True, text=True).stdout)
        version = tuple(map(int, m.groups())) if m else (0, 0)
        if version < (4, 1) and any("[vvar_vclock]" in l for l in open("/proc/self/maps")):
            found.append(0)
        if version < (4, 2):
            try:
                os.close(os.memfd_create("probe", os.MFD_HUGETLB))
            except OSError as e:
                if e.errno == errno.ENOSYS:
                    found.append(1)
            with socket.socket() as s:
                try:
                    s.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED)
                except OSError as e:
                    if e.errno == errno.EOPNOTSUPP:
                        found.append(2)
    whys = [KNOWN[i][1] for i in sorted(set(found))]
    for why in whys:
        log(f"  criu fails here: {why}")
    return whys


def evidence(mark):
    """What VNAT says on each host, for a report."""
    for ns in ("a", "b", "srv"):
        try:
            log(f"  {ns}: {ynl_connection_rows(ns)}")
            log(f"  {ns} stats: " + ", ".join(f"{k}={v}" for k, v in stats(ns).items()
                                              if v and not k.startswith("hook")))
        except Exception as e:
            log(f"  {ns}: {e!r}")
    for l in dmesg_since(mark).splitlines()[-40:]:
        log(f"  dmesg: {l}")


def reap(pid, what):
    """Waits for process `pid` (this test's child once criu has left it)
    to exit; its exit status, or None."""
    code = []

    def reaped():
        try:
            w, st = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:   # not this test's
            return not os.path.exists(f"/proc/{pid}")
        if w:
            code.append(os.waitstatus_to_exitcode(st))
        return w != 0
    wait_for(reaped, what, 30)
    return code[0] if code else None


def start(name, program, *args):
    """Starts `program` (Python source, written to WORK/`name`.py) on A, as
    a user starts a process there: in A's network namespace, a session of
    its own, its standard streams files."""
    with open(f"{work}/{name}.py", "w") as f:
        f.write(program)
    argv = ["nsenter", "--net=/run/netns/a", "--", "python3", f"{work}/{name}.py", *map(str, args)]
    log(f"a: setsid {' '.join(argv)} </dev/null >{work}/{name}.log 2>&1")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(f"{work}/{name}.log", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=work)


def end(proc):
    """Kills what is left of a process `start` started: on A, or restored
    on B with the same pid."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def net_ns_of(pid):
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def topology():
    for ns in ("a", "b", "rtr", "srv", "p2"):
        add_netns(ns)
    set_sysctl("rtr", "net.ipv4.ip_forward", 1)
    veth("a", A, "rtr", "10.0.1.1", name="n1")
    veth("b", B, "rtr", "10.0.2.1", name="n2")
    veth("srv", SRV, "rtr", "10.0.9.1", name="n9")
    veth("p2", P2, "rtr", "10.0.8.1", name="n8")
    for ns, gw in (("a", "10.0.1.1"), ("b", "10.0.2.1"), ("srv", "10.0.9.1"), ("p2", "10.0.8.1")):
        ip_batch(ns, [f"route add default via {gw}"])
    log("topology: a, b, rtr, srv and p2 are up")


# The restored process is criu's child; once criu (restore -d) exits it is
# this test's, so that its exit status can be read.
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
work = tempfile.mkdtemp(prefix="vnat-criu-")
os.chmod(work, 0o755)
images = f"{work}/img"
os.mkdir(images)

insmod()
topology()
listener = tcp_listen("srv", "0.0.0.0", PORT)
for ns in ("a", "b", "srv", "p2"):
    stats(ns)   # parses the spec now (seconds under TCG), not during the move

# criu itself, against this kernel: what its own check says (the dump and
# the restore below are what counts).
r = subprocess.run(["nsenter", "--net=/run/netns/a", "--", CRIU, "check"], capture_output=True, text=True)
log(f"criu check: exit {r.returncode}: {(r.stdout + r.stderr).strip()[-1500:]}")
if r.returncode != 0:
    log(f"  criu: {subprocess.run([CRIU, '--version'], capture_output=True, text=True).stdout.split()}")
    log(f"  this process's vDSO: {[l.split()[-1] for l in open('/proc/self/maps') if '[v' in l]}")
    with open(f"{work}/check.log", "w") as f:
        f.write(r.stdout + r.stderr)
    diagnose(f"{work}/check.log")
r = subprocess.run([CRIU, "check", "--feature", "network_lock_nftables"], capture_output=True, text=True)
check(r.returncode == 0, f"criu can lock the network with nftables: {(r.stdout + r.stderr).strip()[-500:]}")

# 1. The client process moves from A to B in the middle of its stream.
mark = kmsg_mark()
out = f"{work}/result.json"
mover = start("mover", MOVER, SRV, PORT, SIZE, SEED_C, out)
pid = mover.pid
listener.settimeout(60)
conn, peer = listener.accept()
vlocal = ep(peer)
log(f"srv: accepted {vlocal} (the mover, pid {pid})")
server = ServerEnd(conn)
wait_keyed("a", "srv")
wait_for(lambda: server.got_n >= HOLD and server.sent_n >= HOLD, "the stream reached the hold both ways", 120)
rows = connection_rows("a")
check(any(r["local"] == vlocal and r["pid"] == str(pid) for r in rows), f"A records the mover's connection: {rows}")
# What the user can do by hand: save the process's connections (part 2
# imports this file).
exported = f"{work}/export.img"
rc, _, err = ctl("a", "export", "--pid", str(pid), "-o", exported)
check(rc == 0 and os.path.exists(exported) and os.stat(exported).st_mode & 0o777 == 0o600,
      f"vnatctl export --pid {pid} -o FILE saves its connection, for root only ({rc}: {err})")
# ... or that one connection, by its virtual endpoints: the same record
# (one file's 186 bytes after its 8-byte "VNATCONN", the other's).
vremote = f"{SRV}:{PORT}"
exported_conn = f"{work}/export-conn.img"
rc, _, err = ctl("a", "export", "--conn", "tcp", vlocal, vremote, "-o", exported_conn)
check(rc == 0 and os.path.exists(exported_conn) and os.stat(exported_conn).st_mode & 0o777 == 0o600,
      f"vnatctl export --conn tcp {vlocal} {vremote} -o FILE saves the connection, for root only ({rc}: {err})")
if os.path.exists(exported) and os.path.exists(exported_conn):
    by_pid, by_conn = open(exported, "rb").read(), open(exported_conn, "rb").read()
    check(len(by_conn) == 8 + 186 and by_conn[:8] == b"VNATCONN",
          f"the file of export --conn has exactly one record ({len(by_conn)} bytes, {by_conn[:8]!r})")
    differ = [i for i, (x, y) in enumerate(zip(by_pid[8:], by_conn[8:])) if x != y]
    check(by_conn[8:] == by_pid[8:],
          f"its record is the one of export --pid, byte for byte ({len(by_pid)} and {len(by_conn)} bytes; "
          f"offsets in the record that differ: {differ[:20]})")
both = f"{work}/both.img"
rc, _, err = ctl("a", "export", "--pid", str(pid), "--conn", "tcp", vlocal, vremote, "-o", both)
check(rc == 2 and "cannot be used with" in err and not os.path.exists(both),
      f"vnatctl export --pid with --conn is a usage error: exit 2, nothing written ({rc}: {err})")
# The kernel refuses, for itself, what vnatctl does not send: the dump
# ends with EINVAL and a reason.
vaddr, vport = vlocal.rsplit(":", 1)
conn_attrs = {"proto": 6, "local-addr": vaddr, "local-port": int(vport), "remote-addr": SRV, "remote-port": PORT}
for what, attrs, reason in (
        ("pid and a connection", {"pid": pid, **conn_attrs}, "not both"),
        ("local-addr alone", {"local-addr": vaddr}, "not by local-addr"),
        ("a five-tuple of two families", {**conn_attrs, "remote-addr": None, "remote-addr6": "2001:db8::2"},
         "two families")):
    attrs = {k: v for k, v in attrs.items() if v is not None}
    e, ext = ynl_error("a", "conn-export", attrs, dump=True)
    check(e == errno.EINVAL and reason in str(ext.get("msg", "")),
          f"conn-export with {what}: EINVAL and a reason ({errno.errorcode.get(e, e)}, {ext})")
e, got = ynl_error("a", "conn-export", {**conn_attrs, "local-port": int(vport) ^ 1}, dump=True)
check_eq((e, got), (0, []), "conn-export of a connection that does not exist: an empty dump")
before_b, before_srv = stats("b"), stats("srv")
vcmp = Capture("rtr", "tcp port 2031")   # VCMP: vnatd to vnatd

dumped = dump(pid, images, "criu dump on A")
if not dumped:
    vcmp.stop()
else:
    try:
        mover.wait(30)
    except subprocess.TimeoutExpired:
        pass
    check_eq(mover.returncode, -signal.SIGKILL, "the process is gone from A (killed by criu)")
    check(os.path.exists(f"{images}/vnat-connections.img"), "post-dump saved vnat-connections.img in the images")
    if os.path.exists(f"{images}/vnat-connections.img"):
        st = os.stat(f"{images}/vnat-connections.img")
        check_eq(st.st_mode & 0o777, 0o600, f"vnat-connections.img ({st.st_size} bytes) is for root only")
    wait_for(lambda: not any(r["local"] == vlocal for r in ynl_connection_rows("a")),
             "A forgets the connection once its socket is gone", 15)

    restored = restore(images, "criu restore on B")
    vcmp.stop()
    if restored:
        with netns("b"):
            ino_b = os.stat("/proc/thread-self/ns/net").st_ino
        check_eq(net_ns_of(pid), ino_b, f"process {pid} runs on, in B's network namespace")
        check(vcmp.count(f"src host {B} and dst host {SRV}") > 0, "B's vnatd told the server (VCMP)")
        log(f"VCMP packets of A while the process moved: {vcmp.count(f'host {A}')}")
        rows = connection_rows("b")
        log(f"b: {rows}")
        check(any(r["local"] == vlocal and r["remote"] == f"{SRV}:{PORT}" and r["pid"] == str(pid)
                  and r["local_physical"].startswith(B + ":") for r in rows),
              f"B records the connection: virtual local {vlocal}, physical {B}, pid {pid}")
        # The module is in use while a migrated connection lives: an
        # rmmod (an upgrade, say) is refused instead of breaking it.
        r = subprocess.run(["rmmod", "vnat"], text=True, capture_output=True)
        check(r.returncode != 0 and "in use" in r.stderr and loaded(),
              f"rmmod is refused while the moved connection lives ({r.stderr.strip()})")
        cap = Capture("rtr", f"tcp port {PORT}")
        server.release()
        wait_for(lambda: os.path.exists(out), "the restored process finishes its stream", 180)
        server.join(60)
        cap.stop()
        res = json.load(open(out)) if os.path.exists(out) else {}
        log(f"mover: {res}")
        check_eq(reap(pid, "the restored process exits"), 0, "the restored process's exit status")
        check_eq(res.get("error"), None, "the process saw no error (no reset, no timeout)")
        check_eq(res.get("local"), vlocal, "the process's socket kept its endpoint")
        check_eq(server.errors, [], "the server saw no error")
        check_eq(res.get("received"), SIZE, "the process received every byte")
        check_eq(server.got_n, SIZE, "the server received every byte")
        check_eq(res.get("got"), stream_sha(SEED_S, SIZE), "SHA-256 server -> process equal")
        check_eq(server.got.hexdigest(), stream_sha(SEED_C, SIZE), "SHA-256 process -> server equal")
        check_eq(res.get("sent"), server.got.hexdigest(), "the process sent what the server got")
        n_a, n_b = cap.count(f"host {A}"), cap.count(f"host {B}")
        check(n_b > 0, f"the router saw packets of B ({n_b}) after the restore")
        check_eq(n_a, 0, "packets of A after the restore")
        check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "resets on the wire")
        srows = [r for r in connection_rows("srv") if r["remote"] == vlocal]
        check(len(srows) == 1 and srows[0]["remote_physical"].startswith(B + ":"),
              f"the server maps the process's virtual {vlocal} to {B}: {srows}")
        sb, ss = stats("b"), stats("srv")
        check(sb["connections_imported"] >= before_b["connections_imported"] + 1,
              f"B imported the connection ({sb['connections_imported']})")
        check(ss["updates_accepted"] >= before_srv["updates_accepted"] + 1,
              f"the server accepted B's update ({ss['updates_accepted']})")
        log("b stats: " + ", ".join(f"{k}={v}" for k, v in sb.items() if v and not k.startswith("hook")))
    if restored and not os.path.exists(out):
        evidence(mark)
end(mover)
server.release()
conn.close()
listener.close()

# 2. Refusals, on B: nothing changes.
saved = exported
if os.path.exists(saved):
    whole = open(saved, "rb").read()
    watch = lambda: {k: v for k, v in stats("b").items() if k == "connections" or "import" in k or "expect" in k}
    before = watch()
    short = f"{work}/truncated.img"
    with open(short, "wb") as f:
        f.write(whole[:len(whole) - 20])
    rc, _, err = ctl("b", "import", short)
    log(f"b# vnatctl import {short}: exit {rc}: {err}")
    check(rc != 0 and re.search(r"truncat|short|incomplete|too few|malformed|invalid|EINVAL", err, re.I),
          f"vnatctl import of a truncated file fails with a clear message (exit {rc}: {err})")
    check_eq(watch(), before, "the truncated file changed nothing")
    # The kernel checks for itself (vnatctl checked the file before
    # sending anything): a record cut short, straight through the family.
    record = whole[8:8 + 186]   # after the file's "VNATCONN"
    err, ext = ynl_error("b", "conn-import", {"saved": record[:120]})
    check(err == errno.EINVAL and "truncated" in str(ext.get("msg", "")),
          f"conn-import of a truncated record: EINVAL, with a reason ({err}, {ext})")
    check_eq(watch(), before, "the truncated record changed nothing")
    readable = f"{work}/readable.img"
    shutil.copy(saved, readable)
    os.chmod(readable, 0o644)
    rc, _, err = ctl("b", "import", readable, as_nobody=True)
    log(f"b$ vnatctl import {readable} (as nobody): exit {rc}: {err}")
    check(rc == 4 and "Operation not permitted" in err,
          f"an unprivileged user gets EPERM from vnatctl import: exit 4 ({rc}: {err})")
    check_eq(watch(), before, "the unprivileged import changed nothing")
else:
    check(False, "part 2 needs the file of vnatctl export")

# 3. Suspended while away (VNAT_CRIU_SUSPEND=1): an idle connection whose
# server end has TCP keepalive (dead after K s without an answer, and the
# process is away longer than that) lives on because post-dump told the
# server that it is suspended: its vnatd turns that keepalive off (the
# keepalive helper) until the process comes back from B.
K = 15
if not dumped:
    log("part 3 needs a criu that works here: not run")
    shutil.rmtree(work, ignore_errors=True)
    done()
mark = kmsg_mark()
listener = tcp_listen("srv", "0.0.0.0", PORT + 1)
listener.settimeout(60)
images3, out3 = f"{work}/img3", f"{work}/result3.json"
os.mkdir(images3)
echoer = start("echoer", ECHOER, SRV, PORT + 1, out3)
pid3 = echoer.pid
conn, peer = listener.accept()
vlocal3 = ep(peer)
conn.settimeout(60)
conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, K)
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
wait_keyed("a", "srv")
echoed = 0


def ping(what, sock=None):
    """16 bytes to the moving process and back, on `sock` (`conn` if none)."""
    global echoed
    sock = sock or conn
    msg = os.urandom(16)
    try:
        sock.sendall(msg)
        ok = recv_exactly(sock, 16) == msg
    except OSError as e:
        return check(False, f"{what}: {e!r}")
    echoed += 16 * ok
    return check(ok, what)


ping("the process echoes before it moves")
last = time.monotonic()   # the server's keepalive counts from here
if dump(pid3, images3, "criu dump on A, suspending the connection", env={"VNAT_CRIU_SUSPEND": "1"}):
    echoer.wait(30)
    rows = [r for r in listing("srv") if r["remote"] == vlocal3]
    check(len(rows) == 1 and rows[0]["peer-suspended"], f"the server knows the process is away: {rows}")
    check_eq(conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0,
             "the server's keepalive is off for it meanwhile")
    check(stats("srv")["suspends_accepted"] >= 1, "the server accepted the suspension")
    # Away for longer than the server's keepalive would have waited.
    away = K + 2 + 5
    time.sleep(max(0.0, last + away - time.monotonic()))
    log(f"away for {time.monotonic() - last:.1f} s (keepalive would have given up after {K + 2} s)")
    replayed = stats("srv")["vcmp_replayed"]
    if restore(images3, "criu restore on B"):
        ping("the process echoes after it moved")
        # The suspension went under the key after the export read its
        # counter: B's update must not reuse that counter.
        check_eq(stats("srv")["vcmp_replayed"] - replayed, 0, "the server took nothing from B for a replay")
        check_eq(conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1, "the server's keepalive is on again")
        rows = [r for r in listing("srv") if r["remote"] == vlocal3]
        check(len(rows) == 1 and not rows[0]["peer-suspended"] and rows[0]["remote-phys"].startswith(B + ":"),
              f"the server maps the process to B and no longer waits for it: {rows}")
        conn.shutdown(socket.SHUT_WR)
        check_eq(conn.recv(1), b"", "the process closes its end when the server does")
        check_eq(reap(pid3, "the restored process exits"), 0, "the restored process's exit status")
        res = json.load(open(out3)) if os.path.exists(out3) else {}
        check_eq(res.get("echoed"), echoed, "the process echoed every byte")
end(echoer)
conn.close()
listener.close()

# 4. A server process moves: its listener and the connection it accepted.
# Clients reach it at B's address afterwards; the one connected before
# goes on.
SPORT = 6000
images4, out4 = f"{work}/img4", f"{work}/result4.json"
os.mkdir(images4)
srvproc = start("server", ECHO_SERVER, SPORT, 2, out4)
pid4 = srvproc.pid
wait_for(lambda: SPORT in listening_ports("a"), "the server process listens on A", 30)
echoed = 0
conn = tcp_connect("srv", A, SPORT)
conn.settimeout(60)
vremote4 = ep(conn.getsockname())
wait_keyed("a", "srv")
ping("the server process echoes before it moves")
if dump(pid4, images4, "criu dump of the server process on A"):
    srvproc.wait(30)
    if restore(images4, "criu restore of the server process on B"):
        check(SPORT in listening_ports("b"), f"B listens on {SPORT} now")
        ping("the accepted connection echoes after the move")
        rows = [r for r in connection_rows("b") if r["remote"] == vremote4]
        check(len(rows) == 1 and rows[0]["origin"] == "accept" and rows[0]["local"] == f"{A}:{SPORT}"
              and rows[0]["local_physical"] == f"{B}:{SPORT}",
              f"B records the accepted connection: virtual {A}:{SPORT}, physical {B}:{SPORT}: {rows}")
        rows = [r for r in connection_rows("srv") if r["local"] == vremote4]
        check(len(rows) == 1 and rows[0]["remote_physical"] == f"{B}:{SPORT}",
              f"the client maps the server's virtual {A}:{SPORT} to {B}:{SPORT}: {rows}")
        second = tcp_connect("srv", B, SPORT)
        second.settimeout(60)
        ping("a new client reaches the moved server at B's address", second)
        for sock in (conn, second):
            sock.shutdown(socket.SHUT_WR)
            check_eq(sock.recv(1), b"", "the server process closes when its client does")
            sock.close()
        check_eq(reap(pid4, "the restored server process exits"), 0, "the restored server process's exit status")
        res = json.load(open(out4)) if os.path.exists(out4) else {}
        check_eq(res.get("echoed"), echoed, f"the server process echoed every byte ({res})")
end(srvproc)
conn.close()

# 5. A connected UDP flow moves with its process: datagrams flow again from
# B, and the server program keeps seeing the process's first address.
UPORT = 7000
images5, out5, stop5 = f"{work}/img5", f"{work}/result5.json", f"{work}/stop5"
os.mkdir(images5)
with netns("srv"):
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind(("0.0.0.0", UPORT))
echo = UdpEcho(us)
udpproc = start("udp", UDP_CLIENT, SRV, UPORT, stop5, out5)
pid5 = udpproc.pid
wait_for(lambda: echo.n >= 10, "the UDP process's datagrams reach the server", 60)
vudp = next((ep(a) for a in echo.sources), None)
wait_keyed("a", "srv")
if dump(pid5, images5, "criu dump of the UDP process on A"):
    udpproc.wait(30)
    if restore(images5, "criu restore of the UDP process on B"):
        cap = Capture("rtr", f"udp port {UPORT}")
        n = echo.n
        wait_for(lambda: echo.n >= n + 20, "datagrams reach the server again after the move", 60)
        cap.stop()
        check_eq({ep(a) for a in echo.sources}, {vudp}, "the server program only ever sees the process's first address")
        check_eq(cap.count(f"host {A}"), 0, "datagrams of A after the restore")
        check(cap.count(f"src host {B}") > 0 and cap.count(f"dst host {B}") > 0,
              "the router sees the datagrams and their echoes at B's address")
        rows = [r for r in connection_rows("b") if r["proto"] == "udp"]
        check(len(rows) == 1 and rows[0]["local"] == vudp and rows[0]["local_physical"].startswith(B + ":"),
              f"B records the UDP flow: virtual {vudp}, physical {B}: {rows}")
        rows = [r for r in connection_rows("srv") if r["proto"] == "udp" and r["remote"] == vudp]
        check(len(rows) == 1 and rows[0]["remote_physical"].startswith(B + ":"),
              f"the server maps the process's virtual {vudp} to {B}: {rows}")
        open(stop5, "w").close()
        check_eq(reap(pid5, "the restored UDP process exits"), 0, "the restored UDP process's exit status")
        res = json.load(open(out5)) if os.path.exists(out5) else {}
        log(f"udp process: {res}; the server echoed {echo.n}")
        check_eq(res.get("errors"), [], "the UDP process saw no error")
        check(res.get("echoed", 0) >= n + 20 - 10, f"the echoes came back to the process on B ({res.get('echoed')})")
open(stop5, "w").close()
end(udpproc)
echo.stop()
us.close()

# 6. A process with three connections to two peers.
images6, out6 = f"{work}/img6", f"{work}/result6.json"
os.mkdir(images6)
l_srv, l_p2 = tcp_listen("srv", "0.0.0.0", MPORT), tcp_listen("p2", "0.0.0.0", MPORT)
targets = [f"{SRV}:{MPORT}", f"{SRV}:{MPORT}", f"{P2}:{MPORT}"]
proc6 = start("multi", MULTI_ECHOER, out6, *targets)
pid6 = proc6.pid
peers = []
for l in (l_srv, l_srv, l_p2):   # the order the process connects in
    l.settimeout(60)
    s, _ = l.accept()
    s.settimeout(60)
    peers.append(s)
wait_keyed("a", "srv", "p2")
echoed = 0
for i, s in enumerate(peers):
    ping(f"connection {i + 1} of 3 echoes before the move", s)
if dump(pid6, images6, "criu dump on A of a process with connections to two peers"):
    proc6.wait(30)
    if restore(images6, "criu restore on B of the process with connections to two peers"):
        for i, s in enumerate(peers):
            ping(f"connection {i + 1} of 3 echoes after the move", s)
        rows = [r for r in connection_rows("b") if r["pid"] == str(pid6)]
        check(len(rows) == 3 and all(r["local"].startswith(A + ":") and r["local_physical"].startswith(B + ":")
                                     for r in rows),
              f"B records the three connections, virtual at A, physical at B: {rows}")
        for ns, n in (("srv", 2), ("p2", 1)):
            rows = [r for r in connection_rows(ns) if r["local"].endswith(f":{MPORT}")]
            check(len(rows) == n and all(r["remote"].startswith(A + ":") and r["remote_physical"].startswith(B + ":")
                                         for r in rows),
                  f"{ns} maps the process's {n} connection(s) to B: {rows}")
        for s in peers:
            s.shutdown(socket.SHUT_WR)
            check_eq(s.recv(1), b"", "the process closes each connection when its peer does")
        check_eq(reap(pid6, "the restored process exits"), 0, "the restored process's exit status")
        res = json.load(open(out6)) if os.path.exists(out6) else {}
        check_eq(res.get("echoed"), echoed, "the process echoed every byte")
end(proc6)
for s in (*peers, l_srv, l_p2):
    s.close()

shutil.rmtree(work, ignore_errors=True)
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The generic netlink family "vnat", driven by the kernel's own ynl library
with the spec vnat/vnat.yaml: conn-get dumps exactly the connections that
are open (tuples, owners, states), in several parts when there are many;
conn-resume moves a host's connections and says how many; a bad request is
refused with the right errno and an extack message; an unprivileged user
may read but not resume."""
import errno
import json
import socket
from vnattest import *

YNL_DIR = os.environ["VNAT_YNL"]   # the kernel's tools/net/ynl/pyynl, copied by run.sh
sys.path.insert(0, YNL_DIR)
from pyynl.lib import NlError, YnlFamily  # noqa: E402  (the kernel's ynl library)

SPEC = "vnat/vnat.yaml"   # validated against the schema by make check's lint stage


def family(ns):
    """The kernel's ynl library with our spec, its socket in namespace `ns`."""
    with netns(ns):
        return YnlFamily(SPEC, schema="")   # "": no validation here


def as_nobody(ns, op, *args):
    """Runs ynl `op` as user nobody, without capabilities, in a child
    process; returns ["ok", result] or ["err", errno, message]."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)   # drops every capability
            out = ["ok", getattr(family(ns), op)(*args)]
        except NlError as e:
            out = ["err", e.error, str(e)]
        except Exception as e:  # noqa: BLE001
            out = ["err", -1, repr(e)]
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 20):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def refused(f, req):
    """Sends conn-resume `req`; returns (errno, message) of the refusal."""
    try:
        f.do("conn-resume", req)
        return (0, "accepted")
    except NlError as e:
        return (e.error, str(e))


def key(c):
    return (c["proto"], f"{c['local-addr']}:{c['local-port']}", f"{c['remote-addr']}:{c['remote-port']}")


insmod()
check_eq(write_knob("auto_migrate", "0"), None, "auto_migrate=0: only the command moves things")
topo = Topology()
cli, srvf = family("cli"), family("srv")
check_eq(cli.dump("conn-get", {}), [], "nothing open, nothing dumped")

# 300 TCP connections and one connected UDP socket: more than one dump part.
srv = tcp_listen("srv", "0.0.0.0", 5000)
pairs = []
for _ in range(300):
    c = tcp_connect("cli", topo.server_addr(), 5000)
    a, _ = srv.accept()
    pairs.append((c, a))
with netns("cli"):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect((topo.server_addr(), 5300))
want = {(6, ep(c.getsockname()), ep(c.getpeername())) for c, _ in pairs}
want.add((17, ep(u.getsockname()), ep(u.getpeername())))
got = cli.dump("conn-get", {})
check_eq(len(got), 301, "one record per connection, none twice")
check_same({key(c) for c in got}, want, "the dump's tuples are the sockets' own")
check(all(c["pid"] == os.getpid() and c["origin"] == "connect" and c["state"] == "native"
          and c["local-phys-addr"] == c["local-addr"] and c["remote-phys-port"] == c["remote-port"] for c in got),
      "owner, origin, state and physical endpoints as opened")
sgot = srvf.dump("conn-get", {})
check_same({key(c) for c in sgot}, {(p, r, l) for (p, l, r) in want if p == 6}, "the server's view: the accepted ends")
check(all(c["origin"] == "accept" for c in sgot), "accepted")
r = as_nobody("cli", "dump", "conn-get", {})
check(r[0] == "ok" and len(r[1]) == 301, f"an unprivileged user may read ({str(r)[:200]})")

# conn-resume: the client is now on subnet 2 and asks VNAT to move there.
old = topo.client_addr()
topo.attach_client(2)
new = topo.client_addr()
req = {"local-addr": old, "new-addr": new}
r = as_nobody("cli", "do", "conn-resume", req)
check(r[0] == "err" and r[1] == errno.EPERM, f"an unprivileged user cannot resume ({r})")
e, msg = refused(cli, {"local-addr": "10.9.9.9", "new-addr": new})
check(e == errno.ENOENT and "no virtual connection is at this address" in msg,
      f"an address without connections: ENOENT and why ({msg})")
e, msg = refused(cli, {"local-addr": old, "new-addr": old})
check(e == errno.EINVAL and "addresses must be non-zero and differ" in msg, f"the same address: EINVAL and why ({msg})")
e, msg = refused(cli, {"local-addr": old})
check(e == errno.EINVAL, f"a missing attribute is refused ({msg})")
check_eq(stats("cli")["migrations_completed"], 0, "none of that moved anything")
check_eq(cli.do("conn-resume", req), {"count": 301}, "conn-resume answers the number of connections it covers")
wait_for(lambda: stats("cli")["migrations_completed"] == 301, "all 301 migrated", timeout=60)
got = cli.dump("conn-get", {})
check(len(got) == 301 and all(c["state"] == "migrated" and c["local-phys-addr"] == new and c["local-addr"] == old
                              for c in got),
      "the dump shows them migrated: virtual address kept, physical one new")
for c, a in pairs[:20]:
    c.sendall(b"ping")
    check_eq(a.recv(4), b"ping", "a migrated connection carries bytes")
for c, a in pairs:
    c.close()
    a.close()
u.close()
wait_for(lambda: cli.dump("conn-get", {}) == [] and srvf.dump("conn-get", {}) == [],
         "closed connections leave the dump", timeout=30)
done()

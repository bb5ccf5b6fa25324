#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The generic netlink family "vnat", driven by the kernel's own ynl tool
with the spec vnat/vnat.yaml: conn-get dumps exactly the connections that
are open (tuples, owners, states), in several parts when there are many;
conn-resume moves a host's connections and says how many; a bad request is
refused with the right errno and an extack message; an unprivileged user
may read but not resume."""
import glob
import json
import socket
from vnattest import *

KSRC = os.environ["VNAT_KSRC"]
YNL = [os.environ.get("VNAT_PY", sys.executable), f"{KSRC}/tools/net/ynl/pyynl/cli.py", "--spec", "vnat/vnat.yaml",
       "--schema", f"{KSRC}/Documentation/netlink/genetlink.yaml", "--output-json"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


def ynl(ns, *args, user=()):
    r = subprocess.run(["ip", "netns", "exec", ns, *user, *YNL, *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def dump(ns, user=()):
    rc, out, err = ynl(ns, "--dump", "conn-get", user=user)
    check_eq(rc, 0, f"ynl --dump conn-get in {ns} ({err.strip()[-300:]})")
    return json.loads(out) if rc == 0 else []


def key(c):
    return (c["proto"], f"{c['local-addr']}:{c['local-port']}", f"{c['remote-addr']}:{c['remote-port']}")


insmod()
check_eq(write_knob("auto_migrate", "0"), None, "auto_migrate=0: only the command moves things")
topo = Topology()
check_eq(dump("cli"), [], "nothing open, nothing dumped")

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
got = dump("cli")
check_eq(len(got), 301, "one record per connection, none twice")
check_eq({key(c) for c in got}, want, "the dump's tuples are the sockets' own")
check(all(c["pid"] == os.getpid() and c["origin"] == "connect" and c["state"] == "native"
          and c["local-phys-addr"] == c["local-addr"] and c["remote-phys-port"] == c["remote-port"] for c in got),
      "owner, origin, state and physical endpoints as opened")
sgot = dump("srv")
check_eq({key(c) for c in sgot}, {(p, r, l) for (p, l, r) in want if p == 6}, "the server's view: the accepted ends")
check(all(c["origin"] == "accept" for c in sgot), "accepted")
check_eq(len(dump("cli", user=NOBODY)), 301, "an unprivileged user may read")

# conn-resume: the client is now on subnet 2 and asks VNAT to move there.
old = topo.client_addr()
topo.attach_client(2)
new = topo.client_addr()
req = json.dumps({"local-addr": old, "new-addr": new})
rc, out, err = ynl("cli", "--do", "conn-resume", "--json", req, user=NOBODY)
check(rc != 0 and ("Operation not permitted" in err or "EPERM" in err or "-1" in err),
      f"an unprivileged user cannot resume ({err.strip()[-200:]})")
rc, out, err = ynl("cli", "--do", "conn-resume", "--json", json.dumps({"local-addr": "10.9.9.9", "new-addr": new}))
check(rc != 0 and "no virtual connection is at this address" in err, f"an address without connections: ENOENT and why ({err.strip()[-200:]})")
rc, out, err = ynl("cli", "--do", "conn-resume", "--json", json.dumps({"local-addr": old, "new-addr": old}))
check(rc != 0 and "addresses must be non-zero and differ" in err, f"the same address: EINVAL and why ({err.strip()[-200:]})")
rc, out, err = ynl("cli", "--do", "conn-resume", "--json", json.dumps({"local-addr": old}))
check(rc != 0, f"a missing attribute is refused ({err.strip()[-200:]})")
check_eq(stats("cli")["migrations_completed"], 0, "none of that moved anything")
rc, out, err = ynl("cli", "--do", "conn-resume", "--json", req)
check(rc == 0 and json.loads(out) == {"count": 301}, f"conn-resume answers the number of connections it covers ({out.strip()} {err.strip()[-200:]})")
wait_for(lambda: stats("cli")["migrations_completed"] == 301, "all 301 migrated", timeout=60)
got = dump("cli")
check(len(got) == 301 and all(c["state"] == "migrated" and c["local-phys-addr"] == new and c["local-addr"] == old for c in got),
      "the dump shows them migrated: virtual address kept, physical one new")
for c, a in pairs[:20]:
    c.sendall(b"ping")
    check_eq(a.recv(4), b"ping", "a migrated connection carries bytes")
for c, a in pairs:
    c.close()
    a.close()
u.close()
wait_for(lambda: dump("cli") == [] and dump("srv") == [], "closed connections leave the dump")
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Manual resume with vnatctl (netlink conn-resume): 'vnatctl resume OLD
NEW' moves the connections of OLD to NEW (here with automatic migration
off); bad or malformed requests are refused with EINVAL (ERANGE for a
value out of its range) and a reason (the extack); users without CAP_NET_ADMIN are refused (EPERM); none of that
moves anything."""
import errno
import os
from vnattest import *

insmod()
check_eq(write_knob("auto_migrate", "0"), None, "auto_migrate=0")
topo = Topology()
srv, c, a = topo.connection()
old = topo.client_addr()
topo.attach_client(2)
check_eq(stats("cli")["migrations_completed"], 0, "nothing happens by itself with auto_migrate=0")

# Requests vnatctl would not send, straight through the kernel's ynl:
# each refused with a reason, EINVAL (ERANGE for a value the policy's range
# refuses, as the kernel's policy checks answer).
new = topo.client_addr()
bad = [
    ("no selector", {"new-addr": new}, errno.EINVAL, {"miss-type": "local-addr"}),
    ("two selectors", {"pid": os.getpid(), "local-addr": old, "new-addr": new}, errno.EINVAL,
     {"msg": "select by pid, by connection or by local-addr, not several"}),
    ("a five-tuple without its remote end", {"proto": 6, "local-addr": old, "local-port": 1, "new-addr": new},
     errno.EINVAL, {"miss-type": "remote-addr"}),
    ("proto 1", {"proto": 1, "local-addr": old, "local-port": 1, "remote-addr": old, "remote-port": 1},
     errno.ERANGE, {"msg": "integer out of range", "bad-attr": ".proto"}),
    ("port 0", {"proto": 6, "local-addr": old, "local-port": 0, "remote-addr": old, "remote-port": 1},
     errno.ERANGE, {"msg": "integer out of range", "bad-attr": ".local-port"}),
    ("an attribute conn-resume does not take", {"local-addr": old, "new-addr": new, "helper": 1},
     errno.EINVAL, {"msg": "Unsupported attribute", "bad-attr": ".helper"}),
    ("local-addr 0.0.0.0", {"local-addr": "0.0.0.0", "new-addr": new}, errno.EINVAL,
     {"msg": "local-addr 0.0.0.0 is no address"}),
    ("an address no connection has", {"local-addr": "10.0.7.7", "new-addr": new}, errno.ENOENT,
     {"msg": "no virtual connection is at this address"}),
]
for what, attrs, want, reason in bad:
    err, ext = ynl_error("cli", "conn-resume", attrs)
    check(err == want and all(ext.get(k) == v for k, v in reason.items()),
          f"conn-resume with {what}: {errno.errorcode[want]} and {reason} (got {errno.errorcode.get(err, err)}, {ext})")
err, ext = ynl_error("cli", "conn-suspend", {"local-addr": old, "new-addr": new})
check(err == errno.EINVAL and "moves nowhere" in ext.get("msg", ""),
      f"conn-suspend with new-addr: EINVAL and a reason (got {errno.errorcode.get(err, err)}, {ext})")
rc, out, err = ctl("cli", "resume", old, new, as_nobody=True)
check(rc == 4 and "Operation not permitted" in err and "CAP_NET_ADMIN" in err,
      f"an unprivileged user gets EPERM from vnatctl resume: exit 4 ({rc}: {err})")
check_eq(stats("cli")["migrations_completed"], 0, "none of that moved anything")
check_eq({r["state"] for r in connection_rows("cli")}, {"native"}, "the connection is as it was")
VNATCTL = os.environ["VNATCTL"]
r = subprocess.run(["ip", "netns", "exec", "cli", VNATCTL, "resume", "10.0.1", topo.client_addr()], capture_output=True, text=True)
check(r.returncode == 2 and "not an IPv4 address" in r.stderr, f"vnatctl refuses a bad address ({r.stderr.strip()})")
# Updates go to the port vcmp_peer_port names: nobody listens on 2999.
check_eq(write_knob("vcmp_retries", "0"), None, "vcmp_retries=0")
check_eq(write_knob("resume_deadline_s", "0"), None, "resume_deadline_s=0: no retrying (test 38)")
check_eq(write_knob("vcmp_peer_port", "2999"), None, "vcmp_peer_port=2999")
check_eq(write_knob("vcmp_peer_port", "65536"), errno.EINVAL, "vcmp_peer_port=65536 refused")
r = subprocess.run(["ip", "netns", "exec", "cli", VNATCTL, "resume", old, topo.client_addr()], capture_output=True, text=True)
check_eq(r.returncode, 0, f"vnatctl resume {old} {topo.client_addr()} ({r.stdout.strip()} {r.stderr.strip()})")
wait_for(lambda: stats("cli")["migrations_failed"] == 1, "no vnatd at port 2999: the migration fails", timeout=30)
check_eq(stats("srv")["updates_accepted"], 0, "the server's vnatd heard nothing")
check_eq(write_knob("vcmp_peer_port", "0"), None, "vcmp_peer_port=0: vcmp_port again")
r = subprocess.run(["ip", "netns", "exec", "cli", VNATCTL, "resume", old, topo.client_addr()], capture_output=True, text=True)
check_eq(r.returncode, 0, f"vnatctl resume {old} {topo.client_addr()} ({r.stdout.strip()} {r.stderr.strip()})")
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "manual resume completed", timeout=30)
t = Transfer(c, a, 2 << 20)
t.join()
out = sh(f"ip netns exec cli {VNATCTL} list")
check(f"{old}:" in out and "migrated" in out, f"vnatctl list shows the migrated connection:\n{out}")
c.close(); a.close(); srv.close()
done()

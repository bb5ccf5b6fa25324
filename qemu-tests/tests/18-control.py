#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Manual resume with vnatctl (through /proc/net/vnat/control): 'vnatctl
resume OLD NEW' moves the connections of OLD to NEW (here with automatic
migration off); bad commands are refused with EINVAL and a logged reason;
users without CAP_NET_ADMIN cannot write."""
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

def control(ns, text):
    with netns(ns):
        try:
            with open("/proc/thread-self/net/vnat/control", "w") as f:
                f.write(text)
            return None
        except OSError as e:
            return e.errno

for bad in ["migrate", "migrate 10.0.1.2", "move 10.0.1.2 10.0.2.2", "migrate 10.0.1.2 10.0.2.300", "migrate 10.0.1.2 10.0.2.2 x"]:
    check_eq(control("cli", bad), errno.EINVAL, f"{bad!r} refused")
check(match_line(dmesg_tail(3), r"control: refused .*expected 'migrate OLD_ADDR NEW_ADDR'"), "reason logged")
r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                    "ip", "netns", "exec", "cli", "sh", "-c", f"echo 'migrate {old} {topo.client_addr()}' > /proc/net/vnat/control"],
                   capture_output=True, text=True)
check(r.returncode != 0, f"an unprivileged user cannot write ({r.stderr.strip()})")
VNATCTL = os.environ["VNATCTL"]
r = subprocess.run(["ip", "netns", "exec", "cli", VNATCTL, "resume", "10.0.1", topo.client_addr()], capture_output=True, text=True)
check(r.returncode == 2 and "not an IPv4 address" in r.stderr, f"vnatctl refuses a bad address ({r.stderr.strip()})")
# Updates go to the port vcmp_peer_port names: nobody listens on 2999.
check_eq(write_knob("vcmp_retries", "0"), None, "vcmp_retries=0")
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

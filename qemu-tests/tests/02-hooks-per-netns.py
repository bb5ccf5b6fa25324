#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The four hooks exist only in a namespace that has translated connections,
and see that namespace's packets only. A namespace without a migrated
connection has no hook to run: its counters stay 0 under traffic. Once a
connection of host a1 migrates (to a second address of a1), a1's hooks
and its peer a2's are registered and count their packets, bytes echoed
intact, while host b1's traffic moves no counter of a1 and b1 has no hooks;
when the migrated connection closes, the hooks go again."""
from vnattest import *

HOOKS = ["hook_prerouting_packets", "hook_local_in_packets",
         "hook_local_out_packets", "hook_postrouting_packets"]

insmod()
for ns in ("a1", "a2", "b1", "b2"):
    add_netns(ns)
veth("a1", "10.1.0.1", "a2", "10.1.0.2")
veth("b1", "10.2.0.1", "b2", "10.2.0.2")
sh("ip -n a1 addr add 10.1.0.3/24 dev va1")


def hooks(ns):
    s = stats(ns)
    return [s[h] for h in HOOKS]


def registered(ns):
    return stats(ns)["hooks_registered"]


def echo(c, a, n=200):
    """n round trips of 100 bytes over TCP, checked byte for byte."""
    for i in range(n):
        msg = bytes([i % 256]) * 100
        c.sendall(msg)
        got = b""
        while len(got) < 100:
            got += a.recv(100 - len(got))
        a.sendall(got)
        back = b""
        while len(back) < 100:
            back += c.recv(100 - len(back))
        if back != msg:
            check(False, "echoed bytes equal")
            return
    check(True, f"{n} round trips echoed intact")


def exchange(src, dst_addr, dst_ns, n=200):
    srv = tcp_listen(dst_ns, "0.0.0.0")
    c = tcp_connect(src, dst_addr, srv.getsockname()[1])
    a, _ = srv.accept()
    echo(c, a, n)
    c.close(); a.close(); srv.close()


# Nothing migrated anywhere: no hooks, nothing counted.
check_eq([registered(ns) for ns in ("a1", "a2", "b1", "b2")], [0, 0, 0, 0], "no namespace has hooks")
exchange("a1", "10.1.0.2", "a2")
exchange("b2", "10.2.0.1", "b1")
check_eq(hooks("a1") + hooks("a2") + hooks("b1"), [0] * 12, "traffic without migrated connections runs no hook")

# A connection of a1 migrates: a1 and its peer a2 get hooks, b1 does not.
srv = tcp_listen("a2", "0.0.0.0")
c = tcp_connect("a1", "10.1.0.2", srv.getsockname()[1])
a, _ = srv.accept()
local, remote = ep(c.getsockname()), ep(a.getsockname())
rc, out, err = ctl("a1", "resume", "--conn", "tcp", local, remote, "10.1.0.3")
check_eq(rc, 0, f"migrate {local} to 10.1.0.3 ({out} {err})")
wait_for(lambda: [r["state"] for r in listing("a1") if r["local"] == local] == ["migrated"], "migrated", timeout=60)
check_eq((registered("a1"), registered("a2"), registered("b1")), (1, 1, 0),
         "a1 and a2 have hooks, b1 has none")
before_a, before_b = hooks("a1"), hooks("b1")
echo(c, a)
after_a, after_b = hooks("a1"), hooks("b1")
log(f"a1 hooks {before_a} -> {after_a}; b1 hooks {before_b} -> {after_b}")
# 200 round trips: at least 200 data segments out and 200 in through a1.
check(after_a[2] - before_a[2] >= 200, "a1 LOCAL_OUT counted its outgoing packets")
check(after_a[3] - before_a[3] >= 200, "a1 POSTROUTING counted its outgoing packets")
check(after_a[0] - before_a[0] >= 200, "a1 PREROUTING counted its incoming packets")
check(after_a[1] - before_a[1] >= 200, "a1 LOCAL_IN counted its incoming packets")
check_eq(after_b, [0, 0, 0, 0], "b1 counts nothing while only a1 talks")

before_a = hooks("a1")
exchange("b2", "10.2.0.1", "b1")
# b's 200 round trips are not a1's; a1's own idle connection may still
# send a delayed ACK meanwhile.
moved = [x - y for x, y in zip(hooks("a1"), before_a)]
check(all(m < 10 for m in moved), f"a1 counts none of b's packets (moved by {moved})")
check_eq(hooks("b1"), [0, 0, 0, 0], "and b1, without hooks, nothing")

# The migrated connection closes: its records go, and the hooks with them.
c.close(); a.close(); srv.close()
wait_for(lambda: registered("a1") == 0 and registered("a2") == 0, "the hooks go with the last translated connection",
         timeout=60)
before_a = hooks("a1")
exchange("a1", "10.1.0.2", "a2")
check_eq(hooks("a1"), before_a, "a1 runs no hook any more")
done()

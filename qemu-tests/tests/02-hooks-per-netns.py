#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The four hooks see packets per namespace: traffic in one host moves its
counters and leaves another host's alone."""
from vnattest import *

HOOKS = ["hook_prerouting_packets", "hook_local_in_packets",
         "hook_local_out_packets", "hook_postrouting_packets"]

insmod()
for ns in ("a1", "a2", "b1", "b2"):
    add_netns(ns)
veth("a1", "10.1.0.1", "a2", "10.1.0.2")
veth("b1", "10.2.0.1", "b2", "10.2.0.2")

def hooks(ns):
    s = stats(ns)
    return [s[h] for h in HOOKS]

def exchange(src, dst_addr, dst_ns, n=200):
    """n round trips of 100 bytes over TCP, checked byte for byte."""
    srv = tcp_listen(dst_ns, "0.0.0.0")
    c = tcp_connect(src, dst_addr, srv.getsockname()[1])
    a, _ = srv.accept()
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
            break
    c.close(); a.close(); srv.close()

before_a, before_b = hooks("a1"), hooks("b1")
exchange("a1", "10.1.0.2", "a2")
after_a, after_b = hooks("a1"), hooks("b1")
log(f"a1 hooks {before_a} -> {after_a}; b1 hooks {before_b} -> {after_b}")
# 200 round trips: at least 200 data segments out and 200 in through a1.
check(after_a[2] - before_a[2] >= 200, "a1 LOCAL_OUT counted its outgoing packets")
check(after_a[3] - before_a[3] >= 200, "a1 POSTROUTING counted its outgoing packets")
check(after_a[0] - before_a[0] >= 200, "a1 PREROUTING counted its incoming packets")
check(after_a[1] - before_a[1] >= 200, "a1 LOCAL_IN counted its incoming packets")
check_eq(after_b, before_b, "b1 counters while only a1 talks")

before_a, before_b = hooks("a1"), hooks("b1")
exchange("b2", "10.2.0.1", "b1")
after_a, after_b = hooks("a1"), hooks("b1")
check_eq(after_a, before_a, "a1 counters while only b talks")
check(all(after_b[i] - before_b[i] >= 200 for i in range(4)), "b1 counted on all four hooks")
done()

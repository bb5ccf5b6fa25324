#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A namespace deleted while the module is loaded, with tracked connections,
a VCMP client and traffic, takes its VNAT state with it; the others go on."""
from vnattest import *

insmod()
for ns in ("keep", "gone1", "gone2"):
    add_netns(ns)
veth("gone1", "10.5.0.1", "gone2", "10.5.0.2")
veth("keep", "10.6.0.1", "gone1", "10.6.0.2", name="w")
srv = tcp_listen("gone2", "0.0.0.0", 5000)
socks = [tcp_connect("gone1", "10.5.0.2", 5000) for _ in range(10)]
acc = [srv.accept()[0] for _ in socks]
vc = tcp_connect("gone2", "10.5.0.1", 2031)
wait_for(lambda: stats("gone1")["vcmp_clients_accepted"] == 1, "VCMP client accepted in gone1")
check_eq(stats("gone1")["connections"], 10, "10 connections tracked in gone1")
# Sockets keep their namespace alive; close them, then delete both namespaces.
for s in socks + acc + [srv, vc]:
    s.close()
del_netns("gone2")
del_netns("gone1")
# Deletion runs in a workqueue (cleanup_net), after RCU grace periods and
# barriers that the emulated debug guest makes slow: 15-25 s in most runs
# of make check, once over 60 s. Wait until the vnatd threads are gone.
wait_for(lambda: int(sh("pgrep -x 'vnatd/[0-9]+' | wc -l")) == 2, "vnatd threads of deleted namespaces stopped",
         timeout=180)
check(2031 in listening_ports("keep"), "vnatd of the remaining namespace still listens")
srv = tcp_listen("keep", "127.0.0.1", 5001)
c = tcp_connect("keep", "127.0.0.1", 5001)
a, _ = srv.accept()
check_eq(len(connections("keep")), 2, "remaining namespace still tracks connections")
for s in (c, a, srv):
    s.close()
rmmod()
done()

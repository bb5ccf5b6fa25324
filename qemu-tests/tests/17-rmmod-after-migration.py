#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""rmmod on both hosts after a migration, while traffic flows: the module
goes without a splat or a leak (the guest runner checks the kernel log and
kmemleak); the sockets stay usable by their applications."""
import threading
from vnattest import *

insmod()
topo = Topology()
srv, c, a = topo.connection()
stop = threading.Event()

def pump(sock):
    sock.settimeout(2)
    while not stop.is_set():
        try:
            sock.send(b"z" * 4096)
        except OSError:
            pass

def drain(sock):
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            sock.recv(1 << 16)
        except OSError:
            pass

threads = [threading.Thread(target=f, args=(s,)) for f, s in ((pump, c), (pump, a), (drain, c), (drain, a))]
for th in threads:
    th.start()
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "migrated", timeout=30)
wait_for(lambda: stats("cli")["translated_postrouting_packets"] > 100, "traffic is being translated")
rmmod()
check(not loaded(), "rmmod during translated traffic")
stop.set()
for th in threads:
    th.join()
c.close(); a.close(); srv.close()
done()

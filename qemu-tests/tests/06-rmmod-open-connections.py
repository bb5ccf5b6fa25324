#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""rmmod with tracked connections open, a VCMP client connected and a
half-sent VCMP message: the module goes cleanly and the application
connections keep working without it."""
import os
import threading
from vnattest import *

insmod()
add_netns("h1")
add_netns("h2")
veth("h1", "10.7.0.1", "h2", "10.7.0.2")
srv = tcp_listen("h2", "0.0.0.0", 6000)
c = tcp_connect("h1", "10.7.0.2", 6000)
a, _ = srv.accept()
# h1's vnatd asks h2's for the connection's key on a VCMP stream of its
# own: counted before ours.
wait_keyed("h1", "h2")
b = stats("h2")
vc = tcp_connect("h1", "10.7.0.2", 2031)
vc.sendall(bytes([1, 1, 0, 80]))  # the first 4 of 20 bytes of a VNAT_UPD
wait_for(lambda: stats("h2")["vcmp_clients_accepted"] == b["vcmp_clients_accepted"] + 1, "VCMP client accepted")
check_eq(len(connections("h1")), 2, "h1 tracks its two connections")
rmmod()
check(not loaded(), "rmmod succeeded with connections open")
# The VCMP connection was closed by the daemon's exit.
vc.settimeout(5)
try:
    check_eq(vc.recv(1), b"", "VCMP client sees the daemon's socket closed")
except ConnectionResetError:
    check(True, "VCMP client sees the daemon's socket reset")
payload = os.urandom(1 << 20)
sender = threading.Thread(target=c.sendall, args=(payload,))
sender.start()
got = b""
while len(got) < len(payload):
    got += a.recv(1 << 16)
sender.join()
check(got == payload, "1 MiB crosses the application connection after rmmod")
a.sendall(b"bye")
check_eq(c.recv(3), b"bye", "and back")
for s in (c, a, srv, vc):
    s.close()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Bad input to vnatd: malformed, truncated and unknown-version VCMP and a
flood of connections are counted and never answered; updates for unknown
connections are refused with an all-zero VNAT_UPD_R; nothing crashes, and a
tracked connection is not disturbed."""
import os
import socket
import struct
from vnattest import *

# Named physical address: the sender's own (10.8.0.1), from which alone an
# update is believed (test 24 sends others).
def upd(version=1, cmd=1, rvp=80, rva="10.8.0.2", lva="10.8.0.1", lpa="10.8.0.1", lvp=40000, lpp=40001):
    a = lambda s: socket.inet_aton(s)
    return struct.pack("!BBH4s4s4sHH", version, cmd, rvp, a(rva), a(lva), a(lpa), lvp, lpp)

insmod()
add_netns("d")   # the daemon's host
add_netns("p")   # the peer sending bad input
veth("p", "10.8.0.1", "d", "10.8.0.2")
# An application connection that must survive all of this.
srv = tcp_listen("d", "0.0.0.0", 7000)
app = tcp_connect("p", "10.8.0.2", 7000)
app_d, _ = srv.accept()
# Its key is agreed by the two vnatds at once; the counts below start after.
wait_keyed("p", "d")

def session(payload, label, want=b""):
    """Sends payload on a fresh VCMP connection and checks what came back
    before the daemon closed."""
    before = stats("d")
    s = tcp_connect("p", "10.8.0.2", 2031)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    check_eq(got, want, f"{label}: reply")
    return before

b = session(b"hello vnatd, this is not VCMP", "garbage")
wait_for(lambda: stats("d")["vcmp_malformed"] == b["vcmp_malformed"] + 1, "garbage counted as malformed")
b = session(upd(version=3), "unknown version")
wait_for(lambda: stats("d")["vcmp_malformed"] == b["vcmp_malformed"] + 1, "unknown version counted as malformed")
b = session(upd(cmd=9), "unknown command")
wait_for(lambda: stats("d")["vcmp_malformed"] == b["vcmp_malformed"] + 1, "unknown command counted as malformed")
b = session(upd(lpa="0.0.0.0"), "zero address")
wait_for(lambda: stats("d")["vcmp_malformed"] == b["vcmp_malformed"] + 1, "zero address counted as malformed")
b = session(upd()[:13], "truncated")
s = stats("d")
check_eq(s["vcmp_malformed"], b["vcmp_malformed"], "a truncated message is not a message")
check_eq(s["vcmp_messages"], b["vcmp_messages"], "and nothing was taken from it")
REFUSED = bytes([1, 2]) + bytes(18)
b = session(upd() + upd(rvp=81), "two updates for unknown connections", want=REFUSED * 2)
# At the default vcmp_auth (required) version 1 is refused before the
# connection is looked for (test 24 shows the lookup, with vcmp_auth off).
wait_for(lambda: stats("d")["vcmp_v1_refused"] == b["vcmp_v1_refused"] + 2, "both refused as version 1, counted")
check_eq(stats("d")["vcmp_messages"], b["vcmp_messages"] + 2, "both well-formed")
# Random bytes in random pieces, 50 connections.
for i in range(50):
    s = tcp_connect("p", "10.8.0.2", 2031)
    s.sendall(os.urandom(1 + i * 7))
    s.close()
# A flood: more concurrent connections than vcmp_max_clients (all from one
# address: the per-source limit, test 25's, is lifted for this).
check_eq(write_knob("vcmp_max_clients_per_source", "64"), None, "vcmp_max_clients_per_source set to 64")
check_eq(write_knob("vcmp_max_clients", "8"), None, "vcmp_max_clients set to 8")
b = stats("d")
flood = [tcp_connect("p", "10.8.0.2", 2031) for _ in range(40)]
wait_for(lambda: stats("d")["vcmp_clients_refused"] - b["vcmp_clients_refused"] >= 32, "connections beyond 8 refused and counted")
for s in flood:
    s.close()
# Idle clients are dropped after vcmp_idle_timeout_ms.
check_eq(write_knob("vcmp_idle_timeout_ms", "300"), None, "vcmp_idle_timeout_ms set to 300")
b = stats("d")
idle = tcp_connect("p", "10.8.0.2", 2031)
idle.settimeout(10)
check_eq(idle.recv(1), b"", "a silent client is closed by the daemon")
check(stats("d")["vcmp_clients_idle_closed"] > b["vcmp_clients_idle_closed"], "and counted as idle")
idle.close()
# The daemon still works and the application connection is intact.
b = session(upd(), "valid update after all that", want=REFUSED)
wait_for(lambda: stats("d")["vcmp_messages"] == b["vcmp_messages"] + 1, "vnatd still parses messages")
check(2031 in listening_ports("d"), "vnatd still listens")
app.sendall(b"still here")
check_eq(app_d.recv(10), b"still here", "application connection intact")
check_eq(len(connections("d")), 1, "its record intact")
for s in (app, app_d, srv):
    s.close()
log("stats: " + ", ".join(f"{k}={v}" for k, v in stats("d").items() if k.startswith("vcmp")))
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""IPv4 connections of dual-stack sockets migrate like those of IPv4 ones
(issue 13, its dual-stack part): a server listening on [::] (an AF_INET6
socket, IPV6_V6ONLY off, as Go, Java and Node.js servers listen by default)
accepts IPv4 clients on AF_INET6 sockets with v4-mapped addresses; and a
client may connect an AF_INET6 socket to ::ffff:a.b.c.d. Such a socket is
IPv4 on the wire. Four flows at once:

    E  TCP  client AF_INET   10.0.1.2      -> server [::]:5000, opened before insmod
    A  TCP  client AF_INET   10.0.1.2      -> server [::]:5000  (accepted ::ffff:10.0.1.2)
    B  TCP  client AF_INET6  ::ffff:10.0.1.2 -> server [::]:5000
    U  UDP  client AF_INET6, connected to ::ffff:10.0.9.2:5300 -> server [::]:5300, unconnected, echoes

        cli ---- c1 10.0.1.2/24 ----+            +---- s9  10.0.9.2/24 ---- srv
            \\--- c2 10.0.2.2/24 ---- rtr (.1 on each) ---- s10 10.0.10.2/24 --/

The client moves from subnet 1 to 2 during the transfers, then the server
from 9 to 10: every byte arrives intact both ways (8 MiB each way on A and
B, 2 MiB on E, SHA-256), every datagram comes back, no reset, and the router sees
neither old address after the moves. Before dual-stack sockets were
tracked, the server recorded none of its four connections and the moves
reset them."""
import hashlib
import os
import socket
import struct
import time
from vnattest import *

SIZE = 8 << 20
PORT, UPORT = 5000, 5300
topo = Topology()
cli_old, srv_old = topo.client_addr(), topo.server_addr()


def dual_stack(kind):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return s


with netns("srv"):
    lst = dual_stack(socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("::", PORT))
    lst.listen(8)
    us = dual_stack(socket.SOCK_DGRAM)
    us.bind(("::", UPORT))
log(f"srv: TCP and UDP sockets on [::] with IPV6_V6ONLY 0, ports {PORT} and {UPORT}")
# E: opened before insmod, found in the established hash.
ce = tcp_connect("cli", srv_old, PORT)
ae, _ = lst.accept()
insmod()
ca = tcp_connect("cli", srv_old, PORT)
aa, peer_a = lst.accept()
with netns("cli"):
    cb = dual_stack(socket.SOCK_STREAM)
    cb.settimeout(10)
    cb.connect((f"::ffff:{srv_old}", PORT))
    uc = dual_stack(socket.SOCK_DGRAM)
    uc.connect((f"::ffff:{srv_old}", UPORT))
ab, peer_b = lst.accept()
log(f"srv accepted {peer_a[0]} and {peer_b[0]} on AF_INET6 sockets")
check(peer_a[0] == peer_b[0] == f"::ffff:{cli_old}", "the server's sockets see v4-mapped peers")
stats("cli"), stats("srv")

# U: the server echoes every datagram to its sender; the client sends one
# at a time and resends every 50 ms until the echo is back.
echo = UdpEcho(us)
uc.settimeout(0.05)
sent, echoed = hashlib.sha256(), hashlib.sha256()
udp_errors = []
seq = 0


def exchange(count, within=60):
    global seq
    deadline = time.monotonic() + within
    for _ in range(count):
        d = struct.pack("!I", seq) + os.urandom(512)
        sent.update(d)
        while True:
            if time.monotonic() > deadline:
                udp_errors.append(f"datagram {seq} not echoed within {within}s")
                log(f"client: {connection_rows('cli')}\nserver: {connection_rows('srv')}")
                return
            try:
                uc.send(d)
                e = uc.recv(2048)
                while struct.unpack("!I", e[:4])[0] != seq:
                    e = uc.recv(2048)
            except (socket.timeout, ConnectionRefusedError):
                continue
            except OSError:
                # The route may be gone for the milliseconds of a move.
                time.sleep(0.05)
                continue
            echoed.update(e)
            break
        seq += 1


exchange(20)
vport_u = uc.getsockname()[1]
rows = connection_rows("srv")
tcp = [r for r in rows if r["proto"] == "tcp"]
tracked = check(len(tcp) == 3 and all(r["local"] == f"{srv_old}:{PORT}" and r["remote"].startswith(f"{cli_old}:") for r in tcp)
      and sorted(r["origin"] for r in tcp) == ["accept", "accept", "existing"],
      f"the server records the three TCP connections of its [::] listener as IPv4 ones, one opened before insmod: {rows}")
crow = [r for r in connection_rows("cli") if r["proto"] == "udp"]
tracked &= check(len(crow) == 1 and crow[0]["remote"] == f"{srv_old}:{UPORT}"
                 and crow[0]["local"] == f"{cli_old}:{vport_u}",
                 f"the client records its dual-stack UDP socket's flow: {crow}")
if not tracked:
    done()   # nothing to move: the rest would only wait for what cannot come
wait_keyed("cli", "srv")

ta = Transfer(ca, aa, SIZE, hold=0.6)
tb = Transfer(cb, ab, SIZE, hold=0.6)
te = Transfer(ce, ae, SIZE // 4, hold=0.6)
for t in (ta, tb, te):
    t.wait_progress(0.2)

topo.attach_client(2)
cli_new = topo.client_addr()
exchange(20)
wait_mapped("srv", cli_new)
topo.attach_server(10)
srv_new = topo.server_addr()
exchange(20)
wait_mapped("cli", srv_new)

cap = Capture("rtr", f"tcp port {PORT} or udp port {UPORT}")
for t in (ta, tb, te):
    t.release()
for t in (ta, tb, te):
    t.wait_more(0.2)
exchange(100)
cap.stop()
for t in (ta, tb, te):
    t.join()
echo.stop()
check_eq(udp_errors, [], "every datagram came back across both moves")
check_eq(echoed.hexdigest(), sent.hexdigest(), f"all {seq} echoes equal what was sent")
check_eq(echo.sources, {(f"::ffff:{cli_old}", vport_u)}, "the UDP server only ever saw the client's virtual endpoint")
for old in (cli_old, srv_old):
    if not check_eq(cap.count(f"host {old}"), 0, f"router saw no packet of {old} after the moves"):
        log(", ".join(f"{d} {old} {p}: {cap.count(f'{d} host {old} and {p}')}"
                      for d in ("src", "dst") for p in ("tcp", "udp")))
        log(f"client: {connection_rows('cli')}\nserver: {connection_rows('srv')}")
check(cap.count(f"src host {cli_new} and dst host {srv_new} and tcp") > 0, "router saw TCP from new to new")
check(cap.count(f"src host {cli_new} and dst host {srv_new} and udp") >= 100, "and the datagrams")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset on the wire")
rows = [r for r in connection_rows("srv") if r["proto"] == "tcp"]
check(len(rows) == 3 and all(r["local"] == f"{srv_old}:{PORT}" and r["local_physical"] == f"{srv_new}:{PORT}"
                             and r["remote_physical"].startswith(f"{cli_new}:") for r in rows),
      f"the server keeps its virtual {srv_old} on {srv_new} and maps the client to {cli_new}: {rows}")

for s in (ca, aa, cb, ab, ce, ae, uc, us, lst):
    s.close()
wait_for(lambda: stats("cli")["connections"] == 0 and stats("srv")["connections"] == 0,
         "closing the dual-stack sockets removes their records on both ends")
done()

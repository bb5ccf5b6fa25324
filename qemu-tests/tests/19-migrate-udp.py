#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A UDP "connection" survives the client's moves (paper 3.5): the client
uses a connected UDP socket, the server an unconnected one that answers with
sendto(). Every datagram comes back intact after the moves, the server
program keeps seeing the client's first address, the router sees only the
new one, and moving home makes the flow native again. A UDP update is told
apart from a TCP one, and one for a port without a socket is refused.
The server's flow is recorded when the client's vnatd asks for the
connection's key (it asks from the address the flow names, before any
move), so no unauthenticated update records it: vcmp_udp_flows stays 0."""
import hashlib
import os
import socket
import struct
import threading
from vnattest import *

PORT = 5300
insmod()
topo = Topology()
old = topo.client_addr()
srv_addr = topo.server_addr()

with netns("srv"):
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind(("0.0.0.0", PORT))
sources = set()
server_digest = hashlib.sha256()
stop = threading.Event()


def echo():
    """The server program: echoes each datagram to whoever sent it."""
    us.settimeout(0.1)
    seen = set()
    while not stop.is_set():
        try:
            d, src = us.recvfrom(2048)
        except socket.timeout:
            continue
        sources.add(src)
        seq = struct.unpack("!I", d[:4])[0]
        if seq not in seen:
            seen.add(seq)
            server_digest.update(d)
        us.sendto(d, src)


server = threading.Thread(target=echo, daemon=True)
server.start()
with netns("cli"):
    uc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uc.connect((srv_addr, PORT))
uc.settimeout(0.05)
vport = uc.getsockname()[1]
client_digest = hashlib.sha256()
echo_digest = hashlib.sha256()
resent = 0
send_errors = set()


def exchange(first, count, within=60):
    """Stop-and-wait, as a UDP program that wants every datagram does:
    resend every 50 ms until the echo comes back; all `count` datagrams must
    make the round trip within `within` seconds."""
    global resent
    deadline = time.monotonic() + within
    for seq in range(first, first + count):
        d = struct.pack("!I", seq) + os.urandom(1000)
        client_digest.update(d)
        while True:
            if time.monotonic() > deadline:
                check(False, f"datagrams {first}..{first + count - 1} made the round trip within {within}s (stuck at {seq})")
                log(f"client: {connection_rows('cli')}\nserver: {connection_rows('srv')}")
                done()
            try:
                uc.send(d)
            except OSError as e:
                # Between losing the old address and vnatd's resume, a few
                # milliseconds, the route from it may be gone, as without
                # VNAT; a UDP program retries.
                send_errors.add(e.errno)
                time.sleep(0.05)
                continue
            try:
                e = uc.recv(2048)
                while struct.unpack("!I", e[:4])[0] != seq:
                    e = uc.recv(2048)
            except (socket.timeout, ConnectionRefusedError):
                resent += 1
                continue
            echo_digest.update(e)
            break


exchange(0, 200)
rows = [r for r in connection_rows("cli") if r["proto"] == "udp"]
check(len(rows) == 1 and rows[0]["origin"] == "connect" and rows[0]["local"] == f"{old}:{vport}"
      and rows[0]["state"] == "native", f"the connected UDP socket is tracked: {rows}")
wait_keyed("cli", "srv")
srows = [r for r in ynl_connection_rows("srv") if r["proto"] == "udp"]
check(len(srows) == 1 and srows[0]["origin"] == "update" and srows[0]["remote"] == f"{old}:{vport}"
      and srows[0]["state"] == "native",
      f"the server's unconnected socket has the flow's record, keyed, once the client asked: {srows}")

# The laptop leaves subnet 1 for subnet 2, then 3, mid-conversation.
n = 200
for subnet in (2, 3):
    before = stats("cli")
    topo.attach_client(subnet)
    exchange(n, 50)
    n += 50
    wait_for(lambda: stats("cli")["migrations_completed"] > before["migrations_completed"],
             f"client's vnatd migrated the UDP connection to subnet {subnet}", timeout=30)
new = topo.client_addr()
cap = Capture("rtr", f"udp port {PORT}")
exchange(n, 300)
n += 300
cap.stop()
check_eq(cap.count(f"host {old}"), 0, f"router saw no datagram of {old} after the moves")
check(cap.count(f"src host {new} and udp dst port {PORT}") >= 300, f"router saw the client's datagrams from {new}")
check(cap.count(f"dst host {new} and udp src port {PORT}") >= 300, f"and the server's echoes to {new}")
check_eq(sources, {(old, vport)}, "the server program only ever saw the client's virtual endpoint")

srows = [r for r in connection_rows("srv") if r["proto"] == "udp"]
check(len(srows) == 1 and srows[0]["origin"] == "update" and srows[0]["remote"] == f"{old}:{vport}"
      and srows[0]["remote_physical"] == f"{new}:{vport}" and srows[0]["state"] == "migrated",
      f"the server's record of the flow follows the peer's updates: {srows}")
s = stats("srv")
check(s["translated_local_in_packets"] >= 300 and s["translated_local_out_packets"] >= 300, "server translates the flow")

# Back home: nothing is translated any more.
before = stats("cli")
topo.attach_client(1)
exchange(n, 50)
n += 50
wait_for(lambda: stats("cli")["migrations_completed"] > before["migrations_completed"], "moved home")
wait_for(lambda: [r["state"] for r in connection_rows("cli") if r["proto"] == "udp"] == ["native"]
         and [r["state"] for r in connection_rows("srv") if r["proto"] == "udp"] == ["native"],
         "native again on both ends")
t = stats("srv")["translated_local_in_packets"]
exchange(n, 50)
n += 50
check_eq(stats("srv")["translated_local_in_packets"], t, "a native flow is not translated")
check_eq(echo_digest.hexdigest(), client_digest.hexdigest(), f"all {n} echoes equal what was sent")
check_eq(server_digest.hexdigest(), client_digest.hexdigest(), f"the server received all {n} datagrams intact")
log(f"{n} datagrams, {resent} resent during the moves; send errors seen: {sorted(send_errors)}")

# Version 1 is not believed (vcmp_auth is required): a TCP update for the UDP
# flow, or a UDP one for a port without a socket, is refused and changes
# nothing. (Sent from the client, home at its first address, naming that
# address: the only one it is believed from.)
def update(cmd, lport):
    a = socket.inet_aton
    return struct.pack("!BBH4s4s4sHH", 1, cmd, lport, a(srv_addr), a(old), a(old), vport, vport)


REFUSED = bytes([1, 2]) + bytes(18)
b = stats("srv")
vc = tcp_connect("cli", srv_addr, 2031)
vc.sendall(update(1, PORT) + update(3, 5999))
vc.settimeout(10)
got = b""
while len(got) < 40:
    d = vc.recv(40)
    if not d:
        break
    got += d
vc.close()
check_eq(got, REFUSED * 2, "a TCP update for the UDP flow and a UDP update for a closed port are refused")
check_eq(stats("srv")["vcmp_v1_refused"], b["vcmp_v1_refused"] + 2, "both counted as version 1 refused")
check_eq([r["remote_physical"] for r in connection_rows("srv") if r["proto"] == "udp"], [f"{old}:{vport}"],
         "the flow is unchanged")

# Closing ends the records: the client's at its close, the server's with its socket.
uc.close()
wait_for(lambda: stats("cli")["connections"] == 0, "the client's record goes with its socket")
stop.set()
server.join()
us.close()
wait_for(lambda: stats("srv")["connections"] == 0, "the server's flow goes with its socket")
done()

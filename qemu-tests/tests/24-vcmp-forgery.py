#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Forged VCMP from a host that is not an endpoint, without keys (the
hardening of issue 11 that needs none): every host speaks only version 1
(vcmp_auth=off), as the paper's did, so what protects the victim here is
only where a message comes from. Test 26 does the same with keys.

    cli 10.0.1.2 --- rtr --- srv 10.0.9.2   the victim: cli:port -> srv:5000
                      |                      (and a UDP server on srv:53)
                m 10.0.7.2                   the attacker, off the path

1. an update naming a third host (203.0.113.99) as the client's new
   address: refused, it does not come from the address it names;
2. on srv itself, updates from 127.0.0.1 naming 127.0.0.1, and from the
   server's own address naming it: refused as martian or local;
3. m sweeps the client's whole ephemeral port range on one stream, naming
   itself: the stream is closed after vcmp_max_refusals refusals, long
   before the victim's port comes up (it is swept last), nothing accepted;
4. a suspension from m for the victim: refused, no helper at work; and
   on srv, a suspension of a loopback connection from 127.0.0.1: refused;
5. a UDP update from m naming 127.0.0.1:5353 as its virtual endpoint, for
   an unconnected UDP socket on srv:53, then a datagram: refused
   (vcmp_udp_flows is 0), the application sees m's address, never
   127.0.0.1.

Then the victim's bytes arrive intact both ways, the server's record still
points at the client, and no packet of the victim's connection reached m.
On-path forgery (m knows and spoofs the client's address) needs the
security key; it is not tested here."""
import os
import socket
import struct
import threading
from vnattest import *

UPD, UPD_UDP, SUS = 1, 3, 4
REFUSED = bytes([1, 2]) + bytes(18)
SUS_REFUSED = bytes([1, 6]) + bytes(18)


def msg(cmd, rva, rvp, lva, lvp, lpa, lpp):
    a = socket.inet_aton
    return struct.pack("!BBH4s4s4sHH", 1, cmd, rvp, a(rva), a(lva), a(lpa), lvp, lpp)


def vcmp(ns, addr, payload, nreplies, src=None):
    """Sends `payload` to vnatd at `addr` from namespace `ns`; returns the
    replies read until `nreplies` came or the daemon closed."""
    with netns(ns):
        s = socket.socket()
        if src:
            s.bind((src, 0))
        s.settimeout(20)
        s.connect((addr, 2031))
    got = b""
    try:
        s.sendall(payload)
        while len(got) < 20 * nreplies:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return got


insmod()
check_eq(write_knob("vcmp_auth", "off"), None, "vcmp_auth=off: version 1 only, no keys")
topo = Topology()
add_netns("m")
veth("m", "10.0.7.2", "rtr", "10.0.7.1")
sh("ip -n m route add default via 10.0.7.1")
srv, c, a = topo.connection()
cli_addr, srv_addr = topo.client_addr(), topo.server_addr()
cport = c.getsockname()[1]
stats("m")
cap = Capture("m", "tcp port 5000")


def srv_row():
    """srv's record of the victim, as ynl dumps it."""
    rows = [d for d in ynl_family("srv").dump("conn-get", {})
            if (d["remote-addr"], d["remote-port"]) == (cli_addr, cport)]
    if len(rows) != 1:
        return None
    d = rows[0]
    return {"state": d["state"], "helper": d["helper"], "peer_suspended": d["peer-suspended"],
            "remote_physical": f"{d['remote-phys-addr']}:{d['remote-phys-port']}"}


before_row = srv_row()
check(before_row is not None and before_row["remote_physical"] == f"{cli_addr}:{cport}",
      f"srv records the victim connection: {before_row}")
b = stats("srv")

# 1. A third host named as the client's new address.
got = vcmp("m", srv_addr, msg(UPD, srv_addr, 5000, cli_addr, cport, "203.0.113.99", cport), 1)
check_eq(got, REFUSED, "an update naming 203.0.113.99, sent from 10.0.7.2: refused")
check_eq(stats("srv")["vcmp_wrong_source"], b["vcmp_wrong_source"] + 1, "counted as from the wrong source")

# 2. Martian and local addresses, from the server host itself.
got = vcmp("srv", "127.0.0.1", msg(UPD, srv_addr, 5000, cli_addr, cport, "127.0.0.1", cport), 1)
check_eq(got, REFUSED, "an update from and naming 127.0.0.1: refused")
got = vcmp("srv", srv_addr, msg(UPD, srv_addr, 5000, cli_addr, cport, srv_addr, cport), 1, src=srv_addr)
check_eq(got, REFUSED, f"an update from and naming the server's own {srv_addr}: refused")
check_eq(stats("srv")["vcmp_martian"], b["vcmp_martian"] + 2, "both counted as martian")

# 3. The sweep: every port of the default ephemeral range, the victim's last.
lo, hi = 32768, 60999
ports = [p for p in range(cport + 1, hi + 1)] + [p for p in range(lo, cport + 1)]
sweep = b"".join(msg(UPD, srv_addr, 5000, cli_addr, p, "10.0.7.2", p) for p in ports)
log(f"m sends {len(ports)} updates for {cli_addr}:<port> -> {srv_addr}:5000 on one stream")
b3 = stats("srv")
got = vcmp("m", srv_addr, sweep, len(ports))
limit = int(read_knob("vcmp_max_refusals"))
check(len(got) <= 20 * (limit + 1) and all(got[i:i + 20] == REFUSED for i in range(0, len(got), 20)),
      f"at most {limit + 1} replies came back ({len(got) // 20}; the rest may die with the reset), all refusals")
s3 = stats("srv")
check_eq(s3["vcmp_refusals_closed"], b3["vcmp_refusals_closed"] + 1, "the closing is counted")
check_eq(s3["updates_accepted"], b3["updates_accepted"], "no update accepted")

# 4. A forged suspension.
got = vcmp("m", srv_addr, msg(SUS, srv_addr, 5000, cli_addr, cport, cli_addr, cport), 1)
check_eq(got, SUS_REFUSED, "a suspension from m for the victim: refused")
s4 = stats("srv")
check_eq(s4["suspends_accepted"], b["suspends_accepted"], "no suspension accepted")
row = srv_row()
check(row is not None and row["helper"] == "none" and row["peer_suspended"] == 0,
      f"no helper at work for the victim: {row}")

# 4b. A local user suspends a connection of the server host with itself,
# from the address that is its peer: refused, the address is local.
lo_l = tcp_listen("srv", "127.0.0.1", 6000)
lo_c = tcp_connect("srv", "127.0.0.1", 6000)
lo_a, _ = lo_l.accept()
lo_port = lo_c.getsockname()[1]
b4 = stats("srv")
got = vcmp("srv", "127.0.0.1", msg(SUS, "127.0.0.1", 6000, "127.0.0.1", lo_port, "127.0.0.1", lo_port), 1)
check_eq(got, SUS_REFUSED, "a suspension of a loopback connection, from 127.0.0.1: refused")
check_eq(stats("srv")["vcmp_martian"], b4["vcmp_martian"] + 1, "counted as martian")
for x in (lo_c, lo_a, lo_l):
    x.close()

# 5. A forged UDP flow for an unconnected socket.
with netns("srv"):
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("0.0.0.0", 53))
    dns.settimeout(10)
got = vcmp("m", srv_addr, msg(UPD_UDP, srv_addr, 53, "127.0.0.1", 5353, "10.0.7.2", 40000), 1)
check_eq(got, REFUSED, "a UDP update naming 127.0.0.1:5353 as m's virtual endpoint: refused")
check_eq(stats("srv")["vcmp_udp_flows_refused"], b["vcmp_udp_flows_refused"] + 1, "counted")
with netns("m"):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("10.0.7.2", 40000))
u.sendto(b"trust me", (srv_addr, 53))
data, src = dns.recvfrom(100)
check_eq((data, src), (b"trust me", ("10.0.7.2", 40000)), "the server's application sees m's own address")
u.close()
dns.close()

# The victim is untouched.
row = srv_row()
check(row is not None and row["remote_physical"] == f"{cli_addr}:{cport}" and row["state"] == "native",
      f"srv's record of the victim is as before: {row}")
exchange(c, a, "the victim", 1 << 20)
cap.stop()
check_eq(cap.count("tcp port 5000"), 0, "no packet of the victim's connection reached m")
log("srv stats: " + ", ".join(f"{k}={v}" for k, v in stats("srv").items() if k.startswith(("vcmp", "updates", "suspends"))))
for s in (c, a, srv):
    s.close()
done()

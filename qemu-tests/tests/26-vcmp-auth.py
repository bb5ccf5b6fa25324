#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Authenticated VCMP: the security key (paper 3.3.1.1 and 3.3.2.1).

    cli 10.0.1.2 --- rtr --- srv 10.0.9.2   the victim: cli:port -> srv:5000
    (moves to .2.2,   |
     .3.2 and back) m 10.0.7.2               a host that is not an endpoint

At vcmp_auth's default (required):
1. the two vnatds agree the connection's key right after it opens: both
   ends say `keyed`, counted once on each;
2. a forger at the client's own address (where an on-path attacker can
   send from), knowing the whole 4-tuple, sends an update in version 1
   (refused: the connection has a key) and in version 2 with a guessed key
   id and MAC (refused, counted as vcmp_auth_failed), and a version-2
   suspension: refused, no helper acts;
3. the client moves to 10.0.2.2: the router's capture of port 2031 shows
   the update in version 2; bytes arrive intact;
4. that captured update, replayed from the client's address: refused as
   a replay; after the move home, replayed by m, which took the client's
   old address 10.0.2.2: refused as a replay; with the address it names
   changed: refused, its MAC no longer checks; the server's record stays
   on 10.0.1.2;
5. m's version-1 UDP update naming 127.0.0.1 for an unconnected socket:
   refused (version 1 is not believed), the application sees m.
Then a connection opened while vcmp_auth is off has no key (as with a peer
that speaks only version 1): at opportunistic it moves by version 1 beside
the keyed one, which moves by version 2; at required it does not move.
Bytes are intact at both ends, and no packet of the victim reached m."""
import os
import socket
import struct
import threading
from vnattest import *

UPD, SUS = 20, 22


def vcmp(ns, src, addr, payload, reply_len):
    """Sends `payload` to vnatd at `addr` from `src` in namespace `ns`;
    returns the reply (`reply_len` bytes, or what came before the close)."""
    with netns(ns):
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(20)
        s.connect((addr, 2031))
    try:
        s.sendall(payload)
        return recv_exactly(s, reply_len)
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        s.close()


def refused2(reply):
    """Whether a version-2 reply is an unauthenticated refusal."""
    return len(reply) == 72 and reply[:6] == bytes([2, reply[1], 0, 72, 1, 0]) and reply[8:12] == bytes(4)


insmod()
check_eq(read_knob("vcmp_auth"), "required", "vcmp_auth is required by default")
topo = Topology()
add_netns("m")
veth("m", "10.0.7.2", "rtr", "10.0.7.1")
sh("ip -n m route add default via 10.0.7.1")
srv, c, a = topo.connection()
cli_addr, srv_addr = topo.client_addr(), topo.server_addr()
cport = c.getsockname()[1]
victim = ((srv_addr, 5000), (cli_addr, cport))
stats("m")
mcap = Capture("m", "tcp port 5000")

# 1. The key.
wait_keyed("cli", "srv", timeout=10)
check_eq((stats("cli")["keys_established"], stats("srv")["keys_established"]), (1, 1),
         "one key agreed, counted on each end")


def srv_row():
    rows = [d for d in ynl_family("srv").dump("conn-get", {})
            if (d["remote-addr"], d["remote-port"]) == (cli_addr, cport)]
    return rows[0] if len(rows) == 1 else None


# 2. Forgeries from the client's own address.
b = stats("srv")
got = vcmp("cli", cli_addr, srv_addr, vcmp1(1, *victim, (cli_addr, cport)), 20)
check_eq(got, bytes([1, 2]) + bytes(18), "a version-1 update from the client's address: refused")
check_eq(stats("srv")["vcmp_v1_refused"], b["vcmp_v1_refused"] + 1, "counted: version 1 for a keyed connection")
forged = vcmp2_update(UPD, int.from_bytes(os.urandom(4), "big"), 1 << 40, *victim, (cli_addr, cport))
got = vcmp("cli", cli_addr, srv_addr, forged, 72)
check(refused2(got), f"a version-2 update with a guessed key id and MAC: refused ({got.hex()})")
got = vcmp("cli", cli_addr, srv_addr, vcmp2_update(SUS, 1, 1 << 40, *victim, (cli_addr, cport)), 72)
check(refused2(got), f"a version-2 suspension with a guessed key id and MAC: refused ({got.hex()})")
s = stats("srv")
check_eq(s["vcmp_auth_failed"], b["vcmp_auth_failed"] + 2, "both counted as failing authentication")
check_eq((s["updates_accepted"], s["suspends_accepted"]), (b["updates_accepted"], b["suspends_accepted"]),
         "nothing accepted")
row = srv_row()
check(row is not None and row["helper"] == "none" and row["peer-suspended"] == 0
      and row["remote-phys-addr"] == cli_addr, f"no helper at work, the record unmoved: {row}")

# 3. The real move, in version 2.
vcap = Capture("rtr", "tcp port 2031", snaplen=512)
b = stats("cli")
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == b["migrations_completed"] + 1, "the client moved", timeout=30)
vcap.stop()
new = topo.client_addr()
seen = vcap.tcp_payloads()
ups = [p for src, dst, p in seen if dst == f"{srv_addr}:2031" and p[:4] == bytes([2, UPD, 0, 90])]
check(len(ups) >= 1, f"the router saw the update in version 2 ({len(ups)} segment(s); "
      f"all: {[(s_, d_, p[:8].hex()) for s_, d_, p in seen][:8]})")
row = srv_row()
check(row is not None and row["remote-phys-addr"] == new, f"the server follows the client to {new}: {row}")
exchange(c, a, "after the move")

# 4. Replays.
captured = ups[0] if ups else bytes(90)
b = stats("srv")
got = vcmp("cli", new, srv_addr, captured, 72)
check(refused2(got), "the captured update, replayed from the client's new address: refused")
check_eq(stats("srv")["vcmp_replayed"], b["vcmp_replayed"] + 1, "counted as a replay")
b = stats("cli")
topo.attach_client(1)
wait_for(lambda: stats("cli")["migrations_completed"] == b["migrations_completed"] + 1, "the client moved home",
         timeout=30)
# m takes the client's old address 10.0.2.2 (the router sends it m's way).
sh(f"ip -n m addr add {new}/32 dev vm")
sh(f"ip -n rtr route add {new}/32 via 10.0.7.2")
b = stats("srv")
got = vcmp("m", new, srv_addr, captured, 72)
check(refused2(got), f"replayed after the move home, by m from {new}: refused")
check_eq(stats("srv")["vcmp_replayed"], b["vcmp_replayed"] + 1, "counted as a replay")
# L_Phy is bytes 56-73 (after the header, proto, key id, counter, R_Vir, L_Vir).
changed = captured[:56] + vcmp2_addr("10.0.7.2", cport) + captured[74:]
got = vcmp("m", "10.0.7.2", srv_addr, changed, 72)
check(refused2(got), "the captured update naming m's 10.0.7.2 instead, from there: refused")
s = stats("srv")
check_eq(s["vcmp_auth_failed"], b["vcmp_auth_failed"] + 1, "counted: its MAC does not check")
check_eq(s["updates_accepted"], b["updates_accepted"], "no update accepted")
row = srv_row()
check(row is not None and row["remote-phys-addr"] == cli_addr and row["state"] == "native",
      f"the server's record is home, native: {row}")
sh(f"ip -n rtr route del {new}/32 via 10.0.7.2")
sh(f"ip -n m addr del {new}/32 dev vm")

# 5. A UDP flow, forged in version 1.
with netns("srv"):
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("0.0.0.0", 53))
    dns.settimeout(10)
b = stats("srv")
got = vcmp("m", "10.0.7.2", srv_addr, vcmp1(3, (srv_addr, 53), ("127.0.0.1", 5353), ("10.0.7.2", 40000)), 20)
check_eq(got, bytes([1, 2]) + bytes(18), "a version-1 UDP update naming 127.0.0.1:5353: refused")
check_eq(stats("srv")["vcmp_v1_refused"], b["vcmp_v1_refused"] + 1, "counted: version 1 is not believed")
with netns("m"):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("10.0.7.2", 40000))
u.sendto(b"trust me", (srv_addr, 53))
check_eq(dns.recvfrom(100), (b"trust me", ("10.0.7.2", 40000)), "the application sees m's own address")
u.close()
dns.close()

# A connection without a key, as with a peer that speaks only version 1.
check_eq(write_knob("vcmp_auth", "off"), None, "vcmp_auth=off")
srv2 = tcp_listen("srv", "0.0.0.0", 5001)
c2 = tcp_connect("cli", srv_addr, 5001)
a2, _ = srv2.accept()
port2 = c2.getsockname()[1]
rows = [r for r in ynl_connection_rows("cli") + ynl_connection_rows("srv") if "5001" in (r["local"] + r["remote"])]
check(len(rows) == 2 and all(r["auth"] == "unkeyed" for r in rows), f"it has no key at either end: {rows}")
check_eq(write_knob("vcmp_auth", "opportunistic"), None, "vcmp_auth=opportunistic")
b, bs = stats("cli"), stats("srv")
topo.attach_client(3)
wait_for(lambda: stats("cli")["migrations_completed"] == b["migrations_completed"] + 2, "both moved", timeout=30)
s = stats("srv")
check_eq(s["updates_accepted"], bs["updates_accepted"] + 2, "the server took both updates")
check_eq(s["vcmp_v1_refused"], bs["vcmp_v1_refused"], "the keyed one did not go in version 1")
exchange(c, a, "the keyed connection at 10.0.3.2")
exchange(c2, a2, "the connection without a key at 10.0.3.2")
check_eq(write_knob("vcmp_auth", "required"), None, "vcmp_auth=required")
b = stats("cli")
topo.attach_client(2)
# Each connection's own record says how its move ended (the address's
# and the route's events may make two moves of it under load: counters
# would count both).
def moved_and_failed():
    rows = {r["remote"]: r for r in connection_rows("cli")}
    r1, r2 = rows.get(f"{srv_addr}:5000"), rows.get(f"{srv_addr}:5001")
    return (r1 is not None and r1["local_physical"].startswith("10.0.2.2:") and r1["vcmp_state"] == "idle"
            and r2 is not None and r2["vcmp_state"] == "failed")


if not wait_for(moved_and_failed, "at required the keyed connection moves and the other does not", timeout=30):
    log(f"client: {connection_rows('cli')}")
s = stats("cli")
log(f"client: migrations completed +{s['migrations_completed'] - b['migrations_completed']}, "
    f"failed +{s['migrations_failed'] - b['migrations_failed']}")
rows = {r["remote"]: r for r in connection_rows("cli")}
r2 = rows.get(f"{srv_addr}:5001")
check(r2 is not None and r2["vcmp_state"] == "failed" and r2["local_physical"].startswith("10.0.3.2:"),
      f"the connection without a key stays where it was: {r2}")
exchange(c, a, "the keyed connection at 10.0.2.2")
mcap.stop()
check_eq(mcap.count("tcp port 5000"), 0, "no packet of the victim reached m")
# The connection without a key is left at an address the client no longer
# has: its FIN could only be resent until TCP gives up (minutes), and the
# module stays in use meanwhile. Reset it instead.
for x in (c2, a2):
    x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
for x in (c, a, srv, c2, a2, srv2):
    x.close()
done()

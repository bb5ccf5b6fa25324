#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""VCMP fuzzing on the wire: 100,000 random and mutated messages at port
2031 of a host with a migrated, keyed connection.

    cli 10.0.1.2 -> 10.0.2.2 --- rtr --- srv 10.0.9.2   the live connection
                                  |                     (migrated, keyed)
                             m 10.0.7.2                 throws the messages

1. Clients that never read and clients that dribble a byte at a time:
   paused and closed as idle, counted.
2. 200 streams of 500 messages each, in random pieces: version-1 and
   version-2 updates and suspensions with valid headers and random fields,
   the live connection's tuple mixed with random ones, martian and local
   addresses, a version-2 stream that opens with HELLO and goes on with
   KEYs under a key nobody has, and captured version-2 updates with bytes
   flipped; a quarter of the streams end with a malformed message. Every
   request is answered, every refusal counted (updates, suspensions and
   key requests refused grow by exactly the requests sent), every stream
   that ends in garbage counted as malformed, nothing accepted.
3. The live connection carries bytes intact both ways, and moves again.
The kernel log has no splat (the harness checks every run)."""
import os
import random
import socket
import struct
import threading
import time
from vnattest import *

rng = random.Random(int.from_bytes(os.urandom(8), "big"))
MARTIANS = ["0.0.0.1", "127.0.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1", "10.0.9.255"]


def rand_addr():
    r = rng.random()
    if r < 0.3:
        return rng.choice(MARTIANS)
    if r < 0.5:
        return rng.choice([cli_old, cli_new, srv_addr, "10.0.7.2"])
    return socket.inet_ntoa(os.urandom(4))


def rand_port():
    return rng.choice([5000, cport, 0, 1, 65535, rng.randrange(65536)])


def endpoints():
    """R_Vir, L_Vir, L_Phy: the live tuple half of the time."""
    if rng.random() < 0.5:
        rv, lv = (srv_addr, 5000), (cli_old, cport)
    else:
        rv, lv = (rand_addr(), rand_port()), (rand_addr(), rand_port())
    lp = rng.choice([(cli_new, cport), (rand_addr(), rand_port()), ("10.0.7.2", cport)])
    # Zero fields make a message malformed; keep requests well-formed.
    fix = lambda e: (e[0] if e[0] != "0.0.0.0" else "10.0.0.1", e[1] or 1)
    return fix(rv), fix(lv), fix(lp)


def v1_request():
    """A well-formed version-1 update or suspension (commands 1, 3, 4, 5)."""
    cmd = rng.choice([1, 3, 4, 5])
    rv, lv, lp = endpoints()
    return vcmp1(cmd, rv, lv, lp), 20, cmd in (4, 5)


def v2_request():
    """A well-formed version-2 UPD or SUS under a key nobody has."""
    cmd = rng.choice([20, 22])
    rv, lv, lp = endpoints()
    key_id = rng.choice([0, 1, rng.getrandbits(32)])
    return vcmp2_update(cmd, key_id, rng.getrandbits(64), rv, lv, lp, proto=rng.choice([6, 17])), 72, cmd == 22


def key_request():
    rv, lv, _ = endpoints()
    return (struct.pack("!BBHB3x", 2, 18, 64, rng.choice([6, 17])) + vcmp2_addr(*rv) + vcmp2_addr(*lv)
            + os.urandom(4 + 16)), 46


def flipped(m):
    """`m` with one byte of its fields flipped (not the header: the message
    stays well-formed in length; its MAC no longer checks)."""
    b = bytearray(m)
    i = rng.randrange(12, len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def malformed():
    return rng.choice([
        bytes([1, 9]) + os.urandom(18),            # version 1, unknown command
        bytes([2, 30, 0, 40]) + os.urandom(36),    # version 2, unknown command
        bytes([2, 20, 0, 40]),                     # version 2, wrong length
        bytes([7]) + os.urandom(19),               # unknown version
        struct.pack("!BBH4s4s4sHH", 1, 1, 0, bytes(4), bytes(4), bytes(4), 0, 0),  # zero endpoints
        bytes([2, 17, 0, 40]) + os.urandom(36),    # a reply nobody asked for
    ])


def stream_plan(n):
    """`n` requests for one stream: (bytes, reply length, kind); maybe
    opened by HELLO and KEYs; maybe ending with garbage."""
    plan = []
    if rng.random() < 0.3:
        plan.append((bytes([2, 16, 0, 40, 2, 0, 0, 0]) + os.urandom(32), 40, "hello"))
        for _ in range(rng.randrange(1, 20)):
            m, r = key_request()
            plan.append((m, r, "key"))
    while len(plan) < n:
        r = rng.random()
        if r < 0.45:
            m, rl, sus = v1_request()
        elif r < 0.85:
            m, rl, sus = v2_request()
        else:
            m, rl, sus = v2_request()
            m = flipped(captured) if captured else m
            sus = m[1] == 22
        plan.append((m, rl, "sus" if sus else "upd"))
    return plan


def send_in_pieces(s, data):
    at = 0
    while at < len(data):
        n = rng.choice([1, 7, 20, 90, 512, 4096])
        s.sendall(data[at:at + n])
        at += n


insmod()
check_eq(write_knob("vcmp_max_refusals", "65535"), None, "vcmp_max_refusals=65535: a stream is not closed for refusals")
check_eq(write_knob("vcmp_idle_timeout_ms", "2000"), None, "vcmp_idle_timeout_ms=2000")
topo = Topology()
add_netns("m")
veth("m", "10.0.7.2", "rtr", "10.0.7.1")
sh("ip -n m route add default via 10.0.7.1")
srv, c, a = topo.connection()
cli_old, srv_addr = topo.client_addr(), topo.server_addr()
cport = c.getsockname()[1]
wait_keyed("cli", "srv")
vcap = Capture("rtr", "tcp port 2031", snaplen=512)
b = stats("cli")
topo.attach_client(2)
cli_new = topo.client_addr()
wait_for(lambda: stats("cli")["migrations_completed"] == b["migrations_completed"] + 1, "the client moved", timeout=30)
vcap.stop()
ups = [p for _, dst, p in vcap.tcp_payloads() if dst == f"{srv_addr}:2031" and p[:4] == bytes([2, 20, 0, 90])]
captured = ups[0] if ups else None
check(captured is not None, "a real version-2 update was captured, to mutate")
stats("m")


def vcmp_socket():
    with netns("m"):
        return socket.create_connection((srv_addr, 2031), timeout=30)


# 1. Never reading, dribbling.
b = stats("srv")
junk = b"".join(v1_request()[0] for _ in range(20000)) * 15   # 6 MB


def pour(h):
    """Sends junk until vnatd stops reading (the send times out) or lets go."""
    h.settimeout(5)
    at = 0
    try:
        while at < len(junk):
            at += h.send(junk[at:at + 65536])
    except OSError:
        pass


hogs = [vcmp_socket() for _ in range(2)]
pourers = [threading.Thread(target=pour, args=(h,)) for h in hogs]
for t in pourers:
    t.start()
dribblers = [vcmp_socket() for _ in range(2)]
for _ in range(5):
    for d in dribblers:
        try:
            d.send(bytes([2]))
        except OSError:
            pass
    time.sleep(0.5)
wait_for(lambda: stats("srv")["vcmp_reads_paused"] >= b["vcmp_reads_paused"] + 2, "clients that never read are paused",
         timeout=60)
wait_for(lambda: stats("srv")["vcmp_clients_idle_closed"] >= b["vcmp_clients_idle_closed"] + 2,
         "dribblers closed as idle", timeout=30)
for x in hogs + dribblers:
    x.close()
for t in pourers:
    t.join()


def vcmp_streams():
    """VCMP connections of srv's vnatd, as `ss` sees them."""
    return sh("ip netns exec srv ss -Htn state established '( sport = :2031 )'").strip()


# What they sent may still be read (and counted) until vnatd has let go.
wait_for(lambda: vcmp_streams() == "", "vnatd let go of them all", timeout=30)

# 2. The counted fuzz.
STREAMS, PER = 200, 500
b = stats("srv")
sent = {"upd": 0, "sus": 0, "key": 0, "hello": 0}
garbage_ends = 0
total = 0
t0 = time.monotonic()
for i in range(STREAMS):
    plan = stream_plan(PER)
    ends_bad = rng.random() < 0.25
    data = b"".join(m for m, _, _ in plan) + (malformed() if ends_bad else b"")
    want = sum(r for _, r, _ in plan)
    s = vcmp_socket()
    got = bytearray()
    def read_replies(s=s, want=want, got=got):
        try:
            got.extend(recv_exactly(s, want))
        except ConnectionResetError:
            pass   # closed for garbage while bytes were on their way

    reader = threading.Thread(target=read_replies)
    reader.start()
    try:
        send_in_pieces(s, data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    reader.join()
    s.close()
    # A stream that ends in garbage is closed at once: the replies of its
    # last round may not go out.
    if len(got) != want and not (ends_bad and len(got) < want):
        check(False, f"stream {i}: every request answered ({len(got)} of {want} bytes)")
    for _, _, k in plan:
        sent[k] += 1
    garbage_ends += ends_bad
    total += len(plan) + ends_bad
log(f"{total} messages on {STREAMS} streams in {time.monotonic() - t0:.0f} s: {sent}, {garbage_ends} garbage ends")
check(total >= 100_000, f"at least 100,000 messages ({total})")
wait_for(lambda: stats("srv")["vcmp_malformed"] == b["vcmp_malformed"] + garbage_ends,
         f"every garbage end counted as malformed ({garbage_ends})", timeout=30)
s = stats("srv")
check_eq(s["updates_refused"] - b["updates_refused"], sent["upd"], "every update refused and counted")
check_eq(s["suspends_refused"] - b["suspends_refused"], sent["sus"], "every suspension refused and counted")
check_eq(s["keys_refused"] - b["keys_refused"], sent["key"], "every key request refused and counted")
check_eq((s["updates_accepted"] - b["updates_accepted"], s["suspends_accepted"] - b["suspends_accepted"],
          s["keys_established"] - b["keys_established"]), (0, 0, 0), "nothing accepted")
log("srv stats: " + ", ".join(f"{k}={s[k] - b[k]}" for k in s if k.startswith(("vcmp", "keys")) and s[k] != b[k]))

# 3. The live connection.
exchange(c, a, "the live connection")
b = stats("cli")
topo.attach_client(3)
wait_for(lambda: stats("cli")["migrations_completed"] == b["migrations_completed"] + 1, "and it moves again",
         timeout=30)
c.sendall(b"still here")
check_eq(recv_exactly(a, 10), b"still here", "bytes after the move")
for x in (c, a, srv):
    x.close()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""NAT traversal: a laptop behind a home router that masquerades moves to
another NATed network in the middle of a transfer, and back.

    cli 192.168.1.2 --- nat1 198.51.100.2 ---+
     (c1)      |  masquerade (w1)            |
    nb 192.168.3.2  (a neighbour)            |
                                            rtr --- srv 10.0.9.2:5000
     (c2)      masquerade (w2)               |
    cli 192.168.2.2 --- nat2 203.0.113.2 ----+

The server knows the client by nat1's address (its virtual remote endpoint
is 198.51.100.2:port); the client knows itself as 192.168.1.2:port.
1. The key is agreed through the NAT: KEY names the client's end as the
   client has it; the server finds its end by the NAT's address, the
   stream's, with the same port, and tells the client how it names it.
   A neighbour behind nat1 uses the port of a client connection whose own
   KEY nat1 holds back: nat1 gives the neighbour's connection another
   port, and its KEY, which names the client's port, finds the client's
   connection at the server, whose ISN it does not have: refused, the
   client's connection is not keyed to the neighbour.
2. The client moves to nat2: its update (version 2, naming 192.168.2.2)
   comes from 203.0.113.2; the server believes the address it observes,
   with the named port, and validates that path before it sends there:
   `validating` until the client's packets arrive through nat2's new
   mapping, then `migrated` (paths_validated). The client's `resumed`
   event says where the server saw it. Bytes intact, no reset, and after
   the move the router sees the connection only at 203.0.113.2.
3. An authenticated update naming an address whose path does not answer:
   on a connection opened at nat2, the client moves home to nat1, which
   now drops the data connection's packets (not VCMP). The server stays
   `validating` and sends nothing to 198.51.100.2 while the client's
   packets die at nat1 (counted by nat1's rule); its packets keep going
   where they went. Once nat1 lets them pass, the path validates and every
   byte arrives."""
import os
import socket
from vnattest import *

SIZE = int(os.environ.get("VNAT_TRANSFER_MIB", "4")) << 20
SERVER = "10.0.9.2"
PUBLIC = {1: "198.51.100.2", 2: "203.0.113.2"}

insmod()
for ns in ("cli", "nb", "nat1", "nat2", "rtr", "srv"):
    add_netns(ns)
veth("srv", "10.0.9.2", "rtr", "10.0.9.1", name="s9")
ip_batch("srv", ["route add default via 10.0.9.1"])
set_sysctl("rtr", "net.ipv4.ip_forward", 1)
for n, wan in ((1, "198.51.100"), (2, "203.0.113")):
    nat = f"nat{n}"
    veth(nat, f"{wan}.2", "rtr", f"{wan}.1", name=f"w{n}")
    set_sysctl(nat, "net.ipv4.ip_forward", 1)
    sh(f"ip link add c{n} netns cli type veth peer name l{n} netns {nat}")
    ip_batch(nat, [f"route add default via {wan}.1", f"addr add 192.168.{n}.1/24 dev l{n}", f"link set l{n} up"])
    # The home router: everything from the home network leaves with its
    # address; a table `home` whose `gate` chain a test can close.
    sh(f"ip netns exec {nat} nft -f -", input=f"""
table ip home {{
    chain post {{ type nat hook postrouting priority srcnat; oifname "w{n}{nat}" masquerade; }}
    chain gate {{ type filter hook forward priority filter; }}
}}
""")


veth("nb", "192.168.3.2", "nat1", "192.168.3.1", name="n")
ip_batch("nb", ["route add default via 192.168.3.1"])


def attach(n, old=None):
    """The laptop joins home network `n` (leaving `old`): the old address
    goes away, the new one comes with its default route."""
    cmds = []
    if old:
        cmds += [f"addr del 192.168.{old}.2/24 dev c{old}", f"link set c{old} down"]
    cmds += [f"link set c{n} up", f"addr add 192.168.{n}.2/24 dev c{n}",
             f"route replace default via 192.168.{n}.1"]
    ip_batch("cli", cmds)


def move(n, old, what):
    """The laptop moves from home network `old` to `n`; returns once its
    vnatd's update was answered (`what`)."""
    before = stats("cli")["migrations_completed"]
    attach(n, old)
    wait_for(lambda: stats("cli")["migrations_completed"] > before, what, timeout=30)


def wait_connections(n, what):
    """Waits until the client and the server each have `n` connections."""
    wait_for(lambda: stats("cli")["connections"] == n and stats("srv")["connections"] == n, what)


def acked_unseen(cap, public):
    """The server's packets to `public` that acknowledge bytes the client
    never sent through it: a NAT there takes them for invalid, leaves them
    untranslated, and its own stack answers them with a reset."""
    out = sh(f"tcpdump -n -tt -S -r {cap.path} 'tcp port 5000' 2>/dev/null")
    sent, bad = None, []
    for line in out.splitlines():
        m = re.search(r"IP (\S+)\.\d+ > (\S+)\.\d+: Flags \[([^\]]*)\](?:, seq (\d+)(?::(\d+))?)?(?:, ack (\d+))?", line)
        if not m:
            continue
        src, dst, flags, a, b, ack = m.groups()
        if src == public and a is not None:
            end = int(b or a) + ("F" in flags) + ("S" in flags)
            if sent is None or 0 < (end - sent) % 2**32 < 2**31:
                sent = end
        elif dst == public and ack is not None and sent is not None:
            if 0 < (int(ack) - sent) % 2**32 < 2**31:
                bad.append(line)
    return bad


def server_row():
    rows = [r for r in connection_rows("srv") if r["local"] == f"{SERVER}:5000"]
    check_eq(len(rows), 1, "the server has the connection")
    return rows[0]


attach(1)
# Every reset of the data connections, on both sides of the NATs.
resets = [Capture(ns, "tcp port 5000 and tcp[tcpflags] & tcp-rst != 0") for ns in ("rtr", "nat1", "nat2")]
listener = tcp_listen("srv", "0.0.0.0", 5000)
c = tcp_connect("cli", SERVER, 5000)
a, _ = listener.accept()
port = c.getsockname()[1]
stats("cli"), stats("srv")
mon = Monitor("cli")

# 1. The key, through the NAT.
wait_keyed("cli", "srv")
row = server_row()
check_eq(row["remote"], f"{PUBLIC[1]}:{port}", "the server knows the client by nat1's address")
check_eq(connection_rows("cli")[0]["local"], f"192.168.1.2:{port}", "the client knows itself by its own address")

# The neighbour: the client's next connection from port 47000 cannot ask
# for its key (nat1 drops the client's VCMP); the neighbour connects from
# port 47000 too, which nat1 maps to another.
sh("ip netns exec nat1 nft add rule ip home gate ip saddr 192.168.1.2 tcp dport 2031 drop")
before_s = stats("srv")
with netns("cli"):
    victim = socket.socket()
    victim.bind(("0.0.0.0", 47000))
    victim.connect((SERVER, 5000))
va, _ = listener.accept()
with netns("nb"):
    mine = socket.socket()
    mine.bind(("0.0.0.0", 47000))
    mine.connect((SERVER, 5000))
ma, (_, mapped) = listener.accept()
check(mapped != 47000, f"nat1 gave the neighbour another port ({mapped})")
wait_for(lambda: stats("srv")["vcmp_auth_failed"] > before_s["vcmp_auth_failed"],
         "the server refused the neighbour's KEY naming port 47000 (not the connection's ISN)", timeout=30)
rows = {r["remote"]: r["auth"] for r in ynl_connection_rows("srv")}
check(rows.get(f"{PUBLIC[1]}:47000") != "keyed",
      f"the client's connection from port 47000 got no key from the neighbour's request: {rows}")
check_eq(stats("srv")["keys_established"], before_s["keys_established"], "no key granted meanwhile")
for x in (victim, va, mine, ma):
    x.close()
sh("ip netns exec nat1 nft flush chain ip home gate")
wait_connections(1, "the two connections are gone")
refused_so_far = stats("srv")["vcmp_auth_failed"]

# 2. The move to nat2 in the middle of a transfer.
whole = Capture("rtr", "tcp port 5000")
t = Transfer(c, a, SIZE, hold=0.6)
t.wait_progress(0.25)
before_s = stats("srv")
early = Capture("rtr", f"tcp port 5000 and host {PUBLIC[2]}")
# The server acknowledges at once, as an interactive one does: its answer
# to the client's first packet through nat2 leaves before vnatd can have
# changed anything, and shows whether the hook sends it the new way.
a.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
move(2, 1, "the client's update was answered")
seen = mon.until(lambda e: e["event"] == "resumed", "the client resumed")
reason = seen[-1].get("reason", "")
check(f"{PUBLIC[2]}:" in reason, f"the resumed event says where the server saw the update: {reason!r}")
wait_for(lambda: stats("srv")["paths_validated"] > before_s["paths_validated"],
         "the server saw the client's packets arrive through nat2 (path validated)", timeout=30)
row = server_row()
check_eq((row["state"], row["remote"], row["remote_physical"]),
         ("migrated", f"{PUBLIC[1]}:{port}", f"{PUBLIC[2]}:{port}"),
         "the server keeps the virtual endpoint and sends to nat2's address")
check(stats("srv")["updates_accepted"] > before_s["updates_accepted"], "the server accepted the update")
whole.stop()
bad = acked_unseen(whole, PUBLIC[1])
check(not bad, f"the server acknowledged nothing through nat1 that nat1 had not carried ({bad[:3]})")
early.stop()
came, went = early.first(f"src host {PUBLIC[2]}"), early.first(f"dst host {PUBLIC[2]}")
check(came is not None and went is not None and came < went,
      f"the server sent nothing through nat2 before the client's first packet came through it ({came} < {went})")
check_eq(early.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset through nat2 during the move")
cap = Capture("rtr", "tcp port 5000")
t.release()
t.wait_more(0.2)
cap.stop()
n_old, n_new = cap.count(f"host {PUBLIC[1]}"), cap.count(f"host {PUBLIC[2]}")
check(n_old == 0, f"the router saw no packet of {PUBLIC[1]} after the move ({n_old})")
check(n_new > 0, f"the router saw packets of {PUBLIC[2]} ({n_new})")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset on the wire")
t.join()

# 3. Home again, on a connection opened at nat2, through a gate that drops
# the data connection's packets.
c.close(); a.close()
wait_connections(0, "closing removes the connection on both ends")
c = tcp_connect("cli", SERVER, 5000)
a, _ = listener.accept()
port = c.getsockname()[1]
wait_keyed("cli", "srv")
check_eq(server_row()["remote"], f"{PUBLIC[2]}:{port}", "the server knows the new connection by nat2's address")
sh("ip netns exec nat1 nft add rule ip home gate tcp dport 5000 counter drop")
whole = Capture("rtr", "tcp port 5000")
t = Transfer(c, a, SIZE, hold=0.5)
t.wait_progress(0.2)
before_s = stats("srv")
cap = Capture("rtr", f"tcp port 5000 and host {PUBLIC[1]}")
move(1, 2, "the client's update was answered through nat1")
check_eq(server_row()["state"], "validating", "the server validates the path through nat1")
# Both ends have bytes to send again; the client's die at nat1.
t.release()


def dropped():
    out = sh("ip netns exec nat1 nft list chain ip home gate")
    m = re.search(r"counter packets (\d+)", out)
    return int(m.group(1)) if m else 0


wait_for(lambda: dropped() >= 3, "the client's packets die at nat1 (three of them)", timeout=60)
row = server_row()
check_eq((row["state"], row["remote_physical"]), ("validating", f"{PUBLIC[1]}:{port}"),
         "still validating while the path does not answer")
check_eq(stats("srv")["paths_validated"], before_s["paths_validated"], "no path validated meanwhile")
cap.stop()
to_nat1 = cap.count(f"src host {SERVER} and dst host {PUBLIC[1]}")
check_eq(to_nat1, 0, "the server sent nothing to the path that does not answer")
check(cap.count(f"src host {PUBLIC[1]}") == 0, "nor did anything of the client's get through")

a.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
sh("ip netns exec nat1 nft flush chain ip home gate")
wait_for(lambda: stats("srv")["paths_validated"] > before_s["paths_validated"],
         "once nat1 lets the client's packets through, the path validates", timeout=60)
whole.stop()
bad = acked_unseen(whole, PUBLIC[2])
check(not bad, f"the server acknowledged nothing through nat2 that nat2 had not carried ({bad[:3]})")
row = server_row()
check_eq((row["state"], row["remote"], row["remote_physical"]),
         ("migrated", f"{PUBLIC[2]}:{port}", f"{PUBLIC[1]}:{port}"),
         "the server keeps the virtual endpoint and sends to nat1's address")
t.join()
for cap in resets:
    cap.stop()
    seen = sh(f"tcpdump -n -tt -r {cap.path} 2>/dev/null")
    check(not seen.strip(), f"no reset of a data connection on the wire ({seen.strip()})")
for ns in ("cli", "srv"):
    s = stats(ns)
    log(f"{ns} stats: " + ", ".join(f"{k}={v}" for k, v in s.items() if v and not k.startswith("hook")))
check_eq((stats("srv")["vcmp_v1_refused"], stats("srv")["vcmp_auth_failed"]), (0, refused_so_far),
         "every update was version 2 and checked")
mon.stop()
c.close(); a.close(); listener.close()
wait_connections(0, "closing removes the connection on both ends")
done()

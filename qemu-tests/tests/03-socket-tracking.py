#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""connect, accept and close are recorded and forgotten, with the right
4-tuples and pids: blocking and non-blocking connect, accept and accept4,
IPv4 loopback and veth, close() and close by exit."""
import errno
import os
import select
import socket
from vnattest import *

insmod()
add_netns("cli")
add_netns("srv")
veth("cli", "10.9.0.1", "srv", "10.9.0.2")
me = os.getpid()

def pair(cli_ns, srv_ns, addr, nonblock=False, use_accept4=False):
    srv = tcp_listen(srv_ns, "0.0.0.0")
    port = srv.getsockname()[1]
    with netns(cli_ns):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if nonblock:
            c.setblocking(False)
            rc = c.connect_ex((addr, port))
            check(rc in (0, errno.EINPROGRESS), f"non-blocking connect returns EINPROGRESS ({rc})")
            # Recorded from the SYN on, before the handshake completes.
            lc = ep(c.getsockname())
            conns_now = connections(cli_ns)
            check(any(x[0] == lc and x[2] == me for x in conns_now),
                  "non-blocking connect recorded before the handshake completes")
            select.select([], [c], [], 10)
            check_eq(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0, "non-blocking connect completed")
            c.setblocking(True)
        else:
            c.connect((addr, port))
    if use_accept4:
        # Python's accept() is accept4(SOCK_CLOEXEC); here a non-blocking one.
        srv.setblocking(False)
        select.select([srv], [], [], 10)
    a, _ = srv.accept()
    srv.close()
    return c, a

def expect_pair(c, a, cli_ns, srv_ns, label, cpid=me, apid=me):
    lc, rc = ep(c.getsockname()), ep(c.getpeername())
    la, ra = ep(a.getsockname()), ep(a.getpeername())
    check((lc, rc, cpid, "connect") in connections(cli_ns), f"{label}: client side recorded as {lc} -> {rc} pid {cpid}")
    check((la, ra, apid, "accept") in connections(srv_ns), f"{label}: server side recorded as {la} -> {ra} pid {apid}")
    return (lc, rc), (la, ra)

def gone(ns, tup):
    return not any((x[0], x[1]) == tup for x in connections(ns))

for label, cli_ns, srv_ns, addr, nb, a4 in [
        ("veth blocking", "cli", "srv", "10.9.0.2", False, False),
        ("veth non-blocking connect and accept", "cli", "srv", "10.9.0.2", True, True),
        ("loopback blocking", "cli", "cli", "127.0.0.1", False, False),
        ("loopback non-blocking", "cli", "cli", "127.0.0.1", True, False)]:
    c, a = pair(cli_ns, srv_ns, addr, nb, a4)
    ct, at = expect_pair(c, a, cli_ns, srv_ns, label)
    c.sendall(b"ping"); check_eq(a.recv(4), b"ping", f"{label}: bytes flow")
    c.close()
    check(not gone(srv_ns, at), f"{label}: server record kept while its socket is open")
    a.close()
    # A connection ends when its FIN exchange is over (its translation, if
    # migrated, must last that long): a round trip after both closed.
    wait_for(lambda: gone(cli_ns, ct), f"{label}: client record forgotten after close()")
    wait_for(lambda: gone(srv_ns, at), f"{label}: server record forgotten after close()")

# A process that exits closes its sockets: the records go with it.
srv = tcp_listen("srv", "0.0.0.0")
port = srv.getsockname()[1]
to_parent, from_child = os.pipe()
to_child, from_parent = os.pipe()
pid = os.fork()
if pid == 0:
    with netns("cli"):
        s = socket.create_connection(("10.9.0.2", port))
    os.write(from_child, f"{ep(s.getsockname())}\n".encode())
    os.read(to_child, 1)  # until the parent has looked
    os._exit(0)           # with the socket still open
lc = os.read(to_parent, 100).decode().strip()
a, _ = srv.accept()
srv.close()
check((lc, f"10.9.0.2:{port}", pid, "connect") in connections("cli"),
      f"child process's connection recorded with its pid {pid}")
os.write(from_parent, b"x")
os.waitpid(pid, 0)
# The peer's side stays recorded until the peer closes it.
at = (ep(a.getsockname()), ep(a.getpeername()))
check(not gone("srv", at), "peer's record kept until the peer closes")
key = lambda r: (r["proto"], r["local"], r["remote"], r["pid"], r["origin"], r["state"])
check_same({key(r) for r in ynl_connection_rows("srv")}, {key(r) for r in connection_rows("srv")},
           "the kernel's ynl dump (conn-get) and vnatctl list say the same")
a.close()
wait_for(lambda: gone("cli", (lc, f"10.9.0.2:{port}")), "record of a process's socket forgotten after it exits")
wait_for(lambda: gone("srv", at), "and the peer's after it closes")
s = stats("cli")
log(f"cli stats: tracked {s['connections_tracked']} forgotten {s['connections_forgotten']} now {s['connections']}")
check_eq(s["connections"], 0, "no records left in cli")
check_eq(stats("srv")["connections"], 0, "no records left in srv")
done()

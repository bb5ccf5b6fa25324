#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A namespace deleted while the module is loaded, with tracked connections,
a VCMP client and traffic, takes its VNAT state with it; the others go on.
Records of closed connections never outlive them, even when the kprobe core
skips a close probe hit (a socket destroyed in softirq context while the
same CPU runs one of VNAT's probe handlers): such a record would hold the
socket, and the socket its namespace, for ever."""
from vnattest import *


def totals():
    out = {}
    with open(knob_path("counters")) as f:
        for line in f:
            k, v = line.split()
            out[k] = int(v)
    return out


def vnatd_threads():
    return int(sh("pgrep -x 'vnatd/[0-9]+' | wc -l"))


def unfinished(ns, port):
    """TCP sockets of `port` in a namespace whose close is not over (any state
    but TIME_WAIT, which holds no reference on its namespace)."""
    return sum(port in (lp, rp) and state != TCP_TIME_WAIT for lp, rp, state, _ in tcp_sockets(ns))


def churn(ns, addr, port, seconds):
    """Connections opened and closed from two threads at once for `seconds`:
    connect() runs the connect probe in process context while the peers' last
    ACKs destroy other sockets in softirq context, which is how close probe
    hits get skipped. Returns how many connections were made."""
    srv = tcp_listen(ns, addr, port)
    srv.settimeout(10)
    made = []
    stop = time.monotonic() + seconds

    def client():
        n = 0
        while time.monotonic() < stop:
            c = tcp_connect(ns, addr, port)
            c.close()
            n += 1
        made.append(n)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    accepted = 0
    while any(t.is_alive() for t in threads) or accepted < sum(made):
        try:
            a, _ = srv.accept()
        except socket.timeout:
            break
        a.close()
        accepted += 1
    for t in threads:
        t.join()
    srv.close()
    return sum(made)


insmod()
for ns in ("keep", "gone1", "gone2"):
    add_netns(ns)
veth("gone1", "10.5.0.1", "gone2", "10.5.0.2")
veth("keep", "10.6.0.1", "gone1", "10.6.0.2", name="w")
srv = tcp_listen("gone2", "0.0.0.0", 5000)
socks = [tcp_connect("gone1", "10.5.0.2", 5000) for _ in range(10)]
acc = [srv.accept()[0] for _ in socks]
# The VCMP client is in the namespace that stays: its connection is still
# open, at gone1's vnatd, when gone1 goes.
vc = tcp_connect("keep", "10.6.0.2", 2031)
wait_for(lambda: stats("gone1")["vcmp_clients_accepted"] == 1, "VCMP client accepted in gone1")
check_eq(stats("gone1")["connections"], 10, "10 connections tracked in gone1")
# Sockets keep their namespace alive; close them, then delete both namespaces
# once every close is over. Deleted sooner, gone1 may go first, with its veth
# and the last ACKs queued on it: gone2's sockets would then resend their FIN
# into nothing for 100 s (tcp_orphan_retries) before gone2 could go.
for s in socks + acc + [srv]:
    s.close()
wait_for(lambda: unfinished("gone1", 5000) + unfinished("gone2", 5000) == 0,
         "the ten connections' closes are over")
del_netns("gone2")
del_netns("gone1")
# Deletion runs in one workqueue for all namespaces (cleanup_net), after
# RCU grace periods and an rcu_barrier() that the emulated debug guest makes
# slow: 2 s when this test runs alone, 80 s once in make check, behind the
# namespaces the tests before it deleted. A namespace that is never freed
# fails this wait all the same.
t0 = time.monotonic()
wait_for(lambda: vnatd_threads() == 2, "vnatd threads of deleted namespaces stopped", timeout=300)
log(f"the deleted namespaces were freed after {time.monotonic() - t0:.0f} s")
# The VCMP client's peer went with gone1: it goes at once (a reset, sent
# nowhere).
vc.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
vc.close()
check(2031 in listening_ports("keep"), "vnatd of the remaining namespace still listens")
srv = tcp_listen("keep", "127.0.0.1", 5001)
c = tcp_connect("keep", "127.0.0.1", 5001)
a, _ = srv.accept()
check_eq(len(connections("keep")), 2, "remaining namespace still tracks connections")
for s in (c, a, srv):
    s.close()
wait_for(lambda: not connections("keep"), "their records go when they close")

# Many short connections, in a namespace that stays and in one that goes.
before = totals()
n = churn("keep", "127.0.0.1", 5002, 4)
log(f"keep: {n} connections")
add_netns("gone3")
m = churn("gone3", "127.0.0.1", 5003, 4)
log(f"gone3: {m} connections")
check(n > 0 and m > 0, "connections were made")
wait_for(lambda: not connections("keep"), "no record outlives its connection (within 5s)", timeout=5)
del_netns("gone3")
wait_for(lambda: vnatd_threads() == 2, "the churned namespace, deleted, is freed", timeout=300)
after = totals()
log(f"probe hits skipped: {after['kprobes_missed'] - before['kprobes_missed']}, "
    f"records forgotten by vnatd for them: {after['connections_reaped'] - before['connections_reaped']}")
check_eq(after["connections_tracked"] - after["connections_forgotten"], 0,
         "every connection tracked since insmod was forgotten")
rmmod()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Roaming make-before-break (issue 14): the new network is up before the
old one goes.

    cli c1 10.0.1.2 ---- r1 ┐
        c2 10.0.2.2 ---- r2 ├ rtr ---- s9 srv 10.0.9.2:5000
        c3 10.0.3.2 ---- r3 ┘

Two connections to the server: a bulk transfer (8 MiB each way, held at
half until move 1b) and a paced echo (64 bytes every 20 ms, whose
echoes time the data gap of each move).

1. `migrate_on` `on-route-change`: the client brings up c2 with 10.0.2.2
   while on c1 (nothing moves: the route to the server still leaves from
   c1), then the default route moves to c2, the old address staying
   configured (Wi-Fi to LTE with both up). VNAT sees the route leave from
   another interface and moves both connections to 10.0.2.2. Then the
   router cuts network 1: nothing is lost, the echo's largest gap after
   the cut stays below a second (TCP's initial retransmission timeout, RFC
   6298; without the move the echo would stop for good), and the router
   sees no packet of 10.0.1.2 after the move. (While the move waits for the
   server's answer, the connections' packets keep their old form, source
   10.0.1.2, as Linux sends any packet of a socket bound to an address of
   another interface: the host still has that address.)
   1b. Again from there, the bulk transfer running: c3 comes up with
   10.0.3.2 and takes the default route, 10.0.2.2 staying: both move to
   10.0.3.2, and what the server sent to 10.0.2.2 before it heard of the
   move is still the connections' (it met no socket there and was answered
   with a reset before).
2. `migrate_on` `on-loss`: a second default route via network 2 (metric
   200, as DHCP on a second interface gives one) moves nothing, since the
   connections' address still works. Then the client leaves network 3 (its
   address goes): the host already reaches the server from 10.0.2.2, so the
   connections move there at once, with no new address to wait for
   (before, they waited for one forever).
Both transfers end with every byte intact and no reset.
"""
from vnattest import *

SIZE = 8 << 20


def moved_to(addr):
    rows = connection_rows("cli")
    return len(rows) == 2 and all(r["local_physical"].startswith(addr + ":") for r in rows)


insmod()
check_eq(write_knob("migrate_on", "on-route-change"), None, "migrate_on on-route-change")
topo = Topology()
t, pace, socks = topo.bulk_and_paced(SIZE)

# 1. Make-before-break.
before = stats("cli")
ip_batch("cli", ["link set c2 up", "addr add 10.0.2.2/24 dev c2"])
# Its routes (the subnet's, the local one) came: vnatd looked.
wait_for(lambda: stats("cli")["route_checks"] > before["route_checks"], "vnatd looked at the routes")
check(moved_to("10.0.1.2"), "a second network that the route does not use moves nothing")
check_eq(stats("cli")["updates_sent"], before["updates_sent"], "no update was sent")
switched = time.monotonic()
ip_batch("cli", ["route replace default via 10.0.2.1 dev c2"])
log("cli: default route via c2; 10.0.1.2 stays on c1")
wait_for(lambda: stats("cli")["migrations_completed"] >= before["migrations_completed"] + 2,
         "both connections moved", timeout=30)
check(moved_to("10.0.2.2"), f"both connections now leave from 10.0.2.2: {connection_rows('cli')}")
check_eq(sh("ip -n cli -4 -br addr show dev c1").split()[2:], ["10.0.1.2/24"],
         "the old address is still configured")
log(f"largest gap between echoes since the route moved: {pace.largest_gap(switched) * 1000:.0f} ms")
# Network 1 is cut at the router.
cap = Capture("rtr", "host 10.0.1.2 and tcp port 5000")
cut = time.monotonic()
ip_batch("rtr", ["link set r1 down"])
log("rtr: network 1 is cut")
n = len(pace.arrivals)
wait_for(lambda: len(pace.arrivals) > n + 25, "echoes go on after the cut")
gap = pace.largest_gap(cut)
log(f"largest gap between echoes since the cut: {gap * 1000:.0f} ms")
check(gap < 1.0, f"the echo's data gap stays below TCP's initial retransmission timeout ({gap:.3f} s < 1 s)")
cap.stop()
check_eq(cap.count("host 10.0.1.2"), 0, "the router sees no packet of 10.0.1.2 after the move")

# 1b. Again, from a moved connection, with the bulk transfer running: what
# the server sent to 10.0.2.2 before it heard of the move still arrives
# there (the address stays), and is the connections' (it found no socket
# and was answered with a reset before).
before = stats("cli")
t.release()
t.wait_more(0.05)
ip_batch("cli", ["link set c3 up", "addr add 10.0.3.2/24 dev c3",
                 "route replace default via 10.0.3.1 dev c3"])
log("cli: default route via c3, the transfer running; 10.0.2.2 stays on c2")
wait_for(lambda: stats("cli")["migrations_completed"] >= before["migrations_completed"] + 2,
         "both connections moved again", timeout=30)
check(moved_to("10.0.3.2"), f"both connections now leave from 10.0.3.2: {connection_rows('cli')}")
t.join()

# 2. On loss, to a network that was already up.
check_eq(write_knob("migrate_on", "on-loss"), None, "migrate_on on-loss")
before = stats("cli")
ip_batch("cli", ["route add default via 10.0.2.1 dev c2 metric 200"])
check_eq(sh("ip -n cli route show default").count("default"), 2, "two default routes")
n = len(pace.arrivals)
wait_for(lambda: len(pace.arrivals) > n + 10, "echoes go on with a second default route")
check_eq(stats("cli")["route_checks"], before["route_checks"], "with on-loss, route changes are not looked at")
check(moved_to("10.0.3.2"), "with on-loss, a second default route moves nothing")
check_eq(stats("cli")["updates_sent"], before["updates_sent"], "no update was sent")
left = time.monotonic()
ip_batch("cli", ["addr del 10.0.3.2/24 dev c3", "link set c3 down"])
log("cli: left network 3; 10.0.2.2 was still up")
wait_for(lambda: stats("cli")["migrations_completed"] >= before["migrations_completed"] + 2,
         "both connections moved to the address that was already there", timeout=30)
check(stats("cli")["route_checks"] > before["route_checks"], "the address's loss made vnatd look at the routes")
check(moved_to("10.0.2.2"), f"both connections now leave from 10.0.2.2: {connection_rows('cli')}")
n = len(pace.arrivals)
wait_for(lambda: len(pace.arrivals) > n + 25, "echoes go on after the move")
log(f"largest gap between echoes since the address went: {pace.largest_gap(left) * 1000:.0f} ms")
pace.finish()
check_eq(stats("cli")["migrations_failed"], 0, "no migration failed")
for s in socks:
    s.close()
done()

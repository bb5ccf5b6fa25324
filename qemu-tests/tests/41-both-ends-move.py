#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Both ends of a connection move at nearly the same time (paper 3.4.2
leaves it open; issue 14).

    cli c1 10.0.1.2 -- r1 ┐         ┌ r9  -- s9  10.0.9.2  srv :5000
        c2 10.0.2.2 -- r2 ├── rtr ──┤ r10 -- s10 10.0.10.2
        c3 10.0.3.2 -- r3 ┘         └ r11 -- s11 10.0.11.2

Two connections: a transfer (4 MiB each way, held at half until part 2)
and a paced echo (64 bytes every 20 ms). `migrate_on` `on-route-change`.
The moves of both ends are started within microseconds of each other (two
`ip` batches released at once, within 100 ms), so that each end's update
goes to where the other end was (the router sees it).

1. The client roams make-before-break (10.0.2.2 is up; the default route
   moves to c2, 10.0.1.2 stays) while the server breaks (10.0.9.2 goes,
   10.0.10.2 comes). The client's update goes to 10.0.9.2, which is gone;
   the server's reaches the client at 10.0.1.2, which still works. The
   client takes it, and sends its own again at once to 10.0.10.2: both
   moves complete without a retry (before, the client's update would have
   gone on to 10.0.9.2 until `resume_deadline_s`, and then the move would
   have been undone). How long they took is logged, not checked: under
   a busy host's TCG it varies, and the retries show what it would
   measure. Then
   the router cuts network 1: the echo goes on.
2. The other way round: the client breaks (10.0.2.2 goes, 10.0.3.2
   comes) while the server roams make-before-break (10.0.11.2 is up, the
   default route moves to s11, 10.0.10.2 stays); then network 10 is cut.
Both transfers end intact, no reset, no move failed or retried, and the
router sees no packet of the connections to or from an address an end
left once the moves are over.

When both ends break at once, no update can arrive: neither knows where
the other went, and only a third host both can reach could tell them
(README, Limitations). Not tested: it cannot work.
"""
from vnattest import *

SIZE = 4 << 20
SYN = "tcp dst port 2031 and tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0"


def both_at(cli_addr, srv_addr):
    """Whether both ends' records say the connections go between
    `cli_addr` and `srv_addr`, moves over."""
    rc, rs = connection_rows("cli"), connection_rows("srv")
    return len(rc) == 2 and len(rs) == 2 and \
        all(r["state"] == "migrated" and r["local_physical"].startswith(cli_addr + ":") and
            r["remote_physical"].startswith(srv_addr + ":") for r in rc) and \
        all(r["state"] == "migrated" and r["local_physical"].startswith(srv_addr + ":") and
            r["remote_physical"].startswith(cli_addr + ":") for r in rs)


def both_move(cli, srv, cli_to, srv_to, cli_from, srv_from):
    """Runs the two ends' moves at once; checks that they were made within
    100 ms, that the updates crossed and that both moves completed, none
    retried; returns when the moves were started (monotonic)."""
    cap = Capture("rtr", SYN)
    before = stats("cli"), stats("srv")
    mon_cli.drain()
    at, spread = at_once(("cli", cli), ("srv", srv))
    check(spread < 0.1, f"both moves were made within 100 ms of each other ({spread * 1000:.1f} ms)")
    wait_for(lambda: both_at(cli_to, srv_to), f"both ends moved: cli {cli_to}, srv {srv_to}", timeout=30)
    took = time.monotonic() - at
    cap.stop()
    c_first = cap.first(f"src host {cli_to}")
    s_first = cap.first(f"src host {srv_to}")
    log(f"first updates from the new addresses on the router: cli {c_first}, srv {s_first}")
    crossed = [cap.count(f"src host {cli_to} and dst host {srv_from}") > 0,
               cap.count(f"src host {srv_to} and dst host {cli_from}") > 0]
    log(f"the client's first update went to {srv_from}: {crossed[0]}; the server's to {cli_from}: {crossed[1]}")
    check(any(crossed), "the updates crossed: one at least went to where the other end was")
    log(f"both moves completed {took:.1f} s after they were made")
    after = stats("cli"), stats("srv")
    for ns, b, a in zip(("cli", "srv"), before, after):
        check_eq(a["migrations_completed"] - b["migrations_completed"], 2, f"{ns}: both its connections moved")
        check_eq(a["migrations_failed"] - b["migrations_failed"], 0, f"{ns}: no move failed")
    check(mon_cli.until(lambda e: e["event"] == "retrying", "", 0.5, must=False) is None,
          "the client's moves never retried")
    return at


def cut(link, net, left, at, meanwhile=None):
    """After the moves (made at `at`): the router cuts network `net` (its
    interface `link`); the echo goes on, and (while `meanwhile` runs, too)
    the router sees no packet of the addresses `left` that the ends left."""
    log(f"largest gap between echoes since the moves: {pace.largest_gap(at) * 1000:.0f} ms")
    cap = Capture("rtr", "tcp port 5000")
    ip_batch("rtr", [f"link set {link} down"])
    log(f"rtr: network {net} is cut")
    pace.wait_more(25, "echoes go on after the cut")
    if meanwhile:
        meanwhile()
    cap.stop()
    check_eq(cap.count(" or ".join(f"host {h}" for h in left)), 0,
             f"the router sees no packet of {' or '.join(left)} after the moves")


insmod()
check_eq(write_knob("migrate_on", "on-route-change"), None, "migrate_on on-route-change")
topo = Topology()
mon_cli = Monitor("cli")
t, pace, socks = topo.bulk_and_paced(SIZE)

# 1. The client makes before it breaks; the server breaks.
ip_batch("cli", ["link set c2 up", "addr add 10.0.2.2/24 dev c2"])
at = both_move(["route replace default via 10.0.2.1 dev c2"],
               ["addr del 10.0.9.2/24 dev s9", "link set s9 down", "link set s10 up",
                "addr add 10.0.10.2/24 dev s10", "route replace default via 10.0.10.1"],
               "10.0.2.2", "10.0.10.2", "10.0.1.2", "10.0.9.2")
log("cli: default route via c2, 10.0.1.2 stays; srv: 10.0.9.2 went, 10.0.10.2 came")
cut("r1", 1, ("10.0.1.2", "10.0.9.2"), at)

# 2. The client breaks; the server makes before it breaks.
ip_batch("srv", ["link set s11 up", "addr add 10.0.11.2/24 dev s11"])
t.release()
t.wait_more(0.05)
at = both_move(["addr del 10.0.2.2/24 dev c2", "link set c2 down", "link set c3 up",
                "addr add 10.0.3.2/24 dev c3", "route replace default via 10.0.3.1"],
               ["route replace default via 10.0.11.1 dev s11"],
               "10.0.3.2", "10.0.11.2", "10.0.2.2", "10.0.10.2")
log("cli: 10.0.2.2 went, 10.0.3.2 came; srv: default route via s11, 10.0.10.2 stays")
cut("r10", 10, ("10.0.2.2", "10.0.10.2"), at, meanwhile=t.join)
pace.finish()
mon_cli.stop()
for s in socks:
    s.close()
done()

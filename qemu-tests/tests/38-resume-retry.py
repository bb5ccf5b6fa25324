#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A move into a network that is not ready yet (issue 14): the client's new
network drops everything for 20 s, as a captive portal does before its
page is accepted (or a slow DHCP, or a peer briefly unreachable). The
paper's vnatd gave up after its retries, about 6 s, and the connection
stayed where it was, broken. Now the move keeps retrying with backoff
until `resume_deadline_s`:

    cli (10.0.1.2 -> 10.0.2.2) --- rtr [forward: drop r2 <-> *] --- srv 10.0.9.2

1. Captive portal: the client joins subnet 2 while the router drops all
   it forwards from and to r2; the move's state becomes `retrying` (an
   event says so) once the paper's retries are over, 6 s or more after
   the move, and the dump says when the next attempt comes; 20 s after the move the router lets subnet 2 through, and
   the move completes within one retry interval (at most 10 s, plus the
   attempt itself): the transfer goes on, 2 MiB each way intact, no reset.
2. Deadline: with `resume_deadline_s` 10, the client joins subnet 3, whose
   traffic the router drops for good: both connections (the first one and
   one opened at subnet 2) fail with an event no sooner than 10 s after the
   move, their records show `failed`, and they go when their sockets close.
   Meanwhile, what the application writes is held back: subnet 3 never
   carries the addresses the client had before (10.0.1.2, its virtual
   address, is what the packets carry until the peer answers).
"""
import struct
from vnattest import *


insmod()
check_eq(write_knob("resume_deadline_s", "120"), None, "resume_deadline_s 120")
topo = Topology()
srv, c, a = topo.connection()
mon = Monitor("cli")
t = Transfer(c, a, 2 << 20, hold=0.5)
t.wait_progress(0.25)
wait_keyed("cli", "srv")

# 1. The captive portal.
portal_close("r2")
before = stats("cli")
moved = time.monotonic()
topo.attach_client(2)
log("cli joined subnet 2; rtr drops what subnet 2 sends or gets")
mon.until(lambda e: e["event"] == "retrying", "the move's update is retrying", timeout=30)
retrying_after = time.monotonic() - moved
check(retrying_after >= 6, f"retrying past the paper's retries ({retrying_after:.1f} s after the move)")
rows = connection_rows("cli")
check(len(rows) == 1 and rows[0]["vcmp_state"] == "retrying" and rows[0]["state"] == "resuming",
      f"the record says retrying: {rows}")
# ... and when it tries again: within the longest spacing (8 s, jittered
# up to 10 s) of the attempt that is under way.
rc, out, _ = ctl("cli", "list", "--json")
nexts = [r.get("vcmp-next-ms") for r in json.loads(out)] if rc == 0 else []
check(len(nexts) == 1 and isinstance(nexts[0], int) and 0 <= nexts[0] <= 10_000,
      f"the dump says when the next attempt comes: vcmp-next-ms {nexts}")
rc, out, _ = ctl("cli", "list")
check(rc == 0 and "resuming, retry in " in out, f"vnatctl list says it too: {out!r}")
check_eq(stats("cli")["migrations_failed"], before["migrations_failed"], "no migration failed")
# The portal's page is accepted 20 s after the move.
time.sleep(max(0.0, 20 - (time.monotonic() - moved)))
portal_open()
opened = time.monotonic()
log(f"rtr lets subnet 2 through, {opened - moved:.1f} s after the move")
wait_for(lambda: stats("cli")["migrations_completed"] > before["migrations_completed"],
         "the move completes within one retry interval of the portal opening", timeout=12)
log(f"resumed {time.monotonic() - opened:.1f} s after the portal opened")
cap = Capture("rtr", "tcp port 5000")
t.release()
t.join()
cap.stop()
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset on the wire")
check_eq(cap.count("host 10.0.1.2"), 0, "the router sees no packet of the old address")
rows = connection_rows("cli")
check(len(rows) == 1 and rows[0]["state"] == "migrated" and rows[0]["local_physical"].startswith("10.0.2.2:"),
      f"migrated to 10.0.2.2: {rows}")

# 2. The deadline.
c2 = tcp_connect("cli", topo.server_addr(), 5000)
a2, _ = srv.accept()
wait_keyed("cli", "srv")
check_eq(write_knob("resume_deadline_s", "10"), None, "resume_deadline_s 10")
portal_close("r3")
mon.drain()
before = stats("cli")
# What reaches subnet 3 from the client while its moves wait (the router
# sees it arrive on r3, and then drops it).
cap = Capture("rtr", "host 10.0.1.2 or host 10.0.2.2", iface="r3")
moved = time.monotonic()
topo.attach_client(3)
log("cli joined subnet 3, which rtr never lets through")
mon.until(lambda e: e["event"] == "resuming", "the move began", timeout=30)
# The application writes while the move waits; what TCP sends, and sends
# again, carries the virtual 10.0.1.2, an address the host no longer has.
c2.send(b"written while the move waits\n")
mon.until(lambda e: e["event"] == "retrying", "the moves are retrying", timeout=30)
cap.stop()
check_eq(cap.count("host 10.0.1.2 or host 10.0.2.2"), 0,
         "subnet 3 never carried an address the client no longer has")
check(stats("cli")["resuming_dropped_packets"] > before["resuming_dropped_packets"],
      "what the connection sent meanwhile was held back, counted")
failed = []
for _ in range(2):
    ev = mon.until(lambda e: e["event"] == "failed", "a move failed", timeout=40)
    failed.append(time.monotonic() - moved)
    if ev:
        log(f"failed: {ev[-1].get('reason')}")
check(min(failed) >= 10, f"no move failed before the deadline (after {min(failed):.1f} s)")
check(max(failed) <= 10 + 10 + 5, f"both failed within a retry interval after it ({max(failed):.1f} s)")
check_eq(stats("cli")["migrations_failed"], before["migrations_failed"] + 2, "two migrations failed")
rows = connection_rows("cli")
check(len(rows) == 2 and all(r["vcmp_state"] == "failed" for r in rows), f"both records say failed: {rows}")
# Their sockets close (with a reset: the peer is unreachable) and the records go.
for s in (c, c2):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
wait_for(lambda: stats("cli")["connections"] == 0, "the failed connections' records go with their sockets")
portal_open()
check_eq(write_knob("resume_deadline_s", "120"), None, "resume_deadline_s back to 120")
mon.stop()
a.close(); a2.close(); srv.close()
done()

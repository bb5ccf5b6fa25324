#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Back home while a move still retries (issue 14): the laptop joins a
network that lets nothing through (a captive portal), and goes back to the
network it came from before the move could complete.

    cli (10.0.1.2 -> 10.0.2.2 -> 10.0.1.2) --- rtr [forward: drop r2 <-> *] --- srv 10.0.9.2:5000

The client joins subnet 2 while the router drops all it forwards from and
to r2: its move's update cannot reach the server, and retries (an event
says so, past the paper's retries). Then the client leaves subnet 2 and
comes back to subnet 1 with its old address: the connections are native
again within a few seconds (the server, which never heard of 10.0.2.2,
agrees at once), not when the retries to the server from 10.0.2.2 would
have ended, at `resume_deadline_s`. The transfer (2 MiB each way, held at
half until then) and a paced echo go on intact, no move failed, and the
router never forwarded a packet of subnet 2.
"""
from vnattest import *


insmod()
check_eq(write_knob("resume_deadline_s", "120"), None, "resume_deadline_s 120")
topo = Topology()
mon = Monitor("cli")
t, pace, socks = topo.bulk_and_paced(2 << 20, pace_timeout=120)

portal_close("r2")
before = stats("cli")
tried = Capture("rtr", "src host 10.0.2.2", iface="r2")
heard = Capture("srv", "host 10.0.2.2")
topo.attach_client(2)
log("cli joined subnet 2; rtr drops what subnet 2 sends or gets")
mon.until(lambda e: e["event"] == "retrying", "the move's update is retrying", timeout=30)
rows = connection_rows("cli")
check(len(rows) == 2 and all(r["state"] == "resuming" and r["vcmp_state"] == "retrying" for r in rows),
      f"both connections are resuming, retrying: {rows}")

home = time.monotonic()
topo.attach_client(1)
log("cli is back on subnet 1 with 10.0.1.2")
wait_for(lambda: [r["state"] for r in connection_rows("cli")] == ["native", "native"],
         "the client's connections are native again", timeout=30)
took = time.monotonic() - home
check(took < 5, f"native again within 5 s of coming home ({took:.1f} s; the retries would have gone on to 120 s)")
check(all(r["state"] == "native" for r in connection_rows("srv")), "the server's records are native")
pace.wait_more(25, "echoes go on at home")
log(f"largest gap between echoes since coming home: {pace.largest_gap(home) * 1000:.0f} ms")
t.join()
pace.finish()
after = stats("cli")
check_eq(after["migrations_failed"] - before["migrations_failed"], 0, "no move failed")
tried.stop()
heard.stop()
check(tried.count("tcp dst port 2031") > 0, "the client sent its update from subnet 2")
check_eq(heard.count("ip"), 0, "the server never got a packet of subnet 2 (the portal let nothing through)")
mon.stop()
for s in socks:
    s.close()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""iperf3 --bidir, unmodified (Debian's iperf3), while the client moves:

    cli (10.0.1.2 -> 10.0.2.2) --- rtr --- srv 10.0.9.2: iperf3 -s on [::]:5201

A test of 16 s at 2 Mbit/s each way: the control connection and two data
connections, one each way. Four seconds in, the client leaves its network
and joins another. Asserted: iperf3 exits 0 and its JSON report has no
error, every one-second interval of both streams carried data (none went
empty across the move), the server's vnatd maps all three connections to
the new address, and the router sees only the new address from then on
until the end of the test (when iperf3's server resets the data
connections it has not read to the end, with or without VNAT).
iperf3's server listens where it does by default, on [::] (IPV6_V6ONLY
off): its three connections are IPv4 ones on AF_INET6 sockets."""
import json
from vnattest import *
from apps import Server, popen

insmod()
topo = Topology()
server = Server("srv", ["iperf3", "-s", "-1"], 5201, "iperf3")
ynl_connection_rows("cli"), ynl_connection_rows("srv")
client = popen("cli", ["iperf3", "-c", topo.server_addr(), "--bidir", "-t", "16", "-b", "2M", "-J"])
wait_for(lambda: len(ynl_connection_rows("srv")) == 3, "the server records the three connections", 30)
wait_keyed("cli", "srv", timeout=30)
old = topo.client_addr()
topo.attach_client(2)
new = topo.client_addr()
wait_mapped("srv", new)
cap = Capture("rtr", "tcp port 5201")
try:
    out, err = client.communicate(timeout=90)
except subprocess.TimeoutExpired:
    client.kill()
    out, err = client.communicate()
cap.stop()
check_eq((client.returncode, err), (0, b""), "iperf3 exits 0 with nothing on standard error")
report = json.loads(out) if out else {}
check_eq(report.get("error"), None, "the JSON report has no error")
intervals = [[s["bytes"] for s in iv["streams"]] for iv in report.get("intervals", [])]
check(len(intervals) >= 15 and all(len(iv) == 2 and min(iv) > 0 for iv in intervals),
      f"every interval of both streams carried data: {intervals}")
check(cap.count(f"host {new}") > 0, f"router saw {new}")
check_eq(cap.count(f"host {old}"), 0, f"router packets of {old} after the move settled")
server.stop()
done()

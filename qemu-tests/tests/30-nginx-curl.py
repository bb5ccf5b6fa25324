#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""nginx with curl, unmodified (Debian's packages), while the client moves
(paper 5.5):

    cli (10.0.1.2 -> 10.0.2.2) --- rtr --- srv (10.0.9.2: nginx :80)

curl downloads a 2 MiB file that nginx sends at 64 KiB/s (limit_rate).
Once curl has a quarter of the file and the connection has its key, the
client leaves its network and joins another. Asserted: part of the file
was still to come when the server had mapped the connection to the new
address (the move was during the download), curl exits 0 with nothing on
standard error, the SHA-256 are equal, and the router sees only the new
address and no reset after the move."""
import hashlib
import os
from vnattest import *
from apps import Nginx, finished, popen, workdir

SIZE = 2 << 20

insmod()
topo = Topology()
www = workdir("www")
blob = os.urandom(SIZE)
with open(f"{www}/blob", "wb") as f:
    f.write(blob)
nginx = Nginx("srv", www, "64k")
server, old = topo.server_addr(), topo.client_addr()
got = f"{workdir('curl')}/blob"
# The first dump of a namespace parses the family's spec (seconds under
# TCG): done now, not while the download runs.
ynl_connection_rows("cli"), ynl_connection_rows("srv")

curl = popen("cli", ["curl", "-sS", "-o", got, f"http://{server}/blob"])


def size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


wait_for(lambda: len(ynl_connection_rows("srv")) == 1, "the server records curl's connection", 30)
wait_keyed("cli", "srv", timeout=30)
wait_for(lambda: size(got) >= SIZE // 4, "curl has a quarter of the file", 60)
log(f"curl has {size(got) >> 10} KiB: the client moves")
topo.attach_client(2)
new = topo.client_addr()
wait_mapped("srv", new)
left = SIZE - size(got)
check(left > 0, f"part of the file was still to come after the move ({left} bytes)")
cap = Capture("rtr", "tcp port 80")
finished(curl, "curl", timeout=120)
cap.stop()
with open(got, "rb") as f:
    check_eq(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(blob).hexdigest(), "curl: SHA-256 of the file")
check(cap.count(f"host {new}") > 0, f"router saw {new}")
check_eq(cap.count(f"host {old}"), 0, f"router packets of {old} after the move settled")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "resets on the wire")
nginx.stop()
done()

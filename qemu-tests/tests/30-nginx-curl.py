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
import os
from vnattest import *
from apps import Nginx, download_across_move, workdir

SIZE = 2 << 20

insmod()
topo = Topology()
www = workdir("www")
blob = os.urandom(SIZE)
with open(f"{www}/blob", "wb") as f:
    f.write(blob)
nginx = Nginx("srv", www, "64k")
# The first dump of a namespace parses the family's spec (seconds under
# TCG): done now, not while the download runs.
ynl_connection_rows("cli"), ynl_connection_rows("srv")
download_across_move(topo, f"http://{topo.server_addr()}/blob", blob, 2, "http", capture="tcp port 80")
nginx.stop()
done()

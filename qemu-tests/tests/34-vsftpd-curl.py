#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""FTP, unmodified (Debian's vsftpd and curl), while the client moves in the
middle of a transfer, in passive and in active mode (paper 5.5):

    cli (10.0.1.2 -> 10.0.2.2 -> 10.0.3.2) --- rtr --- srv 10.0.9.2: vsftpd :21

An FTP session is two connections: the control connection, idle during a
transfer, and a data connection, which the client opens to the server in
passive mode and the server opens to the client in active mode (PORT). curl
downloads a 1 MiB file that vsftpd sends at 64 KiB/s; once a quarter has
come, the client moves: both connections move with it. Asserted, for each
mode: part of the file was still to come when the server had mapped the
client's new address, curl exits 0 with nothing on standard error, the
SHA-256 are equal, the router sees only the new address after the move and
no reset.

After a move, a transfer that opens a new data connection does not work
yet: the addresses FTP carries in its payload are the virtual ones, and
VNAT does not hide the new location from the application (see the README,
"Real applications")."""
import os
from vnattest import *
from apps import Vsftpd, download_across_move, workdir

SIZE = 1 << 20

insmod()
topo = Topology()
root = workdir("ftp")
os.chmod(root, 0o755)
blob = os.urandom(SIZE)
with open(f"{root}/blob", "wb") as f:
    f.write(blob)
os.chmod(f"{root}/blob", 0o644)
ftpd = Vsftpd("srv", root, 64 << 10)
url = f"ftp://{topo.server_addr()}/blob"
ynl_connection_rows("cli"), ynl_connection_rows("srv")
for mode, flags, to in (("passive", ["--ftp-pasv"], 2), ("active", ["--ftp-port", "-"], 3)):
    # The control connection and the data connection.
    download_across_move(topo, url, blob, to, mode, flags, records=2)
    wait_for(lambda: not ynl_connection_rows("srv"), f"{mode}: the session's records go with it")
ftpd.stop()
done()

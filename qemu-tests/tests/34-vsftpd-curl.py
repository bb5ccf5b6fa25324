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
import hashlib
import os
from vnattest import *
from apps import Vsftpd, finished, popen, workdir

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
server = topo.server_addr()
ynl_connection_rows("cli"), ynl_connection_rows("srv")


def size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def transfer(mode, flags, to):
    """Downloads the file in `mode`; the client moves to subnet `to` once a
    quarter has come."""
    got = f"{workdir('curl-' + mode)}/blob"
    old = topo.client_addr()
    curl = popen("cli", ["curl", "-sS", *flags, "-o", got, f"ftp://{server}/blob"])
    wait_for(lambda: len(ynl_connection_rows("srv")) == 2, f"{mode}: the server records both connections", 30)
    wait_keyed("cli", "srv", timeout=30)
    wait_for(lambda: size(got) >= SIZE // 4, f"{mode}: curl has a quarter of the file", 60)
    log(f"{mode}: curl has {size(got) >> 10} KiB: the client moves")
    topo.attach_client(to)
    new = topo.client_addr()
    wait_mapped("srv", new)
    left = SIZE - size(got)
    check(left > 0, f"{mode}: part of the file was still to come after the move ({left} bytes)")
    cap = Capture("rtr", "tcp")
    finished(curl, f"{mode}: curl", timeout=120)
    cap.stop()
    with open(got, "rb") as f:
        check_eq(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(blob).hexdigest(), f"{mode}: SHA-256")
    check(cap.count(f"host {new}") > 0, f"{mode}: router saw {new}")
    check_eq(cap.count(f"host {old}"), 0, f"{mode}: router packets of {old} after the move settled")
    check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, f"{mode}: resets on the wire")
    wait_for(lambda: not ynl_connection_rows("srv"), f"{mode}: the session's records go with it")


transfer("passive", ["--ftp-pasv"], 2)
transfer("active", ["--ftp-port", "-"], 3)
ftpd.stop()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""FTP data connections opened after a move, with location hiding (paper
3.4.1, 4.1, 5.5): one FTP session of Debian's curl with vsftpd, four
transfers on one control connection, the client moving twice:

    cli (10.0.1.2 -> 10.0.2.2 -> 10.0.3.2) --- rtr --- srv 10.0.9.2: vsftpd :21

    transfer  mode     its data connection             the client
    1 big     passive  opened before move 1            moves during it (-> 10.0.2.2)
    2 small   passive  opened after move 1, by curl
    3 big     active   opened after move 1, by vsftpd  moves during it (-> 10.0.3.2)
    4 small   active   opened after move 2, by vsftpd

Without location hiding, transfer 2 fails: vsftpd refuses a passive data
connection that does not come from its control connection's peer (it
comes from the client's new address), and so would 3 and 4: PORT names the
control connection's local address, the client's virtual one, which is
gone. With the `location_hiding` knob on, the server's VNAT gives a new
connection from the client's new address the client's old one, and
vsftpd's connection to the old address goes to the new; the client, which
listens at its old address (curl binds its active-mode listener to the
control connection's local address, and VNAT lets it bind that address,
which the client no longer has), receives it there. Asserted: curl exits 0 with nothing on standard
error, the four SHA-256 are equal, curl made one control connection, both
ends recorded the connections opened after a move as hidden, the hidden
active data connection itself moved in move 2, and the router saw neither
an old address nor a reset after the moves."""
import hashlib
import os
from vnattest import *
from apps import Vsftpd, file_size, finished, popen, workdir

BIG, SMALL = 1 << 20, 16 << 10

insmod()
topo = Topology()
check_eq(write_knob("location_hiding", "1"), None, "location_hiding set to 1")
root = workdir("ftp")
os.chmod(root, 0o755)
files = {"big": os.urandom(BIG), "small": os.urandom(SMALL)}
for name, data in files.items():
    with open(f"{root}/{name}", "wb") as f:
        f.write(data)
    os.chmod(f"{root}/{name}", 0o644)
ftpd = Vsftpd("srv", root, 64 << 10)
url = f"ftp://{topo.server_addr()}/"
got = workdir("curl-hiding")
out = [f"{got}/{i}" for i in range(1, 5)]
# Each transfer prints how many connections curl opened for it: the
# control connection and, in passive mode, the data connection.
w = ["-w", "%{num_connects}\\n"]
argv = ["curl", "-sS", "--ftp-pasv", *w, "-o", out[0], url + "big", "-o", out[1], url + "small",
        "--next", "-sS", "--ftp-port", "-", *w, "-o", out[2], url + "big", "-o", out[3], url + "small"]
ynl_connection_rows("cli"), ynl_connection_rows("srv"), stats("cli"), stats("srv")
curl = popen("cli", argv)

wait_for(lambda: len(ynl_connection_rows("srv")) == 2, "the server records the control and the data connection", 30)
wait_keyed("cli", "srv", timeout=30)
wait_for(lambda: file_size(out[0]) >= BIG // 4, "transfer 1 has a quarter of the file", 60)
log(f"transfer 1: {file_size(out[0]) >> 10} KiB: the client moves")
old = topo.client_addr()
topo.attach_client(2)
mid = topo.client_addr()
wait_mapped("srv", mid)
check(file_size(out[0]) < BIG, "move 1 was during transfer 1")

# Transfer 3 (active) runs on a data connection that vsftpd opened to the
# client's old address after move 1.
wait_for(lambda: file_size(out[2]) >= BIG // 4, "transfer 3 has a quarter of the file", 90)
rows = ynl_connection_rows("srv")
check_eq(sum(r["local"].endswith(":21") for r in rows), 1, "control connections the server has")
check(any(r["remote"].startswith(f"{old}:") and r["remote_physical"].startswith(f"{mid}:")
          and not r["local"].endswith(":21") for r in rows),
      f"the server has the active data connection as {old}, at {mid}: {rows}")
wait_keyed("cli", "srv", timeout=30)
log(f"transfer 3: {file_size(out[2]) >> 10} KiB: the client moves again")
topo.attach_client(3)
new = topo.client_addr()
wait_mapped("srv", new)
check(file_size(out[2]) < BIG, "move 2 was during transfer 3")
cap = Capture("rtr", "tcp")
said = finished(curl, "curl", timeout=180)
cap.stop()
for i, name in enumerate(("big", "small", "big", "small")):
    with open(out[i], "rb") as f:
        check_eq(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(files[name]).hexdigest(),
                 f"transfer {i + 1}: SHA-256")
# One control connection, opened for transfer 1 and used by all four.
check_eq(said.decode().split(), ["2", "1", "0", "0"], "connections curl opened per transfer")
hidden_srv, hidden_cli = stats("srv")["hidden_connections"], stats("cli")["hidden_connections"]
check(hidden_srv >= 3, f"the server recorded transfers 2 to 4's data connections as hidden ({hidden_srv})")
check(hidden_cli >= 2, f"the client recorded transfers 3 and 4's data connections as hidden ({hidden_cli})")
check(cap.count(f"host {new}") > 0, f"router saw {new}")
for a in (old, mid):
    check_eq(cap.count(f"host {a}"), 0, f"router packets of {a} after the moves")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "resets on the wire")
ftpd.stop()
check_eq(write_knob("location_hiding", "0"), None, "location_hiding set back to 0")
done()

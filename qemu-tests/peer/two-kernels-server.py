#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The other kernel of test 31-two-kernels: runs alone in a second guest that
qemu-tests/run.sh boots beside the one that runs the tests, joined to it by
two QEMU links (two networks). Here are the router and the server, with
their own vnat.ko:

      guest 1 (tests)              |  guest 2 (this program)
                                   |
    cli  nic1 10.1.0.2 ====link 1==== rtr 10.1.0.1
         nic2 10.2.0.2 ====link 2==== rtr 10.2.0.1
                                   |  rtr 10.9.0.1 --- srv 10.9.0.2:5000 echo
                                   |                        :2031 vnatd

The two guests share one directory (VNAT_PEER, on the host) and nothing
else: this program writes `ready` once the server listens, answers each
`records-N` request with `records-N.json` (the server's VNAT records, as
vnatctl lists them) and ends at `done` (or `abandon`, written by the runner
when the first guest is over). It exits non-zero if the echo server saw
anything but one connection from the client's virtual endpoint whose bytes
it echoed back whole."""
import os
from vnattest import *

PEER = os.environ["VNAT_PEER"]
MACS = {"52:54:00:56:4e:11": ("10.1.0.1", "l1"), "52:54:00:56:4e:12": ("10.2.0.1", "l2")}


def put(name, text):
    """Writes a file of the shared directory whole (renamed into place: the
    other guest never reads half of it)."""
    tmp = f"{PEER}/.{name}"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, f"{PEER}/{name}")


insmod()
add_netns("rtr")
add_netns("srv")
# The links' interfaces, found by the MAC addresses run.sh gave them.
links = nics_by_mac(MACS)
check_eq(len(links), 2, "two links to the other guest")
ip_batch(None, [f"link set {dev} netns rtr" for dev in links])
ip_batch("rtr", [c for dev, (addr, name) in links.items()
                 for c in (f"link set {dev} name {name}", f"addr add {addr}/24 dev {name}", f"link set {name} up")])
set_sysctl("rtr", "net.ipv4.ip_forward", 1)
veth("rtr", "10.9.0.1", "srv", "10.9.0.2")
ip_batch("srv", ["route add default via 10.9.0.1"])
listener = tcp_listen("srv", "0.0.0.0", 5000)
listener.settimeout(1)
stats("srv")  # parse the family's spec now, not while traffic runs
log(f"router on {sorted(links.values())}, echo server on 10.9.0.2:5000")
put("ready", "")

peers = []
echoed = []
errors = []


def echo(conn):
    """Sends back what it reads, until the client's end of stream."""
    n = 0
    try:
        conn.settimeout(300)
        while d := conn.recv(1 << 16):
            conn.sendall(d)
            n += len(d)
        conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        errors.append(repr(e))
    echoed.append(n)
    conn.close()


threads = []
served = set()
while not (os.path.exists(f"{PEER}/done") or os.path.exists(f"{PEER}/abandon")):
    try:
        conn, peer = listener.accept()
        peers.append(peer)
        threads.append(threading.Thread(target=echo, args=(conn,), daemon=True))
        threads[-1].start()
    except socket.timeout:
        pass
    for req in os.listdir(PEER):
        if req.startswith("records-") and not req.endswith(".json") and req not in served:
            served.add(req)
            put(f"{req}.json", json.dumps(connection_rows("srv")))
for t in threads:
    t.join(timeout=60)
listener.close()
check(os.path.exists(f"{PEER}/done"), "the test in the other guest ran to its end")
log(f"connections from {peers}, bytes echoed {echoed}, errors {errors}")
check_eq(peers, [("10.1.0.2", peers[0][1] if peers else 0)],
         "one connection, and the server only ever saw the client's virtual address")
check(echoed and echoed[0] > 0 and not errors, "its bytes were echoed to the end of the stream")
s = stats("srv")
log("server stats: " + ", ".join(f"{k}={v}" for k, v in s.items() if v and not k.startswith("hook")))
check(s["updates_accepted"] >= 1, "this kernel's vnatd accepted the other kernel's update")
rmmod()
done()

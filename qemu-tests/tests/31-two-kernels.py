#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Two kernels: the client here, the router and the server in a second
guest that boots its own kernel and loads its own vnat.ko (run.sh starts
it; qemu-tests/peer/two-kernels-server.py is what it runs). The guests share
no memory, no module instance and no clock; two QEMU links (datagram
sockets between the two QEMU processes, on the host) are two networks.

      this guest                    |  guest 2
    cli  nic1 10.1.0.2 ====link 1==== rtr 10.1.0.1
         nic2 10.2.0.2 ====link 2==== rtr 10.2.0.1
                                    |  rtr 10.9.0.1 --- srv 10.9.0.2:5000 echo

The client opens a connection to the echo server, both vnatds agree its
key over VCMP, and in the middle of the transfer the client leaves network
1 for network 2 (its address goes, the new one comes): VCMP crosses to the
other kernel, whose server then takes the client's packets from the new
address. Every byte comes back intact, no reset, link 2 carries VCMP and
the data from 10.2.0.2 and never the old address, and the other kernel's
record maps the client's virtual endpoint to the new one."""
import hashlib
import os
from vnattest import *

PEER = os.environ.get("VNAT_PEER")
MACS = {"52:54:00:56:4e:01": "nic1", "52:54:00:56:4e:02": "nic2"}
SIZE = 4 << 20


class Echo:
    """`size` random bytes sent on socket `sock` while what comes back is
    read; the sender stops at `hold` of them until `release()`."""

    def __init__(self, sock, size, hold):
        self.sock, self.size, self.hold = sock, size, int(size * hold)
        self.gate = threading.Event()
        self.sent, self.got = hashlib.sha256(), hashlib.sha256()
        self.back = 0
        self.errors = []
        sock.settimeout(120)
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._send, self._recv)]
        for t in self.threads:
            t.start()

    def _send(self):
        try:
            seed, at = os.urandom(1 << 16), 0
            while at < self.size:
                if at >= self.hold and not self.gate.wait(300):
                    raise TimeoutError("held for 300 s")
                chunk = bytes([at >> 16 & 255]) + seed[1:min(len(seed), self.size - at)]
                self.sock.sendall(chunk)
                self.sent.update(chunk)
                at += len(chunk)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors.append(f"send: {e!r}")

    def _recv(self):
        try:
            while d := self.sock.recv(1 << 16):
                self.got.update(d)
                self.back += len(d)
        except OSError as e:
            self.errors.append(f"recv: {e!r}")

    def release(self):
        self.gate.set()

    def join(self):
        for t in self.threads:
            t.join()


def peer_file(name, timeout):
    path = f"{PEER}/{name}"
    if not wait_for(lambda: os.path.exists(path), f"the other guest wrote {name}", timeout=timeout):
        return None
    with open(path) as f:
        return f.read()


def server_records(n):
    """The server's records in the other kernel (it lists them on request)."""
    open(f"{PEER}/records-{n}", "w").close()
    text = peer_file(f"records-{n}.json", 60)
    return json.loads(text) if text else []


if not check(PEER is not None, "run with the second guest (qemu-tests/run.sh starts it)"):
    done()
try:
    # The other guest boots beside this one; it is up long before this
    # test comes, unless this test runs alone.
    if peer_file("ready", 600) is None:
        done()
    log("the other guest is ready")
    insmod()
    add_netns("cli")
    nics = nics_by_mac(MACS)
    check_eq(sorted(nics.values()), ["nic1", "nic2"], "two links to the other guest")
    ip_batch(None, [f"link set {dev} netns cli" for dev in nics])
    # Both interfaces are up, as a laptop's are; only network 1 gave an address.
    ip_batch("cli", [f"link set {dev} name {name}" for dev, name in nics.items()]
             + ["link set nic1 up", "link set nic2 up", "addr add 10.1.0.2/24 dev nic1",
                "route add default via 10.1.0.1"])
    c = tcp_connect("cli", "10.9.0.2", 5000)
    wait_keyed("cli", timeout=60)
    log(f"connection {ep(c.getsockname())} -> 10.9.0.2:5000, keyed with the other kernel")
    before = stats("cli")
    e = Echo(c, SIZE, hold=0.5)
    wait_for(lambda: e.back >= SIZE // 4, "a quarter came back before the move", timeout=120)
    cap = Capture("cli", "host 10.1.0.2 or host 10.2.0.2", iface="nic2")
    # The laptop leaves network 1 and joins network 2 (one ip process).
    ip_batch("cli", ["addr del 10.1.0.2/24 dev nic1", "link set nic1 down", "addr add 10.2.0.2/24 dev nic2",
                     "route replace default via 10.2.0.1"])
    wait_for(lambda: stats("cli")["migrations_completed"] > before["migrations_completed"],
             "the client's vnatd completed the move with the other kernel", timeout=60)
    # The other kernel's record, asked for while the connection is open
    # (the echo server closes it once the stream is over).
    local = ep(c.getsockname())
    for n in range(30):
        rows = server_records(n)
        if [r["remote_physical"] for r in rows] == ["10.2.0.2:" + local.split(":")[1]]:
            break
    check(len(rows) == 1 and rows[0]["remote"] == local and rows[0]["local"] == "10.9.0.2:5000"
          and rows[0]["remote_physical"] == "10.2.0.2:" + local.split(":")[1] and rows[0]["auth"] == "keyed",
          f"the other kernel maps the client's virtual {local} to 10.2.0.2, keyed: {rows}")
    e.release()
    e.join()
    cap.stop()
    check_eq(e.errors, [], "no error on the client's socket")
    check_eq(e.back, SIZE, "every byte came back")
    check_eq(e.got.hexdigest(), e.sent.hexdigest(), "SHA-256 of what came back equals what was sent")
    check_eq(cap.count("host 10.1.0.2"), 0, "link 2 never carried the old address")
    check(cap.count("src host 10.2.0.2 and dst host 10.9.0.2 and tcp dst port 2031") > 0,
          "VCMP went to the other kernel's vnatd over link 2")
    check(cap.count("src host 10.2.0.2 and tcp dst port 5000") > 0, "the data went from 10.2.0.2")
    check(cap.count("src host 10.9.0.2 and dst host 10.2.0.2 and tcp src port 5000") > 0,
          "and came back to 10.2.0.2")
    check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "no reset on the wire")
    mine = connection_rows("cli")
    check(len(mine) == 1 and mine[0]["state"] == "migrated" and mine[0]["local"] == local
          and mine[0]["local_physical"].startswith("10.2.0.2:"),
          f"this kernel keeps the virtual {local} on 10.2.0.2: {mine}")
    c.close()
    wait_for(lambda: stats("cli")["connections"] == 0, "the closed connection's record goes")
finally:
    if PEER:
        open(f"{PEER}/done", "w").close()
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""rmmod while a migrated connection carries bytes (issue 15): the module is
in use, so rmmod is refused with the kernel's "in use" and the transfer
goes on intact; once the connection has ended, rmmod goes through. Before,
rmmod went through and the connection broke without a word (its packets
left with the new address, which the peer's stack did not know).

    cli (10.0.1.2 -> 10.0.2.2) --- rtr --- srv (10.0.9.2)

Each host that translates holds one reference on the module: the client
(its source), the server (the client's new address): `lsmod` shows two
more users than before the move."""
from vnattest import *


def users():
    with open("/sys/module/vnat/refcnt") as f:
        return int(f.read())


insmod()
topo = Topology()
srv, c, a = topo.connection()
before = users()
t = Transfer(c, a, 4 << 20, hold=0.5)
t.wait_progress(0.25)
topo.attach_client(2)
wait_for(lambda: stats("cli")["migrations_completed"] == 1, "migrated", timeout=30)
check_eq(users(), before + 2, "the client and the server hold the module, one reference each")

r = subprocess.run(["rmmod", "vnat"], text=True, capture_output=True)
log(f"rmmod vnat: exit {r.returncode}: {r.stderr.strip()}")
check(r.returncode != 0 and "in use" in r.stderr, "rmmod is refused: the module is in use")
check(loaded(), "the module stays loaded")
line = [l.split() for l in sh("lsmod").splitlines() if l.split()[0] == "vnat"][0]
check_eq(int(line[2]), before + 2, f"lsmod counts the users ({' '.join(line)})")
# The senders wait at half way: the rest crosses after the refusal.
out = stats("cli")["translated_postrouting_packets"]
t.release()
t.join()
# (Counted per skb: a GSO one carries up to 64 KiB.)
check(stats("cli")["translated_postrouting_packets"] >= out + 32,
      "the second half was translated, after the refused rmmod")

# The connection ends (its FIN exchange is translated too); then the
# module is free to go.
c.close()
a.close()
srv.close()
wait_for(lambda: users() == before, "the references went with the connection", timeout=30)
rmmod()
check(not loaded(), "rmmod once the migrated connection ended")
done()

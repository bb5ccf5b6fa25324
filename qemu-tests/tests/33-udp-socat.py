#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A UDP application, unmodified (Debian's socat), with connected sockets at
both ends, while the server moves (paper 3.5):

    cli 10.0.1.2: socat - UDP4:10.0.9.2:5300        (connected client)
         |
        rtr
         |
    srv 10.0.9.2 -> 10.0.10.2: socat UDP4-LISTEN:5300 PIPE   (an echo; it
                                connects its socket to the first sender)

The client sends a numbered line every 50 ms and prints what comes back.
The server host leaves its network for another; its vnatd tells the
client's, which then sends to the new address. Asserted: both socat keep
running and the client exits 0 with nothing on standard error; every line
that comes back is one that was sent, whole and in order (UDP may lose the
few sent while the server had no address, and the test says how many);
lines come back after the move; the router sees only the server's new
address after it."""
import threading
from vnattest import *
from apps import finished, popen

insmod()
topo = Topology()
server = topo.server_addr()
echo = popen("srv", ["socat", "UDP4-LISTEN:5300,reuseaddr", "PIPE"])
# Else the client's first datagram may find no socket: the ICMP error makes
# its connected socket fail, and the client socat exits (seen once).
wait_for(lambda: 5300 in udp_ports("srv") or echo.poll() is not None, "the server's socat has its socket", 30)
client = popen("cli", ["socat", "-", f"UDP4:{server}:5300"], stdin=subprocess.PIPE, text=True)
sent, back = [], []
stop = threading.Event()


def send():
    i = 0
    while not stop.wait(0.05):
        line = f"line {i:05d} " + "x" * 40
        client.stdin.write(line + "\n")
        client.stdin.flush()
        sent.append(line)
        i += 1


def receive():
    for line in client.stdout:
        back.append(line.rstrip("\n"))


threads = [threading.Thread(target=send), threading.Thread(target=receive)]
for t in threads:
    t.start()
wait_for(lambda: len(back) >= 20, "the echo answers", 60)
wait_for(lambda: len(ynl_connection_rows("srv")) == 1, "the server's connected socket is tracked", 30)
wait_keyed("cli", "srv", timeout=30)
log(f"the server's flow: {connection_rows('srv')}")
old = server
topo.attach_server(10)
new = topo.server_addr()
wait_mapped("cli", new, 5300)
n = len(back)
cap = Capture("rtr", "udp port 5300")
wait_for(lambda: len(back) >= n + 20, "twenty more lines come back after the move", 60)
cap.stop()
stop.set()
threads[0].join()
check_eq(echo.poll(), None, "the server's socat still runs")
finished(client, "socat client", read_stdout=False)
threads[1].join(30)
echo.terminate()
echo.wait()

at = {line: i for i, line in enumerate(sent)}
order = [at.get(line, -1) for line in back]
check(-1 not in order, f"every line that came back was sent, whole ({order.count(-1)} not)")
check(order == sorted(order) and len(set(order)) == len(order), "in order, none twice")
log(f"{len(sent)} sent, {len(back)} came back, {len(sent) - len(back)} lost while the server moved")
check(cap.count(f"host {new}") > 0, f"router saw the flow with {new}")
check_eq(cap.count(f"host {old}"), 0, f"router packets of {old} after the move")
check(stats("srv")["migrations_completed"] >= 1, "the server's vnatd moved the flow")
done()

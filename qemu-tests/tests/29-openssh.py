#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""OpenSSH, unmodified (Debian's sshd and ssh), while the client moves and
then while the server moves (paper 5.5):

    cli (10.0.1.2 -> 10.0.2.2) --- rtr --- srv (10.0.9.2 -> 10.0.10.2, sshd on 22)

Three ssh sessions run across both moves, each its own TCP connection:
- interactive: a command on the server prints a numbered line every
  100 ms until its standard input closes;
- upload: a pipe through ssh into `sha256sum` on the server;
- download: `cat` of a named pipe on the server, out through ssh.
The test feeds both pipes a third before the first move, a third between
the moves and a third after the second, so bytes cross the wire after each
move. Asserted: every ssh exits 0 with nothing on standard error (no
"Broken pipe", no "Connection reset"), the interactive lines arrive all
and in order, both SHA-256 equal, and the router sees after the moves only
the new addresses on port 22."""
import hashlib
import os
import threading
from vnattest import *
from apps import TICKER, Sshd, finished, popen

PART = 256 << 10      # bytes per third, each way

insmod()
topo = Topology()
sshd = Sshd("srv")
server = topo.server_addr()
fifo = f"{sshd.dir}/down.fifo"
os.mkfifo(fifo)

ticker = popen("cli", sshd.argv(server, f"python3 -c \"{TICKER}\""), stdin=subprocess.PIPE, text=True)
upload = popen("cli", sshd.argv(server, "sha256sum"), stdin=subprocess.PIPE)
download = popen("cli", sshd.argv(server, f"cat {fifo}"))
writer = []


def cat_opened():
    """Opens the download's pipe once the server's cat has (before, the
    open fails with ENXIO), or sees the ssh fail."""
    try:
        writer.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass
    return writer or download.poll() is not None


if not wait_for(cat_opened, "the server's cat opens the pipe", 60) or not writer:
    for p in (ticker, upload, download):
        p.kill()
        log(f"ssh: {p.communicate()[1]!r}")
    check(False, f"sshd: {sshd.server.output()}")
    done()
log("the server's cat has opened the pipe")
os.set_blocking(writer[0], True)
down_w = os.fdopen(writer[0], "wb")

lines = []
got_down = bytearray()


def read_ticker():
    for line in ticker.stdout:
        lines.append(line.strip())


def read_download():
    while d := download.stdout.read1(1 << 16):
        got_down.extend(d)


readers = [threading.Thread(target=read_ticker), threading.Thread(target=read_download)]
for t in readers:
    t.start()
up_hash, down_hash = hashlib.sha256(), hashlib.sha256()


def third(i):
    """Sends a third of the bytes each way and waits until the client has
    the download's part and the ticker printed five more lines."""
    log(f"third {i + 1}: {PART >> 10} KiB each way")
    up, down = os.urandom(PART), os.urandom(PART)
    up_hash.update(up)
    down_hash.update(down)
    n = len(lines)
    upload.stdin.write(up)
    upload.stdin.flush()
    down_w.write(down)
    down_w.flush()
    wait_for(lambda: len(got_down) >= (i + 1) * PART, f"third {i + 1}: the download's bytes arrived", 60)
    wait_for(lambda: len(lines) >= n + 5, f"third {i + 1}: five more interactive lines", 60)


wait_for(lambda: len(ynl_connection_rows("srv")) == 3, "the server's vnatd records the three ssh connections", 30)
wait_keyed("cli", "srv", timeout=30)
log("three ssh connections, keyed")
third(0)


def move(who, attach, addr, peer, port=None):
    """Moves the client or the server (`attach`), waits until its `peer`
    maps every connection to its new address; returns (old, new)."""
    old = addr()
    log(f"the {who} moves")
    attach()
    wait_mapped(peer, addr(), port)
    return old, addr()


old_cli, new_cli = move("client", lambda: topo.attach_client(2), topo.client_addr, "srv")
third(1)
old_srv, new_srv = move("server", lambda: topo.attach_server(10), topo.server_addr, "cli", 22)
cap = Capture("rtr", "tcp port 22")
third(2)

down_w.close()
finished(ticker, "interactive ssh", read_stdout=False)
up_out = finished(upload, "upload through ssh")
finished(download, "download through ssh", read_stdout=False)
for t in readers:
    t.join(30)
cap.stop()

numbers = [l for l in lines if l != "end"]
check(lines and lines[-1] == "end" and numbers == [f"line {i}" for i in range(len(numbers))],
      f"interactive: {len(numbers)} lines, all and in order, then the end")
check_eq(up_out.split()[0].decode() if up_out else None, up_hash.hexdigest(), "upload: SHA-256 on the server")
check_eq(hashlib.sha256(got_down).hexdigest(), down_hash.hexdigest(), "download: SHA-256 on the client")
check_eq(len(got_down), 3 * PART, "download: every byte")
check(cap.count(f"host {new_cli} and host {new_srv}") > 0, f"router saw {new_cli} <-> {new_srv} on port 22")
check_eq(cap.count(f"host {old_cli} or host {old_srv}"), 0, f"router packets of {old_cli} or {old_srv} after the moves")
check_eq(cap.count("tcp[tcpflags] & tcp-rst != 0"), 0, "resets on the wire")
s = stats("srv")
check(s["updates_accepted"] >= 3, f"the server accepted the client's updates ({s['updates_accepted']})")
sshd.stop()
done()

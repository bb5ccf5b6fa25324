#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""vnatd listens on port 2031 in every namespace: those that existed at
insmod and those created after; the port is a load-time parameter; a port
already taken is retried and counted, not fatal."""
from vnattest import *

add_netns("before")
insmod()
wait_for(lambda: 2031 in listening_ports(None), "vnatd listens on 2031 in the initial namespace")
wait_for(lambda: 2031 in listening_ports("before"), "vnatd listens on 2031 in a namespace created before insmod")
add_netns("after")
wait_for(lambda: 2031 in listening_ports("after"), "vnatd listens on 2031 in a namespace created after insmod")
check_eq(stats("after")["vcmp_listening"], 1, "stats say listening")
threads = sh("pgrep -x 'vnatd/[0-9]+' | wc -l").strip()
check(int(threads) >= 3, f"one vnatd thread per namespace ({threads})")

# A client can connect and is accepted by the daemon.
c = tcp_connect("after", "127.0.0.1", 2031)
wait_for(lambda: stats("after")["vcmp_clients_accepted"] == 1, "vnatd accepted the client")
c.close()
rmmod()

# Another port, and a namespace where that port is taken by an application.
add_netns("busy")
squatter = tcp_listen("busy", "0.0.0.0", 3031)
mark = kmsg_mark()
insmod("vcmp_port=3031")
wait_for(lambda: 3031 in listening_ports("after"), "vnatd listens on the vcmp_port parameter")
check(2031 not in listening_ports("after"), "and not on 2031")
wait_for(lambda: stats("busy")["vcmp_listen_failed"] >= 1, "a taken port is counted as a failed listen")
check(match_line(dmesg_since(mark), r"cannot listen on port 3031"), "and logged")
squatter.close()
wait_for(lambda: stats("busy")["vcmp_listening"] == 1, "vnatd listens once the port is free again")
with open(f"{CONFIGFS}/vcmp_port") as f:
    check_eq(f.read().strip(), "3031", "configfs shows the port")
rmmod()

# Port 0 is refused at load time with a message.
mark = kmsg_mark()
r = subprocess.run(f"insmod {VNAT_KO} vcmp_port=0", shell=True, capture_output=True, text=True)
check(r.returncode != 0, "vcmp_port=0 is refused")
check(match_line(dmesg_since(mark), r"vcmp_port=0 is not a port"), "with a clear message")
check(not loaded(), "and the module is not loaded")
done()

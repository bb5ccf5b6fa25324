#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""System sleep (issue 14; the paper integrated VNAT with APM): before the
system sleeps, every connection with another host is suspended (VNAT_SUS
to its peer, whose helper keeps it alive); on wake it resumes, from
wherever the host is then.

    cli (10.0.1.2, later 10.0.2.2) --- rtr --- srv 10.0.9.2:5000

The guest sleeps for real as far as software goes: `/sys/power/pm_test`
`freezer` runs the sleep notifiers, freezes every task for
`pm_test_delay` seconds and thaws them (there is no firmware to power
down). Client and server are namespaces of this one kernel, so both sleep:
each end suspends towards the other, and each is the other's peer.

1. Sleep and wake on the same network: each end's vnatd sent VNAT_SUS
   before the freeze, each peer's helper (keepalive) was at work, and on
   wake each end resumed and the helpers were released; the transfer
   (2 MiB each way) goes on intact.
2. Wake on another network: the client's address expires during the sleep
   (a DHCP lease that ran out; the kernel removes it while tasks are
   frozen), so on wake the client has no route and its connection waits,
   suspended; then it joins network 2 and resumes there (with
   `auto_migrate` 0: the wake's own resume, not the move to a new
   address). The server, which
   woke at its old address and sent its own update to the client's old
   one, takes the client's update and sends its own again to the new
   address at once (both ends moving: issue 14), well before
   `resume_deadline_s`. A paced echo (every 20 ms) goes on, in order.
"""
from vnattest import *

SIZE = 2 << 20
DELAY_PARAM = "/sys/module/suspend/parameters/pm_test_delay"


def sleep_once(delay):
    """Suspends the guest (to idle, pm_test freezer, the tasks frozen for
    `delay` s): returns the seconds that `echo freeze > /sys/power/state`
    took and what the kernel logged meanwhile."""
    with open(DELAY_PARAM, "w") as f:
        f.write(str(delay))
    mark = kmsg_mark()
    t = time.monotonic()
    with open("/sys/power/state", "w") as f:
        f.write("freeze")
    return time.monotonic() - t, dmesg_since(mark)


def event_of(mon, name, what):
    evs = mon.until(lambda e: e["event"] == name, what, timeout=30)
    return evs[-1] if evs else {}


insmod()
check_eq(read_knob("sleep_suspend"), "1", "sleep_suspend is on by default")
with open(DELAY_PARAM) as f:
    delay_was = f.read().strip()
with open("/sys/power/pm_test", "w") as f:
    f.write("freezer")
try:
    topo = Topology()
    srv = tcp_listen("srv", "0.0.0.0", 5000)
    mon_cli, mon_srv = Monitor("cli"), Monitor("srv")
    monitors_ready(mon_cli, mon_srv, srv, topo.server_addr())
    c = tcp_connect("cli", topo.server_addr(), 5000)
    a, _ = srv.accept()
    wait_keyed("cli", "srv")
    t = Transfer(c, a, SIZE, hold=0.5)
    t.wait_progress(0.25)
    mon_cli.drain()
    mon_srv.drain()
    before_cli, before_srv = stats("cli"), stats("srv")

    # 1. Sleep and wake where it was.
    took, kmsg = sleep_once(3)
    log(f"the guest slept: echo freeze > /sys/power/state took {took:.1f} s")
    check(took >= 3, f"the tasks were frozen for pm_test_delay ({took:.1f} s >= 3 s)")
    frozen = kmsg.find("Freezing user space processes")
    told = [kmsg.find(f"netns {os.stat(f'/run/netns/{ns}').st_ino}: suspending 1 connection(s) of the host: "
                      "the host goes to sleep") for ns in ("cli", "srv")]
    check(frozen > 0 and all(0 <= at < frozen for at in told),
          f"the vnatds of cli and srv began their suspensions before the tasks froze (at {told}, freezing at {frozen})")
    for mon, ns in ((mon_srv, "srv"), (mon_cli, "cli")):
        ev = event_of(mon, "peer-suspended", f"{ns}: its peer suspended before the sleep")
        check_eq(ev.get("helper"), "keepalive", f"{ns}: the peer's suspension activated its helper")
        ev = event_of(mon, "helper-released", f"{ns}: the peer resumed on wake")
        check_eq(ev.get("reason"), "the peer resumed", f"{ns}: the helper was released by the peer's resume")
    after_cli, after_srv = stats("cli"), stats("srv")
    check(after_cli["suspends_sent"] > before_cli["suspends_sent"] and
          after_srv["suspends_accepted"] > before_srv["suspends_accepted"],
          "the client's vnatd sent VNAT_SUS, the server's took it")
    wait_for(lambda: all(r["state"] in ("native", "migrated") for r in connection_rows("cli") + connection_rows("srv")),
             "both ends resumed")
    t.release()
    t.join()

    # 2. Wake on another network.
    c2 = tcp_connect("cli", topo.server_addr(), 5000)
    a2, _ = srv.accept()
    wait_keyed("cli", "srv")
    pace = Pacer(c2, a2, timeout=120)
    pace.wait_more(10, "echoes come back")
    mon_cli.drain()
    mon_srv.drain()
    before_cli, before_srv = stats("cli"), stats("srv")
    # Only the wake may resume the connections: no automatic move on a new
    # address.
    check_eq(write_knob("auto_migrate", "0"), None, "auto_migrate 0")
    # The lease runs out while the guest sleeps: 2 s from now, in a sleep
    # of 6 (the kernel's lifetime check is deferrable work, run when a CPU
    # wakes: the vnatds' ticks wake them every second).
    ip_batch("cli", ["addr change 10.0.1.2/24 dev c1 valid_lft 2 preferred_lft 2"])
    took, _ = sleep_once(6)
    log(f"the guest slept again ({took:.1f} s); the client's address expired meanwhile")
    check_eq(sh("ip -n cli -4 addr show dev c1").strip(), "", "the client has no address left")
    rows = connection_rows("cli")
    check(rows and all(r["state"] == "suspended" for r in rows),
          f"with no route on wake, the client's connections wait, suspended: {rows}")
    ip_batch("cli", ["link set c1 down", "link set c2 up", "addr add 10.0.2.2/24 dev c2",
                     "route replace default via 10.0.2.1"])
    topo.client_at = 2
    log("cli joined network 2")
    wait_for(lambda: all(r["local_physical"].startswith("10.0.2.2:") and r["state"] == "migrated"
                         for r in connection_rows("cli")), "the client resumed at 10.0.2.2", timeout=30)
    wait_for(lambda: all(r["remote_physical"].startswith("10.0.2.2:") and r["state"] == "migrated"
                         for r in connection_rows("srv")),
             "the server, which resumed towards the client's old address, completed its move", timeout=30)
    pace.wait_more(25, "echoes go on after the wake")
    pace.finish()
    after_cli, after_srv = stats("cli"), stats("srv")
    check_eq((after_cli["migrations_failed"] - before_cli["migrations_failed"],
              after_srv["migrations_failed"] - before_srv["migrations_failed"]), (0, 0), "no migration failed")
    for s in (c, a, c2, a2, srv):
        s.close()
    mon_cli.stop()
    mon_srv.stop()
finally:
    with open("/sys/power/pm_test", "w") as f:
        f.write("none")
    with open(DELAY_PARAM, "w") as f:
        f.write(delay_was)
done()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""configfs knobs: good values are taken, bad ones refused with EINVAL and a
one-line reason in the kernel log, the old value kept; counters are
read-only totals over all namespaces."""
import errno
from vnattest import *

insmod()
check_eq(read_knob("vcmp_max_clients"), "64", "vcmp_max_clients default")
check_eq(read_knob("vcmp_idle_timeout_ms"), "30000", "vcmp_idle_timeout_ms default")
check_eq(read_knob("vcmp_port"), "2031", "vcmp_port shows the parameter")
check_eq(read_knob("auto_migrate"), "1", "auto_migrate default")
check_eq(read_knob("vcmp_timeout_ms"), "2000", "vcmp_timeout_ms default")
check_eq(read_knob("vcmp_retries"), "2", "vcmp_retries default")
check_eq(read_knob("vcmp_max_clients_per_source"), "4", "vcmp_max_clients_per_source default")
check_eq(read_knob("vcmp_max_refusals"), "8", "vcmp_max_refusals default")
check_eq(read_knob("vcmp_udp_flows"), "0", "vcmp_udp_flows default: off")
check_eq(read_knob("resume_deadline_s"), "120", "resume_deadline_s default")
check_eq(read_knob("sleep_suspend"), "1", "sleep_suspend default: on")
for name, good, bad in [
        ("vcmp_max_clients", "128", ["0", "1025", "-1", "abc", "\n", "12 ", "99999999999"]),
        ("vcmp_idle_timeout_ms", "1000", ["99", "3600001", "1e3", "0x10"]),
        ("auto_migrate", "0", ["2", "-1", "yes"]),
        ("vcmp_timeout_ms", "500", ["99", "60001"]),
        ("vcmp_retries", "3", ["11", "x"]),
        ("vcmp_max_clients_per_source", "16", ["0", "1025"]),
        ("vcmp_max_refusals", "100", ["0", "65536"]),
        ("vcmp_udp_flows", "1", ["2", "on"]),
        ("resume_deadline_s", "0", ["86401", "-5", "2m"]),
        ("sleep_suspend", "0", ["2", "yes"])]:
    check_eq(write_knob(name, good + "\n"), None, f"{name}={good} accepted")
    check_eq(read_knob(name), good, f"{name} reads back {good}")
    mark = kmsg_mark()
    for v in bad:
        check_eq(write_knob(name, v), errno.EINVAL, f"{name}={v!r} refused with EINVAL")
        check_eq(read_knob(name), good, f"{name} kept {good} after {v!r}")
    check(match_line(dmesg_since(mark), rf"{name}: refused .*expected an integer"), f"{name}: reason logged")
check_eq(read_knob("migrate_on"), "on-loss", "migrate_on default")
check_eq(write_knob("migrate_on", "on-route-change\n"), None, "migrate_on=on-route-change accepted")
check_eq(read_knob("migrate_on"), "on-route-change", "migrate_on reads back on-route-change")
for v in ["1", "on-route", "route"]:
    check_eq(write_knob("migrate_on", v), errno.EINVAL, f"migrate_on={v!r} refused with EINVAL")
check_eq(read_knob("migrate_on"), "on-route-change", "migrate_on kept its value")
check(write_knob("vcmp_port", "5") is not None, "vcmp_port is read-only")
check(write_knob("counters", "0") is not None, "counters are read-only")
# Totals: packets in two namespaces add up.
add_netns("t1")
add_netns("t2")
before = {l.split()[0]: int(l.split()[1]) for l in open(f"{CONFIGFS}/counters")}
for ns in ("t1", "t2"):
    srv = tcp_listen(ns, "127.0.0.1")
    c = tcp_connect(ns, "127.0.0.1", srv.getsockname()[1])
    a, _ = srv.accept()
    c.close(); a.close(); srv.close()
after = {l.split()[0]: int(l.split()[1]) for l in open(f"{CONFIGFS}/counters")}
check_eq(after["connections_tracked"] - before["connections_tracked"], 4, "total tracked counts both namespaces")
check_eq(after["kprobes_missed"], 0, "no kprobe hit missed")
done()

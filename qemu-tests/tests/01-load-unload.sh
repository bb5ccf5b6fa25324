#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# vnat.ko loads and unloads 5 times in a row (every other test loads and
# unloads it too); each time it sets up and tears
# down its per-namespace state (vnatd on port 2031), its generic netlink
# family and configfs.
set -eu
: "${VNAT_KO:?}" "${VNATCTL:?}"
for i in $(seq 5); do
	insmod "$VNAT_KO"
	genl ctrl get name vnat >/dev/null || { echo "round $i: no generic netlink family vnat after insmod"; exit 1; }
	[ -d /sys/kernel/config/vnat ] || { echo "round $i: configfs subsystem missing"; exit 1; }
	pgrep -x "vnatd/[0-9]+" >/dev/null || { echo "round $i: no vnatd thread"; exit 1; }
	# vnatctl answers (stats-get) while the module is loaded and says it is
	# not (exit 3) once it is gone; once, as each start of it is slow here.
	[ "$i" != 1 ] || "$VNATCTL" stats >/dev/null || { echo "round $i: vnatctl stats failed after insmod"; exit 1; }
	rmmod vnat
	if genl ctrl get name vnat >/dev/null 2>&1; then echo "round $i: generic netlink family vnat left behind"; exit 1; fi
	if [ "$i" = 1 ]; then
		rc=0; "$VNATCTL" stats >/dev/null 2>&1 || rc=$?
		[ "$rc" = 3 ] || { echo "round $i: vnatctl stats after rmmod: exit $rc, not 3 (module not loaded)"; exit 1; }
	fi
	[ ! -e /sys/kernel/config/vnat ] || { echo "round $i: configfs subsystem left behind"; exit 1; }
	if pgrep -x "vnatd/[0-9]+" >/dev/null; then echo "round $i: vnatd thread left behind"; exit 1; fi
done
dmesg -t | grep -E '^vnat: ' | tail -n 4
echo "5 load/unload rounds"

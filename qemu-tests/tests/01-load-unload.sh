#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# vnat.ko loads and unloads 20 times in a row; each time it sets up and tears
# down its per-namespace state (procfs files, vnatd on port 2031, configfs).
set -eu
: "${VNAT_KO:?}"
for i in $(seq 20); do
	insmod "$VNAT_KO"
	[ -r /proc/net/vnat/stats ] || { echo "round $i: /proc/net/vnat/stats missing after insmod"; exit 1; }
	[ -d /sys/kernel/config/vnat ] || { echo "round $i: configfs subsystem missing"; exit 1; }
	pgrep -x "vnatd/[0-9]+" >/dev/null || { echo "round $i: no vnatd thread"; exit 1; }
	rmmod vnat
	[ ! -e /proc/net/vnat ] || { echo "round $i: /proc/net/vnat left behind"; exit 1; }
	[ ! -e /sys/kernel/config/vnat ] || { echo "round $i: configfs subsystem left behind"; exit 1; }
	if pgrep -x "vnatd/[0-9]+" >/dev/null; then echo "round $i: vnatd thread left behind"; exit 1; fi
done
dmesg -t | grep -E '^vnat: ' | tail -n 4
echo "20 load/unload rounds"

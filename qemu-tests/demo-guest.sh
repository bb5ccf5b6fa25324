#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo, inside the guest: two hosts (network namespaces) joined by a
# veth link, VNAT loaded, a live TCP connection between them.
set -eu
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config

say "Two hosts: laptop (10.0.0.1) and server (10.0.0.2)"
ip netns add laptop; ip netns add server
ip -n laptop link set lo up; ip -n server link set lo up
ip link add eth0 netns laptop type veth peer name eth0 netns server
ip -n laptop addr add 10.0.0.1/24 dev eth0; ip -n server addr add 10.0.0.2/24 dev eth0
ip -n laptop link set eth0 up; ip -n server link set eth0 up

say "insmod vnat.ko: every host gets its own vnatd on TCP port 2031"
insmod vnat.ko
dmesg -t | grep '^vnat' | tail -n 3
for h in laptop server; do
	for _ in $(seq 100); do ip netns exec $h ss -Hltn 'sport = :2031' | grep -q . && break; sleep 0.05; done
	echo "-- $h:"; ip netns exec $h ss -ltn 'sport = :2031'
done

say "A live TCP connection: server listens on 5000, laptop connects"
ip netns exec server socat -u TCP-LISTEN:5000,reuseaddr OPEN:/tmp/received,creat,trunc &
srv=$!
for _ in $(seq 100); do ip netns exec server ss -Hltn 'sport = :5000' | grep -q . && break; sleep 0.05; done
exec 3> >(ip netns exec laptop socat -u STDIN TCP:10.0.0.2:5000)
echo "hello from the laptop" >&3
for _ in $(seq 100); do [ -s /tmp/received ] && break; sleep 0.05; done
echo "server received: $(cat /tmp/received)"

say "VNAT tracks the connection on both ends (virtual endpoints = initial physical ones)"
for h in laptop server; do echo "-- $h: /proc/net/vnat/connections"; ip netns exec $h cat /proc/net/vnat/connections; done

say "Per-host counters of the four translation hooks and of vnatd"
ip netns exec laptop cat /proc/net/vnat/stats

say "Knobs in configfs"
grep -H . /sys/kernel/config/vnat/vcmp_*

say "Closing the connection: the records go away"
exec 3>&-
wait $srv || true
for h in laptop server; do
	for _ in $(seq 100); do [ "$(ip netns exec $h cat /proc/net/vnat/connections | wc -l)" = 1 ] && break; sleep 0.05; done
	echo "-- $h: $(($(ip netns exec $h cat /proc/net/vnat/connections | wc -l) - 1)) connection(s)"
done
rmmod vnat
say "Done. Live migration across networks arrives with the migration work (see README)."

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boots the test kernel with virtme-ng and runs qemu-tests/guest.sh inside,
# which prints TAP. KVM is used when a quick probe shows that it boots here;
# otherwise TCG. Usage: qemu-tests/run.sh KDIR [TEST...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
kdir=${1:?usage: qemu-tests/run.sh KDIR [TEST...]}
shift
export VNAT_CACHE=${VNAT_CACHE:-/var/cache/vnat}
. "$top/tools/kenv.sh"
: "${VNG:?run tools/setup.sh first}"

[ -f "$top/vnat.ko" ] || { echo "not ok 1 - vnat.ko is not built (make module)"; exit 1; }

# KVM: nested KVM may hang early in boot on this kind of machine, so probe it
# once per kernel and QEMU version, with a short timeout, and remember.
accel=(--disable-kvm)
if [ -w /dev/kvm ] && [ "${VNAT_TCG:-}" != 1 ]; then
	probe="$VNAT_CACHE/kvm-probe-$(basename "$kdir")-$(qemu-system-x86_64 --version | head -n1 | tr -dc '0-9.')"
	if [ ! -f "$probe" ]; then
		echo "# probing KVM (at most 60 s, once per kernel and QEMU version)" >&2
		out=$(timeout 60 "$VNG" --run "$kdir" --cpus 1 --memory 1G --user root \
			--exec 'echo vnat-kvm-ok' </dev/null 2>&1) && rc=0 || rc=$?
		if grep -q vnat-kvm-ok <<<"$out"; then
			echo kvm > "$probe"
		elif [ "$rc" = 124 ]; then
			echo tcg > "$probe"   # hung: never try again
		else
			echo "# KVM probe failed (exit $rc), using TCG this time: $(tail -n1 <<<"$out")" >&2
		fi
	fi
	[ "$(cat "$probe" 2>/dev/null)" = kvm ] && accel=()
fi
echo "# booting $(basename "$kdir") with ${accel[*]:-KVM}" >&2

ksrc=$(readlink -f "$kdir/source")

# The tests are independent (each makes its own namespaces and loads the
# module itself), so they can be dealt to VNAT_GUESTS guests (default 1)
# that run at the same time, each booting its own kernel: heaviest first,
# each to the guest with the least work so far, by the seconds each is
# estimated to take here (below: what each took on 2026-12-02 in make
# check plus its clean-up, 36 measured alone; a test not listed counts 60; each
# test prints what it took).
# The first guest also runs the KUnit suites; every guest ends with its own
# kmemleak scan. Named tests run in one guest.
declare -A weight=(
	[01-load-unload.sh]=19 [02-hooks-per-netns.py]=12 [03-socket-tracking.py]=18
	[04-vnatd-listens.py]=11 [05-netns-delete.py]=112
	[06-rmmod-open-connections.py]=8 [07-vcmp-bad-input.py]=9
	[08-configfs-knobs.py]=8 [10-migrate-client.py]=20 [11-migrate-server.py]=14
	[12-three-moves.py]=13 [13-before-insmod.py]=12
	[14-thousand-connections.py]=42 [15-peer-without-vnat.py]=15
	[16-others-untranslated.py]=15 [17-rmmod-after-migration.py]=13
	[18-control.py]=11 [19-migrate-udp.py]=17 [20-netlink.py]=71
	[21-conflict.py]=15 [22-suspend.py]=44 [23-helper-pid-reuse.py]=11
	[24-vcmp-forgery.py]=14 [25-vcmp-resources.py]=16 [26-vcmp-auth.py]=19
	[27-vcmp-fuzz.py]=141 [28-nat-traversal.py]=113 [29-openssh.py]=63
	[30-nginx-curl.py]=47 [31-two-kernels.py]=22 [32-sshd-suspend.py]=35
	[33-udp-socat.py]=17 [34-vsftpd-curl.py]=60 [35-iperf3.py]=40
	[36-ftp-location-hiding.py]=55 [37-dual-stack.py]=30 [38-resume-retry.py]=60
	[39-make-before-break.py]=25 [40-system-sleep.py]=45
	[41-both-ends-move.py]=40 [42-home-while-retrying.py]=30 [43-ipv6.py]=140
	[44-ipv6-slaac.py]=40 [45-ipv6-batch-udp.py]=110 [46-path-mtu.py]=37 [47-criu-process.py]=125
	[48-key-answer-late.py]=20 [49-key-stream-kept.py]=16 [50-key-before-accept.py]=22
	[51-key-answer-lost.py]=50 [52-key-answer-cut-by-move.py]=15 [53-key-not-asked-before-move.py]=30
	[54-vcmp-syn-lost.py]=15 [55-leave-and-return.py]=25
)
if [ $# -gt 0 ]; then
	guests=1
	lists=("$*")
else
	guests=${VNAT_GUESTS:-1}
	load=()
	lists=()
	for ((g = 0; g < guests; g++)); do load[g]=0; lists[g]=""; done
	load[0]=30   # KUnit
	while read -r w t; do
		min=0
		for ((g = 1; g < guests; g++)); do [ "${load[g]}" -lt "${load[min]}" ] && min=$g; done
		load[min]=$((load[min] + w))
		lists[min]="${lists[min]} $t"
	done < <(for f in "$here"/tests/*; do t=$(basename "$f"); echo "${weight[$t]:-60} $t"; done | sort -rn)
fi
# Guests at once get one vCPU each: with two vCPUs each, a test took 2.5
# times as long as alone (more vCPU threads than cores). Measured here, two
# one-vCPU guests are not faster than one guest with two (a test takes 1.7
# times as long on one vCPU, and a one-vCPU boot 4 minutes instead of 2),
# so one guest is the default.
cpus=${VNAT_CPUS:-$((guests > 1 ? 1 : 2))}   # VNAT_CPUS: to run named tests as the two guests do
memory=$((guests > 1 ? 2 : 3))G

# One guest: boots, runs guest.sh on its tests, keeps its kernel log.
# The guest's own timeouts are per test; this one only guards against a hung guest.
# VNAT_CONSOLE=1 shows the guest's kernel console (for a guest that hangs).
# Guest g gets the QEMU options qopts[g] and the environment genv[g] too.
declare -A qopts=() genv=()
run_guest() {
	local g=$1 results=$2 label
	shift 2
	if [ "$g" = peer ]; then label=peer; else label=$((g + 1)); fi
	# The list goes in a file: vng passes --exec on the kernel command
	# line, which all the test names overflowed (vng exited 255, silent).
	[ $# -gt 0 ] && printf '%s\n' "$@" >"$results/tests"
	# Once more if vng failed before the guest ran anything.
	local try rc
	for try in 1 2; do
		rc=0
		# shellcheck disable=SC2086 # genv: words of NAME=value
		timeout "${VNAT_GUEST_TIMEOUT:-3600}" "$VNG" --run "$kdir" "${accel[@]}" \
			--cpus "${gcpus[$g]:-$cpus}" --memory "${gmemory[$g]:-$memory}" \
			${VNAT_CONSOLE:+--verbose} --append "$VNAT_ROOTFLAGS" \
			--user root --rwdir "$results" ${peer_dir:+--rwdir "$peer_dir"} --cwd "$top" \
			${qopts[$g]:+"--qemu-opts=${qopts[$g]}"} \
			--exec "env VNAT_YNL=$results/ynl VNAT_KUNIT=$([ "$g" = 0 ] && echo 1 || echo 0) ${genv[$g]:-} $here/guest.sh $results" \
			</dev/null &
		echo $! >>"$timeouts"
		wait $! || rc=$?
		[ "$rc" = 0 ] && break
		echo "# vng exited with $rc"
		[ -f "$results/started" ] && break
		[ "$try" = 1 ] && echo "# guest $label did not start: starting it again"
	done
	if [ -f "$results/dmesg.txt" ]; then
		mkdir -p "$here/results"
		cp "$results/dmesg.txt" "$here/results/dmesg-$label.txt"
		echo "# guest dmesg kept in qemu-tests/results/dmesg-$label.txt"
	fi
}

# Test 31 needs a second kernel: a guest of its own ("peer": one vCPU,
# 1 GiB) that boots beside the guest that runs it, runs
# peer/two-kernels-server.py and nothing else, and is joined to it by two
# links, each a pair of unix datagram sockets between the two QEMU
# processes (-netdev dgram; no host interface, no host address). The two
# share one more directory, VNAT_PEER, for `ready`, `done` and the server's
# records. The test finds its interfaces by MAC address.
declare -A gcpus=([peer]=1) gmemory=([peer]=1G)
peer_dir=""
peer_guest=""
for ((g = 0; g < guests; g++)); do
	[[ " ${lists[g]} " == *" 31-two-kernels.py "* ]] && peer_guest=$g
done
if [ -n "$peer_guest" ]; then
	peer_dir=$(mktemp -d)
	links=$(mktemp -d)
	chmod 777 "$peer_dir"
	for i in 1 2; do
		qopts[$peer_guest]+="-netdev dgram,id=peer$i,local.type=unix,local.path=$links/a$i,remote.type=unix,remote.path=$links/b$i -device virtio-net-pci,netdev=peer$i,mac=52:54:00:56:4e:0$i "
		qopts[peer]+="-netdev dgram,id=peer$i,local.type=unix,local.path=$links/b$i,remote.type=unix,remote.path=$links/a$i -device virtio-net-pci,netdev=peer$i,mac=52:54:00:56:4e:1$i "
	done
	genv[$peer_guest]="VNAT_PEER=$peer_dir"
	# It waits for the test, wherever that comes in the other guest's run.
	genv[peer]="VNAT_PEER=$peer_dir VNAT_TEST_TIMEOUT=3300"
fi

# Each guest's results directory, with the kernel's ynl tool and its schema.
declare -A dirs=()
timeouts=$(mktemp)
trap 'rm -rf "${dirs[@]}" "$timeouts" ${peer_dir:+"$peer_dir" "$links"}' EXIT
# Killed (a timeout around this script, ^C): each guest runs under a
# `timeout` of its own, which is a process group of its own that a signal
# to this script's group does not reach: stop them, or they run on.
trap 'echo "# stopped: stopping the guests" >&2; xargs -r kill -TERM <"$timeouts" 2>/dev/null; exit 143' TERM INT
for g in $(seq 0 $((guests - 1))) ${peer_guest:+peer}; do
	dirs[$g]=$(mktemp -d)
	mkdir -p "${dirs[$g]}/ynl"
	cp -r "$ksrc/tools/net/ynl/pyynl" "${dirs[$g]}/ynl/"
	cp "$ksrc/Documentation/netlink/genetlink.yaml" "${dirs[$g]}/ynl/"
	chmod 755 "${dirs[$g]}" && chmod -R a+rX "${dirs[$g]}/ynl"   # the tests run it unprivileged too
done
start=$SECONDS
if [ -n "$peer_guest" ]; then
	run_guest peer "${dirs[peer]}" ../peer/two-kernels-server.py >"${dirs[peer]}/out" 2>&1 &
fi
for ((g = 1; g < guests; g++)); do
	# shellcheck disable=SC2086 # a list of test names
	run_guest "$g" "${dirs[$g]}" ${lists[g]} >"${dirs[$g]}/out" 2>&1 &
done
# The first guest's output as it comes; the others' once it is done.
echo "# guest 1 of $guests:${lists[0]:- all tests}"
# shellcheck disable=SC2086
run_guest 0 "${dirs[0]}" ${lists[0]}
# A test 31 that never came (or died early) lets the peer go.
[ -n "$peer_guest" ] && touch "$peer_dir/abandon"
wait
for ((g = 1; g < guests; g++)); do
	echo "# guest $((g + 1)) of $guests:${lists[g]}"
	cat "${dirs[$g]}/out"
done
if [ -n "$peer_guest" ]; then
	echo "# the peer guest of 31-two-kernels.py (the second kernel):"
	cat "${dirs[peer]}/out"
fi
all=$guests
[ -n "$peer_guest" ] && all=$((all + 1))
finished=0
for d in "${dirs[@]}"; do [ -f "$d/finished" ] && finished=$((finished + 1)); done
echo "# $all guest(s) in $((SECONDS - start)) s, $finished finished"
[ "$finished" = "$all" ] && echo "# all guests finished"
exit 0

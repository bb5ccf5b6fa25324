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
# estimated to take here (below: what each took on 2026-12-02 plus its
# clean-up; a test not listed counts 60; each test prints what it took).
# The first guest also runs the KUnit suites; every guest ends with its own
# kmemleak scan. Named tests run in one guest.
declare -A weight=(
	[01-load-unload.sh]=46 [02-hooks-per-netns.py]=32 [03-socket-tracking.py]=46
	[04-vnatd-listens.py]=30 [05-netns-delete.py]=54
	[06-rmmod-open-connections.py]=23 [07-vcmp-bad-input.py]=27
	[08-configfs-knobs.py]=22 [10-migrate-client.py]=67 [11-migrate-server.py]=58
	[12-three-moves.py]=61 [13-before-insmod.py]=42
	[14-thousand-connections.py]=85 [15-peer-without-vnat.py]=48
	[16-others-untranslated.py]=51 [17-rmmod-after-migration.py]=42
	[18-control.py]=41 [19-migrate-udp.py]=53 [20-netlink.py]=103
	[21-conflict.py]=41 [22-suspend.py]=73 [23-helper-pid-reuse.py]=36
	[24-vcmp-forgery.py]=52 [25-vcmp-resources.py]=41 [26-vcmp-auth.py]=59
	[27-vcmp-fuzz.py]=167 [28-nat-traversal.py]=123
	[29-openssh.py]=113 [30-nginx-curl.py]=79
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
run_guest() {
	local g=$1 results=$2
	shift 2
	timeout "${VNAT_GUEST_TIMEOUT:-3600}" "$VNG" --run "$kdir" "${accel[@]}" --cpus "$cpus" --memory "$memory" \
		${VNAT_CONSOLE:+--verbose} --append "$VNAT_ROOTFLAGS" \
		--user root --rwdir "$results" --cwd "$top" \
		--exec "env VNAT_YNL=$results/ynl VNAT_KUNIT=$((g == 0)) $here/guest.sh $results $*" \
		</dev/null || echo "# vng exited with $?"
	if [ -f "$results/dmesg.txt" ]; then
		mkdir -p "$here/results"
		cp "$results/dmesg.txt" "$here/results/dmesg-$((g + 1)).txt"
		echo "# guest dmesg kept in qemu-tests/results/dmesg-$((g + 1)).txt"
	fi
}

# Each guest's results directory, with the kernel's ynl tool and its schema.
dirs=()
trap 'rm -rf "${dirs[@]}"' EXIT
for ((g = 0; g < guests; g++)); do
	dirs[g]=$(mktemp -d)
	mkdir -p "${dirs[g]}/ynl"
	cp -r "$ksrc/tools/net/ynl/pyynl" "${dirs[g]}/ynl/"
	cp "$ksrc/Documentation/netlink/genetlink.yaml" "${dirs[g]}/ynl/"
	chmod 755 "${dirs[g]}" && chmod -R a+rX "${dirs[g]}/ynl"   # the tests run it unprivileged too
done
start=$SECONDS
for ((g = 1; g < guests; g++)); do
	# shellcheck disable=SC2086 # a list of test names
	run_guest "$g" "${dirs[g]}" ${lists[g]} >"${dirs[g]}/out" 2>&1 &
done
# The first guest's output as it comes; the others' once it is done.
echo "# guest 1 of $guests:${lists[0]:- all tests}"
# shellcheck disable=SC2086
run_guest 0 "${dirs[0]}" ${lists[0]}
wait
for ((g = 1; g < guests; g++)); do
	echo "# guest $((g + 1)) of $guests:${lists[g]}"
	cat "${dirs[g]}/out"
done
finished=0
for d in "${dirs[@]}"; do [ -f "$d/finished" ] && finished=$((finished + 1)); done
echo "# $guests guest(s) in $((SECONDS - start)) s, $finished finished"
[ "$finished" = "$guests" ] && echo "# all guests finished"
exit 0

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

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
# The kernel's ynl tool and its schema, where the guest can read them.
ksrc=$(readlink -f "$kdir/source")
mkdir -p "$results/ynl"
cp -r "$ksrc/tools/net/ynl/pyynl" "$results/ynl/"
cp "$ksrc/Documentation/netlink/genetlink.yaml" "$results/ynl/"
chmod 755 "$results" && chmod -R a+rX "$results/ynl"   # the tests run it unprivileged too
# The guest's own timeouts are per test; this one only guards against a hung guest.
# VNAT_CONSOLE=1 shows the guest's kernel console (for a guest that hangs).
timeout "${VNAT_GUEST_TIMEOUT:-2400}" "$VNG" --run "$kdir" "${accel[@]}" --cpus 2 --memory 3G \
	${VNAT_CONSOLE:+--verbose} \
	--user root --rwdir "$results" --cwd "$top" \
	--exec "env VNAT_YNL=$results/ynl $here/guest.sh $results $*" \
	</dev/null || echo "# vng exited with $?"
if [ -f "$results/dmesg.txt" ]; then
	mkdir -p "$here/results"
	cp "$results/dmesg.txt" "$here/results/dmesg.txt"
	echo "# guest dmesg kept in qemu-tests/results/dmesg.txt"
fi

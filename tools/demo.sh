#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make demo`: sets everything up, boots the test kernel in QEMU and shows
# a laptop roaming across three networks (three shapes of roaming) while a bulk transfer and an
# interactive session stay alive (see qemu-tests/demo.py); `make
# demo-process` (tools/demo.sh process): a process moves to another host
# with CRIU, its connections with it (qemu-tests/demo_process.py).
set -euo pipefail
. "$(dirname "$0")/guest-env.sh"   # (in the tree from here on)
script=$PWD/qemu-tests/demo.py
[ "${1:-}" = process ] && script=$PWD/qemu-tests/demo_process.py
accel=(--disable-kvm)
probe=$(ls "$VNAT_CACHE"/kvm-probe-"$(basename "$kdir")"-* 2>/dev/null | head -n1 || true)
[ -n "$probe" ] && [ "$(cat "$probe")" = kvm ] && accel=()
echo "Booting the VNAT test kernel (${accel[*]:-KVM}); this takes a little while under emulation..."
exec "$VNG" --run "$kdir" "${accel[@]}" --cpus 2 --memory 3G --user root --cwd "$PWD" --append "$VNAT_ROOTFLAGS" \
	--exec "$guest_env python3 $script" </dev/null

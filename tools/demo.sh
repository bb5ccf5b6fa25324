#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make demo`: sets everything up, boots the test kernel in QEMU and shows
# a laptop roaming across three networks (three shapes of roaming) while a bulk transfer and an
# interactive session stay alive (see qemu-tests/demo.py).
set -euo pipefail
. "$(dirname "$0")/guest-env.sh"
accel=(--disable-kvm)
probe=$(ls "$VNAT_CACHE"/kvm-probe-"$(basename "$kdir")"-* 2>/dev/null | head -n1 || true)
[ -n "$probe" ] && [ "$(cat "$probe")" = kvm ] && accel=()
echo "Booting the VNAT test kernel (${accel[*]:-KVM}); this takes a little while under emulation..."
exec "$VNG" --run "$kdir" "${accel[@]}" --cpus 2 --memory 3G --user root --cwd "$PWD" --append "$VNAT_ROOTFLAGS" \
	--exec "$guest_env python3 $PWD/qemu-tests/demo.py" </dev/null

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench-restore`: the paper's Table 1 (restoration time for N
# connections) in a one-vCPU guest whose clock counts instructions
# (QEMU -icount shift=0,align=off,sleep=off), so that figures repeat.
set -euo pipefail
# The benchmark kernel (no debug options) unless VNAT_KERNEL=test.
export VNAT_KERNEL=${VNAT_KERNEL:-bench}
. "$(dirname "$0")/guest-env.sh"
mkdir -p qemu-tests/results
"$VNG" --run "$kdir" --disable-kvm --cpus 1 --memory 3G --user root --cwd "$PWD" \
	--qemu-opts="-icount shift=0,align=off,sleep=off" \
	--exec "$guest_env ${VNAT_BENCH_CONNECTIONS:+VNAT_BENCH_CONNECTIONS=$VNAT_BENCH_CONNECTIONS} python3 $PWD/qemu-tests/bench_restore.py" \
	</dev/null | tee qemu-tests/results/bench-restore.md

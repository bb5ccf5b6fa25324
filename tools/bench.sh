#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: every benchmark, in one guest with one vCPU and QEMU
# -icount shift=0,align=off,sleep=off, so that guest time counts
# instructions and figures repeat: the paper's Table 1 (restoration time,
# qemu-tests/bench_restore.py) and figures 5-1/5-3/5-5 as ratios plus the
# data gap of a move (qemu-tests/bench_overhead.py). Output in
# qemu-tests/results/bench.md. VNAT_BENCH_ONLY=restore or =overhead runs one.
set -euo pipefail
. "$(dirname "$0")/guest-env.sh"
(cd tools && cargo build --locked --release -q -p vnat-perf)
mkdir -p qemu-tests/results
script="$guest_env VNAT_PERF=$PWD/tools/target/release/vnat-perf"
script+=" ${VNAT_BENCH_SIZES:+VNAT_BENCH_SIZES=$VNAT_BENCH_SIZES}"
"$VNG" --run "$kdir" --disable-kvm --cpus 1 --memory 3G --user root --cwd "$PWD" \
	--qemu-opts="-icount shift=0,align=off,sleep=off" \
	--exec "$script sh -c '${VNAT_BENCH_ONLY:+exec python3 qemu-tests/bench_$VNAT_BENCH_ONLY.py; }python3 qemu-tests/bench_restore.py && echo && python3 qemu-tests/bench_overhead.py'" \
	</dev/null | tee qemu-tests/results/bench.md

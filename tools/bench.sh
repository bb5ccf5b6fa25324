#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: every benchmark, on the benchmark kernel (qemu-tests/kernel.sh
# bench: no debug options), in one guest with one vCPU and QEMU
# -icount shift=0,align=off,sleep=off, so that guest time counts
# instructions and figures repeat: the paper's Table 1 (restoration time,
# qemu-tests/bench_restore.py), figures 5-1/5-3/5-5 as ratios
# (qemu-tests/bench_overhead.py), and a move dissected into its steps with
# MPTCP's handover beside it (qemu-tests/bench_move.py). Output in
# qemu-tests/results/bench.md. VNAT_BENCH_ONLY=restore, =overhead or =move
# runs one; VNAT_BENCH_ONLY=profile runs qemu-tests/bench_profile.py
# (where VNAT2's per-packet cost goes, by perf), which make bench does not.
set -euo pipefail
# The benchmark kernel (no debug options) unless VNAT_KERNEL=test.
export VNAT_KERNEL=${VNAT_KERNEL:-bench}
. "$(dirname "$0")/guest-env.sh"
(cd tools && cargo build --locked --release -q -p vnat-perf)
mkdir -p qemu-tests/results
script="$guest_env VNAT_PERF=$PWD/tools/target/release/vnat-perf"
for v in VNAT_BENCH_SIZES VNAT_BENCH_TESTS VNAT_BENCH_CONNECTIONS VNAT_BENCH_RUNS VNAT_BENCH_SECS VNAT_BENCH_IPV6 VNAT_BENCH_MOVES VNAT_BENCH_PERF; do
	[ -n "${!v:-}" ] && script+=" $v=${!v}"
done
"$VNG" --run "$kdir" --disable-kvm --cpus 1 --memory 3G --user root --cwd "$PWD" --rwdir "$PWD/qemu-tests/results" \
	--qemu-opts="-icount shift=0,align=off,sleep=off" \
	--exec "$script sh -c '${VNAT_BENCH_ONLY:+exec python3 qemu-tests/bench_$VNAT_BENCH_ONLY.py; }python3 qemu-tests/bench_restore.py && echo && python3 qemu-tests/bench_overhead.py && echo && python3 qemu-tests/bench_move.py'" \
	</dev/null | tee qemu-tests/results/bench.md
# The figures as PNG files (matplotlib on the host, installed here: only
# make bench needs it).
if [ "${VNAT_BENCH_ONLY:-overhead}" = overhead ]; then
	/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
		apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null
	/usr/bin/python3 tools/bench-plot.py
fi

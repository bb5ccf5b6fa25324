#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: every benchmark, on the benchmark kernel (qemu-tests/kernel.sh
# bench: no debug options), each guest with one vCPU and QEMU
# -icount shift=0,align=off,sleep=off, so that guest time counts
# instructions and figures repeat: the paper's Table 1 (restoration time,
# qemu-tests/bench_restore.py), figures 5-1 to 5-5 as ratios
# (qemu-tests/bench_overhead.py), and a move dissected into its steps with
# MPTCP's handover beside it (qemu-tests/bench_move.py). Output in
# qemu-tests/results/bench.md. VNAT_BENCH_ONLY=restore, =overhead or =move
# runs one; VNAT_BENCH_ONLY=profile runs qemu-tests/bench_profile.py
# (where VNAT2's per-packet cost goes, by perf), which make bench does not.
#
# The benchmarks run in VNAT_BENCH_GUESTS guests at once (default: one per
# host CPU): the message sizes of the overhead figures are split among
# them, each part with its own baselines (its own vanilla first and last),
# and the restoration and the move take the first guest free. Under icount
# a busy host changes how long a guest takes, not what it measures.
set -euo pipefail
# The benchmark kernel (no debug options) unless VNAT_KERNEL=test.
export VNAT_KERNEL=${VNAT_KERNEL:-bench}
. "$(dirname "$0")/guest-env.sh"
(cd tools && cargo build --locked --release -q -p vnat-perf)
results=$PWD/qemu-tests/results
mkdir -p "$results"
rm -f "$results"/bench-overhead-*.json "$results"/bench-{overhead-*,restore,move,profile}.{md,log}
script="$guest_env VNAT_PERF=$PWD/tools/target/release/vnat-perf"
for v in VNAT_BENCH_TESTS VNAT_BENCH_CONNECTIONS VNAT_BENCH_RUNS VNAT_BENCH_SECS VNAT_BENCH_IPV6 VNAT_BENCH_MOVES VNAT_BENCH_PERF VNAT_BENCH_PROFILE_SIZE; do
	[ -n "${!v:-}" ] && script+=" $v=${!v}"
done

# The jobs, longest first: "name|program|environment".
only=${VNAT_BENCH_ONLY:-all}
guests=${VNAT_BENCH_GUESTS:-$(nproc)}
IFS=, read -ra sizes <<<"${VNAT_BENCH_SIZES:-64,128,256,512,1024,2048,4096,8192}"
jobs=()
parts=0
if [ "$only" = all ] || [ "$only" = overhead ]; then
	parts=$((guests < ${#sizes[@]} ? guests : ${#sizes[@]}))
	for ((k = 0; k < parts; k++)); do
		from=$((k * ${#sizes[@]} / parts)) to=$(((k + 1) * ${#sizes[@]} / parts))
		part=$(IFS=,; echo "${sizes[*]:from:to-from}")
		jobs+=("overhead-$k|bench_overhead.py|VNAT_BENCH_SIZES=$part VNAT_BENCH_OUT=bench-overhead-$k.json")
	done
fi
for b in restore move profile; do
	if [ "$only" = "$b" ] || { [ "$only" = all ] && [ "$b" != profile ]; }; then
		jobs+=("$b|bench_$b.py|")
	fi
done
[ ${#jobs[@]} -gt 0 ] || { echo "VNAT_BENCH_ONLY=$only: no such benchmark" >&2; exit 2; }

# One guest: its standard output in bench-NAME.md, its standard error
# (progress, the kernel's complaints) in bench-NAME.log.
run() {
	local name=$1 prog=$2 env=$3
	"$VNG" --run "$kdir" --disable-kvm --cpus 1 --memory 3G --user root --cwd "$PWD" --rwdir "$results" \
		--qemu-opts="-icount shift=0,align=off,sleep=off" \
		--exec "$script $env python3 qemu-tests/$prog" \
		</dev/null >"$results/bench-$name.md" 2>"$results/bench-$name.log"
}
echo "# make bench: ${#jobs[@]} guests, $guests at a time (one vCPU each, icount); progress in $results/bench-*.log"
declare -A pid_of
failed=0
for job in "${jobs[@]}"; do
	IFS='|' read -r name prog env <<<"$job"
	while [ "$(jobs -rp | wc -l)" -ge "$guests" ]; do
		wait -n || true
	done
	echo "# $(date +%T) $name: $prog $env"
	run "$name" "$prog" "$env" &
	pid_of[$name]=$!
done
for job in "${jobs[@]}"; do
	name=${job%%|*}
	if wait "${pid_of[$name]}"; then
		echo "# $name: done"
	else
		echo "# $name: FAILED; the end of its log:"
		tail -n 20 "$results/bench-$name.log"
		failed=1
	fi
done

# bench.md: the restoration, the overhead figures of every part merged, the
# move, as one guest would have printed them.
{
	if [ "$only" = all ] || [ "$only" = restore ]; then
		cat "$results/bench-restore.md"
		echo
	fi
	if [ "$parts" -gt 0 ]; then
		outs=()
		for ((k = 0; k < parts; k++)); do outs+=("$results/bench-overhead-$k.json"); done
		if ls "${outs[@]}" >/dev/null; then
			/usr/bin/python3 qemu-tests/bench_tables.py "$results/bench-overhead.json" "${outs[@]}"
		fi
	fi
	if [ "$only" = all ] || [ "$only" = move ] || [ "$only" = profile ]; then
		cat "$results/bench-${only/all/move}.md"
	fi
} | tee "$results/bench.md"
# The figures as PNG files (matplotlib on the host, installed here: only
# make bench needs it).
if [ "$parts" -gt 0 ] && [ -s "$results/bench-overhead.json" ]; then
	/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
		apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null
	/usr/bin/python3 tools/bench-plot.py
fi
exit $failed

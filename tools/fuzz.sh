#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the libFuzzer targets of tools/fuzz/ (every decoder of what VNAT
# takes from the network: VCMP version 1 and 2, the stream readers, packet
# headers) with coverage instrumentation, as cargo-fuzz would, and runs each
# for RUNS inputs (default 200000) from its corpus (seeds/, committed: valid
# messages and packets; corpus/, what earlier runs found, not committed); a crash leaves its input
# in tools/fuzz/artifacts/TARGET/. The toolchain is stable: RUSTC_BOOTSTRAP=1
# allows the instrumentation flags, as the kernel's own build does for its
# unstable features. Usage: tools/fuzz.sh [RUNS [TARGET...]]
set -euo pipefail
cd "$(dirname "$0")/fuzz"
runs=${1:-200000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(vcmp_v1 vcmp_v2 vcmp_stream packet icmp export)
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
host=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps build scripts uninstrumented.
cargo build --locked --release -q --target "$host" --bins
rc=0
for t in "${targets[@]}"; do
	mkdir -p "corpus/$t" "artifacts/$t"
	echo "fuzz: $t, $runs runs"
	if ! "target/$host/release/$t" -runs="$runs" -max_len=512 -print_final_stats=1 \
		-artifact_prefix="artifacts/$t/" "corpus/$t" "seeds/$t" 2>"artifacts/$t.log"; then
		tail -n 30 "artifacts/$t.log"
		echo "fuzz: $t FAILED (input in tools/fuzz/artifacts/$t/)"
		rc=1
	else
		grep -E "stat::number_of_executed_units|cov:" "artifacts/$t.log" | tail -n 2 | sed "s/^/fuzz: $t: /"
	fi
done
exit $rc

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: set-up, lints, host tests, a short fuzzing run, the module
# build, the QEMU tests
# and KUnit. Every stage counts its own tests; the last line of output is
# `N passed, M failed`, and the exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export VNAT_CACHE=${VNAT_CACHE:-/var/cache/vnat}
passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); printf 'FAIL %s\n' "$1"; }
stage() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }
finish() {
	echo
	for f in "${failures[@]}"; do echo "failed: $f"; done
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

stage "set-up"
if tools/setup.sh; then pass "setup"; else fail "setup"; finish; fi

stage "test kernel"
if kdir=$(qemu-tests/kernel.sh); then pass "kernel build"; else fail "kernel build"; finish; fi
. tools/kenv.sh

stage "lints: rustfmt and clippy (warnings are errors)"
if tools/lint.sh "$kdir"; then pass "rustfmt + clippy"; else fail "rustfmt + clippy"; fi

stage "host crates: cargo test"
log=$(mktemp)
(cd tools && cargo test --locked 2>&1) | tee "$log"
rc=${PIPESTATUS[0]}
read -r hp hf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } } END { print p + 0, f + 0 }' "$log")
passed=$((passed + hp))
failed=$((failed + hf))
if [ "$rc" != 0 ] || [ "$hp" = 0 ]; then fail "cargo test (exit $rc)"; fi
rm -f "$log"

stage "fuzzing: every decoder of network input, ${VNAT_FUZZ_RUNS:=20000} inputs each"
if tools/fuzz.sh "$VNAT_FUZZ_RUNS"; then pass "fuzz targets"; else fail "fuzz targets"; fi

stage "module build (CLIPPY=1, warnings are errors)"
if make --no-print-directory module KDIR="$kdir" CLIPPY=1; then pass "module build"; else fail "module build"; finish; fi

stage "vnatctl build (the guest tests drive it)"
if (cd tools && cargo build --locked -q); then pass "vnatctl build"; else fail "vnatctl build"; fi

stage "QEMU tests"
log=$(mktemp)
qemu-tests/run.sh "$kdir" 2>&1 | tee "$log"
qp=$(grep -c '^ok ' "$log")
qf=$(grep -c '^not ok ' "$log")
passed=$((passed + qp))
failed=$((failed + qf))
while IFS= read -r l; do failures+=("qemu: ${l#not ok }"); done < <(grep '^not ok ' "$log")
if ! grep -q '^# all guests finished' "$log"; then fail "qemu: a guest did not finish"; fi
rm -f "$log"
finish

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside a test guest (see run.sh): the tests it is given (all under
# qemu-tests/tests/ if none) in turn, each with its own namespaces, then the
# KUnit suites of vnat.ko (unless VNAT_KUNIT=0: another guest runs them) and
# a final kmemleak scan; then it leaves RESULTS_DIR/finished. Prints TAP. A test fails if it exits non-zero, runs
# out of time, or if the kernel log it caused shows a WARN, BUG, Oops, KASAN,
# lockdep, kmemleak or hung-task report.
# Usage: guest.sh RESULTS_DIR [TEST...] (a TEST is a path under tests/; the
# second guest of test 31 runs ../peer/two-kernels-server.py this way; or
# the TESTs in RESULTS_DIR/tests)
set -u
results=${1:?}
shift
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
export VNAT_KO="$top/vnat.ko" VNATCTL="$top/tools/target/debug/vnatctl"
# Compiled Python goes to the guest's /tmp (the repository is read-only here):
# each test is a new process, which otherwise compiled vnattest and the
# kernel's ynl again (seconds under TCG).
export PYTHONPYCACHEPREFIX=/tmp/vnat-pycache PYTHONUNBUFFERED=1 PYTHONPATH="$here"
cd "$top"
# run.sh starts a guest again if it ends before this.
: > "$results/started"

mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
# Forget what boot left for kmemleak; only what the tests allocate counts.
# No automatic scans: under TCG each takes minutes of CPU from the tests;
# the one scan at the end sees every leak that is old enough.
echo clear > /sys/kernel/debug/kmemleak 2>/dev/null
echo scan=off > /sys/kernel/debug/kmemleak 2>/dev/null

splats='WARNING:|BUG:|Oops|KASAN|kernel BUG|general protection fault|possible circular locking|inconsistent lock state|possible recursive locking|lockdep|unreferenced object|blocked for more than|UBSAN|refcount_t:|list_add corruption|list_del corruption|Call Trace:'

# The tests are named on the command line or, from run.sh, in
# RESULTS_DIR/tests, one per line (a long list on vng's --exec overflowed
# the kernel command line, 2,048 bytes, and vng failed without a word).
names=("$@")
if [ $# -eq 0 ] && [ -s "$results/tests" ]; then
	mapfile -t names <"$results/tests"
fi
if [ ${#names[@]} -gt 0 ]; then
	tests=()
	for t in "${names[@]}"; do tests+=("$here/tests/$t"); done
else
	tests=("$here"/tests/*)
fi
kunit_suites=(vnat_virtualization vnat_knobs vnat_translation vnat_rules vnat_socket_tracking vnat_crypto vnat_authentication vnat_process_migration)
[ "${VNAT_KUNIT:-1}" = 1 ] || kunit_suites=()
echo "TAP version 13"
echo "1..$(( ${#tests[@]} + ${#kunit_suites[@]} + 1 ))"
n=0

# Prints the kernel log written since marker $1.
log_since() {
	dmesg -t | sed -n "/vnat-test-mark $1\$/,\$p"
}

loaded() { grep -q '^vnat ' /proc/modules; }

# Unloads the module and deletes the test's namespaces. The module is in
# use while migrated connections live (their packets need its rules): it
# goes first if it can (connections closing at the test's end have a few
# seconds to end their FIN exchange, with both ends still there). Else a
# process the test left (one in a session of its own, as a process CRIU
# restored, outlives the test's process group) may hold them: every
# process outside the guest's own network namespace is killed, the
# namespaces deleted, and the module goes once their sockets have. Fails
# if it is still in use 300 s after that (cleanup_net runs behind earlier
# tests' namespaces, and a socket whose peer went first resends its FIN
# for minutes): a reference that is never dropped would be a leak.
cleanup() {
	local i
	for i in $(seq 50); do
		loaded || break
		rmmod vnat 2>/dev/null && break
		sleep 0.1
	done
	if loaded; then
		local own
		own=$(readlink /proc/self/ns/net)
		find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%h %l\n' 2>/dev/null |
			awk -v own="$own" '$2 ~ /^net:/ && $2 != own { sub("^/proc/", "", $1); sub("/ns$", "", $1); print $1 }' |
			xargs -r kill -KILL 2>/dev/null
	fi
	# One ip for all of them (an ip process takes a second under TCG).
	ip -all netns delete
	for i in $(seq 600); do
		loaded || return 0
		rmmod vnat 2>/dev/null && return 0
		sleep 0.5
	done
	echo "vnat is still in use 300 s after the namespaces were deleted (lsmod: $(grep '^vnat ' /proc/modules))"
	return 1
}

for t in "${tests[@]}"; do
	n=$((n + 1))
	name=$(basename "$t")
	echo "vnat-test-mark $name" > /dev/kmsg
	# -k: a test that ignores TERM (or is stuck) is killed, with its group.
	# Also written as it comes to $results/running.log, which the host can
	# read while the test runs (a hung test shows where it hangs).
	start=$SECONDS
	out=$(timeout -k 10 "${VNAT_TEST_TIMEOUT:-600}" "$t" 2>&1 | tee "$results/running.log"; exit "${PIPESTATUS[0]}")
	rc=$?
	took=$((SECONDS - start))
	start=$SECONDS
	if ! clean_err=$(cleanup 2>/dev/null) && [ "$rc" = 0 ]; then rc=1; fi
	cleaned=$((SECONDS - start))
	echo "vnat-test-mark $name-end" > /dev/kmsg
	bad=$(log_since "$name" | grep -E "$splats")
	printf '%s\n' "$out" | sed 's/^/# /'
	echo "# $name took ${took} s (guest clock), its clean-up (rmmod, namespaces) ${cleaned} s"
	[ -z "$clean_err" ] || echo "# clean-up: $clean_err"
	if [ "$rc" = 0 ] && [ -z "$bad" ]; then
		echo "ok $n - $name"
	else
		[ "$rc" = 0 ] || echo "# exit status $rc"
		if [ -n "$bad" ]; then
			echo "# kernel log of this test shows a splat:"
			log_since "$name" | sed 's/^/#   /'
		fi
		echo "not ok $n - $name"
	fi
done

# KUnit: the suites run when the module loads; their KTAP goes to the log.
if [ ${#kunit_suites[@]} -gt 0 ]; then
	echo "vnat-test-mark kunit" > /dev/kmsg
	insmod "$VNAT_KO"
	rmmod vnat
	kunit=$(log_since kunit)
fi
for s in "${kunit_suites[@]}"; do
	n=$((n + 1))
	printf '%s\n' "$kunit" | awk -v s="$s" '$0 ~ "# Subtest: " s "$" { on = 1 } on && /(^|[^#] *)(not )?ok [0-9]+ / { print "# " $0 } $0 ~ "^(not )?ok [0-9]+ " s "$" { on = 0 }'
	bad=$(printf '%s\n' "$kunit" | grep -E "$splats")
	if printf '%s\n' "$kunit" | grep -qE "^\s*ok [0-9]+ $s\$" && [ -z "$bad" ]; then
		echo "ok $n - kunit: $s"
	else
		if [ -n "$bad" ] && [ -z "${kunit_splat_shown:-}" ]; then
			echo "# kernel log while the KUnit suites ran shows a splat:"
			printf '%s\n' "$kunit" | grep -vE '^\s*(# |ok |not ok |KTAP)' | tail -80 | sed 's/^/#   /'
			kunit_splat_shown=1
		fi
		echo "not ok $n - kunit: $s"
	fi
done

# kmemleak only reports objects older than 5 s (its min_age), so let the
# last allocations of the module age before the scan.
n=$((n + 1))
sleep 6
start=$SECONDS
echo scan > /sys/kernel/debug/kmemleak
echo "# kmemleak scan took $((SECONDS - start)) s (guest clock)"
leaks=$(cat /sys/kernel/debug/kmemleak)
if [ -z "$leaks" ]; then
	echo "ok $n - kmemleak: nothing leaked"
else
	printf '%s\n' "$leaks" | head -60 | sed 's/^/# /'
	echo "not ok $n - kmemleak: unreferenced objects"
fi
dmesg > "$results/dmesg.txt"
echo "# guest finished"
touch "$results/finished"

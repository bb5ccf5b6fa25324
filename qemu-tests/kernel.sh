#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the VNAT test kernel from Debian's linux-source-7.x with the config
# fragment qemu-tests/kernel.config on top of allnoconfig, and prints the build
# directory on stdout. The build is cached under $VNAT_CACHE, keyed by the
# source package version, the fragment, rustc's and clang's versions, so a
# change of any of them builds a new kernel. Progress goes to stderr every 30 s;
# the whole build log is kept next to the build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
VNAT_CACHE=${VNAT_CACHE:-/var/cache/vnat}
. "$here/../tools/kenv.sh"
LINUX_SOURCE_PKG=$_vnat_LINUX_SOURCE_PKG
LINUX_SOURCE_TARBALL=$_vnat_LINUX_SOURCE_TARBALL

# `kernel.sh bench`: the benchmark kernel, without the debug options
# (kernel-bench.config), cached apart (bench-kernel-KEY, one kept).
variant=${1:-test}
fragment=$(mktemp)
trap 'rm -f "$fragment"' EXIT
case "$variant" in
test) cp "$here/kernel.config" "$fragment" ;;
bench)
	dropped=$(grep -oE '^# CONFIG_[A-Z0-9_]+ is not set' "$here/kernel-bench.config" | awk '{print $2}' | paste -sd'|')
	# An option named there goes with the options of its name's prefix
	# (CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE with CONFIG_DEBUG_KMEMLEAK).
	{ grep -vE "^(# )?($dropped)(_[A-Z0-9_]+)?[= ]" "$here/kernel.config"; grep -E '^# CONFIG_' "$here/kernel-bench.config"; } > "$fragment"
	;;
*) echo "usage: $0 [test|bench]" >&2; exit 2 ;;
esac

pkgver=$(dpkg-query -W -f='${Version}' "$LINUX_SOURCE_PKG")
key=$( { echo "$LINUX_SOURCE_PKG $pkgver"; rustc --version; clang-19 --version | head -n1
	  cat "$fragment"; } | sha256sum | cut -c1-16)
src="$VNAT_CACHE/src/$LINUX_SOURCE_PKG-$pkgver"
if [ "$variant" = bench ]; then out="$VNAT_CACHE/bench-kernel-$key"; else out="$VNAT_CACHE/kernel-$key"; fi
log() { printf 'kernel: %s\n' "$*" >&2; }

if [ -f "$out/.vnat-done" ]; then
	echo "$out"
	exit 0
fi

if [ ! -f "$src/.vnat-extracted" ]; then
	log "extracting $LINUX_SOURCE_TARBALL"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -C "$src.tmp" --strip-components=1 -xf "$LINUX_SOURCE_TARBALL"
	touch "$src.tmp/.vnat-extracted"
	mv "$src.tmp" "$src"
fi

mk=(make -C "$src" O="$out" LLVM=-19 -j"$(nproc)")
mkdir -p "$out"
"${mk[@]}" -s allnoconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$fragment" >/dev/null
"${mk[@]}" -s olddefconfig

# Every option the fragment asks for must have survived olddefconfig.
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) want=$line ;;
	"# CONFIG_"*" is not set") want=$line ;;
	*) continue ;;
	esac
	opt=${want#\# }; opt=${opt%%[= ]*}
	got=$(grep -E "^$opt=|^# $opt is not set" "$out/.config" || echo "# $opt is not set")
	if [ "$got" != "$want" ]; then
		log "config: asked '$want', got '$got'"
		bad=1
	fi
done < "$fragment"
[ "$bad" = 0 ] || { log "the config fragment does not apply; see above"; exit 1; }

# A kernel of the same source and toolchain built with another fragment is a
# head start: Kbuild rebuilds from it only what the changed options touch
# (fixdep records which CONFIG_ each object depends on, and every command
# line, so nothing stale survives). The old build is copied, not moved, until
# this one is done.
if [ ! -f "$out/vmlinux" ]; then
	same() { grep -E "^CONFIG_($1)=" "$2/.config"; }
	for seed in "$VNAT_CACHE"/kernel-*; do
		[ "$seed" != "$out" ] && [ -f "$seed/.vnat-done" ] || continue
		grep -qxF "include $src/Makefile" "$seed/Makefile" || continue
		v='RUSTC_VERSION_TEXT|CC_VERSION_TEXT|LLD_VERSION|BINDGEN_VERSION_TEXT'
		[ "$(same "$v" "$seed")" = "$(same "$v" "$out")" ] || continue
		log "starting from $seed (same source and toolchain, another fragment)"
		cp "$out/.config" "$out.config.new"
		cp -a "$seed/." "$out/"
		mv "$out.config.new" "$out/.config"
		rm -f "$out/.vnat-done" "$out/.vnat-build-seconds"
		sed -i "s|^export KBUILD_OUTPUT = .*|export KBUILD_OUTPUT = $out|" "$out/Makefile"
		"${mk[@]}" -s olddefconfig
		break
	done
fi

log "building $LINUX_SOURCE_PKG $pkgver in $out (log: $out/build.log)"
start=$(date +%s)
"${mk[@]}" bzImage modules modules_prepare > "$out/build.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
	for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null && sleep 1; done
	kill -0 "$pid" 2>/dev/null || break
	n=$(grep -c '^  [A-Z]' "$out/build.log" || true)
	log "$(( $(date +%s) - start ))s, $n steps, last: $(tail -n1 "$out/build.log" | cut -c1-80)"
done
if ! wait "$pid"; then
	tail -n 40 "$out/build.log" >&2
	log "build failed; full log in $out/build.log"
	exit 1
fi
log "built in $(( $(date +%s) - start ))s"
echo "$(( $(date +%s) - start ))" > "$out/.vnat-build-seconds"
touch "$out/.vnat-done"
# Keep the disk from filling up: this kernel and the one built before it
# stay (a worktree of an older commit needs the older one, and each is the
# head start of the other), the rest go.
if [ "$variant" = bench ]; then
	ls -t "$VNAT_CACHE"/bench-kernel-*/.vnat-done | tail -n +2
else
	ls -t "$VNAT_CACHE"/kernel-*/.vnat-done | tail -n +3
fi | while read -r old; do
	rm -rf "$(dirname "$old")"
done
echo "$out"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds CRIU 4.2.1 from the upstream tarball of Debian's source package
# (sid's criu 4.2.1-1, whose changelog says "New upstream version 4.2.1")
# and installs the criu binary as /usr/local/sbin/criu. The package's
# debian/ tarball (packaging, and patches if it has any) is missing from the
# mirror here, so the tarball is built as upstream released it.
#
# Bookworm's criu 3.17.1 cannot run on our Linux 7.3: it does not know the
# vDSO layout of 6.13 and later, and since 6.16 the kernel refuses
# getsockopt(SO_PASSCRED) on TCP/UDP sockets, which criu before 4.2 takes
# for a fatal error. Run as root, by tools/setup.sh; idempotent, and the
# binary is replaced in one rename, so a failed run leaves the old one.
# Its build dependencies are in setup.sh's package list.
set -euo pipefail

VNAT_CACHE=${VNAT_CACHE:-/var/cache/vnat}
VERSION=4.2.1
dest=/usr/local/sbin/criu
src=$VNAT_CACHE/criu-src
# The pool keeps only sid's current version; snapshot.debian.org keeps every
# file, named by its SHA-1.
pool=http://deb.debian.org/debian/pool/main/c/criu
snapshot=https://snapshot.debian.org/file
# name, SHA-256, SHA-1 (from criu_4.2.1-1.dsc)
orig=("criu_$VERSION.orig.tar.xz"
      29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9
      943aa42a53e9678fee0c8cb85c544afa2d331229)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# criu --version says "Version: 4.2.1" (and a GitID line for git builds).
has_version() {
	local out
	out=$("$1" --version 2>/dev/null) || return 1
	grep -qx "Version: $VERSION" <<<"$out"
}

has_version "$dest" && exit 0

[ "$(id -u)" = 0 ] || die "run as root ($dest)"
start=$SECONDS

# --- the tarball, verified ---------------------------------------------
# fetch NAME SHA256 SHA1: into $src/NAME unless it is there and intact.
fetch() {
	local name=$1 sha256=$2 sha1=$3 url
	local f=$src/$name
	if [ -f "$f" ] && sha256sum -c --status <<<"$sha256  $f"; then
		return 0
	fi
	for url in "$pool/$name" "$snapshot/$sha1"; do
		log "criu: download $url"
		rm -f "$f.part"
		if curl -fsSL --retry 2 --connect-timeout 20 -o "$f.part" "$url"; then
			if sha256sum -c --status <<<"$sha256  $f.part"; then
				mv -f "$f.part" "$f"
				return 0
			fi
			log "criu: $url: wrong SHA-256, not used"
		fi
	done
	rm -f "$f.part"
	return 1
}
mkdir -p "$src"
fetch "${orig[@]}" || die "cannot download ${orig[0]} (pool and snapshot.debian.org failed)"
# --- unpack and build, in a fresh tree each time ---------------------------
build=$src/build
rm -rf "$build"
mkdir -p "$build"
tar -xJf "$src/${orig[0]}" -C "$build" --strip-components=1
log "criu: make criu $VERSION (about a minute; log: $src/build.log)"
# An outer make's MAKEFLAGS (its jobserver, its command-line variables) is not
# for criu's build.
if ! (cd "$build" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -j2 criu) > "$src/build.log" 2>&1; then
	tail -n 15 "$src/build.log" >&2
	die "criu build failed (see $src/build.log)"
fi
# Our tests use --network-lock nftables: criu must be built with libnftables.
needed=$(readelf -d "$build/criu/criu")
if grep -q 'without nftables' "$src/build.log" || ! grep -q 'NEEDED.*libnftables' <<<"$needed"; then
	die "criu was built without nftables support (see $src/build.log)"
fi
has_version "$build/criu/criu" || die "the built criu does not say Version: $VERSION"

# --- install: a temporary file in the same directory, then one rename ---------
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp "$(dirname "$dest")/.criu.XXXXXX")
trap 'rm -f "$tmp"' EXIT
install -m 0755 "$build/criu/criu" "$tmp"
mv -f "$tmp" "$dest"
trap - EXIT
rm -rf "$build"
log "criu: $VERSION installed as $dest ($((SECONDS - start)) s)"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# One-time, idempotent machine set-up for building and testing VNAT.
# Installs (as root) the Debian packages, rust-src of the same version as
# rustc, a pinned bindgen-cli and virtme-ng (in a virtualenv), the newest
# linux-source-7.x and CRIU 4.2.1 (tools/criu.sh). Everything it downloads or
# builds lives under $VNAT_CACHE. A stamp file keyed by the content of this
# script and of tools/criu.sh makes repeated runs fast.
set -euo pipefail

VNAT_CACHE=${VNAT_CACHE:-/var/cache/vnat}
BINDGEN_VERSION=0.72.1
VNG_VERSION=1.42
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$VNAT_CACHE"
stamp="$VNAT_CACHE/setup.stamp"
key="$(cat "$0" "$here/criu.sh" | sha256sum | cut -c1-16)-$(rustc --version | tr ' ' _)"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] &&
   [ -x "$VNAT_CACHE/venv/bin/vng" ] && [ -x "$VNAT_CACHE/cargo/bin/bindgen" ] &&
   [ -f "$VNAT_CACHE/env.mk" ] && [ -x /usr/local/sbin/criu ]; then
	exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (apt-get install is needed)"
export DEBIAN_FRONTEND=noninteractive

# --- apt suites: bookworm-backports and trixie-backports, pinned low --------
src=/etc/apt/sources.list.d/vnat-backports.sources
cat > "$src.new" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
# Only the packages we take from the extra suites may come from them; every
# other package on the machine keeps its bookworm version.
pin=/etc/apt/preferences.d/vnat-backports
cat > "$pin.new" <<'PIN'
Package: *
Pin: release n=trixie-backports
Pin-Priority: 1

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 1

Package: qemu-system-x86 qemu-system-common qemu-system-data seabios libbrlapi0.8
Pin: release n=bookworm-backports
Pin-Priority: 500

Package: linux-source-7.*
Pin: release n=trixie-backports
Pin-Priority: 500
PIN
# rust-src must match rustc exactly; pin that one version.
rust_ver=$(rustc --version | awk '{print $2}')
printf '\nPackage: rust-src\nPin: version %s+*\nPin-Priority: 500\n' "$rust_ver" >> "$pin.new"
changed=0
cmp -s "$src.new" "$src" || { mv "$src.new" "$src"; changed=1; }
cmp -s "$pin.new" "$pin" || { mv "$pin.new" "$pin"; changed=1; }
rm -f "$src.new" "$pin.new"
lists_age=$(( $(date +%s) - $(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0) ))
if [ "$changed" = 1 ] || ! ls /var/lib/apt/lists/*trixie-backports*Packages* >/dev/null 2>&1 ||
   [ "$lists_age" -gt 86400 ]; then
	log "apt-get update"
	apt-get update -qq
fi

rust_src_ver=$(apt-cache madison rust-src | awk -v v="$rust_ver" '$3 ~ "^"v"([+~-]|$)" {print $3; exit}')
[ -n "$rust_src_ver" ] || die "no rust-src $rust_ver in the apt suites (rustc is $rust_ver; apt has: $(apt-cache madison rust-src | awk '{print $3}' | tr '\n' ' '))"
linux_pkg=$(apt-cache search --names-only '^linux-source-7\.[0-9]+$' | awk '{print $1}' | sort -V | tail -n1)
[ -n "$linux_pkg" ] || die "no linux-source-7.x package in the apt suites"

pkgs=(clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev libssl-dev
      cpio kmod xz-utils zstd rsync iproute2 tcpdump socat iperf3 python3-venv
      busybox-static ethtool procps udev nftables
      python3-yaml python3-jsonschema    # these two: the kernel's ynl tool
      openssh-server openssh-client nginx curl vsftpd    # the applications the tests move
      ca-certificates                                    # https downloads (tools/criu.sh)
      # What tools/criu.sh needs to build criu 4.2.1 (bookworm's 3.17 cannot
      # run on Linux 7.3): the protobuf-c code of the image files (protoc,
      # its C plugin, descriptor.proto), libnl, libnet (soccr), libcap,
      # libuuid, libnftables for --network-lock nftables. The rest of
      # Debian's Build-Depends is for the docs, python and optional parts.
      gcc libc6-dev make pkgconf protobuf-compiler protobuf-c-compiler libprotobuf-c-dev
      libprotobuf-dev libnl-3-dev libnet1-dev libcap-dev uuid-dev libnftables-dev)
missing=()
for p in "${pkgs[@]}" "$linux_pkg"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
dpkg-query -W -f='${Version}' rust-src 2>/dev/null | grep -qx "$rust_src_ver" || missing+=("rust-src=$rust_src_ver")
dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q 'ok installed' ||
	missing+=(qemu-system-x86)
if [ ${#missing[@]} -gt 0 ]; then
	log "apt-get install ${missing[*]}"
	# The servers (sshd, nginx, vsftpd) run only in the test guests, with
	# their own configuration: never start them on this machine.
	policy=/usr/sbin/policy-rc.d
	own_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
	fi
	rc=0
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
	[ "$own_policy" = 0 ] || rm -f "$policy"
	[ "$rc" = 0 ] || die "apt-get install failed (exit $rc)"
fi

# --- bindgen-cli, pinned ------------------------------------------------------
if ! "$VNAT_CACHE/cargo/bin/bindgen" --version 2>/dev/null | grep -q " $BINDGEN_VERSION"; then
	log "cargo install bindgen-cli $BINDGEN_VERSION"
	cargo install --quiet --locked --root "$VNAT_CACHE/cargo" bindgen-cli --version "=$BINDGEN_VERSION"
fi

# --- virtme-ng in a virtualenv --------------------------------------------------
if ! "$VNAT_CACHE/venv/bin/vng" --version 2>/dev/null | grep -q "$VNG_VERSION"; then
	log "pip install virtme-ng==$VNG_VERSION"
	python3 -m venv "$VNAT_CACHE/venv"
	"$VNAT_CACHE/venv/bin/pip" install -q "virtme-ng==$VNG_VERSION"
fi

rust_lib_src=/usr/src/rustc-$rust_ver/library
[ -d "$rust_lib_src" ] || rust_lib_src=$(dpkg -L rust-src | grep -m1 '/library$')
cat > "$VNAT_CACHE/env.mk" <<MK
# Generated by tools/setup.sh; do not edit.
LINUX_SOURCE_PKG := $linux_pkg
LINUX_SOURCE_TARBALL := $(ls /usr/src/$linux_pkg.tar.* | head -n1)
RUST_LIB_SRC := $rust_lib_src
LIBCLANG_PATH := /usr/lib/llvm-19/lib
BINDGEN := $VNAT_CACHE/cargo/bin/bindgen
VNG := $VNAT_CACHE/venv/bin/vng
MK

# --- CRIU 4.2.1, from the upstream tarball of Debian's source package -------
VNAT_CACHE="$VNAT_CACHE" "$here/criu.sh"
echo "$key" > "$stamp"
log "done"

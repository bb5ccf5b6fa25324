# SPDX-License-Identifier: GPL-2.0
# Sourced: exports the toolchain paths that tools/setup.sh recorded (rust-src
# of rustc's version, libclang of LLVM 19, the pinned bindgen), when they exist.
# With a kernel of your own and your own toolchain set-up, it changes nothing.
_env="${VNAT_CACHE:-/var/cache/vnat}/env.mk"
if [ -f "$_env" ]; then
	eval "$(sed -n 's/^\([A-Z_]*\) := \(.*\)$/_vnat_\1="\2"/p' "$_env")"
	export RUST_LIB_SRC="${RUST_LIB_SRC:-$_vnat_RUST_LIB_SRC}"
	export LIBCLANG_PATH="${LIBCLANG_PATH:-$_vnat_LIBCLANG_PATH}"
	PATH="$(dirname "$_vnat_BINDGEN"):$(dirname "$_vnat_VNG"):$PATH"
	export PATH
	VNG="$_vnat_VNG"
fi
unset _env
# The guests' root is the host's, over 9p. virtme-ng mounts it without a
# page cache, so every exec and import reads the files again through 9p:
# under TCG a 20 MB debug vnatctl took 15 s to start, `ip` 1 s. The root is
# read-only in the guest and nothing changes it during a run, so the guests
# that run tests and the demo mount it with cache=loose (the same flags
# otherwise; the kernel takes the last rootflags= given).
VNAT_ROOTFLAGS="rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"

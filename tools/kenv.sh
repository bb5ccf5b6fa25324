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

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# rustfmt on the module (with the kernel's .rustfmt.toml) and on the host
# crates; clippy on the host crates with warnings as errors. Clippy on the
# module runs in its build (`make module CLIPPY=1`, with -Dwarnings). The
# module's files must form layers that only point down; the netlink spec
# must validate, and the files generated from it (vnat/generated/,
# tools/vnatctl/src/generated.rs) must be what it generates.
# Usage: tools/lint.sh KDIR
set -euo pipefail
cd "$(dirname "$0")/.."
kdir=${1:?usage: tools/lint.sh KDIR}
src=$(readlink -f "$kdir/source" 2>/dev/null || echo "$kdir")
rc=0
echo "rustfmt: module (kernel style: $src/.rustfmt.toml)"
rustfmt --check --edition 2021 --config-path "$src/.rustfmt.toml" vnat/vnat_main.rs || rc=1
echo "rustfmt: host crates"
(cd tools && cargo fmt --all --check) || rc=1
(cd tools/fuzz && cargo fmt --check) || rc=1
echo "layers: the module's imports point down"
/usr/bin/python3 tools/check-layers.py --self-test || rc=1
echo "netlink: spec and the files generated from it"
/usr/bin/python3 tools/check-netlink.py "$src" || rc=1
echo "clippy: host crates"
(cd tools && cargo clippy --locked --all-targets -q -- -D warnings) || rc=1
exit $rc

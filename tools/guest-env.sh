# SPDX-License-Identifier: GPL-2.0
# Sourced by the commands that boot the test kernel (demo, bench-restore):
# sets up the machine, builds kernel and module, and sets $kdir and $VNG.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export VNAT_CACHE=${VNAT_CACHE:-/var/cache/vnat}
tools/setup.sh
kdir=$(qemu-tests/kernel.sh)
make --no-print-directory module KDIR="$kdir"
. tools/kenv.sh
# vnatctl: the guest programs read connections through it.
(cd tools && cargo build --locked -q -p vnatctl)
# The kernel's ynl and its schema: the programs read counters through it
# (vnattest.stats), as the tests do (qemu-tests/run.sh copies them alike).
ynl_dir=$PWD/qemu-tests/results/ynl
rm -rf "$ynl_dir" && mkdir -p "$ynl_dir"
ksrc=$(readlink -f "$kdir/source")
cp -r "$ksrc/tools/net/ynl/pyynl" "$ynl_dir/"
cp "$ksrc/Documentation/netlink/genetlink.yaml" "$ynl_dir/"
chmod -R a+rX "$ynl_dir"
# The environment of a Python program under qemu-tests/ in the guest.
guest_env="env VNAT_YNL=$ynl_dir VNAT_KO=$PWD/vnat.ko VNATCTL=$PWD/tools/target/debug/vnatctl PYTHONPATH=$PWD/qemu-tests PYTHONPYCACHEPREFIX=/tmp/vnat-pycache"

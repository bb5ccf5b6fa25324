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
# The environment of a Python program under qemu-tests/ in the guest.
guest_env="env VNAT_KO=$PWD/vnat.ko VNATCTL=$PWD/tools/target/debug/vnatctl PYTHONPATH=$PWD/qemu-tests PYTHONDONTWRITEBYTECODE=1"

# SPDX-License-Identifier: GPL-2.0
# Sourced by the commands that boot the test kernel (demo, bench-restore):
# sets up the machine, builds kernel and module, and sets $kdir and $VNG.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export VNAT_CACHE=${VNAT_CACHE:-/var/cache/vnat}
tools/setup.sh
kdir=$(qemu-tests/kernel.sh)
make --no-print-directory module KDIR="$kdir"
. tools/kenv.sh
# The environment of a Python program under qemu-tests/ in the guest.
guest_env="env VNAT_KO=$PWD/vnat.ko PYTHONPATH=$PWD/qemu-tests PYTHONDONTWRITEBYTECODE=1"

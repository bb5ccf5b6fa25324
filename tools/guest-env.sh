# SPDX-License-Identifier: GPL-2.0
# Sourced by the commands that boot the test kernel (demo, bench-restore):
# sets up the machine, builds kernel and module, and sets $kdir, $ko and
# $VNG.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export VNAT_CACHE=${VNAT_CACHE:-/var/cache/vnat}
tools/setup.sh
# VNAT_KERNEL=bench (make bench): the kernel without the debug options, and
# a vnat.ko built for it from a copy of the sources (the tree's own vnat.ko
# is the test kernel's).
if [ "${VNAT_KERNEL:-test}" = bench ]; then
	kdir=$(qemu-tests/kernel.sh bench)
	# Under the tree: the guest sees the host's /var as its own tmpfs.
	ko_src=$PWD/qemu-tests/results/bench-module
	rm -rf "$ko_src" && mkdir -p "$ko_src"
	cp -r Kbuild vnat vnatd_kthread "$ko_src/"
	(. tools/kenv.sh "$kdir" &&
		make -s -C "$kdir" M="$ko_src" LLVM=-19 KCFLAGS=-Werror KRUSTFLAGS=-Dwarnings modules)
	ko=$ko_src/vnat.ko
else
	kdir=$(qemu-tests/kernel.sh)
	make --no-print-directory module KDIR="$kdir"
	ko=$PWD/vnat.ko
fi
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
guest_env="env VNAT_YNL=$ynl_dir VNAT_KO=$ko VNATCTL=$PWD/tools/target/debug/vnatctl PYTHONPATH=$PWD/qemu-tests PYTHONPYCACHEPREFIX=/tmp/vnat-pycache"

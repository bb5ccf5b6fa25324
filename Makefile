# SPDX-License-Identifier: GPL-2.0
#
# VNAT, out-of-tree Rust kernel module. The two commands:
#   make check   set up the machine, build our kernel and vnat.ko, run every test
#   make demo    set up, boot the test kernel and show VNAT at work
# Other targets: demo-process (a process moves to another host with CRIU), setup,
# kernel, module (the default), host-test, lint, qemu-test,
# bench (all benchmarks), bench-restore, fuzz [RUNS=n], clean. Build against your own
# Rust-enabled kernel with
#   make KDIR=/path/to/kernel/build [LLVM=1]

VNAT_CACHE ?= /var/cache/vnat
export VNAT_CACHE
LLVM ?= -19
export LLVM

# KDIR given on the command line: build against that kernel and set up nothing.
# Otherwise: our own test kernel, built (once) by qemu-tests/kernel.sh.
ifeq ($(KDIR),)
OWN_KERNEL := 1
KDIR_CMD := tools/setup.sh && qemu-tests/kernel.sh
else
KDIR_CMD := echo $(KDIR)
endif

KBUILD_FLAGS = LLVM=$(LLVM) KCFLAGS=-Werror KRUSTFLAGS=-Dwarnings

.PHONY: all module setup kernel check demo demo-process bench bench-restore host-test lint qemu-test fuzz clean

all: module

setup:
	@tools/setup.sh

kernel: setup
	@qemu-tests/kernel.sh >/dev/null

module:
	@kdir=$$($(KDIR_CMD)) && . tools/kenv.sh "$$kdir" && \
	$(MAKE) -C "$$kdir" M=$(CURDIR) $(KBUILD_FLAGS) CLIPPY=$(CLIPPY) modules

host-test:
	cd tools && cargo test --locked

lint:
	@kdir=$$($(KDIR_CMD)) && . tools/kenv.sh "$$kdir" && tools/lint.sh "$$kdir" && \
	$(MAKE) -C "$$kdir" M=$(CURDIR) $(KBUILD_FLAGS) CLIPPY=1 modules

# make qemu-test [TESTS="19-migrate-udp.py ..."]
qemu-test: module
	@kdir=$$($(KDIR_CMD)) && qemu-tests/run.sh "$$kdir" $(TESTS)

check:
	@tools/check.sh

# libFuzzer on every decoder of network input (tools/fuzz/), RUNS inputs each.
fuzz:
	@tools/fuzz.sh $(RUNS)

demo:
	@tools/demo.sh

# A process moves to another host with CRIU (qemu-tests/demo_process.py).
demo-process:
	@tools/demo.sh process

bench:
	@tools/bench.sh

bench-restore:
	@tools/bench-restore.sh

clean:
	@kdir=$$($(KDIR_CMD)) && $(MAKE) -C "$$kdir" M=$(CURDIR) clean
	rm -rf tools/target tools/fuzz/target

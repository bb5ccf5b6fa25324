#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The generic netlink family's one source is vnat/vnat.yaml. Checks that it
is a valid YNL genetlink spec (the kernel's schema), then generates every
file that derives from it into a temporary directory and compares them with
the checked-in ones: the C numbers, policies and ops (the kernel's
ynl_gen_c.py) and the Rust numbers and enums of the module and of vnatctl
(tools/ynl-gen-rust.py). With --write, replaces the checked-in files instead.
Usage: tools/check-netlink.py KSRC [--write]   (KSRC: a kernel source tree)"""
import difflib
import os
import shutil
import subprocess
import sys
import tempfile

SPEC = "vnat/vnat.yaml"
# Output file: the generator's arguments.
C_GEN = {
    "vnat/generated/uapi/linux/vnat.h": ["--mode", "uapi", "--header"],
    "vnat/generated/netlink.h": ["--mode", "kernel", "--header"],
    "vnat/generated/netlink.c": ["--mode", "kernel", "--source"],
}
RUST_GEN = {
    "vnat/generated/netlink.rs": ["--mode", "module"],
    "tools/vnatctl/src/generated.rs": ["--mode", "vnatctl"],
}


def run(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{what} failed:\n{(r.stderr or r.stdout).strip()}")


def generate(ksrc, out):
    """Every generated file, under `out` at its place in the tree."""
    # ynl_gen_c.py takes the schema from two levels above the spec and names
    # the spec relative to the directory that has MAINTAINERS: a small tree
    # where that is vnat/vnat.yaml.
    root = os.path.join(out, "_spec")
    os.makedirs(os.path.join(root, "vnat"))
    open(os.path.join(root, "MAINTAINERS"), "w").close()
    shutil.copy(f"{ksrc}/Documentation/netlink/genetlink.yaml", root)
    spec = os.path.join(root, SPEC)
    shutil.copy(SPEC, spec)
    for path, args in C_GEN.items():
        dst = os.path.join(out, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        run([sys.executable, f"{ksrc}/tools/net/ynl/pyynl/ynl_gen_c.py", *args, "--spec", spec,
             "-o", dst], f"ynl_gen_c.py {' '.join(args)} for {path}")
    for path, args in RUST_GEN.items():
        dst = os.path.join(out, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        run([sys.executable, "tools/ynl-gen-rust.py", *args, "--spec", SPEC, "-o", dst],
            f"tools/ynl-gen-rust.py {' '.join(args)} for {path}")


def main():
    if len(sys.argv) < 2 or sys.argv[2:] not in ([], ["--write"]):
        sys.exit(__doc__.split("Usage: ")[1])
    ksrc, write = sys.argv[1], sys.argv[2:] == ["--write"]
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    run([sys.executable, f"{ksrc}/tools/net/ynl/pyynl/cli.py", "--spec", SPEC,
         "--schema", f"{ksrc}/Documentation/netlink/genetlink.yaml", "--validate"],
        f"{SPEC}: validation against the kernel's genetlink schema")
    errors = []
    with tempfile.TemporaryDirectory() as out:
        generate(ksrc, out)
        for path in [*C_GEN, *RUST_GEN]:
            with open(os.path.join(out, path), encoding="utf-8") as f:
                want = f.read()
            if write:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(want)
                print(f"wrote {path}")
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    have = f.read()
            except FileNotFoundError:
                errors.append(f"{path} is missing")
                continue
            if have != want:
                diff = difflib.unified_diff(want.splitlines(), have.splitlines(),
                                            f"{path} (generated from {SPEC})",
                                            f"{path} (checked in)", lineterm="", n=1)
                errors.append(f"{path} is not what {SPEC} generates (edited by hand, or the "
                              f"spec changed without regenerating):\n    "
                              + "\n    ".join(list(diff)[:40]))
    # A checked-in file there that nothing generates would be edited by hand.
    tracked = subprocess.run(["git", "ls-files", "vnat/generated"], capture_output=True,
                             text=True).stdout.split()
    for p in tracked:
        if p not in C_GEN and p not in RUST_GEN:
            errors.append(f"{p} is in vnat/generated/ but not generated from {SPEC}")
    if errors:
        sys.exit("netlink: " + "\n".join(errors) +
                 f"\nregenerate with: tools/check-netlink.py {ksrc} --write")
    if not write:
        print(f"{SPEC}: valid, and every file generated from it is up to date")


if __name__ == "__main__":
    main()

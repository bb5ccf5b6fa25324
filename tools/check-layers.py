#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks that the module's files form layers that only point down.

Each Rust file of the module belongs to one layer, and the files are in a
total order below: a file may use (`crate::x`, `use crate::{x, ...}`) only
files listed before it. So nothing at the bottom (pure code, then the FFI,
then state) depends on mechanisms or interfaces above it, and there is no
cycle. A file missing from the list is an error too: a new file says where
it belongs. Usage: tools/check-layers.py [--self-test]"""
import pathlib
import re
import sys

# (layer, module, files); a module's files are its root and what it includes.
ORDER = [
    ("pure", "nl_gen", ["vnat/generated/netlink.rs"]),
    ("pure", "vcmp", ["vnat/vcmp.rs"]),
    ("pure", "checksum", ["vnat/checksum.rs"]),
    ("pure", "mapping", ["vnat/mapping.rs"]),
    ("pure", "packet", ["vnat/packet.rs"]),
    ("pure", "location_hiding", ["vnat/location_hiding.rs"]),
    ("pure", "key", ["vnat/key.rs"]),
    ("pure", "vcmp2", ["vnat/vcmp2.rs"]),
    ("pure", "export", ["vnat/export.rs"]),
    ("ffi", "ffi", ["vnat/ffi.rs", "vnat/ffi/*.rs"]),
    ("state", "knobs", ["vnat/knobs.rs"]),
    ("state", "counters", ["vnat/counters.rs"]),
    ("state", "helper", ["vnat/helper.rs"]),
    ("state", "virtualization", ["vnat/virtualization.rs"]),
    ("state", "process_migration", ["vnat/process_migration.rs"]),
    ("state", "rules", ["vnat/rules.rs"]),
    ("state", "requests", ["vnat/requests.rs"]),
    ("state", "netns", ["vnat/netns.rs"]),
    ("state", "events", ["vnat/events.rs"]),
    ("mechanism", "authentication", ["vnat/authentication.rs"]),
    ("mechanism", "interception", ["vnat/interception.rs"]),
    ("mechanism", "translation", ["vnat/translation.rs"]),
    ("mechanism", "migration", ["vnat/migration.rs"]),
    ("mechanism", "vnatd", ["vnatd_kthread/*.rs"]),
    ("interface", "pernet", ["vnat/pernet.rs"]),
    ("interface", "netlink", ["vnat/netlink.rs"]),
    ("interface", "configfs", ["vnat/configfs.rs"]),
    ("interface", "vnat_main", ["vnat/vnat_main.rs"]),
]

USE_BLOCK = re.compile(r"\buse\s+crate::\{(.*?)\};", re.S)
USE_ONE = re.compile(r"\buse\s+crate::(\w+)")
PATH = re.compile(r"\bcrate::(\w+)::")


def used_modules(text):
    """The crate modules a file names, and the line of the first use of each."""
    found = {}

    def add(name, pos):
        found.setdefault(name, text.count("\n", 0, pos) + 1)

    for m in USE_BLOCK.finditer(text):
        # Top-level items of the braces: `a::{...}`, `b`, `c::d`.
        depth, start, body = 0, 0, m.group(1)
        items = []
        for i, ch in enumerate(body):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(body[start:i])
                start = i + 1
        items.append(body[start:])
        for item in items:
            name = re.match(r"\s*(\w+)", item)
            if name:
                add(name.group(1), m.start())
    for m in USE_ONE.finditer(text):
        add(m.group(1), m.start())
    for m in PATH.finditer(text):
        add(m.group(1), m.start())
    return found


def strip_comments(text):
    """Code only: doc and line comments may name any module."""
    return re.sub(r"//.*", "", text)


def check(root):
    rank, owner, errors = {}, {}, []
    for i, (layer, module, globs) in enumerate(ORDER):
        rank[module] = (i, layer)
        for g in globs:
            for f in sorted(root.glob(g)):
                owner[f] = module
    for f in sorted(list(root.glob("vnat/**/*.rs")) + list(root.glob("vnatd_kthread/*.rs"))):
        if f not in owner:
            errors.append(f"{f.relative_to(root)}: not in any layer (add it to tools/check-layers.py)")
            continue
        me = owner[f]
        mine, layer = rank[me]
        for name, line in used_modules(strip_comments(f.read_text())).items():
            if name == me:
                continue
            if name not in rank:
                continue  # an item of the crate root (macros, `THIS_MODULE`)
            theirs, their_layer = rank[name]
            if theirs >= mine:
                errors.append(f"{f.relative_to(root)}:{line}: {me} ({layer}) uses {name} "
                              f"({their_layer}), which is not below it")
    return errors


def self_test():
    """The check catches an import that points up."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        for _, _, globs in ORDER:
            for g in globs:
                p = d / g.replace("*", "x")
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("")
        (d / "vnat/virtualization.rs").write_text("use crate::{\n    migration::Outgoing,\n};\n")
        (d / "vnat/rules.rs").write_text("// crate::netlink:: in a comment is fine\n")
        errors = check(d)
        assert len(errors) == 1 and "virtualization (state) uses migration" in errors[0], errors
        (d / "vnat/stray.rs").write_text("")
        assert any("stray.rs: not in any layer" in e for e in check(d))
    print("check-layers self-test: an upward import and a stray file are caught")


if __name__ == "__main__":
    if "--self-test" in sys.argv:
        self_test()
    root = pathlib.Path(__file__).resolve().parent.parent
    errors = check(root)
    if errors:
        sys.exit("layers: imports that do not point down:\n  " + "\n  ".join(errors))
    print(f"layers: {len(ORDER)} modules, every import points down")

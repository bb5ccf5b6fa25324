#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks that vnat/vnat.yaml is a valid YNL genetlink spec and that the
numbers in vnat/netlink.h (which the shim uses) are the spec's: attributes
numbered from 1 in spec order, operations from 1, enums from 0.
Usage: tools/check-netlink.py KSRC"""
import re
import subprocess
import sys

import yaml

ksrc = sys.argv[1]
r = subprocess.run([sys.executable, f"{ksrc}/tools/net/ynl/pyynl/cli.py", "--spec", "vnat/vnat.yaml",
                    "--schema", f"{ksrc}/Documentation/netlink/genetlink.yaml", "--validate"],
                   capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"vnat/vnat.yaml does not validate: {r.stderr.strip()}")
spec = yaml.safe_load(open("vnat/vnat.yaml"))
header = open("vnat/netlink.h").read()


def enum_body(first_entry):
    m = re.search(r"enum[^{]*\{([^}]*" + re.escape(first_entry) + r"[^}]*)\}", header)
    if not m:
        sys.exit(f"netlink.h: no enum with {first_entry}")
    names = [re.sub(r"\s*=.*", "", x.strip()) for x in m.group(1).split(",")]
    return [n for n in names if n and not n.startswith("__") and not n.endswith("_MAX")]


def c_name(prefix, name):
    return prefix + name.upper().replace("-", "_")


errors = []
for d in spec["definitions"]:
    want = [c_name(f"VNAT_{d['name'].upper().replace('-', '_')}_", e["name"]) for e in d["entries"]]
    if enum_body(want[0]) != want:
        errors.append(f"enum {d['name']}: header {enum_body(want[0])}, spec {want}")
attrs = [c_name("VNAT_A_CONN_", a["name"]) for a in spec["attribute-sets"][0]["attributes"]]
if enum_body(attrs[0]) != attrs or not re.search(rf"{attrs[0]} = 1\b", header):
    errors.append(f"attributes: header {enum_body(attrs[0])}, spec {attrs} (from 1)")
ops = [c_name("VNAT_CMD_", o["name"]) for o in spec["operations"]["list"]]
if enum_body(ops[0]) != ops or not re.search(rf"{ops[0]} = 1\b", header):
    errors.append(f"operations: header {enum_body(ops[0])}, spec {ops} (from 1)")
if errors:
    sys.exit("vnat/netlink.h does not match vnat/vnat.yaml:\n  " + "\n  ".join(errors))
print("vnat/vnat.yaml: valid, and vnat/netlink.h matches it")

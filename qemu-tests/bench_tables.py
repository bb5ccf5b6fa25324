#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The tables of bench_overhead.py's results, from their JSON form, so that
the runs of several guests (make bench splits the message sizes among
them) print as one: `bench_tables.py OUT.json IN.json...` merges the INs
into OUT and prints its tables. Each size's ratios are to the vanilla of
the run that measured that size; the systems' order is the runs'.

The JSON form: {"runs", "secs", "sizes", "systems": {system: {"TEST/SIZE":
{"rate", "spread", "cpu_per_op"}}}}; a system whose name ends in "(IPv6)"
is a ratio to "vanilla (IPv6)", every other to "vanilla"."""
import json
import sys

NAMES = {"stream": ("TCP_STREAM", "MB/s", 1e-6, "CPU ms per MB", 1e9),
         "rr": ("TCP_RR", "transactions/s", 1, "CPU µs per transaction", 1e6),
         "crr": ("TCP_CRR", "connections/s", 1, "CPU µs per connection", 1e6)}
V6 = " (IPv6)"


def merge(parts):
    """One result of several runs' results, each run measured other sizes."""
    first = parts[0]
    for p in parts[1:]:
        if (p["runs"], p["secs"]) != (first["runs"], first["secs"]):
            sys.exit("bench_tables: the runs differ in their number or length")
    systems = {}
    for p in parts:
        for system, res in p["systems"].items():
            systems.setdefault(system, {}).update(res)
    sizes = sorted({n for p in parts for n in p["sizes"]})
    failed = [f for p in parts for f in p.get("failed", [])]
    return {"runs": first["runs"], "secs": first["secs"], "sizes": sizes, "systems": systems, "failed": failed}


def table(data, test, field, base, unit, scale, fmt, spread):
    """The markdown table of `field` for `test`: the base system's value
    (times `scale`, in `unit`), then every other system of its family
    (IPv4 or IPv6) as a ratio to it, per size; with `spread`, the row's
    largest spread."""
    sizes = [n for n in data["sizes"] if f"{test}/{n}" in data["systems"][base]]
    out = ["| system | " + " | ".join(str(n) for n in sizes) + (" | spread |" if spread else " |"),
           "|---|" + "---:|" * (len(sizes) + spread)]
    for system, res in data["systems"].items():
        if system.endswith(V6) != base.endswith(V6) or not any(f"{test}/{n}" in res for n in sizes):
            continue
        cells = []
        for n in sizes:
            v = res.get(f"{test}/{n}")
            if v is None:
                cells.append("")
            elif system == base:
                cells.append(f"{v[field] * scale:{fmt}}")
            else:
                cells.append(f"{v[field] / data['systems'][base][f'{test}/{n}'][field]:.3f}")
        if spread:
            cells.append(f"{max(res[f'{test}/{n}']['spread'] for n in sizes if f'{test}/{n}' in res) * 100:.1f} %")
        out.append(f"| {system + f' ({unit})' if system == base else system} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def tables(data):
    """Every table of `data`, as bench_overhead.py prints them."""
    out = [f"Each figure: median of {data['runs']} runs of {data['secs']:g} s of guest time (1 vCPU, QEMU "
           "-icount shift=0,align=off,sleep=off; the benchmark kernel, without debug options); "
           "spread = max/min - 1 of the runs; CPU = the time the vCPU was busy (/proc/stat) per operation. "
           "Ratios are to vanilla, measured first in the same run.\n"]
    for base, over in (("vanilla", ""), ("vanilla" + V6, " over IPv6")):
        if base not in data["systems"]:
            continue
        for test, (title, unit, scale, cpu_unit, cpu_scale) in NAMES.items():
            if not any(k.startswith(test + "/") for k in data["systems"][base]):
                continue
            out.append(f"{title}{over}: {base}'s rate ({unit}), then each system's as a ratio to it, per "
                       "message size (bytes); the largest spread of the row in the last column.\n")
            out.append(table(data, test, "rate", base, unit, scale, ".1f", True))
            out.append(f"\n{title}{over}, CPU cost: {base}'s ({cpu_unit}), then each system's as a ratio to it.\n")
            out.append(table(data, test, "cpu_per_op", base, cpu_unit, cpu_scale, ".3f", False))
            out.append("")
    failed = data.get("failed", [])
    if failed:
        out.append(f"Runs that failed ({len(failed)}; each figure is the median of the others):\n")
        out.extend(f"- {system}, {test}, {size} bytes: {what}" for system, test, size, what in failed)
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    parts = []
    for path in sys.argv[2:]:
        with open(path) as f:
            parts.append(json.load(f))
    merged = merge(parts)
    with open(sys.argv[1], "w") as f:
        json.dump(merged, f, indent=1)
    print(tables(merged))

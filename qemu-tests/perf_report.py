#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""perf's report of a guest's samples, for the benchmarks that profile
(bench_profile.py, bench_restore.py with VNAT_BENCH_PERF=1): rows of
share and name, with the module's Rust symbols demangled."""
import re
import subprocess

# The idle loop's symbols: samples of an idle vCPU.
IDLE = ("pv_native_safe_halt", "default_idle", "native_safe_halt")


def demangle(sym):
    """A Rust (v0) symbol of the module as its path without the crate
    (`packet::Packet::rewrite`); others as they are."""
    if not sym.startswith("_R"):
        return sym
    s = re.sub(r"Cs[0-9A-Za-z]*_|B[0-9A-Za-z]*_|Ms[0-9A-Za-z]*_", "", sym[2:])
    parts, i = [], 0
    while i < len(s):
        m = re.match(r"\d+", s[i:])
        if not m:
            i += 1
            continue
        n, j = int(m.group()), i + len(m.group())
        if s[j:j + 1] == "_":
            j += 1
        parts.append(s[j:j + n])
        i = j + n
    return "::".join(parts[1:]) or sym


def report(data, sort):
    """`perf report` of `data` sorted by `sort`: (share %, name) rows over
    all samples."""
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none",
                          "--percent-limit", "0.5"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"perf report -i {data}: {out.stderr.strip()}")
    out = out.stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if not parts or line.startswith("#") or not parts[0].endswith("%"):
            continue
        # "[dso] [k] symbol - -" (the last two: perf's IPC columns).
        name = [w for w in parts[1:] if w not in ("[k]", "[.]", "-")]
        rows.append((float(parts[0][:-1]), " ".join(name[:1] + [demangle(w) for w in name[1:]])))
    return rows


def busy_table(data, top=20):
    """The share of busy samples (not the idle loop's) of each object and
    of the `top` symbols in `data`, as Markdown tables; and the busy share
    of all samples."""
    syms = report(data, "dso,symbol")
    idle = sum(s for s, n in syms if any(i in n for i in IDLE))
    busy = 100 - idle
    lines = ["| object | share of busy samples |", "|---|---:|"]
    for share, dso in report(data, "dso"):
        # The idle loop is the kernel's: not busy.
        if dso == "[kernel.kallsyms]":
            share -= idle
        lines.append(f"| {dso} | {share / busy * 100:.1f} % |")
    lines += ["", "| symbol | share of busy samples |", "|---|---:|"]
    for share, sym in [r for r in syms if not any(i in r[1] for i in IDLE)][:top]:
        lines.append(f"| `{sym}` | {share / busy * 100:.1f} % |")
    return busy, "\n".join(lines)

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Plots qemu-tests/results/bench-overhead.json (written by `make bench` in
the guest) in the manner of the paper's figures 5-1 to 5-5: one PNG per
figure under qemu-tests/results/, the systems as lines, the message size on
the x axis. Usage: tools/bench-plot.py [RESULTS_DIR]"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "qemu-tests", "results")
with open(os.path.join(results, "bench-overhead.json")) as f:
    data = json.load(f)
sizes = data["sizes"]
note = (f"median of {data['runs']} runs of {data['secs']:g} s guest time; 1 vCPU, "
        "QEMU -icount shift=0,align=off,sleep=off; benchmark kernel")
figures = [
    ("fig5-1-tcp-stream.png", "Figure 5-1: TCP_STREAM throughput", "stream", "rate", 1e-6, "MB/s"),
    ("fig5-2-tcp-stream-cpu.png", "Figure 5-2: TCP_STREAM CPU cost", "stream", "cpu_per_op", 1e9, "CPU ms per MB"),
    ("fig5-3-tcp-rr.png", "Figure 5-3: TCP_RR", "rr", "rate", 1, "transactions/s"),
    ("fig5-4-tcp-rr-cpu.png", "Figure 5-4: TCP_RR CPU cost", "rr", "cpu_per_op", 1e6, "CPU µs per transaction"),
    ("fig5-5-tcp-crr.png", "Figure 5-5: TCP_CRR", "crr", "rate", 1, "connections/s"),
    ("fig5-6-tcp-crr-cpu.png", "TCP_CRR CPU cost", "crr", "cpu_per_op", 1e6, "CPU µs per connection"),
]
for name, title, test, field, scale, unit in figures:
    # A test the run left out (VNAT_BENCH_TESTS) has no figure.
    if not any(f"{test}/{n}" in res for res in data["systems"].values() for n in sizes):
        continue
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system, res in data["systems"].items():
        ys = [res.get(f"{test}/{n}", {}).get(field) for n in sizes]
        if all(y is None for y in ys):
            continue
        ax.plot(sizes, [None if y is None else y * scale for y in ys], marker="o", label=system)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.text(0.01, 0.01, note, fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(os.path.join(results, name), dpi=100)
    plt.close(fig)
    print(f"wrote {os.path.join(results, name)}")

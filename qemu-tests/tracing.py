#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The benchmarks' view of the kernel's trace (tracefs): VNAT's trace events
(vnat:*), the kernel's own and kprobes, read back with the guest's
monotonic clock (trace_clock mono), so that they compare with a program's
time.monotonic()."""
import os
import re

from vnattest import sh

TRACING = "/sys/kernel/tracing"
if not os.path.isdir(os.path.join(TRACING, "events")):
    sh(f"mount -t tracefs nodev {TRACING}")


def tracefs(path, value):
    with open(os.path.join(TRACING, path), "w") as f:
        f.write(value)


def netns_inum(ns):
    return int(sh(f"ip netns exec {ns} stat -L -c %i /proc/self/ns/net").strip())


def parse(text):
    """The trace's events: (time, event, fields) in order; fields["_pid"] is
    the pid of the task the event came from."""
    events = []
    for line in text.splitlines():
        if line.startswith("#") or ": " not in line:
            continue
        try:
            head, rest = line.split(": ", 1)
            t = float(head.split()[-1])
            name, _, fields = rest.partition(": ")
        except ValueError:
            continue
        kv = dict(f.split("=", 1) for f in fields.split() if "=" in f)
        kv["_text"] = fields
        task = re.search(r"-(\d+)\s+\[\d+\]", head)
        kv["_pid"] = int(task.group(1)) if task else -1
        events.append((t, name, kv))
    return events


def read_trace():
    """Stops tracing and returns its events, the trace emptied."""
    tracefs("tracing_on", "0")
    with open(os.path.join(TRACING, "trace")) as f:
        events = parse(f.read())
    tracefs("trace", "")
    return events


def on_cpu(evs, start, end):
    """From `start` to `end`, the time each task ran (by `sched_switch`
    events: one CPU), in seconds by pid, and each pid's name; pid 0 is
    the idle task."""
    ran, names, running, at = {}, {0: "idle"}, None, start
    for t, name, kv in evs:
        if name != "sched_switch":
            continue
        prev, nxt = int(kv["prev_pid"]), int(kv["next_pid"])
        names.setdefault(prev, kv["prev_comm"])
        names.setdefault(nxt, kv["next_comm"])
        if t <= start:
            running = nxt
            continue
        if running is None:
            running = prev
        ran[running] = ran.get(running, 0.0) + min(t, end) - at
        if t >= end:
            break
        at, running = t, nxt
    else:
        if running is not None and at < end:
            ran[running] = ran.get(running, 0.0) + end - at
    return ran, names


def first(evs, after, name, netns=None, pred=lambda kv: True):
    """The time of the first event `name` (of namespace `netns`) at or after
    `after`, or None."""
    for t, n, kv in evs:
        if t >= after and n == name and (netns is None or kv.get("netns") == str(netns)) and pred(kv):
            return t
    return None


def last(evs, name, netns=None, pred=lambda kv: True):
    """The time of the last event `name` (of namespace `netns`), or None."""
    ts = [t for t, n, kv in evs if n == name and (netns is None or kv.get("netns") == str(netns)) and pred(kv)]
    return ts[-1] if ts else None

#!/usr/bin/env python3
"""Split a proxy's perf profile into where its CPU goes, per request.

    bench/perf-split.py PROFILE.data CPU_US_PER_REQ [PROFILE.data CPU_US ...]

Each profile's samples (self time, from `perf report`) are sorted into
coarse parts by the symbol they land in: the kernel, hyper/http/bytes,
tokio/mio, the plugins' compiled wasm (JIT code perf cannot name),
wasmtime, Weir's own code, the allocator, libc and the vDSO, and the rest.
Each part's share times the peer's CPU per request (from bench/peers.sh)
gives microseconds per request, so two peers profiled in one run (e.g.
hyper-floor and weir-router) can be compared part by part:

    PERF=1 PERF_ARGS="-F 1999" ONLY="hyper-floor weir-router" bench/peers.sh 10
    bench/perf-split.py bench/perf-hyper-floor.data 21 bench/perf-router.data 32

Inlining moves some work between parts (a hyper function inlined into a
Weir one counts as Weir), so read differences of a microsecond or more.
"""

import collections
import re
import subprocess
import sys

LINE = re.compile(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)")


def part(dso: str, kind: str, sym: str) -> str:
    """The coarse part a sample in `sym` (of `dso`) belongs to."""
    head = sym[:80]
    if kind == "k":
        return "kernel"
    if "JIT" in dso or dso.startswith("perf-") or sym.startswith("wasm"):
        return "wasm (plugins)"
    if dso.startswith("libc") or dso == "[vdso]":
        return "libc, vDSO"
    if "mi_" in head or "mimalloc" in head:
        return "allocator"
    if "wasmtime" in head or "cranelift" in head:
        return "wasmtime"
    if "weir::" in head or "floor_proxy" in head:
        return "weir"
    if any(k in head for k in ("hyper", "httparse", "http::", "bytes::")):
        return "hyper, http, bytes"
    if "tokio" in head or "mio::" in head:
        return "tokio, mio"
    if "prometheus" in head:
        return "prometheus"
    return "other (std, core, ...)"


def split(data: str) -> collections.Counter:
    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "-g", "none",
         "--sort", "dso,sym", "-q", "--percent-limit", "0"],
        capture_output=True, text=True, check=True,
    ).stdout
    parts: collections.Counter = collections.Counter()
    for line in report.splitlines():
        m = LINE.match(line)
        if m:
            parts[part(m.group(2), m.group(3), m.group(4))] += float(m.group(1))
    return parts


def main(args: list) -> None:
    if len(args) < 2 or len(args) % 2:
        sys.exit(__doc__)
    profiles = [(args[i], float(args[i + 1])) for i in range(0, len(args), 2)]
    columns = []
    for data, cpu in profiles:
        parts = split(data)
        total = sum(parts.values()) or 1.0
        columns.append({k: v / total * cpu for k, v in parts.items()})
    names = sorted({k for c in columns for k in c}, key=lambda k: -max(c.get(k, 0) for c in columns))
    print(f"{'us per request':24s}" + "".join(f"{d.split('/')[-1]:>22s}" for d, _ in profiles))
    for name in names:
        print(f"{name:24s}" + "".join(f"{c.get(name, 0.0):22.2f}" for c in columns))
    print(f"{'total':24s}" + "".join(f"{cpu:22.2f}" for _, cpu in profiles))


if __name__ == "__main__":
    main(sys.argv[1:])

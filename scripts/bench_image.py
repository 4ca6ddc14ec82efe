#!/usr/bin/env python3
"""Time ``rundeps scan`` inside a root laid out like an official
python:3.x-alpine image (scripts/make_demo_root.py: psycopg2 and Pillow built
from source, lib-dynload/_tkinter) whose repositories cannot be reached -- a
build without network -- against ``scanelf --needed --nobanner --recursive``
of the same ``/usr/local`` (the pipeline rundeps replaces).

Runs whole processes alternately and prints medians and ratios:

* ``scanelf``: the reference;
* ``rundeps, no cache``: ``rundeps scan --root ROOT --no-cache``;
* ``rundeps, repeat run``: ``rundeps scan --root ROOT --cache-dir C`` after one warm-up.

Every rundeps run must exit 0 and print the run-time set.

Usage: ``python scripts/bench_image.py [--runs N] [--rundeps PATH]``
(``--rundeps`` default: the ``rundeps`` next to this Python).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_demo_root as demo  # noqa: E402

EXPECTED = "libpq\nlibsharpyuv\ntiff\n"


def timed(args) -> float:
    started = time.perf_counter()
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or (args[1:2] == ["scan"] and proc.stdout != EXPECTED):
        raise SystemExit(f"{' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--rundeps", default=str(Path(sys.executable).with_name("rundeps")))
    args = ap.parse_args(argv)
    scanelf = shutil.which("scanelf")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        demo.build_demo_root(root, workdir=Path(tmp) / "build", tkinter=True)
        (root / "etc/apk/repositories").write_text(
            "https://rundeps-bench.invalid/alpine/v3.20/main\nhttps://rundeps-bench.invalid/alpine/v3.20/community\n")
        cache = Path(tmp) / "cache"
        runs = {
            "rundeps, no cache": [args.rundeps, "scan", "--root", str(root), "--no-cache"],
            "rundeps, repeat run": [args.rundeps, "scan", "--root", str(root), "--cache-dir", str(cache)],
        }
        if scanelf:
            runs = {"scanelf": [scanelf, "--needed", "--nobanner", "--recursive", str(root / "usr/local")],
                    **runs}
        timed(runs["rundeps, repeat run"])  # warm the cache
        times = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, cmd in runs.items():
                times[name].append(timed(cmd))
    ref = statistics.median(times["scanelf"]) if scanelf else None
    print(f"python:alpine-like root, no network, medians of {args.runs} runs (load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"{'run':<22} {'median':>8} {'min':>8} {'x scanelf':>10}")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{med / ref:.2f}" if ref else "-"
        print(f"{name:<22} {med:>7.3f}s {min(ts):>7.3f}s {ratio:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark ``rundeps scan --image`` against what a CI job does without it:
unpack the saved image with ``tar -x`` (the outer archive, then each layer
in order), then ``rundeps scan --root`` the folder (issue 19).

The image holds the benchmark's tree A (``scripts/bench.py``: a
site-packages of 19 musllinux wheels, about 5,700 files and 540 MB, 310 ELF
files; downloaded once under ``--work``) as ``/usr/local/lib/python3.12/
site-packages`` plus a small apk database, split into ``--layers`` layers
(default 2: the database and one half of the packages, then the other
half), written as a ``docker save`` archive once with gzip-compressed layers
and once uncompressed (as ``docker save`` writes them).

Rows, whole processes run alternately ``--runs`` times, medians:

* ``tar -x``: unpacking only (``tar -xf`` of the archive, ``tar -xzf``/``-xf``
  of each layer, to a fresh folder on the same disk);
* ``tar -x + scan --root``: unpacking, then ``rundeps scan --root DIR --no-cache``;
* ``scan --image``: ``rundeps scan --image IMAGE --no-cache``, nothing extracted;
* ``scan --image, repeat``: ``rundeps scan --image IMAGE --cache-dir C`` after
  one warm-up run (the image file unchanged: no layer is read).

Ratios are against ``tar -x + scan --root``; the peak RSS column is each
command's own (GNU time), the target for ``scan --image`` being under 200 MB.
Before timing, the two ways must print the same packages.

Usage: ``python scripts/bench_scan_image.py [--runs N] [--work DIR] [--layers N]``
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SITE = "usr/local/lib/python3.12/site-packages"


def load_bench():
    spec = importlib.util.spec_from_file_location("rundeps_bench", PROJECT / "scripts" / "bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def add_folder(tar: tarfile.TarFile, top: Path, prefix: str, pick) -> None:
    """Add the files under ``top`` as ``prefix/...`` (folders always, files when ``pick(relpath)``)."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, top)
        arc_dir = prefix if rel_dir == "." else f"{prefix}/{rel_dir}"
        info = tar.gettarinfo(dirpath, arcname=arc_dir)
        tar.addfile(info)
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not pick(rel):
                continue
            info = tar.gettarinfo(full, arcname=f"{arc_dir}/{name}")
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def build_layers(tree: Path, db: bytes, n: int):
    """``n`` uncompressed layer files' bytes: the database first, then tree A's top folders dealt out."""
    tops = sorted(os.listdir(tree))
    out = []
    for i in range(n):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            if i == 0:
                for d in ("lib", "lib/apk", "lib/apk/db"):
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                info = tarfile.TarInfo("lib/apk/db/installed")
                info.size = len(db)
                tar.addfile(info, io.BytesIO(db))
            mine = set(tops[i::n])
            add_folder(tar, tree, SITE, lambda rel, mine=mine: rel.split("/", 1)[0] in mine)
        out.append(buf.getvalue())
    return out


def write_archive(path: Path, layers, compress: bool) -> Path:
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["python3"]},
                      "rootfs": {"type": "layers",
                                 "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]}}).encode()
    names = []
    with tarfile.open(path, "w") as tar:
        for t in layers:
            blob = gzip.compress(t, compresslevel=6, mtime=0) if compress else t
            name = hashlib.sha256(blob).hexdigest() + "/layer.tar"
            names.append(name)
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        for name, data in ((hashlib.sha256(cfg).hexdigest() + ".json", cfg),
                           ("manifest.json", json.dumps([{"Config": hashlib.sha256(cfg).hexdigest() + ".json",
                                                          "Layers": names}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def unpack_script(archive: Path, dest: Path, compress: bool) -> str:
    """The shell a CI job runs to unpack a ``docker save`` archive (whiteouts aside)."""
    flag = "-xzf" if compress else "-xf"
    q = shlex.quote
    return (f"set -e; rm -rf {q(str(dest))}; mkdir -p {q(str(dest))}/outer {q(str(dest))}/rootfs; "
            f"tar -xf {q(str(archive))} -C {q(str(dest))}/outer; "
            f"for l in $(python3 -c 'import json,sys; print(\" \".join(json.load(open(sys.argv[1]))[0][\"Layers\"]))' "
            f"{q(str(dest))}/outer/manifest.json); do tar {flag} {q(str(dest))}/outer/$l -C {q(str(dest))}/rootfs; done")


def timed(argv, ok=(0, 1)):
    """(wall seconds, peak RSS MB, stdout) of one process under GNU time."""
    import time

    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name] + argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        if p.returncode not in ok:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr.decode(errors='replace')}")
        lines = [ln for ln in tf.read().splitlines() if ln.strip()]
    return wall, int(lines[-1]) / 1024.0, p.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/rundeps-bench", help="work folder (wheels, tree A, images); reused")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--rundeps", default=None, help="the rundeps command (default: python -m rundeps on the checkout)")
    args = ap.parse_args(argv)
    work = Path(args.work)
    bench = load_bench()
    tree = bench.build_tree_a(work)
    db = bench.write_db(work / "image-db").read_bytes()
    rundeps = shlex.split(args.rundeps) if args.rundeps else [sys.executable, "-m", "rundeps"]
    env_root = work / "image-unpacked"
    layers = build_layers(tree, db, args.layers)
    size = sum(len(t) for t in layers) / 1e6
    print(f"tree A in {args.layers} layers, {size:.0f} MB uncompressed; {args.runs} runs each, medians")
    print(f"{'image':<8} {'row':<24} {'seconds':>8} {'ratio':>7} {'peak MB':>8}")
    for compress in (True, False):
        label = "gzip" if compress else "tar"
        archive = work / f"image-{args.layers}-{label}.tar"
        if not archive.exists():
            write_archive(archive, layers, compress)
        unpack = ["sh", "-c", unpack_script(archive, env_root, compress)]
        scan_root = rundeps + ["scan", "--root", str(env_root / "rootfs"), "--no-cache", "/usr/local"]
        scan_image = rundeps + ["scan", "--image", str(archive), "--no-cache", "/usr/local"]
        cache = tempfile.mkdtemp(prefix="rundeps-bench-cache-")
        scan_repeat = rundeps + ["scan", "--image", str(archive), "--cache-dir", cache, "/usr/local"]
        timed(unpack, ok=(0,))
        want = timed(scan_root)[2]
        got = timed(scan_image)[2]
        if want != got or timed(scan_repeat)[2] != got:
            raise SystemExit(f"scan --image printed {got!r}, scan --root {want!r}")
        rows = {"tar -x": [], "tar -x + scan --root": [], "scan --image": [], "scan --image, repeat": []}
        for _ in range(args.runs):
            t_unpack, m_unpack, _ = timed(unpack, ok=(0,))
            t_root, m_root, _ = timed(scan_root)
            rows["tar -x"].append((t_unpack, m_unpack))
            rows["tar -x + scan --root"].append((t_unpack + t_root, max(m_unpack, m_root)))
            rows["scan --image"].append(timed(scan_image)[:2])
            rows["scan --image, repeat"].append(timed(scan_repeat)[:2])
        ref = statistics.median(t for t, _ in rows["tar -x + scan --root"])
        for name, vals in rows.items():
            t = statistics.median(v[0] for v in vals)
            m = max(v[1] for v in vals)
            print(f"{label:<8} {name:<24} {t:>8.3f} {t / ref:>6.2f}x {m:>8.1f}")
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(env_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

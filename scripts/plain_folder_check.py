#!/usr/bin/env python3
"""Are wheels unpacked into a plain folder judged as under a site-packages?

``pip install --target /deps`` (or wheels unpacked side by side) leaves
``*.dist-info`` folders and extension modules in a folder whose path has no
``site-packages``; rundeps recognises such an import root by its content
(``rundeps.inputs.pytree``). This script unpacks the 19 benchmark wheels of
``scripts/bench.py`` (tree A, downloaded from PyPI once into ``--work``)
into a plain folder and into a ``site-packages`` folder, hard-linked copies
of one another, and runs ``rundeps scan --format json`` on each, asked
three ways:

* ``host``: the folder as a host path, with the benchmark's small installed
  database (``--db``: musl, libgcc, libstdc++, zlib) as bench.py runs it;
* ``index``: the same with the official 3.20 index of ``../shared/alpine``
  (offline) instead, when it is there;
* ``root``: inside a root (``--root``) holding both folders and that
  database, ``/app/deps`` against ``/usr/local/lib/python3.12/site-packages``
  (no interpreter in the root: ``Py*`` names are assumed, as for a bare
  prefix).

For each it prints the exit code, the packages, the units by role and the
files that will not load, for the plain folder by default, with
``--no-python-tree`` (what rundeps said before it looked at the content),
and for the site-packages folder; it exits 0 when the plain folder and the
site-packages folder give the same exit code (0) and the same packages in
every way asked (and says whether the units and their roles are the same).

    python scripts/plain_folder_check.py [--work /tmp/rundeps-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (the benchmark's wheels and database)

SHARED_INDEX = PROJECT.parent / "shared" / "alpine" / "index" / "3.20-main-x86_64" / "APKINDEX.tar.gz"
SITE = "usr/local/lib/python3.12/site-packages"


def link_tree(src: Path, dst: Path) -> Path:
    """``dst``: made again as a copy of ``src`` whose files are hard links
    (nothing copied; whatever ``dst`` held before is gone)."""
    if dst.exists():
        shutil.rmtree(dst)
    for folder, _dirs, files in os.walk(src):
        rel = Path(folder).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(Path(folder) / name, dst / rel / name, follow_symlinks=False)
    return dst


def roles(out: dict, top: str) -> Dict[str, str]:
    """The units of a JSON result, by their path relative to ``top``."""
    return {os.path.relpath(p, top): r for p, r in out.get("units", {}).items()}


def scan(args: List[str]) -> Tuple[int, dict, str]:
    env = dict(os.environ)
    env.pop("RUNDEPS_ROOT", None)
    env["PYTHONPATH"] = str(PROJECT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--no-cache", "--format", "json", *args],
                          capture_output=True, text=True, env=env)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(f"rundeps scan {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.returncode, out, proc.stderr


def describe(code: int, out: dict) -> str:
    roles = Counter(out.get("units", {}).values())
    role_text = ", ".join(f"{n} {r}" for r, n in sorted(roles.items()))
    bad = out.get("will_not_load", {})
    return (f"exit {code}; packages {' '.join(out.get('packages', [])) or '-'}; units: {role_text}; "
            f"will not load: {len(bad)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/rundeps-bench", help="work folder (bench.py's: wheels, tree A); reused")
    ap.add_argument("--show", type=int, default=3, help="files that will not load to print per run")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    site = bench.build_tree_a(work)  # WORK/treeA/site-packages, the 19 wheels unpacked
    plain = link_tree(site, work / "plain" / "deps")
    root = work / "plain-root"
    link_tree(site, root / SITE)
    link_tree(site, root / "app" / "deps")
    db = bench.write_db(work / "plain.installed")
    (root / "lib/apk/db").mkdir(parents=True, exist_ok=True)
    (root / "lib/apk/db/installed").write_text(db.read_text())
    (root / "etc/apk").mkdir(parents=True, exist_ok=True)
    (root / "etc/apk/arch").write_text("x86_64\n")
    wheels = sorted(p.name for p in (work / "wheels").glob("*.whl"))
    print(f"{len(wheels)} wheels: {' '.join(wheels)}")

    ways: Dict[str, Tuple[List[str], str, str]] = {
        "host": (["--db", str(db), "--arch", "x86_64"], str(plain), str(site)),
        "root": (["--root", str(root)], "/app/deps", "/" + SITE),
    }
    if SHARED_INDEX.exists():
        ways["index"] = (["--offline", "--index", str(SHARED_INDEX), "--arch", "x86_64"], str(plain), str(site))
    ok = True
    for way, (opts, plain_path, site_path) in ways.items():
        runs = {
            "plain": scan(opts + [plain_path]),
            "plain --no-python-tree": scan(opts + ["--no-python-tree", plain_path]),
            "site-packages": scan(opts + [site_path]),
        }
        print(f"\n== {way}: rundeps scan {' '.join(opts)} PATH")
        for name, (code, out, _err) in runs.items():
            print(f"  {name:24} {describe(code, out)}")
            for path, reason in list(out.get("will_not_load", {}).items())[:args.show]:
                print(f"      {path}: {reason[:140]}")
        (pc, po, _), (sc, so, _) = runs["plain"], runs["site-packages"]
        same = pc == sc == 0 and po.get("packages") == so.get("packages")
        print(f"  plain folder == site-packages (exit 0, same packages): {'yes' if same else 'NO'}; "
              f"same units and roles: {'yes' if roles(po, plain_path) == roles(so, site_path) else 'no'}")
        ok = ok and same
    print("\nall agree" if ok else "\nDISAGREEMENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

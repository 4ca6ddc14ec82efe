#!/usr/bin/env python3
"""Does rundeps' ``will_not_load`` agree with musl's ``dlopen`` on real wheels?

Downloads (or takes from ``--wheels DIR``) real musllinux and manylinux
wheels from PyPI, installs each set into a musl "CPython root", and for every
extension module compares two answers:

* the truth: a musl-gcc-built stand-in interpreter ``dlopen``s the module
  with ``RTLD_NOW | RTLD_LOCAL`` (as CPython imports extension modules) under
  Debian's real musl loader, one process per module;
* rundeps: ``check_tree`` on the root, the module in ``will_not_load`` or not.

There is no real musl CPython here: the root's ``bin/python3.12`` and
``lib/libpython3.12.so.1.0`` are stand-ins built with Debian's ``musl-gcc``;
the stand-in libpython defines every ``Py*``/``_Py*`` name the modules
leave undefined (collected with binutils' ``nm -D --undefined-only``, not
with rundeps), so a module fails only on what a real CPython would not give
it either. The root's ``lib/ld-musl-x86_64.so.1`` is a copy of the musl that
runs the test (Debian's 1.2.3), so both sides bind the reserved names to the
same exports.

    python scripts/wheel_agreement.py                 # download the default set
    python scripts/wheel_agreement.py --wheels DIR    # wheels already at hand

Prints one line per module (dlopen's verdict, rundeps', agreement) and exits
0 when every module agrees, 1 otherwise, 2 when the tools are missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "tests"))

DEFAULT_PACKAGES = ("psycopg2-binary", "orjson", "markupsafe", "msgpack", "pyyaml", "ujson", "regex",
                    "zstandard", "greenlet")
PLATFORMS = {"musllinux": "musllinux_1_2_x86_64", "manylinux": "manylinux2014_x86_64"}
HOST_MUSL = "/lib/x86_64-linux-musl/libc.so"
LOADER = "/lib/ld-musl-x86_64.so.1"
SITE = "usr/local/lib/python3.12/site-packages"


def have_tools() -> Optional[str]:
    for tool in ("musl-gcc", "nm"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    if not os.path.exists(LOADER) or not os.path.exists(HOST_MUSL):
        return "Debian's musl loader is missing"
    return None


def download(dest: Path, packages=DEFAULT_PACKAGES, timeout: int = 300) -> Dict[str, List[Path]]:
    """pip download the cp312 wheels of ``packages`` for each platform:
    {platform kind: [wheel paths]} (empty lists when PyPI cannot be reached)."""
    out: Dict[str, List[Path]] = {}
    for kind, platform in PLATFORMS.items():
        d = dest / kind
        d.mkdir(parents=True, exist_ok=True)
        for pkg in packages:
            try:
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                                "--python-version", "3.12", "--implementation", "cp", "--platform", platform,
                                "-d", str(d), pkg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        out[kind] = sorted(d.glob("*.whl"))
    return out


def from_folder(folder: Path) -> Dict[str, List[Path]]:
    wheels = sorted(Path(folder).glob("*.whl"))
    return {"musllinux": [w for w in wheels if "musllinux" in w.name],
            "manylinux": [w for w in wheels if "manylinux" in w.name]}


def install(wheels: List[Path], site: Path) -> None:
    """Unpack wheels into site-packages as pip would (``.data/purelib`` and
    ``.data/platlib`` into site-packages, other ``.data`` parts left out)."""
    site.mkdir(parents=True, exist_ok=True)
    for w in wheels:
        with zipfile.ZipFile(w) as zf:
            for info in zf.infolist():
                name = info.filename
                if name.endswith("/"):
                    continue
                top, _, rest = name.partition("/")
                if top.endswith(".data"):
                    kind, _, rest = rest.partition("/")
                    if kind not in ("purelib", "platlib"):
                        continue
                    name = rest
                target = site / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if name.endswith(".so") or ".so." in name:
                    target.chmod(0o755)


def extension_modules(site: Path) -> List[Path]:
    """Shared objects a Python import opens: ``*.so`` outside ``*.libs`` folders."""
    out = []
    for p in sorted(site.rglob("*.so")):
        if any(part.endswith(".libs") for part in p.relative_to(site).parts):
            continue
        with open(p, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        out.append(p)
    return out


def py_names(modules: List[Path]) -> List[str]:
    """Every Py*/_Py* name the modules leave undefined (binutils' nm)."""
    names = set()
    for m in modules:
        out = subprocess.run(["nm", "-D", "--undefined-only", str(m)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout
        for line in out.splitlines():
            name = line.split()[-1].split("@")[0] if line.split() else ""
            if name.startswith(("Py", "_Py")):
                names.add(name)
    return sorted(names)


def build_root(root: Path, wheels: List[Path]) -> List[Path]:
    """The musl CPython root with ``wheels`` installed; returns the modules' host paths."""
    from bindbuild import _db_block, build_interpreter

    (root / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HOST_MUSL, root / "lib/ld-musl-x86_64.so.1")
    (root / "lib/ld-musl-x86_64.so.1").chmod(0o755)
    (root / "lib/libc.musl-x86_64.so.1").symlink_to("ld-musl-x86_64.so.1")
    site = root / SITE
    install(wheels, site)
    modules = extension_modules(site)
    build_interpreter(root / "usr/local", py_names=py_names(modules) or ["Py_Initialize"])
    (root / "lib/apk/db").mkdir(parents=True, exist_ok=True)
    (root / "lib/apk/db/installed").write_text(_db_block(
        "musl", "1.2.3-r0", ["lib/ld-musl-x86_64.so.1", "lib/libc.musl-x86_64.so.1"],
        provides=["so:libc.musl-x86_64.so.1=1"]))
    (root / "etc/apk").mkdir(parents=True, exist_ok=True)
    (root / "etc/apk/arch").write_text("x86_64\n")
    return modules


def dlopen_truth(root: Path, modules: List[Path]) -> Dict[str, Tuple[bool, str]]:
    """in-root path -> (loads, dlerror) from the stand-in interpreter under the real loader."""
    from bindbuild import interpreter_dlopen_together, loader_list, root_library_path

    out = {}
    interp = root / "usr/local/bin/python3.12"
    libpython = root / "usr/local/lib/libpython3.12.so.1.0"
    lp = root_library_path(root)
    for m in modules:
        v = interpreter_dlopen_together(interp, [m], library_path=lp)
        if v.crashed:
            # dlopen bound it and then died in a constructor (the stand-in
            # interpreter is not CPython): the loader's binding verdict is
            # --list with libpython preloaded, the same scope, no constructors
            lv = loader_list(m, library_path=lp, preload=[libpython])
            out["/" + str(m.relative_to(root))] = (lv.ok, "crashed in a constructor after binding; --list: "
                                                    + ("binds" if lv.ok else lv.output.strip()[-200:]))
        else:
            out["/" + str(m.relative_to(root))] = (v.ok, v.error)
    return out


def rundeps_verdicts(root: Path) -> Dict[str, str]:
    from rundeps.api import Sources, check_tree

    res = check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), explicit_root=True,
                     symbols=True)
    return dict(res.will_not_load)


def agreement(wheels: Dict[str, List[Path]], work: Path) -> List[dict]:
    """One row per extension module of every wheel set."""
    rows = []
    for kind, ws in wheels.items():
        if not ws:
            continue
        root = work / f"root-{kind}"
        modules = build_root(root, ws)
        truth = dlopen_truth(root, modules)
        ours = rundeps_verdicts(root)
        for path, (ok, err) in sorted(truth.items()):
            rows.append({"kind": kind, "module": path, "dlopen_loads": ok, "dlopen_error": err,
                         "rundeps_loads": path not in ours, "rundeps_reason": ours.get(path, ""),
                         "agree": ok == (path not in ours)})
    return rows


def print_table(rows: List[dict]) -> None:
    width = max((len(r["module"]) for r in rows), default=10)
    short = lambda p: p.replace("/" + SITE + "/", "")  # noqa: E731
    print(f"{'set':10} {'module':{min(width, 70)}} {'dlopen':7} {'rundeps':8} agree")
    for r in rows:
        print(f"{r['kind']:10} {short(r['module'])[:70]:{min(width, 70)}} "
              f"{'loads' if r['dlopen_loads'] else 'FAILS':7} {'loads' if r['rundeps_loads'] else 'FAILS':8} "
              f"{'yes' if r['agree'] else 'NO'}")
        if not r["agree"] or not r["dlopen_loads"] or "crashed" in r["dlopen_error"]:
            if r["dlopen_error"]:
                err = r["dlopen_error"] if "crashed" in r["dlopen_error"] else r["dlopen_error"].split(": ", 1)[-1]
                print(f"{'':10}   dlopen:  {err[:150]}")
            if r["rundeps_reason"]:
                print(f"{'':10}   rundeps: {r['rundeps_reason'][:150]}")
    n = len(rows)
    agree = sum(r["agree"] for r in rows)
    loads = sum(r["dlopen_loads"] for r in rows)
    print(f"\n{agree}/{n} modules agree; dlopen loads {loads} of {n} "
          f"({sum(r['dlopen_loads'] for r in rows if r['kind'] == 'manylinux')} of "
          f"{sum(1 for r in rows if r['kind'] == 'manylinux')} manylinux)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=Path, help="a folder of wheels (default: download the default set)")
    ap.add_argument("--work", type=Path, help="where to build the roots (default: a temporary folder)")
    args = ap.parse_args(argv)
    missing = have_tools()
    if missing:
        print(f"wheel_agreement: {missing}", file=sys.stderr)
        return 2
    tmp = None
    work = args.work
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="rundeps-agreement-")
        work = Path(tmp.name)
    try:
        wheels = from_folder(args.wheels) if args.wheels else download(work / "wheels")
        if not any(wheels.values()):
            print("wheel_agreement: no wheels (PyPI cannot be reached?)", file=sys.stderr)
            return 2
        rows = agreement(wheels, work)
        print_table(rows)
        return 0 if all(r["agree"] for r in rows) else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())

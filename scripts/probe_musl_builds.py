#!/usr/bin/env python3
"""Run real musl loaders on a library with packed relative relocations and
write what each did into ``data/musl/builds.json``.

Whether a musl loader applies ``DT_RELR`` relocations is a fact of its
build, not of its version: Alpine's ``1.2.3-r1`` carries the change as a
backport, Debian's ``1.2.3`` does not. This script tells it the only sure
way, by running each loader:

* the probe is a shared object linked with ``musl-gcc -Wl,-z,pack-relative-relocs``
  whose constructor and function read a table of pointers, and a musl
  program that ``dlopen``s it and calls the function; under a loader that
  does not apply ``DT_RELR`` the pointers stay unrelocated and the process
  dies;
* the loaders are the x86_64 ones that run here: Debian's
  ``/lib/ld-musl-x86_64.so.1`` (started by the kernel as the program's
  ``PT_INTERP``) and each ``../shared/alpine/musl/musl-<version>-r<N>-x86_64.so``
  (run as ``LOADER PROGRAM``).

Each entry is the loader file's SHA-256, what it is and the answer; an
Alpine entry also names its package version-release (``1.2.3-r1``), which
rundeps uses when it knows the target's musl package but has no loader file.

    python scripts/probe_musl_builds.py           # write data/musl/builds.json
    python scripts/probe_musl_builds.py --check   # exit 1 if the shipped table disagrees
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared" / "alpine" / "musl"
DEBIAN_LOADER = Path("/lib/ld-musl-x86_64.so.1")
OUT = PROJECT / "data" / "musl" / "builds.json"
_ALPINE_RE = re.compile(r"^musl-(\d+\.\d+\.\d+(?:_git\d{8})?-r\d+)-x86_64\.so$")

LIB_SRC = r"""
static int a = 1, b = 2, c = 3;
int *table[] = {&a, &b, &c, &a, &b, &c, &a, &b};
static int seen;
__attribute__((constructor)) static void init(void) { seen = *table[0] + *table[7]; }
int probe(void) { int s = 0; for (int i = 0; i < 8; i++) s += *table[i]; return s + seen; }
"""

PROG_SRC = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("dlopen: %s\n", dlerror()); return 2; }
    int (*f)(void) = (int (*)(void))dlsym(h, "probe");
    printf("%d\n", f ? f() : -1);
    return 0;
}
"""
EXPECTED = "18"  # 1+2+3+1+2+3+1+2, plus the constructor's 1+2


class Probe:
    """The probe library (``lib``, with ``DT_RELR``) and the program that
    ``dlopen``s it (``prog``), built with ``musl-gcc`` in ``work``."""

    def __init__(self, work: Path):
        musl_gcc = shutil.which("musl-gcc")
        if musl_gcc is None:
            raise RuntimeError("musl-gcc is needed (Debian: apt-get install musl-tools)")
        (work / "probe.c").write_text(LIB_SRC)
        (work / "prog.c").write_text(PROG_SRC)
        self.lib = work / "librelr.so"
        self.plain = work / "librela.so"  # the same code with ordinary relocations: must load everywhere
        self.prog = work / "prog"
        for out, flag in ((self.lib, "pack"), (self.plain, "nopack")):
            subprocess.run([musl_gcc, "-shared", "-fPIC", "-O1", f"-Wl,-z,{flag}-relative-relocs", "-o", str(out),
                            str(work / "probe.c")], check=True, capture_output=True)
        subprocess.run([musl_gcc, "-o", str(self.prog), str(work / "prog.c")], check=True, capture_output=True)
        out = subprocess.run(["readelf", "-dW", str(self.lib)], capture_output=True, text=True).stdout
        if "(RELR)" not in out:
            raise RuntimeError("the linker wrote no DT_RELR: it has no -z pack-relative-relocs")

    def applies_relr(self, loader: Optional[Path]) -> bool:
        """Whether the probe loads and reads its table right under
        ``loader`` (None: the program's own ``PT_INTERP``, Debian's), where
        the same library without ``DT_RELR`` does (RuntimeError if not)."""
        if not self._runs(loader, self.plain):
            raise RuntimeError(f"{loader or 'the program interpreter'} does not run the probe program at all")
        return self._runs(loader, self.lib)

    def _runs(self, loader: Optional[Path], lib: Path) -> bool:
        argv = [str(self.prog), str(lib)]
        if loader is not None:
            argv = [str(loader)] + argv
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return proc.returncode == 0 and proc.stdout.strip() == EXPECTED


def debian_version() -> Optional[str]:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f", "${Version} ${Architecture}", "musl"], check=True,
                              capture_output=True, text=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def loaders() -> List[Dict[str, object]]:
    """The runnable loaders: {path, build, release, run} (``run``: the
    path to start, or None for the kernel's choice)."""
    out: List[Dict[str, object]] = []
    if DEBIAN_LOADER.exists():
        out.append({"path": DEBIAN_LOADER.resolve(), "build": f"Debian musl {debian_version() or '(version unknown)'}",
                    "release": None, "run": None})
    if SHARED.is_dir():
        for p in sorted(SHARED.glob("musl-*-x86_64.so")):
            m = _ALPINE_RE.match(p.name)
            if m:
                out.append({"path": p, "build": f"Alpine musl {m.group(1)} x86_64", "release": m.group(1), "run": p})
    return out


def probe_all(work: Path) -> List[Dict[str, object]]:
    """One entry a runnable loader: sha256, build, release, relr."""
    probe = Probe(work)
    entries = []
    for ld in loaders():
        path = Path(ld["path"])
        entry = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "build": ld["build"],
                 "release": ld["release"], "relr": probe.applies_relr(ld["run"])}
        entries.append(entry)
    return entries


def merged(old: List[Dict[str, object]], new: List[Dict[str, object]]) -> List[Dict[str, object]]:
    """The shipped entries with today's runs put over them (a loader not at
    hand today keeps its earlier entry)."""
    by = {e["sha256"]: e for e in old}
    by.update({e["sha256"]: e for e in new})
    return sorted(by.values(), key=lambda e: (str(e["build"]), str(e["sha256"])))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the shipped table disagrees")
    args = ap.parse_args(argv)
    old = json.loads(OUT.read_text())["builds"] if OUT.exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        new = probe_all(Path(tmp))
    for e in new:
        print(f"{e['build']}: {'applies' if e['relr'] else 'does not apply'} DT_RELR ({e['sha256'][:12]})")
    if args.check:
        shipped = {e["sha256"]: e for e in old}
        bad = [e for e in new if e["sha256"] in shipped and shipped[e["sha256"]]["relr"] != e["relr"]]
        for e in bad:
            print(f"disagrees with the shipped table: {e['build']}", file=sys.stderr)
        return 1 if bad else 0
    OUT.write_text(json.dumps({"about": "musl loaders run on a DT_RELR library by scripts/probe_musl_builds.py",
                               "builds": merged(old, new)}, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Write the export lists of real musl builds into data/musl/.

Each list is what musl's dynamic linker finds in its own ``libc.so``
(``ld-musl-<arch>.so.1``) when it binds a symbol: the ``defined`` names of
:func:`rundeps.elf.read_symbols` (musl's ``find_sym`` rules), one a
line, sorted, after one header line naming the source::

    # musl 1.2.5 x86_64: exports of musl-1.2.5-r0-x86_64.so (Alpine), by scripts/gen_musl_exports.py

Sources (the defaults; others can be given as ``VERSION:ARCH:ORIGIN:PATH``):

* the real Alpine musl libraries in ``../shared/alpine/musl/``
  (``musl-<version>-r<N>-<arch>.so``; skipped when absent);
* Debian's ``musl`` package (``/lib/x86_64-linux-musl/libc.so``, version
  from ``dpkg-query``), only for a version and arch no Alpine build gives
  (Alpine's 1.2.3-r1 exports ``crypt``, Debian's 1.2.3 ``fts_open``).

``--check`` writes nothing and exits 1 if a shipped list differs from what
the libraries give today.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from rundeps.elf import read_symbols  # noqa: E402

SHARED = PROJECT.parent / "shared" / "alpine" / "musl"
DEBIAN_LIBC = Path("/lib/x86_64-linux-musl/libc.so")
OUT = PROJECT / "data" / "musl"
_ALPINE_RE = re.compile(r"^musl-(\d+\.\d+\.\d+)-r(\d+)-([a-z0-9_]+)\.so$")


def debian_version():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "musl"], check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.match(r"^(\d+\.\d+\.\d+)", out.strip())
    return (m.group(1), out.strip()) if m else None


def sources():
    """[(version, arch, description, path)]"""
    out = []
    if SHARED.is_dir():
        for p in sorted(SHARED.glob("musl-*.so")):
            m = _ALPINE_RE.match(p.name)
            if m:
                out.append((m.group(1), m.group(3), f"{p.name} (Alpine)", p))
    deb = debian_version()
    if deb and DEBIAN_LIBC.exists() and not alpine_list(deb[0], "x86_64", out):
        out.append((deb[0], "x86_64", f"{DEBIAN_LIBC} (Debian musl {deb[1]})", DEBIAN_LIBC))
    return out


def alpine_list(version: str, arch: str, srcs) -> bool:
    """Whether Alpine's build gives the list of ``version`` and ``arch``: an
    Alpine library of them is at hand, or the shipped list came from one
    (rundeps checks against Alpine's musl; Debian's stands in only for a
    version no Alpine library is known for)."""
    if any(v == version and a == arch and d.endswith("(Alpine)") for v, a, d, _p in srcs):
        return True
    shipped = OUT / f"{version}-{arch}.txt"
    if shipped.exists():
        with open(shipped, encoding="utf-8") as f:
            return "(Alpine)" in f.readline()
    return False


def render(version: str, arch: str, desc: str, path: Path) -> str:
    facts = read_symbols(path)
    if facts is None:
        raise SystemExit(f"{path}: not an ELF file")
    header = f"# musl {version} {arch}: exports of {desc}, by scripts/gen_musl_exports.py"
    return "\n".join([header] + sorted(facts.defined)) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(OUT), help="folder to write (default data/musl)")
    ap.add_argument("--check", action="store_true", help="compare with the shipped lists, write nothing")
    ap.add_argument("extra", nargs="*", help="more sources as VERSION:ARCH:ORIGIN:PATH")
    args = ap.parse_args(argv)
    srcs = sources()
    for e in args.extra:
        version, arch, origin, path = e.split(":", 3)
        srcs.append((version, arch, f"{Path(path).name} ({origin})", Path(path)))
    if not srcs:
        print("no musl libraries found", file=sys.stderr)
        return 1
    out = Path(args.out)
    seen = {}
    bad = 0
    for version, arch, desc, path in srcs:
        name = f"{version}-{arch}.txt"
        if name in seen:
            print(f"{name}: {desc} and {seen[name]} give the same list name; keeping the first", file=sys.stderr)
            continue
        seen[name] = desc
        text = render(version, arch, desc, path)
        target = out / name
        if args.check:
            if not target.exists() or target.read_text() != text:
                print(f"{target}: differs from {path}", file=sys.stderr)
                bad += 1
            continue
        out.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"{target}: {text.count(chr(10)) - 1} names from {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

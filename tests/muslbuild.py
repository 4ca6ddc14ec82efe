"""Fixtures built with Debian's ``musl-gcc`` and answers from Debian's musl loader.

``build_lib`` / ``build_exe`` link real musl objects; ``loader_list(path)``
runs ``/lib/ld-musl-x86_64.so.1 --list path`` and returns what the loader
did: ``{needed name: path it loaded, or None when it failed}``.
``rundeps_list(path)`` gives rundeps' answer for the same file in the same
form (the resolver's ``load_order``), so a test compares the two and never
writes the expected paths by hand.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

LOADER = "/lib/ld-musl-x86_64.so.1"
MUSL_GCC = shutil.which("musl-gcc")


def have_musl() -> bool:
    return bool(MUSL_GCC) and os.path.exists(LOADER) and platform.machine() == "x86_64"


def _cc(args: Sequence[str]) -> None:
    proc = subprocess.run([MUSL_GCC, *args], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"musl-gcc {' '.join(args)}: {proc.stderr}")


def _link(needed: Iterable, rpath: Optional[str], runpath: Optional[str], both: Optional[tuple]) -> list:
    args = []
    for lib in needed:
        args.append(str(lib))  # a path: its DT_SONAME becomes the DT_NEEDED entry
    if both:
        rpath, runpath = both
    if rpath is not None:
        args += ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{rpath}"]
    elif runpath is not None:
        args += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath}"]
    if both:
        # ld writes one of the two; the other rides in DT_SONAME and is retagged.
        args.append(f"-Wl,-soname,{runpath}")
    return args


def _retag_soname_as_runpath(path: Path) -> None:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        ef = ELFFile(f)
        dyn = ef.get_section_by_name(".dynamic")
        entsize = dyn["sh_entsize"]
        offset = None
        for i, tag in enumerate(dyn.iter_tags()):
            if tag.entry.d_tag == "DT_SONAME":
                offset = dyn["sh_offset"] + i * entsize
    assert offset is not None
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write((29).to_bytes(8, "little"))  # DT_RUNPATH


def build_lib(path, soname: Optional[str] = None, needed: Iterable = (), rpath: Optional[str] = None,
              runpath: Optional[str] = None, source: str = "int rundeps_fixture_fn(void) { return 0; }\n") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.with_name(path.name + ".c")
    src.write_text(source)
    _cc(["-shared", "-fPIC", "-o", str(path), str(src), f"-Wl,-soname,{soname or path.name}",
         "-Wl,--no-as-needed", *_link(needed, rpath, runpath, None)])
    src.unlink()
    return path


def build_exe(path, needed: Iterable = (), interp: Optional[str] = None, rpath: Optional[str] = None,
              runpath: Optional[str] = None, both: Optional[tuple] = None,
              source: str = "int main(void) { return 0; }\n", extra: Sequence[str] = ()) -> Path:
    """A musl program; ``both=(rpath, runpath)`` gives it DT_RPATH and DT_RUNPATH."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.with_name(path.name + ".c")
    src.write_text(source)
    args = ["-o", str(path), str(src), "-Wl,--no-as-needed", *_link(needed, rpath, runpath, both), *extra]
    if interp:
        args.append(f"-Wl,--dynamic-linker={interp}")
    _cc(args)
    src.unlink()
    if both:
        _retag_soname_as_runpath(path)
    return path


_LINE = re.compile(r"^\t(\S+) => (\S+) \(0x[0-9a-f]+\)$")
_ERROR = re.compile(r"^Error loading shared library (\S+): .* \(needed by (\S+)\)$")


def parse_list(stdout: str, stderr: str) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for line in stdout.splitlines():
        m = _LINE.match(line)
        if m and m.group(1) != "libc.so":
            out[m.group(1)] = m.group(2)
    for line in stderr.splitlines():
        m = _ERROR.match(line)
        if m:
            out.setdefault(m.group(1), None)
    return out


def loader_list(path, library_path: Optional[str] = None, binds: Sequence[tuple] = ()) -> Dict[str, Optional[str]]:
    """What Debian's musl loader loads for ``path`` (``--list``), optionally
    with ``--library-path`` and with folders bind-mounted over others
    (``binds=[(source, target)]``, in a private mount namespace)."""
    argv = [LOADER]
    if library_path is not None:
        argv += ["--library-path", library_path]
    argv += ["--list", str(path)]
    proc = _run(argv, binds)
    return parse_list(proc.stdout, proc.stderr)


def _run(argv: Sequence[str], binds: Sequence[tuple] = (), env=None):
    if binds:
        script = " && ".join(f"mount --bind {s} {t}" for s, t in binds) + ' && exec "$@"'
        argv = ["unshare", "--mount", "sh", "-c", script, "sh", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def can_bind_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", "mount --bind / /mnt 2>/dev/null || mount --bind /tmp /tmp"],
                          capture_output=True)
    return proc.returncode == 0


_RUNDEPS_LIST = r"""
import json, sys
from rundeps.apk.model import Universe, parse_installed
from rundeps.elf import read_elf_path
from rundeps.resolve import Resolver, TreeFS
path, library_path, main_program = sys.argv[1], sys.argv[2] or None, sys.argv[3] or None
universe = Universe()
universe.add(parse_installed("P:musl\nV:1.2.3-r0\nA:x86_64\np:so:libc.musl-x86_64.so.1=1\n\n"))
r = Resolver(universe, TreeFS("/"), arch="x86_64", library_path=library_path, main_program=main_program)
out = {}
for edge, _ in r.load_order(path, read_elf_path(path)):
    if edge.kind == "musl":
        continue
    out.setdefault(edge.soname, edge.library if edge.kind in ("in_tree", "package") else None)
print(json.dumps(out))
"""


def rundeps_list(path, library_path: Optional[str] = None, binds: Sequence[tuple] = (),
                 main_program: Optional[str] = None) -> Dict[str, Optional[str]]:
    """rundeps' answer for ``path`` (root ``/``) in :func:`loader_list`'s form,
    run in the same kind of mount namespace when ``binds`` are given."""
    argv = [sys.executable, "-c", _RUNDEPS_LIST, str(path), library_path or "", main_program or ""]
    proc = _run(argv, binds)
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout)

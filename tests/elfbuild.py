"""Build ELF test fixtures with gcc at test time (no binary fixtures in git).

Importable by any test (``from elfbuild import build_lib`` when ``tests/`` is
on ``sys.path``, as pytest's rootdir-relative import mode does, or
``from tests.elfbuild import ...``)::

    lib = build_lib(tmp, "libfoo.so.1", soname="libfoo.so.1",
                    needed_libs=("libbar.so.2", "libc.musl-x86_64.so.1"),
                    runpath="$ORIGIN/../foo.libs")
    exe = build_exe(tmp, "prog", needed_libs=("libfoo.so.1",),
                    interp="/lib/ld-musl-x86_64.so.1")

Objects are linked with ``-nostdlib`` against stub libraries that only carry
a soname, so the host C library never appears in ``DT_NEEDED`` and the
NEEDED list is exactly ``needed_libs`` in order.  Stubs are built in a
private temporary folder (never inside ``dir``), so scanning ``dir`` finds
only what the test built.

``requires_gcc`` is a pytest mark that skips when gcc is missing; the other
helpers raise :class:`BuildError` on failure.  Also here: ``readelf_dynamic``
(the dynamic section as binutils' ``readelf`` prints it, an independent
oracle) and ``scanelf_needed`` (pax-utils' ``scanelf``), both None when the
tool is absent.
"""

from __future__ import annotations

import atexit
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

try:  # pytest is optional for importers that only build files
    import pytest

    requires_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build ELF fixtures")
except ImportError:  # pragma: no cover
    requires_gcc = None

__all__ = [
    "BuildError",
    "have_gcc",
    "requires_gcc",
    "host_arch",
    "musl_interp",
    "musl_soname",
    "build_lib",
    "build_exe",
    "build_static_exe",
    "build_stub",
    "readelf_dynamic",
    "readelf_header",
    "scanelf_needed",
]

CC = os.environ.get("CC", "gcc")
_ALPINE_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class BuildError(RuntimeError):
    pass


def have_gcc() -> bool:
    return shutil.which(CC) is not None


def host_arch() -> str:
    """The Alpine arch name of this machine (x86_64, aarch64, ...)."""
    m = platform.machine()
    return _ALPINE_ARCH.get(m, m)


def musl_soname(arch: Optional[str] = None) -> str:
    return f"libc.musl-{arch or host_arch()}.so.1"


def musl_interp(arch: Optional[str] = None) -> str:
    return f"/lib/ld-musl-{arch or host_arch()}.so.1"


_work: Optional[Path] = None
_stubs: Dict[str, Path] = {}


def _workdir() -> Path:
    global _work
    if _work is None:
        _work = Path(tempfile.mkdtemp(prefix="rundeps-elfbuild-"))
        atexit.register(shutil.rmtree, str(_work), True)
        (_work / "fixture.c").write_text(
            "int rundeps_fixture_symbol(void) { return 0; }\n"
        )
        (_work / "start.c").write_text(
            "void _start(void) { for (;;) { } }\n"
        )
    return _work


def _run(args: Sequence[str]) -> None:
    proc = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(map(str, args))} failed:\n{proc.stdout}")


def build_stub(soname: str) -> Path:
    """A shared library (in a private folder) whose only content is ``soname``."""
    if soname not in _stubs:
        d = _workdir() / "stubs" / str(len(_stubs))
        d.mkdir(parents=True)
        out = d / "stub.so"
        _run([CC, "-shared", "-fPIC", "-nostdlib", "-o", str(out), f"-Wl,-soname,{soname}",
              str(_workdir() / "fixture.c")])
        _stubs[soname] = out
    return _stubs[soname]


def _link_args(needed_libs: Iterable[str], runpath: Optional[str], rpath: Optional[str]) -> List[str]:
    if runpath is not None and rpath is not None:
        raise ValueError("GNU ld writes either DT_RUNPATH or DT_RPATH, not both")
    args = ["-Wl,--no-as-needed"]
    for soname in needed_libs:
        args.append(str(build_stub(soname)))
    if runpath is not None:
        args += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath}"]
    if rpath is not None:
        args += ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{rpath}"]
    return args


def build_lib(dir, name: str, soname: Optional[str] = None, needed_libs: Iterable[str] = (),
              runpath: Optional[str] = None, rpath: Optional[str] = None) -> Path:
    """Build the shared library ``dir/name`` with the given SONAME, NEEDED
    (in order), RUNPATH (``--enable-new-dtags``) or RPATH
    (``--disable-new-dtags``)."""
    out = Path(dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [CC, "-shared", "-fPIC", "-nostdlib", "-o", str(out)]
    if soname:
        args.append(f"-Wl,-soname,{soname}")
    args.append(str(_workdir() / "fixture.c"))
    args += _link_args(needed_libs, runpath, rpath)
    _run(args)
    return out


def build_exe(dir, name: str, needed_libs: Iterable[str] = (), interp: Optional[str] = None,
              runpath: Optional[str] = None, rpath: Optional[str] = None, pie: bool = False) -> Path:
    """Build the executable ``dir/name`` (no C library; ``_start`` loops).

    With ``needed_libs`` it is dynamic and gets a PT_INTERP: ``interp``, by
    default musl's loader for this arch.  ``pie=False`` gives ET_EXEC.
    """
    needed_libs = list(needed_libs)
    out = Path(dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [CC, "-nostdlib", "-o", str(out)]
    args += ["-fPIE", "-pie"] if pie else ["-fno-pie", "-no-pie"]
    if needed_libs or interp:
        args.append(f"-Wl,--dynamic-linker={interp or musl_interp()}")
    args.append(str(_workdir() / "start.c"))
    args += _link_args(needed_libs, runpath, rpath)
    _run(args)
    return out


def build_static_exe(dir, name: str) -> Path:
    """A fully static executable built with ``gcc -static`` and the host C
    library (raises :class:`BuildError` if static linking does not work)."""
    out = Path(dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    src = _workdir() / "main.c"
    src.write_text("int main(void) { return 0; }\n")
    _run([CC, "-static", "-no-pie", "-o", str(out), str(src)])
    return out


def readelf_dynamic(path) -> Optional[Dict[str, List[str]]]:
    """``{'NEEDED': [...], 'SONAME': [...], 'RPATH': [...], 'RUNPATH': [...]}``
    from binutils' ``readelf -d``, or None if readelf is absent."""
    if shutil.which("readelf") is None:
        return None
    out = subprocess.run(["readelf", "-d", "-W", str(path)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, errors="surrogateescape").stdout
    got: Dict[str, List[str]] = {"NEEDED": [], "SONAME": [], "RPATH": [], "RUNPATH": []}
    for line in out.splitlines():
        m = re.search(r"\((NEEDED|SONAME|RPATH|RUNPATH)\)\s+[^\[]*\[(.*)\]\s*$", line)
        if m:
            got[m.group(1)].append(m.group(2))
    return got


def readelf_header(path) -> Optional[Dict[str, str]]:
    """Fields of ``readelf -h`` (``Type``, ``Machine``, ``Class``, ...) and
    ``interp`` from ``readelf -l``, or None if readelf is absent."""
    if shutil.which("readelf") is None:
        return None
    out = subprocess.run(["readelf", "-h", "-l", "-W", str(path)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    got: Dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"\s+(Class|Data|Type|Machine):\s+(.*)$", line)
        if m:
            got[m.group(1)] = m.group(2).strip()
        m = re.search(r"\[Requesting program interpreter: (.*)\]", line)
        if m:
            got["interp"] = m.group(1)
    return got


def scanelf_needed(path, recursive: bool = True) -> Optional[Dict[str, List[str]]]:
    """{host path: [NEEDED...]} from pax-utils' ``scanelf``, or None if absent."""
    if shutil.which("scanelf") is None:
        return None
    args = ["scanelf", "--needed", "--nobanner"]
    if recursive:
        args.append("--recursive")
    out = subprocess.run(args + [str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, errors="surrogateescape").stdout
    got: Dict[str, List[str]] = {}
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 3:
            continue
        _etype, needed, p = parts
        got[p.rstrip()] = [n for n in needed.split(",") if n and n != "-"]
    return got

"""Build test wheels: zips with gcc-built ELF files, WHEEL and RECORD members.

Used by ``tests/test_wheel.py``; other tests may import it.  Everything is
built at test time under a pytest ``tmp_path``:

* :func:`gcc_available`, :func:`compile_so` -- a shared library from C source;
* :func:`wheel_filename`, :func:`make_wheel` -- a well-formed wheel (``WHEEL``
  with ``Tag:`` lines, a ``RECORD`` with sha256 hashes);
* :func:`make_vendored_wheel` -- an auditwheel-style wheel: an extension
  module needing a hashed library in ``<pkg>.libs/`` through
  ``RUNPATH $ORIGIN/../<pkg>.libs``;
* :func:`raw_zip` -- a zip written byte by byte, whose headers may lie
  (declared sizes that do not match the data), for hostile-archive tests.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import struct
import subprocess
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

__all__ = [
    "gcc_available",
    "compile_so",
    "wheel_filename",
    "wheel_metadata",
    "make_wheel",
    "make_vendored_wheel",
    "VendoredWheel",
    "RawEntry",
    "raw_zip",
]

Members = Union[Dict[str, bytes], Sequence[Tuple[str, bytes]]]


def gcc_available() -> bool:
    return shutil.which("gcc") is not None


def compile_so(
    workdir: Path,
    filename: str,
    source: str = "int rundeps_fixture(void) { return 42; }\n",
    *,
    soname: Optional[str] = None,
    link: Sequence[str] = (),
    runpath: Optional[str] = None,
) -> Path:
    """Compile ``source`` into ``workdir/filename`` (``gcc -shared -fPIC``).

    ``link`` holds extra linker arguments (``-lm``, ``-L dir``,
    ``-l:libx.so.1``); ``runpath`` becomes ``DT_RUNPATH`` (new dtags).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / (filename.replace("/", "_") + ".c")
    src.write_text(source)
    out = workdir / filename
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["gcc", "-shared", "-fPIC", "-O0", "-o", str(out), str(src)]
    if soname:
        cmd.append("-Wl,-soname," + soname)
    if runpath:
        cmd += ["-Wl,--enable-new-dtags", "-Wl,-rpath," + runpath]
    cmd += list(link)
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out


def wheel_filename(
    dist: str, version: str, python: str, abi: str, platform: str, build: Optional[str] = None
) -> str:
    parts = [dist, version] + ([build] if build else []) + [python, abi, platform]
    return "-".join(parts) + ".whl"


def wheel_metadata(tags: Iterable[str], root_is_purelib: bool = False) -> bytes:
    lines = [
        "Wheel-Version: 1.0",
        "Generator: rundeps-tests (0.1)",
        "Root-Is-Purelib: %s" % ("true" if root_is_purelib else "false"),
    ]
    lines += ["Tag: %s" % t for t in tags]
    return ("\n".join(lines) + "\n").encode()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    dest: Path,
    dist: str,
    version: str,
    tags: Sequence[str],
    files: Members,
    *,
    filename: Optional[str] = None,
    build: Optional[str] = None,
    root_is_purelib: bool = False,
    with_wheel_file: bool = True,
    with_record: bool = True,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a wheel into folder ``dest`` and return its path.

    ``tags`` are full ``python-abi-platform`` tags, one ``Tag:`` line each;
    the file name is built from the first one unless ``filename`` is given.
    ``files`` are member name -> bytes (a sequence of pairs allows duplicate
    names).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if filename is None:
        python, abi, platform = tags[0].split("-")
        filename = wheel_filename(dist, version, python, abi, platform, build)
    items = list(files.items()) if isinstance(files, dict) else list(files)
    info_dir = "%s-%s.dist-info" % (dist, version)
    if with_wheel_file:
        items.append((info_dir + "/WHEEL", wheel_metadata(tags, root_is_purelib)))
        items.append((info_dir + "/METADATA", ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (dist, version)).encode()))
    if with_record:
        record = "".join("%s,%s,%d\n" % (n, _record_hash(d), len(d)) for n, d in items)
        record += info_dir + "/RECORD,,\n"
        items.append((info_dir + "/RECORD", record.encode()))
    path = dest / filename
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are wanted sometimes
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in items:
                zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                zi.compress_type = compression
                zi.external_attr = (0o100755 if data[:4] == b"\x7fELF" else 0o100644) << 16
                zf.writestr(zi, data)
    return path


@dataclass
class VendoredWheel:
    path: Path
    ext_member: str  # the extension module's member name
    lib_member: str  # the vendored library's member name
    lib_soname: str
    runpath: str


def make_vendored_wheel(
    workdir: Path,
    dest: Path,
    platform: str = "musllinux_1_1_x86_64",
    *,
    pkg: str = "fixturepkg",
    version: str = "1.0",
    py: str = "cp311",
) -> VendoredWheel:
    """An auditwheel-style wheel: ``<pkg>/_ext.*.so`` needs the hashed
    ``<pkg>.libs/libfixdep-<hash>.so.1`` (its soname too)
    through ``RUNPATH $ORIGIN/../<pkg>.libs``, and ``libm.so.6``."""
    workdir = Path(workdir)
    soname = "libfixdep-0a1b2c3d.so.1"
    libfile = soname  # auditwheel names the copy after its (rewritten) soname
    lib = compile_so(workdir, libfile, "#include <unistd.h>\nint fixdep(int x) { return x + (int)getpid(); }\n", soname=soname, link=["-lm"])
    runpath = "$ORIGIN/../%s.libs" % pkg
    ext_name = "_ext.cpython-311-x86_64-linux-musl.so"
    ext = compile_so(
        workdir,
        ext_name,
        "#include <math.h>\nint fixdep(int);\nint ext(int x) { return fixdep(x) + (int)sqrt((double)x); }\n",
        link=["-L", str(workdir), "-l:" + libfile, "-lm"],
        runpath=runpath,
    )
    ext_member = "%s/%s" % (pkg, ext_name)
    lib_member = "%s.libs/%s" % (pkg, libfile)
    files = [
        ("%s/__init__.py" % pkg, b"from ._ext import ext\n"),
        (ext_member, ext.read_bytes()),
        (lib_member, lib.read_bytes()),
    ]
    path = make_wheel(dest, pkg, version, ["%s-%s-%s" % (py, py, platform)], files)
    return VendoredWheel(path, ext_member, lib_member, soname, runpath)


# -- hand-written zips ---------------------------------------------------------


@dataclass
class RawEntry:
    """One member of :func:`raw_zip`; ``file_size``/``crc`` default to the truth."""

    name: str
    data: bytes
    deflate: bool = True
    file_size: Optional[int] = None
    crc: Optional[int] = None
    flags: int = 0


def raw_zip(path: Path, entries: Sequence[RawEntry]) -> Path:
    """Write a zip whose central directory says whatever the entries say.

    Sizes must fit 32 bits (no zip64).  Local and central headers agree.
    """
    out = bytearray()
    central = bytearray()
    for e in entries:
        name = e.name.encode("utf-8")
        if e.deflate:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(e.data) + c.flush()
            method = 8
        else:
            payload = e.data
            method = 0
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        usize = len(e.data) if e.file_size is None else e.file_size
        offset = len(out)
        flags = e.flags | 0x800  # utf-8 names
        out += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0x5821, crc, len(payload), usize, len(name), 0
        )
        out += name + payload
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            0x031E,
            20,
            flags,
            method,
            0,
            0x5821,
            crc,
            len(payload),
            usize,
            len(name),
            0,
            0,
            0,
            0,
            0o100644 << 16,
            offset,
        )
        central += name
    cd_offset = len(out)
    out += central
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), cd_offset, 0)
    Path(path).write_bytes(bytes(out))
    return Path(path)


# -- pure wheels with run-time loads --------------------------------------------
#
# The code patterns of real pure-Python wheels that load system libraries with
# ctypes/cffi, written afresh (not copied): python-magic 0.4.27's generator of
# candidate names (find_library first, then a literal soname behind a platform
# test), tried in turn by a loop with try/except; cairocffi 1.7.1's own
# ``dlopen(ffi, names, filenames)`` helper called at import time by the
# package, and a submodule (``pixbuf``) that only its own import loads, with
# one load inside try/except.

MAGIC_LOADER = b"""\
import ctypes
import ctypes.util


def _lib_candidates():
    yield ctypes.util.find_library('magic')
    for lib in ('libmagic.so.1',):
        yield lib


def load_lib():
    for lib in _lib_candidates():
        try:
            return ctypes.CDLL(lib)
        except OSError:
            pass
"""
"""A module that loads libmagic with ctypes: find_library, then a literal soname, in a loop."""

MAGIC_LIKE = {
    "magiclike/__init__.py": b"from . import loader\nlib = loader.load_lib()\n",
    "magiclike/loader.py": b'''\
import ctypes
import sys
from ctypes.util import find_library


def _candidates():
    yield find_library("magic")
    if sys.platform == "darwin":
        yield "/opt/local/lib/libmagic.dylib"
    elif sys.platform == "linux":
        yield "libmagic.so.1"


def load_lib():
    for name in _candidates():
        if name is None:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            pass
    raise ImportError("no libmagic")
''',
}

CAIRO_LIKE = {
    "cairolike/__init__.py": b'''\
from ctypes.util import find_library

from .ffi import ffi


def dlopen(ffi, library_names, filenames):
    for library_name in library_names:
        found = find_library(library_name)
        if found:
            filenames = (found,) + tuple(filenames)
    for filename in filenames:
        try:
            return ffi.dlopen(filename)
        except OSError:
            pass
    raise OSError("not found")


cairo = dlopen(ffi, ("cairo-2", "cairo"), ("libcairo.so.2", "libcairo-2.dll"))

from .surfaces import Surface  # noqa: E402
try:
    from .xcb import XCBSurface  # noqa: E402
except ImportError:
    pass
''',
    "cairolike/ffi.py": b"from cffi import FFI\nffi = FFI()\n",
    "cairolike/surfaces.py": b"from . import cairo\n\nclass Surface:\n    pass\n",
    "cairolike/xcb.py": b"from . import cairo\nimport xcffib\n",
    "cairolike/pixbuf.py": b'''\
from . import dlopen
from .ffi import ffi

gdk_pixbuf = dlopen(ffi, ("gdk_pixbuf-2.0",), ("libgdk_pixbuf-2.0.so.0",))
glib = dlopen(ffi, ("glib-2.0",), ("libglib-2.0.so.0",))
try:
    gdk = dlopen(ffi, ("gdk-3",), ("libgdk-3.so.0",))
except OSError:
    gdk = None
''',
}


def make_pure_wheel(dest: Path, dist: str, files: Members, version: str = "1.0") -> Path:
    """A ``py3-none-any`` wheel of ``files`` (e.g. :data:`MAGIC_LIKE`, :data:`CAIRO_LIKE`)."""
    return make_wheel(dest, dist, version, ["py3-none-any"], files, root_is_purelib=True)


def vendoring_wheel(b, objs, dest, name: str, arch: str, libc: str, tag: str, extra_needed=(), files=()):
    """An auditwheel-like musllinux wheel in ``dest``: an extension module
    needing a vendored library through RUNPATH ``$ORIGIN/../<name>.libs``,
    plus ``extra_needed`` and the extra ``files`` (name, bytes); ``b``
    builds the objects in ``objs``."""
    lib = b.shared(objs / "libdep-0a1b2c3d.so.1", soname="libdep-0a1b2c3d.so.1", needed=[libc])
    ext = b.shared(objs / "_ext.so", needed=["libdep-0a1b2c3d.so.1", *extra_needed, libc],
                   runpath=f"$ORIGIN/../{name}.libs")
    members = [
        (f"{name}/__init__.py", b"from ._ext import *\n"),
        (f"{name}/_ext.cpython-312-{arch}-linux-musl.so", ext.read_bytes()),
        (f"{name}.libs/libdep-0a1b2c3d.so.1", lib.read_bytes()),
        *files,
    ]
    return make_wheel(dest, name, "1.0", [tag], members)

#!/usr/bin/env python3
"""Build a small Alpine-like root filesystem with gcc, for the demo and the tests.

It looks like a ``python:3.12-alpine`` image after ``pip install psycopg2
Pillow`` built from source plus one wheel with a vendored library:

* ``/usr/local/bin/python3.12`` needs ``libpython3.12.so.1.0`` (in ``/usr/local/lib``,
  owned by no package: in-tree) and musl;
* ``psycopg2/_psycopg*.so`` needs ``libpq.so.5`` (package ``libpq``);
* ``PIL/_imaging*.so`` needs ``libjpeg.so.8``, ``libz.so.1``, ``libtiff.so.6``;
* ``PIL/_webp*.so`` needs ``libwebp-1a2b3c4d.so.7.1.8`` vendored in
  ``pillow.libs/`` and found through RUNPATH ``$ORIGIN/../pillow.libs``;
  the vendored library needs ``libsharpyuv.so.0`` (package ``libsharpyuv``);
* ``/usr/local/lib/libfoo.so`` is a linker script (not ELF);
* pip's records: ``psycopg2-2.9.9.dist-info`` and ``pillow-10.4.0.dist-info``
  with ``METADATA`` and a ``RECORD`` (real sha256 and sizes) listing their
  files, vendored ``pillow.libs/`` included; the interpreter and
  ``/usr/local/lib`` belong to no distribution;
* with ``tkinter=True`` (the script's default): ``lib-dynload/_tkinter*.so``
  needing ``libtcl8.6.so`` and ``libtk8.6.so``, which no package in the root
  provides -- as in the official images, which leave tcl and tk out;
* ``lib/apk/db/installed`` lists musl, zlib, libjpeg-turbo, tiff, libpq,
  libssl3, libcrypto3, libsharpyuv with their files, provides and depends,
  the base image's alpine-baselayout, busybox and apk-tools, and the build
  tools (gcc, binutils, musl-dev and the ``-dev`` packages) with the virtual
  ``.build-deps`` that ``apk add --virtual .build-deps`` made; every block has
  an installed size (``I:``, demo figures near Alpine 3.20's) and a licence
  (``L:``, Alpine's);
* ``etc/alpine-release`` says 3.20.3;
* ``etc/apk/world`` names alpine-baselayout, apk-tools, busybox, musl and
  ``.build-deps``, as in a Dockerfile before ``apk del .build-deps``.

ELF files are linked with ``-nostdlib`` against stub libraries whose only job is
to carry a soname, so the host's glibc never appears in them and gcc for any
x86_64 or aarch64 Debian or Alpine machine builds the same layout.

:func:`add_glibc_compat` adds a glibc installed beside musl the way the
``glibc`` packages for Alpine do (``/usr/glibc-compat``), with stub libraries;
:meth:`Builder.glibc_program` links a real glibc program with the host's gcc.

Usage: ``python scripts/make_demo_root.py DIR`` (DIR must not exist or be empty).
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional

ALPINE_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def host_arch() -> str:
    return ALPINE_ARCH.get(platform.machine(), platform.machine())


def musl_soname(arch: str) -> str:
    return f"libc.musl-{arch}.so.1"


class Builder:
    """Compile ELF objects with chosen sonames, NEEDED entries and run paths."""

    def __init__(self, workdir: Path, cc: str = "gcc"):
        self.work = Path(workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.cc = cc
        self._stubs: Dict[str, Path] = {}
        self._n = 0
        src = self.work / "empty.c"
        src.write_text("int rundeps_fixture_symbol(void) { return 0; }\n")
        self._src = src

    def _run(self, args: Iterable[str]) -> None:
        args = list(args)
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout}")

    def stub(self, soname: str) -> Path:
        """A shared library whose only content is the soname ``soname``."""
        if soname not in self._stubs:
            d = self.work / "stubs" / str(len(self._stubs))
            d.mkdir(parents=True)
            out = d / soname
            self._run([self.cc, "-shared", "-fPIC", "-nostdlib", "-o", str(out),
                       f"-Wl,-soname,{soname}", str(self._src)])
            self._stubs[soname] = out
        return self._stubs[soname]

    def shared(self, out: Path, soname: Optional[str] = None, needed: Iterable[str] = (),
               runpath: Optional[str] = None, rpath: Optional[str] = None) -> Path:
        """A shared library at ``out`` with the given dynamic entries."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        args = [self.cc, "-shared", "-fPIC", "-nostdlib", "-o", str(out), str(self._src)]
        if soname:
            args.append(f"-Wl,-soname,{soname}")
        args += self._link_args(needed, runpath, rpath)
        self._run(args)
        return out

    def executable(self, out: Path, needed: Iterable[str] = (), interp: Optional[str] = None,
                   runpath: Optional[str] = None, rpath: Optional[str] = None) -> Path:
        """A dynamically linked executable with PT_INTERP ``interp``."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        self._n += 1
        src = self.work / f"main{self._n}.c"
        src.write_text("void _start(void) { for (;;) {} }\n")
        interp = interp or f"/lib/ld-musl-{host_arch()}.so.1"
        args = [self.cc, "-nostdlib", "-fPIE", "-pie", "-o", str(out), str(src),
                f"-Wl,--dynamic-linker={interp}"]
        args += self._link_args(needed, runpath, rpath)
        self._run(args)
        return out

    def glibc_program(self, out: Path, needed: Iterable[str] = (), runpath: Optional[str] = None) -> Path:
        """A program linked by the host's gcc against the host's glibc (its
        PT_INTERP is glibc's loader, it needs libc.so.6), plus ``needed``."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        self._n += 1
        src = self.work / f"glibc{self._n}.c"
        src.write_text("#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n")
        self._run([self.cc, "-o", str(out), str(src)] + self._link_args(needed, runpath, None))
        return out

    def _link_args(self, needed, runpath, rpath):
        args = ["-Wl,--no-as-needed"]
        for soname in needed:
            args.append(str(self.stub(soname)))
        if runpath:
            args += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath}"]
        elif rpath:
            args += ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{rpath}"]
        return args


def db_block(name: str, version: str, arch: str, depends=(), provides=(), files=(), priority=None,
             size: int = 1) -> str:
    """One package block of an installed database (``size``: its ``I:``)."""
    lines = [f"C:Q1{'A' * 27}=", f"P:{name}", f"V:{version}", f"A:{arch}", "S:1", f"I:{size}",
             f"T:{name} (rundeps demo)", f"o:{name}"]
    if name in LICENSES:
        lines.append(f"L:{LICENSES[name]}")
    if depends:
        lines.append("D:" + " ".join(depends))
    if provides:
        lines.append("p:" + " ".join(provides))
    if priority is not None:
        lines.append(f"k:{priority}")
    folder = None
    for path in files:
        d, _, base = path.rpartition("/")
        if d != folder:
            lines.append(f"F:{d}")
            folder = d
        lines.append(f"R:{base}")
    return "\n".join(lines) + "\n"


SIZES = {
    # I: (installed bytes): demo figures close to Alpine 3.20 x86_64's
    "musl": 643072, "zlib": 102400, "libjpeg-turbo": 569344, "tiff": 503808, "libcrypto3": 4816896,
    "libssl3": 782336, "libpq": 364544, "libsharpyuv": 36864,
    "alpine-baselayout": 53248, "busybox": 954368, "apk-tools": 237568,
    ".build-deps": 0, "gcc": 118460416, "binutils": 9801728, "libgcc": 147456, "musl-dev": 3469312,
    "libpq-dev": 700416, "openssl-dev": 1966080, "libjpeg-turbo-dev": 262144, "zlib-dev": 159744,
    "tiff-dev": 1470464, "libwebp-dev": 32768,
}
LICENSES = {
    # L: as Alpine 3.20 writes it
    "musl": "MIT", "zlib": "Zlib", "libjpeg-turbo": "BSD-3-Clause AND IJG AND Zlib", "tiff": "libtiff",
    "libcrypto3": "Apache-2.0", "libssl3": "Apache-2.0", "libpq": "PostgreSQL", "libsharpyuv": "BSD-3-Clause",
    "alpine-baselayout": "GPL-2.0-only", "busybox": "GPL-2.0-only", "apk-tools": "GPL-2.0-only",
    "gcc": "GPL-2.0-or-later AND LGPL-2.1-or-later", "binutils": "GPL-2.0-or-later AND LGPL-2.0-or-later",
    "libgcc": "GPL-2.0-or-later AND LGPL-2.1-or-later", "musl-dev": "MIT",
}
WORLD = ("alpine-baselayout", "apk-tools", "busybox", "musl", ".build-deps")


def base_and_build_packages(libc: str):
    """(name, version, D: atoms) of the base image and of the build tools,
    installed by ``apk add --virtual .build-deps gcc musl-dev ...``."""
    return [
        ("alpine-baselayout", "3.6.5-r0", []),
        ("busybox", "1.36.1-r29", [f"so:{libc}"]),
        ("apk-tools", "2.14.4-r0", [f"so:{libc}", "so:libcrypto.so.3", "so:libssl.so.3", "so:libz.so.1"]),
        ("libgcc", "13.2.1_git20240309-r0", [f"so:{libc}"]),
        ("binutils", "2.42-r0", [f"so:{libc}", "so:libz.so.1"]),
        ("gcc", "13.2.1_git20240309-r0", ["binutils", "libgcc", "musl-dev"]),
        ("musl-dev", "1.2.5-r0", ["musl"]),
        ("openssl-dev", "3.3.2-r0", ["libcrypto3=3.3.2-r0", "libssl3=3.3.2-r0"]),
        ("libpq-dev", "16.4-r0", ["libpq=16.4-r0", "openssl-dev"]),
        ("zlib-dev", "1.3.1-r1", ["zlib=1.3.1-r1"]),
        ("libjpeg-turbo-dev", "3.0.3-r0", ["libjpeg-turbo=3.0.3-r0"]),
        ("tiff-dev", "4.6.0-r0", ["tiff=4.6.0-r0", "libjpeg-turbo-dev", "zlib-dev"]),
        ("libwebp-dev", "1.4.0-r0", ["libsharpyuv=1.4.0-r0"]),
        (".build-deps", "20241201.074500", ["gcc", "musl-dev", "libpq-dev", "libjpeg-turbo-dev", "zlib-dev",
                                             "tiff-dev", "libwebp-dev"]),
    ]


def write_dist_info(site: Path, name: str, version: str, files: Iterable[str]) -> Path:
    """``NAME-VERSION.dist-info`` in ``site`` as pip writes it: METADATA,
    INSTALLER, WHEEL and a RECORD (sha256 and size of each file, then itself)."""
    import base64
    import hashlib

    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nGenerator: rundeps-demo\nRoot-Is-Purelib: false\n")
    rows = []
    for rel in list(files) + [f"{info.name}/{n}" for n in ("METADATA", "INSTALLER", "WHEEL")]:
        data = (site / rel).read_bytes()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{rel},sha256={digest},{len(data)}")
    rows.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    return info


GLIBC_LOADER = {"x86_64": ("/lib64", "ld-linux-x86-64.so.2"), "aarch64": ("/lib", "ld-linux-aarch64.so.1")}


def add_glibc_compat(root: Path, b: "Builder", with_db: bool = True) -> str:
    """Install a glibc beside musl as the ``glibc`` packages for Alpine do:
    the loader and libraries in ``/usr/glibc-compat/lib`` (stub libraries with
    glibc's sonames), ``/usr/glibc-compat/etc/ld.so.conf``, and glibc's
    standard ``PT_INTERP`` path as a symlink to the loader. With ``with_db``,
    a ``glibc`` package owning those files joins the installed database.
    Returns the loader's standard path."""
    root = Path(root)
    arch = host_arch()
    folder, loader = GLIBC_LOADER[arch]
    lib = root / "usr/glibc-compat/lib"
    b.shared(lib / loader, soname=loader)
    b.shared(lib / "libc.so.6", soname="libc.so.6", needed=[loader])
    b.shared(lib / "libm.so.6", soname="libm.so.6", needed=["libc.so.6"])
    b.shared(lib / "libpthread.so.0", soname="libpthread.so.0", needed=["libc.so.6"])
    (root / "usr/glibc-compat/etc").mkdir(parents=True, exist_ok=True)
    (root / "usr/glibc-compat/etc/ld.so.conf").write_text(
        "/usr/local/lib\n/usr/glibc-compat/lib\n/usr/lib\n/lib\n")
    (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (root / folder.lstrip("/") / loader).symlink_to(f"/usr/glibc-compat/lib/{loader}")
    if with_db:
        db = root / "lib/apk/db/installed"
        block = db_block("glibc", "2.35-r1", arch, files=[
            f"usr/glibc-compat/lib/{loader}", "usr/glibc-compat/lib/libc.so.6", "usr/glibc-compat/lib/libm.so.6",
            "usr/glibc-compat/lib/libpthread.so.0", "usr/glibc-compat/etc/ld.so.conf",
            f"{folder.lstrip('/')}/{loader}",
        ])
        db.write_text(db.read_text() + "\n" + block)
    return f"{folder}/{loader}"


def build_demo_root(root: Path, workdir: Optional[Path] = None, tkinter: bool = False) -> Path:
    """Lay out the demo root at ``root`` and return it (with ``tkinter``, the
    image's ``lib-dynload/_tkinter`` too)."""
    root = Path(root)
    arch = host_arch()
    libc = musl_soname(arch)
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    b = Builder(Path(workdir or tmp.name))
    try:
        site = root / "usr/local/lib/python3.12/site-packages"
        # system libraries, owned by packages
        b.shared(root / f"lib/ld-musl-{arch}.so.1", soname=libc)
        (root / "lib" / libc).symlink_to(f"ld-musl-{arch}.so.1")
        b.shared(root / "lib/libz.so.1.3.1", soname="libz.so.1", needed=[libc])
        (root / "lib/libz.so.1").symlink_to("libz.so.1.3.1")
        b.shared(root / "usr/lib/libjpeg.so.8.3.2", soname="libjpeg.so.8", needed=[libc])
        (root / "usr/lib/libjpeg.so.8").symlink_to("libjpeg.so.8.3.2")
        b.shared(root / "usr/lib/libtiff.so.6.0.2", soname="libtiff.so.6",
                 needed=["libjpeg.so.8", "libz.so.1", libc])
        (root / "usr/lib/libtiff.so.6").symlink_to("libtiff.so.6.0.2")
        b.shared(root / "lib/libcrypto.so.3", soname="libcrypto.so.3", needed=[libc])
        b.shared(root / "lib/libssl.so.3", soname="libssl.so.3", needed=["libcrypto.so.3", libc])
        b.shared(root / "usr/lib/libpq.so.5.16", soname="libpq.so.5",
                 needed=["libssl.so.3", "libcrypto.so.3", libc])
        (root / "usr/lib/libpq.so.5").symlink_to("libpq.so.5.16")
        b.shared(root / "usr/lib/libsharpyuv.so.0.1.0", soname="libsharpyuv.so.0", needed=[libc])
        (root / "usr/lib/libsharpyuv.so.0").symlink_to("libsharpyuv.so.0.1.0")
        # the Python image: in-tree libpython under /usr/local/lib
        b.shared(root / "usr/local/lib/libpython3.12.so.1.0", soname="libpython3.12.so.1.0", needed=[libc])
        b.executable(root / "usr/local/bin/python3.12", needed=["libpython3.12.so.1.0", libc])
        (root / "usr/local/bin/python3").symlink_to("python3.12")
        (root / "usr/local/lib/libfoo.so").write_text("/* GNU ld script */\nINPUT(libfoo.so.1)\n")
        # extension modules built from source
        tag = f"cpython-312-{arch}-linux-musl"
        b.shared(site / f"psycopg2/_psycopg.{tag}.so", needed=["libpq.so.5", libc])
        (site / "psycopg2/__init__.py").write_text("from psycopg2._psycopg import *\n")
        b.shared(site / f"PIL/_imaging.{tag}.so", needed=["libjpeg.so.8", "libz.so.1", "libtiff.so.6", libc])
        # a wheel's vendored library, loaded through RUNPATH $ORIGIN
        b.shared(site / "pillow.libs/libwebp-1a2b3c4d.so.7.1.8", soname="libwebp-1a2b3c4d.so.7.1.8",
                 needed=["libsharpyuv.so.0", libc], runpath="$ORIGIN")
        b.shared(site / f"PIL/_webp.{tag}.so", needed=["libwebp-1a2b3c4d.so.7.1.8", libc],
                 runpath="$ORIGIN/../pillow.libs")
        (site / "PIL/__init__.py").write_text("__version__ = '10.4.0'\n")
        # what pip records of them
        write_dist_info(site, "psycopg2", "2.9.9", ["psycopg2/__init__.py", f"psycopg2/_psycopg.{tag}.so"])
        write_dist_info(site, "pillow", "10.4.0", [
            "PIL/__init__.py", f"PIL/_imaging.{tag}.so", f"PIL/_webp.{tag}.so",
            "pillow.libs/libwebp-1a2b3c4d.so.7.1.8",
        ])
        if tkinter:
            # shipped by the image, its tcl and tk left out on purpose
            b.shared(root / f"usr/local/lib/python3.12/lib-dynload/_tkinter.{tag}.so",
                     needed=["libtcl8.6.so", "libtk8.6.so", libc])
        # the system's configuration and installed database
        (root / "etc/apk").mkdir(parents=True, exist_ok=True)
        (root / "etc/apk/arch").write_text(arch + "\n")
        (root / "etc/alpine-release").write_text("3.20.3\n")
        db = root / "lib/apk/db"
        db.mkdir(parents=True, exist_ok=True)
        blocks = [
            db_block("musl", "1.2.5-r0", arch, provides=[f"so:{libc}=1"],
                     files=[f"lib/ld-musl-{arch}.so.1", f"lib/{libc}"], size=SIZES["musl"]),
            db_block("zlib", "1.3.1-r1", arch, depends=[f"so:{libc}"], provides=["so:libz.so.1=1.3.1"],
                     files=["lib/libz.so.1", "lib/libz.so.1.3.1"], size=SIZES["zlib"]),
            db_block("libjpeg-turbo", "3.0.3-r0", arch, depends=[f"so:{libc}"],
                     provides=["so:libjpeg.so.8=8.3.2"],
                     files=["usr/lib/libjpeg.so.8", "usr/lib/libjpeg.so.8.3.2"], size=SIZES["libjpeg-turbo"]),
            db_block("tiff", "4.6.0-r0", arch,
                     depends=[f"so:{libc}", "so:libjpeg.so.8", "so:libz.so.1"],
                     provides=["so:libtiff.so.6=6.0.2"],
                     files=["usr/lib/libtiff.so.6", "usr/lib/libtiff.so.6.0.2"], size=SIZES["tiff"]),
            db_block("libcrypto3", "3.3.2-r0", arch, depends=[f"so:{libc}"],
                     provides=["so:libcrypto.so.3=3"], files=["lib/libcrypto.so.3"], size=SIZES["libcrypto3"]),
            db_block("libssl3", "3.3.2-r0", arch, depends=["so:libcrypto.so.3", f"so:{libc}"],
                     provides=["so:libssl.so.3=3"], files=["lib/libssl.so.3"], size=SIZES["libssl3"]),
            db_block("libpq", "16.4-r0", arch,
                     depends=["so:libcrypto.so.3", f"so:{libc}", "so:libssl.so.3"],
                     provides=["so:libpq.so.5=5.16"],
                     files=["usr/lib/libpq.so.5", "usr/lib/libpq.so.5.16"], size=SIZES["libpq"]),
            # owns its library but, like some real packages, declares no so: provide
            db_block("libsharpyuv", "1.4.0-r0", arch, depends=[f"so:{libc}"],
                     files=["usr/lib/libsharpyuv.so.0", "usr/lib/libsharpyuv.so.0.1.0"], size=SIZES["libsharpyuv"]),
        ]
        blocks += [db_block(name, version, arch, depends=deps, size=SIZES[name])
                   for name, version, deps in base_and_build_packages(libc)]
        (db / "installed").write_text("\n".join(blocks))
        (root / "etc/apk/world").write_text("\n".join(WORLD) + "\n")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return root


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="the root to build (must not exist, or be empty)")
    root = ap.parse_args(argv).dir
    if root.exists() and any(root.iterdir()):
        print(f"make_demo_root: {root} is not empty", file=sys.stderr)
        return 2
    build_demo_root(root, tkinter=True)
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())

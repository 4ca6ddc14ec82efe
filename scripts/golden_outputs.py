#!/usr/bin/env python3
"""Record the outputs of a broad matrix of real ``rundeps`` runs, or compare
a later tree's outputs with a recording, byte for byte.

    python scripts/golden_outputs.py record DIR     # write DIR/<run>.{argv,stdout,stderr,rc}
    python scripts/golden_outputs.py compare DIR    # run again, print a unified diff a difference

Every run is ``sys.executable -m rundeps ...`` as a subprocess, so the
package compared is the one the interpreter running this script imports
(a venv, or ``PYTHONPATH=/path/to/tree``). The fixtures -- demo roots,
saved images, wheels -- are built afresh into ``--work`` (default
``/tmp/rundeps-golden-work``, wiped first) with the project's own builders
(``scripts/make_demo_root.py``, ``scripts/make_demo_image.py``,
``tests/wheelbuild.py``), taken from the tree this script lives in, and
every file's time is set to one fixed instant, so two runs see the same
bytes and times. The work folder's path is written ``<WORK>`` in what is
stored and compared; caches live inside it (``--cache-dir``) or are off
(``--no-cache``). CycloneDX serial numbers are derived from the document,
paths included: they are compared too when ``compare`` builds in the
recording's work folder, and masked (with a note) when it does not. Runs on the real Alpine data of ``../shared/alpine``
(installed databases, signed indexes, Alpine's keys, real musl loaders)
are added when that folder exists.

JSON objects are compared after dropping a top-level ``"schema_version"``
line (an object's first key; in a list, each item's); everything else,
stderr and exit codes included, must match exactly. ``compare`` exits 1
when anything differs (or a run is missing on either side), else 0.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "alpine"
DEFAULT_WORK = Path("/tmp/rundeps-golden-work")
FIXED_TIME = 1_700_000_000  # every fixture file's atime and mtime
SITE = "/usr/local/lib/python3.12/site-packages"



@dataclass(frozen=True)
class Run:
    """One ``rundeps`` invocation: its name (a file name stem), its
    arguments (``str`` with ``{W}`` for the work folder), extra environment,
    and a file it writes whose content is compared too."""

    name: str
    args: Tuple[str, ...]
    env: Tuple[Tuple[str, str], ...] = ()
    output_file: Optional[str] = None


@dataclass
class Fixtures:
    """Paths of what :func:`build_fixtures` made (in-work paths as ``{W}/...``)."""

    arch: str
    libc: str
    wheels: Dict[str, str] = field(default_factory=dict)
    real_musl: bool = False


def load_module(name: str, path: Path):
    """Import ``path`` as module ``name`` (once)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- fixtures ----------------------------------------------------------------------


def _musl_wheel(wb, b, work: Path, dest: Path, name: str, arch: str, libc: str,
                extra_needed: Sequence[str] = (), files: Sequence[Tuple[str, bytes]] = ()) -> Path:
    """An auditwheel-like musllinux wheel, as the tests build it
    (``tests/wheelbuild.py``'s ``vendoring_wheel``)."""
    return wb.vendoring_wheel(b, work / "objs" / name, dest, name, arch, libc,
                              f"cp312-cp312-musllinux_1_2_{arch}", extra_needed, files)


def build_fixtures(work: Path) -> Fixtures:
    """Build every fixture into ``work`` (wiped first)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    sys.path.insert(0, str(PROJECT / "tests"))
    demo = load_module("make_demo_root", PROJECT / "scripts" / "make_demo_root.py")
    ib = load_module("make_demo_image", PROJECT / "scripts" / "make_demo_image.py")
    wb = load_module("wheelbuild", PROJECT / "tests" / "wheelbuild.py")
    arch = demo.host_arch()
    libc = demo.musl_soname(arch)
    fx = Fixtures(arch=arch, libc=libc)
    b = demo.Builder(work / "build")
    site = SITE.lstrip("/")

    # the demo root, with the image's _tkinter (left out by default)
    root = demo.build_demo_root(work / "root", workdir=work / "build-root", tkinter=True)

    # extras: a program needing a library nobody has, Python code loading
    # libmagic at run time (and one load it cannot name), libmagic installed
    extra = work / "extra"
    shutil.copytree(root, extra, symlinks=True)
    b.executable(extra / "usr/local/bin/broken", needed=["libnothere.so.1", libc])
    (extra / site / "magic").mkdir()
    (extra / site / "magic/__init__.py").write_text("")
    (extra / site / "magic/loader.py").write_bytes(wb.MAGIC_LOADER)
    (extra / site / "magic/dynamic.py").write_text(
        "import ctypes\nname = input()\nctypes.CDLL(name)\nctypes.CDLL('lib' + name + '.so')\n")
    with open(extra / "lib/apk/db/installed", "a") as f:
        f.write(f"\nP:libmagic\nV:5.45-r1\nA:{arch}\nD:so:{libc}\np:so:libmagic.so.1=1.0.0\n")
    (extra / "opt/extra").mkdir(parents=True)
    b.shared(extra / "opt/extra/libextra.so.1", soname="libextra.so.1", needed=[libc])
    b.executable(extra / "usr/local/bin/tool", needed=["libextra.so.1", libc])
    (extra / "usr/local/share").mkdir(parents=True)
    (extra / "usr/local/share/readme.txt").write_text("not an ELF file\n")

    # glibc installed beside musl, with a real glibc program
    gcompat = work / "glibc"
    shutil.copytree(root, gcompat, symlinks=True)
    demo.add_glibc_compat(gcompat, b)
    b.glibc_program(gcompat / "usr/local/bin/gprog", needed=["libm.so.6"])

    # a real glibc program in the plain demo root, bound against musl's lists
    glibc_prog = work / "glibcprog"
    shutil.copytree(root, glibc_prog, symlinks=True)
    b.glibc_program(glibc_prog / "usr/local/bin/gprog")

    # the demo root with Alpine's real musl loader (x86_64 only)
    real = SHARED / "musl" / "musl-1.2.5-r0-x86_64.so"
    if arch == "x86_64" and real.is_file():
        realroot = work / "realmusl"
        shutil.copytree(glibc_prog, realroot, symlinks=True)
        shutil.copyfile(real, realroot / f"lib/ld-musl-{arch}.so.1")
        fx.real_musl = True

    # images: a docker save archive (two gzip layers) and an OCI layout folder
    layers = [ib.folder_layer(root, keep=lambda rel: not rel.startswith("usr/local/")),
              ib.folder_layer(root, keep=lambda rel: rel.startswith("usr/local/"))]
    cfg = ib.config(layers, Env=["PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    Cmd=["python3"])
    ib.docker_archive(work / "image.tar", layers, cfg, compress=[True, True])
    layers2 = [ib.folder_layer(extra)]
    cfg2 = ib.config(layers2, Env=["LD_LIBRARY_PATH=/opt/extra"], Entrypoint=["/usr/local/bin/tool"])
    ib.oci_layout(work / "oci", layers2, cfg2, compress=[False])

    # wheels
    dist = work / "dist"
    fx.wheels["musl"] = str(_musl_wheel(wb, b, work, dist, "fixturepkg", arch, libc))
    fx.wheels["libpq"] = str(_musl_wheel(wb, b, work, work / "dist-libpq", "pqpkg", arch, libc,
                                         extra_needed=["libpq.so.5"]))
    fx.wheels["libz"] = str(_musl_wheel(wb, b, work, work / "dist-libz", "pillowish", arch, libc,
                                        extra_needed=["libz.so.1"]))
    fx.wheels["magic"] = str(_musl_wheel(wb, b, work, work / "dist-magic", "magicpkg", arch, libc,
                                         files=[("magic/loader.py", wb.MAGIC_LOADER)]))
    ext = wb.compile_so(work / "objs-glibc", "_ext.so",
                        "#include <math.h>\n#include <stdio.h>\n"
                        "double f(double x) { printf(\"%f\", x); return sqrt(x); }\n", link=["-lm"])
    fx.wheels["glibc"] = str(wb.make_wheel(work / "dist-glibc", "glibcpkg", "1.0",
                                           [f"cp312-cp312-manylinux_2_17_{arch}"],
                                           [("glibcpkg/_ext.so", ext.read_bytes())]))
    fx.wheels["pure"] = str(wb.make_wheel(work / "dist-pure", "purepkg", "1.0", ["py3-none-any"],
                                          [("purepkg/__init__.py", b"x = 1\n")]))
    fx.wheels["magiclike"] = str(wb.make_pure_wheel(work / "dist-pure", "python_magic", wb.MAGIC_LIKE, "0.4.27"))
    fx.wheels["cairolike"] = str(wb.make_pure_wheel(work / "dist-pure", "cairocffi", wb.CAIRO_LIKE, "1.7.1"))
    # a folder of two wheels and a broken one
    folder = work / "dist-folder"
    _musl_wheel(wb, b, work, folder, "alpha", arch, libc)
    _musl_wheel(wb, b, work, folder, "beta", arch, libc)
    (folder / "broken-1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 not really a zip")
    (work / "magic.installed").write_text(
        f"P:musl\nV:1.2.5-r0\nA:{arch}\np:so:{libc}=1\n\n"
        f"P:libmagic\nV:5.45-r1\nA:{arch}\nD:so:{libc}\np:so:libmagic.so.1=1.0.0\n")
    (work / "out").mkdir()
    (work / "cache").mkdir()
    # relative to {W}, as the runs name them
    fx.wheels = {k: "{W}/" + str(Path(v).relative_to(work)) for k, v in fx.wheels.items()}
    _fix_times(work)
    return fx


def _fix_times(top: Path) -> None:
    """Give every file and folder under ``top`` the same atime and mtime."""
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (FIXED_TIME, FIXED_TIME), follow_symlinks=False)
    os.utime(top, (FIXED_TIME, FIXED_TIME))


# -- the matrix --------------------------------------------------------------------


def matrix(fx: Fixtures) -> List[Run]:
    """Every run, in the order they are made (the cache runs depend on it)."""
    nc = ("--no-cache",)
    cache = ("--cache-dir", "{W}/cache")
    R, X, G, P = "{W}/root", "{W}/extra", "{W}/glibc", "{W}/glibcprog"
    tag = f"cpython-312-{fx.arch}-linux-musl"
    imaging = f"{SITE}/PIL/_imaging.{tag}.so"
    w = fx.wheels
    runs: List[Run] = []

    def add(name: str, *args: str, env: Sequence[Tuple[str, str]] = (), output_file: Optional[str] = None) -> None:
        runs.append(Run(name, tuple(args), tuple(env), output_file))

    # scan over a root, every format
    for fmt in ("names", "apk", "so", "json", "tree"):
        add(f"scan-root-{fmt}", "scan", "--root", R, "--format", fmt, *nc)
    add("scan-root-default-format", "scan", "--root", R, *nc)
    add("scan-root-apk-virtual", "scan", "--root", R, "--format", "apk", "--virtual", ".run", *nc)
    add("scan-root-tree-dist", "scan", "--root", R, "--format", "tree", "--by", "distribution", *nc)
    add("scan-root-cyclonedx", "scan", "--root", R, "--format", "cyclonedx", *nc)
    add("scan-root-cyclonedx-sde", "scan", "--root", R, "--format", "cyclonedx", *nc,
        env=[("SOURCE_DATE_EPOCH", "1600000000")])
    add("scan-root-sbom", "scan", "--root", R, "--sbom", "{W}/out/scan.cdx.json", *nc,
        output_file="{W}/out/scan.cdx.json")
    add("scan-root-all", "scan", "--root", R, "--all", *nc)
    add("scan-root-json-all", "scan", "--root", R, "--format", "json", "--all", *nc)
    add("scan-root-no-default-excludes", "scan", "--root", R, "--no-default-excludes", "--format", "json", *nc)
    add("scan-root-exclude", "scan", "--root", R, "--exclude", "*/PIL/*", "--format", "json", *nc)
    add("scan-root-no-symbols", "scan", "--root", R, "--no-symbols", "--format", "json", *nc)
    add("scan-root-musl-1.2.3", "scan", "--root", R, "--musl", "1.2.3", "--format", "json", *nc)
    add("scan-root-jobs1", "scan", "--root", R, "-j", "1", "--format", "tree", *nc)
    add("scan-root-subfolder", "scan", "--root", R, "--format", "json", f"{SITE}/PIL", *nc)
    add("scan-root-file", "scan", "--root", R, "--format", "tree", imaging, *nc)
    add("scan-root-two-paths", "scan", "--root", R, f"{SITE}/psycopg2", "/usr/local/bin", *nc)
    add("scan-root-not-elf", "scan", "--root", R, "--format", "json", f"{SITE}/PIL/__init__.py", *nc)
    add("scan-root-require-elf", "scan", "--root", R, "--require-elf", f"{SITE}/PIL/__init__.py", *nc)
    add("scan-root-python-tree", "scan", "--root", R, "--python-tree", "--format", "json", "/usr/local/lib", *nc)
    add("scan-root-no-python-tree", "scan", "--root", R, "--no-python-tree", "--format", "json", SITE, *nc)
    add("scan-root-library-path", "scan", "--root", R, "--library-path", "/usr/local/lib", "--format", "json", *nc)
    add("scan-root-build-deps", "scan", "--root", R, "--build-deps", ".build-deps", "--format", "json", *nc)
    add("scan-root-quiet", "scan", "--root", R, "-q", "--format", "tree", *nc)
    add("scan-root-cache-1", "scan", "--root", R, "--format", "json", *cache)
    add("scan-root-cache-2", "scan", "--root", R, "--format", "json", *cache)
    add("scan-root-db", "scan", "--root", R, "--db", "{W}/extra/lib/apk/db/installed", "--format", "json", *nc)
    add("scan-host-folder", "scan", "--db", "{W}/root/lib/apk/db/installed", "--format", "json",
        "{W}/root/usr/local/lib/python3.12/site-packages", *nc)
    # a program missing a library, run-time loads, glibc
    add("scan-extra-names", "scan", "--root", X, *nc)
    add("scan-extra-json", "scan", "--root", X, "--format", "json", *nc)
    add("scan-extra-allow-unresolved", "scan", "--root", X, "--allow-unresolved", "--format", "tree", *nc)
    add("scan-extra-dlopen", "scan", "--root", X, "--dlopen", "--format", "json", *nc)
    add("scan-extra-dlopen-tree", "scan", "--root", X, "--dlopen", "--format", "tree", *nc)
    add("scan-extra-conditional", "scan", "--root", X, "--dlopen", "--conditional-loads", *nc)
    add("scan-extra-library-path", "scan", "--root", X, "--library-path", "/opt/extra", "--format", "json", *nc)
    add("scan-extra-so", "scan", "--root", X, "--format", "so", "--all", *nc)
    add("scan-glibc-json", "scan", "--root", G, "--format", "json", *nc)
    add("scan-glibc-allow", "scan", "--root", G, "--allow-glibc", "--format", "tree", *nc)
    add("scan-glibcprog-json", "scan", "--root", P, "--format", "json", *nc)
    add("scan-glibcprog-no-symbols", "scan", "--root", P, "--no-symbols", *nc)
    if fx.real_musl:
        add("scan-realmusl-json", "scan", "--root", "{W}/realmusl", "--format", "json", *nc)
        add("why-realmusl-file", "why", "/usr/local/bin/gprog", "--root", "{W}/realmusl", *nc)

    # images
    img, oci = "{W}/image.tar", "{W}/oci"
    add("scan-image-names", "scan", "--image", img, *nc)
    add("scan-image-json", "scan", "--image", img, "--format", "json", *nc)
    add("scan-image-tree-dist", "scan", "--image", img, "--format", "tree", "--by", "distribution", *nc)
    add("scan-image-cyclonedx", "scan", "--image", img, "--format", "cyclonedx", *nc)
    add("scan-image-subpath", "scan", "--image", img, "--format", "json", f"{SITE}/PIL", *nc)
    add("scan-image-cache-1", "scan", "--image", img, "--format", "json", *cache)
    add("scan-image-cache-2", "scan", "--image", img, "--format", "json", *cache)
    add("scan-oci-json", "scan", "--image", oci, "--format", "json", *nc)
    add("scan-oci-dlopen", "scan", "--image", oci, "--dlopen", "--format", "tree", *nc)
    add("why-image-package", "why", "libpq", "--image", img, *nc)
    add("why-image-json", "why", "libz.so.1", "--image", img, "--format", "json", *nc)
    add("why-oci-file", "why", "/usr/local/bin/tool", "--image", oci, "--format", "json", *nc)

    # why
    for name in ("libssl3", "libz.so.1", "libjpeg-turbo", "libpython3.12.so.1.0", "gtk+3.0", "libpq", "musl"):
        add(f"why-{name}", "why", name, "--root", R, *nc)
        add(f"why-{name}-json", "why", name, "--root", R, "--format", "json", *nc)
    add("why-file", "why", imaging, "--root", R, *nc)
    add("why-file-json", "why", imaging, "--root", R, "--format", "json", *nc)
    add("why-broken-file", "why", "/usr/local/bin/broken", "--root", X, *nc)
    add("why-broken-file-json", "why", "/usr/local/bin/broken", "--root", X, "--format", "json", *nc)
    add("why-libnothere", "why", "libnothere.so.1", "--root", X, "--format", "json", *nc)
    add("why-libmagic-dlopen", "why", "libmagic", "--root", X, "--dlopen", *nc)
    add("why-libmagic-dlopen-json", "why", "libmagic", "--root", X, "--dlopen", "--format", "json", *nc)
    add("why-glibc-file-json", "why", "/usr/local/bin/gprog", "--root", G, "--format", "json", *nc)
    add("why-glibcprog-file", "why", "/usr/local/bin/gprog", "--root", P, *nc)
    add("why-not-elf", "why", f"{SITE}/PIL/__init__.py", "--root", R, *nc)
    add("why-tkinter-included", "why", "libtcl8.6.so", "--root", R, "--no-default-excludes", "--format", "json",
        *nc)

    # wheels
    add("wheel-musl", "wheel", w["musl"], *nc)
    add("wheel-musl-json", "wheel", w["musl"], "--format", "json", *nc)
    add("wheel-musl-cyclonedx", "wheel", w["musl"], "--format", "cyclonedx", *nc)
    add("wheel-libpq-db", "wheel", w["libpq"], "--db", "{W}/root/lib/apk/db/installed", *nc)
    add("wheel-libpq-db-json", "wheel", w["libpq"], "--db", "{W}/root/lib/apk/db/installed", "--format", "json",
        *nc)
    add("wheel-libpq-root", "wheel", w["libpq"], "--root", R, "--format", "json", *nc)
    add("wheel-libpq-nothing", "wheel", w["libpq"], *nc)
    add("wheel-libz-json", "wheel", w["libz"], "--format", "json", *nc)
    add("wheel-glibc", "wheel", w["glibc"], *nc)
    add("wheel-glibc-json", "wheel", w["glibc"], "--format", "json", *nc)
    add("wheel-glibc-no-symbols-json", "wheel", w["glibc"], "--no-symbols", "--format", "json", *nc)
    add("wheel-glibc-gcompat-root", "wheel", w["glibc"], "--root", G, "--format", "json", *nc)
    other = "aarch64" if fx.arch != "aarch64" else "x86_64"
    add("wheel-other-arch", "wheel", w["musl"], "--arch", other, *nc)
    add("wheel-other-arch-json", "wheel", w["musl"], "--arch", other, "--format", "json", *nc)
    add("wheel-pure", "wheel", w["pure"], *nc)
    add("wheel-pure-json", "wheel", w["pure"], "--format", "json", *nc)
    add("wheel-magic-db-json", "wheel", w["magic"], "--db", "{W}/magic.installed", "--format", "json", *nc)
    add("wheel-magic-no-dlopen-json", "wheel", w["magic"], "--db", "{W}/magic.installed", "--no-dlopen",
        "--format", "json", *nc)
    add("wheel-magiclike", "wheel", w["magiclike"], "--db", "{W}/magic.installed", *nc)
    add("wheel-cairolike-conditional", "wheel", w["cairolike"], "--conditional-loads", "--format", "json", *nc)
    add("wheel-folder", "wheel", "{W}/dist-folder", *nc)
    add("wheel-folder-json", "wheel", "{W}/dist-folder", "--format", "json", *nc)
    add("wheel-several-json", "wheel", w["musl"], w["pure"], w["glibc"], "--format", "json", *nc)
    add("wheel-sbom", "wheel", w["musl"], w["libz"], "--sbom", "{W}/out/wheel.cdx.json", *nc,
        output_file="{W}/out/wheel.cdx.json")

    # real Alpine data
    if SHARED.is_dir():
        idx = str(SHARED / "index" / "3.20-main-x86_64" / "APKINDEX.tar.gz")
        idx18 = str(SHARED / "index" / "3.18-main-aarch64" / "APKINDEX.tar.gz")
        keys = str(SHARED / "keys")
        php = str(SHARED / "installed" / "alpine-3.21-x86_64-php.installed")
        zt = str(SHARED / "installed" / "alpine-3.8-aarch64-zerotier.installed")
        add("scan-root-php-db", "scan", "--root", R, "--db", php, "--format", "json", *nc)
        add("scan-root-zerotier-db", "scan", "--root", R, "--db", zt, "--format", "tree", *nc)
        if fx.arch == "x86_64":
            add("scan-root-index-1", "scan", "--root", R, "--index", idx, "--keys-dir", keys, "--format", "json",
                *cache)
            add("scan-root-index-2", "scan", "--root", R, "--index", idx, "--keys-dir", keys, "--all", *cache)
            add("scan-extra-index-dlopen", "scan", "--root", X, "--index", idx, "--keys-dir", keys, "--dlopen",
                "--format", "json", *nc)
            add("why-index-libssl3-json", "why", "libssl3", "--root", R, "--db", "{W}/magic.installed",
                "--index", idx, "--keys-dir", keys, "--format", "json", *nc)
            add("wheel-libpq-index", "wheel", w["libpq"], "--index", idx, "--keys-dir", keys, *nc)
            add("wheel-libpq-index-json", "wheel", w["libpq"], "--index", idx, "--keys-dir", keys,
                "--format", "json", *nc)
            add("wheel-cairolike-index", "wheel", w["cairolike"], "--index", idx, "--keys-dir", keys, *nc)
            add("wheel-index-untrusted-keys", "wheel", w["libpq"], "--index", idx, "--keys-dir", "{W}/out", *nc)
        add("wheel-aarch64-index", "wheel", w["musl"], "--arch", "aarch64", "--index", idx18, "--keys-dir", keys,
            "--format", "json", *nc)
        for musl in ("1.1.20", "1.2.5"):
            add(f"scan-glibcprog-musl-{musl}", "scan", "--root", P, "--musl", musl, "--format", "json", *nc)

    # errors
    add("err-missing-root", "scan", "--root", "{W}/no-such-root", *nc)
    add("err-missing-path", "scan", "--root", R, "/no/such/path", *nc)
    add("err-bad-format", "scan", "--root", R, "--format", "bad", *nc)
    add("err-unknown-option", "scan", "--bogus", *nc)
    add("err-jobs-zero", "scan", "--root", R, "-j", "0", *nc)
    add("err-missing-image", "scan", "--image", "{W}/no-such.tar", *nc)
    add("err-not-an-image", "scan", "--image", "{W}/magic.installed", *nc)
    add("err-missing-db", "scan", "--root", R, "--db", "{W}/no-such-db", *nc)
    add("err-missing-wheel", "wheel", "{W}/no-such-1.0-py3-none-any.whl", *nc)
    add("err-why-no-name", "why", *nc)
    add("err-why-bad-format", "why", "libpq", "--root", R, "--format", "tree", *nc)
    add("err-wheel-bad-musl", "wheel", w["musl"], "--musl", "0.9", *nc)
    add("err-unknown-command", "frobnicate")
    add("help-scan", "scan", "--help")
    add("help-why", "why", "--help")
    add("help-wheel", "wheel", "--help")
    return runs


# -- running and comparing -----------------------------------------------------------


def _env(extra: Sequence[Tuple[str, str]]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RUNDEPS_") and k not in ("SOURCE_DATE_EPOCH", "XDG_CACHE_HOME")}
    env.update({"LC_ALL": "C.UTF-8", "COLUMNS": "100", "HOME": "/nonexistent-rundeps-golden-home"})
    env.update(dict(extra))
    return env


def execute(run: Run, work: Path) -> Dict[str, str]:
    """Run ``run`` and return its normalised ``stdout``, ``stderr``, ``rc``
    and (when it names one) ``file``."""
    w = str(work)
    args = [a.replace("{W}", w) for a in run.args]
    out_file = run.output_file.replace("{W}", w) if run.output_file else None
    if out_file and os.path.exists(out_file):
        os.unlink(out_file)
    proc = subprocess.run([sys.executable, "-m", "rundeps", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=_env(run.env), cwd=w, timeout=300)
    result = {
        "stdout": proc.stdout.decode("utf-8", "surrogateescape"),
        "stderr": proc.stderr.decode("utf-8", "surrogateescape"),
        "rc": f"{proc.returncode}\n",
    }
    if out_file:
        result["file"] = Path(out_file).read_text() if os.path.exists(out_file) else "<not written>\n"
    return {k: v.replace(w, "<WORK>") for k, v in result.items()}


_TOP_OBJECT = re.compile(r'\A(\{)(\s*)"schema_version": ?\d+,\s*')
_LIST_ITEM = re.compile(r'^(  \{)(\n    )"schema_version": \d+,\n    ', re.M)


def normalise(text: str) -> str:
    """``text`` without a top-level ``"schema_version"`` key (a JSON object's,
    or each item's of a JSON list printed with ``indent=2``)."""
    if text.startswith("{"):
        return _TOP_OBJECT.sub(lambda m: m.group(1) + m.group(2), text, count=1)
    if text.startswith("["):
        return _LIST_ITEM.sub(lambda m: m.group(1) + m.group(2), text)
    return text


_SERIAL = re.compile(r'"serialNumber": "urn:uuid:[0-9a-f-]+"')


def mask_serials(text: str) -> str:
    """``text`` with CycloneDX serial numbers replaced by one placeholder."""
    return _SERIAL.sub('"serialNumber": "urn:uuid:<masked>"', text)


def record(directory: Path, runs: List[Run], work: Path, quiet: bool) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "WORK").write_text(f"{work}\n")
    for old in directory.glob("*.*"):
        if old.suffix in (".stdout", ".stderr", ".rc", ".file", ".argv"):
            old.unlink()
    for i, run in enumerate(runs, 1):
        t = time.monotonic()
        result = execute(run, work)
        (directory / f"{run.name}.argv").write_text(" ".join(run.args) + "\n")
        for key, text in result.items():
            (directory / f"{run.name}.{key}").write_text(text, errors="surrogateescape")
        if not quiet:
            print(f"[{i}/{len(runs)}] {run.name}: exit {result['rc'].strip()} ({time.monotonic() - t:.1f}s)",
                  file=sys.stderr)
    print(f"recorded {len(runs)} runs into {directory}")
    return 0


def compare(directory: Path, runs: List[Run], work: Path, quiet: bool, selected: bool) -> int:
    differ = 0
    names = {r.name for r in runs}
    recorded_work = (directory / "WORK").read_text().strip() if (directory / "WORK").exists() else str(work)
    masked = recorded_work != str(work)
    if masked:
        print(f"note: recorded in {recorded_work}, run in {work}: CycloneDX serial numbers are not compared")
    if not selected:
        for argv in sorted(directory.glob("*.argv")):
            if argv.stem not in names:
                print(f"--- {argv.stem}: recorded, not run now")
                differ += 1
    for i, run in enumerate(runs, 1):
        if not (directory / f"{run.name}.argv").exists():
            print(f"--- {run.name}: run now, not recorded")
            differ += 1
            continue
        result = execute(run, work)
        diffs = 0
        for key, text in result.items():
            path = directory / f"{run.name}.{key}"
            want = path.read_text(errors="surrogateescape") if path.exists() else ""
            a, b = normalise(want), normalise(text)
            if masked:
                a, b = mask_serials(a), mask_serials(b)
            if a != b:
                diffs += 1
                sys.stdout.writelines(difflib.unified_diff(
                    a.splitlines(True), b.splitlines(True),
                    f"recorded/{run.name}.{key}", f"now/{run.name}.{key}"))
                if not b.endswith("\n") or not a.endswith("\n"):
                    print("\n(no newline at end of one side)")
        differ += bool(diffs)
        if not quiet:
            print(f"[{i}/{len(runs)}] {run.name}: {'DIFFERS' if diffs else 'same'}", file=sys.stderr)
    print(f"{differ} of {len(runs)} runs differ" if differ else f"all {len(runs)} runs match")
    return 1 if differ else 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["record", "compare", "list"])
    ap.add_argument("dir", type=Path, nargs="?", help="the folder of recorded outputs")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK,
                    help=f"the folder fixtures are built in, wiped first (default {DEFAULT_WORK})")
    ap.add_argument("-k", dest="only", default=None, help="only the runs whose name contains this text")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    if args.action != "list" and args.dir is None:
        ap.error("DIR is needed")
    work = args.work.resolve()
    fx = build_fixtures(work)
    runs = matrix(fx)
    if args.only:
        runs = [r for r in runs if args.only in r.name]
    if args.action == "list":
        for r in runs:
            print(r.name, " ".join(r.args))
        return 0
    if not args.quiet:
        print(f"rundeps from {_package_path()} (python {platform.python_version()}); work {work}", file=sys.stderr)
    if args.action == "record":
        return record(args.dir, runs, work, args.quiet)
    return compare(args.dir, runs, work, args.quiet, selected=bool(args.only))


def _package_path() -> str:
    proc = subprocess.run([sys.executable, "-c", "import rundeps, os; print(os.path.dirname(rundeps.__file__))"],
                          stdout=subprocess.PIPE, text=True, env=_env(()))
    return proc.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())

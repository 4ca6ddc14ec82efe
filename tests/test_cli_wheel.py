"""`rundeps wheel`, `rundeps why`, run-time loaded libraries: real wheels and real processes."""

import json
import shutil
import subprocess
import sys

import pytest

import wheelbuild
from test_scan import ARCH, LIBC, SITE, demo, run

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the ELF fixtures")

TAG = f"cp312-cp312-musllinux_1_2_{ARCH}"


@pytest.fixture()
def b(tmp_path):
    return demo.Builder(tmp_path / "build")


def musl_wheel(b, tmp_path, name="fixturepkg", extra_needed=(), tag=TAG, files=()):
    """An auditwheel-like musllinux wheel (:func:`wheelbuild.vendoring_wheel`)."""
    return wheelbuild.vendoring_wheel(b, tmp_path / "objs" / name, tmp_path / "dist", name, ARCH, LIBC, tag,
                                      extra_needed, files)


def test_musllinux_wheel_needs_nothing_beyond_musl(b, tmp_path):
    whl = musl_wheel(b, tmp_path)
    r = run("wheel", whl, "--cache-dir", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == (
        f"{whl.name}: musl, {ARCH}: needs nothing beyond the base image (musl)"
    )
    assert "  vendored  libdep-0a1b2c3d.so.1 -> /fixturepkg.libs/libdep-0a1b2c3d.so.1" in r.stdout
    assert r.stderr == ""


def test_wheel_external_library_with_and_without_a_database(b, tmp_path):
    whl = musl_wheel(b, tmp_path, extra_needed=["libpq.so.5"])
    root = tmp_path / "root"
    demo.build_demo_root(root, workdir=tmp_path / "rootbuild")
    r = run("wheel", whl, "--db", root / "lib/apk/db/installed", "--format", "json", "--cache-dir", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    [out] = json.loads(r.stdout)
    assert out["libc"] == "musl" and out["ok"] is True
    assert out["verdict"] == "needs libpq"
    assert out["packages"] == ["libpq"]
    assert out["in_tree"] == {"libdep-0a1b2c3d.so.1": "/fixturepkg.libs/libdep-0a1b2c3d.so.1"}
    # no database, no index: the external name stays unresolved, with one hint
    r = run("wheel", whl, "--cache-dir", tmp_path / "c")
    assert r.returncode == 1
    assert "not found: libpq.so.5" in r.stdout
    assert "no installed database or index" in r.stderr


def test_manylinux_wheel_is_glibc_linked(tmp_path):
    work = tmp_path / "objs"
    ext = wheelbuild.compile_so(
        work, "_ext.so",
        "#include <math.h>\n#include <stdio.h>\ndouble f(double x) { printf(\"%f\", x); return sqrt(x); }\n",
        link=["-lm"])
    whl = wheelbuild.make_wheel(tmp_path / "dist", "glibcpkg", "1.0", [f"cp312-cp312-manylinux_2_17_{ARCH}"],
                                [("glibcpkg/_ext.so", ext.read_bytes())])
    # without binding symbols, glibc-linked is all that can be said: not usable as it is
    r = run("wheel", whl, "--no-symbols", "--format", "json", "--cache-dir", tmp_path / "c")
    assert r.returncode == 1
    [out] = json.loads(r.stdout)
    assert out["libc"] == "glibc" and out["ok"] is False
    assert out["glibc_linked"] == {"/glibcpkg/_ext.so": ["libc.so.6", "libm.so.6"]}
    assert out["providers"]["libm.so.6"] == "musl"  # musl's loader serves it itself
    assert "glibc-linked" in out["verdict"] and "musllinux" in out["verdict"]
    assert out["musl"] is None and list(out["will_not_load"]) == ["/glibcpkg/_ext.so"]  # the conservative gate


def test_wheel_for_another_arch(b, tmp_path):
    whl = musl_wheel(b, tmp_path)
    other = "aarch64" if ARCH != "aarch64" else "x86_64"
    r = run("wheel", whl, "--arch", other, "--cache-dir", tmp_path / "c")
    assert r.returncode == 1
    assert f"built for {ARCH}, the target is {other}" in r.stdout


def test_wheel_folder_one_result_each_and_a_broken_one(b, tmp_path):
    musl_wheel(b, tmp_path, name="alpha")
    musl_wheel(b, tmp_path, name="beta")
    (tmp_path / "dist" / "broken-1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 not really a zip")
    r = run("wheel", tmp_path / "dist", "--cache-dir", tmp_path / "c")
    assert r.returncode == 2
    lines = r.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines if not ln.startswith(" ")] == [
        f"alpha-1.0-{TAG}.whl", f"beta-1.0-{TAG}.whl"
    ]
    assert r.stderr.count("\n") == 1 and "broken-1.0-py3-none-any.whl" in r.stderr
    assert "Traceback" not in r.stderr


def test_pure_wheel(tmp_path):
    whl = wheelbuild.make_wheel(tmp_path / "dist", "purepkg", "1.0", ["py3-none-any"],
                                [("purepkg/__init__.py", b"x = 1\n")])
    r = run("wheel", whl, "--cache-dir", tmp_path / "c")
    assert r.returncode == 0
    assert "pure Python: needs no system library" in r.stdout




def _magic_db(tmp_path):
    db = tmp_path / "installed"
    db.write_text(
        f"P:musl\nV:1.2.5-r0\nA:{ARCH}\np:so:{LIBC}=1\n\n"
        f"P:libmagic\nV:5.45-r1\nA:{ARCH}\nD:so:{LIBC}\np:so:libmagic.so.1=1.0.0\n"
    )
    return db


def test_dlopen_findings_in_a_wheel(b, tmp_path):
    whl = musl_wheel(b, tmp_path, name="magicpkg", files=[("magic/loader.py", wheelbuild.MAGIC_LOADER)])
    db = _magic_db(tmp_path)
    r = run("wheel", whl, "--db", db, "--format", "json", "--cache-dir", tmp_path / "c")
    [out] = json.loads(r.stdout)
    assert {(d["name"], d["path"], d["line"]) for d in out["dlopen"]} == {
        ("magic", "/magic/loader.py", 6), ("libmagic.so.1", "/magic/loader.py", 7)
    }
    assert "libmagic" in {d["package"] for d in out["dlopen"]}
    assert out["packages"] == ["libmagic"]  # added by default
    r = run("wheel", whl, "--db", db, "--no-dlopen", "--format", "json", "--cache-dir", tmp_path / "c")
    [out] = json.loads(r.stdout)
    assert out["packages"] == ["musl"]  # reported, not added, with --no-dlopen
    assert "libmagic" in {d["package"] for d in out["dlopen"]}


def test_scan_dlopen_and_why(tmp_path):
    root = tmp_path / "root"
    demo.build_demo_root(root, workdir=tmp_path / "rootbuild")
    (root / SITE.lstrip("/") / "magic").mkdir()
    (root / SITE.lstrip("/") / "magic/loader.py").write_bytes(wheelbuild.MAGIC_LOADER)
    (root / SITE.lstrip("/") / "magic/dynamic.py").write_text(
        "import ctypes\nname = input()\nctypes.CDLL(name)\nctypes.CDLL('lib' + name + '.so')\n")
    with open(root / "lib/apk/db/installed", "a") as f:
        f.write(f"\nP:libmagic\nV:5.45-r1\nA:{ARCH}\nD:so:{LIBC}\np:so:libmagic.so.1=1.0.0\n")
    c = ["--cache-dir", tmp_path / "c"]
    # Python sources are read only when asked
    out = json.loads(run("scan", "--root", root, "--format", "json", *c).stdout)
    assert out["dlopen"] == [] and "libmagic" not in out["all_packages"]
    out = json.loads(run("scan", "--root", root, "--format", "json", "--dlopen", *c).stdout)
    assert {(d["name"], d["path"], d["line"], d["package"]) for d in out["dlopen"]} == {
        ("magic", f"{SITE}/magic/loader.py", 6, "libmagic"),
        ("libmagic.so.1", f"{SITE}/magic/loader.py", 7, "libmagic"),
    }
    assert out["why"]["libmagic"]["dlopen"] == ["libmagic.so.1", "magic"]
    r = run("scan", "--root", root, "--dlopen", *c)
    assert r.stdout.split() == ["libmagic", "libpq", "libsharpyuv", "tiff"]
    # why, for a package, a soname, a dropped package and something nobody needs
    r = run("why", "libmagic", "--root", root, "--dlopen", *c)
    assert r.returncode == 0
    assert "libmagic.so.1 (loaded at run time) -> libmagic" in r.stdout
    r = run("why", "libz.so.1", "--root", root, *c)
    assert r.stdout.strip() == (
        f"{SITE}/PIL/_imaging.cpython-312-{ARCH}-linux-musl.so -> libz.so.1 -> zlib "
        "(the file /lib/libz.so.1 belongs to it)"
    )
    r = run("why", "libjpeg-turbo", "--root", root, *c)
    assert r.stdout.splitlines()[-1] == "It is left out of the minimal set: tiff -> libjpeg-turbo (D:)"
    r = run("why", "libssl3", "--root", root, *c)
    assert r.returncode == 0
    assert r.stdout.splitlines() == [
        "libssl3 is not needed by any file, but libpq pulls it in: libpq -> libssl3 (D:)",
        f"libpq is needed by psycopg2 2.9.9 (psycopg2/_psycopg.cpython-312-{ARCH}-linux-musl.so -> libpq.so.5)",
    ]
    r = run("why", "libpython3.12.so.1.0", "--root", root, *c)
    assert "(in the tree: no package needed)" in r.stdout
    r = run("why", "gtk+3.0", "--root", root, *c)
    assert r.returncode == 1 and "nothing under /usr/local needs gtk+3.0" in r.stderr


# -- real wheels from PyPI, when it can be reached ----------------------------------


def _download(tmp_path, platform):
    dest = tmp_path / platform
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
             "--implementation", "cp", "--platform", platform, "-d", str(dest), "psycopg2-binary==2.9.9"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    wheels = list(dest.glob("*.whl")) if proc.returncode == 0 else []
    return wheels[0] if wheels else None


@pytest.mark.skipif(ARCH != "x86_64", reason="downloads x86_64 wheels")
def test_real_psycopg2_binary_musllinux_and_manylinux(tmp_path):
    musl = _download(tmp_path, "musllinux_1_1_x86_64")
    glibc = _download(tmp_path, "manylinux2014_x86_64")
    if musl is None or glibc is None:
        pytest.skip("PyPI cannot be reached")
    r = run("wheel", musl, "--cache-dir", tmp_path / "c")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "needs nothing beyond the base image (musl)" in r.stdout.splitlines()[0]
    assert "vendored  libpq-" in r.stdout
    r = run("wheel", glibc, "--cache-dir", tmp_path / "c")
    assert r.returncode == 1
    verdict = r.stdout.splitlines()[0]
    # bound as musl binds (held to dlopen on real wheels by tests/test_wheel_agreement.py)
    # musl maps the whole load first: the vendored Kerberos library's glibc-only
    # libresolv.so.2 fails it before any symbol is bound
    assert "will not load under musl" in verdict and "libresolv.so.2, which musl cannot find" in verdict, verdict
    assert "not found: ld-linux-x86-64.so.2, libresolv.so.2" in verdict
    r = run("wheel", glibc, "--no-symbols", "--cache-dir", tmp_path / "c")
    verdict = r.stdout.splitlines()[0]
    assert "glibc-linked (needs " in verdict and "libc.so.6" in verdict and "musllinux" in verdict


def test_base_image_libraries_without_a_package_source(b, tmp_path):
    """Pillow's musllinux wheels need the system's libz.so.1, which every Alpine image has."""
    whl = musl_wheel(b, tmp_path, name="pillowish", extra_needed=["libz.so.1"])
    r = run("wheel", whl, "--format", "json", "--cache-dir", tmp_path / "c")
    assert r.returncode == 0, r.stdout + r.stderr
    [out] = json.loads(r.stdout)
    assert out["verdict"] == "needs nothing beyond the base image (musl, zlib)"
    assert out["base_image"] == {"libz.so.1": "zlib"}
    assert r.stderr == ""
    # a library the base image does not have is still missing
    whl = musl_wheel(b, tmp_path / "other", name="gtkish", extra_needed=["libz.so.1", "libgtk-3.so.0"])
    r = run("wheel", whl, "--cache-dir", tmp_path / "c")
    assert r.returncode == 1
    assert r.stdout.splitlines()[0].endswith(": not found: libgtk-3.so.0")
    assert "  base      libz.so.1 -> zlib (in every Alpine image)" in r.stdout

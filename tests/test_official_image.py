"""Inside a root laid out like an official python:3.x-alpine image: the
default excludes (``_tkinter``), and the exit-1 gate for files that will not
load (glibc-linked), with its exception for a glibc installed beside musl.

Roots built by scripts/make_demo_root.py with gcc (stub libraries carry the
sonames; the glibc program is linked by the host's gcc against the host's
glibc, no glibc package file is copied); real ``rundeps`` processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from scriptmods import demo  # noqa: E402

from rundeps.api import DEFAULT_EXCLUDES, Sources, check_tree  # noqa: E402

ARCH = demo.host_arch()
LIBC = demo.musl_soname(ARCH)
SITE = "/usr/local/lib/python3.12/site-packages"
TKINTER = f"/usr/local/lib/python3.12/lib-dynload/_tkinter.cpython-312-{ARCH}-linux-musl.so"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build ELF fixtures")


def run(*args):
    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rundeps", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    """python:3.12-alpine with psycopg2 and Pillow built from source, its
    lib-dynload/_tkinter included, and repositories that cannot be reached
    (a build without network)."""
    root = tmp_path_factory.mktemp("image") / "root"
    demo.build_demo_root(root, workdir=tmp_path_factory.mktemp("build"), tkinter=True)
    (root / "etc/apk/repositories").write_text(
        "http://rundeps-test.invalid/alpine/v3.20/main\nhttp://rundeps-test.invalid/alpine/v3.20/community\n")
    return root


@pytest.fixture()
def cache(tmp_path):
    return ["--cache-dir", str(tmp_path / "cache")]


@pytest.fixture()
def builder(tmp_path):
    return demo.Builder(tmp_path / "build")


def copy_root(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


# -- 1. default excludes ----------------------------------------------------------


def test_image_without_network_exits_0_leaving_tkinter_out(image_root, cache):
    r = run("scan", "--root", image_root, *cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "libpq\nlibsharpyuv\ntiff\n"
    assert r.stderr == (
        f"rundeps: note: left out {TKINTER}, as the official python:alpine images do "
        "(default excludes: *tkinter*); --no-default-excludes scans it\n"
    )
    out = json.loads(run("scan", "--root", image_root, "--format", "json", *cache).stdout)
    assert out["left_out"] == {TKINTER: "*tkinter*"}
    assert "libtcl8.6.so" not in out["unresolved"]


def test_no_default_excludes_brings_tkinter_back(image_root, cache):
    r = run("scan", "--root", image_root, "--no-default-excludes", *cache)
    assert r.returncode == 1
    assert f"rundeps: error: libtcl8.6.so not found (needed by {TKINTER})" in r.stderr
    assert f"rundeps: error: libtk8.6.so not found (needed by {TKINTER})" in r.stderr
    assert "left out" not in r.stderr
    # -q keeps the note quiet too
    r = run("scan", "--root", image_root, "-q", *cache)
    assert r.returncode == 0 and r.stderr == ""


def test_default_excludes_match_file_names_as_find_name_does(image_root, tmp_path, builder, cache):
    """The images' Dockerfile uses find's -name '*tkinter*': a file's name,
    not its folder. A library in a folder named customtkinter is scanned."""
    root = copy_root(image_root, tmp_path / "root")
    builder.shared(root / f"{SITE.lstrip('/')}/customtkinter/libhelper.so", needed=["libmissing.so.3", LIBC])
    builder.shared(root / f"{SITE.lstrip('/')}/tkinterdnd2/_tkinterdnd.so", needed=["libmissing.so.4", LIBC])
    out = json.loads(run("scan", "--root", root, "--format", "json", *cache).stdout)
    assert sorted(out["left_out"]) == sorted([TKINTER, f"{SITE}/tkinterdnd2/_tkinterdnd.so"])
    assert out["unresolved"] == {"libmissing.so.3": [f"{SITE}/customtkinter/libhelper.so"]}
    r = run("scan", "--root", root, "--allow-unresolved", *cache)
    assert f"left out {TKINTER} and 1 more" in r.stderr
    assert "--no-default-excludes scans them" in r.stderr


def test_default_excludes_are_a_library_option(image_root, tmp_path):
    assert DEFAULT_EXCLUDES == ("*tkinter*",)
    sources = Sources(use_cache=False)
    res = check_tree(["/usr/local"], root=str(image_root), sources=sources, explicit_root=True)
    assert res.left_out == {TKINTER: "*tkinter*"} and res.unresolved == {}
    res = check_tree(["/usr/local"], root=str(image_root), sources=sources, explicit_root=True,
                     default_excludes=False)
    assert res.left_out == {}
    assert res.unresolved == {"libtcl8.6.so": [TKINTER], "libtk8.6.so": [TKINTER]}


def test_help_documents_the_default_list():
    r = run("scan", "--help")
    assert "--no-default-excludes" in r.stdout and "*tkinter*" in r.stdout
    assert "--allow-glibc" in r.stdout


# -- 3. the exit-1 gate: files that will not load ------------------------------------


def glibc_module(builder, root, name, needed=("libc.so.6",)):
    path = root / f"{SITE.lstrip('/')}/{name}"
    builder.shared(path, needed=list(needed))
    return f"{SITE}/{name}"


def test_glibc_linked_modules_exit_1_grouped(image_root, tmp_path, builder, cache):
    root = copy_root(image_root, tmp_path / "root")
    mods = [glibc_module(builder, root, f"manylinux/_m{i}.so") for i in range(3)]
    builder.glibc_program(root / "usr/local/bin/gtool")  # real gcc + glibc: /lib64/ld-linux-*, libc.so.6
    # the conservative gate, without binding symbols (with them: test_symbols_refine_the_glibc_gate)
    r = run("scan", "--root", root, "--no-symbols", *cache)
    assert r.returncode == 1
    assert r.stdout == "libpq\nlibsharpyuv\ntiff\n"
    errors = [line for line in r.stderr.splitlines() if line.startswith("rundeps: error:")]
    assert errors == [
        "rundeps: error: /usr/local/bin/gtool (and 3 more) will not load: "
        "linked against glibc (Alpine needs a musl build of it, or gcompat)"
    ]
    out = json.loads(run("scan", "--root", root, "--no-symbols", "--format", "json", *cache).stdout)
    assert sorted(out["will_not_load"]) == sorted(mods + ["/usr/local/bin/gtool"])
    assert out["runs_under_glibc"] == {}
    r = run("scan", "--root", root, "--no-symbols", "--allow-glibc", *cache)
    assert r.returncode == 0
    assert "rundeps: warning: /usr/local/bin/gtool (and 3 more) will not load: linked against glibc" in r.stderr


def test_symbols_refine_the_glibc_gate(image_root, tmp_path, builder, cache):
    """Bound as musl binds them, the stub modules (libc.so.6, nothing
    undefined) load: warnings. The glibc program still cannot start: its
    loader is not in the root. --allow-glibc accepts it."""
    root = copy_root(image_root, tmp_path / "root")
    mods = [glibc_module(builder, root, f"manylinux/_m{i}.so") for i in range(3)]
    builder.glibc_program(root / "usr/local/bin/gtool")
    r = run("scan", "--root", root, "--symbols", "--format", "json", *cache)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert list(out["will_not_load"]) == ["/usr/local/bin/gtool"]
    assert "/lib64/ld-linux-x86-64.so.2" in out["will_not_load"]["/usr/local/bin/gtool"]
    assert out["glibc_loads"] == sorted(mods)
    for m in mods:
        assert f"rundeps: warning: {m} is glibc-linked, loads under musl" in r.stderr
    r = run("scan", "--root", root, "--symbols", "--allow-glibc", *cache)
    assert r.returncode == 0, r.stderr


def test_will_not_load_is_always_in_json(image_root, cache):
    out = json.loads(run("scan", "--root", image_root, "--format", "json", *cache).stdout)
    assert out["will_not_load"] == {} and out["runs_under_glibc"] == {}


def test_allow_glibc_does_not_hide_other_reasons(image_root, tmp_path):
    """Library level: allow_glibc lets through the faults of glibc-linked files only."""
    from rundeps.resolve import GLIBC_REASON

    root = copy_root(image_root, tmp_path / "root")
    builder = demo.Builder(tmp_path / "build")
    mod = glibc_module(builder, root, "manylinux/_m.so")
    res = check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), explicit_root=True,
                     symbols=False)
    assert res.will_not_load == {mod: GLIBC_REASON}
    assert res.failing(allow_glibc=True) == {}
    from rundeps.verdict import MISSING_SYMBOL, Fault

    # a fault of a file that is not glibc-linked stays failing; the glibc-linked file's do not
    other = Fault(MISSING_SYMBOL, "symbol not found: foo", ("/usr/local/bin/python3.12",), ("foo",))
    res.faults["/usr/local/bin/python3.12"] = other
    res.faults[mod] = Fault(MISSING_SYMBOL, "symbol not found: __strdup", (mod,), ("__strdup",))
    assert res.failing(allow_glibc=True) == {"/usr/local/bin/python3.12": other}
    assert set(res.failing()) == {"/usr/local/bin/python3.12", mod}


def test_glibc_program_under_a_glibc_beside_musl(image_root, tmp_path, builder, cache):
    """A glibc-linked program whose PT_INTERP loader is in the root runs under
    that glibc: its needs resolve in that glibc's search path
    (/usr/glibc-compat/etc/ld.so.conf, then the loader's folder)."""
    root = copy_root(image_root, tmp_path / "root")
    interp = demo.add_glibc_compat(root, builder)
    # libm.so.6 would be musl's own name; libglibconly.so.1 is only in glibc's folder
    builder.shared(root / "usr/glibc-compat/lib/libglibconly.so.1", soname="libglibconly.so.1",
                   needed=["libc.so.6"])
    builder.glibc_program(root / "usr/local/bin/gtool", needed=["libm.so.6", "libglibconly.so.1", "libz.so.1"])
    r = run("scan", "--root", root, "--format", "json", *cache)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    loader = "/usr/glibc-compat/lib/" + interp.rpartition("/")[2]
    assert out["runs_under_glibc"] == {"/usr/local/bin/gtool": loader}
    assert out["will_not_load"] == {}
    assert out["providers"]["libc.so.6"] == "glibc"
    assert out["providers"]["libm.so.6"] == "glibc"  # glibc's libm, not musl
    assert out["providers"]["libz.so.1"] == "zlib"  # /lib, named in glibc's ld.so.conf
    assert out["in_tree"]["libglibconly.so.1"] == "/usr/glibc-compat/lib/libglibconly.so.1"
    assert out["needed_by"]["glibc"] == ["/usr/glibc-compat/lib/libglibconly.so.1", "/usr/local/bin/gtool"]
    assert "glibc" in out["packages"]
    # a glibc-linked *module* is opened by musl's python, glibc or not: without binding
    # symbols it counts as failing (with them, this stub, which binds nothing, loads)
    mod = glibc_module(builder, root, "manylinux/_m.so")
    r = run("scan", "--root", root, "--no-symbols", "--format", "json", *cache)
    assert r.returncode == 1
    assert sorted(json.loads(r.stdout)["will_not_load"]) == [mod]
    r = run("scan", "--root", root, "--symbols", "--format", "json", *cache)
    assert r.returncode == 0 and json.loads(r.stdout)["glibc_loads"] == [mod], r.stderr


def test_glibc_search_path_follows_ld_so_conf(image_root, tmp_path, builder, cache):
    """A folder named only in ld.so.conf (through an include) is searched;
    without glibc's loader in the root the same program will not load."""
    root = copy_root(image_root, tmp_path / "root")
    demo.add_glibc_compat(root, builder)
    conf_d = root / "usr/glibc-compat/etc/ld.so.conf.d"
    conf_d.mkdir()
    (conf_d / "extra.conf").write_text("# vendor libraries\n/opt/vendor/lib\n")
    conf = root / "usr/glibc-compat/etc/ld.so.conf"
    conf.write_text(conf.read_text() + "include /usr/glibc-compat/etc/ld.so.conf.d/*.conf\n")
    builder.shared(root / "opt/vendor/lib/libvendor.so.2", soname="libvendor.so.2", needed=["libc.so.6"])
    builder.glibc_program(root / "usr/local/bin/gtool", needed=["libvendor.so.2"])
    out = json.loads(run("scan", "--root", root, "--format", "json", "/usr/local/bin", *cache).stdout)
    assert out["in_tree"]["libvendor.so.2"] == "/opt/vendor/lib/libvendor.so.2"
    assert out["unresolved"] == {} and out["will_not_load"] == {}
    loader = root / demo.GLIBC_LOADER[ARCH][0].lstrip("/") / demo.GLIBC_LOADER[ARCH][1]
    loader.unlink()
    r = run("scan", "--root", root, "--no-symbols", "/usr/local/bin", *cache)
    assert r.returncode == 1
    assert "/usr/local/bin/gtool will not load: linked against glibc" in r.stderr
    r = run("scan", "--root", root, "/usr/local/bin", *cache)  # symbols are bound by default
    assert r.returncode == 1
    # bound as musl would: its loader is what is missing
    assert "/usr/local/bin/gtool will not load: its loader /lib64/ld-linux-x86-64.so.2 (glibc's) is not in the root" \
        in r.stderr


def test_an_ld_so_conf_that_includes_itself_ends(image_root, tmp_path, builder, cache):
    root = copy_root(image_root, tmp_path / "root")
    demo.add_glibc_compat(root, builder)
    etc = root / "usr/glibc-compat/etc"
    for i in range(20):
        (etc / f"loop{i}.conf").write_text("include /usr/glibc-compat/etc/*.conf\ninclude loop*.conf\n")
    conf = etc / "ld.so.conf"
    conf.write_text(conf.read_text() + "include /usr/glibc-compat/etc/*.conf\n")
    builder.glibc_program(root / "usr/local/bin/gtool", needed=["libz.so.1"])
    r = run("scan", "--root", root, "/usr/local/bin", *cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "glibc\nzlib\n"


def test_a_glibc_linked_module_in_the_image_exits_1(image_root, tmp_path, builder, cache):
    """The issue's "done when": the same image with one glibc-linked module."""
    root = copy_root(image_root, tmp_path / "root")
    glibc_module(builder, root, "psycopg2_binary/_psycopg.cpython-312-x86_64-linux-gnu.so",
                 needed=["libpq.so.5", "libc.so.6"])
    r = run("scan", "--root", root, "--no-symbols", *cache)
    assert r.returncode == 1
    assert "_psycopg.cpython-312-x86_64-linux-gnu.so will not load: linked against glibc" in r.stderr
    # bound as musl binds: a real glibc build (gcc, _FORTIFY_SOURCE) needs __*_chk, which musl lacks
    from bindbuild import build_c

    site = root / SITE.lstrip("/")
    build_c(site / "psycopg2_binary", "_psycopg.cpython-312-x86_64-linux-gnu.so",
            "#include <string.h>\nchar b[8];\nvoid f(const char *s, size_t n){ memcpy(b, s, n); }\n",
            cc="glibc", cflags=["-O2", "-D_FORTIFY_SOURCE=2"], libs=[root / "usr/lib/libpq.so.5"])
    r = run("scan", "--root", root, "--symbols", *cache)
    assert r.returncode == 1
    assert "_psycopg.cpython-312-x86_64-linux-gnu.so will not load: symbol not found: __memcpy_chk" in r.stderr

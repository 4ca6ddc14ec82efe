"""Run-time loads of real and reproduced wheels (issue 10, item 4).

Offline: pure wheels built by ``tests/wheelbuild.py`` with the code patterns
of python-magic 0.4.27 and cairocffi 1.7.1 (``MAGIC_LIKE``, ``CAIRO_LIKE``).
Online (skipped without PyPI or ``../shared/alpine``): the real wheels from
``pip download``, resolved against the real signed v3.20 ``main`` index.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import wheelbuild
from test_scan import ARCH, LIBC, demo, run

from rundeps.loads.conditions import import_conditions
from rundeps.loads.dlopen import alternatives, find_dlopen
from rundeps.loads.providers import choose_provider

SHARED = Path(__file__).resolve().parents[2] / "shared" / "alpine"
REAL_INDEX = SHARED / "index" / "3.20-main-x86_64" / "APKINDEX.tar.gz"


def groups(src):
    return [[f.name for f in g] for g in alternatives(find_dlopen(textwrap.dedent(src), "/m.py"))]


# -- alternatives --------------------------------------------------------------------------


def test_alternatives_are_one_group():
    assert groups("""
        import ctypes, ctypes.util, sys
        try:
            a = ctypes.CDLL("liba.so.1")
        except OSError:
            a = ctypes.CDLL("liba.so.0")
        if sys.platform == "linux":
            b = ctypes.CDLL("libb.so.2")
        else:
            b = ctypes.CDLL("libb.so.1")
        c = ctypes.CDLL(ctypes.util.find_library("c1") or ctypes.util.find_library("c2") or "libc3.so.1")
        d = ctypes.CDLL("libd.so.1")
        e = ctypes.CDLL("libe.so.1")
        """) == [["liba.so.1", "liba.so.0"], ["libb.so.2", "libb.so.1"], ["c1", "c2", "libc3.so.1"],
                 ["libd.so.1"], ["libe.so.1"]]


def test_all_of_inside_one_way():
    # both loads of the try body are needed; only the handler is the other way
    assert groups("""
        import ctypes
        if True:
            x = ctypes.CDLL("libx.so.1")
            y = ctypes.CDLL("liby.so.1")
        """) == [["libx.so.1"], ["liby.so.1"]]


def test_generator_candidates_are_one_group():
    src = wheelbuild.MAGIC_LIKE["magiclike/loader.py"].decode()
    assert groups(src) == [["magic", "libmagic.so.1"]]


def test_choose_provider_installed_then_smallest():
    big = SimpleNamespace(name="big", source="idx", installed_size=9_000_000)
    small = SimpleNamespace(name="small", source="idx", installed_size=40_000)
    unknown = SimpleNamespace(name="unknown", source="idx", installed_size=0)
    installed = SimpleNamespace(name="inst", source="installed", installed_size=50_000_000)
    assert choose_provider([big, small, unknown]).name == "small"
    assert choose_provider([big, unknown]).name == "big"
    assert choose_provider([big, small, installed]).name == "inst"
    assert choose_provider([unknown, SimpleNamespace(name="u2", source="idx")]).name == "unknown"


def test_import_conditions():
    files = {f"/{k}": v.decode() for k, v in wheelbuild.CAIRO_LIKE.items()}
    paths = {"/cairolike/__init__.py", "/cairolike/pixbuf.py", "/cairolike/xcb.py"}
    assert import_conditions(paths, set(files), files.get) == {"/cairolike/pixbuf.py": "cairolike.pixbuf"}
    # a module outside any package counts as imported
    assert import_conditions({"/tool.py"}, {"/tool.py"}, {"/tool.py": ""}.get) == {}


# -- wheel -------------------------------------------------------------------------------------


def _db(tmp_path):
    p = tmp_path / "installed"
    p.write_text("\n".join([
        demo.db_block("musl", "1.2.5-r0", ARCH, provides=[f"so:{LIBC}=1"]),
        demo.db_block("libmagic", "5.45-r1", ARCH, depends=[f"so:{LIBC}"], provides=["so:libmagic.so.1=1.0.0"]),
        demo.db_block("cairo", "1.18.0-r0", ARCH, provides=["so:libcairo.so.2=2.11800.0"]),
        demo.db_block("glib", "2.80.5-r0", ARCH, provides=["so:libglib-2.0.so.0=0.8000.5"]),
        demo.db_block("gdk-pixbuf", "2.42.12-r0", ARCH, depends=["so:libglib-2.0.so.0"],
                      provides=["so:libgdk_pixbuf-2.0.so.0=0.4200.12"]),
        demo.db_block("gtk+3.0", "3.24.43-r0", ARCH,
                      depends=["so:libcairo.so.2", "so:libgdk_pixbuf-2.0.so.0", "so:libglib-2.0.so.0"],
                      provides=["so:libgdk-3.so.0=0.2400.43"]),
    ]))
    return p


def wheel_json(*args):
    r = run("wheel", "--format", "json", *args)
    assert r.returncode in (0, 1), r.stderr
    return r, json.loads(r.stdout)


def test_pure_wheel_loads_are_checked(tmp_path):
    whl = wheelbuild.make_pure_wheel(tmp_path / "dist", "magiclike", wheelbuild.MAGIC_LIKE)
    db = _db(tmp_path)
    r = run("wheel", whl, "--db", db, "--cache-dir", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith(": pure Python; needs libmagic (loaded at run time)")
    r, [out] = wheel_json(whl, "--db", db, "--cache-dir", tmp_path / "c")
    assert out["packages"] == ["libmagic"] and out["ok"] is True
    assert {d["name"]: d["package"] for d in out["dlopen"]} == {"magic": "libmagic", "libmagic.so.1": "libmagic"}
    assert len({d["group"] for d in out["dlopen"]}) == 1
    # without any package source: still named, never "needs no system library"
    r = run("wheel", whl, "--cache-dir", tmp_path / "c")
    assert "loads at run time magic" in r.stdout and "needs no system library" not in r.stdout
    assert "name one with --alpine" in r.stderr


def test_json_collections_never_null(tmp_path):
    whl = wheelbuild.make_pure_wheel(tmp_path / "dist", "plain", {"plain/__init__.py": b"x = 1\n"})
    r, [out] = wheel_json(whl, "--cache-dir", tmp_path / "c")
    assert r.returncode == 0
    assert out["verdict"] == "pure Python: needs no system library"
    for key in ("packages", "all_packages", "dlopen", "problems", "tags"):
        assert isinstance(out[key], list), key
    for key in ("providers", "in_tree", "unresolved", "needed_by", "source", "glibc_linked", "why", "base_image"):
        assert isinstance(out[key], dict), key


def test_base_image_soname_is_not_also_unresolved(tmp_path):
    from scriptmods import fz

    if ARCH != "x86_64":
        pytest.skip("the crafted ELF is x86_64")
    ext = fz.craft_elf(machine=62, needed=["libz.so.1", "libc.musl-x86_64.so.1"])
    whl = wheelbuild.make_wheel(tmp_path / "dist", "zpkg", "1.0", ["cp312-cp312-musllinux_1_2_x86_64"],
                                {"zpkg/_z.so": ext})
    r, [out] = wheel_json(whl, "--arch", "x86_64", "--cache-dir", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert out["ok"] is True
    assert out["base_image"].get("libz.so.1") == "zlib"
    assert not set(out["base_image"]) & set(out["unresolved"])


def test_cairo_like_minimal_set_and_conditional_submodule(tmp_path):
    whl = wheelbuild.make_pure_wheel(tmp_path / "dist", "cairolike", wheelbuild.CAIRO_LIKE)
    db = _db(tmp_path)
    cache = ["--cache-dir", tmp_path / "c"]
    r = run("wheel", whl, "--db", db, *cache)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith(": pure Python; needs cairo (loaded at run time)")
    assert "  dlopen    gdk-3 (/cairolike/pixbuf.py:7, dlopen) -> gtk+3.0 (when cairolike.pixbuf is imported)" in lines
    r, [out] = wheel_json(whl, "--db", db, *cache)
    assert out["packages"] == ["cairo"]
    assert {d["when"] for d in out["dlopen"] if d["path"] == "/cairolike/pixbuf.py"} == {"cairolike.pixbuf"}
    assert {d["when"] for d in out["dlopen"] if d["path"] == "/cairolike/__init__.py"} == {None}
    # the option adds them: gtk+3.0 pulls in cairo, gdk-pixbuf and glib
    r, [out] = wheel_json(whl, "--db", db, "--conditional-loads", *cache)
    assert out["packages"] == ["gtk+3.0"]
    assert out["all_packages"] == ["cairo", "gdk-pixbuf", "glib", "gtk+3.0"]


def test_scan_dlopen_conditional_in_a_tree(tmp_path):
    root = tmp_path / "root"
    site = root / "usr/local/lib/python3.12/site-packages"
    for name, data in wheelbuild.CAIRO_LIKE.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(_db(tmp_path).read_text())
    cache = ["--cache-dir", tmp_path / "c"]
    r = run("scan", "--root", root, "--dlopen", *cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cairo"]
    r = run("scan", "--root", root, "--dlopen", "--conditional-loads", *cache)
    assert r.stdout.split() == ["gtk+3.0"]
    out = json.loads(run("scan", "--root", root, "--dlopen", "--format", "json", *cache).stdout)
    assert {d["when"] for d in out["dlopen"] if d["path"].endswith("/pixbuf.py")} == {"cairolike.pixbuf"}


def test_library_call_adds_runtime_loads(tmp_path):
    """The stage is in the core: rundeps.api, no CLI."""
    from rundeps.api import Sources, add_runtime_loads, check_tree

    root = tmp_path / "root"
    site = root / "usr/local/lib/python3.12/site-packages"
    for name, data in wheelbuild.MAGIC_LIKE.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(_db(tmp_path).read_text())
    res = check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), explicit_root=True)
    loaded = add_runtime_loads(res, ["/usr/local"], str(root))
    assert loaded.dlopen_unresolved == []
    assert [p.name for p in loaded.packages] == ["libmagic"]


# -- the real wheels ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_wheels(tmp_path_factory):
    dest = tmp_path_factory.mktemp("pypi")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest),
                        "python-magic==0.4.27", "cairocffi==1.7.1"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"cannot download from PyPI: {r.stderr.strip().splitlines()[-1:]}")
    return {p.name.split("-")[0]: p for p in dest.glob("*.whl")}


@pytest.mark.skipif(not REAL_INDEX.exists(), reason="../shared/alpine is not here")
def test_real_wheels_against_the_real_index(real_wheels, tmp_path):
    src = ["--index", REAL_INDEX, "--arch", "x86_64", "--cache-dir", tmp_path / "c"]
    r, [magic] = wheel_json(real_wheels["python_magic"], *src)
    assert r.returncode == 0, r.stderr
    assert magic["packages"] == ["libmagic"]
    assert magic["verdict"] == "pure Python; needs libmagic (loaded at run time)"
    r, [cairo] = wheel_json(real_wheels["cairocffi"], *src)
    assert cairo["packages"] == ["cairo"], cairo["verdict"]
    assert {d["when"] for d in cairo["dlopen"] if d["path"] == "/cairocffi/pixbuf.py"} == {"cairocffi.pixbuf"}
    r, [cairo] = wheel_json(real_wheels["cairocffi"], "--conditional-loads", *src)
    assert cairo["packages"] == ["gtk+3.0"]


def test_alternatives_resolve_to_installed_then_smallest(tmp_path):
    """A try/except pair of loads: one package, the installed one, else the smallest by I:."""
    import indexbuild

    src = (b"import ctypes\ntry:\n    lib = ctypes.CDLL('libfoo.so.1')\n"
           b"except OSError:\n    lib = ctypes.CDLL('libbar.so.1')\n")
    whl = wheelbuild.make_pure_wheel(tmp_path / "dist", "altpkg", {"altpkg/__init__.py": src})
    blocks = "".join(
        f"C:Q1{'A' * 27}=\nP:{name}\nV:1-r0\nA:{ARCH}\nS:1000\nI:{size}\nT:{name}\np:so:{soname}=1\n\n"
        for name, size, soname in (("bigfoo", 9000000, "libfoo.so.1"), ("smallbar", 40000, "libbar.so.1")))
    key = indexbuild.new_key()
    keys = tmp_path / "keys"
    keys.mkdir()
    indexbuild.write_key(keys, "test@example.org-1.rsa.pub", key)
    index = tmp_path / "APKINDEX.tar.gz"
    index.write_bytes(indexbuild.make_index(blocks, key, "test@example.org-1.rsa.pub"))
    src_opts = ["--index", index, "--keys-dir", keys, "--arch", ARCH, "--cache-dir", tmp_path / "c"]
    r, [out] = wheel_json(whl, *src_opts)
    assert r.returncode == 0, r.stderr
    assert out["packages"] == ["smallbar"]
    assert {d["package"] for d in out["dlopen"]} == {"smallbar", None}
    db = tmp_path / "installed"
    db.write_text(demo.db_block("bigfoo", "1-r0", ARCH, provides=["so:libfoo.so.1=1"]))
    r, [out] = wheel_json(whl, "--db", db, *src_opts)
    assert out["packages"] == ["bigfoo"]

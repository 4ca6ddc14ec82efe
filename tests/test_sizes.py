"""Installed sizes (I:), the run-time closure, and what deleting the build virtual frees.

Expected sums come from the raw database or index text, read here with a
separate, simple parse (blocks of ``X:value`` lines) and a separate D: walk,
never from rundeps' package model.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "alpine"
PHP_DB = SHARED / "installed" / "alpine-3.21-x86_64-php.installed"
ZT_DB = SHARED / "installed" / "alpine-3.8-aarch64-zerotier.installed"
INDEX = SHARED / "index" / "3.20-main-x86_64" / "APKINDEX.tar.gz"

from ptyrun import run_with_terminal_stderr  # noqa: E402
from scriptmods import demo  # noqa: E402

ARCH = demo.host_arch()
LIBC = demo.musl_soname(ARCH)
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build ELF fixtures")


def run(*args):
    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rundeps", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=120)


# -- an independent reading of the raw text --------------------------------------------


def raw_blocks(text):
    """name -> {"I": int, "D": [names], "p": [names]} from the raw text."""
    out = {}
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if len(line) > 2 and line[1] == ":" and line[0] not in fields:
                fields[line[0]] = line[2:]
        if "P" in fields:
            out.setdefault(fields["P"], {
                "I": int(fields.get("I", "0")),
                "D": fields.get("D", "").split(),
                "p": [re.split("[<>=~]", a)[0] for a in fields.get("p", "").split()],
                "k": int(fields.get("k", "0")),
            })
    return out


def raw_closure(blocks, start):
    """Names reachable from ``start`` through D: (names, then provides)."""
    provided = {}
    for name, b in sorted(blocks.items(), key=lambda kv: (-kv[1]["k"], kv[0])):
        for p in b["p"]:
            provided.setdefault(p, name)
    seen, todo = set(), list(start)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        for atom in blocks[n]["D"]:
            if atom.startswith("!"):
                continue
            dep = re.split("[<>=~]", atom)[0]
            dep = dep if dep in blocks else provided.get(dep)
            if dep is not None:
                todo.append(dep)
    return seen


def index_text(path):
    with tarfile.open(path, "r:gz") as tf:
        return tf.extractfile("APKINDEX").read().decode("utf-8", "replace")


def resolution_for(universe, names):
    from rundeps.resolve import Resolution

    pkgs = [universe.package(n) for n in names]
    return Resolution("x86_64", universe, all_packages=sorted(pkgs, key=lambda p: p.name),
                      packages=universe.minimal(pkgs))


# -- I: is kept ---------------------------------------------------------------------


@pytest.mark.skipif(not PHP_DB.exists() or not ZT_DB.exists(), reason="needs ../shared/alpine")
@pytest.mark.parametrize("db", [PHP_DB, ZT_DB], ids=["3.21-php", "3.8-zerotier"])
def test_installed_database_keeps_every_I_field(db):
    from rundeps.api import load_database

    text = db.read_text()
    raw = raw_blocks(text)
    repo = load_database(str(db))
    assert {p.name: p.installed_size for p in repo.packages} == {n: b["I"] for n, b in raw.items()}
    assert sum(b["I"] for b in raw.values()) > 10 << 20  # real figures, not zeros


@pytest.mark.skipif(not INDEX.exists(), reason="needs ../shared/alpine")
def test_index_keeps_every_I_field():
    from rundeps.apk.index import load_keys, read_index

    raw = raw_blocks(index_text(INDEX))
    index = read_index(INDEX.read_bytes(), load_keys([str(SHARED / "keys")]), name=str(INDEX))
    got = {p.name: p.installed_size for p in index.repository.packages}
    assert {n: got[n] for n in raw} == {n: b["I"] for n, b in raw.items()}


@pytest.mark.skipif(not PHP_DB.exists(), reason="needs ../shared/alpine")
def test_closure_sum_on_a_real_database(tmp_path):
    from rundeps.api import load_database
    from rundeps.apk.model import Universe
    from rundeps.apk.sizes import installed_sizes

    raw = raw_blocks(PHP_DB.read_text())
    universe = Universe([load_database(str(PHP_DB))])
    start = ["php84", "php84-curl", "openrc"]
    res = resolution_for(universe, start)
    report = installed_sizes(res, str(tmp_path))  # a root without a world file
    expected = raw_closure(raw, start)
    assert {p.name for p in report.closure} == expected
    assert report.to_json()["closure"]["bytes"] == sum(raw[n]["I"] for n in expected)
    assert report.to_json()["per_package"] == {n: raw[n]["I"] for n in sorted(expected)}
    # all installed, and (no world file) kept by the leaves of the database: nothing to add
    assert report.adds == []


@needs_gcc
@pytest.mark.skipif(not INDEX.exists(), reason="needs ../shared/alpine")
def test_sizes_from_a_real_index(tmp_path):
    b = demo.Builder(tmp_path / "build")
    tree = tmp_path / "tree"
    b.shared(tree / "ext.so", needed=["libpq.so.5", "libxml2.so.2", "libcurl.so.4", LIBC])
    r = run("scan", "--index", INDEX, "--keys-dir", SHARED / "keys", "--arch", "x86_64", "--format", "json",
            "--no-cache", tree)
    if ARCH != "x86_64":
        pytest.skip("the shared index is x86_64")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    raw = raw_blocks(index_text(INDEX))
    expected = raw_closure(raw, out["packages"])
    sizes = out["installed_size"]
    assert set(sizes["closure"]["packages"]) == expected
    assert sizes["closure"]["bytes"] == sum(raw[n]["I"] for n in expected)
    assert sizes["minimal_set"] == sum(raw[n]["I"] for n in out["packages"])
    # no installed database: everything in the closure is added
    assert sizes["adds"] == sizes["closure"]
    assert sizes["build_deps"] is None


# -- the demo root: world, .build-deps --------------------------------------------------


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build ELF fixtures")
    root = tmp_path_factory.mktemp("demo") / "root"
    demo.build_demo_root(root, workdir=tmp_path_factory.mktemp("build"))
    return root


def copy_root(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


# Read off the demo's design (scripts/make_demo_root.py): the run-time set is
# libpq, libsharpyuv, tiff; apk-tools (world) keeps musl, zlib, libcrypto3,
# libssl3; .build-deps alone keeps gcc and the -dev packages, and the four
# run-time packages the run-time set now keeps.
RUNTIME_ADDS = {"libpq", "libsharpyuv", "tiff", "libjpeg-turbo"}
FREED = {"gcc", "binutils", "libgcc", "musl-dev", "openssl-dev", "libpq-dev", "zlib-dev", "libjpeg-turbo-dev",
         "tiff-dev", "libwebp-dev"}


def test_demo_root_sizes_and_build_deps(demo_root):
    raw = raw_blocks((demo_root / "lib/apk/db/installed").read_text())
    r = run("scan", "--root", demo_root, "--format", "json", "--no-cache")
    assert r.returncode == 0, r.stderr
    sizes = json.loads(r.stdout)["installed_size"]
    closure = raw_closure(raw, ["libpq", "libsharpyuv", "tiff"])
    assert set(sizes["closure"]["packages"]) == closure
    assert sizes["closure"]["bytes"] == sum(raw[n]["I"] for n in closure)
    assert set(sizes["adds"]["packages"]) == RUNTIME_ADDS
    assert sizes["adds"]["bytes"] == sum(raw[n]["I"] for n in RUNTIME_ADDS)
    bd = sizes["build_deps"]
    assert bd["name"] == ".build-deps"
    assert set(bd["frees"]["packages"]) == FREED
    assert bd["frees"]["bytes"] == sum(raw[n]["I"] for n in FREED)
    assert set(bd["keeps"]["packages"]) == RUNTIME_ADDS
    # the same without a world file: the installed packages nothing depends on stand for it
    root2 = copy_root(demo_root, demo_root.parent / "noworld")
    (root2 / "etc/apk/world").unlink()
    sizes2 = json.loads(run("scan", "--root", root2, "--format", "json", "--no-cache").stdout)["installed_size"]
    assert sizes2 == sizes


def test_world_entries_keep_what_they_name(demo_root, tmp_path):
    root = copy_root(demo_root, tmp_path / "root")
    # the user asked for zlib-dev and gcc themselves: deleting .build-deps keeps them (and binutils, ...)
    world = (root / "etc/apk/world").read_text().split() + ["zlib-dev", "gcc@edge>=13"]
    (root / "etc/apk/world").write_text("\n".join(world) + "\n")
    raw = raw_blocks((root / "lib/apk/db/installed").read_text())
    out = json.loads(run("scan", "--root", root, "--format", "json", "--no-cache").stdout)
    bd = out["installed_size"]["build_deps"]
    kept_by_world = raw_closure(raw, ["zlib-dev", "gcc"])
    assert set(bd["frees"]["packages"]) == FREED - kept_by_world
    assert {"gcc", "binutils", "libgcc", "musl-dev", "zlib-dev"} <= kept_by_world


def test_build_deps_named(demo_root, tmp_path):
    root = copy_root(demo_root, tmp_path / "root")
    db = root / "lib/apk/db/installed"
    db.write_text(db.read_text().replace("P:.build-deps\n", "P:.pillow-build\n"))
    world = root / "etc/apk/world"
    world.write_text(world.read_text().replace(".build-deps", ".pillow-build"))
    out = json.loads(run("scan", "--root", root, "--format", "json", "--no-cache").stdout)
    assert out["installed_size"]["build_deps"] is None  # no .build-deps here
    r = run("scan", "--root", root, "--format", "json", "--no-cache", "--build-deps", ".pillow-build")
    bd = json.loads(r.stdout)["installed_size"]["build_deps"]
    assert bd["name"] == ".pillow-build" and set(bd["frees"]["packages"]) == FREED
    r = run("scan", "--root", root, "--no-cache", "--build-deps", ".nothing")
    assert r.returncode == 0
    assert r.stderr == ("rundeps: warning: no package .nothing in the installed database: "
                        "nothing to say about deleting it\n")


def test_size_line_only_on_a_terminal(demo_root):
    proc, seen = run_with_terminal_stderr("scan", "--root", str(demo_root), "--no-cache", "--no-progress")
    assert proc.returncode == 0
    assert proc.stdout == b"libpq\nlibsharpyuv\ntiff\n"
    raw = raw_blocks((demo_root / "lib/apk/db/installed").read_text())
    adds = sum(raw[n]["I"] for n in RUNTIME_ADDS) / (1 << 20)
    frees = sum(raw[n]["I"] for n in FREED) / (1 << 20)
    assert seen.decode() == (
        f"rundeps: adds 4 packages, {adds:.1f} MiB; deleting .build-deps then frees 10 packages, "
        f"{frees:.1f} MiB (keeping libjpeg-turbo, libpq, libsharpyuv, tiff)\r\n"
    )
    # not a terminal, or --quiet: no line
    r = run("scan", "--root", demo_root, "--no-cache")
    assert r.stderr == "" and r.stdout == "libpq\nlibsharpyuv\ntiff\n"


def test_format_size():
    from rundeps.apk.sizes import format_size

    assert format_size(10275635) == "9.8 MiB"
    assert format_size(2048) == "2.0 KiB"
    assert format_size(12) == "12 B"

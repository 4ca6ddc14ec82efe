"""The load model's other rules: which musl a tree is bound against (the
target's, never the host's), glibc's own libraries judged under glibc, and
verdicts as values (the exit code follows a fault's kind, not its words).

Fixtures are built with gcc at test time (scripts/make_demo_root.py); the
target's database is the real Alpine 3.21 one in ../shared/alpine (skipped
without it).
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

from rundeps.api import Sources, check_tree  # noqa: E402
from rundeps.verdict import KINDS, MISSING_LIBRARY, MISSING_SYMBOL, Fault  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "alpine"
DB_321 = SHARED / "installed" / "alpine-3.21-x86_64-php.installed"
ARCH = demo.host_arch()
LIBC = demo.musl_soname(ARCH)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build ELF fixtures")


def run(*args):
    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rundeps", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=120)


@pytest.fixture()
def builder(tmp_path):
    return demo.Builder(tmp_path / "build")


def musl_db(root: Path) -> None:
    """An installed database with only musl in it."""
    db = root / "lib/apk/db/installed"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_text(demo.db_block("musl", "1.2.5-r0", ARCH, provides=[f"so:{LIBC}=1"],
                                files=[f"lib/{LIBC}"]))


# -- which musl --------------------------------------------------------------------


def _db_musl_version(db: Path) -> str:
    """The version of the ``musl`` package a database lists (read here with
    plain text processing, not with rundeps)."""
    blocks = db.read_text().split("\n\n")
    for block in blocks:
        fields = dict(line.split(":", 1) for line in block.splitlines() if len(line) > 2 and line[1] == ":")
        if fields.get("P") == "musl":
            return fields["V"]
    raise AssertionError("no musl in the database")


@pytest.mark.skipif(not DB_321.exists(), reason="../shared/alpine absent")
@pytest.mark.skipif(ARCH != "x86_64", reason="the shared database is x86_64")
def test_a_tree_checked_off_target_binds_against_the_targets_musl(tmp_path, builder):
    """A tree on this host, checked with --db of an Alpine 3.21 image: bound
    against the export list for that image's musl package, not against a
    ld-musl the host (or a root folder that is not the target) has."""
    host = tmp_path / "host"  # a folder that is not an Alpine root: no apk database
    tree = host / "app"
    builder.shared(tree / "libapp.so.1", soname="libapp.so.1", needed=[LIBC])
    # a musl of its own in that folder, as a Debian host with the musl package has
    fake = host / "lib" / "ld-musl-x86_64.so.1"
    builder.shared(fake, soname="libc.so")
    sources = Sources(db=str(DB_321), use_cache=False)
    res = check_tree(["/app"], root=str(host), sources=sources)
    want = _db_musl_version(DB_321)
    desc = res.binding.musl_description
    assert "the root's" not in desc, desc
    assert want in desc and "shipped" in desc, desc
    # given as the target with --root, the root's own loader is the musl
    res = check_tree(["/app"], root=str(host), sources=sources, explicit_root=True)
    assert "(the root's /lib/ld-musl-x86_64.so.1)" in res.binding.musl_description


# -- glibc's own folders -----------------------------------------------------------


def test_glibc_compat_folder_is_judged_under_glibc(tmp_path, builder):
    """Scanning /usr/glibc-compat of an image with a glibc beside musl: its
    libraries are loaded by glibc programs only, so no musl verdict and no
    package for what the scanned folder itself holds."""
    root = tmp_path / "root"
    demo.build_demo_root(root, workdir=tmp_path / "build-root")
    demo.add_glibc_compat(root, builder)
    r = run("scan", "--root", root, "--format", "json", "--cache-dir", tmp_path / "c", "/usr/glibc-compat")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["will_not_load"] == {}
    assert out["packages"] == [] and out["unresolved"] == {}
    assert set(out["runs_under_glibc"]) == {f"/usr/glibc-compat/lib/{n}" for n in
                                            ("libc.so.6", "libm.so.6", "libpthread.so.0",
                                             demo.GLIBC_LOADER[ARCH][1])}
    assert "will not load" not in r.stderr


# -- verdicts are values -------------------------------------------------------------


def test_fault_reason_carries_the_chain():
    own = Fault(MISSING_LIBRARY, "needs libb.so, which musl cannot find", ("/m.so",), ("libb.so",))
    assert own.reason == "needs libb.so, which musl cannot find" and not own.inherited
    far = Fault(MISSING_LIBRARY, own.own, ("/m.so", "/p.libs/a.so", "/p.libs/c.so"), own.names)
    assert far.reason == ("loads /p.libs/a.so, which loads /p.libs/c.so, which will not load "
                          "(needs libb.so, which musl cannot find)")
    assert far.path == "/m.so" and far.failing == "/p.libs/c.so" and far.inherited
    with pytest.raises(ValueError):
        Fault("no such kind", "x", ("/m.so",))
    assert len(set(KINDS)) == len(KINDS)


def test_exit_code_follows_the_kind_not_the_words(tmp_path, builder):
    """--allow-unresolved lets through files whose only fault is a library
    that does not resolve: decided by the fault's kind. A fault of another
    kind worded like a missing library still fails the build."""
    from rundeps.report.problems import exit_code, failing

    root = tmp_path / "root"
    musl_db(root)
    builder.shared(root / "usr/local/lib/libneedy.so.1", soname="libneedy.so.1", needed=["libgone.so.9", LIBC])
    res = check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), explicit_root=True,
                     symbols=False)
    path = "/usr/local/lib/libneedy.so.1"
    assert res.unresolved == {"libgone.so.9": [path]}
    res.faults[path] = Fault(MISSING_LIBRARY, "needs libgone.so.9, which musl cannot find", (path,), ("libgone.so.9",))
    assert failing(res, allow_unresolved=True) == {}
    assert exit_code(res, allow_unresolved=True) == 0 and exit_code(res) == 1
    # the same words, another kind: not let through
    res.faults[path] = Fault(MISSING_SYMBOL, "needs libgone.so.9, which musl cannot find", (path,), ("x",))
    assert list(failing(res, allow_unresolved=True)) == [path]
    assert exit_code(res, allow_unresolved=True) == 1
    # and other words, the same kind: let through
    res.faults[path] = Fault(MISSING_LIBRARY, "libgone.so.9 is not there", (path,), ("libgone.so.9",))
    assert failing(res, allow_unresolved=True) == {}


def test_json_gives_each_reason_its_kind_and_chain(tmp_path, builder):
    """A vendored library's missing dependency shows in the verdict of the
    module that loads it (with the chain), and the vendored library has
    no verdict of its own."""
    root = tmp_path / "root"
    musl_db(root)
    site = root / "usr/local/lib/python3.12/site-packages"
    builder.shared(site / "pkg.libs/libv-1234.so", soname="libv-1234.so", needed=["libgone.so.9", LIBC])
    builder.shared(site / "pkg/_m.cpython-312-x86_64-linux-musl.so", needed=["libv-1234.so", LIBC],
                   rpath="$ORIGIN/../pkg.libs")
    r = run("scan", "--root", root, "--no-symbols", "--format", "json", "--cache-dir", tmp_path / "c")
    out = json.loads(r.stdout)
    mod = "/usr/local/lib/python3.12/site-packages/pkg/_m.cpython-312-x86_64-linux-musl.so"
    lib = "/usr/local/lib/python3.12/site-packages/pkg.libs/libv-1234.so"
    assert out["units"] == {mod: "module"}
    assert out["unresolved"] == {"libgone.so.9": [lib]}
    assert r.returncode == 1
    r = run("scan", "--root", root, "--format", "json", "--cache-dir", tmp_path / "c")
    out = json.loads(r.stdout)
    assert r.returncode == 1
    assert list(out["will_not_load"]) == [mod]
    assert out["will_not_load_kind"] == {mod: MISSING_LIBRARY}
    assert out["will_not_load_chain"] == {mod: [mod, lib]}
    assert out["will_not_load"][mod] == f"loads {lib}, which will not load (needs libgone.so.9, which musl cannot find)"


# -- cannot check is not fails -------------------------------------------------------


def test_a_glibc_linked_module_whose_libraries_are_not_at_hand_cannot_be_checked(tmp_path, builder):
    """A glibc-linked module that binds everything at hand, but whose
    libstdc++ is a package not at hand here (listed, its file absent), is
    not proven to fail: it is unchecked, with a note, and the exit code is 0.
    The same module with the library at hand is judged: it loads."""
    root = tmp_path / "root"
    db = root / "lib/apk/db/installed"
    db.parent.mkdir(parents=True)
    db.write_text(demo.db_block("musl", "1.2.5-r0", ARCH, provides=[f"so:{LIBC}=1"], files=[f"lib/{LIBC}"])
                  + "\n" + demo.db_block("libstdc++", "14.2.0-r4", ARCH, provides=["so:libstdc++.so.6=6.0.33"],
                                         files=["usr/lib/libstdc++.so.6"]))
    mod = "/usr/local/lib/python3.12/site-packages/many/_m.cpython-312-x86_64-linux-gnu.so"
    builder.shared(root / mod.lstrip("/"), needed=["libstdc++.so.6", "libc.so.6"])
    r = run("scan", "--root", root, "--format", "json", "--cache-dir", tmp_path / "c")
    out = json.loads(r.stdout)
    assert r.returncode == 0, r.stderr
    assert out["will_not_load"] == {} and out["unchecked"] == {mod: ["libstdc++.so.6"]}
    assert "note: cannot check " + mod in r.stderr and "libstdc++.so.6 not at hand" in r.stderr
    assert "libstdc++" in out["packages"]
    # with the library at hand, the same module is judged, and loads
    builder.shared(root / "usr/lib/libstdc++.so.6", soname="libstdc++.so.6")
    r = run("scan", "--root", root, "--format", "json", "--cache-dir", tmp_path / "c")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["unchecked"] == {} and out["glibc_loads"] == [mod], r.stderr

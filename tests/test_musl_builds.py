"""Whether the target's loader applies ``DT_RELR`` is read from its build.

Every expected verdict here comes from running a real musl loader on the
same files: Debian's (``/lib/ld-musl-x86_64.so.1``) and each runnable Alpine
build in ``../shared/alpine/musl/`` (1.1.20-r6, 1.2.3-r1, 1.2.5-r0; skipped
when that folder is absent). ``scripts/probe_musl_builds.py`` builds the
probe (a library linked with ``-z pack-relative-relocs`` and a musl program
that ``dlopen``s it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scriptmods import load_script  # noqa: E402

from rundeps.api import Sources, check_tree  # noqa: E402
from rundeps.bind.builds import known_builds, relr_support  # noqa: E402

pmb = load_script("probe_musl_builds")

pytestmark = pytest.mark.skipif(shutil.which("musl-gcc") is None or shutil.which("readelf") is None,
                                reason="musl-gcc and readelf are needed")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    try:
        return pmb.Probe(tmp_path_factory.mktemp("probe"))
    except (RuntimeError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot build the DT_RELR probe: {e}")


def runnable():
    got = pmb.loaders()
    if not got:
        pytest.skip("no musl loader that runs here")
    return got


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_the_shipped_table_says_what_each_loader_at_hand_does(probe):
    """Each loader that runs here and is in ``data/musl/builds.json``
    behaves as the table says; the Alpine ones are all in it."""
    table = known_builds()
    checked = 0
    for ld in runnable():
        entry = table.get(sha(ld["path"]))
        if ld["release"] is not None:
            assert entry is not None, f"{ld['build']} is missing from data/musl/builds.json"
        if entry is None:
            continue
        assert entry.relr == probe.applies_relr(ld["run"]), ld["build"]
        assert entry.release == ld["release"]
        checked += 1
    assert checked


def make_root(tmp_path: Path, name: str, loader: Path, release=None, extra: bytes = b"") -> Path:
    """A root with ``loader`` as its ``/lib/ld-musl-x86_64.so.1`` (plus
    ``extra`` bytes at its end: another build, as far as its digest goes),
    the probe library in ``/usr/local/lib``, and an installed database that
    names musl ``release`` (no musl entry when None)."""
    root = tmp_path / name
    (root / "lib").mkdir(parents=True)
    ld = root / "lib/ld-musl-x86_64.so.1"
    ld.write_bytes(Path(loader).read_bytes() + extra)
    ld.chmod(0o755)
    (root / "usr/local/lib").mkdir(parents=True)
    db = root / "lib/apk/db/installed"
    db.parent.mkdir(parents=True)
    blocks = ["P:busybox\nV:1.36.1-r0\nA:x86_64\n"]
    if release is not None:
        blocks.append(f"P:musl\nV:{release}\nA:x86_64\np:so:libc.musl-x86_64.so.1=1\nF:lib\n"
                      "R:ld-musl-x86_64.so.1\n")
    db.write_text("\n".join(blocks) + "\n")
    return root


def verdict(root: Path, lib: Path):
    """(loads, undecided) for the probe library in ``root``."""
    target = root / "usr/local/lib" / lib.name
    shutil.copy(lib, target)
    res = check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), explicit_root=True)
    path = f"/usr/local/lib/{lib.name}"
    assert path in res.units
    return path not in res.faults, path in res.binding.undecided, res


def test_a_root_is_judged_by_its_own_loader(probe, tmp_path):
    """With the loader's package release in the database, and with only
    the loader file: rundeps says what that loader does."""
    for i, ld in enumerate(runnable()):
        truth = probe.applies_relr(ld["run"])
        for with_db in (True, False):
            if with_db and ld["release"] is None:
                continue
            root = make_root(tmp_path, f"r{i}{'db' if with_db else ''}", Path(ld["path"]),
                             ld["release"] if with_db else None)
            loads, undecided, res = verdict(root, probe.lib)
            assert not undecided, (ld["build"], with_db, res.binding.undecided)
            assert loads == truth, (ld["build"], with_db, res.will_not_load)
            if not truth:
                fault = res.faults[f"/usr/local/lib/{probe.lib.name}"]
                assert fault.kind == "relocation" and fault.names == ("DT_RELR",)


def test_a_loader_rundeps_does_not_know_is_cannot_check(probe, tmp_path):
    """A loader build whose digest is in no table, with no package release
    at hand (a vendor's build), cannot tell: the library is "cannot check",
    exit 0 with one note, and never "will not load" -- whatever that loader
    does (run here: the same bytes with a tail appended behave as the
    original)."""
    base = Path(pmb.DEBIAN_LOADER)
    if not base.exists():
        pytest.skip("Debian's musl is needed")
    root = make_root(tmp_path, "vendor", base, extra=b"\0vendor build\0")
    odd = root / "lib/ld-musl-x86_64.so.1"
    assert sha(odd) not in known_builds()
    assert probe.applies_relr(odd) == probe.applies_relr(None)  # the same loader, another digest
    loads, undecided, res = verdict(root, probe.lib)
    assert loads and undecided
    proc = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--root", str(root), "--no-cache",
                           "/usr/local"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if "DT_RELR" in ln]
    assert len(notes) == 1 and notes[0].startswith("rundeps: note: cannot check /usr/local/lib/"), proc.stderr
    out = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--root", str(root), "--no-cache",
                          "--format", "json", "/usr/local"], capture_output=True, text=True, timeout=120)
    doc = json.loads(out.stdout)
    assert list(doc["undecided"]) == [f"/usr/local/lib/{probe.lib.name}"]
    assert doc["will_not_load"] == {}
    why = subprocess.run([sys.executable, "-m", "rundeps", "why", f"/usr/local/lib/{probe.lib.name}", "--root",
                          str(root), "--no-cache", "--format", "json"], capture_output=True, text=True, timeout=120)
    one = json.loads(why.stdout)
    assert why.returncode == 0 and one["loads"] and "DT_RELR" in one["undecided"], why.stderr


def test_a_bare_prefix_is_judged_by_the_database_it_is_checked_with(probe, tmp_path):
    """Off the target (a tree with no loader, checked with ``--db`` of the
    image): the musl package's release tells, as its loader does when it
    runs here; a release no build is known for cannot tell."""
    releases = {ld["release"]: ld for ld in runnable() if ld["release"]}
    if not releases:
        pytest.skip("the Alpine loaders in ../shared/alpine/musl are needed")
    prefix = tmp_path / "prefix/usr/local/lib"
    prefix.mkdir(parents=True)
    shutil.copy(probe.lib, prefix / probe.lib.name)
    for release, ld in sorted(releases.items()) + [("1.2.3-r0", None)]:
        db = tmp_path / f"installed-{release}"
        db.write_text(f"P:musl\nV:{release}\nA:x86_64\np:so:libc.musl-x86_64.so.1=1\n\n")
        proc = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--root", str(tmp_path / "prefix"),
                               "--db", str(db), "--no-cache", "--format", "json", "/usr/local"],
                              capture_output=True, text=True, timeout=120)
        doc = json.loads(proc.stdout)
        path = f"/usr/local/lib/{probe.lib.name}"
        if ld is None:
            assert proc.returncode == 0 and path in doc["undecided"], (release, proc.stderr)
            continue
        truth = probe.applies_relr(ld["run"])
        assert (path not in doc["will_not_load"]) == truth, (release, proc.stderr)
        assert proc.returncode == (0 if truth else 1), (release, proc.stderr)
        assert path not in doc["undecided"]


def test_version_rules():
    """What a version alone can tell: 1.2.4 and later, and snapshots after
    the upstream change, apply DT_RELR; an older upstream version cannot
    tell; with neither version nor a known digest nothing can."""
    assert relr_support("1.2.4-r2").applies is True
    assert relr_support("1.2.3_git20221007-r0").applies is True
    assert relr_support("1.2.3_git20220101-r0").applies is None
    assert relr_support("1.2.3-r0").applies is None
    assert relr_support("1.2.3").applies is None
    assert relr_support(None, lambda: "0" * 64).applies is None
    assert relr_support(None, None).applies is None


DLOPEN_SRC = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) { void *h = dlopen(argv[1], RTLD_NOW); puts(h ? "OK" : dlerror()); return !h; }
"""

NEWER_NAME_SRC = r"""
#define _GNU_SOURCE
#include <unistd.h>
long f(void) { return (long)copy_file_range(0, 0, 1, 0, 0, 0); }
"""


def test_a_name_only_a_newer_list_has_is_cannot_check_under_an_older_list(tmp_path):
    """``copy_file_range`` is in the 1.2.3 export list and not in 1.1.20's.
    Against a musl version with no list of its own (1.1.24: the 1.1.20 list
    is the nearest older), whether it is there cannot be told: "cannot
    check", exit 0. Against the exact lists, rundeps says what the real
    loaders of those versions do with the library."""
    musl_gcc = shutil.which("musl-gcc")
    (tmp_path / "lib.c").write_text(NEWER_NAME_SRC)
    (tmp_path / "dl.c").write_text(DLOPEN_SRC)
    lib, prog = tmp_path / "libnewer.so", tmp_path / "dl"
    subprocess.run([musl_gcc, "-shared", "-fPIC", "-o", str(lib), str(tmp_path / "lib.c")], check=True)
    subprocess.run([musl_gcc, "-o", str(prog), str(tmp_path / "dl.c")], check=True)
    root = tmp_path / "root"
    (root / "usr/local/lib").mkdir(parents=True)
    shutil.copy(lib, root / "usr/local/lib" / lib.name)
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text("P:busybox\nV:1.36.1-r0\nA:x86_64\n\n")
    path = f"/usr/local/lib/{lib.name}"

    def ours(version):
        res = check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), musl_version=version)
        return path not in res.faults, path in res.binding.undecided

    assert ours("1.1.24") == (True, True)
    by_release = {ld["release"]: ld for ld in pmb.loaders() if ld["release"]}
    for release, version in (("1.1.20-r6", "1.1.20"), ("1.2.3-r1", "1.2.3")):
        ld = by_release.get(release)
        if ld is None:
            continue
        truth = subprocess.run([str(ld["run"]), str(prog), str(lib)], capture_output=True, text=True).returncode == 0
        assert ours(version) == (truth, False), (release, truth)

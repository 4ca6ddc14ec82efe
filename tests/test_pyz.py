"""The zip application (issue 19, part A): ``scripts/build_pyz.py`` writes
``rundeps.pyz``, rundeps and its pure-Python dependencies in one archive.

Built once per session into a folder of the test's (the wheels are
downloaded into ``build/pyz-wheels``; the test skips when they cannot be had,
offline).  Then, with interpreters outside any virtual environment
(``/usr/bin/python3`` and the oldest installed 3.9+ found, each with ``-I``):

* ``scan``, ``scan --format json`` and ``why`` of the demo root give the
  very bytes the installed CLI (``python -m rundeps``) gives;
* the archive holds no compiled module, and a second build is byte-identical;
* with ``HOME`` an empty read-only folder and ``TMPDIR`` an empty one, a
  ``--no-cache`` run leaves both empty;
* ``--version`` names the archive; the stand-in ``certifi`` answers a real
  file and removes what it extracted.
"""

import glob
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scriptmods import demo

PROJECT = Path(__file__).resolve().parents[1]
BUILD = PROJECT / "scripts" / "build_pyz.py"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the demo root")


def build(out: Path):
    r = subprocess.run([sys.executable, str(BUILD), "-o", str(out)], capture_output=True, text=True, timeout=600)
    if r.returncode == 3:
        pytest.skip(f"the pinned wheels cannot be had here: {r.stderr.strip().splitlines()[-1:]}")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def pyz(tmp_path_factory):
    return build(tmp_path_factory.mktemp("pyz") / "rundeps.pyz")


@pytest.fixture(scope="session")
def root(tmp_path_factory):
    top = tmp_path_factory.mktemp("demo")
    return demo.build_demo_root(top / "image", workdir=top / "build")


def _version(python: str):
    r = subprocess.run([python, "-I", "-c", "import sys; print(sys.prefix == sys.base_prefix, *sys.version_info[:2])"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    plain, major, minor = r.stdout.split()
    return (int(major), int(minor)) if plain == "True" else None


def interpreters():
    """System Pythons (outside any virtual environment): /usr/bin/python3
    and the oldest 3.9+ installed (pyenv's included)."""
    found = {}
    for cand in ["/usr/bin/python3", *sorted(glob.glob("/usr/bin/python3.[0-9]*")),
                 *sorted(glob.glob("/root/.pyenv/versions/3.*/bin/python3"))]:
        if not os.path.isfile(cand) or cand.endswith("-config"):
            continue
        v = _version(cand)
        if v is not None and v >= (3, 9):
            found.setdefault(os.path.realpath(cand), (v, cand))
    chosen = []
    system = [c for v, c in found.values() if c == "/usr/bin/python3"]
    chosen += system
    oldest = sorted(found.values())
    if oldest and oldest[0][1] not in chosen:
        chosen.append(oldest[0][1])
    return chosen


PYTHONS = interpreters()


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNDEPS_", "XDG_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(extra)
    return env


def run_pyz(python, pyz, *args, **env):
    return subprocess.run([python, "-I", str(pyz), *args], capture_output=True, env=clean_env(**env), timeout=300)


def run_installed(*args):
    env = clean_env(PYTHONPATH=str(PROJECT))
    return subprocess.run([sys.executable, "-m", "rundeps", *args], capture_output=True, env=env, timeout=300)


COMMANDS = [
    ["scan", "--root", "{root}", "--no-cache"],
    ["scan", "--root", "{root}", "--no-cache", "--format", "json"],
    ["why", "libpq", "--root", "{root}", "--no-cache"],
]


@pytest.mark.skipif(not PYTHONS, reason="no system python3 (3.9+) outside a virtual environment")
@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:1] + c[4:]) or c[0])
def test_same_output_as_the_installed_cli(pyz, root, python, command, tmp_path):
    args = [a.format(root=root) for a in command]
    want = run_installed(*args)
    home = tmp_path / "home"
    home.mkdir()
    got = run_pyz(python, pyz, *args, HOME=str(home), TMPDIR=str(tmp_path))
    assert want.returncode == 0, want.stderr
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)


@pytest.mark.skipif(not PYTHONS, reason="no system python3 (3.9+) outside a virtual environment")
@pytest.mark.parametrize("python", PYTHONS)
def test_leaves_nothing_in_home_or_tmpdir(pyz, root, python, tmp_path):
    home = tmp_path / "home"
    tmp = tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    home.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        r = run_pyz(python, pyz, "scan", "--root", str(root), "--no-cache", HOME=str(home), TMPDIR=str(tmp))
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [b"libpq", b"libsharpyuv", b"tiff"]
        assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []
    finally:
        home.chmod(0o755)


@pytest.mark.skipif(not PYTHONS, reason="no system python3 (3.9+) outside a virtual environment")
def test_version_names_the_archive(pyz):
    r = run_pyz(PYTHONS[0], pyz, "--version")
    assert r.stdout.decode() == f"rundeps, version 0.1.0 (zip application {pyz})\n"
    assert run_installed("--version").stdout == b"rundeps, version 0.1.0\n"


def test_pure_python_only(pyz):
    with zipfile.ZipFile(pyz) as zf:
        names = zf.namelist()
    assert "__main__.py" in names
    assert not [n for n in names if n.lower().endswith((".so", ".pyd", ".dylib", ".pyc", ".pyo")) or "__pycache__" in n]
    # the data ships as rundeps.data; rundeps' own modules all there
    assert any(n.startswith("rundeps/data/keys/") and n.endswith(".rsa.pub") for n in names)
    assert any(n.startswith("rundeps/data/musl/") for n in names)
    own = sorted(f"rundeps/{p.relative_to(PROJECT / 'rundeps').as_posix()}" for p in (PROJECT / "rundeps").rglob("*.py"))
    assert set(own) <= set(names)
    # dist-info: METADATA and licences only
    assert not [n for n in names if ".dist-info/" in n and n.rsplit("/", 1)[-1] in ("RECORD", "WHEEL", "INSTALLER")]


def test_reproducible(pyz, tmp_path):
    again = build(tmp_path / "again.pyz")
    assert again.read_bytes() == pyz.read_bytes()
    with zipfile.ZipFile(pyz) as zf:
        infos = zf.infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)


CERTIFI_CHECK = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import rundeps.zipapp as z
z.install_certifi()
import requests, requests.utils
assert requests.utils.DEFAULT_CA_BUNDLE_PATH == z.where() != "" and os.path.isfile(z.where())
# the fall-back: the archive's own cacert.pem, extracted and then removed
z.SYSTEM_CA_FILES = ()
z._system_ca_file = lambda: None
path = z.where()
assert open(path, "rb").read().startswith(b"\n# Issuer") or b"BEGIN CERTIFICATE" in open(path, "rb").read()
assert os.path.dirname(os.path.dirname(path)) == os.environ["TMPDIR"].rstrip("/")
z.cleanup()
assert os.listdir(os.environ["TMPDIR"]) == []
print("ok")
"""


@pytest.mark.skipif(not PYTHONS, reason="no system python3 (3.9+) outside a virtual environment")
def test_certifi_stand_in(pyz, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = subprocess.run([PYTHONS[0], "-I", "-c", CERTIFI_CHECK, str(pyz)], capture_output=True, text=True,
                       env=clean_env(TMPDIR=str(tmp), HOME=str(tmp_path)), timeout=120)
    assert r.stdout == "ok\n", r.stderr
    assert list(tmp.iterdir()) == []


def test_data_read_through_traversables():
    from rundeps.apk.index import bundled_keys_dir, load_bundled_keys, load_keys
    from rundeps.bind import exports

    assert dict(load_bundled_keys()) == dict(load_keys([bundled_keys_dir()]))
    assert exports.available() and exports.load() is not None


def _pycs(folder: Path):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.skipif(not PYTHONS, reason="no system python3 (3.9+) outside a virtual environment")
@pytest.mark.parametrize("python", PYTHONS)
def test_bytecode_cache(pyz, root, python, tmp_path):
    """The first run with a cache keeps the compiled modules under
    ``<cache>/pyz/<digest>-<tag>-<magic>/`` (a tree mirroring the archive),
    the next runs import from there; the output is the installed CLI's each
    time; a damaged or stale file is recompiled, never used."""
    cache = tmp_path / "cache"
    args = ["scan", "--root", str(root), "--format", "json"]
    want = run_installed(*args, "--no-cache")
    first = run_pyz(python, pyz, *args, RUNDEPS_CACHE_DIR=str(cache), HOME=str(tmp_path))
    assert (first.returncode, first.stdout) == (want.returncode, want.stdout), first.stderr
    (folder,) = (cache / "pyz").iterdir()
    with zipfile.ZipFile(pyz) as zf:
        digest = zf.read("__main__.py").decode().split('use_bytecode_cache("')[1][:32]
    assert folder.name.startswith(digest + "-")
    pycs = _pycs(folder)
    assert "rundeps/cli.pyc" in pycs and "click/core.pyc" in pycs
    assert not [p for p in pycs if not p.endswith(".pyc")]  # no temporary file left
    stamps = {p: (folder / p).stat().st_mtime_ns for p in pycs}
    again = run_pyz(python, pyz, *args, RUNDEPS_CACHE_DIR=str(cache), HOME=str(tmp_path))
    assert (again.returncode, again.stdout, again.stderr) == (first.returncode, first.stdout, first.stderr)
    assert {p: (folder / p).stat().st_mtime_ns for p in _pycs(folder)} == stamps  # read, not rewritten
    # a damaged file and one whose source hash does not match: compiled again
    (folder / "rundeps/cli.pyc").write_bytes(b"garbage")
    data = bytearray((folder / "click/core.pyc").read_bytes())
    data[8] ^= 0xFF
    (folder / "click/core.pyc").write_bytes(bytes(data))
    # (another variable: a run of its own, not answered from the record of the first)
    third = run_pyz(python, pyz, *args, RUNDEPS_CACHE_DIR=str(cache), HOME=str(tmp_path), TEST_RUN="third")
    assert (third.returncode, third.stdout) == (want.returncode, want.stdout), third.stderr
    assert (folder / "rundeps/cli.pyc").read_bytes()[:4] != b"garb"
    # --cache-dir names the folder too
    other = tmp_path / "other"
    r = run_pyz(python, pyz, "scan", "--cache-dir", str(other), "--root", str(root), HOME=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (other / "pyz").is_dir()


@pytest.mark.skipif(not PYTHONS, reason="no system python3 (3.9+) outside a virtual environment")
def test_bytecode_cache_unwritable_or_off(pyz, root, tmp_path):
    """An unwritable cache folder (here below a regular file, which even
    root cannot write into): the run compiles from the archive as before and
    says nothing about it; ``--no-cache``: no folder at all."""
    python = PYTHONS[0]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["scan", "--root", str(root), "--no-cache"]
    want = run_installed(*args)
    got = run_pyz(python, pyz, "--help", RUNDEPS_CACHE_DIR=str(blocker / "c"), HOME=str(tmp_path))
    assert got.returncode == 0 and got.stderr == b"" and b"Usage:" in got.stdout
    got = run_pyz(python, pyz, *args, RUNDEPS_CACHE_DIR=str(tmp_path / "off"), HOME=str(tmp_path))
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert not (tmp_path / "off").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]

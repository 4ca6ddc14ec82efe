"""Repeat runs answered from the record of the same run (rundeps.replay).

Every test runs the console script (``python -m rundeps``) as a real
process on a real root built with gcc.  A run is replayed when the file
cache it would fill is not filled again (the test removes it between
runs); after any change, a repeat run must print what a run without any
cache prints.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptyrun import run_with_terminal_stderr
from scriptmods import demo

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the ELF fixtures")

PROJECT = Path(__file__).resolve().parents[1]
TAG = f"cpython-312-{demo.host_arch()}-linux-musl"
LIBC = demo.musl_soname(demo.host_arch())
SITE = "usr/local/lib/python3.12/site-packages"
ROOTS = 22


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Copies of the demo root made once, then left alone past the racy
    window: a run records only files changed more than RACY_NS before it."""
    from rundeps.replay import RACY_NS

    base = tmp_path_factory.mktemp("replay")
    demo.build_demo_root(base / "demo", workdir=base / "build")
    roots = []
    for i in range(ROOTS):
        root = base / f"root{i}"
        shutil.copytree(base / "demo", root, symlinks=True)
        (base / f"cwd{i}").mkdir()
        roots.append(root)
    b = demo.Builder(base / "build2")
    extra = base / "extra"
    b.shared(extra / "_tk.so", needed=["libtcl8.6.so", LIBC])
    b.shared(extra / "libtcl8.6.so", soname="libtcl8.6.so", needed=[LIBC])
    b.shared(extra / "libpq-other.so", soname="libpq.so.5", needed=["libtcl8.6.so", LIBC])
    time.sleep(RACY_NS / 1e9 + 0.2)
    return {"roots": roots, "extra": extra}


@pytest.fixture()
def root(pool, tmp_path):
    """A root of the pool (and a working folder of its own) for this test."""
    r = pool["roots"].pop()
    return r


def rundeps(root, *args, cache=None, env=None, stderr=subprocess.PIPE, stdout=subprocess.PIPE):
    """``python -m rundeps scan --root ROOT ARGS`` in a working folder of its own."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RUNDEPS_")}
    full_env["PYTHONPATH"] = str(PROJECT)
    full_env.update(env or {})
    cache_args = ["--no-cache"] if cache is None else ["--cache-dir", str(cache)]
    cwd = root.parent / root.name.replace("root", "cwd")
    return subprocess.run([sys.executable, "-m", "rundeps", "scan", "--root", str(root), *cache_args, *args],
                          stdout=stdout, stderr=stderr, env=full_env, cwd=cwd, timeout=120)


def outputs(proc):
    return proc.returncode, proc.stdout, proc.stderr


def records(cache: Path):
    runs = cache / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


def replayed(root, cache, *args, **kw):
    """Run again with the file cache removed: (the process, whether it was
    answered from the record -- the file cache was not filled again)."""
    shutil.rmtree(cache / "filecache", ignore_errors=True)
    proc = rundeps(root, *args, cache=cache, **kw)
    return proc, not (cache / "filecache").exists()


def test_a_repeat_run_is_answered_from_the_record(root, tmp_path):
    cache = tmp_path / "cache"
    first = rundeps(root, cache=cache)
    assert outputs(first) == (0, b"libpq\nlibsharpyuv\ntiff\n", b"")
    assert len(records(cache)) == 1
    again, was_replayed = replayed(root, cache)
    assert was_replayed
    assert outputs(again) == outputs(first)
    # another format is another run
    other, was_replayed = replayed(root, cache, "--format", "so")
    assert not was_replayed
    assert outputs(other) == outputs(rundeps(root, "--format", "so"))
    assert len(records(cache)) == 2


def test_stdout_stderr_order_and_exit_code_are_replayed(root, pool, tmp_path):
    shutil.copy(pool["extra"] / "_tk.so", root / SITE / f"_tk.{TAG}.so")
    time.sleep(2.2)
    cache = tmp_path / "cache"
    first = rundeps(root, cache=cache, stderr=subprocess.STDOUT)
    assert first.returncode == 1
    assert b"libtcl8.6.so" in first.stdout  # the error line, between the package lines
    again, was_replayed = replayed(root, cache, stderr=subprocess.STDOUT)
    assert was_replayed
    assert outputs(again) == outputs(first)


def _add_module(root, pool):
    shutil.copy(pool["extra"] / "_tk.so", root / SITE / f"PIL/_tk.{TAG}.so")


def _edit_in_place(root, pool):
    target = root / SITE / f"PIL/_webp.{TAG}.so"
    data = (pool["extra"] / "_tk.so").read_bytes()
    with open(target, "r+b") as f:  # the same inode
        f.write(data)
        f.truncate()


def _remove_module(root, pool):
    (root / SITE / f"psycopg2/_psycopg.{TAG}.so").unlink()


def _replace_by_rename(root, pool):
    tmp = root / SITE / "psycopg2/new.so"
    shutil.copy(pool["extra"] / "_tk.so", tmp)
    os.replace(tmp, root / SITE / f"psycopg2/_psycopg.{TAG}.so")


def _retarget_symlink(root, pool):
    shutil.copy(pool["extra"] / "libpq-other.so", root / "usr/lib/libpq.so.5.99")
    link = root / "usr/lib/libpq.so.5"
    link.unlink()
    link.symlink_to("libpq.so.5.99")


def _rewrite_symlink_target(root, pool):
    data = (pool["extra"] / "libpq-other.so").read_bytes()
    with open(root / "usr/lib/libpq.so.5.16", "r+b") as f:
        f.write(data)
        f.truncate()


def _library_appears(root, pool):
    # the tk module's libtcl8.6.so was looked for in /usr/lib and not found
    shutil.copy(pool["extra"] / "libtcl8.6.so", root / "usr/lib/libtcl8.6.so")


def _database_edited(root, pool):
    db = root / "lib/apk/db/installed"
    text = db.read_text()
    start = text.index("P:libpq\n")
    end = text.index("\n\n", start) + 2
    db.write_text(text[:start] + text[end:])


def _made_unreadable_by_type(root, pool):
    target = root / SITE / f"PIL/_imaging.{TAG}.so"
    target.unlink()
    target.mkdir()


CHANGES = {
    "a module added": _add_module,
    "a module edited in place": _edit_in_place,
    "a module removed": _remove_module,
    "a module replaced by a rename": _replace_by_rename,
    "a library's symlink retargeted": _retarget_symlink,
    "a library rewritten behind its symlink": _rewrite_symlink_target,
    "a library that was missing appears": _library_appears,
    "the installed database edited": _database_edited,
    "a file replaced by a folder": _made_unreadable_by_type,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_to_what_the_run_looked_at_runs_it_again(root, pool, tmp_path, change):
    if change == "a library that was missing appears":
        shutil.copy(pool["extra"] / "_tk.so", root / SITE / f"_tk.{TAG}.so")
        time.sleep(2.2)
    cache = tmp_path / "cache"
    first = rundeps(root, "--format", "json", cache=cache)
    assert records(cache)
    CHANGES[change](root, pool)
    again, was_replayed = replayed(root, cache, "--format", "json")
    assert not was_replayed
    assert outputs(again) == outputs(rundeps(root, "--format", "json"))
    assert outputs(again) != outputs(first)


def test_environment_and_working_folder_are_part_of_the_run(root, tmp_path):
    cache = tmp_path / "cache"
    first = rundeps(root, cache=cache)
    _, was_replayed = replayed(root, cache, env={"SOME_UNRELATED_VARIABLE": "1"})
    assert not was_replayed
    # the shell's own variables are not
    again, was_replayed = replayed(root, cache, env={"OLDPWD": "/somewhere", "_": "/usr/bin/time"})
    assert was_replayed
    assert outputs(again) == outputs(first)


def test_runs_that_are_not_recorded(root, tmp_path):
    cache = tmp_path / "cache"
    assert rundeps(root, "--format", "cyclonedx", cache=cache).returncode == 0
    sbom = tmp_path / "bom.json"
    assert rundeps(root, "--sbom", str(sbom), cache=cache).returncode == 0
    assert rundeps(root, "--db", str(tmp_path / "no-such-db"), cache=cache).returncode == 2
    assert records(cache) == []
    # an SBOM file removed is written again
    sbom.unlink()
    assert rundeps(root, "--sbom", str(sbom), cache=cache).returncode == 0
    assert sbom.exists()


def test_a_file_changed_just_before_the_run_leaves_no_record(root, tmp_path):
    cache = tmp_path / "cache"
    (root / SITE / "psycopg2/__init__.py").write_text("# touched\n")
    assert rundeps(root, cache=cache).returncode == 0
    assert records(cache) == []
    time.sleep(2.2)
    assert rundeps(root, cache=cache).returncode == 0
    assert len(records(cache)) == 1


def test_a_damaged_record_is_a_full_run(root, tmp_path):
    cache = tmp_path / "cache"
    first = rundeps(root, cache=cache)
    (record,) = records(cache)
    good = (cache / "runs" / record).read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    for damage in (b"", b"\x00garbage", good[:-100], bytes(flipped)):
        (cache / "runs" / record).write_bytes(damage)
        again, was_replayed = replayed(root, cache)
        assert not was_replayed
        assert outputs(again) == outputs(first)


def test_a_reader_that_leaves_early(root, tmp_path):
    cache = tmp_path / "cache"
    rundeps(root, cache=cache)
    shutil.rmtree(cache / "filecache")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNDEPS_")}
    env["PYTHONPATH"] = str(PROJECT)
    read, write = os.pipe()
    os.close(read)  # the reader left before the first byte
    try:
        proc = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--root", str(root), "--cache-dir", str(cache)],
                              stdout=write, stderr=subprocess.PIPE, env=env,
                              cwd=root.parent / root.name.replace("root", "cwd"), timeout=120)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert not (cache / "filecache").exists()  # (answered from the record)


def test_the_terminal_progress_counter_is_not_replayed(root, tmp_path):
    many = root / "usr/local/share/many"
    many.mkdir(parents=True)
    for i in range(2500):
        (many / f"f{i}").write_bytes(b"")
    time.sleep(2.2)
    cache = tmp_path / "cache"
    args = ("scan", "--root", str(root), "--cache-dir", str(cache))
    first, seen = run_with_terminal_stderr(*args)
    assert b"Scanning: " in seen
    assert records(cache)
    shutil.rmtree(cache / "filecache")
    again, seen_again = run_with_terminal_stderr(*args)
    assert not (cache / "filecache").exists()
    assert again.stdout == first.stdout
    assert b"Scanning: " not in seen_again
    assert seen_again.rstrip().endswith(seen.rstrip().rsplit(b"\r\x1b[K", 1)[-1])


def test_the_library_entry_never_records(root, tmp_path):
    cache = tmp_path / "cache"
    code = ("import sys\nfrom rundeps.cli import main\n"
            "try:\n    main(['scan', '--root', sys.argv[1], '--cache-dir', sys.argv[2]])\n"
            "except SystemExit as exc:\n    print('code', exc.code)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(root), str(cache)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(PROJECT)), timeout=120)
    assert proc.stdout.endswith("code 0\n"), proc.stderr
    assert (cache / "filecache").exists()
    assert records(cache) == []


def test_a_record_made_from_the_file_cache_covers_the_files_it_did_not_open(root, pool, tmp_path):
    cache = tmp_path / "cache"
    rundeps(root, cache=cache)
    (root / SITE / "README").write_text("a file that is not ELF\n")
    time.sleep(2.2)
    second = rundeps(root, cache=cache)  # a full run again, its ELF facts from the file cache
    assert len(records(cache)) == 1 and outputs(second)[0] == 0
    _edit_in_place(root, pool)
    again, was_replayed = replayed(root, cache)
    assert not was_replayed
    assert outputs(again) == outputs(rundeps(root))
    assert outputs(again) != outputs(second)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the record to another user")
def test_a_record_another_user_wrote_is_not_used(root, tmp_path):
    cache = tmp_path / "cache"
    first = rundeps(root, cache=cache)
    (record,) = records(cache)
    os.chown(cache / "runs" / record, 12345, 12345)
    again, was_replayed = replayed(root, cache)
    assert not was_replayed
    assert outputs(again) == outputs(first)


def test_only_the_newest_records_are_kept(tmp_path):
    from rundeps.replay import MAX_BYTES, MAX_RECORDS, _prune

    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(MAX_RECORDS + 6):
        (runs / f"r{i:03d}").write_bytes(b"x")
        os.utime(runs / f"r{i:03d}", ns=(i * 10**9, i * 10**9))
    (runs / "r999.123.part").write_bytes(b"being written")
    _prune(str(runs))
    assert sorted(p.name for p in runs.iterdir()) == [f"r{i:03d}" for i in range(6, MAX_RECORDS + 6)] + ["r999.123.part"]
    # together no more than MAX_BYTES, the newest kept whatever its size
    big = runs / "big"
    big.write_bytes(b"\0" * (MAX_BYTES + 1))
    os.utime(big, ns=(10**12, 10**12))
    _prune(str(runs))
    assert sorted(p.name for p in runs.iterdir()) == ["big", "r999.123.part"]


@pytest.fixture()
def watching():
    """A recorder watching this process (stopped after the test)."""
    from rundeps.replay import Recorder

    rec = Recorder(["scan"], "key")
    rec._watch()
    try:
        yield rec
    finally:
        rec.stop()


def _list_by_fd(folder: Path, stop_after=None):
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with os.scandir(fd) as it:
            for n, entry in enumerate(it):
                if not entry.is_dir(follow_symlinks=False):
                    entry.stat(follow_symlinks=False)
                if stop_after is not None and n + 1 >= stop_after:
                    break
    finally:
        os.close(fd)


def test_a_listing_read_to_its_end_gives_the_identities_a_replay_computes(watching, tmp_path):
    """The entries a run listed are checked with the ``lstat`` results it
    listed them with (not taken again): the same identities a replay takes,
    and a file edited after it was listed is seen as changed."""
    from rundeps.replay import _identities

    folder = tmp_path / "listed"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.so", "b.txt"):
        (folder / name).write_bytes(b"x" * 10)
    (folder / "link").symlink_to("a.so")
    _list_by_fd(folder)
    watching.stop()
    assert set(watching.listed[str(folder)]) == {"a.so", "b.txt", "sub", "link"}
    assert watching.listed[str(folder)]["sub"] is None  # a folder is taken at the end
    known = {}
    folders = [f for f in watching.folders_seen(known) if f[0] == str(folder)]  # (pytest lists its own)
    assert str(folder) in known and len(folders) == 1
    assert _identities(folders, known) == _identities(folders)
    with open(folder / "b.txt", "ab") as f:  # after the listing: the record keeps what was listed
        f.write(b"more")
    assert _identities(folders, known) != _identities(folders)


def test_a_listing_left_early_or_by_bytes_path_is_listed_again(watching, tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}").write_bytes(b"x")
    _list_by_fd(folder, stop_after=2)
    with os.scandir(os.fsencode(folder)) as it:
        names = sorted(e.name for e in it)
    watching.stop()
    assert names == [b"f0", b"f1", b"f2", b"f3", b"f4"]
    assert str(folder) in watching.folders and str(folder) not in watching.listed
    known = {}
    (entry,) = [f for f in watching.folders_seen(known) if f[0] == str(folder)]
    assert sorted(entry[1].split("\0")) == ["f0", "f1", "f2", "f3", "f4"]  # listed again, as names
    assert str(folder) not in known

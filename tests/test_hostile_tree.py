"""Hostile trees: loops, huge folders, unreadable folders, odd names, FIFOs and
devices, files that shrink while read, paths given twice.

Every case is a real tree on disk scanned by a real ``rundeps scan`` process
(with a timeout, so a hang fails instead of blocking the suite), except the
shrinking file, which needs to act between two reads of the walk.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rundeps import rootfs
from rundeps.diagnostics import Diagnostics
from rundeps.inputs import walk

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent


from scriptmods import demo, fz  # noqa: E402

LIBC = "libc.musl-x86_64.so.1"


def elf(*needed, soname=None):
    return fz.craft_elf(needed=needed or (LIBC,), soname=soname)


def run(*args, timeout=60, prefix=(), env=None):
    full = dict(os.environ)
    full.pop("RUNDEPS_CACHE_DIR", None)
    full["PYTHONPATH"] = str(PROJECT)
    full.update(env or {})
    r = subprocess.run([*prefix, sys.executable, "-m", "rundeps", *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=full, timeout=timeout, cwd=str(PROJECT))
    # file names that are not UTF-8 come out as their raw bytes, as ls prints them
    r.stdout = r.stdout.decode("utf-8", "surrogateescape")
    r.stderr = r.stderr.decode("utf-8", "surrogateescape")
    return r


@pytest.fixture
def db(tmp_path):
    p = tmp_path / "installed"
    p.write_text("\n".join([
        demo.db_block("musl", "1.2.5-r0", "x86_64", provides=[f"so:{LIBC}=1"]),
        demo.db_block("zlib", "1.3.1-r1", "x86_64", provides=["so:libz.so.1=1.3.1"]),
        demo.db_block("libjpeg-turbo", "3.0.3-r0", "x86_64", provides=["so:libjpeg.so.8=8"]),
    ]))
    return p


def scan_json(root, db, tmp_path, *paths, **kw):
    r = run("scan", "--root", root, "--db", db, "--format", "json", "--cache-dir", tmp_path / "cache",
            *(paths or ("/usr/local",)), **kw)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def no_dupes(lines):
    assert len(lines) == len(set(lines)), lines


# -- symlink loops ------------------------------------------------------------------------


def test_symlink_loops_end(tmp_path, db):
    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    lib.mkdir(parents=True)
    (lib / "libz-user.so").write_bytes(elf("libz.so.1"))
    (lib / "a").symlink_to("b")
    (lib / "b").symlink_to("a")
    (lib / "self").symlink_to("self")
    (lib / "up").symlink_to("..")  # a folder link: never entered
    (lib / "rootlink").symlink_to("/")  # absolute: the root's /, still never entered
    (lib / "deep").mkdir()
    (lib / "deep/again").symlink_to("../../lib")
    # a chain longer than the 40 hops musl follows, ending at an ELF file
    (lib / "chain0").symlink_to("libz-user.so")
    for i in range(1, 45):
        (lib / f"chain{i}").symlink_to(f"chain{i - 1}")
    r = scan_json(root, db, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["needed_by"]["zlib"] == ["/usr/local/lib/libz-user.so"]
    assert r.stderr == ""
    # a loop given by name: one line, exit 2 is not warranted (the other path is fine)
    r = scan_json(root, db, tmp_path, "/usr/local/lib/a", "/usr/local/lib")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["rundeps: /usr/local/lib/a: symlink loop or target outside the file system"]
    # the 44-link chain resolves nowhere (more than 40 hops), the 40th does
    assert rootfs.resolve_in_root(str(root), "/usr/local/lib/chain44") is None
    assert rootfs.resolve_in_root(str(root), "/usr/local/lib/chain39") == "/usr/local/lib/libz-user.so"


# -- a folder of 100,000 files -----------------------------------------------------------


def test_folder_of_100000_empty_files(tmp_path, db):
    root = tmp_path / "root"
    big = root / "usr/local/share/big"
    big.mkdir(parents=True)
    t0 = time.perf_counter()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    dfd = os.open(big, os.O_RDONLY)
    try:
        for i in range(100_000):
            os.close(os.open(f"f{i:06d}", flags, 0o644, dir_fd=dfd))
    finally:
        os.close(dfd)
    (root / "usr/local/lib").mkdir(parents=True)
    (root / "usr/local/lib/x.so").write_bytes(elf("libz.so.1"))
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = walk.scan(["/usr/local"], root=str(root))
    took = time.perf_counter() - t0
    assert res.files_seen == 100_001
    assert [i.path for i in res.items] == ["/usr/local/lib/x.so"]
    # end to end, twice (the second run only stats, through the file cache)
    for _ in range(2):
        r = scan_json(root, db, tmp_path, timeout=120)
        assert r.returncode == 0 and json.loads(r.stdout)["packages"] == ["zlib"], r.stderr
        assert r.stderr == ""
    print(f"100,000 files: created in {made:.1f} s, walked in {took:.2f} s")


# -- unreadable folders and files (as root, chmod alone does not stop us) -------------------


def _without_dac_prefix():
    """A command prefix that runs the rest without the capabilities that let
    root ignore permissions, or None when there is no way here."""
    if os.geteuid() != 0:
        return ()
    capsh = shutil.which("capsh")
    if capsh is None:
        return None
    probe = subprocess.run([capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", "true"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if probe.returncode != 0:
        return None
    return ("CAPSH",)


def run_without_dac(*args, **kw):
    prefix = _without_dac_prefix()
    if prefix is None:
        pytest.skip("running as root without capsh (libcap2-bin): no way to make a folder unreadable to us")
    if prefix == ():
        return run(*args, **kw)
    import shlex

    full = dict(os.environ)
    full.pop("RUNDEPS_CACHE_DIR", None)
    full["PYTHONPATH"] = str(PROJECT)
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "rundeps", *map(str, args)])
    return subprocess.run([shutil.which("capsh"), "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", cmd],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full,
                          timeout=kw.get("timeout", 60), cwd=str(PROJECT))


def test_unreadable_folder_and_file_are_reported_once(tmp_path, db):
    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    (lib / "secret").mkdir(parents=True)
    (lib / "secret/hidden.so").write_bytes(elf("libjpeg.so.8"))
    (lib / "locked.so").write_bytes(elf("libjpeg.so.8"))
    (lib / "open.so").write_bytes(elf("libz.so.1"))
    os.chmod(lib / "secret", 0)
    os.chmod(lib / "locked.so", 0)
    try:
        r = run_without_dac("scan", "--root", root, "--db", db, "--format", "json", "--cache-dir",
                            tmp_path / "cache", "/usr/local")
    finally:
        os.chmod(lib / "secret", 0o755)
        os.chmod(lib / "locked.so", 0o644)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["packages"] == ["zlib"]  # the unreadable files' libjpeg is not invented
    assert sorted(r.stderr.splitlines()) == [
        "rundeps: /usr/local/lib/locked.so: Permission denied",
        "rundeps: /usr/local/lib/secret: Permission denied",
    ]


# -- file names that are not UTF-8 ---------------------------------------------------------


def test_non_utf8_file_names(tmp_path, db):
    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    lib.mkdir(parents=True)
    blib = os.fsencode(lib)
    with open(blib + b"/lib\xff\xfeok.so", "wb") as f:
        f.write(elf("libz.so.1"))
    with open(blib + b"/lib\xe9missing.so", "wb") as f:
        f.write(elf("libnothere.so.3"))
    with open(blib + b"/bad\x80.so", "wb") as f:
        f.write(b"\x7fELF\x09")
    os.mkdir(blib + b"/dir\xc3\x28")
    with open(blib + b"/dir\xc3\x28/inner.so", "wb") as f:
        f.write(elf("libjpeg.so.8"))
    for env in ({}, {"LC_ALL": "C", "LANG": "C"}, {"PYTHONIOENCODING": "ascii"}):
        r = scan_json(root, db, tmp_path, env=env)
        assert r.returncode == 1, (env, r.stderr)  # libnothere.so.3 is unresolved
        out = json.loads(r.stdout)
        assert out["packages"] == ["libjpeg-turbo", "zlib"], env
        assert list(out["unresolved"]) == ["libnothere.so.3"]
        err = r.stderr.splitlines()
        no_dupes(err)
        assert len([ln for ln in err if "bad" in ln and ".so: " in ln]) == 1, err
        assert len([ln for ln in err if "libnothere.so.3 not found" in ln]) == 1, err
        assert len(err) == 2, err
    r = run("scan", "--root", root, "--db", db, "--cache-dir", tmp_path / "cache", "--allow-unresolved",
            "--format", "tree", "/usr/local")
    assert r.returncode == 0 and "Traceback" not in r.stderr


# -- FIFOs and device nodes -------------------------------------------------------------------


def test_fifos_and_devices_are_never_opened(tmp_path, db):
    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    lib.mkdir(parents=True)
    (lib / "x.so").write_bytes(elf("libz.so.1"))
    os.mkfifo(lib / "fifo.so")
    os.mkfifo(lib / "fifo2")
    os.mkfifo(lib / "loader.py")  # --dlopen reads *.py files: this one must not be opened
    (lib / "ok.py").write_text("import ctypes\nctypes.CDLL('libjpeg.so.8')\n")
    (lib / "fifo-link.so").symlink_to("fifo.so")
    made_dev = False
    try:
        os.mknod(lib / "zero.so", 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # like /dev/zero: endless
        os.mknod(lib / "tty", 0o666 | stat.S_IFCHR, os.makedev(5, 0))  # /dev/tty: blocks on read
        made_dev = True
    except (PermissionError, OSError):
        pass
    sock = None
    try:
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(lib / "sock.so"))
    except OSError:
        sock = None
    try:
        # the whole tree, and the FIFO / device named directly
        paths = ["/usr/local", "/usr/local/lib/fifo.so", "/usr/local/lib/fifo-link.so"]
        if made_dev:
            paths += ["/usr/local/lib/zero.so", "/usr/local/lib/tty"]
        r = scan_json(root, db, tmp_path, *paths, timeout=30)  # a hang fails here
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["packages"] == ["zlib"]
        # each FIFO or device named as a PATH is one warning line: nothing was read there
        assert r.stderr.splitlines() == [f"rundeps: warning: {p} is not a regular file or folder: not read"
                                         for p in paths[1:]], r.stderr
        # --dlopen reads Python sources: FIFOs (by name or named *.py) are skipped too
        r = scan_json(root, db, tmp_path, *paths, "/usr/local/lib/loader.py", "--dlopen", timeout=30)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["packages"] == ["libjpeg-turbo", "zlib"]
        assert [(f["path"], f["name"]) for f in out["dlopen"]] == [("/usr/local/lib/ok.py", "libjpeg.so.8")]
        assert r.stderr.splitlines() == [f"rundeps: warning: {p} is not a regular file or folder: not read"
                                         for p in paths[1:] + ["/usr/local/lib/loader.py"]], r.stderr
        # no writer ever saw a reader: opening the FIFO for writing without one fails
        fd = None
        with pytest.raises(OSError):
            fd = os.open(lib / "fifo.so", os.O_WRONLY | os.O_NONBLOCK)
        if fd is not None:
            os.close(fd)
    finally:
        if sock is not None:
            sock.close()
    if not made_dev:
        pytest.skip("mknod not permitted here: devices not checked (FIFOs were)")


# -- a file that shrinks while it is read --------------------------------------------------------


def test_file_truncated_between_head_and_parse(tmp_path, monkeypatch):
    """Really truncate the file after the walk read its head and before the
    dynamic section is read: reported once as broken, the scan goes on."""
    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    lib.mkdir(parents=True)
    (lib / "a.so").write_bytes(elf("libz.so.1"))
    shrinking = lib / "b.so"
    shrinking.write_bytes(elf("libjpeg.so.8"))
    (lib / "c.so").write_bytes(elf("libz.so.1"))
    real = walk.parse_fd
    cut = []

    def truncating_parse(fd, head):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target == str(shrinking):
            os.truncate(target, 200)  # the ELF header and the program headers stay
            cut.append(target)
        return real(fd, head)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc")
    monkeypatch.setattr(walk, "parse_fd", truncating_parse)
    errors = []
    res = walk.scan(["/usr/local"], root=str(root), diag=Diagnostics(file_error=lambda p, r: errors.append((p, r))))
    assert cut == [str(shrinking)]
    assert [i.path for i in res.items] == ["/usr/local/lib/a.so", "/usr/local/lib/c.so"]
    assert len(errors) == 1 and errors[0][0] == "/usr/local/lib/b.so", errors


def test_files_rewritten_and_truncated_during_scans(tmp_path):
    """A thread keeps rewriting and truncating files while scans run: every scan
    ends, and each file is either read or reported (never an exception)."""
    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    lib.mkdir(parents=True)
    good = elf("libz.so.1", LIBC, soname="libracy.so.1")
    names = [lib / f"r{i}.so" for i in range(20)]
    for p in names:
        p.write_bytes(good)
    stop = threading.Event()

    def churn():
        import random

        rng = random.Random(1)
        while not stop.is_set():
            p = rng.choice(names)
            with open(p, "r+b") as f:
                f.truncate(rng.randrange(len(good)))
                f.seek(0)
                f.write(good[: rng.randrange(len(good) + 1)])

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 1.5
        scans = 0
        while time.monotonic() < deadline:
            errors = []
            res = walk.scan(["/usr/local"], root=str(root), diag=Diagnostics(file_error=lambda p, r: errors.append(p)))
            seen = [i.path for i in res.items] + errors
            assert len(seen) == len(set(seen))  # each file at most once
            for i in res.items:
                assert all(isinstance(n, str) for n in i.info.needed)
            scans += 1
    finally:
        stop.set()
        t.join()
    assert scans > 3


# -- paths given twice or nested -------------------------------------------------------------------


def test_paths_given_twice_or_nested_count_each_file_once(tmp_path, db):
    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    (lib / "sub").mkdir(parents=True)
    (lib / "a.so").write_bytes(elf("libz.so.1"))
    (lib / "sub/b.so").write_bytes(elf("libz.so.1", "libnothere.so.1"))
    (root / "usr/local/liblink").symlink_to("lib")
    (root / "usr/local/alias.so").symlink_to("lib/a.so")
    r = scan_json(root, db, tmp_path,
                  "/usr/local", "/usr/local/lib", "/usr/local/lib/sub", "/usr/local/lib/a.so",
                  "/usr/local/../local/lib", "/usr/local/liblink", "/usr/local/liblink/sub/b.so",
                  "/usr/local/alias.so", "/usr/local/lib/", "//usr//local/lib/sub/../sub")
    assert r.returncode == 1, r.stderr  # libnothere.so.1
    out = json.loads(r.stdout)
    assert out["needed_by"]["zlib"] == ["/usr/local/lib/a.so", "/usr/local/lib/sub/b.so"]
    assert out["unresolved"] == {"libnothere.so.1": ["/usr/local/lib/sub/b.so"]}
    assert r.stderr.splitlines() == [
        "rundeps: error: libnothere.so.1 not found (needed by /usr/local/lib/sub/b.so)"]

"""Network and cache faults, through the command line.

A real HTTP server on 127.0.0.1 (a raw socket server, so it can misbehave
the way pytest-httpserver cannot), a real cache folder, real ``rundeps``
processes.  Always: one clear line on stderr per problem, the last good cache
entry kept, the documented exit code.

The command line has no knob for the HTTP timeout, retries or backoff
(fetch.DEFAULT_TIMEOUT = (5, 30) s, 3 retries, 0.5 s doubling backoff), so
most tests run the real CLI entry point in a process whose
``rundeps.apk.fetch`` defaults (which every ``FetchOptions`` made later
takes) are shortened first (``FAST``); one test runs with the real defaults.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import indexbuild as ib  # noqa: E402

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
from rawserver import RawServer  # noqa: E402
from scriptmods import fz  # noqa: E402

KEY = "test@example.org-1.rsa.pub"
LIBC = "libc.musl-x86_64.so.1"
IDX = "/repo/x86_64/APKINDEX.tar.gz"

FAST = ("import sys, rundeps.apk.fetch as f; "
        "f.DEFAULT_TIMEOUT, f.DEFAULT_RETRIES, f.DEFAULT_BACKOFF = (1.0, 0.5), 1, 0.0; "
        "from rundeps.cli import main; main(sys.argv[1:])")


class Server(RawServer):
    """HTTP/1.0 on 127.0.0.1; ``self.mode`` picks the behaviour of the next request."""

    def __init__(self, good: bytes):
        self.good = good
        self.mode = "good"
        super().__init__(lambda conn, head: self.answer(conn, head.split(b" ", 2)[1].decode(), self.mode))

    @property
    def repo(self):
        return self.url("/repo")

    def answer(self, conn, path, mode):
        body = self.good
        if mode == "good":
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif mode == "drop":
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
        elif mode == "stall":
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
            self.stopped.wait(5)
        elif mode == "html":
            page = b"<!DOCTYPE html><html><body>Please log in to the Wi-Fi</body></html>"
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
                         % len(page) + page)
        elif mode == "loop":
            target = "/a" if path != "/a" else "/b"
            conn.sendall(b"HTTP/1.0 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % target.encode())
        elif mode.startswith("slow:"):
            # the body in pieces, so that concurrent clients overlap
            body = self.bodies[mode[5:]]
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            for i in range(0, len(body), max(1, len(body) // 5)):
                conn.sendall(body[i:i + max(1, len(body) // 5)])
                time.sleep(0.05)
        else:
            raise AssertionError(mode)


@pytest.fixture(scope="module")
def good(key):
    return ib.make_index(ib.PACKAGES, key, KEY)


@pytest.fixture
def server(good):
    s = Server(good)
    yield s
    s.close()


@pytest.fixture
def env(tmp_path, key):
    root = tmp_path / "root"
    (root / "usr/local/lib").mkdir(parents=True)
    (root / "usr/local/lib/x.so").write_bytes(fz.craft_elf(needed=("libz.so.1", "libcrypto.so.3", LIBC)))
    keys = tmp_path / "keys"
    ib.write_key(keys, KEY, key)
    return {"root": root, "keys": keys, "cache": tmp_path / "cache"}


def rundeps(*args, fast=True, timeout=60, preexec=None, prefix=()):
    e = dict(os.environ)
    e.pop("RUNDEPS_CACHE_DIR", None)
    e["PYTHONPATH"] = str(PROJECT)
    cmd = [*prefix, sys.executable, "-c", FAST, *map(str, args)] if fast else \
        [*prefix, sys.executable, "-m", "rundeps", *map(str, args)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, timeout=timeout,
                       cwd=str(PROJECT), preexec_fn=preexec)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def scan(env, server, *extra, **kw):
    return rundeps("scan", "--root", env["root"], "--repo", server.repo, "--arch", "x86_64",
                   "--keys-dir", env["keys"], "--cache-dir", env["cache"], "--format", "json", *extra,
                   "/usr/local", **kw)


def update(env, server, **kw):
    return rundeps("index", "update", "--repo", server.repo, "--arch", "x86_64", "--keys-dir", env["keys"],
                   "--cache-dir", env["cache"], **kw)


def one_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rundeps: error: "), lines
    for w in words:
        assert w in lines[0], lines


def still_cached(env, server, expect_requests=None):
    """The last good entry answers an offline scan (no network)."""
    before = len(server.requests)
    r = scan(env, server, "--offline")
    assert r.returncode == 0, r.stderr
    assert len(server.requests) == before
    out = json.loads(r.stdout)
    assert out["providers"] == {LIBC: "musl", "libcrypto.so.3": "libcrypto3", "libz.so.1": "zlib"}
    return out


def test_baseline_fetch_then_cached(env, server):
    r = scan(env, server)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    still_cached(env, server)


def test_connection_dropped_mid_body_with_real_defaults(env, server):
    assert scan(env, server).returncode == 0
    server.mode = "drop"
    t0 = time.monotonic()
    r = update(env, server, fast=False)
    took = time.monotonic() - t0
    one_error(r, "connection was dropped", "gave up after 4 attempts")
    assert len(server.requests) == 1 + 4
    assert took < 20  # 0.5 + 1 + 2 s of backoff
    still_cached(env, server)


def test_dropped_mid_body_after_ttl_falls_back_to_the_cache_with_one_warning(env, server):
    assert scan(env, server).returncode == 0
    # age the entry past the TTL: meta's checked_at is what the TTL reads
    age = ("import sys, json, diskcache; c = diskcache.Cache(sys.argv[1]); "
           "k = [k for k in c.iterkeys() if k.startswith('meta:')][0]; m = json.loads(c[k]); "
           "m['checked_at'] -= 7200; c[k] = json.dumps(m)")
    subprocess.run([sys.executable, "-c", age, str(env["cache"] / "index")], check=True)
    server.mode = "drop"
    r = scan(env, server)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rundeps: warning: ") and "using the cached index" in lines[0]
    assert json.loads(r.stdout)["providers"]["libz.so.1"] == "zlib"


def test_stall_mid_body(env, server):
    assert scan(env, server).returncode == 0
    server.mode = "stall"
    t0 = time.monotonic()
    r = update(env, server)
    one_error(r, "gave up after 2 attempts")
    assert time.monotonic() - t0 < 15
    still_cached(env, server)


def test_html_page_with_200(env, server):
    assert scan(env, server).returncode == 0
    server.mode = "html"
    one_error(update(env, server), "HTML page")
    still_cached(env, server)
    # and a cold cache: the scan itself refuses, exit 2
    env2 = dict(env, cache=env["cache"].parent / "cold")
    one_error(scan(env2, server), "HTML page")


def test_redirect_loop(env, server):
    assert scan(env, server).returncode == 0
    server.mode = "loop"
    one_error(update(env, server), "too many redirects")
    assert len(server.requests) <= 1 + 12
    still_cached(env, server)


def _capsh():
    import shutil

    if os.geteuid() != 0:
        return ()
    capsh = shutil.which("capsh")
    if capsh is None or subprocess.run([capsh, "--drop=cap_dac_override", "--", "-c", "true"]).returncode:
        return None
    return capsh


def test_read_only_cache_folder(env, server, key):
    assert scan(env, server).returncode == 0
    capsh = _capsh()
    if capsh is None:
        pytest.skip("running as root without capsh: a read-only folder does not stop root")
    cache = env["cache"]
    modes = {}
    for dirpath, dirnames, filenames in os.walk(cache):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            modes[p] = os.stat(p).st_mode
            os.chmod(p, 0o555 if os.path.isdir(p) else 0o444)
    os.chmod(cache, 0o555)
    try:
        server.good = ib.make_index(ib.PACKAGES + "\n" + ib.package_block("newpkg", p="so:libnew.so.1"), key, KEY)
        if capsh:
            import shlex

            args = ["index", "update", "--repo", server.repo, "--arch", "x86_64", "--keys-dir", env["keys"],
                    "--cache-dir", cache]
            cmd = " ".join(shlex.quote(str(a)) for a in [sys.executable, "-c", FAST, *args])
            r = rundeps_raw([capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", cmd])
        else:
            r = update(env, server)
    finally:
        os.chmod(cache, 0o755)
        for p, m in modes.items():
            os.chmod(p, m)
    assert r.returncode == 0, r.stderr  # the update itself worked, only caching failed
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rundeps: warning: "), lines
    # fetched and verified, but not kept: `index update` says so
    # truthful: nothing was stored, but what was fetched and verified is shown
    assert r.stdout.splitlines()[1:3] == ["  not cached", "  description  v3.99.0-test"], r.stdout
    assert "(RSA/SHA-1, verified)" in r.stdout and "checked" not in r.stdout
    still_cached(env, server)  # the old entry, untouched


def rundeps_raw(cmd):
    e = dict(os.environ)
    e.pop("RUNDEPS_CACHE_DIR", None)
    e["PYTHONPATH"] = str(PROJECT)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, timeout=60,
                       cwd=str(PROJECT))
    assert "Traceback" not in r.stderr, r.stderr
    return r


def _file_size_limit(limit):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_full_cache_folder(env, server, key):
    assert scan(env, server).returncode == 0
    # a much larger index (incompressible checksums) that cannot be written under the limit
    big = ib.make_index(ib.PACKAGES + "\n" + ib.many_packages(8000), key, KEY)
    assert len(big) > 200_000
    server.good = big
    r = update(env, server, preexec=_file_size_limit(150_000))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rundeps: warning: ") and "not writable" in lines[0], lines
    # truthful: nothing was stored, but what was fetched and verified is shown
    assert r.stdout.splitlines()[1:3] == ["  not cached", "  description  v3.99.0-test"], r.stdout
    assert "(RSA/SHA-1, verified)" in r.stdout and "checked" not in r.stdout
    still_cached(env, server)


def test_corrupted_cache(env, server):
    assert scan(env, server).returncode == 0
    cache = env["cache"]
    damaged = 0
    for dirpath, _dirs, files in os.walk(cache):
        for n in files:
            p = Path(dirpath) / n
            p.write_bytes(b"\x00garbage\xff" * 100)
            damaged += 1
    assert damaged >= 2  # the index cache's database and the file cache's entry at least
    r = scan(env, server)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["providers"]["libz.so.1"] == "zlib"
    lines = r.stderr.splitlines()
    assert all(ln.startswith("rundeps: warning: ") for ln in lines) and len(lines) == len(set(lines)), lines
    assert len(lines) <= damaged, lines  # at most one line per damaged file (index, ELF facts, symbols)
    # a fresh start after `index clear` brings the cache back
    r = rundeps("index", "clear", "--cache-dir", cache)
    assert r.returncode == 0
    assert scan(env, server).returncode == 0
    still_cached(env, server)


def test_two_processes_update_one_entry_at_once(env, server, key):
    a = ib.make_index(ib.PACKAGES, key, KEY)
    b = ib.make_index(ib.PACKAGES.replace("P:zlib", "P:zlib-ng") + "\n" + ib.many_packages(200), key, KEY)
    server.bodies = {"a": a, "b": b}
    procs = []
    e = dict(os.environ)
    e.pop("RUNDEPS_CACHE_DIR", None)
    e["PYTHONPATH"] = str(PROJECT)
    for i in range(4):
        server.mode = "slow:" + "ab"[i % 2]
        procs.append(subprocess.Popen(
            [sys.executable, "-c", FAST, "index", "update", "--repo", server.repo, "--arch", "x86_64",
             "--keys-dir", str(env["keys"]), "--cache-dir", str(env["cache"])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, cwd=str(PROJECT)))
        time.sleep(0.05)
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and err == "", err
    r = scan(env, server, "--offline")
    assert r.returncode == 0, r.stderr
    zlib = json.loads(r.stdout)["providers"]["libz.so.1"]
    assert zlib in ("zlib", "zlib-ng")  # one whole entry, whichever came last
    show = rundeps("index", "show", "--repo", server.repo, "--arch", "x86_64", "--cache-dir", env["cache"],
                   "--format", "json")
    info = json.loads(show.stdout)[0]
    assert info["package_count"] == (4 if zlib == "zlib" else 204)

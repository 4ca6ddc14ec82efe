"""Builds without network: unreachable repositories fail at once, and the
image's own apk cache (``/var/cache/apk/APKINDEX.<hash>.tar.gz``) is used
before the network.

Real servers on 127.0.0.1 (tests/rawserver.py), a port nothing listens on,
host names under ``.invalid`` (which never resolve, RFC 6761), real signed
indexes (tests/indexbuild.py), real ``rundeps`` processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))

import indexbuild as ib  # noqa: E402
from rawserver import RawServer  # noqa: E402
from scriptmods import demo  # noqa: E402

from rundeps.apk.imagecache import cache_index_names  # noqa: E402
from rundeps.apk.fetch import FetchError, FetchOptions, open_index  # noqa: E402

KEY = "test@example.org-1.rsa.pub"
ARCH = demo.host_arch()
LIBC = demo.musl_soname(ARCH)
TKINTER = f"/usr/local/lib/python3.12/lib-dynload/_tkinter.cpython-312-{ARCH}-linux-musl.so"

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build ELF fixtures")


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


class CountingSession(requests.Session):
    """A real requests session that counts the requests it is asked to make."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def get(self, *args, **kwargs):
        self.calls += 1
        return super().get(*args, **kwargs)


# -- fetch: one attempt for an unreachable host -----------------------------------


@pytest.mark.parametrize("url", [
    "http://rundeps-test.invalid/alpine/v3.99/main/x86_64/APKINDEX.tar.gz",
    f"http://127.0.0.1:{closed_port()}/alpine/v3.99/main/x86_64/APKINDEX.tar.gz",
], ids=["unresolvable-host", "refused-port"])
def test_unreachable_host_is_one_attempt(url, key):
    session = CountingSession()
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        # a retry would first sleep `backoff` seconds
        open_index(url, {KEY: key[1]}, FetchOptions(session=session, retries=3, backoff=10.0, timeout=(5.0, 5.0)))
    elapsed = time.monotonic() - started
    assert session.calls == 1
    assert elapsed < 10.0
    assert err.value.unreachable and err.value.transient
    assert "one attempt, not retried" in str(err.value)
    assert ("cannot resolve the host name" if ".invalid" in url else "connection refused") in str(err.value)


def test_a_server_error_is_still_retried(key):
    """The bounded retries stay for 5xx (and timeouts, resets)."""
    server = RawServer(lambda conn, head: conn.sendall(b"HTTP/1.0 503 Busy\r\nContent-Length: 0\r\n\r\n"))
    try:
        with pytest.raises(FetchError) as err:
            open_index(server.url("/x86_64/APKINDEX.tar.gz"), {KEY: key[1]}, FetchOptions(retries=2, backoff=0.0))
        assert len(server.requests) == 3
        assert "gave up after 3 attempts" in str(err.value) and not err.value.unreachable
    finally:
        server.close()


# -- the image's apk cache: names as apk-tools writes them ---------------------------


def test_cache_names_match_the_ones_apk_wrote():
    """Names taken from real apk output ("WARNING: Ignoring APKINDEX.70f61090.tar.gz"
    after "fetch http://dl-cdn.alpinelinux.org/alpine/v3.11/main/x86_64/APKINDEX.tar.gz",
    apk-tools 2.10; the same for the other lines), not computed here."""
    real = {
        "http://dl-cdn.alpinelinux.org/alpine/v3.11/main/x86_64/APKINDEX.tar.gz": "APKINDEX.70f61090.tar.gz",
        "http://dl-cdn.alpinelinux.org/alpine/v3.11/community/x86_64/APKINDEX.tar.gz": "APKINDEX.ca2fea5b.tar.gz",
        "http://dl-cdn.alpinelinux.org/alpine/v3.6/main/x86_64/APKINDEX.tar.gz": "APKINDEX.84815163.tar.gz",
        "http://dl-cdn.alpinelinux.org/alpine/v3.8/main/x86/APKINDEX.tar.gz": "APKINDEX.adfa7ceb.tar.gz",
    }
    for url, name in real.items():
        assert name in cache_index_names(url)
    assert cache_index_names("http://example.org/not-an-index.tar.gz") == []


# apk-tools computes these (the digests are the algorithm, so they are written out here):
def apk3_name(repo: str, arch: str) -> str:
    """apk-tools 3, src/database.c: add_repository_component() hashes (SHA-256) the
    index URL "<repo less trailing />/<arch>/APKINDEX.tar.gz"; apk_repo_index_cache_url()
    formats "APKINDEX.${hash:8}.tar.gz" (the first 8 hex digits)."""
    url = repo.rstrip("/") + f"/{arch}/APKINDEX.tar.gz"
    return "APKINDEX." + hashlib.sha256(url.encode()).hexdigest()[:8] + ".tar.gz"


def apk214_name(repo: str, arch: str) -> str:
    """apk-tools 2.14.1+, src/database.c: apk_db_add_repository() checksums (SHA-1,
    apk_checksum_default) the URL apk_repo_format_real_url() builds; 
    apk_repo_format_cache_index() hexdumps APK_CACHE_CSUM_BYTES (4) of it."""
    url = repo + ("" if repo.endswith("/") else "/") + f"{arch}/APKINDEX.tar.gz"
    return "APKINDEX." + hashlib.sha1(url.encode()).hexdigest()[:8] + ".tar.gz"


def apk2_old_name(repo: str, arch: str) -> str:
    """apk-tools before 2.14.1 (2.10-stable src/database.c, apk_db_add_repository():
    apk_blob_checksum(brepo, ...)): SHA-1 of the repository line's URL."""
    return "APKINDEX." + hashlib.sha1(repo.encode()).hexdigest()[:8] + ".tar.gz"


# -- scan in a root without network ---------------------------------------------------


TCL_TK = "\n".join([
    ib.package_block("tcl", "8.6.14-r1", arch=ARCH, D=f"so:{LIBC}", p="so:libtcl8.6.so=0"),
    ib.package_block("tk", "8.6.14-r1", arch=ARCH, D=f"so:{LIBC} so:libtcl8.6.so", p="so:libtk8.6.so=0"),
])


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("image") / "root"
    demo.build_demo_root(root, workdir=tmp_path_factory.mktemp("build"), tkinter=True)
    return root


def run(*args, timeout=120):
    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "rundeps", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=timeout)


def make_root(image_root, tmp_path, key, repositories):
    root = tmp_path / "root"
    shutil.copytree(image_root, root, symlinks=True)
    (root / "etc/apk/repositories").write_text("".join(line + "\n" for line in repositories))
    ib.write_key(root / "etc/apk/keys", KEY, key)
    return root


@needs_gcc
def test_no_network_one_warning_per_repository_and_fast(image_root, tmp_path, key):
    port = closed_port()
    repos = [f"http://127.0.0.1:{port}/alpine/v3.99/main", "http://rundeps-test.invalid/alpine/v3.99/main",
             "http://rundeps-test.invalid/alpine/v3.99/community"]
    root = make_root(image_root, tmp_path, key, repos)
    started = time.monotonic()
    r = run("scan", "--root", root, "--no-default-excludes", "--cache-dir", tmp_path / "cache")
    elapsed = time.monotonic() - started
    assert r.returncode == 1  # libtcl8.6.so and libtk8.6.so are nowhere
    assert r.stdout == "libpq\nlibsharpyuv\ntiff\n"
    warnings = [line for line in r.stderr.splitlines() if line.startswith("rundeps: warning:")]
    assert len(warnings) == 3, r.stderr
    for line, repo in zip(warnings, repos):
        assert f"{repo}/{ARCH}/APKINDEX.tar.gz" in line
    assert "connection refused" in warnings[0] and "one attempt, not retried" in warnings[0]
    assert "cannot resolve the host name" in warnings[1]
    assert "not tried: http://rundeps-test.invalid could not be reached" in warnings[2]
    # with the retries (3 more attempts after 0.5, 1 and 2 s of backoff) each of the
    # three repositories took at least 3.5 s: 10.5 s in all
    assert elapsed < 7.0


def serve_404():
    return RawServer(lambda conn, head: conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"))


@needs_gcc
@pytest.mark.parametrize("naming", ["apk3", "apk2.14", "apk2-old", "apk2-old-line-with-slash", "etc-apk-cache-link"])
def test_the_image_apk_cache_is_used_before_the_network(image_root, tmp_path, key, naming):
    server = serve_404()
    try:
        repo = server.url("/alpine/v3.99/main")
        line = repo + "/" if naming == "apk2-old-line-with-slash" else repo  # apk hashes the line's text
        root = make_root(image_root, tmp_path, key, [line])
        name = {"apk3": apk3_name, "apk2.14": apk214_name, "apk2-old": apk2_old_name,
                "apk2-old-line-with-slash": apk2_old_name, "etc-apk-cache-link": apk3_name}[naming](line, ARCH)
        cache_dir = root / "var/cache/apk"
        if naming == "etc-apk-cache-link":
            cache_dir = root / "srv/apk-cache"
            (root / "etc/apk/cache").symlink_to("/srv/apk-cache")  # absolute: inside the root
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / name).write_bytes(ib.make_index(TCL_TK, key, KEY))
        r = run("scan", "--root", root, "--no-default-excludes", "--format", "json",
                "--cache-dir", tmp_path / "cache")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["packages"] == ["libpq", "libsharpyuv", "tiff", "tk"]
        assert out["providers"]["libtcl8.6.so"] == "tcl"
        assert out["source"]["tk"] == f"{repo}/{ARCH}/APKINDEX.tar.gz"
        assert server.connections == 0  # the network was never asked
        assert r.stderr == ""
    finally:
        server.close()


@needs_gcc
def test_an_apk_cache_that_does_not_verify_is_not_used(image_root, tmp_path, key, other_key):
    server = serve_404()
    try:
        repo = server.url("/alpine/v3.99/main")
        root = make_root(image_root, tmp_path, key, [repo])
        cached = root / "var/cache/apk" / apk3_name(repo, ARCH)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(ib.make_index(TCL_TK, other_key, KEY))  # signed by a key the root does not trust
        r = run("scan", "--root", root, "--no-default-excludes", "--cache-dir", tmp_path / "cache")
        assert r.returncode == 1
        assert f"the image's apk cache /var/cache/apk/{cached.name} for {repo}/{ARCH}/APKINDEX.tar.gz " \
               "cannot be used" in r.stderr
        assert "libtcl8.6.so not found" in r.stderr
        assert server.connections == 1  # then the network, as usual
    finally:
        server.close()


@needs_gcc
def test_refresh_skips_the_apk_cache(image_root, tmp_path, key):
    server = serve_404()
    try:
        repo = server.url("/alpine/v3.99/main")
        root = make_root(image_root, tmp_path, key, [repo])
        cached = root / "var/cache/apk" / apk3_name(repo, ARCH)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(ib.make_index(TCL_TK, key, KEY))
        r = run("scan", "--root", root, "--no-default-excludes", "--refresh", "--cache-dir", tmp_path / "cache")
        assert r.returncode == 1 and server.connections == 1
        r = run("scan", "--root", root, "--no-default-excludes", "--offline", "--cache-dir", tmp_path / "cache")
        assert r.returncode == 0, r.stderr  # local, so --offline may use it
        assert server.connections == 1
    finally:
        server.close()


@needs_gcc
def test_the_apk_cache_is_a_library_option(image_root, tmp_path, key):
    from rundeps.api import Sources, check_tree

    server = serve_404()
    try:
        repo = server.url("/alpine/v3.99/main")
        root = make_root(image_root, tmp_path, key, [repo])
        cached = root / "var/cache/apk" / apk3_name(repo, ARCH)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(ib.make_index(TCL_TK, key, KEY))
        kw = dict(root=str(root), explicit_root=True, default_excludes=False)
        res = check_tree(["/usr/local"], sources=Sources(use_cache=False), **kw)
        assert [p.name for p in res.packages] == ["libpq", "libsharpyuv", "tiff", "tk"]
        assert server.connections == 0
        res = check_tree(["/usr/local"], sources=Sources(use_cache=False, apk_cache=False), **kw)
        assert "libtk8.6.so" in res.unresolved and server.connections == 1
    finally:
        server.close()

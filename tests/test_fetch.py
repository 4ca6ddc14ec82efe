"""Downloading and caching indexes, against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

sys.path.insert(0, os.path.dirname(__file__))

import indexbuild as ib  # noqa: E402
from rawserver import RawServer  # noqa: E402

from rundeps.apk import fetch  # noqa: E402
from rundeps.errors import SourceError  # noqa: E402
from rundeps.apk.fetch import FetchError, FetchOptions, IndexCache, index_info, open_index  # noqa: E402
from rundeps.diagnostics import Diagnostics  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
KEY_NAME = "test@example.org-1.rsa.pub"
ALPINE_PATH = "/alpine/v3.99/main/x86_64/APKINDEX.tar.gz"
FAST = dict(timeout=(1.0, 0.5), retries=2, backoff=0.0)


@pytest.fixture
def keys(key):
    return {KEY_NAME: key[1]}


@pytest.fixture(scope="module")
def good(key):
    return ib.make_index(ib.PACKAGES, key, KEY_NAME)


@pytest.fixture(scope="module")
def good2(key):
    return ib.make_index(ib.PACKAGES + "\n" + ib.package_block("newpkg", p="so:libnew.so.1"), key, KEY_NAME)


@pytest.fixture
def cache(tmp_path):
    c = IndexCache.open(tmp_path / "cache")
    assert c is not None
    yield c
    c.close()


def get(url, keys, **kw):
    opts = dict(FAST)
    opts.update(kw)
    return open_index(url, keys, FetchOptions(**opts))


def statuses(httpserver):
    return [resp.status_code for _, resp in httpserver.log]


# -- a raw socket server for misbehaviour pytest-httpserver cannot produce -------


@pytest.fixture
def raw_server():
    servers = []

    def make(handler):
        s = RawServer(handler)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


# -- the plain path -----------------------------------------------------------------------


def test_download_then_cached_within_ttl(httpserver, keys, good, cache):
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good, content_type="application/gzip")
    url = httpserver.url_for(ALPINE_PATH)
    first = get(url, keys, cache=cache, now=1000.0)
    assert first.verified and first.package_count == 4 and not first.from_cache
    assert first.fetched_at == 1000.0
    second = get(url, keys, cache=cache, now=1000.0 + 3599)
    assert second.from_cache and second.sha256 == first.sha256 and second.package_count == 4
    assert len(httpserver.log) == 1  # no request within the TTL
    # the request asked for the raw bytes
    assert httpserver.log[0][0].headers.get("Accept-Encoding") == "identity"


def test_without_cache(httpserver, keys, good):
    httpserver.expect_request("/x/APKINDEX.tar.gz").respond_with_data(good)
    index = get(httpserver.url_for("/x/APKINDEX.tar.gz"), keys)
    assert index.verified and index.so_provide_count == 3


def test_bad_signature_over_http_is_refused_and_not_cached(httpserver, key, keys, cache):
    bad = ib.make_index(ib.PACKAGES, key, KEY_NAME, tamper_at=20)
    httpserver.expect_request(ALPINE_PATH).respond_with_data(bad)
    url = httpserver.url_for(ALPINE_PATH)
    with pytest.raises(SourceError, match="does not match"):
        get(url, keys, cache=cache)
    assert cache.get_meta(url) is None
    with pytest.raises(SourceError, match="no cached copy"):
        get(url, keys, cache=cache, offline=True)


def test_404_names_release_repo_and_arch(httpserver, keys):
    httpserver.expect_request(ALPINE_PATH).respond_with_data("nope", status=404)
    with pytest.raises(FetchError) as err:
        get(httpserver.url_for(ALPINE_PATH), keys)
    msg = str(err.value)
    assert "Alpine v3.99 has no 'main' repository for x86_64" in msg and "HTTP 404" in msg
    assert "\n" not in msg
    assert statuses(httpserver) == [404]  # never retried


def test_404_for_a_plain_repo(httpserver, keys):
    httpserver.expect_request("/repo/armhf/APKINDEX.tar.gz").respond_with_data("nope", status=404)
    with pytest.raises(FetchError, match="has nothing for architecture armhf"):
        get(httpserver.url_for("/repo/armhf/APKINDEX.tar.gz"), keys)


def test_500_then_200(httpserver, keys, good):
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data("oops", status=500)
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data("busy", status=503)
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data(good)
    index = get(httpserver.url_for(ALPINE_PATH), keys)
    assert index.verified
    assert statuses(httpserver) == [500, 503, 200]


def test_500_forever_gives_up(httpserver, keys):
    httpserver.expect_request(ALPINE_PATH).respond_with_data("oops", status=500)
    with pytest.raises(FetchError) as err:
        get(httpserver.url_for(ALPINE_PATH), keys, retries=3)
    assert "HTTP 500" in str(err.value) and "4 attempts" in str(err.value)
    assert err.value.transient
    assert statuses(httpserver) == [500] * 4


def test_backoff_is_applied(httpserver, keys):
    httpserver.expect_request(ALPINE_PATH).respond_with_data("oops", status=502)
    start = time.monotonic()
    with pytest.raises(FetchError):
        get(httpserver.url_for(ALPINE_PATH), keys, retries=2, backoff=0.2)
    assert time.monotonic() - start >= 0.2 + 0.4 - 0.05


def test_403_is_not_retried(httpserver, keys):
    httpserver.expect_request(ALPINE_PATH).respond_with_data("no", status=403)
    with pytest.raises(FetchError, match="HTTP 403"):
        get(httpserver.url_for(ALPINE_PATH), keys)
    assert statuses(httpserver) == [403]


def test_server_slower_than_the_read_timeout(httpserver, keys, good):
    release = threading.Event()

    def slow(request):
        release.wait(2.0)
        return Response(good)

    httpserver.expect_request(ALPINE_PATH).respond_with_handler(slow)
    start = time.monotonic()
    with pytest.raises(FetchError) as err:
        get(httpserver.url_for(ALPINE_PATH), keys, timeout=(1.0, 0.2), retries=1)
    assert "timed out" in str(err.value) and "2 attempts" in str(err.value)
    assert time.monotonic() - start < 1.5
    # let the (single-threaded) server finish before the next test uses it
    release.set()
    deadline = time.monotonic() + 3
    while len(httpserver.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)


def test_connection_refused(keys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(FetchError) as err:
        get(f"http://127.0.0.1:{port}/APKINDEX.tar.gz", keys, retries=1)
    assert "refused" in str(err.value).lower() and "one attempt, not retried" in str(err.value)
    assert err.value.unreachable and err.value.transient


def test_html_200_is_refused(httpserver, keys, cache):
    httpserver.expect_request(ALPINE_PATH).respond_with_data(
        "<!doctype html><html><body>Please log in</body></html>", content_type="text/html"
    )
    url = httpserver.url_for(ALPINE_PATH)
    with pytest.raises(FetchError, match="HTML page"):
        get(url, keys, cache=cache)
    assert statuses(httpserver) == [200]
    assert cache.get_meta(url) is None


def test_redirect_loop(httpserver, keys):
    httpserver.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop2"})
    httpserver.expect_request("/loop2").respond_with_data("", status=302, headers={"Location": "/loop"})
    with pytest.raises(FetchError, match="too many redirects"):
        get(httpserver.url_for("/loop"), keys)


def test_redirect_is_followed(httpserver, keys, good):
    httpserver.expect_request("/old").respond_with_data("", status=301, headers={"Location": ALPINE_PATH})
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good)
    assert get(httpserver.url_for("/old"), keys).verified


def test_body_size_is_bounded(httpserver, keys, good):
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good)
    with pytest.raises(FetchError, match="more than the 100 accepted|larger than the 100 bytes"):
        get(httpserver.url_for(ALPINE_PATH), keys, max_size=100)


def test_body_size_bounded_without_content_length(raw_server, keys, good):
    def chunked(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(good), good))

    srv = raw_server(chunked)
    with pytest.raises(FetchError, match="larger than the 100 bytes"):
        get(srv.url("/APKINDEX.tar.gz"), keys, max_size=100)
    assert get(srv.url("/APKINDEX.tar.gz"), keys).verified  # and chunked works


def test_connection_dropped_mid_body(raw_server, keys, good):
    def drop(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(good))
        conn.sendall(good[: len(good) // 2])
        # then close: the handler returns and the socket is closed

    srv = raw_server(drop)
    with pytest.raises(FetchError) as err:
        get(srv.url("/APKINDEX.tar.gz"), keys, retries=2)
    msg = str(err.value)
    assert ("dropped" in msg or "failed after" in msg) and "3 attempts" in msg
    assert srv.connections == 3


def test_stall_mid_body(raw_server, keys, good):
    def stall(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(good))
        conn.sendall(good[:100])
        time.sleep(1.5)

    srv = raw_server(stall)
    start = time.monotonic()
    with pytest.raises(FetchError) as err:
        get(srv.url("/APKINDEX.tar.gz"), keys, timeout=(1.0, 0.3), retries=0)
    assert time.monotonic() - start < 1.4
    msg = str(err.value)
    assert "the connection failed after" in msg and "read timeout" in msg
    # urllib3 >= 2 hands over what arrived before the stall
    import urllib3

    if urllib3.__version__.split(".")[0] >= "2":
        assert "failed after 100 bytes" in msg


def test_proxy_from_the_environment(raw_server, keys, good, monkeypatch):
    def proxy(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(good) + good)

    srv = raw_server(proxy)
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", srv.url())
    monkeypatch.setenv("http_proxy", srv.url())
    index = get("http://mirror.rundeps.invalid/alpine/v3.99/main/x86_64/APKINDEX.tar.gz", keys)
    assert index.verified
    assert srv.requests[0].startswith(b"GET http://mirror.rundeps.invalid/alpine/v3.99/main/x86_64/APKINDEX.tar.gz ")


# -- revalidation, offline, stale copies ---------------------------------------------------


def test_etag_revalidation_uses_the_cached_bytes(httpserver, keys, good, cache):
    url = httpserver.url_for(ALPINE_PATH)
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data(
        good, headers={"ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
    )
    httpserver.expect_ordered_request(ALPINE_PATH, headers={"If-None-Match": '"v1"'}).respond_with_data(
        b"", status=304
    )
    info = []
    first = get(url, keys, cache=cache, now=1000.0)
    second = get(url, keys, cache=cache, now=1000.0 + 7200, diag=Diagnostics(info=info.append))
    req, resp = httpserver.log[1]
    assert req.headers.get("If-None-Match") == '"v1"'
    assert req.headers.get("If-Modified-Since") == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert resp.status_code == 304
    assert second.from_cache and second.sha256 == first.sha256 and second.package_count == 4
    assert second.fetched_at == 1000.0 + 7200
    assert info == [f"{url}: not modified (downloaded 2 hours ago)"]
    # the 304 restarted the TTL: no request now
    get(url, keys, cache=cache, now=1000.0 + 7200 + 3000)
    assert len(httpserver.log) == 2


def test_changed_index_after_ttl_replaces_the_cache(httpserver, keys, good, good2, cache):
    url = httpserver.url_for(ALPINE_PATH)
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data(good, headers={"ETag": '"v1"'})
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data(good2, headers={"ETag": '"v2"'})
    assert get(url, keys, cache=cache, now=0.0).package_count == 4
    newer = get(url, keys, cache=cache, now=4000.0)
    assert newer.package_count == 5 and not newer.from_cache
    assert cache.get_meta(url)["etag"] == '"v2"'
    assert get(url, keys, cache=cache, offline=True, now=4001.0).package_count == 5


def test_refresh_forces_a_request(httpserver, keys, good, cache):
    url = httpserver.url_for(ALPINE_PATH)
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good, headers={"ETag": '"v1"'})
    get(url, keys, cache=cache, now=0.0)
    get(url, keys, cache=cache, now=10.0, refresh=True)
    assert len(httpserver.log) == 2
    assert httpserver.log[1][0].headers.get("If-None-Match") == '"v1"'


def test_offline(httpserver, keys, good, cache):
    url = httpserver.url_for(ALPINE_PATH)
    with pytest.raises(SourceError, match="no cached copy to use offline"):
        get(url, keys, cache=cache, offline=True)
    with pytest.raises(SourceError, match="no cached copy to use offline"):
        get(url, keys, cache=None, offline=True)
    assert httpserver.log == []
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good)
    get(url, keys, cache=cache, now=100.0)
    info = []
    index = get(url, keys, cache=cache, offline=True, now=100.0 + 3 * 86400 + 5, diag=Diagnostics(info=info.append))
    assert index.from_cache and index.package_count == 4
    assert info == [f"{url}: offline, using the cached index from 3 days ago"]
    assert len(httpserver.log) == 1


def test_failed_refresh_falls_back_to_the_stale_copy(httpserver, keys, good, cache):
    url = httpserver.url_for(ALPINE_PATH)
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data(good)
    httpserver.expect_request(ALPINE_PATH).respond_with_data("down", status=503)
    get(url, keys, cache=cache, now=0.0)
    said = []
    index = get(url, keys, cache=cache, now=7200.0, diag=Diagnostics(warning=said.append))
    assert index.package_count == 4 and index.from_cache
    assert len(said) == 1 and "HTTP 503" in said[0] and "cached index from 2 hours ago" in said[0]
    with pytest.raises(FetchError, match="HTTP 503"):
        get(url, keys, cache=cache, now=7200.0, refresh=True)
    assert get(url, keys, cache=cache, offline=True).package_count == 4  # still there


def test_bad_new_download_keeps_the_last_good_entry(httpserver, key, keys, good, cache):
    url = httpserver.url_for(ALPINE_PATH)
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data(good)
    httpserver.expect_ordered_request(ALPINE_PATH).respond_with_data(ib.make_index(ib.PACKAGES, key, "evil.rsa.pub"))
    first = get(url, keys, cache=cache, now=0.0)
    with pytest.raises(SourceError, match="evil.rsa.pub"):
        get(url, keys, cache=cache, now=9999.0)
    assert get(url, keys, cache=cache, offline=True).sha256 == first.sha256


# -- trust on the warm path ------------------------------------------------------------------


def test_warm_local_file_does_not_reparse(tmp_path, keys, good, cache, monkeypatch):
    path = tmp_path / "APKINDEX.tar.gz"
    path.write_bytes(good)
    cold = get(str(path), keys, cache=cache)
    assert cold.verified

    def boom(*a, **k):
        raise AssertionError("parsed again")

    monkeypatch.setattr(fetch, "read_index", boom)
    warm = get(str(path), keys, cache=cache)
    assert warm.package_count == 4 and warm.verified and warm.signer == KEY_NAME
    assert get("file://" + str(path), keys, cache=cache).package_count == 4


def test_local_file_changed_is_read_again(tmp_path, keys, good, good2, cache):
    path = tmp_path / "APKINDEX.tar.gz"
    path.write_bytes(good)
    assert get(str(path), keys, cache=cache).package_count == 4
    path.write_bytes(good2)
    assert get(str(path), keys, cache=cache).package_count == 5


def test_local_file_errors(tmp_path, keys):
    with pytest.raises(SourceError, match="index file not found"):
        get(str(tmp_path / "nope.tar.gz"), keys)
    with pytest.raises(SourceError, match="is a folder"):
        get(str(tmp_path), keys)


def test_warm_run_rechecks_when_the_key_is_gone(httpserver, key, keys, good, cache, tmp_path):
    url = httpserver.url_for(ALPINE_PATH)
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good)
    get(url, keys, cache=cache, now=0.0)
    with pytest.raises(SourceError, match="not among the 0 trusted keys"):
        get(url, {}, cache=cache, now=1.0)
    other = ib.new_key(slot=1)
    with pytest.raises(SourceError, match="does not match"):
        get(url, {KEY_NAME: other[1]}, cache=cache, now=1.0)  # same name, another key
    assert get(url, keys, cache=cache, now=2.0).verified
    assert len(httpserver.log) == 1


def test_untrusted_entry_is_not_trusted_later(httpserver, key, keys, cache):
    url = httpserver.url_for(ALPINE_PATH)
    httpserver.expect_request(ALPINE_PATH).respond_with_data(ib.make_index(ib.PACKAGES, key, "stranger.rsa.pub"))
    said = []
    index = get(url, keys, cache=cache, allow_untrusted=True, now=0.0, diag=Diagnostics(warning=said.append))
    assert not index.verified and len(said) == 1
    said.clear()
    again = get(url, keys, cache=cache, allow_untrusted=True, now=1.0, diag=Diagnostics(warning=said.append))
    assert not again.verified and len(said) == 1  # warned again, from the cache
    with pytest.raises(SourceError, match="stranger.rsa.pub"):
        get(url, keys, cache=cache, now=2.0)
    # once the key is trusted, the same cached bytes verify
    assert get(url, {**keys, "stranger.rsa.pub": key[1]}, cache=cache, now=3.0).verified
    assert len(httpserver.log) == 1


# -- cache robustness --------------------------------------------------------------------------


def _diskcache(tmp_path):
    import diskcache

    return diskcache.Cache(str(tmp_path / "cache" / "index"))


@pytest.mark.parametrize("what", ["parsed", "raw", "meta", "all-files"])
def test_corrupt_cache_entry_is_dropped(httpserver, key, keys, cache, tmp_path, what):
    # big enough (> 32 KiB) that diskcache keeps the bytes in files of their own
    good = ib.make_index(ib.many_packages(1500, 3), key, KEY_NAME)
    assert len(good) > 40_000
    url = httpserver.url_for(ALPINE_PATH)
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good)
    first = get(url, keys, cache=cache, now=0.0)
    dc = _diskcache(tmp_path)
    if what == "parsed":
        dc.set("parsed:" + first.sha256, b"RDIX\0\0\0\0garbage")
    elif what == "raw":
        dc.delete("parsed:" + first.sha256)
        dc.set("raw:" + first.sha256, good[:-1] + b"X")
    elif what == "meta":
        dc.set("meta:" + url, "{not json")
    else:
        # damage the value files diskcache keeps on disk
        files = [p for p in (tmp_path / "cache" / "index").rglob("*.val")]
        assert files
        for p in files:
            p.write_bytes(b"\0" * 50)
    dc.close()
    again = get(url, keys, cache=cache, now=1.0)
    assert again.package_count == 1500 and again.verified
    expected_requests = {"parsed": 1, "raw": 2, "meta": 2, "all-files": 2}[what]
    assert len(httpserver.log) == expected_requests
    # and the entry is healthy again
    assert get(url, keys, cache=cache, offline=True).package_count == 1500


def test_cache_folder_under_a_regular_file(tmp_path, httpserver, keys, good):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    said = []
    assert IndexCache.open(blocker / "cache", Diagnostics(warning=said.append)) is None
    assert len(said) == 1 and "continuing without a cache" in said[0]
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good)
    assert get(httpserver.url_for(ALPINE_PATH), keys, cache=None).verified


def test_cache_writes_failing(tmp_path, httpserver, keys, good, cache):
    # Root ignores permissions, so make the writes fail from below.
    def refuse(*a, **k):
        raise OSError(30, "Read-only file system")

    said = []
    cache._diag = Diagnostics(warning=said.append)  # as if opened with IndexCache.open(dir, diag)
    cache._cache.set = refuse
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good)
    url = httpserver.url_for(ALPINE_PATH)
    assert get(url, keys, cache=cache, diag=Diagnostics(warning=said.append)).verified
    assert said == [f"cache folder {cache.directory} is not writable (Read-only file system); not caching"]
    assert cache.get_meta(url) is None


def test_cache_on_a_readonly_filesystem(tmp_path, keys):
    # /proc is not writable even for root; skip where it is not there
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    said = []
    assert IndexCache.open("/proc/self/rundeps-cache", Diagnostics(warning=said.append)) is None
    assert said


def test_damaged_database_file(tmp_path, keys, httpserver, good):
    c = IndexCache.open(tmp_path / "cache")
    c.close()
    (tmp_path / "cache" / "index" / "cache.db").write_bytes(b"this is not sqlite" * 100)
    said = []
    c = IndexCache.open(tmp_path / "cache", Diagnostics(warning=said.append))
    if c is not None:  # diskcache may recreate it; then it must simply work
        httpserver.expect_request(ALPINE_PATH).respond_with_data(good)
        assert get(httpserver.url_for(ALPINE_PATH), keys, cache=c).verified
        c.close()
    else:
        assert said and "without a cache" in said[0]
    assert fetch.clear_cache(tmp_path / "cache") is True
    assert not (tmp_path / "cache" / "index").exists()


_WORKER = r"""
import json, sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
from rundeps.apk.fetch import FetchOptions, IndexCache, open_index
keys = json.loads(sys.argv[4])
keys = {k: v.encode() for k, v in keys.items()}
urls = json.loads(sys.argv[5])
cache = IndexCache.open(sys.argv[3])
counts = []
for round_ in range(6):
    for url in urls:
        idx = open_index(url, keys, FetchOptions(cache=cache, refresh=(round_ % 2 == 0), timeout=(5, 10), retries=3,
                                                backoff=0.05))
        counts.append(idx.package_count)
print(json.dumps(counts))
"""


def test_two_processes_fill_one_cache(httpserver, key, keys, tmp_path):
    bodies = {}
    for i in range(3):
        text = ib.PACKAGES + "".join("\n" + ib.package_block(f"p{i}_{j}", p=f"so:lib{i}_{j}.so.1") for j in range(i))
        bodies[f"/r{i}/x86_64/APKINDEX.tar.gz"] = ib.make_index(text, key, KEY_NAME)
    for path, body in bodies.items():
        httpserver.expect_request(path).respond_with_data(body, headers={"ETag": f'"{path}"'})
    urls = [httpserver.url_for(p) for p in bodies]
    args = [
        sys.executable, "-c", _WORKER, str(PROJECT), str(PROJECT / "tests"), str(tmp_path / "cache"),
        json.dumps({k: v.decode() for k, v in keys.items()}), json.dumps(urls),
    ]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
        assert json.loads(out) == [4, 5, 6] * 6
    cache = IndexCache.open(tmp_path / "cache")
    for url, expected in zip(urls, [4, 5, 6]):
        index = open_index(url, keys, FetchOptions(cache=cache, offline=True))
        assert index.package_count == expected and index.verified
    assert sorted(cache.locations()) == sorted(urls)
    cache.close()


# -- index show / update / clear ------------------------------------------------------------


def test_index_info_update_and_clear(httpserver, keys, good, cache, tmp_path):
    url = httpserver.url_for(ALPINE_PATH)
    missing = httpserver.url_for("/never/x86_64/APKINDEX.tar.gz")
    assert [i.cached for i in index_info([url], cache)] == [False]
    httpserver.expect_request(ALPINE_PATH).respond_with_data(good, headers={"ETag": '"e"'})
    get(url, keys, cache=cache, now=1000.0)
    (info,) = index_info([], cache, now=1000.0 + 90)
    assert (info.location, info.cached, info.description, info.arch) == (url, True, "v3.99.0-test", "x86_64")
    assert (info.package_count, info.so_provide_count, info.signer, info.algo) == (4, 3, KEY_NAME, "sha1")
    assert info.verified and info.age == 90 and info.fetched_at == 1000.0 and info.size == len(good)
    assert fetch.format_age(info.age) == "1 minute"
    infos = index_info([url, missing], cache, now=1100.0)
    assert [i.cached for i in infos] == [True, False]

    updated = fetch.update_indexes([url], keys, FetchOptions(cache=cache, **FAST))
    assert updated[0].package_count == 4 and updated[0].age < 5
    assert httpserver.log[-1][0].headers.get("If-None-Match") == '"e"'

    assert cache.clear() >= 3
    assert index_info([url], cache)[0].cached is False


def test_import_is_light():
    code = "import sys, rundeps.apk.fetch, rundeps.apk.repositories, rundeps.apk.index; " \
           "print(sorted(m for m in ('requests', 'diskcache', 'rsa', 'urllib3') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fetch_options_are_one_frozen_value(monkeypatch):
    """The module's DEFAULT_* values are read when options are made (how
    tests/test_faults.py shortens them for a whole CLI process)."""
    import dataclasses

    opts = FetchOptions()
    assert (opts.ttl, opts.timeout, opts.retries, opts.backoff) == (
        fetch.DEFAULT_TTL, fetch.DEFAULT_TIMEOUT, fetch.DEFAULT_RETRIES, fetch.DEFAULT_BACKOFF)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.offline = True  # type: ignore[misc]
    before = opts.retries
    monkeypatch.setattr(fetch, "DEFAULT_RETRIES", before + 1)
    assert FetchOptions().retries == before + 1 and opts.retries == before

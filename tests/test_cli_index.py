"""`rundeps scan` against repository indexes, served by a real HTTP server on 127.0.0.1,
and `rundeps index show/update/clear`."""

import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

import indexbuild
from test_scan import ARCH, LIBC, demo, run

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "alpine"
REAL_INDEX = SHARED / "index" / "3.20-main-x86_64" / "APKINDEX.tar.gz"
REAL_KEYS = SHARED / "keys"
needs_real_index = pytest.mark.skipif(not REAL_INDEX.exists(), reason="../shared/alpine is not here")

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the ELF fixtures")


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests_seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests_seen.append((self.path, self.headers.get("If-None-Match")))
        return super().do_GET()

    def end_headers(self):
        # a strong validator so revalidation can answer 304
        if self.command == "GET" and getattr(self, "_etag", None):
            self.send_header("ETag", self._etag)
        super().end_headers()


@pytest.fixture()
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(_Handler):
        requests_seen = []

        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}", Handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def tree(tmp_path):
    """A bare tree (no installed database) of gcc-built extension modules."""
    b = demo.Builder(tmp_path / "build")
    site = tmp_path / "tree" / "site-packages"
    b.shared(site / "psycopg2/_psycopg.so", needed=["libpq.so.5", LIBC])
    b.shared(site / "lxml/etree.so", needed=["libxml2.so.2", "libz.so.1", LIBC])
    b.shared(site / "pycurl.so", needed=["libcurl.so.4", "libssl.so.3", LIBC])
    b.shared(site / "yaml/_yaml.so", needed=["libyaml-0.so.2", LIBC])
    return site


@needs_real_index
@pytest.mark.skipif(ARCH != "x86_64", reason="the stored index is x86_64")
def test_scan_against_real_index_file(tree, tmp_path):
    r = run("scan", "--index", REAL_INDEX, "--keys-dir", REAL_KEYS, "--cache-dir", tmp_path / "c",
            "--format", "json", tree)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["providers"] == {
        LIBC: "musl", "libcurl.so.4": "libcurl", "libpq.so.5": "libpq", "libssl.so.3": "libssl3",
        "libxml2.so.2": "libxml2", "libyaml-0.so.2": "yaml", "libz.so.1": "zlib",
    }
    # libcurl's D: pulls in libssl3 and zlib; libxml2's pulls in zlib
    assert out["packages"] == ["libcurl", "libpq", "libxml2", "yaml"]
    assert set(out["source"].values()) == {str(REAL_INDEX)}


@needs_real_index
@pytest.mark.skipif(ARCH != "x86_64", reason="the stored index is x86_64")
def test_scan_repo_url_then_offline(tree, tmp_path, server):
    www, url, handler = server
    (www / "v3.20/main/x86_64").mkdir(parents=True)
    shutil.copy(REAL_INDEX, www / "v3.20/main/x86_64/APKINDEX.tar.gz")
    cache = ["--cache-dir", tmp_path / "cache"]
    r = run("scan", "--repo", f"{url}/v3.20/main", "--arch", "x86_64", "--keys-dir", REAL_KEYS, *cache, tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["libcurl", "libpq", "libxml2", "yaml"]
    assert handler.requests_seen == [("/v3.20/main/x86_64/APKINDEX.tar.gz", None)]
    # the server goes away; --offline answers from the cache and says how old it is
    (www / "v3.20/main/x86_64/APKINDEX.tar.gz").unlink()
    r = run("scan", "--repo", f"{url}/v3.20/main", "--arch", "x86_64", "--keys-dir", REAL_KEYS,
            "--offline", *cache, tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["libcurl", "libpq", "libxml2", "yaml"]
    assert len(handler.requests_seen) == 1
    # offline with an empty cache: one clear line, exit 2
    r = run("scan", "--repo", f"{url}/v3.20/main", "--arch", "x86_64", "--keys-dir", REAL_KEYS,
            "--offline", "--cache-dir", tmp_path / "empty", tree)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "offline" in r.stderr.lower()
    # index show describes the cached copy
    r = run("index", "show", "--repo", f"{url}/v3.20/main", "--arch", "x86_64", *cache)
    assert r.returncode == 0, r.stderr
    assert "v3.20.3-38-g5b99a0b2f22" in r.stdout
    assert "packages     5522" in r.stdout
    assert "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub" in r.stdout
    r = run("index", "clear", *cache)
    assert r.returncode == 0 and "cleared" in r.stdout
    r = run("index", "show", "--repo", f"{url}/v3.20/main", "--arch", "x86_64", *cache)
    assert "not cached" in r.stdout


def _signed_index(tmp_path, text, tamper=False, key_slot=0):
    key = indexbuild.new_key(slot=key_slot)
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    indexbuild.write_key(keys, "test@example.org-1.rsa.pub", indexbuild.new_key(slot=0))
    data = indexbuild.make_index(text, key, "test@example.org-1.rsa.pub", tamper_at=-30 if tamper else None)
    return data, keys


PACKAGES = "\n".join([
    indexbuild.package_block("musl", "1.2.5-r0", arch=ARCH, p=f"so:{LIBC}=1"),
    indexbuild.package_block("libpq", "16.4-r0", arch=ARCH, D=f"so:{LIBC}", p="so:libpq.so.5=5.16"),
    indexbuild.package_block("libxml2", "2.12-r0", arch=ARCH, D=f"so:{LIBC} so:libz.so.1", p="so:libxml2.so.2=2.12"),
    indexbuild.package_block("zlib", "1.3.1-r1", arch=ARCH, D=f"so:{LIBC}", p="so:libz.so.1=1.3.1"),
])


def test_tampered_index_refused_and_nothing_used(tree, tmp_path, server):
    www, url, _ = server
    good, keys = _signed_index(tmp_path, PACKAGES)
    bad, _ = _signed_index(tmp_path, PACKAGES, tamper=True)
    (www / "good").mkdir()
    (www / "good/APKINDEX.tar.gz").write_bytes(good)
    (www / "bad").mkdir()
    (www / "bad/APKINDEX.tar.gz").write_bytes(bad)
    cache = ["--cache-dir", tmp_path / "cache"]
    r = run("scan", "--index", f"{url}/good/APKINDEX.tar.gz", "--keys-dir", keys, "--all",
            "--allow-unresolved", *cache, tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["libpq", "libxml2", "musl", "zlib"]
    r = run("scan", "--index", f"{url}/bad/APKINDEX.tar.gz", "--keys-dir", keys, *cache, tree)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "signature" in r.stderr and "Traceback" not in r.stderr
    # a damaged index cannot be used even with --allow-untrusted
    r = run("scan", "--index", f"{url}/bad/APKINDEX.tar.gz", "--keys-dir", keys, "--allow-untrusted", *cache, tree)
    assert r.returncode == 2 and r.stdout == ""
    # one signed by a key nobody trusts is used with --allow-untrusted, with a warning
    (www / "stranger").mkdir()
    (www / "stranger/APKINDEX.tar.gz").write_bytes(
        indexbuild.make_index(PACKAGES, indexbuild.new_key(slot=1), "stranger@example.org-9.rsa.pub"))
    r = run("scan", "--index", f"{url}/stranger/APKINDEX.tar.gz", "--keys-dir", keys, "--allow-untrusted",
            "--allow-unresolved", *cache, tree)
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "libpq" in r.stdout.split()


def test_unknown_key_refused(tree, tmp_path):
    data = indexbuild.make_index(PACKAGES, indexbuild.new_key(slot=1), "stranger@example.org-9.rsa.pub")
    index = tmp_path / "APKINDEX.tar.gz"
    index.write_bytes(data)
    keys = tmp_path / "keys"
    keys.mkdir()
    indexbuild.write_key(keys, "test@example.org-1.rsa.pub", indexbuild.new_key(slot=0))
    r = run("scan", "--index", index, "--keys-dir", keys, "--cache-dir", tmp_path / "c", tree)
    assert r.returncode == 2
    assert "stranger@example.org-9.rsa.pub" in r.stderr and r.stderr.count("\n") == 1


def test_installed_database_first_then_index(tmp_path, tree):
    """A root with a database uses it first; the index only fills the gaps."""
    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(
        f"P:musl\nV:1.2.5-r0\nA:{ARCH}\np:so:{LIBC}=1\n\n"
        f"P:postgresql16-libpq-fork\nV:1\nA:{ARCH}\np:so:libpq.so.5=5.99\n"
    )
    shutil.copytree(tree, root / "usr/local/lib/site-packages")
    data, keys = _signed_index(tmp_path, PACKAGES)
    index = tmp_path / "APKINDEX.tar.gz"
    index.write_bytes(data)
    r = run("scan", "--root", root, "--index", index, "--keys-dir", keys, "--format", "json",
            "--allow-unresolved", "--cache-dir", tmp_path / "c")
    out = json.loads(r.stdout)
    assert out["providers"]["libpq.so.5"] == "postgresql16-libpq-fork"
    assert out["source"]["postgresql16-libpq-fork"] == "installed"
    assert out["providers"]["libxml2.so.2"] == "libxml2"
    assert out["source"]["libxml2"] == str(index)
    assert set(out["unresolved"]) == {"libcurl.so.4", "libssl.so.3", "libyaml-0.so.2"}


def test_root_repositories_used_without_database(tmp_path, tree, server):
    www, url, _ = server
    data, keys = _signed_index(tmp_path, PACKAGES)
    (www / f"main/{ARCH}").mkdir(parents=True)
    (www / f"main/{ARCH}/APKINDEX.tar.gz").write_bytes(data)
    root = tmp_path / "root"
    (root / "etc/apk/keys").mkdir(parents=True)
    shutil.copy(keys / "test@example.org-1.rsa.pub", root / "etc/apk/keys/")
    (root / "etc/apk/arch").write_text(ARCH + "\n")
    (root / "etc/apk/repositories").write_text(f"# the mirror\n\n{url}/main\n@edge {url}/edge-testing\n")
    shutil.copytree(tree, root / "usr/local/lib/site-packages")
    r = run("scan", "--root", root, "--all", "--allow-unresolved", "--cache-dir", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["libpq", "libxml2", "musl", "zlib"]


def test_alpine_release_through_a_mirror(tmp_path, tree, server):
    """--alpine VERSION --mirror URL reads main and community of that release, in that order."""
    www, url, handler = server
    main_text = PACKAGES
    community_text = "\n".join([
        indexbuild.package_block("yaml", "0.2.5-r2", arch=ARCH, D=f"so:{LIBC}", p="so:libyaml-0.so.2=0.2.5"),
        # main answers libpq.so.5 first: the earlier repository wins a tie
        indexbuild.package_block("libpq-other", "1", arch=ARCH, p="so:libpq.so.5=5.16"),
    ])
    keys = None
    for repo, text in (("main", main_text), ("community", community_text)):
        data, keys = _signed_index(tmp_path, text)
        (www / f"v3.20/{repo}/{ARCH}").mkdir(parents=True)
        (www / f"v3.20/{repo}/{ARCH}/APKINDEX.tar.gz").write_bytes(data)
    r = run("scan", "--alpine", "v3.20", "--mirror", url, "--keys-dir", keys, "--format", "json",
            "--allow-unresolved", "--cache-dir", tmp_path / "c", tree)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["providers"]["libpq.so.5"] == "libpq"
    assert out["providers"]["libyaml-0.so.2"] == "yaml"
    assert out["source"]["yaml"] == f"{url}/v3.20/community/{ARCH}/APKINDEX.tar.gz"
    assert [p for p, _ in handler.requests_seen] == [
        f"/v3.20/main/{ARCH}/APKINDEX.tar.gz", f"/v3.20/community/{ARCH}/APKINDEX.tar.gz"]
    # a release the mirror does not have: one line naming it, exit 2
    r = run("scan", "--alpine", "3.99", "--mirror", url, "--keys-dir", keys, "--cache-dir", tmp_path / "c", tree)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "3.99" in r.stderr


def test_mixed_arch_tree_is_reported(tmp_path):
    from scriptmods import fz

    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(f"P:musl\nV:1\nA:{ARCH}\np:so:{LIBC}=1\n")
    lib = root / "usr/local/lib"
    lib.mkdir(parents=True)
    for i in range(3):
        (lib / f"native{i}.so").write_bytes(fz.craft_elf(machine=62, needed=["libc.musl-x86_64.so.1"]))
    (lib / "stray.so").write_bytes(fz.craft_elf(machine=183, needed=["libc.musl-aarch64.so.1"]))
    r = run("scan", "--root", root, "--format", "json", "--cache-dir", tmp_path / "c")
    assert json.loads(r.stdout)["arch"] == "x86_64"
    assert "the tree mixes architectures: x86_64 (3 files), aarch64 (1 file); resolving for x86_64" in r.stderr

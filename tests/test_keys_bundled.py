"""Alpine's public keys out of the box (issue 10, item 6).

The keys ship as package data (``data/keys``, ``rundeps.datafiles.data_path("keys")``)
and are used when neither ``--keys-dir`` nor the root (nor the host's
``/etc/apk/keys``) gives a key, so ``rundeps scan --repo URL --arch x86_64 TREE``
works on a Debian runner. Held to the real signed v3.20 index in
``../shared/alpine/index/`` served by a real HTTP server on 127.0.0.1.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

import indexbuild
from test_cli_index import REAL_INDEX, needs_real_index, server, tree  # noqa: F401  (fixtures)
from test_scan import ARCH, run

from rundeps.apk.index import bundled_keys_dir, load_keys, trusted_key_set

SIGNER = "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"
pytestmark = [
    needs_real_index,
    pytest.mark.skipif(ARCH != "x86_64", reason="the stored index is x86_64"),
    pytest.mark.skipif(os.path.isdir("/etc/apk/keys"), reason="this host has apk keys of its own"),
]


@pytest.fixture()
def repo(server):  # noqa: F811
    www, url, handler = server
    (www / "v3.20/main/x86_64").mkdir(parents=True)
    shutil.copy(REAL_INDEX, www / "v3.20/main/x86_64/APKINDEX.tar.gz")
    return f"{url}/v3.20/main", handler


def test_bundled_keys_are_alpines():
    keys = load_keys([bundled_keys_dir()])
    assert SIGNER in keys and len(keys) >= 9
    shared = Path(__file__).resolve().parents[2] / "shared" / "alpine" / "keys"
    for name, pem in keys.items():
        assert (shared / name).read_bytes() == pem


def test_fallback_only_when_nothing_else_gives_a_key(tmp_path):
    # no root keys, no --keys-dir: the bundled ones
    keys = trusted_key_set(str(tmp_path), "x86_64")
    assert keys.bundled and SIGNER in keys
    assert keys.path_of(SIGNER) == os.path.join(bundled_keys_dir(), SIGNER)
    # the root's keys take precedence: the bundled ones are not added
    (tmp_path / "etc/apk/keys").mkdir(parents=True)
    indexbuild.write_key(tmp_path / "etc/apk/keys", "test@example.org-1.rsa.pub", indexbuild.new_key())
    keys = trusted_key_set(str(tmp_path), "x86_64")
    assert not keys.bundled and list(keys) == ["test@example.org-1.rsa.pub"]
    # an explicit --keys-dir never falls back, even when it holds no key
    empty = tmp_path / "empty"
    empty.mkdir()
    keys = trusted_key_set(str(tmp_path), "x86_64", [str(empty)])
    assert not keys and not keys.bundled


def test_scan_real_index_without_keys_dir(tree, repo, tmp_path):  # noqa: F811
    url, handler = repo
    cache = ["--cache-dir", tmp_path / "cache"]
    r = run("scan", "--repo", url, "--arch", "x86_64", *cache, tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["libcurl", "libpq", "libxml2", "yaml"]
    # index show says which key verified it, and that it is the shipped one
    r = run("index", "show", "--repo", url, "--arch", "x86_64", *cache)
    assert r.returncode == 0, r.stderr
    assert f"signer       {SIGNER} (RSA/SHA-1, verified)" in r.stdout
    assert f"key          {os.path.join(bundled_keys_dir(), SIGNER)} (Alpine's, shipped with rundeps)" in r.stdout
    r = run("index", "show", "--repo", url, "--arch", "x86_64", "--format", "json", *cache)
    info = json.loads(r.stdout)[0]
    assert info["key_path"] == os.path.join(bundled_keys_dir(), SIGNER) and info["key_bundled"] is True


def test_keys_dir_and_root_keys_take_precedence(tree, repo, tmp_path):  # noqa: F811
    url, _ = repo
    stranger = tmp_path / "stranger-keys"
    stranger.mkdir()
    indexbuild.write_key(stranger, "test@example.org-1.rsa.pub", indexbuild.new_key())
    r = run("scan", "--repo", url, "--arch", "x86_64", "--keys-dir", stranger, "--cache-dir", tmp_path / "c1", tree)
    assert r.returncode == 2 and SIGNER in r.stderr and r.stderr.count("\n") == 1
    root = tmp_path / "root"
    shutil.copytree(stranger, root / "etc/apk/keys")
    shutil.copytree(tree, root / "site-packages")
    r = run("scan", "--root", root, "--repo", url, "--arch", "x86_64", "--cache-dir", tmp_path / "c2", "/site-packages")
    assert r.returncode == 2 and SIGNER in r.stderr and r.stderr.count("\n") == 1
    # a --keys-dir holding Alpine's key is used as given (and named by index show)
    mine = tmp_path / "mine"
    shutil.copytree(bundled_keys_dir(), mine)
    cache = ["--cache-dir", tmp_path / "c3"]
    r = run("scan", "--repo", url, "--arch", "x86_64", "--keys-dir", mine, *cache, tree)
    assert r.returncode == 0, r.stderr
    r = run("index", "show", "--repo", url, "--arch", "x86_64", "--keys-dir", mine, *cache)
    assert f"key          {mine / SIGNER}\n" in r.stdout


def test_index_show_without_selection(repo, tree, tmp_path):  # noqa: F811
    url, _ = repo
    cache = ["--cache-dir", tmp_path / "cache"]
    r = run("index", "show", *cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"no downloaded index cached in {tmp_path / 'cache' / 'index'}\n"
    assert run("scan", "--repo", url, "--arch", "x86_64", *cache, tree).returncode == 0
    r = run("index", "show", *cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"{url}/x86_64/APKINDEX.tar.gz"
    assert "packages     5522" in r.stdout

"""Hostile repository indexes through ``rundeps scan --index FILE --keys-dir DIR``.

tests/test_apkindex.py checks :func:`rundeps.apk.index.read_index`; these
check the command: a refused index is exit 2 with one ``rundeps: error:``
line, a tolerable oddity is a warning, and -- the point -- nothing an
untrusted index says is used: each bad index offers the package ``evil``
providing a soname the tree needs, and ``evil`` never appears.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import indexbuild as ib  # noqa: E402

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
from scriptmods import fz  # noqa: E402

KEY = "test@example.org-1.rsa.pub"
LIBC = "libc.musl-x86_64.so.1"
#: What the tree needs: libz from zlib, libevil from whoever provides it.
EVIL = ib.package_block("evil", "6.6.6-r0", p="so:libevil.so.1=1")
GOOD_EVIL = ib.package_block("libevil", "1.0-r0", p="so:libevil.so.1=1")
PACKAGES = ib.PACKAGES + "\n" + EVIL


@pytest.fixture
def env(tmp_path, key):
    root = tmp_path / "root"
    (root / "usr/local/lib").mkdir(parents=True)
    (root / "usr/local/lib/x.so").write_bytes(fz.craft_elf(needed=("libz.so.1", "libevil.so.1", LIBC)))
    keys = tmp_path / "keys"
    ib.write_key(keys, KEY, key)
    return root, keys


def scan(env, tmp_path, *indexes, extra=()):
    root, keys = env
    args = [sys.executable, "-m", "rundeps", "scan", "--root", str(root), "--keys-dir", str(keys),
            "--arch", "x86_64", "--cache-dir", str(tmp_path / "cache"), "--format", "json", *extra]
    for i in indexes:
        args += ["--index", str(i)]
    args.append("/usr/local")
    e = dict(os.environ)
    e.pop("RUNDEPS_CACHE_DIR", None)
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, timeout=60,
                       cwd=str(PROJECT))
    assert "Traceback" not in r.stderr, r.stderr
    return r


def index_show(env, tmp_path, index):
    """``rundeps index show --format json`` for ``index``, with the same keys and cache as :func:`scan`."""
    _root, keys = env
    e = dict(os.environ)
    e.pop("RUNDEPS_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rundeps", "index", "show", "--index", str(index),
                           "--keys-dir", str(keys), "--cache-dir", str(tmp_path / "cache"), "--format", "json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, timeout=60,
                          cwd=str(PROJECT))


def write(tmp_path, data, name="APKINDEX.tar.gz"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def refused(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rundeps: error: "), lines
    for w in words:
        assert w in lines[0], lines
    assert "evil" not in r.stdout
    return lines[0]


def test_baseline_a_good_index_is_used(env, tmp_path, key):
    r = scan(env, tmp_path, write(tmp_path, ib.make_index(PACKAGES, key, KEY)))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["providers"]["libevil.so.1"] == "evil"  # so the refusals below are meaningful
    assert out["providers"]["libz.so.1"] == "zlib"


def test_untrusted_index_contributes_nothing_even_next_to_a_good_one(env, tmp_path, key, other_key):
    good = write(tmp_path, ib.make_index(ib.PACKAGES, key, KEY), "good.tar.gz")
    bad = write(tmp_path, ib.make_index(PACKAGES, other_key, KEY), "bad.tar.gz")
    refused(scan(env, tmp_path, good, bad), "bad.tar.gz", "untrusted")
    refused(scan(env, tmp_path, bad, good), "bad.tar.gz", "untrusted")
    # and it was not cached as if it were good: a later run still refuses it
    refused(scan(env, tmp_path, bad), "untrusted")
    # --allow-untrusted is the only way in, with a warning
    r = scan(env, tmp_path, bad, extra=["--allow-untrusted"])
    assert r.returncode == 0 and json.loads(r.stdout)["providers"]["libevil.so.1"] == "evil"
    assert any("warning" in ln and "--allow-untrusted" in ln for ln in r.stderr.splitlines()), r.stderr


def test_truncated_gzip(env, tmp_path, key):
    data = ib.make_index(PACKAGES, key, KEY)
    for n in (10, len(data) // 2, len(data) - 5):
        refused(scan(env, tmp_path, write(tmp_path, data[:n])))


def test_garbage_after_the_streams(env, tmp_path, key):
    # the signature covers everything after its own stream, so the bytes break it
    refused(scan(env, tmp_path, write(tmp_path, ib.make_index(PACKAGES, key, KEY, trailing=b"GARBAGE" * 10))),
            "untrusted")
    # a whole third gzip stream (an appended, unsigned index) is refused too
    third = gzip.compress(ib.tar_member("APKINDEX", EVIL.encode()), mtime=0)
    refused(scan(env, tmp_path, write(tmp_path, ib.make_index(ib.PACKAGES, key, KEY, trailing=third))))


def test_signature_made_over_another_stream(env, tmp_path, key):
    honest = ib.make_index(ib.PACKAGES + "\n" + GOOD_EVIL, key, KEY)
    forged = ib.make_index(PACKAGES, key, KEY)
    # the signature stream of the honest index glued to the content of the forged one
    sig_len = _first_stream_length(honest)
    data = honest[:sig_len] + forged[_first_stream_length(forged):]
    refused(scan(env, tmp_path, write(tmp_path, data)), "untrusted", "does not match")


def _first_stream_length(data):
    import zlib

    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    d.decompress(data)
    return len(data) - len(d.unused_data)


@pytest.mark.parametrize("name", ["../keys/" + KEY, "/etc/apk/keys/" + KEY, "keys\\" + KEY, ".." , "a\nb"])
def test_key_name_with_path_separators(env, tmp_path, key, name):
    # the key really is trusted: only the name in the index is the problem
    data = ib.make_index(PACKAGES, key, name)
    refused(scan(env, tmp_path, write(tmp_path, data)), "not a plain file name")
    # even --allow-untrusted does not take it
    r = scan(env, tmp_path, write(tmp_path, data), extra=["--allow-untrusted"])
    refused(r, "not a plain file name")


def test_unsigned_index(env, tmp_path):
    refused(scan(env, tmp_path, write(tmp_path, ib.make_index(PACKAGES, None, signed=False))), "not signed")


def test_block_without_name_and_duplicates_are_warnings(env, tmp_path, key):
    nameless = "C:Q1xxx\nV:1.0-r0\nA:x86_64\np:so:libevil.so.1=1\n"
    dup_evil = ib.package_block("zlib", "1.3.1-r1", p="so:libevil.so.1=9")  # same name-version as zlib
    text = "\n".join([nameless, ib.PACKAGES, dup_evil, GOOD_EVIL])
    r = scan(env, tmp_path, write(tmp_path, ib.make_index(text, key, KEY)))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # the nameless block and the later copy of zlib-1.3.1-r1 provide nothing
    assert out["providers"]["libevil.so.1"] == "libevil"
    warnings = r.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith("rundeps: warning: ") for w in warnings), warnings
    assert any("without a P:" in w for w in warnings) and any("more than once" in w for w in warnings)


def test_gigantic_line(env, tmp_path, key):
    huge = ib.package_block("evil", "1.0-r0", p="so:libevil.so.1=1", T="x" * (2 << 20))
    refused(scan(env, tmp_path, write(tmp_path, ib.make_index(ib.PACKAGES + "\n" + huge, key, KEY))),
            "line of")


def test_index_for_another_arch(env, tmp_path, key):
    text = "\n".join(ib.package_block(n, arch="aarch64", p=f"so:{s}=1")
                     for n, s in (("zlib", "libz.so.1"), ("evil", "libevil.so.1"), ("musl", LIBC)))
    index = write(tmp_path, ib.make_index(text, key, KEY))
    r = scan(env, tmp_path, index)
    for ln in r.stderr.splitlines():
        assert ln.startswith("rundeps: "), ln
    # an aarch64 index cannot serve an x86_64 tree: refused with one line, nothing used
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "is for aarch64" in r.stderr
    show = index_show(env, tmp_path, index)
    assert json.loads(show.stdout)[0]["arch"] == "aarch64"


def test_description_that_lies(env, tmp_path, key):
    desc = "v3.20.0-official-x86_64\x1b[31m RED\n\rP:evil\nsecond line " + "y" * 500
    index = write(tmp_path, ib.make_index(PACKAGES, key, KEY, description=desc))
    r = scan(env, tmp_path, index)
    assert r.returncode == 0
    show = index_show(env, tmp_path, index)
    assert show.returncode == 0, show.stderr
    info = json.loads(show.stdout)[0]
    assert "\x1b" not in info["description"] and "\n" not in info["description"]
    assert len(info["description"]) <= 200
    assert info["arch"] == "x86_64"  # from the packages, not from what DESCRIPTION claims
    assert info["verified"] is True and info["package_count"] == 5

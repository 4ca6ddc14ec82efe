"""The package model: parsing databases, choosing providers, the D: closure."""

from pathlib import Path

import pytest

from rundeps.apk.model import (
    Repository,
    Universe,
    compare_versions,
    parse_atom,
    parse_blocks,
    parse_installed,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "alpine"
PHP_DB = SHARED / "installed" / "alpine-3.21-x86_64-php.installed"
ZT_DB = SHARED / "installed" / "alpine-3.8-aarch64-zerotier.installed"
needs_shared = pytest.mark.skipif(not PHP_DB.exists(), reason="../shared/alpine is not here")


@pytest.mark.parametrize(
    "a,b,expected",
    [
        ("1.2", "1.2.1", -1),
        ("1.10", "1.9", 1),
        ("1.2_rc1", "1.2", -1),
        ("1.2_p1", "1.2", 1),
        ("1.2_alpha1", "1.2_beta1", -1),
        ("1.2-r1", "1.2-r0", 1),
        ("1.2a", "1.2", 1),
        ("3.3.2-r0", "3.3.2-r0", 0),
        ("2.71", "2.8", 1),
        ("1.2.3~abcdef-r1", "1.2.3-r1", 0),
    ],
)
def test_compare_versions(a, b, expected):
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


@pytest.mark.parametrize(
    "text,name,op,version,conflict",
    [
        ("so:libz.so.1=1.3.1", "so:libz.so.1", "=", "1.3.1", False),
        ("musl>=1.2.3", "musl", ">=", "1.2.3", False),
        ("!foo", "foo", "", "", True),
        ("/bin/sh", "/bin/sh", "", "", False),
        ("cmd:curl=8.5.0-r0", "cmd:curl", "=", "8.5.0-r0", False),
        ("so:dotnet8:libclrjit.so", "so:dotnet8:libclrjit.so", "", "", False),
    ],
)
def test_parse_atom(text, name, op, version, conflict):
    atom = parse_atom(text)
    assert (atom.name, atom.op, atom.version, atom.conflict) == (name, op, version, conflict)


def test_parse_blocks_files_unknown_fields_and_missing_name():
    text = (
        "P:zlib\nV:1.3.1-r1\nA:x86_64\nQ:some-future-field\np:so:libz.so.1=1.3.1\n"
        "F:lib\nR:libz.so.1\nR:libz.so.1.3.1\nF:usr/share/doc\nR:README\n\n"
        "V:1.0\nT:a block without a name\n\n"
        "P:musl\nV:1.2.5-r0\nk:10\nnot a field line\n"
    )
    pkgs = list(parse_blocks(text, source="installed"))
    assert [p.name for p in pkgs] == ["zlib", "musl"]
    assert pkgs[0].files == ["lib", "lib/libz.so.1", "lib/libz.so.1.3.1", "usr/share/doc", "usr/share/doc/README"]
    assert pkgs[1].provider_priority == 10


def _repo(text, **kw):
    return Repository(parse_blocks(text, source=kw.get("name", "")), **kw)


def test_provider_choice_version_priority_then_name():
    index = _repo(
        "P:old\nV:1\np:so:libx.so.1=1.0\n\n"
        "P:new\nV:1\np:so:libx.so.1=1.2\n\n"
        "P:hi\nV:1\nk:50\np:so:liby.so.1=1\n\n"
        "P:lo\nV:1\nk:10\np:so:liby.so.1=1\n\n"
        "P:bbb\nV:1\np:so:libz.so.1\n\n"
        "P:aaa\nV:1\np:so:libz.so.1\n",
        name="idx",
    )
    u = Universe([index])
    assert u.provider("so:libx.so.1").name == "new"
    assert u.provider("so:liby.so.1").name == "hi"
    assert u.provider("so:libz.so.1").name == "aaa"
    assert u.provider("so:libnothing.so.1") is None


def test_installed_beats_index_and_earlier_index_wins():
    installed = _repo("P:mine\nV:1\np:so:libx.so.1=0.1\n", name="installed", installed=True)
    first = _repo("P:first\nV:1\np:so:libq.so.1=1\n", name="first")
    second = _repo("P:better\nV:1\np:so:libx.so.1=9\n\nP:second\nV:1\np:so:libq.so.1=1\n", name="second")
    u = Universe([installed, first, second])
    assert u.provider("so:libx.so.1").name == "mine"
    assert u.provider("so:libq.so.1").name == "first"


def test_minimal_drops_pulled_in_and_keeps_one_of_a_cycle():
    u = Universe([_repo(
        "P:app\nV:1\nD:so:liba.so.1 cmd:tool !conflicting\n\n"
        "P:liba\nV:1\np:so:liba.so.1\nD:libb>=2\n\n"
        "P:libb\nV:2\n\n"
        "P:tool\nV:1\np:cmd:tool\n\n"
        "P:cyc1\nV:1\nD:cyc2\n\n"
        "P:cyc2\nV:1\nD:cyc1\n\n"
        "P:alone\nV:1\n", name="installed", installed=True)])
    pk = {n: u.package(n) for n in ("app", "liba", "libb", "tool", "cyc1", "cyc2", "alone")}
    assert {p.name for p in u.closure(pk["app"])} == {"liba", "libb", "tool"}
    minimal = u.minimal(pk.values())
    assert [p.name for p in minimal] == ["alone", "app", "cyc1"]
    # the minimal set, closed over D:, covers everything
    covered = set(minimal)
    for p in minimal:
        covered |= u.closure(p)
    assert covered == set(pk.values())


@needs_shared
def test_real_installed_database_php():
    repo = parse_installed(PHP_DB.read_text())
    assert len(repo) == 47
    u = Universe([repo])
    assert u.provider("so:libcurl.so.4").name == "libcurl"
    assert u.provider("so:libc.musl-x86_64.so.1").name == "musl"
    assert u.owner("lib/ld-musl-x86_64.so.1").name == "musl"
    assert u.owner("/usr/lib/libacl.so.1").name == "acl-libs"
    assert u.package("libcurl").version == "8.11.1-r0"
    closure = {p.name for p in u.closure(u.package("libcurl"))}
    assert {"zlib", "libssl3", "libcrypto3", "musl", "ca-certificates-bundle", "c-ares",
            "brotli-libs", "libidn2", "nghttp2-libs", "libpsl", "zstd-libs"} <= closure
    names = [p.name for p in u.minimal([u.package(n) for n in ("libcurl", "zlib", "musl", "libssl3")])]
    assert names == ["libcurl"]


@needs_shared
def test_real_installed_database_zerotier():
    u = Universe([parse_installed(ZT_DB.read_text())])
    assert len(u.installed) == 205
    curl = u.package("curl")
    assert curl.version == "7.62.0-r2"
    # libressl and openssl 1.1 side by side: different sonames, different packages
    assert u.provider("so:libcrypto.so.1.1").name != u.provider("so:libcrypto.so.42").name
    assert {p.name for p in u.dependencies(curl)} == {"ca-certificates", "musl", "libcurl", "zlib"}

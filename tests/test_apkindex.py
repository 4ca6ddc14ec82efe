"""Reading and verifying APKINDEX.tar.gz: real Alpine indexes and generated ones."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import pytest
import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))

import indexbuild as ib  # noqa: E402

from rundeps.apk import index as apkindex  # noqa: E402
from rundeps.diagnostics import Diagnostics  # noqa: E402
from rundeps.apk.model import Universe, parse_atom  # noqa: E402
from rundeps.apk.index import IndexFile, key_dirs, load_keys, read_index  # noqa: E402
from rundeps.errors import SourceError  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "alpine"
REAL_320 = SHARED / "index" / "3.20-main-x86_64" / "APKINDEX.tar.gz"
REAL_318 = SHARED / "index" / "3.18-main-aarch64" / "APKINDEX.tar.gz"
REAL_KEYS = SHARED / "keys"
needs_shared = pytest.mark.skipif(not REAL_320.is_file() or not REAL_KEYS.is_dir(), reason="../shared/alpine absent")

KEY_NAME = "test@example.org-1.rsa.pub"


@pytest.fixture
def keys(key):
    return {KEY_NAME: key[1]}


def read(data, keys, **kw):
    return read_index(data, keys, name="test-index", **kw)


# -- real indexes -------------------------------------------------------------------


@needs_shared
def test_real_320_main_verifies_and_parses():
    keys = load_keys([str(REAL_KEYS)])
    index = read_index(REAL_320.read_bytes(), keys, name=str(REAL_320))
    assert index.verified is True
    assert index.signer == "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"
    assert index.algo == "sha1"
    assert index.package_count == 5522
    assert index.so_provide_count == 1605
    assert index.arch == "x86_64"
    assert index.description.startswith("v3.20.")
    assert index.warnings == []
    provider = Universe([index.repository]).provider("so:libz.so.1")
    assert provider is not None and provider.name == "zlib"
    assert provider.source == str(REAL_320)


@needs_shared
def test_real_318_aarch64_verifies_and_parses():
    if not REAL_318.is_file():
        pytest.skip("3.18 index absent")
    keys = load_keys([str(REAL_KEYS)])
    index = read_index(REAL_318.read_bytes(), keys, name="318")
    assert index.verified
    assert index.signer == "alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub"
    assert index.package_count == 5150
    assert index.arch == "aarch64"
    assert index.description.startswith("v3.18.")


@needs_shared
def test_real_index_one_flipped_byte_is_refused():
    data = bytearray(REAL_320.read_bytes())
    data[len(data) // 2] ^= 0x40
    keys = load_keys([str(REAL_KEYS)])
    with pytest.raises(SourceError, match="does not match its content"):
        read_index(bytes(data), keys, name="real")


@needs_shared
def test_real_index_without_its_key_is_refused():
    keys = load_keys([str(REAL_KEYS)])
    del keys["alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"]
    with pytest.raises(SourceError, match="6165ee59.rsa.pub, which is not among the 17 trusted keys"):
        read_index(REAL_320.read_bytes(), keys, name="real")


@needs_shared
def test_real_index_other_arch_keys_only():
    # 3.18 aarch64 is signed with 616ae350; the x86_64 key alone must not do.
    if not REAL_318.is_file():
        pytest.skip("3.18 index absent")
    pem = (REAL_KEYS / "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub").read_bytes()
    with pytest.raises(SourceError, match="616ae350"):
        read_index(REAL_318.read_bytes(), {"alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub": pem}, name="x")


# -- generated indexes ------------------------------------------------------------------


def test_good_sha1_index(key, keys):
    index = read(ib.make_index(ib.PACKAGES, key, KEY_NAME), keys)
    assert (index.verified, index.signer, index.algo) == (True, KEY_NAME, "sha1")
    assert index.description == "v3.99.0-test"
    assert index.package_count == 4
    assert index.so_provide_count == 3
    assert index.arch == "x86_64"
    repo = index.repository
    assert sorted(repo.by_name) == ["busybox", "libcrypto3", "musl", "zlib"]
    (pkg, version), = repo.provides["so:libz.so.1"]
    assert (pkg.name, pkg.version, version, pkg.origin) == ("zlib", "1.3.1-r1", "1.3.1", "zlib")
    assert pkg.depends == (parse_atom("so:libc.musl-x86_64.so.1"),)
    assert repo.by_name["libcrypto3"][0].provider_priority == 10
    assert "/bin/sh" in repo.provides and "cmd:sh" in repo.provides
    assert sorted(repo.so_provides()) == ["libc.musl-x86_64.so.1", "libcrypto.so.3", "libz.so.1"]
    assert pkg.source == "test-index"


def test_good_sha256_index(key, keys):
    index = read(ib.make_index(ib.PACKAGES, key, KEY_NAME, "sha256"), keys)
    assert (index.verified, index.algo) == (True, "sha256")


@pytest.mark.parametrize("where", [10, 40, -9, -40])
def test_one_tampered_byte_is_refused(key, keys, where):
    data = ib.make_index(ib.PACKAGES, key, KEY_NAME, tamper_at=where)
    with pytest.raises(SourceError) as err:
        read(data, keys)
    assert "does not match its content" in str(err.value)


def test_sha256_tampered_is_refused(key, keys):
    data = ib.make_index(ib.PACKAGES, key, KEY_NAME, "sha256", tamper_at=30)
    with pytest.raises(SourceError, match="does not match"):
        read(data, keys)


def test_signature_by_another_key_under_the_trusted_name(other_key, keys):
    data = ib.make_index(ib.PACKAGES, other_key, KEY_NAME, "sha256")
    with pytest.raises(SourceError, match="does not match"):
        read(data, keys)


def test_unknown_key(key, keys):
    data = ib.make_index(ib.PACKAGES, key, "someone-else.rsa.pub")
    with pytest.raises(SourceError) as err:
        read(data, keys)
    msg = str(err.value)
    assert "someone-else.rsa.pub" in msg and "not among the 1 trusted keys" in msg and "\n" not in msg


def test_unknown_key_allowed_untrusted_warns(key, keys):
    said = []
    index = read(ib.make_index(ib.PACKAGES, key, "someone-else.rsa.pub"), keys, allow_untrusted=True, diag=Diagnostics(warning=said.append))
    assert index.verified is False
    assert index.package_count == 4
    assert len(said) == 1 and "someone-else.rsa.pub" in said[0] and "--allow-untrusted" in said[0]


def test_no_signature(keys):
    data = ib.make_index(ib.PACKAGES, None, signed=False)
    with pytest.raises(SourceError, match="not signed"):
        read(data, keys)
    said = []
    index = read(data, keys, allow_untrusted=True, diag=Diagnostics(warning=said.append))
    assert (index.verified, index.signer, index.algo) == (False, None, None)
    assert index.package_count == 4 and said


def test_no_keys_at_all(key):
    with pytest.raises(SourceError, match="not among the 0 trusted keys"):
        read(ib.make_index(ib.PACKAGES, key, KEY_NAME), {})


@pytest.mark.parametrize(
    "bad_name", ["../" + KEY_NAME, "keys/" + KEY_NAME, "..", "a\\b", "x..y", "a\nb", b"a\0b.rsa.pub", ""]
)
def test_key_name_that_is_not_a_file_name_is_refused(key, keys, bad_name):
    data = ib.make_index(ib.PACKAGES, key, bad_name)
    for untrusted in (False, True):
        with pytest.raises(SourceError, match="not a plain file name"):
            read(data, {**keys, "..": keys[KEY_NAME]}, allow_untrusted=untrusted)


def test_hash_must_match_the_member_name(key, keys):
    # named RSA256 but signed with SHA-1, and named RSA (SHA-1) but signed with MD5
    for algo, used in (("sha256", "SHA-1"), ("sha1", "MD5"), ("sha1", "SHA-256")):
        data = ib.make_index(ib.PACKAGES, key, KEY_NAME, algo, sign_hash=used)
        with pytest.raises(SourceError, match=f"uses {used}"):
            read(data, keys)


def test_garbage_signature(keys):
    data = ib.make_index(ib.PACKAGES, None, KEY_NAME, signature=os.urandom(128))
    with pytest.raises(SourceError, match="does not match"):
        read(data, keys)
    with pytest.raises(SourceError):
        read(ib.make_index(ib.PACKAGES, None, KEY_NAME, signature=b"short"), keys)


def test_second_signature_may_verify(key, keys):
    # an unknown-key signature first, the good one second
    data = ib.make_index(
        ib.PACKAGES,
        key,
        "unknown.rsa.pub",
        extra_signatures=[(".SIGN.RSA." + KEY_NAME, _signature_of(key, ib.PACKAGES))],
    )
    index = read(data, keys)
    assert index.verified and index.signer == KEY_NAME


def _signature_of(key, text):
    import zlib as _z

    full = ib.make_index(text, key, KEY_NAME)
    d = _z.decompressobj(31)
    d.decompress(full)
    return rsa.sign(d.unused_data, key[0], "SHA-1")


def test_trailing_garbage(key, keys):
    data = ib.make_index(ib.PACKAGES, key, KEY_NAME, trailing=b"GARBAGE")
    with pytest.raises(SourceError, match="does not match"):
        read(data, keys)  # the junk is covered by the signature check first
    with pytest.raises(SourceError, match="7 unexpected bytes after the index content"):
        read(data, keys, allow_untrusted=True)


def test_third_gzip_stream_is_refused(key, keys):
    data = ib.make_index(ib.PACKAGES, key, KEY_NAME, trailing=gzip.compress(b"more"), signed=False)
    with pytest.raises(SourceError, match="unexpected bytes"):
        read(data, keys, allow_untrusted=True)


def test_every_truncation_is_a_clean_error(key, keys):
    full = ib.make_index(ib.PACKAGES, key, KEY_NAME)
    for cut in range(0, len(full), 7):
        for untrusted in (False, True):
            with pytest.raises(SourceError):
                read(full[:cut], keys, allow_untrusted=untrusted)


@pytest.mark.parametrize(
    "data,pattern",
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><body>login</body></html>", "HTML page"),
        (b"PK\x03\x04 a zip file", "not gzip"),
        (b"\x1f\x8b\x08\x00garbage-after-magic", "not valid gzip|truncated"),
    ],
)
def test_not_an_index(keys, data, pattern):
    with pytest.raises(SourceError, match=pattern):
        read(data, keys, allow_untrusted=True)


def test_gzip_of_something_else(keys):
    with pytest.raises(SourceError, match="not a valid tar"):
        read(gzip.compress(b"hello world" * 100), keys, allow_untrusted=True)


def test_block_without_name_is_skipped_with_a_warning(key, keys):
    text = ib.PACKAGES + "\nV:1.0\nA:x86_64\np:so:libghost.so.1\n\n" + ib.package_block("last", p="so:liblast.so.1")
    said = []
    index = read(ib.make_index(text, key, KEY_NAME), keys, diag=Diagnostics(warning=said.append))
    assert index.package_count == 5
    assert "so:libghost.so.1" not in index.repository.provides
    assert "so:liblast.so.1" in index.repository.provides
    assert said == ["test-index: 1 package block(s) without a P: (name) line skipped"]


def test_duplicate_package_keeps_the_first(key, keys):
    text = ib.PACKAGES + "\n" + ib.package_block("zlib", "1.3.1-r1", p="so:libother.so.9")
    said = []
    index = read(ib.make_index(text, key, KEY_NAME), keys, diag=Diagnostics(warning=said.append))
    assert index.package_count == 4
    assert "so:libother.so.9" not in index.repository.provides
    assert len(said) == 1 and "zlib-1.3.1-r1" in said[0] and "more than once" in said[0]
    assert index.warnings == said


def test_same_name_other_version_is_not_a_duplicate(key, keys):
    text = ib.PACKAGES + "\n" + ib.package_block("zlib", "1.2.0-r0", p="so:libz.so.1=1.2.0")
    index = read(ib.make_index(text, key, KEY_NAME), keys)
    assert [p.version for p in index.repository.by_name["zlib"]] == ["1.3.1-r1", "1.2.0-r0"]
    assert Universe([index.repository]).provider("so:libz.so.1").version == "1.3.1-r1"


def test_unknown_fields_and_odd_lines_are_ignored(key, keys):
    text = "P:odd\nV:2\nZ:whatever\nx:y\nno colon here\n?\np:so:libodd.so.2=2\n"
    index = read(ib.make_index(text, key, KEY_NAME), keys)
    (pkg,) = index.repository.packages
    assert (pkg.name, pkg.version, [a.name for a in pkg.provides]) == ("odd", "2", ["so:libodd.so.2"])


def test_description_with_control_characters(key, keys):
    data = ib.make_index(ib.PACKAGES, key, KEY_NAME, description=b"v3.99\x1b[2J\x07 evil\n")
    index = read(data, keys)
    assert index.description == "v3.99[2J evil"


def test_description_too_long_is_shortened(key, keys):
    said = []
    data = ib.make_index(ib.PACKAGES, key, KEY_NAME, description="x" * 10000)
    index = read(data, keys, diag=Diagnostics(warning=said.append))
    assert index.description == "x" * 200
    assert said and "DESCRIPTION" in said[0]


def test_member_claiming_more_bytes_than_exist(key, keys):
    # DESCRIPTION's header says 5000 bytes, the archive ends long before
    member = bytearray(ib.tar_member("DESCRIPTION", b"v3.99"))
    member[124:136] = b"%011o\0" % 5000
    member[148:156] = b" " * 8
    member[148:156] = b"%06o\0 " % sum(member[:512])
    raw = bytes(member)
    # built by hand: the lying member is last, so no end blocks follow
    second = gzip.compress(ib.tar_member("APKINDEX", ib.PACKAGES.encode()) + raw, mtime=0)
    sig = rsa.sign(second, key[0], "SHA-1")
    data = gzip.compress(ib.tar_member(".SIGN.RSA." + KEY_NAME, sig), mtime=0) + second
    with pytest.raises(SourceError, match="truncated .a member claims 5000 bytes"):
        read(data, keys)


def test_bad_tar_checksum(key, keys):
    member = bytearray(ib.tar_member("APKINDEX", ib.PACKAGES.encode()))
    member[0] = ord("B")  # name changes, checksum no longer matches
    second = gzip.compress(bytes(member) + b"\0" * 1024, mtime=0)
    data = gzip.compress(ib.tar_member(".SIGN.RSA." + KEY_NAME, rsa.sign(second, key[0], "SHA-1")), mtime=0) + second
    with pytest.raises(SourceError, match="bad header checksum"):
        read(data, keys)


def test_no_apkindex_member(key, keys):
    data = ib.make_index("", key, KEY_NAME, members=[("DESCRIPTION", b"v1"), ("OTHER", b"x")])
    with pytest.raises(SourceError, match="no APKINDEX member"):
        read(data, keys)


def test_two_apkindex_members(key, keys):
    data = ib.make_index("", key, KEY_NAME, members=[("APKINDEX", b"P:a\n"), ("APKINDEX", b"P:b\n")])
    with pytest.raises(SourceError, match="two APKINDEX"):
        read(data, keys)


def test_decompressed_size_is_capped(key, keys, monkeypatch):
    monkeypatch.setattr(apkindex, "MAX_DECOMPRESSED", 1024 * 1024)
    text = "P:big\n" + "T:" + "a" * 100 + "\n" + ("\n" * 2 * 1024 * 1024)
    data = ib.make_index(text, key, KEY_NAME)
    assert len(data) < 50_000
    with pytest.raises(SourceError, match="larger than 1 MiB once decompressed"):
        read(data, keys)


def test_line_length_is_capped(key, keys, monkeypatch):
    monkeypatch.setattr(apkindex, "MAX_LINE", 1000)
    data = ib.make_index("P:long\nT:" + "y" * 2000 + "\n", key, KEY_NAME)
    with pytest.raises(SourceError, match="a line of 2002 bytes"):
        read(data, keys)


def test_compressed_size_is_capped(keys, monkeypatch):
    monkeypatch.setattr(apkindex, "MAX_INDEX_BYTES", 100)
    with pytest.raises(SourceError, match="larger than"):
        read(b"\x1f\x8b" + b"\0" * 200, keys)


def test_real_shaped_index_without_end_blocks(key, keys):
    index = read(ib.make_index(ib.PACKAGES, key, KEY_NAME, end_blocks=False), keys)
    assert index.package_count == 4


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutations_never_escape_as_tracebacks(data, key, keys):
    base = ib.make_index(ib.PACKAGES, key, KEY_NAME)
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    blob = bytes(raw[:cut])
    try:
        index = read(blob, keys, allow_untrusted=True)
    except SourceError as e:
        assert "\n" not in str(e)
    else:
        assert isinstance(index, IndexFile)


# -- the lazy repository and its cached form ------------------------------------------


def test_lazy_repository_in_a_universe(key, keys):
    index = read(ib.make_index(ib.PACKAGES, key, KEY_NAME), keys)
    restored = IndexFile.from_bytes(index.to_bytes(), "elsewhere")
    repo = restored.repository
    assert repo._pkgs == [None] * 4  # nothing parsed yet
    u = Universe([repo])
    zlib_pkg = u.provider("so:libz.so.1")
    assert zlib_pkg.name == "zlib" and zlib_pkg.source == "elsewhere"
    assert [p.name for p in u.dependencies(zlib_pkg)] == ["musl"]
    assert sum(p is not None for p in repo._pkgs) == 2  # only what was asked
    assert u.provider("so:libnothing.so.0") is None
    assert len(repo) == 4 and restored.package_count == 4 and restored.so_provide_count == 3
    assert (restored.signer, restored.verified, restored.description) == (KEY_NAME, True, "v3.99.0-test")
    from rundeps.apk.model import Package

    repo.add(Package(name="extra", version="1", provides=(parse_atom("so:libextra.so.1"),)))
    assert len(repo) == 5 and u.provider("so:libextra.so.1").name == "extra"
    assert u.provider("so:libz.so.1").name == "zlib"


@pytest.mark.parametrize("damage", ["flip", "truncate", "prefix", "empty"])
def test_damaged_cached_form_is_detected(key, keys, damage):
    blob = bytearray(read(ib.make_index(ib.PACKAGES, key, KEY_NAME), keys).to_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 1
    elif damage == "truncate":
        blob = blob[: len(blob) - 10]
    elif damage == "prefix":
        blob[0:4] = b"XXXX"
    else:
        blob = bytearray()
    with pytest.raises(ValueError):
        IndexFile.from_bytes(bytes(blob), "x")


def test_trusted_with_depends_on_the_exact_key(key, other_key, keys):
    index = read(ib.make_index(ib.PACKAGES, key, KEY_NAME), keys)
    assert index.trusted_with(keys)
    assert not index.trusted_with({})
    assert not index.trusted_with({KEY_NAME: other_key[1]})  # same name, other key
    assert not read(ib.make_index(ib.PACKAGES, key, "x"), keys, allow_untrusted=True).trusted_with(keys)


# -- keys ---------------------------------------------------------------------------------


def test_load_keys(tmp_path, key, other_key):
    a, b = tmp_path / "a", tmp_path / "b"
    ib.write_key(a, "one.rsa.pub", key)
    ib.write_key(b, "one.rsa.pub", other_key)  # shadowed by a's
    ib.write_key(b, "two.rsa.pub", other_key)
    (b / "notakey.txt").write_text("hello")
    (b / "huge.rsa.pub").write_bytes(b"-----BEGIN PUBLIC KEY-----" + b"A" * 100_000)
    (b / "sub").mkdir()
    keys = load_keys([str(a), str(tmp_path / "missing"), str(b)])
    assert sorted(keys) == ["one.rsa.pub", "two.rsa.pub"]
    assert keys["one.rsa.pub"] == key[1]
    assert keys.dirs == (str(a), str(tmp_path / "missing"), str(b))


def test_key_dirs():
    assert key_dirs("/r", "x86_64") == ["/r/etc/apk/keys", "/r/usr/share/apk/keys/x86_64", "/etc/apk/keys"]
    assert key_dirs("/r", None) == ["/r/etc/apk/keys", "/etc/apk/keys"]
    assert key_dirs(None, "x86_64") == ["/etc/apk/keys"]
    assert key_dirs("/r", "x86_64", ["/k1", "/k2", "/k1"]) == ["/k1", "/k2"]


def test_absolute_key_symlink_stays_inside_the_root(tmp_path, key, other_key):
    root = tmp_path / "root"
    inside = root / "usr" / "share" / "apk" / "keys" / "x86_64"
    ib.write_key(inside, "k.rsa.pub", key)
    (root / "etc" / "apk" / "keys").mkdir(parents=True)
    os.symlink("/usr/share/apk/keys/x86_64/k.rsa.pub", root / "etc" / "apk" / "keys" / "k.rsa.pub")
    keys = load_keys([str(root / "etc" / "apk" / "keys")], root=str(root))
    assert keys == {"k.rsa.pub": key[1]}


def test_key_file_that_is_not_rsa(key):
    data = ib.make_index(ib.PACKAGES, key, KEY_NAME)
    bogus = {KEY_NAME: b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}
    with pytest.raises(SourceError, match="is not an RSA public key"):
        read(data, bogus)

"""apk's model: merged-/usr roots, apk-tools 3 repositories, RSA512, Q2,
provider order, v3 repositories refused.

The rules come from apk-tools' source (src/database.c, src/repoparser.c,
src/solver.c); where the real databases and indexes in ../shared/alpine can
show apk's own choice, the tests are held to them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import indexbuild as ib  # noqa: E402

from rundeps.apk.model import Package, Repository, Universe, parse_atom, parse_installed  # noqa: E402
from rundeps.apk.index import load_keys, read_index  # noqa: E402
from rundeps.errors import SourceError  # noqa: E402
from rundeps.apk.repositories import V3RepositoryError, index_locations, read_repositories  # noqa: E402
from rundeps.diagnostics import Diagnostics  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "alpine"
KEY_NAME = "test@example.org-1.rsa.pub"


def run(*args):
    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rundeps", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


# -- signatures and fields ------------------------------------------------------


def test_rsa512_signature_verifies_and_is_checked(key, other_key):
    keys = {KEY_NAME: key[1]}
    index = read_index(ib.make_index(ib.PACKAGES, key, KEY_NAME, "sha512"), keys, name="i")
    assert (index.verified, index.algo) == (True, "sha512")
    with pytest.raises(SourceError, match="does not match its content"):
        read_index(ib.make_index(ib.PACKAGES, key, KEY_NAME, "sha512", tamper_at=30), keys, name="i")
    with pytest.raises(SourceError, match="uses SHA-256, not the SHA-512"):
        read_index(ib.make_index(ib.PACKAGES, key, KEY_NAME, "sha512", sign_hash="SHA-256"), keys, name="i")
    with pytest.raises(SourceError, match="not among the 1 trusted keys"):
        read_index(ib.make_index(ib.PACKAGES, other_key, "other.rsa.pub", "sha512"), keys, name="i")


def test_q1_and_q2_checksums_and_unknown_fields_are_tolerated(key):
    text = "\n".join([
        ib.package_block("zlib", "1.3.1-r2", p="so:libz.so.1=1.3.1", g="zlib sub:deflate", Z="x"),
        ib.package_block("musl", "1.2.5-r9", p="so:libc.musl-x86_64.so.1=1").replace(
            "C:Q1" + "A" * 27 + "=", "C:Q2" + "B" * 43 + "="),
    ])
    index = read_index(ib.make_index(text, key, KEY_NAME, "sha256"), {KEY_NAME: key[1]}, name="i")
    assert index.warnings == []
    u = Universe([index.repository])
    assert u.provider("so:libz.so.1").name == "zlib"
    assert u.provider("so:libc.musl-x86_64.so.1").version == "1.2.5-r9"


# -- v3 refused -----------------------------------------------------------------


def test_a_v3_index_is_refused_with_one_line(tmp_path):
    adb = tmp_path / "Packages.adb"
    adb.write_bytes(b"ADBd" + b"\0" * 64)
    gz_named = tmp_path / "APKINDEX.tar.gz"
    gz_named.write_bytes(b"ADBd" + b"\0" * 64)
    (tmp_path / "t").mkdir()
    for index in (adb, gz_named):
        r = run("scan", "--no-cache", "--index", index, "--arch", "x86_64", tmp_path / "t")
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(index) in lines[0] and "v3" in lines[0], r.stderr


def test_a_v3_repository_line_is_refused_with_one_line(tmp_path):
    root = tmp_path / "root"
    (root / "etc/apk").mkdir(parents=True)
    (root / "etc/apk/arch").write_text("x86_64\n")
    (root / "etc/apk/repositories").write_text("v3 https://mirror.example/alpine/v3.23/main\n")
    (root / "usr/local").mkdir(parents=True)
    r = run("scan", "--no-cache", "--root", root)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "https://mirror.example/alpine/v3.23/main" in lines[0] and "etc/apk/repositories:1" in lines[0]
    with pytest.raises(V3RepositoryError):
        index_locations(root=str(root))
    (root / "etc/apk/repositories").write_text("https://mirror.example/alpine/v3.23/main/x86_64/Packages.adb\n")
    with pytest.raises(V3RepositoryError, match="Packages.adb"):
        index_locations(root=str(root))


# -- apk-tools 3 repositories syntax ----------------------------------------------


def test_apk3_repositories_grammar(tmp_path):
    root = tmp_path
    (root / "etc/apk/repositories.d").mkdir(parents=True)
    (root / "lib/apk/repositories.d").mkdir(parents=True)
    (root / "etc/apk/repositories").write_text(
        "set MIRROR=https://m.example/alpine\n"
        "set -default MIRROR=https://ignored.example\n"
        "set -default REL=v3.23\n"
        "set BRANCH=${REL}\n"
        "${MIRROR}/${BRANCH} main community\n"
        "v2 @edge ${MIRROR}/edge/testing/\n"
        "ndx /srv/${APK_ARCH}/APKINDEX.tar.gz\n"
        "/srv/local/APKINDEX.tar.gz\n"
        "${UNDEFINED}/x\n"
        "set APK_ARCH=riscv64\n"
        "set 9bad=x\n"
        "frobnicate https://x.example\n"
        "relative/path\n"
    )
    (root / "lib/apk/repositories.d/a.list").write_text("https://from-lib.example/a\n")
    (root / "lib/apk/repositories.d/b.list").write_text("https://hidden-by-etc.example/b\n")
    (root / "etc/apk/repositories.d/b.list").write_text("${MIRROR}/b\n")  # variables carry over
    (root / "etc/apk/repositories.d/.hidden.list").write_text("https://hidden.example\n")
    (root / "etc/apk/repositories.d/c.txt").write_text("https://not-a-list.example\n")
    warnings = []
    lines = read_repositories(str(root), "x86_64", Diagnostics(warning=warnings.append))
    assert [(ln.kind, ln.tag, ln.url, ln.origin) for ln in lines] == [
        ("v2", None, "https://m.example/alpine/v3.23/main", "etc/apk/repositories:5"),
        ("v2", None, "https://m.example/alpine/v3.23/community", "etc/apk/repositories:5"),
        ("v2", "edge", "https://m.example/alpine/edge/testing", "etc/apk/repositories:6"),
        ("ndx", None, "/srv/x86_64/APKINDEX.tar.gz", "etc/apk/repositories:7"),
        ("ndx", None, "/srv/local/APKINDEX.tar.gz", "etc/apk/repositories:8"),
        ("v2", None, "https://from-lib.example/a", "lib/apk/repositories.d/a.list:1"),
        ("v2", None, "https://m.example/alpine/b", "etc/apk/repositories.d/b.list:1"),
    ]
    assert len(warnings) == 5, warnings  # undefined, APK_ reserved, bad name, keyword, not a URL
    assert "UNDEFINED" in warnings[0]
    assert index_locations(root=str(root), arch="x86_64") == [
        "https://m.example/alpine/v3.23/main/x86_64/APKINDEX.tar.gz",
        "https://m.example/alpine/v3.23/community/x86_64/APKINDEX.tar.gz",
        f"{root}/srv/x86_64/APKINDEX.tar.gz",
        f"{root}/srv/local/APKINDEX.tar.gz",
        "https://from-lib.example/a/x86_64/APKINDEX.tar.gz",
        "https://m.example/alpine/b/x86_64/APKINDEX.tar.gz",
        "https://m.example/alpine/edge/testing/x86_64/APKINDEX.tar.gz",  # tagged: last
    ]


# -- merged /usr ------------------------------------------------------------------


REAL_DB = SHARED / "installed" / "alpine-3.21-x86_64-php.installed"
needs_db = pytest.mark.skipif(not REAL_DB.is_file(), reason="../shared/alpine absent")


@needs_db
@pytest.mark.parametrize("layout", ["symlink-absolute", "symlink-relative", "usr-only"])
def test_usr_merged_root_reads_usr_lib_apk_db(tmp_path, layout):
    from rundeps.api import Sources, check_tree

    root = tmp_path / "root"
    (root / "usr/lib/apk/db").mkdir(parents=True)
    (root / "usr/lib/apk/db/installed").write_bytes(REAL_DB.read_bytes())
    if layout == "symlink-absolute":
        (root / "lib").symlink_to("/usr/lib")  # on the host that would be the host's /usr/lib
    elif layout == "symlink-relative":
        (root / "lib").symlink_to("usr/lib")
    (root / "usr/local").mkdir()
    res = check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), explicit_root=True)
    assert res.universe.installed is not None
    assert res.universe.package("php84") is not None


# -- provider order ---------------------------------------------------------------


def _repo(blocks, name, installed=False, tag=None):
    repo = Repository(parse_installed("\n".join(blocks)).packages, name=name, installed=installed)
    repo.tag = tag
    return repo


def _block(name, version, provides, k=None):
    return f"P:{name}\nV:{version}\nA:x86_64\np:{provides}\n" + (f"k:{k}\n" if k is not None else "") + "\n"


def test_provider_order_follows_apks_compare_providers():
    so = "so:libx.so.1"
    installed = _repo([_block("old-x", "1.0-r0", f"{so}=1.0")], "installed", installed=True)
    newer = _repo([_block("new-x", "2.0-r0", f"{so}=2.0", k=100)], "idx")
    assert Universe([installed, newer]).provider(so).name == "old-x"  # installed first
    tagged = _repo([_block("edge-x", "9.0-r0", f"{so}=9.0", k=900)], "edge", tag="edge")
    assert Universe([tagged, newer]).provider(so).name == "new-x"  # pinning before version
    low_k_new = _repo([_block("a-x", "3.0-r0", f"{so}=3.0", k=1)], "i1")
    high_k_old = _repo([_block("b-x", "2.0-r0", f"{so}=2.0", k=50)], "i2")
    assert Universe([high_k_old, low_k_new]).provider(so).name == "a-x"  # version before k:
    same1 = _repo([_block("c-x", "2.0-r0", f"{so}=2.0", k=1)], "i1")
    same2 = _repo([_block("d-x", "2.0-r0", f"{so}=2.0", k=5)], "i2")
    assert Universe([same1, same2]).provider(so).name == "d-x"  # k: before repository order
    e1 = _repo([_block("z-x", "2.0-r0", f"{so}=2.0")], "i1")
    e2 = _repo([_block("a-x", "2.0-r0", f"{so}=2.0")], "i2")
    assert Universe([e1, e2]).provider(so).name == "z-x"  # then the earlier repository
    # one package name in two versions: the principal name's latest version
    p1 = _repo([_block("x", "2.0-r0", "cmd:x")], "i1")
    p2 = _repo([_block("x", "2.0-r1", "cmd:x")], "i2")
    assert Universe([p1, p2]).provider("cmd:x").version == "2.0-r1"
    # unversioned provides of different names: k: before installed (apk's "upgrading" step)
    inst_sh = _repo([_block("busybox", "1.28-r0", "/bin/sh")], "installed", installed=True)
    binsh = _repo([_block("busybox-binsh", "1.36-r0", "/bin/sh", k=100)], "idx")
    assert Universe([inst_sh, binsh]).provider("/bin/sh").name == "busybox-binsh"


REAL = [
    ("alpine-3.21-x86_64-php", "3.20-main-x86_64"),
    ("alpine-3.8-aarch64-zerotier", "3.18-main-aarch64"),
]


def _real(db, idx):
    index = SHARED / "index" / idx / "APKINDEX.tar.gz"
    dbf = SHARED / "installed" / f"{db}.installed"
    if not index.is_file() or not dbf.is_file():
        pytest.skip("../shared/alpine absent")
    keys = load_keys([str(SHARED / "keys")])
    return parse_installed(dbf.read_text()), read_index(index.read_bytes(), keys, name=idx).repository


@pytest.mark.parametrize("db,idx", REAL)
def test_real_databases_installed_providers_win_over_newer_indexes(db, idx):
    # Every versioned dependency (so:, cmd:, pc:) of every installed package
    # is served by an installed package -- apk's own solution -- although
    # the index after it carries newer versions of many of those provides.
    installed, index = _real(db, idx)
    u = Universe([installed, index])
    checked = newer = 0
    for pkg in installed.packages:
        for atom in pkg.depends:
            if atom.conflict or not atom.name.startswith(("so:", "cmd:", "pc:")):
                continue
            got = u.provider(atom.name)
            assert got is not None and got.source == "installed", (pkg.name, atom.name, got)
            checked += 1
            inst_ver = dict((p.name, v) for p, v in installed.provides.get(atom.name, ()))
            if any(v and inst_ver and v != next(iter(inst_ver.values())) for _, v in index.provides.get(atom.name, ())):
                newer += 1
    assert checked > 50 and newer > 0


def test_real_index_multi_provider_choice_is_the_one_apk_installed():
    # The 3.21 php image: apk chose busybox-binsh for /bin/sh (k:100 over
    # dash-binsh 60, yash-binsh 50) and ifupdown-ng for ifupdown-any (k:900
    # over busybox-ifupdown 200). The 3.20 index alone gives the same choice.
    installed, index = _real(*REAL[0])
    u = Universe([index])
    for name in ("/bin/sh", "ifupdown-any"):
        apk_chose = {p.name for p, _ in installed.provides.get(name, ())}
        assert len({p.name for p, _ in index.provides[name]}) > 1
        assert {u.provider(name).name} == apk_chose

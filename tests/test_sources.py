"""Turning options into index locations."""

from __future__ import annotations

import pytest

from rundeps.errors import SourceError, UsageError
from rundeps.apk.repositories import (
    NamedIndexes,
    alpine_index_urls,
    index_locations,
    normalize_release,
    read_arch,
    read_repositories,
    repo_index_location,
)

CDN = "https://dl-cdn.alpinelinux.org/alpine"


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc" / "apk").mkdir(parents=True)
    (tmp_path / "etc" / "apk" / "arch").write_text("aarch64\n")
    return tmp_path


@pytest.mark.parametrize(
    "given,expected",
    [("3.20", "v3.20"), ("v3.20", "v3.20"), ("3.20.3", "v3.20"), ("V3.9", "v3.9"), ("edge", "edge"),
     (" latest-stable ", "latest-stable"), ("03.020", "v3.20")],
)
def test_normalize_release(given, expected):
    assert normalize_release(given) == expected


@pytest.mark.parametrize("bad", ["", "3", "three", "v3.20/../../x", "3.20-rc1", "edge2"])
def test_bad_release(bad):
    with pytest.raises(UsageError, match="give a release such as 3.20"):
        normalize_release(bad)


def test_alpine_urls():
    assert index_locations(NamedIndexes(alpine="3.20"), arch="x86_64") == [
        "https://dl-cdn.alpinelinux.org/alpine/v3.20/main/x86_64/APKINDEX.tar.gz",
        "https://dl-cdn.alpinelinux.org/alpine/v3.20/community/x86_64/APKINDEX.tar.gz",
    ]
    assert alpine_index_urls("edge", "riscv64", mirror="http://mirror.example/alpine/") == [
        "http://mirror.example/alpine/edge/main/riscv64/APKINDEX.tar.gz",
        "http://mirror.example/alpine/edge/community/riscv64/APKINDEX.tar.gz",
    ]


def test_alpine_arch_from_root(root):
    assert index_locations(NamedIndexes(alpine="v3.18"), root=str(root)) == [
        f"{CDN}/v3.18/main/aarch64/APKINDEX.tar.gz",
        f"{CDN}/v3.18/community/aarch64/APKINDEX.tar.gz",
    ]
    # --arch wins over the root's
    got = index_locations(NamedIndexes(alpine="v3.18"), root=str(root), arch="x86")
    assert got[0] == f"{CDN}/v3.18/main/x86/APKINDEX.tar.gz"


def test_arch_is_needed(tmp_path):
    with pytest.raises(UsageError, match="--alpine needs an architecture"):
        index_locations(NamedIndexes(alpine="3.20"))
    with pytest.raises(UsageError, match=r"--repo needs an architecture: give --arch \(.*etc/apk/arch is missing\)"):
        index_locations(NamedIndexes(repos=["https://r.example/x"]), root=str(tmp_path))


@pytest.mark.parametrize("bad", ["x86 64", "../x", "X86_64", "", "a" * 40])
def test_bad_arch(bad):
    with pytest.raises(UsageError, match="not an architecture name"):
        index_locations(NamedIndexes(alpine="3.20"), arch=bad)


def test_mirror_needs_alpine():
    with pytest.raises(UsageError, match="--mirror only applies with --alpine"):
        index_locations(NamedIndexes(mirror="https://m.example", indexes=["/x"]))


def test_mirror_scheme():
    with pytest.raises(UsageError, match="unsupported URL scheme 'ftp'"):
        index_locations(NamedIndexes(alpine="3.20", mirror="ftp://m.example/alpine"), arch="x86_64")


def test_repo_and_index_order_and_duplicates():
    locs = index_locations(
        NamedIndexes(
            indexes=["/tmp/a.tar.gz", "https://h.example/b/APKINDEX.tar.gz", "/tmp/a.tar.gz"],
            repos=["https://r.example/alpine/v3.20/testing/", "/srv/repo"],
            alpine="3.20",
        ),
        arch="x86_64",
    )
    assert locs == [
        "/tmp/a.tar.gz",
        "https://h.example/b/APKINDEX.tar.gz",
        "https://r.example/alpine/v3.20/testing/x86_64/APKINDEX.tar.gz",
        "/srv/repo/x86_64/APKINDEX.tar.gz",
        f"{CDN}/v3.20/main/x86_64/APKINDEX.tar.gz",
        f"{CDN}/v3.20/community/x86_64/APKINDEX.tar.gz",
    ]


def test_index_alone_needs_no_arch():
    assert index_locations(NamedIndexes(indexes=["x.tar.gz"])) == ["x.tar.gz"]


def test_nothing_named_and_no_root():
    assert index_locations() == []


def test_root_repositories(root):
    (root / "etc" / "apk" / "repositories").write_text(
        "# the official ones\n"
        "\n"
        "https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n"
        "@testing https://dl-cdn.alpinelinux.org/alpine/edge/testing\n"
        "   https://dl-cdn.alpinelinux.org/alpine/v3.20/community/   \n"
        "/media/cdrom/apks\n"
        "@lonely\n"
        "#https://commented.example/out\n"
    )
    (root / "etc" / "apk" / "repositories.d").mkdir()
    (root / "etc" / "apk" / "repositories.d" / "extra.list").write_text("https://extra.example/repo\n")
    (root / "etc" / "apk" / "repositories.d" / "ignored.txt").write_text("https://ignored.example/repo\n")
    assert index_locations(root=str(root)) == [
        f"{CDN}/v3.20/main/aarch64/APKINDEX.tar.gz",
        f"{CDN}/v3.20/community/aarch64/APKINDEX.tar.gz",
        f"{root}/media/cdrom/apks/aarch64/APKINDEX.tar.gz",
        "https://extra.example/repo/aarch64/APKINDEX.tar.gz",
        f"{CDN}/edge/testing/aarch64/APKINDEX.tar.gz",  # tagged: after all untagged ones
    ]
    lines = read_repositories(str(root))
    assert [(ln.tag, ln.origin) for ln in lines][:2] == [(None, "etc/apk/repositories:3"), ("testing", "etc/apk/repositories:4")]


def test_named_sources_replace_the_roots(root):
    (root / "etc" / "apk" / "repositories").write_text("https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n")
    assert index_locations(NamedIndexes(indexes=["/x.tar.gz"]), root=str(root)) == ["/x.tar.gz"]


def test_root_without_repositories(root):
    assert index_locations(root=str(root)) == []


def test_root_repositories_need_an_arch(tmp_path):
    (tmp_path / "etc" / "apk").mkdir(parents=True)
    (tmp_path / "etc" / "apk" / "repositories").write_text("https://r.example/main\n")
    with pytest.raises(UsageError, match="needs an architecture"):
        index_locations(root=str(tmp_path))
    assert index_locations(root=str(tmp_path), arch="x86_64") == ["https://r.example/main/x86_64/APKINDEX.tar.gz"]


def test_read_arch(tmp_path, root):
    assert read_arch(str(root)) == "aarch64"
    assert read_arch(str(tmp_path / "nothing")) is None
    assert read_arch(None) is None
    (root / "etc" / "apk" / "arch").write_text("")
    assert read_arch(str(root)) is None
    (root / "etc" / "apk" / "arch").write_text("x86_64 ; rm -rf /\n")
    with pytest.raises(SourceError, match="does not hold an architecture name"):
        read_arch(str(root))


def test_repo_index_location():
    assert repo_index_location("https://r.example/a///", "x86_64") == "https://r.example/a/x86_64/APKINDEX.tar.gz"
    with pytest.raises(UsageError, match="empty URL"):
        repo_index_location("  ", "x86_64")

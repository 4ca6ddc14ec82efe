"""Every reader of a root's own files goes through the root protocol
(rundeps.rootfs.root_files): the same real root file system, once as a
saved image read in memory (an ImageTree) and once unpacked into a host
folder, gives the same answers -- nothing of the image is written to disk.

The image is a real tar (a flat rootfs tar: one layer) holding an apk
installed database behind a merged-/usr ``lib -> usr/lib`` symlink, the
apk configuration, keys (one through an absolute symlink), a signed apk
cache index (tests/indexbuild.py) behind ``etc/apk/cache -> /var/cache/apk``,
a Python distribution with a RECORD and ctypes loads, and ld.so.conf-style
include files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import tarfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import indexbuild as ib  # noqa: E402

from rundeps.apk.fetch import FetchOptions, open_cached_copy  # noqa: E402
from rundeps.apk.imagecache import apk_cache_dir, cache_index_names, find_cached_index  # noqa: E402
from rundeps.apk.index import trusted_key_set  # noqa: E402
from rundeps.apk.model import Universe  # noqa: E402
from rundeps.apk.repositories import index_locations, read_arch, read_repositories, repository_files  # noqa: E402
from rundeps.apk.sizes import read_world  # noqa: E402
from rundeps.apk.sources import (IndexRequest, Sources, installed_database, load_database,  # noqa: E402
                                 load_universe, open_apk_cached, open_indexes)
from rundeps.diagnostics import Diagnostics  # noqa: E402
from rundeps.distributions import find_distributions, map_distributions  # noqa: E402
from rundeps.errors import SourceError  # noqa: E402
from rundeps.inputs.image import ImagePathError, open_image  # noqa: E402
from rundeps.loads.conditions import TreeFiles, import_conditions  # noqa: E402
from rundeps.loads.sourcefiles import scan_tree_sources  # noqa: E402
from rundeps.pipeline import system_libraries  # noqa: E402
from rundeps.resolve.fs import TreeFS  # noqa: E402
from rundeps.resolve.resolver import Resolver  # noqa: E402
from rundeps.rootfs import HostFiles, root_files, shown_path  # noqa: E402

KEY = "test@example.org-1.rsa.pub"
OTHER = "other@example.org-2.rsa.pub"
REPO = "http://rundeps-test.invalid/alpine/v3.99/main"
TESTING = "http://rundeps-test.invalid/alpine/edge/testing"
EXTRA = "http://rundeps-test.invalid/alpine/v3.99/extra"
MAIN_INDEX = f"{REPO}/x86_64/APKINDEX.tar.gz"
SITE = "/usr/lib/python3.12/site-packages"

DB = "\n".join([
    ib.package_block("musl", "1.2.5-r0", p="so:libc.musl-x86_64.so.1=1") + "F:lib\nR:ld-musl-x86_64.so.1\n",
    ib.package_block("zlib", "1.3.1-r1", D="so:libc.musl-x86_64.so.1", p="so:libz.so.1=1.3.1")
    + "F:usr/lib\nR:libz.so.1.3.1\nR:libz.so.1\n",
    ib.package_block("busybox", "1.36.1-r29", p="cmd:sh=1.36.1-r29"),
    ib.package_block(".build-deps", "20240101.000000", D="zlib"),
]) + "\n"

NATIVE = b"\x7fELF not really, but hashed"
INIT_PY = b"import ctypes\nfrom . import helpers\nlib = ctypes.CDLL('libz.so.1')\n"
HELPERS_PY = b"import ctypes\ntry:\n    ctypes.CDLL('libmagic.so.1')\nexcept OSError:\n    ctypes.CDLL('libmagic.so')\n"
LAZY_PY = b"import ctypes\nctypes.CDLL('libcairo.so.2')\n"
BIG_PY = b"import ctypes\nctypes.CDLL('libbig.so.1')\n" + b"#" * 5000 + b"\n"


def _record() -> bytes:
    digest = base64.urlsafe_b64encode(hashlib.sha256(NATIVE).digest()).rstrip(b"=").decode()
    rows = [f"pkg/_native.so,sha256={digest},{len(NATIVE)}", "pkg/__init__.py,,", "pkg-1.0.dist-info/RECORD,,"]
    return ("\n".join(rows) + "\n").encode()


def _specs(key, other_key):
    """(kind, in-root name without the leading /, data or target[, mode])."""
    cached = ib.make_index(ib.PACKAGES, key, KEY)
    cache_name = cache_index_names(MAIN_INDEX, REPO)[0]
    return [
        ("dir", "etc"), ("dir", "etc/apk"), ("dir", "etc/apk/keys"),
        ("file", "etc/apk/arch", b"x86_64\n"),
        ("file", "etc/apk/repositories", f"# main first\n{REPO}\n@testing {TESTING}\n".encode()),
        ("file", f"etc/apk/keys/{KEY}", key[1]),
        ("sym", f"etc/apk/keys/{OTHER}", f"/usr/share/apk/keys/{OTHER}"),
        ("file", "etc/apk/keys/.hidden.rsa.pub", key[1]),
        ("file", "etc/apk/world", b"busybox\nzlib>=1.3\n"),
        ("sym", "etc/apk/cache", "/var/cache/apk"),
        ("file", "etc/ld.so.conf", b"include ld.so.conf.d/*.conf\n"),
        ("dir", "etc/ld.so.conf.d"),
        ("file", "etc/ld.so.conf.d/a.conf", b"/opt/a\n"),
        ("file", "etc/ld.so.conf.d/b.conf", b"/opt/b\n"),
        ("file", "etc/ld.so.conf.d/notes.txt", b"no\n"),
        ("dir", "usr"), ("dir", "usr/lib"), ("sym", "lib", "usr/lib"),
        ("dir", "usr/lib/apk"), ("dir", "usr/lib/apk/db"),
        ("file", "usr/lib/apk/db/installed", DB.encode()),
        ("dir", "usr/lib/apk/repositories.d"),
        ("file", "usr/lib/apk/repositories.d/extra.list", f"{EXTRA}\n".encode()),
        ("file", "usr/lib/apk/repositories.d/.hidden.list", b"http://hidden.invalid/x\n"),
        ("file", "usr/lib/libz.so.1.3.1", b"\x7fELF zlib"),
        ("sym", "usr/lib/libz.so.1", "libz.so.1.3.1"),
        ("file", "usr/lib/ld-musl-x86_64.so.1", b"\x7fELF musl"),
        ("dir", "usr/share"), ("dir", "usr/share/apk"), ("dir", "usr/share/apk/keys"),
        ("file", f"usr/share/apk/keys/{OTHER}", other_key[1]),
        ("dir", "var"), ("dir", "var/cache"), ("dir", "var/cache/apk"),
        ("file", f"var/cache/apk/{cache_name}", cached),
        ("dir", "usr/lib/python3.12"), ("dir", SITE[1:]),
        ("dir", SITE[1:] + "/pkg"),
        ("file", SITE[1:] + "/pkg/__init__.py", INIT_PY),
        ("file", SITE[1:] + "/pkg/helpers.py", HELPERS_PY),
        ("file", SITE[1:] + "/pkg/lazy.py", LAZY_PY),
        ("file", SITE[1:] + "/pkg/big.py", BIG_PY),
        ("file", SITE[1:] + "/pkg/_native.so", NATIVE, 0o755),
        ("sym", SITE[1:] + "/pkg/linked.py", "/etc/apk/world"),
        ("dir", SITE[1:] + "/pkg/sub.py"),
        ("file", SITE[1:] + "/pkg/sub.py/inner.py", b"import ctypes\nctypes.CDLL('libinner.so.1')\n"),
        ("sym", SITE[1:] + "/pkg/elsewhere", "/usr/lib/python3.12/other"),
        ("dir", "usr/lib/python3.12/other"),
        ("file", "usr/lib/python3.12/other/hidden.py", b"import ctypes\nctypes.CDLL('libhidden.so.1')\n"),
        ("dir", SITE[1:] + "/pkg-1.0.dist-info"),
        ("file", SITE[1:] + "/pkg-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n"),
        ("file", SITE[1:] + "/pkg-1.0.dist-info/RECORD", _record()),
    ]


def _tar(path, specs):
    """A flat rootfs tar of ``specs`` (test_image's layer builder; a folder here is always 0o755)."""
    from test_image import layer_tar

    path.write_bytes(layer_tar([("dir", s[1], 0o755) if s[0] == "dir" else s for s in specs]))


@pytest.fixture(scope="module")
def roots(tmp_path_factory, key, other_key):
    """(host folder, ImageTree) of one root file system."""
    base = tmp_path_factory.mktemp("rootfiles")
    image = base / "rootfs.tar"
    _tar(image, _specs(key, other_key))
    folder = base / "root"
    folder.mkdir()
    with tarfile.open(image) as tar:
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extractall(folder, filter="fully_trusted")  # absolute symlinks kept as they are
        else:  # pragma: no cover
            tar.extractall(folder)
    tree = open_image(image)
    yield str(folder), tree
    tree.close()


# -- the protocol itself ----------------------------------------------------------


def test_root_files_and_shown_path(roots):
    folder, tree = roots
    assert isinstance(root_files(folder), HostFiles)
    assert root_files(tree) is tree
    assert shown_path(root_files(folder), "/etc/apk/arch") == os.path.join(folder, "etc", "apk", "arch")
    assert shown_path(tree, "/etc/apk/arch") == f"/etc/apk/arch in {tree.name}"
    for files in (root_files(folder), tree):
        assert files.resolve("/lib/apk/db/installed") == "/usr/lib/apk/db/installed"
        assert files.resolve("/etc/apk/cache") == "/var/cache/apk"
        assert files.listdir("/lib/apk") == ["db", "repositories.d"]
        with pytest.raises(OSError):
            files.read("/etc/apk/nothing")


# -- apk: database, repositories, arch, keys, apk cache, world -------------------


def test_installed_database(roots):
    folder, tree = roots
    assert installed_database(folder) == installed_database(tree) == "/usr/lib/apk/db/installed"
    host = load_database("/usr/lib/apk/db/installed", root_files(folder))
    image = load_database("/lib/apk/db/installed", tree)
    assert [p.name for p in host.packages] == [p.name for p in image.packages] == [
        "musl", "zlib", "busybox", ".build-deps"]
    assert load_database(os.path.join(folder, "usr/lib/apk/db/installed")).packages[1].name == "zlib"


def test_installed_database_messages(roots):
    folder, tree = roots
    with pytest.raises(SourceError, match=f"^no installed database at {folder}/nothing$"):
        load_database("/nothing", root_files(folder))
    with pytest.raises(SourceError, match=r"^cannot read installed database /nothing in .*rootfs\.tar: "):
        load_database("/nothing", tree)
    with pytest.raises(SourceError, match=r"/etc/apk/arch in .*rootfs\.tar holds no package"):
        load_database("/etc/apk/arch", tree)


def test_load_universe_reads_the_database(roots):
    folder, tree = roots
    names = []
    for root in (folder, tree):
        u = load_universe(root, Sources(offline=True, use_cache=False), "x86_64", Diagnostics(warning=pytest.fail),
                          explicit_root=True)
        names.append(sorted(p.name for p in u.installed.packages))
    assert names[0] == names[1] == [".build-deps", "busybox", "musl", "zlib"]


def test_arch_and_repositories(roots):
    folder, tree = roots
    assert read_arch(folder) == read_arch(tree) == "x86_64"
    assert repository_files(folder) == repository_files(tree) == [
        "/etc/apk/repositories", "/lib/apk/repositories.d/extra.list"]
    host, image = read_repositories(folder, "x86_64"), read_repositories(tree, "x86_64")
    assert host == image
    assert [(ln.url, ln.tag, ln.origin) for ln in host] == [
        (REPO, None, "etc/apk/repositories:2"), (TESTING, "testing", "etc/apk/repositories:3"),
        (EXTRA, None, "lib/apk/repositories.d/extra.list:1")]
    tags_host, tags_image = {}, {}
    locs = index_locations(root=folder, tags=tags_host)
    assert locs == index_locations(root=tree, tags=tags_image)
    assert locs == [MAIN_INDEX, f"{EXTRA}/x86_64/APKINDEX.tar.gz", f"{TESTING}/x86_64/APKINDEX.tar.gz"]
    assert tags_host == tags_image == {f"{TESTING}/x86_64/APKINDEX.tar.gz": "testing"}


def test_a_local_repository_line_inside_an_image_is_skipped(tmp_path):
    image = tmp_path / "local.tar"
    _tar(image, [("dir", "etc"), ("dir", "etc/apk"), ("file", "etc/apk/arch", b"x86_64\n"),
                 ("file", "etc/apk/repositories", f"/media/cdrom/apks\n{REPO}\n".encode())])
    folder = tmp_path / "root"
    with tarfile.open(image) as tar:
        tar.extractall(folder)
    assert index_locations(root=str(folder)) == [f"{folder}/media/cdrom/apks/x86_64/APKINDEX.tar.gz", MAIN_INDEX]
    warnings = []
    with open_image(image) as tree:
        assert index_locations(root=tree, diag=Diagnostics(warning=warnings.append)) == [MAIN_INDEX]
    assert len(warnings) == 1 and "/media/cdrom/apks is a folder inside the image" in warnings[0]


def test_missing_arch_is_named(tmp_path):
    image = tmp_path / "bare.tar"
    _tar(image, [("dir", "etc"), ("dir", "etc/apk"), ("file", "etc/apk/repositories", f"{REPO}\n".encode())])
    from rundeps.errors import UsageError

    with open_image(image) as tree:
        assert read_arch(tree) is None
        with pytest.raises(UsageError, match=r"\(/etc/apk/arch in .*bare\.tar is missing\)"):
            index_locations(root=tree)


def test_trusted_keys(roots, key, other_key):
    folder, tree = roots
    host, image = trusted_key_set(folder, "x86_64"), trusted_key_set(tree, "x86_64")
    assert dict(host) == dict(image)
    assert host[KEY] == key[1] and host[OTHER] == other_key[1]  # the absolute symlink read inside the root
    assert ".hidden.rsa.pub" not in host
    assert host.paths[KEY] == os.path.join(folder, "etc/apk/keys", KEY)
    assert image.paths[KEY] == f"/etc/apk/keys/{KEY} in {tree.name}"
    assert host.dirs[0] == os.path.join(folder, "etc/apk/keys") and image.dirs[0].endswith(tree.name)


def test_apk_cache(roots, key):
    folder, tree = roots
    assert apk_cache_dir(folder) == apk_cache_dir(tree) == "/var/cache/apk"
    found = find_cached_index(folder, MAIN_INDEX, arch="x86_64")
    assert found == find_cached_index(tree, MAIN_INDEX, arch="x86_64")
    assert found.startswith("/var/cache/apk/APKINDEX.")
    keys = {KEY: key[1]}
    names = []
    for files in (root_files(folder), tree):
        index = open_cached_copy(found, MAIN_INDEX, keys, FetchOptions(), files=files)
        names.append([p.name for p in index.repository.packages])
    assert names[0] == names[1] == ["musl", "zlib", "libcrypto3", "busybox"]


def test_apk_cache_signature_is_checked_alike(roots, other_key):
    folder, tree = roots
    found = find_cached_index(tree, MAIN_INDEX, arch="x86_64")
    errors = []
    for files in (root_files(folder), tree):
        with pytest.raises(SourceError) as err:
            open_cached_copy(found, MAIN_INDEX, {OTHER: other_key[1]}, FetchOptions(), files=files)
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_open_indexes_uses_the_image_cache_offline(roots):
    folder, tree = roots
    sources = Sources(offline=True, use_cache=False)
    got = []
    for root in (folder, tree):
        warnings, infos = [], []
        locs = index_locations(root=root)
        diag = Diagnostics(warning=warnings.append, info=infos.append)
        indexes = open_indexes(locs, IndexRequest(root, "x86_64", sources, diag), tolerant=True)
        got.append(([p.name for i in indexes for p in i.repository.packages], infos,
                    [w.replace(tree.name, "ROOT").replace(folder, "ROOT") for w in warnings]))
        index = open_apk_cached(MAIN_INDEX, IndexRequest(root, "x86_64", sources, Diagnostics(warning=pytest.fail)),
                                trusted_key_set(root, "x86_64"), None)
        assert [p.name for p in index.repository.packages][:2] == ["musl", "zlib"]
    assert got[0] == got[1]
    assert got[0][0] == ["musl", "zlib", "libcrypto3", "busybox"]
    cached = find_cached_index(tree, MAIN_INDEX, arch="x86_64")
    assert got[0][1] == [f"{MAIN_INDEX}: using the image's apk cache {cached}"]
    assert len(got[0][2]) == 2 and all(w.startswith("skipped a repository of ROOT: ") for w in got[0][2])


def test_world(roots):
    folder, tree = roots
    assert read_world(folder) == read_world(tree) == ["busybox", "zlib>=1.3"]


# -- distributions, Python sources, library folders, ld.so.conf -------------------


def test_distributions(roots):
    folder, tree = roots
    native = f"{SITE}/pkg/_native.so"
    maps = [map_distributions(root, [native, "/usr/lib/libz.so.1.3.1"], extra_paths=[f"{SITE}/pkg/__init__.py"])
            for root in (folder, tree)]
    for m in maps:
        assert [(d.name, d.version, d.kind, d.metadata, d.files) for d in m.distributions] == [
            ("pkg", "1.0", "dist-info", f"{SITE}/pkg-1.0.dist-info", [native])]
        assert [d.name for d in m.owners[native]] == ["pkg"]
        assert m.unowned == ["/usr/lib/libz.so.1.3.1"]
    assert [(d.name, d.version, d.kind, d.metadata, d.files) for d in maps[0].distributions] == \
        [(d.name, d.version, d.kind, d.metadata, d.files) for d in maps[1].distributions]
    # through the merged-/usr symlink: lib/python3.12 is the same folder
    for root in (folder, tree):
        found = find_distributions(root, ["/lib/python3.12/site-packages/pkg/_native.so"])
        assert [(d.name, d.metadata) for d, _ in found] == [("pkg", f"{SITE}/pkg-1.0.dist-info")]


def test_distribution_hash_decides_between_claims(tmp_path):
    """Two RECORDs claim one file: the recorded hash, read through the protocol, decides."""
    good = base64.urlsafe_b64encode(hashlib.sha256(NATIVE).digest()).rstrip(b"=").decode()
    specs = [("dir", "site"), ("dir", "site/pkg"), ("file", "site/pkg/_native.so", NATIVE)]
    for name, digest in (("a", good), ("b", "X" * 43)):
        specs += [("dir", f"site/{name}-1.0.dist-info"),
                  ("file", f"site/{name}-1.0.dist-info/METADATA", f"Name: {name}\nVersion: 1.0\n".encode()),
                  ("file", f"site/{name}-1.0.dist-info/RECORD", f"pkg/_native.so,sha256={digest},1\n".encode())]
    image = tmp_path / "two.tar"
    _tar(image, specs)
    folder = tmp_path / "root"
    with tarfile.open(image) as tar:
        tar.extractall(folder)
    with open_image(image) as tree:
        for root in (str(folder), tree):
            m = map_distributions(root, ["/site/pkg/_native.so"])
            assert [d.name for d in m.owners["/site/pkg/_native.so"]] == ["a"]


def test_scan_tree_sources(roots):
    folder, tree = roots
    results = []
    for root in (folder, tree):
        problems = []
        found = scan_tree_sources(["/usr/lib/python3.12"], root, max_size=1000,
                                  on_problem=lambda path, msg: problems.append((path, msg)))
        results.append(([(f.name, f.path, f.line, f.group) for f in found], problems))
        # the merged-/usr path keeps the path as given
        via_lib = scan_tree_sources(["/lib/python3.12/site-packages/pkg/lazy.py"], root)
        assert [(f.name, f.path) for f in via_lib] == [("libcairo.so.2", "/lib/python3.12/site-packages/pkg/lazy.py")]
        assert scan_tree_sources([f"{SITE}/pkg/linked.py"], root) == []  # a symlink given by name
        assert scan_tree_sources([f"{SITE}/pkg/elsewhere"], root) == []  # a symlinked folder
    assert results[0] == results[1]
    found, problems = results[0]
    assert [(name, path) for name, path, _, _ in found] == [
        ("libhidden.so.1", "/usr/lib/python3.12/other/hidden.py"),  # "other" before "site-packages"
        ("libz.so.1", f"{SITE}/pkg/__init__.py"),
        ("libmagic.so.1", f"{SITE}/pkg/helpers.py"),
        ("libmagic.so", f"{SITE}/pkg/helpers.py"),
        ("libcairo.so.2", f"{SITE}/pkg/lazy.py"),
        ("libinner.so.1", f"{SITE}/pkg/sub.py/inner.py"),  # a folder's files before its sub-folders
    ]
    assert problems == [(f"{SITE}/pkg/big.py", "skipped: larger than 1000 bytes")]


def test_tree_files(roots):
    folder, tree = roots
    for root in (folder, tree):
        files = TreeFiles(root)
        assert f"{SITE}/pkg/__init__.py" in files
        assert "/lib/python3.12/site-packages/pkg/__init__.py" in files  # folders followed in the root
        assert f"{SITE}/pkg/linked.py" not in files  # the last part is not followed
        assert f"{SITE}/pkg/missing.py" not in files
        assert f"{SITE}/pkg" not in files
        assert files.read(f"{SITE}/pkg/helpers.py") == HELPERS_PY.decode()
        assert files.read(f"{SITE}/pkg/linked.py") is None
        assert TreeFiles(root, max_size=100).read(f"{SITE}/pkg/big.py") is None
    paths = sorted({f.path for f in scan_tree_sources([SITE], folder)})
    conditions = []
    for root in (folder, tree):
        files = TreeFiles(root)
        conditions.append(import_conditions(paths, files, files.read))
    assert conditions[0] == conditions[1] == {f"{SITE}/pkg/lazy.py": "pkg.lazy", f"{SITE}/pkg/big.py": "pkg.big"}


class _Resolving:
    """What system_libraries asks of a resolver."""

    def __init__(self, universe):
        self.universe = universe

    def system_dirs(self):
        return ("/lib", "/usr/local/lib", "/usr/lib")


def test_system_libraries(roots):
    folder, tree = roots
    universe = Universe([load_database("/lib/apk/db/installed", tree)])
    host = system_libraries(folder, _Resolving(universe))
    assert host == system_libraries(tree, _Resolving(universe))
    # /lib is usr/lib inside the root (the host's /lib is never listed)
    assert host == [("/lib/libz.so.1", None), ("/lib/libz.so.1.3.1", None),
                    ("/usr/lib/libz.so.1", "zlib"), ("/usr/lib/libz.so.1.3.1", "zlib")]


class _ImageOnlyFS:
    """A Tree with no host folder: only the protocol (``files``)."""

    root = None

    def __init__(self, files):
        self.files = files


def test_ld_so_conf_include_globs(roots):
    folder, tree = roots
    got = [Resolver(Universe(), fs, arch="x86_64")._glob("/etc/ld.so.conf.d/*.conf")
           for fs in (TreeFS(folder), _ImageOnlyFS(tree))]
    assert got[0] == got[1] == ["/etc/ld.so.conf.d/a.conf", "/etc/ld.so.conf.d/b.conf"]
    assert TreeFS(folder).files.name == folder
    assert Resolver(Universe(), _ImageOnlyFS(None))._glob("/etc/*.conf") == []


def test_image_misses_are_os_errors(roots):
    _folder, tree = roots
    with pytest.raises(ImagePathError):
        tree.read("/etc/apk")
    assert read_world(tree) is not None

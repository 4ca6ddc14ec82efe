"""Symbol facts in the walk, the per-file cache and the resolver's file systems."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from rundeps.diagnostics import Diagnostics
from rundeps.inputs.filecache import FileCache
from rundeps.resolve import TreeFS
from rundeps.elf import read_symbols
from rundeps.inputs.walk import scan

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed")


def build(tmp_path, name, code, *args):
    src = tmp_path / (name + ".c")
    src.write_text(code)
    out = tmp_path / name
    subprocess.run(["gcc", "-shared", "-fPIC", "-nostdlib", "-o", str(out), str(src), *args], check=True)
    return out


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    lib = root / "usr" / "lib"
    lib.mkdir(parents=True)
    build(lib, "liba.so", "extern int needs_b(void); int a_func(void) { return needs_b(); }")
    build(lib, "libb.so", "int needs_b(void) { return 2; } extern int weak_x(void) __attribute__((weak));"
                          " int b2(void) { return weak_x ? weak_x() : 0; }")
    (lib / "notes.txt").write_text("not ELF")
    outside = root / "opt"
    outside.mkdir()
    build(outside, "libout.so", "int out_func(void) { return 7; }")
    return root


def test_scan_attaches_symbols_only_when_asked(tree):
    plain = scan(["/usr/lib"], root=str(tree))
    assert [i.load_symbols() for i in plain.items] == [None, None]
    res = scan(["/usr/lib"], root=str(tree), symbols=True)
    by = {i.path: i.load_symbols() for i in res.items}
    assert by["/usr/lib/liba.so"].undefined == {"needs_b": False}
    assert "needs_b" in by["/usr/lib/libb.so"].defined
    assert by["/usr/lib/libb.so"].undefined == {"weak_x": True}
    for i in res.items:
        assert i.load_symbols() == read_symbols(i.host_path)


def test_with_a_cache_each_file_is_read_when_its_facts_are_first_asked_for(tree, tmp_path, monkeypatch):
    """With a cache, the walk reads no symbol table: an item's facts are
    read by its first ``load_symbols`` (the bytes of the file then), a file
    that cannot be read is reported then, and nothing of them is kept in
    the cache folder."""
    import rundeps.inputs.walk as walk

    cache_dir = tmp_path / "cache"
    read = []
    real = walk._read_one
    monkeypatch.setattr(walk, "_read_one", lambda item, reader: read.append(item.path) or real(item, reader))
    errors = []
    res = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True,
               diag=Diagnostics(file_error=lambda p, r: errors.append((p, r))))
    assert read == []
    liba, libb = res.items
    assert liba.symbols_key == tuple(getattr(os.lstat(liba.host_path), a)
                                     for a in ("st_dev", "st_ino", "st_size", "st_mtime_ns"))
    assert libb.load_symbols() == read_symbols(libb.host_path)
    assert read == ["/usr/lib/libb.so"]
    assert libb.load_symbols() is libb.load_symbols() and read == ["/usr/lib/libb.so"]  # once
    os.unlink(liba.host_path)
    assert liba.load_symbols() is None and read == ["/usr/lib/libb.so", "/usr/lib/liba.so"]
    assert [p for p, _ in errors] == ["/usr/lib/liba.so"]
    assert sorted(n.rsplit(".", 1)[1] for n in os.listdir(cache_dir / "filecache")) == ["v3"]  # the ELF facts only


def test_a_repeat_scan_reads_the_changed_file_again(tree, tmp_path):
    cache_dir = tmp_path / "cache"
    lib = tree / "usr" / "lib" / "liba.so"
    first = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    assert first.items[0].load_symbols().undefined == {"needs_b": False}
    build(lib.parent, "liba.so", "extern int needs_c(void); int a_func(void) { return needs_c(); }")
    second = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    assert second.items[0].load_symbols().undefined == {"needs_c": False}
    assert second.items[0].load_symbols() == read_symbols(lib)


def test_treefs_symbols_outside_the_scanned_paths_are_memoised(tree):
    fs = TreeFS(str(tree))
    facts = fs.symbols("/opt/libout.so")
    assert "out_func" in facts.defined
    os.unlink(tree / "opt" / "libout.so")
    assert fs.symbols("/opt/libout.so") is facts  # memoised: not read again
    assert fs.symbols("/opt/missing.so") is None
    res = scan(["/usr/lib"], root=str(tree), symbols=True)
    fs2 = TreeFS(str(tree))
    fs2.known_symbols({i.path: i.load_symbols() for i in res.items})
    assert fs2.symbols("/usr/lib/liba.so") is res.items[0].load_symbols()


def test_the_symbol_facts_an_earlier_version_kept_are_removed(tree, tmp_path):
    """Earlier versions kept each scanned top's symbol facts in a ``.s3``
    file of the cache folder; the next scan that writes the top's entry
    removes it (and no other top's)."""
    import zlib

    cache_dir = tmp_path / "cache"
    fc = FileCache(cache_dir)

    def old_file(top):
        key = b"symbols\x003\x00%s\x00%s" % (os.fsencode(str(tree)), os.fsencode(top))
        return cache_dir / "filecache" / ("%08x%08x.s3" % (zlib.crc32(key), zlib.adler32(key)))

    mine, other = old_file("/usr/lib"), old_file("/opt")
    for path in (mine, other):
        path.write_bytes(b"RDSY\x03" + b"\0" * 64)
    scan(["/usr/lib"], root=str(tree), cache=fc, symbols=True)
    assert not mine.exists() and other.exists()

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
from rundeps.inputs.filecache import SYMBOLS_VERSION, VERDICTS_VERSION, _SYM_HEADER as SYM_HEADER, _VERDICTS_HEADER as VERDICTS_HEADER  # noqa: E501

S_EXT = ".s%d" % SYMBOLS_VERSION
B_EXT = ".b%d" % VERDICTS_VERSION

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


def test_repeat_run_reads_no_symbol_table(tree, tmp_path):
    """The second run's facts come from the cache: the file's bytes are
    replaced (same size, same mtime, same inode), so reading it again would
    give other facts."""
    cache_dir = tmp_path / "cache"
    first = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    lib = tree / "usr" / "lib" / "liba.so"
    want = {i.path: i.load_symbols() for i in first.items}
    st = os.stat(lib)
    data = lib.read_bytes()
    with open(lib, "r+b") as f:  # same inode; same size
        f.write(data[:64] + bytes(len(data) - 64))
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert read_symbols(lib) != want["/usr/lib/liba.so"]  # the file really reads differently now
    # (the ELF facts also come from the cache: the walk opens no file)
    second = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    assert {i.path: i.load_symbols() for i in second.items} == want
    # A changed mtime is a miss: the file is read again.
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    assert {i.path: i.load_symbols() for i in third.items}.get("/usr/lib/liba.so") != want["/usr/lib/liba.so"]


def test_cached_symbols_load_when_first_read(tree, tmp_path):
    """With a cache, a scan's symbol facts are loaded (and written) when the
    first item's ``symbols`` is read: a corrupt symbols file is only noticed then."""
    cache_dir = tmp_path / "cache"
    first = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    assert not any(n.endswith(S_EXT) for n in os.listdir(cache_dir / "filecache"))
    want = {i.path: i.load_symbols() for i in first.items}
    (sym_file,) = [p for p in (cache_dir / "filecache").iterdir() if p.name.endswith(S_EXT)]
    sym_file.write_bytes(SYM_HEADER + b"garbage-garbage")
    warnings = []
    second = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir, Diagnostics(warning=warnings.append)), symbols=True)
    assert warnings == []
    assert all(i.symbols_key == tuple(getattr(os.lstat(i.host_path), a) for a in
                                      ("st_dev", "st_ino", "st_size", "st_mtime_ns")) for i in second.items)
    assert {i.path: i.load_symbols() for i in second.items} == want
    assert any("corrupt" in w for w in warnings)


def test_scan_without_symbols_keeps_the_cached_symbols(tree, tmp_path):
    cache_dir = tmp_path / "cache"
    res = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    assert all(i.load_symbols() is not None for i in res.items)  # read: loaded and written
    names = set(os.listdir(cache_dir / "filecache"))
    scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir))
    assert set(os.listdir(cache_dir / "filecache")) == names
    assert any(n.endswith(S_EXT) for n in names)


def test_corrupt_symbols_cache_is_dropped_with_a_warning(tree, tmp_path):
    cache_dir = tmp_path / "cache"
    first = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    assert all(i.load_symbols() is not None for i in first.items)
    (sym_file,) = [p for p in (cache_dir / "filecache").iterdir() if p.name.endswith(S_EXT)]
    blob = bytearray(sym_file.read_bytes())
    blob[-3] ^= 0xFF
    sym_file.write_bytes(bytes(blob))
    warnings = []
    res = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir, Diagnostics(warning=warnings.append)), symbols=True)
    for i in res.items:
        assert i.load_symbols() == read_symbols(i.host_path)
    assert any("corrupt" in w for w in warnings)


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


def test_cached_facts_are_decoded_only_when_used(tree, tmp_path):
    cache_dir = tmp_path / "cache"
    first = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    assert first.items[0].load_symbols() is not None  # read: loaded and written
    second = scan(["/usr/lib"], root=str(tree), cache=FileCache(cache_dir), symbols=True)
    facts = second.items[0].load_symbols()
    with pytest.raises(AttributeError):
        object.__getattribute__(facts, "defined")  # not decoded by the scan
    assert facts == first.items[0].load_symbols()  # decoded on use
    assert object.__getattribute__(facts, "defined") == first.items[0].load_symbols().defined

"""Symbol facts read during the walk by a forked child
(:class:`rundeps.inputs.forked.Prefetch`): the same facts as one process
reads, copies shared only when their bytes are the same, a relocation that
refuses the load found in a look-alike "copy", and a child that dies
leaving its files to the parent.

The fixtures are real objects built with Debian's musl-gcc; the thresholds
are lowered so that a small tree is shared with the child.
"""

import os
import shutil

import pytest

from bindbuild import build_c, requires_musl
from rundeps.elf import read_symbols
from rundeps.inputs.walk import scan

pytestmark = [
    requires_musl,
    pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(os, "memfd_create"),
                       reason="the child needs fork and memfd_create"),
]

IFUNC = r"""
static int impl(void) { return 1; }
static void *resolver(void) { return (void *)impl; }
static int local_ifunc(void) __attribute__((ifunc("resolver")));
int (*volatile fp)(void) = local_ifunc;
int call(void) { return local_ifunc() + fp(); }
"""
R_X86_64_RELATIVE, R_X86_64_IRELATIVE = 8, 37


@pytest.fixture
def lowered(monkeypatch):
    """Thresholds low enough for a test tree, and a count of the forks.
    The check for other threads is waived: another test of the session
    may have left one running (the child only reads files and pipes)."""
    import rundeps.inputs.forked as forked

    monkeypatch.setattr(forked, "PARALLEL_MIN_FILES", 2)
    monkeypatch.setattr(forked, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(forked, "can_fork", lambda: True)
    forks = []
    real_fork = os.fork

    def counting_fork():
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    return forks


def _many(root, n=30):
    for i in range(n):
        build_c(root / "usr/local/lib/many", f"libm{i}.so", f"int f{i}(void){{return {i};}} int g(void);"
                f" int h{i}(void){{return g();}}", soname=f"libm{i}.so")


def _irelative_to_relative(path):
    """Rewrite the R_X86_64_IRELATIVE relocations of ``path`` as RELATIVE
    ones in place (same size, same sonames: a look-alike that loads)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        offsets = []
        for sec in elf.iter_sections():
            if sec.header.sh_type != "SHT_RELA":
                continue
            for i, rel in enumerate(sec.iter_relocations()):
                if rel["r_info_type"] == R_X86_64_IRELATIVE:
                    offsets.append(sec.header.sh_offset + i * sec.header.sh_entsize + 8)  # r_info
    assert offsets, "no IRELATIVE relocation to rewrite"
    data = bytearray(path.read_bytes())
    for off in offsets:
        data[off:off + 8] = R_X86_64_RELATIVE.to_bytes(8, "little")
    path.write_bytes(bytes(data))


def _facts(res):
    return {i.path: i.load_symbols() for i in res.items}


def test_the_child_reads_during_the_walk_and_gives_the_same_facts(tmp_path, lowered):
    root = tmp_path / "root"
    _many(root)
    one = scan(["/usr/local"], root=str(root), symbols=True, jobs=1)
    assert not lowered
    two = scan(["/usr/local"], root=str(root), symbols=True, jobs=2)
    assert lowered, "the child was not used"
    assert _facts(one) == _facts(two)
    assert all(f is not None for f in _facts(two).values())


def test_a_refusing_relocation_is_found_in_a_look_alike_copy(tmp_path, lowered):
    """Two files with the same sonames and size, one with an IRELATIVE
    relocation (musl refuses the load) and one where it is RELATIVE: the
    one walked later is no copy of the first, and its IRELATIVE is found;
    a true copy shares the first's facts, IRELATIVE included."""
    root = tmp_path / "root"
    _many(root)
    lib = root / "usr/local/lib"
    real = build_c(lib / "b", "libif.so.1", IFUNC, soname="libif.so.1")
    (lib / "a").mkdir()
    shutil.copyfile(real, lib / "a/libif.so.1")
    _irelative_to_relative(lib / "a/libif.so.1")  # walked first: the one queued
    (lib / "c").mkdir()
    shutil.copyfile(real, lib / "c/libif.so.1")  # a true copy of b
    assert (lib / "a/libif.so.1").stat().st_size == real.stat().st_size
    res = scan(["/usr/local"], root=str(root), symbols=True, jobs=2)
    assert lowered, "the child was not used"
    got = _facts(res)
    a, b, c = (got[f"/usr/local/lib/{d}/libif.so.1"] for d in "abc")
    assert R_X86_64_IRELATIVE not in a.bad_relocs
    assert b.bad_relocs == {R_X86_64_IRELATIVE}
    assert c == b and c.bad_relocs == {R_X86_64_IRELATIVE}
    for item in res.items:
        assert item.load_symbols() == read_symbols(item.host_path), item.path


def test_copies_queued_once_share_the_facts(tmp_path, lowered):
    root = tmp_path / "root"
    _many(root)
    lib = root / "usr/local/lib"
    first = build_c(lib / "a", "libz.so.1", "int f_aaaa(void){return 1;}", soname="libz.so.1")
    for sub in ("c", "d"):
        (lib / sub).mkdir()
        shutil.copyfile(first, lib / sub / "libz.so.1")
    got = _facts(scan(["/usr/local"], root=str(root), symbols=True, jobs=2))
    a, c, d = (got[f"/usr/local/lib/{s}/libz.so.1"] for s in "acd")
    assert "f_aaaa" in a.defined
    assert c is a and d is a


def test_a_child_that_dies_leaves_its_files_to_the_parent(tmp_path, lowered, monkeypatch):
    """Fault injection: the child exits at its third file, with two read
    and nothing sent; the files it took are read again by the parent."""
    import rundeps.inputs.walk as walk

    root = tmp_path / "root"
    _many(root)
    one = scan(["/usr/local"], root=str(root), symbols=True, jobs=1)
    parent = os.getpid()
    real = walk._read_recorded
    count = []

    def read(host_path):
        if os.getpid() != parent:
            count.append(1)
            if len(count) > 2:
                os._exit(3)
        return real(host_path)

    monkeypatch.setattr(walk, "_read_recorded", read)
    two = scan(["/usr/local"], root=str(root), symbols=True, jobs=2)
    assert lowered, "the child was not used"
    assert _facts(one) == _facts(two)
    assert all(f is not None for f in _facts(two).values())


def test_with_a_cache_the_child_is_waited_for_at_the_first_load(tmp_path, lowered):
    from rundeps.inputs.filecache import FileCache

    root = tmp_path / "root"
    _many(root)
    one = scan(["/usr/local"], root=str(root), symbols=True, jobs=1)
    cache = FileCache.open(str(tmp_path / "cache"))
    two = scan(["/usr/local"], root=str(root), symbols=True, jobs=2, cache=cache)
    assert lowered, "the child was not used"
    assert _facts(one) == _facts(two)
    forks = len(lowered)
    three = scan(["/usr/local"], root=str(root), symbols=True, jobs=2, cache=cache)  # warm: nothing read
    assert _facts(one) == _facts(three)
    assert len(lowered) == forks


def test_with_a_cache_each_file_is_taken_as_soon_as_it_is_read(tmp_path, lowered, monkeypatch):
    """Binding need not wait for the whole child: the child stalls on the
    first file it takes, and every other file's facts are had at once (this
    process reads them itself) while the child is still alive; the stalled
    file's come when the child has read it."""
    import time

    import rundeps.inputs.walk as walk
    from rundeps.inputs.filecache import FileCache

    root = tmp_path / "root"
    _many(root)
    one = scan(["/usr/local"], root=str(root), symbols=True, jobs=1)
    parent = os.getpid()
    real = walk._read_recorded
    stalled = tmp_path / "stalled"

    def read(host_path):
        if os.getpid() != parent and not stalled.exists():
            stalled.write_text(host_path)
            time.sleep(3)
        return real(host_path)

    monkeypatch.setattr(walk, "_read_recorded", read)
    two = scan(["/usr/local"], root=str(root), symbols=True, jobs=2, cache=FileCache.open(str(tmp_path / "cache")))
    assert lowered, "the child was not used"
    deadline = time.monotonic() + 10
    while not stalled.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    slow = stalled.read_text()
    start = time.monotonic()
    others = {i.path: i.load_symbols() for i in two.items if i.host_path != slow}
    assert time.monotonic() - start < 2, "waited for the child"
    assert len(others) == len(two.items) - 1
    (last,) = [i for i in two.items if i.host_path == slow]
    assert last.load_symbols() is not None
    assert _facts(one) == _facts(two)


def test_a_walk_that_fails_stops_the_child(tmp_path, lowered, monkeypatch):
    """An error in the walk after the child started: the child is stopped
    and waited for, and the error propagates."""
    import rundeps.inputs.forked as forked
    import rundeps.inputs.walk as walk

    root = tmp_path / "root"
    _many(root)
    started = []
    real_start = forked.Prefetch._start

    def start(self):
        real_start(self)
        started.append(self)

    def boom(self, path, value):
        if started:
            raise RuntimeError("boom")

    monkeypatch.setattr(forked.Prefetch, "_start", start)
    monkeypatch.setattr(walk._Walker, "_record", boom)
    with pytest.raises(RuntimeError):
        scan(["/usr/local"], root=str(root), symbols=True, jobs=2)
    assert started and started[0].pid == 0 and not started[0].fds

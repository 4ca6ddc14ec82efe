"""Wheel members are streamed in bounded memory; their facts (ELF and
symbols) are the same as the extracted file's."""

from __future__ import annotations

import tracemalloc

import pytest

import rundeps.inputs.wheel as wheel
import rundeps.inputs.wheelzip as wheelzip
from rundeps.elf import read_elf_path
from rundeps.elf import read_symbols
from rundeps.inputs.wheel import WheelLimits, scan_wheel

from wheelbuild import compile_so, gcc_available, make_wheel

pytestmark = pytest.mark.skipif(not gcc_available(), reason="gcc is needed")

TAG = "cp312-cp312-musllinux_1_2_x86_64"
SRC = ("extern int needs_this(int); extern int maybe(int) __attribute__((weak));\n"
       "int exported(int x) { return needs_this(x) + (maybe ? maybe(x) : 0); }\n")


@pytest.fixture
def lib(tmp_path):
    return compile_so(tmp_path / "build", "libx.so", SRC, soname="libx.so")


def _wheel(tmp_path, data, name="pkg/_x.cpython-312-x86_64-linux-musl.so"):
    return make_wheel(tmp_path / "dist", "pkg", "1.0", [TAG], {name: data})


def test_member_facts_equal_the_files(tmp_path, lib):
    ws = scan_wheel(str(_wheel(tmp_path, lib.read_bytes())), symbols=True)
    (item,) = ws.items
    assert item.info == read_elf_path(lib)
    assert item.symbols == read_symbols(lib)
    assert item.symbols.strong_undefined == {"needs_this"} and item.symbols.undefined["maybe"] is True
    assert ws.symbols("/pkg/_x.cpython-312-x86_64-linux-musl.so") is item.symbols
    # Without symbols=True none are read.
    assert scan_wheel(str(_wheel(tmp_path, lib.read_bytes()))).items[0].symbols is None


def test_a_large_member_is_never_held_whole(tmp_path, lib):
    """64 MB past the end of the object's segments: a reader that
    decompressed the member whole would allocate all of it."""
    data = lib.read_bytes() + bytes(64 * 1024 * 1024)
    path = _wheel(tmp_path, data)
    del data
    limits = WheelLimits(max_ratio=1e9)
    tracemalloc.start()
    try:
        ws = scan_wheel(str(path), symbols=True, limits=limits)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ws.items[0].symbols == read_symbols(lib)
    assert peak < 16 * 1024 * 1024, peak


def test_tables_outside_what_was_kept_are_read_through_a_temporary_file(tmp_path, lib, monkeypatch):
    monkeypatch.setattr(wheelzip, "_CHUNK", 512)
    monkeypatch.setattr(wheelzip, "PREFIX_CAP", 0)
    spooled = []
    real = wheelzip._spooled
    monkeypatch.setattr(wheelzip, "_spooled", lambda *a: spooled.append(1) or real(*a))
    ws = scan_wheel(str(_wheel(tmp_path, lib.read_bytes())), symbols=True)
    assert spooled
    assert ws.items[0].symbols == read_symbols(lib)
    assert ws.items[0].info == read_elf_path(lib)


def test_corrupt_member_is_still_refused(tmp_path, lib):
    """Streaming still checks the whole member (size and CRC)."""
    path = _wheel(tmp_path, lib.read_bytes())
    raw = bytearray(path.read_bytes())
    i = raw.find(b"pkg/_x.cpython")  # the local header's name; data follows
    raw[i + 200] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(wheel.WheelError):
        scan_wheel(str(path), symbols=True)


def test_pyelftools_reader_for_wheels(tmp_path, lib, monkeypatch):
    import rundeps.elf.pyelftools as p

    calls = []
    for name in ("read_elf_pyelftools", "read_symbols_pyelftools"):
        real = getattr(p, name)
        monkeypatch.setattr(p, name, lambda f, _r=real, _n=name: calls.append(_n) or _r(f))
    monkeypatch.setenv("RUNDEPS_ELF_READER", "pyelftools")
    ws = scan_wheel(str(_wheel(tmp_path, lib.read_bytes())), symbols=True)
    assert sorted(calls) == ["read_elf_pyelftools", "read_symbols_pyelftools"]
    monkeypatch.delenv("RUNDEPS_ELF_READER")
    assert ws.items[0].symbols == read_symbols(lib)
    assert ws.items[0].info == read_elf_path(lib)

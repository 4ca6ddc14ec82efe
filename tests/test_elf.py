"""rundeps.elf: real gcc-built objects, hand-made hostile ones, and fuzzing."""

import io
import struct
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import elfbuild  # noqa: E402
from elfbuild import build_exe, build_lib, build_static_exe, readelf_dynamic, readelf_header, requires_gcc  # noqa: E402

from rundeps.elf import dynamic as elf  # noqa: E402
from rundeps.elf import ARCH_NAMES, ElfError, ElfInfo, is_elf_magic, read_elf, read_elf_path, read_elf_pyelftools  # noqa: E402

X86_64 = elfbuild.host_arch() == "x86_64"
needs_x86_64 = pytest.mark.skipif(not X86_64, reason="literal values are for an x86_64 host")


# -- real objects --------------------------------------------------------------


@pytest.fixture(scope="module")
def objs(tmp_path_factory):
    if not elfbuild.have_gcc():
        pytest.skip("gcc is needed to build ELF fixtures")
    d = tmp_path_factory.mktemp("objs")
    return {
        "lib": build_lib(d, "libfoo.so.1", soname="libfoo.so.1",
                         needed_libs=("libbar.so.2", "libc.musl-x86_64.so.1"),
                         runpath="$ORIGIN/../x.libs"),
        "rpath": build_lib(d, "librp.so", soname="librp.so", needed_libs=("libz.so.1",),
                           rpath="/opt/a::/opt/b:$ORIGIN"),
        "nosoname": build_lib(d, "plain.so"),
        "exe": build_exe(d, "prog", needed_libs=("libfoo.so.1", "libc.musl-x86_64.so.1"),
                         interp="/lib/ld-musl-x86_64.so.1"),
        "pie": build_exe(d, "pieprog", needed_libs=("libfoo.so.1",), pie=True),
    }


@requires_gcc
def test_shared_library_soname_needed_runpath(objs):
    info = read_elf_path(objs["lib"])
    assert info.soname == "libfoo.so.1"
    assert info.needed == ("libbar.so.2", "libc.musl-x86_64.so.1")
    assert info.runpath == ("$ORIGIN/../x.libs",)
    assert info.rpath == ()
    assert info.interp is None
    assert info.etype == "ET_DYN"


@requires_gcc
def test_rpath_split_and_empty_entries_dropped(objs):
    info = read_elf_path(objs["rpath"])
    assert info.rpath == ("/opt/a", "/opt/b", "$ORIGIN")
    assert info.runpath == ()
    assert info.needed == ("libz.so.1",)
    assert info.soname == "librp.so"


@requires_gcc
def test_library_without_dynamic_strings(objs):
    info = read_elf_path(objs["nosoname"])
    assert info.soname is None and info.needed == () and info.rpath == () and info.runpath == ()


@requires_gcc
def test_executable_with_interp(objs):
    info = read_elf_path(objs["exe"])
    assert info.etype == "ET_EXEC"
    assert info.interp == "/lib/ld-musl-x86_64.so.1"
    assert info.needed == ("libfoo.so.1", "libc.musl-x86_64.so.1")
    pie = read_elf_path(objs["pie"])
    assert pie.etype == "ET_DYN"
    assert pie.interp == elfbuild.musl_interp()


@requires_gcc
@needs_x86_64
def test_machine_and_class(objs):
    info = read_elf_path(objs["lib"])
    assert (info.elfclass, info.little_endian, info.machine, info.arch) == (64, True, 62, "x86_64")


@requires_gcc
def test_static_binary(tmp_path):
    try:
        exe = build_static_exe(tmp_path, "static")
    except elfbuild.BuildError as exc:
        pytest.skip(f"gcc -static does not work here: {exc}")
    info = read_elf_path(exe)
    assert info.needed == ()
    assert info.interp is None
    assert info.etype == "ET_EXEC"


@requires_gcc
@pytest.mark.parametrize("name", ["lib", "rpath", "nosoname", "exe", "pie"])
def test_agrees_with_readelf(objs, name):
    dyn = readelf_dynamic(objs[name])
    hdr = readelf_header(objs[name])
    if dyn is None:
        pytest.skip("readelf is absent")
    info = read_elf_path(objs[name])
    assert list(info.needed) == dyn["NEEDED"]
    assert ([info.soname] if info.soname else []) == dyn["SONAME"]

    def split(values):
        return tuple(p for v in values for p in v.split(":") if p)

    assert info.rpath == split(dyn["RPATH"])
    assert info.runpath == split(dyn["RUNPATH"])
    assert hdr.get("interp") == info.interp
    assert hdr["Type"].split()[0] == info.etype[3:]
    assert hdr["Class"] == f"ELF{info.elfclass}"


@requires_gcc
@pytest.mark.parametrize("name", ["lib", "rpath", "nosoname", "exe", "pie"])
def test_pyelftools_reader_agrees(objs, name, monkeypatch):
    fast = read_elf_path(objs[name])
    with open(objs[name], "rb") as f:
        slow = read_elf_pyelftools(f)
    assert slow == fast
    monkeypatch.setenv("RUNDEPS_ELF_READER", "pyelftools")
    assert read_elf_path(objs[name]) == fast


@requires_gcc
def test_bytesio_and_file_object(objs):
    data = objs["lib"].read_bytes()
    expected = read_elf_path(objs["lib"])
    assert read_elf(io.BytesIO(data)) == expected
    with open(objs["lib"], "rb") as f:
        assert read_elf(f) == expected


def test_not_elf(tmp_path):
    p = tmp_path / "libfoo.so"
    p.write_text("/* GNU ld script */\nINPUT(libfoo.so.1)\n")
    assert read_elf_path(p) is None
    assert read_elf(io.BytesIO(b"")) is None
    assert read_elf(io.BytesIO(b"\x7fEL")) is None
    assert is_elf_magic(b"\x7fELF\x02") and not is_elf_magic(b"\x7fEL") and not is_elf_magic(b"MZ\x90\x00")


def test_read_elf_path_oserror(tmp_path):
    with pytest.raises(OSError):
        read_elf_path(tmp_path / "missing")


def test_arch_names():
    assert ARCH_NAMES == ("x86_64", "x86", "aarch64", "armv7", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64")
    assert elf.machine_arch(62, 64, True) == "x86_64"
    assert elf.machine_arch(3, 32, True) == "x86"
    assert elf.machine_arch(183, 64, True) == "aarch64"
    assert elf.machine_arch(40, 32, True) == "armv7"
    assert elf.machine_arch(21, 64, True) == "ppc64le"
    assert elf.machine_arch(21, 64, False) == "ppc64"
    assert elf.machine_arch(22, 64, False) == "s390x"
    assert elf.machine_arch(243, 64, True) == "riscv64"
    assert elf.machine_arch(258, 64, True) == "loongarch64"
    assert elf.machine_arch(62, 32, True) is None  # x32
    assert elf.machine_arch(9999, 64, True) is None


# -- hand-made ELF files -----------------------------------------------------------

VADDR = 0x10000


def synth(elfclass=64, little=True, etype=3, machine=62, phdrs=None, dyn=None, strtab=b"\0libx.so.1\0",
          interp=None, dyn_off=0x200, str_off=0x400, size=0x600, phnum=None, phoff=64, phentsize=None,
          shoff=0, shentsize=0, data_byte=None, no_null=False):
    """A small ELF: header, phdrs at ``phoff``, PT_LOAD [0, size) at VADDR,
    PT_DYNAMIC at dyn_off, dynamic strings at str_off."""
    e = "<" if little else ">"
    is64 = elfclass == 64
    ph_fmt = e + ("IIQQQQQQ" if is64 else "IIIIIIII")
    dyn_fmt = e + ("qQ" if is64 else "iI")
    if dyn is None:
        dyn = [(elf.DT_NEEDED, 1), (elf.DT_STRTAB, VADDR + str_off), (elf.DT_STRSZ, len(strtab))]
    if not no_null:
        dyn = list(dyn) + [(0, 0)]
    if phdrs is None:
        phdrs = [(elf.PT_LOAD, 0, VADDR, size), (elf.PT_DYNAMIC, dyn_off, VADDR + dyn_off, len(dyn) * struct.calcsize(dyn_fmt))]
        if interp is not None:
            phdrs.insert(0, (elf.PT_INTERP, 0x100, VADDR + 0x100, len(interp)))
    buf = bytearray(size)
    ident = b"\x7fELF" + bytes([1 if not is64 else 2, data_byte or (1 if little else 2), 1]) + bytes(9)
    hdr_fmt = e + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    entsize = phentsize if phentsize is not None else struct.calcsize(ph_fmt)
    buf[0:16] = ident
    hdr = struct.pack(hdr_fmt, etype, machine, 1, 0, phoff, shoff, 0, 16 + struct.calcsize(hdr_fmt), entsize,
                      len(phdrs) if phnum is None else phnum, shentsize, 0, 0)
    buf[16:16 + len(hdr)] = hdr
    for i, (t, off, vaddr, filesz) in enumerate(phdrs):
        if is64:
            raw = struct.pack(ph_fmt, t, 4, off, vaddr, vaddr, filesz, filesz, 8)
        else:
            raw = struct.pack(ph_fmt, t, off, vaddr, vaddr, filesz, filesz, 4, 4)
        at = phoff + i * entsize
        if at + len(raw) <= len(buf):
            buf[at:at + len(raw)] = raw
    for i, (tag, val) in enumerate(dyn):
        raw = struct.pack(dyn_fmt, tag, val)
        at = dyn_off + i * len(raw)
        buf[at:at + len(raw)] = raw
    buf[str_off:str_off + len(strtab)] = strtab
    if interp is not None:
        buf[0x100:0x100 + len(interp)] = interp
    return bytes(buf)


def parse(data):
    return read_elf(io.BytesIO(data))


def both_raise(data, match=None):
    """The fast reader and the pyelftools reader both reject ``data``."""
    with pytest.raises(ElfError, match=match):
        parse(data)
    with pytest.raises(ElfError):
        read_elf_pyelftools(io.BytesIO(data))


def test_synth_baseline_all_classes():
    for elfclass in (32, 64):
        for little in (True, False):
            machine = {(64, True): 62, (64, False): 22, (32, True): 40, (32, False): 8}[(elfclass, little)]
            info = parse(synth(elfclass=elfclass, little=little, machine=machine, interp=b"/lib/ld.so\0"))
            assert info.needed == ("libx.so.1",)
            assert info.interp == "/lib/ld.so"
            assert (info.elfclass, info.little_endian, info.machine) == (elfclass, little, machine)
            assert read_elf_pyelftools(io.BytesIO(synth(elfclass=elfclass, little=little, machine=machine,
                                                        interp=b"/lib/ld.so\0"))) == info
    assert parse(synth(machine=62)).arch == "x86_64"
    assert parse(synth(elfclass=64, little=False, machine=22)).arch == "s390x"
    assert parse(synth(elfclass=32, little=False, machine=8)).arch is None


def test_etype_names():
    assert parse(synth(etype=1)).etype == "ET_REL"
    assert parse(synth(etype=2)).etype == "ET_EXEC"
    assert parse(synth(etype=4)).etype == "ET_CORE"
    assert parse(synth(etype=0xFE01)).etype == "ET_65025"


def test_no_dynamic_segment_is_static():
    info = parse(synth(phdrs=[(elf.PT_LOAD, 0, VADDR, 0x600)]))
    assert info.needed == () and info.soname is None and info.interp is None


def test_no_program_headers():
    info = parse(synth(phdrs=[], phoff=0))
    assert info.needed == ()


def test_strtab_mapped_through_pt_load():
    # The load segment maps file offset 0x400 at a different address.
    data = synth(phdrs=[(elf.PT_LOAD, 0, VADDR, 0x300), (elf.PT_LOAD, 0x400, 0x50000, 0x200),
                        (elf.PT_DYNAMIC, 0x200, VADDR + 0x200, 64)],
                 dyn=[(elf.DT_NEEDED, 1), (elf.DT_STRTAB, 0x50000)])
    assert parse(data).needed == ("libx.so.1",)


def test_strtab_outside_every_segment():
    both_raise(synth(dyn=[(elf.DT_NEEDED, 1), (elf.DT_STRTAB, 0x900000)]), "DT_STRTAB outside")


def test_missing_strtab():
    both_raise(synth(dyn=[(elf.DT_NEEDED, 1)]), "without DT_STRTAB")


def test_string_offset_outside_table():
    both_raise(synth(dyn=[(elf.DT_NEEDED, 5000), (elf.DT_STRTAB, VADDR + 0x400)]), "outside the string table")
    both_raise(synth(dyn=[(elf.DT_NEEDED, 20), (elf.DT_STRTAB, VADDR + 0x400), (elf.DT_STRSZ, 11)]),
               "outside the string table")


def test_string_without_nul():
    # The string runs to the end of the segment (and of the file).
    data = synth(strtab=b"\0" + b"a" * (0x600 - 0x401), dyn=[(elf.DT_NEEDED, 1), (elf.DT_STRTAB, VADDR + 0x400)])
    both_raise(data, "unterminated|outside")


def test_no_dt_null():
    both_raise(synth(no_null=True), "DT_NULL")


def test_empty_dynamic():
    with pytest.raises(ElfError):
        parse(synth(phdrs=[(elf.PT_LOAD, 0, VADDR, 0x600), (elf.PT_DYNAMIC, 0x200, VADDR + 0x200, 0)]))


def test_huge_phnum():
    both_raise(synth(phnum=0xFFFE), "truncated program header table")
    # PN_XNUM without a section header 0
    both_raise(synth(phnum=0xFFFF), "PN_XNUM")


def test_pn_xnum_huge_count():
    data = bytearray(synth(phnum=0xFFFF, shoff=0x500, shentsize=64))
    struct.pack_into("<IIQQQQII", data, 0x500, 0, 0, 0, 0, 0, 0, 0, 10 ** 9)
    both_raise(bytes(data), "too many program headers")


def test_phdrs_past_eof():
    both_raise(synth(phoff=10 ** 12), "truncated program header table")
    both_raise(synth(phoff=2 ** 64 - 8))


def test_bad_phentsize():
    both_raise(synth(phentsize=8), "entry size")


def test_dynamic_past_eof():
    data = synth(phdrs=[(elf.PT_LOAD, 0, VADDR, 0x600), (elf.PT_DYNAMIC, 10 ** 10, VADDR, 64)])
    both_raise(data, "outside the file|truncated")
    # A huge p_filesz is capped; the DT_NULL found before EOF ends the table.
    data = synth(phdrs=[(elf.PT_LOAD, 0, VADDR, 0x600), (elf.PT_DYNAMIC, 0x5F0, VADDR, 2 ** 40)])
    assert parse(data).needed == ()
    # ... and without a DT_NULL before EOF it is truncated.
    data = data[:0x5F0] + struct.pack("<qQ", elf.DT_NEEDED, 1)
    both_raise(data, "truncated")


def test_interp_past_eof_and_huge():
    both_raise(synth(phdrs=[(elf.PT_INTERP, 0x5F0, 0, 100), (elf.PT_LOAD, 0, VADDR, 0x600)]), "PT_INTERP")
    both_raise(synth(phdrs=[(elf.PT_INTERP, 0x100, 0, 2 ** 40), (elf.PT_LOAD, 0, VADDR, 0x600)]), "PT_INTERP")


def test_bad_class_and_encoding():
    data = bytearray(synth())
    data[4] = 3
    both_raise(bytes(data), "class")
    data = bytearray(synth())
    data[5] = 0
    both_raise(bytes(data), "encoding")


def test_endianness_mix():
    # A little-endian file that claims to be big-endian.
    with pytest.raises(ElfError):
        parse(synth(data_byte=2))


def test_truncated_header():
    both_raise(synth()[:30], "truncated")


def test_too_many_dynamic_entries_without_null(monkeypatch):
    monkeypatch.setattr(elf, "MAX_DYN_ENTRIES", 4)
    dyn = [(elf.DT_NEEDED, 1)] * 6
    with pytest.raises(ElfError, match="too many dynamic entries"):
        parse(synth(dyn=dyn, no_null=True,
                    phdrs=[(elf.PT_LOAD, 0, VADDR, 0x600), (elf.PT_DYNAMIC, 0x200, VADDR + 0x200, 6 * 16)]))


def test_reads_are_bounded():
    """A file object that claims to be huge must not be read whole."""

    class Huge(io.RawIOBase):
        def __init__(self, head):
            self.head = head
            self.pos = 0
            self.read_bytes = 0

        def readable(self):
            return True

        def seekable(self):
            return True

        def seek(self, off, whence=0):
            self.pos = off if whence == 0 else (2 ** 50 if whence == 2 else self.pos + off)
            return self.pos

        def read(self, n=-1):
            if n is None or n < 0:
                raise AssertionError("unbounded read")
            self.read_bytes += n
            if self.pos < len(self.head):
                out = self.head[self.pos:self.pos + n]
            else:
                out = b"a" * min(n, 1 << 20)  # no NUL anywhere
            self.pos += len(out)
            return out

    data = synth(phdrs=[(elf.PT_LOAD, 0, VADDR, 2 ** 45), (elf.PT_DYNAMIC, 0x200, VADDR + 0x200, 64)],
                 dyn=[(elf.DT_NEEDED, 0x1000), (elf.DT_STRTAB, VADDR + 0x400)])
    f = Huge(data)
    with pytest.raises(ElfError, match="too long"):
        read_elf(f)
    assert f.read_bytes < 1 << 20


# -- fuzzing ---------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _seed_files():
    seeds = [synth(interp=b"/lib/ld-musl-x86_64.so.1\0"), synth(elfclass=32, machine=3),
             synth(little=False, machine=22)]
    return seeds


SEEDS = _seed_files()


def check_only_elferror(data):
    start = time.monotonic()
    try:
        info = read_elf(io.BytesIO(data))
    except ElfError as exc:
        assert str(exc)
    else:
        assert info is None or isinstance(info, ElfInfo)
    assert time.monotonic() - start < 2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), edits=st.lists(st.tuples(st.integers(0, 0x5FF), st.integers(0, 255)), max_size=12),
       cut=st.one_of(st.none(), st.integers(0, 0x600)))
def test_fuzz_mutations_raise_only_elferror(seed, edits, cut):
    data = bytearray(seed)
    for at, value in edits:
        data[at] = value
    if cut is not None:
        data = data[:cut]
    check_only_elferror(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_fuzz_random_after_magic(tail):
    check_only_elferror(b"\x7fELF" + tail)


@requires_gcc
def test_fuzz_real_library_truncations(objs):
    data = objs["lib"].read_bytes()
    outcomes = set()
    for cut in range(0, len(data), 7):
        try:
            info = read_elf(io.BytesIO(data[:cut]))
            outcomes.add("ok" if info is not None else "none")
        except ElfError:
            outcomes.add("error")
    assert "error" in outcomes


@requires_gcc
def test_pyelftools_errors_become_elferror(objs):
    data = bytearray(objs["lib"].read_bytes())
    # Break the dynamic section: every outcome must be ElfError or a result.
    for i in range(0, min(len(data), 4096), 13):
        d = bytearray(data)
        d[i] ^= 0xFF
        try:
            read_elf_pyelftools(io.BytesIO(bytes(d)))
        except ElfError:
            pass


@pytest.mark.parametrize("offset", [(1 << 63) - 8, 1 << 62, 1 << 44])
def test_offsets_past_any_file_are_elf_errors_on_real_files(tmp_path, offset):
    """pread/lseek answer EINVAL (or overflow) for such offsets: still ElfError."""
    p = tmp_path / "huge.so"
    p.write_bytes(synth(phdrs=[(elf.PT_LOAD, 0, VADDR, 0x600), (elf.PT_DYNAMIC, offset, VADDR, 64)]))
    with pytest.raises(ElfError):
        read_elf_path(p)
    with open(p, "rb") as f:
        with pytest.raises(ElfError):
            read_elf(f)
    p.write_bytes(synth(phoff=offset))
    with pytest.raises(ElfError):
        read_elf_path(p)
    with open(p, "rb") as f:
        with pytest.raises(ElfError):
            read_elf(f)

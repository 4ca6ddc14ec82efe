"""The relocation-type facts of :class:`rundeps.elf.facts.SymbolFacts`:
``tpoff`` (symbols of initial-exec TLS relocations, ``""`` for the object's
own TLS) and ``bad_relocs`` (types musl's ``do_relocs`` does not support).

Fixtures are built here with gcc (and Debian's musl-gcc when present); both
readers must agree with each other and with binutils' ``readelf -rW`` (the
types, symbol indices and names it prints are the oracle; what musl supports
is written below from musl's ``arch/<arch>/reloc.h``, by binutils' names).
With musl's loader present, ``dlopen`` under musl is checked too: an object
with neither fact loads, one with either fails with musl's own message.
"""

from __future__ import annotations

import io
import marshal
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rundeps.elf import ElfError
from rundeps.elf.facts import EMPTY, SymbolFacts, facts_from_tuple, pack_facts, reloc_facts, unpack_facts
from rundeps.elf.reader import read_symbols, read_symbols_pyelftools

PROJECT = Path(__file__).resolve().parent.parent
SHARED_MUSL = PROJECT.parent / "shared" / "alpine" / "musl"
DEBIAN_MUSL = Path("/lib/x86_64-linux-musl/libc.so")
MUSL_LOADER = "/lib/ld-musl-x86_64.so.1"

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed")
needs_readelf = pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf is needed")

# readelf's "Machine:" -> (the types musl's do_relocs has a case for, the
# REL_TPOFF / REL_TPOFF_NEG ones), by name: musl's spelling from its
# arch/<arch>/reloc.h and include/elf.h, and binutils' where it differs.
MUSL_SUPPORTED = {
    "Advanced Micro Devices X86-64": (
        {"R_X86_64_NONE", "R_X86_64_64", "R_X86_64_PC32", "R_X86_64_GLOB_DAT", "R_X86_64_JUMP_SLOT",
         "R_X86_64_RELATIVE", "R_X86_64_COPY", "R_X86_64_DTPMOD64", "R_X86_64_DTPOFF64", "R_X86_64_TPOFF64",
         "R_X86_64_TLSDESC"},
        {"R_X86_64_TPOFF64"}),
    "Intel 80386": (
        {"R_386_NONE", "R_386_32", "R_386_PC32", "R_386_GLOB_DAT", "R_386_JMP_SLOT", "R_386_JUMP_SLOT",
         "R_386_RELATIVE", "R_386_COPY", "R_386_TLS_DTPMOD32", "R_386_TLS_DTPOFF32", "R_386_TLS_TPOFF",
         "R_386_TLS_TPOFF32", "R_386_TLS_DESC"},
        {"R_386_TLS_TPOFF", "R_386_TLS_TPOFF32"}),
    "AArch64": (
        {"R_AARCH64_NONE", "R_AARCH64_NULL", "R_AARCH64_ABS64", "R_AARCH64_GLOB_DAT", "R_AARCH64_JUMP_SLOT",
         "R_AARCH64_RELATIVE", "R_AARCH64_COPY", "R_AARCH64_TLS_DTPMOD64", "R_AARCH64_TLS_DTPMOD",
         "R_AARCH64_TLS_DTPREL64", "R_AARCH64_TLS_DTPREL", "R_AARCH64_TLS_TPREL64", "R_AARCH64_TLS_TPREL",
         "R_AARCH64_TLSDESC"},
        {"R_AARCH64_TLS_TPREL64", "R_AARCH64_TLS_TPREL"}),
    "ARM": (
        {"R_ARM_NONE", "R_ARM_ABS32", "R_ARM_GLOB_DAT", "R_ARM_JUMP_SLOT", "R_ARM_RELATIVE", "R_ARM_COPY",
         "R_ARM_TLS_DTPMOD32", "R_ARM_TLS_DTPOFF32", "R_ARM_TLS_TPOFF32", "R_ARM_TLS_DESC"},
        {"R_ARM_TLS_TPOFF32"}),
}

TLS_LOCAL = r"""
static __thread int x;
__thread int y;
__attribute__((visibility("hidden"))) __thread int z;
int get(void) { return ++x + y + z; }
"""
TLS_EXT = r"""
extern __thread int ext_tls;
int get_ext(void) { return ext_tls; }
"""
IFUNC = r"""
static int impl(void) { return 1; }
static void *resolver(void) { return (void *)impl; }
static int local_ifunc(void) __attribute__((ifunc("resolver")));
int (*volatile fp)(void) = local_ifunc;
int call(void) { return local_ifunc() + fp(); }
"""
PLAIN = r"""
static int a;
int *pa = &a;
int plain(int x) { return x + *pa; }
"""
# No libc, no start files: the only relocations are RELATIVE, then (with no
# symbol, so in the run the fast reader skips in C) TPOFF and IRELATIVE.
NOSTD = r"""
static __thread int x;
static int a;
void *p1 = &a;
static int impl(void) { return 1; }
static void *resolver(void) { return (void *)impl; }
static int local_ifunc(void) __attribute__((ifunc("resolver")));
int (*fp)(void) = local_ifunc;
int get(void) { return ++x; }
"""
# Over a megabyte of RELATIVE relocations (several of the fast reader's
# chunks) before the symbol-less TPOFF and IRELATIVE.
BIG = NOSTD + "static int b;\nvoid *tab[] = {" + "&b," * 50000 + "};\n"

SOURCES = {
    # name: (source, flags, self-contained: dlopen-able by musl on its own)
    "tls_local": (TLS_LOCAL, ["-ftls-model=initial-exec"], True),
    "tls_ext": (TLS_EXT, ["-ftls-model=initial-exec"], False),
    "ifunc": (IFUNC, [], True),
    "plain": (PLAIN, [], True),
    "nostd": (NOSTD, ["-ftls-model=initial-exec", "-nostdlib"], True),
    "big": (BIG, ["-ftls-model=initial-exec", "-nostdlib"], True),
}
COMPILERS = [cc for cc in ("gcc", "musl-gcc") if shutil.which(cc)]


def _run(*args) -> str:
    return subprocess.run(list(map(str, args)), check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{(compiler, name): path} of the fixtures."""
    if not COMPILERS:
        pytest.skip("gcc is needed")
    d = tmp_path_factory.mktemp("relocs")
    out = {}
    for cc in COMPILERS:
        for name, (src, flags, _) in SOURCES.items():
            c = d / f"{name}.c"
            c.write_text(src)
            so = d / f"{cc}-{name}.so"
            _run(cc, "-shared", "-fPIC", "-O1", *flags, "-o", so, c)
            out[(cc, name)] = so
    return out


def readelf_facts(path: Path):
    """(tpoff, bad_relocs, machine) as binutils shows them: every dynamic
    relocation's type number (r_info) and name, classified by
    :data:`MUSL_SUPPORTED`; a TPOFF's symbol by its index and the binding
    and name ``readelf --dyn-syms`` gives it."""
    head = _run("readelf", "-hW", path)
    machine = re.search(r"Machine:\s*(.*\S)", head).group(1)
    is64 = "ELF64" in re.search(r"Class:\s*(\S+)", head).group(1)
    supported, tp_names = MUSL_SUPPORTED[machine]
    syms = {}
    for line in _run("readelf", "--dyn-syms", "-W", path).splitlines():
        m = re.match(r"\s*(\d+):\s+[0-9a-f]+\s+\S+\s+\S+\s+(\S+)\s+\S+\s+\S+\s*(\S*)", line)
        if m:
            syms[int(m.group(1))] = (m.group(2), m.group(3).split("@")[0])
    tpoff, bad = set(), set()
    for line in _run("readelf", "-D", "-rW", path).splitlines():
        m = re.match(r"\s*[0-9a-f]+\s+([0-9a-f]+)\s+(\S+)", line)
        if not m or not m.group(2).startswith("R_"):
            continue
        info, name = int(m.group(1), 16), m.group(2)
        typ, sym = (info & 0x7FFFFFFF, info >> 32) if is64 else (info & 0xFF, info >> 8)
        if name not in supported:
            bad.add(typ)
        elif name in tp_names:
            tpoff.add("" if sym == 0 or syms[sym][0] == "LOCAL" else syms[sym][1])
    return frozenset(tpoff), frozenset(bad), machine


def both(path: Path) -> SymbolFacts:
    fast = read_symbols(path, reader="struct")
    with open(path, "rb") as f:
        slow = read_symbols_pyelftools(f)
    assert fast == slow, path
    assert (fast.tpoff, fast.bad_relocs) == (slow.tpoff, slow.bad_relocs)
    return fast


@needs_gcc
@needs_readelf
@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_readers_agree_with_readelf(built, cc, name):
    path = built[(cc, name)]
    facts = both(path)
    tpoff, bad, _ = readelf_facts(path)
    assert facts.tpoff == tpoff
    assert facts.bad_relocs == bad


@needs_gcc
@needs_readelf
def test_fixtures_show_each_case(built):
    """The fixtures cover what they are meant to (so the comparisons above
    compare something): own TLS, another object's TLS, IRELATIVE, nothing."""
    for cc in COMPILERS:
        got = {name: both(built[(cc, name)]) for name in SOURCES}
        assert "" in got["tls_local"].tpoff and "y" in got["tls_local"].tpoff
        assert got["tls_ext"].tpoff == {"ext_tls"}
        assert got["ifunc"].bad_relocs and not got["ifunc"].tpoff
        assert got["plain"].tpoff == frozenset() and got["plain"].bad_relocs == frozenset()
        for name in ("nostd", "big"):
            assert got[name].tpoff == {""} and got[name].bad_relocs, name
            assert not got[name].undefined


REAL = [p for p in sorted(SHARED_MUSL.glob("*.so")) if p.is_file()] + [p for p in (DEBIAN_MUSL,) if p.is_file()]
for _lib in ("libc.so.6", "libm.so.6", "libstdc++.so.6"):
    _p = Path("/usr/lib/x86_64-linux-gnu") / _lib
    if _p.is_file():
        REAL.append(_p)


@needs_readelf
@pytest.mark.skipif(not REAL, reason="no real musl or glibc libraries here")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_libraries(path):
    """Real objects of several machines (x86_64, x86, aarch64, armv7 musl
    loaders; glibc, which has IRELATIVE and own-TLS TPOFF relocations)."""
    fast = read_symbols(path, reader="struct")
    with open(path, "rb") as f:
        slow = read_symbols_pyelftools(f)
    assert (fast.tpoff, fast.bad_relocs) == (slow.tpoff, slow.bad_relocs)
    # the exports (libstdc++'s STB_GNU_UNIQUE objects among them) and the
    # references to own definitions that are not exports (glibc's IFUNCs)
    assert (fast.defined, fast.ifunc, fast.own_unfound) == (slow.defined, slow.ifunc, slow.own_unfound)
    tpoff, bad, machine = readelf_facts(path)
    assert fast.tpoff == tpoff
    assert fast.bad_relocs == bad
    if "musl" in path.name or path == DEBIAN_MUSL:
        assert not fast.bad_relocs  # musl loads itself


def _dlopen_prog(tmp_path: Path) -> Path:
    src = tmp_path / "dl.c"
    src.write_text('#include <dlfcn.h>\n#include <stdio.h>\n'
                   'int main(int c, char **v) { void *h = dlopen(v[1], RTLD_NOW);'
                   ' printf("%s\\n", h ? "OK" : dlerror()); return 0; }\n')
    exe = tmp_path / "dl"
    _run("musl-gcc", "-o", exe, src)
    return exe


@pytest.mark.skipif(shutil.which("musl-gcc") is None or not os.path.exists(MUSL_LOADER),
                    reason="musl-gcc and musl's loader are needed")
def test_musl_dlopen_agrees(built, tmp_path):
    """musl itself as the oracle: each self-contained musl-gcc fixture is
    dlopened by a musl program; it loads exactly when neither fact is set,
    and otherwise fails with the message the fact stands for."""
    exe = _dlopen_prog(tmp_path)
    for name, (_, _, alone) in SOURCES.items():
        if not alone:
            continue
        path = built[("musl-gcc", name)]
        facts = both(path)
        said = _run(exe, path).strip()
        if not facts.tpoff and not facts.bad_relocs:
            assert said == "OK", (name, said)
            continue
        assert said != "OK", name
        m = re.search(r"unsupported relocation type (\d+)", said)
        if m:
            assert int(m.group(1)) in facts.bad_relocs, (name, said)
        else:
            assert "initial-exec TLS" in said and facts.tpoff, (name, said)


def _reloc_tables(path: Path):
    """[(file offset, size, entry size)] of the dynamic relocation tables."""
    out = []
    for m in re.finditer(r"relocation section at offset (0x[0-9a-f]+) contains (\d+) bytes",
                         _run("readelf", "-D", "-rW", path)):
        out.append((int(m.group(1), 16), int(m.group(2))))
    return out


@needs_gcc
@needs_readelf
def test_mutated_types_agree(built):
    """Random types (unknown ones, bit 31 set, TPOFF, IRELATIVE, RELATIVE)
    written over the relocations of real fixtures, in and after the run of
    RELATIVEs: both readers give the same facts or both raise ElfError."""
    rng = random.Random(5)
    choices = [8, 18, 37, 0, 0x80000008, 0x80000012, 23, 0xFFFFFFFF, 1 << 20, 255, 256, 7]
    for name in ("nostd", "tls_local", "ifunc", "big"):
        path = built[(COMPILERS[0], name)]
        data = path.read_bytes()
        tables = _reloc_tables(path)
        assert tables
        for _ in range(12):
            buf = bytearray(data)
            for off, size in tables:
                n = size // 24
                for i in rng.sample(range(n), min(n, 3)):
                    t = rng.choice(choices) if rng.random() < 0.8 else rng.getrandbits(32)
                    buf[off + 24 * i + 8:off + 24 * i + 12] = t.to_bytes(4, "little")
            blob = bytes(buf)
            try:
                fast = read_symbols(io.BytesIO(blob), reader="struct")
            except ElfError:
                fast = "ElfError"
            try:
                slow = read_symbols_pyelftools(io.BytesIO(blob))
            except ElfError:
                slow = "ElfError"
            assert fast == slow, name


def test_pack_roundtrip_and_strictness():
    f = SymbolFacts({"a": True, "b": False}, frozenset({"c"}), nsyms=3,
                    relocs=reloc_facts(tpoff=frozenset({"", "t"}), bad_relocs=frozenset({37, 0x7FFFFFFF}),
                                       own_unfound=frozenset({"ifn", "g"})))
    packed = pack_facts(f)
    back = unpack_facts(marshal.loads(marshal.dumps(packed)))
    assert back == f and back.tpoff == {"", "t"} and back.bad_relocs == {37, 0x7FFFFFFF}
    assert back.own_unfound == {"ifn", "g"} and back.must_bind == {"b", "ifn", "g"}
    only_tls = SymbolFacts({}, frozenset(), relocs=reloc_facts(tpoff=frozenset({""})))
    assert unpack_facts(pack_facts(only_tls)).tpoff == {""}
    assert facts_from_tuple(marshal.loads(marshal.dumps(f.astuple()))) == f
    assert unpack_facts(pack_facts(EMPTY)) == EMPTY
    assert EMPTY.tpoff == frozenset() and EMPTY.bad_relocs == frozenset()
    assert "bad_relocs=[37, 2147483647]" in repr(f) and "own_unfound=['g', 'ifn']" in repr(f)
    assert EMPTY.own_unfound == frozenset() and EMPTY.must_bind == frozenset()
    good = list(packed)
    for i, bad in ((10, ["t"]), (10, ("t", 1)), (11, (37, "x")), (11, (True,)), (11, (-1,)), (11, (1 << 32,)),
                   (11, [37]), (11, tuple(range(5000))), (13, ("ifn",)), (13, None)):
        t = list(good)
        t[i] = bad
        with pytest.raises(ValueError):
            unpack_facts(tuple(t))
    with pytest.raises(ValueError):
        unpack_facts(tuple(good[:-1]))
    tup = f.astuple()
    for i, bad in ((9, {"x"}), (9, frozenset({1})), (10, frozenset({"x"})), (10, frozenset({-1})),
                   (10, frozenset({False})), (12, {"ifn"}), (12, frozenset({1}))):
        t = list(tup)
        t[i] = bad
        with pytest.raises(ValueError):
            facts_from_tuple(tuple(t))


RELR_SRC = r"""
static const char *table[] = {"a", "b", "c"};
static int first;
__attribute__((constructor)) static void init(void) { first = table[1][0]; }
int get(void) { return first; }
"""


def _relr_lib(tmp_path: Path, cc: str, relr: bool) -> Path:
    c = tmp_path / "relr.c"
    c.write_text(RELR_SRC)
    so = tmp_path / f"{cc}-{'relr' if relr else 'rela'}.so"
    flags = ["-Wl,-z,pack-relative-relocs"] if relr else ["-Wl,-z,nopack-relative-relocs"]
    _run(cc, "-shared", "-fPIC", "-O1", *flags, "-o", so, c)
    return so


def _readelf_has_relr(path: Path) -> bool:
    return bool(re.search(r"\(RELR\)", _run("readelf", "-dW", path)))


@needs_gcc
@needs_readelf
def test_relr_is_read_by_both_readers(tmp_path):
    """``relr``: the object has DT_RELR relocations (binutils'
    ``-z pack-relative-relocs``), as ``readelf -d`` shows."""
    for relr in (True, False):
        try:
            so = _relr_lib(tmp_path, "gcc", relr)
        except subprocess.CalledProcessError:
            pytest.skip("this linker has no -z pack-relative-relocs")
        facts = both(so)
        assert facts.relr == _readelf_has_relr(so) == relr
        assert unpack_facts(pack_facts(facts)).relr == relr


@pytest.mark.skipif(shutil.which("musl-gcc") is None, reason="musl-gcc is needed")
def test_relr_against_an_export_list_alone(tmp_path):
    """Checked against a shipped export list with no loader and no package
    release at hand, a DT_RELR library is "cannot check" under ``--musl
    1.2.3`` (whether a 1.2.3 build applies DT_RELR depends on the build:
    tests/test_musl_builds.py runs the real ones) and loads under 1.2.5
    (upstream applies it from 1.2.4 on); the plain build loads under both."""
    from rundeps.api import Sources, check_tree

    try:
        packed = _relr_lib(tmp_path, "musl-gcc", True)
    except subprocess.CalledProcessError:
        pytest.skip("this linker has no -z pack-relative-relocs")
    plain = _relr_lib(tmp_path, "musl-gcc", False)
    assert _readelf_has_relr(packed) and not _readelf_has_relr(plain)
    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    lib.mkdir(parents=True)
    for so in (packed, plain):
        shutil.copy(so, lib / so.name)
    db = root / "lib/apk/db/installed"
    db.parent.mkdir(parents=True)
    db.write_text("P:busybox\nV:1.36.1-r0\nA:x86_64\n\n")
    for version in ("1.2.3", "1.2.5"):
        res = check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), musl_version=version)
        assert not res.faults, (version, res.will_not_load)
        undecided = res.binding.undecided
        if version == "1.2.3":
            assert list(undecided) == [f"/usr/local/lib/{packed.name}"], undecided
            assert "DT_RELR" in undecided[f"/usr/local/lib/{packed.name}"]
        else:
            assert undecided == {}

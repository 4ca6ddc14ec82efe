"""Symbol facts (rundeps.elf.symbols) held to binutils' readelf / nm and to the
pyelftools reader, on objects built here with gcc and musl-gcc and on the
real Alpine musl libraries in ../shared/alpine/musl."""

from __future__ import annotations

import io
import os
import pickle
import marshal
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rundeps.elf import ElfError
from rundeps.elf import SymbolFacts, facts_from_tuple, read_symbols, read_symbols_pread, read_symbols_pyelftools

PROJECT = Path(__file__).resolve().parent.parent
SHARED_MUSL = PROJECT.parent / "shared" / "alpine" / "musl"
DEBIAN_MUSL = Path("/lib/x86_64-linux-musl/libc.so")

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed")
needs_musl_gcc = pytest.mark.skipif(shutil.which("musl-gcc") is None, reason="musl-gcc (musl-tools) is needed")
needs_binutils = pytest.mark.skipif(shutil.which("readelf") is None or shutil.which("nm") is None,
                                    reason="binutils (readelf, nm) are needed")

LIB_C = r"""
extern int strong_und(int);
extern int weak_und(int) __attribute__((weak));
extern int data_und;
extern __thread int tls_und;
int exported_func(int x) { return strong_und(x) + (weak_und ? weak_und(x) : 0) + data_und + tls_und; }
int exported_data = 5;
__thread int exported_tls = 1;
__thread int exported_tls_zero;
static int local_func(int x) { return x * 3; }
int (*keep_local)(int) = local_func;
int old_impl(int x) { return x + 1; }
int new_impl(int x) { return x + 2; }
int only_old_impl(int x) { return x + 3; }
__asm__(".symver old_impl,versioned@VER_1");
__asm__(".symver new_impl,versioned@@VER_2");
__asm__(".symver only_old_impl,only_old@VER_1");
__attribute__((visibility("hidden"))) int hidden_vis(int x) { return x; }
static int impl(void) { return 1; }
static void *resolver(void) { return (void *)impl; }
int ifunc_sym(void) __attribute__((ifunc("resolver")));
int weak_def(int x) __attribute__((weak));
int weak_def(int x) { return x; }
"""

VERSION_SCRIPT = """
VER_1 { global: exported_func; exported_data; exported_tls; exported_tls_zero; ifunc_sym; weak_def; keep_local;
        versioned; only_old; local: *; };
VER_2 { global: versioned; } VER_1;
"""


def _run(*args):
    subprocess.run(list(map(str, args)), check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def strip_section_headers(src: Path, dst: Path) -> Path:
    """A copy of ``src`` without section headers: e_shoff, e_shnum and
    e_shstrndx zeroed and the section header table cut off the end (what
    ``objcopy --strip-section-headers`` of binutils 2.41 does)."""
    data = bytearray(src.read_bytes())
    assert data[4] == 2 and data[5] == 1, "64-bit little-endian only"
    shoff = int.from_bytes(data[0x28:0x30], "little")
    data[0x28:0x30] = bytes(8)
    data[0x3C:0x40] = bytes(4)  # e_shnum, e_shstrndx
    if shoff and shoff >= len(data) - 64 * 64:
        del data[shoff:]
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """{name: path} of the objects built for these tests."""
    d = tmp_path_factory.mktemp("symbols")
    (d / "lib.c").write_text(LIB_C)
    (d / "lib.map").write_text(VERSION_SCRIPT)
    out = {}
    if shutil.which("gcc"):
        for style in ("gnu", "sysv", "both"):
            p = d / f"libgcc-{style}.so"
            _run("gcc", "-shared", "-fPIC", "-O1", "-o", p, d / "lib.c", f"-Wl,--hash-style={style}",
                 f"-Wl,--version-script={d / 'lib.map'}", "-nostdlib")
            out[f"gcc-{style}"] = p
        out["gcc-nosh"] = strip_section_headers(out["gcc-gnu"], d / "libgcc-nosh.so")
        stripped = d / "libgcc-stripped.so"
        shutil.copy(out["gcc-sysv"], stripped)
        _run("strip", "--strip-all", stripped)
        out["gcc-stripped"] = stripped
        # An executable with COPY relocations and a canonical PLT entry.
        (d / "exe.c").write_text("extern int exported_data; extern int exported_func(int);\n"
                                 "int (*fp)(int) = exported_func;\n"
                                 "int main(void) { return exported_data + fp(1); }\n")
        exe = d / "exe"
        _run("gcc", "-no-pie", "-fno-pic", "-O1", "-o", exe, d / "exe.c", out["gcc-gnu"],
             "-Wl,--unresolved-symbols=ignore-all")
        out["gcc-exe"] = exe
        # A glibc object with fortified calls (__*_chk from glibc's libc.so.6).
        (d / "fort.c").write_text("#include <string.h>\n#include <stdio.h>\n"
                                  "void f(char *d, const char *s, int n) { char b[8]; strcpy(b, s);"
                                  " memcpy(d, b, n); printf(\"%s\", d); }\n")
        fort = d / "libfort.so"
        _run("gcc", "-shared", "-fPIC", "-O2", "-D_FORTIFY_SOURCE=2", "-o", fort, d / "fort.c")
        out["gcc-fortify"] = fort
    if shutil.which("musl-gcc"):
        p = d / "libmusl.so"
        _run("musl-gcc", "-shared", "-fPIC", "-O1", "-o", p, d / "lib.c", f"-Wl,--version-script={d / 'lib.map'}")
        out["musl"] = p
        (d / "prog.c").write_text("#include <stdio.h>\n#include <sys/stat.h>\n"
                                  "extern int maybe(void) __attribute__((weak));\n"
                                  "int main(int c, char **v) { struct stat st; stat(v[0], &st);"
                                  " printf(\"%d\\n\", maybe ? maybe() : 0); return 0; }\n")
        prog = d / "prog"
        _run("musl-gcc", "-O1", "-o", prog, d / "prog.c")
        out["musl-exe"] = prog
    return out


# -- the independent truth: binutils ------------------------------------------------

OK_TYPES = {"NOTYPE", "OBJECT", "FUNC", "COMMON", "TLS"}
OK_BINDS = {"GLOBAL", "WEAK", "UNIQUE"}
_SYM_RE = re.compile(r"^\s*(\d+):\s+([0-9a-f]+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(\S*)")


def readelf_syms(path):
    """[(index, value, type, bind, ndx, name, version, hidden)] of the
    dynamic symbols, as readelf prints them (``-D``: from the dynamic
    segment, so it works without section headers too)."""
    out = subprocess.run(["readelf", "-D", "--dyn-syms", "-W", str(path)], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    hidden_idx = readelf_hidden_indices(path)
    rows = []
    for line in out.splitlines():
        m = _SYM_RE.match(line)
        if not m:
            continue
        num, value, _size, typ, bind, _vis, ndx, name = m.groups()
        version = None
        if "@" in name:
            name, version = name.split("@", 1)
        rows.append((int(num), int(value, 16), typ, bind, ndx, name, version.lstrip("@") if version else None,
                     int(num) in hidden_idx))
    return rows


def readelf_hidden_indices(path):
    """Symbol indices whose version entry is hidden (``readelf -V`` marks them ``h``)."""
    out = subprocess.run(["readelf", "-V", "-W", str(path)], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    hidden = set()
    in_versym = False
    for line in out.splitlines():
        if line.startswith("Version symbols section"):
            in_versym = True
            continue
        if in_versym and line.startswith("Version "):
            break
        m = re.match(r"^\s*([0-9a-f]+):((?:\s+\S+)+)\s*$", line)
        if in_versym and m:
            base = int(m.group(1), 16)
            for k, entry in enumerate(re.findall(r"(\d+h?)\s*\(", m.group(2))):
                if entry.endswith("h"):
                    hidden.add(base + k)
    return hidden


def readelf_reloc_names(path):
    """Names of the symbols the relocations reference (``readelf -r``)."""
    out = subprocess.run(["readelf", "-D", "-r", "-W", str(path)], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and re.fullmatch(r"[0-9a-f]{8,16}", parts[0]) and parts[2].startswith("R_"):
            name = parts[4]
            if name in ("+", "-"):
                continue
            names.add(name.split("@")[0])
    return names


def expected_from_readelf(path):
    rows = readelf_syms(path)
    defined, hidden, ifunc, und = set(), set(), set(), {}
    for _i, value, typ, bind, ndx, name, _ver, is_hidden in rows:
        if not name:
            continue
        if ndx == "UND":
            if bind != "LOCAL":
                und[name] = und.get(name, True) and bind == "WEAK"
            continue
        if bind not in OK_BINDS or (value == 0 and typ != "TLS"):
            continue
        if typ == "IFUNC":
            ifunc.add(name)
            continue
        if typ not in OK_TYPES:
            continue
        (hidden if is_hidden else defined).add(name)
    refs = readelf_reloc_names(path)
    undefined = {n: w for n, w in und.items() if n in refs}
    return defined, hidden - defined, ifunc - defined, undefined, set(und) - set(undefined)


def nm_undefined(path):
    out = subprocess.run(["nm", "-D", str(path)], check=True, stdout=subprocess.PIPE, text=True).stdout
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("U", "w", "v"):
            got[parts[1].split("@")[0]] = parts[0] != "U"
    return got


def assert_matches_binutils(path, truth=None):
    """``truth``: the file binutils reads instead (readelf prints nothing
    for a file without section headers: the unstripped original)."""
    facts = read_symbols(path)
    defined, hidden, ifunc, undefined, unreferenced = expected_from_readelf(truth or path)
    assert facts.defined == defined
    assert facts.hidden == hidden
    assert facts.ifunc == ifunc
    assert facts.undefined == undefined
    assert facts.unreferenced == unreferenced
    return facts


# -- tests ------------------------------------------------------------------------------


@needs_gcc
@needs_binutils
@pytest.mark.parametrize("name", ["gcc-gnu", "gcc-sysv", "gcc-both", "gcc-nosh", "gcc-stripped", "gcc-exe",
                                  "gcc-fortify"])
def test_gcc_objects_match_readelf(fixtures, name):
    assert_matches_binutils(fixtures[name], fixtures["gcc-gnu"] if name == "gcc-nosh" else None)


@needs_musl_gcc
@needs_binutils
@pytest.mark.parametrize("name", ["musl", "musl-exe"])
def test_musl_objects_match_readelf(fixtures, name):
    assert_matches_binutils(fixtures[name])


@needs_gcc
def test_the_cases_the_fixture_was_built_for(fixtures):
    f = read_symbols(fixtures["gcc-gnu"])
    # Weak and strong undefined references, data and TLS too.
    # (__tls_get_addr: the TLS accesses of an -nostdlib object call it through the PLT.)
    assert f.undefined == {"strong_und": False, "weak_und": True, "data_und": False, "tls_und": False,
                           "__tls_get_addr": False}
    assert f.plt_only == {"__tls_get_addr", "strong_und"}
    # A hidden version (only_old@VER_1) is not an export; a name with a default
    # version besides a hidden one is.
    assert "only_old" in f.hidden and "only_old" not in f.defined
    assert "versioned" in f.defined and "versioned" not in f.hidden
    # musl cannot bind IFUNC definitions; hidden visibility and local symbols are not exported.
    assert "ifunc_sym" in f.ifunc and "ifunc_sym" not in f.defined
    assert not {"hidden_vis", "local_func", "old_impl", "new_impl"} & f.defined
    # TLS definitions count even at st_value 0; the version-definition symbols (ABS, value 0) do not.
    assert {"exported_tls", "exported_tls_zero", "exported_func", "exported_data", "weak_def"} <= f.defined
    assert not {"VER_1", "VER_2"} & f.defined
    assert f.strong_undefined == {"strong_und", "data_und", "tls_und", "__tls_get_addr"}


@needs_gcc
def test_sections_do_not_matter(fixtures):
    """Without section headers (or stripped) the facts are the same."""
    assert read_symbols(fixtures["gcc-nosh"]) == read_symbols(fixtures["gcc-gnu"])
    assert read_symbols(fixtures["gcc-stripped"]) == read_symbols(fixtures["gcc-sysv"])
    # GNU and SysV hash tables give the same exports (the order of the table differs).
    g, s = read_symbols(fixtures["gcc-gnu"]), read_symbols(fixtures["gcc-sysv"])
    assert (g.defined, g.undefined, g.hidden) == (s.defined, s.undefined, s.hidden)


@needs_gcc
def test_executable_copy_relocations_and_canonical_plt(fixtures):
    f = read_symbols(fixtures["gcc-exe"])
    # exported_data is copied into the executable (a COPY relocation, against
    # a symbol the executable itself defines); exported_func's address is taken.
    assert "exported_data" in f.copy
    assert "exported_data" not in f.undefined
    assert "exported_func" in f.undef_valued or "exported_func" in f.undefined


@needs_gcc
def test_fortified_glibc_object_needs_chk(fixtures):
    f = read_symbols(fixtures["gcc-fortify"])
    assert {n for n in f.undefined if n.endswith("_chk")}, f.undefined
    assert f.plt_only <= set(f.undefined)


@needs_musl_gcc
def test_musl_exe_weak_and_lfs(fixtures):
    f = read_symbols(fixtures["musl-exe"])
    assert f.undefined.get("maybe") is True
    assert f.undefined.get("printf") is False


@needs_binutils
@pytest.mark.parametrize("lib", sorted(SHARED_MUSL.glob("*.so")) + [DEBIAN_MUSL], ids=lambda p: p.name)
def test_real_musl_libraries(lib):
    if not lib.exists():
        pytest.skip(f"{lib} is absent")
    facts = assert_matches_binutils(lib)
    assert {"malloc", "printf", "dlopen", "stat"} <= facts.defined
    assert not facts.undefined
    # The pyelftools reader agrees (slow: one library is enough per run).
    with open(lib, "rb") as f:
        assert read_symbols_pyelftools(f) == facts


def all_fixture_paths(fixtures):
    return [p for p in fixtures.values()]


@needs_gcc
def test_pyelftools_reader_agrees_on_every_fixture(fixtures):
    for name, path in fixtures.items():
        with open(path, "rb") as f:
            assert read_symbols_pyelftools(f) == read_symbols(path), name


@needs_gcc
def test_reader_switch_and_file_objects(fixtures, monkeypatch):
    p = fixtures["gcc-gnu"]
    fast = read_symbols(p)
    with open(p, "rb") as f:
        assert read_symbols(f) == fast
    data = p.read_bytes()
    assert read_symbols(io.BytesIO(data)) == fast
    assert read_symbols_pread(lambda off, n: data[off:off + n]) == fast
    import rundeps.elf.reader as symbols

    called = []
    real = symbols.read_symbols_pyelftools
    monkeypatch.setattr(symbols, "read_symbols_pyelftools", lambda f: called.append(1) or real(f))
    monkeypatch.setenv("RUNDEPS_ELF_READER", "pyelftools")
    assert symbols.read_symbols(p) == fast
    assert called


def test_not_elf_and_no_dynamic(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"#!/bin/sh\n")
    assert read_symbols(p) is None
    assert read_symbols(io.BytesIO(b"")) is None


@needs_gcc
def test_static_executable_has_no_symbols(tmp_path):
    src = tmp_path / "s.c"
    src.write_text("void _start(void) { for (;;) { } }\n")
    exe = tmp_path / "s"
    _run("gcc", "-static", "-nostdlib", "-o", exe, src)
    f = read_symbols(exe)
    assert f == SymbolFacts({}, frozenset())
    with open(exe, "rb") as fh:
        assert read_symbols_pyelftools(fh) == f


@needs_gcc
def test_facts_survive_marshal_and_pickle(fixtures):
    f = read_symbols(fixtures["gcc-gnu"])
    assert facts_from_tuple(marshal.loads(marshal.dumps(f.astuple()))) == f
    assert pickle.loads(pickle.dumps(f)) == f
    with pytest.raises(ValueError):
        facts_from_tuple(({"x": 1},) + f.astuple()[1:])
    with pytest.raises(ValueError):
        facts_from_tuple(f.astuple()[:-1])


@needs_gcc
def test_hostile_variants_raise_elferror_only(fixtures):
    """Truncations and random byte flips of a real object: facts or
    ElfError, never another exception, never a hang."""
    data = fixtures["gcc-gnu"].read_bytes()
    rng = random.Random(11)
    for cut in list(range(0, len(data), max(1, len(data) // 200))):
        try:
            read_symbols(io.BytesIO(data[:cut]))
        except ElfError:
            pass
    for _ in range(400):
        b = bytearray(data)
        for _k in range(rng.randint(1, 8)):
            i = rng.randrange(64, min(len(b), 8192))
            b[i] = rng.randrange(256)
        try:
            read_symbols(io.BytesIO(bytes(b)))
        except ElfError:
            pass

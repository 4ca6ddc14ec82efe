"""Symbol facts of one ELF object, as musl's dynamic linker sees them.

:func:`read_symbols` reads, from the dynamic section alone (section headers
are never used, so stripped files read the same), what an object *exports*
and what it *must bind*, in the exact terms of musl's ``ldso/dynlink.c``:

Exports (:attr:`SymbolFacts.defined`): the names ``find_sym`` can return from
this object.  A symbol counts when

* it is in the hash table musl searches: ``DT_GNU_HASH`` when present (then
  only indices from its ``symoffset`` up), else ``DT_HASH`` (an object with
  neither defines nothing musl can find);
* its ``DT_VERSYM`` entry does not have the hidden bit (``0x8000``; musl
  checks ``versym[i] >= 0`` and otherwise ignores versions entirely, so
  ``foo@VER_1`` and ``foo@@VER_2`` are both just ``foo``);
* ``st_shndx != SHN_UNDEF``;
* ``st_value != 0``, unless it is ``STT_TLS``;
* its type is one of ``OK_TYPES`` (``NOTYPE OBJECT FUNC COMMON TLS``: an
  ``STT_GNU_IFUNC`` definition is *not* an export for musl) and its binding
  one of ``OK_BINDS`` (``GLOBAL WEAK GNU_UNIQUE``).

Names that fail only the hidden-version test are kept apart in
:attr:`~SymbolFacts.hidden`, IFUNC definitions in :attr:`~SymbolFacts.ifunc`
(both useful for hints), and undefined entries with a non-zero value
(an executable's canonical PLT addresses, which ``find_sym`` accepts only for
non-PLT relocations, ``need_def == 0``) in :attr:`~SymbolFacts.undef_valued`.

Must bind (:attr:`SymbolFacts.undefined`): the names **the relocations
reference**, as ``do_relocs`` walks them (``DT_REL``, ``DT_RELA`` and
``DT_JMPREL``; ``DT_RELR`` carries no symbols).  "Every undefined dynsym
entry" is *not* used as an approximation: the relocation tables are read
(their symbol indices only, which is cheap) and a name counts when a
relocation of a type other than ``NONE`` references a symbol that is
``SHN_UNDEF`` and not ``STB_LOCAL``.  The value is True when every such entry
is ``STB_WEAK`` (musl lets a weak undefined reference stay unbound).
Undefined dynsym entries that no relocation references are in
:attr:`~SymbolFacts.unreferenced` (never fatal to musl).
:attr:`~SymbolFacts.plt_only` names the undefined names referenced only by
``JUMP_SLOT`` relocations (``need_def``: an ``undef_valued`` entry does not
satisfy them), and :attr:`~SymbolFacts.copy` the names referenced by
``COPY`` relocations, which musl looks up in the global scope *after* the
main program (``head->syms_next``) and which must be found even though the
executable itself defines them.

Relocation types (:data:`_MUSL_RELOCS`, per machine, from musl's
``arch/<arch>/reloc.h``; the symbol-less relocations count too, so these are
read from every entry, not only from those that name a symbol):
:attr:`~SymbolFacts.tpoff` names the symbols of initial-exec TLS relocations
(``REL_TPOFF`` / ``REL_TPOFF_NEG``: ``do_relocs`` fails them when the
definition's TLS is not static, "initial-exec TLS resolves to dynamic
definition"), with ``""`` standing for the object itself (symbol index 0 or
an ``STB_LOCAL`` symbol: musl takes ``def.dso = dso``);
:attr:`~SymbolFacts.bad_relocs` holds the types ``do_relocs`` has no case
for ("unsupported relocation type %d", e.g. ``R_X86_64_IRELATIVE``), which
fail the load.  For a machine musl's table is not known for, both stay empty.

Not modelled: a relocation against a symbol the object itself defines but
whose version is hidden (musl would not find it in the object; never seen in
practice), a hash table whose chains or bloom filter disagree with the
symbol table (a linker-built table never does), lazy binding
(``RTLD_LAZY``; Python uses ``RTLD_NOW``), and MIPS' GOT-based relocations.

Two readers give the same :class:`SymbolFacts`:

* the default one here unpacks the tables with :mod:`struct` and
  :mod:`array` (C-level slicing of whole tables; no per-entry parsing of
  relocations);
* :func:`read_symbols_pyelftools` (in :mod:`rundeps.pyelftools_reader`)
  builds them with pyelftools (``DynamicSegment`` symbols,
  ``GNUHashTable`` / ``ELFHashTable``, ``RelocationTable``, ``Elf_Versym``)
  and shares no code with the fast reader; it is the tests' oracle, and
  what ``RUNDEPS_ELF_READER=pyelftools`` selects.  The fast reader exists because the
  pyelftools one is far too slow for the walk (see ``scripts/bench.py`` and
  the README's figures).

Hostile input raises :class:`~rundeps.elf.ElfError` and never another
exception; every table read is capped (:data:`MAX_SYMS`,
:data:`MAX_STRTAB`, relocations read in chunks of :data:`RELOC_CHUNK`).
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from itertools import accumulate, compress, filterfalse, repeat
from operator import add, and_, eq, ne, rshift, truth

from .elf import HEAD_SIZE, ElfError, _guarded, _parse_header, is_elf_magic, parse_as_elf_error

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO, Callable, Dict, FrozenSet, List, Optional, Tuple

__all__ = [
    "SymbolFacts",
    "read_symbols",
    "read_symbols_path",
    "read_symbols_fd",
    "read_symbols_pread",
    "read_symbols_pyelftools",
    "SameBytes",
    "facts_from_tuple",
    "pack_facts",
    "unpack_facts",
    "MAX_SYMS",
    "MAX_STRTAB",
]

#: At most this many dynamic symbols are read from one object.
MAX_SYMS = 4 * 1024 * 1024
#: Largest dynamic string table read.
MAX_STRTAB = 256 * 1024 * 1024
#: Relocations are read this many bytes at a time.
RELOC_CHUNK = 1024 * 1024
#: Largest relocation table accepted (bytes).
MAX_RELOCS = 4 * 1024 * 1024 * 1024

# Dynamic tags.
DT_NULL = 0
DT_HASH, DT_STRTAB, DT_SYMTAB, DT_RELA, DT_RELASZ, DT_RELAENT, DT_STRSZ, DT_SYMENT = 4, 5, 6, 7, 8, 9, 10, 11
DT_REL, DT_RELSZ, DT_RELENT, DT_PLTREL, DT_JMPREL, DT_PLTRELSZ = 17, 18, 19, 20, 23, 2
DT_RELRSZ, DT_RELR = 35, 36
DT_GNU_HASH = 0x6FFFFEF5
DT_VERSYM = 0x6FFFFFF0
PT_LOAD, PT_DYNAMIC = 1, 2

STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_COMMON, STT_TLS, STT_GNU_IFUNC = 0, 1, 2, 5, 6, 10
STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 0, 1, 2, 10
OK_TYPES = 1 << STT_NOTYPE | 1 << STT_OBJECT | 1 << STT_FUNC | 1 << STT_COMMON | 1 << STT_TLS
OK_BINDS = 1 << STB_GLOBAL | 1 << STB_WEAK | 1 << STB_GNU_UNIQUE

# e_machine -> (R_*_COPY, R_*_JUMP_SLOT), musl's REL_COPY and REL_PLT.
_RELOC_KINDS = {
    62: (5, 7),  # x86_64
    3: (5, 7),  # i386
    183: (1024, 1026),  # aarch64
    40: (20, 22),  # arm
    21: (19, 21),  # ppc64
    20: (19, 21),  # ppc
    22: (9, 11),  # s390x
    243: (4, 5),  # riscv
    258: (4, 5),  # loongarch
}
EM_S390 = 22

# (e_machine, 64-bit) -> (REL_RELATIVE, {REL_TPOFF, REL_TPOFF_NEG}, every
# type musl's do_relocs has a case for), from musl's arch/<arch>/reloc.h and
# include/elf.h (REL_NONE is 0; a REL_* an arch does not define is an
# unmatchable negative enum value).  R_TYPE is r_info & 0x7fffffff on 64-bit
# targets, r_info & 0xff on 32-bit ones.
_MUSL_RELOCS = {
    # x86_64: 64 PC32(OFFSET32) GLOB_DAT JUMP_SLOT RELATIVE COPY DTPMOD64 DTPOFF64 TPOFF64 TLSDESC
    (62, True): (8, frozenset({18}), frozenset({0, 1, 2, 6, 7, 8, 5, 16, 17, 18, 36})),
    # i386: 32 PC32(OFFSET) GLOB_DAT JMP_SLOT RELATIVE COPY TLS_DTPMOD32 TLS_DTPOFF32 TLS_TPOFF
    # TLS_TPOFF32(TPOFF_NEG) TLS_DESC
    (3, False): (8, frozenset({14, 37}), frozenset({0, 1, 2, 6, 7, 8, 5, 35, 36, 14, 37, 41})),
    # aarch64: ABS64 GLOB_DAT JUMP_SLOT RELATIVE COPY TLS_DTPMOD64 TLS_DTPREL64 TLS_TPREL64 TLSDESC
    (183, True): (1027, frozenset({1030}), frozenset({0, 257, 1025, 1026, 1027, 1024, 1028, 1029, 1030, 1031})),
    # arm: ABS32 GLOB_DAT JUMP_SLOT RELATIVE COPY TLS_DTPMOD32 TLS_DTPOFF32 TLS_TPOFF32 TLS_DESC
    (40, False): (23, frozenset({19}), frozenset({0, 2, 21, 22, 23, 20, 17, 18, 19, 13})),
    # powerpc64: ADDR64 UADDR64 GLOB_DAT JMP_SLOT RELATIVE COPY DTPMOD64 DTPREL64 TPREL64
    (21, True): (22, frozenset({73}), frozenset({0, 38, 43, 20, 21, 22, 19, 68, 78, 73})),
    # s390x: 64 GLOB_DAT JMP_SLOT RELATIVE COPY TLS_DTPMOD TLS_DTPOFF TLS_TPOFF
    (22, True): (12, frozenset({56}), frozenset({0, 22, 10, 11, 12, 9, 54, 55, 56})),
    # riscv64: 64 JUMP_SLOT RELATIVE COPY TLS_DTPMOD64 TLS_DTPREL64 TLS_TPREL64 TLSDESC
    (243, True): (3, frozenset({11}), frozenset({0, 2, 5, 3, 4, 7, 9, 11, 12})),
    # loongarch64: JUMP_SLOT COPY TLS_DTPMOD64 TLS_DTPREL64 TLS_TPREL64 RELATIVE 64 TLS_DESC64
    (258, True): (3, frozenset({11}), frozenset({0, 5, 4, 7, 9, 11, 3, 2, 14})),
}
#: At most this many different unsupported relocation types in one object
#: (more is a broken file: ElfError).
MAX_BAD_RELOCS = 4096

_NATIVE_LITTLE = sys.byteorder == "little"


def _class_table(pick) -> bytes:
    """A :meth:`bytes.translate` table over ``st_info`` bytes."""
    return bytes(pick(b & 0xF, b >> 4) for b in range(256))


#: 1 for an OK type other than TLS with an OK binding.
_CLS_PLAIN = _class_table(lambda t, b: int(t != STT_TLS and bool((1 << t) & OK_TYPES) and bool((1 << b) & OK_BINDS)))
#: 1 for a binding other than STB_LOCAL / STB_WEAK.
_CLS_NONLOCAL = _class_table(lambda t, b: int(b != STB_LOCAL))
_CLS_WEAK = _class_table(lambda t, b: int(b == STB_WEAK))
_NZ = bytes([0] + [1] * 255)
_UNLIKE: Dict[int, bytes] = {0: _NZ}  # byte value -> translate table: 0 for it, 1 for any other
_FLIP = bytes([1] + [0] * 255)
_HIGHBIT = bytes([0] * 128 + [1] * 128)
_ODD = bytes(b & 1 for b in range(256))
#: 1 for TLS, 2 for IFUNC, with an OK binding.
_CLS_TLS_IFUNC = _class_table(lambda t, b: (1 if t == STT_TLS else 2 if t == STT_GNU_IFUNC else 0)
                              if (1 << b) & OK_BINDS else 0)


class SymbolFacts:
    """The symbol facts of one ELF object (see the module documentation for
    exactly what each field means).  Treat it as immutable; it compares by
    value, and :meth:`astuple` / :func:`facts_from_tuple` give a form that
    :mod:`marshal` and :mod:`pickle` keep.

    * ``undefined``: {name: True if weak} -- what relocations need bound;
    * ``defined``: frozenset of names musl's lookup finds in this object;
    * ``hidden``: definitions musl skips because their version is hidden;
    * ``ifunc``: ``STT_GNU_IFUNC`` definitions (musl cannot bind them);
    * ``undef_valued``: undefined entries with a value (canonical PLT
      addresses), found by non-PLT lookups only;
    * ``plt_only``: undefined names referenced only by ``JUMP_SLOT`` relocs;
    * ``copy``: names referenced by ``COPY`` relocations;
    * ``unreferenced``: undefined dynsym names no relocation references;
    * ``nsyms``: the number of dynamic symbols (from the hash table);
    * ``tpoff``: names referenced by initial-exec TLS relocations (musl's
      ``REL_TPOFF`` / ``REL_TPOFF_NEG``), ``""`` for the object's own TLS
      (symbol index 0 or an ``STB_LOCAL`` symbol);
    * ``bad_relocs``: frozenset of the relocation type numbers musl's
      ``do_relocs`` does not support on this machine (the load fails);
    * ``relr``: the object has ``DT_RELR`` relative relocations, which musl
      applies from 1.2.4 on (an older musl ignores the tag: the object's
      pointers are never relocated).
    """

    __slots__ = ("undefined", "defined", "hidden", "ifunc", "undef_valued", "plt_only", "copy", "unreferenced",
                 "nsyms", "tpoff", "bad_relocs", "relr", "_packed")
    FIELDS = __slots__[:-1]

    def __init__(self, undefined: Dict[str, bool], defined: FrozenSet[str], hidden: FrozenSet[str] = frozenset(),
                 ifunc: FrozenSet[str] = frozenset(), undef_valued: FrozenSet[str] = frozenset(),
                 plt_only: FrozenSet[str] = frozenset(), copy: FrozenSet[str] = frozenset(),
                 unreferenced: FrozenSet[str] = frozenset(), nsyms: int = 0, tpoff: FrozenSet[str] = frozenset(),
                 bad_relocs: FrozenSet[int] = frozenset(), relr: bool = False):
        self.undefined = undefined
        self.defined = defined
        self.hidden = hidden
        self.ifunc = ifunc
        self.undef_valued = undef_valued
        self.plt_only = plt_only
        self.copy = copy
        self.unreferenced = unreferenced
        self.nsyms = nsyms
        self.tpoff = tpoff
        self.bad_relocs = bad_relocs
        self.relr = relr

    @classmethod
    def from_packed(cls, packed: tuple) -> "SymbolFacts":
        """Facts that stay in :func:`pack_facts` form until a field is first
        read (a warm run whose binder needs none of them decodes none);
        ``packed`` is checked here, so decoding it later cannot fail.
        ValueError if it is not such a tuple."""
        _check_packed(packed)
        obj = cls.__new__(cls)
        obj._packed = packed
        return obj

    def __getattr__(self, name):  # only called for a field not decoded yet
        if name in SymbolFacts.FIELDS:
            try:
                packed = object.__getattribute__(self, "_packed")
            except AttributeError:
                raise AttributeError(name) from None
            f = _decode_packed(packed)
            for n in SymbolFacts.FIELDS:
                object.__setattr__(self, n, getattr(f, n))
            return object.__getattribute__(self, name)
        raise AttributeError(name)

    def astuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __reduce__(self):
        return (facts_from_tuple, (self.astuple(),))

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.astuple() == other.astuple()

    def __hash__(self) -> int:  # pragma: no cover - rarely needed
        return hash((frozenset(self.undefined.items()),) + self.astuple()[1:])

    @property
    def strong_undefined(self) -> FrozenSet[str]:
        """The undefined names that must be bound (not weak)."""
        return frozenset(n for n, weak in self.undefined.items() if not weak)

    def __repr__(self) -> str:
        return (f"SymbolFacts(nsyms={self.nsyms}, undefined={len(self.undefined)}, defined={len(self.defined)}, "
                f"hidden={len(self.hidden)}, ifunc={len(self.ifunc)}, copy={sorted(self.copy)!r}, "
                f"tpoff={sorted(self.tpoff)!r}, bad_relocs={sorted(self.bad_relocs)!r}, relr={self.relr!r})")


def _is_str_set(v) -> bool:
    return v.__class__ is frozenset and all(x.__class__ is str for x in v)


def _is_type_set(v) -> bool:
    """A frozenset of relocation type numbers (plain ints, 0 to 2**32-1)."""
    return (v.__class__ is frozenset and len(v) <= MAX_BAD_RELOCS
            and all(x.__class__ is int and 0 <= x <= 0xFFFFFFFF for x in v))


def facts_from_tuple(t) -> SymbolFacts:
    """A :class:`SymbolFacts` from :meth:`SymbolFacts.astuple`; ValueError
    unless every field has its type (a cache file must not inject garbage)."""
    if t.__class__ is not tuple or len(t) != 12:
        raise ValueError("bad symbol record")
    undefined, nsyms = t[0], t[8]
    if not (undefined.__class__ is dict and nsyms.__class__ is int and all(_is_str_set(x) for x in t[1:8])
            and _is_str_set(t[9]) and _is_type_set(t[10]) and t[11].__class__ is bool
            and all(k.__class__ is str and v.__class__ is bool for k, v in undefined.items())):
        raise ValueError("bad symbol record")
    return SymbolFacts(*t)


EMPTY = SymbolFacts({}, frozenset())


def pack_facts(f: SymbolFacts) -> tuple:
    """A compact, :mod:`marshal`-able form for the file cache: every name
    set as one NUL-joined string (one object instead of thousands, so
    loading a warm cache is a split per set), the weak flags as bytes;
    ``tpoff`` (small, and it may hold ``""``) as a sorted tuple of names,
    ``bad_relocs`` as a sorted tuple of ints."""
    try:
        return object.__getattribute__(f, "_packed")  # still packed: as it came
    except AttributeError:
        pass
    und = list(f.undefined)
    return ("\0".join(und), bytes(map(int, f.undefined.values())),
            "\0".join(f.defined), "\0".join(f.hidden), "\0".join(f.ifunc), "\0".join(f.undef_valued),
            "\0".join(f.plt_only), "\0".join(f.copy), "\0".join(f.unreferenced), f.nsyms,
            tuple(sorted(f.tpoff)), tuple(sorted(f.bad_relocs)), f.relr)


def _names(blob) -> FrozenSet[str]:
    if blob.__class__ is not str:
        raise ValueError("bad symbol record")
    return frozenset(blob.split("\0")) if blob else frozenset()


def _check_packed(t) -> None:
    if not (t.__class__ is tuple and len(t) == 13 and t[1].__class__ is bytes and t[9].__class__ is int
            and t[12].__class__ is bool
            and all(x.__class__ is str for x in t[0:1] + t[2:9])
            and t[10].__class__ is tuple and all(x.__class__ is str for x in t[10])
            and t[11].__class__ is tuple and len(t[11]) <= MAX_BAD_RELOCS
            and all(x.__class__ is int and 0 <= x <= 0xFFFFFFFF for x in t[11])):
        raise ValueError("bad symbol record")
    if (t[0].count("\0") + 1 if t[0] else 0) != len(t[1]):
        raise ValueError("bad symbol record")


def _decode_packed(t) -> SymbolFacts:
    und = t[0].split("\0") if t[0] else []
    return SymbolFacts(dict(zip(und, map(truth, t[1]))), *map(_names, t[2:9]), nsyms=t[9], tpoff=frozenset(t[10]),
                       bad_relocs=frozenset(t[11]), relr=t[12])


def unpack_facts(t) -> SymbolFacts:
    """The inverse of :func:`pack_facts` (decoded when first used, see
    :meth:`SymbolFacts.from_packed`); ValueError on anything else."""
    return SymbolFacts.from_packed(t)


# -- the fast reader ------------------------------------------------------------


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _read_exact(pread, offset: int, size: int, what: str) -> bytes:
    raw = pread(offset, size)
    if len(raw) < size:
        raise ElfError(f"{what} outside the file")
    return raw


def _array(code: str, raw: bytes, little: bool) -> array:
    a = array(code)
    n = len(raw) - len(raw) % a.itemsize
    a.frombytes(raw[:n] if n != len(raw) else raw)
    if little != _NATIVE_LITTLE:
        a.byteswap()
    return a


def _parse(head: bytes, pread: Callable[[int, int], bytes]) -> SymbolFacts:
    h = _parse_header(head, pread)
    is64 = h.elfclass == 64
    little = h.little
    e = "<" if little else ">"
    phdr_s, dyn_s = h.fmts[1], h.fmts[2]

    phoff, entsize, phnum = h.phoff, h.phentsize, h.phnum
    size = entsize * phnum
    if phoff + size <= len(head):
        table, base = head, phoff
    else:
        table, base = _read_exact(pread, phoff, size, "program header table") if size else b"", 0
    loads: List[Tuple[int, int, int]] = []
    dynamic = None
    for i in range(phnum):
        ph = phdr_s.unpack_from(table, base + i * entsize)
        if is64:
            offset, vaddr, filesz = ph[2], ph[3], ph[5]
        else:
            offset, vaddr, filesz = ph[1], ph[2], ph[4]
        if ph[0] == PT_LOAD:
            loads.append((vaddr, filesz, offset))
        elif ph[0] == PT_DYNAMIC and dynamic is None:
            dynamic = (offset, filesz)
    if dynamic is None:
        return EMPTY

    esize = dyn_s.size
    count = min(dynamic[1] // esize, 65536)
    raw = pread(dynamic[0], count * esize)
    dyn: Dict[int, int] = {}
    for d_tag, d_val in dyn_s.iter_unpack(raw[: len(raw) - len(raw) % esize]):
        if d_tag == DT_NULL:
            break
        if d_tag not in dyn:  # musl's decode_vec keeps the last; duplicates never occur in real files
            dyn[d_tag] = d_val
    else:
        raise ElfError("dynamic segment without DT_NULL")
    relr = DT_RELR in dyn and bool(dyn.get(DT_RELRSZ))

    def where(addr: int, what: str) -> Tuple[int, int]:
        """(file offset, bytes left in its segment) of an address."""
        for vaddr, seg_filesz, seg_off in loads:
            if vaddr <= addr < vaddr + seg_filesz:
                return seg_off + (addr - vaddr), vaddr + seg_filesz - addr
        raise ElfError(f"{what} outside every PT_LOAD segment")

    def table_at(tag: int, size: int, what: str) -> bytes:
        off, left = where(dyn[tag], what)
        if size > left:
            raise ElfError(f"{what} runs past its segment")
        return _read_exact(pread, off, size, what)

    # Relocations: the symbol indices they reference, with their types.
    kinds = _RELOC_KINDS.get(h.machine)
    r_copy, r_plt = kinds if kinds else (-1, -1)
    word = 8 if is64 else 4
    # Where, inside one entry, the symbol-index bytes of r_info are.
    if is64:
        symoff, symw = (word + 4, 4) if little else (word, 4)
    else:
        symoff, symw = (word + 1, 3) if little else (word, 3)
    refd = set()  # symbol indices some relocation (other than R_*_NONE) names
    nonplt_i = set()  # ... by a relocation other than JUMP_SLOT
    copy_i = set()  # ... by a COPY relocation
    musl = _MUSL_RELOCS.get((h.machine, is64))
    seen = set()  # raw r_info types (of 64-bit targets: the low 32 bits) of every relocation
    tp_i = set()  # symbol indices of REL_TPOFF / REL_TPOFF_NEG relocations (0: none)
    # The entries skipped in C at the start of each chunk: those whose
    # r_info is a symbol-less RELATIVE (its whole r_info, type included, so
    # that the symbol-less IRELATIVE, TPOFF of the object's own TLS, ... are
    # seen) when musl's table for the machine is known, else those that name
    # no symbol.
    if musl is not None:
        r_rel, tp_types, ok_types = musl
        tmask = 0x7FFFFFFF if is64 else 0xFF  # musl's R_TYPE
        skip_off, skip_pat = word, r_rel.to_bytes(word, "little" if little else "big")
    else:
        skip_off, skip_pat = symoff, bytes(symw)
    tables = []
    if DT_RELA in dyn and dyn.get(DT_RELASZ):
        tables.append((dyn[DT_RELA], dyn[DT_RELASZ], True))
    if DT_REL in dyn and dyn.get(DT_RELSZ):
        tables.append((dyn[DT_REL], dyn[DT_RELSZ], False))
    if DT_JMPREL in dyn and dyn.get(DT_PLTRELSZ):
        tables.append((dyn[DT_JMPREL], dyn[DT_PLTRELSZ], dyn.get(DT_PLTREL) == DT_RELA))
    for addr, tsize, rela in tables:
        if tsize > MAX_RELOCS:
            raise ElfError("relocation table too large")
        off, left = where(addr, "relocation table")
        if tsize > left:
            raise ElfError("relocation table runs past its segment")
        per = 3 if rela else 2
        stride = word * per
        step = RELOC_CHUNK - RELOC_CHUNK % stride
        tsize -= tsize % stride
        pos = 0
        while pos < tsize:
            n = min(step, tsize - pos)
            chunk = _read_exact(pread, off + pos, n, "relocation table")
            pos += n
            # The linker puts the (many) symbol-less relative relocations
            # first: find the first other entry in C, and take the columns
            # from there on.
            p = _first_unlike(chunk, skip_off, skip_pat, stride)
            if p >= 0:
                types, syms = _reloc_columns(chunk[p * stride:], is64, little, per)
                _note_relocs(types, syms, r_plt, r_copy, refd, nonplt_i, copy_i)
                if musl is not None:
                    ts = set(types)
                    seen |= ts
                    tp = tp_types.intersection(ts)
                    if max(ts) > tmask:  # 64-bit: bit 31 set, which musl's R_TYPE drops
                        tp = {t for t in ts if t & tmask in tp_types}
                    if tp:
                        tp_i.update(compress(syms, map(tp.__contains__, types)))
            if len(seen) > MAX_BAD_RELOCS:
                seen = {t & tmask for t in seen}
                if len(seen - ok_types) > MAX_BAD_RELOCS:
                    raise ElfError("too many unsupported relocation types")
    refd.discard(0)
    nonplt_i.discard(0)
    copy_i.discard(0)
    bad_relocs = frozenset()
    if seen and not seen <= ok_types:
        bad_relocs = frozenset(map(and_, seen, repeat(tmask))).difference(ok_types)
        if len(bad_relocs) > MAX_BAD_RELOCS:
            raise ElfError("too many unsupported relocation types")
    own_tls = frozenset({""}) if 0 in tp_i else frozenset()
    tp_i.discard(0)

    if DT_SYMTAB not in dyn:
        if refd:
            raise ElfError("relocations against symbols without DT_SYMTAB")
        return (SymbolFacts({}, frozenset(), tpoff=own_tls, bad_relocs=bad_relocs, relr=relr)
                if own_tls or bad_relocs or relr else EMPTY)

    # How many symbols, and where musl's lookup starts.
    nsyms = 0
    first = None  # None: no hash table, nothing is findable
    if DT_GNU_HASH in dyn:
        off, left = where(dyn[DT_GNU_HASH], "DT_GNU_HASH")
        hdr = _read_exact(pread, off, 16, "DT_GNU_HASH")
        nbuckets, symoffset, bloom_size, _shift = struct.unpack(e + "IIII", hdr)
        if nbuckets > MAX_SYMS or bloom_size > MAX_SYMS or symoffset > MAX_SYMS:
            raise ElfError("DT_GNU_HASH too large")
        boff = off + 16 + bloom_size * word
        buckets = _array("I", _read_exact(pread, boff, 4 * nbuckets, "DT_GNU_HASH buckets"), little)
        top = max(buckets) if nbuckets else 0
        if top < symoffset:
            nsyms = symoffset
        else:
            # The last chain ends at the last symbol: walk it to its end bit.
            coff = boff + 4 * nbuckets + 4 * (top - symoffset)
            i = top
            while True:
                n = min(4096, left - (coff - off))  # within the hash table's segment
                raw = pread(coff, n) if n >= 4 else b""
                words = len(raw) // 4
                if not words:
                    raise ElfError("DT_GNU_HASH chain outside its segment")
                # the end bit is bit 0 of each word: one byte of every four
                k = raw[0 if little else 3:4 * words:4].translate(_ODD).find(1)
                if k >= 0:
                    i += k + 1
                    break
                i += words
                if i > MAX_SYMS:
                    raise ElfError("DT_GNU_HASH chain too long")
                coff += 4 * words
            nsyms = i
        first = symoffset
    elif DT_HASH in dyn:
        off, _left = where(dyn[DT_HASH], "DT_HASH")
        if h.machine == EM_S390 and is64:  # s390x: 64-bit hash words (musl's Elf_Symndx)
            nsyms = struct.unpack(e + "QQ", _read_exact(pread, off, 16, "DT_HASH"))[1]
        else:
            nsyms = struct.unpack(e + "II", _read_exact(pread, off, 8, "DT_HASH"))[1]
        first = 1
    if refd:
        nsyms = max(nsyms, max(refd) + 1)
    if nsyms > MAX_SYMS:
        raise ElfError(f"too many dynamic symbols ({nsyms})")
    if nsyms == 0:  # then no relocation names a symbol: tp_i is empty
        return (SymbolFacts({}, frozenset(), tpoff=own_tls, bad_relocs=bad_relocs, relr=relr)
                if own_tls or bad_relocs or relr else EMPTY)

    syment = 24 if is64 else 16
    symraw = table_at(DT_SYMTAB, nsyms * syment, "DT_SYMTAB")
    if DT_STRTAB not in dyn:
        raise ElfError("symbols without DT_STRTAB")
    stroff, strleft = where(dyn[DT_STRTAB], "DT_STRTAB")
    strsz = min(dyn.get(DT_STRSZ, strleft), strleft)
    if strsz > MAX_STRTAB:
        raise ElfError("dynamic string table too large")
    strtab = pread(stroff, strsz)
    vhigh = None  # the high byte of every versym entry
    if DT_VERSYM in dyn:
        vraw = table_at(DT_VERSYM, 2 * nsyms, "DT_VERSYM")
        vhigh = vraw[1::2] if little else vraw[0::2]

    # Per-symbol fields, as whole columns (C-level slicing).
    names = _array("I", symraw, little)[0::6 if is64 else 4]
    if is64:
        infob = symraw[4::24]
        shoff, valoff, valw = 6, 8, 8
    else:
        infob = symraw[12::16]
        shoff, valoff, valw = 14, 4, 4
    shnz = _nonzero(symraw, shoff, 2, syment)  # 1: st_shndx != SHN_UNDEF
    undm = shnz.translate(_FLIP)  # 1: SHN_UNDEF

    # Every string of the table by its offset, split and decoded in C.
    if strtab.isascii():
        parts = strtab.decode("ascii").split("\0")
    else:
        parts = list(map(bytes.decode, strtab.split(b"\0"), repeat("utf-8"), repeat("surrogateescape")))
    strings = dict(zip(accumulate(map(add, map(len, parts), repeat(1)), initial=0), parts))
    strlen = len(strtab)

    def name(i: int) -> str:
        o = names[i]
        s = strings.get(o)
        if s is None:  # a tail-merged string (or a hostile offset)
            if o >= strlen:
                raise ElfError("symbol name outside the string table")
            end = strtab.find(b"\0", o)
            if end < 0:
                raise ElfError("unterminated symbol name")
            s = strings[o] = _decode(strtab[o:end])
        return s

    def names_of(indices: List[int]) -> List[str]:
        got = list(map(strings.get, map(names.__getitem__, indices)))
        if None in got:
            got = [s if s is not None else name(i) for i, s in zip(indices, got)]
        return got

    def selected(mask: int, count: int) -> List[str]:
        """The names of the symbols from ``first`` on whose bit is set."""
        sel = _bytes(mask, count)
        got = list(map(strings.get, compress(names[first:], sel)))
        if None in got:  # a tail-merged name: by index
            return names_of(list(compress(range(first, first + count), sel)))
        return got

    defined: List[str] = []
    hidden: List[str] = []
    ifunc: List[str] = []
    undef_valued: List[str] = []
    if first is not None and first < nsyms:
        cnt = nsyms - first
        cls = infob[first:]
        plain = _int(cls.translate(_CLS_PLAIN))  # OK type other than TLS, OK binding
        valnz = _int(_nonzero(symraw[first * syment:], valoff, valw, syment))
        sh = _int(shnz[first:])
        hid = 0
        if vhigh is not None:
            hid = _int(vhigh[first:].translate(_HIGHBIT))
        sel = plain & valnz & sh
        defined = selected(sel & ~hid, cnt)
        if hid:
            hidden = selected(sel & hid, cnt)
        uv = plain & valnz & _int(undm[first:]) & ~hid
        if uv:
            undef_valued = selected(uv, cnt)
        special = cls.translate(_CLS_TLS_IFUNC)
        if special.strip(b"\0"):  # TLS (st_value 0 is fine) and IFUNC definitions: rare
            for j in compress(range(cnt), special):
                i = first + j
                if not shnz[i]:
                    continue
                if special[j] == 1:
                    (hidden if vhigh is not None and vhigh[i] >= 0x80 else defined).append(name(i))
                elif (valnz >> (8 * j)) & 0xFF:
                    ifunc.append(name(i))

    # What the relocations need: SHN_UNDEF, not STB_LOCAL.
    nonlocal_m = infob.translate(_CLS_NONLOCAL)
    ridx = sorted(refd)
    uidx = list(compress(ridx, map(and_, map(undm.__getitem__, ridx), map(nonlocal_m.__getitem__, ridx))))
    unames = names_of(uidx)
    weakm = infob.translate(_CLS_WEAK)
    weak = list(map(truth, map(weakm.__getitem__, uidx)))
    undefined = dict(zip(unames, weak))
    if len(undefined) != len(unames):  # one name in several entries: weak only if all are
        undefined = {}
        for n, w in zip(unames, weak):
            undefined[n] = undefined.get(n, True) and w
    nonplt = set(compress(unames, map(nonplt_i.__contains__, uidx)))
    copy = names_of(sorted(i for i in copy_i if nonlocal_m[i]))
    unref_idx = [i for i in filterfalse(refd.__contains__, compress(range(1, nsyms), undm[1:])) if nonlocal_m[i]]
    unreferenced = [n for n in names_of(unref_idx) if n and n not in undefined]
    tpoff = own_tls
    if tp_i:  # a local symbol is the object's own TLS, as index 0 is
        tp_sorted = sorted(tp_i)
        tpoff = tpoff.union(names_of(list(compress(tp_sorted, map(nonlocal_m.__getitem__, tp_sorted)))))
        if not all(map(nonlocal_m.__getitem__, tp_sorted)):
            tpoff = tpoff.union(("",))
    defs = frozenset(defined)
    return SymbolFacts(
        undefined=undefined,
        defined=defs,
        hidden=frozenset(hidden) - defs,
        ifunc=frozenset(ifunc) - defs,
        undef_valued=frozenset(undef_valued),
        plt_only=frozenset(undefined).difference(nonplt),
        copy=frozenset(copy),
        unreferenced=frozenset(unreferenced),
        nsyms=nsyms,
        tpoff=tpoff,
        bad_relocs=bad_relocs,
        relr=relr,
    )


def _first_unlike(raw: bytes, off: int, pat: bytes, stride: int) -> int:
    """The index of the first ``stride``-byte entry of ``raw`` whose bytes
    at ``off`` are not ``pat``; -1 if there is none.  One byte column at a
    time, sliced and compared in C; a column that differs is searched (up
    to the first difference found so far only)."""
    end = len(raw) // stride
    found = -1
    for k, b in enumerate(pat):
        col = raw[off + k:end * stride:stride]
        if col == (bytes(end) if b == 0 else bytes((b,)) * end):
            continue
        table = _UNLIKE.get(b)
        if table is None:
            table = _UNLIKE[b] = bytes(int(x != b) for x in range(256))
        found = end = col.translate(table).find(1)
        if end == 0:
            break
    return found


def _reloc_columns(raw: bytes, is64: bool, little: bool, per: int):
    """(types, symbol indices) of the relocations in ``raw`` (whole
    entries of ``per`` words), as two arrays sliced in C."""
    if is64:
        w = _array("I", raw, little)  # r_info is words 2-3 of 2*per
        n = 2 * per
        if little:
            return w[2::n], w[3::n]
        return w[3::n], w[2::n]
    info = _array("I", raw, little)[1::per]
    return list(map(and_, info, repeat(0xFF))), list(map(rshift, info, repeat(8)))


def _note_relocs(types, syms, r_plt: int, r_copy: int, refd: set, nonplt: set, copy: set) -> None:
    """Add the symbol indices of one run of relocations to the sets (index
    0, no symbol, is taken out by the caller)."""
    if types.count(0):  # R_*_NONE entries name nothing: drop them
        syms = list(compress(syms, types))
        types = list(compress(types, types))
    refd.update(syms)
    plt = types.count(r_plt)
    if not plt:
        nonplt.update(syms)
    elif plt != len(types):
        nonplt.update(compress(syms, map(ne, types, repeat(r_plt))))
    if types.count(r_copy):
        copy.update(compress(syms, map(eq, types, repeat(r_copy))))


def _int(mask: bytes) -> int:
    return int.from_bytes(mask, "little")


def _bytes(n: int, count: int) -> bytes:
    return n.to_bytes(count, "little")


def _nonzero(raw: bytes, off: int, width: int, stride: int) -> bytes:
    """One byte per ``stride``-byte entry of ``raw``: 1 if the ``width``
    bytes at ``off`` in it are not all zero (OR-ed as big integers, in C)."""
    count = len(raw) // stride
    acc = 0
    for k in range(width):
        acc |= int.from_bytes(raw[off + k:off + k + stride * count:stride], "little")
    return acc.to_bytes(count, "little").translate(_NZ)


def _wrap(head: bytes, pread) -> SymbolFacts:
    return parse_as_elf_error(_parse, head, pread, "ELF symbols", (IndexError,))


def read_symbols_pread(pread: Callable[[int, int], bytes], head: Optional[bytes] = None) -> Optional[SymbolFacts]:
    """The symbol facts of the ELF object behind ``pread(offset, size)``
    (which returns at most ``size`` bytes, fewer at the end of the data),
    always with the fast reader.  ``head``: its first bytes, if already
    read.  None if it is not ELF."""
    pread = _guarded(pread)
    if head is None:
        head = pread(0, HEAD_SIZE)
    if not is_elf_magic(head):
        return None
    return _wrap(head, pread)


def read_symbols_fd(fd: int, head: Optional[bytes] = None) -> Optional[SymbolFacts]:
    """The symbol facts of an open file descriptor (read with ``os.pread``;
    with ``RUNDEPS_ELF_READER=pyelftools``, by the pyelftools reader)."""
    if _reader() == "pyelftools":
        with os.fdopen(os.dup(fd), "rb") as f:
            return read_symbols_pyelftools(f)
    return read_symbols_pread(lambda offset, size: os.pread(fd, size, offset), head)


class SameBytes:
    """Reads symbol facts of several files, parsing the tables of a file
    only once when another file is a byte-for-byte copy of it.

    Wheels vendor the same libraries (``libstdc++-<hash>.so.6``,
    ``libgcc_s-<hash>.so.1``) under several ``<pkg>.libs/``, and pip installs
    ``libfoo.so``, ``libfoo.so.1`` and ``libfoo.so.1.2`` as three copies.
    For a file whose ``key`` (the caller's: same size and sonames) says
    copies may follow (``expect`` > 1: how many files with the key are
    still to come, this one included), :meth:`read_fd` remembers which
    ranges the fast reader read and a BLAKE2b digest of what they held (for
    up to :attr:`VARIANTS` different files a key). A later file with that
    key has the same ranges read and hashed: when the digests match, the
    reader would have computed the same facts from the same bytes, so those
    are returned without parsing. Any difference, or the pyelftools reader,
    means a normal read.
    """

    #: At most this many different files are remembered under one key.
    VARIANTS = 8

    def __init__(self):
        self._seen: Dict[object, list] = {}

    def read_fd(self, fd: int, key, expect: int) -> Optional[SymbolFacts]:
        if _reader() == "pyelftools":
            return read_symbols_fd(fd)
        seen = self._seen.get(key, ())
        for record in seen:
            facts = self._copy(fd, record)
            if facts is not None:
                break
        else:
            facts = None
        if expect <= 1:  # the last file with this key
            self._seen.pop(key, None)
            return facts if facts is not None else read_symbols_fd(fd)
        if facts is not None:
            return facts
        import hashlib

        ranges: List[Tuple[int, int]] = []
        digest = hashlib.blake2b(digest_size=20)

        def read_at(offset: int, size: int) -> bytes:
            data = os.pread(fd, size, offset)
            ranges.append((offset, size))
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
            return data

        facts = read_symbols_pread(read_at)
        if len(seen) < self.VARIANTS:
            self._seen.setdefault(key, []).append((ranges, digest.digest(), facts))
        return facts

    @staticmethod
    def _copy(fd: int, seen) -> Optional[SymbolFacts]:
        """The remembered facts, if ``fd`` holds the same bytes in the same ranges."""
        import hashlib

        ranges, want, facts = seen
        if facts is None:
            return None
        digest = hashlib.blake2b(digest_size=20)
        for offset, size in ranges:
            data = os.pread(fd, size, offset)
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        return facts if digest.digest() == want else None


def read_symbols_path(path) -> Optional[SymbolFacts]:
    """Open ``path`` and read its symbol facts; OSError propagates."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        return read_symbols_fd(fd)
    finally:
        os.close(fd)


def _reader() -> str:
    return os.environ.get("RUNDEPS_ELF_READER", "")


def read_symbols(f_or_path, reader: Optional[str] = None) -> Optional[SymbolFacts]:
    """The symbol facts of a path or a binary file object (seekable); None
    if it is not ELF, :class:`ElfError` if it is broken.
    ``reader="pyelftools"`` (or ``RUNDEPS_ELF_READER=pyelftools``) reads it
    with :func:`read_symbols_pyelftools`."""
    use_pyelftools = (reader if reader is not None else _reader()) == "pyelftools"
    if isinstance(f_or_path, (str, bytes, os.PathLike)):
        if use_pyelftools:
            with open(f_or_path, "rb") as f:
                return read_symbols_pyelftools(f)
        if reader is not None:  # the fast reader, whatever the environment says
            with open(f_or_path, "rb") as f:
                return read_symbols(f, reader)
        return read_symbols_path(f_or_path)
    f = f_or_path
    if use_pyelftools:
        return read_symbols_pyelftools(f)

    def read_at(offset: int, size: int) -> bytes:
        f.seek(offset)
        return f.read(size)

    return read_symbols_pread(read_at)


# -- the pyelftools reader ----------------------------------------------------------


def read_symbols_pyelftools(f: BinaryIO) -> Optional[SymbolFacts]:
    """The same facts read with pyelftools (the oracle; it lives in
    :mod:`rundeps.pyelftools_reader` and shares no code with the reader
    above)."""
    from .pyelftools_reader import read_symbols_pyelftools as read

    return read(f)

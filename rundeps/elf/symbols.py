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
A relocation against a symbol the object defines itself goes through the
same lookup (``do_relocs`` takes the object's own symbol directly only when
it is ``STB_LOCAL``; musl before 1.1.24 did so for ``STT_SECTION`` symbols,
and linkers put no other local symbol in a relocation), in the whole scope,
the object included: the lookup finds the object's own definition only when
it is an export by the rules above.  The names such relocations reference
that are not (an ``STT_GNU_IFUNC`` definition the object calls through its
own PLT or takes the address of, a definition under a hidden version) are in
:attr:`~SymbolFacts.own_unfound`: they must be found in another object in
scope, and a weak definition does not excuse them (only a weak *undefined*
symbol may stay unbound).  Protected or hidden visibility and ``-Bsymbolic``
change nothing here by themselves: what they bind locally, the linker
writes as a symbol-less relocation (``R_X86_64_IRELATIVE`` for an IFUNC,
which musl does not support, see below).
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

Not modelled: a hash table whose chains or bloom filter disagree with the
symbol table (a linker-built table never does), lazy binding
(``RTLD_LAZY``; Python uses ``RTLD_NOW``), and MIPS' GOT-based relocations.

Two readers give the same :class:`~rundeps.elf.facts.SymbolFacts`:

* the default one here unpacks the tables with :mod:`struct` and
  :mod:`array` (C-level slicing of whole tables; no per-entry parsing of
  relocations);
* :func:`~rundeps.elf.pyelftools.read_symbols_pyelftools` (in
  :mod:`rundeps.elf.pyelftools`) builds them with pyelftools
  (``DynamicSegment`` symbols, ``GNUHashTable`` / ``ELFHashTable``,
  ``RelocationTable``, ``Elf_Versym``) and shares no code with the fast
  reader; it is the tests' oracle, and what
  ``RUNDEPS_ELF_READER=pyelftools`` selects (:mod:`rundeps.elf.reader`).
  The fast reader exists because the pyelftools one is far too slow for
  the walk (see ``scripts/bench.py`` and
  docs/speed.md).

Hostile input raises :class:`~rundeps.elf.ElfError` and never another
exception; every table read is capped (:data:`MAX_SYMS`,
:data:`MAX_STRTAB`, relocations read in chunks of :data:`RELOC_CHUNK`).
"""

from __future__ import annotations

import struct
from itertools import accumulate, compress, repeat
from operator import add, truth

from .facts import EMPTY, SymbolFacts, reloc_facts
from .header import (Header, guarded, parse_as_elf_error, parse_header, program_headers, read_exact, segment_offset,
                     table_at, word_array)
from .relocs import DT_RELR, DT_RELRSZ, Relocs, reloc_tables
from .types import HEAD_SIZE, PT_DYNAMIC, PT_LOAD, ElfError, is_elf_magic

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple, Union

__all__ = [
    "MAX_STRTAB",
    "MAX_SYMS",
    "read_symbols_pread",
]

#: At most this many dynamic symbols are read from one object.
MAX_SYMS = 4 * 1024 * 1024
#: Largest dynamic string table read.
MAX_STRTAB = 256 * 1024 * 1024

# Dynamic tags.
DT_NULL = 0
DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 4, 5, 6, 10, 11
DT_GNU_HASH = 0x6FFFFEF5
EM_S390 = 22
DT_VERSYM = 0x6FFFFFF0

STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_COMMON, STT_TLS, STT_GNU_IFUNC = 0, 1, 2, 5, 6, 10
STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 0, 1, 2, 10
OK_TYPES = 1 << STT_NOTYPE | 1 << STT_OBJECT | 1 << STT_FUNC | 1 << STT_COMMON | 1 << STT_TLS
OK_BINDS = 1 << STB_GLOBAL | 1 << STB_WEAK | 1 << STB_GNU_UNIQUE



def _class_table(pick) -> bytes:
    """A :meth:`bytes.translate` table over ``st_info`` bytes."""
    return bytes(pick(b & 0xF, b >> 4) for b in range(256))


#: 1 for an OK type other than TLS with an OK binding.
_CLS_PLAIN = _class_table(lambda t, b: int(t != STT_TLS and bool((1 << t) & OK_TYPES) and bool((1 << b) & OK_BINDS)))
#: 1 for a binding other than STB_LOCAL / STB_WEAK.
_CLS_NONLOCAL = _class_table(lambda t, b: int(b != STB_LOCAL))
_CLS_WEAK = _class_table(lambda t, b: int(b == STB_WEAK))
_NZ = bytes([0] + [1] * 255)
_FLIP = bytes([1] + [0] * 255)
_HIGHBIT = bytes([0] * 128 + [1] * 128)
_ODD = bytes(b & 1 for b in range(256))
#: 1 for TLS, 2 for IFUNC, with an OK binding.
_CLS_TLS_IFUNC = _class_table(lambda t, b: (1 if t == STT_TLS else 2 if t == STT_GNU_IFUNC else 0)
                              if (1 << b) & OK_BINDS else 0)


# -- the fast reader ------------------------------------------------------------


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _parse(head: bytes, pread: Callable[[int, int], bytes]) -> SymbolFacts:
    """The facts, in phases: the dynamic table; the relocations; how many
    symbols (the hash tables); the symbol columns -> what is defined; what
    the relocations need."""
    h = parse_header(head, pread)
    got = _dynamic_table(h, head, pread)
    if got is None:
        return EMPTY
    loads, dyn = got
    relr = DT_RELR in dyn and bool(dyn.get(DT_RELRSZ))
    rel = Relocs(h)
    for addr, tsize, rela in reloc_tables(dyn):
        rel.scan_table(loads, pread, addr, tsize, rela)
    bad_relocs, own_tls = rel.finish()

    if DT_SYMTAB not in dyn:
        if rel.refd:
            raise ElfError("relocations against symbols without DT_SYMTAB")
        return (SymbolFacts({}, frozenset(), relocs=reloc_facts(tpoff=own_tls, bad_relocs=bad_relocs, relr=relr))
                if own_tls or bad_relocs or relr else EMPTY)
    nsyms, first = _symbol_count(h, dyn, loads, pread)
    if rel.refd:
        nsyms = max(nsyms, max(rel.refd) + 1)
    if nsyms > MAX_SYMS:
        raise ElfError(f"too many dynamic symbols ({nsyms})")
    if nsyms == 0:  # then no relocation names a symbol: tp_i is empty
        return (SymbolFacts({}, frozenset(), relocs=reloc_facts(tpoff=own_tls, bad_relocs=bad_relocs, relr=relr))
                if own_tls or bad_relocs or relr else EMPTY)

    syms = _Symbols(h, dyn, loads, pread, nsyms)
    defined, hidden, ifunc, undef_valued, found = _definitions(syms, first, nsyms)
    undefined, plt_only, copy, unreferenced, tpoff, ref = _needs(syms, rel, nsyms, own_tls)
    defs = frozenset(defined)
    own_unfound = _own_references(syms, ref, found).difference(defs)
    return SymbolFacts(
        undefined=undefined,
        defined=defs,
        hidden=frozenset(hidden) - defs,
        ifunc=frozenset(ifunc) - defs,
        undef_valued=frozenset(undef_valued),
        nsyms=nsyms,
        relocs=reloc_facts(
            plt_only=plt_only,
            copy=frozenset(copy),
            unreferenced=frozenset(unreferenced),
            tpoff=tpoff,
            bad_relocs=bad_relocs,
            relr=relr,
            own_unfound=own_unfound,
        ),
    )


# -- phase 1: the program headers and the dynamic table ------------------------------


def _dynamic_table(h: Header, head: bytes, pread) -> Optional[Tuple[List[Tuple[int, int, int]], Dict[int, int]]]:
    """(the ``PT_LOAD`` segments as (vaddr, filesz, offset), {tag: value}
    of the first of each tag up to ``DT_NULL``); None without ``PT_DYNAMIC``."""
    phdrs = program_headers(h, head, pread)
    if phdrs is None:
        raise ElfError("program header table outside the file")
    loads: List[Tuple[int, int, int]] = []
    dynamic = None
    for p_type, _flags, offset, vaddr, filesz in phdrs:
        if p_type == PT_LOAD:
            loads.append((vaddr, filesz, offset))
        elif p_type == PT_DYNAMIC and dynamic is None:
            dynamic = (offset, filesz)
    if dynamic is None:
        return None

    dyn_s = h.fmts[2]
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
    return loads, dyn


# -- phase 3: how many symbols -------------------------------------------------------


def _symbol_count(h: Header, dyn: Dict[int, int], loads, pread) -> Tuple[int, Optional[int]]:
    """(how many symbols the hash table covers, the first index musl's
    lookup considers: None without a hash table, nothing is findable)."""
    if DT_GNU_HASH in dyn:
        return _gnu_hash_count(h, dyn[DT_GNU_HASH], loads, pread)
    if DT_HASH in dyn:
        e = "<" if h.little else ">"
        off, _left = segment_offset(loads, dyn[DT_HASH], "DT_HASH")
        if h.machine == EM_S390 and h.elfclass == 64:  # s390x: 64-bit hash words (musl's Elf_Symndx)
            nsyms = struct.unpack(e + "QQ", read_exact(pread, off, 16, "DT_HASH"))[1]
        else:
            nsyms = struct.unpack(e + "II", read_exact(pread, off, 8, "DT_HASH"))[1]
        return nsyms, 1
    return 0, None


def _gnu_hash_count(h: Header, addr: int, loads, pread) -> Tuple[int, int]:
    """(symbols, ``symoffset``) of a ``DT_GNU_HASH`` table: the last chain
    ends at the last symbol."""
    little = h.little
    off, left = segment_offset(loads, addr, "DT_GNU_HASH")
    hdr = read_exact(pread, off, 16, "DT_GNU_HASH")
    nbuckets, symoffset, bloom_size, _shift = struct.unpack(("<" if little else ">") + "IIII", hdr)
    if nbuckets > MAX_SYMS or bloom_size > MAX_SYMS or symoffset > MAX_SYMS:
        raise ElfError("DT_GNU_HASH too large")
    boff = off + 16 + bloom_size * (8 if h.elfclass == 64 else 4)
    buckets = word_array("I", read_exact(pread, boff, 4 * nbuckets, "DT_GNU_HASH buckets"), little)
    top = max(buckets) if nbuckets else 0
    if top < symoffset:
        return symoffset, symoffset
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
            return i + k + 1, symoffset
        i += words
        if i > MAX_SYMS:
            raise ElfError("DT_GNU_HASH chain too long")
        coff += 4 * words


# -- phase 4: the symbol columns, and what is defined ---------------------------------
#
# Every per-symbol property is a byte column (one byte per symbol, 0 or 1,
# made in C by slicing and bytes.translate) read as one big integer, so
# that "referenced, undefined and not local" is two ANDs, not a walk over
# indices; names come out of one list of every symbol's name (None where
# the offset is not the start of a string) by itertools.compress.


class _Symbols:
    """The dynamic symbol table as whole columns (C-level slicing), and its
    names by string-table offset."""

    __slots__ = ("symraw", "syment", "names", "infob", "valoff", "valw", "shm", "undm", "nlm", "full", "vhigh",
                 "strtab", "strings", "strlen", "every")

    def __init__(self, h: Header, dyn: Dict[int, int], loads, pread, nsyms: int):
        is64, little = h.elfclass == 64, h.little
        syment = self.syment = 24 if is64 else 16
        symraw = self.symraw = table_at(loads, pread, dyn[DT_SYMTAB], nsyms * syment, "DT_SYMTAB")
        if DT_STRTAB not in dyn:
            raise ElfError("symbols without DT_STRTAB")
        stroff, strleft = segment_offset(loads, dyn[DT_STRTAB], "DT_STRTAB")
        strsz = min(dyn.get(DT_STRSZ, strleft), strleft)
        if strsz > MAX_STRTAB:
            raise ElfError("dynamic string table too large")
        strtab = self.strtab = pread(stroff, strsz)
        self.vhigh = None  # the high byte of every versym entry
        if DT_VERSYM in dyn:
            vraw = table_at(loads, pread, dyn[DT_VERSYM], 2 * nsyms, "DT_VERSYM")
            self.vhigh = vraw[1::2] if little else vraw[0::2]

        # Per-symbol fields, as whole columns (C-level slicing).
        self.names = word_array("I", symraw, little)[0::6 if is64 else 4]
        if is64:
            self.infob = symraw[4::24]
            shoff, self.valoff, self.valw = 6, 8, 8
        else:
            self.infob = symraw[12::16]
            shoff, self.valoff, self.valw = 14, 4, 4
        self.full = (1 << (8 * nsyms)) - 1  # every byte 0xff: ``full ^ m`` is ``not m`` for a 0/1 mask
        shnz = _nonzero(symraw, shoff, 2, syment)
        self.shm = _int(shnz)  # 1: st_shndx != SHN_UNDEF
        self.undm = _int(shnz.translate(_FLIP))  # 1: SHN_UNDEF
        self.nlm = _int(self.infob.translate(_CLS_NONLOCAL))  # 1: not STB_LOCAL

        # Every string of the table by its offset, split and decoded in C.
        if strtab.isascii():
            parts = strtab.decode("ascii").split("\0")
        else:
            parts = list(map(bytes.decode, strtab.split(b"\0"), repeat("utf-8"), repeat("surrogateescape")))
        self.strings = dict(zip(accumulate(map(add, map(len, parts), repeat(1)), initial=0), parts))
        self.strlen = len(strtab)
        self.every: Optional[List[Optional[str]]] = None  # every symbol's name, see pick()

    def name(self, i: int) -> str:
        o = self.names[i]
        s = self.strings.get(o)
        if s is None:  # a tail-merged string (or a hostile offset)
            if o >= self.strlen:
                raise ElfError("symbol name outside the string table")
            strtab = self.strtab
            end = strtab.find(b"\0", o)
            if end < 0:
                raise ElfError("unterminated symbol name")
            s = self.strings[o] = _decode(strtab[o:end])
        return s

    def names_of(self, indices: List[int]) -> List[str]:
        got = list(map(self.strings.get, map(self.names.__getitem__, indices)))
        if None in got:
            got = [s if s is not None else self.name(i) for i, s in zip(indices, got)]
        return got  # type: ignore[return-value]  # every None was replaced just above

    def pick(self, mask: int) -> List[str]:
        """The names of the symbols whose byte in ``mask`` (a 0/1 column
        as an integer) is set, in index order; a name that is not the start
        of a string is looked up by :meth:`name` (which raises ElfError for
        a hostile offset) only when it is picked."""
        if not mask:
            return []
        every = self.every
        if every is None:
            every = self.every = list(map(self.strings.get, self.names))
        sel = mask.to_bytes(len(every), "little")
        got = list(compress(every, sel))
        if None in got:  # a tail-merged name: by index
            got = [s if s is not None else self.name(i) for s, i in zip(got, compress(range(len(every)), sel))]
        return got  # type: ignore[return-value]  # every None was replaced just above


def _definitions(syms: _Symbols, first: Optional[int], nsyms: int):
    """(defined, hidden, ifunc, undef_valued) names of the symbols musl's
    lookup considers (from ``first`` on), as bit masks over whole columns,
    and ``found``: a 0/1 mask with a byte set for each entry that is one of
    the ``defined`` exports."""
    defined: List[str] = []
    hidden: List[str] = []
    ifunc: List[str] = []
    undef_valued: List[str] = []
    if first is None or first >= nsyms:
        return defined, hidden, ifunc, undef_valued, 0
    keep = syms.full ^ ((1 << (8 * first)) - 1)  # the bytes from ``first`` on
    vhigh, cls = syms.vhigh, syms.infob
    plain = _int(cls.translate(_CLS_PLAIN)) & keep  # OK type other than TLS, OK binding
    valb = _nonzero(syms.symraw, syms.valoff, syms.valw, syms.syment)
    valnz = _int(valb)
    hid = 0
    if vhigh is not None:
        hid = _int(vhigh.translate(_HIGHBIT)) & keep
    sel = plain & valnz & syms.shm
    exported = sel & ~hid
    defined = syms.pick(exported)
    if hid:
        hidden = syms.pick(sel & hid)
    uv = plain & valnz & syms.undm & ~hid
    if uv:
        undef_valued = syms.pick(uv)
    found = exported
    special = cls.translate(_CLS_TLS_IFUNC)
    if special[first:].strip(b"\0"):  # TLS (st_value 0 is fine) and IFUNC definitions: rare
        shnz = syms.shm.to_bytes(nsyms, "little")
        tls_found = bytearray(nsyms)
        for i in compress(range(first, nsyms), special[first:]):
            if not shnz[i]:
                continue
            if special[i] == 1:
                if vhigh is not None and vhigh[i] >= 0x80:
                    hidden.append(syms.name(i))
                else:
                    defined.append(syms.name(i))
                    tls_found[i] = 1
            elif valb[i]:
                ifunc.append(syms.name(i))
        found |= _int(tls_found)
    return defined, hidden, ifunc, undef_valued, found


# -- phase 5: what the relocations need ----------------------------------------------


def _index_mask(indices, count: int) -> int:
    """A 0/1 column of ``count`` bytes with the ``indices`` set, as an integer."""
    m = bytearray(count)
    for i in indices:
        m[i] = 1
    return _int(m)


def _needs(syms: _Symbols, rel: Relocs, nsyms: int, own_tls: FrozenSet[str]):
    """(undefined {name: weak}, plt_only, copy, unreferenced, tpoff, the
    mask of the referenced entries): the referenced entries that are
    SHN_UNDEF and not STB_LOCAL, and the rest."""
    nlm, undm = syms.nlm, syms.undm
    ref = _index_mask(rel.refd, nsyms)
    um = ref & undm & nlm
    unames = syms.pick(um)
    undefined: Dict[str, bool] = {}
    nonplt: Set[str] = set()
    if unames:
        usel = um.to_bytes(nsyms, "little")
        weak = list(map(truth, compress(syms.infob.translate(_CLS_WEAK), usel)))
        undefined = dict(zip(unames, weak))
        if len(undefined) != len(unames):  # one name in several entries: weak only if all are
            undefined = {}
            for n, w in zip(unames, weak):
                undefined[n] = undefined.get(n, True) and w
        if rel.nonplt:
            npm = _index_mask(rel.nonplt, nsyms)
            nonplt = set(compress(unames, compress(npm.to_bytes(nsyms, "little"), usel)))
    copy = syms.pick(_index_mask(rel.copy, nsyms) & nlm) if rel.copy else []
    unref = undm & nlm & (syms.full ^ ref) & ~0xFF  # index 0 is no symbol
    unreferenced = [n for n in syms.pick(unref) if n and n not in undefined]
    tpoff = own_tls
    tp_i = rel.tp
    if tp_i:  # a local symbol is the object's own TLS, as index 0 is
        nonlocal_m = syms.infob.translate(_CLS_NONLOCAL)
        tp_sorted = sorted(tp_i)
        tpoff = tpoff.union(syms.names_of(list(compress(tp_sorted, map(nonlocal_m.__getitem__, tp_sorted)))))
        if not all(map(nonlocal_m.__getitem__, tp_sorted)):
            tpoff = tpoff.union(("",))
    return undefined, frozenset(undefined).difference(nonplt), copy, unreferenced, tpoff, ref


def _own_references(syms: _Symbols, ref: int, found: int) -> FrozenSet[str]:
    """The names of the symbols the relocations reference (``ref``, a
    mask) that this object defines (``st_shndx != SHN_UNDEF``), that are
    not ``STB_LOCAL`` and whose entry is not one of its exports (``found``,
    from :func:`_definitions`; the caller takes out the names another
    entry exports)."""
    cand = ref & ~found & syms.shm & syms.nlm
    return frozenset(syms.pick(cand)) if cand else frozenset()


def _int(mask: Union[bytes, bytearray]) -> int:
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
    pread = guarded(pread)
    if head is None:
        head = pread(0, HEAD_SIZE)
    if not is_elf_magic(head):
        return None
    return _wrap(head, pread)



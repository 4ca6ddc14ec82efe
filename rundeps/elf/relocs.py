"""The relocation tables of one ELF object, as musl's ``do_relocs`` walks
them: :func:`reloc_tables` finds them in the dynamic table and
:class:`Relocs` gathers, table by table, the symbol indices they reference
(all of them, those of non-PLT and ``COPY`` relocations, those of
initial-exec TLS relocations) and the relocation types musl does not
support on the machine.  :mod:`rundeps.elf.symbols` turns the indices into
names.
"""

from __future__ import annotations

from itertools import compress, repeat
from operator import and_, eq, ne, rshift

from .facts import MAX_BAD_RELOCS
from .header import Header, read_exact, segment_offset, word_array
from .types import ElfError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import AbstractSet, Callable, Dict, FrozenSet, List, Sequence, Set, Tuple

__all__ = [
    "DT_RELR",
    "DT_RELRSZ",
    "MAX_RELOCS",
    "RELOC_CHUNK",
    "Relocs",
    "reloc_tables",
]

#: Relocations are read this many bytes at a time.
RELOC_CHUNK = 1024 * 1024
#: Largest relocation table accepted (bytes).
MAX_RELOCS = 4 * 1024 * 1024 * 1024

# Dynamic tags of the relocation tables.
DT_RELA, DT_RELASZ = 7, 8
DT_REL, DT_RELSZ, DT_PLTREL, DT_JMPREL, DT_PLTRELSZ = 17, 18, 20, 23, 2
DT_RELRSZ, DT_RELR = 35, 36

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
_NZ = bytes([0] + [1] * 255)
_UNLIKE: Dict[int, bytes] = {0: _NZ}  # byte value -> translate table: 0 for it, 1 for any other


def reloc_tables(dyn: Dict[int, int]) -> List[Tuple[int, int, bool]]:
    """(address, size, RELA?) of the relocation tables, in musl's order."""
    tables = []
    if DT_RELA in dyn and dyn.get(DT_RELASZ):
        tables.append((dyn[DT_RELA], dyn[DT_RELASZ], True))
    if DT_REL in dyn and dyn.get(DT_RELSZ):
        tables.append((dyn[DT_REL], dyn[DT_RELSZ], False))
    if DT_JMPREL in dyn and dyn.get(DT_PLTRELSZ):
        tables.append((dyn[DT_JMPREL], dyn[DT_PLTRELSZ], dyn.get(DT_PLTREL) == DT_RELA))
    return tables


class Relocs:
    """The symbol indices the relocations reference, with their types,
    gathered table by table (whole columns at a time, see :meth:`_chunk`)."""

    __slots__ = ("is64", "little", "word", "r_copy", "r_plt", "musl", "tmask", "tp_types", "ok_types",
                 "skip_off", "skip_pat", "refd", "nonplt", "copy", "seen", "tp")

    def __init__(self, h: Header):
        is64, little = h.elfclass == 64, h.little
        self.is64, self.little = is64, little
        kinds = _RELOC_KINDS.get(h.machine)
        self.r_copy, self.r_plt = kinds if kinds else (-1, -1)
        word = self.word = 8 if is64 else 4
        # Where, inside one entry, the symbol-index bytes of r_info are.
        if is64:
            symoff, symw = (word + 4, 4) if little else (word, 4)
        else:
            symoff, symw = (word + 1, 3) if little else (word, 3)
        self.refd: Set[int] = set()  # symbol indices some relocation (other than R_*_NONE) names
        self.nonplt: Set[int] = set()  # ... by a relocation other than JUMP_SLOT
        self.copy: Set[int] = set()  # ... by a COPY relocation
        musl = self.musl = _MUSL_RELOCS.get((h.machine, is64))
        self.seen: Set[int] = set()  # raw r_info types (of 64-bit targets: the low 32 bits) of every relocation
        self.tp: Set[int] = set()  # symbol indices of REL_TPOFF / REL_TPOFF_NEG relocations (0: none)
        # The entries skipped in C at the start of each chunk: those whose
        # r_info is a symbol-less RELATIVE (its whole r_info, type included, so
        # that the symbol-less IRELATIVE, TPOFF of the object's own TLS, ... are
        # seen) when musl's table for the machine is known, else those that name
        # no symbol.  Without musl's table no type is noted (``seen`` stays
        # empty), so the empty sets below are never consulted.
        self.tmask = 0
        self.tp_types: FrozenSet[int] = frozenset()
        self.ok_types: FrozenSet[int] = frozenset()
        if musl is not None:
            r_rel, self.tp_types, self.ok_types = musl
            self.tmask = 0x7FFFFFFF if is64 else 0xFF  # musl's R_TYPE
            self.skip_off, self.skip_pat = word, r_rel.to_bytes(word, "little" if little else "big")
        else:
            self.skip_off, self.skip_pat = symoff, bytes(symw)

    def scan_table(self, loads: Sequence[Tuple[int, int, int]], pread: Callable[[int, int], bytes], addr: int,
                   tsize: int, rela: bool) -> None:
        """Read one relocation table, in chunks of :data:`RELOC_CHUNK`."""
        if tsize > MAX_RELOCS:
            raise ElfError("relocation table too large")
        off, left = segment_offset(loads, addr, "relocation table")
        if tsize > left:
            raise ElfError("relocation table runs past its segment")
        per = 3 if rela else 2
        stride = self.word * per
        step = RELOC_CHUNK - RELOC_CHUNK % stride
        tsize -= tsize % stride
        pos = 0
        while pos < tsize:
            n = min(step, tsize - pos)
            chunk = read_exact(pread, off + pos, n, "relocation table")
            pos += n
            self._chunk(chunk, per, stride)
            if len(self.seen) > MAX_BAD_RELOCS:
                seen = self.seen = {t & self.tmask for t in self.seen}
                if len(seen - self.ok_types) > MAX_BAD_RELOCS:
                    raise ElfError("too many unsupported relocation types")

    def _chunk(self, chunk: bytes, per: int, stride: int) -> None:
        # The linker puts the (many) symbol-less relative relocations
        # first: find the first other entry in C, and take the columns
        # from there on.
        p = _first_unlike(chunk, self.skip_off, self.skip_pat, stride)
        if p < 0:
            return
        types, syms = _reloc_columns(chunk[p * stride:], self.is64, self.little, per)
        _note_relocs(types, syms, self.r_plt, self.r_copy, self.refd, self.nonplt, self.copy)
        if self.musl is not None:
            ts = set(types)
            self.seen |= ts
            tp_types = self.tp_types
            tp: AbstractSet[int] = tp_types.intersection(ts)
            if max(ts) > self.tmask:  # 64-bit: bit 31 set, which musl's R_TYPE drops
                tmask = self.tmask
                tp = {t for t in ts if t & tmask in tp_types}
            if tp:
                self.tp.update(compress(syms, map(tp.__contains__, types)))

    def finish(self) -> Tuple[FrozenSet[int], FrozenSet[str]]:
        """(unsupported relocation types, ``{""}`` if a TPOFF relocation
        names no symbol, else empty); index 0 is taken out of the sets."""
        self.refd.discard(0)
        self.nonplt.discard(0)
        self.copy.discard(0)
        bad_relocs: FrozenSet[int] = frozenset()
        seen, ok_types = self.seen, self.ok_types
        if seen and not seen <= ok_types:
            bad_relocs = frozenset(map(and_, seen, repeat(self.tmask))).difference(ok_types)
            if len(bad_relocs) > MAX_BAD_RELOCS:
                raise ElfError("too many unsupported relocation types")
        own_tls = frozenset({""}) if 0 in self.tp else frozenset()
        self.tp.discard(0)
        return bad_relocs, own_tls


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
        w = word_array("I", raw, little)  # r_info is words 2-3 of 2*per
        n = 2 * per
        if little:
            return w[2::n], w[3::n]
        return w[3::n], w[2::n]
    info = word_array("I", raw, little)[1::per]
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

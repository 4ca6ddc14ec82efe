"""The pyelftools reader: :class:`~rundeps.elf.types.ElfInfo` and
:class:`~rundeps.elf.facts.SymbolFacts` read with pyelftools' own structures.

It is the second reader, selected with ``RUNDEPS_ELF_READER=pyelftools``
(every command: the walk, ``wheel``, the resolver's look-ups), and the oracle
the tests hold the fast :mod:`struct` readers (:mod:`rundeps.elf.dynamic`,
:mod:`rundeps.elf.symbols`) to.  It shares **no code** with them: it imports
only their result types and :class:`~rundeps.elf.types.ElfError` (a test
checks the imports), and it does its own bounds checks.  (The one shared
piece is the decoding of a dlopen note's JSON descriptor,
:mod:`rundeps.elf.notes`: not ELF reading.)

What pyelftools parses here: the ELF header (``ELFFile``: class, data
encoding, machine, type, ``PN_XNUM`` through ``num_segments``), program
headers and dynamic entries (``Elf_Phdr`` / ``Elf_Dyn``), and for symbols
the ``PT_DYNAMIC`` ``DynamicSegment`` (``get_symbol``, address-to-offset
mapping, ``get_relocation_tables``), ``GNUHashTable`` / ``ELFHashTable`` and
``Elf_Versym``.  ``ELFFile.iter_segments`` is not used for ``ElfInfo``
because its ``DynamicSegment`` walks every section header to find a string
table; the loader (and this reader) use ``DT_STRTAB`` through ``PT_LOAD``.
It is slow -- about 100 times the fast readers -- which is why it is not the
default (see docs/speed.md).  Any exception from pyelftools becomes
:class:`ElfError`.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Dict, List, Optional, Set, Tuple

from .facts import SymbolFacts, reloc_facts
from .types import ElfError, ElfInfo

__all__ = ["read_elf_pyelftools", "read_symbols_pyelftools"]

_MAX_PHNUM = 65535
_MAX_DYN = 65536
_MAX_STRING = 16384
_MAX_INTERP = 4096
_MAX_OFFSET = (1 << 63) - 1
_MAX_NOTE_SEGMENT = 1 << 16

# (pyelftools' e_machine name, class, little endian) -> Alpine arch.
_ARCHES: Dict[Tuple[Optional[str], int, bool], str] = {
    ("EM_X86_64", 64, True): "x86_64",
    ("EM_AARCH64", 64, True): "aarch64",
    ("EM_PPC64", 64, True): "ppc64le",
    ("EM_PPC64", 64, False): "ppc64",
    ("EM_S390", 64, False): "s390x",
    ("EM_RISCV", 64, True): "riscv64",
    ("EM_LOONGARCH", 64, True): "loongarch64",
    ("EM_386", 32, True): "x86",
    ("EM_ARM", 32, True): "armv7",
}
_TYPES = ("ET_REL", "ET_EXEC", "ET_DYN", "ET_CORE")

# What musl's do_relocs does with each relocation type, per (pyelftools'
# e_machine name, class): the types of musl's arch/<arch>/reloc.h REL_*
# macros (numbers from musl's include/elf.h, written out because pyelftools'
# own enums are incomplete or wrong for some of them, e.g. AArch64 and ARM
# TLS), "tp" marking REL_TPOFF / REL_TPOFF_NEG.  Any other type is an
# "unsupported relocation type" for musl; REL_NONE (0) is skipped.
_MUSL_TYPES = {
    ("EM_X86_64", 64): {"R_X86_64_NONE": 0, "R_X86_64_64": 1, "R_X86_64_PC32": 2, "R_X86_64_COPY": 5,
                        "R_X86_64_GLOB_DAT": 6, "R_X86_64_JUMP_SLOT": 7, "R_X86_64_RELATIVE": 8,
                        "R_X86_64_DTPMOD64": 16, "R_X86_64_DTPOFF64": 17, "tp R_X86_64_TPOFF64": 18,
                        "R_X86_64_TLSDESC": 36},
    ("EM_386", 32): {"R_386_NONE": 0, "R_386_32": 1, "R_386_PC32": 2, "R_386_COPY": 5, "R_386_GLOB_DAT": 6,
                     "R_386_JMP_SLOT": 7, "R_386_RELATIVE": 8, "tp R_386_TLS_TPOFF": 14,
                     "R_386_TLS_DTPMOD32": 35, "R_386_TLS_DTPOFF32": 36, "tp R_386_TLS_TPOFF32": 37,
                     "R_386_TLS_DESC": 41},
    ("EM_AARCH64", 64): {"R_AARCH64_NONE": 0, "R_AARCH64_ABS64": 257, "R_AARCH64_COPY": 1024,
                         "R_AARCH64_GLOB_DAT": 1025, "R_AARCH64_JUMP_SLOT": 1026, "R_AARCH64_RELATIVE": 1027,
                         "R_AARCH64_TLS_DTPMOD64": 1028, "R_AARCH64_TLS_DTPREL64": 1029,
                         "tp R_AARCH64_TLS_TPREL64": 1030, "R_AARCH64_TLSDESC": 1031},
    ("EM_ARM", 32): {"R_ARM_NONE": 0, "R_ARM_ABS32": 2, "R_ARM_TLS_DESC": 13, "R_ARM_TLS_DTPMOD32": 17,
                     "R_ARM_TLS_DTPOFF32": 18, "tp R_ARM_TLS_TPOFF32": 19, "R_ARM_COPY": 20,
                     "R_ARM_GLOB_DAT": 21, "R_ARM_JUMP_SLOT": 22, "R_ARM_RELATIVE": 23},
    ("EM_PPC64", 64): {"R_PPC64_NONE": 0, "R_PPC64_COPY": 19, "R_PPC64_GLOB_DAT": 20, "R_PPC64_JMP_SLOT": 21,
                       "R_PPC64_RELATIVE": 22, "R_PPC64_ADDR64": 38, "R_PPC64_UADDR64": 43,
                       "R_PPC64_DTPMOD64": 68, "tp R_PPC64_TPREL64": 73, "R_PPC64_DTPREL64": 78},
    ("EM_S390", 64): {"R_390_NONE": 0, "R_390_COPY": 9, "R_390_GLOB_DAT": 10, "R_390_JMP_SLOT": 11,
                      "R_390_RELATIVE": 12, "R_390_64": 22, "R_390_TLS_DTPMOD": 54, "R_390_TLS_DTPOFF": 55,
                      "tp R_390_TLS_TPOFF": 56},
    ("EM_RISCV", 64): {"R_RISCV_NONE": 0, "R_RISCV_64": 2, "R_RISCV_RELATIVE": 3, "R_RISCV_COPY": 4,
                       "R_RISCV_JUMP_SLOT": 5, "R_RISCV_TLS_DTPMOD64": 7, "R_RISCV_TLS_DTPREL64": 9,
                       "tp R_RISCV_TLS_TPREL64": 11, "R_RISCV_TLSDESC": 12},
    ("EM_LOONGARCH", 64): {"R_LARCH_NONE": 0, "R_LARCH_64": 2, "R_LARCH_RELATIVE": 3, "R_LARCH_COPY": 4,
                           "R_LARCH_JUMP_SLOT": 5, "R_LARCH_TLS_DTPMOD64": 7, "R_LARCH_TLS_DTPREL64": 9,
                           "tp R_LARCH_TLS_TPREL64": 11, "R_LARCH_TLS_DESC64": 14},
}
#: More different unsupported relocation types than this: a broken file.
_MAX_BAD_TYPES = 4096


def _read(f, offset: int, size: int) -> bytes:
    if size <= 0:
        return b""
    if offset < 0 or offset + size > _MAX_OFFSET:
        raise ElfError("offset out of range")
    f.seek(offset)
    return f.read(size)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _dirs(s: str) -> Tuple[str, ...]:
    return tuple(p for p in s.split(":") if p)


def _magic(f) -> bool:
    f.seek(0)
    return f.read(4) == b"\x7fELF"


def read_elf_pyelftools(f: BinaryIO) -> Optional[ElfInfo]:
    """The :class:`ElfInfo` of ``f`` (a seekable binary file), None if it
    does not start with the ELF magic."""
    return _read_elf(f, _elf)


def _read_elf(f, read):
    """``read(f)`` for an ELF file (None without the magic), whatever
    pyelftools or construct raise on a broken one made an :class:`ElfError`."""
    if not _magic(f):
        return None
    try:
        return read(f)
    except ElfError:
        raise
    except Exception as exc:  # anything pyelftools / construct raises
        raise ElfError(f"pyelftools: {type(exc).__name__}: {exc}"[:200]) from None


def _elf(f) -> ElfInfo:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE

    f.seek(0)
    ef = ELFFile(f)
    machine = ef["e_machine"]
    machine_name = machine if isinstance(machine, str) else None
    number = ENUM_E_MACHINE[machine] if isinstance(machine, str) else machine
    etype = ef["e_type"]
    etype_name = etype if etype in _TYPES else f"ET_{ENUM_E_TYPE.get(etype, etype)}"
    phdrs = _phdrs(ef, f)
    interp = _interp(f, phdrs)
    needed: List[str] = []
    soname = None
    rpath: Tuple[str, ...] = ()
    runpath: Tuple[str, ...] = ()
    ph = next((p for p in phdrs if p["p_type"] == "PT_DYNAMIC"), None)
    if ph is not None:
        needed, soname, rpath, runpath = _dynamic_strings(ef, f, phdrs, ph)
    dlopen_notes: list = []
    for p in phdrs:
        if p["p_type"] == "PT_NOTE" and 12 <= p["p_filesz"] <= _MAX_NOTE_SEGMENT and len(dlopen_notes) < 16:
            dlopen_notes.extend(_dlopen_notes(ef, p["p_offset"], p["p_filesz"]))
    return ElfInfo(
        target=(ef.elfclass, ef.little_endian, number, _ARCHES.get((machine_name, ef.elfclass, ef.little_endian))),
        etype=etype_name,
        interp=interp,
        dynamic=(tuple(needed), soname, rpath, runpath),
        dlopen_notes=tuple(dlopen_notes),
    )


def _phdrs(ef, f) -> list:
    """The program headers, parsed by pyelftools' ``Elf_Phdr`` (within the
    same bounds as the fast reader)."""
    if ef["e_phnum"] == 0xFFFF and (not ef["e_shoff"] or ef["e_shentsize"] < ef.structs.Elf_Shdr.sizeof()):
        raise ElfError("PN_XNUM without section header 0")
    phnum = ef.num_segments()
    if phnum > _MAX_PHNUM:
        raise ElfError(f"too many program headers ({phnum})")
    phdr = ef.structs.Elf_Phdr
    entsize = ef["e_phentsize"]
    if phnum and entsize < phdr.sizeof():
        raise ElfError(f"bad program header entry size {entsize}")
    table = _read(f, ef["e_phoff"], entsize * phnum)
    if len(table) < entsize * phnum:
        raise ElfError("truncated program header table")
    return [phdr.parse(table[i * entsize:i * entsize + phdr.sizeof()]) for i in range(phnum)]


def _interp(f, phdrs) -> Optional[str]:
    """The first ``PT_INTERP``'s string, None without one."""
    ph = next((p for p in phdrs if p["p_type"] == "PT_INTERP"), None)
    if ph is None:
        return None
    if ph["p_filesz"] > _MAX_INTERP:
        raise ElfError("PT_INTERP too long")
    raw = _read(f, ph["p_offset"], ph["p_filesz"])
    if len(raw) < ph["p_filesz"]:
        raise ElfError("truncated PT_INTERP")
    return _text(raw.split(b"\0", 1)[0])


def _dynamic_strings(ef, f, phdrs, ph):
    """(needed, soname, rpath, runpath) of the ``PT_DYNAMIC`` segment ``ph``."""
    dyn = ef.structs.Elf_Dyn
    esize = dyn.sizeof()
    count = ph["p_filesz"] // esize
    if count == 0:
        raise ElfError("empty dynamic segment")
    raw = _read(f, ph["p_offset"], min(count, _MAX_DYN) * esize)
    if len(raw) < esize:
        raise ElfError("dynamic segment outside the file")
    tags = []
    for i in range(len(raw) // esize):
        tag = dyn.parse(raw[i * esize:(i + 1) * esize])
        if tag["d_tag"] == "DT_NULL":
            break
        tags.append(tag)
    else:
        raise ElfError("dynamic segment without DT_NULL")
    needed: List[str] = []
    soname = None
    rpath: Tuple[str, ...] = ()
    runpath: Tuple[str, ...] = ()
    strtab = next((t["d_val"] for t in tags if t["d_tag"] == "DT_STRTAB"), None)
    strsz = next((t["d_val"] for t in tags if t["d_tag"] == "DT_STRSZ"), None)
    wanted = [t for t in tags if t["d_tag"] in ("DT_NEEDED", "DT_SONAME", "DT_RPATH", "DT_RUNPATH")]
    if not wanted:
        return needed, soname, rpath, runpath
    if strtab is None:
        raise ElfError("dynamic strings without DT_STRTAB")
    segs = [p for p in phdrs if p["p_type"] == "PT_LOAD" and p["p_vaddr"] <= strtab < p["p_vaddr"] + p["p_filesz"]]
    if not segs:
        raise ElfError("DT_STRTAB outside every PT_LOAD segment")
    seg = segs[0]
    tab_off = seg["p_offset"] + strtab - seg["p_vaddr"]
    limit = seg["p_offset"] + seg["p_filesz"] - tab_off
    if strsz is not None:
        limit = min(limit, strsz)
    for tag in wanted:
        o = tag["d_val"]
        if o >= limit:
            raise ElfError("dynamic string offset outside the string table")
        raw = _read(f, tab_off + o, min(_MAX_STRING, limit - o))
        nul = raw.find(b"\0")
        if nul < 0:
            raise ElfError("unterminated dynamic string")
        s = _text(raw[:nul])
        if tag["d_tag"] == "DT_NEEDED":
            needed.append(s)
        elif tag["d_tag"] == "DT_SONAME":
            soname = s
        elif tag["d_tag"] == "DT_RPATH":
            rpath = _dirs(s)
        else:
            runpath = _dirs(s)
    return needed, soname, rpath, runpath


def _dlopen_notes(ef, offset: int, size: int) -> list:
    """pyelftools' ``iter_notes`` over one PT_NOTE segment, keeping the
    ``FDO`` dlopen notes; a note pyelftools cannot parse ends the segment, as
    the fast reader skips what it cannot read.  (Only the JSON descriptor's
    decoding, :func:`rundeps.elf.notes.dlopen_note_entries`, is shared: it is
    not ELF reading.)"""
    from elftools.elf.notes import iter_notes

    from .notes import DLOPEN_NOTE_OWNER, DLOPEN_NOTE_TYPE, dlopen_note_entries

    out: list = []
    try:
        for note in iter_notes(ef, offset, size):
            if note["n_name"] == DLOPEN_NOTE_OWNER.decode() and note["n_type"] == DLOPEN_NOTE_TYPE:
                out.extend(dlopen_note_entries(bytes(note["n_descdata"])))
    except Exception:  # a broken note is advisory metadata, not a broken file
        pass
    return out


def read_symbols_pyelftools(f: BinaryIO) -> Optional[SymbolFacts]:
    """The :class:`SymbolFacts` of ``f``, by the rules of
    :mod:`rundeps.elf.symbols`, read with pyelftools; None if not ELF."""
    return _read_elf(f, _pyelftools)


def _pyelftools(f) -> SymbolFacts:
    from elftools.elf.elffile import ELFFile

    f.seek(0)
    ef = ELFFile(f)
    # a PT_DYNAMIC segment is a DynamicSegment (iter_segments is typed as giving Segment)
    seg: Any = next(iter(ef.iter_segments(type="PT_DYNAMIC")), None)
    if seg is None:
        return SymbolFacts({}, frozenset())
    tags: Dict[str, int] = {}
    for t in seg.iter_tags():
        tags.setdefault(t.entry.d_tag, t.entry.d_val)
    refs, bad_relocs, tp_syms = _relocations(ef, seg, tags)
    tpoff = {""} if 0 in tp_syms else set()
    relr = "DT_RELR" in tags and bool(tags.get("DT_RELRSZ"))  # applied by musl 1.2.4 and later
    if "DT_SYMTAB" not in tags:
        if refs:
            raise ElfError("relocations against symbols without DT_SYMTAB")
        return SymbolFacts({}, frozenset(),
                           relocs=reloc_facts(tpoff=frozenset(tpoff), bad_relocs=bad_relocs, relr=relr))

    nsyms, first = _hash_count(ef, seg, tags)
    if refs:
        nsyms = max(nsyms, max(refs) + 1)
    syms = [seg.get_symbol(i) for i in range(nsyms)]
    hidden_bits = _hidden_bits(ef, f, seg, tags, nsyms)
    defined, hidden, ifunc, undef_valued = _exports(syms, first, hidden_bits)
    undefined, nonplt, copy, own_refs = _bound(ef, syms, refs)
    for i in tp_syms:
        if i:
            s = syms[i]
            tpoff.add("" if s["st_info"]["bind"] == "STB_LOCAL" else s.name)
    unreferenced = {s.name for i, s in enumerate(syms) if i and i not in refs and s["st_shndx"] == "SHN_UNDEF"
                    and s["st_info"]["bind"] != "STB_LOCAL" and s.name and s.name not in undefined}
    return SymbolFacts(
        undefined=undefined,
        defined=frozenset(defined),
        hidden=frozenset(hidden - defined),
        ifunc=frozenset(ifunc - defined),
        undef_valued=frozenset(undef_valued),
        nsyms=nsyms,
        relocs=reloc_facts(
            plt_only=frozenset(n for n in undefined if n not in nonplt),
            copy=frozenset(copy),
            unreferenced=frozenset(unreferenced),
            tpoff=frozenset(tpoff),
            bad_relocs=bad_relocs,
            relr=relr,
            own_unfound=frozenset(own_refs - defined),
        ),
    )


def _relocations(ef, seg, tags):
    """({symbol index: [relocation types]} of the relocations that name a
    symbol, the types musl does not support, the symbol indices of
    initial-exec TLS relocations, 0 included), from pyelftools'
    ``RelocationTable``."""
    musl = _MUSL_TYPES.get((ef["e_machine"], ef.elfclass))
    musl_ok = set(musl.values()) if musl else set()
    musl_tp = {v for k, v in musl.items() if k.startswith("tp ")} if musl else set()
    r_type_mask = 0x7FFFFFFF if ef.elfclass == 64 else 0xFF  # musl's R_TYPE
    bad = set()
    tp_syms = set()  # symbol indices of initial-exec TLS relocations, 0 included
    refs: Dict[int, List[int]] = {}
    if "DT_SYMTAB" in tags or any(k in tags for k in ("DT_REL", "DT_RELA", "DT_JMPREL")):
        for kind, rt in seg.get_relocation_tables().items():
            if kind == "RELR":
                continue
            for r in rt.iter_relocations():
                if r["r_info_sym"] and r["r_info_type"]:
                    refs.setdefault(r["r_info_sym"], []).append(r["r_info_type"])
                if musl:
                    typ = r["r_info_type"] & r_type_mask
                    if typ not in musl_ok:
                        bad.add(typ)
                        if len(bad) > _MAX_BAD_TYPES:
                            raise ElfError("too many unsupported relocation types")
                    elif typ in musl_tp:
                        tp_syms.add(r["r_info_sym"])
    return refs, frozenset(bad), tp_syms


def _hash_count(ef, seg, tags) -> Tuple[int, Optional[int]]:
    """(symbols, first index musl's lookup considers; None: no hash table)
    from pyelftools' ``GNUHashTable`` / ``ELFHashTable``."""
    from elftools.elf.hash import ELFHashTable, GNUHashTable

    if "DT_GNU_HASH" in tags:
        _, off = seg.get_table_offset("DT_GNU_HASH")
        gh = GNUHashTable(ef, off, seg)
        return gh.get_number_of_symbols(), gh.params["symoffset"]
    if "DT_HASH" in tags:
        _, off = seg.get_table_offset("DT_HASH")
        try:
            table = ELFHashTable(ef, off, None, seg)  # pyelftools 0.33: (elffile, offset, size, symtab)
        except TypeError:
            # 0.32 and older (the last for Python 3.9): no size
            table = ELFHashTable(ef, off, seg)  # type: ignore[call-arg]
        return table.get_number_of_symbols(), 1
    return 0, None


def _hidden_bits(ef, f, seg, tags, nsyms: int) -> List[bool]:
    """Per symbol: its ``Elf_Versym`` has the hidden bit."""
    from elftools.common.utils import struct_parse

    hidden_bits = [False] * nsyms
    if "DT_VERSYM" in tags:
        _, voff = seg.get_table_offset("DT_VERSYM")
        for i in range(nsyms):
            v = struct_parse(ef.structs.Elf_Versym, f, stream_pos=voff + 2 * i)["ndx"]
            if isinstance(v, str):  # VER_NDX_LOCAL / VER_NDX_GLOBAL (0, 1): never hidden
                continue
            hidden_bits[i] = bool(v & 0x8000)
    return hidden_bits


def _exports(syms, first: Optional[int], hidden_bits: List[bool]):
    """(defined, hidden, ifunc, undef_valued) names, symbol by symbol."""
    ok_types = ("STT_NOTYPE", "STT_OBJECT", "STT_FUNC", "STT_COMMON", "STT_TLS")
    ok_binds = ("STB_GLOBAL", "STB_WEAK", "STB_GNU_UNIQUE", "STB_LOOS")  # pyelftools names GNU_UNIQUE (10) STB_LOOS
    defined: Set[str] = set()
    hidden: Set[str] = set()
    ifunc: Set[str] = set()
    undef_valued: Set[str] = set()
    if first is None:
        return defined, hidden, ifunc, undef_valued
    for i in range(first, len(syms)):
        s = syms[i]
        typ, bind = s["st_info"]["type"], s["st_info"]["bind"]
        if bind not in ok_binds:
            continue
        if s["st_shndx"] == "SHN_UNDEF":
            if s["st_value"] != 0 and typ != "STT_TLS" and typ in ok_types and not hidden_bits[i]:
                undef_valued.add(s.name)
            continue
        if s["st_value"] == 0 and typ != "STT_TLS":
            continue
        if typ not in ok_types:
            if typ in ("STT_GNU_IFUNC", "STT_LOOS"):
                ifunc.add(s.name)
            continue
        if hidden_bits[i]:
            hidden.add(s.name)
        else:
            defined.add(s.name)
    return defined, hidden, ifunc, undef_valued


def _bound(ef, syms, refs: Dict[int, List[int]]):
    """(undefined {name: weak}, names some non-JUMP_SLOT relocation
    references, names COPY relocations reference, names of the defined
    symbols relocations reference, not ``STB_LOCAL``)."""
    from elftools.elf import enums

    arch_enum = {
        "EM_X86_64": ("R_X86_64_COPY", "R_X86_64_JUMP_SLOT", enums.ENUM_RELOC_TYPE_x64),
        "EM_386": ("R_386_COPY", "R_386_JUMP_SLOT", enums.ENUM_RELOC_TYPE_i386),
        "EM_AARCH64": ("R_AARCH64_COPY", "R_AARCH64_JUMP_SLOT", enums.ENUM_RELOC_TYPE_AARCH64),
        "EM_ARM": ("R_ARM_COPY", "R_ARM_JUMP_SLOT", enums.ENUM_RELOC_TYPE_ARM),
    }.get(ef["e_machine"])
    copy_t = plt_t = None
    if arch_enum:
        copy_t, plt_t = arch_enum[2][arch_enum[0]], arch_enum[2][arch_enum[1]]
    undefined: Dict[str, bool] = {}
    nonplt = set()
    copy = set()
    own_refs = set()
    for i, types in refs.items():
        s = syms[i]
        bind = s["st_info"]["bind"]
        if bind == "STB_LOCAL":
            continue
        if copy_t is not None and copy_t in types:
            copy.add(s.name)
        if s["st_shndx"] != "SHN_UNDEF":
            own_refs.add(s.name)
            continue
        undefined[s.name] = undefined.get(s.name, True) and bind == "STB_WEAK"
        if any(t != plt_t for t in types):
            nonplt.add(s.name)
    return undefined, nonplt, copy, own_refs

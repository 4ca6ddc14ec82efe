"""The ELF header and the program header table, for the fast readers.

:func:`parse_header` reads the ELF header (class, data encoding, type,
machine, where the program headers are; ``PN_XNUM`` through section header
0), :func:`program_headers` is the one scan of the program header table that
the ElfInfo reader (:mod:`.dynamic`), the symbol reader (:mod:`.symbols`) and
the wheel reader's range planning share, and :func:`guarded` /
:func:`parse_as_elf_error` are the offset checks and the error translation
every fast reader applies.  :func:`segment_offset`, :func:`table_at`,
:func:`read_exact` and :func:`word_array` read what the dynamic table points
at (the symbol and relocation readers share them).  The pyelftools reader
does not use any of it.
"""

from __future__ import annotations

import errno
import struct
import sys
from array import array

from .types import ElfError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "MAX_OFFSET",
    "MAX_PHNUM",
    "Header",
    "formats",
    "guarded",
    "parse_as_elf_error",
    "parse_header",
    "program_headers",
    "read_exact",
    "segment_offset",
    "table_at",
    "word_array",
]

# Caps that keep hostile files cheap.
MAX_PHNUM = 65535
PN_XNUM = 0xFFFF

#: Offsets at or past this are not in any file (pread/lseek take a signed
#: 64-bit offset; file systems stop far earlier and answer EINVAL).
MAX_OFFSET = (1 << 63) - 1

_NATIVE_LITTLE = sys.byteorder == "little"

# (ehdr after e_ident, phdr, dyn) formats, and the field order of phdrs.
_FORMATS: Dict[Tuple[int, bool], Tuple[struct.Struct, struct.Struct, struct.Struct, struct.Struct]] = {}


def formats(elfclass: int, little: bool) -> Tuple[struct.Struct, struct.Struct, struct.Struct, struct.Struct]:
    """The (ELF header after ``e_ident``, program header, dynamic entry,
    section header) :class:`struct.Struct` formats of a class and byte order."""
    key = (elfclass, little)
    f = _FORMATS.get(key)
    if f is None:
        e = "<" if little else ">"
        if elfclass == 64:
            # e_type e_machine e_version e_entry e_phoff e_shoff e_flags e_ehsize
            # e_phentsize e_phnum e_shentsize e_shnum e_shstrndx
            ehdr = struct.Struct(e + "HHIQQQIHHHHHH")
            # p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align
            phdr = struct.Struct(e + "IIQQQQQQ")
            dyn = struct.Struct(e + "qQ")
            # sh_name sh_type sh_flags sh_addr sh_offset sh_size sh_link sh_info
            shdr0 = struct.Struct(e + "IIQQQQII")
        else:
            ehdr = struct.Struct(e + "HHIIIIIHHHHHH")
            # p_type p_offset p_vaddr p_paddr p_filesz p_memsz p_flags p_align
            phdr = struct.Struct(e + "IIIIIIII")
            dyn = struct.Struct(e + "iI")
            shdr0 = struct.Struct(e + "IIIIIIII")
        f = _FORMATS[key] = (ehdr, phdr, dyn, shdr0)
    return f


class Header:
    """The parts of the ELF header the fast readers use."""

    __slots__ = ("elfclass", "little", "etype", "machine", "phoff", "phentsize", "phnum", "fmts")

    elfclass: int  # 32 or 64
    little: bool
    etype: int
    machine: int
    phoff: int
    phentsize: int
    phnum: int
    fmts: Tuple[struct.Struct, struct.Struct, struct.Struct, struct.Struct]  # see formats()


def parse_header(head: bytes, pread: Callable[[int, int], bytes]) -> Header:
    """The :class:`Header` of an ELF file whose first bytes are ``head``
    (which has the magic); ``pread`` is only used for ``PN_XNUM``."""
    if len(head) < 16:
        raise ElfError("truncated ELF identification")
    ei_class, ei_data = head[4], head[5]
    if ei_class == 1:
        elfclass = 32
    elif ei_class == 2:
        elfclass = 64
    else:
        raise ElfError(f"unknown ELF class {ei_class}")
    if ei_data == 1:
        little = True
    elif ei_data == 2:
        little = False
    else:
        raise ElfError(f"unknown ELF data encoding {ei_data}")
    fmts = formats(elfclass, little)
    ehdr_s, phdr_s, _dyn_s, shdr0_s = fmts
    if len(head) < 16 + ehdr_s.size:
        raise ElfError("truncated ELF header")
    (e_type, e_machine, _ver, _entry, e_phoff, e_shoff, _flags, _ehsize,
     e_phentsize, e_phnum, e_shentsize, _shnum, _shstrndx) = ehdr_s.unpack_from(head, 16)
    if e_phnum == PN_XNUM:
        # The real count is in section header 0's sh_info.
        if e_shoff == 0 or e_shentsize < shdr0_s.size:
            raise ElfError("PN_XNUM without section header 0")
        raw = pread(e_shoff, shdr0_s.size)
        if len(raw) < shdr0_s.size:
            raise ElfError("truncated section header 0")
        e_phnum = shdr0_s.unpack(raw)[7]
    if e_phnum and e_phentsize < phdr_s.size:
        raise ElfError(f"bad program header entry size {e_phentsize}")
    if e_phnum > MAX_PHNUM:
        raise ElfError(f"too many program headers ({e_phnum})")
    h = Header()
    h.elfclass, h.little, h.etype, h.machine = elfclass, little, e_type, e_machine
    h.phoff, h.phentsize, h.phnum, h.fmts = e_phoff, e_phentsize, e_phnum, fmts
    return h


def program_headers(h: Header, head: bytes,
                    pread: Callable[[int, int], bytes]) -> Optional[List[Tuple[int, int, int, int, int]]]:
    """The program headers, in file order, as ``(p_type, p_flags, p_offset,
    p_vaddr, p_filesz)``, read in one go (from ``head`` when they are in
    it); None when the table runs past the end of the file (each caller
    names that in its own words)."""
    phoff, entsize, phnum = h.phoff, h.phentsize, h.phnum
    size = entsize * phnum
    if phoff + size <= len(head):
        table, base = head, phoff
    else:
        table, base = (pread(phoff, size) if size else b""), 0
        if len(table) < size:
            return None
    phdr_s = h.fmts[1]
    if entsize == phdr_s.size:  # the usual case: the whole table unpacked in C
        rows: Iterable[Tuple[int, ...]] = phdr_s.iter_unpack(table[base:base + size])
    else:
        unpack = phdr_s.unpack_from
        rows = [unpack(table, base + i * entsize) for i in range(phnum)]
    if h.elfclass == 64:  # p_type p_flags p_offset p_vaddr p_paddr p_filesz ...
        return [(ph[0], ph[1], ph[2], ph[3], ph[5]) for ph in rows]
    # p_type p_offset p_vaddr p_paddr p_filesz p_memsz p_flags p_align
    return [(ph[0], ph[6], ph[1], ph[2], ph[4]) for ph in rows]


def _einval(exc: OSError) -> bool:
    return exc.errno == errno.EINVAL


def guarded(read_at: Callable[[int, int], bytes]) -> Callable[[int, int], bytes]:
    """``read_at(offset, size)`` with the offset checks every reader needs: an
    offset no file can have is the ELF file's fault (:class:`ElfError`); other
    I/O errors (EIO, ...) are the file's and propagate."""

    def pread(offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        if offset + size > MAX_OFFSET:
            raise ElfError("offset out of range")
        try:
            return read_at(offset, size)
        except OverflowError:
            raise ElfError("offset out of range") from None
        except OSError as exc:
            # An offset past the file system's largest file (EINVAL).
            if _einval(exc):
                raise ElfError("offset out of range") from None
            raise

    return pread


def parse_as_elf_error(parse, head: bytes, pread, what: str, also: tuple = ()):
    """``parse(head, pread)``, with what a malformed table makes the unpacking
    raise (``struct.error``, ``ValueError``, ``OverflowError``,
    ``MemoryError``, and ``also``) turned into :class:`ElfError` ("malformed
    <what> (...)"); ElfError and I/O errors pass as they are."""
    try:
        return parse(head, pread)
    except (ElfError, OSError):
        raise
    except (struct.error, ValueError, OverflowError, MemoryError) + also as exc:
        raise ElfError(f"malformed {what} ({type(exc).__name__})") from None


# -- reading what the dynamic table points at ----------------------------------


def read_exact(pread: Callable[[int, int], bytes], offset: int, size: int, what: str) -> bytes:
    """The ``size`` bytes at ``offset``; ElfError (``what`` outside the file) if fewer."""
    raw = pread(offset, size)
    if len(raw) < size:
        raise ElfError(f"{what} outside the file")
    return raw


def word_array(code: str, raw: bytes, little: bool) -> array:
    """``raw`` (whole items only) as an :class:`array.array` of ``code``, in native order."""
    a = array(code)
    n = len(raw) - len(raw) % a.itemsize
    a.frombytes(raw[:n] if n != len(raw) else raw)
    if little != _NATIVE_LITTLE:
        a.byteswap()
    return a


def segment_offset(loads: Sequence[Tuple[int, int, int]], addr: int, what: str) -> Tuple[int, int]:
    """(file offset, bytes left in its segment) of an address."""
    for vaddr, seg_filesz, seg_off in loads:
        if vaddr <= addr < vaddr + seg_filesz:
            return seg_off + (addr - vaddr), vaddr + seg_filesz - addr
    raise ElfError(f"{what} outside every PT_LOAD segment")


def table_at(loads: Sequence[Tuple[int, int, int]], pread: Callable[[int, int], bytes], addr: int, size: int,
             what: str) -> bytes:
    """The ``size`` bytes at the address ``addr``, inside its segment."""
    off, left = segment_offset(loads, addr, what)
    if size > left:
        raise ElfError(f"{what} runs past its segment")
    return read_exact(pread, off, size, what)

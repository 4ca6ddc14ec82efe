"""Read the few parts of an ELF file that decide what it needs at run time.

Only the ELF header, the program header table, ``PT_INTERP``, ``PT_DYNAMIC``
and the strings the dynamic entries point at are read -- never the whole file
and never the section headers (the loader does not use them either).  The
``DT_STRTAB`` address is mapped to a file offset through the ``PT_LOAD``
segments, as musl's loader sees it.

Two readers give the same :class:`ElfInfo`:

* the default one, below, unpacks the structures with :mod:`struct` in a few
  bounded reads.  It is what :func:`rundeps.elf.read_elf` uses, because it is about
  60 times faster per file than building a pyelftools ``ELFFile`` (measured on
  the 309 ELF files of a wheel-made site-packages: 1.8 ms per file with
  ``ELFFile`` + ``iter_segments`` + ``iter_tags`` against ~30 us, and the import
  of ``elftools.elf.elffile`` alone costs ~35 ms of start-up; see
  ``scripts/bench.py``);
* :func:`rundeps.elf.pyelftools.read_elf_pyelftools` uses pyelftools'
  ``ELFFile`` (segments and dynamic tags only, inside the same bounds); it
  shares no code with the reader here.  It is selected with
  ``RUNDEPS_ELF_READER=pyelftools`` (or ``reader="pyelftools"``) for every
  command -- :mod:`rundeps.elf.reader` is the one place that chooses -- and
  is the oracle the tests compare the fast reader against.

Hostile input (huge ``e_phnum``, offsets past the end, ``DT_STRTAB`` outside
every segment, strings without NUL, no ``DT_NULL``, ...) raises
:class:`ElfError` -- never another exception -- and every read is capped, so
memory and time stay bounded.
"""

from __future__ import annotations

import os

from .header import guarded, parse_as_elf_error, parse_header, program_headers
from .types import PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE, ElfError, ElfInfo, is_elf_magic, machine_arch

# typing is only needed by type checkers (annotations are strings here);
# not importing it keeps start-up light.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO, Callable, Dict, List, Optional, Tuple

    from .types import DynamicNames

__all__ = [
    "file_pread",
    "parse_fd",
    "read_elf_file",
    "read_elf_pread",
]

# Caps that keep hostile files cheap.
MAX_DYN_ENTRIES = 65536
MAX_STRING = 16384
MAX_INTERP = 4096
#: A PT_NOTE segment larger than this is not read for dlopen notes (build-id,
#: ABI tag and a few dlopen notes take a few hundred bytes).
MAX_NOTE_SEGMENT = 1 << 16
#: A string-table window read in one go when the wanted strings are close together.
STR_WINDOW = 65536

DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29

_ETYPES = {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}


def _etype(n: int) -> str:
    return _ETYPES.get(n) or f"ET_{n}"


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _split_path(s: Optional[str]) -> Tuple[str, ...]:
    if not s:
        return ()
    return tuple(p for p in s.split(":") if p)


def _parse(head: bytes, pread: Callable[[int, int], bytes]) -> ElfInfo:
    """Parse an ELF whose first bytes are ``head``; ``pread(offset, size)``
    returns at most ``size`` bytes (fewer at the end of the file)."""
    h = parse_header(head, pread)
    phdrs = program_headers(h, head, pread)
    if phdrs is None:
        raise ElfError("truncated program header table")
    interp_ph = None
    dynamic_ph = None
    loads: List[Tuple[int, int, int]] = []  # (vaddr, filesz, offset)
    notes: List[Tuple[int, int]] = []  # (offset, filesz)
    for p_type, _flags, offset, vaddr, filesz in phdrs:
        if p_type == PT_LOAD:
            loads.append((vaddr, filesz, offset))
        elif p_type == PT_DYNAMIC:
            if dynamic_ph is None:
                dynamic_ph = (offset, filesz)
        elif p_type == PT_INTERP:
            if interp_ph is None:
                interp_ph = (offset, filesz)
        elif p_type == PT_NOTE:
            notes.append((offset, filesz))

    interp = _interp(interp_ph, head, pread) if interp_ph is not None else None
    dynamic: DynamicNames = ((), None, (), ())
    if dynamic_ph is not None:
        dynamic = _parse_dynamic(dynamic_ph, loads, h.fmts[2], pread)

    return ElfInfo(
        target=(h.elfclass, h.little, h.machine, machine_arch(h.machine, h.elfclass, h.little)),
        etype=_etype(h.etype),
        interp=interp,
        dynamic=dynamic,
        dlopen_notes=_dlopen_notes(notes, head, pread, h.little) if notes else (),
    )


def _interp(interp_ph: Tuple[int, int], head: bytes, pread) -> str:
    """The ``PT_INTERP`` string of the segment ``(offset, filesz)``."""
    offset, filesz = interp_ph
    if filesz > MAX_INTERP:
        raise ElfError("PT_INTERP too long")
    if offset + filesz <= len(head):
        raw = head[offset:offset + filesz]
    else:
        raw = pread(offset, filesz)
        if len(raw) < filesz:
            raise ElfError("truncated PT_INTERP")
    nul = raw.find(b"\0")
    if nul >= 0:
        raw = raw[:nul]
    return _decode(raw)


def _dlopen_notes(notes, head: bytes, pread, little: bool):
    """The ``.note.dlopen`` metadata of the ``PT_NOTE`` segments ``notes``
    ([(offset, filesz)]); segments past the size cap or the file are skipped."""
    out: list = []
    for offset, filesz in notes[:16]:
        if not 12 <= filesz <= MAX_NOTE_SEGMENT:
            continue
        if offset + filesz <= len(head):
            raw = head[offset:offset + filesz]
        else:
            raw = pread(offset, filesz)
        if b"FDO\0" in raw:  # the owner of a dlopen note; most files carry none
            from .notes import parse_dlopen_notes

            out.extend(parse_dlopen_notes(raw, little))
    return tuple(out)


def _parse_dynamic(dynamic_ph, loads, dyn_s, pread):
    """(needed, soname, rpath, runpath) of the ``PT_DYNAMIC`` segment
    ``dynamic_ph`` ((offset, filesz)); ``loads``: the ``PT_LOAD`` segments
    as (vaddr, filesz, offset)."""
    needed_offs, strtab, strsz, soname_off, rpath_off, runpath_off = _dynamic_entries(dynamic_ph, dyn_s, pread)
    wanted = list(needed_offs)
    for o in (soname_off, rpath_off, runpath_off):
        if o is not None:
            wanted.append(o)
    if not wanted:
        return (), None, (), ()
    if strtab is None:
        raise ElfError("dynamic strings without DT_STRTAB")
    tab_off, limit = _string_table(strtab, strsz, loads)
    for o in wanted:
        if o >= limit:
            raise ElfError("dynamic string offset outside the string table")
    string = _string_reader(wanted, tab_off, limit, pread)
    needed = tuple(string(o) for o in needed_offs)
    soname = string(soname_off) if soname_off is not None else None
    rpath = _split_path(string(rpath_off)) if rpath_off is not None else ()
    runpath = _split_path(string(runpath_off)) if runpath_off is not None else ()
    return needed, soname, rpath, runpath


def _dynamic_entries(dynamic_ph, dyn_s, pread):
    """The dynamic entries up to ``DT_NULL`` that name strings:
    (``DT_NEEDED`` offsets, ``DT_STRTAB``, ``DT_STRSZ``, ``DT_SONAME``,
    ``DT_RPATH``, ``DT_RUNPATH``), None for a tag that is not there."""
    offset, filesz = dynamic_ph
    esize = dyn_s.size
    count = filesz // esize
    if count == 0:
        raise ElfError("empty dynamic segment")
    capped = count > MAX_DYN_ENTRIES
    if capped:
        count = MAX_DYN_ENTRIES
    raw = pread(offset, count * esize)
    if len(raw) < esize:
        raise ElfError("dynamic segment outside the file")
    needed_offs: List[int] = []
    strtab = strsz = soname_off = rpath_off = runpath_off = None
    terminated = False
    for d_tag, d_val in dyn_s.iter_unpack(raw[: len(raw) - len(raw) % esize]):
        if d_tag == DT_NULL:
            terminated = True
            break
        if d_tag == DT_NEEDED:
            needed_offs.append(d_val)
        elif d_tag == DT_STRTAB:
            strtab = d_val
        elif d_tag == DT_STRSZ:
            strsz = d_val
        elif d_tag == DT_SONAME:
            soname_off = d_val
        elif d_tag == DT_RPATH:
            rpath_off = d_val
        elif d_tag == DT_RUNPATH:
            runpath_off = d_val
    if not terminated:
        if len(raw) < count * esize:
            raise ElfError("truncated dynamic segment")
        if capped:
            raise ElfError("too many dynamic entries")
        raise ElfError("dynamic segment without DT_NULL")
    return needed_offs, strtab, strsz, soname_off, rpath_off, runpath_off


def _string_table(strtab: int, strsz: Optional[int], loads) -> Tuple[int, int]:
    """(file offset, size) of the dynamic string table: ``DT_STRTAB`` is an
    address, mapped to a file offset through ``PT_LOAD``; strings must start
    and end before the size."""
    tab_off = tab_end = None
    for vaddr, seg_filesz, seg_off in loads:
        if vaddr <= strtab < vaddr + seg_filesz:
            tab_off = seg_off + (strtab - vaddr)
            tab_end = seg_off + seg_filesz
            break
    if tab_off is None:
        raise ElfError("DT_STRTAB outside every PT_LOAD segment")
    if strsz is not None and tab_off + strsz < tab_end:
        tab_end = tab_off + strsz
    return tab_off, tab_end - tab_off


def _string_reader(wanted: List[int], tab_off: int, limit: int, pread) -> Callable[[int], str]:
    """``string(offset)`` of the string table at ``tab_off``: the strings at
    ``wanted`` come from one window read when they are close together."""
    lo = min(wanted)
    hi = min(max(wanted) + 256, limit)
    window = b""
    if hi - lo <= STR_WINDOW:
        window = pread(tab_off + lo, hi - lo)

    cache: Dict[int, str] = {}

    def string(o: int) -> str:
        hit = cache.get(o)
        if hit is not None:
            return hit
        end = -1
        if window:
            rel = o - lo
            if 0 <= rel < len(window):
                end = window.find(b"\0", rel)
                if end >= 0:
                    s = _decode(window[rel:end])
        if end < 0:
            n = min(MAX_STRING, limit - o)
            raw = pread(tab_off + o, n)
            end = raw.find(b"\0")
            if end < 0:
                if len(raw) < n:
                    raise ElfError("string table outside the file")
                if n == MAX_STRING:
                    raise ElfError("dynamic string too long")
                raise ElfError("unterminated dynamic string")
            s = _decode(raw[:end])
        cache[o] = s
        return s

    return string


def file_pread(f: BinaryIO) -> Callable[[int, int], bytes]:
    """A guarded ``pread(offset, size)`` over a seekable binary file."""
    def read_at(offset: int, size: int) -> bytes:
        f.seek(offset)
        return f.read(size)

    return guarded(read_at)


def parse_fd(fd: int, head: bytes) -> ElfInfo:
    """Parse an open file descriptor whose first bytes (``HEAD_SIZE`` of them,
    or the whole file if shorter) are ``head``; ``head`` must have the magic."""
    pread = guarded(lambda offset, size: os.pread(fd, size, offset))
    return parse_as_elf_error(_parse, head, pread, "ELF")


def read_elf_file(f: BinaryIO, head: bytes) -> ElfInfo:
    """Parse the seekable binary file ``f`` whose first bytes are ``head``
    (which has the magic) with the fast reader."""
    return parse_as_elf_error(_parse, head, file_pread(f), "ELF")


def read_elf_pread(pread: Callable[[int, int], bytes], head: bytes) -> Optional[ElfInfo]:
    """Parse with the fast reader through ``pread(offset, size)``; ``head``
    is the first bytes (``HEAD_SIZE`` of them, or all if shorter)."""
    if not is_elf_magic(head):
        return None
    return parse_as_elf_error(_parse, head, guarded(pread), "ELF")

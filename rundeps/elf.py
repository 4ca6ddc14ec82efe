"""Read the few parts of an ELF file that decide what it needs at run time.

Only the ELF header, the program header table, ``PT_INTERP``, ``PT_DYNAMIC``
and the strings the dynamic entries point at are read -- never the whole file
and never the section headers (the loader does not use them either).  The
``DT_STRTAB`` address is mapped to a file offset through the ``PT_LOAD``
segments, as musl's loader sees it.

Two readers give the same :class:`ElfInfo`:

* the default one, below, unpacks the structures with :mod:`struct` in a few
  bounded reads.  It is what :func:`read_elf` uses, because it is about
  60 times faster per file than building a pyelftools ``ELFFile`` (measured on
  the 309 ELF files of a wheel-made site-packages: 1.8 ms per file with
  ``ELFFile`` + ``iter_segments`` + ``iter_tags`` against ~30 us, and the import
  of ``elftools.elf.elffile`` alone costs ~35 ms of start-up; see
  ``scripts/bench.py``);
* :func:`read_elf_pyelftools` uses pyelftools' ``ELFFile`` (segments and
  dynamic tags only, inside the same bounds); it lives in
  :mod:`rundeps.pyelftools_reader` and shares no code with the reader here.
  It is selected with ``RUNDEPS_ELF_READER=pyelftools`` (or
  ``reader="pyelftools"``) for every command, and is the oracle the tests
  compare the fast reader against.

Hostile input (huge ``e_phnum``, offsets past the end, ``DT_STRTAB`` outside
every segment, strings without NUL, no ``DT_NULL``, ...) raises
:class:`ElfError` -- never another exception -- and every read is capped, so
memory and time stay bounded.
"""

from __future__ import annotations

import errno
import os
import struct
# typing is only needed by type checkers (annotations are strings here);
# not importing it keeps start-up light.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO, Callable, Dict, List, Optional, Tuple

__all__ = [
    "ARCH_NAMES",
    "ElfError",
    "ElfInfo",
    "is_elf_magic",
    "read_elf",
    "read_elf_path",
    "read_elf_pyelftools",
    "read_elf_pread",
    "reader_name",
    "machine_arch",
]

ARCH_NAMES = ("x86_64", "x86", "aarch64", "armv7", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64")

ELF_MAGIC = b"\x7fELF"

#: The first read of a file; ELF headers, program headers and PT_INTERP of
#: ordinary objects fit in it.
HEAD_SIZE = 2048

# Caps that keep hostile files cheap.
MAX_PHNUM = 65535
MAX_DYN_ENTRIES = 65536
MAX_STRING = 16384
MAX_INTERP = 4096
#: A PT_NOTE segment larger than this is not read for dlopen notes (build-id,
#: ABI tag and a few dlopen notes take a few hundred bytes).
MAX_NOTE_SEGMENT = 1 << 16
#: A string-table window read in one go when the wanted strings are close together.
STR_WINDOW = 65536

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
PN_XNUM = 0xFFFF

_ETYPES = {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}

EM_386, EM_ARM, EM_PPC64, EM_S390, EM_X86_64, EM_AARCH64, EM_RISCV, EM_LOONGARCH = 3, 40, 21, 22, 62, 183, 243, 258


class ElfError(Exception):
    """A broken ELF file; ``str(e)`` is a short reason."""


class ElfInfo:
    """What rundeps reads from one ELF file.  Treat it as immutable; it
    compares and hashes by value.

    (A plain class with slots rather than a frozen dataclass: this module is
    on every run's start-up path, and ``import dataclasses`` plus the class
    creation cost about 2 ms, a noticeable share of a warm scan.)
    """

    __slots__ = (
        "elfclass",  # 32 or 64
        "little_endian",
        "machine",  # raw e_machine
        "arch",  # Alpine arch name, None if unknown
        "etype",  # 'ET_EXEC', 'ET_DYN', 'ET_REL', 'ET_CORE' or 'ET_<n>'
        "interp",  # PT_INTERP
        "needed",  # DT_NEEDED in order
        "soname",
        "rpath",  # DT_RPATH split on ':' (empty entries dropped)
        "runpath",  # DT_RUNPATH split on ':' (empty entries dropped)
        "dlopen_notes",  # .note.dlopen metadata: ((priority, (soname, ...)), ...)
    )

    def __init__(self, elfclass: int, little_endian: bool, machine: int, arch: Optional[str], etype: str,
                 interp: Optional[str], needed: Tuple[str, ...], soname: Optional[str],
                 rpath: Tuple[str, ...], runpath: Tuple[str, ...],
                 dlopen_notes: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()):
        self.elfclass = elfclass
        self.little_endian = little_endian
        self.machine = machine
        self.arch = arch
        self.etype = etype
        self.interp = interp
        self.needed = needed
        self.soname = soname
        self.rpath = rpath
        self.runpath = runpath
        self.dlopen_notes = dlopen_notes

    def astuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.astuple() == other.astuple()

    def __hash__(self) -> int:
        return hash(self.astuple())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"ElfInfo({fields})"


def machine_arch(machine: int, elfclass: int, little_endian: bool) -> Optional[str]:
    """The Alpine arch name of an ELF machine, or None."""
    if elfclass == 64:
        if machine == EM_X86_64 and little_endian:
            return "x86_64"
        if machine == EM_AARCH64 and little_endian:
            return "aarch64"
        if machine == EM_PPC64:
            return "ppc64le" if little_endian else "ppc64"
        if machine == EM_S390 and not little_endian:
            return "s390x"
        if machine == EM_RISCV and little_endian:
            return "riscv64"
        if machine == EM_LOONGARCH and little_endian:
            return "loongarch64"
    elif elfclass == 32:
        if machine == EM_386 and little_endian:
            return "x86"
        if machine == EM_ARM and little_endian:
            return "armv7"
    return None


def is_elf_magic(head: bytes) -> bool:
    """True if ``head`` starts with the ELF magic."""
    return head[:4] == ELF_MAGIC


def _etype(n: int) -> str:
    return _ETYPES.get(n) or f"ET_{n}"


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _split_path(s: Optional[str]) -> Tuple[str, ...]:
    if not s:
        return ()
    return tuple(p for p in s.split(":") if p)


# (ehdr after e_ident, phdr, dyn) formats, and the field order of phdrs.
_FORMATS: Dict[Tuple[int, bool], Tuple[struct.Struct, struct.Struct, struct.Struct, struct.Struct]] = {}


def _formats(elfclass: int, little: bool):
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


class _Header:
    __slots__ = ("elfclass", "little", "etype", "machine", "phoff", "phentsize", "phnum", "fmts")


def _parse_header(head: bytes, pread: Callable[[int, int], bytes]) -> _Header:
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
    fmts = _formats(elfclass, little)
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
    h = _Header()
    h.elfclass, h.little, h.etype, h.machine = elfclass, little, e_type, e_machine
    h.phoff, h.phentsize, h.phnum, h.fmts = e_phoff, e_phentsize, e_phnum, fmts
    return h


def _parse(head: bytes, pread: Callable[[int, int], bytes]) -> ElfInfo:
    """Parse an ELF whose first bytes are ``head``; ``pread(offset, size)``
    returns at most ``size`` bytes (fewer at the end of the file)."""
    h = _parse_header(head, pread)
    _ehdr_s, phdr_s, dyn_s, _ = h.fmts
    is64 = h.elfclass == 64

    # Program headers, in one read (from ``head`` if they are in it).
    phoff, entsize, phnum = h.phoff, h.phentsize, h.phnum
    size = entsize * phnum
    if phoff + size <= len(head):
        table = head
        base = phoff
    else:
        table = pread(phoff, size) if size else b""
        base = 0
        if len(table) < size:
            raise ElfError("truncated program header table")

    interp_ph = None
    dynamic_ph = None
    loads: List[Tuple[int, int, int]] = []  # (vaddr, filesz, offset)
    notes: List[Tuple[int, int]] = []  # (offset, filesz)
    unpack = phdr_s.unpack_from
    for i in range(phnum):
        ph = unpack(table, base + i * entsize)
        p_type = ph[0]
        if is64:
            offset, vaddr, filesz = ph[2], ph[3], ph[5]
        else:
            offset, vaddr, filesz = ph[1], ph[2], ph[4]
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

    interp = None
    if interp_ph is not None:
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
        interp = _decode(raw)

    needed: Tuple[str, ...] = ()
    soname = None
    rpath: Tuple[str, ...] = ()
    runpath: Tuple[str, ...] = ()
    if dynamic_ph is not None:
        needed, soname, rpath, runpath = _parse_dynamic(dynamic_ph, loads, dyn_s, pread)

    return ElfInfo(
        elfclass=h.elfclass,
        little_endian=h.little,
        machine=h.machine,
        arch=machine_arch(h.machine, h.elfclass, h.little),
        etype=_etype(h.etype),
        interp=interp,
        needed=needed,
        soname=soname,
        rpath=rpath,
        runpath=runpath,
        dlopen_notes=_dlopen_notes(notes, head, pread, h.little) if notes else (),
    )


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
            from .elfnotes import parse_dlopen_notes

            out.extend(parse_dlopen_notes(raw, little))
    return tuple(out)


def _parse_dynamic(dynamic_ph, loads, dyn_s: struct.Struct, pread):
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

    wanted = list(needed_offs)
    for o in (soname_off, rpath_off, runpath_off):
        if o is not None:
            wanted.append(o)
    if not wanted:
        return (), None, (), ()
    if strtab is None:
        raise ElfError("dynamic strings without DT_STRTAB")

    # DT_STRTAB is an address: map it to a file offset through PT_LOAD.
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
    limit = tab_end - tab_off  # strings must start and end before this

    for o in wanted:
        if o >= limit:
            raise ElfError("dynamic string offset outside the string table")

    lo = min(wanted)
    hi = min(max(wanted) + 256, limit)
    window = b""
    if hi - lo <= STR_WINDOW:
        window = pread(tab_off + lo, hi - lo)

    cache: Dict[int, str] = {}

    def string(o: int) -> str:
        s = cache.get(o)
        if s is not None:
            return s
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

    needed = tuple(string(o) for o in needed_offs)
    soname = string(soname_off) if soname_off is not None else None
    rpath = _split_path(string(rpath_off)) if rpath_off is not None else ()
    runpath = _split_path(string(runpath_off)) if runpath_off is not None else ()
    return needed, soname, rpath, runpath


#: Offsets at or past this are not in any file (pread/lseek take a signed
#: 64-bit offset; file systems stop far earlier and answer EINVAL).
MAX_OFFSET = (1 << 63) - 1


def _einval(exc: OSError) -> bool:
    return exc.errno == errno.EINVAL


def _guarded(read_at: Callable[[int, int], bytes]) -> Callable[[int, int], bytes]:
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


def _file_pread(f: BinaryIO) -> Callable[[int, int], bytes]:
    def read_at(offset: int, size: int) -> bytes:
        f.seek(offset)
        return f.read(size)

    return _guarded(read_at)


def parse_fd(fd: int, head: bytes) -> ElfInfo:
    """Parse an open file descriptor whose first bytes (``HEAD_SIZE`` of them,
    or the whole file if shorter) are ``head``; ``head`` must have the magic."""
    pread = _guarded(lambda offset, size: os.pread(fd, size, offset))
    return parse_as_elf_error(_parse, head, pread, "ELF")


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


def _reader() -> str:
    return os.environ.get("RUNDEPS_ELF_READER", "")


def reader_name() -> str:
    """``"pyelftools"`` when ``RUNDEPS_ELF_READER`` selects it, else
    ``"struct"`` (the default, fast reader)."""
    return "pyelftools" if _reader() == "pyelftools" else "struct"


def read_elf(f: BinaryIO, reader: Optional[str] = None) -> Optional[ElfInfo]:
    """Read the ELF file ``f`` (a binary file or :class:`io.BytesIO`).

    Returns None if ``f`` does not start with the ELF magic, raises
    :class:`ElfError` if it does but is broken.  ``reader="pyelftools"`` (or
    ``RUNDEPS_ELF_READER=pyelftools``) reads it with pyelftools instead.
    """
    f.seek(0)
    head = f.read(HEAD_SIZE)
    if not is_elf_magic(head):
        return None
    if (reader if reader is not None else _reader()) == "pyelftools":
        return read_elf_pyelftools(f)
    try:
        return _parse(head, _file_pread(f))
    except ElfError:
        raise
    except OSError:
        raise
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        raise ElfError(f"malformed ELF ({type(exc).__name__})") from None


def read_elf_path(path) -> Optional[ElfInfo]:
    """Open ``path`` and read it; OSError propagates."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        head = os.read(fd, HEAD_SIZE)
        if not is_elf_magic(head):
            return None
        if _reader() == "pyelftools":
            with os.fdopen(os.dup(fd), "rb") as f:
                return read_elf_pyelftools(f)
        return parse_fd(fd, head)
    finally:
        os.close(fd)


def read_elf_pyelftools(f: BinaryIO) -> Optional[ElfInfo]:
    """Read ``f`` with pyelftools (:mod:`rundeps.pyelftools_reader`, which
    shares no code with the reader above)."""
    from .pyelftools_reader import read_elf_pyelftools as read

    return read(f)


def read_elf_pread(pread: Callable[[int, int], bytes], head: bytes) -> Optional[ElfInfo]:
    """Parse with the fast reader through ``pread(offset, size)``; ``head``
    is the first bytes (``HEAD_SIZE`` of them, or all if shorter)."""
    if not is_elf_magic(head):
        return None
    try:
        return _parse(head, _guarded(pread))
    except ElfError:
        raise
    except OSError:
        raise
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        raise ElfError(f"malformed ELF ({type(exc).__name__})") from None

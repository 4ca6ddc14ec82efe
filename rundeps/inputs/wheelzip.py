"""Reading the members of a wheel's zip within bounds: the wheel's limits
(:class:`WheelLimits`), its decompressed budget (:class:`Budget`), whole
small members (:func:`read_member`), a member's first bytes
(:func:`read_head`) and ELF members streamed in bounded memory
(:func:`read_elf_member`).  A damaged or hostile member is one
:class:`WheelError`."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Dict, List, Tuple

from ..elf.dynamic import read_elf_pread
from ..elf.header import parse_header, program_headers
from ..elf.reader import reader_name
from ..elf.symbols import read_symbols_pread
from ..elf.types import HEAD_SIZE, ElfError
from ..errors import RundepsError

__all__ = ["MiB", "GiB", "WheelError", "WheelLimits", "Budget", "read_member", "read_head", "stream_member",
           "read_elf_member", "PREFIX_CAP", "one_line", "show"]

MiB = 1024 * 1024
GiB = 1024 * MiB


class WheelError(RundepsError):
    """A wheel that cannot be read or is refused as a whole (one-line message)."""


@dataclass(frozen=True)
class WheelLimits:
    """Bounds on what :func:`rundeps.inputs.wheel.scan_wheel` decompresses."""

    max_member_size: int = 512 * MiB
    """An ELF or ``.py`` member declaring more is not read (reported, skipped)."""
    max_ratio: float = 200.0
    """A member declaring more than this many times its compressed size ..."""
    ratio_min_size: int = 4 * MiB
    """... and more than this many bytes is a zip bomb: the wheel is refused."""
    max_total_size: int = 4 * GiB
    """Decompressed bytes read from one wheel, over all members."""
    max_members: int = 500_000
    max_py_size: int = 5 * 1000 * 1000
    """Larger ``.py`` members are not kept for dlopen scanning (reported)."""
    max_py_total: int = 256 * MiB
    """``.py`` bytes kept per wheel; past it, sources are dropped (reported once)."""
    max_metadata_size: int = 1 * MiB
    """Largest ``WHEEL`` file read."""


class Budget:
    """The decompressed bytes one wheel may still give (``max_total_size``)."""

    def __init__(self, limits: WheelLimits, wheel: str):
        self.left = limits.max_total_size
        self.wheel = wheel

    def take(self, n: int, member: str) -> None:
        """Count *n* more bytes read from *member*: WheelError past the budget."""
        self.left -= n
        if self.left < 0:
            raise WheelError(
                "%s: refused: more than the decompressed budget read (at member %s)" % (self.wheel, show(member))
            )


try:
    from lzma import LZMAError as _LZMAError
except ImportError:  # pragma: no cover - Python built without lzma
    _LZMAError = zlib.error  # type: ignore[misc,assignment]

# What zipfile raises on damaged or hostile data (UnicodeDecodeError is a
# ValueError; NotImplementedError for "zip file version 6.4" and friends).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    _LZMAError,
    EOFError,
    OSError,
    ValueError,
    OverflowError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    IndexError,  # zipfile's extra-field parsing on damaged headers
    KeyError,
)


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget, wheel: str) -> io.BytesIO:
    """All of a member (positioned at 0), decompressed through
    :func:`stream_member`: never past its declared size, and checked against it."""
    buf = io.BytesIO()
    stream_member(zf, info, budget, wheel, lambda pos, chunk: buf.write(chunk))
    buf.seek(0)
    return buf


def read_head(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget, wheel: str) -> bytes:
    """A member's first 4 bytes (its magic), counted against the budget."""
    try:
        with zf.open(info) as f:
            head = f.read(4)
    except _READ_ERRORS as exc:
        raise WheelError("%s: corrupt member %s: %s" % (wheel, show(info.filename), one_line(exc))) from None
    budget.take(len(head), info.filename)
    return head



# -- ELF members, streamed -------------------------------------------------------

#: Bytes kept of an ELF member while it is streamed: its segments that are
#: not code (ELF header, program headers, hash, symbol, string, version and
#: relocation tables, wherever linkers or patchelf put them), up to this
#: much in all; a member whose tables lie past it is read again through a
#: temporary file.
PREFIX_CAP = 48 * MiB
_CHUNK = 1 * MiB


class _Miss(Exception):
    """A read outside what was kept from the member."""


class _Kept:
    """The byte ranges of a member kept while streaming it once: the first
    segment (capped), ``PT_DYNAMIC`` and ``PT_INTERP``.  :meth:`pread`
    answers from them and raises :class:`_Miss` for anything else."""

    def __init__(self, size: int, ranges: List[Tuple[int, int]]):
        self.size = size
        self.ranges = [(s, min(e, size), bytearray()) for s, e in ranges if s < min(e, size)]

    def feed(self, pos: int, chunk: bytes) -> None:
        end = pos + len(chunk)
        for s, e, buf in self.ranges:
            if s < end and pos < e:
                a, b = max(s, pos), min(e, end)
                if a - s == len(buf):
                    buf += chunk[a - pos:b - pos]

    def pread(self, offset: int, size: int) -> bytes:
        if offset >= self.size:
            return b""
        want_end = min(offset + size, self.size)
        for s, _e, buf in self.ranges:
            if s <= offset and want_end <= s + len(buf):
                return bytes(buf[offset - s:want_end - s])
        raise _Miss(offset)


def _wanted_ranges(head: bytes) -> List[Tuple[int, int]]:
    """The ranges :class:`_Kept` keeps, from the program headers in ``head``."""
    ranges = [(0, max(len(head), 4096))]
    try:
        h = parse_header(head, lambda off, n: b"")
        phdrs = program_headers(h, head, lambda off, n: b"")  # None unless all are in ``head``
    except (ElfError, struct.error, ValueError):
        return ranges
    if phdrs is None:
        return ranges
    loads = []
    for p_type, p_flags, offset, _vaddr, filesz in phdrs:
        if p_type == 1:
            loads.append((offset, filesz, p_flags))
        elif p_type in (2, 3):  # PT_DYNAMIC, PT_INTERP
            ranges.append((offset, offset + min(filesz, 16 * MiB)))
    # The tables the readers need (hash, symbols, strings, versions,
    # relocations) are in the first segment as linkers lay it out, but
    # patchelf (auditwheel) moves them into segments of their own, read-only
    # or writable: keep every segment that is not executable, up to a total.
    budget = PREFIX_CAP
    for offset, filesz, flags in loads:
        if flags & 1 and offset != 0:  # PF_X: code (the first segment may be R+X and start with the tables)
            continue
        n = min(filesz, budget)
        if n <= 0:
            break
        if offset == 0:
            ranges[0] = (0, max(ranges[0][1], n))
        else:
            ranges.append((offset, offset + n))
        budget -= n
    return ranges


class _PreadFile(io.RawIOBase):
    """A read-only, seekable file over ``pread`` (for pyelftools)."""

    def __init__(self, pread, size: int):
        self._pread, self._size, self._pos = pread, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        self._pos = pos if whence == 0 else self._pos + pos if whence == 1 else self._size + pos
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, b):
        data = self._pread(self._pos, len(b))
        b[:len(data)] = data
        self._pos += len(data)
        return len(data)


def _parse_member(head: bytes, pread, size: int, symbols: bool):
    """(ElfInfo, SymbolFacts or None) of a member through ``pread``."""
    if reader_name() == "pyelftools":
        from ..elf.reader import read_elf_pyelftools, read_symbols_pyelftools

        f = io.BufferedReader(_PreadFile(pread, size), 65536)  # only ever over a real file (see _spooled)
        info = read_elf_pyelftools(f)
        facts = read_symbols_pyelftools(f) if symbols else None
        return info, facts
    info = read_elf_pread(pread, head)
    facts = read_symbols_pread(pread, head) if symbols else None
    return info, facts


def stream_member(zf, info: zipfile.ZipInfo, budget: "Budget", wheel: str, sink) -> bytes:
    """Decompress a member in chunks, handing ``sink(pos, chunk)`` each one
    and checking its size against the declared one (and its CRC, which
    zipfile checks at the end); returns the first chunk."""
    first = b""
    total = 0
    cap = info.file_size
    try:
        with zf.open(info) as f:
            while True:
                chunk = f.read(min(_CHUNK, cap + 1 - total))
                if not chunk:
                    break
                budget.take(len(chunk), info.filename)
                if total + len(chunk) > cap:
                    raise WheelError(
                        "%s: refused: member %s decompresses past its declared size" % (wheel, show(info.filename))
                    )
                if not total:
                    first = chunk
                sink(total, chunk)
                total += len(chunk)
    except WheelError:
        raise
    except _READ_ERRORS as exc:
        raise WheelError("%s: corrupt member %s: %s" % (wheel, show(info.filename), one_line(exc))) from None
    if total != info.file_size:
        raise WheelError(
            "%s: corrupt member %s: %d bytes, %d declared" % (wheel, show(info.filename), total, info.file_size)
        )
    return first


def read_elf_member(zf, info: zipfile.ZipInfo, budget: "Budget", wheel: str, symbols: bool):
    """(ElfInfo, SymbolFacts or None) of an ELF member, read in bounded
    memory: one streaming pass keeps the first segment (capped at
    :data:`PREFIX_CAP`), ``PT_DYNAMIC`` and ``PT_INTERP``; in the rare file
    whose tables lie elsewhere, a second pass spools the member to a
    temporary file and reads it there.  Raises ElfError for a broken ELF
    file (after the whole member was checked) and WheelError for a corrupt
    member."""
    state: Dict[str, _Kept] = {}
    if reader_name() == "pyelftools":
        return _spooled(zf, info, budget, wheel, symbols)

    def sink(pos: int, chunk: bytes) -> None:
        kept = state.get("kept")
        if kept is None:
            kept = state["kept"] = _Kept(info.file_size, _wanted_ranges(chunk))
        kept.feed(pos, chunk)

    head = stream_member(zf, info, budget, wheel, sink)[:HEAD_SIZE]
    kept = state.get("kept")
    if kept is None:
        raise ElfError("empty member")
    try:
        return _parse_member(head, kept.pread, info.file_size, symbols)
    except _Miss:
        pass
    del state["kept"], kept
    return _spooled(zf, info, budget, wheel, symbols)


def _spooled(zf, info: zipfile.ZipInfo, budget: "Budget", wheel: str, symbols: bool):
    """Read a member through a temporary file (bounded memory, any layout)."""
    import tempfile

    with tempfile.TemporaryFile(prefix="rundeps-member-") as tmp:
        stream_member(zf, info, budget, wheel, lambda pos, chunk: tmp.write(chunk))
        tmp.flush()
        fd = tmp.fileno()
        head = os.pread(fd, HEAD_SIZE, 0)
        return _parse_member(head, lambda off, n: os.pread(fd, n, off), info.file_size, symbols)


def one_line(exc: BaseException) -> str:
    """*exc* as the first line of its message (escaped), or its type's name."""
    text = str(exc)
    return show(text.splitlines()[0]) if text else type(exc).__name__


def show(name: str) -> str:
    """A member name safe to print on one line (control characters escaped)."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)

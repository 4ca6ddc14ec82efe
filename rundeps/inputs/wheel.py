"""Read a Python wheel's ELF files straight from its zip, without extracting.

:func:`scan_wheel` opens one ``.whl`` and returns a :class:`WheelScan`: the
name, version and tags (from the file name and ``*.dist-info/WHEEL``), what
the platform tags say about libc and architecture, every ELF member parsed
by :func:`rundeps.elf.read_elf`, the ``.py`` sources (for
:mod:`rundeps.loads.dlopen`), every member path (so that ``$ORIGIN`` lookups such
as ``$ORIGIN/../pkg.libs/libx.so`` can be answered without a filesystem)
and the problems met on the way.

Paths.  A member's *path* is where an installer puts it, relative to
``site-packages`` and written like an absolute in-root path: member
``numpy/core/_x.so`` is ``/numpy/core/_x.so``; the contents of
``<dist>.data/purelib/`` and ``<dist>.data/platlib/`` install into
``site-packages`` too, so ``foo-1.0.data/platlib/foo/_x.so`` is ``/foo/_x.so``.
Other ``.data`` members (``scripts``, ``data``, ``headers``) keep their
member path.  Zips carry no usable symlinks (installers write a symlink
entry as a plain file), so paths never need resolving.

Hostile archives.  Nothing is trusted: not the declared sizes, not the
names.  Per member (reported through ``on_problem``, skipped, the scan goes on):

* a name that is absolute (``/x``, ``\\x``, ``C:``), has a ``..`` part or a
  NUL byte is refused;
* a name seen before is reported as a duplicate (every copy is still scanned:
  which copy an installer keeps varies, and missing a dependency is worse);
* an ELF or ``.py`` member declaring more than ``max_member_size`` bytes is
  not read;
* an encrypted member or an unsupported compression method is not read;
* a broken ELF file (:class:`rundeps.elf.types.ElfError`) is reported.

The whole wheel is refused with :class:`WheelError` for: a file that is not a
zip, a truncated or corrupt zip (bad CRC, bad compressed data, a stream that
ends early or runs past its declared size), a zip bomb (a member whose
declared size is more than ``max_ratio`` times its compressed size, above
``ratio_min_size``), more decompressed data than ``max_total_size`` or more
members than ``max_members``, and a zip that is not a wheel (no
``*.dist-info/WHEEL``) unless ``require_metadata=False``.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Dict, FrozenSet, List, Optional, Set, Tuple

from ..elf.dynamic import read_elf_pread
from ..elf.header import parse_header, program_headers
from ..elf.reader import reader_name
from ..elf.symbols import read_symbols_pread
from ..elf.types import HEAD_SIZE, ElfError, ElfInfo, is_elf_magic
from ..errors import RundepsError

__all__ = [
    "WheelError",
    "WheelLimits",
    "WheelItem",
    "WheelScan",
    "PlatformTag",
    "WheelName",
    "parse_wheel_filename",
    "expand_tags",
    "parse_wheel_metadata",
    "classify_platform",
    "WHEEL_ARCHES",
    "scan_wheel",
    "iter_wheels",
]

MiB = 1024 * 1024
GiB = 1024 * MiB


class WheelError(RundepsError):
    """A wheel that cannot be read or is refused as a whole (one-line message)."""


@dataclass(frozen=True)
class WheelLimits:
    """Bounds on what :func:`scan_wheel` decompresses."""

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


# -- names and tags -----------------------------------------------------------

WHEEL_ARCHES: Dict[str, str] = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "i686": "x86",
    "i586": "x86",
    "i386": "x86",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv7l": "armv7",
    "armv6l": "armhf",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}
"""Wheel platform-tag architectures to Alpine architecture names."""

_MANYLINUX_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_PLATFORM_RES = [
    (re.compile(r"^musllinux_(\d+)_(\d+)_(.+)$"), "musl"),
    (re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$"), "glibc"),
    (re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_(.+)$"), "glibc"),
    (re.compile(r"^linux_(.+)$"), "glibc"),
]


@dataclass(frozen=True)
class PlatformTag:
    """One platform tag, classified.

    ``libc`` is ``'musl'``, ``'glibc'``, ``'pure'`` (``any``) or ``'unknown'``
    (macOS, Windows, anything else); ``arch`` the Alpine name (``None`` if
    unknown or pure); ``version`` the libc version the tag asks for
    (``(1, 2)`` for ``musllinux_1_2``; ``None`` for ``linux_*`` and others).
    """

    tag: str
    libc: str
    arch: Optional[str]
    wheel_arch: Optional[str]
    version: Optional[Tuple[int, int]]


def classify_platform(tag: str) -> PlatformTag:
    """Classify one platform tag (``musllinux_1_1_x86_64``, ``any``, ...)."""
    if tag == "any":
        return PlatformTag(tag, "pure", None, None, None)
    for regex, libc in _PLATFORM_RES:
        m = regex.match(tag)
        if not m:
            continue
        groups = m.groups()
        if len(groups) == 3:
            version: Optional[Tuple[int, int]] = (int(groups[0]), int(groups[1]))
        elif len(groups) == 2:
            version = _MANYLINUX_LEGACY[groups[0]]
        else:
            version = None
        wheel_arch = groups[-1]
        return PlatformTag(tag, libc, WHEEL_ARCHES.get(wheel_arch), wheel_arch, version)
    return PlatformTag(tag, "unknown", None, None, None)


@dataclass(frozen=True)
class WheelName:
    """The parts of ``{dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl``."""

    name: str
    version: str
    build: Optional[str]
    python: str
    abi: str
    platform: str

    @property
    def tags(self) -> FrozenSet[Tuple[str, str, str]]:
        return frozenset(expand_tags(self.python, self.abi, self.platform))


def parse_wheel_filename(filename: str) -> Optional[WheelName]:
    """Parse a wheel's file name (its base name); ``None`` if it is not one."""
    base = os.path.basename(filename)
    if not base.endswith(".whl"):
        return None
    parts = base[: -len(".whl")].split("-")
    if len(parts) == 5:
        name, version, python, abi, platform = parts
        build = None
    elif len(parts) == 6:
        name, version, build, python, abi, platform = parts
        if not build[:1].isdigit():
            return None
    else:
        return None
    if not all(parts):
        return None
    return WheelName(name, version, build, python, abi, platform)


def expand_tags(python: str, abi: str, platform: str) -> List[Tuple[str, str, str]]:
    """Expand compressed tag sets: ``cp39.cp310-abi3-a.b`` gives four triples."""
    return [
        (p, a, pl)
        for p in python.split(".")
        for a in abi.split(".")
        for pl in platform.split(".")
        if p and a and pl
    ]


def parse_wheel_metadata(text: str) -> Dict[str, List[str]]:
    """The ``Key: value`` lines of a ``WHEEL`` file, values per key in order."""
    out: Dict[str, List[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line[:1] in " \t":
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


# -- results ------------------------------------------------------------------


@dataclass
class WheelItem:
    """One ELF member: ``path`` as installed (``/pkg/_x.so``), ``member`` as in the zip."""

    path: str
    member: str
    info: ElfInfo
    size: int
    symbols: Optional[object] = None  # SymbolFacts with scan_wheel(..., symbols=True)


@dataclass
class WheelScan:
    """What :func:`scan_wheel` found in one wheel.

    ``libc`` is ``'musl'`` if any platform tag is musllinux, else ``'glibc'``
    for manylinux/linux tags, ``'pure'`` if all are ``any``, else
    ``'unknown'`` -- except that a wheel tagged only ``linux_<arch>`` (a
    local build, which is what ``pip wheel`` gives on Alpine too) whose ELF
    files link musl is ``'musl'``.  ``tag_libc`` is the tags' verdict alone
    and ``elf_libc`` what the ELF files link (``'musl'``, ``'glibc'``,
    ``'mixed'`` or ``None``).  ``arch`` is the single Alpine architecture of
    the tags (``None`` if none or several: see ``arches``).
    """

    path: str
    name: Optional[str] = None
    version: Optional[str] = None
    build: Optional[str] = None
    tags: FrozenSet[Tuple[str, str, str]] = frozenset()
    platforms: Tuple[PlatformTag, ...] = ()
    libc: str = "unknown"
    tag_libc: str = "unknown"
    elf_libc: Optional[str] = None
    arch: Optional[str] = None
    arches: Tuple[str, ...] = ()
    dist_info: Optional[str] = None
    root_is_purelib: Optional[bool] = None
    items: List[WheelItem] = field(default_factory=list)
    py_sources: List[Tuple[str, str]] = field(default_factory=list)
    problems: List[Tuple[str, str]] = field(default_factory=list)
    wheel_files: Set[str] = field(default_factory=set)
    wheel_dirs: Set[str] = field(default_factory=set)

    def has_file(self, path: str) -> bool:
        """True if ``path`` (``/pkg/../pkg.libs/libx.so`` is normalised) is a member file."""
        return _norm(path) in self.wheel_files

    def is_dir(self, path: str) -> bool:
        """True if ``path`` is a folder holding member files (``/`` always is)."""
        return _norm(path) in self.wheel_dirs

    def elf(self, path: str) -> Optional[ElfInfo]:
        """The ELF information of the member installed at ``path``, if it is one."""
        p = _norm(path)
        for item in self.items:
            if item.path == p:
                return item.info
        return None

    def symbols(self, path: str):
        """The symbol facts of the member installed at ``path`` (None if it
        is not an ELF member or symbols were not read)."""
        p = _norm(path)
        for item in self.items:
            if item.path == p:
                return item.symbols
        return None


def _norm(path: str) -> str:
    return posixpath.normpath("/" + path.lstrip("/"))


# -- scanning -----------------------------------------------------------------

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_DATA_RE = re.compile(r"^[^/]+\.data/(purelib|platlib)/(.+)$")
_MUSL_RE = re.compile(r"^(libc\.musl-[\w]+\.so\.1|ld-musl-[\w]+\.so\.1)$")
_GLIBC_RE = re.compile(r"^(libc\.so\.6|ld-linux[\w.-]*\.so\.\d+|ld64\.so\.\d+)$")


def _unsafe_name(name: str) -> Optional[str]:
    if not name:
        return "refused: empty member name"
    if "\0" in name:
        return "refused: NUL byte in member name"
    if name.startswith(("/", "\\")) or _DRIVE_RE.match(name):
        return "refused: absolute member path"
    if any(part == ".." for part in re.split(r"[/\\]", name)):
        return "refused: '..' in member path"
    return None


def installed_path(member: str) -> str:
    """Where an installer puts a member, relative to site-packages, as ``/...``."""
    m = _DATA_RE.match(member)
    if m:
        member = m.group(2)
    return _norm(member)


class _Budget:
    def __init__(self, limits: WheelLimits, wheel: str):
        self.left = limits.max_total_size
        self.wheel = wheel

    def take(self, n: int, member: str) -> None:
        self.left -= n
        if self.left < 0:
            raise WheelError(
                "%s: refused: more than the decompressed budget read (at member %s)" % (self.wheel, _show(member))
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


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget, wheel: str) -> io.BytesIO:
    """All of a member (positioned at 0), decompressed through
    :func:`_stream_member`: never past its declared size, and checked against it."""
    buf = io.BytesIO()
    _stream_member(zf, info, budget, wheel, lambda pos, chunk: buf.write(chunk))
    buf.seek(0)
    return buf


def _read_head(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget, wheel: str) -> bytes:
    try:
        with zf.open(info) as f:
            head = f.read(4)
    except _READ_ERRORS as exc:
        raise WheelError("%s: corrupt member %s: %s" % (wheel, _show(info.filename), _one_line(exc))) from None
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


def _stream_member(zf, info: zipfile.ZipInfo, budget: "_Budget", wheel: str, sink) -> bytes:
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
                        "%s: refused: member %s decompresses past its declared size" % (wheel, _show(info.filename))
                    )
                if not total:
                    first = chunk
                sink(total, chunk)
                total += len(chunk)
    except WheelError:
        raise
    except _READ_ERRORS as exc:
        raise WheelError("%s: corrupt member %s: %s" % (wheel, _show(info.filename), _one_line(exc))) from None
    if total != info.file_size:
        raise WheelError(
            "%s: corrupt member %s: %d bytes, %d declared" % (wheel, _show(info.filename), total, info.file_size)
        )
    return first


def _read_elf_member(zf, info: zipfile.ZipInfo, budget: "_Budget", wheel: str, symbols: bool):
    """(ElfInfo, SymbolFacts or None) of an ELF member, read in bounded
    memory: one streaming pass keeps the first segment (capped at
    :data:`PREFIX_CAP`), ``PT_DYNAMIC`` and ``PT_INTERP``; in the rare file
    whose tables lie elsewhere, a second pass spools the member to a
    temporary file and reads it there.  Raises ElfError for a broken ELF
    file (after the whole member was checked) and WheelError for a corrupt
    member."""
    state = {}
    if reader_name() == "pyelftools":
        return _spooled(zf, info, budget, wheel, symbols)

    def sink(pos: int, chunk: bytes) -> None:
        kept = state.get("kept")
        if kept is None:
            kept = state["kept"] = _Kept(info.file_size, _wanted_ranges(chunk))
        kept.feed(pos, chunk)

    head = _stream_member(zf, info, budget, wheel, sink)[:HEAD_SIZE]
    kept = state.get("kept")
    if kept is None:
        raise ElfError("empty member")
    try:
        return _parse_member(head, kept.pread, info.file_size, symbols)
    except _Miss:
        pass
    del state["kept"], kept
    return _spooled(zf, info, budget, wheel, symbols)


def _spooled(zf, info: zipfile.ZipInfo, budget: "_Budget", wheel: str, symbols: bool):
    """Read a member through a temporary file (bounded memory, any layout)."""
    import tempfile

    with tempfile.TemporaryFile(prefix="rundeps-member-") as tmp:
        _stream_member(zf, info, budget, wheel, lambda pos, chunk: tmp.write(chunk))
        tmp.flush()
        fd = tmp.fileno()
        head = os.pread(fd, HEAD_SIZE, 0)
        return _parse_member(head, lambda off, n: os.pread(fd, n, off), info.file_size, symbols)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    return _show(text.splitlines()[0]) if text else type(exc).__name__


def _show(name: str) -> str:
    """A member name safe to print on one line (control characters escaped)."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)


def _decode_py(data: bytes) -> Optional[str]:
    from .pysource import decode_source

    try:
        return decode_source(data)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return None


def _elf_libc(items: List[WheelItem]) -> Optional[str]:
    found = set()
    for item in items:
        names = list(item.info.needed)
        if item.info.interp:
            names.append(posixpath.basename(item.info.interp))
        for n in names:
            if _MUSL_RE.match(n):
                found.add("musl")
            elif _GLIBC_RE.match(n):
                found.add("glibc")
    if not found:
        return None
    return found.pop() if len(found) == 1 else "mixed"


def _tags_verdict(platforms: Tuple[PlatformTag, ...]) -> str:
    libcs = {p.libc for p in platforms}
    if "musl" in libcs:
        return "musl"
    if "glibc" in libcs:
        return "glibc"
    if libcs == {"pure"}:
        return "pure"
    return "unknown"


def scan_wheel(
    path: str,
    *,
    limits: Optional[WheelLimits] = None,
    on_problem: Optional[Callable[[str, str], None]] = None,
    require_metadata: bool = True,
    collect_py: bool = True,
    symbols: bool = False,
) -> WheelScan:
    """Scan one wheel file; see the module documentation for what is refused.

    ``symbols=True`` also reads each ELF member's
    :class:`rundeps.elf.facts.SymbolFacts` (``WheelItem.symbols``,
    :meth:`WheelScan.symbols`).  ELF members are streamed, never held whole:
    see :func:`_read_elf_member`.

    ``on_problem(member, reason)`` is called for each problem as it is met
    (they are also in ``WheelScan.problems``).  Raises :class:`WheelError`.
    """
    limits = limits or WheelLimits()
    wheel = str(path)
    scan = WheelScan(path=wheel)

    def problem(member: str, reason: str) -> None:
        member = _show(member)
        scan.problems.append((member, reason))
        if on_problem is not None:
            on_problem(member, reason)

    _refuse_special(wheel)
    try:
        fh: BinaryIO = open(wheel, "rb")
    except OSError as exc:
        raise WheelError("%s: cannot open: %s" % (wheel, exc.strerror or exc)) from None
    with fh:
        try:
            zf = zipfile.ZipFile(fh)
        except zipfile.BadZipFile as exc:
            raise WheelError("%s: not a zip file or a truncated one (%s)" % (wheel, _one_line(exc))) from None
        except Exception as exc:  # zipfile on hostile headers: anything but a crash is a refusal
            raise WheelError("%s: unreadable zip: %s" % (wheel, _one_line(exc))) from None
        with zf:
            _scan(zf, scan, limits, problem, require_metadata, collect_py, symbols)
    return scan


def _scan(zf, scan: WheelScan, limits: WheelLimits, problem, require_metadata: bool, collect_py: bool,
          symbols: bool = False) -> None:
    wheel = scan.path
    infos = zf.infolist()
    _refuse_bombs(infos, limits, wheel)
    budget = _Budget(limits, wheel)
    fname = parse_wheel_filename(wheel)
    if fname is not None:
        scan.name, scan.version, scan.build = fname.name, fname.version, fname.build
    else:
        problem("", "file name is not a wheel name ({dist}-{version}-{python}-{abi}-{platform}.whl)")
    safe = _safe_members(infos, scan, problem)
    _read_metadata(zf, scan, safe, fname, limits, budget, problem, require_metadata)
    _read_members(zf, scan, safe, limits, budget, problem, collect_py, symbols)
    scan.elf_libc = _elf_libc(scan.items)
    if scan.tag_libc == "glibc" and all(p.libc != "glibc" or p.tag.startswith("linux_") for p in scan.platforms):
        scan.libc = "musl" if scan.elf_libc == "musl" else "glibc"
    else:
        scan.libc = scan.tag_libc


def _refuse_bombs(infos: List[zipfile.ZipInfo], limits: WheelLimits, wheel: str) -> None:
    """WheelError for too many members or a zip bomb, before anything is read."""
    if len(infos) > limits.max_members:
        raise WheelError("%s: refused: %d members (limit %d)" % (wheel, len(infos), limits.max_members))
    for info in infos:
        if info.file_size > limits.ratio_min_size and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise WheelError(
                "%s: refused: zip bomb: member %s declares %d bytes from %d compressed"
                % (wheel, _show(info.filename), info.file_size, info.compress_size)
            )


def _safe_members(infos: List[zipfile.ZipInfo], scan: WheelScan, problem) -> List[zipfile.ZipInfo]:
    """The members whose names are safe (the others, and duplicates,
    reported); their installed paths and folders noted in ``scan``."""
    seen: Set[str] = set()
    safe: List[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        if name in seen:
            problem(name, "duplicate member name (every copy is scanned)")
        seen.add(name)
        if name.endswith("/"):
            continue
        reason = _unsafe_name(name)
        if reason:
            problem(name, reason)
            continue
        safe.append(info)
        p = installed_path(name)
        scan.wheel_files.add(p)
        d = posixpath.dirname(p)
        while d not in scan.wheel_dirs:
            scan.wheel_dirs.add(d)
            if d == "/":
                break
            d = posixpath.dirname(d)
    scan.wheel_dirs.add("/")
    return safe


def _read_members(zf, scan: WheelScan, safe: List[zipfile.ZipInfo], limits: WheelLimits, budget: _Budget, problem,
                  collect_py: bool, symbols: bool) -> None:
    """Read the ELF members (into ``scan.items``) and, with ``collect_py``,
    the ``.py`` sources (``scan.py_sources``), within the limits."""
    wheel = scan.path
    py_total = 0
    py_over = False
    for info in safe:
        name = info.filename
        is_py = name.endswith(".py")
        if info.flag_bits & 0x1:
            problem(name, "not read: encrypted member")
            continue
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
            problem(name, "not read: unsupported compression method %d" % info.compress_type)
            continue
        head = _read_head(zf, info, budget, wheel)
        if is_elf_magic(head):
            if info.file_size > limits.max_member_size:
                problem(name, "not read: ELF member declares %d bytes (limit %d)" % (info.file_size, limits.max_member_size))
                continue
            try:
                elf, facts = _read_elf_member(zf, info, budget, wheel, symbols)
            except ElfError as exc:
                problem(name, "broken ELF file: %s" % _one_line(exc))
                continue
            if elf is not None:
                scan.items.append(WheelItem(installed_path(name), name, elf, info.file_size, facts))
        elif is_py and collect_py:
            if info.file_size > limits.max_py_size:
                problem(name, "not scanned for dlopen: larger than %d bytes" % limits.max_py_size)
                continue
            if py_total + info.file_size > limits.max_py_total:
                if not py_over:
                    problem(name, "not scanned for dlopen: sources past %d bytes in this wheel" % limits.max_py_total)
                    py_over = True
                continue
            data = _read_member(zf, info, budget, wheel).getvalue()
            py_total += len(data)
            text = _decode_py(data)
            if text is None:
                problem(name, "not scanned for dlopen: cannot decode")
                continue
            scan.py_sources.append((installed_path(name), text))


def _read_metadata(zf, scan: WheelScan, safe, fname: Optional[WheelName], limits, budget, problem, require_metadata) -> None:
    wheel = scan.path
    candidates = [
        info
        for info in safe
        if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/WHEEL")
    ]
    chosen = None
    if len(candidates) > 1 and fname is not None:
        want = _canonical(fname.name)
        named = [i for i in candidates if _canonical(i.filename.split("-", 1)[0]) == want]
        if len(named) == 1:
            chosen = named[0]
        problem("", "several .dist-info folders: %s" % ", ".join(sorted(i.filename.split("/")[0] for i in candidates)))
    elif len(candidates) == 1:
        chosen = candidates[0]
    if chosen is None and candidates:
        chosen = sorted(candidates, key=lambda i: i.filename)[0]

    wheel_tags: List[Tuple[str, str, str]] = []
    if chosen is None:
        if require_metadata:
            raise WheelError("%s: not a wheel: no *.dist-info/WHEEL file" % wheel)
        problem("", "no *.dist-info/WHEEL file")
    else:
        scan.dist_info = chosen.filename.split("/")[0]
        if chosen.file_size > limits.max_metadata_size:
            raise WheelError("%s: refused: %s declares %d bytes" % (wheel, _show(chosen.filename), chosen.file_size))
        data = _read_member(zf, chosen, budget, wheel).getvalue()
        meta = parse_wheel_metadata(data.decode("utf-8", "replace"))
        for tag in meta.get("Tag", []):
            parts = tag.split("-")
            if len(parts) != 3:
                problem(chosen.filename, "bad Tag line: %r" % tag[:200])
                continue
            wheel_tags.extend(expand_tags(*parts))
        purelib = meta.get("Root-Is-Purelib")
        if purelib:
            scan.root_is_purelib = purelib[0].lower() == "true"

    name_tags = set(fname.tags) if fname is not None else set()
    if wheel_tags:
        scan.tags = frozenset(wheel_tags)
        if name_tags and {t[2] for t in name_tags} != {t[2] for t in wheel_tags}:
            problem("", "platform tags of the file name and of WHEEL differ (WHEEL used)")
    else:
        scan.tags = frozenset(name_tags)
    scan.platforms = tuple(classify_platform(p) for p in sorted({t[2] for t in scan.tags}))
    scan.tag_libc = _tags_verdict(scan.platforms)
    scan.libc = scan.tag_libc
    scan.arches = tuple(sorted({p.arch for p in scan.platforms if p.arch}))
    scan.arch = scan.arches[0] if len(scan.arches) == 1 else None


def iter_wheels(path: str) -> List[str]:
    """A file is itself; a folder gives its ``*.whl`` files, sorted (not recursive)."""
    path = str(path)
    if os.path.isdir(path):
        try:
            names = sorted(n for n in os.listdir(path) if n.endswith(".whl"))
        except OSError as exc:
            raise WheelError("%s: cannot list: %s" % (path, exc.strerror or exc)) from None
        out = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
        if not out:
            raise WheelError("%s: no *.whl files in this folder" % path)
        return out
    if not os.path.exists(path):
        raise WheelError("%s: no such file" % path)
    _refuse_special(path)
    return [path]


def _refuse_special(path: str) -> None:
    """A :class:`WheelError` when ``path`` is a FIFO, device or socket (never opened)."""
    from ..errors import special_kind

    kind = special_kind(path)
    if kind is not None:
        raise WheelError("%s: %s, not a wheel file" % (path, kind))

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

This module holds the scan and its result; the names and tags are
:mod:`rundeps.inputs.wheeltags`, the bounded reading of zip members (and
:class:`WheelError`, :class:`WheelLimits`) :mod:`rundeps.inputs.wheelzip`.
"""

from __future__ import annotations

import os
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, FrozenSet, List, Optional, Set, Tuple

from ..elf.types import ElfError, ElfInfo, is_elf_magic
from .wheeltags import (WHEEL_ARCHES, PlatformTag, WheelName, canonical_name, classify_platform, expand_tags,
                        parse_wheel_filename, parse_wheel_metadata, tags_verdict)
from .wheelzip import (Budget, WheelError, WheelLimits, one_line, read_elf_member, read_head, read_member,
                       show)

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

    def release(self) -> None:
        """Drop what was read only to check the wheel (its Python sources and
        its members' symbol facts), so that checking many wheels stays in
        bounded memory; the members' ELF facts stay."""
        self.py_sources = []
        for item in self.items:
            item.symbols = None


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
    see :func:`read_elf_member`.

    ``on_problem(member, reason)`` is called for each problem as it is met
    (they are also in ``WheelScan.problems``).  Raises :class:`WheelError`.
    """
    limits = limits or WheelLimits()
    wheel = str(path)
    scan = WheelScan(path=wheel)

    def problem(member: str, reason: str) -> None:
        member = show(member)
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
            raise WheelError("%s: not a zip file or a truncated one (%s)" % (wheel, one_line(exc))) from None
        except Exception as exc:  # zipfile on hostile headers: anything but a crash is a refusal
            raise WheelError("%s: unreadable zip: %s" % (wheel, one_line(exc))) from None
        with zf:
            _scan(zf, scan, limits, problem, require_metadata, collect_py, symbols)
    return scan


Problem = Callable[[str, str], None]
"""Told (member, reason) for each problem met."""


@dataclass(frozen=True)
class _Reading:
    """One wheel's open zip as it is read: ``wheel`` how messages name it,
    its ``limits``, the decompressed ``budget`` left, and ``problem``."""

    zf: zipfile.ZipFile
    wheel: str
    limits: WheelLimits
    budget: Budget
    problem: Problem

    def head(self, info: zipfile.ZipInfo) -> bytes:
        """The member's magic (see :func:`rundeps.inputs.wheelzip.read_head`)."""
        return read_head(self.zf, info, self.budget, self.wheel)

    def whole(self, info: zipfile.ZipInfo) -> bytes:
        """All of the member (see :func:`rundeps.inputs.wheelzip.read_member`)."""
        return read_member(self.zf, info, self.budget, self.wheel).getvalue()

    def elf(self, info: zipfile.ZipInfo, symbols: bool):
        """(ElfInfo, SymbolFacts or None) of an ELF member (see :func:`rundeps.inputs.wheelzip.read_elf_member`)."""
        return read_elf_member(self.zf, info, self.budget, self.wheel, symbols)


def _scan(zf, scan: WheelScan, limits: WheelLimits, problem: Problem, require_metadata: bool, collect_py: bool,
          symbols: bool = False) -> None:
    wheel = scan.path
    infos = zf.infolist()
    _refuse_bombs(infos, limits, wheel)
    reading = _Reading(zf, wheel, limits, Budget(limits, wheel), problem)
    fname = parse_wheel_filename(wheel)
    if fname is not None:
        scan.name, scan.version, scan.build = fname.name, fname.version, fname.build
    else:
        problem("", "file name is not a wheel name ({dist}-{version}-{python}-{abi}-{platform}.whl)")
    safe = _safe_members(infos, scan, problem)
    _read_metadata(reading, scan, safe, fname, require_metadata)
    _read_members(reading, scan, safe, collect_py, symbols)
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
                % (wheel, show(info.filename), info.file_size, info.compress_size)
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


def _read_members(reading: _Reading, scan: WheelScan, safe: List[zipfile.ZipInfo], collect_py: bool,
                  symbols: bool) -> None:
    """Read the ELF members (into ``scan.items``) and, with ``collect_py``,
    the ``.py`` sources (``scan.py_sources``), within the limits."""
    limits, problem = reading.limits, reading.problem
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
        head = reading.head(info)
        if is_elf_magic(head):
            if info.file_size > limits.max_member_size:
                problem(name, "not read: ELF member declares %d bytes (limit %d)" % (info.file_size, limits.max_member_size))
                continue
            try:
                elf, facts = reading.elf(info, symbols)
            except ElfError as exc:
                problem(name, "broken ELF file: %s" % one_line(exc))
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
            data = reading.whole(info)
            py_total += len(data)
            text = _decode_py(data)
            if text is None:
                problem(name, "not scanned for dlopen: cannot decode")
                continue
            scan.py_sources.append((installed_path(name), text))


def _read_metadata(reading: _Reading, scan: WheelScan, safe: List[zipfile.ZipInfo], fname: Optional[WheelName],
                   require_metadata: bool) -> None:
    """The name, tags, dist-info folder and purelib flag from the
    ``*.dist-info/WHEEL`` file (the one of the file name's distribution
    when there are several) and the file name, into ``scan``."""
    wheel, limits, problem = reading.wheel, reading.limits, reading.problem
    candidates = [
        info
        for info in safe
        if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/WHEEL")
    ]
    chosen = None
    if len(candidates) > 1 and fname is not None:
        want = canonical_name(fname.name)
        named = [i for i in candidates if canonical_name(i.filename.split("-", 1)[0]) == want]
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
            raise WheelError("%s: refused: %s declares %d bytes" % (wheel, show(chosen.filename), chosen.file_size))
        data = reading.whole(chosen)
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
    scan.tag_libc = tags_verdict(scan.platforms)
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

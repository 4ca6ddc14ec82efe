"""The one switch between the ELF readers.

``RUNDEPS_ELF_READER=pyelftools`` (or ``reader="pyelftools"`` where a
function takes it) selects the pyelftools reader (:mod:`.pyelftools`, the
tests' oracle) instead of the fast :mod:`struct` readers (:mod:`.dynamic`
for :class:`~rundeps.elf.types.ElfInfo`, :mod:`.symbols` for
:class:`~rundeps.elf.facts.SymbolFacts`), for every command.  This module
is the only one that reads the variable (:func:`reader_name` tells the
others, e.g. the walk and the file cache, which reader is in use), and the
pyelftools reader is only imported when it is selected.
"""

from __future__ import annotations

import os

from .dynamic import parse_fd, read_elf_file
from .types import HEAD_SIZE, is_elf_magic

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO, Dict, List, Optional, Tuple

    from .facts import SymbolFacts
    from .types import ElfInfo

__all__ = [
    "SameBytes",
    "read_elf",
    "read_elf_fd_pyelftools",
    "read_elf_path",
    "read_elf_pyelftools",
    "read_symbols",
    "read_symbols_fd",
    "read_symbols_path",
    "read_symbols_pyelftools",
    "reader_name",
]


def _reader() -> str:
    return os.environ.get("RUNDEPS_ELF_READER", "")


def reader_name() -> str:
    """``"pyelftools"`` when ``RUNDEPS_ELF_READER`` selects it, else
    ``"struct"`` (the default, fast reader)."""
    return "pyelftools" if _reader() == "pyelftools" else "struct"


# -- ElfInfo ------------------------------------------------------------------------


def read_elf(f: BinaryIO, reader: Optional[str] = None) -> Optional[ElfInfo]:
    """Read the ELF file ``f`` (a binary file or :class:`io.BytesIO`).

    Returns None if ``f`` does not start with the ELF magic, raises
    :class:`~rundeps.elf.types.ElfError` if it does but is broken.
    ``reader="pyelftools"`` (or ``RUNDEPS_ELF_READER=pyelftools``) reads it
    with pyelftools instead.
    """
    f.seek(0)
    head = f.read(HEAD_SIZE)
    if not is_elf_magic(head):
        return None
    if (reader if reader is not None else _reader()) == "pyelftools":
        return read_elf_pyelftools(f)
    return read_elf_file(f, head)


def read_elf_path(path) -> Optional[ElfInfo]:
    """Open ``path`` and read it; OSError propagates."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        head = os.read(fd, HEAD_SIZE)
        if not is_elf_magic(head):
            return None
        if _reader() == "pyelftools":
            return read_elf_fd_pyelftools(fd)
        return parse_fd(fd, head)
    finally:
        os.close(fd)


def read_elf_pyelftools(f: BinaryIO) -> Optional[ElfInfo]:
    """Read ``f`` with pyelftools (:mod:`rundeps.elf.pyelftools`, which
    shares no code with the fast reader)."""
    from .pyelftools import read_elf_pyelftools as read

    return read(f)


def read_elf_fd_pyelftools(fd: int) -> Optional[ElfInfo]:
    """Read the open file descriptor ``fd`` with pyelftools (through a
    duplicate of it: ``fd`` stays open)."""
    with os.fdopen(os.dup(fd), "rb") as f:
        return read_elf_pyelftools(f)


# -- SymbolFacts --------------------------------------------------------------------


def read_symbols_fd(fd: int, head: Optional[bytes] = None) -> Optional[SymbolFacts]:
    """The symbol facts of an open file descriptor (read with ``os.pread``;
    with ``RUNDEPS_ELF_READER=pyelftools``, by the pyelftools reader)."""
    if _reader() == "pyelftools":
        with os.fdopen(os.dup(fd), "rb") as f:
            return read_symbols_pyelftools(f)
    from .symbols import read_symbols_pread

    return read_symbols_pread(lambda offset, size: os.pread(fd, size, offset), head)


def read_symbols_path(path) -> Optional[SymbolFacts]:
    """Open ``path`` and read its symbol facts; OSError propagates."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        return read_symbols_fd(fd)
    finally:
        os.close(fd)


def read_symbols(f_or_path, reader: Optional[str] = None) -> Optional[SymbolFacts]:
    """The symbol facts of a path or a binary file object (seekable); None
    if it is not ELF, :class:`~rundeps.elf.types.ElfError` if it is broken.
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
    from .symbols import read_symbols_pread

    def read_at(offset: int, size: int) -> bytes:
        f.seek(offset)
        return f.read(size)

    return read_symbols_pread(read_at)


def read_symbols_pyelftools(f: BinaryIO) -> Optional[SymbolFacts]:
    """The same facts read with pyelftools (the oracle; it lives in
    :mod:`rundeps.elf.pyelftools` and shares no code with the fast
    reader)."""
    from .pyelftools import read_symbols_pyelftools as read

    return read(f)


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

        from .symbols import read_symbols_pread

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

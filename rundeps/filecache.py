"""A per-file cache of ELF readings, so a repeat scan only ``stat``-s files.

Each file is remembered by its in-root path with the key (device, inode,
size, mtime_ns) and what reading it gave: not ELF, a broken-ELF reason, or the
:class:`~rundeps.elf.ElfInfo`.  A file whose key is unchanged is not opened
again.

Layout: the ``filecache`` sub-folder of the rundeps cache folder (the parent
holds the index cache, a :mod:`diskcache` someone else writes; nothing here
touches it).  There is **one file per scanned top folder** (host root +
in-root top path) holding all its files, :mod:`marshal`-ed behind a magic, a
format version, the entry's key and a CRC-32: one read at the start of a
scan and at most one write at the end (none when nothing changed).

Why not diskcache for this part: measured on a warm scan of a 5,700-file
site-packages whose whole budget is ~80 ms (one ``scanelf`` run, of which the
interpreter start takes 15-45 ms), ``import diskcache`` costs 11 ms and
opening a ``Cache`` 8 ms, against well under 1 ms for one ``open``/``read``
of a plain file; per-file SQLite lookups would be slower still.  A plain file
written to a temporary name and ``os.replace``-d is also exactly what
diskcache does for large values.

Failure modes: a corrupt entry (bad magic, key, checksum or shape) is dropped
and the scan reads the files; two processes writing the same entry at once
is safe (each writes its own temporary file, ``os.replace`` is atomic, the
last writer wins, readers never see half a file); a folder that cannot be
created or written degrades to no cache with a warning through
``on_warning``.
"""

from __future__ import annotations

import marshal
import os
import zlib
# typing is only needed by type checkers (annotations are strings here);
# not importing it keeps start-up light.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, Optional

from .elf import ElfInfo, machine_arch

__all__ = ["FileCache", "SUBDIR", "FORMAT_VERSION"]

SUBDIR = "filecache"
FORMAT_VERSION = 1
_MAGIC = b"RDFC"
_HEADER = _MAGIC + bytes([FORMAT_VERSION])

Warn = "Callable[[str], None]"


class Entries:
    """What one scan of a top folder found.

    ``keys``: in-root path -> (dev, ino, size, mtime_ns) packed as
    ``struct`` ``<QQQq`` (65 bytes in memory against 200 for a tuple), for
    every regular file; ``values``: in-root path -> reason (str, a broken ELF) or
    :class:`ElfInfo`, only for files that are not "not ELF" (most are).
    Two flat dicts load much faster than one dict of per-file records.
    """

    __slots__ = ("keys", "values", "changed")

    def __init__(self, keys=None, values=None):
        self.keys: Dict[str, bytes] = {} if keys is None else keys
        self.values: Dict[str, object] = {} if values is None else values
        self.changed = False

    def __len__(self) -> int:
        return len(self.keys)


def _info_to_tuple(i: ElfInfo):
    return (i.elfclass, i.little_endian, i.machine, i.etype, i.interp, i.needed, i.soname, i.rpath, i.runpath)


def _tuple_to_info(t) -> ElfInfo:
    elfclass, little, machine, etype, interp, needed, soname, rpath, runpath = t
    return ElfInfo(
        elfclass=elfclass,
        little_endian=little,
        machine=machine,
        arch=machine_arch(machine, elfclass, little),
        etype=etype,
        interp=interp,
        needed=needed,
        soname=soname,
        rpath=rpath,
        runpath=runpath,
    )


class CorruptEntry(Exception):
    pass


class _OtherKey(CorruptEntry):
    """The file holds another top's entry (a name collision): just a miss."""


def encode_entries(entries: Entries, key: bytes = b"") -> bytes:
    values = {p: (_info_to_tuple(v) if isinstance(v, ElfInfo) else v) for p, v in entries.values.items()}
    body = len(key).to_bytes(4, "little") + key + marshal.dumps((entries.keys, values), 4)
    return _HEADER + zlib.crc32(body).to_bytes(4, "little") + body


def decode_entries(blob: bytes, key: bytes = b"") -> Entries:
    """The entries in ``blob``; raises :class:`CorruptEntry`."""
    if not isinstance(blob, (bytes, bytearray)) or blob[:5] != _HEADER or len(blob) < 13:
        raise CorruptEntry("bad header")
    body = memoryview(blob)[9:]
    if zlib.crc32(body) != int.from_bytes(blob[5:9], "little"):
        raise CorruptEntry("bad checksum")
    klen = int.from_bytes(blob[9:13], "little")
    if bytes(blob[13:13 + klen]) != key:
        raise _OtherKey("another entry's file")
    try:
        raw = marshal.loads(memoryview(blob)[13 + klen:])
    except (ValueError, EOFError, TypeError) as exc:
        raise CorruptEntry(str(exc)) from None
    if not (isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[0], dict) and isinstance(raw[1], dict)):
        raise CorruptEntry("bad shape")
    keys, raw_values = raw
    # Keys that are not 4-tuples simply never match a stat: no need to check
    # 100,000 of them here.  The few values are checked.
    values: Dict[str, object] = {}
    try:
        for path, value in raw_values.items():
            if isinstance(value, tuple):
                value = _tuple_to_info(value)
            elif not isinstance(value, str):
                raise CorruptEntry("bad value")
            values[path] = value
    except (TypeError, ValueError) as exc:
        raise CorruptEntry(str(exc)) from None
    return Entries(keys, values)


class FileCache:
    """Per-file results kept in ``<directory>/filecache``."""

    def __init__(self, directory, on_warning: Optional[Warn] = None):
        self.directory = os.path.join(os.fsdecode(directory), SUBDIR)
        self.on_warning = on_warning
        self._broken = False
        os.makedirs(self.directory, exist_ok=True)
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.directory} is not writable")

    @classmethod
    def open(cls, directory, on_warning: Optional[Warn] = None) -> Optional["FileCache"]:
        """A :class:`FileCache`, or None (after a warning) if the folder
        cannot be used."""
        try:
            return cls(directory, on_warning)
        except (OSError, ValueError) as exc:
            if on_warning is not None:
                on_warning(f"file cache disabled: cannot use {os.path.join(os.fsdecode(directory), SUBDIR)}: {exc}")
            return None

    def _warn(self, msg: str) -> None:
        if self.on_warning is not None:
            self.on_warning(msg)

    @staticmethod
    def _key(root: str, top: str) -> bytes:
        return b"files\0%d\0%s\0%s" % (FORMAT_VERSION, os.fsencode(root), os.fsencode(top))

    def _file(self, key: bytes) -> str:
        name = "%08x%08x.v%d" % (zlib.crc32(key), zlib.adler32(key), FORMAT_VERSION)
        return os.path.join(self.directory, name)

    def load(self, root: str, top: str) -> Entries:
        """What the last scan of ``top`` (an in-root path) in ``root`` found."""
        if self._broken:
            return Entries()
        key = self._key(root, top)
        path = self._file(key)
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except FileNotFoundError:
            return Entries()
        except OSError as exc:
            self._broken = True
            self._warn(f"file cache disabled: cannot read {path}: {exc}")
            return Entries()
        try:
            return decode_entries(blob, key)
        except _OtherKey:
            return Entries()
        except CorruptEntry as exc:
            self._warn(f"file cache entry for {top} was corrupt ({exc}); dropped")
            try:
                os.unlink(path)
            except OSError:
                pass
            return Entries()

    def store(self, root: str, top: str, leftover: Optional[Entries], new: Entries) -> None:
        """Remember ``new`` for ``top``.  ``leftover`` is what :meth:`load`
        gave after the scan took out every file it saw (the scan pops them):
        if it is empty and no file was read, nothing changed and nothing is
        written."""
        if self._broken:
            return
        if leftover is not None and not new.changed and not leftover.keys:
            return  # every file a hit, none gone: no write
        key = self._key(root, top)
        path = self._file(key)
        tmp = "%s.tmp.%d.%d" % (path, os.getpid(), id(new))
        try:
            blob = encode_entries(new, key)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            self._broken = True
            self._warn(f"file cache disabled: cannot write {self.directory}: {exc}")

    def clear(self) -> None:
        """Forget everything (only this cache's own files)."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if ".v" in name:
                try:
                    os.unlink(os.path.join(self.directory, name))
                except OSError:
                    pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""The filesystems the resolver and the binder look libraries up in: a root
folder (:class:`TreeFS`) and a wheel's members (:class:`WheelFS`), and the
:class:`Tree` protocol both follow."""

from __future__ import annotations

import os
import posixpath
import stat as _stat
from typing import Dict, Iterable, Mapping, Optional, Tuple

from ..elf import ElfError, ElfInfo, read_elf_path
from ..inputs.walk import ScanItem, read_keyed, stat_key
from ..rootfs import HostFiles, resolve_dir_in_root, resolve_in_root, to_host


class Tree:
    """What the resolver and the binder ask of a filesystem (:class:`TreeFS`
    for a root folder, :class:`WheelFS` for a wheel's members): in-root
    real paths, ELF and symbol facts, text files, setuid bits. Declared
    here, followed by both without inheriting (a plain class, not
    ``typing.Protocol``: defining one costs start-up time).

    ``root``: the host folder of the root, or None; ``files``: the root's
    own files through the root protocol (:class:`rundeps.rootfs.HostFiles`
    or an image's tree), or None when there is no root: what reads a
    root's own files (``ld.so`` path include globs) goes through it."""

    __slots__ = ()

    root: Optional[str]
    files: Optional[HostFiles]

    def lookup(self, path: str) -> Optional[str]: ...

    def elf(self, real_path: str) -> Optional[ElfInfo]: ...

    def symbols(self, real_path: str): ...

    def symbols_key(self, real_path: str) -> Optional[Tuple[int, int, int, int]]: ...

    def read_text(self, path: str) -> Optional[str]: ...

    def is_secure(self, path: str) -> bool:
        raise NotImplementedError


class TreeFS:
    """Libraries looked up in a folder that is the root of a filesystem."""

    def __init__(self, root: str, known: Optional[Mapping[str, ElfInfo]] = None, on_error=None):
        self.root = root
        self.files = HostFiles(root)
        self._infos: Dict[str, Optional[ElfInfo]] = dict(known or {})
        self._on_error = on_error
        self._lookups: Dict[str, Optional[str]] = {}
        self._dirs: Dict[str, Optional[str]] = {}

    def lookup(self, path: str) -> Optional[str]:
        """The in-root real path of a regular file at ``path``, or None."""
        try:
            return self._lookups[path]
        except KeyError:
            pass
        real: Optional[str]
        if path in self._infos:
            real = path  # a real path the walk (or an earlier lookup) found a file at
        else:
            parent, name = posixpath.split(path)
            real_parent = self._dir(parent)
            real = None if real_parent is None else resolve_in_root(self.root, posixpath.join(real_parent, name))
        self._lookups[path] = real
        return real

    def _dir(self, path: str) -> Optional[str]:
        """The in-root real path of the folder ``path``, or None."""
        try:
            return self._dirs[path]
        except KeyError:
            pass
        real = resolve_dir_in_root(self.root, path)
        self._dirs[path] = real
        return real

    def elf(self, real_path: str) -> Optional[ElfInfo]:
        """The ELF info of an in-root real path (None if not ELF or broken)."""
        try:
            return self._infos[real_path]
        except KeyError:
            pass
        info = None
        try:
            info = read_elf_path(to_host(self.root, real_path))
        except ElfError as exc:
            if self._on_error:
                self._on_error(real_path, str(exc))
        except OSError as exc:
            if self._on_error:
                self._on_error(real_path, exc.strerror or str(exc))
        self._infos[real_path] = info
        return info

    def known_symbols(self, facts: Mapping[str, object]) -> None:
        """Seed :meth:`symbols` with facts already read ({in-root real
        path: SymbolFacts}, e.g. from :meth:`rundeps.inputs.walk.ScanItem.load_symbols`)."""
        self.__dict__.setdefault("_symbols", {}).update(facts)

    def known_items(self, items: Iterable[ScanItem]) -> None:
        """Seed :meth:`symbols` and :meth:`symbols_key` with the scanned
        :class:`rundeps.inputs.walk.ScanItem` objects (``items[i].path`` is the
        in-root real path), without reading their facts: :meth:`symbols`
        loads an item's when first asked (see :func:`rundeps.inputs.walk.scan`)."""
        self.__dict__.setdefault("_items", {}).update((item.path, item) for item in items)

    def symbols(self, real_path: str):
        """The :class:`rundeps.elf.facts.SymbolFacts` of an in-root real path,
        read once and memoised (None if it is not ELF or cannot be read;
        the reason goes to ``on_error``)."""
        memo = self.__dict__.setdefault("_symbols", {})
        try:
            return memo[real_path]
        except KeyError:
            pass
        item = self.__dict__.get("_items", {}).get(real_path)
        if item is not None:
            facts = memo[real_path] = item.load_symbols()
            return facts
        from ..elf.reader import read_symbols_fd

        facts = None
        try:
            key, facts = read_keyed(to_host(self.root, real_path), lambda fd, key: read_symbols_fd(fd))
            self.__dict__.setdefault("_keys", {})[real_path] = key
        except ElfError as exc:
            if self._on_error:
                self._on_error(real_path, f"broken symbol table: {exc}")
        except OSError as exc:
            if self._on_error:
                self._on_error(real_path, exc.strerror or str(exc))
        memo[real_path] = facts
        return facts

    def symbols_key(self, real_path: str) -> Optional[Tuple[int, int, int, int]]:
        """The (device, inode, size, mtime_ns) of the file whose facts
        :meth:`symbols` gives, or would give, for ``real_path`` (None when
        there is no such file): what a cached verdict about those facts is
        keyed on. Facts already read are for the file they were read from."""
        item = self.__dict__.get("_items", {}).get(real_path)
        if item is not None:
            return item.key_symbols(lambda: self._stat_key(real_path))
        keys = self.__dict__.setdefault("_keys", {})
        try:
            return keys[real_path]
        except KeyError:
            pass
        key = keys[real_path] = self._stat_key(real_path)
        return key

    def _stat_key(self, real_path: str) -> Optional[Tuple[int, int, int, int]]:
        try:
            return stat_key(os.lstat(to_host(self.root, real_path)))
        except OSError:
            return None

    def read_text(self, path: str) -> Optional[str]:
        """The text of a regular file, None if there is none, ``""`` if it
        exists but cannot be read (musl then searches no system folder)."""
        real = self.lookup(path)
        if real is None:
            return None
        try:
            with open(to_host(self.root, real), "rb") as f:
                return f.read(1 << 16).decode("utf-8", "replace")
        except OSError:
            return ""

    def is_secure(self, path: str) -> bool:
        """True for a setuid or setgid file: musl runs it with ``libc.secure``."""
        real = self.lookup(path)
        if real is None:
            return False
        try:
            mode = os.stat(to_host(self.root, real)).st_mode
        except OSError:
            return False
        return bool(mode & (_stat.S_ISUID | _stat.S_ISGID))


class WheelFS:
    """Libraries looked up in a wheel's members (``/pkg.libs/libx.so``), then,
    for the system folders only, in a root folder (``tree``, optional)."""

    def __init__(self, wheel, tree: Optional[TreeFS] = None):
        self.wheel = wheel
        self.tree = tree

    def lookup(self, path: str) -> Optional[str]:
        if self.wheel.has_file(path):
            return posixpath.normpath(path)
        return self.tree.lookup(path) if self.tree is not None else None

    def elf(self, real_path: str) -> Optional[ElfInfo]:
        info = self.wheel.elf(real_path)
        if info is None and self.tree is not None and not self.wheel.has_file(real_path):
            info = self.tree.elf(real_path)
        return info

    def symbols(self, real_path: str):
        """The symbol facts of a member (read by ``scan_wheel(...,
        symbols=True)``), else of a file of ``tree``."""
        if self.wheel.has_file(real_path):
            return self.wheel.symbols(real_path)
        return self.tree.symbols(real_path) if self.tree is not None else None

    def symbols_key(self, real_path: str) -> Optional[Tuple[int, int, int, int]]:
        """None: a member's facts are not keyed on a file's identity (no cached verdicts)."""
        return None

    def read_text(self, path: str) -> Optional[str]:
        return self.tree.read_text(path) if self.tree is not None else None

    def is_secure(self, path: str) -> bool:
        return self.tree.is_secure(path) if self.tree is not None else False

    @property
    def root(self) -> Optional[str]:
        """The host folder of the root beside the wheel (``--root``), or None."""
        return self.tree.root if self.tree is not None else None

    @property
    def files(self) -> Optional[HostFiles]:
        """The root protocol of the root beside the wheel (its tree's files), or None."""
        return self.tree.files if self.tree is not None else None




class ImageFS:
    """Libraries looked up in a saved image (a
    :class:`rundeps.inputs.image.ImageTree`), read from its layer members.

    A file asked for that the walk did not read (a system library) is read
    together with the other libraries beside it that the search may ask for
    next (regular files named ``*.so*`` in its folder and its layer): a
    compressed layer is decompressed once for them, not once per file.
    Only facts are kept, never bytes.  ``symbols``: read symbol facts with
    the ELF facts (what binding needs); ``prefetched``: facts read while the
    image was opened (:class:`rundeps.inputs.imagescan.Prefetch`)."""

    def __init__(self, image, known: Optional[Mapping[str, ElfInfo]] = None, on_error=None, symbols: bool = False,
                 prefetched=None):
        self.image = image
        self.prefetched = prefetched  # a rundeps.inputs.imagescan.Prefetch, or None
        self.files = image
        self.root = None  # no host folder
        self._infos: Dict[str, Optional[ElfInfo]] = dict(known or {})
        self._symbols: Dict[str, object] = {}
        self._items: Dict[str, ScanItem] = {}
        self._on_error = on_error
        self._want_symbols = symbols
        self._lookups: Dict[str, Optional[str]] = {}

    def lookup(self, path: str) -> Optional[str]:
        """The in-image real path of a regular file at ``path``, or None."""
        try:
            return self._lookups[path]
        except KeyError:
            pass
        real = self.image.resolve(path)
        if real is not None and self.image.entries[real].kind != "file":
            real = None
        self._lookups[path] = real
        return real

    def known_items(self, items: Iterable[ScanItem]) -> None:
        """Seed :meth:`symbols` with the scanned items' facts (see :func:`rundeps.inputs.imagescan.scan_image`)."""
        self._items.update((item.path, item) for item in items)

    def elf(self, real_path: str) -> Optional[ElfInfo]:
        """The ELF info of an in-image real path (None if not ELF or broken)."""
        try:
            return self._infos[real_path]
        except KeyError:
            pass
        self._read(self._batch(real_path), self._want_symbols)
        return self._infos.get(real_path)

    def symbols(self, real_path: str):
        """The symbol facts of an in-image real path, None if it has none."""
        item = self._items.get(real_path)
        if item is not None:
            return item.load_symbols()
        if real_path not in self._symbols:  # not read yet, or read without symbols: read now
            self._read([real_path] if real_path in self._infos else self._batch(real_path), True)
        return self._symbols.get(real_path)

    def symbols_key(self, real_path: str) -> None:
        """None: no verdict of an image's files is cached."""
        return None

    def _batch(self, real_path: str):
        """``real_path`` and the libraries beside it, in its layer, not read yet."""
        entry = self.image.entries.get(real_path)
        if entry is None or entry.kind != "file":
            return [real_path]
        folder = posixpath.dirname(real_path)
        batch = [real_path]
        for name in self.image.children(folder):
            p = posixpath.join(folder, name)
            e = self.image.entries.get(p)
            if (".so" in name and p != real_path and p not in self._infos and e is not None and e.kind == "file"
                    and e.layer == entry.layer):
                batch.append(p)
        return batch

    def _read(self, paths, symbols: bool) -> None:
        from ..inputs.imagescan import read_members

        for p in paths:
            self._infos.setdefault(p, None)
            if symbols:
                self._symbols.setdefault(p, None)
        for path, info, facts in read_members(self.image, paths, symbols, self._error, prefetched=self.prefetched):
            self._infos[path] = info
            if facts is not None:
                self._symbols[path] = facts
            if self.prefetched is not None:  # kept with the image's other facts for a repeat run
                self.prefetched.record(self.image, path, info, facts, symbols)

    def _error(self, path: str, reason: str) -> None:
        if self._on_error:
            self._on_error(path, reason)

    def read_text(self, path: str) -> Optional[str]:
        """The text of a regular file, None if there is none, ``""`` if it cannot be read."""
        real = self.lookup(path)
        if real is None:
            return None
        try:
            return self.image.read(real, 0, 1 << 16).decode("utf-8", "replace")
        except OSError:
            return ""

    def is_secure(self, path: str) -> bool:
        """True for a setuid or setgid file."""
        real = self.lookup(path)
        mode = self.image.mode(real) if real is not None else None
        return bool(mode and mode & (_stat.S_ISUID | _stat.S_ISGID))

"""Walk folders of a root file system and read their ELF files.

Rules (see the tests):

* regular files only; symlinked folders are never entered; a symlink found in
  the walk that resolves (inside the root) to an ELF file is recorded in
  :attr:`ScanResult.links` (it is a name the library can be loaded by);
* FIFOs, sockets and devices are never opened (``d_type`` from ``scandir``,
  and ``O_NONBLOCK | O_NOFOLLOW`` on open as belt and braces);
* files are recognised by the ELF magic, never by name; non-ELF files are
  skipped silently; unreadable files and folders, and broken ELF files, are
  reported once through the diagnostics' ``file_error(in_root_path, reason)``
  and skipped;
* ``exclude`` globs (:mod:`fnmatch`) are matched against in-root paths;
* the given paths are canonicalised inside the root (symlinks resolved, ``..``
  clamped) and paths inside another given path are dropped, so each file is
  read and listed once, under its real in-root path;
* file names that are not UTF-8 are kept as :func:`os.fsdecode` does
  (surrogateescape) and never crash the walk; symlink loops end after 40 hops.
* as each folder is listed, one holding a ``*.dist-info``/``*.egg-info``
  folder and one holding an ``__init__.py``/``__init__.pyc`` (a package)
  are noted; :attr:`ScanResult.python_roots` are the Python import roots
  they and the extension modules found make (:mod:`rundeps.inputs.pytree`).

Speed: directories are opened once and their files opened relative to the
directory descriptor (``openat``), only the first 64 bytes of a file are read unless it is ELF
(then the first :data:`rundeps.elf.types.HEAD_SIZE`), and with a :class:`FileCache` an
unchanged file is only ``stat``-ed, never opened (its folder's signature,
see :mod:`rundeps.inputs.filecache`, is compared once).  In-root paths
become host paths through :mod:`rundeps.rootfs` only.
"""

from __future__ import annotations

import gc
import os
import posixpath
import stat as _stat
from collections import Counter, namedtuple
# typing is only needed by type checkers (annotations are strings here);
# not importing it keeps start-up light.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

from ..diagnostics import SILENT, Diagnostics
from ..elf.dynamic import parse_fd
from ..elf.reader import read_elf_fd_pyelftools, reader_name
from ..elf.types import HEAD_SIZE, ElfError, ElfInfo, is_elf_magic
from ..rootfs import join_host, norm_root, resolve_from, split_path
from .filecache import folder_signature, signature_keys
from .pytree import DIST_INFO_SUFFIXES, PACKAGE_INITS, import_roots

if TYPE_CHECKING:  # pragma: no cover
    from .filecache import FileCache  # noqa: F401
    from .forked import Prefetch  # noqa: F401

__all__ = ["ScanItem", "ScanResult", "scan", "read_keyed", "stat_key", "compile_excludes", "is_under"]

PROGRESS_EVERY = 1000

_O_FILE = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_HAVE_DIR_FD = os.open in os.supports_dir_fd and os.scandir in os.supports_fd
#: The first read of a file: its ELF identification and header (the rest of
#: :data:`HEAD_SIZE` is read only for an ELF file).
_MAGIC_READ = 64


class ScanItem:
    """One ELF regular file found by :func:`scan`.

    :meth:`load_symbols` gives its :class:`rundeps.elf.facts.SymbolFacts`
    when the scan was asked for them (``scan(..., symbols=True)``), else
    None; also None when its symbol tables could not be read (reported
    through the diagnostics' ``file_error``).  With a file cache they are
    read by the item's first :meth:`load_symbols` (see :func:`scan`);
    ``symbols_key`` is then the file's (device, inode, size, mtime_ns)
    those facts are, or will be, for.
    """

    __slots__ = ("path", "host_path", "info", "_symbols", "_loader", "symbols_key")

    def __init__(self, path: str, host_path: Optional[str], info: ElfInfo, symbols=None):
        self.path = path  # in-root path, e.g. '/usr/local/lib/python3.12/site-packages/x.so'
        self.host_path = host_path  # the real path on this machine (None for an image's file)
        self.info = info
        self._symbols = symbols
        self._loader: Optional[_Symbols] = None
        self.symbols_key: Optional[Tuple[int, int, int, int]] = None

    def load_symbols(self):
        """The item's symbol facts.  In a scan with a file cache the first
        call reads them (or takes what the walk's forked child read, see
        :func:`scan`'s ``jobs``); later calls give what it found."""
        loader = self._loader
        if loader is not None:
            loader.load(self)
        return self._symbols

    def key_symbols(self, stat_now: "Callable[[], Optional[Tuple[int, int, int, int]]]"):
        """The (device, inode, size, mtime_ns) the item's symbol facts are
        for: the one the scan noted, else ``stat_now()``'s (read without a
        cache: the walk's file, statted now), noted from then on."""
        if self.symbols_key is None:
            self.symbols_key = stat_now()
        return self.symbols_key

    def __repr__(self) -> str:
        return f"ScanItem({self.path!r}, {self.host_path!r}, {self.info!r})"


class ScanResult:
    """What :func:`scan` found.  (Plain classes, not dataclasses: see
    :class:`rundeps.elf.types.ElfInfo`.)"""

    __slots__ = ("items", "links", "files_seen", "python_roots")

    def __init__(self, items: Optional[List[ScanItem]] = None, links: Optional[Dict[str, str]] = None,
                 files_seen: int = 0, python_roots: FrozenSet[str] = frozenset()):
        self.items = [] if items is None else items  # one per ELF regular file, sorted by path
        self.links = {} if links is None else links  # in-root symlink -> in-root ELF target
        self.files_seen = files_seen
        self.python_roots = python_roots
        """The Python import roots the walk recognised by their content
        (:func:`rundeps.inputs.pytree.import_roots`): in-root folders."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def compile_excludes(exclude: Sequence[str]):
    """One match function for the ``exclude`` globs (None without any)."""
    if not exclude:
        return None
    import fnmatch
    import re

    rx = re.compile("|".join(f"(?:{fnmatch.translate(os.fsdecode(g))})" for g in exclude))
    return rx.match


def is_under(path: str, top: str) -> bool:
    """True when in-root ``path`` is ``top`` or inside it."""
    return top == "/" or path == top or path.startswith(top + "/")


class _Walker:
    """One walk of a root folder: what it found so far, and where it reports."""

    def __init__(self, root: str, on_error: "Callable[[str, str], None]", progress, excluded):
        self.root = root
        self.on_error = on_error
        self.progress = progress
        self.excluded = excluded
        self.found: List[Tuple[str, ElfInfo]] = []
        self.symlinks: List[Tuple[str, str]] = []  # (in-root link path, in-root parent folder)
        self.files_seen = 0
        self.next_progress = PROGRESS_EVERY
        self.pyelftools = reader_name() == "pyelftools"  # RUNDEPS_ELF_READER
        self.keys: Optional[Dict[str, Tuple[int, ...]]] = None  # in-root path -> stat key, when wanted
        self.prefetch: Optional[Prefetch] = None  # reads symbol facts in a child while the walk goes on
        self.info_folders: Set[str] = set()  # folders holding a *.dist-info or *.egg-info folder
        self.packages: Set[str] = set()  # folders holding an __init__.py or __init__.pyc

    def error(self, path: str, reason: str) -> None:
        self.on_error(path, reason)

    def tick_progress(self) -> None:
        while self.next_progress <= self.files_seen:
            self.next_progress += PROGRESS_EVERY
        if self.progress is not None:
            self.progress(self.files_seen)

    # -- one file -----------------------------------------------------------

    def read_file(self, path: str, name: str, dir_fd: Optional[int]):
        """Read the regular file known in the root as ``path``: ``name``
        relative to ``dir_fd``, or (``dir_fd`` None) by its host path.
        Returns None (not ELF), a reason (str: a broken ELF file) or the
        :class:`ElfInfo`, or raises OSError (after reporting it)."""
        try:
            if dir_fd is None:
                fd = os.open(join_host(self.root, path), _O_FILE)
            else:
                fd = os.open(name, _O_FILE, dir_fd=dir_fd)
        except OSError as exc:
            self.error(path, _reason(exc))
            raise
        try:
            try:
                head = os.read(fd, _MAGIC_READ)  # most files are not ELF: their first bytes say so
                if head[:4] != b"\x7fELF":
                    return None
                if len(head) == _MAGIC_READ:
                    head += os.read(fd, HEAD_SIZE - _MAGIC_READ)
                try:
                    if self.pyelftools:
                        return read_elf_fd_pyelftools(fd)
                    info = parse_fd(fd, head)
                except ElfError as exc:
                    return str(exc) or "broken ELF"
                if self.prefetch is not None:
                    size = os.fstat(fd).st_size
                    self.prefetch.add(path, join_host(self.root, path), (info.needed, info.soname, size), size,
                                      info.soname is not None)
                return info
            except OSError as exc:
                self.error(path, _reason(exc))
                raise
        finally:
            os.close(fd)

    def _record(self, path: str, value) -> None:
        if value is None:
            return
        if value.__class__ is str:
            self.error(path, value)
            return
        self.found.append((path, value))

    def _read_folder_files(self, prefix: str, names: List[str], dir_fd: Optional[int]) -> None:
        """Without a cache: read every regular file ``names`` of a folder."""
        read_file = self.read_file
        record = self._record
        for name in names:
            path = prefix + name
            try:
                value = read_file(path, name, dir_fd)
            except OSError:
                continue
            record(path, value)

    def _cached_folder(self, d: str, prefix: str, names: List[str], stats: List[int],
                       dir_fd: Optional[int], old, new) -> None:
        """With a cache: the folder's files are unchanged if its signature
        is; otherwise compare them one by one and read the ones that changed."""
        sig = folder_signature(names, stats)
        old_sig = old.dirs.pop(d, None)
        old_vals = old.values.pop(d, None)
        record = self._record
        if sig == old_sig:
            new.dirs[d] = sig
            if old_vals:
                new.values[d] = old_vals
                for name, value in old_vals.items():
                    record(prefix + name, value)
                if self.keys is not None:  # the ELF files' (dev, ino, size, mtime_ns), for their symbols
                    at = {n: 4 * i for i, n in enumerate(names) if n in old_vals}
                    for name, i in at.items():
                        self.keys[prefix + name] = tuple(stats[i:i + 4])
            return
        new.changed = True
        old_keys = signature_keys(old_sig)  # (none for a folder the cache has not seen: all read)
        old_vals = old_vals or {}
        vals = {}
        failed: Set[int] = set()
        read_file = self.read_file
        keys = self.keys
        for i, name in enumerate(names):
            path = prefix + name
            key = tuple(stats[4 * i:4 * i + 4]) if old_keys else None
            if key is not None and old_keys.get(name) == key:
                value = old_vals.get(name)
            else:
                try:
                    value = read_file(path, name, dir_fd)
                except OSError:
                    failed.add(i)  # left out of the signature: read again next time
                    continue
            if value is not None:
                vals[name] = value
                if keys is not None:
                    keys[path] = key if key is not None else tuple(stats[4 * i:4 * i + 4])
            record(path, value)
        if failed:
            kept = [i for i in range(len(names)) if i not in failed]
            if kept:
                new.dirs[d] = folder_signature([names[i] for i in kept],
                                               [n for i in kept for n in stats[4 * i:4 * i + 4]])
        elif names:
            new.dirs[d] = sig
        if vals:
            new.values[d] = vals

    # -- a folder ------------------------------------------------------------

    def note_python(self, d: str, subdirs: List[str], names: List[str]) -> None:
        """Note what in folder ``d`` says it is Python's: a ``*.dist-info``/
        ``*.egg-info`` folder among its ``subdirs``, an ``__init__`` module
        among its regular files ``names`` (see :mod:`rundeps.inputs.pytree`)."""
        if PACKAGE_INITS[0] in names or PACKAGE_INITS[1] in names:
            self.packages.add(d)
        for sub in subdirs:
            if sub.endswith(DIST_INFO_SUFFIXES):
                self.info_folders.add(d)
                return

    def walk_dir(self, top: str, old, new) -> None:
        """Walk the real in-root folder ``top``.  With a cache, ``old`` (the
        last scan's entries) is emptied of every folder seen, so what is left
        afterwards is what has gone, and ``new`` gets this scan's entries."""
        root = self.root
        excluded = self.excluded
        use_cache = new is not None
        symlinks = self.symlinks
        error = self.error
        stack = [top]
        while stack:
            d = stack.pop()
            host = join_host(root, d)
            prefix = d if d.endswith("/") else d + "/"
            dfd = None
            try:
                if _HAVE_DIR_FD:
                    dfd = os.open(host, _O_DIR)
                    it = os.scandir(dfd)
                else:
                    it = os.scandir(host)
            except OSError as exc:
                if dfd is not None:
                    os.close(dfd)
                error(d, _reason(exc))
                continue
            subdirs = []
            names: List[str] = []
            stats: List[int] = []
            seen = 0
            try:
                try:
                    with it:
                        for e in it:
                            try:
                                if not e.is_file(follow_symlinks=False):
                                    if e.is_dir(follow_symlinks=False):
                                        subdirs.append(prefix + e.name)
                                    elif e.is_symlink():
                                        path = prefix + e.name
                                        if excluded is None or not excluded(path):
                                            symlinks.append((path, d))
                                    continue  # FIFO, socket, device: never opened
                            except OSError as exc:
                                error(prefix + e.name, _reason(exc))
                                continue
                            name = e.name
                            if excluded is not None and excluded(prefix + name):
                                continue
                            seen += 1
                            if use_cache:
                                try:
                                    st = e.stat(follow_symlinks=False)
                                except OSError as exc:
                                    error(prefix + name, _reason(exc))
                                    continue
                                if not _stat.S_ISREG(st.st_mode):
                                    continue  # replaced since the listing
                                stats += (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                            names.append(name)
                except OSError as exc:  # reading the folder itself failed
                    error(d, _reason(exc))
                self.note_python(d, subdirs, names)
                if names or (use_cache and d in old.dirs):
                    if use_cache:
                        self._cached_folder(d, prefix, names, stats, dfd, old, new)
                    else:
                        self._read_folder_files(prefix, names, dfd)
            finally:
                if dfd is not None:
                    os.close(dfd)
            if seen:
                self.files_seen += seen
                if self.files_seen >= self.next_progress:
                    self.tick_progress()
            # Depth first, in name order for stable progress.
            subdirs.sort(reverse=True)
            stack.extend(subdirs)

    def one_file(self, path: str, old, new) -> None:
        if self.excluded is not None and self.excluded(path):
            return
        self.files_seen += 1
        d, name = posixpath.split(path)
        prefix = d if d.endswith("/") else d + "/"
        if new is None:
            self._read_folder_files(prefix, [name], None)
            return
        try:
            st = os.lstat(join_host(self.root, path))
        except OSError as exc:
            self.error(path, _reason(exc))
            return
        self._cached_folder(d, prefix, [name], [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns], None, old, new)


def _canonical_tops(root: str, paths: Sequence[str], error) -> List[Tuple[str, str, Optional[str]]]:
    """[(given in-root path, real in-root path, 'dir' | 'file')] without
    duplicates or paths nested inside another."""
    tops = []
    for given in paths:
        g = posixpath.normpath("/" + os.fsdecode(given))
        if g.startswith("//"):
            g = "/" + g.lstrip("/")
        got = resolve_from(root, [], split_path(g))
        if got is None:
            try:
                os.lstat(join_host(root, g))
                error(g, "symlink loop or target outside the file system")
            except OSError as exc:
                error(g, _reason(exc))
            continue
        real, st = got
        if _stat.S_ISDIR(st.st_mode):
            kind = "dir"
        elif _stat.S_ISREG(st.st_mode):
            kind = "file"
        else:
            continue  # a FIFO, socket or device given by name: never opened
        tops.append((g, real, kind))
    tops.sort(key=lambda t: (t[1], t[0]))
    out: List[Tuple[str, str, Optional[str]]] = []
    for g, real, kind in tops:
        if any(is_under(real, o[1]) for o in out if o[2] == "dir") or any(real == o[1] for o in out):
            # Still remember a given symlink that names a file.
            out.append((g, real, None))
            continue
        out.append((g, real, kind))
    return out


_Walk = namedtuple("_Walk", "exclude symbols jobs")
"""What one walk reads beside its paths and root: the ``exclude`` globs,
whether ``symbols`` are read, and the ``jobs`` that read them (see :func:`scan`)."""


def scan(
    paths: Sequence[str],
    root: str = "/",
    exclude: Sequence[str] = (),
    diag: Diagnostics = SILENT,
    cache: Optional["FileCache"] = None,
    jobs: Optional[int] = None,
    symbols: bool = False,
) -> ScanResult:
    """Walk the in-root ``paths`` (folders or single files) of ``root`` and
    read every ELF regular file in them.

    ``symbols=True`` also reads each ELF file's symbol facts
    (:class:`rundeps.elf.facts.SymbolFacts`, given by
    :meth:`ScanItem.load_symbols`). With a ``cache`` an item's facts are
    read by its first :meth:`ScanItem.load_symbols` (a file that cannot be
    read is reported then), so that a repeat run whose binding verdicts
    are cached (:mod:`rundeps.bind`) reads no symbol table, and one after
    a change reads those of the loads it binds again. The facts are not
    kept in the cache: writing them (11 MB for tree A of
    ``scripts/bench.py``) costs a first run more than reading the few
    tables a change needs costs a later one.

    ``cache`` (a :class:`rundeps.inputs.filecache.FileCache`) skips files whose
    (device, inode, size, mtime_ns) are unchanged since the last scan.
    ``jobs``: with 2 or more (and symbols), the symbol tables to read are
    shared with one forked child process when there are enough of them, on a
    machine with two cores, in a process without other threads (the same
    facts either way; the CLI asks for it, the default is 1): the child is
    forked as soon as the walk has read enough ELF files and reads their
    tables while the walk goes on (:class:`~rundeps.inputs.forked.Prefetch`);
    with a cache, its results are taken when the first facts are asked for. The
    walk itself is single-threaded: a second thread did not pay on two cores
    (see scripts/bench.py).
    ``diag``: ``diag.file_error(in_root_path, reason)`` hears of every file
    or folder that could not be read, ``diag.progress(n)`` (when set) the
    number of files seen so far.
    """
    # The walk makes a few objects per file (entries, stat results, tuples)
    # and never a reference cycle: the cyclic collector would only re-scan
    # everything alive, about a tenth of a warm scan's time.  Off meanwhile.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _scan(paths, root, _Walk(exclude, symbols, jobs or 1), diag, cache)
    finally:
        if gc_was_enabled:
            gc.enable()


def _scan(paths: Sequence[str], root: str, walk: _Walk, diag: Diagnostics, cache) -> ScanResult:
    root = norm_root(root)
    symbols, progress = walk.symbols, diag.progress
    excluded = compile_excludes(walk.exclude)
    w = _Walker(root, diag.file_error, progress, excluded)
    if symbols and cache is not None:
        w.keys = {}
    tops = _canonical_tops(root, paths, w.error)
    if symbols and walk.jobs > 1 and not w.pyelftools:
        from .forked import Prefetch, can_fork

        if can_fork():
            w.prefetch = Prefetch(_read_recorded, _same_ranges)
    try:
        _walk_tops(w, root, tops, cache)
    except BaseException:
        if w.prefetch is not None:
            w.prefetch.abort()
        raise

    found = w.found
    found.sort(key=lambda t: t[0])
    items = [ScanItem(p, join_host(root, p), info) for p, info in found]
    elf_paths = {p for p, _ in found}
    if symbols:
        prefetched = _Prefetched(w.prefetch, walk.jobs)
        if cache is None:  # read now: the files that cannot be read are named here, as without the child
            prefetched.results()
        _attach_symbols(items, w.error, cache is not None, w.keys, prefetched)

    links: Dict[str, str] = {}
    dir_tops = [real for _g, real, kind in tops if kind == "dir"]
    candidates = list(w.symlinks)
    # A given path that is itself a symlink (to a file) is a name too.
    for given, real, kind in tops:
        if given == real or given == "/":
            continue
        pr = resolve_from(root, [], split_path(posixpath.dirname(given)))
        if pr is None or not _stat.S_ISDIR(pr[1].st_mode):
            continue
        link = posixpath.join(pr[0], posixpath.basename(given))
        try:
            if _stat.S_ISLNK(os.lstat(join_host(root, link)).st_mode):
                candidates.append((link, pr[0]))
        except OSError:
            pass
    top_files = {r for _g, r, k in tops if k == "file"}
    for link, parent in candidates:
        target = resolve_from(root, split_path(parent), [posixpath.basename(link)])
        if target is None:
            continue
        tpath, st = target
        if not _stat.S_ISREG(st.st_mode) or tpath == link:
            continue
        if tpath in elf_paths:
            links[link] = tpath
        elif tpath not in top_files and not any(is_under(tpath, t) for t in dir_tops):
            # Outside what was scanned: look at its magic.
            try:
                fd = os.open(join_host(root, tpath), _O_FILE)
                try:
                    head = os.read(fd, 4)
                finally:
                    os.close(fd)
            except OSError:
                continue
            if is_elf_magic(head):
                links[link] = tpath
    if progress is not None:
        progress(w.files_seen)
    roots = import_roots(w.info_folders, w.packages, elf_paths)
    return ScanResult(items=items, links=links, files_seen=w.files_seen, python_roots=roots)


def _walk_tops(w: _Walker, root: str, tops, cache) -> None:
    """Walk each scanned top (a folder or a file), with the cache's entries
    of the last scan of it when there is a cache (stored back after)."""
    for _given, real, kind in tops:
        if kind is None:
            continue
        old = new = None
        if cache is not None:
            from .filecache import Entries

            old = cache.load(root, real)
            new = Entries()
        if kind == "dir":
            w.walk_dir(real, old, new)
        else:
            w.one_file(real, old, new)
        if cache is not None:
            cache.store(root, real, old, new)


def stat_key(st) -> Tuple[int, int, int, int]:
    """The (device, inode, size, mtime_ns) the caches key a file on."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_keyed(host_path: str, read):
    """``(stat_key, read(fd, stat_key))`` of the regular file at
    ``host_path``, opened once (not through a final symlink): the key is of
    the very file read. OSError and ElfError propagate."""
    fd = os.open(host_path, _O_FILE)
    try:
        key = stat_key(os.fstat(fd))
        return key, read(fd, key)
    finally:
        os.close(fd)


def _host_path(item: ScanItem) -> str:
    """The host path of an item of a walk of a root folder (an image's items have none)."""
    path = item.host_path
    if path is None:
        raise TypeError(f"{item.path} is not a file on this machine")
    return path


def _copy_key(item: ScanItem, size: Optional[int] = None):
    """What two copies of one file share: their sonames and size."""
    if size is None:
        try:
            size = os.lstat(_host_path(item)).st_size
        except OSError:
            return None
    return (item.info.needed, item.info.soname, size)


class _Prefetched:
    """How a scan reads symbol facts: with ``jobs`` processes, and what a
    :class:`~rundeps.inputs.forked.Prefetch` read, taken when asked: all
    of it (the child waited for), or, with a cache, each file's when the
    binder first needs it, so that binding starts while the child reads on."""

    def __init__(self, prefetch: Optional[Prefetch] = None, jobs: int = 1):
        self.prefetch, self.jobs = prefetch, jobs
        if prefetch is not None:
            prefetch.close_queue()
        self.got: Optional[Dict[str, tuple]] = None

    def results(self) -> Dict[str, tuple]:
        """Everything read (the child waited for)."""
        if self.got is None:
            prefetch, self.prefetch = self.prefetch, None
            self.got = prefetch.finish() if prefetch is not None else {}
        return self.got

    def take(self, path: str) -> Optional[tuple]:
        """What was read of one file, as soon as it is (None: read it)."""
        if self.got is not None:
            return self.got.pop(path, None)
        return self.prefetch.take(path) if self.prefetch is not None else None


def _attach_symbols(items: List[ScanItem], error, lazy: bool, keys=None,
                    prefetched: Optional[_Prefetched] = None) -> None:
    """Give each item its symbol facts (:meth:`ScanItem.load_symbols`), read
    from the file (what :class:`~rundeps.inputs.forked.Prefetch` read during
    the walk is used, ``prefetched``, with the ``jobs`` that read). Not
    ``lazy`` (a scan without a cache), every item's are read now, the files
    that cannot be read named now; ``lazy``, each item's are read by its
    first :meth:`ScanItem.load_symbols`, so that a run which needs none of
    them (its binding verdicts are cached, see :mod:`rundeps.bind`) reads
    none, and one that needs a few reads those. ``keys``: the walk's stat
    key of each file, by in-root path (else the file is ``lstat``-ed)."""
    loader = _Symbols(_CopyReader(items), error, prefetched or _Prefetched())
    if not lazy:
        loader.load_all(items)
        return
    keys = keys or {}
    for item in items:
        key = keys.get(item.path)  # as the walk found the file
        if key is None:
            try:
                key = stat_key(os.lstat(_host_path(item)))
            except OSError:
                key = None
        item.symbols_key = key
        item._loader = loader


class _CopyReader:
    """Reads symbol facts, parsing a copy of a file read before only once
    (:class:`rundeps.elf.reader.SameBytes`): files with the same sonames and
    size may be copies."""

    def __init__(self, items: List[ScanItem]):
        self.items = items
        self.copies: Optional[Counter] = None

    def read(self, item: ScanItem, fd: int, size: int):
        if self.copies is None:  # counted when the first file is read
            from ..elf.reader import SameBytes

            items = self.items
            names = Counter((i.info.needed, i.info.soname) for i in items)
            self.copies = Counter(_copy_key(i) for i in items if names[i.info.needed, i.info.soname] > 1)
            self.same = SameBytes()
        ckey = _copy_key(item, size)
        left = self.copies[ckey]
        self.copies[ckey] = left - 1
        return self.same.read_fd(fd, ckey, left)


class _Symbols:
    """Reads the symbol facts of a scan's items: what the walk's prefetch
    read, else the file now."""

    def __init__(self, reader: _CopyReader, error, prefetched: _Prefetched):
        self.reader, self.error, self.prefetched = reader, error, prefetched

    def load(self, item: ScanItem) -> None:
        """Read ``item``'s facts (its first :meth:`ScanItem.load_symbols`)."""
        item._loader = None
        got = self.prefetched.take(item.path)
        self._take(item, got if got is not None else _read_one(item, self.reader))

    def load_all(self, items: List[ScanItem]) -> None:
        """Read every item's facts now, the ones not prefetched with the ``jobs`` that read."""
        pre = self.prefetched.results()
        rest = [item for item in items if item.path not in pre]
        read: Dict[str, tuple] = {}
        if rest:
            from .forked import read_symbols_of  # only when some symbol table is to be read

            reader = self.reader
            read = {item.path: got for item, got in
                    read_symbols_of(rest, lambda item: _read_one(item, reader), self.prefetched.jobs)}
        for item in items:
            got = pre.pop(item.path, None)
            self._take(item, got if got is not None else read[item.path])

    def _take(self, item: ScanItem, got: tuple) -> None:
        if got[0] == "error":
            item._symbols = None
            self.error(item.path, got[1])
            return
        item.symbols_key = got[1]
        item._symbols = got[2]  # None: replaced by a non-ELF file since the walk


def _read_recorded(host_path: str):
    """``("facts", key, facts or None, ranges)`` or ``("error", reason)``
    of one file, read with the fast reader; ``ranges``: the (offset, size)
    of every read it made, for :func:`_same_ranges` (see
    :class:`rundeps.inputs.forked.Prefetch`)."""
    from ..elf.symbols import read_symbols_pread

    ranges: List[Tuple[int, int]] = []

    def read(fd: int, key):
        def read_at(offset: int, size: int) -> bytes:
            ranges.append((offset, size))
            return os.pread(fd, size, offset)

        return read_symbols_pread(read_at)

    try:
        key, facts = read_keyed(host_path, read)
    except ElfError as exc:
        return ("error", f"broken symbol table: {exc}")
    except OSError as exc:
        return ("error", _reason(exc))
    return ("facts", key, facts, ranges)


def _same_ranges(first: str, first_key, copy: str, ranges) -> Optional[Tuple[int, int, int, int]]:
    """The stat key of the file ``copy`` when it holds the same bytes as
    ``first`` (still as its stat key ``first_key`` says it was read) in
    every one of ``ranges``; None otherwise or on any error."""
    try:
        a = os.open(first, _O_FILE)
        try:
            if stat_key(os.fstat(a)) != tuple(first_key):
                return None
            b = os.open(copy, _O_FILE)
            try:
                key = stat_key(os.fstat(b))
                for offset, size in ranges:
                    if os.pread(a, size, offset) != os.pread(b, size, offset):
                        return None
                return key
            finally:
                os.close(b)
        finally:
            os.close(a)
    except (OSError, OverflowError, ValueError):
        return None


def _read_one(item: ScanItem, reader: _CopyReader):
    """("facts", key, facts or None) or ("error", reason) for one item."""
    try:
        key, facts = read_keyed(_host_path(item), lambda fd, key: reader.read(item, fd, key[2]))
    except ElfError as exc:
        return ("error", f"broken symbol table: {exc}")
    except OSError as exc:
        return ("error", _reason(exc))
    return ("facts", key, facts)

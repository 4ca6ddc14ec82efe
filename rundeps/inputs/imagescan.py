"""Walk folders of a saved image (:class:`rundeps.inputs.image.ImageTree`) and
read their ELF files straight from the layer members, as :mod:`rundeps.inputs.walk`
walks a root folder: the same rules, the same :class:`ScanResult`.

* regular files only; symlinked folders are never entered; a symlink found
  in the walk that resolves (inside the image) to an ELF file is recorded in
  :attr:`ScanResult.links`;
* files are recognised by the ELF magic, never by name; broken ELF files are
  reported once through ``on_error(in_image_path, reason)`` and skipped;
* ``exclude`` globs are matched against in-image paths; the given paths are
  resolved inside the image and paths inside another given path dropped.
* the Python import roots are recognised as the walk of a root folder
  recognises them (:attr:`ScanResult.python_roots`).

Reading: every layer holding a file to read is passed over once
(:meth:`ImageTree.stream_files`), in member order; a file's first
:data:`~rundeps.elf.types.HEAD_SIZE` bytes say whether it is ELF, and only an
ELF file is read whole -- one file in memory at a time, its facts kept, its
bytes dropped.  Nothing is written to the host.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, BinaryIO, Callable, Dict, List, Optional, Sequence, Set, Tuple, cast

from ..diagnostics import SILENT, Diagnostics
from ..elf.reader import read_elf, read_symbols
from ..elf.types import HEAD_SIZE, ElfError, ElfInfo, is_elf_magic
from .pytree import DIST_INFO_SUFFIXES, PACKAGE_INITS, import_roots
from .walk import PROGRESS_EVERY, ScanItem, ScanResult, compile_excludes, is_under

if TYPE_CHECKING:  # pragma: no cover
    from ..elf.facts import SymbolFacts

__all__ = ["scan_image", "read_members", "member_facts", "Prefetch", "entry_program", "image_env", "EntryProgram",
           "DEFAULT_PATH", "MAX_ELF_READ"]

OnError = Callable[[str, str], None]

_PIECE = 1 << 20
MAX_ELF_READ = 128 * 1024 * 1024
"""The largest ELF member read (whole, into memory): a larger one is reported
through ``on_error`` and skipped, its bytes never decompressed."""


def _ignore(_path: str, _reason: str) -> None:
    return None


def read_members(tree, paths, symbols: bool, on_error: OnError = _ignore, magic_only: bool = False,
                 prefetched: Optional["Prefetch"] = None):
    """Yield ``(path, info, facts)`` for each ELF regular file among the
    in-image real ``paths`` (hard links give one item per name): ``info`` its
    :class:`ElfInfo`, ``facts`` its symbol facts with ``symbols`` (else
    None).  Broken files go to ``on_error`` and are left out.  With
    ``magic_only`` nothing beyond the magic is read (``info`` is None).
    ``prefetched``: facts read while the image was opened (a
    :class:`Prefetch`); only the files it did not look at are read now."""
    rest = []
    for p in paths:
        got = prefetched.get(tree, p, symbols) if prefetched is not None and not magic_only else None
        if got is None:
            rest.append(p)
            continue
        info, facts, error = got
        if error is not None:
            on_error(p, error)
        elif info is not None:
            yield p, info, facts
    for names, f, size in tree.stream_files(rest):
        head = f.read(HEAD_SIZE)
        if not is_elf_magic(head):
            continue
        if magic_only:
            for name in names:
                yield name, None, None
            continue
        info, facts, error = member_facts(f, size, head, symbols)
        if error is not None:
            on_error(names[0], error)
        if info is None:
            continue
        for name in names:
            yield name, info, facts


class _View:
    """A seekable read-only file over a buffer (no copy of the whole)."""

    __slots__ = ("_b", "_pos")

    def __init__(self, b):
        self._b, self._pos = memoryview(b), 0

    def seek(self, pos, whence=0):
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else len(self._b) + pos)
        return self._pos

    def tell(self):
        return self._pos

    def read(self, n=-1):
        end = len(self._b) if n is None or n < 0 else self._pos + n
        data = bytes(self._b[self._pos:end])
        self._pos += len(data)
        return data


def member_facts(f, size: int, head: bytes, symbols: bool):
    """(info, facts, error) of one ELF member whose first bytes ``head``
    were read from ``f``: the rest read into one buffer, parsed, dropped;
    a member over :data:`MAX_ELF_READ` bytes is an error, left unread."""
    if size > MAX_ELF_READ:
        return None, None, f"an ELF file of {size} bytes, more than the {MAX_ELF_READ} read: not checked"
    buf = bytearray(head)  # grown as bytes arrive: a header's size is not trusted with an allocation
    while len(buf) < size:
        piece = f.read(min(_PIECE, size - len(buf)))  # in pieces: a tar stream copies what one read asks for
        if not piece:
            break
        buf += piece
    data = _View(buf)
    try:
        info = read_elf(cast(BinaryIO, data))  # a _View reads and seeks as a binary file does
    except ElfError as exc:
        return None, None, str(exc)
    if info is None or not symbols:
        return info, None, None
    try:
        return info, read_symbols(data), None
    except ElfError as exc:
        return info, None, f"broken symbol table: {exc}"


class Prefetch:
    """The ``visit`` of :func:`rundeps.inputs.image.open_image`: the ELF
    facts of the members under ``prefixes`` (in-image folders, matched by
    the member's name; their symbol facts too with ``symbols``) and under
    ``info_dirs`` (the ELF facts only of the files right in them: the
    system's library folders),
    read in the pass that opens the image, so that the walk reads no layer
    again.  Keyed by (layer, member index): a member a later layer
    removes is simply never asked for.  ``progress(n)`` hears how many
    files of the layers were read."""

    def __init__(self, prefixes: Sequence[str], symbols: bool, info_dirs: Sequence[str] = (),
                 progress: Optional[Callable[[int], None]] = None):
        self.progress = progress  # progress(n): regular files of the layers read so far
        self.seen = 0
        self.prefixes = tuple(p.rstrip("/") + "/" for p in prefixes)
        self.info_dirs = frozenset(p.rstrip("/") or "/" for p in info_dirs)
        self.symbols = symbols
        self.facts: Dict[Tuple[int, int], Tuple[Optional[ElfInfo], Optional["SymbolFacts"], Optional[str]]] = {}
        self._with_symbols: set = set()

    def __call__(self, layer: int, index: int, path: str, f, size: int) -> None:
        self.seen += 1
        if self.progress is not None and not self.seen % PROGRESS_EVERY:
            self.progress(self.seen)
        full = path.startswith(self.prefixes)
        if not full and path.rpartition("/")[0] not in self.info_dirs:
            return
        head = f.read(HEAD_SIZE)
        if not is_elf_magic(head):
            self.facts[(layer, index)] = (None, None, None)
            return
        symbols = self.symbols and full
        self.facts[(layer, index)] = member_facts(f, size, head, symbols)
        if symbols:
            self._with_symbols.add((layer, index))

    def record(self, tree, path: str, info, facts, symbols: bool) -> None:
        """Record the facts of the file at real ``path`` read after the image
        was opened (a library the search asked for, see
        :class:`rundeps.resolve.fs.ImageFS`) with the rest, for :meth:`dump`."""
        e = tree.entries.get(path)
        if e is None or e.layer is None:
            return
        key = (e.layer, e.index)
        self.facts[key] = (info, facts, None)
        if symbols and facts is not None:
            self._with_symbols.add(key)

    def dump(self) -> tuple:
        """The facts as plain data (marshal-able), for :meth:`restore`."""
        facts = tuple((k, (None if i is None else i.astuple(), None if f is None else f.astuple(), e))
                      for k, (i, f, e) in self.facts.items())
        return (facts, tuple(self._with_symbols))

    def restore(self, data) -> None:
        """Take the facts :meth:`dump` gave (ValueError when they are not such)."""
        from ..elf.facts import facts_from_tuple

        try:
            facts, with_symbols = data
            self.facts = {tuple(k): (None if i is None else ElfInfo.from_tuple(i), None if f is None else facts_from_tuple(f), e)
                          for k, (i, f, e) in facts}
            self._with_symbols = {tuple(k) for k in with_symbols}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not image facts: {exc}") from None

    def get(self, tree, path: str, symbols: bool):
        """(info, facts, error) of the file at real ``path``; None when it
        was not read, or read without the symbol facts asked for."""
        e = tree.entries.get(path)
        if e is None or e.layer is None:
            return None
        key = (e.layer, e.index)
        got = self.facts.get(key)
        if got is None or (symbols and got[0] is not None and key not in self._with_symbols):
            return None
        return got


def _canonical_tops(tree, paths: Sequence[str], error: OnError) -> List[Tuple[str, str, Optional[str]]]:
    """[(given path, real in-image path, 'dir' | 'file' | None)] as the walk of a root folder gives them."""
    tops = []
    for given in paths:
        g = posixpath.normpath("/" + given)
        if g.startswith("//"):
            g = "/" + g.lstrip("/")
        real = tree.resolve(g)
        if real is None:
            if tree.resolve(g, follow_last=False) is not None:
                error(g, "symlink loop or target outside the file system")
            else:
                error(g, "No such file or directory")
            continue
        kind = tree.entries[real].kind
        if kind not in ("dir", "file"):
            continue  # a FIFO or device given by name: never read
        tops.append((g, real, kind))
    tops.sort(key=lambda t: (t[1], t[0]))
    out: List[Tuple[str, str, Optional[str]]] = []
    for g, real, kind in tops:
        if any(is_under(real, o[1]) for o in out if o[2] == "dir") or any(real == o[1] for o in out):
            out.append((g, real, None))  # still a name, when a symlink
            continue
        out.append((g, real, kind))
    return out


class _Listing:
    """The regular files and symlinks under the given folders, in walk
    order, and what says a folder is Python's (as the walk of a root folder
    notes it): the folders holding a ``*.dist-info``/``*.egg-info`` folder,
    and the package folders."""

    def __init__(self, tree, excluded):
        self.tree = tree
        self.excluded = excluded
        self.files: List[str] = []
        self.symlinks: List[Tuple[str, str]] = []  # (link, its folder)
        self.info_folders: Set[str] = set()
        self.packages: Set[str] = set()

    def folder(self, top: str) -> None:
        entries = self.tree.entries
        children = self.tree.children
        excluded = self.excluded
        stack = [top]
        while stack:
            d = stack.pop()
            prefix = d if d.endswith("/") else d + "/"
            subdirs = []
            for name in sorted(children(d)):
                path = prefix + name
                kind = entries[path].kind
                if kind == "dir":
                    subdirs.append(path)
                    if name.endswith(DIST_INFO_SUFFIXES):
                        self.info_folders.add(d)
                elif kind == "symlink":
                    if excluded is None or not excluded(path):
                        self.symlinks.append((path, d))
                elif kind == "file" and (excluded is None or not excluded(path)):
                    self.files.append(path)
                    if name in PACKAGE_INITS:
                        self.packages.add(d)
            subdirs.sort(reverse=True)
            stack.extend(subdirs)


def scan_image(tree, paths: Sequence[str], exclude: Sequence[str] = (), diag: Diagnostics = SILENT,
               symbols: bool = False, prefetched: Optional[Prefetch] = None) -> ScanResult:
    """Walk the in-image ``paths`` (folders or single files) of ``tree`` and
    read every ELF regular file in them (``symbols``: their symbol facts
    too, given by :meth:`ScanItem.load_symbols`).  ``diag.file_error(path,
    reason)`` hears of every file that could not be read, ``diag.progress(n)``
    (when set) the number of files read so far.  ``ScanItem.host_path`` is
    None: nothing of an image is a host file.  ``prefetched``: what a
    :class:`Prefetch` read while the image was opened."""
    error, progress = diag.file_error, diag.progress
    listing = _Listing(tree, compile_excludes(exclude))
    tops = _canonical_tops(tree, paths, error)
    for _given, real, kind in tops:
        if kind == "dir":
            listing.folder(real)
        elif kind == "file" and (listing.excluded is None or not listing.excluded(real)):
            listing.files.append(real)
    found: Dict[str, Tuple[ElfInfo, object]] = {}
    seen = 0
    next_tick = PROGRESS_EVERY
    for path, info, facts in read_members(tree, listing.files, symbols, error, prefetched=prefetched):
        found[path] = (info, facts)
        seen += 1
        if progress is not None and seen >= next_tick:
            progress(seen)
            next_tick += PROGRESS_EVERY
    items = [ScanItem(p, None, found[p][0], found[p][1]) for p in sorted(found)]
    links = _links(tree, tops, listing.symlinks, set(found))
    if progress is not None:
        progress(len(listing.files))
    roots = import_roots(listing.info_folders, listing.packages, found)
    return ScanResult(items=items, links=links, files_seen=len(listing.files), python_roots=roots)


def _links(tree, tops, symlinks: List[Tuple[str, str]], elf_paths: set) -> Dict[str, str]:
    """{symlink: ELF file it resolves to} for the symlinks of the walk and the given paths that are symlinks."""
    candidates = list(symlinks)
    for given, real, _kind in tops:
        if given == real or given == "/":
            continue
        parent = tree.resolve(posixpath.dirname(given))
        if parent is None or tree.entries[parent].kind != "dir":
            continue
        link = posixpath.join(parent, posixpath.basename(given))
        e = tree.entries.get(link)
        if e is not None and e.kind == "symlink":
            candidates.append((link, parent))
    dir_tops = [real for _g, real, kind in tops if kind == "dir"]
    top_files = {r for _g, r, k in tops if k == "file"}
    links: Dict[str, str] = {}
    outside: Dict[str, List[str]] = {}
    for link, _parent in candidates:
        target = tree.resolve(link)
        if target is None or target == link or tree.entries[target].kind != "file":
            continue
        if target in elf_paths:
            links[link] = target
        elif target not in top_files and not any(is_under(target, t) for t in dir_tops):
            outside.setdefault(target, []).append(link)  # outside what was scanned: look at its magic
    if outside:
        for target, _info, _facts in read_members(tree, list(outside), False, magic_only=True):
            for link in outside[target]:
                links[link] = target
    return dict(sorted(links.items()))


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The ``PATH`` a container runs with when its config sets none (Docker's and containerd's default)."""


class EntryProgram:
    """The program an image runs (its config's ``Entrypoint`` + ``Cmd``).

    ``argv``: the command as the config gives it; ``source``: ``Entrypoint``
    or ``Cmd``; ``path``: the in-image real path of the ELF program that
    runs (a script's interpreter, ``env`` followed through ``PATH``), None
    when none is found; ``why``: what went wrong then; ``script``: the
    script the program interprets, if any."""

    __slots__ = ("argv", "source", "path", "why", "script")

    def __init__(self, argv, source, path=None, why=None, script=None):
        self.argv, self.source, self.path, self.why, self.script = list(argv), source, path, why, script

    def __repr__(self) -> str:
        return f"EntryProgram({self.argv!r}, {self.source}, path={self.path!r}, why={self.why!r})"


def image_env(config) -> Dict[str, str]:
    """The config's ``Env`` as a dict (later entries win, as Docker does)."""
    env: Dict[str, str] = {}
    cfg = config.get("config") if isinstance(config, dict) else None
    for item in _strings(cfg.get("Env") if isinstance(cfg, dict) else None):
        if isinstance(item, str) and "=" in item:
            k, v = item.split("=", 1)
            env[k] = v
    return env


def entry_program(tree) -> Optional[EntryProgram]:
    """What the image runs, or None when its config names nothing."""
    cfg = tree.config.get("config") if isinstance(tree.config, dict) else None
    cfg = cfg if isinstance(cfg, dict) else {}
    entry = _strings(cfg.get("Entrypoint"))
    cmd = _strings(cfg.get("Cmd"))
    argv, source = (entry + cmd, "Entrypoint") if entry else (cmd, "Cmd")
    if not argv:
        return None
    env = image_env(tree.config)
    workdir = cfg.get("WorkingDir") if isinstance(cfg.get("WorkingDir"), str) else "/"
    prog = EntryProgram(argv, source)
    name, rest = argv[0], argv[1:]
    for _hop in range(4):  # a script, its interpreter, env's program
        path = _find_program(tree, name, env.get("PATH", DEFAULT_PATH), workdir or "/")
        if path is None:
            prog.why = f"{name} is not in the image" if "/" in name else f"{name} is not on the PATH"
            return prog
        head = tree.read(path, 0, 256)
        if is_elf_magic(head[:4]):
            prog.path = path
            return prog
        if not head.startswith(b"#!"):
            prog.why = f"{path} is neither an ELF program nor a script"
            return prog
        words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
        if not words:
            prog.why = f"{path} has an empty #! line"
            return prog
        prog.script = prog.script or path
        name, rest = words[0], words[1:] + rest
        if posixpath.basename(name) == "env" and rest:
            name, rest = _env_program(rest)
            if name is None:
                prog.why = f"{path}: env runs no program"
                return prog
    prog.why = "too many interpreters"
    return prog


def _strings(value) -> List[str]:
    """The strings of a config list (nothing when it is not a list)."""
    return [a for a in value if isinstance(a, str)] if isinstance(value, list) else []


def _env_program(args):
    """The program ``env ARGS`` runs (options and NAME=VALUE skipped)."""
    for i, a in enumerate(args):
        if a.startswith("-") or "=" in a:
            continue
        return a, args[i + 1:]
    return None, []


def _find_program(tree, name: str, path_var: str, workdir: str) -> Optional[str]:
    """The in-image real path of the regular file ``name`` runs (``PATH`` searched when it has no ``/``)."""
    if "/" in name:
        candidates = [posixpath.join(workdir, name)]
    else:
        candidates = [posixpath.join(d or workdir, name) for d in path_var.split(":")]
    for cand in candidates:
        real = tree.resolve(cand)
        if real is not None and tree.entries[real].kind == "file" and (tree.entries[real].mode & 0o111):
            return real
    return None

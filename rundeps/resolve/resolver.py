"""The resolver: each file's load in musl's order and context (see the
package's documentation, :mod:`rundeps.resolve`), which scanned files are
loaded on their own, and the packages the loads need."""

from __future__ import annotations

import dataclasses
import posixpath
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ..apk.model import Package, Universe
from ..diagnostics import SILENT, Diagnostics
from ..elf import ElfInfo
from ..inputs.pytree import under_import_root
from ..platform import (GLIBC_INTERP, GLIBC_SONAMES, MUSL_LD_ARCH, is_glibc_interp, is_glibc_loader_name,
                       same_arch)
from .units import LIBRARY, MODULE, PYTHON_LIBRARY, Role, is_vendored
from .units import role as unit_role
from .search import DEFAULT_INTERP, MUSL_DEFAULT_PATH, expand_run_path, path_file, run_path_entries, split_search_path

from .result import Edge, LoadOrder, Search
from .search import parse_ld_so_conf

MUSL_RESERVED = ("c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet.")
"""After ``lib``: the names musl's ``load_library`` answers with itself."""

MAIN_PROGRAMS = ("/usr/local/bin/python3", "/usr/bin/python3")
"""Where the main program that loads a tree's modules at run time is looked for
when none is named: the image's Python interpreter."""

class GlibcLoader:
    """A glibc dynamic loader present in the root: its in-root real path and
    the folders it searches (``<prefix>/etc/ld.so.conf``, then its own folder)."""

    __slots__ = ("path", "dirs")

    def __init__(self, path: str, dirs: Tuple[str, ...]):
        self.path = path
        self.dirs = dirs

    def __repr__(self) -> str:
        return f"GlibcLoader({self.path!r}, {self.dirs!r})"


def is_glibc_loader(real_path: str, info: ElfInfo) -> bool:
    """True when the file a ``PT_INTERP`` leads to is glibc's loader
    (``ld-linux*``/``ld64.so*``), not musl's under a glibc name (gcompat's
    ``ld-linux-x86-64.so.2`` symlink leads to ``ld-musl-*``)."""
    names = (posixpath.basename(real_path), info.soname or "")
    if any(n.startswith(("ld-musl", "libc.musl", "libgcompat")) or n == "libc.so" for n in names):
        return False
    return any(is_glibc_loader_name(n) for n in names)


def is_musl_builtin(soname: str) -> bool:
    """True for the names musl's loader serves from itself."""
    if soname.startswith("ld-musl-"):
        return True
    if not soname.startswith("lib"):
        return False
    rest = soname[3:]
    return any(rest.startswith(r) for r in MUSL_RESERVED)


def is_glibc_linked(info: ElfInfo) -> bool:
    """True when an object was linked against glibc rather than musl: an
    ``ld-linux*`` interpreter, or a need for one of glibc's own sonames
    (``libc.so.6``, ``libm.so.6``, ...), which no musl build records."""
    if info.interp and is_glibc_interp(info.interp):
        return True
    return not GLIBC_SONAMES.isdisjoint(info.needed)


# -- the resolver ---------------------------------------------------------------


@dataclass(frozen=True)
class SearchSettings:
    """What a search needs besides the files and the packages.

    ``arch``: the target arch (default: the objects' own, most of them);
    ``library_path``: the ``LD_LIBRARY_PATH`` the programs run with (a
    string, split on ``:`` and newline); ``main_program``: the in-root path
    of the program that loads the tree's modules at run time (default: the
    first of :data:`MAIN_PROGRAMS` the filesystem has; its run path is
    searched for the modules it would ``dlopen`` and for the names they load
    at run time, as musl's ``needed_by`` chain does); ``scanned_paths``: the
    in-root folders or files asked for (what the tree ships);
    ``python_tree``: every scanned file lies in a site-packages (a wheel's
    members, ``--python-tree``); ``python_roots``: in-root folders that are
    Python import roots whatever their path says
    (:func:`rundeps.inputs.pytree.import_roots`).
    """

    arch: Optional[str] = None
    library_path: Optional[str] = None
    main_program: Optional[str] = None
    scanned_paths: Tuple[str, ...] = ()
    python_tree: bool = False
    python_roots: FrozenSet[str] = frozenset()


class Resolver:
    """Resolve ELF objects against a filesystem and a :class:`Universe`, as
    :class:`SearchSettings` say (``changes``: fields of the settings to
    replace, e.g. ``arch="x86_64"``); ``diag`` hears what nothing provides.
    :meth:`resolve` returns a :class:`~rundeps.resolve.result.Search`.
    """

    def __init__(self, universe: Universe, fs, settings: Optional[SearchSettings] = None,
                 diag: Diagnostics = SILENT, **changes: Any):
        settings = settings or SearchSettings()
        if changes:
            settings = dataclasses.replace(settings, **changes)
        self.settings = settings
        self.universe = universe
        self.fs = fs
        self.arch = settings.arch
        self.diag = diag
        self._system: Dict[str, Tuple[str, ...]] = {}
        self.scanned_paths: Tuple[str, ...] = tuple(settings.scanned_paths)
        self._musl: Optional[Package] = None
        self.library_path: Tuple[str, ...] = split_search_path(settings.library_path)
        self.main_program = settings.main_program
        self._main: Optional[Tuple[Optional[str], Optional[ElfInfo]]] = None
        self._glibc_loaders: Dict[str, Optional[GlibcLoader]] = {}
        self._under_glibc: Set[str] = set()
        self.python_tree = settings.python_tree
        self.python_roots: FrozenSet[str] = settings.python_roots

    # -- search path -----------------------------------------------------

    def system_dirs(self, interp: Optional[str] = None) -> Tuple[str, ...]:
        """The system path of a program whose loader is ``interp`` (default:
        ``/lib/ld-musl-<arch>.so.1``): its path file (see
        :func:`rundeps.resolve.search.path_file`), which replaces musl's default
        ``/lib:/usr/local/lib:/usr/lib`` when it exists, even empty."""
        ld_arch = MUSL_LD_ARCH.get(self.arch or "")
        if not ld_arch:
            return MUSL_DEFAULT_PATH
        if not interp or not interp.startswith("/") or is_glibc_interp(interp):
            interp = DEFAULT_INTERP.format(arch=ld_arch)
        where = path_file(interp, ld_arch)
        try:
            return self._system[where]
        except KeyError:
            pass
        dirs: Tuple[str, ...] = MUSL_DEFAULT_PATH
        text = self.fs.read_text(where)
        if text is not None:
            # relative entries depend on the working directory: unknowable
            dirs = tuple(d for d in split_search_path(text) if d.startswith("/"))
        self._system[where] = dirs
        return dirs

    def glibc_loader(self, interp: str) -> Optional[GlibcLoader]:
        """The glibc loader a ``PT_INTERP`` names, when it is present in the root."""
        try:
            return self._glibc_loaders[interp]
        except KeyError:
            pass
        loader = None
        real = self.fs.lookup(posixpath.normpath(interp)) if interp.startswith("/") else None
        info = self.fs.elf(real) if real is not None else None
        owner = (self.universe.owner(posixpath.normpath(interp)) or self.universe.owner(real)) if real else None
        if owner is not None and owner.name == "gcompat":
            info = None  # gcompat's loader runs musl's loader, with libgcompat.so.0 preloaded
        if real is not None and info is not None and is_glibc_loader(real, info) and (
            not self.arch or not info.arch or info.arch == self.arch
        ):
            folder = posixpath.dirname(real)
            prefix = posixpath.dirname(folder)
            conf = "/etc/ld.so.conf" if prefix in ("/", "/usr") else prefix + "/etc/ld.so.conf"
            loader = GlibcLoader(real, _dedupe(tuple(self._ld_so_conf(conf, 0)) + (folder,)))
        self._glibc_loaders[interp] = loader
        return loader

    def _ld_so_conf(self, path: str, depth: int, seen: Optional[Set[str]] = None) -> List[str]:
        """The folders of an ``ld.so.conf`` in the root, its includes followed
        (each file read once, at most 8 deep: a file that includes itself ends)."""
        seen = set() if seen is None else seen
        if depth >= 8 or path in seen or len(seen) >= 256:
            return []
        seen.add(path)
        text = self.fs.read_text(path)
        if not text:
            return []
        dirs, includes = parse_ld_so_conf(text)
        for pattern in includes:
            if not pattern.startswith("/"):
                pattern = posixpath.join(posixpath.dirname(path), pattern)
            for name in self._glob(pattern):
                dirs.extend(self._ld_so_conf(name, depth + 1, seen))
        return dirs

    def _glob(self, pattern: str) -> List[str]:
        """In-root paths matching ``pattern`` (a glob in its last component only)."""
        import fnmatch

        folder, name = posixpath.split(pattern)
        files = self.fs.files
        if files is None:
            return []
        try:
            names = files.listdir(folder)  # sorted; symlinks followed inside the root
        except OSError:
            return []
        return [posixpath.join(folder, n) for n in names if fnmatch.fnmatchcase(n, name)][:256]

    def glibc_folder_loader(self, path: str) -> Optional[GlibcLoader]:
        """The glibc loader present in the root whose own folders (its folder
        and those of its ``ld.so.conf``, less musl's search path) hold
        ``path``: glibc's own libraries, which only that loader loads."""
        std = GLIBC_INTERP.get(self.arch or "")
        if std:
            self.glibc_loader(std)
        loaders = [lo for lo in self._glibc_loaders.values() if lo is not None]
        if not loaders:
            return None
        folder = path.rpartition("/")[0]
        if folder in self.system_dirs() or folder in self.library_path:
            return None
        for lo in loaders:
            if folder in lo.dirs:
                return lo
        return None

    @staticmethod
    def own_dirs(path: str, info: ElfInfo, origin_allowed: bool = True) -> Tuple[str, ...]:
        """The object's run path as musl uses it (DT_RUNPATH if present, else
        DT_RPATH; ``$ORIGIN`` expanded; ignored whole on any other ``$``)."""
        entries = run_path_entries(info.rpath, info.runpath)
        if not entries:
            return ()
        return expand_run_path(entries, posixpath.dirname(path) or "/", origin_allowed)

    def is_secure(self, path: str, info: ElfInfo) -> bool:
        """musl's ``libc.secure`` for a program run directly: setuid or setgid."""
        return bool(info.interp) and self.fs.is_secure(path)

    def main(self) -> Tuple[Optional[str], Optional[ElfInfo]]:
        """The main program (in-root path, info), or (None, None)."""
        if self._main is None:
            found: Tuple[Optional[str], Optional[ElfInfo]] = (None, None)
            for candidate in ((self.main_program,) if self.main_program else MAIN_PROGRAMS):
                real = self.fs.lookup(candidate)
                info = self.fs.elf(real) if real is not None else None
                if info is not None and info.interp and not is_glibc_interp(info.interp):
                    found = (real, info)  # $ORIGIN of a program is /proc/self/exe: the real path
                    break
            self._main = found
        return self._main

    def main_chain(self) -> Tuple[str, ...]:
        """The main program's run path: the end of every ``needed_by`` chain
        of what it loads at run time."""
        path, info = self.main()
        if path is None:
            return ()
        return self.own_dirs(path, info, origin_allowed=not self.is_secure(path, info))

    def runtime_dirs(self) -> Tuple[str, ...]:
        """Every folder a run-time ``dlopen("name")`` searches, in order:
        ``LD_LIBRARY_PATH``, the main program's run path, its system path."""
        path, info = self.main()
        secure = path is not None and self.is_secure(path, info)
        env = () if secure else self.library_path
        return _dedupe(env + self.main_chain() + self.system_dirs(info.interp if info else None))

    # -- packages --------------------------------------------------------

    def musl(self) -> Package:
        if self._musl is None:
            pkg = self.universe.package("musl")
            if pkg is None and self.arch:
                pkg = self.universe.provider(f"so:libc.musl-{self.arch}.so.1")
            self._musl = pkg or Package(name="musl", source="builtin")
        return self._musl

    # -- lookups ---------------------------------------------------------

    def _find(self, soname: str, dirs: Iterable[str]) -> Optional[Tuple[str, str, ElfInfo]]:
        """The first usable library named ``soname`` in ``dirs``: (load path, real path, info)."""
        for d in dirs:
            candidate = posixpath.join(d, soname)
            real = self.fs.lookup(candidate)
            if real is None:
                continue
            info = self.fs.elf(real)
            if info is None:
                continue
            if self.arch and info.arch and not same_arch(info.arch, self.arch):
                continue
            return candidate, real, info
        return None

    def _from_library(self, path: str, soname: str, found) -> Tuple[Edge, Optional[Tuple[str, ElfInfo]]]:
        load_path, real, info = found
        owner = self.universe.owner(load_path) or self.universe.owner(real)
        if owner is not None:
            return Edge(path, soname, "package", owner, load_path, "owner"), None
        return Edge(path, soname, "in_tree", None, load_path, "search"), (load_path, info)

    def lookup(self, path: str, soname: str, dirs: Sequence[str], glibc: bool,
               system: Optional[Sequence[str]] = None):
        """Resolve one soname needed by ``path``: (edge, in-tree library to descend into).

        ``dirs``: ``LD_LIBRARY_PATH`` and the run paths of the ``needed_by``
        chain, in order; ``system``: the system path (default
        :meth:`system_dirs`)."""
        if "/" in soname:
            if soname.startswith("/"):
                found = self._find(posixpath.basename(soname), [posixpath.dirname(soname)])
                if found:
                    return self._from_library(path, soname, found)
            return Edge(path, soname, "unresolved"), None
        if is_musl_builtin(soname):
            return Edge(path, soname, "musl", self.musl(), None, "builtin"), None
        found = self._find(soname, dirs)
        if found:
            return self._from_library(path, soname, found)
        found = self._find(soname, self.system_dirs() if system is None else system)
        # Without an installed database nothing can be owned: a system-folder hit
        # outside the scanned paths may be any distribution's file, so the
        # indexes answer first.
        if found and (self.universe.installed is not None or self._scanned(found[0])):
            return self._from_library(path, soname, found)
        pkg = self.universe.provider("so:" + soname)
        if pkg is not None:
            return Edge(path, soname, "package", pkg, None, "provides"), None
        if found:
            return self._from_library(path, soname, found)
        return Edge(path, soname, "unresolved"), None

    def lookup_glibc(self, path: str, soname: str, dirs: Sequence[str], loader: GlibcLoader):
        """Resolve one soname of an object that runs under a glibc ``loader``
        present in the root: its run paths, then that glibc's folders (never
        musl's search path, and no glibc name is musl's), then a package that
        provides it."""
        if "/" in soname:
            return self.lookup(path, soname, dirs, True)
        found = self._find(soname, _dedupe(tuple(dirs) + loader.dirs))
        if found and (self._scanned(found[0]) or self._scanned(found[1])):
            # glibc's own files, inside what is checked: shipped, no package to add
            return Edge(path, soname, "in_tree", None, found[0], "search"), (found[0], found[2])
        if found:
            return self._from_library(path, soname, found)
        if soname not in GLIBC_SONAMES:
            pkg = self.universe.provider("so:" + soname)
            if pkg is not None:
                return Edge(path, soname, "package", pkg, None, "provides"), None
        return Edge(path, soname, "unresolved"), None

    def _scanned(self, path: str) -> bool:
        return any(path == top or path.startswith(top.rstrip("/") + "/") for top in self.scanned_paths)

    def load_order(self, path: str, info: ElfInfo, answers: Optional[dict] = None,
                   runtime: bool = False, glibc_folder: Optional[GlibcLoader] = None,
                   ) -> List[Tuple[Edge, Optional[Tuple[str, ElfInfo]]]]:
        """What loading ``path`` makes musl load, in musl's order (breadth
        first, as ``load_deps`` walks its list): one ``(edge, descend)`` per
        ``DT_NEEDED`` entry of ``path`` and of every in-tree library it pulls
        in (``descend`` is that library's (path, info), else None).

        A program (``PT_INTERP``) is the head of its own process; any other
        object is loaded at run time by the main program (:meth:`main`), so
        its ``needed_by`` chain ends with the main program's run path and its
        system path is the main program's.  A name an earlier library of the
        same load was found under is that library again (musl's short-name
        match).  ``runtime``: ``path`` was found by ``dlopen`` itself (a
        ``.note.dlopen`` library).  ``glibc_folder``: ``path`` is one of that
        glibc loader's own libraries (:meth:`glibc_folder_loader`), loaded in
        its search.  ``answers`` memoises searches across calls.
        """
        answers = {} if answers is None else answers
        loader: Optional[GlibcLoader] = None
        if info.interp:
            secure = self.is_secure(path, info)
            chain: Tuple[str, ...] = self.own_dirs(path, info, origin_allowed=not secure)
            system = self.system_dirs(info.interp)
            if is_glibc_linked(info):
                # a glibc program whose loader is in the root runs under it:
                # that glibc's folders, not musl's, for all it loads
                loader = self.glibc_loader(info.interp)
                if loader is not None:
                    system = loader.dirs
        elif glibc_folder is not None:
            # glibc's own library: loaded by glibc programs only, in its search
            secure, loader = False, glibc_folder
            chain, system = self.own_dirs(path, info), loader.dirs
        else:
            main_path, main_info = self.main()
            secure = main_path is not None and self.is_secure(main_path, main_info)
            chain = _dedupe(self.own_dirs(path, info) + self.main_chain())
            system = self.system_dirs(main_info.interp if main_info else None)
        env = () if secure else self.library_path
        loaded: Dict[str, Tuple[Edge, Optional[Tuple[str, ElfInfo]]]] = {}
        if runtime:
            loaded[posixpath.basename(path)] = (Edge(path, posixpath.basename(path), "in_tree", None, path), None)
        queue = deque([(path, info, chain)])
        visited = {path}
        out: List[Tuple[Edge, Optional[Tuple[str, ElfInfo]]]] = []
        while queue:
            p, i, chain = queue.popleft()
            glibc = is_glibc_linked(i)
            if loader is not None:
                self._under_glibc.add(p)
            dirs = _dedupe(env + chain) if env else chain
            for soname in i.needed:
                hit = loaded.get(soname)
                if hit is not None and not (glibc and soname in GLIBC_SONAMES and loader is None):
                    edge, descend = hit
                    descend = None  # already in this load
                else:
                    akey = (soname, dirs, glibc, system, loader)
                    try:
                        edge, descend = answers[akey]
                    except KeyError:
                        if loader is not None:
                            answer = self.lookup_glibc(p, soname, dirs, loader)
                        else:
                            answer = self.lookup(p, soname, dirs, glibc, system)
                        edge, descend = answers[akey] = answer
                    if edge.kind in ("package", "in_tree") and "/" not in soname:
                        loaded.setdefault(soname, (edge, descend))
                if edge.path != p:
                    edge = Edge(p, soname, edge.kind, edge.package, edge.library, edge.via)
                if descend is not None and descend[0] in visited:
                    descend = None
                out.append((edge, descend))
                if descend is not None:
                    lib_path, lib_info = descend
                    visited.add(lib_path)
                    queue.append((lib_path, lib_info, _dedupe(self.own_dirs(lib_path, lib_info) + chain)))
        return out

    def runtime_lookup(self, soname: str, answers: Optional[dict] = None):
        """Resolve a name loaded at run time (``dlopen``) as the main program
        would: (edge, in-tree library), the edge's path being the main program."""
        main_path, main_info = self.main()
        system = self.system_dirs(main_info.interp if main_info else None)
        secure = main_path is not None and self.is_secure(main_path, main_info)
        env = () if secure else self.library_path
        dirs = _dedupe(env + self.main_chain())
        return self.lookup(main_path or "", soname, dirs, False, system)

    def resolve(self, objects: Mapping[str, ElfInfo]) -> Search:
        """Resolve every needed soname of ``objects`` ({in-root path: info})."""
        arch = self.arch or majority_arch(objects.values())[0]
        self.arch = arch
        looked_at: Dict[str, ElfInfo] = dict(objects)
        edges: List[Edge] = []
        edge_seen: Set[Tuple[str, str, str, Optional[str]]] = set()
        # What a soname resolves to depends on the search folders, not on who
        # needs it: one answer per (soname, folders, glibc-linked, system path).
        answers: dict = {}

        def add(order: LoadOrder) -> None:
            for edge, descend in order:
                ekey = (edge.path, edge.soname, edge.kind, edge.library)
                if ekey not in edge_seen:
                    edge_seen.add(ekey)
                    edges.append(edge)
                if descend is not None:
                    looked_at.setdefault(*descend)

        self._under_glibc = set()
        orders: Dict[str, LoadOrder] = {}
        glibc_linked: Dict[str, List[str]] = {}
        runs_under_glibc: Dict[str, str] = {}
        folder_loaders: Dict[str, GlibcLoader] = {}
        for interp in sorted({i.interp for i in objects.values() if i.interp and is_glibc_interp(i.interp)}):
            self.glibc_loader(interp)  # every glibc loader first: their folders are theirs
        for path in sorted(objects):
            info = objects[path]
            if is_glibc_linked(info):
                glibc_linked[path] = sorted(s for s in info.needed if s in GLIBC_SONAMES)
                loader = self.glibc_loader(info.interp) if info.interp else None
                if loader is not None:
                    runs_under_glibc[path] = loader.path
            if not info.interp and path not in runs_under_glibc:
                lo = self.glibc_folder_loader(path)
                if lo is not None:
                    folder_loaders[path] = lo
                    runs_under_glibc[path] = lo.path
            if is_vendored(path) and not info.interp:
                continue  # judged only inside the loads that reach it
            orders[path] = self.load_order(path, info, answers, glibc_folder=folder_loaders.get(path))
        units, python_process, loaded_by, unloaded = self._choose_units(objects, orders)
        for path in sorted(units):
            add(orders[path])
        note_loads = self._note_loads(looked_at, answers, add)
        glibc_units = tuple(path for path in glibc_linked if path in units and path not in self._under_glibc
                            and path not in runs_under_glibc)
        packages = {e.package for e in edges if e.package is not None}
        return Search(
            arch=arch, universe=self.universe, edges=edges, objects=looked_at, scanned=sorted(objects),
            all_packages=sorted(packages, key=lambda p: p.name), packages=self.universe.minimal(packages),
            glibc_linked=glibc_linked, runtime_dirs=self.runtime_dirs(), note_loads=note_loads,
            runs_under_glibc=runs_under_glibc, units=units, python_process=python_process, unloaded=unloaded,
            loaded_by=loaded_by, orders=orders, glibc_units=glibc_units)

    def in_python_tree(self, path: str) -> bool:
        """True when ``path`` lies in a Python import root that its path
        alone does not show (:attr:`SearchSettings.python_tree`,
        :attr:`SearchSettings.python_roots`)."""
        return self.python_tree or under_import_root(path, self.python_roots)

    def _choose_units(self, objects: Mapping[str, ElfInfo], orders: Mapping[str, LoadOrder]):
        """(units, python process, loaded by, unloaded): which scanned files
        are loaded on their own (:mod:`rundeps.resolve.units`), which of them
        in a Python process, what loads each other scanned file, and which
        vendored libraries nothing loads."""
        loader_dirs = frozenset(self.system_dirs()) | frozenset(self.library_path)
        real = self.fs.lookup
        reached_by: Dict[str, Set[str]] = {}  # in-root real path -> the files whose load reaches it
        for path, order in orders.items():
            for _edge, descend in order:
                if descend is not None:
                    got = real(descend[0]) or descend[0]
                    if got != path:
                        reached_by.setdefault(got, set()).add(path)

        def reaching(path: str) -> Set[str]:
            """The scanned files whose load reaches ``path`` (by its real path)."""
            return reached_by.get(path) or reached_by.get(real(path) or path) or set()

        units: Dict[str, Role] = {}
        for path in sorted(objects):
            if path not in orders:
                continue
            role = unit_role(path, objects[path], loader_dirs, self.in_python_tree(path))
            if role is None and not reaching(path):
                role = LIBRARY  # nothing scanned loads it: it can only be opened by path
            if role is not None:
                units[path] = role
        python = {p for p, r in units.items() if r in (MODULE, PYTHON_LIBRARY)}
        python_process = {p for p in units if p in python or reaching(p) & python}
        loaded_by: Dict[str, List[str]] = {}
        unloaded: List[str] = []
        for path in sorted(objects):
            if path in units:
                continue
            by = reaching(path)
            if by:
                loaded_by[path] = sorted(by)
            elif path not in orders:
                unloaded.append(path)  # vendored, and nothing loads it
        return units, python_process, loaded_by, unloaded

    def _note_loads(self, objects: Dict[str, ElfInfo], answers: dict,
                    add: Callable[[LoadOrder], None]) -> List[dict]:
        """``.note.dlopen`` metadata of every object of ``objects`` (which
        grows by the libraries a required load brings in): one entry each; a
        ``required`` one is a run-time load (the first of its sonames the
        main program's search finds), whose package joins the set. A
        required load nothing provides is a warning."""
        done: Set[Tuple[str, Tuple[str, ...]]] = set()
        note_loads: List[dict] = []
        for path in sorted(objects):
            for priority, sonames in objects[path].dlopen_notes:
                if (path, sonames) in done:
                    continue
                done.add((path, sonames))
                chosen = None
                if priority == "required":
                    for soname in sonames:
                        edge, descend = self.runtime_lookup(soname, answers)
                        if edge.kind in ("package", "in_tree", "musl"):
                            chosen = Edge(path, soname, edge.kind, edge.package, edge.library, "dlopen-note")
                            add([(chosen, None)])
                            if descend is not None:
                                objects.setdefault(*descend)
                                add(self.load_order(descend[0], descend[1], answers, runtime=True))
                            break
                    if chosen is None:
                        self.diag.warning(f"{path}: its .note.dlopen requires {' or '.join(sonames)}, "
                                          "which nothing provides")
                note_loads.append({
                    "path": path, "priority": priority, "sonames": list(sonames),
                    "soname": chosen.soname if chosen else None,
                    "package": chosen.package.name if chosen and chosen.package else None,
                    "library": chosen.library if chosen else None,
                })
        return note_loads


def _dedupe(dirs: Sequence[str]) -> Tuple[str, ...]:
    """``dirs`` without repeats, first occurrence kept."""
    return tuple(dict.fromkeys(dirs))




def majority_arch(infos: Iterable[ElfInfo]) -> Tuple[Optional[str], Counter]:
    """The most common arch among ELF infos, and the count of each."""
    counts = Counter(i.arch for i in infos if i.arch)
    if not counts:
        return None, counts
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return best, counts

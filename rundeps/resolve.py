"""Resolve needed sonames the way musl's loader would, then to apk packages.

For every ``DT_NEEDED`` entry of every ELF object, in this order:

1. names musl's loader treats as itself (``libc.so``, ``ld-musl-*``, the
   ``libc.``/``libm.``/``libpthread.``/``libdl.``/``librt.``/``libutil.``/
   ``libxnet.`` families) are provided by ``musl``;
2. the loader's search: the RPATH/RUNPATH of the needing object and of the
   objects that loaded it (``$ORIGIN`` expanded), then the root's
   ``etc/ld-musl-<arch>.path`` (or musl's default ``/lib:/usr/local/lib:/usr/lib``).
   A library found there that an installed package owns resolves to that
   package; one that nobody owns is *in-tree* and its own needs are resolved
   in turn.  Without an installed database nothing can be owned, so the
   system folders are searched only after the indexes;
3. the package providing ``so:<soname>`` (installed database, then indexes);
4. otherwise the soname is unresolved.

Objects that are linked against glibc (``PT_INTERP`` ``ld-linux*`` or a
``libc.so.6`` need) do not get their glibc sonames resolved to musl: they are
reported as glibc-linked.

The module works on a small filesystem interface (:class:`TreeFS` for a
root folder) so that wheels, read from their zip, resolve the same way.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from .apkdb import Package, Universe
from .elf import ElfError, ElfInfo, read_elf_path
from .walk import resolve_dir_in_root, resolve_in_root, to_host

__all__ = [
    "Edge",
    "Resolution",
    "Resolver",
    "TreeFS",
    "WheelFS",
    "GLIBC_SONAMES",
    "MUSL_LD_ARCH",
    "is_glibc_linked",
    "is_musl_builtin",
]

MUSL_RESERVED = ("c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet.")
"""After ``lib``: the names musl's ``load_library`` answers with itself."""

MUSL_LD_ARCH = {
    "x86_64": "x86_64",
    "x86": "i386",
    "aarch64": "aarch64",
    "armv7": "armhf",
    "armhf": "armhf",
    "ppc64le": "powerpc64le",
    "ppc64": "powerpc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}
"""Alpine arch name -> the arch in musl's ``ld-musl-<arch>.so.1`` and ``.path``."""

MUSL_DEFAULT_PATH = ("/lib", "/usr/local/lib", "/usr/lib")

GLIBC_SONAMES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "libcrypt.so.1",
        "libnsl.so.1",
        "libanl.so.1",
        "libBrokenLocale.so.1",
        "libmvec.so.1",
        "ld-linux.so.2",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "ld-linux-armhf.so.3",
        "ld-linux-riscv64-lp64d.so.1",
        "ld64.so.1",
        "ld64.so.2",
        "ld-linux-loongarch-lp64d.so.1",
    }
)
"""Sonames of glibc itself (its libc, libm, ... and dynamic loaders)."""


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
    interp = info.interp
    if interp:
        base = posixpath.basename(interp)
        if base.startswith("ld-linux") or base.startswith("ld64.so"):
            return True
    return not GLIBC_SONAMES.isdisjoint(info.needed)


# -- filesystems ----------------------------------------------------------------


class TreeFS:
    """Libraries looked up in a folder that is the root of a filesystem."""

    def __init__(self, root: str, known: Mapping[str, ElfInfo] = (), on_error=None):
        self.root = root
        self._infos: Dict[str, Optional[ElfInfo]] = dict(known)
        self._on_error = on_error
        self._lookups: Dict[str, Optional[str]] = {}
        self._dirs: Dict[str, Optional[str]] = {}

    def lookup(self, path: str) -> Optional[str]:
        """The in-root real path of a regular file at ``path``, or None."""
        try:
            return self._lookups[path]
        except KeyError:
            pass
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
        path: SymbolFacts}, e.g. from ``ScanItem.symbols``)."""
        self.__dict__.setdefault("_symbols", {}).update(facts)

    def symbols(self, real_path: str):
        """The :class:`rundeps.symbols.SymbolFacts` of an in-root real path,
        read once and memoised (None if it is not ELF or cannot be read;
        the reason goes to ``on_error``)."""
        memo = self.__dict__.setdefault("_symbols", {})
        try:
            return memo[real_path]
        except KeyError:
            pass
        from .symbols import read_symbols_path

        facts = None
        try:
            facts = read_symbols_path(to_host(self.root, real_path))
        except ElfError as exc:
            if self._on_error:
                self._on_error(real_path, f"broken symbol table: {exc}")
        except OSError as exc:
            if self._on_error:
                self._on_error(real_path, exc.strerror or str(exc))
        memo[real_path] = facts
        return facts

    def read_text(self, path: str) -> Optional[str]:
        real = self.lookup(path)
        if real is None:
            return None
        try:
            with open(to_host(self.root, real), "rb") as f:
                return f.read(1 << 16).decode("utf-8", "replace")
        except OSError:
            return None


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
            get = getattr(self.wheel, "symbols", None)
            return get(real_path) if get is not None else None
        return self.tree.symbols(real_path) if self.tree is not None else None

    def read_text(self, path: str) -> Optional[str]:
        return self.tree.read_text(path) if self.tree is not None else None


# -- results ------------------------------------------------------------------


class Edge:
    """How one needed soname of one object was satisfied.

    ``path``: the in-root path of the object that needs it; ``kind``:
    ``musl``, ``package``, ``in_tree``, ``glibc`` or ``unresolved``;
    ``library``: the in-root path of the library the loader would open (when
    found); ``via``: ``builtin``, ``owner`` (a file the package owns),
    ``provides`` or ``search``.
    """

    __slots__ = ("path", "soname", "kind", "package", "library", "via")

    def __init__(self, path: str, soname: str, kind: str, package: Optional[Package] = None,
                 library: Optional[str] = None, via: str = ""):
        self.path = path
        self.soname = soname
        self.kind = kind
        self.package = package
        self.library = library
        self.via = via

    def __repr__(self) -> str:
        return f"Edge({self.path} -> {self.soname}: {self.kind} {self.package or self.library or ''})"


class Resolution:
    """Everything ``scan`` found, and the packages it needs.

    ``objects``: every object looked at (the scanned files and the in-tree
    libraries they load); ``extra``: packages added from outside the ELF graph
    (``--dlopen``), by the name that asked; ``dlopen``: run-time loads found
    (:class:`rundeps.dlopen.DlopenFinding`); ``dlopen_packages``: the package
    for each such name that one provides; ``universe``: the package sources.
    """

    def __init__(self, arch: Optional[str], universe: Optional[Universe] = None):
        self.arch = arch
        self.universe = universe
        self.edges: List[Edge] = []
        self.objects: Dict[str, ElfInfo] = {}
        self.scanned: List[str] = []
        self.all_packages: List[Package] = []
        self.packages: List[Package] = []
        self.glibc_linked: Dict[str, List[str]] = {}
        self.extra: Dict[str, Package] = {}
        self.dlopen: List = []
        self.dlopen_packages: Dict[str, Package] = {}
        self.distributions = None
        """A :class:`rundeps.distributions.DistributionMap`, once mapped (``rundeps.api.add_distributions``)."""
        self.installed_size = None
        """A :class:`rundeps.sizes.SizeReport`, once computed (``rundeps.api.add_installed_size``)."""

    def apply_dlopen(self, findings: List, add: bool) -> List:
        """Record run-time loads (:class:`rundeps.dlopen.DlopenFinding`) and the
        packages that provide them; with ``add``, those packages join the set
        and the minimal set is recomputed. Returns the findings nothing provides."""
        from .dlopen import resolve_findings

        self.dlopen = findings
        extra, unresolved = resolve_findings(findings, self)
        self.dlopen_packages = extra
        if add and extra:
            self.extra.update(extra)
            packages = set(self.all_packages) | set(extra.values())
            self.all_packages = sorted(packages, key=lambda p: p.name)
            self.packages = self.universe.minimal(packages)
        return unresolved

    @property
    def providers(self) -> Dict[str, Package]:
        out: Dict[str, Package] = {}
        for e in self.edges:
            if e.package is not None and e.soname not in out:
                out[e.soname] = e.package
        return dict(sorted(out.items()))

    @property
    def in_tree(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for e in self.edges:
            if e.kind == "in_tree" and e.soname not in out:
                out[e.soname] = e.library
        return dict(sorted(out.items()))

    @property
    def unresolved(self) -> Dict[str, List[str]]:
        resolved = {(e.path, e.soname) for e in self.edges if e.kind != "unresolved"}
        out: Dict[str, Set[str]] = {}
        for e in self.edges:
            if e.kind == "unresolved" and (e.path, e.soname) not in resolved:
                out.setdefault(e.soname, set()).add(e.path)
        return {k: sorted(v) for k, v in sorted(out.items())}

    @property
    def needed_by(self) -> Dict[str, List[str]]:
        out: Dict[str, Set[str]] = {}
        for e in self.edges:
            if e.package is not None:
                out.setdefault(e.package.name, set()).add(e.path)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def sonames_of(self, pkg: Package) -> List[str]:
        return sorted({e.soname for e in self.edges if e.package == pkg})


# -- the resolver ---------------------------------------------------------------


class Resolver:
    """Resolve ELF objects against a filesystem and a :class:`Universe`."""

    def __init__(
        self,
        universe: Universe,
        fs,
        arch: Optional[str] = None,
        on_warning: Optional[Callable[[str], None]] = None,
    ):
        self.universe = universe
        self.fs = fs
        self.arch = arch
        self._warn = on_warning or (lambda msg: None)
        self._system_dirs: Optional[Tuple[str, ...]] = None
        self.scanned_paths: Tuple[str, ...] = ()
        """In-root folders or files the user asked to scan: what they ship."""
        self._musl: Optional[Package] = None

    # -- search path -----------------------------------------------------

    def system_dirs(self) -> Tuple[str, ...]:
        """``etc/ld-musl-<arch>.path`` of the root, else musl's default."""
        if self._system_dirs is None:
            dirs: Tuple[str, ...] = MUSL_DEFAULT_PATH
            ld_arch = MUSL_LD_ARCH.get(self.arch or "")
            read_text = getattr(self.fs, "read_text", None)
            if ld_arch and read_text:
                text = read_text(f"/etc/ld-musl-{ld_arch}.path")
                if text is not None:
                    parts = text.replace("\n", ":").split(":")
                    dirs = tuple(p.strip() for p in parts if p.strip().startswith("/"))
            self._system_dirs = dirs
        return self._system_dirs

    @staticmethod
    def own_dirs(path: str, info: ElfInfo) -> Tuple[str, ...]:
        """The object's search folders: DT_RUNPATH if present, else DT_RPATH (as musl)."""
        entries = info.runpath or info.rpath
        origin = posixpath.dirname(path) or "/"
        out = []
        for entry in entries:
            entry = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
            if not entry.startswith("/"):
                continue  # relative to the working directory at run time: unknowable
            out.append(posixpath.normpath(entry))
        return tuple(out)

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
            if self.arch and info.arch and info.arch != self.arch and not _same_arch(info.arch, self.arch):
                continue
            return candidate, real, info
        return None

    def _from_library(self, path: str, soname: str, found) -> Tuple[Edge, Optional[Tuple[str, ElfInfo]]]:
        load_path, real, info = found
        owner = self.universe.owner(load_path) or self.universe.owner(real)
        if owner is not None:
            return Edge(path, soname, "package", owner, load_path, "owner"), None
        return Edge(path, soname, "in_tree", None, load_path, "search"), (load_path, info)

    def lookup(self, path: str, soname: str, dirs: Sequence[str], glibc: bool):
        """Resolve one soname needed by ``path``: (edge, in-tree library to descend into)."""
        if glibc and soname in GLIBC_SONAMES:
            return Edge(path, soname, "glibc"), None
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
        found = self._find(soname, self.system_dirs())
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

    def _scanned(self, path: str) -> bool:
        return any(path == top or path.startswith(top.rstrip("/") + "/") for top in self.scanned_paths)

    def resolve(self, objects: Mapping[str, ElfInfo]) -> Resolution:
        """Resolve every needed soname of ``objects`` ({in-root path: info})."""
        arch = self.arch or majority_arch(objects.values())[0]
        self.arch = arch
        res = Resolution(arch=arch, universe=self.universe)
        res.scanned = sorted(objects)
        res.objects.update(objects)
        edges = res.edges
        seen: Set[Tuple[str, Tuple[str, ...]]] = set()
        edge_seen: Set[Tuple[str, str, str, Optional[str]]] = set()
        # What a soname resolves to depends on the search folders, not on who
        # needs it: one answer per (soname, folders, glibc-linked).
        answers: Dict[Tuple[str, Tuple[str, ...], bool], Tuple[Edge, object]] = {}
        own_memo: Dict[Tuple[str, Tuple[str, ...]], Tuple[str, ...]] = {}  # (folder, run path) -> folders
        stack: List[Tuple[str, ElfInfo, Tuple[str, ...]]] = [
            (p, objects[p], ()) for p in sorted(objects, reverse=True)
        ]
        while stack:
            path, info, parent_dirs = stack.pop()
            entries = info.runpath or info.rpath
            if entries:
                okey = (path.rpartition("/")[0], entries)
                try:
                    own = own_memo[okey]
                except KeyError:
                    own = own_memo[okey] = self.own_dirs(path, info)
            else:
                own = ()
            dirs = _dedupe(own + parent_dirs) if own else parent_dirs
            key = (path, dirs)
            if key in seen:
                continue
            seen.add(key)
            glibc = is_glibc_linked(info)
            if glibc:
                res.glibc_linked[path] = sorted(s for s in info.needed if s in GLIBC_SONAMES)
            for soname in info.needed:
                akey = (soname, dirs, glibc)
                try:
                    edge, descend = answers[akey]
                except KeyError:
                    edge, descend = answers[akey] = self.lookup(path, soname, dirs, glibc)
                if edge.path != path:
                    edge = Edge(path, soname, edge.kind, edge.package, edge.library, edge.via)
                ekey = (path, soname, edge.kind, edge.library)
                if ekey not in edge_seen:
                    edge_seen.add(ekey)
                    edges.append(edge)
                if descend is not None:
                    lib_path, lib_info = descend
                    res.objects.setdefault(lib_path, lib_info)
                    stack.append((lib_path, lib_info, dirs))
        packages = {e.package for e in edges if e.package is not None}
        res.all_packages = sorted(packages, key=lambda p: p.name)
        res.packages = self.universe.minimal(packages)
        return res


def _dedupe(dirs: Sequence[str]) -> Tuple[str, ...]:
    """``dirs`` without repeats, first occurrence kept."""
    return tuple(dict.fromkeys(dirs))


def _same_arch(a: str, b: str) -> bool:
    return {a, b} <= {"armv7", "armhf"}


def majority_arch(infos: Iterable[ElfInfo]) -> Tuple[Optional[str], Counter]:
    """The most common arch among ELF infos, and the count of each."""
    counts = Counter(i.arch for i in infos if i.arch)
    if not counts:
        return None, counts
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return best, counts

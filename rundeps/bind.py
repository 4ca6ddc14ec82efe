"""Bind every undefined symbol the way musl's dynamic linker does, and name
the files that will not load.

A soname that resolves is not a module that loads. This module takes a
:class:`~rundeps.resolve.Resolution` (the sonames resolved to files,
packages and musl) and the symbol facts of every object
(:class:`rundeps.symbols.SymbolFacts`: ``undefined`` name -> weak,
``defined`` names as musl's lookup sees them), and decides what musl's
``ldso/dynlink.c`` decides:

* **Load order and scope.** Loading an object loads its ``DT_NEEDED``
  closure, breadth first. At start-up every object of the program's closure
  joins the global scope; a library opened with ``dlopen`` is relocated
  against the global scope plus its own closure (``add_syms`` of the object
  and of every ``deps[i]``), and with ``RTLD_LOCAL`` those are taken out of
  the global scope again (``revert_syms``).
* **Python extension modules** are opened by the interpreter with
  ``RTLD_LOCAL``: their global scope is the interpreter's executable,
  ``libpython`` and their dependencies (the interpreter is the one of the
  module's ``lib/pythonX.Y/``: ``bin/pythonX.Y`` of that prefix). Modules do
  not see each other's symbols. Without an interpreter at hand (a bare tree,
  a wheel without ``--root``), names starting ``Py``/``_Py`` are taken as the
  interpreter's, and the result says so.
* **What binds.** A non-weak undefined symbol must be defined by an object in
  scope (``find_sym``); weak undefined symbols may stay unbound. Symbol
  versions are ignored except that a definition ``DT_VERSYM`` marks hidden is
  skipped (11a's reader gives ``defined`` with that rule applied). When
  nothing in scope defines it, musl 1.2.4 and later try ``get_lfs64``: an
  LFS64 name (``stat64``, ``open64``, ``readdir64_r`` -> ``readdir_r``, ...)
  binds to musl's base name.
* **musl itself.** ``DT_NEEDED`` names musl answers with itself (its
  ``reserved`` prefixes: ``libc.`` ``libpthread.`` ``librt.`` ``libm.``
  ``libdl.`` ``libutil.`` ``libxnet.``, so glibc's ``libc.so.6`` too) bind
  to musl's own exports: the root's real ``lib/ld-musl-<arch>.so.1``, else a
  shipped export list (:mod:`rundeps.muslexports`).

Verdicts (:class:`Binding`) are per in-root path: ``will_not_load`` (path ->
one-line reason, including files that fail because a dependency fails),
``missing_symbols`` (path -> sorted names) and hints naming a library that
defines what is missing.
"""

from __future__ import annotations

import posixpath
import re
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

__all__ = [
    "Binding",
    "MuslModel",
    "LFS64_BASE_NAMES",
    "bind",
    "lfs64_base",
    "python_prefix",
    "is_python_module",
]

LFS64_BASE_NAMES = frozenset(
    """
    aio_cancel aio_error aio_fsync aio_read aio_return aio_suspend aio_write alphasort creat
    fallocate fgetpos fopen freopen fseeko fsetpos fstat fstatat fstatfs fstatvfs ftello ftruncate
    ftw getdents getrlimit glob globfree lio_listio lockf lseek lstat mkostemp mkostemps mkstemp
    mkstemps mmap nftw open openat posix_fadvise posix_fallocate pread preadv prlimit pwrite pwritev
    readdir scandir sendfile setrlimit stat statfs statvfs tmpfile truncate versionsort
    __fxstat __fxstatat __lxstat __xstat
    """.split()
)
"""The base names musl's ``get_lfs64`` (musl 1.2.4 and later) maps ``NAME64``
to, besides ``readdir64_r`` -> ``readdir_r``."""


def lfs64_base(name: str) -> Optional[str]:
    """The musl name ``get_lfs64`` binds the LFS64 ``name`` to, or None."""
    if name == "readdir64_r":
        return "readdir_r"
    if len(name) > 2 and name.endswith("64") and name[:-2] in LFS64_BASE_NAMES:
        return name[:-2]
    return None


_PYLIB = re.compile(r"^(.*?)/lib(?:64)?/python(\d+\.\d+)t?/")
_PYMODULE_NAME = re.compile(r"\.(?:cpython-\d+[a-z]*-[^/]*|abi3|pypy[^/]*)\.so$")
_PY_FOLDERS = ("/site-packages/", "/dist-packages/", "/lib-dynload/")


def python_prefix(path: str) -> Optional[Tuple[str, str]]:
    """(prefix, X.Y) when ``path`` lies under ``PREFIX/lib/pythonX.Y/``."""
    m = _PYLIB.match(path)
    if m:
        return m.group(1), m.group(2)
    return None


def is_python_module(path: str, info) -> bool:
    """A shared object the Python interpreter opens: under ``lib/pythonX.Y/``,
    ``site-packages``/``dist-packages``, or named like an extension module."""
    if info.interp:
        return False
    if python_prefix(path) is not None:
        return True
    if _PYMODULE_NAME.search(path):
        return True
    return any(f in path for f in _PY_FOLDERS)


def _is_interpreter_name(name: str) -> bool:
    return name.startswith("Py") or name.startswith("_Py")


class MuslModel:
    """The musl the reserved names bind to: its exports, whether it has
    ``get_lfs64`` (1.2.4 and later) and a description for the output
    ("musl 1.2.5 (export list shipped for Alpine 3.20)")."""

    def __init__(self, exports: FrozenSet[str], description: str, version: Optional[str] = None,
                 lfs64: Optional[bool] = None):
        self.exports = exports
        self.description = description
        self.version = version
        if lfs64 is None:
            # musl 1.2.4 dropped the LFS64 symbols and added get_lfs64; older
            # musl exports stat64 & co. itself.
            lfs64 = "stat64" not in exports
        self.lfs64 = lfs64

    def __repr__(self) -> str:
        return f"MuslModel({self.description}, {len(self.exports)} exports)"


# -- nodes of the load graph --------------------------------------------------

MUSL = "<musl>"


class _Node:
    """One object the loader would map: a file, musl, a library known only by
    its package (not at hand), or a missing one."""

    __slots__ = ("key", "kind", "path", "info", "facts", "package", "soname", "deps", "missing_libs",
                 "unknown_libs")

    def __init__(self, key: str, kind: str, path: Optional[str] = None, info=None, package=None,
                 soname: Optional[str] = None):
        self.key = key
        self.kind = kind  # 'file', 'musl', 'unknown', 'missing'
        self.path = path  # the load path (in-root) for files
        self.info = info
        self.facts = None
        self.package = package
        self.soname = soname
        self.deps: List["_Node"] = []
        self.missing_libs: List[str] = []
        self.unknown_libs: List[str] = []


class Binding:
    """What binding found, per in-root path."""

    def __init__(self, musl: Optional[MuslModel]):
        self.musl = musl
        self.will_not_load: Dict[str, str] = {}
        self.missing_symbols: Dict[str, List[str]] = {}
        self.hints: Dict[str, List[str]] = {}
        self.glibc_loads: List[str] = []
        """glibc-linked files that bind completely under musl."""
        self.unchecked: Dict[str, List[str]] = {}
        """path -> libraries in its scope whose symbols are not at hand."""
        self.assumed_interpreter: List[str] = []
        """Python modules bound with Py* names assumed (no interpreter at hand)."""
        self.interpreter: Dict[str, str] = {}
        """Python module -> the interpreter whose scope it was bound in."""
        self.gcompat: Dict[str, str] = {}
        """glibc-linked file -> what gcompat changes (when modelled)."""

    @property
    def musl_description(self) -> Optional[str]:
        return self.musl.description if self.musl is not None else None


# -- the binder ------------------------------------------------------------------


class _Binder:
    def __init__(self, resolver, res, symbols: Callable[[str], object], musl: Optional[MuslModel],
                 real_path: Callable[[str], Optional[str]]):
        self.resolver = resolver
        self.res = res
        self.symbols = symbols
        self.musl = musl
        self.real_path = real_path
        self.nodes: Dict[str, _Node] = {}
        # Without an export list musl is a library not at hand: what only it
        # could define is "not checked", never "missing".
        self.musl_node = _Node(MUSL, "musl", soname="musl") if musl is not None else \
            _Node(MUSL, "unknown", soname="musl (no export list)")
        self._closure: Dict[str, List[_Node]] = {}
        self._built: Set[str] = set()
        self._fail_memo: Dict[Tuple[str, Tuple[str, ...]], Optional[str]] = {}
        self.present: Dict[str, str] = {}
        self.answers: dict = {}

    # graph ---------------------------------------------------------------

    def node_for_file(self, load_path: str, info) -> _Node:
        real = self.real_path(load_path) or load_path
        node = self.nodes.get(real)
        if node is None:
            node = self.nodes[real] = _Node(real, "file", real, info)
        return node

    def build(self, node: _Node) -> None:
        """Resolve the node's needs (memoised per object) in musl's load
        order (:meth:`rundeps.resolve.Resolver.load_order`: LD_LIBRARY_PATH,
        the needed_by chain's run paths, the system path, short-name reuse).
        A library a package owns is loaded the same way in turn."""
        if node.kind != "file" or node.key in self._built:
            return
        self._built.add(node.key)
        order = self.resolver.load_order(node.path, node.info, self.answers)
        by_path: Dict[str, list] = {}
        for edge, _descend in order:
            by_path.setdefault(edge.path, []).append(edge)
        self._attach(node, by_path.get(node.path, ()), by_path)

    def _attach(self, node: _Node, edges, by_path) -> None:
        for edge in edges:
            soname = edge.soname
            if edge.kind == "musl":
                node.deps.append(self.musl_node)
                continue
            if edge.library is not None:
                real = self.real_path(edge.library)
                lib_info = self.resolver.fs.elf(real) if real else None
                if lib_info is not None:
                    child = self.node_for_file(edge.library, lib_info)
                    node.deps.append(child)
                    if child.key not in self._built:
                        if edge.kind == "in_tree" and edge.library in by_path:
                            self._built.add(child.key)  # loaded within this load: its chain is ours
                            self._attach(child, by_path[edge.library], by_path)
                        else:
                            self.build(child)
                    continue
            if edge.package is not None:
                key = f"<{edge.package.name}:{soname}>"
                child = self.nodes.get(key) or self.nodes.setdefault(
                    key, _Node(key, "unknown", package=edge.package, soname=soname))
                node.deps.append(child)
                node.unknown_libs.append(soname)
                continue
            if soname in self.present:
                key = f"<{self.present[soname]}:{soname}>"
                child = self.nodes.setdefault(key, _Node(key, "unknown", soname=soname))
                node.deps.append(child)
                node.unknown_libs.append(soname)
                continue
            node.missing_libs.append(soname)

    def closure(self, root: _Node) -> List[_Node]:
        """The root and its DT_NEEDED closure, breadth first, each once."""
        cached = self._closure.get(root.key)
        if cached is not None:
            return cached
        self.build(root)
        out = [root]
        seen = {root.key}
        i = 0
        while i < len(out):
            for dep in out[i].deps:
                if dep.key not in seen:
                    seen.add(dep.key)
                    out.append(dep)
            i += 1
        self._closure[root.key] = out
        return out

    def facts(self, node: _Node):
        if node.kind != "file":
            return None
        if node.facts is None:
            node.facts = self.symbols(node.key) or False
        return node.facts or None

    def defined_in(self, node: _Node) -> FrozenSet[str]:
        if node.kind == "musl":
            return self.musl.exports if self.musl is not None else frozenset()
        f = self.facts(node)
        return f.defined if f is not None else frozenset()

    # binding ------------------------------------------------------------------

    def bind_in(self, node: _Node, scope: Sequence[_Node], assume_python: bool) -> Tuple[List[str], bool]:
        """(missing symbols of ``node`` in ``scope``, whether every library in scope was at hand)."""
        f = self.facts(node)
        if f is None:
            return [], False
        complete = all(n.kind != "unknown" for n in scope)
        defs = [self.defined_in(n) for n in scope]
        musl_defs = self.musl.exports if self.musl is not None else frozenset()
        lfs64 = self.musl is not None and self.musl.lfs64
        # what no library in scope defines: set differences, done in C
        # (``todo - d`` walks the smaller side), not one probe per name and scope
        todo = {name for name, weak in f.undefined.items() if not weak}
        for d in defs:
            if not todo:
                break
            todo = todo - d
        missing = []
        for name in todo:
            if lfs64:
                base = lfs64_base(name)
                if base is not None and base in musl_defs:
                    continue
            if assume_python and _is_interpreter_name(name):
                continue
            missing.append(name)
        missing.sort()
        return missing, complete


def _evaluate(b: _Binder, root: _Node, global_scope: List[_Node], assume_python: bool, glibc_files: Set[str],
              failures: Dict[str, str], missing_syms: Dict[str, Set[str]], unchecked: Dict[str, Set[str]]) -> None:
    """Bind every object the load of ``root`` maps, in the scope musl gives
    it (``global_scope`` then the root's own closure), recording own faults."""
    local = b.closure(root)
    scope: List[_Node] = []
    seen: Set[str] = set()
    for n in global_scope + local:
        if n.key not in seen:
            seen.add(n.key)
            scope.append(n)
    unknown = sorted({d.soname for d in scope if d.kind == "unknown"})
    for n in local:
        if n.kind != "file":
            continue
        if n.missing_libs:
            failures.setdefault(n.key, "needs " + ", ".join(n.missing_libs) + ", which musl cannot find")
        names, complete = b.bind_in(n, scope, assume_python)
        if names and (complete or n.key in glibc_files):
            missing_syms.setdefault(n.key, set()).update(names)
        elif names:
            unchecked.setdefault(n.key, set()).update(unknown)
        elif unknown and n.key in glibc_files and n.key not in failures:
            # a glibc-linked file whose scope is not all at hand cannot be proven to load
            failures.setdefault(n.key, "glibc-linked, and " + ", ".join(unknown)
                                + " not at hand to bind against (install the packages, or give --root)")


def _reason(names: Set[str]) -> str:
    shown = sorted(names)
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    return "symbol not found: " + ", ".join(shown[:3]) + more


def bind(resolver, res, symbols: Callable[[str], object], musl: Optional[MuslModel],
         real_path: Optional[Callable[[str], Optional[str]]] = None,
         interpreters: Optional[Mapping[str, str]] = None,
         hint_libraries: Optional[Callable[[], Iterable[Tuple[str, Optional[str]]]]] = None,
         gcompat=None, present: Optional[Mapping[str, str]] = None) -> Binding:
    """Bind every object of ``res`` as musl would.

    ``symbols(real_path)``: the :class:`~rundeps.symbols.SymbolFacts` of an
    in-root file (None when unreadable); ``musl``: what the reserved names
    bind to; ``real_path``: the in-root real path of a load path (default:
    the resolver's filesystem ``lookup``); ``interpreters``: module path ->
    interpreter path, overriding the ``lib/pythonX.Y`` rule (wheels);
    ``hint_libraries()``: (in-root library path, package name or None) pairs
    whose exports may explain a missing symbol; ``gcompat``: a
    :class:`rundeps.gcompat.Gcompat` when the root has it; ``present``:
    soname -> package of libraries taken as present but not at hand (the
    base image's, for a wheel checked without any package source).
    """
    from .resolve import is_glibc_linked

    fs = resolver.fs
    lookup = real_path or fs.lookup
    b = _Binder(resolver, res, symbols, musl, lookup)
    b.present = dict(present or {})
    out = Binding(musl)
    objects = res.objects
    scanned = list(res.scanned)

    # Roots of the dependency forest among the scanned files: a scanned file
    # that another scanned file loads is checked inside that file's load.
    nodes = {p: b.node_for_file(p, objects[p]) for p in scanned}
    needed_by_scanned: Set[str] = set()
    for p in scanned:
        for dep in b.closure(nodes[p])[1:]:
            needed_by_scanned.add(dep.key)

    interp_cache: Dict[str, Optional[_Node]] = {}

    def interpreter_for(path: str) -> Optional[_Node]:
        ipath = None
        if interpreters is not None and path in interpreters:
            ipath = interpreters[path]
            if ipath is not None and lookup(ipath) is None:
                ipath = None
        else:
            pp = python_prefix(path)
            if pp is not None:
                prefix, version = pp
                for cand in (f"{prefix}/bin/python{version}", f"{prefix}/bin/python3", f"{prefix}/bin/python"):
                    if lookup(cand) is not None:
                        ipath = cand
                        break
        if ipath is None:
            return None
        if ipath not in interp_cache:
            real = lookup(ipath)
            info = fs.elf(real) if real else None
            interp_cache[ipath] = b.node_for_file(ipath, info) if info is not None else None
        return interp_cache[ipath]

    failures: Dict[str, str] = {}  # node key -> reason (own failure)
    missing_syms: Dict[str, Set[str]] = {}
    unchecked: Dict[str, Set[str]] = {}
    glibc_files: Set[str] = set()
    units: List[Tuple[str, _Node, List[_Node], bool]] = []
    not_musl: Set[str] = set()  # glibc programs a glibc beside musl runs

    for p in scanned:
        root = nodes[p]
        info = root.info
        if is_glibc_linked(info):
            glibc_files.add(root.key)
        if root.key in needed_by_scanned:
            continue
        arch = res.arch
        if arch and info.arch and info.arch != arch and not {arch, info.arch} <= {"armv7", "armhf"}:
            failures[root.key] = f"built for {info.arch}, not {arch}"
            continue
        interp = info.interp
        if interp and posixpath.basename(interp).startswith(("ld-linux", "ld64.so")):
            real_interp = lookup(interp)
            if real_interp is None:
                failures[root.key] = f"its loader {interp} (glibc's) is not in the root (gcompat provides one)"
                continue
            if gcompat is None or not gcompat.owns(real_interp, interp):
                not_musl.add(root.key)
                continue  # a real glibc beside musl runs it: not musl's to decide
        global_scope: List[_Node] = []
        assume_python = False
        module = (interpreters is not None and p in interpreters) or is_python_module(p, info)
        if info.interp is None and module:
            inode = interpreter_for(p)
            if inode is not None:
                global_scope = b.closure(inode)
                out.interpreter[p] = inode.key
            else:
                assume_python = True
                out.assumed_interpreter.append(p)
        elif gcompat is not None and info.interp and gcompat.owns(lookup(info.interp), info.interp):
            # gcompat's loader runs musl's with --preload libgcompat.so.0
            global_scope = [root] + gcompat.preload_nodes(b)
            out.gcompat[p] = "runs through gcompat's loader (libgcompat.so.0 preloaded)"
        units.append((p, root, global_scope, assume_python))
        _evaluate(b, root, global_scope, assume_python, glibc_files, failures, missing_syms, unchecked)

    for key, names in missing_syms.items():
        failures.setdefault(key, _reason(names))

    # Propagate: a file fails when anything it loads fails.
    def first_failing_dep(node: _Node) -> Optional[_Node]:
        for dep in b.closure(node)[1:]:
            if dep.key in failures:
                return dep
        return None

    report_paths: Dict[str, str] = {}  # node key -> in-root path shown
    for p in scanned:
        report_paths.setdefault(nodes[p].key, p)
    for node in list(b.nodes.values()):
        if node.kind == "file":
            report_paths.setdefault(node.key, node.key)

    for p in scanned:
        node = nodes[p]
        if node.key in failures:
            out.will_not_load[p] = failures[node.key]
            continue
        dep = first_failing_dep(node)
        if dep is not None:
            out.will_not_load[p] = f"loads {report_paths.get(dep.key, dep.key)}, which will not load ({failures[dep.key]})"
    # Libraries outside the scanned paths that fail are named too (in-root paths).
    for key, reason in failures.items():
        path = report_paths.get(key, key)
        if path not in out.will_not_load and key not in {nodes[p].key for p in scanned}:
            out.will_not_load[path] = reason
    out.will_not_load = dict(sorted(out.will_not_load.items()))
    out.missing_symbols = {report_paths.get(k, k): sorted(v) for k, v in sorted(missing_syms.items())}
    out.unchecked = {report_paths.get(k, k): sorted(v) for k, v in sorted(unchecked.items())}
    out.glibc_loads = sorted(p for p in scanned if nodes[p].key in glibc_files and p not in out.will_not_load
                             and nodes[p].key not in not_musl and p not in getattr(res, "runs_under_glibc", {})
                             and (objects[p].interp is None or lookup(objects[p].interp) is not None))

    if gcompat is not None:
        _gcompat_verdicts(b, out, units, glibc_files, gcompat, report_paths)

    if out.missing_symbols and hint_libraries is not None:
        out.hints = _hints(out.missing_symbols, b, hint_libraries, nodes)
    return out


def _gcompat_verdicts(b: _Binder, out: Binding, units, glibc_files: Set[str], gcompat, report_paths) -> None:
    """For every glibc-linked file: would it load with gcompat? A program
    started through gcompat's loader was bound with libgcompat preloaded; a
    module or library is bound again as if ``LD_PRELOAD=libgcompat.so.0``."""
    pre = gcompat.preload_nodes(b)
    for p, root, global_scope, assume in units:
        if root.key not in glibc_files:
            continue
        if p in out.gcompat:  # through gcompat's loader: the verdict is the real one
            reason = out.will_not_load.get(p)
            out.gcompat[p] = ("loads: gcompat's loader preloads libgcompat.so.0" if reason is None
                              else f"will not load even with gcompat: {reason}")
            continue
        if p not in out.will_not_load:
            out.gcompat[p] = "loads (libgcompat.so.0 not needed)"
            continue
        f2: Dict[str, str] = {}
        m2: Dict[str, Set[str]] = {}
        _evaluate(b, root, global_scope + pre, assume, glibc_files, f2, m2, {})
        for key, names in m2.items():
            f2.setdefault(key, _reason(names))
        bad = next((n for n in b.closure(root) if n.key in f2), None)
        if bad is None:
            out.gcompat[p] = (f"loads only with LD_PRELOAD={gcompat.library}: gcompat's symbols do not "
                              "reach a library a musl program opens")
        else:
            where = "" if bad is root else f"{report_paths.get(bad.key, bad.key)}: "
            out.gcompat[p] = f"will not load even with LD_PRELOAD={gcompat.library}: {where}{f2[bad.key]}"


def _hints(missing: Mapping[str, List[str]], b: _Binder, hint_libraries, nodes) -> Dict[str, List[str]]:
    """For missing symbols a library at hand defines: a line naming it."""
    libs = []
    for path, pkg in hint_libraries():
        real = b.real_path(path)
        if real is None:
            continue
        facts = b.symbols(real)
        if facts is None or not (facts.defined or getattr(facts, "hidden", None)):
            continue
        libs.append((path, pkg, facts.defined, frozenset(getattr(facts, "hidden", ()) or ())))
    out: Dict[str, List[str]] = {}
    for path, names in missing.items():
        lines = []
        left = list(names)
        for lib, pkg, defined, hidden in libs:
            hid = [n for n in left if n in hidden and n not in defined]
            if hid:
                more = f" and {len(hid) - 1} more are" if len(hid) > 1 else " is"
                lines.append(f"{hid[0]}{more} defined by {posixpath.basename(lib)} only under a hidden "
                             "(non-default) symbol version, which musl's lookup skips")
                left = [n for n in left if n not in hid]
            hit = [n for n in left if n in defined]
            if not hit:
                continue
            left = [n for n in left if n not in defined]
            soname = posixpath.basename(lib)
            more = f" and {len(hit) - 1} more are" if len(hit) > 1 else " is"
            who = f"{soname} ({pkg})" if pkg else soname
            line = (f"{hit[0]}{more} defined by {who}, which this module does not link: "
                    f"add it to DT_NEEDED")
            if soname.startswith("libstdc++"):
                line += " (build with CXX=g++)"
            lines.append(line)
            if not left:
                break
        if lines:
            out[path] = lines
    return out


# -- where musl's exports come from -----------------------------------------------


def musl_model(fs, arch: Optional[str], symbols: Callable[[str], object], universe=None,
               musl_version: Optional[str] = None, alpine: Optional[str] = None) -> Optional[MuslModel]:
    """The musl to bind the reserved names to.

    ``--musl VERSION`` first (a shipped export list); else the root's real
    ``lib/ld-musl-<arch>.so.1`` (its exports read like any other file's;
    the owning package's version when the database knows it); else the
    shipped list for ``--alpine X.Y``, else the newest shipped list for the
    arch. None when none is available.
    """
    from .resolve import MUSL_LD_ARCH

    if musl_version is None and fs is not None:
        ld_arch = MUSL_LD_ARCH.get(arch or "")
        if ld_arch:
            load_path = f"/lib/ld-musl-{ld_arch}.so.1"
            real = fs.lookup(load_path)
            facts = symbols(real) if real else None
            if facts is not None and facts.defined:
                version = None
                owner = universe.owner(load_path) if universe is not None else None
                if owner is None and universe is not None and real:
                    owner = universe.owner(real)
                if owner is not None and owner.name == "musl":
                    version = owner.version
                desc = f"musl {version} (the root's {load_path})" if version else f"the root's {load_path}"
                return MuslModel(frozenset(facts.defined), desc, version)
    return shipped_musl(arch, musl_version=musl_version, alpine=alpine)


def shipped_musl(arch: Optional[str], musl_version: Optional[str] = None,
                 alpine: Optional[str] = None) -> Optional[MuslModel]:
    """A musl export list the project ships (:mod:`rundeps.muslexports`):
    ``musl_version``, else the musl of Alpine ``alpine``, else the newest."""
    from . import muslexports

    wanted = musl_version
    why = f"--musl {musl_version}" if musl_version else None
    if wanted is None and alpine:
        wanted = muslexports.musl_for_alpine(alpine)
        why = f"Alpine {alpine}" if wanted else None
    lists = muslexports.load(wanted, arch or "x86_64")
    if lists is None:
        return None
    desc = f"{lists.describe()}, the export list shipped with rundeps"
    if why:
        desc += f" (for {why})"
    if not lists.exact_version and wanted:
        desc += f": no list for {wanted}, the nearest older one"
    if not lists.exact_arch:
        desc += f": no list for {arch}"
    return MuslModel(lists.names, desc, lists.version)

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

import gc
import marshal
import posixpath
import re
from itertools import compress
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


LFS64_NAMES = frozenset([n + "64" for n in LFS64_BASE_NAMES] + ["readdir64_r"])
"""Every name :func:`lfs64_base` maps."""

#: A cached :meth:`_Binder.bind_in` answer for an object whose symbol facts
#: could not be read (the reason is reported when they are read again).
_NO_FACTS = "-"


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


class MuslModel:
    """The musl the reserved names bind to: its exports, whether it has
    ``get_lfs64`` (1.2.4 and later) and a description for the output
    ("musl 1.2.5 (export list shipped for Alpine 3.20)").

    ``identity`` names these exports for cached verdicts (see :func:`bind`):
    equal identities mean equal exports."""

    def __init__(self, exports: FrozenSet[str], description: str, version: Optional[str] = None,
                 lfs64: Optional[bool] = None, identity: Optional[tuple] = None):
        self.exports = exports
        self.description = description
        self.version = version
        if lfs64 is None:
            # musl 1.2.4 dropped the LFS64 symbols and added get_lfs64; older
            # musl exports stat64 & co. itself.
            lfs64 = "stat64" not in exports
        self.lfs64 = lfs64
        self.identity = identity if identity is not None else ("list", description, version)

    def __repr__(self) -> str:
        return f"MuslModel({self.description}, {len(self.exports)} exports)"


class _LazyMusl(MuslModel):
    """A root's own ``ld-musl``: its symbol table is read (or its cached
    facts loaded) only when its exports, or what they say, are first used;
    ``make()`` gives the real model."""

    def __init__(self, make: Callable[[], Optional[MuslModel]], identity: tuple):
        self._make = make
        self.identity = identity

    def __getattr__(self, name):
        if name in ("exports", "description", "version", "lfs64"):
            model = self._make()
            exports = model.exports if model is not None else frozenset()
            desc = model.description if model is not None else "no musl export list"
            MuslModel.__init__(self, exports, desc, model.version if model is not None else None,
                               model.lfs64 if model is not None else False, self.identity)
            return object.__getattribute__(self, name)
        raise AttributeError(name)


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
        self.verdicts: Dict[bytes, object] = {}
        """The binding answers this run used, keyed on the identities of the
        files they depend on (see :func:`bind`): for the next run."""

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
        self._needs: Dict[Tuple[str, bool], FrozenSet[str]] = {}
        self._interpreter_names: Set[str] = set()  # Py* names met so far
        self.verdicts: Optional[Mapping[bytes, object]] = None  # cached answers of bind_in
        self.used: Dict[bytes, object] = {}  # the answers this run gave, to cache
        self.symbols_key: Callable[[str], Optional[tuple]] = lambda path: None
        self._idents: Dict[str, bytes] = {}
        self._scope_idents: Optional[tuple] = None  # (scope, assume_python, its identities)
        self._closure_keys: Dict[str, FrozenSet[str]] = {}

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
        order = getattr(self.resolver, "orders", {}).get(node.path)  # as the resolution found it
        if order is None:
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

    def needs(self, node: _Node, f, assume_python: bool = False) -> FrozenSet[str]:
        """The strong (non-weak) undefined names of ``node`` that its own
        closure (itself, what it loads, musl) does not define, once per
        object; with ``assume_python``, the interpreter's names (``Py*``,
        ``_Py*``) left out first. Every scope ``node`` is bound in holds
        that closure (loading anything that loads ``node`` loads it), so
        binding in a scope only has to look further for these."""
        memo_key = (node.key, assume_python)
        got = self._needs.get(memo_key)
        if got is None:
            und = f.undefined
            # a set made from a dict reuses its hashes; the weak names are few
            todo = frozenset(und).difference(compress(und, und.values()))
            if todo and self.musl is not None and any(n.kind == "musl" for n in self.closure(node)):
                todo = todo - self.musl.exports
            if todo and assume_python:
                # Names repeat from module to module: test the new ones only.
                py = self._interpreter_names
                todo = todo - py
                new = [n for n in todo if n.startswith(("Py", "_Py"))]
                if new:
                    py.update(new)
                    todo = todo.difference(new)
            got = self._needs[memo_key] = self._subtract(todo, [n for n in self.closure(node) if n.kind == "file"])
        return got

    def _subtract(self, todo: FrozenSet[str], scope: Sequence[_Node]) -> FrozenSet[str]:
        """``todo`` less every name an object of ``scope`` defines, by set
        differences done in C (``todo - d`` walks the smaller side), not one
        probe per name and scope. Which object defines a name does not
        matter here, only whether one does, so musl's exports (at hand
        already) go first and a library's own set is only looked at while
        names are left."""
        if todo and self.musl is not None and any(n.kind == "musl" for n in scope):
            todo = todo - self.musl.exports
        for n in scope:
            if not todo:
                break
            if n.kind == "file":
                todo = todo - self.defined_in(n)
        return todo

    # cached verdicts --------------------------------------------------------

    def _identity(self, node: _Node) -> Optional[bytes]:
        """What the symbols of ``node`` are a function of: the musl model's
        identity, or a file's path and (device, inode, size, mtime_ns)."""
        got = self._idents.get(node.key)
        if got is None:
            if node.kind == "musl":
                ident = self.musl.identity if self.musl is not None else None
            else:
                key = self.symbols_key(node.key)
                ident = None if key is None else (node.key,) + tuple(key)
            got = self._idents[node.key] = marshal.dumps(ident) if ident is not None else b""
        return got or None

    def _verdict_key(self, node: _Node, scope: Sequence[_Node], assume_python: bool) -> Optional[bytes]:
        """The key of :meth:`bind_in`'s answer: everything it depends on
        (the object's facts, the exports of the files and musl in scope,
        musl's own for ``get_lfs64``, and ``assume_python``), or None when
        some file's identity is unknown."""
        own = self._identity(node)
        if own is None:
            return None
        memo = self._scope_idents
        if memo is None or memo[0] is not scope or memo[1] != assume_python:  # one scope serves a whole load
            parts = [b"P" if assume_python else b"-", self._identity(self.musl_node) or b""]
            for n in scope:
                if n.kind == "file" or n.kind == "musl":
                    ident = self._identity(n)
                    if ident is None:
                        parts = None
                        break
                    parts.append(ident)
            memo = self._scope_idents = (scope, assume_python, None if parts is None else b"\0".join(parts))
        if memo[2] is None:
            return None
        return memo[2] + b"\0" + own  # exact: no digest, so no two keys can collide

    def bind_in(self, node: _Node, scope: Sequence[_Node], assume_python: bool) -> Tuple[List[str], bool]:
        """(missing symbols of ``node`` in ``scope``, whether every library in
        scope was at hand). With cached verdicts, an answer for the same
        files (same identities) is taken from them and no symbol table is
        looked at."""
        complete = all(n.kind != "unknown" for n in scope)
        key = None
        if self.verdicts is not None:
            key = self._verdict_key(node, scope, assume_python)
            got = self.verdicts.get(key) if key is not None else None
            if got is not None and got != _NO_FACTS:
                self.used[key] = got
                return list(got), complete
        missing, has_facts = self._bind_in(node, scope, assume_python)
        if key is not None:
            # the facts are for the file read, which may have changed since
            # its identity was first taken: key the answer on what was read
            if self._idents.pop(node.key, None) != self._identity(node):
                self._scope_idents = None  # the scope's identities name it too
            key = self._verdict_key(node, scope, assume_python)
            if key is not None:
                self.used[key] = tuple(missing) if has_facts else _NO_FACTS
        return missing, complete and has_facts

    def _bind_in(self, node: _Node, scope: Sequence[_Node], assume_python: bool) -> Tuple[List[str], bool]:
        f = self.facts(node)
        if f is None:
            return [], False
        todo = self.needs(node, f, assume_python)
        if todo:
            own = self._closure_keys.get(node.key)
            if own is None:
                own = self._closure_keys[node.key] = frozenset(n.key for n in self.closure(node))
            todo = self._subtract(todo, [n for n in scope if n.key not in own])
        if todo and self.musl is not None and self.musl.lfs64:
            lfs = todo & LFS64_NAMES  # musl 1.2.4+ get_lfs64: NAME64 binds to musl's NAME
            if lfs:
                todo = todo.difference([n for n in lfs if lfs64_base(n) in self.musl.exports])
        return sorted(todo), True


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
         gcompat=None, present: Optional[Mapping[str, str]] = None,
         verdicts: Optional[Mapping[bytes, object]] = None,
         symbols_key: Optional[Callable[[str], Optional[tuple]]] = None) -> Binding:
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

    Cached verdicts: with ``symbols_key(real_path)`` (the (device, inode,
    size, mtime_ns) of the file whose facts ``symbols`` gives) and
    ``verdicts`` (what :attr:`Binding.verdicts` held after an earlier run),
    an object bound in a scope of files whose identities are all unchanged
    gets the earlier answer without its symbol tables, or any in its scope,
    being read. The answers this run used are in :attr:`Binding.verdicts`.
    """
    # Binding makes many sets and lists and no garbage cycles worth
    # collecting meanwhile: the cyclic collector would only re-scan them
    # (about a third of a cold binding's time). Off meanwhile, as in the walk.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _bind(resolver, res, symbols, musl, real_path, interpreters, hint_libraries, gcompat, present,
                     verdicts, symbols_key)
    finally:
        if gc_was_enabled:
            gc.enable()


def _bind(resolver, res, symbols, musl, real_path, interpreters, hint_libraries, gcompat, present, verdicts,
          symbols_key) -> Binding:
    from .resolve import is_glibc_linked

    fs = resolver.fs
    lookup = real_path or fs.lookup
    b = _Binder(resolver, res, symbols, musl, lookup)
    b.present = dict(present or {})
    if symbols_key is not None:
        b.symbols_key = symbols_key
        b.verdicts = {} if verdicts is None else verdicts
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
    out.verdicts = b.used
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
               musl_version: Optional[str] = None, alpine: Optional[str] = None,
               symbols_key: Optional[Callable[[str], Optional[tuple]]] = None) -> Optional[MuslModel]:
    """The musl to bind the reserved names to.

    ``--musl VERSION`` first (a shipped export list); else the root's real
    ``lib/ld-musl-<arch>.so.1`` (its exports read like any other file's;
    the owning package's version when the database knows it); else the
    shipped list for ``--alpine X.Y``, else the newest shipped list for the
    arch. None when none is available. With ``symbols_key`` (see
    :func:`bind`) the root's musl is read only when first used.
    """
    from .resolve import MUSL_LD_ARCH

    if musl_version is None and fs is not None:
        ld_arch = MUSL_LD_ARCH.get(arch or "")
        if ld_arch:
            load_path = f"/lib/ld-musl-{ld_arch}.so.1"
            real = fs.lookup(load_path)
            key = symbols_key(real) if real and symbols_key is not None else None
            if real and key is not None and fs.elf(real) is not None:
                # read when first used: a run whose verdicts are all cached needs none of it
                def make() -> Optional[MuslModel]:
                    return _root_musl(real, load_path, symbols, universe) or shipped_musl(
                        arch, musl_version=musl_version, alpine=alpine)

                return _LazyMusl(make, ("root", real) + tuple(key))
            model = _root_musl(real, load_path, symbols, universe) if real else None
            if model is not None:
                return model
    return shipped_musl(arch, musl_version=musl_version, alpine=alpine)


def _root_musl(real: str, load_path: str, symbols: Callable[[str], object], universe) -> Optional[MuslModel]:
    """The model of a root's own ``ld-musl`` (None if it defines nothing)."""
    facts = symbols(real)
    if facts is None or not facts.defined:
        return None
    version = None
    owner = universe.owner(load_path) if universe is not None else None
    if owner is None and universe is not None:
        owner = universe.owner(real)
    if owner is not None and owner.name == "musl":
        version = owner.version
    desc = f"musl {version} (the root's {load_path})" if version else f"the root's {load_path}"
    return MuslModel(frozenset(facts.defined), desc, version, identity=("root", real))


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

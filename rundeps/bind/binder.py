"""Bind every undefined symbol the way musl's dynamic linker does, and name
the files that will not load.

A soname that resolves is not a module that loads. This module takes a
:class:`~rundeps.resolve.Resolution` (the sonames resolved to files,
packages and musl) and the symbol facts of every object
(:class:`rundeps.elf.facts.SymbolFacts`: ``undefined`` name -> weak,
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
  scope (``find_sym``); weak undefined symbols may stay unbound. So must a
  name a relocation references through the object's own definition when
  musl's lookup skips that definition (an ``STT_GNU_IFUNC`` function the
  object calls through its PLT): the lookup searches the whole scope, so
  another object's plain definition, before or after it, satisfies it. Symbol
  versions are ignored except that a definition ``DT_VERSYM`` marks hidden is
  skipped (11a's reader gives ``defined`` with that rule applied). When
  nothing in scope defines it, musl 1.2.4 and later try ``get_lfs64``: an
  LFS64 name (``stat64``, ``open64``, ``readdir64_r`` -> ``readdir_r``, ...)
  binds to musl's base name.
* **musl itself.** ``DT_NEEDED`` names musl answers with itself (its
  ``reserved`` prefixes: ``libc.`` ``libpthread.`` ``librt.`` ``libm.``
  ``libdl.`` ``libutil.`` ``libxnet.``, so glibc's ``libc.so.6`` too) bind
  to musl's own exports: the root's real ``lib/ld-musl-<arch>.so.1``, else a
  shipped export list (:mod:`rundeps.bind.exports`).

Verdicts (:class:`Binding`) are per in-root path: ``will_not_load`` (path ->
one-line reason, including files that fail because a dependency fails),
``missing_symbols`` (path -> sorted names) and hints naming a library that
defines what is missing.
"""

from __future__ import annotations

import gc
import marshal
import posixpath
from collections import deque
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ..platform import is_glibc_interp, same_arch
from ..resolve.units import python_prefix
from ..verdict import GLIBC_LOADER, MISSING_LIBRARY, MISSING_SYMBOL, RELOCATION, TLS, WRONG_ARCH, Fault

from .musl import MuslModel

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


# -- nodes of the load graph --------------------------------------------------

MUSL = "<musl>"


class _Node:
    """One object the loader would map: a file, musl, a library known only by
    its package (not at hand), or a missing one."""

    __slots__ = ("key", "kind", "path", "info", "facts", "package", "soname", "deps", "missing_libs")

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


class Binding:
    """What binding found, per in-root path."""

    def __init__(self, musl: Optional[MuslModel]):
        self.musl = musl
        self.faults: Dict[str, Fault] = {}
        """Unit (a file loaded on its own) -> why its load fails."""
        self.missing_symbols: Dict[str, List[str]] = {}
        self.hints: Dict[str, List[str]] = {}
        self.glibc_loads: List[str] = []
        """glibc-linked files that bind completely under musl."""
        self.unchecked: Dict[str, List[str]] = {}
        """path -> libraries in its load's scope whose symbols are not at hand."""
        self.undecided: Dict[str, str] = {}
        """Unit -> what its load needs of the target's loader that cannot be
        told (whether it applies ``DT_RELR``): cannot be checked, never a fault."""
        self.assumed_interpreter: List[str] = []
        """Files loaded into a Python process bound with Py* names assumed (no interpreter at hand)."""
        self.interpreter: Dict[str, str] = {}
        """File loaded into a Python process -> the interpreter whose scope it was bound in."""
        self.gcompat: Dict[str, str] = {}
        """glibc-linked file -> what gcompat changes (when modelled)."""
        self.verdicts: Dict[bytes, object] = {}
        """The binding answers this run used, keyed on the identities of the
        files they depend on (see :func:`bind`): for the next run."""

    @property
    def will_not_load(self) -> Dict[str, str]:
        """Unit -> one-line reason (derived from :attr:`faults`)."""
        return {p: f.reason for p, f in self.faults.items()}

    @property
    def musl_description(self) -> Optional[str]:
        return self.musl.description if self.musl is not None else None


# -- the binder ------------------------------------------------------------------


class _Binder:
    def __init__(self, resolver, symbols: Callable[[str], object], musl: Optional[MuslModel],
                 real_path: Callable[[str], Optional[str]]):
        self.resolver = resolver
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
        self.present: Dict[str, str] = {}
        self.answers: dict = {}
        self._needs: Dict[tuple, FrozenSet[str]] = {}
        self._interpreter_names: Set[str] = set()  # Py* names met so far
        self.verdicts: Optional[Mapping[bytes, object]] = None  # cached answers of bind_in
        self.used: Dict[bytes, object] = {}  # the answers this run gave, to cache
        self.symbols_key: Callable[[str], Optional[tuple]] = lambda path: None
        self._idents: Dict[str, bytes] = {}
        self._scope_idents: Optional[tuple] = None  # (scope, assume_python, its identities)

    # graph ---------------------------------------------------------------

    def node_for_file(self, load_path: str, info) -> _Node:
        """The shared node of a file whose needs do not depend on who loads it
        (a library a package owns, the interpreter, gcompat)."""
        real = self.real_path(load_path) or load_path
        node = self.nodes.get(real)
        if node is None:
            node = self.nodes[real] = _Node(real, "file", real, info)
        return node

    def given_node(self, key: str, path: str, facts) -> _Node:
        """A shared node for a library known by its facts alone (gcompat's
        ``libgcompat.so.0`` from ``--gcompat FILE``): nothing to resolve."""
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = _Node(key, "file", path)
            node.facts = facts
            self._built.add(key)
        return node

    def build(self, node: _Node) -> None:
        """Resolve a shared node's needs once, in its own load (musl's order:
        LD_LIBRARY_PATH, the needed_by chain's run paths, the system path,
        short-name reuse)."""
        if node.kind != "file" or node.key in self._built:
            return
        self._built.add(node.key)
        order = self.resolver.orders.get(node.path)
        if order is None:
            order = self.resolver.load_order(node.path, node.info, self.answers)
        self._attach_load(node, order, self.nodes)

    def load(self, path: str, info) -> _Node:
        """The root of the load of ``path`` as its own: the libraries the tree
        carries are nodes of this load alone, each found in this load's
        context (the run paths of everything up the chain that loaded it,
        the names already loaded), so the same library can be found in one
        load and missing in another. Libraries packages own are shared."""
        order = self.resolver.orders.get(path)
        if order is None:
            order = self.resolver.load_order(path, info, self.answers)
        real = self.real_path(path) or path
        root = _Node(real, "file", real, info)
        self._attach_load(root, order, {real: root})
        return root

    def _attach_load(self, root: _Node, order, registry: Dict[str, _Node]) -> None:
        """Give ``root`` and the in-tree libraries of its load (``order``:
        :meth:`rundeps.resolve.Resolver.load_order`) their dependencies;
        ``registry`` holds this load's nodes by real path."""
        real_path = self.real_path
        by_real: Dict[str, list] = {}
        for edge, _descend in order:
            by_real.setdefault(real_path(edge.path) or edge.path, []).append(edge)
        queue = deque([root])
        queued = {root.key}
        while queue:
            node = queue.popleft()
            for edge in by_real.get(node.key, ()):
                child = self._child(edge, registry)
                if child is None:
                    node.missing_libs.append(edge.soname)
                    continue
                node.deps.append(child)
                # an in-tree library of this load: its own needs are in this order too
                if child.key not in queued and child.key not in self._built and registry.get(child.key) is child:
                    queued.add(child.key)
                    queue.append(child)

    def _child(self, edge, registry: Dict[str, _Node]) -> Optional[_Node]:
        """The node an edge leads to (None: a library musl cannot find)."""
        if edge.kind == "musl":
            return self.musl_node
        soname = edge.soname
        if edge.library is not None:
            real = self.real_path(edge.library)
            lib_info = self.resolver.fs.elf(real) if real else None
            if lib_info is not None:
                if edge.kind == "in_tree":
                    child = registry.get(real)
                    if child is None:
                        child = registry[real] = _Node(real, "file", real, lib_info)
                    return child
                child = self.node_for_file(edge.library, lib_info)
                self.build(child)
                return child
        if edge.package is not None:
            key = f"<{edge.package.name}:{soname}>"
            return self.nodes.get(key) or self.nodes.setdefault(
                key, _Node(key, "unknown", package=edge.package, soname=soname))
        if soname in self.present:
            key = f"<{self.present[soname]}:{soname}>"
            return self.nodes.setdefault(key, _Node(key, "unknown", soname=soname))
        return None

    def closure(self, root: _Node) -> List[_Node]:
        """The root and its DT_NEEDED closure, breadth first, each once
        (memoised for shared nodes)."""
        shared = self.nodes.get(root.key) is root
        if shared:
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
        if shared:
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

    def needs(self, node: _Node, f, own: Sequence[_Node], own_keys: FrozenSet[str],
              assume_python: bool = False) -> FrozenSet[str]:
        """The names ``node`` must bind (its strong undefined names and the
        references to its own definitions musl's lookup skips, see
        :attr:`~rundeps.elf.facts.SymbolFacts.must_bind`) that its own
        closure in this load (``own``: itself, what it loads, musl) does not
        define; with ``assume_python``, the interpreter's names (``Py*``,
        ``_Py*``) left out first. Every scope ``node`` is bound in holds
        that closure, so binding in a scope only has to look further for
        these. Memoised per object and closure."""
        memo_key = (node.key, assume_python, own_keys)
        got = self._needs.get(memo_key)
        if got is None:
            todo = f.must_bind
            if todo and assume_python:
                # Names repeat from module to module: test the new ones only.
                py = self._interpreter_names
                todo = todo - py
                new = [n for n in todo if n.startswith(("Py", "_Py"))]
                if new:
                    py.update(new)
                    todo = todo.difference(new)
            got = self._needs[memo_key] = self._subtract(todo, own)
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

    def _verdict_key(self, node: _Node, scope: Sequence[_Node], assume_python: bool, new_from: int,
                     runtime: bool) -> Optional[bytes]:
        """The key of :meth:`bind_in`'s answer: everything it depends on
        (the object's facts, the exports of the files and musl in scope,
        musl's own for ``get_lfs64``, ``assume_python``, and which objects
        of the scope the load maps anew), or None when some file's identity
        is unknown."""
        own = self._identity(node)
        if own is None:
            return None
        memo = self._scope_idents
        shape = (assume_python, new_from, runtime)
        if memo is None or memo[0] is not scope or memo[1] != shape:  # one scope serves a whole load
            parts = [b"P" if assume_python else b"-", b"R%d" % new_from if runtime else b"S",
                     self._identity(self.musl_node) or b""]
            for n in scope:
                if n.kind == "file" or n.kind == "musl":
                    ident = self._identity(n)
                    if ident is None:
                        parts = None
                        break
                    parts.append(ident)
            memo = self._scope_idents = (scope, shape, None if parts is None else b"\0".join(parts))
        if memo[2] is None:
            return None
        return memo[2] + b"\0" + own  # exact: no digest, so no two keys can collide

    def bind_in(self, node: _Node, scope: Sequence[_Node], assume_python: bool, new_from: int = 0,
                runtime: bool = False,
                new: Optional[Set[str]] = None) -> Tuple[List[str], bool, Optional[Tuple[str, str, Tuple[str, ...]]]]:
        """(missing symbols of ``node`` in ``scope``, whether every library in
        scope was at hand, a relocation musl refuses besides those: (kind,
        reason, names) or None). ``scope[new_from:]`` are the objects this
        load maps anew (``new``: their keys, when the caller has them);
        ``runtime``: the load is a ``dlopen``. With cached
        verdicts, an answer for the same files (same identities) is taken
        from them and no symbol table is looked at."""
        complete = all(n.kind != "unknown" for n in scope)
        key = None
        if self.verdicts is not None:
            key = self._verdict_key(node, scope, assume_python, new_from, runtime)
            got = self.verdicts.get(key) if key is not None else None
            if got is not None and got != _NO_FACTS:
                self.used[key] = got
                return _split_answer(got, complete)
        missing, has_facts = self._bind_in(node, scope, assume_python)
        refused = None
        if new is None:
            new = {n.key for n in scope[new_from:]}
        if has_facts and node.key in new:
            refused = self.refusals(node, scope, new, runtime)
        if key is not None:
            # the facts are for the file read, which may have changed since
            # its identity was first taken: key the answer on what was read
            if self._idents.pop(node.key, None) != self._identity(node):
                self._scope_idents = None  # the scope's identities name it too
            key = self._verdict_key(node, scope, assume_python, new_from, runtime)
            if key is not None:
                self.used[key] = _pack_answer(missing, refused) if has_facts else _NO_FACTS
        return missing, complete and has_facts, refused

    def _bind_in(self, node: _Node, scope: Sequence[_Node], assume_python: bool) -> Tuple[List[str], bool]:
        f = self.facts(node)
        if f is None:
            return [], False
        own = self.closure(node)
        own_keys = frozenset(n.key for n in own)
        todo = self.needs(node, f, own, own_keys, assume_python)
        if todo:
            todo = self._subtract(todo, [n for n in scope if n.key not in own_keys])
        if todo and self.musl is not None and self.musl.lfs64:
            lfs = todo & LFS64_NAMES  # musl 1.2.4+ get_lfs64: NAME64 binds to musl's NAME
            if lfs:
                todo = todo.difference([n for n in lfs if lfs64_base(n) in self.musl.exports])
        return sorted(todo), True

    def refusals(self, node: _Node, scope: Sequence[_Node], new: Set[str],
                 runtime: bool) -> Optional[Tuple[str, str, Tuple[str, ...]]]:
        """A relocation musl refuses in ``node`` other than a missing name:
        (kind, reason, names) or None. ``new``: the keys of the objects this
        load maps (not there before it); ``runtime``: the load is a
        ``dlopen`` (a module, a library opened by a program), not a
        program's start."""
        f = self.facts(node)
        if f is None:
            return None
        bad = f.bad_relocs
        if bad:
            return RELOCATION, f"unsupported relocation type {min(bad)}", tuple(str(t) for t in sorted(bad))
        if f.relr:
            cap = self.musl.relr if self.musl is not None else None
            if cap is None or cap.applies is None:
                name = self.musl.version_name if self.musl is not None else "the target's musl"
                why = cap.basis if cap is not None else "no musl at hand"
                return UNDECIDED, (f"uses DT_RELR relocations, and whether {name} applies them cannot be "
                                   f"told ({why})"), ("DT_RELR",)
            if not cap.applies:
                return RELOCATION, (f"uses DT_RELR relocations, which {self.musl.version_name} does not apply "
                                    f"({cap.basis})"), ("DT_RELR",)
        tpoff = f.tpoff
        if runtime and tpoff:
            # musl's do_relocs, REL_TPOFF: "initial-exec TLS resolves to
            # dynamic definition" when the definition is in an object this
            # dlopen maps (its TLS is dynamic); local TLS is the object's own.
            for name in sorted(tpoff):
                if name == "":
                    where: Optional[_Node] = node
                else:
                    where = next((n for n in scope if n.kind == "file" and name in self.defined_in(n)), None)
                if where is not None and where.key in new:
                    return TLS, (f"{name or '(local)'}: initial-exec TLS resolves to dynamic definition in "
                                 f"{where.key}"), (name,)
        return None


UNDECIDED = "undecided"
"""The kind of a :meth:`_Binder.refusals` answer that is no refusal: what the
load needs of the target's loader cannot be told (not a fault kind)."""

_REFUSED = "\0"
"""Marks the refusal in a cached answer: no symbol name holds a NUL."""


def _pack_answer(missing: List[str], refused: Optional[Tuple[str, str, Tuple[str, ...]]]) -> tuple:
    """A :meth:`_Binder.bind_in` answer as a tuple of strings (the cache's form)."""
    if refused is None:
        return tuple(missing)
    kind, reason, names = refused
    return tuple(missing) + (_REFUSED + "\0".join((kind, reason) + tuple(names)),)


def _split_answer(got: tuple, complete: bool):
    """The inverse of :func:`_pack_answer`: (missing, complete, refused)."""
    if got and got[-1].startswith(_REFUSED):
        kind, reason, *names = got[-1][1:].split("\0")
        return list(got[:-1]), complete, (kind, reason, tuple(names))
    return list(got), complete, None


class _Load:
    """One load judged: the unit, its root node, the scope it binds in, and
    what was found: its fault (or None), the files whose symbols could not
    be checked, and each object's missing names."""

    __slots__ = ("path", "root", "global_scope", "assume_python", "runtime", "fault", "unchecked", "missing",
                 "undecided")

    def __init__(self, path: str, root: _Node, global_scope: List[_Node], assume_python: bool, runtime: bool):
        self.path = path
        self.root = root
        self.global_scope = global_scope
        self.assume_python = assume_python
        self.runtime = runtime
        self.fault: Optional[Fault] = None
        self.unchecked: Dict[str, List[str]] = {}
        self.missing: Dict[str, List[str]] = {}
        self.undecided: Dict[str, str] = {}
        """Object (as shown) -> what cannot be told about the loader that its load needs."""


def _judge(b: _Binder, load: _Load, glibc_files: Set[str], show: Callable[[str], str],
           extra: Sequence[_Node] = ()) -> None:
    """Bind every object the load maps, in the scope musl gives it (the
    global scope, ``extra`` preloads, then the root's own closure), and set
    the load's fault: the first object, in musl's order, whose library is
    missing, then the first whose relocation musl refuses."""
    local = b.closure(load.root)
    parent: Dict[str, Optional[_Node]] = {load.root.key: None}
    for n in local:
        for d in n.deps:
            parent.setdefault(d.key, n)

    def chain(n: _Node) -> Tuple[str, ...]:
        out = []
        cur: Optional[_Node] = n
        while cur is not None:
            out.append(show(cur.key))
            cur = parent.get(cur.key)
        out[-1] = load.path
        return tuple(reversed(out))

    scope: List[_Node] = []
    seen: Set[str] = set()
    for group in (list(load.global_scope) + list(extra), local):
        new_from = len(scope)  # ends where this load's own objects begin: what it maps anew
        for n in group:
            if n.key not in seen:
                seen.add(n.key)
                scope.append(n)
    new = {n.key for n in scope[new_from:]}
    # musl maps the whole closure before relocating anything: a library it
    # cannot find fails the load first (the names it would then miss are
    # still recorded: a program's start, like --list, goes on relocating)
    for n in local:
        if n.kind == "file" and n.missing_libs:
            load.fault = Fault(MISSING_LIBRARY, "needs " + ", ".join(n.missing_libs) + ", which musl cannot find",
                               chain(n), tuple(n.missing_libs))
            break
    unknown = sorted({d.soname for d in scope if d.kind == "unknown"})
    for n in local:
        if n.kind != "file":
            continue
        names, complete, refused = b.bind_in(n, scope, load.assume_python, new_from, load.runtime, new)
        musl = b.musl
        if names and musl is not None and musl.uncertain and set(names) <= musl.uncertain:
            # only a newer musl than the shipped list could define them: not "missing"
            load.undecided.setdefault(show(n.key), f"needs {_first_names(names)}, which {musl.uncertain_why}")
            names = []
        if names and (complete or n.key in glibc_files):
            load.missing[n.key] = names
            if load.fault is None:
                load.fault = Fault(MISSING_SYMBOL, _reason(names), chain(n), tuple(names))
        elif names:
            load.unchecked[n.key] = unknown
        elif unknown and n.key in glibc_files:
            # a glibc-linked file whose scope is not all at hand cannot be proven to load
            load.unchecked[n.key] = unknown
        if refused is not None and refused[0] == UNDECIDED:
            # what the target's loader does cannot be told: not a fault
            load.undecided.setdefault(show(n.key), refused[1])
        elif load.fault is None and refused is not None:
            kind, reason, what = refused
            load.fault = Fault(kind, reason, chain(n), what)


def _reason(names: Sequence[str]) -> str:
    return "symbol not found: " + _first_names(names)


def _first_names(names: Sequence[str]) -> str:
    """The first three of ``names`` in order, and how many more."""
    shown = sorted(names)
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    return ", ".join(shown[:3]) + more


def bind(resolver, res, symbols: Callable[[str], object], musl: Optional[MuslModel],
         real_path: Optional[Callable[[str], Optional[str]]] = None,
         interpreters: Optional[Mapping[str, str]] = None,
         hint_libraries: Optional[Callable[[], Iterable[Tuple[str, Optional[str]]]]] = None,
         gcompat=None, present: Optional[Mapping[str, str]] = None,
         verdicts: Optional[Mapping[bytes, object]] = None,
         symbols_key: Optional[Callable[[str], Optional[tuple]]] = None) -> Binding:
    """Judge the load of every unit of ``res`` (``res.units``: the files
    loaded on their own, see :mod:`rundeps.units`) as musl would.

    ``symbols(real_path)``: the :class:`~rundeps.elf.facts.SymbolFacts` of an
    in-root file (None when unreadable); ``musl``: what the reserved names
    bind to; ``real_path``: the in-root real path of a load path (default:
    the resolver's filesystem ``lookup``); ``interpreters``: file path ->
    interpreter path for files loaded into a Python process, overriding the
    ``lib/pythonX.Y`` rule (wheels); ``hint_libraries()``: (in-root library
    path, package name or None) pairs whose exports may explain a missing
    symbol; ``gcompat``: a :class:`rundeps.gcompat.Gcompat` when the root
    has it; ``present``: soname -> package of libraries taken as present but
    not at hand (the base image's, for a wheel checked without any package
    source).

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
    b = _Binder(resolver, symbols, musl, real_path or resolver.fs.lookup)
    b.present = dict(present or {})
    if symbols_key is not None:
        b.symbols_key = symbols_key
        b.verdicts = {} if verdicts is None else verdicts
    run = _Run(b, res, interpreters, gcompat)
    loads = [load for load in map(run.unit, sorted(res.units)) if load is not None]
    out = run.out
    run.collect(loads)
    if gcompat is not None:
        _gcompat_verdicts(b, out, loads, run.glibc_files, gcompat, run.show)
    if out.missing_symbols and hint_libraries is not None:
        from .hints import hints_for  # only when something is missing

        out.hints = hints_for(out.missing_symbols, b, hint_libraries)
    out.verdicts = b.used
    return out


class _Run:
    """One binding of a resolution: each unit's load judged in turn
    (:meth:`unit`), then the verdicts gathered (:meth:`collect`)."""

    def __init__(self, b: _Binder, res, interpreters: Optional[Mapping[str, str]], gcompat):
        self.b = b
        self.res = res
        self.lookup = b.real_path
        self.interpreters = interpreters
        self.gcompat = gcompat
        self.out = Binding(b.musl)
        self.report_paths: Dict[str, str] = {}  # real path -> the in-root path shown
        for p in res.scanned:
            self.report_paths.setdefault(self.lookup(p) or p, p)
        self.glibc_files: Set[str] = set()
        self.not_musl: Set[str] = set()  # glibc programs (and glibc's own libraries) a glibc beside musl runs
        self.runs_under_glibc = res.runs_under_glibc
        self._interp: Dict[str, Optional[_Node]] = {}

    def show(self, key: str) -> str:
        return self.report_paths.get(key, key)

    def interpreter_path(self, path: str) -> Optional[str]:
        """The interpreter whose process loads ``path``: the one named for it,
        else that of its ``lib/pythonX.Y/``, else the root's ``python3``."""
        lookup = self.lookup
        if self.interpreters is not None and path in self.interpreters:
            ipath = self.interpreters[path]
            return ipath if ipath is not None and lookup(ipath) is not None else None
        pp = python_prefix(path)
        if pp is None:  # a library Python modules load, outside a Python tree
            main, _info = self.b.resolver.main()
            return main if main and posixpath.basename(main).startswith("python") else None
        prefix, version = pp
        for cand in (f"{prefix}/bin/python{version}", f"{prefix}/bin/python3", f"{prefix}/bin/python"):
            if lookup(cand) is not None:
                return cand
        return None

    def interpreter_for(self, path: str) -> Optional[_Node]:
        ipath = self.interpreter_path(path)
        if ipath is None:
            return None
        if ipath not in self._interp:
            real = self.lookup(ipath)
            info = self.b.resolver.fs.elf(real) if real else None
            self._interp[ipath] = self.b.node_for_file(ipath, info) if info is not None else None
        return self._interp[ipath]

    def unit(self, p: str) -> Optional[_Load]:
        """Judge the load of one unit (None when it is not musl's to judge,
        or fails before any load: another arch, a missing glibc loader)."""
        from ..resolve import is_glibc_linked

        info = self.res.objects[p]
        lookup, out = self.lookup, self.out
        if is_glibc_linked(info):
            self.glibc_files.add(lookup(p) or p)
        arch = self.res.arch
        if arch and info.arch and not same_arch(arch, info.arch):
            out.faults[p] = Fault(WRONG_ARCH, f"built for {info.arch}, not {arch}", (p,), (info.arch,))
            return None
        interp = info.interp
        if p in self.runs_under_glibc and not interp:
            self.not_musl.add(p)  # one of glibc's own libraries: loaded by glibc programs only
            return None
        gcompat = self.gcompat
        if interp and is_glibc_interp(interp):
            real_interp = lookup(interp)
            if real_interp is None:
                out.faults[p] = Fault(GLIBC_LOADER, f"its loader {interp} (glibc's) is not in the root "
                                      "(gcompat provides one)", (p,), (interp,))
                return None
            if gcompat is None or not gcompat.owns(real_interp, interp):
                self.not_musl.add(p)
                return None  # a real glibc beside musl runs it: not musl's to decide
        root = self.b.load(p, info)
        global_scope: List[_Node] = []
        assume_python = False
        python = (self.interpreters is not None and p in self.interpreters) or p in self.res.python_process
        if interp is None and python:
            inode = self.interpreter_for(p)
            if inode is not None:
                global_scope = self.b.closure(inode)
                out.interpreter[p] = inode.key
            else:
                assume_python = True
                out.assumed_interpreter.append(p)
        elif gcompat is not None and interp and gcompat.owns(lookup(interp), interp):
            # gcompat's loader runs musl's with --preload libgcompat.so.0
            global_scope = [root] + gcompat.preload_nodes(self.b)
            out.gcompat[p] = "runs through gcompat's loader (libgcompat.so.0 preloaded)"
        load = _Load(p, root, global_scope, assume_python, runtime=interp is None)
        _judge(self.b, load, self.glibc_files, self.show)
        return load

    def collect(self, loads: List[_Load]) -> None:
        """The verdicts of every load: faults, missing names, unchecked
        files, glibc-linked files that load."""
        out, show, lookup, objects = self.out, self.show, self.lookup, self.res.objects
        missing_syms: Dict[str, Set[str]] = {}
        unchecked: Dict[str, Set[str]] = {}
        for load in loads:
            for key, names in load.missing.items():
                missing_syms.setdefault(show(key), set()).update(names)
            if load.fault is not None:
                out.faults[load.path] = load.fault
                continue
            for key, libs in load.unchecked.items():
                unchecked.setdefault(show(key), set()).update(libs)
                unchecked.setdefault(load.path, set()).update(libs)
            if load.undecided:
                where, why = next(iter(load.undecided.items()))
                out.undecided[load.path] = why if where == load.path else f"loads {where}: {why}"
        out.faults = dict(sorted(out.faults.items()))
        out.missing_symbols = {k: sorted(v) for k, v in sorted(missing_syms.items())}
        out.unchecked = {k: sorted(v) for k, v in sorted(unchecked.items())}
        out.glibc_loads = sorted(
            p for p in self.res.units if (lookup(p) or p) in self.glibc_files and p not in out.faults
            and p not in self.not_musl and p not in self.runs_under_glibc
            and (objects[p].interp is None or lookup(objects[p].interp) is not None))


def _gcompat_verdicts(b: _Binder, out: Binding, loads: List[_Load], glibc_files: Set[str], gcompat,
                      show: Callable[[str], str]) -> None:
    """For every glibc-linked file: would it load with gcompat? A program
    started through gcompat's loader was bound with libgcompat preloaded; a
    module or library is bound again as if ``LD_PRELOAD=libgcompat.so.0``."""
    pre = gcompat.preload_nodes(b)
    for load in loads:
        p = load.path
        if load.root.key not in glibc_files:
            continue
        if p in out.gcompat:  # through gcompat's loader: the verdict is the real one
            fault = out.faults.get(p)
            out.gcompat[p] = ("loads: gcompat's loader preloads libgcompat.so.0" if fault is None
                              else f"will not load even with gcompat: {fault.reason}")
            continue
        if p not in out.faults:
            out.gcompat[p] = "loads (libgcompat.so.0 not needed)"
            continue
        again = _Load(p, load.root, load.global_scope, load.assume_python, load.runtime)
        _judge(b, again, glibc_files, show, extra=pre)
        if again.fault is None:
            out.gcompat[p] = (f"loads only with LD_PRELOAD={gcompat.library}: gcompat's symbols do not "
                              "reach a library a musl program opens")
        else:
            where = "" if not again.fault.inherited else f"{again.fault.failing}: "
            out.gcompat[p] = f"will not load even with LD_PRELOAD={gcompat.library}: {where}{again.fault.own}"



"""The load graph the binder walks: one node per object the loader would
map (:class:`Node`) and the :class:`Binder`, which builds each load's nodes
in musl's order, finds the scope each object binds in, and answers what it
leaves undefined (with the verdicts of an earlier run reused where nothing
they depend on changed)."""

from __future__ import annotations

import marshal
from collections import deque
from typing import Any, Literal, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

from ..verdict import RELOCATION, TLS

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

#: A cached :meth:`Binder.bind_in` answer for an object whose symbol facts
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


NodeKind = Literal["file", "musl", "unknown"]
"""A file at hand, musl itself, or a library whose symbols are not at hand
(known only by its package or its name)."""


class Node:
    """One object the loader would map: a file at hand, musl, or a library
    whose symbols are not at hand."""

    __slots__ = ("key", "kind", "path", "info", "facts", "package", "soname", "deps", "missing_libs")

    def __init__(self, key: str, kind: NodeKind, path: Optional[str] = None, info=None, package=None,
                 soname: Optional[str] = None):
        self.key = key
        self.kind: NodeKind = kind
        self.path: Any = path  # the load path (in-root) for files, else None
        self.info = info
        self.facts: Any = None
        self.package = package
        self.soname: Any = soname
        self.deps: List["Node"] = []
        self.missing_libs: List[str] = []


# -- the binder ------------------------------------------------------------------


class Binder:
    def __init__(self, resolver, symbols: Callable[[str], object], musl: Optional[MuslModel],
                 real_path: Callable[[str], Optional[str]]):
        self.resolver = resolver
        self.symbols = symbols
        self.musl = musl
        self.real_path = real_path
        self.nodes: Dict[str, Node] = {}
        self.orders: Mapping[str, list] = {}  # scanned path -> its load, as the search found it
        # Without an export list musl is a library not at hand: what only it
        # could define is "not checked", never "missing".
        self.musl_node = Node(MUSL, "musl", soname="musl") if musl is not None else \
            Node(MUSL, "unknown", soname="musl (no export list)")
        self._closure: Dict[str, List[Node]] = {}
        self._built: Set[str] = set()
        self.present: Dict[str, str] = {}
        self.answers: dict = {}
        self._needs: Dict[tuple, FrozenSet[str]] = {}
        self._interpreter_names: Set[str] = set()  # Py* names met so far
        self.verdicts: Optional[Mapping[bytes, Any]] = None  # cached answers of bind_in
        self.used: Dict[bytes, object] = {}  # the answers this run gave, to cache
        self.symbols_key: Callable[[str], Optional[tuple]] = lambda path: None
        self._idents: Dict[str, bytes] = {}
        self._scope_idents: Optional[tuple] = None  # (scope, assume_python, its identities)

    # graph ---------------------------------------------------------------

    def node_for_file(self, load_path: str, info) -> Node:
        """The shared node of a file whose needs do not depend on who loads it
        (a library a package owns, the interpreter, gcompat)."""
        real = self.real_path(load_path) or load_path
        node = self.nodes.get(real)
        if node is None:
            node = self.nodes[real] = Node(real, "file", real, info)
        return node

    def given_node(self, key: str, path: str, facts) -> Node:
        """A shared node for a library known by its facts alone (gcompat's
        ``libgcompat.so.0`` from ``--gcompat FILE``): nothing to resolve."""
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = Node(key, "file", path)
            node.facts = facts
            self._built.add(key)
        return node

    def build(self, node: Node) -> None:
        """Resolve a shared node's needs once, in its own load (musl's order:
        LD_LIBRARY_PATH, the needed_by chain's run paths, the system path,
        short-name reuse)."""
        if node.kind != "file" or node.key in self._built:
            return
        self._built.add(node.key)
        order = self.orders.get(node.path)
        if order is None:
            order = self.resolver.load_order(node.path, node.info, self.answers)
        self._attach_load(node, order, self.nodes)

    def load(self, path: str, info) -> Node:
        """The root of the load of ``path`` as its own: the libraries the tree
        carries are nodes of this load alone, each found in this load's
        context (the run paths of everything up the chain that loaded it,
        the names already loaded), so the same library can be found in one
        load and missing in another. Libraries packages own are shared."""
        order = self.orders.get(path)
        if order is None:
            order = self.resolver.load_order(path, info, self.answers)
        real = self.real_path(path) or path
        root = Node(real, "file", real, info)
        self._attach_load(root, order, {real: root})
        return root

    def _attach_load(self, root: Node, order, registry: Dict[str, Node]) -> None:
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

    def _child(self, edge, registry: Dict[str, Node]) -> Optional[Node]:
        """The node an edge leads to (None: a library musl cannot find)."""
        if edge.kind == "musl":
            return self.musl_node
        soname = edge.soname
        if edge.library is not None:
            real = self.real_path(edge.library)
            lib_info = self.resolver.fs.elf(real) if real else None
            if real is not None and lib_info is not None:
                if edge.kind == "in_tree":
                    child = registry.get(real)
                    if child is None:
                        child = registry[real] = Node(real, "file", real, lib_info)
                    return child
                child = self.node_for_file(edge.library, lib_info)
                self.build(child)
                return child
        if edge.package is not None:
            key = f"<{edge.package.name}:{soname}>"
            return self.nodes.get(key) or self.nodes.setdefault(
                key, Node(key, "unknown", package=edge.package, soname=soname))
        if soname in self.present:
            key = f"<{self.present[soname]}:{soname}>"
            return self.nodes.setdefault(key, Node(key, "unknown", soname=soname))
        return None

    def closure(self, root: Node) -> List[Node]:
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

    def facts(self, node: Node):
        if node.kind != "file":
            return None
        if node.facts is None:
            node.facts = self.symbols(node.key) or False
        return node.facts or None

    def defined_in(self, node: Node) -> FrozenSet[str]:
        if node.kind == "musl":
            return self.musl.exports if self.musl is not None else frozenset()
        f = self.facts(node)
        return f.defined if f is not None else frozenset()

    # binding ------------------------------------------------------------------

    def needs(self, node: Node, f, own: Sequence[Node], own_keys: FrozenSet[str],
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

    def _subtract(self, todo: FrozenSet[str], scope: Sequence[Node]) -> FrozenSet[str]:
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

    def _identity(self, node: Node) -> Optional[bytes]:
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

    def _verdict_key(self, node: Node, scope: Sequence[Node], assume_python: bool, new_from: int,
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
            parts: List[bytes] = [b"P" if assume_python else b"-", b"R%d" % new_from if runtime else b"S",
                     self._identity(self.musl_node) or b""]
            known = True
            for n in scope:
                if n.kind == "file" or n.kind == "musl":
                    ident = self._identity(n)
                    if ident is None:
                        known = False  # a file's identity is unknown: no key
                        break
                    parts.append(ident)
            memo = self._scope_idents = (scope, shape, b"\0".join(parts) if known else None)
        if memo[2] is None:
            return None
        return memo[2] + b"\0" + own  # exact: no digest, so no two keys can collide

    def bind_in(self, node: Node, scope: Sequence[Node], assume_python: bool, new_from: int = 0,
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
            if key is not None and got is not None and got != _NO_FACTS:
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

    def _bind_in(self, node: Node, scope: Sequence[Node], assume_python: bool) -> Tuple[List[str], bool]:
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

    def refusals(self, node: Node, scope: Sequence[Node], new: Set[str],
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
            name = self.musl.version_name if self.musl is not None else "the target's musl"
            if cap is None or cap.applies is None:
                why = cap.basis if cap is not None else "no musl at hand"
                return UNDECIDED, (f"uses DT_RELR relocations, and whether {name} applies them cannot be "
                                   f"told ({why})"), ("DT_RELR",)
            if not cap.applies:
                return RELOCATION, (f"uses DT_RELR relocations, which {name} does not apply "
                                    f"({cap.basis})"), ("DT_RELR",)
        tpoff = f.tpoff
        if runtime and tpoff:
            # musl's do_relocs, REL_TPOFF: "initial-exec TLS resolves to
            # dynamic definition" when the definition is in an object this
            # dlopen maps (its TLS is dynamic); local TLS is the object's own.
            for name in sorted(tpoff):
                if name == "":
                    where: Optional[Node] = node
                else:
                    where = next((n for n in scope if n.kind == "file" and name in self.defined_in(n)), None)
                if where is not None and where.key in new:
                    return TLS, (f"{name or '(local)'}: initial-exec TLS resolves to dynamic definition in "
                                 f"{where.key}"), (name,)
        return None


UNDECIDED = "undecided"
"""The kind of a :meth:`Binder.refusals` answer that is no refusal: what the
load needs of the target's loader cannot be told (not a fault kind)."""

_REFUSED = "\0"
"""Marks the refusal in a cached answer: no symbol name holds a NUL."""


def _pack_answer(missing: List[str], refused: Optional[Tuple[str, str, Tuple[str, ...]]]) -> tuple:
    """A :meth:`Binder.bind_in` answer as a tuple of strings (the cache's form)."""
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


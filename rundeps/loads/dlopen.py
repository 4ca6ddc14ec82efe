"""Find libraries Python code loads at run time (``ctypes``, ``cffi``).

Such libraries never show in an ELF ``DT_NEEDED`` list, so a package built
around ``ctypes.CDLL("libmagic.so.1")`` or ``ffi.dlopen("cairo")`` looks
dependency-free to a linker-based scan.  This module reads ``.py`` source
with :mod:`ast` (never executing it, never with regexes over code) and
reports the *literal* library names such code passes to a loader:

* a call to any function or method whose name is one of
  :data:`LOADER_NAMES` (``CDLL``, ``PyDLL``, ``LoadLibrary``, ``dlopen``,
  ``find_library``), however it was imported or aliased: ``ctypes.CDLL``,
  ``C.cdll.LoadLibrary`` after ``import ctypes as C``, ``load(...)`` after
  ``from ctypes import CDLL as load``, ``ffi.dlopen``, ``FFI().dlopen``,
  ``ctypes.util.find_library`` and a package's own ``dlopen`` helper such
  as cairocffi's ``dlopen(ffi, ('cairo-2', 'cairo'), ('libcairo.so.2',))``;
  string literals are taken from every positional argument, from the
  ``name`` keyword, inside tuple/list/set literals, and from both sides of
  ``or`` / conditional expressions (``find_library('magic') or 'libmagic.so.1'``);
  a bare name argument is followed to the literal it must hold: the variable
  of an enclosing ``for`` loop or comprehension over a literal tuple/list
  (``for lib in ('libmagic.so.1', 'magic1'): CDLL(lib)``), or a module-level
  name assigned a literal exactly once (``_LIB = "sodium"``);
* ``ctypes.cdll["libfoo.so.1"]`` subscripts;
* in a module that imports ``ctypes``/``cffi`` or calls a loader: any string
  literal that is itself a Linux shared-library file name (``lib*.so*``),
  such as python-magic's ``yield "libmagic.so.1"`` (``call`` is
  :data:`LITERAL_CALL` for those; they are weaker evidence).

Windows and macOS names (``*.dll``, ``*.dylib``, ``WinDLL``, ``windll``)
are ignored.  Names computed at run time (variables, f-strings,
concatenation) cannot be known; they are left out, or reported with an
empty ``name`` and ``dynamic=True`` when ``include_dynamic`` is asked for.
A file that does not decode or parse, or is too large, is skipped and
reported through ``on_problem`` (never an exception).

Findings from one call are alternatives (a loader tries them in turn);
:func:`alternatives` groups them.  :func:`candidate_sonames` turns a
finding's name into the sonames (``so:`` provides) that could satisfy it.
"""

from __future__ import annotations

import ast
import os
import posixpath
import re
import stat
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ..inputs.pysource import decode_source, read_source

__all__ = [
    "DlopenFinding",
    "LOADER_NAMES",
    "LITERAL_CALL",
    "LIBC_NAMES",
    "MAX_SOURCE_SIZE",
    "find_dlopen",
    "scan_sources",
    "iter_py_files",
    "alternatives",
    "is_libc_name",
    "soname_matcher",
    "candidate_sonames",
    "scan_tree_sources",
]

MAX_SOURCE_SIZE = 5 * 1000 * 1000
"""Sources larger than this (bytes) are skipped: parsing cost is bounded by it."""

LOADER_NAMES = frozenset({"CDLL", "PyDLL", "LoadLibrary", "dlopen", "find_library"})
"""A call to a function or method with one of these names loads (or locates) a library."""

_LOADER_OBJECTS = frozenset({"ctypes.cdll", "ctypes.pydll"})
"""``ctypes.cdll["libfoo.so"]`` loads ``libfoo.so``."""

LITERAL_CALL = "<literal>"
"""``call`` of a finding that is a bare ``lib*.so*`` string literal, not a loader argument."""

_WATCHED_MODULES = ("ctypes", "_ctypes", "cffi", "_cffi_backend")

_SONAME_LITERAL_RE = re.compile(r"^(?:/?[\w.+-]+/)*lib[\w.+-]*\.so(?:\.\d+)*$")
_FOREIGN_RE = re.compile(r"\.(?:dll|dylib|pyd|exe)$|\.framework/|\\", re.IGNORECASE)

LIBC_NAMES = frozenset(
    {"c", "m", "dl", "pthread", "rt", "util", "crypt", "resolv", "xnet", "trace"}
)
"""``find_library`` names (without ``lib``) that musl serves from its libc itself."""


@dataclass(frozen=True)
class DlopenFinding:
    """One library name a source file loads at run time.

    ``name`` is the literal as written (``"libmagic.so.1"``, ``"magic"``,
    ``"/usr/lib/libfoo.so"``), or ``""`` for a dynamic name (``dynamic``);
    ``line`` is the line of the loader call (of the literal, for
    :data:`LITERAL_CALL`); ``call`` is the callee as written with import
    aliases undone (``"ctypes.CDLL"``, ``"ctypes.util.find_library"``,
    ``"ffi.dlopen"``, ``"dlopen"``, ``"ctypes.cdll[]"``).
    """

    name: str
    path: str
    line: int
    call: str
    dynamic: bool = False
    group: str = field(default="", compare=False)
    """Findings with the same (non-empty) ``group`` are alternatives: one of
    them loading is enough (see :func:`find_dlopen`). ``path:line`` of the
    group's first finding."""

    def __iter__(self):
        """``(field, value)`` pairs, so that ``dict(finding)`` gives a JSON-ready dict."""
        return iter(
            (("name", self.name), ("path", self.path), ("line", self.line), ("call", self.call), ("dynamic", self.dynamic))
        )


ProblemCallback = Callable[[str, str], None]

# -- reading ------------------------------------------------------------------


def _report(on_problem: Optional[ProblemCallback], path: str, reason: str) -> None:
    if on_problem is not None:
        on_problem(path, reason)


# -- the scan -----------------------------------------------------------------


def _dotted(node: ast.AST) -> Optional[List[str]]:
    """``a.b.c`` as ``['a', 'b', 'c']``; a call in the chain (``FFI().dlopen``)
    is kept as ``'FFI()'``; anything else gives ``None``."""
    parts: List[str] = []
    for _ in range(64):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        elif isinstance(node, ast.Call):
            inner = _dotted(node.func) if isinstance(node.func, (ast.Name, ast.Attribute)) else None
            if inner is None:
                return None
            inner[-1] += "()"
            return inner + parts[::-1]
        else:
            return None
    return None


class _Aliases:
    """Local names bound by imports, mapped to what they were imported as."""

    def __init__(self, tree: ast.AST):
        self.names: Dict[str, str] = {}
        self.watched = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._watch(alias.name)
                    if alias.asname:
                        self.names[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.names[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                self._watch(node.module)
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    self.names[alias.asname or alias.name] = node.module + "." + alias.name

    def _watch(self, module: str) -> None:
        if module.split(".")[0] in _WATCHED_MODULES:
            self.watched = True

    def resolve(self, parts: List[str]) -> str:
        first = parts[0]
        called = first.endswith("()")
        head = self.names.get(first[:-2] if called else first)
        if head is not None:
            parts = (head + ("()" if called else "")).split(".") + parts[1:]
        return ".".join(parts)


def _strings(node: ast.AST, depth: int = 0) -> Iterator[Tuple[Optional[str], ast.AST]]:
    """String literals of an argument: ``(text, node)``; ``(None, node)`` for a
    part whose value is computed at run time (calls inside are not followed:
    they are scanned as calls of their own)."""
    if depth > 8:
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            yield node.value, node
        elif isinstance(node.value, bytes):
            try:
                yield node.value.decode("utf-8"), node
            except UnicodeDecodeError:
                pass
        # None (dlopen(None) is the program itself), numbers: nothing to load
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for elt in node.elts:
            yield from _strings(elt, depth + 1)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _strings(value, depth + 1)
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body, depth + 1)
        yield from _strings(node.orelse, depth + 1)
    elif isinstance(node, ast.Starred):
        yield from _strings(node.value, depth + 1)
    elif isinstance(node, ast.Call):
        parts = _dotted(node.func)
        if not (parts and parts[-1].rstrip("()") in LOADER_NAMES):
            yield None, node
    else:
        yield None, node


def _literal_values(node: ast.AST) -> Optional[List[Tuple[str, ast.AST]]]:
    """The strings of a literal (a string, or a tuple/list/set of them); ``None``
    if any part is computed."""
    out = []
    for text, part in _strings(node):
        if text is None:
            return None
        out.append((text, part))
    return out


class _Names:
    """Literal values a bare name argument can be known to hold:

    * the loop variable of an enclosing ``for`` loop or comprehension over a
      literal (``for lib in ("libfoo.so.1", "foo"): CDLL(lib)``);
    * a name bound exactly once in the whole module, by a top-level
      assignment of a literal (``_LIB = "libfoo.so.1"`` ... ``CDLL(_LIB)``),
      and never a parameter name.
    """

    def __init__(self, tree: ast.Module):
        self.parents: Dict[int, ast.AST] = {}
        stores: Dict[str, int] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                stores[node.id] = stores.get(node.id, 0) + 1
            elif isinstance(node, ast.arg):
                stores[node.arg] = stores.get(node.arg, 0) + 2
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                for n in node.names:
                    stores[n] = stores.get(n, 0) + 2
        self.constants: Dict[str, ast.AST] = {}
        for stmt in tree.body:
            value = None
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            if value is not None and isinstance(target, ast.Name) and stores.get(target.id) == 1:
                self.constants[target.id] = value

    def _constant(self, name: str) -> Optional[List[Tuple[str, ast.AST]]]:
        value = self.constants.get(name)
        return _literal_values(value) if value is not None else None

    def _iterable(self, node: ast.AST) -> Optional[List[Tuple[str, ast.AST]]]:
        if isinstance(node, ast.Name):
            return self._constant(node.id)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return _literal_values(node)
        return None

    def values(self, name: ast.Name, call: ast.AST) -> Optional[List[Tuple[str, ast.AST]]]:
        node: ast.AST = call
        for _ in range(200):
            parent = self.parents.get(id(node))
            if parent is None:
                break
            if isinstance(parent, (ast.For, ast.AsyncFor)) and node is not parent.iter:
                if isinstance(parent.target, ast.Name) and parent.target.id == name.id:
                    return self._iterable(parent.iter)
            elif isinstance(parent, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                for gen in parent.generators:
                    if isinstance(gen.target, ast.Name) and gen.target.id == name.id:
                        return self._iterable(gen.iter)
            elif isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                args = parent.args
                every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
                if any(a.arg == name.id for a in every):
                    return None  # a parameter: its value comes from the caller
            node = parent
        return self._constant(name.id)


def _usable(name: str) -> bool:
    return bool(name.strip()) and "\0" not in name and not _FOREIGN_RE.search(name)


def _loader_call(aliases: _Aliases, node: ast.Call) -> Optional[str]:
    parts = _dotted(node.func)
    if not parts:
        return None
    resolved = aliases.resolve(parts)
    if resolved.rsplit(".", 1)[-1] in LOADER_NAMES:
        return resolved
    return None


def _loader_subscript(aliases: _Aliases, node: ast.Subscript) -> Optional[str]:
    parts = _dotted(node.value)
    if not parts:
        return None
    resolved = aliases.resolve(parts)
    if resolved in _LOADER_OBJECTS:
        return resolved + "[]"
    return None


def _subscript_index(node: ast.Subscript) -> ast.AST:
    index = node.slice
    if index.__class__.__name__ == "Index":  # Python 3.8 compatibility shape
        index = index.value  # type: ignore[attr-defined]
    return index


_LOADER_WORDS = ("CDLL", "PyDLL", "LoadLibrary", "dlopen", "find_library", "cdll")
_LOADER_WORDS_B = tuple(w.encode() for w in _LOADER_WORDS)
_LIB_SO = r"lib[\w.+-]*\.so"  # starts with a literal: the regex engine skips ahead fast
_LIB_SO_RE = re.compile(_LIB_SO)
_LIB_SO_RE_B = re.compile(_LIB_SO.encode())


def _may_load(source: Union[str, bytes]) -> bool:
    """Cheap pre-check before parsing: every form :func:`find_dlopen` finds
    names a loader (an import alias still names it once) or holds a
    ``lib*.so`` literal."""
    if isinstance(source, bytes):
        words, regex = _LOADER_WORDS_B, _LIB_SO_RE_B
    else:
        words, regex = _LOADER_WORDS, _LIB_SO_RE
    return any(w in source for w in words) or regex.search(source) is not None


def find_dlopen(
    source: Union[str, bytes],
    path: str,
    *,
    include_dynamic: bool = False,
    literals: bool = True,
    max_size: int = MAX_SOURCE_SIZE,
    on_problem: Optional[ProblemCallback] = None,
) -> List[DlopenFinding]:
    """The run-time loaded library names in one Python source.

    ``path`` only labels the findings.  ``literals`` adds bare ``lib*.so*``
    string literals of modules that use ``ctypes``/``cffi``.  A source that
    is too large, does not decode or does not parse gives ``[]`` (and one
    ``on_problem(path, reason)`` call).  Findings are in source order,
    without duplicates.
    """
    tree = _parse_source(source, path, max_size, on_problem)
    if tree is None:
        return []
    collector = _Collector(tree, path, include_dynamic)
    try:
        collector.loader_calls()
        if literals and (collector.aliases.watched or collector.any_loader):
            collector.literals()
    except RecursionError:  # pragma: no cover - ast.walk is iterative; belt and braces
        _report(on_problem, path, "skipped: nested too deeply")
        return []
    return collector.findings()


def _parse_source(source: Union[str, bytes], path: str, max_size: int,
                  on_problem: Optional[ProblemCallback]) -> Optional[ast.AST]:
    """The syntax tree of a source that may load a library, or None (too
    large, no loader word, cannot decode or parse: the last three reported)."""
    if len(source) > max_size:
        _report(on_problem, path, "skipped: larger than %d bytes" % max_size)
        return None
    if not _may_load(source):
        return None
    if isinstance(source, bytes):
        try:
            source = decode_source(source)
        except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
            _report(on_problem, path, "skipped: cannot decode: %s" % _one_line(exc))
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning: invalid escapes, "is" with a literal
            return ast.parse(source, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        _report(on_problem, path, "skipped: cannot parse: %s" % _one_line(exc))
        return None


class _Collector:
    """The findings of one parsed source: loader calls and subscripts
    (:meth:`loader_calls`), then the bare ``lib*.so*`` literals no call
    claimed (:meth:`literals`); :meth:`findings` in source order, grouped
    into alternatives."""

    def __init__(self, tree: ast.AST, path: str, include_dynamic: bool):
        self.tree = tree
        self.path = path
        self.include_dynamic = include_dynamic
        self.aliases = _Aliases(tree)
        self.names = _Names(tree)
        self.found: List[Tuple[Tuple[int, int, int], DlopenFinding]] = []
        self.seen: set = set()
        self.claimed: set = set()  # ids of literal nodes already reported as loader arguments
        self.anchors: Dict[int, ast.AST] = {}  # id(finding) -> the call or literal it came from
        self.current: List[ast.AST] = []
        self.any_loader = False

    def add(self, name: str, line: int, call: str, order: Tuple[int, int, int], dynamic: bool = False) -> None:
        key = (name, line, call, dynamic)
        if key in self.seen:
            return
        self.seen.add(key)
        finding = DlopenFinding(name, self.path, line, call, dynamic)
        if self.current:
            self.anchors[id(finding)] = self.current[-1]
        self.found.append((order, finding))

    def take(self, call: str, owner: ast.AST, args: Sequence[ast.AST]) -> None:
        line = getattr(owner, "lineno", 0)
        self.current.append(owner)
        for arg in args:
            for text, node in _strings(arg):
                if text is None and isinstance(node, ast.Name):
                    values = self.names.values(node, owner)
                    if values:
                        for i, (value_text, value_node) in enumerate(values):
                            self.claimed.add(id(value_node))
                            if _usable(value_text):
                                self.add(value_text, line, call, _pos(node) + (i,))
                        continue
                if text is None:
                    if self.include_dynamic:
                        self.add("", line, call, _pos(node), dynamic=True)
                    continue
                self.claimed.add(id(node))
                if _usable(text):
                    self.add(text, line, call, _pos(node))
        self.current.pop()

    def loader_calls(self) -> None:
        aliases = self.aliases
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                call = _loader_call(aliases, node)
                if call is None:
                    continue
                self.any_loader = True
                args: List[ast.AST] = list(node.args)
                args += [kw.value for kw in node.keywords if kw.arg in ("name", "names", "libname")]
                self.take(call, node, args)
            elif isinstance(node, ast.Subscript):
                call = _loader_subscript(aliases, node)
                if call is not None:
                    self.any_loader = True
                    self.take(call, node, [_subscript_index(node)])

    def literals(self) -> None:
        for node in ast.walk(self.tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in self.claimed
                and len(node.value) < 4096
                and _SONAME_LITERAL_RE.match(node.value)
            ):
                self.current.append(node)
                self.add(node.value, getattr(node, "lineno", 0), LITERAL_CALL, _pos(node))
                self.current.pop()

    def findings(self) -> List[DlopenFinding]:
        self.found.sort(key=lambda item: item[0])
        return _grouped([f for _, f in self.found], self.anchors, self.names.parents)


# -- alternatives ---------------------------------------------------------------

_GENERATORS = "<generators>"
"""The construct holding every ``yield`` of a module's generator functions:
a module's generators yield candidate names that one load tries in turn."""


def _is_generator(func: ast.AST) -> bool:
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


def _in(child: ast.AST, nodes) -> bool:
    return any(n is child for n in nodes)


def _branches(anchor: ast.AST, parents: Dict[int, ast.AST]) -> List[Tuple[object, object]]:
    """``(construct, branch)`` pairs around ``anchor``, innermost first: the
    places where code takes one of several ways, and which way leads to it.

    ``if``/``elif``/``else`` branches, a ``try`` body and each of its
    handlers, the operands of ``or``/``and`` and of ``x if c else y``, and
    each ``yield`` of the module's generator functions."""
    out: List[Tuple[object, object]] = []
    yielded: Optional[int] = None
    generator = False
    child, node = anchor, parents.get(id(anchor))
    for _ in range(1000):
        if node is None:
            break
        if isinstance(node, (ast.Yield, ast.YieldFrom)) and yielded is None:
            yielded = id(node)
        elif isinstance(node, ast.If):
            if _in(child, node.body):
                out.append((id(node), 0))
            elif _in(child, node.orelse):
                out.append((id(node), 1))
        elif isinstance(node, ast.Try) or node.__class__.__name__ == "TryStar":
            if _in(child, node.body) or _in(child, node.orelse):
                out.append((id(node), 0))
            else:
                for i, handler in enumerate(node.handlers):
                    if handler is child:
                        out.append((id(node), 1 + i))
        elif isinstance(node, ast.BoolOp):
            for i, value in enumerate(node.values):
                if value is child:
                    out.append((id(node), i))
        elif isinstance(node, ast.IfExp):
            if child is node.body:
                out.append((id(node), 0))
            elif child is node.orelse:
                out.append((id(node), 1))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if yielded is not None and not generator and _is_generator(node):
                generator = True
            yielded = yielded if generator else None
        child, node = node, parents.get(id(node))
    if generator and yielded is not None:
        out.append((_GENERATORS, yielded))
    return out


def _alternative(a: List[Tuple[object, object]], b: List[Tuple[object, object]]) -> bool:
    """True when, at the innermost construct both lie in, they take different ways."""
    ways = dict(b)
    for construct, branch in a:
        if construct in ways:
            return ways[construct] != branch
    return False


def _grouped(findings: List[DlopenFinding], anchors: Dict[int, ast.AST],
             parents: Dict[int, ast.AST]) -> List[DlopenFinding]:
    """Give every finding its ``group``: the findings of one call, and the
    findings that lie in different ways of one construct (:func:`_branches`),
    are alternatives, transitively."""
    if not findings:
        return findings
    parent = list(range(len(findings)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    by_call: Dict[tuple, int] = {}
    ways = []
    for i, f in enumerate(findings):
        if f.call != LITERAL_CALL:
            key = (f.line, f.call, id(anchors.get(id(f))))
            if key in by_call:
                union(by_call[key], i)
            else:
                by_call[key] = i
        anchor = anchors.get(id(f))
        ways.append(_branches(anchor, parents) if anchor is not None else [])
    if len(findings) <= 400:  # pairwise; a source with more loads than this keeps per-call groups
        for i in range(len(findings)):
            if not ways[i]:
                continue
            for j in range(i + 1, len(findings)):
                if ways[j] and _alternative(ways[i], ways[j]):
                    union(i, j)
    out = []
    for i, f in enumerate(findings):
        first = findings[find(i)]
        out.append(DlopenFinding(f.name, f.path, f.line, f.call, f.dynamic, group=f"{first.path}:{first.line}"))
    return out


def _pos(node: ast.AST) -> Tuple[int, int, int]:
    return getattr(node, "lineno", 0), getattr(node, "col_offset", 0), 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text


def iter_py_files(path: str) -> Iterator[str]:
    """``path`` itself if it is a file; else the ``*.py`` files under it, sorted
    (symlinked folders are not followed)."""
    if not os.path.isdir(path):
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                yield os.path.join(dirpath, fn)


def scan_sources(
    paths: Iterable[str],
    *,
    include_dynamic: bool = False,
    literals: bool = True,
    max_size: int = MAX_SOURCE_SIZE,
    on_problem: Optional[ProblemCallback] = None,
) -> List[DlopenFinding]:
    """:func:`find_dlopen` over files (folders: their ``*.py`` files, recursively).

    Unreadable or oversized files are reported through ``on_problem`` and skipped.
    """
    out: List[DlopenFinding] = []
    for top in paths:
        for fn in iter_py_files(top):
            try:
                if not stat.S_ISREG(os.stat(fn).st_mode):
                    continue  # a FIFO, socket or device: never opened
                size = os.path.getsize(fn)
                if size > max_size:
                    _report(on_problem, fn, "skipped: larger than %d bytes" % max_size)
                    continue
                data = read_source(fn, max_size)
                if data is None:
                    continue
            except OSError as exc:
                _report(on_problem, fn, "skipped: %s" % (exc.strerror or exc))
                continue
            out.extend(
                find_dlopen(
                    data,
                    fn,
                    include_dynamic=include_dynamic,
                    literals=literals,
                    max_size=max_size,
                    on_problem=on_problem,
                )
            )
    return out


def alternatives(findings: Iterable[DlopenFinding]) -> List[List[DlopenFinding]]:
    """Group findings of one call (same path, line and callee): a loader tries
    each in turn, so one resolving is enough.  Literal findings stay alone."""
    groups: Dict[tuple, List[DlopenFinding]] = {}
    for f in findings:
        if f.dynamic:
            continue
        if f.group:
            key: tuple = (f.path, f.group)
        else:
            key = (f.path, f.line, f.call) if f.call != LITERAL_CALL else (f.path, f.line, f.call, f.name)
        groups.setdefault(key, []).append(f)
    return list(groups.values())


# -- from a name to sonames ---------------------------------------------------

_SO_RE = re.compile(r"^(?P<stem>.+?)\.so(?P<ver>(?:\.\d+)*)$")
_TRAILING_VERSION_RE = re.compile(r"^(?P<stem>.+?)-?(?P<ver>\d+(?:\.\d+)*)$")


def is_libc_name(name: str) -> bool:
    """True for a name musl serves from libc itself (``c``, ``libm.so.6``, ``pthread``)."""
    base = posixpath.basename(name)
    m = _SO_RE.match(base)
    stem = m.group("stem") if m else base
    if stem.startswith("lib"):
        stem = stem[3:]
    return stem in LIBC_NAMES or stem.startswith("c.musl-") or base.startswith("ld-musl-")


def _version_tuple(ver: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in ver.split(".") if p)


def _ranker(name: str) -> Callable[[str], Optional[tuple]]:
    """A function giving a sort key (smaller is better) for a soname that can
    satisfy ``name``, or ``None`` for one that cannot."""
    base = posixpath.basename(name.strip())
    m = _SO_RE.match(base)
    if m:
        stem, ver = m.group("stem"), _version_tuple(m.group("ver"))

        def rank_file(soname: str) -> Optional[tuple]:
            if soname == base:
                return (0,)
            sm = _SO_RE.match(soname)
            if not sm or sm.group("stem") != stem:
                return None
            sver = _version_tuple(sm.group("ver"))
            if ver and sver == ver[: len(sver)]:
                # libfoo.so.1 provides the file libfoo.so.1.2.3: longest first
                return (1, -len(sver))
            if not ver:
                # unversioned libfoo.so (really the -dev symlink): newest soname
                return (2,) + tuple(-v for v in sver)
            return None

        return rank_file

    stem = base if base.startswith("lib") else "lib" + base
    tm = _TRAILING_VERSION_RE.match(stem)
    short = tm.group("stem") if tm else None
    want = _version_tuple(tm.group("ver")) if tm else ()
    if short in ("", "lib"):
        short = None

    def rank_stem(soname: str) -> Optional[tuple]:
        sm = _SO_RE.match(soname)
        if not sm:
            return None
        sver = _version_tuple(sm.group("ver"))
        neg = tuple(-v for v in sver)
        if sm.group("stem") == stem:
            # find_library("gtk-3") -> libgtk-3.so.0: the name as written
            return (0,) + neg
        if short is not None and sm.group("stem") == short:
            # "cairo-2" / "magic1" (Windows-style) -> libcairo.so.2 first
            return (1, 0 if sver[: len(want)] == want else 1) + neg
        return None

    return rank_stem


def _bare(soname: str) -> str:
    return soname[3:] if soname.startswith("so:") else soname


def soname_matcher(name: str) -> Callable[[str], bool]:
    """A predicate: can this soname (``libmagic.so.1`` or ``so:libmagic.so.1``)
    satisfy a run-time load of ``name``?"""
    rank = _ranker(name)
    return lambda soname: rank(_bare(soname)) is not None


def candidate_sonames(name: str, available: Iterable[str]) -> List[str]:
    """The sonames of ``available`` that can satisfy loading ``name``, best first.

    ``available`` is what an index or database provides (bare sonames, or
    ``so:`` provide names — returned as given).  Rules:

    * a file name (``libmagic.so.1``, ``/usr/lib/libfoo.so.1.2.3``): that exact
      soname, else a soname that is a version prefix of it (``libfoo.so.1``);
      an unversioned ``libfoo.so`` gives the ``libfoo.so.N`` sonames, highest
      first (loading it really needs the ``-dev`` symlink);
    * a ``find_library`` name (``magic``, ``libmagic``, ``gtk-3``): the
      ``libmagic.so.N`` sonames, highest N first; a trailing version written
      Windows-style (``cairo-2``, ``magic1``) is tried as part of the name
      first, then as the soname's version (``libcairo.so.2`` preferred over
      other ``libcairo.so.N``).
    """
    rank = _ranker(name)
    scored = []
    for soname in set(available):
        key = rank(_bare(soname))
        if key is not None:
            scored.append((key, soname))
    scored.sort()
    return [s for _, s in scored]


# -- for the resolver and the command line ------------------------------------


def scan_tree_sources(
    paths: Iterable[str],
    root="/",
    *,
    max_size: int = MAX_SOURCE_SIZE,
    on_problem: Optional[ProblemCallback] = None,
) -> List[DlopenFinding]:
    """:func:`find_dlopen` over the ``*.py`` files under in-root ``paths`` of the
    filesystem ``root`` (a host folder, or a root through the root protocol,
    :func:`rundeps.rootfs.root_files`: an image's tree); findings carry
    in-root paths.

    Symlinked files and folders are not followed (they could lead out of the root).
    """
    from ..rootfs import root_files

    files = root_files(root)
    out: List[DlopenFinding] = []
    for top in paths:
        inroot = posixpath.normpath("/" + str(top).lstrip("/"))
        for real, shown in _tree_py_files(files, inroot):
            try:
                data = files.read(real, 0, max_size + 1)
            except OSError as exc:
                _report(on_problem, shown, "skipped: %s" % (exc.strerror or exc))
                continue
            if len(data) > max_size:
                _report(on_problem, shown, "skipped: larger than %d bytes" % max_size)
                continue
            out.extend(find_dlopen(data, shown, max_size=max_size, on_problem=on_problem))
    return out


def _tree_py_files(files, inroot: str) -> Iterator[Tuple[str, str]]:
    """(in-root real path, path as given) of the regular ``*.py`` files at or
    under ``inroot`` of ``files`` (the root protocol): folders in sorted
    order, a folder's files before its sub-folders (as :func:`os.walk`);
    symlinks (to files or folders), FIFOs, sockets and devices skipped."""
    real = files.resolve(inroot, follow_last=False)
    if real is None or files.resolve(real) != real:
        return  # absent, or a symlink
    if files.is_file(real):
        if inroot.endswith(".py"):
            yield real, inroot
        return
    if not files.is_dir(real):
        return  # a FIFO, socket or device given by name: never opened
    stack = [(real, inroot)]
    while stack:
        folder, shown = stack.pop()
        try:
            names = files.listdir(folder)
        except OSError:
            continue
        subs = []
        for name in names:
            p = folder.rstrip("/") + "/" + name
            kind = _entry_kind(files, p)
            if kind == "file" and name.endswith(".py"):
                yield p, shown.rstrip("/") + "/" + name
            elif kind == "dir":
                subs.append((p, shown.rstrip("/") + "/" + name))
        stack.extend(reversed(subs))


def _entry_kind(files, path: str) -> str:
    """``file``, ``dir``, ``link`` or ``other`` for ``path`` of ``files``
    (the root protocol), its folder an in-root real path: its last part is
    not followed.  A host folder's entry is one ``lstat`` (the folder being
    real, its host path crosses no symlink)."""
    host = files.host_path(path)
    if host is not None:
        try:
            mode = os.lstat(host).st_mode
        except (OSError, ValueError):
            return "other"
        return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
    if files.resolve(path) != path:
        return "link"
    return "file" if files.is_file(path) else "dir" if files.is_dir(path) else "other"


def find_wheel_loads(ws, **kwargs) -> List[DlopenFinding]:
    """:func:`find_dlopen` over a wheel's kept ``.py`` sources
    (:attr:`rundeps.inputs.wheel.WheelScan.py_sources`)."""
    out: List[DlopenFinding] = []
    for path, text in ws.py_sources:
        out.extend(find_dlopen(text, path, **kwargs))
    return out

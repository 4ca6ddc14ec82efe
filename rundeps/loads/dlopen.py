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
:func:`alternatives` groups them.  :func:`candidate_sonames`
(:mod:`rundeps.loads.sonames`, re-exported here) turns a finding's name into
the sonames (``so:`` provides) that could satisfy it; the files read come
from :mod:`rundeps.loads.sourcefiles` (a folder, a root's tree, a wheel).
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union, cast

from ..inputs.pysource import decode_source
from .sonames import LIBC_NAMES, candidate_sonames, is_libc_name, soname_matcher

__all__ = [
    "DlopenFinding",
    "LOADER_NAMES",
    "LITERAL_CALL",
    "LIBC_NAMES",
    "MAX_SOURCE_SIZE",
    "ProblemCallback",
    "find_dlopen",
    "alternatives",
    "is_libc_name",
    "report_problem",
    "soname_matcher",
    "candidate_sonames",
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


def report_problem(on_problem: Optional[ProblemCallback], path: str, reason: str) -> None:
    """Tell ``on_problem`` (if any) that ``path`` was skipped, and why."""
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
        return any(w in source for w in _LOADER_WORDS_B) or _LIB_SO_RE_B.search(source) is not None
    return any(w in source for w in _LOADER_WORDS) or _LIB_SO_RE.search(source) is not None


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
        report_problem(on_problem, path, "skipped: nested too deeply")
        return []
    return collector.findings()


def _parse_source(source: Union[str, bytes], path: str, max_size: int,
                  on_problem: Optional[ProblemCallback]) -> Optional[ast.Module]:
    """The syntax tree of a source that may load a library, or None (too
    large, no loader word, cannot decode or parse: the last three reported)."""
    if len(source) > max_size:
        report_problem(on_problem, path, "skipped: larger than %d bytes" % max_size)
        return None
    if not _may_load(source):
        return None
    if isinstance(source, bytes):
        try:
            source = decode_source(source)
        except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
            report_problem(on_problem, path, "skipped: cannot decode: %s" % _one_line(exc))
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning: invalid escapes, "is" with a literal
            return ast.parse(source, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        report_problem(on_problem, path, "skipped: cannot parse: %s" % _one_line(exc))
        return None


class _Collector:
    """The findings of one parsed source: loader calls and subscripts
    (:meth:`loader_calls`), then the bare ``lib*.so*`` literals no call
    claimed (:meth:`literals`); :meth:`findings` in source order, grouped
    into alternatives."""

    def __init__(self, tree: ast.Module, path: str, include_dynamic: bool):
        self.tree = tree
        self.path = path
        self.include_dynamic = include_dynamic
        self.aliases = _Aliases(tree)
        self.names = _Names(tree)
        self.found: List[Tuple[Tuple[int, ...], DlopenFinding]] = []
        self.seen: set = set()
        self.claimed: set = set()  # ids of literal nodes already reported as loader arguments
        self.anchors: Dict[int, ast.AST] = {}  # id(finding) -> the call or literal it came from
        self.current: List[ast.AST] = []
        self.any_loader = False

    def add(self, name: str, line: int, call: str, order: Tuple[int, ...], dynamic: bool = False) -> None:
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
            tried = cast(ast.Try, node)  # ast.TryStar (3.11+) has the same fields
            if _in(child, tried.body) or _in(child, tried.orelse):
                out.append((id(node), 0))
            else:
                for i, handler in enumerate(tried.handlers):
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

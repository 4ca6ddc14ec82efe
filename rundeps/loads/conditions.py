"""The run-time loads stage: which ``ctypes``/``cffi`` loads a package's own
import makes, and what satisfies them.

:mod:`rundeps.loads.dlopen` finds the loads in Python sources and groups
alternatives (names tried in turn, a ``find_library`` fallback chain, the
ways of a ``try``/``except`` or an ``if``).  This module adds:

* **conditional loads**: a load in a submodule that the top-level package's
  own import does not reach (``cairocffi/pixbuf.py``, which only
  ``import cairocffi.pixbuf`` runs) happens only *when that submodule is
  imported*.  :func:`import_conditions` follows the imports a module makes
  at import time (module level, ``if``/``try``/``with``/``class`` bodies;
  not function bodies) from each top-level package's ``__init__.py``; a
  load in a module it does not reach is reported with the module's name,
  not added (unless asked);
* the **choice** of one package for a group of alternatives
  (:func:`rundeps.loads.providers.choose_provider`): an installed package first, then the smallest
  by installed size (``I:``), then the order the code tries the names.

Sources are read through a small interface (``files``: the in-root or
in-wheel ``.py`` paths known; ``read(path)``: their text or None) so the
same code serves a tree on disk and a wheel's zip.
"""

from __future__ import annotations

import ast
import posixpath
import warnings
from typing import Callable, Dict, Iterable, List, Optional, Set

__all__ = ["import_conditions", "TreeFiles", "module_name"]

Read = Callable[[str], Optional[str]]


def _package_chain(path: str, exists: Callable[[str], bool]) -> List[str]:
    """The folders from the top-level package down to ``path``'s folder, each
    holding an ``__init__.py`` (empty when ``path`` is not inside a package)."""
    chain: List[str] = []
    d = posixpath.dirname(path)
    while d not in ("", "/") and exists(posixpath.join(d, "__init__.py")):
        chain.append(d)
        d = posixpath.dirname(d)
    return chain[::-1]


def module_name(path: str, exists: Callable[[str], bool]) -> Optional[str]:
    """``cairocffi.pixbuf`` for ``.../site-packages/cairocffi/pixbuf.py`` (the
    package chain found through ``__init__.py`` files), None outside a package."""
    chain = _package_chain(path, exists)
    if not chain:
        return None
    base = posixpath.dirname(chain[0])
    rel = posixpath.relpath(path, base)[: -len(".py")]
    parts = rel.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _import_time_imports(tree: ast.AST, module: str, is_package: bool) -> Set[str]:
    """Absolute names of the modules a module imports when it is imported
    (its parents included: importing ``a.b`` runs ``a`` first)."""
    out: Set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def add(name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            out.add(".".join(parts[:i]))

    stack = list(getattr(tree, "body", []))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue  # runs when called, not when imported
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                if node.level - 1 > len(base_parts):
                    continue
                base = ".".join(base_parts[: len(base_parts) - (node.level - 1)])
                target = ".".join(p for p in (base, node.module or "") if p)
            else:
                target = node.module or ""
            if not target:
                continue
            add(target)
            for alias in node.names:
                if alias.name != "*":
                    out.add(f"{target}.{alias.name}")  # a submodule, if there is one by that name
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt) or isinstance(child, ast.excepthandler):
                stack.append(child)
    return out


def import_conditions(paths: Iterable[str], files, read: Read) -> Dict[str, str]:
    """``{path: module}`` for each of ``paths`` (``.py`` files with run-time
    loads) that its top-level package's own import does not reach; the
    module's name says when its loads happen. Paths outside a package, and
    top-level packages whose ``__init__.py`` cannot be read, are left out
    (their loads count as made)."""
    exists = files.__contains__
    out: Dict[str, str] = {}
    reached_by_top: Dict[str, Optional[Set[str]]] = {}
    for path in paths:
        chain = _package_chain(path, exists)
        if not chain:
            continue
        module = module_name(path, exists)
        if module is None:  # never: the chain above is not empty
            continue
        top_dir = chain[0]
        base = posixpath.dirname(top_dir)
        top = posixpath.basename(top_dir)
        if top not in reached_by_top:
            reached_by_top[top] = _reach(top, base, files, read)
        reached = reached_by_top[top]
        if reached is not None and module not in reached:
            out[path] = module
    return out


def _module_path(name: str, base: str, files) -> Optional[str]:
    rel = name.replace(".", "/")
    for candidate in (posixpath.join(base, rel, "__init__.py"), posixpath.join(base, rel + ".py")):
        if candidate in files:
            return candidate
    return None


def _reach(top: str, base: str, files, read: Read) -> Optional[Set[str]]:
    """The modules of package ``top`` (under folder ``base``) that ``import top`` runs."""
    if _module_path(top, base, files) is None:
        return None
    reached: Set[str] = set()
    queue = [top]
    while queue and len(reached) < 10000:
        name = queue.pop()
        if name in reached:
            continue
        path = _module_path(name, base, files)
        if path is None:
            continue  # an attribute imported with from-import, or another distribution
        reached.add(name)
        text = read(path)
        if text is None:
            if name == top:
                return None
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(text, filename=path)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for imported in _import_time_imports(tree, name, path.endswith("/__init__.py")):
            if imported.split(".")[0] == top and imported not in reached:
                queue.append(imported)
    return reached


class TreeFiles:
    """The ``.py`` files of a filesystem ``root`` (a host folder, or a root
    through the root protocol, :func:`rundeps.rootfs.root_files`: an
    image's tree), by in-root path: ``path in files`` is true for a regular
    file (a symlink is not followed; its folders are, inside the root),
    ``read(path)`` gives its decoded text or None."""

    def __init__(self, root, max_size: int = 5 * 1000 * 1000):
        from ..rootfs import root_files

        self.files = root_files(root)
        self.root = self.files.name
        self.max_size = max_size
        self._known: Dict[str, bool] = {}

    def __contains__(self, p: str) -> bool:
        try:
            return self._known[p]
        except KeyError:
            pass
        real = self.files.resolve(p, follow_last=False)
        ok = real is not None and self.files.resolve(real) == real and self.files.is_file(real)
        self._known[p] = ok
        return ok

    def read(self, p: str) -> Optional[str]:
        if p not in self:
            return None
        from ..inputs.pysource import decode_source

        real = self.files.resolve(p, follow_last=False)
        if real is None:  # never: ``p in self`` resolved it
            return None
        try:
            data = self.files.read(real, 0, self.max_size + 1)
            if len(data) > self.max_size:
                return None
            return decode_source(data)
        except (OSError, SyntaxError, UnicodeDecodeError, LookupError):
            return None

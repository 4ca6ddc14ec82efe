#!/usr/bin/env python3
"""The import graph of the ``rundeps`` package, from the AST of every module.

Prints the import cycles between the package's modules, every place a
module takes a private name (leading underscore, not a dunder) from another
module of the package, and every import that points up the pipeline's
layers (:data:`LAYERS`: a stage imports only its own layer and those
below); exits 1 when there is any, 0 otherwise.

Every import statement counts, at module level and inside functions alike
(a function-level import is still a dependency, only a later one), except
those under ``if TYPE_CHECKING:``, which never run.  A private name counts
when it is imported (``from .elf import _parse``) or read as an attribute of
an imported package module (``walk._read_one``).

    python scripts/import_graph.py [--edges] [PACKAGE_DIR]

``--edges`` also prints every edge (``importer -> imported``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

TOP = "rundeps"

LAYERS = (
    ("rundeps.errors", "rundeps.diagnostics", "rundeps.platform", "rundeps.rootfs", "rundeps.verdict", "rundeps.cachedir",
     "rundeps.datafiles", "rundeps.data"),
    ("rundeps.elf",),
    ("rundeps.inputs", "rundeps.apk"),
    ("rundeps.resolve",),
    ("rundeps.loads", "rundeps.bind", "rundeps.distributions", "rundeps.report"),
    ("rundeps.pipeline",),
    ("rundeps.api",),
    ("rundeps.commands", "rundeps.cli", "rundeps.__main__"),
)
"""The pipeline's layers, lowest first: CLI -> api facade -> pipeline ->
report/bind/loads/distributions -> resolve -> inputs/apk -> elf ->
platform/rootfs/errors."""


def layer(mod: str) -> int:
    """The layer of a module (its longest matching prefix)."""
    if mod == TOP:
        return 0  # the package itself: its version and nothing else
    best, where = -1, len(LAYERS) - 1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (mod == name or mod.startswith(name + ".")) and len(name) > best:
                best, where = len(name), i
    return where


def upward(edges) -> list:
    """(importer, line, imported) for every import of a higher layer."""
    return sorted((m, line, t) for m, targets in edges.items() for t, line in targets.items()
                  if layer(t) > layer(m))


def module_names(pkg_dir: Path) -> dict:
    """{module name: path} of every module under ``pkg_dir``."""
    out = {}
    for path in sorted(pkg_dir.rglob("*.py")):
        parts = list(path.relative_to(pkg_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """The import nodes of ``tree`` that run (not under ``if TYPE_CHECKING``)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def _base(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    parts = mod.split(".")
    if not is_pkg:
        parts.pop()
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    if node.module:
        parts.append(node.module)
    return ".".join(parts)


def analyse(pkg_dir: Path):
    """(edges {module: {imported module: first line}}, private uses [(module, line, text)])."""
    mods = module_names(pkg_dir)
    edges = {m: {} for m in mods}
    private = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_pkg = path.name == "__init__.py"
        aliases = {}  # local name -> package module it is bound to

        def add(target: str, line: int) -> None:
            if target in mods and target != mod:
                edges[mod].setdefault(target, line)

        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == TOP or a.name.startswith(TOP + "."):
                        add(a.name, node.lineno)
                        if a.asname:
                            aliases[a.asname] = a.name
                continue
            base = _base(mod, is_pkg, node)
            if not (base == TOP or base.startswith(TOP + ".")):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in mods:  # a submodule
                    add(sub, node.lineno)
                    aliases[a.asname or a.name] = sub
                    continue
                add(base, node.lineno)  # a name the module itself defines
                if a.name.startswith("_") and not a.name.startswith("__") and base != mod:
                    private.append((mod, node.lineno, f"from {base} import {a.name}"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                private.append((mod, node.lineno, f"{aliases[node.value.id]}.{node.attr}"))
    return edges, private


def cycles(edges: dict):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edges", action="store_true", help="also print every edge (importer -> imported)")
    ap.add_argument("package_dir", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent / TOP,
                    help="the package folder (default: this checkout's rundeps/)")
    args = ap.parse_args(argv)
    show_edges, pkg_dir = args.edges, args.package_dir
    edges, private = analyse(pkg_dir)
    if show_edges:
        for m in sorted(edges):
            for t in sorted(edges[m]):
                print(f"{m} -> {t}")
    comps = cycles(edges)
    for comp in comps:
        members = set(comp)
        print("cycle: " + ", ".join(comp))
        for m in comp:
            for t, line in sorted(edges[m].items()):
                if t in members:
                    print(f"    {m}:{line} imports {t}")
    for mod, line, text in sorted(private):
        print(f"private name: {mod}:{line}: {text}")
    up = upward(edges)
    for mod, line, target in up:
        print(f"upward: {mod}:{line} imports {target}")
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports, "
          f"{len(comps)} cycles, {len(private)} private-name imports, {len(up)} upward imports")
    return 1 if comps or private or up else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Turn a :class:`~rundeps.resolve.Resolution` into the output formats.

``names``: one package a line; ``apk``: an ``apk add`` command; ``so``: the
``so:`` names to give ``apk add``; ``json``: everything, for tools;
``tree``: package -> soname -> files, for people.
"""

from __future__ import annotations

import os
from typing import List, Optional

from ..apk.model import Package
from ..resolve import Resolution
from .problems import will_not_load_lines
from .why import why_package

__all__ = ["FORMATS", "render", "so_names", "tree_lines", "explain", "explain_file"]

FORMATS = ("names", "apk", "so", "json", "tree")


def _chosen(res: Resolution, all_packages: bool) -> List[Package]:
    return res.all_packages if all_packages else res.packages


def render(res: Resolution, fmt: str, all_packages: bool = False, virtual: str = ".rundeps",
           by: str = "package") -> str:
    """The text for ``fmt`` (ends with a newline unless empty). ``by``:
    ``distribution`` groups the tree by pip distribution (needs
    ``res.distributions``, see :func:`rundeps.api.add_distributions`)."""
    if fmt == "names":
        lines = [p.name for p in _chosen(res, all_packages)]
    elif fmt == "apk":
        names = [p.name for p in _chosen(res, all_packages)]
        if not names:
            return ""
        import shlex

        lines = [" ".join(["apk", "add", "--no-cache", "--virtual", shlex.quote(virtual)] + names)]
    elif fmt == "so":
        lines = so_names(res, all_packages)
    elif fmt == "json":
        import json

        from .json import to_json_dict

        return json.dumps(to_json_dict(res), indent=2, sort_keys=False) + "\n"
    elif fmt == "tree" and by == "distribution":
        from ..distributions import tree_lines as distribution_tree

        lines = distribution_tree(res)
    elif fmt == "tree":
        lines = tree_lines(res, all_packages)
    else:  # pragma: no cover - click restricts the choice
        raise ValueError(fmt)
    return "".join(line + "\n" for line in lines)


def so_names(res: Resolution, all_packages: bool = False) -> List[str]:
    """The same packages as ``names`` (the minimal set, or every package
    with ``all_packages``), each given by the ``so:<soname>`` names it
    declares for the sonames the files need; by its name when it declares
    none of them (a soname resolved through an owned file, a run-time load)."""
    chosen = set(_chosen(res, all_packages))
    out = set()
    named = set()
    for soname, pkg in res.providers.items():
        if pkg not in chosen:
            continue
        if any(a.name == "so:" + soname for a in pkg.provides):
            out.add("so:" + soname)
            named.add(pkg)
    for pkg in chosen - named:
        out.add(pkg.name)
    return sorted(out)


def explain_file(res: Resolution, path: str) -> Optional[List[str]]:
    """Lines explaining one file's verdict: will it load, and why (None when
    the file was not looked at)."""
    if path not in res.objects:
        return None
    info = res.objects[path]
    b = res.binding
    lines = []
    fault = res.faults.get(path)
    units = res.units
    if fault is not None:
        lines.append(f"{path} will not load under musl: {fault.reason}")
    elif units and path not in units:
        by = res.loaded_by.get(path, [])
        if by:
            more = f" and {len(by) - 1} more" if len(by) > 1 else ""
            lines.append(f"{path} is loaded only as a dependency, by {by[0]}{more}: it has no verdict of "
                         "its own, the loads that reach it judge it")
        else:
            lines.append(f"{path} is a vendored library nothing scanned loads: not judged")
    elif b is None:
        lines.append(f"{path}: its sonames were resolved; its symbols were not bound (--no-symbols)")
    elif path in b.unchecked:
        lines.append(f"{path} cannot be checked: " + ", ".join(b.unchecked[path])
                     + " not at hand to bind against (install the packages, or give --root)")
    elif path in b.undecided:
        lines.append(f"{path} cannot be checked: {b.undecided[path]}")
    elif path in b.glibc_loads:
        lines.append(f"{path} is glibc-linked, and loads under musl: every symbol it needs binds")
    else:
        lines.append(f"{path} loads under musl: every library is found and every symbol binds")
    for e in sorted((e for e in res.edges if e.path == path), key=lambda e: e.soname):
        target = e.package.name if e.package is not None else (e.library or "not found")
        lines.append(f"  needs {e.soname} -> {target}" + (f" ({e.library})" if e.package is not None and e.library else ""))
    if b is not None:
        if path in b.interpreter:
            lines.append(f"  opened by {b.interpreter[path]} with RTLD_LOCAL: bound against it, its "
                         "libraries and this module's own")
        elif path in b.assumed_interpreter:
            lines.append("  a Python extension module, but no interpreter is at hand: Py* names are "
                         "taken as the interpreter's")
        missing = b.missing_symbols.get(path)
        if missing:
            shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            lines.append(f"  symbols nothing in scope defines ({len(missing)}): {shown}")
        for hint in b.hints.get(path, []):
            lines.append(f"  hint: {hint}")
        if path in b.unchecked:
            lines.append("  not checked against " + ", ".join(b.unchecked[path]) + " (not at hand)")
        if path in b.gcompat:
            lines.append(f"  with gcompat: {b.gcompat[path]}")
        lines.append(f"  checked against {b.musl_description or 'no musl export list (musl''s own names not checked)'}")
    if info.interp:
        lines.append(f"  loader (PT_INTERP): {info.interp}")
    return lines


def tree_lines(res: Resolution, all_packages: bool = True) -> List[str]:
    """package -> soname -> files, then in-tree libraries and unresolved names."""
    lines: List[str] = []
    for pkg in res.all_packages:
        info = why_package(res, pkg)
        note = ""
        if info["pulled_in_by"]:
            note = "  (pulled in by " + ", ".join(info["pulled_in_by"]) + ")"
        elif pkg not in res.packages:
            note = "  (not in the minimal set)"
        lines.append(f"{pkg.name}{note}")
        for soname, files in info["sonames"].items():
            lines.append(f"  {soname}")
            lines.extend(f"    {f}" for f in files)
        for name in info["dlopen"]:
            lines.append(f"  {name} (loaded at run time)")
    in_tree = res.in_tree
    if in_tree:
        lines.append("(in tree)")
        for soname, lib in in_tree.items():
            lines.append(f"  {soname} -> {lib}")
    if res.glibc_linked:
        lines.append("(glibc-linked)")
        for path, sonames in res.glibc_linked.items():
            under = res.runs_under_glibc.get(path)
            note = f" (runs under {under})" if under else ""
            lines.append(f"  {path}: {', '.join(sonames) or 'ld-linux interpreter'}{note}")
    if res.will_not_load:
        lines.append("(will not load)")
        lines.extend("  " + line for line in will_not_load_lines(res))
    unresolved = res.unresolved
    if unresolved:
        lines.append("(unresolved)")
        for soname, files in unresolved.items():
            lines.append(f"  {soname}")
            lines.extend(f"    {f}" for f in files)
    return lines


def explain(res: Resolution, name: str) -> Optional[List[str]]:
    """Lines saying why ``name`` (a package or a soname) is needed, or None
    when nothing in the result needs it."""
    lines: List[str] = []
    pkg = next((p for p in res.all_packages if p.name == name), None)
    if pkg is not None:
        info = why_package(res, pkg)
        from ..distributions import why_lines

        lines.extend(why_lines(res, pkg))
        lines.append(f"{pkg.name} {pkg.version} ({pkg.source or 'builtin'}) is needed:")
        for soname, files in info["sonames"].items():
            for f in files:
                lines.append(f"  {f} -> {soname} -> {pkg.name}")
        for dl in info["dlopen"]:
            lines.append(f"  {dl} (loaded at run time) -> {pkg.name}")
        if pkg in res.packages:
            lines.append(f"{pkg.name} is in the minimal set.")
        elif res.universe is not None:
            for q in res.universe.pulled_in_by(pkg, res.packages):
                chain = res.universe.dependency_path(q, pkg)
                lines.append(f"It is left out of the minimal set: {' -> '.join(p.name for p in chain)} (D:)")
        return lines
    named = res.universe.package(name) if res.universe is not None else None
    if res.universe is not None and named is not None:
        for q in res.packages:
            chain = res.universe.dependency_path(q, named)
            if chain:
                lines.append(f"{name} is not needed by any file, but {q.name} pulls it in: "
                             + " -> ".join(p.name for p in chain) + " (D:)")
                from ..distributions import why_lines

                lines.extend(why_lines(res, q))
                return lines
    edges = [e for e in res.edges if e.soname == name]
    if not edges:
        return None
    for e in sorted(edges, key=lambda e: e.path):
        if e.kind in ("package", "musl") and e.package is not None:
            how = {"owner": f"the file {e.library} belongs to it", "builtin": "musl's loader provides it",
                   "provides": f"it provides so:{name}"}.get(e.via, "")
            lines.append(f"{e.path} -> {name} -> {e.package.name}" + (f" ({how})" if how else ""))
        elif e.kind == "in_tree":
            lines.append(f"{e.path} -> {name} -> {e.library} (in the tree: no package needed)")
        else:
            lines.append(f"{e.path} -> {name} (not found)")
    return lines


def wheel_lines(check) -> List[str]:
    """The text lines of one checked wheel (a :class:`rundeps.pipeline.wheel.WheelCheck`): its verdict,
    then what each soname resolved to, what will not load and why, and its run-time loads."""
    out: List[str] = []
    ws = check.wheel
    name = os.path.basename(ws.path)
    out.append(f"{name}: {ws.libc}, {ws.arch or 'any arch'}: {check.verdict}")
    res = check.resolution
    if res is None:
        return out
    for soname, lib in res.in_tree.items():
        out.append(f"  vendored  {soname} -> {lib}")
    for soname, pkg in res.providers.items():
        out.append(f"  package   {soname} -> {pkg.name}")
    for soname in sorted({s for v in res.glibc_linked.values() for s in v}):
        out.append(f"  glibc     {soname}")
    binding = res.binding
    for path, reason in sorted(res.will_not_load.items()):
        out.append(f"  will not load  {path}: {reason}")
        for hint in (binding.hints.get(path, []) if binding is not None else []):
            out.append(f"    hint: {hint}")
        if binding is not None and path in binding.gcompat:
            out.append(f"    with gcompat: {binding.gcompat[path]}")
    if binding is not None:
        for path, why in sorted(binding.undecided.items()):
            out.append(f"  cannot check  {path}: {why}")
        for path, libs in sorted(binding.unchecked.items()):
            if path in res.units and path not in res.will_not_load and path not in binding.undecided:
                out.append(f"  cannot check  {path}: {', '.join(libs)} not at hand to bind against")
    for soname, files in res.unresolved.items():
        if soname in check.base_image:
            out.append(f"  base      {soname} -> {check.base_image[soname]} (in every Alpine image)")
        else:
            out.append(f"  missing   {soname} (needed by {files[0]})")
    if binding is not None and binding.musl_description:
        out.append(f"  symbols   checked against {binding.musl_description}"
                   + (" (Py* names taken as the interpreter's)" if binding.assumed_interpreter else ""))
    for f in res.dlopen:
        pkg = res.dlopen_packages.get(f.name)
        when = res.dlopen_when.get(f.path)
        out.append(f"  dlopen    {f.name} ({f.path}:{f.line}, {f.call})" + (f" -> {pkg.name}" if pkg else "")
                   + (f" (when {when} is imported)" if when else ""))
    return out

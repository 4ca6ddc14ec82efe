"""Turn a :class:`~rundeps.resolve.Resolution` into the output formats.

``names``: one package a line; ``apk``: an ``apk add`` command; ``so``: the
``so:`` names to give ``apk add``; ``json``: everything, for tools;
``tree``: package -> soname -> files, for people.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from .apk.model import Package
from .resolve import Resolution
from .verdict import GLIBC_LOADER, MISSING_LIBRARY, MISSING_SYMBOL, WRONG_ARCH, Fault

__all__ = ["FORMATS", "render", "to_json_dict", "why_package"]

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

        return json.dumps(to_json_dict(res), indent=2, sort_keys=False) + "\n"
    elif fmt == "tree" and by == "distribution":
        from .distributions import tree_lines as distribution_tree

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


def why_package(res: Resolution, pkg: Package) -> Dict[str, object]:
    """Why ``pkg`` is in the set: its sonames and the files that need them,
    and the chosen packages that pull it in through ``D:``."""
    sonames: Dict[str, List[str]] = {}
    for e in res.edges:
        if e.package == pkg:
            sonames.setdefault(e.soname, []).append(e.path)
    dlopen = sorted(name for name, p in res.extra.items() if p == pkg)
    pulled = []
    if res.universe is not None and pkg not in res.packages:
        pulled = sorted(q.name for q in res.universe.pulled_in_by(pkg, res.packages))
    return {
        "sonames": {s: sorted(set(v)) for s, v in sorted(sonames.items())},
        "dlopen": dlopen,
        "pulled_in_by": pulled,
        "in_minimal_set": pkg in res.packages,
    }


def json_name(name: str) -> str:
    """A path or soname as JSON shows it: its bytes as UTF-8 text, with
    ``%`` written ``%25`` and every byte that is not part of valid UTF-8
    written ``%XX`` (upper-case hex). Percent-decoding the string
    (``urllib.parse.unquote_to_bytes``) gives the exact bytes back; a name
    without ``%`` that is valid UTF-8 (nearly every name) is unchanged.

    rundeps keeps undecodable bytes as Python does (``surrogateescape``:
    U+DC80..U+DCFF); written as JSON those would be lone surrogates, which
    JSON tools such as jq turn into U+FFFD, losing the name."""
    if "%" not in name and name.isascii():
        return name
    out = []
    for ch in name:
        if ch == "%":
            out.append("%25")
        elif "\udc80" <= ch <= "\udcff":
            out.append("%%%02X" % (ord(ch) - 0xDC00))
        elif "\ud800" <= ch <= "\udfff":  # any other lone surrogate: its UTF-8-style bytes
            out.extend("%%%02X" % b for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append(ch)
    return "".join(out)


def _names(items):
    return [json_name(i) for i in items]


def to_json_dict(res: Resolution) -> Dict[str, object]:
    """The JSON object of a resolution; paths and sonames through :func:`json_name`."""
    n = json_name
    providers = res.providers
    why = {}
    for p in res.all_packages:
        info = why_package(res, p)
        info["sonames"] = {n(s): _names(files) for s, files in info["sonames"].items()}
        why[p.name] = info
    out: Dict[str, object] = {
        "arch": res.arch,
        "packages": [p.name for p in res.packages],
        "all_packages": [p.name for p in res.all_packages],
        "providers": {n(s): p.name for s, p in providers.items()},
        "in_tree": {n(s): n(path) for s, path in res.in_tree.items()},
        "unresolved": {n(s): _names(files) for s, files in res.unresolved.items()},
        "needed_by": {name: _names(files) for name, files in res.needed_by.items()},
        "source": {p.name: p.source for p in res.all_packages},
        "glibc_linked": {n(path): _names(sonames) for path, sonames in res.glibc_linked.items()},
        "will_not_load": {n(path): f.reason for path, f in sorted(res.faults.items())},
        "will_not_load_kind": {n(path): f.kind for path, f in sorted(res.faults.items())},
        "will_not_load_chain": {n(path): _names(f.chain) for path, f in sorted(res.faults.items())},
        "units": {n(path): role for path, role in sorted(getattr(res, "units", {}).items())},
        "unloaded": _names(getattr(res, "unloaded", [])),
        "runs_under_glibc": {n(path): n(lo) for path, lo in sorted(res.runs_under_glibc.items())},
        "left_out": {n(path): glob for path, glob in sorted(res.left_out.items())},
        "dlopen": [
            dict(f, path=n(f.path),
                 package=res.dlopen_packages[f.name].name if f.name in res.dlopen_packages else None,
                 group=n(f.group or f"{f.path}:{f.line}"), when=getattr(res, "dlopen_when", {}).get(f.path))
            for f in res.dlopen
        ],
        "why": why,
        **binding_json(res),
    }
    if getattr(res, "distributions", None) is not None:
        from .distributions import summarise

        dists, unowned = summarise(res, res.distributions)
        for item in list(dists.values()) + [unowned]:
            item["files"] = _names(item["files"])
            if "metadata" in item:
                item["metadata"] = n(item["metadata"])
        out["distributions"], out["no_distribution"] = dists, unowned
    if getattr(res, "installed_size", None) is not None:
        out["installed_size"] = res.installed_size.to_json()
    return out


def binding_json(res: Resolution) -> Dict[str, object]:
    """The binding's verdicts besides ``will_not_load``: ``missing_symbols``
    (path -> sorted names), ``hints`` (path -> lines), ``glibc_loads``
    (glibc-linked files that bind completely), ``musl`` (what the reserved
    names were bound to; null when symbols were not bound), ``gcompat``
    (glibc-linked file -> whether it would load with gcompat, when the root
    has gcompat or ``--gcompat FILE`` names its library), ``unchecked``
    (path -> libraries in its scope that are not at hand -- a package from
    an index, not installed -- so symbols nothing at hand defines were not
    called missing)."""
    n = json_name
    b = getattr(res, "binding", None)
    if b is None:
        return {"missing_symbols": {}, "hints": {}, "glibc_loads": [], "musl": None, "gcompat": {},
                "unchecked": {}}
    return {
        "missing_symbols": {n(p): names for p, names in b.missing_symbols.items()},
        "hints": {n(p): lines for p, lines in b.hints.items()},
        "glibc_loads": _names(b.glibc_loads),
        "musl": b.musl_description,
        "gcompat": {n(p): v for p, v in sorted(b.gcompat.items())},
        "unchecked": {n(p): libs for p, libs in b.unchecked.items()},
    }


def explain_file_json(res: Resolution, path: str) -> Dict[str, object]:
    """``why PATH --format json``: one file's verdict."""
    b = getattr(res, "binding", None)
    n = json_name
    return {
        "path": n(path),
        "kind": "file",
        "loads": path not in res.faults,
        "reason": res.faults[path].reason if path in res.faults else None,
        "reason_kind": res.faults[path].kind if path in res.faults else None,
        "chain": _names(res.faults[path].chain) if path in res.faults else [],
        "unit": getattr(res, "units", {}).get(path),
        "needed": {n(e.soname): (e.package.name if e.package is not None else e.library)
                   for e in res.edges if e.path == path},
        "missing_symbols": b.missing_symbols.get(path, []) if b is not None else [],
        "hints": b.hints.get(path, []) if b is not None else [],
        "interpreter": b.interpreter.get(path) if b is not None else None,
        "gcompat": b.gcompat.get(path) if b is not None else None,
        "musl": b.musl_description if b is not None else None,
    }


def will_not_load_lines(res: Resolution) -> List[str]:
    """One line per file that will not load, grouped by kind of fault
    (missing library, missing symbol, loader, arch, relocation, TLS; a fault
    in a library the file loads after every file's own), then by path."""
    return [f"{path} will not load: {fault.reason}" for path, fault in sorted_faults(res.faults)]


def sorted_faults(faults: Mapping[str, Fault]) -> List[Tuple[str, Fault]]:
    """``faults`` in the order problems are listed (see :func:`will_not_load_lines`)."""
    first = (MISSING_LIBRARY, MISSING_SYMBOL, GLIBC_LOADER, WRONG_ARCH)

    def order(item) -> Tuple[int, str]:
        path, fault = item
        if fault.inherited:
            return len(first), path
        return (first.index(fault.kind) if fault.kind in first else len(first) + 1), path

    return sorted(faults.items(), key=order)


def explain_file(res: Resolution, path: str) -> Optional[List[str]]:
    """Lines explaining one file's verdict: will it load, and why (None when
    the file was not looked at)."""
    if path not in res.objects:
        return None
    info = res.objects[path]
    b = getattr(res, "binding", None)
    lines = []
    fault = res.faults.get(path)
    units = getattr(res, "units", None)
    if fault is not None:
        lines.append(f"{path} will not load under musl: {fault.reason}")
    elif units and path not in units:
        by = getattr(res, "loaded_by", {}).get(path, [])
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


def explain_json(res: Resolution, name: str) -> Dict[str, object]:
    """``why --format json``: what :func:`explain` says, as an object.

    ``name``, ``kind`` (``package``, ``soname`` or ``none``), ``needed``; for a
    package also ``version``, ``source``, the :func:`why_package` keys and
    ``chains`` (each ``D:`` chain from a chosen package down to it); for a
    soname ``edges``: each file that needs it and how it resolved."""
    n = json_name
    out: Dict[str, object] = {"name": name, "kind": "none", "needed": False}
    universe = res.universe
    pkg = next((p for p in res.all_packages if p.name == name), None)
    if pkg is None and universe is not None and universe.package(name) is not None:
        candidate = universe.package(name)
        if any(universe.dependency_path(q, candidate) for q in res.packages):
            pkg = candidate
    if pkg is not None:
        info = why_package(res, pkg)
        chosen = [q for q in res.packages if q != pkg]
        chains = [universe.dependency_path(q, pkg) for q in chosen] if universe is not None else []
        out.update(
            kind="package", needed=True, version=pkg.version, source=pkg.source or "builtin",
            sonames={n(s): _names(files) for s, files in info["sonames"].items()},
            dlopen=info["dlopen"], in_minimal_set=info["in_minimal_set"],
            pulled_in_by=sorted({c[0].name for c in chains if c}),
            chains=[[p.name for p in c] for c in chains if c],
        )
        if getattr(res, "distributions", None) is not None:
            from .distributions import why_json

            out["distributions"] = why_json(res, pkg, json_name)
        return out
    edges = sorted((e for e in res.edges if e.soname == name), key=lambda e: e.path)
    if edges:
        out.update(kind="soname", needed=True, edges=[
            {"path": n(e.path), "kind": e.kind, "package": e.package.name if e.package is not None else None,
             "library": n(e.library) if e.library else None, "via": e.via or None}
            for e in edges
        ])
    return out


def explain(res: Resolution, name: str) -> Optional[List[str]]:
    """Lines saying why ``name`` (a package or a soname) is needed, or None
    when nothing in the result needs it."""
    lines: List[str] = []
    pkg = next((p for p in res.all_packages if p.name == name), None)
    if pkg is not None:
        info = why_package(res, pkg)
        from .distributions import why_lines

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
    if res.universe is not None and res.universe.package(name) is not None:
        for q in res.packages:
            chain = res.universe.dependency_path(q, res.universe.package(name))
            if chain:
                lines.append(f"{name} is not needed by any file, but {q.name} pulls it in: "
                             + " -> ".join(p.name for p in chain) + " (D:)")
                from .distributions import why_lines

                lines.extend(why_lines(res, q))
                return lines
    edges = [e for e in res.edges if e.soname == name]
    if not edges:
        return None
    for e in sorted(edges, key=lambda e: e.path):
        if e.kind in ("package", "musl"):
            how = {"owner": f"the file {e.library} belongs to it", "builtin": "musl's loader provides it",
                   "provides": f"it provides so:{name}"}.get(e.via, "")
            lines.append(f"{e.path} -> {name} -> {e.package.name}" + (f" ({how})" if how else ""))
        elif e.kind == "in_tree":
            lines.append(f"{e.path} -> {name} -> {e.library} (in the tree: no package needed)")
        elif e.kind == "glibc":
            lines.append(f"{e.path} -> {name} (glibc: the file is linked against glibc)")
        else:
            lines.append(f"{e.path} -> {name} (not found)")
    return lines

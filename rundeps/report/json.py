"""The JSON objects of ``scan``, ``why`` and ``wheel`` (keys documented in
docs/json.md, their contract in the JSON Schemas ``data/schema/NAME.json``,
read with :func:`json_schema`); paths and sonames through :func:`json_name`.

Every object starts with ``"schema_version"``: :data:`SCHEMA_VERSION`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, List, cast

from ..datafiles import data_files
from ..resolve import Resolution
from .why import why_package

if TYPE_CHECKING:
    from ..pipeline import WheelCheck

__all__ = ["SCHEMA_VERSION", "SCHEMA_NAMES", "json_schema", "json_name", "to_json_dict", "binding_json",
           "explain_file_json", "explain_json", "wheel_json"]

SCHEMA_VERSION = 1
"""The ``"schema_version"`` of every JSON object ``scan``, ``why`` and
``wheel`` print. It changes when a key is removed or its meaning changes;
new keys may appear without a change."""

SCHEMA_NAMES = ("scan", "why", "wheel")
"""The JSON Schemas rundeps ships, one a command (``rundeps schema NAME``)."""


def json_schema(name: str) -> Dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a command's ``--format json``
    output, ``name`` one of :data:`SCHEMA_NAMES`, as a dict."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"no JSON schema named {name!r} (one of {', '.join(SCHEMA_NAMES)})")
    schema: Dict[str, Any] = json.loads(data_files("schema", f"{name}.json").read_text(encoding="utf-8"))
    return schema


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


def json_names(items) -> List[str]:
    """Each of ``items`` through :func:`json_name`."""
    return [json_name(i) for i in items]


def _sonames_json(info: Dict[str, object]) -> Dict[str, List[str]]:
    """The ``sonames`` of a :func:`why_package` object, names through :func:`json_name`."""
    sonames = cast(Dict[str, List[str]], info["sonames"])
    return {json_name(s): json_names(files) for s, files in sonames.items()}


def to_json_dict(res: Resolution) -> Dict[str, object]:
    """The JSON object of a resolution; paths and sonames through :func:`json_name`."""
    n = json_name
    providers = res.providers
    why = {}
    for p in res.all_packages:
        info = why_package(res, p)
        info["sonames"] = _sonames_json(info)
        why[p.name] = info
    out: Dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "arch": res.arch,
        "packages": [p.name for p in res.packages],
        "all_packages": [p.name for p in res.all_packages],
        "providers": {n(s): p.name for s, p in providers.items()},
        "in_tree": {n(s): n(path) for s, path in res.in_tree.items()},
        "unresolved": {n(s): json_names(files) for s, files in res.unresolved.items()},
        "needed_by": {name: json_names(files) for name, files in res.needed_by.items()},
        "source": {p.name: p.source for p in res.all_packages},
        "glibc_linked": {n(path): json_names(sonames) for path, sonames in res.glibc_linked.items()},
        "will_not_load": {n(path): f.reason for path, f in sorted(res.faults.items())},
        "will_not_load_kind": {n(path): f.kind for path, f in sorted(res.faults.items())},
        "will_not_load_chain": {n(path): json_names(f.chain) for path, f in sorted(res.faults.items())},
        "units": {n(path): role for path, role in sorted(res.units.items())},
        "unloaded": json_names(res.unloaded),
        "runs_under_glibc": {n(path): n(lo) for path, lo in sorted(res.runs_under_glibc.items())},
        "left_out": {n(path): glob for path, glob in sorted(res.left_out.items())},
        "scanned": len(res.scanned),
        "no_elf": {n(path): kind for path, kind in res.no_elf.items()},
        "dlopen": [
            dict(f, path=n(f.path),
                 package=res.dlopen_packages[f.name].name if f.name in res.dlopen_packages else None,
                 group=n(f.group or f"{f.path}:{f.line}"), when=res.dlopen_when.get(f.path))
            for f in res.dlopen
        ],
        "why": why,
        **binding_json(res),
    }
    if res.distributions is not None:
        from ..distributions import summarise

        dists, unowned = summarise(res, res.distributions)
        for item in list(dists.values()) + [unowned]:
            item["files"] = json_names(item["files"])
            if "metadata" in item:
                item["metadata"] = n(item["metadata"])
        out["distributions"], out["no_distribution"] = dists, unowned
    if res.installed_size is not None:
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
    called missing), ``undecided`` (path -> what its load needs of the
    target's loader that cannot be told, such as whether it applies
    ``DT_RELR``: not checked, not a failure)."""
    n = json_name
    b = res.binding
    if b is None:
        return {"missing_symbols": {}, "hints": {}, "glibc_loads": [], "musl": None, "gcompat": {},
                "unchecked": {}, "undecided": {}}
    return {
        "missing_symbols": {n(p): names for p, names in b.missing_symbols.items()},
        "hints": {n(p): lines for p, lines in b.hints.items()},
        "glibc_loads": json_names(b.glibc_loads),
        "musl": b.musl_description,
        "gcompat": {n(p): v for p, v in sorted(b.gcompat.items())},
        "unchecked": {n(p): libs for p, libs in b.unchecked.items()},
        "undecided": {n(p): why for p, why in sorted(b.undecided.items())},
    }


def explain_file_json(res: Resolution, path: str) -> Dict[str, object]:
    """``why PATH --format json``: one file's verdict."""
    b = res.binding
    n = json_name
    return {
        "schema_version": SCHEMA_VERSION,
        "path": n(path),
        "kind": "file",
        "loads": path not in res.faults,
        "reason": res.faults[path].reason if path in res.faults else None,
        "reason_kind": res.faults[path].kind if path in res.faults else None,
        "chain": json_names(res.faults[path].chain) if path in res.faults else [],
        "unit": res.units.get(path),
        "needed": {n(e.soname): (e.package.name if e.package is not None else e.library)
                   for e in res.edges if e.path == path},
        "missing_symbols": b.missing_symbols.get(path, []) if b is not None else [],
        "hints": b.hints.get(path, []) if b is not None else [],
        "interpreter": b.interpreter.get(path) if b is not None else None,
        "gcompat": b.gcompat.get(path) if b is not None else None,
        "undecided": b.undecided.get(path) if b is not None else None,
        "musl": b.musl_description if b is not None else None,
    }


def explain_json(res: Resolution, name: str) -> Dict[str, object]:
    """``why --format json``: what :func:`explain` says, as an object.

    ``name``, ``kind`` (``package``, ``soname`` or ``none``), ``needed``; for a
    package also ``version``, ``source``, the :func:`why_package` keys and
    ``chains`` (each ``D:`` chain from a chosen package down to it); for a
    soname ``edges``: each file that needs it and how it resolved."""
    n = json_name
    out: Dict[str, object] = {"schema_version": SCHEMA_VERSION, "name": name, "kind": "none", "needed": False}
    universe = res.universe
    pkg = next((p for p in res.all_packages if p.name == name), None)
    if pkg is None and universe is not None:
        candidate = universe.package(name)
        if candidate is not None and any(universe.dependency_path(q, candidate) for q in res.packages):
            pkg = candidate
    if pkg is not None:
        info = why_package(res, pkg)
        chosen = [q for q in res.packages if q != pkg]
        chains = [universe.dependency_path(q, pkg) for q in chosen] if universe is not None else []
        out.update(
            kind="package", needed=True, version=pkg.version, source=pkg.source or "builtin",
            sonames=_sonames_json(info),
            dlopen=info["dlopen"], in_minimal_set=info["in_minimal_set"],
            pulled_in_by=sorted({c[0].name for c in chains if c}),
            chains=[[p.name for p in c] for c in chains if c],
        )
        if res.distributions is not None:
            from ..distributions import why_json

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


def wheel_json(check: "WheelCheck") -> Dict[str, object]:
    """``rundeps wheel --format json``: one wheel's object (a
    :class:`rundeps.api.WheelCheck`)."""
    ws = check.wheel
    base_image = {json_name(so): pkg for so, pkg in check.base_image.items()}
    item: Dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "wheel": json_name(ws.path), "name": ws.name, "version": ws.version,
        "tags": sorted("-".join(t) for t in ws.tags), "libc": ws.libc, "arch": ws.arch,
        "target_arch": check.target_arch, "ok": check.ok, "verdict": check.verdict,
        "base_image": base_image,
        "problems": [{"member": m, "reason": r} for m, r in ws.problems],
    }
    if check.resolution is not None:
        resolved = to_json_dict(check.resolution)
        unresolved = cast(Dict[str, List[str]], resolved["unresolved"])
        # a soname the base image answers is not also unresolved
        resolved["unresolved"] = {so: files for so, files in unresolved.items() if so not in base_image}
        item.update(resolved)
    return item

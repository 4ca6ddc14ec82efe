"""The packages that serve run-time loads: one package for each group of
alternatives (:func:`choose_provider`: installed, then smallest, then the
order tried), as the stage's value (:func:`runtime_loads`)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .dlopen import LITERAL_CALL, DlopenFinding, alternatives
from .sonames import candidate_sonames, is_libc_name


def resolve_findings(findings: Iterable[DlopenFinding], res) -> Tuple[Dict[str, object], List[DlopenFinding]]:
    """Packages for findings: ``({name: Package}, [unresolved findings])``.

    ``res`` is a :class:`rundeps.resolve.Resolution` (its ``universe``,
    ``objects`` and ``in_tree`` are used).  The findings of one call are
    alternatives (:func:`alternatives`): the first that resolves wins.  A
    group is satisfied without a package when a name is musl's own
    (:func:`is_libc_name`) or a library the scanned tree carries; else the
    best soname an installed database or index provides
    (:func:`candidate_sonames`), or the owner of an absolute path, gives the
    package; when several names of a group have packages, one is chosen
    (:func:`choose_provider`) and every name it serves maps to it.  An unresolved group is reported once, by its first finding;
    bare :data:`LITERAL_CALL` literals are weak evidence and never reported
    unresolved.  Nothing is computed without findings, and the sonames
    the sources provide are gathered (their names only, no package parsed)
    only when a finding is not served by the tree.
    """
    groups = alternatives(findings)
    if not groups:
        return {}, []
    universe = getattr(res, "universe", None)
    # A bare name is dlopen()ed with the main program's search (musl): a tree
    # library serves it when it is already loaded under that name, or sits in
    # a folder that search reaches (``res.runtime_dirs``).
    tree_names = set(getattr(res, "in_tree", {}) or {})
    runtime_dirs = getattr(res, "runtime_dirs", None)
    reach = set(runtime_dirs) if runtime_dirs else None
    for path, info in (getattr(res, "objects", {}) or {}).items():
        if reach is not None and posixpath.dirname(path) not in reach:
            continue
        tree_names.add(posixpath.basename(path))
        if getattr(info, "soname", None):
            tree_names.add(info.soname)
    available: Optional[Set[str]] = None

    extra: Dict[str, object] = {}
    unresolved: List[DlopenFinding] = []
    for group in groups:
        done = False
        for f in group:
            if is_libc_name(f.name) or posixpath.basename(f.name) in tree_names or candidate_sonames(f.name, tree_names):
                done = True
                break
        if not done and universe is not None:
            # every name's package, in the order the code tries them; one is chosen
            # (choose_provider: installed, then smallest, then first)
            candidates = []
            if available is None:
                available = provided_sonames(universe)
            for f in group:
                pkg = None
                if f.name.startswith("/"):
                    pkg = universe.owner(f.name)
                if pkg is None:
                    for soname in candidate_sonames(f.name, available):
                        pkg = universe.provider("so:" + soname)
                        if pkg is not None:
                            break
                if pkg is not None:
                    candidates.append((f, pkg))
            if candidates:
                chosen = choose_provider([pkg for _, pkg in candidates])
                for f, pkg in candidates:
                    if pkg == chosen:
                        extra.setdefault(f.name, pkg)
                done = True
        if not done and group[0].call != LITERAL_CALL:
            unresolved.append(group[0])
    return extra, unresolved

def provided_sonames(universe) -> Set[str]:
    """The sonames some source of ``universe`` provides (``so:`` provides),
    read from the provide names alone: no package is parsed."""
    names: Set[str] = set()
    for repo in universe.repositories:
        names.update(k[3:] for k in repo.provides if k.startswith("so:"))
    return names


def choose_provider(candidates: Sequence[object]):
    """One package for a group of alternatives (candidates in the order the
    code tries them, duplicates allowed): an installed one first, then the
    smallest installed size (``I:``; unknown sizes last), then the order tried."""
    best = None
    best_key = None
    for order, pkg in enumerate(candidates):
        size = getattr(pkg, "installed_size", 0) or 0
        key = (0 if getattr(pkg, "source", "") == "installed" else 1, 0 if size else 1, size, order)
        if best_key is None or key < best_key:
            best, best_key = pkg, key
    return best

@dataclass(frozen=True)
class RuntimeLoads:
    """The run-time loads stage's value: ``findings`` (every load found),
    ``when`` (source path -> the submodule whose import makes its loads),
    ``packages`` (load name -> the package that provides it), ``added`` (the
    names whose packages join the set, and those packages) and ``lost``
    (the counted findings nothing provides)."""

    findings: List[DlopenFinding] = field(default_factory=list)
    when: Dict[str, str] = field(default_factory=dict)
    packages: Dict[str, object] = field(default_factory=dict)
    added: Dict[str, object] = field(default_factory=dict)
    lost: List[DlopenFinding] = field(default_factory=list)


def runtime_loads(search, findings: List[DlopenFinding], add: bool, conditions: Optional[Dict[str, str]] = None,
                  include_conditional: bool = False) -> RuntimeLoads:
    """The packages that provide the run-time loads ``findings`` of
    ``search`` (a :class:`rundeps.resolve.Search`; one package a group of
    alternatives); with ``add``, those packages join the set.

    ``conditions``: ``{source path: module}`` for sources whose loads
    happen only when that submodule is imported
    (:func:`rundeps.loads.conditions.import_conditions`): reported, added
    only with ``include_conditional``."""
    when = dict(conditions or {})
    extra, unresolved = resolve_findings(findings, search)
    counted = {f.name for f in findings if include_conditional or f.path not in when}
    added = {name: pkg for name, pkg in extra.items() if name in counted} if add else {}
    lost = [f for f in unresolved if include_conditional or f.path not in when]
    return RuntimeLoads(findings, when, extra, added, lost)

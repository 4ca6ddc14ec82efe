"""What the run-time set costs in the image: installed sizes and the build virtual.

Every package block (installed database and index) carries ``I:``, the bytes
the package takes once installed. From a resolution's minimal set this module
works out, as apk would:

* the *closure*: the minimal set and everything its ``D:`` lines pull in,
  transitively, each package counted once (installed packages first, as
  :meth:`rundeps.apk.model.Universe.resolve_atom` chooses);
* what it *adds*: the closure less what the root already has installed and
  keeps. What the root keeps is what its world (``etc/apk/world``) pulls in,
  without the build virtual package (``.build-deps``), since the Dockerfile
  deletes that one once the run-time set is added. Without a world file the
  world is taken to be the installed packages that no other installed package
  depends on;
* for the build virtual: what ``apk del`` of it *frees* — the installed
  packages only it keeps, once the run-time set is in the world — and what the
  run-time set *keeps* of what it would otherwise free.

``install_if`` packages (apk adds ``-doc``/``-openrc`` companions by them) are
not followed: rundeps' set never asks for them.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Set

from ..diagnostics import SILENT, Diagnostics
from .model import Package, Universe, parse_atom

__all__ = ["SizeReport", "BuildDeps", "installed_sizes", "read_world", "format_size", "DEFAULT_BUILD_DEPS"]

DEFAULT_BUILD_DEPS = ".build-deps"
MAX_WORLD = 1 << 20
"""Largest world file read (real ones are a few hundred bytes)."""


class BuildDeps:
    """The build virtual package and what deleting it does.

    ``frees``: the installed packages ``apk del NAME`` removes once the
    run-time set is in the world (the virtual itself left out); ``keeps``:
    the packages it would remove without the run-time set, which the run-time
    set keeps."""

    def __init__(self, name: str, package: Package, frees: List[Package], keeps: List[Package]):
        self.name = name
        self.package = package
        self.frees = frees
        self.keeps = keeps

    @property
    def frees_bytes(self) -> int:
        return total(self.frees)

    @property
    def keeps_bytes(self) -> int:
        return total(self.keeps)


class SizeReport:
    """The sizes of a resolution's packages (see the module docstring)."""

    def __init__(self, minimal: List[Package], closure: List[Package], adds: List[Package],
                 world: Optional[List[str]], build_deps: Optional[BuildDeps]):
        self.minimal = minimal
        self.closure = closure
        self.adds = adds
        self.world = world
        """The world entries read from the root (None: no world file)."""
        self.build_deps = build_deps

    def to_json(self) -> Dict[str, object]:
        def group(pkgs: List[Package]) -> Dict[str, object]:
            return {"packages": [p.name for p in pkgs], "bytes": total(pkgs)}

        bd = None
        if self.build_deps is not None:
            bd = {"name": self.build_deps.name, "frees": group(self.build_deps.frees),
                  "keeps": group(self.build_deps.keeps)}
        return {
            "per_package": {p.name: p.installed_size for p in self.closure},
            "minimal_set": total(self.minimal),
            "closure": group(self.closure),
            "adds": group(self.adds),
            "build_deps": bd,
        }

    def summary(self) -> str:
        """One line: ``adds 5 packages, 9.8 MiB`` (and what deleting the build virtual does)."""
        if self.adds:
            line = f"adds {_count(len(self.adds))}, {format_size(total(self.adds))}"
        else:
            line = "adds no package (the root keeps all it needs)"
        bd = self.build_deps
        if bd is not None:
            line += f"; deleting {bd.name} then frees {_count(len(bd.frees))}, {format_size(bd.frees_bytes)}"
            if bd.keeps and len(bd.keeps) <= 4:
                line += f" (keeping {', '.join(p.name for p in bd.keeps)})"
            elif bd.keeps:
                line += f" (keeping {len(bd.keeps)} of its packages the run-time set needs)"
        return line


def _count(n: int) -> str:
    return f"{n} package" + ("" if n == 1 else "s")


def total(pkgs: Iterable[Package]) -> int:
    return sum(p.installed_size or 0 for p in pkgs)


def format_size(n: int) -> str:
    """Bytes for people: ``9.8 MiB``, ``512.0 KiB``, ``300 B``."""
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def read_world(root) -> Optional[List[str]]:
    """The entries of ``ROOT/etc/apk/world`` (symlinks followed inside the
    root), or None when there is none or it cannot be read.  ``root``: a
    host folder or a root through the root protocol (:func:`rundeps.rootfs.root_files`)."""
    from ..rootfs import root_files

    try:
        data = root_files(root).read("/etc/apk/world", 0, MAX_WORLD)
    except OSError:
        return None
    return data.decode("utf-8", "replace").split()


_TAG = re.compile(r"@[^<>=~]*")


def _world_package(entry: str, installed: Universe) -> Optional[Package]:
    """The installed package a world entry (``name``, ``name>=1``, ``name@tag``) names."""
    atom = parse_atom(_TAG.sub("", entry, count=1))
    if atom is None or atom.conflict:
        return None
    return installed.resolve_atom(atom)


def _kept(roots: Iterable[Package], universe: Universe) -> Set[Package]:
    out: Set[Package] = set()
    for p in roots:
        out.add(p)
        out |= universe.closure(p)
    return out


def _approximate_world(universe: Universe, packages: List[Package]) -> List[Package]:
    """Without a world file: the installed packages nothing else installed
    depends on (and whatever only a dependency cycle keeps)."""
    depended: Set[Package] = set()
    for p in packages:
        depended.update(d for d in universe.dependencies(p) if d != p)
    roots = [p for p in packages if p not in depended]
    kept = _kept(roots, universe)
    roots += [p for p in packages if p not in kept]
    return roots


def installed_sizes(res, root: str = "/", build_deps: Optional[str] = None,
                    diag: Diagnostics = SILENT) -> SizeReport:
    """The :class:`SizeReport` of resolution ``res`` in ``root``.

    ``build_deps``: the build virtual package's name (default ``.build-deps``,
    which may be absent; a name given that is not installed is a warning,
    told to ``diag.warning``)."""
    warn = diag.warning
    universe: Universe = res.universe if res.universe is not None else Universe()
    minimal = sorted(res.packages, key=lambda p: p.name)
    closure_set: Set[Package] = set(minimal)
    for p in minimal:
        closure_set |= universe.closure(p)
    closure = _dedupe_names(closure_set)

    repo = universe.installed
    world: Optional[List[str]] = None
    bd = None
    if repo is None:
        adds = closure
        if build_deps:
            warn(f"no installed database: cannot say what deleting {build_deps} frees")
    else:
        inst = Universe([repo])
        installed_pkgs = list(repo.packages)
        world = read_world(root)
        if world is not None:
            roots = [q for q in (_world_package(e, inst) for e in world) if q is not None]
        else:
            roots = _approximate_world(inst, installed_pkgs)
        name = build_deps or DEFAULT_BUILD_DEPS
        virtual = inst.package(name)
        if virtual is None and build_deps:
            warn(f"no package {build_deps} in the installed database: nothing to say about deleting it")
        if virtual is not None and virtual not in roots:
            roots.append(virtual)  # installed, so something keeps it; apk del names it
        base_roots = [q for q in roots if q != virtual]
        kept_without = _kept(base_roots, inst)
        kept_names = {p.name for p in kept_without}
        adds = [p for p in closure if p.name not in kept_names]
        if virtual is not None:
            kept_now = _kept(roots, inst)
            closure_names = {p.name for p in closure}
            # the run-time set joins the world: whatever of its closure is installed stays
            runtime_installed = [q for q in installed_pkgs if q.name in closure_names]
            after = _kept(base_roots + runtime_installed, inst)
            frees = _dedupe_names(q for q in kept_now - after if q != virtual)
            keeps = _dedupe_names(q for q in kept_now - kept_without
                                  if q != virtual and q.name in closure_names)
            bd = BuildDeps(name, virtual, frees, keeps)
    return SizeReport(minimal, closure, adds, world, bd)


def _dedupe_names(pkgs: Iterable[Package]) -> List[Package]:
    """One package a name (the first seen after sorting), sorted by name."""
    out: Dict[str, Package] = {}
    for p in sorted(pkgs, key=lambda p: (p.name, p.source != "installed")):
        out.setdefault(p.name, p)
    return list(out.values())

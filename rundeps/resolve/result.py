"""What resolving a tree found, as values: :class:`Edge` (one needed soname
of one object, and what satisfies it), :class:`Search` (every load in
musl's order, what the resolver returns) and :class:`Resolution` (the search
with the later stages' values and every file's verdict, what the report
reads)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Literal, Optional, Set, Tuple

from ..apk.model import Package, Universe
from ..elf import ElfInfo
from ..verdict import GLIBC_LINKED, Fault

if TYPE_CHECKING:
    from .units import Role

EdgeKind = Literal["musl", "package", "in_tree", "unresolved"]
"""What satisfies a needed soname: musl itself, a package, a library the tree
carries, or nothing."""

Via = Literal["", "builtin", "owner", "provides", "search", "dlopen-note"]
"""How an :class:`Edge` was found: a name musl serves itself, a file a
package owns, a package's ``so:`` provider, a library no package owns found
by the search, or a ``.note.dlopen`` ``required`` entry."""

EDGE_KINDS: Tuple[EdgeKind, ...] = ("musl", "package", "in_tree", "unresolved")
VIAS: Tuple[Via, ...] = ("", "builtin", "owner", "provides", "search", "dlopen-note")

GLIBC_REASON = "linked against glibc (Alpine needs a musl build of it, or gcompat)"
"""The reason of the :data:`rundeps.verdict.GLIBC_LINKED` fault of a glibc-linked file."""


class Edge:
    """How one needed soname of one object was satisfied.

    ``path``: the in-root path of the object that needs it; ``kind``: an
    :data:`EdgeKind`; ``library``: the in-root path of the library the
    loader would open (when found); ``via``: a :data:`Via`.
    """

    __slots__ = ("path", "soname", "kind", "package", "library", "via")

    def __init__(self, path: str, soname: str, kind: EdgeKind, package: Optional[Package] = None,
                 library: Optional[str] = None, via: Via = ""):
        self.path = path
        self.soname = soname
        self.kind: EdgeKind = kind
        self.package = package
        self.library = library
        self.via: Via = via

    def __repr__(self) -> str:
        return f"Edge({self.path} -> {self.soname}: {self.kind} {self.package or self.library or ''})"


Descend = Optional[Tuple[str, ElfInfo]]
"""The in-tree library an edge leads into (its load path and facts), or None."""

LoadOrder = List[Tuple[Edge, Descend]]
"""One file's load in musl's order: one (edge, descend) per ``DT_NEEDED`` entry."""


class _EdgeViews:
    """Views of :attr:`edges` that the report reads."""

    edges: List[Edge]

    @property
    def providers(self) -> Dict[str, Package]:
        out: Dict[str, Package] = {}
        for e in self.edges:
            if e.package is not None and e.soname not in out:
                out[e.soname] = e.package
        return dict(sorted(out.items()))

    @property
    def in_tree(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for e in self.edges:
            if e.kind == "in_tree" and e.library is not None and e.soname not in out:
                out[e.soname] = e.library
        return dict(sorted(out.items()))

    @property
    def unresolved(self) -> Dict[str, List[str]]:
        resolved = {(e.path, e.soname) for e in self.edges if e.kind != "unresolved"}
        out: Dict[str, Set[str]] = {}
        for e in self.edges:
            if e.kind == "unresolved" and (e.path, e.soname) not in resolved:
                out.setdefault(e.soname, set()).add(e.path)
        return {k: sorted(v) for k, v in sorted(out.items())}

    @property
    def needed_by(self) -> Dict[str, List[str]]:
        out: Dict[str, Set[str]] = {}
        for e in self.edges:
            if e.package is not None:
                out.setdefault(e.package.name, set()).add(e.path)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def sonames_of(self, pkg: Package) -> List[str]:
        return sorted({e.soname for e in self.edges if e.package == pkg})


@dataclass(frozen=True, eq=False)
class Search(_EdgeViews):
    """Every load the scanned files make, in musl's order and context, and the
    packages they need: what :meth:`rundeps.resolve.Resolver.resolve` returns.

    ``objects``: every object looked at (the scanned files and the in-tree
    libraries they load); ``scanned``: the scanned files; ``edges``: one per
    needed soname and the object that needs it; ``all_packages``/``packages``:
    every package the edges name / the minimal set; ``universe``: the
    package sources.
    """

    arch: Optional[str]
    universe: Optional[Universe]
    edges: List[Edge] = field(default_factory=list)
    objects: Dict[str, ElfInfo] = field(default_factory=dict)
    scanned: List[str] = field(default_factory=list)
    all_packages: List[Package] = field(default_factory=list)
    packages: List[Package] = field(default_factory=list)
    glibc_linked: Dict[str, List[str]] = field(default_factory=dict)
    """glibc-linked file -> the glibc sonames it needs."""
    runtime_dirs: Tuple[str, ...] = ()
    """The folders a run-time ``dlopen("name")`` searches (the main program's)."""
    note_loads: List[dict] = field(default_factory=list)
    """``.note.dlopen`` entries: path, priority, sonames, and for a
    ``required`` one the soname, package and library chosen."""
    runs_under_glibc: Dict[str, str] = field(default_factory=dict)
    """A glibc-linked program (or a library in a glibc loader's own
    folders) -> the in-root path of the glibc loader (present in the
    root) that runs it."""
    units: Dict[str, "Role"] = field(default_factory=dict)
    """Scanned files loaded on their own (in-root path -> role, see
    :mod:`rundeps.resolve.units`); every other scanned file is judged only
    inside the loads that reach it."""
    python_process: Set[str] = field(default_factory=set)
    """Units loaded into a Python process: their loads bind against the
    interpreter's global scope first."""
    unloaded: List[str] = field(default_factory=list)
    """Vendored libraries (``<name>.libs/``) that nothing scanned loads."""
    loaded_by: Dict[str, List[str]] = field(default_factory=dict)
    """Scanned file that is not a unit -> the scanned files whose load reaches it."""
    orders: Dict[str, LoadOrder] = field(default_factory=dict)
    """Scanned path -> its load (:meth:`rundeps.resolve.Resolver.load_order`)."""
    glibc_units: Tuple[str, ...] = ()
    """Glibc-linked units that run under musl's loader: each fails as
    :data:`rundeps.verdict.GLIBC_LINKED` unless binding shows its load
    completes (see :func:`judge`)."""


@dataclass(frozen=True, eq=False)
class Resolution(Search):
    """Everything a check found, and the packages it needs: the
    :class:`Search` and the values of the later stages, assembled once
    (:meth:`assemble`).

    ``faults`` (the files that would not load) is derived from the search
    and the binding by :func:`judge`; ``extra``/``dlopen``/
    ``dlopen_packages``/``dlopen_when`` are the run-time loads'
    (:class:`rundeps.loads.providers.RuntimeLoads`); ``binding`` the
    :class:`rundeps.bind.Binding` when symbols were bound.
    """

    faults: Dict[str, Fault] = field(default_factory=dict)
    """In-root path -> :class:`rundeps.verdict.Fault`, for every file that
    cannot run on Alpine. ``scan`` exits 1 when one is not let through
    (:meth:`failing`)."""
    binding: Any = None
    """The :class:`rundeps.bind.Binding` when symbols were bound."""
    extra: Dict[str, Package] = field(default_factory=dict)
    """Packages added from outside the ELF graph (run-time loads), by the name that asked."""
    dlopen: List[Any] = field(default_factory=list)
    """Run-time loads found (:class:`rundeps.loads.dlopen.DlopenFinding`)."""
    dlopen_packages: Dict[str, Package] = field(default_factory=dict)
    """The package for each run-time load name that one provides."""
    dlopen_when: Dict[str, str] = field(default_factory=dict)
    """Source path -> the submodule whose import makes its run-time loads."""
    left_out: Dict[str, str] = field(default_factory=dict)
    """Files the default excludes left out (in-root path -> the glob)."""
    no_elf: Dict[str, str] = field(default_factory=dict)
    """The scanned PATHs that hold no ELF file (in-root path as given ->
    what it is: ``folder``, ``file`` (a file that is not ELF) or
    ``other`` (a FIFO, device or socket, never read))."""
    distributions: Any = None
    """A :class:`rundeps.distributions.DistributionMap`, when asked for."""
    installed_size: Any = None
    """A :class:`rundeps.apk.sizes.SizeReport`, when asked for."""
    dlopen_unresolved: List[Any] = field(default_factory=list)
    """The counted run-time loads no package provides."""
    entry_program: Any = None
    """For a saved image: whether the program its config runs would load
    (a :class:`rundeps.pipeline.image.ProgramCheck`), else None."""

    @classmethod
    def assemble(cls, search: Search, binding: Any = None, loads: Any = None, **details: Any) -> "Resolution":
        """The resolution of ``search`` with its ``binding`` (or None), its
        run-time ``loads`` (a :class:`rundeps.loads.providers.RuntimeLoads`,
        or None) and the values of the detail stages (``left_out``,
        ``no_elf``, ``distributions``, ``installed_size``, ``entry_program``)."""
        values = {f.name: getattr(search, f.name) for f in dataclasses.fields(Search)}
        values["faults"] = judge(search, binding)
        values["binding"] = binding
        if loads is not None:
            values.update(_loads_values(search, loads))
        values.update(details)
        return cls(**values)

    def with_details(self, **details: Any) -> "Resolution":
        """This resolution with the values of detail stages (``distributions``,
        ``installed_size``, ``entry_program``) that read it."""
        return dataclasses.replace(self, **details)

    def with_loads(self, loads: Any) -> "Resolution":
        """This resolution with its run-time ``loads`` (a
        :class:`rundeps.loads.providers.RuntimeLoads`) instead of any it had."""
        return dataclasses.replace(self, **_loads_values(self, loads))

    @property
    def will_not_load(self) -> Dict[str, str]:
        """In-root path -> one-line reason (derived from :attr:`faults`)."""
        return {p: f.reason for p, f in self.faults.items()}

    def failing(self, allow_glibc: bool = False) -> Dict[str, Fault]:
        """:attr:`faults` less, with ``allow_glibc``, those of glibc-linked
        files (``--allow-glibc``)."""
        if not allow_glibc:
            return dict(self.faults)
        return {p: f for p, f in self.faults.items() if p not in self.glibc_linked}


def _loads_values(search: Search, loads: Any) -> Dict[str, Any]:
    """The fields of a resolution that its run-time ``loads`` give: the
    findings, and the packages they add to the set (the minimal set again)."""
    values: Dict[str, Any] = dict(dlopen=loads.findings, dlopen_when=loads.when, dlopen_packages=loads.packages,
                                  extra=dict(loads.added), dlopen_unresolved=list(loads.lost))
    if loads.added:
        packages = set(search.all_packages) | set(loads.added.values())
        values["all_packages"] = sorted(packages, key=lambda p: p.name)
        values["packages"] = search.universe.minimal(packages) if search.universe is not None else []
    return values


def judge(search: Search, binding: Any = None) -> Dict[str, Fault]:
    """Every file of ``search`` that would not load, from the search and the
    ``binding`` (or None): a glibc-linked unit under musl's loader fails
    unless its load binds completely (then it is a warning) or cannot be
    checked; every fault binding found stands."""
    faults: Dict[str, Fault] = {p: Fault(GLIBC_LINKED, GLIBC_REASON, (p,)) for p in search.glibc_units}
    if binding is None:
        return faults
    for path in binding.glibc_loads:  # glibc-linked, but binds completely: a warning, not a failure
        faults.pop(path, None)
    for path in binding.unchecked:  # cannot be checked is not "fails"
        if path in faults and faults[path].kind == GLIBC_LINKED:
            del faults[path]
    faults.update(binding.faults)  # --allow-glibc still accepts glibc-linked files
    return faults

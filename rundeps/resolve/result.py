"""What resolving a tree found: :class:`Edge` (one needed soname of one
object, and what satisfies it) and :class:`Resolution` (everything, with the
files' verdicts)."""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from ..apk.model import Package, Universe
from ..elf import ElfInfo
from ..verdict import GLIBC_LINKED, Fault


GLIBC_REASON = "linked against glibc (Alpine needs a musl build of it, or gcompat)"
"""The :attr:`Resolution.will_not_load` reason of a glibc-linked file."""


class Edge:
    """How one needed soname of one object was satisfied.

    ``path``: the in-root path of the object that needs it; ``kind``:
    ``musl``, ``package``, ``in_tree``, ``glibc`` or ``unresolved``;
    ``library``: the in-root path of the library the loader would open (when
    found); ``via``: ``builtin``, ``owner`` (a file the package owns),
    ``provides`` or ``search``.
    """

    __slots__ = ("path", "soname", "kind", "package", "library", "via")

    def __init__(self, path: str, soname: str, kind: str, package: Optional[Package] = None,
                 library: Optional[str] = None, via: str = ""):
        self.path = path
        self.soname = soname
        self.kind = kind
        self.package = package
        self.library = library
        self.via = via

    def __repr__(self) -> str:
        return f"Edge({self.path} -> {self.soname}: {self.kind} {self.package or self.library or ''})"


class Resolution:
    """Everything ``scan`` found, and the packages it needs.

    ``objects``: every object looked at (the scanned files and the in-tree
    libraries they load); ``extra``: packages added from outside the ELF graph
    (``--dlopen``), by the name that asked; ``dlopen``: run-time loads found
    (:class:`rundeps.loads.dlopen.DlopenFinding`); ``dlopen_packages``: the package
    for each such name that one provides; ``universe``: the package sources.
    """

    def __init__(self, arch: Optional[str], universe: Optional[Universe] = None):
        self.arch = arch
        self.universe = universe
        self.edges: List[Edge] = []
        self.objects: Dict[str, ElfInfo] = {}
        self.scanned: List[str] = []
        self.all_packages: List[Package] = []
        self.packages: List[Package] = []
        self.glibc_linked: Dict[str, List[str]] = {}
        self.extra: Dict[str, Package] = {}
        self.dlopen: List = []
        self.dlopen_packages: Dict[str, Package] = {}
        self.binding = None
        """The :class:`rundeps.bind.Binding` when symbols were bound."""
        self.dlopen_when: Dict[str, str] = {}
        """Source path -> the submodule whose import makes its run-time loads."""
        self.distributions = None
        """A :class:`rundeps.distributions.DistributionMap`, once mapped (``rundeps.api.add_distributions``)."""
        self.installed_size = None
        """A :class:`rundeps.sizes.SizeReport`, once computed (``rundeps.api.add_installed_size``)."""
        self.runtime_dirs: Tuple[str, ...] = ()
        """The folders a run-time ``dlopen("name")`` searches (the main program's)."""
        self.note_loads: List[dict] = []
        """``.note.dlopen`` entries: path, priority, sonames, and for a
        ``required`` one the soname, package and library chosen."""
        self.faults: Dict[str, Fault] = {}
        """In-root path -> :class:`rundeps.verdict.Fault`, for every file
        that cannot run on Alpine: a missing library or symbol, a relocation
        musl refuses, a glibc-only loader, ... ``scan`` exits 1 when one is
        not let through (:meth:`failing`). Later stages add their own."""
        self.entry_program = None
        """For a saved image: whether the program its config runs would load
        (a :class:`rundeps.pipeline.ProgramCheck`), else None."""
        self.runs_under_glibc: Dict[str, str] = {}
        """A glibc-linked program (or a library in a glibc loader's own
        folders) -> the in-root path of the glibc loader (present in the
        root) that runs it."""
        self.left_out: Dict[str, str] = {}
        """Files the default excludes left out (in-root path -> the glob)."""
        self.no_elf: Dict[str, str] = {}
        """The scanned PATHs that hold no ELF file (in-root path as given ->
        what it is: ``folder``, ``file`` (a file that is not ELF) or
        ``other`` (a FIFO, device or socket, never read))."""
        self.units: Dict[str, str] = {}
        """Scanned files loaded on their own (in-root path -> role, see
        :mod:`rundeps.units`); every other scanned file is judged only
        inside the loads that reach it."""
        self.python_process: Set[str] = set()
        """Units loaded into a Python process: their loads bind against the
        interpreter's global scope first."""
        self.unloaded: List[str] = []
        """Vendored libraries (``<name>.libs/``) that nothing scanned loads."""
        self.loaded_by: Dict[str, List[str]] = {}
        """Scanned file that is not a unit -> the scanned files whose load reaches it."""

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

    def mark_glibc(self, path: str, reason: str = GLIBC_REASON) -> None:
        """Record that ``path`` will not load for being glibc-linked."""
        self.faults[path] = Fault(GLIBC_LINKED, reason, (path,))

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
            if e.kind == "in_tree" and e.soname not in out:
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



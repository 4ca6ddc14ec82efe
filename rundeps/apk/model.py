"""The apk package model: the installed database, repository indexes, providers.

Both ``/lib/apk/db/installed`` and the ``APKINDEX`` member of a repository
index are blocks of ``X:value`` lines separated by blank lines.  This module
parses either into :class:`Package` objects, gathers them into a
:class:`Repository` (one source: the installed database or one index), and
answers questions across several sources through :class:`Universe`:
which package provides ``so:libz.so.1``, which package owns
``usr/lib/libz.so.1``, and what a package pulls in through its ``D:`` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields as dataclass_fields
from functools import cmp_to_key as _cmp_to_key

import re
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

__all__ = [
    "Atom",
    "Package",
    "Repository",
    "Universe",
    "parse_atom",
    "parse_blocks",
    "parse_installed",
    "compare_versions",
]

# -- versions -----------------------------------------------------------------

_PRE_SUFFIXES = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1}
_POST_SUFFIXES = {"cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}
_VERSION_PATTERN = (
    r"^(?P<nums>\d+(?:\.\d+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)"
    r"(?:~[0-9a-f]+)?(?:-r(?P<rev>\d+))?$"
)
_SUFFIX_PATTERN = r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)"
# Compiled on first use (``re`` caches it): most runs never compare versions,
# and compiling costs ~0.5 ms of start-up.


def _version_key(version: str) -> Optional[tuple]:
    m = re.match(_VERSION_PATTERN, version)
    if not m:
        return None
    nums = tuple(int(n) for n in m.group("nums").split("."))
    letter = m.group("letter") or ""
    suffixes = tuple(
        (_PRE_SUFFIXES.get(s, 0) or _POST_SUFFIXES[s], int(n or 0))
        for s, n in re.findall(_SUFFIX_PATTERN, m.group("suffixes"))
    )
    rev = int(m.group("rev") or 0)
    return nums, letter, suffixes, rev


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


def compare_versions(a: str, b: str) -> int:
    """Compare two apk version strings; return -1, 0 or 1.

    Follows apk's ordering for the forms Alpine uses: dotted numbers (a
    missing component sorts first), a letter, ``_alpha`` .. ``_rc`` (before
    the release) and ``_cvs`` .. ``_p`` (after it), ``~hash``, ``-rN``.
    Strings outside that grammar are compared as text, after valid ones.
    """
    ka, kb = _version_key(a), _version_key(b)
    if ka is None or kb is None:
        if ka is None and kb is None:
            return _cmp(a, b)
        return -1 if ka is None else 1
    nums_a, nums_b = ka[0], kb[0]
    for x, y in zip(nums_a, nums_b):
        if x != y:
            return _cmp(x, y)
    if len(nums_a) != len(nums_b):
        # 1.2 < 1.2.1, but a pre-release suffix on the longer one does not matter here
        return _cmp(len(nums_a), len(nums_b))
    if ka[1] != kb[1]:
        return _cmp(ka[1], kb[1])
    sa, sb = ka[2], kb[2]
    for x, y in zip(sa, sb):
        if x != y:
            return _cmp(x, y)
    if len(sa) != len(sb):
        # the one with an extra suffix: before the plain release if it is a pre-release
        extra = (sa[len(sb)] if len(sa) > len(sb) else sb[len(sa)])[0]
        longer_is_a = len(sa) > len(sb)
        later = extra > 0
        return 1 if later == longer_is_a else -1
    return _cmp(ka[3], kb[3])


class _VersionOrder:
    """Sort key wrapper so ``max()`` and ``sorted()`` order apk versions."""

    __slots__ = ("v",)

    def __init__(self, v: str):
        self.v = v

    def __lt__(self, other: "_VersionOrder") -> bool:
        return compare_versions(self.v, other.v) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _VersionOrder) and compare_versions(self.v, other.v) == 0


# -- atoms --------------------------------------------------------------------

_ATOM_RE = re.compile(r"^(?P<neg>!?)(?P<name>[^<>=~]+)(?:(?P<op>[<>=~]+)(?P<version>.*))?$")


class Atom:
    """One dependency or provide: ``so:libz.so.1=1.3.1``, ``musl>=1.2``, ``!foo``.

    (A plain class with slots, not a dataclass: the package model is on every
    run's start-up path and dataclass creation costs about a millisecond each.)
    """

    __slots__ = ("name", "op", "version", "conflict")

    def __init__(self, name: str, op: str = "", version: str = "", conflict: bool = False):
        self.name = name
        self.op = op
        self.version = version
        self.conflict = conflict

    def _key(self):
        return (self.name, self.op, self.version, self.conflict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Atom) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Atom({'!' if self.conflict else ''}{self.name}{self.op}{self.version})"


def parse_atom(text: str) -> Optional[Atom]:
    """Parse one space-free atom; ``None`` for an empty or malformed one."""
    m = _ATOM_RE.match(text.strip())
    if not m:
        return None
    return Atom(
        name=m.group("name"),
        op=m.group("op") or "",
        version=m.group("version") or "",
        conflict=bool(m.group("neg")),
    )


def _atoms(value: str) -> Tuple[Atom, ...]:
    out = []
    for part in value.split():
        atom = parse_atom(part)
        if atom is not None:
            out.append(atom)
    return tuple(out)


# -- packages -----------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Package:
    """One package block of the installed database or of an index.

    Two packages are equal when name, version and source are; ``files`` are
    the paths it owns, relative to the root (installed database only).
    Nothing assigns its fields once built; it is not frozen because a frozen
    dataclass's ``__init__`` costs about twice as much, and an index builds
    one per block.
    """

    name: str
    version: str = ""
    arch: str = ""
    depends: Tuple[Atom, ...] = ()
    provides: Tuple[Atom, ...] = ()
    provider_priority: int = 0
    install_if: Tuple[Atom, ...] = ()
    origin: str = ""
    description: str = ""
    files: List[str] = field(default_factory=list)
    source: str = ""
    """Which source holds it: ``installed`` or an index's name or URL."""
    installed_size: int = 0
    """Bytes it takes once installed (its ``I:`` field; 0 when absent)."""
    license: str = ""
    """Its ``L:`` field as written (``MIT``, ``GPL-2.0-or-later AND LGPL-2.1-or-later``; "" when absent)."""

    def __getstate__(self) -> Dict[str, object]:
        return {k: getattr(self, k) for k in _PACKAGE_FIELDS}

    def __setstate__(self, state: Dict[str, object]) -> None:
        for k in _PACKAGE_FIELDS:
            setattr(self, k, state.get(k, [] if k == "files" else 0 if k == "installed_size" else ""))

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.source))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Package)
            and (self.name, self.version, self.source) == (other.name, other.version, other.source)
        )

    def __repr__(self) -> str:
        return f"Package({self.name}-{self.version} from {self.source or '?'})"


_PACKAGE_FIELDS = tuple(f.name for f in dataclass_fields(Package))


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def parse_blocks(text: str, source: str = "", with_files: bool = True) -> Iterator[Package]:
    """Yield the packages of an installed database or an ``APKINDEX`` text.

    Unknown fields are ignored; a block without ``P:`` is skipped.  With
    ``with_files`` the ``F:``/``R:`` lines become the package's file list
    (paths relative to the root, without a leading ``/``).
    """
    fields: Dict[str, str] = {}
    files: List[str] = []
    folder = ""

    def finish() -> Optional[Package]:
        name = fields.get("P")
        if not name:
            return None
        return Package(
            name=name,
            version=fields.get("V", ""),
            arch=fields.get("A", ""),
            depends=_atoms(fields.get("D", "")),
            provides=_atoms(fields.get("p", "")),
            provider_priority=_int(fields.get("k", "0")),
            install_if=_atoms(fields.get("i", "")),
            origin=fields.get("o", ""),
            description=fields.get("T", ""),
            files=files,
            source=source,
            installed_size=_int(fields.get("I", "0")),
            license=fields.get("L", ""),
        )

    for line in text.splitlines():
        if not line:
            pkg = finish()
            if pkg is not None:
                yield pkg
            fields, files, folder = {}, [], ""
            continue
        if len(line) < 2 or line[1] != ":":
            continue
        key, value = line[0], line[2:]
        if key == "F":
            folder = value
            if with_files:
                files.append(folder)
        elif key == "R":
            if with_files:
                files.append(f"{folder}/{value}" if folder else value)
        elif key not in fields:
            fields[key] = value
    pkg = finish()
    if pkg is not None:
        yield pkg


# -- one source ---------------------------------------------------------------


class Repository:
    """The packages of one source, indexed by name, provide and owned file."""

    def __init__(self, packages: Iterable[Package], name: str = "", installed: bool = False):
        self.name = name
        self.installed = installed
        self.packages: List[Package] = []
        self.by_name: Dict[str, List[Package]] = {}
        self.provides: Dict[str, List[Tuple[Package, str]]] = {}
        self.owners: Dict[str, Package] = {}
        self.description = ""
        self.tag: Optional[str] = None
        """The ``@tag`` of a repository named with one (its packages need pinning)."""
        for pkg in packages:
            self.add(pkg)

    def add(self, pkg: Package) -> None:
        self.packages.append(pkg)
        self.by_name.setdefault(pkg.name, []).append(pkg)
        for atom in pkg.provides:
            if atom.conflict:
                continue
            self.provides.setdefault(atom.name, []).append((pkg, atom.version))
        for path in pkg.files:
            self.owners.setdefault(path, pkg)

    def __len__(self) -> int:
        return len(self.packages)

    def so_provides(self) -> Dict[str, List[Tuple[Package, str]]]:
        """The ``so:`` provides, keyed by soname (without the ``so:`` prefix)."""
        return {k[3:]: v for k, v in self.provides.items() if k.startswith("so:")}


def parse_installed(text: str, source: str = "installed") -> Repository:
    """Parse an installed database (``/lib/apk/db/installed``)."""
    return Repository(parse_blocks(text, source=source), name=source, installed=True)


# -- several sources ----------------------------------------------------------


class Universe:
    """Sources in priority order: the installed database first, then indexes.

    Provider choice follows apk's solver (:meth:`provider`): installed and
    pinning first, then the highest provided version, then the highest
    ``k:`` provider priority, then the earlier source, then the name.
    """

    def __init__(self, repositories: Iterable[Repository] = ()):
        self.repositories: List[Repository] = list(repositories)
        self._deps: Dict[Package, List[Package]] = {}
        self._closures: Dict[Package, frozenset] = {}

    def add(self, repo: Repository) -> None:
        self.repositories.append(repo)
        self._deps.clear()
        self._closures.clear()

    def __bool__(self) -> bool:
        return bool(self.repositories)

    @property
    def installed(self) -> Optional[Repository]:
        for repo in self.repositories:
            if repo.installed:
                return repo
        return None

    def owner(self, path: str) -> Optional[Package]:
        """The installed package owning ``path`` (relative to the root)."""
        path = path.lstrip("/")
        for repo in self.repositories:
            if repo.installed:
                pkg = repo.owners.get(path)
                if pkg is not None:
                    return pkg
        return None

    def _candidates(self, name: str) -> List[Tuple[int, Repository, Package, str]]:
        out = []
        for order, repo in enumerate(self.repositories):
            for pkg, version in repo.provides.get(name, ()):
                out.append((order, repo, pkg, version))
        return out

    def provider(self, name: str) -> Optional[Package]:
        """The package apk would choose for a provided name (``so:libz.so.1``).

        The order of apk-tools' ``compare_providers`` (``src/solver.c``) for
        a plain ``apk add NAME``: allowed pinning (an installed package, or
        one from an untagged repository) first; an installed package when
        the provides are versioned or the names equal; the latest version
        of the requested name; for one package name, its latest version; the
        highest ``k:`` provider priority; an installed package; the earliest
        repository; then, where apk's order ends, the name.
        """
        candidates = self._candidates(name)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0][2]
        return min(candidates, key=_cmp_to_key(_compare_providers))[2]

    def package(self, name: str) -> Optional[Package]:
        """The package named ``name``: installed first, else the newest, earliest source."""
        best = None
        best_key = None
        for order, repo in enumerate(self.repositories):
            for pkg in repo.by_name.get(name, ()):
                key = (0 if repo.installed else 1, _Neg(_VersionOrder(pkg.version)), order)
                if best_key is None or key < best_key:
                    best, best_key = pkg, key
        return best

    def resolve_atom(self, atom: Atom) -> Optional[Package]:
        """The package satisfying a dependency atom (``None`` for conflicts or nothing)."""
        if atom.conflict:
            return None
        pkg = None
        if not atom.name.startswith(("so:", "cmd:", "pc:", "/")):
            pkg = self.package(atom.name)
        return pkg or self.provider(atom.name)

    def dependencies(self, pkg: Package) -> List[Package]:
        """The packages ``pkg``'s ``D:`` line names directly."""
        try:
            return self._deps[pkg]
        except KeyError:
            pass
        out = []
        for atom in pkg.depends:
            dep = self.resolve_atom(atom)
            if dep is not None and dep != pkg:
                out.append(dep)
        self._deps[pkg] = out
        return out

    def closure(self, pkg: Package) -> frozenset:
        """Every package ``pkg`` pulls in through ``D:``, transitively (not itself)."""
        try:
            return self._closures[pkg]
        except KeyError:
            pass
        seen: set = set()
        stack = [pkg]
        while stack:
            cur = stack.pop()
            for dep in self.dependencies(cur):
                if dep not in seen and dep != pkg:
                    seen.add(dep)
                    stack.append(dep)
        self._closures[pkg] = frozenset(seen)
        return self._closures[pkg]

    def minimal(self, packages: Iterable[Package]) -> List[Package]:
        """Drop every package another one of ``packages`` pulls in.

        Within a dependency cycle the package with the smallest name is
        kept (unless something outside the cycle pulls the cycle in).
        """
        chosen = sorted(set(packages), key=lambda p: p.name)
        closures = {p: self.closure(p) for p in chosen}
        keep = []
        for p in chosen:
            redundant = any(
                q is not p and p in closures[q] and (q not in closures[p] or q.name < p.name)
                for q in chosen
            )
            if not redundant:
                keep.append(p)
        return keep

    def dependency_path(self, start: Package, goal: Package) -> List[Package]:
        """The shortest ``D:`` chain from ``start`` to ``goal`` (both included), or []."""
        previous: Dict[Package, Optional[Package]] = {start: None}
        queue = [start]
        for cur in queue:
            if cur == goal:
                chain = []
                node: Optional[Package] = cur
                while node is not None:
                    chain.append(node)
                    node = previous[node]
                return chain[::-1]
            for dep in self.dependencies(cur):
                if dep not in previous:
                    previous[dep] = cur
                    queue.append(dep)
        return []

    def pulled_in_by(self, pkg: Package, chosen: Iterable[Package]) -> List[Package]:
        """The packages of ``chosen`` (other than ``pkg``) whose closure holds ``pkg``."""
        return [q for q in chosen if q != pkg and pkg in self.closure(q)]


def _compare_providers(a, b) -> int:
    """< 0 when candidate ``a`` ((order, repo, pkg, provided version)) is the
    one apk prefers over ``b``; see :meth:`Universe.provider`."""
    a_order, a_repo, a_pkg, a_ver = a
    b_order, b_repo, b_pkg, b_ver = b
    a_inst, b_inst = a_repo.installed, b_repo.installed
    # allowed pinning: a package only a tagged repository has needs NAME@tag
    a_ok = a_inst or getattr(a_repo, "tag", None) is None
    b_ok = b_inst or getattr(b_repo, "tag", None) is None
    if a_ok != b_ok:
        return -1 if a_ok else 1
    same_name = a_pkg.name == b_pkg.name
    if a_inst != b_inst and (same_name or a_ver or b_ver):
        return -1 if a_inst else 1
    r = _version_cmp(a_ver, b_ver)
    if r:
        return -r
    if same_name:
        r = _version_cmp(a_pkg.version, b_pkg.version)
        if r:
            return -r
    if a_pkg.provider_priority != b_pkg.provider_priority:
        return -1 if a_pkg.provider_priority > b_pkg.provider_priority else 1
    if a_inst != b_inst:
        return -1 if a_inst else 1
    if a_order != b_order:
        return -1 if a_order < b_order else 1
    return (a_pkg.name > b_pkg.name) - (a_pkg.name < b_pkg.name)


def _version_cmp(a: str, b: str) -> int:
    """apk's version order; an absent version is older than any."""
    if a == b:
        return 0
    if not a or not b:
        return -1 if not a else 1
    return compare_versions(a, b)


class _Neg:
    """Invert an orderable value inside a sort key (highest first)."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __lt__(self, other: "_Neg") -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Neg) and self.v == other.v

"""Export lists of real musl builds, shipped in ``data/musl/``.

Each ``data/musl/<version>-<arch>.txt`` holds the names musl's dynamic
linker finds in its own ``libc.so`` (``ld-musl-<arch>.so.1``), as
:func:`rundeps.elf.read_symbols` reads them (``SymbolFacts.defined``),
one a line, sorted, after a header line naming the library they came from.
``scripts/gen_musl_exports.py`` writes them from real libraries: the Alpine
builds in ``../shared/alpine/musl/`` and Debian's ``musl`` package; the tests
check that the shipped lists equal what the script computes today.

They stand in for the root's real ``lib/ld-musl-<arch>.so.1`` when there is
none to read (``rundeps wheel``, a tree without a root).

Choosing a list (:func:`load`):

* ``version`` None: the newest version shipped for ``arch``;
* ``version`` given: that version for ``arch`` if shipped, else the newest
  shipped version *older* than it (an older musl exports a subset, so the
  check errs towards "will not load", never towards a false "fine"), else
  the oldest one shipped;
* an ``arch`` with no list at all: the same choice over every arch's lists
  (musl's exports hardly differ between arches); the result says so
  (``exact_arch`` False) so the output can name what it checked against.

A list of an older version than asked for cannot say whether the names a
newer shipped list adds were there yet (the list of the version asked for
on another arch, else the next newer one): those are
:attr:`MuslExports.uncertain`, and a name that only they could define is
"cannot check", never "missing".

:data:`ALPINE_MUSL` maps an Alpine release to the musl version it ships
(``--alpine 3.20`` -> ``1.2.5``): from the ``main/musl`` package of each
release branch of Alpine's aports (the ``pkgver`` of ``main/musl/APKBUILD``),
checked by the tests against the real ``APKINDEX.tar.gz`` files in
``../shared/alpine/index/`` (3.18, 3.20) and the release each real musl
library in ``../shared/alpine/musl/`` came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import re
from typing import Dict, FrozenSet, List, Optional, Tuple

from ..datafiles import data_files

__all__ = ["ALPINE_MUSL", "MuslExports", "available", "load", "musl_for_alpine", "version_key"]

#: Alpine release -> the musl version its ``main`` repository ships.
ALPINE_MUSL: Dict[str, str] = {
    "3.4": "1.1.14",
    "3.5": "1.1.15",
    "3.6": "1.1.16",
    "3.7": "1.1.18",
    "3.8": "1.1.19",
    "3.9": "1.1.20",
    "3.10": "1.1.22",
    "3.11": "1.1.24",
    "3.12": "1.1.24",
    "3.13": "1.2.2",
    "3.14": "1.2.2",
    "3.15": "1.2.2",
    "3.16": "1.2.3",
    "3.17": "1.2.3",
    "3.18": "1.2.4",
    "3.19": "1.2.4",
    "3.20": "1.2.5",
    "3.21": "1.2.5",
    "3.22": "1.2.5",
}

_NAME_RE = re.compile(r"^(\d+(?:\.\d+)*)-([A-Za-z0-9_]+)\.txt$")


def version_key(version: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def musl_for_alpine(release: str) -> Optional[str]:
    """The musl version of an Alpine release (``"3.20"``, ``"v3.20"``,
    ``"3.20.3"``); None if unknown (``edge`` is the newest known)."""
    r = release.strip().lstrip("v")
    if r == "edge":
        return max(ALPINE_MUSL.values(), key=version_key)
    m = re.match(r"^(\d+\.\d+)", r)
    return ALPINE_MUSL.get(m.group(1)) if m else None


@dataclass(frozen=True, repr=False)
class MuslExports:
    """One shipped export list: ``version``, ``arch``, ``names``
    (frozenset), ``source`` (its header line, without ``#``); ``exact_arch``
    / ``exact_version`` say whether it is the arch and version asked for;
    ``uncertain``: the names the next newer shipped list (``newer``) adds,
    whether the musl asked for has them cannot be told (empty for an exact
    version)."""

    version: str
    arch: str
    names: FrozenSet[str]
    source: str
    exact_arch: bool = True
    exact_version: bool = True
    uncertain: FrozenSet[str] = frozenset()
    newer: Optional[str] = None

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def describe(self) -> str:
        """``musl 1.2.5 (x86_64)``, plus what was asked for when it differs."""
        return f"musl {self.version} ({self.arch})"

    def __repr__(self) -> str:
        return f"MuslExports({self.version!r}, {self.arch!r}, {len(self.names)} names)"


def _folder():
    """The shipped lists: a ``Traversable`` (inside the archive in a zip application)."""
    return data_files("musl")


def available() -> List[Tuple[str, str]]:
    """The shipped (version, arch) lists, oldest first."""
    try:
        names = [e.name for e in _folder().iterdir()]
    except (OSError, ValueError):
        return []
    out = []
    for n in names:
        m = _NAME_RE.match(n)
        if m:
            out.append((m.group(1), m.group(2)))
    out.sort(key=lambda va: (version_key(va[0]), va[1]))
    return out


_loaded: Dict[Tuple[str, str], Tuple[FrozenSet[str], str]] = {}


def _read(version: str, arch: str) -> Tuple[FrozenSet[str], str]:
    key = (version, arch)
    got = _loaded.get(key)
    if got is None:
        lines = _folder().joinpath(f"{version}-{arch}.txt").read_text(encoding="utf-8").splitlines()
        source = lines[0].lstrip("#").strip() if lines and lines[0].startswith("#") else ""
        names = frozenset(ln for ln in lines if ln and not ln.startswith("#"))
        got = _loaded[key] = (names, source)
    return got


def _choose(versions: List[str], want: Optional[str]) -> str:
    """The version of ``versions`` (not empty) to use for ``want``: itself,
    else the nearest older one, else the oldest; the newest for None."""
    versions = sorted(set(versions), key=version_key)
    if want is None:
        return versions[-1]
    if want in versions:
        return want
    older = [v for v in versions if version_key(v) < version_key(want)]
    return older[-1] if older else versions[0]


def load(version: Optional[str] = None, arch: str = "x86_64") -> Optional[MuslExports]:
    """The export list to check against (see the module documentation for
    the choice); None if no list is shipped at all."""
    lists = available()
    if not lists:
        return None
    same_arch = [v for v, a in lists if a == arch]
    exact_arch = bool(same_arch)
    if exact_arch:
        chosen_v = _choose(same_arch, version)
        chosen_a = arch
    else:
        chosen_v = _choose([v for v, _a in lists], version)
        # Several arches at that version: prefer x86_64, then the first by name.
        arches = sorted(a for v, a in lists if v == chosen_v)
        chosen_a = "x86_64" if "x86_64" in arches else arches[0]
    names, source = _read(chosen_v, chosen_a)
    exact_version = version is None or version == chosen_v
    uncertain: FrozenSet[str] = frozenset()
    newer = None
    if version is not None and not exact_version and version_key(chosen_v) < version_key(version):
        # the version asked for on another arch says best what it has;
        # else the next newer list, of the same arch where one is shipped
        pool = [(v, a) for v, a in lists if version_key(v) > version_key(chosen_v)]
        same = [(v, a) for v, a in pool if a == chosen_a]
        exact = [(v, a) for v, a in pool if v == version]
        pick = min(exact or same or pool, key=lambda va: (version_key(va[0]), va[1] != "x86_64", va[1]),
                   default=None)
        if pick is not None:
            newer = f"{pick[0]} ({pick[1]})"
            uncertain = _read(*pick)[0] - names
    return MuslExports(chosen_v, chosen_a, names, source, exact_arch=exact_arch, exact_version=exact_version,
                       uncertain=uncertain, newer=newer)

"""From a library name a Python loader is given to the sonames that can
serve it: :func:`candidate_sonames` (best first), :func:`soname_matcher`,
and :func:`is_libc_name` for the names musl's libc answers itself.
"""

from __future__ import annotations

import posixpath
import re
from typing import Callable, Iterable, List, Optional, Tuple

__all__ = ["LIBC_NAMES", "candidate_sonames", "is_libc_name", "soname_matcher"]

LIBC_NAMES = frozenset(
    {"c", "m", "dl", "pthread", "rt", "util", "crypt", "resolv", "xnet", "trace"}
)
"""``find_library`` names (without ``lib``) that musl serves from its libc itself."""

_SO_RE = re.compile(r"^(?P<stem>.+?)\.so(?P<ver>(?:\.\d+)*)$")
_TRAILING_VERSION_RE = re.compile(r"^(?P<stem>.+?)-?(?P<ver>\d+(?:\.\d+)*)$")


def is_libc_name(name: str) -> bool:
    """True for a name musl serves from libc itself (``c``, ``libm.so.6``, ``pthread``)."""
    base = posixpath.basename(name)
    m = _SO_RE.match(base)
    stem = m.group("stem") if m else base
    if stem.startswith("lib"):
        stem = stem[3:]
    return stem in LIBC_NAMES or stem.startswith("c.musl-") or base.startswith("ld-musl-")


def _version_tuple(ver: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in ver.split(".") if p)


def _ranker(name: str) -> Callable[[str], Optional[tuple]]:
    """A function giving a sort key (smaller is better) for a soname that can
    satisfy ``name``, or ``None`` for one that cannot."""
    base = posixpath.basename(name.strip())
    m = _SO_RE.match(base)
    if m:
        stem, ver = m.group("stem"), _version_tuple(m.group("ver"))

        def rank_file(soname: str) -> Optional[tuple]:
            if soname == base:
                return (0,)
            sm = _SO_RE.match(soname)
            if not sm or sm.group("stem") != stem:
                return None
            sver = _version_tuple(sm.group("ver"))
            if ver and sver == ver[: len(sver)]:
                # libfoo.so.1 provides the file libfoo.so.1.2.3: longest first
                return (1, -len(sver))
            if not ver:
                # unversioned libfoo.so (really the -dev symlink): newest soname
                return (2,) + tuple(-v for v in sver)
            return None

        return rank_file

    stem = base if base.startswith("lib") else "lib" + base
    tm = _TRAILING_VERSION_RE.match(stem)
    short = tm.group("stem") if tm else None
    want = _version_tuple(tm.group("ver")) if tm else ()
    if short in ("", "lib"):
        short = None

    def rank_stem(soname: str) -> Optional[tuple]:
        sm = _SO_RE.match(soname)
        if not sm:
            return None
        sver = _version_tuple(sm.group("ver"))
        neg = tuple(-v for v in sver)
        if sm.group("stem") == stem:
            # find_library("gtk-3") -> libgtk-3.so.0: the name as written
            return (0,) + neg
        if short is not None and sm.group("stem") == short:
            # "cairo-2" / "magic1" (Windows-style) -> libcairo.so.2 first
            return (1, 0 if sver[: len(want)] == want else 1) + neg
        return None

    return rank_stem


def _bare(soname: str) -> str:
    return soname[3:] if soname.startswith("so:") else soname


def soname_matcher(name: str) -> Callable[[str], bool]:
    """A predicate: can this soname (``libmagic.so.1`` or ``so:libmagic.so.1``)
    satisfy a run-time load of ``name``?"""
    rank = _ranker(name)
    return lambda soname: rank(_bare(soname)) is not None


def candidate_sonames(name: str, available: Iterable[str]) -> List[str]:
    """The sonames of ``available`` that can satisfy loading ``name``, best first.

    ``available`` is what an index or database provides (bare sonames, or
    ``so:`` provide names — returned as given).  Rules:

    * a file name (``libmagic.so.1``, ``/usr/lib/libfoo.so.1.2.3``): that exact
      soname, else a soname that is a version prefix of it (``libfoo.so.1``);
      an unversioned ``libfoo.so`` gives the ``libfoo.so.N`` sonames, highest
      first (loading it really needs the ``-dev`` symlink);
    * a ``find_library`` name (``magic``, ``libmagic``, ``gtk-3``): the
      ``libmagic.so.N`` sonames, highest N first; a trailing version written
      Windows-style (``cairo-2``, ``magic1``) is tried as part of the name
      first, then as the soname's version (``libcairo.so.2`` preferred over
      other ``libcairo.so.N``).
    """
    rank = _ranker(name)
    scored = []
    for soname in set(available):
        key = rank(_bare(soname))
        if key is not None:
            scored.append((key, soname))
    scored.sort()
    return [s for _, s in scored]

"""What a musl build's loader does that its exports cannot show: whether it
applies ``DT_RELR`` relocations.

Upstream musl applies ``DT_RELR`` from 1.2.4 on (``ldso/dynlink.c``
``do_relr_relocs``, committed 2022-08-02), and distributions carry that
change back into older releases: Alpine's ``1.2.3-r1`` applies it, Debian's
``1.2.3`` does not. So an upstream version older than 1.2.4, or an export
list, says nothing either way. :func:`relr_support` tells it, in this order:

1. **the loader file itself**: its SHA-256 among the builds whose behaviour
   was seen by running them (``data/musl/builds.json``, written by
   ``scripts/probe_musl_builds.py``, which runs each loader on a library
   with packed relative relocations; the tests run the loaders at hand
   again);
2. **the package's version**: upstream 1.2.4 or later, or a git snapshot
   taken after the change (``1.2.3_git20221007``), applies it; an Alpine
   package release in the same table (``release``) does what its loader did
   (one release is one build of one ``APKBUILD``, its patches the same on
   every arch);
3. otherwise it **cannot be told**: ``applies`` is None, and a file that
   needs it is "cannot check", never "will not load".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from ..datafiles import data_files

__all__ = ["Capability", "KnownBuild", "known_builds", "relr_support", "file_digest"]

#: The upstream commit that made musl's loader apply ``DT_RELR``: a git
#: snapshot of musl taken on this day or later has it.
RELR_SNAPSHOT = "20220802"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:_git(\d{8}))?(?:[-_].*)?$")

#: A loader is read whole for its digest only below this size (musl's is
#: under 1 MB on every arch).
MAX_LOADER_BYTES = 8 << 20


@dataclass(frozen=True)
class Capability:
    """Whether a musl build does something: ``applies`` True, False, or None
    when it cannot be told; ``basis``: how it was told, or why it could not
    be (a phrase for the output, e.g. ``"seen by running this build"``)."""

    applies: Optional[bool]
    basis: str


@dataclass(frozen=True)
class KnownBuild:
    """One loader whose behaviour was seen: its file's ``sha256``, what it
    is (``build``: "Alpine musl 1.2.3-r1 x86_64"), its Alpine package
    version-release (``release``, None for another vendor's build) and
    whether it applied ``DT_RELR`` relocations (``relr``)."""

    sha256: str
    build: str
    release: Optional[str]
    relr: bool


_known: Optional[Dict[str, KnownBuild]] = None


def known_builds() -> Dict[str, KnownBuild]:
    """The shipped table of loaders seen running, by SHA-256 ({} when the
    data file is missing or unreadable)."""
    global _known
    if _known is None:
        table: Dict[str, KnownBuild] = {}
        try:
            import json

            raw = json.loads(data_files("musl", "builds.json").read_text(encoding="utf-8"))
            for entry in raw.get("builds", []):
                release = entry.get("release")
                b = KnownBuild(str(entry["sha256"]), str(entry["build"]),
                               str(release) if release else None, bool(entry["relr"]))
                table[b.sha256] = b
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            table = {}
        _known = table
    return _known


def _upstream(version: str) -> Optional[Tuple[Tuple[int, int, int], Optional[str]]]:
    """((major, minor, patch), git snapshot date or None) of a musl package
    version (``1.2.3-r1``, ``1.2.3_git20221007-r0``, ``1.2.5``)."""
    m = _VERSION_RE.match(version.strip())
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))), m.group(4)


def relr_support(version: Optional[str] = None, digest: Optional[Callable[[], Optional[str]]] = None,
                 name: str = "this musl") -> Capability:
    """Whether the loader of a musl build applies ``DT_RELR`` relocations.

    ``version``: the package's version(-release) when known; ``digest()``:
    the SHA-256 of the loader file, when there is one (called only here,
    when a file that needs the capability is judged); ``name``: how the
    output names the build.
    """
    sha = digest() if digest is not None else None
    build = known_builds().get(sha) if sha else None
    if build is not None:  # the loader itself, seen running: the truth
        return Capability(build.relr, f"it is {build.build}, seen running")
    if version:
        seen = next((b for b in known_builds().values() if b.release == version.strip()), None)
        if seen is not None:
            return Capability(seen.relr, f"{seen.build} was seen running")
        up = _upstream(version)
        if up is not None:
            release, snapshot = up
            if release >= (1, 2, 4):
                return Capability(True, "musl applies them from 1.2.4 on")
            if snapshot is not None and snapshot >= RELR_SNAPSHOT:
                return Capability(True, f"a musl snapshot of {snapshot}, after the change that applies them")
        return Capability(None, f"musl applies them from 1.2.4 on, and {name} is not a build known to "
                                "carry that back")
    return Capability(None, "it is not a build rundeps knows, and no package version is at hand")


def file_digest(read: Callable[[int], bytes]) -> Optional[str]:
    """The SHA-256 (hex) of a loader read with ``read(limit)``, or None when
    it cannot be read or is larger than :data:`MAX_LOADER_BYTES`."""
    try:
        data = read(MAX_LOADER_BYTES + 1)
    except (OSError, ValueError):
        return None
    if not data or len(data) > MAX_LOADER_BYTES:
        return None
    import hashlib  # here, not at the top: a run that hashes no loader skips OpenSSL's start-up (4-8 ms)

    return hashlib.sha256(data).hexdigest()

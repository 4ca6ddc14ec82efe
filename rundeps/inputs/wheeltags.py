"""A wheel's names and tags: its file name's parts (:func:`parse_wheel_filename`),
compressed tag sets (:func:`expand_tags`), the ``WHEEL`` file's lines
(:func:`parse_wheel_metadata`) and what a platform tag says about libc and
architecture (:func:`classify_platform`, :func:`tags_verdict`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Tuple

from ..platform import WHEEL_ARCHES

__all__ = ["WHEEL_ARCHES", "PlatformTag", "classify_platform", "WheelName", "parse_wheel_filename", "expand_tags",
           "parse_wheel_metadata", "canonical_name", "tags_verdict"]

_MANYLINUX_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_PLATFORM_RES = [
    (re.compile(r"^musllinux_(\d+)_(\d+)_(.+)$"), "musl"),
    (re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$"), "glibc"),
    (re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_(.+)$"), "glibc"),
    (re.compile(r"^linux_(.+)$"), "glibc"),
]


@dataclass(frozen=True)
class PlatformTag:
    """One platform tag, classified.

    ``libc`` is ``'musl'``, ``'glibc'``, ``'pure'`` (``any``) or ``'unknown'``
    (macOS, Windows, anything else); ``arch`` the Alpine name (``None`` if
    unknown or pure); ``version`` the libc version the tag asks for
    (``(1, 2)`` for ``musllinux_1_2``; ``None`` for ``linux_*`` and others).
    """

    tag: str
    libc: str
    arch: Optional[str]
    wheel_arch: Optional[str]
    version: Optional[Tuple[int, int]]


def classify_platform(tag: str) -> PlatformTag:
    """Classify one platform tag (``musllinux_1_1_x86_64``, ``any``, ...)."""
    if tag == "any":
        return PlatformTag(tag, "pure", None, None, None)
    for regex, libc in _PLATFORM_RES:
        m = regex.match(tag)
        if not m:
            continue
        groups = m.groups()
        if len(groups) == 3:
            version: Optional[Tuple[int, int]] = (int(groups[0]), int(groups[1]))
        elif len(groups) == 2:
            version = _MANYLINUX_LEGACY[groups[0]]
        else:
            version = None
        wheel_arch = groups[-1]
        return PlatformTag(tag, libc, WHEEL_ARCHES.get(wheel_arch), wheel_arch, version)
    return PlatformTag(tag, "unknown", None, None, None)


@dataclass(frozen=True)
class WheelName:
    """The parts of ``{dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl``."""

    name: str
    version: str
    build: Optional[str]
    python: str
    abi: str
    platform: str

    @property
    def tags(self) -> FrozenSet[Tuple[str, str, str]]:
        return frozenset(expand_tags(self.python, self.abi, self.platform))


def parse_wheel_filename(filename: str) -> Optional[WheelName]:
    """Parse a wheel's file name (its base name); ``None`` if it is not one."""
    base = os.path.basename(filename)
    if not base.endswith(".whl"):
        return None
    parts = base[: -len(".whl")].split("-")
    if len(parts) == 5:
        name, version, python, abi, platform = parts
        build = None
    elif len(parts) == 6:
        name, version, build, python, abi, platform = parts
        if not build[:1].isdigit():
            return None
    else:
        return None
    if not all(parts):
        return None
    return WheelName(name, version, build, python, abi, platform)


def expand_tags(python: str, abi: str, platform: str) -> List[Tuple[str, str, str]]:
    """Expand compressed tag sets: ``cp39.cp310-abi3-a.b`` gives four triples."""
    return [
        (p, a, pl)
        for p in python.split(".")
        for a in abi.split(".")
        for pl in platform.split(".")
        if p and a and pl
    ]


def parse_wheel_metadata(text: str) -> Dict[str, List[str]]:
    """The ``Key: value`` lines of a ``WHEEL`` file, values per key in order."""
    out: Dict[str, List[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line[:1] in " \t":
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def canonical_name(name: str) -> str:
    """A distribution name as compared: runs of ``-_.`` one ``_``, lower case."""
    return re.sub(r"[-_.]+", "_", name).lower()


def tags_verdict(platforms: Tuple[PlatformTag, ...]) -> str:
    """The libc the platform tags say: ``musl`` if any says so, else ``glibc``, ``pure`` or ``unknown``."""
    libcs = {p.libc for p in platforms}
    if "musl" in libcs:
        return "musl"
    if "glibc" in libcs:
        return "glibc"
    if libcs == {"pure"}:
        return "pure"
    return "unknown"

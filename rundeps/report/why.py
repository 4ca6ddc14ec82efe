"""Why a package is in the set: its sonames and their files, run-time
loads, and the chosen packages that pull it in (for the text and JSON
reports alike)."""

from __future__ import annotations

from typing import Any, Dict, List

from ..apk.model import Package
from ..resolve import Resolution

__all__ = ["why_package"]


def why_package(res: Resolution, pkg: Package) -> Dict[str, Any]:
    """Why ``pkg`` is in the set: its sonames and the files that need them,
    and the chosen packages that pull it in through ``D:``."""
    sonames: Dict[str, List[str]] = {}
    for e in res.edges:
        if e.package == pkg:
            sonames.setdefault(e.soname, []).append(e.path)
    dlopen = sorted(name for name, p in res.extra.items() if p == pkg)
    pulled = []
    if res.universe is not None and pkg not in res.packages:
        pulled = sorted(q.name for q in res.universe.pulled_in_by(pkg, res.packages))
    return {
        "sonames": {s: sorted(set(v)) for s, v in sorted(sonames.items())},
        "dlopen": dlopen,
        "pulled_in_by": pulled,
        "in_minimal_set": pkg in res.packages,
    }

"""``--format cyclonedx`` and ``--sbom FILE``: the CycloneDX SBOM of a run
(:mod:`rundeps.report.cyclonedx`), on stdout or written beside the normal
output."""

from __future__ import annotations

import os
from typing import Callable, Optional

import click


def sbom_option(fn: Callable) -> Callable:
    """``--sbom FILE``."""
    return click.option("--sbom", "sbom_file", type=click.Path(dir_okay=False), metavar="FILE", default=None,
                        help="Also write a CycloneDX 1.6 SBOM (JSON) of what is needed at run time, with the "
                             "load graph, to FILE (see docs/sbom.md); stdout keeps the --format output.")(fn)


def wanted(kw) -> bool:
    """True when the run writes an SBOM (``--format cyclonedx`` or ``--sbom``)."""
    return kw.get("fmt") == "cyclonedx" or bool(kw.get("sbom_file"))


def emit(kw, build: Callable[[], str]) -> Optional[str]:
    """Build the SBOM text when asked for, write it to ``--sbom FILE``
    (whole or not at all), and return it for stdout with ``--format
    cyclonedx`` (else None)."""
    if not wanted(kw):
        return None
    text = build()
    path = kw.get("sbom_file")
    if path:
        tmp = f"{path}.part"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return text if kw.get("fmt") == "cyclonedx" else None


def tree_text(res, kw) -> Optional[str]:
    """:func:`emit` for ``scan``: a root folder or ``--image``."""
    from ..report.cyclonedx import tree_sbom

    root = os.path.abspath(kw.get("root") or "/")
    return emit(kw, lambda: tree_sbom(res, root, kw.get("image"), kw.get("platform"), kw.get("alpine")))


def wheel_text(checks, kw) -> Optional[str]:
    """:func:`emit` for ``wheel``."""
    from ..report.cyclonedx import wheel_sbom

    return emit(kw, lambda: wheel_sbom(checks, kw.get("alpine")))

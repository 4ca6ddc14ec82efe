"""Where rundeps' package data lives: ``data/`` in the source tree,
installed as the package ``rundeps.data``."""

from __future__ import annotations

import os

__all__ = ["data_path"]


def _data_dir() -> str:
    try:
        from . import data  # type: ignore[attr-defined]  # installed from data/
    except ImportError:
        # run from a source checkout that is not installed (or shadows the
        # installed copy): data/ stands beside the package folder
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
    return os.path.dirname(os.path.abspath(data.__file__))


def data_path(*parts: str) -> str:
    """The file-system path of a shipped data file or folder, e.g.
    ``data_path("keys")``. It may not exist; the caller checks."""
    return os.path.join(_data_dir(), *parts)

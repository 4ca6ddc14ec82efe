"""Where rundeps' package data lives: ``data/`` in the source tree,
installed as the package ``rundeps.data``.

Read it through :func:`data_files` (a :class:`pathlib.Path`, or an
``importlib.resources`` ``Traversable`` when rundeps runs from a zip
application, ``dist/rundeps.pyz``): list with ``iterdir()``, read with
``read_bytes()``/``read_text()``, never assuming a real folder.
:func:`data_path` is the place as text, for messages.
"""

from __future__ import annotations

import os

__all__ = ["data_files", "data_path"]


def _source_dir() -> str:
    # run from a source checkout that is not installed (or shadows the
    # installed copy): data/ stands beside the package folder
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def data_files(*parts: str):
    """A shipped data file or folder, e.g. ``data_files("keys")``, as a
    ``Traversable``: a :class:`pathlib.Path` on disk, a path inside the
    archive in a zip application. It may not exist; the caller checks."""
    try:
        from . import data  # type: ignore[attr-defined]  # installed from data/
    except ImportError:
        from pathlib import Path

        top = Path(_source_dir())
    else:
        origin = getattr(data, "__file__", None)
        if origin and os.path.isfile(origin):
            from pathlib import Path

            top = Path(os.path.dirname(os.path.abspath(origin)))
        else:  # inside a zip (or another loader): only importlib.resources knows
            from importlib.resources import files

            top = files(data)
    for part in parts:
        top = top.joinpath(part)
    return top


def data_path(*parts: str) -> str:
    """Where a shipped data file or folder is, as text, e.g.
    ``data_path("keys")``: a file-system path, or inside a zip application
    ``/path/rundeps.pyz/rundeps/data/keys`` (for messages: open it with
    :func:`data_files`). It may not exist; the caller checks."""
    return str(data_files(*parts))

"""Where rundeps' package data lives: ``data/`` in the source tree,
installed as the package ``rundeps.data``.

Read it through :func:`data_files` (on disk a :class:`DiskEntry`, the few
``Traversable`` methods rundeps uses without importing :mod:`pathlib`, whose
own imports cost a repeat scan about 6 ms; an ``importlib.resources``
``Traversable`` when rundeps runs from a zip application,
``dist/rundeps.pyz``): list with ``iterdir()``, read with
``read_bytes()``/``read_text()``, never assuming a real folder.
:func:`data_path` is the place as text, for messages.
"""

from __future__ import annotations

import os

__all__ = ["data_files", "data_path", "DiskEntry"]


class DiskEntry:
    """A data file or folder on disk, as a ``Traversable`` (``name``,
    ``joinpath``/``/``, ``iterdir``, ``is_file``, ``is_dir``, ``open``,
    ``read_bytes``, ``read_text``); ``str()`` is its path."""

    __slots__ = ("_path",)

    def __init__(self, path: str) -> None:
        self._path = path

    def __str__(self) -> str:
        return self._path

    __fspath__ = __str__

    def __repr__(self) -> str:
        return f"DiskEntry({self._path!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, DiskEntry) and other._path == self._path

    def __hash__(self) -> int:
        return hash(self._path)

    @property
    def name(self) -> str:
        return os.path.basename(self._path)

    def joinpath(self, *parts: str) -> "DiskEntry":
        return DiskEntry(os.path.join(self._path, *parts)) if parts else self

    def __truediv__(self, part: str) -> "DiskEntry":
        return self.joinpath(part)

    def iterdir(self):
        return iter([DiskEntry(os.path.join(self._path, n)) for n in os.listdir(self._path)])

    def is_file(self) -> bool:
        return os.path.isfile(self._path)

    def is_dir(self) -> bool:
        return os.path.isdir(self._path)

    def exists(self) -> bool:
        return os.path.exists(self._path)

    def open(self, mode: str = "r", *args, **kwargs):
        return open(self._path, mode, *args, **kwargs)

    def read_bytes(self) -> bytes:
        with open(self._path, "rb") as f:
            return f.read()

    def read_text(self, encoding=None, errors=None) -> str:
        with open(self._path, encoding=encoding, errors=errors) as f:
            return f.read()


def _source_dir() -> str:
    # run from a source checkout that is not installed (or shadows the
    # installed copy): data/ stands beside the package folder
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def data_files(*parts: str):
    """A shipped data file or folder, e.g. ``data_files("keys")``, as a
    ``Traversable``: a :class:`DiskEntry` on disk, a path inside the
    archive in a zip application. It may not exist; the caller checks."""
    try:
        from . import data  # type: ignore[attr-defined]  # installed from data/
    except ImportError:
        top = DiskEntry(_source_dir())
    else:
        origin = getattr(data, "__file__", None)
        if origin and os.path.isfile(origin):
            top = DiskEntry(os.path.dirname(os.path.abspath(origin)))
        else:  # inside a zip (or another loader): only importlib.resources knows
            from importlib.resources import files

            top = files(data)  # type: ignore[assignment]  # a Traversable: the same protocol
    for part in parts:
        top = top.joinpath(part)
    return top


def data_path(*parts: str) -> str:
    """Where a shipped data file or folder is, as text, e.g.
    ``data_path("keys")``: a file-system path, or inside a zip application
    ``/path/rundeps.pyz/rundeps/data/keys`` (for messages: open it with
    :func:`data_files`). It may not exist; the caller checks."""
    return str(data_files(*parts))

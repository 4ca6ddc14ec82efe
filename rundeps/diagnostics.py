"""The one channel through which every stage says what is not its result."""

from __future__ import annotations

from typing import Callable, Optional

Warn = Callable[[str], None]
"""A sink for one line of text."""

FileError = Callable[[str, str], None]
"""A sink for (path, reason): a file that could not be read."""

Progress = Callable[[int], None]
"""Told how many more files were read."""


def _ignore(*_args: object) -> None:
    return None


class Diagnostics:
    """Where a check says what is not its result, in one object:
    ``warning(msg)`` (it carries on past), ``note(msg)`` (what it did on
    purpose, or could not judge), ``info(msg)`` (where it found things: the
    cached index it used), ``file_error(path, reason)`` (a file it could not
    read), and ``progress`` (``progress(n)`` as files are read, or None).
    Each defaults to saying nothing."""

    __slots__ = ("warning", "note", "info", "file_error", "progress")

    def __init__(self, warning: Optional[Warn] = None, note: Optional[Warn] = None, info: Optional[Warn] = None,
                 file_error: Optional[FileError] = None, progress: Optional[Progress] = None):
        # "is None", not "or": a sink may be a callable that is falsy (an empty list subclass)
        self.warning: Warn = _ignore if warning is None else warning
        self.note: Warn = _ignore if note is None else note
        self.info: Warn = _ignore if info is None else info
        self.file_error: FileError = _ignore if file_error is None else file_error
        self.progress: Optional[Progress] = progress

    def quiet(self) -> "Diagnostics":
        """The same sinks without the progress count."""
        return Diagnostics(self.warning, self.note, self.info, self.file_error)


SILENT = Diagnostics()
"""Diagnostics that say nothing (the default of every stage)."""

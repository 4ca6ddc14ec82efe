"""Errors rundeps reports to a user as one line on stderr, with an exit code."""

from __future__ import annotations

import os
import stat as _stat
from typing import Optional

__all__ = ["RundepsError", "UsageError", "SourceError", "EXIT_OK", "EXIT_UNRESOLVED", "EXIT_ERROR",
           "special_kind", "refuse_special"]

EXIT_OK = 0
"""Every needed soname resolved."""
EXIT_UNRESOLVED = 1
"""Some needed sonames did not resolve (stdout still lists what did)."""
EXIT_ERROR = 2
"""Bad usage, or a root, image, database, index or cache that cannot be used."""


class RundepsError(Exception):
    """A problem to report as one line (``str(err)``) and exit with ``exit_code``."""

    exit_code = EXIT_ERROR


class UsageError(RundepsError):
    """The command line asks for something that cannot work."""


class SourceError(RundepsError):
    """A database or repository index that cannot be read, fetched or trusted."""


_SPECIAL_KINDS = (("S_ISFIFO", "a FIFO"), ("S_ISCHR", "a character device"), ("S_ISBLK", "a block device"),
                  ("S_ISSOCK", "a socket"))


def special_kind(path: str) -> Optional[str]:
    """"a FIFO", "a character device", "a block device" or "a socket" when
    host ``path`` (symlinks followed) is one of those, else None (a regular
    file, a folder, or nothing there). Only ``os.stat``: nothing is opened,
    so a FIFO cannot block the caller."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    for test, kind in _SPECIAL_KINDS:
        if getattr(_stat, test)(mode):
            return kind
    return None


def refuse_special(path: str, what: str = "file", option: str = "") -> None:
    """A :class:`UsageError` when host ``path`` exists and is a FIFO, device
    or socket where ``what`` (a file, a folder) is read: reading one would
    block or never end. ``option`` (``--db``) starts the message."""
    kind = special_kind(path)
    if kind is not None:
        raise UsageError(f"{option + ' ' if option else ''}{path} is {kind}, not a {what}")

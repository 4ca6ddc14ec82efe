"""Errors rundeps reports to a user as one line on stderr, with an exit code."""

from __future__ import annotations

__all__ = ["RundepsError", "UsageError", "SourceError", "EXIT_OK", "EXIT_UNRESOLVED", "EXIT_ERROR"]

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

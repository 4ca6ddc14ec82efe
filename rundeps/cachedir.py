"""Where rundeps keeps its caches: ``--cache-dir``, ``$RUNDEPS_CACHE_DIR``, XDG."""

from __future__ import annotations

import os

__all__ = ["argv_cache_dir", "default_cache_dir"]


def default_cache_dir(explicit=None) -> str:
    """The cache folder: ``explicit``, else ``$RUNDEPS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/rundeps``, else ``~/.cache/rundeps``.

    (``os.path`` rather than ``pathlib``: this is on every run's start-up path.)
    """
    if explicit:
        return os.fspath(explicit)
    env = os.environ.get("RUNDEPS_CACHE_DIR")
    if env:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "rundeps")
    return os.path.join(os.path.expanduser("~"), ".cache", "rundeps")


def argv_cache_dir(argv) -> str:
    """The cache folder a raw command line names (``--cache-dir DIR`` or
    ``--cache-dir=DIR``, the last one before ``--``), else
    :func:`default_cache_dir`'s: for the code that runs before click parses
    the options (the zip application's bytecode cache, a run's record)."""
    explicit = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--cache-dir" and i + 1 < len(argv):
            explicit = argv[i + 1]
        elif arg.startswith("--cache-dir="):
            explicit = arg.split("=", 1)[1]
    return default_cache_dir(explicit)

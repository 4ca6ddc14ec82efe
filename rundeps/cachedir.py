"""Where rundeps keeps its caches: ``--cache-dir``, ``$RUNDEPS_CACHE_DIR``, XDG."""

from __future__ import annotations

import os

__all__ = ["default_cache_dir"]


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

"""Where rundeps keeps its caches: ``--cache-dir``, ``$RUNDEPS_CACHE_DIR``, XDG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

__all__ = ["default_cache_dir"]


def default_cache_dir(explicit: Optional[str] = None) -> Path:
    """The cache folder: ``explicit``, else ``$RUNDEPS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/rundeps``, else ``~/.cache/rundeps``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("RUNDEPS_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "rundeps"
    return Path.home() / ".cache" / "rundeps"

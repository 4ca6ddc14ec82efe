"""The on-disk index cache: :class:`IndexCache`, a ``diskcache.Cache`` in
``<cache dir>/index`` holding three kinds of entries (``meta:<url>``,
``raw:<sha256>``, ``parsed:<sha256>``; :mod:`rundeps.apk.fetch` says what
each holds and when it is trusted), and :func:`clear_cache`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import List, Optional, Union

from ..diagnostics import SILENT, Diagnostics
from ..errors import SourceError
from .download import short_reason
from .index import IndexFile

__all__ = ["IndexCache", "clear_cache"]


class IndexCache:
    """The index cache, a ``diskcache.Cache`` in ``<directory>/index``.

    Open with :meth:`open`, which returns None (after one warning) when the
    folder cannot be used.  Every read treats damage as a miss and drops the
    entry; the first failing write warns once and turns writing off.
    """

    SUBDIR = "index"

    def __init__(self, cache, directory: str, diag: Diagnostics = SILENT):
        self._cache = cache
        self.directory = directory
        self._diag = diag
        self.writable = True

    @classmethod
    def open(cls, directory: Union[str, os.PathLike], diag: Diagnostics = SILENT) -> Optional["IndexCache"]:
        """The cache under ``directory`` (the rundeps cache folder), or None
        (``diag.warning`` says why)."""
        path = os.path.join(os.fspath(directory), cls.SUBDIR)
        try:
            import diskcache

            cache = diskcache.Cache(
                path,
                size_limit=2**30,
                eviction_policy="least-recently-stored",
                statistics=False,
                timeout=60,
            )
        except Exception as e:
            diag.warning(f"cache folder {path} cannot be used ({short_reason(e)}); continuing without a cache")
            return None
        return cls(cache, path, diag)

    def close(self) -> None:
        try:
            self._cache.close()
        except Exception:
            pass

    def __enter__(self) -> "IndexCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # low level
    def _get(self, key: str):
        try:
            return self._cache.get(key, default=None, retry=True)
        except Exception:
            self._drop(key)
            return None

    def _drop(self, key: str) -> None:
        try:
            self._cache.delete(key, retry=True)
        except Exception:
            pass

    def _set(self, key: str, value) -> bool:
        if not self.writable:
            return False
        try:
            self._cache.set(key, value, retry=True)
            return True
        except Exception as e:
            self.writable = False
            self._diag.warning(f"cache folder {self.directory} is not writable ({short_reason(e)}); not caching")
            return False

    def _has(self, key: str) -> bool:
        try:
            return key in self._cache
        except Exception:
            return False

    # entries
    def get_meta(self, location: str) -> Optional[dict]:
        key = "meta:" + location
        raw = self._get(key)
        if raw is None:
            return None
        try:
            meta = json.loads(raw)
            if not isinstance(meta, dict) or not re.fullmatch(r"[0-9a-f]{64}", meta.get("sha256", "")):
                raise ValueError
            float(meta["checked_at"])
            return meta
        except Exception:
            self._drop(key)
            return None

    def set_meta(self, location: str, meta: dict) -> None:
        self._set("meta:" + location, json.dumps(meta, sort_keys=True))

    def drop_meta(self, location: str) -> None:
        self._drop("meta:" + location)

    def get_raw(self, sha256: str) -> Optional[bytes]:
        key = "raw:" + sha256
        data = self._get(key)
        if data is None:
            return None
        if not isinstance(data, bytes) or hashlib.sha256(data).hexdigest() != sha256:
            self._drop(key)
            return None
        return data

    def has_raw(self, sha256: str) -> bool:
        return self._has("raw:" + sha256)

    def set_raw(self, sha256: str, data: bytes) -> None:
        self._set("raw:" + sha256, data)

    def get_parsed(self, sha256: str, name: str) -> Optional[IndexFile]:
        key = "parsed:" + sha256
        data = self._get(key)
        if data is None:
            return None
        try:
            index = IndexFile.from_bytes(data, name)
            if index.sha256 != sha256:
                raise ValueError("wrong entry")
            return index
        except Exception:
            self._drop(key)
            return None

    def set_parsed(self, index: IndexFile) -> None:
        self._set("parsed:" + index.sha256, index.to_bytes())

    def locations(self) -> List[str]:
        """The URLs with a cached index."""
        out = []
        try:
            for key in self._cache.iterkeys():
                if isinstance(key, str) and key.startswith("meta:"):
                    out.append(key[5:])
        except Exception:
            pass
        return sorted(out)

    def clear(self) -> int:
        """Remove every entry; return how many there were."""
        try:
            return int(self._cache.clear(retry=True))
        except Exception as e:
            raise SourceError(f"cannot clear the index cache {self.directory}: {short_reason(e)}") from None


def clear_cache(directory: Union[str, os.PathLike]) -> bool:
    """Remove ``<directory>/index`` entirely, even when it is damaged.

    Returns True if there was something to remove.  (``IndexCache.clear``
    is the gentle way when another process may be using the cache.)
    """
    path = os.path.join(os.fspath(directory), IndexCache.SUBDIR)
    if not os.path.lexists(path):
        return False
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except OSError as e:
        raise SourceError(f"cannot remove the index cache {path}: {e.strerror or e}") from None
    return True

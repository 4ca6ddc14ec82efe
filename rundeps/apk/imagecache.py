"""The image's own apk cache: ``APKINDEX.<hash>.tar.gz`` files that ``apk
update`` (or ``apk add`` without ``--no-cache``) leaves in the root.

apk keeps one cached index per repository in its cache folder: the root's
``etc/apk/cache`` when that opens as a folder (usually a symlink to
``/var/cache/apk``), else ``var/cache/apk``.  The file name is
``APKINDEX.`` + the first 4 bytes (8 hex digits) of a digest of the
repository + ``.tar.gz``; which digest of what depends on apk-tools' version,
so every name a version could have written is tried:

* apk-tools 3 (``src/database.c``: ``apk_repo_index_cache_url`` formats
  ``APKINDEX.${hash:8}.tar.gz`` with the hash ``add_repository_component``
  computes): SHA-256 of the index URL, the repository URL with trailing
  ``/`` removed, then ``/<arch>/APKINDEX.tar.gz``;
* apk-tools 2.12.x and 2.14.1+ (``apk_repo_format_cache_index`` over
  ``repo->csum``, which ``apk_db_add_repository`` computes from
  ``apk_repo_format_real_url``): SHA-1 of the repository URL as written,
  ``/`` added unless it ends with one, then ``<arch>/APKINDEX.tar.gz``;
* older apk-tools 2 (``apk_db_add_repository``:
  ``apk_blob_checksum(brepo, ...)``): SHA-1 of the repository line's URL as
  written.

A cached index is verified like any other (its signature against the
trusted keys) before anything in it is used.
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Optional

from ..rootfs import root_files

__all__ = ["cache_index_names", "apk_cache_dir", "find_cached_index", "repository_lines", "INDEX_FILE"]

INDEX_FILE = "APKINDEX.tar.gz"


def _name(digest: str) -> str:
    return f"APKINDEX.{digest[:8]}.tar.gz"


def cache_index_names(index_url: str, repo_url: Optional[str] = None) -> List[str]:
    """The names apk-tools 3, 2.14 and older 2.x give the cached copy of the
    index at ``index_url`` (``<repository>/<arch>/APKINDEX.tar.gz``).

    ``repo_url``: the repository as its line in ``etc/apk/repositories``
    writes it, when known (default: ``index_url`` less ``/<arch>/APKINDEX.tar.gz``).
    """
    base, _, rest = index_url.rpartition("/" + INDEX_FILE)
    if rest or not base:
        return []
    repo_base, _, arch = base.rpartition("/")
    if repo_url is None:
        repo_url = repo_base
    names = []
    # apk-tools 3: add_repository_component trims trailing '/' then formats the index URL
    v3_url = f"{repo_url.rstrip('/')}/{arch}/{INDEX_FILE}"
    names.append(_name(hashlib.sha256(v3_url.encode("utf-8", "surrogateescape")).hexdigest()))
    # apk-tools 2.14: apk_repo_format_real_url adds '/' unless the URL ends with one
    v2_url = f"{repo_url}{'' if repo_url.endswith('/') else '/'}{arch}/{INDEX_FILE}"
    names.append(_name(hashlib.sha1(v2_url.encode("utf-8", "surrogateescape")).hexdigest()))
    # older apk-tools 2: the checksum of the repository line's URL itself
    names.append(_name(hashlib.sha1(repo_url.encode("utf-8", "surrogateescape")).hexdigest()))
    return list(dict.fromkeys(names))


def apk_cache_dir(root) -> Optional[str]:
    """The in-root real path of apk's cache folder in ``root`` (a host folder
    or a root through the root protocol, :func:`rundeps.rootfs.root_files`),
    as apk picks it: ``etc/apk/cache`` when it leads to a folder, else
    ``var/cache/apk``."""
    files = root_files(root)
    for candidate in ("/etc/apk/cache", "/var/cache/apk"):
        real = files.resolve(candidate)
        if real is not None and files.is_dir(real):
            return real
    return None


def repository_lines(root, arch: str) -> Dict[str, str]:
    """Index URL -> the repository URL as the root's ``etc/apk/repositories``
    line writes it (apk hashes the line's text: a trailing ``/`` matters)."""
    from ..errors import SourceError
    from .repositories import read_repositories, root_location

    out: Dict[str, str] = {}
    files = root_files(root)
    try:
        for line in read_repositories(files, arch):
            try:
                loc = root_location(files, line, arch)
            except SourceError:
                continue
            if loc is not None:
                out.setdefault(loc, line.written or line.url)
    except SourceError:
        pass
    return out


def find_cached_index(root, index_url: str, repo_url: Optional[str] = None,
                      arch: Optional[str] = None) -> Optional[str]:
    """The in-root real path of the root's apk-cached copy of ``index_url``
    (a regular file), or None; ``root``: a host folder or a root through the
    root protocol (:func:`rundeps.rootfs.root_files`), which reads it
    (:func:`rundeps.apk.fetch.open_cached_copy` with ``files``).  With
    ``arch`` and no ``repo_url``, the root's repositories line that names
    ``index_url`` gives the URL apk hashed."""
    files = root_files(root)
    folder = apk_cache_dir(files)
    if folder is None:
        return None
    if repo_url is None and arch:
        repo_url = repository_lines(files, arch).get(index_url)
    for name in cache_index_names(index_url, repo_url):
        real = files.resolve(folder.rstrip("/") + "/" + name)
        if real is not None and files.is_file(real):
            return real
    return None

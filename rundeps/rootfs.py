"""Paths inside a root file system (an unpacked image, a venv's tree, "/").

The one place that turns an in-root path into a host path: :func:`to_host`
(lexical: ``..`` cannot climb above the root) and :func:`resolve_in_root` /
:func:`resolve_dir_in_root` / :func:`resolve_from` (symlinks followed
inside the root: an absolute target is relative to the root, ``..`` stops
at it, at most :data:`MAX_SYMLINKS` links), so that no caller ever reaches
a host file outside the root.  ``root`` is a host path; in-root paths are
absolute ("/usr/lib/libz.so.1").
"""

from __future__ import annotations

import os
import posixpath
import stat as _stat

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Optional, Tuple

__all__ = [
    "MAX_SYMLINKS",
    "HostFiles",
    "join_host",
    "norm_root",
    "resolve_dir_in_root",
    "resolve_from",
    "resolve_in_root",
    "root_files",
    "shown_path",
    "split_path",
    "to_host",
]

MAX_SYMLINKS = 40


def norm_root(root: str) -> str:
    """``root`` as an absolute host path without a trailing slash ("/" stays)."""
    root = os.fsdecode(root)
    root = os.path.abspath(root)
    return root.rstrip("/") or "/"


def join_host(root: str, inroot: str) -> str:
    """The host path of ``inroot`` under ``root`` (from :func:`norm_root`);
    ``inroot`` must be normalised and absolute."""
    if root == "/":
        return inroot
    if inroot == "/":
        return root
    return root + inroot


def to_host(root: str, inroot_path: str) -> str:
    """The host path of ``inroot_path`` inside ``root``; ``..`` cannot climb
    above the root (purely lexical: symlinks are not looked at)."""
    p = posixpath.normpath("/" + os.fsdecode(inroot_path))
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return join_host(norm_root(root), p)


def split_path(path: str) -> List[str]:
    """The components of ``path`` (no empty ones, no ".")."""
    return [c for c in path.split("/") if c and c != "."]


def resolve_from(root: str, cur: List[str], todo: List[str], hops: int = 0,
                  follow_last: bool = True) -> Optional[Tuple[str, os.stat_result]]:
    """Resolve components ``todo`` (in order) from the real in-root folder
    ``cur`` (a list of components, trusted to be real).  Returns the in-root
    real path and its lstat, or None if it does not exist or loops."""
    cur = list(cur)
    pending = list(reversed(todo))  # a stack, next component last
    st: Optional[os.stat_result] = None
    while pending:
        comp = pending.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if cur:
                cur.pop()
            try:
                st = os.lstat(join_host(root, "/" + "/".join(cur)))
            except (OSError, ValueError):
                return None
            continue
        cand = cur + [comp]
        host = join_host(root, "/" + "/".join(cand))
        try:
            st = os.lstat(host)
        except (OSError, ValueError):
            return None
        if _stat.S_ISLNK(st.st_mode) and (pending or follow_last):
            hops += 1
            if hops > MAX_SYMLINKS:
                return None
            try:
                target = os.readlink(host)
            except (OSError, ValueError):
                return None
            if target.startswith("/"):
                cur = []
            pending.extend(reversed(split_path(target)))
            if not pending:  # a link to '/' (or to '.')
                try:
                    st = os.lstat(join_host(root, "/" + "/".join(cur)))
                except (OSError, ValueError):
                    return None
            continue
        if pending and not _stat.S_ISDIR(st.st_mode):
            return None
        cur = cand
    if st is None:  # nothing to resolve (no parts, or only "" and "."): the folder ``cur`` itself
        try:
            st = os.lstat(join_host(root, "/" + "/".join(cur)))
        except (OSError, ValueError):
            return None
    return "/" + "/".join(cur), st


def resolve_in_root(root: str, inroot_path: str, is_type=_stat.S_ISREG) -> Optional[str]:
    """Follow symlinks inside ``root`` (absolute targets are relative to the
    root, ``..`` stops at the root, at most 40 links) and return the in-root
    real path of ``inroot_path`` if ``is_type(mode)`` (default: a regular
    file), else None."""
    root = norm_root(root)
    got = resolve_from(root, [], split_path(os.fsdecode(inroot_path)))
    if got is None:
        return None
    path, st = got
    return path if is_type(st.st_mode) else None


def resolve_dir_in_root(root: str, inroot_path: str) -> Optional[str]:
    """Like :func:`resolve_in_root`, for a folder."""
    return resolve_in_root(root, inroot_path, _stat.S_ISDIR)


class HostFiles:
    """A host folder read as a root file system: the file-reading half of
    the root protocol every reader of a root's own files (its apk
    database, repositories, keys, ``ld.so`` path files, Python sources)
    goes through, so that the same readers serve a saved image
    (:class:`rundeps.inputs.image.ImageTree` follows the same protocol
    without inheriting).

    In-root paths are absolute; symlinks are followed inside the root
    (:func:`resolve_from`).  ``read`` and ``listdir`` raise :class:`OSError`
    (``FileNotFoundError`` when there is no such file or folder).
    """

    __slots__ = ("root",)

    def __init__(self, root: str):
        self.root = norm_root(root)

    @property
    def name(self) -> str:
        """How a message names the root: its host folder."""
        return self.root

    def host_path(self, path: str) -> Optional[str]:
        """The host path of in-root ``path`` (lexical, see :func:`to_host`)."""
        return to_host(self.root, path)

    def resolve(self, path: str, follow_last: bool = True) -> Optional[str]:
        """The in-root real path ``path`` leads to (any kind of file), or None."""
        got = resolve_from(self.root, [], split_path(os.fsdecode(path)), follow_last=follow_last)
        return None if got is None else got[0]

    def _stat(self, path: str):
        got = resolve_from(self.root, [], split_path(os.fsdecode(path)))
        return None if got is None else got

    def is_file(self, path: str) -> bool:
        got = self._stat(path)
        return got is not None and _stat.S_ISREG(got[1].st_mode)

    def is_dir(self, path: str) -> bool:
        got = self._stat(path)
        return got is not None and _stat.S_ISDIR(got[1].st_mode)

    def mode(self, path: str) -> Optional[int]:
        """The permission bits (setuid and setgid included) of ``path``, symlinks followed; None if absent."""
        got = self._stat(path)
        return None if got is None else _stat.S_IMODE(got[1].st_mode)

    def listdir(self, path: str) -> List[str]:
        """The names in folder ``path``, sorted."""
        got = self._stat(path)
        if got is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        if not _stat.S_ISDIR(got[1].st_mode):
            raise NotADirectoryError(20, "Not a directory", path)
        return sorted(os.listdir(join_host(self.root, got[0])))

    def read(self, path: str, offset: int = 0, size: Optional[int] = None) -> bytes:
        """The bytes of regular file ``path`` from ``offset``, at most ``size``."""
        got = self._stat(path)
        if got is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        if not _stat.S_ISREG(got[1].st_mode):
            raise IsADirectoryError(21, "Not a regular file", path)
        with open(join_host(self.root, got[0]), "rb") as f:
            if offset:
                f.seek(offset)
            return f.read() if size is None else f.read(size)


def root_files(root) -> "HostFiles":
    """``root`` as the root protocol: a host folder (a ``str``) becomes a
    :class:`HostFiles`; an object that already follows it (a
    :class:`HostFiles`, an image's tree) is returned as it is."""
    if isinstance(root, (str, bytes, os.PathLike)):
        return HostFiles(os.fsdecode(root))
    return root


def shown_path(files, path: str) -> str:
    """How a message names in-root ``path`` of ``files`` (the root protocol):
    its host path for a host folder, else ``PATH in NAME`` (an image)."""
    host = files.host_path(path)
    return host if host is not None else f"{path} in {files.name}"

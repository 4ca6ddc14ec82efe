"""The trusted public keys that repository indexes are verified against:
:class:`KeySet`, the keys of a root, the host, ``--keys-dir`` folders or the
Alpine keys shipped with rundeps (:func:`trusted_key_set`), and the digests
that tie a cached verification to them (:func:`keyset_digest`,
:func:`key_digest`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    "KeySet",
    "MAX_KEY_FILE",
    "bundled_keys_dir",
    "key_digest",
    "key_dirs",
    "keyset_digest",
    "load_bundled_keys",
    "load_keys",
    "trusted_key_set",
]

MAX_KEY_FILE = 64 * 1024
"""Largest key file read (a PEM public key is under 1 KiB)."""


class KeySet(dict):
    """Trusted public keys: key file name -> PEM bytes; ``dirs`` says where
    from, ``paths`` the file each key was read from, and ``bundled`` whether
    they are the Alpine keys shipped with rundeps (:func:`trusted_key_set`)."""

    dirs: Tuple[str, ...] = ()
    bundled: bool = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.paths: Dict[str, str] = {}

    def path_of(self, name: Optional[str], key_sha256: Optional[str] = None) -> Optional[str]:
        """The file the trusted key ``name`` came from (None when it is not
        trusted, or its PEM is not the one whose sha256 is ``key_sha256``)."""
        if not name or name not in self:
            return None
        if key_sha256 is not None and key_digest(self[name]) != key_sha256:
            return None
        return self.paths.get(name)


def bundled_keys_dir() -> str:
    """Alpine's public signing keys, shipped with rundeps (``data/keys``):
    where they are, as text (inside the archive in a zip application; read
    them with :func:`load_bundled_keys`)."""
    from ..datafiles import data_path

    return data_path("keys")


def load_bundled_keys() -> KeySet:
    """The Alpine keys shipped with rundeps, read through
    ``importlib.resources`` (so from inside a zip application too)."""
    from ..datafiles import data_files

    folder = data_files("keys")
    keys = KeySet()
    keys.dirs = (str(folder),)
    try:
        entries = sorted(folder.iterdir(), key=lambda e: e.name)
    except (OSError, ValueError):
        entries = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or not entry.is_file():
            continue
        try:
            data = entry.read_bytes()
        except OSError:
            continue
        if len(data) <= MAX_KEY_FILE and b"PUBLIC KEY" in data:
            keys[name] = data
            keys.paths[name] = str(entry)
    keys.bundled = True
    return keys


def trusted_key_set(root, arch: Optional[str], extra: Sequence[str] = ()) -> KeySet:
    """The keys an index is verified against.

    ``--keys-dir`` folders (``extra``) when given, else the root's and the
    host's apk key folders (:func:`key_dirs`; the root's read through the
    root protocol, :func:`rundeps.rootfs.root_files`, so ``root`` is a host
    folder, an image's tree or None); when those give no key at all
    (a Debian CI runner, a bare tree) the Alpine keys shipped with rundeps
    (:func:`bundled_keys_dir`, ``bundled`` set).  Explicit ``--keys-dir``
    folders never fall back: they say exactly what to trust.
    """
    if extra:
        return load_keys(key_dirs(None, arch, extra))
    keys = KeySet()
    dirs: List[str] = []
    seen = set()
    if root is not None and not (isinstance(root, str) and not root):
        from ..rootfs import root_files, shown_path

        files = root_files(root)
        for d in _root_key_dirs(arch):
            host = files.host_path(d)
            if host is not None:
                real = os.path.realpath(host)
                if real in seen:
                    continue
                seen.add(real)
            dirs.append(shown_path(files, d))
            _load_root_keys(keys, files, d)
    if os.path.realpath("/etc/apk/keys") not in seen:
        from ..rootfs import HostFiles

        dirs.append("/etc/apk/keys")
        _load_root_keys(keys, HostFiles("/"), "/etc/apk/keys")  # the root's own keys win a name
    keys.dirs = tuple(dirs)
    if not keys:
        keys = load_bundled_keys()
    return keys


def _root_key_dirs(arch: Optional[str]) -> List[str]:
    """The root's own key folders (in-root paths), in :func:`key_dirs`'s order."""
    return ["/etc/apk/keys"] + ([f"/usr/share/apk/keys/{arch}"] if arch else [])


def _load_root_keys(keys: KeySet, files, folder: str, shown_dir: Optional[str] = None) -> None:
    """Add to ``keys`` the public keys of in-root ``folder`` of ``files`` (the
    root protocol; symlinks followed inside the root): hidden, non-regular,
    oversized and unreadable files skipped, a name already in ``keys`` kept.
    A key's path is named under ``shown_dir`` when given."""
    from ..rootfs import shown_path

    try:
        names = files.listdir(folder)
    except OSError:
        return
    for name in names:
        if name in keys or name.startswith("."):
            continue
        path = folder.rstrip("/") + "/" + name
        try:
            data = files.read(path, 0, MAX_KEY_FILE + 1)  # OSError for anything but a regular file
        except OSError:
            continue
        if len(data) <= MAX_KEY_FILE and b"PUBLIC KEY" in data:
            keys[name] = data
            keys.paths[name] = os.path.join(shown_dir, name) if shown_dir is not None else shown_path(files, path)


def key_dirs(root: Optional[str], arch: Optional[str], extra: Sequence[str] = ()) -> List[str]:
    """The folders to load trusted keys from.

    Explicit ``extra`` folders (``--keys-dir``) replace the defaults.  Otherwise:
    ``<root>/etc/apk/keys``, ``<root>/usr/share/apk/keys/<arch>`` (when the arch
    is known), then the host's ``/etc/apk/keys``.  Folders that do not exist are
    kept (``load_keys`` skips them) so a message can name where it looked.
    """
    if extra:
        dirs = [str(d) for d in extra]
    else:
        dirs = []
        if root:
            dirs.extend(os.path.join(root, d.lstrip("/")) for d in _root_key_dirs(arch))
        dirs.append("/etc/apk/keys")
    out: List[str] = []
    seen = set()
    for d in dirs:
        real = os.path.realpath(d)
        if real not in seen:
            seen.add(real)
            out.append(d)
    return out


def load_keys(dirs: Sequence[str], root: Optional[str] = None) -> KeySet:
    """Read the public keys of host folders ``dirs``: file name -> PEM bytes.

    Missing folders, sub-folders, unreadable and oversized files are skipped;
    an earlier folder wins for a name found twice.  With ``root`` (the
    folders lie inside it), symlinks are resolved inside the root.
    """
    from ..rootfs import HostFiles

    keys = KeySet()
    keys.dirs = tuple(str(d) for d in dirs)
    files = HostFiles(root or "/")
    for d in dirs:
        host = os.path.abspath(d)
        inroot = "/" + os.path.relpath(host, files.root) if root else host
        _load_root_keys(keys, files, inroot, shown_dir=str(d))
    return keys


def keyset_digest(keys: Mapping) -> str:
    """A digest of a key set (names and contents), to tie cached results to it."""
    h = hashlib.sha256()
    for name in sorted(keys):
        h.update(name.encode("utf-8", "surrogateescape") + b"\0")
        h.update(hashlib.sha256(keys[name]).digest())
    return h.hexdigest()


def key_digest(pem: bytes) -> str:
    """The sha256 (hex) of a key's PEM."""
    return hashlib.sha256(pem).hexdigest()

"""Where repository indexes come from: options -> a list of index locations.

A location is a file path, a ``file://`` URL or an ``http(s)://`` URL of an
``APKINDEX.tar.gz``; :func:`rundeps.fetch.open_index` opens one.

* ``--index FILE|URL`` (repeatable): used as given.
* ``--repo URL`` (repeatable): ``URL/<arch>/APKINDEX.tar.gz``.
* ``--alpine VERSION`` (``3.20``, ``v3.20``, ``3.20.3``, ``edge``,
  ``latest-stable``): the official ``main`` and ``community`` indexes,
  ``<mirror>/v3.20/main/<arch>/APKINDEX.tar.gz``; ``--mirror URL`` replaces
  ``https://dl-cdn.alpinelinux.org/alpine``.
* Several of those together: ``--index`` first, then ``--repo``, then
  ``--alpine``, each in the order given (earlier wins a provider tie).
* Nothing named and a root: the root's ``etc/apk/repositories`` and then
  ``etc/apk/repositories.d/*.list`` (apk 3).  Blank lines and ``#``
  comments are skipped.  Decision: a tagged line (``@testing URL``) is
  kept, *after* all untagged ones -- apk installs from it only packages
  pinned with ``@tag``, so it may hold what the image has, but it must not
  win a provider tie against the normal repositories.  A local folder on a
  line (``/media/cdrom/apks``) is a path inside the image, so it is looked
  up under the root.
* Nothing named and no root: no indexes.

The architecture comes from ``--arch`` or the root's ``etc/apk/arch``
(:func:`read_arch`); ``--repo``, ``--alpine`` and the root's repositories
need it.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .errors import SourceError, UsageError

__all__ = [
    "DEFAULT_MIRROR",
    "ALPINE_REPOSITORIES",
    "RepositoryLine",
    "index_locations",
    "read_arch",
    "normalize_release",
    "alpine_index_urls",
    "repo_index_location",
    "read_repositories",
]

DEFAULT_MIRROR = "https://dl-cdn.alpinelinux.org/alpine"
ALPINE_REPOSITORIES = ("main", "community")
_ARCH_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_MAX_FILE = 1024 * 1024


def _valid_arch(arch: str, where: str) -> str:
    arch = arch.strip()
    if not _ARCH_RE.match(arch):
        raise UsageError(f"{where}: {arch[:40]!r} is not an architecture name (such as x86_64 or aarch64)")
    return arch


def read_arch(root: Optional[str]) -> Optional[str]:
    """The architecture in ``<root>/etc/apk/arch`` (first line), or None when
    there is no such file.  A file that does not hold an architecture name
    raises :class:`SourceError`."""
    if not root:
        return None
    path = os.path.join(root, "etc", "apk", "arch")
    try:
        with open(path, "rb") as f:
            text = f.read(4096).decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from None
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not first:
        return None
    if not _ARCH_RE.match(first):
        raise SourceError(f"{path} does not hold an architecture name (found {first[:40]!r})")
    return first


def normalize_release(version: str) -> str:
    """``3.20`` / ``v3.20`` / ``3.20.3`` -> ``v3.20``; ``edge`` and
    ``latest-stable`` as they are."""
    v = version.strip().lower()
    if v in ("edge", "latest-stable"):
        return v
    m = re.fullmatch(r"v?(\d{1,3})\.(\d{1,3})(?:\.\d{1,4})?", v)
    if not m:
        raise UsageError(
            f"--alpine {version!r}: give a release such as 3.20, v3.20 or edge"
        )
    return f"v{int(m.group(1))}.{int(m.group(2))}"


def _check_base(url: str, what: str) -> str:
    url = url.strip()
    if not url:
        raise UsageError(f"{what}: empty URL")
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        scheme = url.split(":", 1)[0].lower()
        if scheme not in ("http", "https", "file"):
            raise UsageError(f"{what} {url}: unsupported URL scheme {scheme!r} (use http, https or a path)")
    return url.rstrip("/") or "/"


def alpine_index_urls(
    version: str, arch: str, mirror: Optional[str] = None, repositories: Sequence[str] = ALPINE_REPOSITORIES
) -> List[str]:
    """The official indexes of a release: ``<mirror>/<v3.20>/<repo>/<arch>/APKINDEX.tar.gz``."""
    release = normalize_release(version)
    base = _check_base(mirror, "--mirror") if mirror else DEFAULT_MIRROR
    arch = _valid_arch(arch, "--arch")
    return [f"{base}/{release}/{repo}/{arch}/APKINDEX.tar.gz" for repo in repositories]


def repo_index_location(repo: str, arch: str) -> str:
    """``URL/<arch>/APKINDEX.tar.gz`` for a repository URL or folder."""
    base = _check_base(repo, "--repo")
    arch = _valid_arch(arch, "--arch")
    return f"{base}/{arch}/APKINDEX.tar.gz" if base != "/" else f"/{arch}/APKINDEX.tar.gz"


@dataclass(frozen=True)
class RepositoryLine:
    """One repository of ``etc/apk/repositories``."""

    url: str
    tag: Optional[str] = None
    origin: str = ""
    """The file and line it came from (``etc/apk/repositories:3``)."""


def _read_small(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return None
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > _MAX_FILE:
        raise SourceError(f"{path} is larger than 1 MiB; not a repositories file")
    return data.decode("utf-8", "replace")


def read_repositories(root: str) -> List[RepositoryLine]:
    """The repositories a root names, in file order (tags kept, not reordered)."""
    files = [os.path.join(root, "etc", "apk", "repositories")]
    files += sorted(glob.glob(os.path.join(glob.escape(root), "etc", "apk", "repositories.d", "*.list")))
    out: List[RepositoryLine] = []
    for path in files:
        text = _read_small(path)
        if text is None:
            continue
        rel = os.path.relpath(path, root)
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            tag = None
            if words[0].startswith("@"):
                tag = words[0][1:]
                words = words[1:]
                if not words:
                    continue  # a tag with no repository
            out.append(RepositoryLine(url=words[0], tag=tag or None, origin=f"{rel}:{number}"))
    return out


def _root_location(root: str, url: str, arch: str) -> str:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        if url.lower().startswith("file://"):
            from urllib.parse import unquote, urlsplit

            url = unquote(urlsplit(url).path)
        else:
            return repo_index_location(url, arch)
    if url.startswith("/"):
        url = os.path.join(root, url.lstrip("/"))
    else:
        url = os.path.join(root, url)
    return repo_index_location(url, arch)


def index_locations(
    *,
    indexes: Sequence[str] = (),
    repos: Sequence[str] = (),
    alpine: Optional[str] = None,
    mirror: Optional[str] = None,
    arch: Optional[str] = None,
    root: Optional[str] = None,
) -> List[str]:
    """The index locations the options name, in priority order, without
    duplicates (see the module documentation for the rules)."""
    if mirror and not alpine:
        raise UsageError("--mirror only applies with --alpine")
    if arch is not None:
        arch = _valid_arch(arch, "--arch")
    elif root and (repos or alpine or not indexes):
        arch = read_arch(root)

    def need_arch(what: str) -> str:
        if not arch:
            where = f" ({os.path.join(root, 'etc', 'apk', 'arch')} is missing)" if root else ""
            raise UsageError(f"{what} needs an architecture: give --arch{where}")
        return arch

    out: List[str] = []
    for loc in indexes:
        loc = loc.strip()
        if not loc:
            raise UsageError("--index: empty location")
        out.append(loc)
    for repo in repos:
        out.append(repo_index_location(repo, need_arch("--repo")))
    if alpine:
        out.extend(alpine_index_urls(alpine, need_arch("--alpine"), mirror))
    if not out and root:
        lines = read_repositories(root)
        if lines:
            a = need_arch(f"the repositories of {root}")
            untagged = [ln for ln in lines if ln.tag is None]
            tagged = [ln for ln in lines if ln.tag is not None]
            for ln in untagged + tagged:
                out.append(_root_location(root, ln.url, a))
    return list(dict.fromkeys(out))  # without repeats, first occurrence kept

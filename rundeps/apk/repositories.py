"""Where repository indexes come from: options -> a list of index locations.

A location is a file path, a ``file://`` URL or an ``http(s)://`` URL of an
``APKINDEX.tar.gz``; :func:`rundeps.apk.fetch.open_index` opens one.

* ``--index FILE|URL`` (repeatable): used as given.
* ``--repo URL`` (repeatable): ``URL/<arch>/APKINDEX.tar.gz``.
* ``--alpine VERSION`` (``3.20``, ``v3.20``, ``3.20.3``, ``edge``,
  ``latest-stable``): the official ``main`` and ``community`` indexes,
  ``<mirror>/v3.20/main/<arch>/APKINDEX.tar.gz``; ``--mirror URL`` replaces
  ``https://dl-cdn.alpinelinux.org/alpine``.
* Several of those together: ``--index`` first, then ``--repo``, then
  ``--alpine``, each in the order given (earlier wins a provider tie).
* Nothing named and a root: the root's ``etc/apk/repositories`` and then
  the ``*.list`` files of ``etc/apk/repositories.d`` and
  ``lib/apk/repositories.d`` (apk 3), read with apk-tools 3's grammar
  (:func:`read_repositories`: ``set``, ``${KEY}``, ``v2``/``v3``/``ndx``,
  components).  A v3 repository (``Packages.adb``) is refused
  (:class:`V3RepositoryError`).  Decision: a tagged line (``@testing URL``) is
  kept, *after* all untagged ones -- apk installs from it only packages
  pinned with ``@tag``, so it may hold what the image has, but it must not
  win a provider tie against the normal repositories.  A local folder on a
  line (``/media/cdrom/apks``) is a path inside the image, so it is looked
  up under the root (not yet inside a saved image: such a line is a
  warning and skipped).
* Nothing named and no root: no indexes.

A root is a host folder (``str``) or a root through the root protocol
(:func:`rundeps.rootfs.root_files`: an image's tree); its files are read
through that protocol, symlinks followed inside the root.

The architecture comes from ``--arch`` or the root's ``etc/apk/arch``
(:func:`read_arch`); ``--repo``, ``--alpine`` and the root's repositories
need it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..diagnostics import SILENT, Diagnostics
from ..errors import SourceError, UsageError
from ..rootfs import root_files, shown_path

__all__ = [
    "DEFAULT_MIRROR",
    "ALPINE_REPOSITORIES",
    "NamedIndexes",
    "RepositoryLine",
    "index_locations",
    "read_arch",
    "normalize_release",
    "alpine_index_urls",
    "repo_index_location",
    "read_repositories",
    "repository_files",
    "V3RepositoryError",
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


def read_arch(root) -> Optional[str]:
    """The architecture in ``<root>/etc/apk/arch`` (first line), or None when
    there is no such file.  A file that does not hold an architecture name
    raises :class:`SourceError`.  ``root``: a host folder, a root through
    the root protocol, or None."""
    if root is None or (isinstance(root, str) and not root):
        return None
    files = root_files(root)
    path = shown_path(files, "/etc/apk/arch")
    if files.resolve("/etc/apk/arch") is None:
        return None
    try:
        text = files.read("/etc/apk/arch", 0, 4096).decode("utf-8", "replace")
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
    """One repository of ``etc/apk/repositories`` (or a ``.list`` file).

    ``url``: the repository (``kind`` ``v2``: its index is
    ``url/<arch>/APKINDEX.tar.gz``; ``v3``: ``url/<arch>/Packages.adb``) or,
    for ``kind`` ``ndx``, the index file itself."""

    url: str
    tag: Optional[str] = None
    origin: str = ""
    """The file and line it came from (``etc/apk/repositories:3``)."""
    kind: str = "v2"
    written: str = ""
    """The URL as the line writes it (variables substituted, a trailing ``/``
    kept): what apk-tools 2 hashes for its cache name."""

    @property
    def is_v3(self) -> bool:
        return self.kind == "v3" or (self.kind == "ndx" and self.url.endswith(".adb"))


class V3RepositoryError(SourceError):
    """A repository whose index is apk-tools 3's ``Packages.adb``: refused."""


def _read_small(files, inroot: str) -> Optional[str]:
    """The text of in-root file ``inroot`` of ``files`` (the root protocol);
    None when it is not there or not a regular file."""
    path = shown_path(files, inroot)
    if not files.is_file(inroot):
        return None
    try:
        data = files.read(inroot, 0, _MAX_FILE + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > _MAX_FILE:
        raise SourceError(f"{path} is larger than 1 MiB; not a repositories file")
    return data.decode("utf-8", "replace")


def repository_files(root) -> List[str]:
    """The in-root paths of the files apk reads repositories from, in its
    order: ``/etc/apk/repositories``, then the ``*.list`` files (not hidden)
    of ``etc/apk/repositories.d`` and ``lib/apk/repositories.d`` sorted by
    name, a name in ``etc`` hiding the same name in ``lib`` (apk-tools 3's
    ``apk_dir_foreach_config_file``).  ``root``: a host folder or a root
    through the root protocol."""
    files = root_files(root)
    out = ["/etc/apk/repositories"]
    by_name = {}
    for folder in ("/etc/apk/repositories.d", "/lib/apk/repositories.d"):
        try:
            names = files.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") or not name.endswith(".list") or name in by_name:
                continue
            by_name[name] = folder + "/" + name
    return out + [by_name[n] for n in sorted(by_name)]


_VARIABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
class _Undefined(Exception):
    pass


def _subst(text: str, variables: Dict[str, str]) -> str:
    """``${KEY}`` (and ``${KEY:N}``, at most N characters) replaced, as apk's
    ``apk_blob_subst``; an undefined name or an unclosed ``${`` raises
    :class:`_Undefined` (apk skips the line)."""
    out = []
    rest = text
    while True:
        i = rest.find("${")
        if i < 0:
            out.append(rest)
            return "".join(out)
        out.append(rest[:i])
        j = rest.find("}", i + 2)
        if j < 0:
            raise _Undefined(rest[i:][:40] + " (no closing brace)")
        key = rest[i + 2:j]
        width = None
        if ":" in key:
            key, _, w = key.partition(":")
            if not w.isdigit():
                raise _Undefined(rest[i:j + 1])
            width = int(w)
        if key not in variables:
            raise _Undefined(key)
        value = variables[key]
        out.append(value[:width] if width is not None else value)
        rest = rest[j + 1:]


def _is_url(word: str) -> bool:
    return word.startswith("/") or "://" in word


def read_repositories(root, arch: Optional[str] = None, diag: Diagnostics = SILENT) -> List[RepositoryLine]:
    """The repositories a root names, in file order (tags kept, not reordered).

    The grammar is apk-tools 3's (``src/repoparser.c``), of which apk 2's
    ``[@tag] URL`` lines are a part: ``#`` comments; ``set [-default]
    KEY=VALUE`` (``-default`` keeps an earlier value; names start with a
    letter, ``APK_`` ones are reserved; ``APK_ARCH`` is ``arch``);
    ``${KEY}`` substituted in URLs, values and components; an optional type
    keyword ``v2``, ``v3`` or ``ndx`` (an index file); ``@tag``; the URL
    (absolute path or ``scheme://``, trailing ``/`` dropped; ending
    ``.tar.gz`` or ``.adb`` without a keyword: an index file); and optional
    components, each its own repository ``URL/component``.  Variables carry
    over from file to file.  A line apk would refuse is a warning
    (``diag.warning``) and skipped.
    """
    warn = diag.warning
    variables: Dict[str, str] = {}
    if arch:
        variables["APK_ARCH"] = arch
    out: List[RepositoryLine] = []
    files = root_files(root)
    for path in repository_files(files):
        text = _read_small(files, path)
        if text is None:
            continue
        rel = path.lstrip("/")
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{rel}:{number}"
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            try:
                out.extend(_parse_line(words, variables, where, warn))
            except _Undefined as exc:
                warn(f"{where}: undefined variable {exc.args[0]}; line skipped")
    return out


def _parse_line(words: List[str], variables: Dict[str, str], where: str, warn) -> List[RepositoryLine]:
    kind = None
    first = words[0]
    if not first.startswith(("@", "$")) and not _is_url(first):
        if first == "set":
            _parse_set(words[1:], variables, where, warn)
            return []
        if first not in ("v2", "v3", "ndx"):
            warn(f"{where}: unrecognised keyword {first!r}; line skipped")
            return []
        kind = first
        words = words[1:]
        if not words:
            warn(f"{where}: {kind} without a repository; line skipped")
            return []
    tag = None
    if words[0].startswith("@"):
        tag = words[0][1:] or None
        words = words[1:]
        if not words:
            return []  # a tag with no repository
    written = _subst(words[0], variables)
    url = written.rstrip("/")
    if kind is None:
        kind = "ndx" if url.endswith((".adb", ".tar.gz")) else "v2"
    if not _is_url(url):
        warn(f"{where}: {url[:80]!r} is not a URL or an absolute path; line skipped")
        return []
    components = _subst(" ".join(words[1:]), variables).split() if len(words) > 1 else []
    if not components:
        return [RepositoryLine(url=url or "/", tag=tag, origin=where, kind=kind, written=written)]
    return [RepositoryLine(url=f"{url}/{c}", tag=tag, origin=where, kind=kind, written=f"{url}/{c}")
            for c in components]


def _parse_set(words: List[str], variables: Dict[str, str], where: str, warn) -> None:
    overwrite = True
    while words and words[0].startswith("-"):
        if words[0] != "-default":
            warn(f"{where}: invalid option {words[0]!r} of set; line skipped")
            return
        overwrite = False
        words = words[1:]
    definition = " ".join(words)
    key, eq, value = definition.partition("=")
    if not eq or key.startswith("APK_") or not _VARIABLE_NAME.match(key):
        warn(f"{where}: invalid variable definition {definition[:80]!r}; line skipped")
        return
    value = _subst(value, variables)
    if key in variables and not overwrite:
        return
    variables[key] = value


def root_location(root, line: RepositoryLine, arch: str) -> Optional[str]:
    """The index location of a root's repository line: a URL, or for a
    folder named on the line (a path inside the root) its host path; None
    for such a folder inside a root that is not a host folder (an image)."""
    files = root_files(root)
    if line.is_v3:
        raise V3RepositoryError(
            f"{line.origin} of {files.name}: {line.url} is an apk-tools 3 (v3, Packages.adb) repository, "
            "which rundeps cannot read; name its APKINDEX.tar.gz with --index or --repo"
        )
    url = line.url
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        if url.lower().startswith("file://"):
            from urllib.parse import unquote, urlsplit

            url = unquote(urlsplit(url).path)
        else:
            return url if line.kind == "ndx" else repo_index_location(url, arch)
    host_root = files.host_path("/")
    if host_root is None:
        return None
    url = os.path.join(host_root, url.lstrip("/"))
    return url if line.kind == "ndx" else repo_index_location(url, arch)


@dataclass(frozen=True)
class NamedIndexes:
    """The indexes the options name: ``--index`` locations, ``--repo`` URLs,
    ``--alpine`` release and its ``--mirror``."""

    indexes: Sequence[str] = ()
    repos: Sequence[str] = ()
    alpine: Optional[str] = None
    mirror: Optional[str] = None


def index_locations(named: NamedIndexes = NamedIndexes(), *, arch: Optional[str] = None, root=None,
                    tags: Optional[Dict[str, str]] = None, diag: Diagnostics = SILENT) -> List[str]:
    """The index locations ``named``, in priority order, without duplicates
    (see the module documentation for the rules); none named and a root:
    the root's repositories.  ``tags``, when given, receives {location: tag}
    for the root's tagged repositories; ``diag.warning`` hears of the lines
    skipped.  ``root``: a host folder, a root through the root protocol, or
    None."""
    indexes, repos, alpine, mirror = named.indexes, named.repos, named.alpine, named.mirror
    if mirror and not alpine:
        raise UsageError("--mirror only applies with --alpine")
    files = None if root is None or (isinstance(root, str) and not root) else root_files(root)
    if arch is not None:
        arch = _valid_arch(arch, "--arch")
    elif files is not None and (repos or alpine or not indexes):
        arch = read_arch(files)

    def need_arch(what: str) -> str:
        if not arch:
            where = f" ({shown_path(files, '/etc/apk/arch')} is missing)" if files is not None else ""
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
    if not out and files is not None:
        lines = read_repositories(files, arch, diag)
        if lines:
            a = need_arch(f"the repositories of {files.name}")
            untagged = [ln for ln in lines if ln.tag is None]
            tagged = [ln for ln in lines if ln.tag is not None]
            for ln in untagged + tagged:
                found = root_location(files, ln, a)
                if found is None:
                    diag.warning(f"{ln.origin} of {files.name}: {ln.url} is a folder inside the image, "
                                 "which rundeps does not read indexes from; skipped")
                    continue
                out.append(found)
                if tags is not None and ln.tag is not None:
                    tags.setdefault(found, ln.tag)
    for loc in out:
        if loc.endswith(".adb"):
            raise V3RepositoryError(
                f"{loc}: an apk-tools 3 (v3, Packages.adb) index, which rundeps cannot read; "
                "name the repository's APKINDEX.tar.gz instead"
            )
    return list(dict.fromkeys(out))  # without repeats, first occurrence kept

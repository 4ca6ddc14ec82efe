"""The package sources put together: an installed database and repository
indexes, read into one :class:`~rundeps.apk.model.Universe`.

:class:`Sources` says where packages come from (the CLI's source options);
:func:`load_universe` reads the installed database and opens, verifies and
(through the index cache, or the image's own apk cache) reads every index,
in order; :class:`IndexRequest` is what opening an index needs besides its
location.  :mod:`rundeps.api` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from ..diagnostics import SILENT, Diagnostics
from ..errors import SourceError, refuse_special
from ..rootfs import root_files, shown_path
from .model import Repository, Universe, parse_installed

if TYPE_CHECKING:
    from .repositories import NamedIndexes

__all__ = ["Sources", "IndexRequest", "load_database", "load_universe", "installed_database", "index_locations",
           "index_cache", "trusted_keys", "open_indexes", "open_apk_cached",
           "INSTALLED_DB", "USR_INSTALLED_DB", "LOOK"]


@dataclass(frozen=True)
class Sources:
    """Where packages come from: an installed database and repository indexes.

    ``db``: an installed database file (default ``<root>/lib/apk/db/installed``);
    ``indexes``, ``repos``, ``alpine``/``mirror``: repository indexes;
    ``keys_dirs``: trusted keys besides the root's; ``apk_cache``: use the
    root's own apk cache (``var/cache/apk/APKINDEX.<hash>.tar.gz``) before the
    network (never with ``refresh``); the rest as the CLI options.
    """

    db: Optional[str] = None
    indexes: Sequence[str] = ()
    repos: Sequence[str] = ()
    alpine: Optional[str] = None
    mirror: Optional[str] = None
    keys_dirs: Sequence[str] = ()
    allow_untrusted: bool = False
    offline: bool = False
    refresh: bool = False
    cache_dir: Optional[str] = None
    use_cache: bool = True
    apk_cache: bool = True

    def names_index(self) -> bool:
        return bool(self.indexes or self.repos or self.alpine)

    def named(self) -> "NamedIndexes":
        """The indexes these sources name (``--index``, ``--repo``, ``--alpine``/``--mirror``)."""
        from .repositories import NamedIndexes

        return NamedIndexes(indexes=self.indexes, repos=self.repos, alpine=self.alpine, mirror=self.mirror)


@dataclass(frozen=True)
class IndexRequest:
    """What opening an index needs besides its location: the ``root`` (a
    host folder or a root through the root protocol,
    :func:`rundeps.rootfs.root_files`), the target ``arch``, the
    :class:`Sources` (trust, cache and network options) and where to say
    what happened (``diag``: its ``warning`` and ``info``)."""

    root: Any
    arch: Optional[str]
    sources: Sources
    diag: Diagnostics = SILENT


def load_database(path: str, files=None) -> Repository:
    """Read an installed database: the host file ``path`` (``--db``) or, with
    ``files`` (a root through the root protocol, :func:`rundeps.rootfs.root_files`:
    a host folder or an image's tree), the in-root file ``path`` (symlinks
    followed inside the root).  :class:`SourceError` when it cannot be read."""
    shown = path if files is None else shown_path(files, path)
    if files is None:
        refuse_special(path, "database file")
    try:
        if files is None:
            with open(path, "rb") as f:
                data = f.read()
        else:
            data = files.read(path)
    except FileNotFoundError:
        raise SourceError(f"no installed database at {shown}") from None
    except IsADirectoryError:
        raise SourceError(f"cannot read installed database {shown}: it is a folder") from None
    except OSError as exc:
        raise SourceError(f"cannot read installed database {shown}: {exc.strerror or exc}") from None
    repo = parse_installed(data.decode("utf-8", "replace"))
    if not repo.packages:
        raise SourceError(f"{shown} holds no package: not an apk installed database")
    return repo


LOOK = "\0look"
"""The ``database`` of :func:`load_universe` that makes it look for the
root's installed database itself (no path holds a NUL)."""


def load_universe(root, sources: Sources, arch: Optional[str], diag: Diagnostics = SILENT,
                  explicit_root: bool = False, database: Optional[str] = LOOK) -> Universe:
    """The installed database (if any) followed by the named indexes.

    ``root``: a host folder (``str``) or a root through the root protocol
    (:func:`rundeps.rootfs.root_files`: an image's tree).  With ``--root``,
    no database and no index named, the root's ``etc/apk/repositories``
    are the indexes.  ``database``: what :func:`installed_database` gave
    for ``root``, when the caller has it (None: the root has none); by
    default it is looked for here.  ``diag``: its ``warning`` and ``info``
    are used.
    """
    files = root_files(root)
    universe = Universe()
    found = installed_database(files) if database == LOOK else database
    if sources.db:
        universe.add(load_database(sources.db))
    elif found:
        universe.add(load_database(found, files))
    db_path = sources.db or shown_path(files, found or INSTALLED_DB)
    locations: List[str] = []
    tags: Dict[str, str] = {}
    if sources.names_index():
        locations = index_locations(sources, files, arch)
    elif explicit_root and not universe:
        locations = index_locations(sources, files, arch, from_root=True, tags=tags, diag=diag)
    from_root = not sources.names_index()
    for index in open_indexes(locations, IndexRequest(files, arch, sources, diag), tolerant=from_root, tags=tags):
        universe.add(index.repository)
    if not universe:
        where = "the root " + files.name if explicit_root else "this system"
        raise SourceError(
            f"no installed database at {db_path} for {where}: name one with --db FILE "
            "or a repository index with --index, --repo or --alpine"
        )
    return universe


INSTALLED_DB = "/lib/apk/db/installed"
USR_INSTALLED_DB = "/usr/lib/apk/db/installed"


def installed_database(root) -> Optional[str]:
    """The in-root real path of the root's installed database (a regular
    file), or None; ``root``: a host folder or a root through the root
    protocol (:func:`rundeps.rootfs.root_files`).  Read it with
    ``load_database(path, root_files(root))``.

    apk-tools (2 and 3: its short-lived ``usr/lib/apk`` default was reverted
    before 3.0.0) opens ``lib/apk/db/installed`` in the root, which on a
    merged-/usr root reaches ``usr/lib/apk/db/installed`` through the
    ``lib -> usr/lib`` symlink; symlinks are followed inside the root (an
    absolute ``/usr/lib`` target is the root's, not the host's).  A root that
    has only ``usr/lib/apk/db/installed`` (a copy that lost the symlink) is
    read from there."""
    files = root_files(root)
    for path in (INSTALLED_DB, USR_INSTALLED_DB):
        real = files.resolve(path)
        if real is not None and files.is_file(real):
            return real
    return None


def index_locations(sources: Sources, root, arch: Optional[str], from_root: bool = False,
                    tags: Optional[Dict[str, str]] = None, diag: Diagnostics = SILENT) -> List[str]:
    """Where the indexes are: the ones named, or (``from_root``) the root's
    repositories (``tags`` receives {location: tag} for the tagged ones;
    ``diag.warning`` hears of the lines skipped)."""
    from .repositories import NamedIndexes, index_locations as locate

    if from_root:
        return locate(NamedIndexes(), arch=arch, root=root, tags=tags, diag=diag)
    return locate(sources.named(), arch=arch, root=root)


def index_cache(sources: Sources, diag: Diagnostics = SILENT):
    """The index cache, or None (``--no-cache``, or a folder that cannot be
    used: ``diag.warning`` says so)."""
    if not sources.use_cache:
        return None
    from ..cachedir import default_cache_dir
    from .fetch import IndexCache

    return IndexCache.open(str(default_cache_dir(sources.cache_dir)), diag)


def trusted_keys(root, arch: Optional[str], sources: Sources):
    """The keys indexes are verified against: ``--keys-dir``, else the root's
    and the host's apk keys, else the Alpine keys shipped with rundeps
    (:func:`rundeps.apk.keys.trusted_key_set`)."""
    from .keys import trusted_key_set

    return trusted_key_set(root, arch, sources.keys_dirs)


def open_indexes(locations: Sequence[str], request: IndexRequest, tolerant: bool = False,
                 tags: Optional[Dict[str, str]] = None) -> list:
    """Open, verify and (through the cache) read every index location, in
    order (a list of :class:`rundeps.apk.index.IndexFile`).

    ``tags``: {location: tag} of the repositories named with ``@tag``; their
    packages lose a provider choice to untagged ones, as apk's pinning does.

    A named index that cannot be used is an error. With ``tolerant`` (the
    root's own repositories, as apk treats them) it is a warning and the
    index is skipped: an index that does not verify is never used either way.
    """
    if not locations:
        return []
    files = root_files(request.root)
    request = replace(request, root=files)
    arch, sources, diag = request.arch, request.sources, request.diag
    from .fetch import FetchOptions, open_index

    keys = trusted_keys(files, arch, sources)
    cache = index_cache(sources, diag)
    options = FetchOptions(cache=cache, offline=sources.offline, refresh=sources.refresh,
                           allow_untrusted=sources.allow_untrusted, diag=diag)
    out = []
    unreachable: Dict[str, str] = {}  # host -> why, once a download found it unreachable
    # No shared requests session: importing requests costs ~140 ms, and a
    # warm run (index fresh in the cache) must not pay it. open_index makes
    # one only when it has to talk to a server.
    try:
        for loc in locations:
            try:
                index = None
                if sources.apk_cache and not sources.refresh:
                    index = open_apk_cached(loc, request, keys, cache)
                if index is None:
                    host = _remote_host(loc)
                    if host in unreachable and not sources.offline:
                        raise SourceError(f"{loc}: not tried: {unreachable[host]} a moment ago")
                    try:
                        index = open_index(loc, keys, options)
                    except SourceError as exc:
                        if getattr(exc, "unreachable", False) and host:
                            unreachable[host] = f"{host} could not be reached"
                        raise
                if arch and index.arch and index.arch != arch:
                    raise SourceError(
                        f"{loc}: the index is for {index.arch}, not {arch}: its packages cannot "
                        f"serve these files (name the {arch} index, or --arch)"
                    )
                index.repository.tag = (tags or {}).get(loc)
                out.append(index)
            except SourceError as exc:
                if not tolerant:
                    raise
                diag.warning(f"skipped a repository of {files.name}: {exc}")
    finally:
        if cache is not None:
            cache.close()  # checkpointed now: the process may leave with os._exit
    return out


def _remote_host(location: str) -> Optional[str]:
    """``scheme://host:port`` of an http(s) location, else None."""
    if not location.lower().startswith(("http://", "https://")):
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def open_apk_cached(location: str, request: IndexRequest, keys, cache):
    """The root's own apk-cached copy of a remote index (``/var/cache/apk/
    APKINDEX.<hash>.tar.gz``, see :mod:`rundeps.apk.imagecache`), verified
    against ``keys`` like any other index (through the index ``cache``, or
    None), or None when there is none (or it does not verify: then a
    warning, and the caller goes on to the network).  ``request.root``: a
    host folder or a root through the root protocol (an image's tree: the
    cached copy is read from the image)."""
    if _remote_host(location) is None:
        return None
    from .imagecache import find_cached_index

    files = root_files(request.root)
    shown = find_cached_index(files, location, arch=request.arch)  # in-root real path
    if shown is None:
        return None
    from .fetch import FetchOptions, open_cached_copy

    diag = request.diag
    options = FetchOptions(cache=cache, allow_untrusted=request.sources.allow_untrusted,
                           diag=Diagnostics(warning=diag.warning))
    try:
        index = open_cached_copy(shown, location, keys, options, files=files)
    except SourceError as exc:
        diag.warning(f"the image's apk cache {shown} for {location} cannot be used ({exc}); not used")
        return None
    diag.info(f"{location}: using the image's apk cache {shown}")
    return index

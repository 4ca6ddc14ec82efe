"""The package sources put together: an installed database and repository
indexes, read into one :class:`~rundeps.apk.model.Universe`.

:class:`Sources` says where packages come from (the CLI's source options);
:func:`load_universe` reads the installed database and opens, verifies and
(through the index cache, or the image's own apk cache) reads every index,
in order.  :mod:`rundeps.api` re-exports these names.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

from ..errors import SourceError, refuse_special
from ..rootfs import root_files, shown_path
from .model import Repository, Universe, parse_installed

__all__ = ["Sources", "load_database", "load_universe", "installed_database", "index_locations",
           "index_cache", "trusted_keys", "open_indexes", "open_apk_cached",
           "INSTALLED_DB", "USR_INSTALLED_DB"]

Warn = Callable[[str], None]


class Sources:
    """Where packages come from: an installed database and repository indexes.

    ``db``: an installed database file (default ``<root>/lib/apk/db/installed``);
    ``indexes``, ``repos``, ``alpine``/``mirror``: repository indexes;
    ``keys_dirs``: trusted keys besides the root's; ``apk_cache``: use the
    root's own apk cache (``var/cache/apk/APKINDEX.<hash>.tar.gz``) before the
    network (never with ``refresh``); the rest as the CLI options.
    """

    def __init__(
        self,
        db: Optional[str] = None,
        indexes: Sequence[str] = (),
        repos: Sequence[str] = (),
        alpine: Optional[str] = None,
        mirror: Optional[str] = None,
        keys_dirs: Sequence[str] = (),
        allow_untrusted: bool = False,
        offline: bool = False,
        refresh: bool = False,
        cache_dir: Optional[str] = None,
        use_cache: bool = True,
        apk_cache: bool = True,
    ):
        self.db = db
        self.indexes = indexes
        self.repos = repos
        self.alpine = alpine
        self.mirror = mirror
        self.keys_dirs = keys_dirs
        self.allow_untrusted = allow_untrusted
        self.offline = offline
        self.refresh = refresh
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.apk_cache = apk_cache

    def names_index(self) -> bool:
        return bool(self.indexes or self.repos or self.alpine)


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


def load_universe(
    root,
    sources: Sources,
    arch: Optional[str],
    on_warning: Warn,
    explicit_root: bool = False,
    on_info: Optional[Warn] = None,
) -> Universe:
    """The installed database (if any) followed by the named indexes.

    ``root``: a host folder (``str``) or a root through the root protocol
    (:func:`rundeps.rootfs.root_files`: an image's tree).  With ``--root``,
    no database and no index named, the root's ``etc/apk/repositories``
    are the indexes.
    """
    files = root_files(root)
    universe = Universe()
    found = installed_database(files)
    if sources.db:
        universe.add(load_database(sources.db))
    elif found:
        universe.add(load_database(found, files))
    db_path = sources.db or shown_path(files, found or INSTALLED_DB)
    locations: List[str] = []
    tags: dict = {}
    if sources.names_index():
        locations = index_locations(sources, files, arch)
    elif explicit_root and not universe:
        locations = index_locations(sources, files, arch, from_root=True, tags=tags, on_warning=on_warning)
    from_root = not sources.names_index()
    for index in open_indexes(locations, files, arch, sources, on_warning, on_info, tolerant=from_root, tags=tags):
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
                    tags: Optional[dict] = None, on_warning: Optional[Warn] = None) -> List[str]:
    """Where the indexes are: the ones named, or (``from_root``) the root's
    repositories (``tags`` receives {location: tag} for the tagged ones)."""
    from .repositories import index_locations as locate

    if from_root:
        return locate(arch=arch, root=root, tags=tags, on_warning=on_warning)
    return locate(indexes=sources.indexes, repos=sources.repos, alpine=sources.alpine,
                  mirror=sources.mirror, arch=arch, root=root)


def index_cache(sources: Sources, on_warning: Warn):
    """The index cache, or None (``--no-cache``, or a folder that cannot be used)."""
    if not sources.use_cache:
        return None
    from ..cachedir import default_cache_dir
    from .fetch import IndexCache

    return IndexCache.open(str(default_cache_dir(sources.cache_dir)), on_warning)


def trusted_keys(root, arch: Optional[str], sources: Sources):
    """The keys indexes are verified against: ``--keys-dir``, else the root's
    and the host's apk keys, else the Alpine keys shipped with rundeps
    (:func:`rundeps.apk.index.trusted_key_set`)."""
    from .index import trusted_key_set

    return trusted_key_set(root, arch, sources.keys_dirs)


def open_indexes(locations: Sequence[str], root, arch: Optional[str], sources: Sources,
                 on_warning: Warn, on_info: Optional[Warn] = None, tolerant: bool = False,
                 tags: Optional[dict] = None):
    """Open, verify and (through the cache) read every index location, in order.

    ``tags``: {location: tag} of the repositories named with ``@tag``; their
    packages lose a provider choice to untagged ones, as apk's pinning does.

    A named index that cannot be used is an error. With ``tolerant`` (the
    root's own repositories, as apk treats them) it is a warning and the
    index is skipped: an index that does not verify is never used either way.
    ``root``: a host folder or a root through the root protocol.
    """
    if not locations:
        return []
    files = root_files(root)
    from .fetch import FetchOptions, open_index

    keys = trusted_keys(files, arch, sources)
    cache = index_cache(sources, on_warning)
    options = FetchOptions(cache=cache, offline=sources.offline, refresh=sources.refresh,
                           allow_untrusted=sources.allow_untrusted, on_warning=on_warning, on_info=on_info)
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
                    index = open_apk_cached(loc, files, keys, cache, sources, on_warning, on_info, arch)
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
                on_warning(f"skipped a repository of {files.name}: {exc}")
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


def open_apk_cached(location: str, root, keys, cache, sources: Sources, on_warning: Warn,
                    on_info: Optional[Warn] = None, arch: Optional[str] = None):
    """The root's own apk-cached copy of a remote index (``/var/cache/apk/
    APKINDEX.<hash>.tar.gz``, see :mod:`rundeps.apk.imagecache`), verified like
    any other index, or None when there is none (or it does not verify:
    then a warning, and the caller goes on to the network).  ``root``: a
    host folder or a root through the root protocol (an image's tree: the
    cached copy is read from the image)."""
    if _remote_host(location) is None:
        return None
    from .imagecache import find_cached_index

    files = root_files(root)
    shown = find_cached_index(files, location, arch=arch)  # in-root real path
    if shown is None:
        return None
    from .fetch import FetchOptions, open_cached_copy

    options = FetchOptions(cache=cache, allow_untrusted=sources.allow_untrusted, on_warning=on_warning)
    try:
        index = open_cached_copy(shown, location, keys, options, files=files)
    except SourceError as exc:
        on_warning(f"the image's apk cache {shown} for {location} cannot be used ({exc}); not used")
        return None
    if on_info is not None:
        on_info(f"{location}: using the image's apk cache {shown}")
    return index

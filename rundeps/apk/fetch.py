"""Open repository indexes, over HTTP(S) or from disk, through the index cache.

:func:`open_index` turns one location (a file path, ``file://`` or
``http(s)://`` URL) into a verified :class:`~rundeps.apk.index.IndexFile`;
the downloads are :mod:`rundeps.apk.download`'s, the cache is
:class:`~rundeps.apk.indexcache.IndexCache`.

HTTP (``requests``, imported only when a download happens): connect/read
timeouts, bounded retries with exponential backoff on connection errors,
timeouts, a dropped body, 5xx, 408 and 429 -- but a host name that does not
resolve, a refused connection or an unreachable network is one attempt, not
retried (a build without network learns it at once); a 404 names the release,
repository and architecture that do not exist; proxies and CA bundles come
from the environment as ``requests`` reads them (``HTTPS_PROXY``,
``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``); the body is read
raw (``Accept-Encoding: identity``, no transparent decoding) and bounded.

Cache (``diskcache``, in ``<cache dir>/index``), three kinds of entries:

* ``meta:<url>`` -- JSON: sha256 of the bytes, ETag, Last-Modified, when
  they were downloaded and when last confirmed by the server;
* ``raw:<sha256>`` -- the exact ``APKINDEX.tar.gz`` bytes (checked against
  their sha256 on every read);
* ``parsed:<sha256>`` -- the parsed index (:meth:`IndexFile.to_bytes`,
  checksummed) with the verification result: the signer's key name and the
  sha256 of that key's PEM.

Decisions:

* Within ``ttl`` a URL is served from the cache with no network at all.
  After it, a conditional request (``If-None-Match``/``If-Modified-Since``)
  revalidates; a 304 refreshes the entry's time.  ``refresh=True`` always
  asks the server.
* Trust on the warm path: a parsed entry is reused only if it records that
  these exact bytes (the key is their sha256) verified with a key whose
  file name *and* content (sha256 of the PEM) are in the current key set.
  Otherwise the cached raw bytes are verified and parsed again, so removing
  a key, or a run that used ``allow_untrusted``, never leaks trust.  An
  entry stored unverified (``allow_untrusted``) is reused only with
  ``allow_untrusted`` and the very same key set, warning again.
* Nothing is cached until it verified (or was accepted with
  ``allow_untrusted``); a failed download, a bad signature or an HTML page
  leave the last good entry in place.  When a refresh fails for a transient
  reason (connection, timeout, 5xx) and a cached copy exists, that copy is
  used with a warning giving its age -- except with ``refresh=True``,
  where the failure is the answer.
* Local files are read every time (cheap), and their parsed form is cached
  by the bytes' sha256, so a warm run neither re-verifies nor re-parses.
* Corrupt entries (checksum, sha256 or format mismatch) are dropped and
  rebuilt; a cache folder that cannot be created or written degrades to no
  cache with one warning.  ``diskcache`` (SQLite) makes concurrent use by
  several processes safe; entries are written raw first, meta last.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import unquote, urlsplit

from ..diagnostics import SILENT, Diagnostics
from ..errors import SourceError, refuse_special
from .download import FetchError, Response, http_get, make_session
from .index import MAX_INDEX_BYTES, IndexFile, keyset_digest, read_index
from .indexcache import IndexCache, clear_cache

__all__ = [
    "FetchError",
    "FetchOptions",
    "IndexCache",
    "IndexInfo",
    "open_index",
    "open_cached_copy",
    "index_info",
    "update_indexes",
    "clear_cache",
    "make_session",
    "is_url",
    "format_age",
    "DEFAULT_TTL",
]

DEFAULT_TTL = 3600.0
DEFAULT_TIMEOUT = (5.0, 30.0)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_TIME = 300.0
"""Longest a single download may take, however steadily data trickles in."""

@dataclass(frozen=True)
class FetchOptions:
    """How :func:`open_index` gets an index: one frozen value for the cache,
    the network policy, the limits and the callbacks (make a variant with
    :func:`dataclasses.replace`).

    ``cache``: the :class:`IndexCache` (None: no cache); ``offline``: the
    cache only, never the network; ``refresh``: always ask the server (a
    conditional request when cached), and a failure is the answer;
    ``ttl``: seconds a cached URL is used without asking the server;
    ``timeout``: requests' (connect, read) seconds; ``retries`` and
    ``backoff``: further attempts after a transient failure, the first
    ``backoff`` seconds later and doubling; ``max_size``: the most bytes an
    index may have; ``max_time``: the longest one download may take;
    ``allow_untrusted``: use an index that does not verify (with a warning);
    ``diag``: its ``warning`` for problems that did not stop the run, its
    ``info`` for cache use (offline age, revalidation); ``session``: a ``requests.Session`` to
    use (None: one is made when a download happens); ``now``: the time to
    judge ages by (None: the clock).

    ``ttl``, ``timeout``, ``retries`` and ``backoff`` default to this
    module's ``DEFAULT_*`` values as they are when the options are made
    (the command line has no option for them; tests shorten them).
    """

    cache: Optional["IndexCache"] = None
    offline: bool = False
    refresh: bool = False
    ttl: float = field(default_factory=lambda: DEFAULT_TTL)
    timeout: Any = field(default_factory=lambda: DEFAULT_TIMEOUT)
    retries: int = field(default_factory=lambda: DEFAULT_RETRIES)
    backoff: float = field(default_factory=lambda: DEFAULT_BACKOFF)
    max_size: int = MAX_INDEX_BYTES
    max_time: float = MAX_TIME
    allow_untrusted: bool = False
    diag: Diagnostics = SILENT
    session: Any = None
    now: Optional[float] = None


def is_url(location: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location))


def format_age(seconds: Optional[float]) -> str:
    """``42 seconds``, ``5 minutes``, ``3 hours``, ``2 days``."""
    if seconds is None:
        return "unknown time"
    s = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{s} second{'s' if s != 1 else ''}"


class _Miss(Exception):
    """A cache entry needed is absent or damaged."""


def _age(now: float, index: IndexFile) -> Optional[float]:
    """Seconds since ``index`` was fetched (None: not known)."""
    return None if index.fetched_at is None else now - index.fetched_at


# -- opening an index ---------------------------------------------------------------


def _local_path(location: str) -> str:
    if location.startswith("file://"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"{location}: only local file:// URLs are supported")
        return unquote(parts.path)
    return location


def _read_local(path: str, name: str) -> bytes:
    """The bytes of the index file ``path`` (at most the size limit); a
    FIFO or device is refused unopened."""
    refuse_special(path, "file")
    with _index_read_errors(name):
        size = os.path.getsize(path)
        if size <= MAX_INDEX_BYTES:
            with open(path, "rb") as f:
                return f.read(MAX_INDEX_BYTES + 1)
    raise SourceError(f"{name}: the index is larger than {MAX_INDEX_BYTES // (1024 * 1024)} MiB; refused")


def _read_in_root(files, path: str) -> bytes:
    """:func:`_read_local` for the in-root file ``path`` of ``files`` (the root protocol)."""
    from ..rootfs import shown_path

    name = shown_path(files, path)
    with _index_read_errors(name):
        data = files.read(path, 0, MAX_INDEX_BYTES + 1)
    if len(data) > MAX_INDEX_BYTES:
        raise SourceError(f"{name}: the index is larger than {MAX_INDEX_BYTES // (1024 * 1024)} MiB; refused")
    return data


class _index_read_errors:
    """Reading a local index ``name``: an :class:`OSError` becomes one :class:`SourceError` line."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, OSError):
            return False
        name = self.name
        if isinstance(exc, FileNotFoundError):
            raise SourceError(f"index file not found: {name}") from None
        if isinstance(exc, IsADirectoryError):
            raise SourceError(f"{name} is a folder, not an APKINDEX.tar.gz (for a repository folder use --repo)") from None
        raise SourceError(f"cannot read index {name}: {exc.strerror or exc}") from None


def _from_cache_or_read(
    data: Optional[bytes],
    sha256: str,
    name: str,
    keys: Mapping,
    cache: Optional[IndexCache],
    allow_untrusted: bool,
    diag: Diagnostics,
) -> IndexFile:
    """The parsed index for bytes with this sha256: the cached parse when its
    trust still holds, else verify and parse ``data`` (or the cached raw
    bytes when ``data`` is None) and cache the result."""
    if cache is not None:
        index = cache.get_parsed(sha256, name)
        if index is not None:
            if index.trusted_with(keys):
                for w in index.warnings:
                    diag.warning(w)
                return index
            if allow_untrusted and not index.verified and index.keyset_sha256 == keyset_digest(keys):
                for w in index.warnings:
                    diag.warning(w)
                return index
        if data is None:
            data = cache.get_raw(sha256)
    if data is None:
        raise _Miss()
    index = read_index(data, keys, name=name, allow_untrusted=allow_untrusted, diag=diag)
    if cache is not None:
        cache.set_parsed(index)
    return index


def open_index(location: str, keys: Mapping, options: Optional[FetchOptions] = None) -> IndexFile:
    """Open one index (file path, ``file://`` or ``http(s)://`` URL), verified.

    ``keys``: trusted keys (:func:`rundeps.apk.keys.load_keys`); ``options``:
    the cache, the network policy, the callbacks (:class:`FetchOptions`; None:
    the defaults).  See the module's documentation for the cache rules.
    Raises :class:`SourceError` (or its subclass :class:`FetchError`) with a
    one-line message.
    """
    options = FetchOptions() if options is None else options
    if not is_url(location) or location.startswith("file://"):
        path = _local_path(location)
        return _open_local(path, location, location, keys, options, from_cache=False)
    scheme = location.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise SourceError(f"{location}: unsupported URL scheme {scheme!r} (use http, https or a file path)")
    return _open_remote(location, keys, options)


def open_cached_copy(path: str, location: str, keys: Mapping, options: Optional[FetchOptions] = None,
                     files=None) -> IndexFile:
    """A local copy (``path``) of the remote index ``location`` -- the image's
    apk cache -- verified and parsed (through ``options.cache``) under the
    name ``location``, so its packages' source is the repository's index.

    ``path`` is a host path; with ``files`` (a root through the root
    protocol, :func:`rundeps.rootfs.root_files`: a host folder or an
    image's tree) an in-root path read through it.  Verified alike."""
    options = FetchOptions() if options is None else options
    if files is None:
        return _open_local(path, path, location, keys, options, from_cache=True)
    data = _read_in_root(files, path)
    return _open_data(data, location, keys, options, from_cache=True)


def _open_local(path: str, shown: str, location: str, keys: Mapping, options: FetchOptions,
                from_cache: bool) -> IndexFile:
    """The index file at ``path`` (named ``shown`` in errors) verified and
    parsed through the cache under the name ``location``."""
    return _open_data(_read_local(path, shown), location, keys, options, from_cache)


def _open_data(data: bytes, location: str, keys: Mapping, options: FetchOptions, from_cache: bool) -> IndexFile:
    """An index file's bytes verified and parsed through the cache under the name ``location``."""
    sha = hashlib.sha256(data).hexdigest()
    index = _from_cache_or_read(data, sha, location, keys, options.cache, options.allow_untrusted, options.diag)
    index.fetched_at = None
    index.from_cache = from_cache
    return index


def _cached_copy(url: str, meta: dict, keys: Mapping, options: FetchOptions) -> IndexFile:
    """The cached index of ``url`` that ``meta`` describes; :class:`_Miss`
    when its entries are gone."""
    index = _from_cache_or_read(None, meta["sha256"], url, keys, options.cache, options.allow_untrusted,
                                options.diag)
    index.fetched_at = float(meta["checked_at"])
    index.from_cache = True
    return index


def _open_remote(url: str, keys: Mapping, options: FetchOptions) -> IndexFile:
    """An http(s) index: offline from the cache, fresh from the cache within
    the ttl, else asked of the server (conditionally when cached)."""
    now = time.time() if options.now is None else options.now
    cache = options.cache
    meta = cache.get_meta(url) if cache is not None else None

    if options.offline:
        return _open_offline(url, meta, keys, options, now)

    if meta is not None and not options.refresh and 0 <= now - float(meta["checked_at"]) < options.ttl:
        try:
            return _cached_copy(url, meta, keys, options)
        except _Miss:
            meta = None

    headers: Dict[str, str] = {}
    if meta is not None and cache is not None and cache.has_raw(meta["sha256"]):
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
    else:
        meta = None

    session = options.session
    own_session = session is None
    if own_session:
        session = make_session()
    try:
        answer = _ask_server(url, meta, headers, keys, options, session, now)
    finally:
        if own_session:
            session.close()
    if isinstance(answer, IndexFile):
        return answer
    return _read_download(url, answer, keys, options, now)


def _open_offline(url: str, meta: Optional[dict], keys: Mapping, options: FetchOptions, now: float) -> IndexFile:
    """``--offline``: the cached copy, whatever its age, or an error."""
    if meta is None:
        raise SourceError(f"{url}: no cached copy to use offline (run once without --offline)")
    try:
        index = _cached_copy(url, meta, keys, options)
    except _Miss:
        raise SourceError(f"{url}: the cached copy is incomplete; run once without --offline") from None
    options.diag.info(f"{url}: offline, using the cached index from {format_age(_age(now, index))} ago")
    return index


def _ask_server(url: str, meta: Optional[dict], headers: Dict[str, str], keys: Mapping, options: FetchOptions,
                session, now: float) -> Union[IndexFile, Response]:
    """The server's answer to a request (conditional when ``meta`` describes
    a cached copy): a downloaded body, or the cached index when the server
    says it has not changed (304) or a transient failure leaves the cached
    copy the best there is (not with ``refresh``)."""
    try:
        resp = http_get(url, session=session, headers=headers, options=options)
    except FetchError as e:
        if meta is not None and e.transient and not options.refresh:
            try:
                index = _cached_copy(url, meta, keys, options)
            except _Miss:
                raise e from None
            options.diag.warning(f"{e}; using the cached index from {format_age(_age(now, index))} ago")
            return index
        raise
    if resp.status != 304:
        return resp
    if meta is None:
        raise FetchError(f"{url}: the server answered 304 Not Modified to an unconditional request")
    try:
        index = _cached_copy(url, meta, keys, options)
    except _Miss:
        # the entry vanished meanwhile: fetch it whole
        resp = http_get(url, session=session, headers={}, options=options)
        if resp.status != 200:
            raise FetchError(f"{url}: the server answered {resp.status} to an unconditional request")
        return resp
    meta = dict(meta, checked_at=now)
    options.cache.set_meta(url, meta)  # type: ignore[union-attr]
    index.fetched_at = now
    since = float(meta.get("downloaded_at") or meta["checked_at"])
    options.diag.info(f"{url}: not modified (downloaded {format_age(now - since)} ago)")
    return index


def _read_download(url: str, resp: Response, keys: Mapping, options: FetchOptions, now: float) -> IndexFile:
    """Verify and parse a downloaded index, then cache it: raw bytes and
    parse first, meta last."""
    data = resp.body
    sha = hashlib.sha256(data).hexdigest()
    index = read_index(data, keys, name=url, allow_untrusted=options.allow_untrusted, diag=options.diag)
    cache = options.cache
    if cache is not None:
        cache.set_raw(sha, data)
        cache.set_parsed(index)
        cache.set_meta(url, {
            "sha256": sha,
            "etag": resp.etag,
            "last_modified": resp.last_modified,
            "downloaded_at": now,
            "checked_at": now,
            "size": len(data),
        })
    index.fetched_at = now
    index.from_cache = False
    return index


# -- index show / update / clear ------------------------------------------------------


@dataclass
class IndexInfo:
    """What ``rundeps index show`` prints about one index."""

    location: str
    cached: bool
    description: str = ""
    arch: Optional[str] = None
    package_count: int = 0
    so_provide_count: int = 0
    signer: Optional[str] = None
    algo: Optional[str] = None
    verified: bool = False
    sha256: str = ""
    key_sha256: Optional[str] = None
    """sha256 of the PEM of the key that verified it."""
    key_path: Optional[str] = None
    """The trusted key file that verified it, when that key is trusted now
    (see :func:`describe_keys`)."""
    key_bundled: bool = False
    """That key is one of the Alpine keys shipped with rundeps."""
    size: int = 0
    fetched_at: Optional[float] = None
    """When the server last confirmed it (download or 304)."""
    downloaded_at: Optional[float] = None
    age: Optional[float] = None
    """Seconds since ``fetched_at``."""

    @classmethod
    def of(cls, index: IndexFile, now: Optional[float] = None, downloaded_at: Optional[float] = None) -> "IndexInfo":
        now = time.time() if now is None else now
        return cls(
            location=index.name,
            cached=index.from_cache,
            description=index.description,
            arch=index.arch,
            package_count=index.package_count,
            so_provide_count=index.so_provide_count,
            signer=index.signer,
            algo=index.algo,
            verified=index.verified,
            sha256=index.sha256,
            key_sha256=index.key_sha256,
            size=index.size,
            fetched_at=index.fetched_at,
            downloaded_at=downloaded_at,
            age=None if index.fetched_at is None else now - index.fetched_at,
        )


def index_info(locations: Sequence[str], cache: Optional[IndexCache], now: Optional[float] = None) -> List[IndexInfo]:
    """What the cache knows about each URL (no network, no verification).

    With no ``locations``, every cached URL.  A URL not in the cache gives
    ``IndexInfo(location, cached=False)``; local files are described from the
    file's cached parse when there is one.  ``verified`` reports the result
    recorded when the index was cached.
    """
    now = time.time() if now is None else now
    if not locations:
        locations = cache.locations() if cache is not None else []
    out: List[IndexInfo] = []
    for loc in locations:
        if cache is None:
            out.append(IndexInfo(loc, cached=False))
            continue
        index: Optional[IndexFile] = None
        meta = None
        if is_url(loc) and not loc.startswith("file://"):
            meta = cache.get_meta(loc)
            if meta is not None:
                index = cache.get_parsed(meta["sha256"], loc)
        else:
            try:
                data = _read_local(_local_path(loc), loc)
                index = cache.get_parsed(hashlib.sha256(data).hexdigest(), loc)
            except SourceError:
                index = None
        if index is None:
            out.append(IndexInfo(loc, cached=False))
            continue
        index.from_cache = True
        if meta is not None:
            index.fetched_at = float(meta["checked_at"])
        info = IndexInfo.of(index, now, downloaded_at=None if meta is None else meta.get("downloaded_at"))
        out.append(info)
    return out


def describe_keys(infos: Sequence[IndexInfo], keys) -> List[IndexInfo]:
    """Fill in which trusted key file (of ``keys``, a
    :class:`rundeps.apk.keys.KeySet`) verified each index: ``key_path``,
    ``key_bundled``.  An index whose key is not trusted now keeps None."""
    for info in infos:
        if info.verified and keys is not None:
            path_of = getattr(keys, "path_of", None)
            info.key_path = path_of(info.signer, info.key_sha256) if path_of else None
            info.key_bundled = bool(info.key_path) and bool(getattr(keys, "bundled", False))
    return list(infos)


def update_indexes(locations: Sequence[str], keys: Mapping, options: Optional[FetchOptions] = None) -> List[IndexInfo]:
    """Fetch every location again, in order (``refresh``: conditional
    requests when cached; never ``offline``; one HTTP session for them all)
    and describe the result.

    (The indexes a run reads are opened by
    :func:`rundeps.apk.sources.open_indexes`, which adds the image's apk
    cache, ``@tag`` pinning and the arch check.)"""
    options = replace(FetchOptions() if options is None else options, refresh=True, offline=False)
    cache = options.cache
    now = time.time()
    own = options.session is None and any(is_url(loc) and not loc.startswith("file://") for loc in locations)
    if own:
        options = replace(options, session=make_session())
    try:
        indexes = [open_index(loc, keys, options) for loc in locations]
    finally:
        if own:
            options.session.close()
    infos = []
    for index in indexes:
        meta = cache.get_meta(index.name) if cache is not None and is_url(index.name) else None
        info = IndexInfo.of(index, now, downloaded_at=None if meta is None else meta.get("downloaded_at"))
        # ``cached`` says whether the cache now holds these very bytes (a fresh
        # download is cached too; one a read-only or full cache could not
        # keep is not), so ``index update`` describes what it fetched.
        if cache is not None:
            if meta is not None:
                info.cached = meta.get("sha256") == index.sha256
            elif not is_url(index.name):
                info.cached = cache.get_parsed(index.sha256, index.name) is not None
        infos.append(info)
    return infos

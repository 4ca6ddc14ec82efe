"""Fetch repository indexes over HTTP(S) and cache them on disk.

:func:`open_index` turns one location (a file path, ``file://`` or
``http(s)://`` URL) into a verified :class:`~rundeps.apk.index.IndexFile`.

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
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import unquote, urlsplit

from .. import __version__
from .index import MAX_INDEX_BYTES, IndexFile, keyset_digest, read_index
from ..errors import SourceError, refuse_special

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
MAX_BACKOFF = 8.0
MAX_TIME = 300.0
"""Longest a single download may take, however steadily data trickles in."""

Callback = Optional[Callable[[str], None]]


class FetchError(SourceError):
    """A download that failed; ``transient`` when retrying later may work;
    ``unreachable`` when the host could not be reached at all (its name does
    not resolve, the connection was refused, no route): not retried."""

    def __init__(self, message: str, transient: bool = False, unreachable: bool = False):
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable

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
    ``on_warning``: problems that did not stop the run; ``on_info``: cache
    use (offline age, revalidation); ``session``: a ``requests.Session`` to
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
    on_warning: Callback = None
    on_info: Callback = None
    session: Any = None
    now: Optional[float] = None


def _unreachable(exc: BaseException) -> Optional[str]:
    """Why the host cannot be reached at all, when ``exc`` (from requests or
    urllib3, through their ``reason``/``__cause__`` chains) says so: a name
    that does not resolve, a refused connection, no route to the network."""
    import errno
    import socket

    seen = 0
    todo = [exc]
    while todo and seen < 32:
        e = todo.pop()
        seen += 1
        if e is None:
            continue
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return "cannot resolve the host name"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, OSError) and e.errno in (errno.ECONNREFUSED, errno.ENETUNREACH):
            return "connection refused" if e.errno == errno.ECONNREFUSED else "the network is unreachable"
        todo.append(getattr(e, "reason", None) if isinstance(getattr(e, "reason", None), BaseException) else None)
        todo.append(e.__cause__)
        todo.append(e.__context__)
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return None


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


def _say(cb: Callback, msg: str) -> None:
    if cb is not None:
        cb(msg)


# -- the cache ------------------------------------------------------------------


class _Miss(Exception):
    """A cache entry needed is absent or damaged."""


class IndexCache:
    """The index cache, a ``diskcache.Cache`` in ``<directory>/index``.

    Open with :meth:`open`, which returns None (after one warning) when the
    folder cannot be used.  Every read treats damage as a miss and drops the
    entry; the first failing write warns once and turns writing off.
    """

    SUBDIR = "index"

    def __init__(self, cache, directory: str, on_warning: Callback = None):
        self._cache = cache
        self.directory = directory
        self._on_warning = on_warning
        self.writable = True

    @classmethod
    def open(cls, directory: Union[str, os.PathLike], on_warning: Callback = None) -> Optional["IndexCache"]:
        """The cache under ``directory`` (the rundeps cache folder), or None."""
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
            _say(on_warning, f"cache folder {path} cannot be used ({_short(e)}); continuing without a cache")
            return None
        return cls(cache, path, on_warning)

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
            _say(self._on_warning, f"cache folder {self.directory} is not writable ({_short(e)}); not caching")
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
            raise SourceError(f"cannot clear the index cache {self.directory}: {_short(e)}") from None


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


# -- HTTP -------------------------------------------------------------------------


def make_session():
    """A ``requests.Session`` for index downloads (environment proxies and CA
    bundle honoured, at most 10 redirects)."""
    import requests

    session = requests.Session()
    session.max_redirects = 10
    session.headers["User-Agent"] = f"rundeps/{__version__}"
    return session


@dataclass
class _Response:
    status: int
    body: bytes = b""
    etag: Optional[str] = None
    last_modified: Optional[str] = None


def _short(exc: BaseException) -> str:
    """A one-line reason for an exception from requests, urllib3 or the OS."""
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        return m.group(1).strip().rstrip(".")
    for pattern, say in (
        (r"Name or service not known|nodename nor servname|getaddrinfo failed|NameResolution", "cannot resolve the host name"),
        (r"Connection refused", "connection refused"),
        (r"Read timed out", "no answer within the read timeout"),
        (r"timed out", "timed out"),
        (r"IncompleteRead|Connection broken|RemoteDisconnected|closed connection", "the connection was dropped"),
        (r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", "TLS certificate verification failed"),
    ):
        if re.search(pattern, text):
            return say
    text = " ".join(text.split())
    return (text[:160] + "...") if len(text) > 160 else (text or type(exc).__name__)


_ALPINE_URL = re.compile(r"/(v\d+\.\d+|edge|latest-stable)/([^/]+)/([^/]+)/APKINDEX\.tar\.gz$")
_REPO_URL = re.compile(r"^(.*)/([^/]+)/APKINDEX\.tar\.gz$")


def _not_found(url: str, status: int) -> FetchError:
    path = urlsplit(url).path
    m = _ALPINE_URL.search(path)
    if m:
        release, repo, arch = m.groups()
        return FetchError(
            f"no index at {url} (HTTP {status}): Alpine {release} has no '{repo}' repository for {arch} on "
            f"this mirror; check the release, repository and architecture"
        )
    m = _REPO_URL.match(url)
    if m:
        return FetchError(
            f"no index at {url} (HTTP {status}): repository {m.group(1)} has nothing for architecture "
            f"{m.group(2)}; check the repository URL and the architecture"
        )
    return FetchError(f"no index at {url} (HTTP {status})")


def _chunks(raw, size: int = 65536):
    """The raw (undecoded) body as it arrives: ``read1`` where urllib3 has it
    (so a stall is noticed with what came before it), else ``stream``."""
    read1 = getattr(raw, "read1", None)
    if read1 is None:
        yield from raw.stream(size, decode_content=False)
        return
    while True:
        chunk = read1(size, decode_content=False)
        if not chunk:
            return
        yield chunk


class _Retry(Exception):
    """This attempt failed, but another one may work; the message says why."""


def _transient_errors() -> tuple:
    """The exceptions (requests, urllib3, http.client, the OS) after which
    another attempt may work."""
    import http.client

    import requests
    import urllib3

    return (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
        OSError,
        http.client.HTTPException,
    )


def _http_get(url: str, *, session, headers: Dict[str, str], options: FetchOptions) -> _Response:
    """GET ``url`` with bounded retries (see the module's documentation): a
    200 with its body, or a 304; anything else raises :class:`FetchError`."""
    transient = _transient_errors()
    hdrs = {"Accept-Encoding": "identity", "User-Agent": f"rundeps/{__version__}"}
    hdrs.update(headers)
    attempts = max(0, int(options.retries)) + 1
    last = "no attempt made"
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(options.backoff * (2 ** (attempt - 1)), MAX_BACKOFF))
        try:
            return _attempt(url, session, hdrs, options, transient)
        except _Retry as retry:
            last = str(retry)
    raise FetchError(f"{url}: {last} (gave up after {attempts} attempt{'s' if attempts != 1 else ''})", transient=True)


def _attempt(url: str, session, hdrs: Dict[str, str], options: FetchOptions, transient: tuple) -> _Response:
    """One request and its answer; :class:`_Retry` when another attempt may work."""
    import requests

    try:
        resp = session.get(url, headers=hdrs, timeout=options.timeout, stream=True, allow_redirects=True)
    except requests.exceptions.TooManyRedirects:
        raise FetchError(f"{url}: too many redirects (a redirect loop?)") from None
    except requests.exceptions.SSLError as e:
        raise FetchError(
            f"{url}: TLS error: {_short(e)} (a custom CA bundle can be set with REQUESTS_CA_BUNDLE)"
        ) from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as e:
        raise FetchError(f"{url}: not a usable URL ({_short(e)})") from None
    except requests.exceptions.Timeout as e:
        raise _Retry(f"timed out ({_short(e)})") from None
    except transient as e:
        why = _unreachable(e)
        if why is not None:
            host = urlsplit(url).hostname or url
            raise FetchError(f"{url}: {why} ({host}; one attempt, not retried)",
                             transient=True, unreachable=True) from None
        raise _Retry(_short(e)) from None
    with resp:
        return _answer(url, resp, options, transient)


def _answer(url: str, resp, options: FetchOptions, transient: tuple) -> _Response:
    """The server's answer: its status, then the body (bounded, checked to
    be gzip data); :class:`_Retry` when another attempt may work."""
    status = resp.status_code
    if status == 304:
        return _Response(304)
    if status in (404, 410):
        raise _not_found(url, status)
    if status >= 500 or status in (408, 429):
        raise _Retry(f"HTTP {status} {resp.reason or ''}".strip())
    if status != 200:
        raise FetchError(f"{url}: HTTP {status} {resp.reason or ''}".strip())
    length_header = resp.headers.get("Content-Length")
    length: Optional[int] = None
    if length_header is not None:
        try:
            length = int(length_header)
        except ValueError:
            length = None
    max_size = options.max_size
    if length is not None and length > max_size:
        raise FetchError(f"{url}: the server announces {length} bytes, more than the {max_size} accepted")
    body = _read_body(url, resp, length, options, transient)
    if body[:2] != b"\x1f\x8b":
        ctype = resp.headers.get("Content-Type", "")
        if "html" in ctype.lower() or body.lstrip()[:1] == b"<":
            raise FetchError(
                f"{url}: the server answered with an HTML page, not an APKINDEX.tar.gz "
                f"(a wrong URL, or a proxy or captive portal in the way?)"
            )
        raise FetchError(f"{url}: the server's answer is not an APKINDEX.tar.gz (not gzip data)")
    return _Response(200, body, resp.headers.get("ETag"), resp.headers.get("Last-Modified"))


def _read_body(url: str, resp, length: Optional[int], options: FetchOptions, transient: tuple) -> bytes:
    """The whole body, within ``max_size`` bytes and ``max_time`` seconds;
    :class:`_Retry` when the connection fails or is cut short of ``length``."""
    max_size, max_time = options.max_size, options.max_time
    chunks: List[bytes] = []
    got = 0
    started = time.monotonic()
    try:
        for chunk in _chunks(resp.raw):
            got += len(chunk)
            if got > max_size:
                raise FetchError(f"{url}: the index is larger than the {max_size} bytes accepted")
            if time.monotonic() - started > max_time:
                raise FetchError(f"{url}: the download took longer than {max_time:.0f} s; gave up")
            chunks.append(chunk)
    except FetchError:
        raise
    except transient as e:
        raise _Retry(f"the connection failed after {got} bytes ({_short(e)})") from None
    if length is not None and got != length:
        raise _Retry(f"the connection was dropped after {got} of {length} bytes")
    return b"".join(chunks)


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
    on_warning: Callback,
) -> IndexFile:
    """The parsed index for bytes with this sha256: the cached parse when its
    trust still holds, else verify and parse ``data`` (or the cached raw
    bytes when ``data`` is None) and cache the result."""
    if cache is not None:
        index = cache.get_parsed(sha256, name)
        if index is not None:
            if index.trusted_with(keys):
                for w in index.warnings:
                    _say(on_warning, w)
                return index
            if allow_untrusted and not index.verified and index.keyset_sha256 == keyset_digest(keys):
                for w in index.warnings:
                    _say(on_warning, w)
                return index
        if data is None:
            data = cache.get_raw(sha256)
    if data is None:
        raise _Miss()
    index = read_index(data, keys, name=name, allow_untrusted=allow_untrusted, on_warning=on_warning)
    if cache is not None:
        cache.set_parsed(index)
    return index


def open_index(location: str, keys: Mapping, options: Optional[FetchOptions] = None) -> IndexFile:
    """Open one index (file path, ``file://`` or ``http(s)://`` URL), verified.

    ``keys``: trusted keys (:func:`rundeps.apk.index.load_keys`); ``options``:
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
    index = _from_cache_or_read(data, sha, location, keys, options.cache, options.allow_untrusted, options.on_warning)
    index.fetched_at = None
    index.from_cache = from_cache
    return index


def _cached_copy(url: str, meta: dict, keys: Mapping, options: FetchOptions) -> IndexFile:
    """The cached index of ``url`` that ``meta`` describes; :class:`_Miss`
    when its entries are gone."""
    index = _from_cache_or_read(None, meta["sha256"], url, keys, options.cache, options.allow_untrusted,
                                options.on_warning)
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
    _say(options.on_info, f"{url}: offline, using the cached index from {format_age(now - index.fetched_at)} ago")
    return index


def _ask_server(url: str, meta: Optional[dict], headers: Dict[str, str], keys: Mapping, options: FetchOptions,
                session, now: float) -> Union[IndexFile, _Response]:
    """The server's answer to a request (conditional when ``meta`` describes
    a cached copy): a downloaded body, or the cached index when the server
    says it has not changed (304) or a transient failure leaves the cached
    copy the best there is (not with ``refresh``)."""
    try:
        resp = _http_get(url, session=session, headers=headers, options=options)
    except FetchError as e:
        if meta is not None and e.transient and not options.refresh:
            try:
                index = _cached_copy(url, meta, keys, options)
            except _Miss:
                raise e from None
            _say(options.on_warning, f"{e}; using the cached index from {format_age(now - index.fetched_at)} ago")
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
        resp = _http_get(url, session=session, headers={}, options=options)
        if resp.status != 200:
            raise FetchError(f"{url}: the server answered {resp.status} to an unconditional request")
        return resp
    meta = dict(meta, checked_at=now)
    options.cache.set_meta(url, meta)  # type: ignore[union-attr]
    index.fetched_at = now
    since = float(meta.get("downloaded_at") or meta["checked_at"])
    _say(options.on_info, f"{url}: not modified (downloaded {format_age(now - since)} ago)")
    return index


def _read_download(url: str, resp: _Response, keys: Mapping, options: FetchOptions, now: float) -> IndexFile:
    """Verify and parse a downloaded index, then cache it: raw bytes and
    parse first, meta last."""
    data = resp.body
    sha = hashlib.sha256(data).hexdigest()
    index = read_index(data, keys, name=url, allow_untrusted=options.allow_untrusted, on_warning=options.on_warning)
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
    :class:`rundeps.apk.index.KeySet`) verified each index: ``key_path``,
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

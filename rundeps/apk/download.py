"""Downloading an ``APKINDEX.tar.gz`` over HTTP(S) with ``requests``
(imported only when a download happens): :func:`http_get` and the
:class:`FetchError` it raises.

Connect/read timeouts, bounded retries with exponential backoff on
connection errors, timeouts, a dropped body, 5xx, 408 and 429 -- but a host
name that does not resolve, a refused connection or an unreachable network
is one attempt, not retried; a 404 names the release, repository and
architecture that do not exist; the body is read raw (``Accept-Encoding:
identity``) and bounded in size and time.  The policy (timeouts, retries,
limits) comes from a :class:`rundeps.apk.fetch.FetchOptions`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional
from urllib.parse import urlsplit

from .. import __version__
from ..errors import SourceError

if TYPE_CHECKING:
    from .fetch import FetchOptions

__all__ = ["FetchError", "MAX_BACKOFF", "Response", "http_get", "make_session", "short_reason"]

MAX_BACKOFF = 8.0


class FetchError(SourceError):
    """A download that failed; ``transient`` when retrying later may work;
    ``unreachable`` when the host could not be reached at all (its name does
    not resolve, the connection was refused, no route): not retried."""

    def __init__(self, message: str, transient: bool = False, unreachable: bool = False):
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable


def _unreachable(exc: BaseException) -> Optional[str]:
    """Why the host cannot be reached at all, when ``exc`` (from requests or
    urllib3, through their ``reason``/``__cause__`` chains) says so: a name
    that does not resolve, a refused connection, no route to the network."""
    import errno
    import socket

    seen = 0
    todo: List[Optional[BaseException]] = [exc]
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


def make_session():
    """A ``requests.Session`` for index downloads (environment proxies and CA
    bundle honoured, at most 10 redirects)."""
    import requests

    session = requests.Session()
    session.max_redirects = 10
    session.headers["User-Agent"] = f"rundeps/{__version__}"
    return session


@dataclass
class Response:
    """A server's answer: 200 with its body and validators, or 304."""

    status: int
    body: bytes = b""
    etag: Optional[str] = None
    last_modified: Optional[str] = None


def short_reason(exc: BaseException) -> str:
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


def http_get(url: str, *, session, headers: Dict[str, str], options: FetchOptions) -> Response:
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


def _attempt(url: str, session, hdrs: Dict[str, str], options: FetchOptions, transient: tuple) -> Response:
    """One request and its answer; :class:`_Retry` when another attempt may work."""
    import requests

    try:
        resp = session.get(url, headers=hdrs, timeout=options.timeout, stream=True, allow_redirects=True)
    except requests.exceptions.TooManyRedirects:
        raise FetchError(f"{url}: too many redirects (a redirect loop?)") from None
    except requests.exceptions.SSLError as e:
        raise FetchError(
            f"{url}: TLS error: {short_reason(e)} (a custom CA bundle can be set with REQUESTS_CA_BUNDLE)"
        ) from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as e:
        raise FetchError(f"{url}: not a usable URL ({short_reason(e)})") from None
    except requests.exceptions.Timeout as e:
        raise _Retry(f"timed out ({short_reason(e)})") from None
    except transient as e:
        why = _unreachable(e)
        if why is not None:
            host = urlsplit(url).hostname or url
            raise FetchError(f"{url}: {why} ({host}; one attempt, not retried)",
                             transient=True, unreachable=True) from None
        raise _Retry(short_reason(e)) from None
    with resp:
        return _answer(url, resp, options, transient)


def _answer(url: str, resp, options: FetchOptions, transient: tuple) -> Response:
    """The server's answer: its status, then the body (bounded, checked to
    be gzip data); :class:`_Retry` when another attempt may work."""
    status = resp.status_code
    if status == 304:
        return Response(304)
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
    return Response(200, body, resp.headers.get("ETag"), resp.headers.get("Last-Modified"))


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
        raise _Retry(f"the connection failed after {got} bytes ({short_reason(e)})") from None
    if length is not None and got != length:
        raise _Retry(f"the connection was dropped after {got} of {length} bytes")
    return b"".join(chunks)

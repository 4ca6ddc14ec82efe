"""The gzip streams and tar archives of an ``APKINDEX.tar.gz``, read with
bounds: :func:`gunzip` (one stream, size-limited), :func:`tar_members` (the
regular files of a tar, GNU long names and pax paths included) and
:func:`member_name`.  Every problem is a one-line
:class:`~rundeps.errors.SourceError`.
"""

from __future__ import annotations

import zlib
from typing import Iterator, List, Optional, Tuple

from ..errors import SourceError

__all__ = ["gunzip", "member_name", "tar_members"]


def gunzip(data, limit: int, what: str, name: str, first_only: int = 0) -> Tuple[bytes, int, bool]:
    """Decompress one gzip stream at the start of ``data``.

    Returns (output, number of input bytes the stream used, complete).  With
    ``first_only`` stop after that much output (complete is then False unless
    the stream ended).  Raises SourceError for corrupt, truncated or oversized
    streams.
    """
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out: List[bytes] = []
    total = 0
    buf = data
    step = 1024 * 1024 if not first_only else first_only
    try:
        while True:
            chunk = d.decompress(buf, step)
            total += len(chunk)
            if total > limit:
                raise SourceError(f"{name}: {what} is larger than {limit // (1024 * 1024)} MiB once decompressed; refused")
            out.append(chunk)
            if d.eof:
                break
            if first_only and total >= first_only:
                return b"".join(out), 0, False
            buf = d.unconsumed_tail
            if not buf and not chunk:
                raise SourceError(f"{name}: {what} is truncated (the gzip stream ends early)")
    except zlib.error as e:
        raise SourceError(f"{name}: {what} is not valid gzip data ({e})") from None
    used = len(data) - len(d.unused_data)
    return b"".join(out), used, True


_ZERO_BLOCK = bytes(512)


def _octal(field_: bytes) -> Optional[int]:
    if field_[:1] and field_[0] & 0x80:
        return None  # base-256: far larger than anything we accept
    text = field_.replace(b"\0", b" ").strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def tar_members(buf: bytes, name: str, what: str, cut: bool) -> Iterator[Tuple[bytes, bytes]]:
    """Yield (raw member name, data) for the regular files of a tar.

    ``cut``: the archive has no end-of-archive blocks (the signature tar).
    The raw name is returned as found, so a caller can refuse NULs in it.
    """
    pos = 0
    long_name: Optional[bytes] = None
    pax_name: Optional[bytes] = None
    n = len(buf)
    while pos < n:
        if pos + 512 > n:
            if buf[pos:].strip(b"\0"):
                raise SourceError(f"{name}: {what} is truncated (a partial tar header)")
            return
        hdr = buf[pos : pos + 512]
        if hdr == _ZERO_BLOCK:
            return  # end of archive; what follows is padding
        stored = _octal(hdr[148:156])
        actual = sum(hdr[:148]) + 8 * 32 + sum(hdr[156:])
        if stored is None or stored != actual:
            raise SourceError(f"{name}: {what} is not a valid tar archive (bad header checksum)")
        size = _octal(hdr[124:136])
        if size is None:
            raise SourceError(f"{name}: {what} has a tar member with an invalid size")
        start = pos + 512
        end = start + size
        if end > n:
            raise SourceError(
                f"{name}: {what} is truncated (a member claims {size} bytes, {max(n - start, 0)} are there)"
            )
        raw_name = hdr[:100]
        if hdr[257:263] == b"ustar\x00" and hdr[345:346] != b"\0":
            raw_name = hdr[345:500].split(b"\0", 1)[0] + b"/" + raw_name
        kind = hdr[156:157]
        data = buf[start:end]
        pos = start + (size + 511) // 512 * 512
        if kind == b"L":
            long_name = data.rstrip(b"\0")
            continue
        if kind == b"x":
            pax_name = _pax_path(data)
            continue
        if kind in (b"g", b"K"):
            continue
        member = pax_name if pax_name is not None else long_name if long_name is not None else raw_name
        long_name = pax_name = None
        if kind in (b"0", b"\0", b"7"):
            yield member, data


def _pax_path(data: bytes) -> Optional[bytes]:
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        try:
            length = int(data[pos:sp])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[sp + 1 : pos + length - 1]
        pos += length
        key, _, value = record.partition(b"=")
        if key == b"path":
            return value
    return None


def member_name(raw: bytes) -> Tuple[str, bool]:
    """(name, clean): the name up to its NUL padding; clean is False when
    there is something after a NUL (a NUL inside the name)."""
    head, _, rest = raw.partition(b"\0")
    clean = not rest.strip(b"\0")
    return head.decode("utf-8", "replace"), clean

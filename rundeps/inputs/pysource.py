"""Reading Python source files: a bounded read that never blocks on a FIFO
(:func:`read_source`) and the interpreter's own decoding (:func:`decode_source`)."""

from __future__ import annotations

import io
import os
import stat
import tokenize
from typing import Optional

__all__ = ["read_source", "decode_source"]


def read_source(fn: str, max_size: int) -> Optional[bytes]:
    """Up to ``max_size + 1`` bytes of the regular file ``fn``, or None when it
    is not a regular file (a FIFO, socket or device is never read: opening a
    FIFO for reading would block until a writer comes).  OSError propagates."""
    fd = os.open(fn, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        left = max_size + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode_source(data: bytes) -> str:
    """Decode Python source bytes as the interpreter would (PEP 263, BOM).

    Raises ``SyntaxError``/``UnicodeDecodeError``/``LookupError`` when it cannot.
    """
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    return text

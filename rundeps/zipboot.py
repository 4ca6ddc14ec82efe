"""The zip application's first step (``dist/rundeps.pyz``'s ``__main__.py``
calls :func:`use_bytecode_cache` before anything else is imported): serve
the archive's modules from compiled files kept in the cache folder, see
:mod:`rundeps.zipapp`.  Small on purpose: it is compiled from source on
every run, before the hook it installs can help."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

from .cachedir import argv_cache_dir

__all__ = ["use_bytecode_cache"]


def use_bytecode_cache(digest: str, argv: Optional[List[str]] = None) -> Optional[str]:
    """Serve this archive's modules from compiled files in the cache folder
    (see :mod:`rundeps.zipapp`); returns that folder, or None when the
    cache is not used (not a zip application, ``--no-cache``).

    ``digest`` identifies the archive's contents (``scripts/build_pyz.py``
    writes it into ``__main__.py``).  The hook is zipimport's own source
    compiler, replaced for the files of this archive: the cached code object
    when its header matches (magic number, hash of the source), else the
    source compiled as before and written for the next run.
    """
    argv = sys.argv[1:] if argv is None else argv
    loader = getattr(sys.modules.get("rundeps"), "__loader__", None)
    path = getattr(loader, "archive", None) if type(loader).__name__ == "zipimporter" else None
    if not path or "--no-cache" in argv:
        return None
    path = os.path.abspath(path)
    try:
        import _imp
        import marshal
        import zipimport

        bootstrap = sys.modules["_frozen_importlib_external"]
        magic = bootstrap.MAGIC_NUMBER
        raw_magic = bootstrap._RAW_MAGIC_NUMBER
        original = zipimport._compile_source  # type: ignore[attr-defined]
    except (ImportError, KeyError, AttributeError):  # pragma: no cover - not CPython's zipimport
        return None
    tag = sys.implementation.cache_tag or sys.implementation.name
    folder = os.path.join(argv_cache_dir(argv), "pyz", f"{digest[:32]}-{tag}-{magic.hex()}")
    prefix = path + os.sep
    writable = [True]

    def compile_source(pathname, source):
        if not pathname.startswith(prefix):
            return original(pathname, source)
        cfile = os.path.join(folder, pathname[len(prefix):] + "c")
        header = magic + b"\x03\x00\x00\x00" + _imp.source_hash(raw_magic, source)
        try:
            with open(cfile, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        if data[:16] == header:
            try:
                code = marshal.loads(memoryview(data)[16:])
            except (EOFError, ValueError, TypeError):
                pass
            else:
                _imp._fix_co_filename(code, pathname)
                return code
        code = original(pathname, source)
        if writable[0]:
            tmp = f"{cfile}.{os.getpid()}.tmp"
            try:
                os.makedirs(os.path.dirname(cfile), exist_ok=True)
                with open(tmp, "wb") as f:
                    f.write(header + marshal.dumps(code))
                os.replace(tmp, cfile)
            except OSError:
                writable[0] = False  # an unwritable cache: compile from the archive, as without it
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        return code

    zipimport._compile_source = compile_source  # type: ignore[attr-defined]
    return folder

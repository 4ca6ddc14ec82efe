"""Running from a zip application: ``dist/rundeps.pyz``, built by
``scripts/build_pyz.py`` (rundeps and its pure-Python dependencies in one
archive, run as ``python3 rundeps.pyz scan ...``).

Inside the archive nothing is a real file, and a run must leave nothing in
``TMPDIR`` or ``HOME``:

* the package data (keys, musl export lists) is read through
  ``importlib.resources`` (:mod:`rundeps.datafiles`);
* requests asks ``certifi.where()`` for a CA bundle *file* as soon as it is
  imported; certifi's own answer inside a zip extracts ``cacert.pem`` to a
  temporary file removed only by an ``atexit`` handler (which the console
  script's ``os._exit`` skips), and requests itself copies zipped paths into
  ``TMPDIR`` for good.  :func:`install_certifi` puts a stand-in ``certifi``
  first: the system's CA bundle when there is one (``SSL_CERT_FILE``,
  OpenSSL's default file, the usual distribution paths), else the archive's
  ``certifi/cacert.pem`` copied into a private temporary folder that
  :func:`cleanup` removes before the process ends (the archive's
  ``__main__.py`` runs :func:`rundeps.__main__.zipapp_main`, which does);
* the cache (``diskcache``, SQLite) needs a real folder: ``--no-cache``
  creates none, as everywhere.

The archive holds no bytecode (it is one reproducible file for every
Python), so a plain run compiles every module it imports, about 60 ms.
:func:`rundeps.zipboot.use_bytecode_cache`, called first by the archive's
``__main__.py``,
keeps the compiled modules in the cache folder instead (``--cache-dir``,
``$RUNDEPS_CACHE_DIR``, ``~/.cache/rundeps``), under
``pyz/<archive digest>-<interpreter tag and magic number>/``: a tree that
mirrors the archive, one hash-checked ``.pyc`` per module (PEP 552: the
source's hash is in its header, so a stale file is never used).  Files are
written atomically (a private temporary name, then a rename).  Nothing is
read or written with ``--no-cache``; when the folder cannot be written the
run goes on compiling from the archive, as without the cache.  (This is
rundeps' own cache folder, not ``__pycache__`` beside sources, so
``PYTHONDONTWRITEBYTECODE``, set in many images, does not turn it off.)
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

__all__ = ["archive", "version_text", "install_certifi", "cleanup"]

SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Alpine, Debian, Ubuntu, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine (libressl/openssl), macOS
)

_tempdirs: List[str] = []
_extracted: Optional[str] = None


def archive() -> Optional[str]:
    """The zip application rundeps runs from (its absolute path), or None."""
    pkg = sys.modules.get(__package__ or "rundeps")
    loader = getattr(pkg, "__loader__", None)
    path = getattr(loader, "archive", None)
    if path and type(loader).__name__ == "zipimporter":
        return os.path.abspath(path)
    return None


def version_text(version: str) -> str:
    """``0.1.0``, or ``0.1.0 (zip application /path/rundeps.pyz)``."""
    path = archive()
    return f"{version} (zip application {path})" if path else version


def _system_ca_file() -> Optional[str]:
    candidates = [os.environ.get("SSL_CERT_FILE") or ""]
    try:
        import ssl

        candidates.append(ssl.get_default_verify_paths().openssl_cafile or "")
    except Exception:  # pragma: no cover - an ssl-less Python cannot fetch anyway
        pass
    candidates.extend(SYSTEM_CA_FILES)
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    return None


def _bundled_ca_file() -> Optional[str]:
    """The archive's ``certifi/cacert.pem``, copied into a private folder
    (removed by :func:`cleanup`)."""
    global _extracted
    if _extracted is None:
        import atexit
        import tempfile
        import zipimport

        path = archive()
        if path is None:
            return None
        try:
            data = zipimport.zipimporter(path).get_data("certifi/cacert.pem")
        except OSError:
            return None
        folder = tempfile.mkdtemp(prefix="rundeps-ca-")
        _tempdirs.append(folder)
        atexit.register(cleanup)
        target = os.path.join(folder, "cacert.pem")
        with open(target, "wb") as f:
            f.write(data)
        _extracted = target
    return _extracted


def where() -> str:
    """``certifi.where()`` for a zip application: a CA bundle that is a real file."""
    return _system_ca_file() or _bundled_ca_file() or ""


def contents() -> str:
    path = where()
    with open(path, encoding="ascii") as f:
        return f.read()


def install_certifi() -> None:
    """Put the stand-in ``certifi`` (see the module's documentation) in
    ``sys.modules`` when running from a zip application and certifi is not
    imported yet."""
    if archive() is None or "certifi" in sys.modules:
        return
    import types

    module = types.ModuleType("certifi", "rundeps' stand-in for certifi inside a zip application")
    module.where = where  # type: ignore[attr-defined]
    module.contents = contents  # type: ignore[attr-defined]
    module.__version__ = "rundeps-zipapp"  # type: ignore[attr-defined]
    sys.modules["certifi"] = module


def cleanup() -> None:
    """Remove the temporary folders made for the CA bundle."""
    global _extracted
    import shutil

    while _tempdirs:
        shutil.rmtree(_tempdirs.pop(), ignore_errors=True)
    _extracted = None


"""What Alpine's ``gcompat`` changes for glibc-linked files.

gcompat installs two things (its Makefile and Alpine's package):

* ``/lib/libgcompat.so.0``: glibc-only functions (``__memcpy_chk``,
  ``gnu_get_libc_version``, ``__res_search``, ...) implemented over musl;
* glibc's loader name (``/lib/ld-linux-x86-64.so.2``, and ``/lib64/...``
  on x86_64): a small program that runs musl's loader with
  ``--preload /lib/libgcompat.so.0`` and the program.

So its exports reach a glibc-linked **program** started through that loader
(``PT_INTERP``): libgcompat is preloaded into the global scope, after the
program and before its libraries. They do **not** reach a glibc-linked
**library or extension module** opened by a musl program (the interpreter):
nothing loads libgcompat into that scope, unless the process is started with
``LD_PRELOAD=/lib/libgcompat.so.0``; gcompat only makes a ``DT_NEEDED``
``ld-linux-*`` name findable, as a file like any other.

:class:`Gcompat` describes one installation: the in-root path of
``libgcompat.so.0`` and the loader paths it owns. Nothing here is a list of
gcompat's exports: they are read from the real file (the root's, or the one
``--gcompat FILE`` names).
"""

from __future__ import annotations

import posixpath
from typing import Iterable, List, Optional, Tuple

from ..platform import is_glibc_loader_name

__all__ = ["Gcompat", "find_gcompat", "LIBGCOMPAT"]

LIBGCOMPAT = "/lib/libgcompat.so.0"


class Gcompat:
    """gcompat as found in a root: ``library`` (in-root path of
    libgcompat.so.0) and ``loaders`` (in-root ``ld-linux-*`` paths it
    provides, real paths included)."""

    def __init__(self, library: str, loaders: Iterable[str] = (), source: str = "installed", facts=None):
        self.library = library
        self.loaders = frozenset(loaders)
        self.source = source
        self.facts = facts
        """The exports of a libgcompat.so.0 outside the root (``--gcompat FILE``)."""

    @classmethod
    def from_file(cls, host_path: str) -> "Gcompat":
        """gcompat modelled from a real ``libgcompat.so.0`` (``--gcompat FILE``),
        for a wheel checked without a root; :class:`UsageError` when the file
        is not an ELF library with exports."""
        from ..elf import ElfError
        from ..errors import UsageError
        from ..elf.reader import read_symbols_path
        from ..errors import refuse_special

        refuse_special(host_path, "file", option="--gcompat")
        try:
            facts = read_symbols_path(host_path)
        except (ElfError, OSError) as exc:
            raise UsageError(f"--gcompat {host_path}: cannot read it ({exc})") from None
        if facts is None or not facts.defined:
            raise UsageError(f"--gcompat {host_path}: not a shared library that exports anything")
        return cls(LIBGCOMPAT, (), source=host_path, facts=facts)

    def owns(self, real_interp: Optional[str], interp: Optional[str]) -> bool:
        """True when the loader ``interp`` (PT_INTERP) is gcompat's."""
        return bool((interp and interp in self.loaders) or (real_interp and real_interp in self.loaders))

    def preload_nodes(self, binder) -> List:
        """The preloaded libgcompat and its DT_NEEDED closure, as nodes of ``binder``."""
        if self.facts is not None:
            return [binder.given_node(f"<gcompat:{self.source}>", self.library, self.facts)]
        real = binder.real_path(self.library)
        if real is None:
            return []
        info = binder.resolver.fs.elf(real)
        if info is None:
            return []
        node = binder.node_for_file(self.library, info)
        return binder.closure(node)

    def __repr__(self) -> str:
        return f"Gcompat({self.library}, loaders={sorted(self.loaders)})"


def find_gcompat(fs, universe, arch: Optional[str] = None) -> Optional[Gcompat]:
    """gcompat in the root behind ``fs``: the installed ``gcompat`` package's
    ``libgcompat.so.*`` and ``ld-linux*``/``ld64.so*`` files (from the
    database's file list), else a ``/lib/libgcompat.so.0`` file."""
    pkg = universe.package("gcompat") if universe is not None else None
    if pkg is not None and pkg.source != "installed":
        pkg = None
    files: Tuple[str, ...] = ()
    if pkg is not None and getattr(pkg, "files", None):
        files = tuple("/" + f.lstrip("/") for f in pkg.files)
    library = None
    loaders = set()
    for f in files:
        base = posixpath.basename(f)
        if base.startswith("libgcompat.so"):
            library = library or f
        elif is_glibc_loader_name(base):
            loaders.add(f)
            real = fs.lookup(f)
            if real:
                loaders.add(real)
    if library is None and fs.lookup(LIBGCOMPAT) is not None:
        library = LIBGCOMPAT
    if library is None or fs.lookup(library) is None:
        return None
    return Gcompat(library, loaders)

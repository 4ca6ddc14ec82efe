"""A file's verdict as a value: why musl would refuse it, of which kind, along
which chain of the load.

Every stage that decides a file will not load records a :class:`Fault`; the
exit code, the JSON (``will_not_load`` and ``will_not_load_kind``) and the
text lines are all derived from it, so rewording a message never changes what
a build gate does.  The kinds:

==================  =============================================================
``missing_library`` a ``DT_NEEDED`` name musl's search does not find
``missing_symbol``  a relocation names a symbol nothing in scope defines
``relocation``      a relocation type musl does not support (``IRELATIVE``)
``tls``             initial-exec TLS that resolves to an object loaded by the
                    same ``dlopen`` (musl: "initial-exec TLS resolves to
                    dynamic definition")
``glibc_loader``    a glibc program whose loader is not in the root
``glibc_linked``    linked against glibc, symbols not bound (``--no-symbols``)
``wrong_arch``      built for another architecture
==================  =============================================================

A fault found in a library the file's load brings in is the file's fault too:
:attr:`Fault.chain` runs from the file to the object that fails, and
:attr:`Fault.kind` is that object's.
"""

from __future__ import annotations

from typing import Final, Literal, Tuple

__all__ = [
    "Fault",
    "MISSING_LIBRARY",
    "MISSING_SYMBOL",
    "RELOCATION",
    "TLS",
    "GLIBC_LOADER",
    "GLIBC_LINKED",
    "WRONG_ARCH",
    "KINDS",
    "FaultKind",
]

FaultKind = Literal["missing_library", "missing_symbol", "relocation", "tls", "glibc_loader", "glibc_linked",
                    "wrong_arch"]
"""The kinds of :class:`Fault` (the table above)."""

MISSING_LIBRARY: Final = "missing_library"
MISSING_SYMBOL: Final = "missing_symbol"
RELOCATION: Final = "relocation"
TLS: Final = "tls"
GLIBC_LOADER: Final = "glibc_loader"
GLIBC_LINKED: Final = "glibc_linked"
WRONG_ARCH: Final = "wrong_arch"

KINDS: Tuple[FaultKind, ...] = (MISSING_LIBRARY, MISSING_SYMBOL, GLIBC_LOADER, WRONG_ARCH, RELOCATION, TLS, GLIBC_LINKED)
"""Every kind, in the order problems are listed (a file whose fault is in a
library it loads comes after every file that fails on its own)."""


class Fault:
    """Why one file will not load.

    ``kind``: one of :data:`KINDS`; ``own``: the one-line reason of the
    object that fails (``"symbol not found: foo"``); ``chain``: in-root paths
    from the file to that object (just the file when it fails itself);
    ``names``: what is missing or refused (sonames, symbols, relocation
    types), for callers that want the facts rather than the words.
    """

    __slots__ = ("kind", "own", "chain", "names")

    def __init__(self, kind: FaultKind, own: str, chain: Tuple[str, ...], names: Tuple[str, ...] = ()):
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        self.kind: FaultKind = kind
        self.own = own
        self.chain = tuple(chain)
        self.names = tuple(names)

    @property
    def path(self) -> str:
        """The file this verdict is about."""
        return self.chain[0]

    @property
    def failing(self) -> str:
        """The object that musl refuses (the file itself, or a library its load brings in)."""
        return self.chain[-1]

    @property
    def inherited(self) -> bool:
        """True when the fault is in a library the file's load brings in."""
        return len(self.chain) > 1

    @property
    def reason(self) -> str:
        """The one-line reason, as printed and as in JSON's ``will_not_load``."""
        if not self.inherited:
            return self.own
        loads = ", which loads ".join(self.chain[1:])
        return f"loads {loads}, which will not load ({self.own})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Fault):
            return NotImplemented
        return (self.kind, self.own, self.chain, self.names) == (other.kind, other.own, other.chain, other.names)

    def __hash__(self) -> int:
        return hash((self.kind, self.own, self.chain))

    def __repr__(self) -> str:
        return f"Fault({self.kind}, {self.reason!r})"

    def __str__(self) -> str:
        return self.reason

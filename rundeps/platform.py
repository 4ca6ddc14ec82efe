"""Arch and libc facts, each stated once: Alpine's arch names and musl's,
glibc's loaders and sonames, and the one test for a glibc loader name.

Only constants and small pure functions: every stage may import this module
(it imports nothing of rundeps).
"""

from __future__ import annotations

import os
import posixpath
from typing import Optional

__all__ = [
    "KNOWN_ARCHES",
    "MUSL_LD_ARCH",
    "GLIBC_INTERP",
    "GLIBC_SONAMES",
    "same_arch",
    "is_glibc_loader_name",
    "is_glibc_interp",
    "host_arch",
]

KNOWN_ARCHES = ("x86_64", "x86", "aarch64", "armv7", "armhf", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64")
"""The arch names rundeps resolves for (Alpine's names; ``--arch``)."""

MUSL_LD_ARCH = {
    "x86_64": "x86_64",
    "x86": "i386",
    "aarch64": "aarch64",
    "armv7": "armhf",
    "armhf": "armhf",
    "ppc64le": "powerpc64le",
    "ppc64": "powerpc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}
"""Alpine arch name -> the arch in musl's ``ld-musl-<arch>.so.1`` and ``.path``."""

GLIBC_INTERP = {
    "x86_64": "/lib64/ld-linux-x86-64.so.2",
    "x86": "/lib/ld-linux.so.2",
    "aarch64": "/lib/ld-linux-aarch64.so.1",
    "armv7": "/lib/ld-linux-armhf.so.3",
    "armhf": "/lib/ld-linux-armhf.so.3",
    "ppc64le": "/lib64/ld64.so.2",
    "s390x": "/lib/ld64.so.1",
    "riscv64": "/lib/ld-linux-riscv64-lp64d.so.1",
    "loongarch64": "/lib64/ld-linux-loongarch-lp64d.so.1",
}
"""Alpine arch name -> glibc's standard ``PT_INTERP`` for it."""

GLIBC_SONAMES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "libcrypt.so.1",
        "libnsl.so.1",
        "libanl.so.1",
        "libBrokenLocale.so.1",
        "libmvec.so.1",
        "ld-linux.so.2",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "ld-linux-armhf.so.3",
        "ld-linux-riscv64-lp64d.so.1",
        "ld64.so.1",
        "ld64.so.2",
        "ld-linux-loongarch-lp64d.so.1",
    }
)
"""Sonames of glibc itself (its libc, libm, ... and dynamic loaders)."""

_HOST_ARCH = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv7l": "armv7",
    "armv8l": "armv7",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}


def same_arch(a: str, b: str) -> bool:
    """True for two names of one architecture (Alpine's ``armv7`` and musl's ``armhf``)."""
    return a == b or {a, b} <= {"armv7", "armhf"}


def is_glibc_loader_name(name: str) -> bool:
    """True for a file name of glibc's dynamic loaders (``ld-linux*``, ``ld64.so*``)."""
    return posixpath.basename(name).startswith(("ld-linux", "ld64.so"))


def is_glibc_interp(interp: str) -> bool:
    """True for a ``PT_INTERP`` naming one of glibc's loaders."""
    return is_glibc_loader_name(interp)


def host_arch() -> Optional[str]:
    """This machine's arch as Alpine names it."""
    m = os.uname().machine
    return _HOST_ARCH.get(m, m)

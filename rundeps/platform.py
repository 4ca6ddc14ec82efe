"""Arch and libc facts, each stated once: Alpine's arch names and musl's,
glibc's loaders and sonames, and the one test for a glibc loader name.

Only constants and small pure functions: every stage may import this module
(it imports nothing of rundeps).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

__all__ = [
    "Arch",
    "ARCHES",
    "ELF_ARCHES",
    "WHEEL_ARCHES",
    "elf_arch",
    "KNOWN_ARCHES",
    "MUSL_LD_ARCH",
    "GLIBC_INTERP",
    "GLIBC_SONAMES",
    "same_arch",
    "is_glibc_loader_name",
    "is_glibc_interp",
    "host_arch",
]

@dataclass(frozen=True)
class Arch:
    """One architecture: ``name`` (Alpine's, ``--arch``), ``musl`` (the arch
    in musl's ``ld-musl-<arch>.so.1`` and ``.path``), ``glibc_interp``
    (glibc's standard ``PT_INTERP``), ``elf`` ((``e_machine``, class, little
    endian) of its ELF files, None for a name that shares another's),
    ``uname`` (what ``uname -m`` prints on it) and ``wheel`` (the
    architectures of wheel platform tags for it)."""

    name: str
    musl: str
    glibc_interp: Optional[str] = None
    elf: Optional[Tuple[int, int, bool]] = None
    uname: Tuple[str, ...] = ()
    wheel: Tuple[str, ...] = ()


EM_386, EM_ARM, EM_PPC64, EM_S390, EM_X86_64, EM_AARCH64, EM_RISCV, EM_LOONGARCH = 3, 40, 21, 22, 62, 183, 243, 258
"""ELF ``e_machine`` values (the ELF specification's ``EM_*``)."""

ARCHES: Tuple[Arch, ...] = (
    Arch("x86_64", "x86_64", "/lib64/ld-linux-x86-64.so.2", (EM_X86_64, 64, True), ("x86_64", "amd64"),
         ("x86_64", "amd64")),
    Arch("x86", "i386", "/lib/ld-linux.so.2", (EM_386, 32, True), ("i386", "i686"), ("i686", "i586", "i386")),
    Arch("aarch64", "aarch64", "/lib/ld-linux-aarch64.so.1", (EM_AARCH64, 64, True), ("aarch64", "arm64"),
         ("aarch64", "arm64")),
    Arch("armv7", "armhf", "/lib/ld-linux-armhf.so.3", (EM_ARM, 32, True), ("armv7l", "armv8l"), ("armv7l",)),
    Arch("armhf", "armhf", "/lib/ld-linux-armhf.so.3", None, (), ("armv6l",)),
    Arch("ppc64le", "powerpc64le", "/lib64/ld64.so.2", (EM_PPC64, 64, True), ("ppc64le",), ("ppc64le",)),
    Arch("ppc64", "powerpc64", None, (EM_PPC64, 64, False)),
    Arch("s390x", "s390x", "/lib/ld64.so.1", (EM_S390, 64, False), ("s390x",), ("s390x",)),
    Arch("riscv64", "riscv64", "/lib/ld-linux-riscv64-lp64d.so.1", (EM_RISCV, 64, True), ("riscv64",),
         ("riscv64",)),
    Arch("loongarch64", "loongarch64", "/lib64/ld-linux-loongarch-lp64d.so.1", (EM_LOONGARCH, 64, True),
         ("loongarch64",), ("loongarch64",)),
)
"""Every architecture rundeps knows: the one table the others derive from."""

KNOWN_ARCHES: Tuple[str, ...] = tuple(a.name for a in ARCHES)
"""The arch names rundeps resolves for (Alpine's names; ``--arch``)."""

MUSL_LD_ARCH: Dict[str, str] = {a.name: a.musl for a in ARCHES}
"""Alpine arch name -> the arch in musl's ``ld-musl-<arch>.so.1`` and ``.path``."""

GLIBC_INTERP: Dict[str, str] = {a.name: a.glibc_interp for a in ARCHES if a.glibc_interp}
"""Alpine arch name -> glibc's standard ``PT_INTERP`` for it."""

ELF_ARCHES: Dict[Tuple[int, int, bool], str] = {a.elf: a.name for a in ARCHES if a.elf is not None}
"""(``e_machine``, ELF class, little endian) -> Alpine arch name."""

WHEEL_ARCHES: Dict[str, str] = {w: a.name for a in ARCHES for w in a.wheel}
"""Wheel platform-tag architectures to Alpine architecture names."""

_HOST_ARCH: Dict[str, str] = {u: a.name for a in ARCHES for u in a.uname}


def elf_arch(machine: int, elfclass: int, little_endian: bool) -> Optional[str]:
    """The Alpine arch name of an ELF machine, or None."""
    return ELF_ARCHES.get((machine, elfclass, bool(little_endian)))


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

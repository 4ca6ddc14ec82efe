"""The types every ELF reader of rundeps shares, and the small constants
they name: :class:`ElfInfo` (what is read from one ELF file),
:class:`ElfError` (a broken one), the ELF magic and the first read's size.

Nothing here parses an ELF file; the fast readers (:mod:`.header`,
:mod:`.dynamic`, :mod:`.symbols`) and the independent pyelftools reader
(:mod:`.pyelftools`) all build on it.
"""

from __future__ import annotations

# typing is only needed by type checkers (annotations are strings here);
# not importing it keeps start-up light.
from ..platform import ELF_ARCHES

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Optional, Tuple

    Target = Tuple[int, bool, int, Optional[str]]
    """(elfclass, little_endian, machine, arch) of an ELF file."""
    DynamicNames = Tuple[Tuple[str, ...], Optional[str], Tuple[str, ...], Tuple[str, ...]]
    """(needed, soname, rpath, runpath) from a dynamic section."""

__all__ = [
    "ARCH_NAMES",
    "ELF_MAGIC",
    "HEAD_SIZE",
    "ElfError",
    "ElfInfo",
    "is_elf_magic",
    "machine_arch",
]

ARCH_NAMES = tuple(ELF_ARCHES.values())
"""The Alpine names of the architectures an ELF file can say (every one but ``armhf``)."""

ELF_MAGIC = b"\x7fELF"

#: The first read of a file; ELF headers, program headers and PT_INTERP of
#: ordinary objects fit in it.
HEAD_SIZE = 2048

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4



class ElfError(Exception):
    """A broken ELF file; ``str(e)`` is a short reason."""


class ElfInfo:
    """What rundeps reads from one ELF file.  Treat it as immutable; it
    compares and hashes by value.

    (A plain class with slots rather than a frozen dataclass: this module is
    on every run's start-up path, and ``import dataclasses`` plus the class
    creation cost about 2 ms, a noticeable share of a warm scan.)
    """

    __slots__ = (
        "elfclass",  # 32 or 64
        "little_endian",
        "machine",  # raw e_machine
        "arch",  # Alpine arch name, None if unknown
        "etype",  # 'ET_EXEC', 'ET_DYN', 'ET_REL', 'ET_CORE' or 'ET_<n>'
        "interp",  # PT_INTERP
        "needed",  # DT_NEEDED in order
        "soname",
        "rpath",  # DT_RPATH split on ':' (empty entries dropped)
        "runpath",  # DT_RUNPATH split on ':' (empty entries dropped)
        "dlopen_notes",  # .note.dlopen metadata: ((priority, (soname, ...)), ...)
    )

    elfclass: int
    little_endian: bool
    machine: int
    arch: Optional[str]
    etype: str
    interp: Optional[str]
    needed: Tuple[str, ...]
    soname: Optional[str]
    rpath: Tuple[str, ...]
    runpath: Tuple[str, ...]
    dlopen_notes: Tuple[Tuple[str, Tuple[str, ...]], ...]

    def __init__(self, target: Target, etype: str, interp: Optional[str], dynamic: DynamicNames,
                 dlopen_notes: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()):
        """``target``: (elfclass, little_endian, machine, arch); ``dynamic``:
        (needed, soname, rpath, runpath), as the dynamic section gives them."""
        self.elfclass, self.little_endian, self.machine, self.arch = target
        self.etype = etype
        self.interp = interp
        self.needed, self.soname, self.rpath, self.runpath = dynamic
        self.dlopen_notes = dlopen_notes

    @classmethod
    def from_tuple(cls, t: tuple) -> "ElfInfo":
        """The inverse of :meth:`astuple` (the caller checks the types)."""
        obj = cls.__new__(cls)
        (obj.elfclass, obj.little_endian, obj.machine, obj.arch, obj.etype, obj.interp, obj.needed, obj.soname,
         obj.rpath, obj.runpath, obj.dlopen_notes) = t
        return obj

    def astuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.astuple() == other.astuple()

    def __hash__(self) -> int:
        return hash(self.astuple())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"ElfInfo({fields})"


def machine_arch(machine: int, elfclass: int, little_endian: bool) -> Optional[str]:
    """The Alpine arch name of an ELF machine, or None (:data:`rundeps.platform.ELF_ARCHES`)."""
    return ELF_ARCHES.get((machine, elfclass, bool(little_endian)))


def is_elf_magic(head: bytes) -> bool:
    """True if ``head`` starts with the ELF magic."""
    return head[:4] == ELF_MAGIC

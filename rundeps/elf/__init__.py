"""Reading ELF files: what the loader needs from them.

* :mod:`.types` -- :class:`ElfInfo`, :class:`ElfError` and the small shared
  constants;
* :mod:`.header` -- the ELF header, the one scan of the program header
  table and the reads of what the dynamic table points at, for the fast
  readers;
* :mod:`.dynamic` -- the fast reader of :class:`ElfInfo` (``PT_INTERP``,
  ``PT_DYNAMIC`` strings, dlopen notes);
* :mod:`.notes` -- ``.note.dlopen`` metadata;
* :mod:`.facts` -- :class:`SymbolFacts` and their cache form;
* :mod:`.symbols` -- the fast reader of :class:`SymbolFacts`, with
  :mod:`.relocs` reading the relocation tables for it;
* :mod:`.pyelftools` -- the independent pyelftools reader of both (the
  tests' oracle);
* :mod:`.reader` -- the one switch between them (``RUNDEPS_ELF_READER``).

The public names below are re-exported lazily: importing this package
imports none of its modules, so a caller pays only for what it uses.
"""

from __future__ import annotations

__all__ = [
    "ARCH_NAMES",
    "HEAD_SIZE",
    "ElfError",
    "ElfInfo",
    "SameBytes",
    "SymbolFacts",
    "facts_from_tuple",
    "is_elf_magic",
    "machine_arch",
    "pack_facts",
    "parse_fd",
    "read_elf",
    "read_elf_path",
    "read_elf_pread",
    "read_elf_pyelftools",
    "read_symbols",
    "read_symbols_fd",
    "read_symbols_path",
    "read_symbols_pread",
    "read_symbols_pyelftools",
    "reader_name",
    "unpack_facts",
]

# name -> the module of this package that defines it
_HOME = {
    "ARCH_NAMES": "types", "HEAD_SIZE": "types", "ElfError": "types", "ElfInfo": "types",
    "is_elf_magic": "types", "machine_arch": "types",
    "parse_fd": "dynamic", "read_elf_pread": "dynamic",
    "SymbolFacts": "facts", "facts_from_tuple": "facts", "pack_facts": "facts", "unpack_facts": "facts",
    "read_symbols_pread": "symbols",
    "SameBytes": "reader", "read_elf": "reader", "read_elf_path": "reader", "read_elf_pyelftools": "reader",
    "read_symbols": "reader", "read_symbols_fd": "reader", "read_symbols_path": "reader",
    "read_symbols_pyelftools": "reader", "reader_name": "reader",
}


def __getattr__(name: str):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

"""musl's library search, rule by rule (``ldso/dynlink.c``: ``load_library``,
``path_open``, ``fixup_rpath``, ``decode_dyn``).

These are the pure rules; :class:`rundeps.resolve.Resolver` applies them to a
filesystem (``Resolver.load_order`` gives the objects one program loads, in
musl's order).  For a name without ``/``, musl:

1. answers its own names (``libc.so``, ``libc.``/``libm.``/... families,
   the loader's own path) with itself;
2. reuses an already loaded library whose *short name* (the basename it was
   found under by a search; never ``DT_SONAME``) equals the name;
3. searches ``LD_LIBRARY_PATH`` (ignored when ``libc.secure``: a setuid or
   setgid program, or ``AT_SECURE``);
4. searches the run path of the needing object, then of the object that
   loaded it, and so on up to the main program (``needed_by`` chain).  An
   object's run path is ``DT_RUNPATH`` when it has one, else ``DT_RPATH``:
   musl reads both into one field, RUNPATH last, and unlike glibc it treats
   them alike otherwise (both searched after ``LD_LIBRARY_PATH``, both
   inherited down the chain).  ``$ORIGIN`` / ``${ORIGIN}`` expand to the
   object's folder; a run path with any other ``$`` is ignored *whole*
   (musl drops the object's run path, not only the entry), and so is the main
   program's ``$ORIGIN`` run path in a secure process;
5. searches the system path: ``<prefix>/etc/ld-musl-<arch>.path``, where
   prefix is the loader's path (the main program's ``PT_INTERP``) minus its
   last two components.  A path file that exists replaces the default
   ``/lib:/usr/local/lib:/usr/lib``, even when empty; one that exists but
   cannot be read gives an empty system path.

Every path list (run paths, ``LD_LIBRARY_PATH``, the path file) is split on
``:`` and newline, empty entries skipped, nothing trimmed.  Libraries loaded
at run time (``dlopen``: ctypes, cffi, ``.note.dlopen``) are searched with the
main program as the needing object, whichever module calls ``dlopen``.
"""

from __future__ import annotations

import posixpath
from typing import List, Optional, Sequence, Tuple

__all__ = [
    "DEFAULT_INTERP",
    "MUSL_DEFAULT_PATH",
    "expand_run_path",
    "path_file",
    "run_path_entries",
    "split_search_path",
]

MUSL_DEFAULT_PATH = ("/lib", "/usr/local/lib", "/usr/lib")
DEFAULT_INTERP = "/lib/ld-musl-{arch}.so.1"


def split_search_path(text: Optional[str]) -> Tuple[str, ...]:
    """A search path split as ``path_open`` does: on ``:`` and newline,
    empty entries skipped, nothing else trimmed."""
    if not text:
        return ()
    return tuple(p for p in text.replace("\n", ":").split(":") if p)


def path_file(interp: Optional[str], ld_arch: str) -> str:
    """The path file the loader named ``interp`` reads: its path minus the
    last two components, then ``/etc/ld-musl-<arch>.path``
    (``/lib/ld-musl-x86_64.so.1`` -> ``/etc/ld-musl-x86_64.path``,
    ``/opt/m/lib/ld-musl-x86_64.so.1`` -> ``/opt/m/etc/ld-musl-x86_64.path``).
    A relative or missing interpreter has an empty prefix, as in musl."""
    prefix = ""
    if interp and interp.startswith("/"):
        # musl keeps everything before the second-to-last '/'.
        last = interp.rfind("/")
        second = interp.rfind("/", 0, last) if last > 0 else -1
        prefix = interp[:second] if second > 0 else ""
    return f"{prefix}/etc/ld-musl-{ld_arch}.path"


def run_path_entries(rpath: Sequence[str], runpath: Sequence[str]) -> Tuple[str, ...]:
    """The object's run path as musl's ``decode_dyn`` keeps it: ``DT_RUNPATH``
    when present (it is read last and overwrites), else ``DT_RPATH``; entries
    split on newline as well (the ELF reader splits on ``:``)."""
    entries = runpath or rpath
    if any("\n" in e for e in entries):
        entries = split_search_path("\n".join(entries))
    return tuple(entries)


def expand_run_path(entries: Sequence[str], origin: str, origin_allowed: bool = True) -> Tuple[str, ...]:
    """``fixup_rpath``: ``$ORIGIN`` and ``${ORIGIN}`` replaced by ``origin``
    (the object's folder).  Any other ``$`` anywhere makes musl ignore the
    whole run path (``()``), and so does ``$ORIGIN`` when ``origin_allowed``
    is false (the main program of a secure process).  Entries that are not
    absolute would be relative to the working directory at run time, which
    cannot be known: they are left out."""
    if any("$" in e for e in entries):
        for e in entries:
            i = e.find("$")
            while i >= 0:
                if not (e.startswith("$ORIGIN", i) or e.startswith("${ORIGIN}", i)):
                    return ()
                i = e.find("$", i + 1)
        if not origin_allowed:
            return ()
    out = []
    for e in entries:
        if "$" in e:
            e = e.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        if e.startswith("/"):
            e = posixpath.normpath(e)
            out.append("/" + e.lstrip("/") if e.startswith("//") else e)  # "//x" is "/x" on Linux
    return tuple(out)


def parse_ld_so_conf(text: str) -> Tuple[List[str], List[str]]:
    """The folders an ``ld.so.conf`` names, and its ``include`` globs (as
    glibc's ldconfig reads it: ``#`` comments, one or more folders a line
    separated by blanks, ``:`` or ``,``; ``hwcap`` lines ignored)."""
    dirs: List[str] = []
    includes: List[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "include":
            includes.extend(words[1:])
            continue
        if words[0] == "hwcap":
            continue
        for part in line.replace(":", " ").replace(",", " ").split():
            if part.startswith("/"):
                dirs.append(posixpath.normpath(part))
    return dirs, includes

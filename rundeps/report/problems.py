"""What a check says on stderr, and its exit code, derived from the result's
values (faults with their kinds, unresolved sonames, notes) -- never from
the words of a reason.

:func:`problems` gives the lines in the order they are printed, each a
:class:`Problem` with its level; :func:`exit_code` the code they add up to.
The CLI only prints them.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

from ..errors import EXIT_OK, EXIT_UNRESOLVED
from ..verdict import GLIBC_LOADER, MISSING_LIBRARY, MISSING_SYMBOL, WRONG_ARCH, Fault

__all__ = ["Problem", "problems", "failing", "exit_code", "only_not_found", "sorted_faults", "will_not_load_lines"]

ERROR, WARNING, NOTE, HINT, PLAIN = "error", "warning", "note", "hint", "plain"


class Problem:
    """One line for stderr: ``level`` (``error`` decides the exit code,
    ``warning``, ``note``, ``hint``, or ``plain`` for a summary line) and its text."""

    __slots__ = ("level", "text")

    def __init__(self, level: str, text: str):
        self.level = level
        self.text = text

    def __repr__(self) -> str:
        return f"Problem({self.level}, {self.text!r})"


def sorted_faults(faults: Mapping[str, Fault]) -> List[Tuple[str, Fault]]:
    """``faults`` in the order problems are listed: a missing library, a
    missing symbol, a glibc-only loader, another arch, then every fault
    found in a library a file loads, then the other kinds; by path within."""
    first = (MISSING_LIBRARY, MISSING_SYMBOL, GLIBC_LOADER, WRONG_ARCH)

    def order(item) -> Tuple[int, str]:
        path, fault = item
        if fault.inherited:
            return len(first), path
        return (first.index(fault.kind) if fault.kind in first else len(first) + 1), path

    return sorted(faults.items(), key=order)


def will_not_load_lines(res) -> List[str]:
    """One line per file that will not load, in :func:`sorted_faults` order."""
    return [f"{path} will not load: {fault.reason}" for path, fault in sorted_faults(res.faults)]


def _only_unresolved(fault: Fault) -> bool:
    """The file's own fault is a library that does not resolve (what
    ``--allow-unresolved`` lets through)."""
    return fault.kind == MISSING_LIBRARY and not fault.inherited


def only_not_found(path: str, fault: Fault, unresolved: Mapping[str, List[str]]) -> bool:
    """The file's own fault is sonames the ``not found`` lines already name
    for it (``unresolved``: :attr:`Resolution.unresolved`): nothing more to say."""
    return _only_unresolved(fault) and all(path in unresolved.get(lib, ()) for lib in fault.names)


def failing(res, allow_unresolved: bool = False, allow_glibc: bool = False) -> Dict[str, Fault]:
    """The faults that make the exit code 1: ``allow_glibc`` lets through
    glibc-linked files, ``allow_unresolved`` files whose only fault is a
    soname that does not resolve."""
    out = res.failing(allow_glibc)
    if allow_unresolved:
        out = {p: f for p, f in out.items() if not _only_unresolved(f)}
    return out


def exit_code(res, allow_unresolved: bool = False, allow_glibc: bool = False, require_elf: bool = False) -> int:
    """1 when a soname a load needs does not resolve (unless allowed), a
    file's load fails, or (``require_elf``) a PATH holds no ELF file; else 0."""
    if require_elf and res.no_elf:
        return EXIT_UNRESOLVED
    if res.unresolved and not allow_unresolved:
        return EXIT_UNRESOLVED
    if failing(res, allow_unresolved, allow_glibc):
        return EXIT_UNRESOLVED
    return EXIT_OK


def problems(res, allow_unresolved: bool = False, allow_glibc: bool = False,
             size_line: bool = False, require_elf: bool = False) -> List[Problem]:
    """Every line a check prints on stderr, in order: the PATHs that hold no
    ELF file (errors with ``require_elf``), what the default
    excludes left out, the installed-size summary (``size_line``), sonames
    not found, glibc-linked files that load, files that will not load (one
    line per reason, with their hints), then notes about what could not be
    judged."""
    out: List[Problem] = [Problem(ERROR if require_elf else WARNING, no_elf_line(path, kind))
                          for path, kind in res.no_elf.items()]
    if res.left_out:
        files = sorted(res.left_out)
        more = f" and {len(files) - 1} more" if len(files) > 1 else ""
        globs = " ".join(sorted(set(res.left_out.values())))
        out.append(Problem(NOTE, f"left out {files[0]}{more}, as the official python:alpine images do "
                                 f"(default excludes: {globs}); --no-default-excludes scans "
                                 f"{'them' if more else 'it'}"))
    if size_line and res.installed_size is not None:
        out.append(Problem(PLAIN, f"rundeps: {res.installed_size.summary()}"))
    level = WARNING if allow_unresolved else ERROR
    for soname, files in res.unresolved.items():
        more = f" and {len(files) - 1} more" if len(files) > 1 else ""
        out.append(Problem(level, f"{soname} not found (needed by {files[0]}{more})"))
    binding = res.binding
    loads = set(binding.glibc_loads) if binding is not None else set()
    for path in res.glibc_linked:
        if path in loads:
            out.append(Problem(WARNING, f"{path} is glibc-linked, loads under musl (every symbol it needs binds)"))
    out.extend(_will_not_load(res, failing(res, allow_unresolved, allow_glibc)))
    out.extend(_load_notes(res))
    entry = res.entry_program
    if entry is not None:
        out.append(Problem(NOTE, entry_program_line(entry)))
    return out


def no_elf_line(path: str, kind: str) -> str:
    """What a scanned PATH without any ELF file is (see ``Resolution.no_elf``)."""
    if kind == "file":
        return f"{path} is not an ELF file: nothing to check"
    if kind == "other":
        return f"{path} is not a regular file or folder: not read"
    return f"no ELF files under {path}"


def entry_program_line(check) -> str:
    """The one line that says whether the program an image runs loads (a
    :class:`rundeps.pipeline.ProgramCheck`)."""
    prog = check.program
    runs = f"the image's {prog.source} runs {' '.join(prog.argv)[:120]}"
    if prog.path is None:
        return f"{runs}: cannot check it, {prog.why}"
    what = prog.path if prog.script is None else f"{prog.path} (for {prog.script})"
    if check.unresolved:
        return f"{runs}: {what} will not load ({', '.join(check.unresolved)} not found)"
    if check.fault is not None:
        return f"{runs}: {what} will not load ({check.fault.reason})"
    if check.unchecked:
        return f"{runs}: {what} finds every library it needs; its symbols were not checked"
    return f"{runs}: {what} loads"


def _will_not_load(res, fails: Mapping[str, Fault]) -> List[Problem]:
    """One line per reason (files with the same reason grouped, "and N
    more"), with the hints of each file and of the library that fails,
    and which musl the symbols were checked against."""
    out: List[Problem] = []
    if not res.faults:
        return out
    binding = res.binding
    unresolved = res.unresolved
    groups: Dict[Tuple[bool, str], List[str]] = {}
    for path, fault in sorted_faults(res.faults):
        if only_not_found(path, fault, unresolved):
            continue
        groups.setdefault((path in fails, fault.reason), []).append(path)
    for (fails_, reason), files in groups.items():
        more = f" (and {len(files) - 1} more)" if len(files) > 1 else ""
        out.append(Problem(ERROR if fails_ else WARNING, f"{files[0]}{more} will not load: {reason}"))
        if binding is None:
            continue
        shown = set()
        for path in files:
            for where in (path, res.faults[path].failing):
                if where in shown:
                    continue
                shown.add(where)
                out.extend(Problem(HINT, f"{where}: {hint}") for hint in binding.hints.get(where, []))
            if path in binding.gcompat:
                out.append(Problem(HINT, f"{path}: with gcompat: {binding.gcompat[path]}"))
    if binding is not None and binding.musl_description and binding.missing_symbols:
        out.append(Problem(HINT, f"symbols checked against {binding.musl_description}"))
    return out


def _load_notes(res) -> List[Problem]:
    """Loads that are neither proven to work nor to fail: units whose
    symbols could not be checked, Py* names taken as an absent
    interpreter's, vendored libraries nothing loads. Never an exit code."""
    out: List[Problem] = []
    binding = res.binding
    if binding is not None:
        unchecked = sorted(p for p in binding.unchecked if p in res.units and p not in res.faults)
        if unchecked:
            more = f" and {len(unchecked) - 1} more" if len(unchecked) > 1 else ""
            libs = ", ".join(binding.unchecked[unchecked[0]])
            out.append(Problem(NOTE, f"cannot check {unchecked[0]}{more}: {libs} not at hand to bind against "
                                     "(install the packages, or give --root)"))
        undecided = sorted(p for p in binding.undecided if p in res.units and p not in res.faults)
        if undecided:
            more = f" and {len(undecided) - 1} more" if len(undecided) > 1 else ""
            out.append(Problem(NOTE, f"cannot check {undecided[0]}{more}: {binding.undecided[undecided[0]]}"))
        if binding.assumed_interpreter:
            n = len(binding.assumed_interpreter)
            out.append(Problem(NOTE, f"no Python interpreter at hand: Py*/_Py* names taken as the interpreter's "
                                     f"in {n} load{'s' if n != 1 else ''} of a Python process"))
    if res.unloaded:
        more = f" and {len(res.unloaded) - 1} more" if len(res.unloaded) > 1 else ""
        out.append(Problem(NOTE, f"nothing scanned loads the vendored library {res.unloaded[0]}{more}: not judged"))
    return out

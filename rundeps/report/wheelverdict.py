"""The one-line verdict of a checked wheel: why it is not usable as it is
(:func:`wheel_problems`), or what it needs (:func:`wheel_verdict`)."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from ..apk.baseimage import BASE_IMAGE_SONAMES
from ..resolve import Resolution


def wheel_problems(ws, res: Resolution, elf_arch: Optional[str], target: Optional[str],
                   base: Dict[str, str], has_elf: bool) -> List[str]:
    """Why the wheel ``ws`` (a :class:`rundeps.inputs.wheel.WheelScan`) is
    not usable as it is (empty when it is); ``base``: sonames left to the
    base image."""
    problems = []
    pure = ws.libc == "pure" or not has_elf
    wheel_arch = ws.arch or elf_arch
    if not pure and wheel_arch and target and wheel_arch != target:
        problems.append(f"built for {wheel_arch}, the target is {target}")
    if res.binding is not None:
        from .problems import only_not_found

        unresolved = res.unresolved
        # files whose only fault is a library "not found" below names are not repeated
        other = {p: f.reason for p, f in res.faults.items() if not only_not_found(p, f, unresolved)}
        if other:
            first = sorted(other.items())[0]
            n = len(other)
            problems.append(f"{n} file{'s' if n != 1 else ''} will not load under musl "
                            f"({first[0]}: {first[1]}" + (f"; and {n - 1} more)" if n > 1 else ")"))
    elif ws.libc == "glibc" or res.glibc_linked:
        glibc = sorted({s for sonames in res.glibc_linked.values() for s in sonames})
        problems.append(
            "glibc-linked" + (f" (needs {', '.join(glibc)})" if glibc else "")
            + ": Alpine needs a musllinux wheel (or gcompat)"
        )
    missing = [so for so in res.unresolved if so not in base]
    if missing:
        problems.append("not found: " + ", ".join(missing))
    return problems


def wheel_verdict(ws, res: Resolution, base: Dict[str, str], lost: Sequence, no_sources: bool,
                  has_elf: bool) -> str:
    """The one-line verdict of a wheel usable as it is: what it needs
    (``lost``: its counted run-time loads nothing provides)."""
    pure = ws.libc == "pure" or not has_elf
    glibc_note = ""
    if res.binding is not None and (ws.libc == "glibc" or res.glibc_linked):
        glibc_note = "glibc-linked, loads under musl; "
    needed = {p.name for p in res.packages} | set(base.values())
    in_base = sorted(n for n in needed if n == "musl" or n in BASE_IMAGE_SONAMES.values())
    external = sorted(needed - set(in_base))
    loaded = {p.name for p in res.extra.values()}
    prefix = "pure Python; " if pure else ""
    if external:
        verdict = prefix + "needs " + " ".join(
            n + (" (loaded at run time)" if n in loaded else "") for n in external)
    elif pure and not lost:
        verdict = "pure Python: needs no system library"
    elif pure:
        verdict = "pure Python"
    else:
        verdict = f"needs nothing beyond the base image ({', '.join(['musl'] + [n for n in in_base if n != 'musl'])})"
    if lost:
        names = sorted({f.name for f in lost})
        verdict += ("; " if verdict else "") + "loads at run time " + ", ".join(names) + (
            ", which nothing here provides" if not no_sources else
            " (name a package source to map it: --alpine VERSION, --index or --db)")
    return glibc_note + verdict

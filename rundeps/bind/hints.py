"""Hints for missing symbols: a library at hand (the tree's, an installed
package's) that defines them, or defines them only under a hidden version or
only as an IFUNC; the object's own IFUNC definition its relocations
reference."""

from __future__ import annotations

import posixpath
from typing import Dict, List, Mapping


def hints_for(missing: Mapping[str, List[str]], b, hint_libraries) -> Dict[str, List[str]]:
    """For missing symbols a library at hand defines: a line naming it."""
    libs = []
    for path, pkg in hint_libraries():
        real = b.real_path(path)
        if real is None:
            continue
        facts = b.symbols(real)
        if facts is None or not (facts.defined or facts.hidden or facts.ifunc):
            continue
        libs.append((path, pkg, facts.defined, facts.hidden, facts.ifunc))
    out: Dict[str, List[str]] = {}
    for path, names in missing.items():
        lines = []
        left = list(names)
        own = _own_ifunc(b, path, left)
        if own:
            lines.append(f"{_subject(own)} an IFUNC (STT_GNU_IFUNC) this object defines and calls or takes the "
                         "address of through the dynamic linker; musl's lookup skips IFUNC definitions, its "
                         "own included")
            left = [n for n in left if n not in own]
        for lib, pkg, defined, hidden, ifunc in libs:
            hid = [n for n in left if n in hidden and n not in defined]
            if hid:
                lines.append(f"{_subject(hid)} defined by {posixpath.basename(lib)} only under a hidden "
                             "(non-default) symbol version, which musl's lookup skips")
                left = [n for n in left if n not in hid]
            ifn = [n for n in left if n in ifunc]
            if ifn:
                lines.append(f"{_subject(ifn)} defined by {posixpath.basename(lib)} only as an IFUNC "
                             "(STT_GNU_IFUNC), which musl's lookup skips")
                left = [n for n in left if n not in ifn]
            hit = [n for n in left if n in defined]
            if not hit:
                continue
            left = [n for n in left if n not in defined]
            soname = posixpath.basename(lib)
            who = f"{soname} ({pkg})" if pkg else soname
            line = (f"{_subject(hit)} defined by {who}, which this module does not link: "
                    f"add it to DT_NEEDED")
            if soname.startswith("libstdc++"):
                line += " (build with CXX=g++)"
            lines.append(line)
            if not left:
                break
        if lines:
            out[path] = lines
    return out


def _subject(names: List[str]) -> str:
    """``"x is"`` or ``"x and N more are"``: the subject of a hint's line."""
    return f"{names[0]} and {len(names) - 1} more are" if len(names) > 1 else f"{names[0]} is"


def _own_ifunc(b, path: str, names: List[str]) -> List[str]:
    """The names of ``names`` that the object at ``path`` references
    through its own IFUNC definition."""
    real = b.real_path(path)
    facts = b.symbols(real) if real is not None else None
    if facts is None or not facts.own_unfound:
        return []
    return [n for n in names if n in facts.own_unfound and n in facts.ifunc]

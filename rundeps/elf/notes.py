"""ELF ``dlopen`` metadata notes (``.note.dlopen``).

The systemd/UAPI "dlopen() metadata for ELF files" format: an ELF note of
owner ``FDO`` and type ``0x407c0c0a`` in an allocated ``PT_NOTE`` segment,
whose descriptor is a NUL-terminated (and zero-padded) JSON array of objects
such as ``{"feature": "pcre2", "priority": "required", "soname":
["libpcre2-8.so.0"]}``.  ``soname`` lists alternatives, best first; a
missing ``priority`` means ``recommended``.

:func:`parse_dlopen_notes` reads the notes of one segment's bytes.  Broken or
foreign notes are skipped, never an error: the metadata is advisory and a
file that carries a bad one still loads.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Tuple

__all__ = ["DLOPEN_NOTE_OWNER", "DLOPEN_NOTE_TYPE", "PRIORITIES", "dlopen_note_entries", "parse_dlopen_notes"]

DLOPEN_NOTE_OWNER = b"FDO"
DLOPEN_NOTE_TYPE = 0x407C0C0A
PRIORITIES = ("required", "recommended", "suggested")
DEFAULT_PRIORITY = "recommended"

_MAX_ENTRIES = 256


def parse_dlopen_notes(data: bytes, little_endian: bool):
    """The dlopen notes in the bytes of one ``PT_NOTE`` segment:
    ``((priority, (soname, ...)), ...)`` in file order."""
    out: List[Tuple[str, Tuple[str, ...]]] = []
    hdr = struct.Struct("<III" if little_endian else ">III")
    pos, end = 0, len(data)
    while pos + 12 <= end and len(out) < _MAX_ENTRIES:
        namesz, descsz, ntype = hdr.unpack_from(data, pos)
        pos += 12
        name_end = pos + namesz
        desc_pos = name_end + (-namesz % 4)
        desc_end = desc_pos + descsz
        if desc_end > end:
            break
        name = data[pos:name_end].rstrip(b"\0")
        if ntype == DLOPEN_NOTE_TYPE and name == DLOPEN_NOTE_OWNER:
            out.extend(dlopen_note_entries(data[desc_pos:desc_end]))
        pos = desc_end + (-descsz % 4)
    return tuple(out[:_MAX_ENTRIES])


def dlopen_note_entries(desc: bytes):
    """The ``(priority, sonames)`` entries of one note's descriptor (JSON)."""
    import json  # only files that carry a dlopen note pay for it

    nul = desc.find(b"\0")
    if nul >= 0:
        desc = desc[:nul]
    try:
        doc = json.loads(desc.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return []
    if not isinstance(doc, list):
        return []
    out = []
    for item in doc:
        if not isinstance(item, dict):
            continue
        priority = item.get("priority", DEFAULT_PRIORITY)
        sonames = item.get("soname")
        if priority not in PRIORITIES or not isinstance(sonames, list):
            continue
        names = tuple(s for s in sonames if isinstance(s, str) and s and "\0" not in s)
        if names:
            out.append((priority, names))
    return out

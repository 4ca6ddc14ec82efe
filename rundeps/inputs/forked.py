"""Reading the symbol facts of many files on two cores: half of them in a
forked child process.

Reading symbol tables is CPU-bound Python, so with ``jobs`` > 1 and enough
to read, :func:`read_symbols_of` hands half of the files (by size; copies of
one file stay together) to a forked child that sends their packed facts
(:func:`rundeps.elf.facts.pack_facts`) back through a pipe, while this
process reads the other half.  Only when this process runs no other thread
(a fork would copy their locks), on a system with ``fork``; a child that
fails in any way means its files are read here.

The items are the walk's :class:`~rundeps.inputs.walk.ScanItem` objects
(``path``, ``host_path``, ``info``); ``read_one(item)`` reads one of them
and returns ``("facts", key, facts or None)`` or ``("error", reason)``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["PARALLEL_MIN_BYTES", "PARALLEL_MIN_FILES", "read_symbols_of"]

#: Below this many files to read (or bytes), a second process does not pay.
PARALLEL_MIN_FILES = 24
PARALLEL_MIN_BYTES = 32 * 1024 * 1024


def read_symbols_of(items: list, read_one: Callable, jobs: int = 1):
    """(item, ``read_one(item)``) for every item, in order; with ``jobs`` >
    1 and enough to read, half of them read in a forked child (see the
    module documentation)."""
    if jobs > 1 and len(items) >= PARALLEL_MIN_FILES and _can_fork():
        sizes = {}
        for item in items:
            try:
                sizes[item.path] = os.lstat(item.host_path).st_size
            except OSError:
                sizes[item.path] = 0
        if sum(sizes.values()) >= PARALLEL_MIN_BYTES:
            got = _read_forked(items, read_one, sizes)
            if got is not None:
                return got
    return [(item, read_one(item)) for item in items]


def _can_fork() -> bool:
    if not hasattr(os, "fork"):
        return False
    try:
        if len(os.sched_getaffinity(0)) < 2:
            return False
    except (AttributeError, OSError):
        if (os.cpu_count() or 1) < 2:
            return False
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _halves(items: list, sizes: Dict[str, int]) -> Tuple[list, list]:
    """``items`` split in two halves of about the same size; copies of one
    file (same sonames and size) in the same half, so each is parsed once."""
    groups: Dict[Tuple[object, object, int], list] = {}  # (needed, soname, size) -> items
    for item in items:
        groups.setdefault((item.info.needed, item.info.soname, sizes[item.path]), []).append(item)
    halves: Tuple[list, list] = ([], [])
    load = [0, 0]
    for key in sorted(groups, key=lambda k: -k[2] * len(groups[k])):
        side = 0 if load[0] <= load[1] else 1
        halves[side].extend(groups[key])
        load[side] += key[2]  # a copy costs little: count the first
    return halves


def _read_forked(items: list, read_one: Callable, sizes: Dict[str, int]):
    """Split ``items`` in two by size, read one half in a forked child; None
    if the child could not be started."""
    mine, theirs = _halves(items, sizes)
    try:
        rfd, wfd = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(rfd)
        os.close(wfd)
        return None
    if pid == 0:  # the child: read, send, and leave without running anything of the parent's
        _child(rfd, wfd, theirs, read_one)
    os.close(wfd)
    results: Dict[str, tuple] = {}
    chunks = []
    status = 1
    try:
        with os.fdopen(rfd, "rb") as f:
            for item in mine:
                results[item.path] = read_one(item)
            try:
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except OSError:
                chunks = []
    finally:  # whatever happens here (an interrupt), the child is not left behind
        try:
            _pid, status = os.waitpid(pid, 0)
        except OSError:
            status = 1
    _take_theirs(theirs, _child_results(status, chunks, len(theirs)), read_one, results)
    return [(item, results[item.path]) for item in items]


def _child(rfd: int, wfd: int, theirs: list, read_one: Callable) -> None:
    """The forked child: read ``theirs``, send the results marshalled
    through ``wfd``, and exit (never returns)."""
    import marshal

    from ..elf.facts import pack_facts

    code = 1
    try:
        os.close(rfd)
        out = []
        for item in theirs:
            got = read_one(item)
            if got[0] == "facts" and got[2] is not None:
                got = ("facts", got[1], pack_facts(got[2]))
            out.append(got)
        data = memoryview(marshal.dumps(out, 4))
        while data:
            data = data[os.write(wfd, data):]
        code = 0
    finally:
        os._exit(code)


def _child_results(status: int, chunks: List[bytes], count: int) -> Optional[list]:
    """The child's list of results, None unless it exited cleanly and sent
    ``count`` of them."""
    if status != 0:
        return None
    import marshal

    try:
        got = marshal.loads(b"".join(chunks))
    except (ValueError, EOFError, TypeError):
        return None
    if not (isinstance(got, list) and len(got) == count):
        return None
    return got


def _take_theirs(theirs: list, theirs_got: Optional[list], read_one: Callable, results: Dict[str, tuple]) -> None:
    """Put the child's results for ``theirs`` in ``results``, checked and
    unpacked; what the child did not read (or sent garbage for) is read here."""
    from ..elf.facts import unpack_facts

    for item, got in zip(theirs, theirs_got or ()):
        try:
            if got[0] == "facts" and got[2] is not None:
                got = ("facts", tuple(got[1]), unpack_facts(got[2]))
            elif got[0] == "facts":
                got = ("facts", tuple(got[1]), None)
            elif not (got[0] == "error" and isinstance(got[1], str)):
                raise ValueError(got)
        except (ValueError, TypeError, IndexError):
            got = read_one(item)
        results[item.path] = got
    if theirs_got is None:  # the child failed: its half read here
        for item in theirs:
            results[item.path] = read_one(item)

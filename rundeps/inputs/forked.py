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
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["PARALLEL_MIN_BYTES", "PARALLEL_MIN_FILES", "Prefetch", "can_fork", "read_symbols_of"]

#: Below this many files to read (or bytes), a second process does not pay.
PARALLEL_MIN_FILES = 24
PARALLEL_MIN_BYTES = 32 * 1024 * 1024


def read_symbols_of(items: list, read_one: Callable, jobs: int = 1):
    """(item, ``read_one(item)``) for every item, in order; with ``jobs`` >
    1 and enough to read, half of them read in a forked child (see the
    module documentation)."""
    if jobs > 1 and len(items) >= PARALLEL_MIN_FILES and can_fork():
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


def can_fork() -> bool:
    """Whether a forked child can share the work: ``fork``, two cores, no other thread."""
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
            chunks = _read_all(f)
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


# -- reading while the walk goes on ------------------------------------------------

#: One task in a queue pipe: where its description is in the shared
#: memory file (offset, length); 12 bytes, so that every write and every
#: read of one is atomic (PIPE_BUF) and two readers never split one.
_TASK = struct.Struct("<QI")
#: The two queues: files without a soname (extension modules, programs)
#: and libraries, the large files, which both processes take first: what
#: is left at the end is small, so neither waits long for the other.
_MODULES, _LIBRARIES = 0, 1


class Prefetch:
    """Reads the symbol facts of the ELF files the walk finds while the walk
    goes on, in a forked child, with this process taking its share of them
    once the walk is over.

    The walk hands each ELF file it read to :meth:`add`. Once enough are
    known (:data:`PARALLEL_MIN_FILES` and :data:`PARALLEL_MIN_BYTES`) a
    child is forked; from then on each file's description (in-root and
    host path) is written to a shared memory file and a fixed-size task
    naming it to a pipe the child reads, so the child reads symbol tables
    while this process is still walking. The child writes each result to
    a second shared memory file as soon as it has it, then a byte to a
    notes pipe. :meth:`take` gives one file's result as soon as either
    process has it (until then this process reads files of the queue
    itself), so that binding starts while the child still reads;
    :meth:`finish` gives them all: it reads the tasks the child has not
    taken (both processes take tasks from the same pipes, so neither waits
    on the other's share) and then the child's results. There are two
    pipes, libraries (the large files) and the others, and both processes
    take libraries first. A later file with the sonames and size of
    one queued before (a vendored copy, see
    :class:`rundeps.elf.reader.SameBytes`) is not queued: its result is
    the first's, compared in the ranges the reader read there
    (unchanged since, by its stat key), and shares its facts when every
    byte is the same. Nothing that fails here is final: a file without a
    result (the child died before it, the queue broke) is read by the
    caller as without a prefetch; the results the child wrote whole before
    it died are used.

    ``read(host_path)`` gives ``("facts", stat key, facts or None,
    ranges)`` or ``("error", reason)``; ``same(original host path,
    original stat key, copy host path, ranges)`` gives the copy's stat key
    when it has the same bytes there, else None.
    """

    def __init__(self, read: Callable[[str], tuple], same: Callable[..., Optional[tuple]]):
        self.read, self.same = read, same
        self.pending: List[Tuple[str, str, int]] = []  # found before the child started (with their queue)
        self.pending_bytes = 0
        self.first: Dict[tuple, Tuple[str, str]] = {}  # copy key -> (path, host path) queued
        self.copy_of: Dict[str, Tuple[str, str]] = {}  # copy's path -> (its host path, path of the first)
        self.sent: Dict[int, Tuple[str, str]] = {}  # task offset -> (path, host path)
        self.queued: Dict[str, str] = {}  # path -> host path of every file sent
        self.pid = 0
        self.end = 0
        self.fds: Dict[str, int] = {}
        self.failed = False
        self.got: Dict[str, tuple] = {}  # in-root path -> what either process read (with its ranges)
        self.at = 0  # where the next of the child's results starts in its results file

    def add(self, path: str, host_path: str, copy_key: tuple, size: int, library: bool = False) -> None:
        """Queue an ELF file the walk found (or hold it as a copy);
        ``library``: it has a soname."""
        if self.failed:
            return
        first = self.first.get(copy_key)
        if first is not None:
            self.copy_of[path] = (host_path, first[0])
            return
        self.first[copy_key] = (path, host_path)
        queue = _LIBRARIES if library else _MODULES
        if self.pid:
            self._send(path, host_path, queue)
            return
        self.pending.append((path, host_path, queue))
        self.pending_bytes += size
        if len(self.pending) >= PARALLEL_MIN_FILES and self.pending_bytes >= PARALLEL_MIN_BYTES:
            self._start()

    def _start(self) -> None:
        try:
            mem = os.memfd_create("rundeps-tasks", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            self.failed = True
            return
        fds = self.fds
        fds["mem"] = mem
        try:
            fds["task_r0"], fds["task_w0"] = os.pipe()
            fds["task_r1"], fds["task_w1"] = os.pipe()
            fds["res"] = os.memfd_create("rundeps-results", os.MFD_CLOEXEC)
            fds["note_r"], fds["note_w"] = os.pipe()
            pid = os.fork()
        except OSError:
            self._close()
            self.failed = True
            return
        if pid == 0:  # the child: read tasks until the queue closes, send, and leave
            _prefetch_child(self.fds, self.read)
        self.pid = pid
        os.close(fds.pop("note_w"))
        os.set_blocking(fds["note_r"], False)
        pending, self.pending = self.pending, []
        for path, host_path, queue in pending:
            self._send(path, host_path, queue)

    def _send(self, path: str, host_path: str, queue: int) -> None:
        if self.failed:
            return
        data = (path + "\0" + host_path).encode("utf-8", "surrogateescape")
        try:
            os.pwrite(self.fds["mem"], data, self.end)
            os.write(self.fds["task_w%d" % queue], _TASK.pack(self.end, len(data)))
        except OSError:  # the child is gone (EPIPE): what was not sent is read later
            self.failed = True
            return
        self.sent[self.end] = (path, host_path)
        self.queued[path] = host_path
        self.end += len(data)

    def close_queue(self) -> None:
        """No more files (the walk is over): the readers see the end of the
        queue once it is empty. The child goes on with what is queued."""
        for name in ("task_w0", "task_w1"):
            fd = self.fds.pop(name, None)
            if fd is not None:
                os.close(fd)

    def take(self, path: str) -> Optional[tuple]:
        """``path``'s result as :meth:`finish` gives it, as soon as either
        process has read it: while the child has not, this process takes
        tasks from the queue (libraries first), and waits for the child only
        when the queue is empty. None when it was not queued here, or the
        child left without reading it: the caller reads it. (The walk is
        over: the queue is closed.)"""
        self.close_queue()
        copy = self.copy_of.get(path)
        if copy is not None:
            got = self._copy(*copy)
        else:
            got = self._result(path) if path in self.queued else None
        return None if got is None else (got[:3] if got[0] == "facts" else got)

    def _result(self, path: str) -> Optional[tuple]:
        got, fds = self.got, self.fds
        while path not in got and self.pid and "note_r" in fds:
            self._collect(block=False)
            if path not in got and not self._take_task():
                self._collect(block=True)
        return got.get(path)

    def _copy(self, host_path: str, first: str) -> Optional[tuple]:
        """A copy's result: the first's facts when its bytes are the same
        where the reader read the first (see the class documentation)."""
        done = self._result(first)
        if done is not None and done[0] == "facts" and done[2] is not None:
            key = self.same(self.queued[first], done[1], host_path, done[3])
            if key is not None:
                return ("facts", key, done[2], done[3])
        return None

    def finish(self) -> Dict[str, tuple]:
        """{in-root path: ``("facts", key, facts or None)`` or ``("error",
        reason)``} of the files read (see the class documentation)."""
        if not self.pid and not self.got:
            return {}
        try:
            self.close_queue()
            while self._take_task():  # this process's share: tasks the child has not taken
                pass
            while self.pid and "note_r" in self.fds:
                self._collect(block=True)
        finally:  # on an interrupt too: the child is not left behind
            if self.pid:
                self.abort()
        results = dict(self.got)
        for path, (host_path, first) in self.copy_of.items():
            done = self._copy(host_path, first)
            results[path] = done if done is not None else self.read(host_path)
        self._close()
        return {path: got[:3] if got[0] == "facts" else got for path, got in results.items()}

    def _take_task(self) -> bool:
        """Read the file of one task the child has not taken (libraries
        first); False when both queues are empty (and closed)."""
        for name in ("task_r1", "task_r0"):
            fd = self.fds.get(name)
            if fd is None:
                continue
            try:
                rec = os.read(fd, _TASK.size)
            except OSError:
                rec = b""
            if len(rec) != _TASK.size:  # empty and closed: nothing more will come
                os.close(self.fds.pop(name))
                continue
            task = self.sent.get(_TASK.unpack(rec)[0])
            if task is not None:
                self.got[task[0]] = self.read(task[1])
            return True
        return False

    def _collect(self, block: bool) -> None:
        """Take the results the child has written so far (one byte on the
        notes pipe after each); ``block``: wait for one, or for the child to
        leave (its end of the pipe closed), then reap it."""
        note = self.fds.get("note_r")
        if note is None:
            return
        if block:
            import select

            select.select([note], [], [])
        try:
            notes = os.read(note, 65536)
        except BlockingIOError:
            return
        except OSError:
            notes = b""
        if not notes:  # the child has left
            self._reap()
            os.close(self.fds.pop("note_r"))
            return
        res = self.fds["res"]
        for _ in range(len(notes)):
            try:
                size = int.from_bytes(os.pread(res, 4, self.at), "little")
                data = os.pread(res, size, self.at + 4)
            except (OSError, OverflowError):
                data = b""
            if len(data) != size or not size:  # cannot be: the child wrote it before its note
                self.abort()
                return
            self.at += 4 + size
            entry = _prefetched(data)
            if entry is not None:
                self.got.setdefault(entry[0], entry[1])

    def __del__(self):  # never finished (nothing was loaded): the child is not left waiting
        if self.pid:
            self.abort()

    def abort(self) -> None:
        """Stop the child (the walk failed) without waiting for its results."""
        if self.pid:
            import signal

            try:
                os.kill(self.pid, signal.SIGKILL)  # our own child, whose results are not wanted
            except OSError:
                pass
            self._reap()
        self._close()
        self.failed = True

    def _reap(self) -> int:
        pid, self.pid = self.pid, 0
        try:
            return os.waitpid(pid, 0)[1] if pid else 1
        except OSError:
            return 1

    def _close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


def _prefetch_child(fds: Dict[str, int], read: Callable[[str], tuple]) -> None:
    """The forked child of :class:`Prefetch`: take tasks until both queues
    are closed and empty (while both are open, from whichever has one,
    libraries first), write each result as it has it, and exit
    (never returns). Only this process reads the queues until they are
    closed, so a queue ``select`` finds ready still has its task when read;
    once closed, a read that finds it empty sees its end."""
    import marshal

    from ..elf.facts import pack_facts

    import select

    code = 1
    try:
        os.close(fds["task_w0"])
        os.close(fds["task_w1"])
        os.close(fds["note_r"])
        mem, res, note = fds["mem"], fds["res"], fds["note_w"]
        open_queues = [fds["task_r1"], fds["task_r0"]]  # libraries first
        while open_queues:
            task_r = open_queues[0]
            if len(open_queues) > 1:  # both open: the first with a task, libraries preferred
                ready = select.select(open_queues, [], [])[0]
                task_r = open_queues[0] if open_queues[0] in ready else ready[0]
            rec = os.read(task_r, _TASK.size)  # a task, or the end of a queue once it is closed
            if len(rec) != _TASK.size:
                open_queues.remove(task_r)
                continue
            at, size = _TASK.unpack(rec)
            path, host_path = os.pread(mem, size, at).decode("utf-8", "surrogateescape").split("\0")
            got = read(host_path)
            if got[0] == "facts" and got[2] is not None:
                got = ("facts", got[1], pack_facts(got[2]), got[3])
            record = marshal.dumps((path, got), 4)
            data = memoryview(len(record).to_bytes(4, "little") + record)
            while data:
                data = data[os.write(res, data):]
            os.write(note, b"\x01")  # after the whole result: the parent may take it now
        code = 0
    finally:
        os._exit(code)


def _prefetched(data: bytes) -> Optional[Tuple[str, tuple]]:
    """One of the child's results, checked and unpacked: (in-root path,
    ``("facts", key, facts or None, ranges)`` or ``("error", reason)``);
    None when it is malformed (its file is read again)."""
    import marshal

    from ..elf.facts import unpack_facts

    try:
        path, res = marshal.loads(data)
        if not isinstance(path, str):
            return None
        if res[0] == "facts" and len(res) == 4:
            key, facts, ranges = tuple(res[1]), res[2], res[3]
            if not (len(key) == 4 and all(isinstance(k, int) for k in key)):
                return None
            if not (isinstance(ranges, list) and all(
                    isinstance(r, tuple) and len(r) == 2 and all(isinstance(x, int) and x >= 0 for x in r)
                    for r in ranges)):
                return None
            return path, ("facts", key, unpack_facts(facts) if facts is not None else None, ranges)
        if res[0] == "error" and len(res) == 2 and isinstance(res[1], str):
            return path, res
    except (ValueError, EOFError, TypeError, IndexError):
        pass
    return None


def _read_all(f) -> List[bytes]:
    """What the child sent, in 1 MiB pieces; nothing when the pipe fails."""
    chunks: List[bytes] = []
    try:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return chunks
            chunks.append(chunk)
    except OSError:
        return []

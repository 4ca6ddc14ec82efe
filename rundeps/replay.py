"""Repeat runs of the console script, answered from a record of the same run.

A run of ``rundeps scan``, ``why`` or ``wheel`` that uses a cache folder
leaves a *run record* in ``<cache>/runs/``: what it wrote to stdout and
stderr (in order), its exit code, and the identity -- ``lstat`` (and, for a
symlink, ``stat``) device, inode, size, mode, mtime and ctime -- of every
path it looked at: the files it opened, the paths it ``stat``-ed (those that
did not exist too), every entry of the folders it listed, the modules it
ran and the interpreter. The record is filed under everything else the run
depended on: the arguments, the working folder, the whole environment (but
``_`` and ``OLDPWD``, which a shell sets and nothing reads), the user and groups, which descriptors are terminals (and
their size), the interpreter and this package's place.

The next run with the same arguments (:func:`replay`) reads that one record,
``lstat``-s each path and, when every identity is unchanged, writes the
recorded output and ends with the recorded code, importing neither click nor
any stage: a repeat ``rundeps scan`` costs the interpreter's start, one file
read and a ``stat`` per file. Any difference -- a file changed, added,
removed, replaced or made unreadable, a folder's entry added, an argument or
variable changed -- and the run is done in full (and leaves a new record).

A run is recorded (:class:`Recorder`) only when its result can depend on
nothing else. The commands say which cache folder the run used
(:func:`use_cache`; ``--no-cache`` leaves none), and a run is not recorded
when it

* reads remote indexes or writes an SBOM (:func:`forbid`: an index's
  freshness depends on the time, an SBOM file would not be rewritten);
* starts a process, opens a socket, changes the working folder, or writes,
  removes or renames anything outside its cache folder (seen by an audit
  hook, :func:`sys.addaudithook`);
* ends with a code other than 0 or 1, or a file it looked at changed less
  than :data:`RACY_NS` before it started or while it ran (a later change in
  the same clock tick would leave the same identity: git's "racy" rule).

Only the console script (:mod:`rundeps.__main__`) records and replays;
:func:`rundeps.cli.main` and the library never do.
"""

from __future__ import annotations

import marshal
import os
import sys
import time
import zlib
from array import array

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, Iterable, List, Optional, Set, Tuple

__all__ = ["COMMANDS", "Recorder", "forbid", "replay", "use_cache"]

FORMAT = 1
"""The record layout's version: a record of another version is never read."""

COMMANDS = ("scan", "why", "wheel")
"""The subcommands whose runs are recorded and replayed."""

_MAGIC = b"RDr\x01"
"""A record file's first bytes, then the CRC-32 of the rest (the marshalled record)."""

RUNS = "runs"
"""The folder of the records, inside the cache folder."""

MAX_RECORDS = 64
"""Records kept; the least recently written go first."""

MAX_BYTES = 64 * 1024 * 1024
"""What the records may take together (one of a tree of 100,000 files is about 10 MB)."""

RACY_NS = 2_000_000_000
"""A run that looked at a file changed less than this before it started (or
since) is not recorded."""

_NEVER = ("--no-cache", "--help", "-h", "--version")

_SHELL_ONLY = ("_", "OLDPWD")
"""Variables a shell sets that nothing reads: the command it ran, the folder it left."""

_TAINT = frozenset((
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.startfile", "os.kill",
    "os.chdir", "os.fchdir", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.gethostbyname_ex", "socket.gethostbyaddr", "urllib.Request", "http.client.connect",
    "ctypes.dlopen", "ctypes.dlsym",
))
"""Audit events after which a run's result may depend on more than files."""

_WRITES = frozenset((
    "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.truncate", "os.chmod", "os.chown", "os.utime",
    "os.symlink", "os.link", "os.setxattr", "os.removexattr", "os.chflags", "os.lchflags",
    "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.rmtree", "shutil.move",
    "tempfile.mkstemp", "tempfile.mkdtemp", "sqlite3.connect", "sqlite3.connect/handle",
))
"""Audit events whose first argument is a path that must be in the cache folder."""

_WATCHED = _TAINT | _WRITES | {"os.listdir", "os.scandir"}
"""The audit events the recorder looks at beside ``open``."""

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_WALK_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
"""How :mod:`rundeps.inputs.walk` opens a file by its name in a folder it lists."""
_WALK_MASK = _WALK_FLAGS | _WRITE_FLAGS
"""The flags that tell such an open: those, and none that writes."""
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

_RECORDER: Optional[Recorder] = None


# -- the key a record is filed under -------------------------------------------


def _command_of(argv: List[str]) -> Optional[str]:
    """The subcommand when ``argv`` may be replayed or recorded, else None."""
    if not argv or argv[0] not in COMMANDS:
        return None
    for arg in argv:
        if arg in _NEVER:
            return None
    return argv[0]


def _cache_dir(argv: List[str]) -> str:
    """The cache folder ``argv`` names, as the commands work it out; a run
    records only when this is the folder it really used, so a wrong
    reading costs a miss."""
    from .cachedir import argv_cache_dir

    return os.path.normpath(os.path.abspath(argv_cache_dir(argv)))


def _terminal(fd: int):
    if not os.isatty(fd):
        return None
    try:
        return tuple(os.get_terminal_size(fd))
    except OSError:
        return ()


def _key(argv: List[str]) -> Optional[str]:
    """Everything a run's result may depend on but files, as one string."""
    try:
        cwd = os.getcwd()
        groups = sorted(os.getgroups())
    except OSError:
        return None
    env = sorted((k, v) for k, v in os.environ.items() if k not in _SHELL_ONLY)
    return repr((
        FORMAT, sys.executable, sys.version, tuple(sys.flags), os.path.dirname(os.path.abspath(__file__)),
        tuple(argv), cwd, env, os.getuid(), os.getgid(), groups,
        tuple(_terminal(fd) for fd in (0, 1, 2)),
    ))


def _record_path(cache: str, key: str) -> str:
    data = key.encode("utf-8", "surrogateescape")
    name = f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"
    return os.path.join(cache, RUNS, name)


# -- identities -----------------------------------------------------------------


ENTRY, FOLLOW, LISTED = 0, 1, 2
"""How a record checks a path: as an entry of a listed folder (``lstat``),
as a path the run opened or ``stat``-ed (``lstat``, and ``stat`` when it
is a symlink), as a folder the run listed (its times too: an entry added
or removed changes them)."""

_MASK = (1 << 64) - 1
_DIR, _LINK, _TYPE = 0o040000, 0o120000, 0o170000


def _packed(st, listed: bool) -> tuple:
    mode = st.st_mode
    if not listed and mode & _TYPE == _DIR:
        return (st.st_ino, st.st_dev, 0, 0, 0, mode)
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns & _MASK, st.st_ctime_ns & _MASK, mode)


def _identities(folders, known=None) -> bytes:
    """The identities of the paths of ``folders`` (``(folder, names joined
    by NUL, hows)``, a name "" being the folder itself) packed as unsigned
    64-bit numbers, in order: six a path -- inode, device, size, mtime and
    ctime in ns, mode; all 0 when it cannot be ``lstat``-ed; a folder not
    listed keeps only inode, device and mode (its times change with every
    file made in it) -- and six more for the target of a symlink the run
    followed (opened, ``stat``-ed or listed through). ``known``: {folder:
    {name: ``lstat`` result}} the run saw (:meth:`Recorder.folders_seen`),
    used for the entries of listed folders instead of ``lstat``-ing them again."""
    lstat, stat = os.lstat, os.stat
    out = array("Q")
    add = out.extend
    missing = (0, 0, 0, 0, 0, 0)
    for folder, joined, hows in folders:
        prefix = folder if folder.endswith("/") else folder + "/"
        seen = known.get(folder) if known else None
        for name, how in zip(joined.split("\0"), hows):
            st = seen.get(name) if seen is not None and how == ENTRY else None
            if st is None:
                try:
                    st = lstat(prefix + name if name else folder)
                except OSError:
                    add(missing)
                    continue
            add(_packed(st, how == LISTED))
            if how != ENTRY and st.st_mode & _TYPE == _LINK:
                try:
                    add(_packed(stat(prefix + name if name else folder), how == LISTED))
                except OSError:
                    add(missing)
    return out.tobytes()


class _Listing:
    """An ``os.scandir`` iterator of the watched run that remembers what it
    yields: each entry's name and, but for a folder, its ``lstat`` result
    (taken as the entry is listed, when the scanning walk would take it:
    ``DirEntry`` keeps it, so the walk's own ``stat`` costs nothing more).
    Once the listing is read to its end, ``listed[folder]`` has them. (A
    folder's entries are taken at the end of the run, after any change the
    run could make to it.)"""

    __slots__ = ("_it", "_folder", "_listed", "_seen")

    def __init__(self, it, folder: str, listed: Dict[str, Dict[str, object]]):
        self._it, self._folder, self._listed = it, folder, listed
        self._seen: Dict[str, object] = {}

    def __iter__(self):
        return self

    def __next__(self):
        try:
            entry = next(self._it)
        except StopIteration:
            self._listed[self._folder] = self._seen
            raise
        st = None
        try:
            if not entry.is_dir(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
        except OSError:
            pass
        self._seen[entry.name] = st
        return entry

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._it.close()

    def close(self) -> None:
        self._it.close()


# -- replay -----------------------------------------------------------------------


def replay(argv: List[str]) -> Optional[int]:
    """Answer ``argv`` from its record: write the recorded output and return
    the recorded exit code; None (having written nothing) when there is no
    record or anything it depends on changed."""
    if _command_of(argv) is None:
        return None
    try:
        os.fstat(1)
    except OSError:
        return None  # stdout closed: the full run says so
    key = _key(argv)
    if key is None:
        return None
    try:
        with open(_record_path(_cache_dir(argv), key), "rb") as f:
            if os.fstat(f.fileno()).st_uid != os.geteuid():
                return None  # only a record this user wrote
            data = f.read()
        payload = memoryview(data)[8:]
        if data[:4] != _MAGIC or int.from_bytes(data[4:8], "little") != zlib.crc32(payload):
            return None  # damaged (marshal is not meant for damaged data)
        version, stored_key, chunks, code, folders, identities = marshal.loads(payload)
        if version != FORMAT or stored_key != key or _identities(folders) != identities:
            return None
    except Exception:  # no record, one this version did not write, or a path it cannot check
        return None
    return _write(chunks, code)


def _write(chunks, code: int) -> int:
    """Write the recorded chunks in order; a reader that left (EPIPE) ends
    stdout quietly, as a full run does."""
    stdout_gone = False
    for fd, data in chunks:
        if fd == 1 and stdout_gone:
            continue
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BrokenPipeError:
                if fd == 1:
                    stdout_gone = True
                break
            except InterruptedError:
                continue
            except OSError as exc:
                if fd != 1:
                    break
                os.write(2, f"rundeps: error: cannot continue: {exc.strerror or exc}\n".encode())
                return 2
            view = view[n:]
    return code


# -- recording --------------------------------------------------------------------


def use_cache(cache_dir: Optional[str]) -> None:
    """The commands say which cache folder the run uses (None: no cache, so
    no record)."""
    if _RECORDER is not None:
        _RECORDER.cache = os.path.abspath(cache_dir) if cache_dir else ""


def forbid(reason: str) -> None:
    """This run's result depends on more than its files: it is not recorded."""
    if _RECORDER is not None:
        _RECORDER.tainted = reason


class Recorder:
    """What a full run of the console script looked at, and the record it leaves."""

    def __init__(self, argv: List[str], key: str):
        self.argv = list(argv)
        self.key = key
        self.guess = _cache_dir(argv)
        self.cache: Optional[str] = None
        self.tainted: Optional[str] = None
        self.started = time.time_ns()
        self.cwd = os.getcwd()
        self.paths: Set[str] = set()
        self.opened: Set[str] = set()
        self.folders: Set[str] = set()
        self.written: List[str] = []
        self.chunks: List[Tuple[int, bytes]] = []
        self.active = True
        self._saved: Dict[str, object] = {}
        self.listed: Dict[str, Dict[str, object]] = {}
        """Folder -> {name: ``lstat`` result, None for a folder} of each folder
        whose listing through ``os.scandir`` the run read to its end."""
        self._listing: Optional[str] = None

    @classmethod
    def start(cls, argv: List[str]) -> Optional["Recorder"]:
        """A recorder watching this process, when ``argv`` may be recorded."""
        global _RECORDER
        if _command_of(argv) is None or _RECORDER is not None:
            return None
        key = _key(argv)
        if key is None:
            return None
        rec = cls(argv, key)
        rec._watch()
        _RECORDER = rec
        return rec

    # watching

    def _watch(self) -> None:
        sys.addaudithook(self._audit)
        if hasattr(os, "register_at_fork"):  # a forked reader's own reads are the walk's files: not watched
            os.register_at_fork(after_in_child=self._forked)
        for name in ("stat", "lstat", "access", "readlink", "scandir"):
            original = getattr(os, name)
            self._saved[name] = original
            wrapper = self._wrap_scandir(original) if name == "scandir" else self._wrap(original)
            setattr(os, name, wrapper)
            for support in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks,
                            os.supports_effective_ids):
                if original in support:
                    support.add(wrapper)

    def _forked(self) -> None:
        self.active = False

    def _wrap(self, original):
        note = self._note

        def watched(path, *args, **kwargs):
            note(path, kwargs.get("dir_fd"))
            return original(path, *args, **kwargs)

        watched.__name__ = original.__name__
        watched.__doc__ = original.__doc__
        return watched

    def _wrap_scandir(self, original):
        def scandir(*args):
            self._listing = None
            it = original(*args)  # the audit hook names the folder (_listing)
            folder = self._listing
            if folder is None or not self.active or (args and isinstance(args[0], bytes)):
                return it  # (a listing by a bytes path yields bytes names: listed again at the end)
            return _Listing(it, folder, self.listed)

        scandir.__name__ = original.__name__
        scandir.__doc__ = original.__doc__
        return scandir

    def _note(self, path, dir_fd=None) -> None:
        if not self.active or isinstance(path, int):
            return
        try:
            path = os.fsdecode(path)
        except TypeError:
            return
        if dir_fd is not None:
            base = self._fd_path(dir_fd)
            if base is None:
                return
            path = os.path.join(base, path)
        self.paths.add(os.path.join(self.cwd, path))

    def _fd_path(self, fd: int) -> Optional[str]:
        readlink = self._saved.get("readlink", os.readlink)
        try:
            return readlink(f"/proc/self/fd/{fd}")  # type: ignore[operator]
        except OSError:
            self.tainted = "a folder descriptor whose path is unknown"
            return None

    def _audit(self, event: str, args) -> None:
        if event == "open":
            path, mode, flags = args
            if (mode is None and flags & _WALK_MASK == _WALK_FLAGS and path.__class__ is str
                    and path[:1] != "/"):
                return  # the walk's open relative to a folder's descriptor: that folder is listed
            if not self.active or isinstance(path, int) or path is None:
                return
            if isinstance(mode, str):
                writes = any(c in mode for c in "wax+")
            else:
                writes = bool(flags & _WRITE_FLAGS)
            try:
                path = os.path.join(self.cwd, os.fsdecode(path))
            except TypeError:
                return
            if writes:
                self.written.append(path)
            elif flags & _O_DIRECTORY:
                self.folders.add(path)  # (opened to be listed through its descriptor)
            else:
                self.opened.add(path)
        elif event not in _WATCHED or not self.active:
            return
        elif event == "os.listdir" or event == "os.scandir":
            path = args[0]
            if path is None:
                path = "."
            if isinstance(path, int):
                path = self._fd_path(path)
                if path is None:
                    return
            try:
                path = os.path.join(self.cwd, os.fsdecode(path))
            except TypeError:
                return
            self.folders.add(path)
            self._listing = path  # for the listing's entries (see _Listing)
        elif event in _TAINT:
            self.tainted = event
        elif event in _WRITES:
            path = args[0] if args else None
            if isinstance(path, (str, bytes, os.PathLike)):
                self.written.append(os.path.join(self.cwd, os.fsdecode(path)))
            else:
                self.tainted = event

    def stop(self) -> None:
        """Stop watching (the audit hook stays, idle) and put ``os`` back."""
        global _RECORDER
        self.active = False
        for name, original in self._saved.items():
            wrapper = getattr(os, name)
            setattr(os, name, original)
            for support in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks,
                            os.supports_effective_ids):
                support.discard(wrapper)
        self._saved = {}
        if _RECORDER is self:
            _RECORDER = None

    # the record

    def _in_cache(self, path: str) -> bool:
        cache = self.cache
        if not cache:
            return False
        path = os.path.normpath(path)
        return path == cache or path.startswith(cache.rstrip("/") + "/")

    def why_not(self, code: int) -> Optional[str]:
        """Why this run leaves no record (None: it does)."""
        if self.tainted:
            return self.tainted
        if code not in (0, 1):
            return f"exit code {code}"
        if not self.cache:
            return "no cache folder"
        if self.cache != self.guess:
            return "cache folder not read from the arguments"
        for path in self.written:
            if not self._in_cache(path):
                return f"wrote {path}"
        for folder in self.folders:
            if self._in_cache(folder):
                return f"listed {folder}, in the cache folder"  # (a record is written there)
        return None

    def folders_seen(self, known: Optional[Dict[str, Dict[str, object]]] = None) -> list:
        """The paths to check, as :func:`_identities` takes them.

        The paths the run opened or ``stat``-ed are followed when they are
        symlinks; the folders it listed are checked with their times, and
        each of their entries by ``lstat`` (the run saw their names and
        types; what it read through one of them it opened by path, or by name
        in that folder, or ``stat``-ed). A folder whose listing the run read
        to its end through ``os.scandir`` is not listed again: its entries
        are those the run saw, and ``known`` gets the ``lstat`` result each
        was seen with (:class:`_Listing`), folder by folder."""
        cache = (self.cache or "").rstrip("/") + "/"
        by_folder: Dict[str, Dict[str, int]] = {}

        def put(path: str, how: int) -> Optional[Dict[str, int]]:
            if "/." in path or "//" in path:
                path = os.path.normpath(path)
            if cache != "/" and (path + "/").startswith(cache):
                return None
            folder, _, name = path.rstrip("/").rpartition("/")
            if not name:  # the root folder itself
                folder, name = "/", ""
            names = by_folder.setdefault(folder or "/", {})
            if how > names.get(name, -1):
                names[name] = how
            return names

        extra = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
        extra += [sys.executable, sys.argv[0] if sys.argv else None]  # the script, or the zip application
        for path in self.paths | self.opened | {f for f in extra if isinstance(f, str) and f}:
            put(os.path.join(self.cwd, path), FOLLOW)
        listed = self.listed
        for folder in self.folders:
            if put(folder, LISTED) is None:
                continue
            seen = listed.get(folder)
            names: "Iterable[str]"
            if seen is not None:
                names = seen
            else:
                try:
                    names = os.listdir(folder)
                except OSError:
                    continue
            if "/." in folder or "//" in folder:
                folder = os.path.normpath(folder)
            folder = folder.rstrip("/") or "/"
            entries = by_folder.setdefault(folder, {})
            for n in names:
                entries.setdefault(n, ENTRY)
            if seen is not None and known is not None:
                known[folder] = seen
        return [(folder, "\0".join(names), bytes(names.values()))
                for folder, names in sorted(by_folder.items()) if "\0" not in folder
                and not any("\0" in n for n in names)]

    def finish(self, code: int) -> bool:
        """Leave the record of this run (its output is in :attr:`chunks`);
        True when one was written. Never fails the run."""
        self.stop()
        if self.why_not(code) is not None:
            return False
        try:
            known: Dict[str, Dict[str, object]] = {}
            folders = self.folders_seen(known)
            identities = _identities(folders, known)
            if _racy(identities, self.started - RACY_NS):
                return False
            chunks = [(fd, bytes(data)) for fd, data in self.chunks]
            payload = marshal.dumps((FORMAT, self.key, chunks, code, folders, identities))
            data = _MAGIC + zlib.crc32(payload).to_bytes(4, "little") + payload
            path = _record_path(self.cache or "", self.key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.part"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except OSError:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            _prune(os.path.dirname(path))
        except (OSError, ValueError):
            return False
        return True


def _racy(identities: bytes, limit: int) -> bool:
    """Whether a packed identity (:func:`_identities`) changed at ``limit``
    or later (a change in the same clock tick after the run would leave
    the same identity)."""
    values = array("Q", identities)
    return any(limit <= values[i] < (1 << 63) for i in range(4, len(values), 6))


def _prune(folder: str) -> None:
    """Keep the most recently written records: :data:`MAX_RECORDS` at most,
    and :data:`MAX_BYTES` together (the newest is always kept)."""
    try:
        with os.scandir(folder) as it:
            entries = [(st.st_mtime_ns, st.st_size, e.path) for e in it
                       if not e.name.endswith(".part") and e.is_file(follow_symlinks=False)
                       for st in (e.stat(follow_symlinks=False),)]
    except OSError:
        return
    total = 0
    for kept, (_, size, path) in enumerate(sorted(entries, reverse=True)):
        total += size
        if kept and (kept >= MAX_RECORDS or total > MAX_BYTES):
            try:
                os.unlink(path)
            except OSError:
                pass

"""The Python sources whose run-time loads :func:`rundeps.loads.dlopen.find_dlopen`
reads: the ``*.py`` files of host paths (:func:`scan_sources`), of in-root
paths of a root's tree (:func:`scan_tree_sources`; symlinks never followed)
and a wheel's kept sources (:func:`find_wheel_loads`).
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import Iterable, Iterator, List, Optional, Tuple

from ..inputs.pysource import read_source
from .dlopen import MAX_SOURCE_SIZE, DlopenFinding, ProblemCallback, find_dlopen, report_problem

__all__ = ["find_wheel_loads", "iter_py_files", "scan_sources", "scan_tree_sources"]


def iter_py_files(path: str) -> Iterator[str]:
    """``path`` itself if it is a file; else the ``*.py`` files under it, sorted
    (symlinked folders are not followed)."""
    if not os.path.isdir(path):
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                yield os.path.join(dirpath, fn)


def scan_sources(
    paths: Iterable[str],
    *,
    include_dynamic: bool = False,
    literals: bool = True,
    max_size: int = MAX_SOURCE_SIZE,
    on_problem: Optional[ProblemCallback] = None,
) -> List[DlopenFinding]:
    """:func:`find_dlopen` over files (folders: their ``*.py`` files, recursively).

    Unreadable or oversized files are reported through ``on_problem`` and skipped.
    """
    out: List[DlopenFinding] = []
    for top in paths:
        for fn in iter_py_files(top):
            try:
                if not stat.S_ISREG(os.stat(fn).st_mode):
                    continue  # a FIFO, socket or device: never opened
                size = os.path.getsize(fn)
                if size > max_size:
                    report_problem(on_problem, fn, "skipped: larger than %d bytes" % max_size)
                    continue
                data = read_source(fn, max_size)
                if data is None:
                    continue
            except OSError as exc:
                report_problem(on_problem, fn, "skipped: %s" % (exc.strerror or exc))
                continue
            out.extend(
                find_dlopen(
                    data,
                    fn,
                    include_dynamic=include_dynamic,
                    literals=literals,
                    max_size=max_size,
                    on_problem=on_problem,
                )
            )
    return out


def scan_tree_sources(
    paths: Iterable[str],
    root="/",
    *,
    max_size: int = MAX_SOURCE_SIZE,
    on_problem: Optional[ProblemCallback] = None,
) -> List[DlopenFinding]:
    """:func:`find_dlopen` over the ``*.py`` files under in-root ``paths`` of the
    filesystem ``root`` (a host folder, or a root through the root protocol,
    :func:`rundeps.rootfs.root_files`: an image's tree); findings carry
    in-root paths.

    Symlinked files and folders are not followed (they could lead out of the root).
    """
    from ..rootfs import root_files

    files = root_files(root)
    out: List[DlopenFinding] = []
    for top in paths:
        inroot = posixpath.normpath("/" + str(top).lstrip("/"))
        for real, shown in _tree_py_files(files, inroot):
            try:
                data = files.read(real, 0, max_size + 1)
            except OSError as exc:
                report_problem(on_problem, shown, "skipped: %s" % (exc.strerror or exc))
                continue
            if len(data) > max_size:
                report_problem(on_problem, shown, "skipped: larger than %d bytes" % max_size)
                continue
            out.extend(find_dlopen(data, shown, max_size=max_size, on_problem=on_problem))
    return out


def _tree_py_files(files, inroot: str) -> Iterator[Tuple[str, str]]:
    """(in-root real path, path as given) of the regular ``*.py`` files at or
    under ``inroot`` of ``files`` (the root protocol): folders in sorted
    order, a folder's files before its sub-folders (as :func:`os.walk`);
    symlinks (to files or folders), FIFOs, sockets and devices skipped."""
    real = files.resolve(inroot, follow_last=False)
    if real is None or files.resolve(real) != real:
        return  # absent, or a symlink
    if files.is_file(real):
        if inroot.endswith(".py"):
            yield real, inroot
        return
    if not files.is_dir(real):
        return  # a FIFO, socket or device given by name: never opened
    stack = [(real, inroot)]
    while stack:
        folder, shown = stack.pop()
        try:
            names = files.listdir(folder)
        except OSError:
            continue
        subs = []
        for name in names:
            p = folder.rstrip("/") + "/" + name
            kind = _entry_kind(files, p)
            if kind == "file" and name.endswith(".py"):
                yield p, shown.rstrip("/") + "/" + name
            elif kind == "dir":
                subs.append((p, shown.rstrip("/") + "/" + name))
        stack.extend(reversed(subs))


def _entry_kind(files, path: str) -> str:
    """``file``, ``dir``, ``link`` or ``other`` for ``path`` of ``files``
    (the root protocol), its folder an in-root real path: its last part is
    not followed.  A host folder's entry is one ``lstat`` (the folder being
    real, its host path crosses no symlink)."""
    host = files.host_path(path)
    if host is not None:
        try:
            mode = os.lstat(host).st_mode
        except (OSError, ValueError):
            return "other"
        return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
    if files.resolve(path) != path:
        return "link"
    return "file" if files.is_file(path) else "dir" if files.is_dir(path) else "other"


def find_wheel_loads(ws, **kwargs) -> List[DlopenFinding]:
    """:func:`find_dlopen` over a wheel's kept ``.py`` sources
    (:attr:`rundeps.inputs.wheel.WheelScan.py_sources`)."""
    out: List[DlopenFinding] = []
    for path, text in ws.py_sources:
        out.extend(find_dlopen(text, path, **kwargs))
    return out

"""Read a saved container image as an in-memory root file system, extracting nothing.

:func:`open_image` takes one of

* a ``docker save`` archive (a tar with ``manifest.json``, a config JSON and
  layer tars),
* an OCI image layout, as a folder or as a tar of one (``oci-layout``,
  ``index.json``, ``blobs/sha256/...``; index -> manifest -> config + layers,
  nested indexes followed; a tar holding both ``manifest.json`` and an OCI
  layout, as Docker 25+ writes, is read as the OCI layout),
* a flat root-file-system tar (``docker export``), read as one layer,

and returns an :class:`ImageTree`: the layers applied in order, as the OCI
image spec's changeset rules say (``.wh.NAME`` deletes NAME and what is under
it from the lower layers, ``.wh..wh..opq`` drops a folder's lower-layer
contents, a later entry replaces an earlier one, a folder may become a file
and back).  Only the member *headers* are held; file bytes are read from the
layer on request (:meth:`ImageTree.read`, :meth:`ImageTree.read_many`).

Layers are ``tar``, ``tar+gzip`` or ``tar+zstd``, told apart by their magic
bytes whatever the media type says; zstd needs the optional ``zstandard``
module.

Trust.  Every blob is hashed while it is read: OCI blobs against their
descriptor's digest and size, configs against their file name's digest in a
``docker save`` archive, and every layer's uncompressed stream against the
config's ``rootfs.diff_ids``.  Layers are streamed.

Bounds.  Whatever the input, the reader holds member headers only and does
work linear in the input: JSON files are capped at :data:`MAX_JSON` bytes
and :data:`MAX_JSON_DEPTH` levels of nesting; an OCI index tree at
:data:`MAX_INDEX_DEPTH` levels and :data:`MAX_MANIFESTS` descriptors in
all; an image at :data:`MAX_LAYERS` layers and :data:`MAX_MEMBERS` layer
members; member names, in-image paths and symlink targets at
:data:`MAX_PATH` characters; one read of a file at :data:`MAX_READ` bytes.
The image path and every OCI blob must be regular files (an OCI layout a
folder), checked with ``stat`` before anything is opened, and a blob is read
no further than its descriptor's size.  Tar headers are read strictly: a
header with a bad checksum, a non-numeric field, a negative size, a header
cut short, or anything but zero bytes after the end-of-archive block is
damage (:class:`ImageError` naming the layer or archive), never the end of
the archive -- where :mod:`tarfile` alone would stop there silently.  Member names: a leading ``/`` or ``./`` is
dropped (as GNU tar does), a ``..`` part refuses the image.  Symlink targets
are kept as written; :meth:`ImageTree.resolve` follows them inside the image
only, ``..`` stopping at ``/`` as in a chroot.  Parent folders that are
symlinks in a lower layer are followed inside the image when a member is
placed under them (as containerd does).  Nothing named by the image is ever
opened on the host.

Reading bytes, the trade-off.  An uncompressed layer is read in place: the
member's data offset is noted while the headers are read, so a read is one
seek.  A compressed layer cannot seek: each :meth:`ImageTree.read_many` call
decompresses each layer it needs once, up to the last member asked for, and
keeps only the members asked for -- so batch the reads.  No bytes are cached:
memory stays bounded by what the caller asks for.  Blobs are verified when
the image is opened; later reads trust the files not to change meanwhile.

Every problem is one :class:`ImageError` (a one-line message).

This module holds the merged tree; the bounded reading of blobs, tars and
JSON, with its limits, is :mod:`rundeps.inputs.imageblob`, and the formats,
manifests and config :mod:`rundeps.inputs.imagemanifest`.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Dict, List, Optional

from .imageblob import (CHUNK, MAX_HELD, MAX_HOPS, MAX_INDEX_DEPTH, MAX_JSON, MAX_JSON_DEPTH, MAX_LAYERS,
                        MAX_MANIFESTS, MAX_MEMBERS, MAX_PATH, MAX_READ, Guarded, ImageError, ImagePathError, Window,
                        check_blob, check_end, check_layer, check_member, check_read, member_kind, norm_member,
                        open_layer, why)
from .imagemanifest import check_config, open_source, set_diff_ids

__all__ = ["ImageError", "ImagePathError", "ImageEntry", "ImageTree", "open_image", "image_stamp", "MAX_JSON",
           "MAX_JSON_DEPTH", "MAX_HOPS", "MAX_MEMBERS", "MAX_LAYERS", "MAX_MANIFESTS", "MAX_INDEX_DEPTH", "MAX_PATH",
           "MAX_READ"]


@dataclass(eq=False, repr=False)
class ImageEntry:
    """One path of the merged tree.

    ``kind`` is ``"file"``, ``"dir"``, ``"symlink"`` or ``"other"`` (devices,
    fifos); ``target`` a symlink's target as written; ``layer`` the index of
    the layer whose member holds the data and ``member`` that member's name
    (a hard link names its target's member; ``hardlink`` keeps the link's
    own target path) and ``index`` its position in the layer (a name may
    occur twice: the later copy wins).  ``layer`` is ``None`` for a folder only implied by
    its children (:meth:`folder`).
    """

    __slots__ = ("kind", "mode", "size", "target", "layer", "member", "offset", "hardlink", "index")

    kind: str
    mode: int
    size: int
    target: Optional[str]
    layer: Optional[int]
    member: Optional[str]
    offset: Optional[int]
    hardlink: Optional[str]
    index: Optional[int]

    @classmethod
    def folder(cls, mode: int = 0o755, layer: Optional[int] = None, member: Optional[str] = None) -> "ImageEntry":
        """A folder: made by member *member* of layer *layer*, or only implied by its children."""
        return cls("dir", mode, 0, None, layer, member, None, None, None)

    def copy(self) -> "ImageEntry":
        return ImageEntry(self.kind, self.mode, self.size, self.target, self.layer, self.member,
                          self.offset, self.hardlink, self.index)

    def __repr__(self) -> str:
        return (f"ImageEntry({self.kind}, {oct(self.mode)}, size={self.size}, target={self.target!r}, "
                f"layer={self.layer}, member={self.member!r})")


def image_stamp(path) -> tuple:
    """The identity of the files the image at *path* is read from: (device,
    inode, size, mtime_ns) of the archive, or of an OCI layout's
    ``index.json`` and every blob.  An unchanged stamp is trusted to mean
    unchanged bytes, as the file cache trusts a file's (see
    :meth:`ImageTree.snapshot`)."""
    path = os.fspath(path)

    def ident(p):
        st = os.stat(p)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    if not os.path.isdir(path):
        return (os.path.abspath(path), ident(path))
    blobs = os.path.join(path, "blobs", "sha256")
    names = sorted(os.listdir(blobs)) if os.path.isdir(blobs) else []
    return (os.path.abspath(path), ident(os.path.join(path, "index.json")),
            tuple((n, ident(os.path.join(blobs, n))) for n in names))


def open_image(path, platform: Optional[str] = None, visit=None, snapshot=None) -> "ImageTree":
    """Read the image at *path* (see the module docstring) into an :class:`ImageTree`.

    *platform* (``linux/arm64/v8``, ``linux/amd64``...) chooses the image of a
    multi-platform index, and is checked against the config otherwise.
    ``visit(layer, index, path, f, size)``, when given, is called for every
    regular-file member of every layer (removed by a later layer or not)
    while the layers are read, ``f`` a file object of its bytes valid during
    the call: what a reader needs of the files, in the one pass that reads
    the headers (the layer's digest is checked after the pass).
    ``snapshot``: what :meth:`ImageTree.snapshot` gave for the same image
    (same :func:`image_stamp`, same platform): the tree is restored from it,
    no layer is read (nor ``visit`` called); later reads go to the layers.
    """
    kind, source, config, layers = open_source(os.fspath(path), platform)
    try:
        check_config(config)
        if not layers:
            raise ImageError("the image has no layers")
    except ImageError:
        source.close()
        raise
    tree = ImageTree(kind, source, config, layers, os.fsdecode(path), visit)
    try:
        if snapshot is not None:
            tree._restore(snapshot)
        else:
            tree._build()
    except BaseException:
        tree.close()
        raise
    return tree



class ImageTree:
    """The merged root file system of an image (see the module docstring).

    ``kind`` is ``"docker-archive"``, ``"oci-layout"``, ``"oci-archive"`` or
    ``"rootfs-tar"``; ``config`` the image config JSON (``{}`` for a flat
    tar); ``entries`` maps every in-image absolute path (``/`` included) to
    its :class:`ImageEntry`.  Use as a context manager, or :meth:`close`.
    """

    __slots__ = ("kind", "config", "entries", "layers", "name", "_source", "_children", "_visit", "_cursors", "_held",
                 "_recording", "_parents")

    def __init__(self, kind, source, config, layers, name="image", visit=None):
        self.kind, self._source, self.config, self.layers = kind, source, config, layers
        self.name = name  # how messages name the image: the path it was read from
        self._visit = visit
        self._cursors: Dict[int, list] = {}  # layer -> [tar stream, raw file, index of the member it stands after]
        self._held: Dict[tuple, bytes] = {}  # (layer, index) -> whole bytes (see record_reads)
        self._recording = False
        self.entries: Dict[str, ImageEntry] = {"/": ImageEntry.folder()}
        self._children: Dict[str, set] = {"/": set()}
        self._parents: Dict[str, str] = {}  # a member's folder as written -> its real folder (while building)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for i in list(self._cursors):
            self._drop_cursor(i)
        self._source.close()

    def _drop_cursor(self, i):
        cur = self._cursors.pop(i, None)
        if cur is not None:
            cur[1].close()

    # -- building

    def record_reads(self) -> None:
        """From now on, keep what :meth:`read` reads from the start of a file
        (the apk database, RECORDs and path files whole, a program's first
        bytes: at most :data:`MAX_HELD` bytes in all), for :meth:`snapshot`."""
        self._recording = True

    def snapshot(self) -> tuple:
        """The merged tree as plain data (marshal-able) for :func:`open_image`'s
        ``snapshot``: the layers' names and whether each is uncompressed,
        every entry, and the bytes :meth:`record_reads` kept."""
        layers = tuple((layer.name, layer.plain) for layer in self.layers)
        entries = tuple((p, e.kind, e.mode, e.size, e.target, e.layer, e.member, e.offset, e.hardlink, e.index)
                        for p, e in self.entries.items())
        return (layers, entries, tuple(self._held.items()))

    def _restore(self, snapshot) -> None:
        """The tree :meth:`snapshot` described (ImageError when it does not fit this image)."""
        try:
            layers, entries, held = snapshot
            self._held = {tuple(k): bytes(v) for k, v in held}
            if tuple(layer.name for layer in self.layers) != tuple(n for n, _ in layers):
                raise ValueError("other layers")
            for layer, (_, plain) in zip(self.layers, layers):
                layer.plain = bool(plain)
            for p, kind, mode, size, target, li, member, offset, hardlink, index in entries:
                self.entries[p] = ImageEntry(kind, mode, size, target, li, member, offset, hardlink, index)
                if kind == "dir":
                    self._children.setdefault(p, set())
                if p != "/":
                    parent, base = posixpath.split(p)
                    self._children.setdefault(parent, set()).add(base)
        except (TypeError, ValueError) as e:
            raise ImageError(f"a cached reading of {self.name} does not fit it ({e})") from None

    def _build(self):
        set_diff_ids(self.config, self.layers)
        held = 0
        for i, layer in enumerate(self.layers):
            members = self._scan_layer(i, layer, MAX_MEMBERS - held)
            held += len(members)
            self._apply(i, members)
        self._parents = {}

    def _scan_layer(self, i, layer, room):
        """Every member of one layer as (path, info), the layer's digests checked."""
        tar, rawh, tarh, raw, plain = open_layer(self._source, layer)
        where = layer.label
        out = []
        with raw:
            try:
                for n, info in enumerate(tar):
                    if n >= room:
                        raise ImageError(f"the image has more than {MAX_MEMBERS} layer members")
                    path = norm_member(info.name, where)
                    check_member(info, where)
                    out.append((path, n, info))
                    if self._visit is not None and info.isreg():
                        self._visit(i, n, path, tar.extractfile(info), info.size)
                check_end(tar, where)
                tarh.drain()
                rawh.drain()
            except (MemoryError, RecursionError):
                raise
            except ImageError:
                check_blob(layer, rawh)  # a changed blob says so first
                raise
            except Exception as e:  # tarfile, zlib, lzma, zstandard errors alike
                check_blob(layer, rawh)
                raise ImageError(f"{where} is damaged: {why(e)}") from None
        check_layer(layer, rawh, tarh)
        layer.plain = plain
        return out

    def _apply(self, i, members):
        """One layer's changeset: whiteouts against the lower layers first, then its entries."""
        adds = []
        for path, n, info in members:
            base = posixpath.basename(path)
            if base == ".wh..wh..opq":
                d = self._lookup(posixpath.dirname(path))
                if d is not None and self.entries[d].kind == "dir":
                    for c in list(self._children.get(d, ())):
                        self._remove(posixpath.join(d, c))
            elif base.startswith(".wh..wh."):
                continue  # aufs bookkeeping, not part of the tree
            elif base.startswith(".wh."):
                p = self._lookup(posixpath.join(posixpath.dirname(path), base[4:]))
                if p is not None and p != "/":
                    self._remove(p)
            else:
                adds.append((path, n, info))
        for path, n, info in adds:
            self._add(i, path, n, info)

    def _add(self, i, path, n, info):
        layer = self.layers[i]
        if path == "/":
            if info.isdir():
                self.entries["/"] = ImageEntry.folder(info.mode & 0o7777, i, info.name)
            return
        if info.islnk():
            entry = self._hardlink_entry(i, info)
        else:
            kind = member_kind(info)
            offset = info.offset_data if (layer.plain and kind == "file" and not info.issparse()) else None
            entry = ImageEntry(kind, info.mode & 0o7777, info.size if kind == "file" else 0,
                               info.linkname if kind == "symlink" else None, i, info.name, offset, None, n)
        parent = self._make_parents(posixpath.dirname(path), i)
        full = posixpath.join(parent, posixpath.basename(path))
        if len(full) > MAX_PATH:
            raise ImageError(f"{layer.label}: member {info.name[:80]!r}... lands at an in-image path of "
                             f"{len(full)} characters (more than {MAX_PATH})")
        old = self.entries.get(full)
        if old is not None and not (old.kind == "dir" and entry.kind == "dir"):
            self._remove(full)
        self.entries[full] = entry
        self._children.setdefault(parent, set()).add(posixpath.basename(full))
        if entry.kind == "dir":
            self._children.setdefault(full, set())
            self._parents[path] = full

    def _hardlink_entry(self, i, info):
        where = self.layers[i].label
        target = norm_member(info.linkname, where)
        found = self._lookup(target)
        entry = self.entries.get(found) if found is not None else None
        if entry is None:
            raise ImageError(f"{where}: hard link {info.name!r} points at {info.linkname!r}, "
                             "which is not in the image")
        if entry.kind == "dir":
            raise ImageError(f"{where}: hard link {info.name!r} points at the folder {info.linkname!r}")
        e = entry.copy()
        e.mode, e.hardlink = info.mode & 0o7777, target
        return e

    def _make_parents(self, path, i) -> str:
        """The in-image folder *path* names, parents created as needed,
        symlinked parents followed; remembered until something is removed
        (members of one folder resolve it once)."""
        got = self._parents.get(path)
        if got is not None:
            return got
        cur = "/"
        for c in path.split("/"):
            if not c:
                continue
            cand = posixpath.join(cur, c)
            e = self.entries.get(cand)
            if e is not None and e.kind == "symlink":
                r = self.resolve(cand)
                if r is not None and self.entries[r].kind == "dir":
                    cur = r
                    continue
            if e is None or e.kind != "dir":
                if e is not None:
                    self._remove(cand)
                self.entries[cand] = ImageEntry.folder()
                self._children.setdefault(cur, set()).add(c)
                self._children[cand] = set()
            cur = cand
        if len(cur) > MAX_PATH:
            raise ImageError(f"{self.layers[i].label}: a folder lands at an in-image path of {len(cur)} "
                             f"characters (more than {MAX_PATH})")
        self._parents[path] = cur
        return cur

    def _lookup(self, path) -> Optional[str]:
        """*path* with its parent folders resolved, the last part not followed; None when absent."""
        parent, base = posixpath.split(path)
        if not base:
            return "/"
        p = self.resolve(parent)
        if p is None or self.entries[p].kind != "dir":
            return None
        full = posixpath.join(p, base)
        return full if full in self.entries else None

    def _remove(self, path):
        """*path* and everything under it (no recursion: a folder may be thousands deep)."""
        if self.entries.pop(path, None) is None:
            return
        self._parents.clear()
        parent, base = posixpath.split(path)
        self._children.get(parent, set()).discard(base)
        todo = [path]
        while todo:
            p = todo.pop()
            kids = self._children.pop(p, None)
            for c in kids or ():
                child = posixpath.join(p, c)
                if self.entries.pop(child, None) is not None:
                    todo.append(child)

    # -- queries

    def resolve(self, path: str, follow_last: bool = True) -> Optional[str]:
        """The in-image path *path* leads to, symlinks followed inside the image.

        ``..`` stops at ``/``, an absolute target starts again at the image's
        root.  None when a part does not exist, is not a folder where one is
        needed, or after :data:`MAX_HOPS` symlinks (a loop).
        """
        parts = [p for p in reversed(path.split("/")) if p and p != "."]  # a stack: the next part last
        cur = ""  # the real path so far, "" for /
        hops = 0
        while parts:
            c = parts.pop()
            if c == "..":
                cur = cur[:cur.rfind("/")] if cur else cur
                continue
            cand = cur + "/" + c
            e = self.entries.get(cand)
            if e is None:
                return None
            if e.kind == "symlink" and (parts or follow_last):
                hops += 1
                if hops > MAX_HOPS:
                    return None
                target = e.target or ""  # a symlink's, always a string
                if target.startswith("/"):
                    cur = ""
                parts.extend(p for p in reversed(target.split("/")) if p and p != ".")
                continue
            if parts and e.kind != "dir":
                return None
            cur = cand
        return cur or "/"

    def _entry(self, path) -> Optional[ImageEntry]:
        r = self.resolve(path)
        return None if r is None else self.entries.get(r)

    def exists(self, path: str) -> bool:
        return self._entry(path) is not None

    def is_file(self, path: str) -> bool:
        e = self._entry(path)
        return e is not None and e.kind == "file"

    def is_dir(self, path: str) -> bool:
        e = self._entry(path)
        return e is not None and e.kind == "dir"

    def children(self, real_dir: str):
        """The names in the real in-image folder *real_dir* (unsorted; empty when there is none)."""
        return self._children.get(real_dir, ())

    def mode(self, path: str) -> Optional[int]:
        """The permission bits (setuid and setgid included) of *path*, symlinks followed; None if absent."""
        e = self._entry(path)
        return None if e is None else e.mode

    def host_path(self, path: str) -> None:
        """None: nothing of an image is a host file (the root protocol, see
        :class:`rundeps.rootfs.HostFiles`)."""
        return None

    def listdir(self, path: str) -> List[str]:
        """The names in folder *path* (symlinks followed), sorted; :class:`ImagePathError` when not a folder."""
        r = self.resolve(path)
        if r is None or self.entries[r].kind != "dir":
            raise ImagePathError(f"{path} is not a folder in the image")
        return sorted(self._children.get(r, ()))

    def _file(self, path) -> ImageEntry:
        e = self._entry(path)
        if e is None or e.kind != "file":
            raise ImagePathError(f"{path} is not a regular file in the image")
        return e

    def read(self, path: str, offset: int = 0, size: Optional[int] = None) -> bytes:
        """Bytes of regular file *path* (symlinks followed) from *offset*, at most *size*."""
        e = self._file(path)
        offset = max(0, min(offset, e.size))
        n = e.size - offset if size is None else max(0, min(size, e.size - offset))
        check_read(path, n, self.name)
        held = self._held.get((e.layer, e.index))
        if held is not None and offset + n <= len(held):
            return held[offset:offset + n]
        data = self._read_entry(e, offset, n)
        if self._recording and offset == 0 and n <= MAX_HELD - sum(map(len, self._held.values())):
            self._held[(e.layer, e.index)] = data  # the file's first n bytes
        return data

    def _read_entry(self, e, offset: int, n: int) -> bytes:
        if e.offset is not None:
            with self._source.open(self.layers[e.layer].name) as f:
                f.seek(e.offset + offset)
                return f.read(n)
        return self._cursor_read(e, offset, n)

    def _cursor_read(self, e, offset: int, n: int) -> bytes:
        """Bytes of one member of a compressed layer (see :meth:`_member`)."""
        f, _size = self._member(e.layer, e.index)
        while offset > 0:
            offset -= len(f.read(min(offset, CHUNK))) or offset
        return f.read(n)

    def _member(self, i: int, index: int):
        """(file object, size) of member #*index* of compressed layer *i*,
        read on from where the last read of that layer stopped (one cursor
        a layer): readers that go in member order (a walk in name order,
        :meth:`stream_files`) decompress the layer once, not once a file.
        The file object is valid until the layer is read again; a damaged
        stream is an :class:`ImageError` whenever it shows."""
        layer = self.layers[i]
        label = layer.label
        cur = self._cursors.get(i)
        if cur is None or cur[2] >= index:
            self._drop_cursor(i)
            tar, _, _, raw, _ = open_layer(self._source, layer, verify=False)
            cur = self._cursors[i] = [tar, raw, -1]
        tar = cur[0]
        try:
            while True:
                info = tar.next()
                if info is None:
                    raise ImageError(f"{label} no longer holds member #{index}")
                cur[2] += 1
                if cur[2] == index:
                    break
            if not info.isreg():
                raise ImageError(f"{label} no longer holds member #{index}")
            return Guarded(tar.extractfile(info), label), info.size
        except ImageError:
            self._drop_cursor(i)
            raise
        except Exception as exc:  # tarfile, zlib, zstandard errors alike
            self._drop_cursor(i)
            raise ImageError(f"{label} is damaged: {why(exc)}") from None

    def read_many(self, paths) -> Dict[str, bytes]:
        """Whole contents of each regular file in *paths* (symlinks followed), each compressed layer read once."""
        real: Dict[str, List[str]] = {}
        for p in paths:
            self._file(p)  # a regular file, or ImagePathError
            r = self.resolve(p)
            if r is not None:  # always, once _file found it
                real.setdefault(r, []).append(p)
        for r in real:
            check_read(r, self.entries[r].size, self.name)
        out = {}
        for names, f, size in self.stream_files(list(real)):
            data = f.read(size)
            for r in names:
                for p in real[r]:
                    out[p] = data
        return out

    def stream_files(self, paths):
        """Yield ``(names, f, size)`` for the regular files *paths* (in-image
        real paths; absent ones are skipped): ``names`` the paths that are
        this one file (hard links share one), ``f`` a file object to read
        the bytes from, valid until the next item.  Layer by layer in the
        order of their members, each compressed layer decompressed once and
        only up to its last member asked for: memory holds what the caller
        reads, one file at a time."""
        wanted: Dict[int, Dict[int, List[str]]] = {}
        for p in paths:
            e = self.entries.get(p)
            if e is not None and e.kind == "file" and e.layer is not None:
                wanted.setdefault(e.layer, {}).setdefault(e.index, []).append(p)
        for i in sorted(wanted):
            members = wanted[i]
            if self.layers[i].plain:
                yield from self._stream_plain(i, members)
            else:
                yield from self._stream_packed(i, members)

    def _stream_plain(self, i, members):
        def where(kv):
            offset = self.entries[kv[1][0]].offset
            return (offset is None, offset or 0, kv[0])  # sparse members (no offset) last

        by_offset = sorted(members.items(), key=where)
        with self._source.open(self.layers[i].name) as f:
            for _k, names in by_offset:
                e = self.entries[names[0]]
                if e.offset is None:  # a sparse member: read it the slow way
                    yield from self._stream_packed(i, {e.index: names})
                    continue
                f.seek(e.offset)
                yield names, Window(f, e.size), e.size

    def _stream_packed(self, i, members):
        for k in sorted(members):
            f, size = self._member(i, k)
            yield members[k], f, size

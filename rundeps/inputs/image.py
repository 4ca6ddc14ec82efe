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
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
from typing import Dict, List, Optional

from ..errors import RundepsError

__all__ = ["ImageError", "ImagePathError", "ImageEntry", "ImageTree", "open_image", "image_stamp", "MAX_JSON",
           "MAX_JSON_DEPTH", "MAX_HOPS", "MAX_MEMBERS", "MAX_LAYERS", "MAX_MANIFESTS", "MAX_INDEX_DEPTH", "MAX_PATH",
           "MAX_READ"]

MAX_JSON = 4 * 1024 * 1024
"""The largest manifest, index or config JSON read, in bytes."""
MAX_HOPS = 40
"""Symlinks followed in one :meth:`ImageTree.resolve` (the kernel's MAXSYMLINKS)."""
MAX_MEMBERS = 4_000_000
"""Layer members (headers, summed over all layers) held before the image is refused."""
MAX_HELD = 16 * 1024 * 1024
"""The bytes of small files a snapshot keeps (see :meth:`ImageTree.record_reads`)."""
MAX_INDEX_DEPTH = 8
"""Nested OCI indexes followed."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects in a manifest, index or config JSON."""
MAX_MANIFESTS = 256
"""Manifest and index descriptors visited from ``index.json``, nested indexes included."""
MAX_LAYERS = 256
"""Layers of one image (Docker's overlay store stops at 128)."""
MAX_PATH = 4096
"""The longest member name, in-image path or symlink target, in characters (Linux's ``PATH_MAX``)."""
MAX_READ = 64 * 1024 * 1024
"""The most bytes :meth:`ImageTree.read` and :meth:`ImageTree.read_many` give for one file
(an apk database, a RECORD, a source file: a larger one is refused, never held)."""
_ARCHIVE_SCAN = 100_000
"""Members of an outer archive looked at for ``manifest.json``/``index.json``:
past that many it is a flat root-file-system tar (no saved image has so many blobs)."""
_ROOTFS_TOPS = ("bin/", "etc/", "usr/")
_BLOB_NAME = re.compile(r"^(blobs/sha256/[0-9a-f]{64}|[0-9a-f]{64}(\.json|/layer\.tar|/json|/VERSION)|oci-layout|repositories)$")

_HEX = re.compile(r"^[0-9a-f]{64}$")
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")
_CHUNK = 1 << 20
_TAR_BUF = 16384  # tarfile's stream buffer: larger ones copy more per 512-byte header read


class ImageError(RundepsError):
    """An image that cannot be read or is refused (one-line message)."""


class ImagePathError(ImageError, OSError):
    """A path of the image that is not the file or folder asked for: an
    :class:`ImageError`, and an :class:`OSError` as the same miss on a host
    folder would be (see :class:`rundeps.rootfs.HostFiles`)."""


class _HeaderDamage(Exception):
    """A tar header past the first that cannot be read (see :class:`_StrictInfo`)."""


class _StrictInfo(tarfile.TarInfo):
    """A :class:`tarfile.TarInfo` whose damaged header is an error: tarfile
    takes a header with a bad checksum, a non-numeric field or cut short,
    anywhere but at the start, for the end of the archive; read with this
    class, it raises :class:`_HeaderDamage` (which tarfile passes on)."""

    @classmethod
    def fromtarfile(cls, tarfile_):
        try:
            return super().fromtarfile(tarfile_)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:
            if tarfile_.offset == 0:
                raise  # not a tar at all: tarfile's own ReadError
            raise _HeaderDamage(f"{exc} at byte {tarfile_.offset}") from None


def _check_end(tar, label):
    """After the last member of *tar*: only zero bytes may follow the
    end-of-archive block (GNU tar skips to the next header where tarfile
    would stop: a zeroed header in the middle is damage)."""
    f, at = tar.fileobj, tar.offset
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return
        if chunk.count(0) != len(chunk):
            raise ImageError(f"{label} is damaged: data after the end-of-archive block at byte {at}")


def _why(exc) -> str:
    """*exc* as the reason of a one-line message."""
    if isinstance(exc, (tarfile.TarError, _HeaderDamage, EOFError, OSError)):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


class ImageEntry:
    """One path of the merged tree.

    ``kind`` is ``"file"``, ``"dir"``, ``"symlink"`` or ``"other"`` (devices,
    fifos); ``target`` a symlink's target as written; ``layer`` the index of
    the layer whose member holds the data and ``member`` that member's name
    (a hard link names its target's member; ``hardlink`` keeps the link's
    own target path) and ``index`` its position in the layer (a name may
    occur twice: the later copy wins).  ``layer`` is ``None`` for a folder only implied by
    its children.
    """

    __slots__ = ("kind", "mode", "size", "target", "layer", "member", "offset", "hardlink", "index")

    def __init__(self, kind, mode, size=0, target=None, layer=None, member=None, offset=None,
                 hardlink=None, index=None):
        self.kind, self.mode, self.size, self.target = kind, mode, size, target
        self.layer, self.member, self.offset, self.hardlink = layer, member, offset, hardlink
        self.index = index

    def copy(self) -> "ImageEntry":
        return ImageEntry(self.kind, self.mode, self.size, self.target, self.layer, self.member,
                          self.offset, self.hardlink, self.index)

    def __repr__(self):
        return (f"ImageEntry({self.kind}, {oct(self.mode)}, size={self.size}, target={self.target!r}, "
                f"layer={self.layer}, member={self.member!r})")


# ---------------------------------------------------------------- blob sources

class _DirSource:
    """Blobs of an OCI layout folder."""

    __slots__ = ("root",)

    def __init__(self, root):
        self.root = root

    def has(self, name) -> bool:
        return os.path.isfile(os.path.join(self.root, name))

    def open(self, name, size=None):
        """The blob *name*, a regular file (stat before it is opened: a FIFO
        or device is refused, never opened), read no further than *size* + 1
        bytes when its descriptor gives *size*."""
        path = os.path.join(self.root, *name.split("/"))
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise ImageError(f"image blob {name} is not a regular file")
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as e:
            raise ImageError(f"image blob {name} cannot be read: {e.strerror or e}") from None
        f = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat
            f.close()
            raise ImageError(f"image blob {name} is not a regular file")
        return f if size is None else _Limited(f, size + 1)

    def close(self):
        pass


class _TarSource:
    """Members of an outer (uncompressed or seekable) tar: a docker-archive or a tarred layout."""

    __slots__ = ("tar", "members")

    def __init__(self, tar, members):
        self.tar, self.members = tar, members

    def has(self, name) -> bool:
        return name in self.members

    def open(self, name, size=None):
        info = self.members.get(name)
        if info is None:
            raise ImageError(f"the image archive has no member {name}")
        try:
            f = self.tar.extractfile(info)
        except (KeyError, tarfile.TarError) as e:
            raise ImageError(f"image member {name} cannot be read: {e}") from None
        if f is None:
            raise ImageError(f"image member {name} is not a file")
        return f

    def close(self):
        self.tar.close()


class _FileSource:
    """A flat root-file-system tar: the file is its only blob."""

    __slots__ = ("path",)

    def __init__(self, path):
        self.path = path

    def has(self, name) -> bool:
        return name == ""

    def open(self, name, size=None):
        return open(self.path, "rb")

    def close(self):
        pass


class _Limited:
    """The first *limit* bytes of file *f*, seekable (an OCI blob read no
    further than its descriptor says)."""

    __slots__ = ("_f", "_limit", "_pos")

    def __init__(self, f, limit):
        self._f, self._limit, self._pos = f, limit, 0

    def read(self, n=-1):
        left = max(0, self._limit - self._pos)
        if n is None or n < 0 or n > left:
            n = left
        data = self._f.read(n) if n else b""
        self._pos += len(data)
        return data

    def seek(self, pos, whence=0):
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += self._limit
        self._pos = max(0, pos)
        self._f.seek(self._pos)
        return self._pos

    def tell(self):
        return self._pos

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Window:
    """At most *size* bytes of *f* from where it stands (a member of an uncompressed layer)."""

    __slots__ = ("_f", "_left")

    def __init__(self, f, size):
        self._f, self._left = f, size

    def read(self, n=-1):
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        return data


class _Guarded:
    """A member's file object whose read errors (a stream that turns out
    damaged) are one :class:`ImageError`, wherever the caller reads it."""

    __slots__ = ("_f", "_label")

    def __init__(self, f, label):
        self._f, self._label = f, label

    def read(self, n=-1):
        try:
            return self._f.read(n)
        except Exception as exc:  # tarfile, zlib, zstandard errors alike
            raise ImageError(f"{self._label} is damaged: {_why(exc)}") from None


class _Layer:
    """One layer: its blob name, digest, size and diff_id when known;
    ``label`` how messages name it."""

    __slots__ = ("name", "digest", "size", "diff_id", "plain", "label")

    def __init__(self, name, digest=None, size=None, diff_id=None, label=None):
        self.name, self.digest, self.size, self.diff_id = name, digest, size, diff_id
        self.plain = False
        self.label = label or f"layer {name}"


#: Reads past a stream's end in a row after which the reader is taken to
#: be skipping data that is not there: tarfile skips a member's data by
#: reading, never checking for the end, so a header claiming 2**90 bytes
#: would read nothing forever.
_MAX_EMPTY_READS = 64


class _Hashing:
    """A read-only stream that hashes and counts what passes through; with
    ``guard`` (the tar stream a reader walks, not a compressed blob, which
    a decompressor may read past its end while it drains), it refuses to be
    read on and on past its end (:data:`_MAX_EMPTY_READS`)."""

    __slots__ = ("f", "h", "n", "empty", "guard")

    def __init__(self, f, guard=False):
        self.f, self.h, self.n, self.empty, self.guard = f, hashlib.sha256(), 0, 0, guard

    def read(self, n=-1):
        b = self.f.read(n)
        if b or n == 0:
            self.empty = 0
        elif self.guard:
            self.empty += 1
            if self.empty > _MAX_EMPTY_READS:
                raise EOFError("it ends inside a member (a header claims more bytes than the layer holds)")
        self.h.update(b)
        self.n += len(b)
        return b

    def drain(self):
        while self.read(_CHUNK):
            pass


def _norm_member(name: str, where: str) -> str:
    if len(name) > MAX_PATH:
        raise ImageError(f"{where}: a member name of {len(name)} characters (more than {MAX_PATH})")
    if "\x00" in name:
        raise ImageError(f"{where}: member name {name!r} holds a NUL byte")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"{where}: member {name!r} has a '..' part that would leave the image")
    return "/" + "/".join(parts)


def _read_json(source, name, digest=None, size=None):
    import json
    with source.open(name) as f:
        data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise ImageError(f"image file {name} is larger than {MAX_JSON} bytes")
    if digest is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            raise ImageError(f"image blob {name}: digest mismatch (sha256:{got}, expected sha256:{digest})")
    if size is not None and len(data) != size:
        raise ImageError(f"image blob {name}: {len(data)} bytes, the descriptor says {size}")
    try:
        text = data.decode("utf-8")
        depth = _json_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise ImageError(f"image file {name} nests JSON {depth} levels deep (more than {MAX_JSON_DEPTH})")
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ImageError(f"image file {name} is not JSON: {type(e).__name__ if isinstance(e, RecursionError) else e}") from None
    return value


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON *text* (strings
    skipped), counted before the parser recurses into it."""
    brackets = _JSON_NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for c in brackets:
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        else:
            depth -= 1
    return deepest


def _digest_hex(desc, where) -> str:
    d = desc.get("digest") if isinstance(desc, dict) else None
    if not isinstance(d, str) or not d.startswith("sha256:") or not _HEX.match(d[7:]):
        raise ImageError(f"{where}: descriptor digest {d!r} is not a sha256 digest")
    return d[7:]


def _desc_size(desc, where):
    s = desc.get("size")
    if s is None:
        return None
    if not isinstance(s, int) or isinstance(s, bool) or s < 0:
        raise ImageError(f"{where}: descriptor size {s!r} is not a byte count")
    return s


# ---------------------------------------------------------------- platforms

def _parse_platform(text: str):
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError(f"platform {text!r} is not os/architecture[/variant] (e.g. linux/arm64/v8)")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _platform_text(p) -> str:
    os_, arch, var = p
    return f"{os_}/{arch}/{var}" if var else f"{os_}/{arch}"


def _platform_of(obj):
    if not isinstance(obj, dict):
        return None
    os_, arch, var = obj.get("os"), obj.get("architecture"), obj.get("variant")
    if not isinstance(os_, str) or not isinstance(arch, str):
        return None
    return os_, arch, var if isinstance(var, str) and var else None


def _platform_matches(want, have) -> bool:
    if have is None or want[0] != have[0] or want[1] != have[1]:
        return False
    if want[2] is None:
        return True
    hv = have[2] or ("v8" if have[1] == "arm64" else None)
    return want[2] == hv


# ---------------------------------------------------------------- formats

def _oci_candidates(source, index, where, depth, inherited=None, seen=None):
    """Every image manifest descriptor reachable from an index: (descriptor,
    platform); ``seen`` counts the descriptors visited (at most :data:`MAX_MANIFESTS`)."""
    if depth > MAX_INDEX_DEPTH:
        raise ImageError(f"{where}: indexes nested more than {MAX_INDEX_DEPTH} deep")
    seen = [0] if seen is None else seen
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise ImageError(f"{where}: no 'manifests' list")
    out = []
    for m in manifests:
        seen[0] += 1
        if seen[0] > MAX_MANIFESTS:
            raise ImageError(f"{where}: the index names more than {MAX_MANIFESTS} manifests")
        if not isinstance(m, dict):
            raise ImageError(f"{where}: a manifest descriptor is not an object")
        plat = _platform_of(m.get("platform")) or inherited
        if plat is not None and plat[0] == "unknown":
            continue  # an attestation manifest (buildx), no file system
        hexd = _digest_hex(m, where)
        if m.get("mediaType") in _INDEX_TYPES:
            name = "blobs/sha256/" + hexd
            sub = _read_json(source, name, hexd, _desc_size(m, where))
            out.extend(_oci_candidates(source, sub, name, depth + 1, plat, seen))
        else:
            out.append((m, plat))
    return out


def _oci_pick(source, cands, platform):
    """The one manifest to read, by platform; its platform filled from the config when unknown."""
    if not cands:
        raise ImageError("index.json names no image manifest (attestations only, or none)")
    filled = []
    for desc, plat in cands:
        if plat is None:
            man = _oci_manifest(source, desc)
            cfg = man.get("config") if isinstance(man, dict) else None
            if isinstance(cfg, dict):
                c = _read_json(source, "blobs/sha256/" + _digest_hex(cfg, "manifest"), None)
                plat = _platform_of(c)
        filled.append((desc, plat))
    seen = sorted({_platform_text(p) for _, p in filled if p is not None})
    if platform is None:
        digests = {_digest_hex(d, "index") for d, _ in filled}
        if len(digests) > 1 and len(seen) > 1:
            raise ImageError(f"the image has {len(seen)} platforms ({', '.join(seen)}): choose one with --platform")
        return filled[0][0]
    want = _parse_platform(platform)
    for desc, plat in filled:
        if _platform_matches(want, plat):
            return desc
    raise ImageError(f"the image has no platform {platform} (it has: {', '.join(seen) or 'none stated'})")


def _oci_manifest(source, desc):
    hexd = _digest_hex(desc, "index")
    name = "blobs/sha256/" + hexd
    man = _read_json(source, name, hexd, _desc_size(desc, name))
    if not isinstance(man, dict):
        raise ImageError(f"image manifest {name} is not an object")
    return man


def _load_oci(source, platform):
    index = _read_json(source, "index.json")
    desc = _oci_pick(source, _oci_candidates(source, index, "index.json", 0), platform)
    man = _oci_manifest(source, desc)
    where = "blobs/sha256/" + _digest_hex(desc, "index")
    cdesc, ldescs = man.get("config"), man.get("layers")
    if not isinstance(cdesc, dict) or not isinstance(ldescs, list):
        raise ImageError(f"image manifest {where} lacks 'config' or 'layers'")
    chex = _digest_hex(cdesc, where)
    config = _read_json(source, "blobs/sha256/" + chex, chex, _desc_size(cdesc, where))
    _check_layer_count(len(ldescs))
    layers = []
    for d in ldescs:
        if not isinstance(d, dict):
            raise ImageError(f"image manifest {where}: a layer descriptor is not an object")
        h = _digest_hex(d, where)
        layers.append(_Layer("blobs/sha256/" + h, h, _desc_size(d, where)))
    return config, layers


def _load_docker(source, platform):
    top = _read_json(source, "manifest.json")
    if not isinstance(top, list) or not top or not all(isinstance(m, dict) for m in top):
        raise ImageError("manifest.json is not a list of images")
    if len(top) > 1:
        tags = ", ".join(_tags(m.get("RepoTags")) for m in top[:10]) + (", ..." if len(top) > 10 else "")
        raise ImageError(f"the archive holds {len(top)} images ({tags}): save one image only")
    cname, lnames = top[0].get("Config"), top[0].get("Layers")
    if not isinstance(cname, str) or not isinstance(lnames, list) or not all(isinstance(n, str) for n in lnames):
        raise ImageError("manifest.json lacks 'Config' or 'Layers'")
    _check_layer_count(len(lnames))
    cname = _norm_member(cname, "manifest.json")[1:]
    stem = posixpath.basename(cname)
    stem = stem[:-5] if stem.endswith(".json") else stem
    config = _read_json(source, cname, stem if _HEX.match(stem) else None)
    layers = []
    for n in lnames:
        n = _norm_member(n, "manifest.json")[1:]
        base = posixpath.basename(n)
        layers.append(_Layer(n, base if n.startswith("blobs/sha256/") and _HEX.match(base) else None))
    if platform is not None:
        want, have = _parse_platform(platform), _platform_of(config)
        if not _platform_matches(want, have):
            raise ImageError(f"the image is {_platform_text(have) if have else 'of no stated platform'}, "
                             f"not {platform}")
    return config, layers


def _tags(tags) -> str:
    """An image's ``RepoTags`` for a message (whatever JSON they are)."""
    if isinstance(tags, list) and tags and all(isinstance(t, str) for t in tags):
        return ", ".join(tags[:10])
    return "(untagged)"


def _check_layer_count(n):
    if n > MAX_LAYERS:
        raise ImageError(f"the image has {n} layers (more than {MAX_LAYERS})")


def _open_source(path, platform):
    """(kind, source, config, layers) for whatever is at *path*: an OCI
    layout folder, or an archive (a regular file, looked at with ``stat``
    before it is opened)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ImageError(f"{path} cannot be read: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        source = _DirSource(path)
        if not (source.has("oci-layout") and source.has("index.json")):
            raise ImageError(f"{path} is a folder but not an OCI image layout (no oci-layout or index.json)")
        return ("oci-layout",) + (source,) + _load_oci(source, platform)
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{path} is not a saved image (neither a regular file nor a folder)")
    tar, members, rootfs = _read_archive(path)
    source = _TarSource(tar, members)
    try:
        if not rootfs and "oci-layout" in members and "index.json" in members:
            return ("oci-archive", source) + _load_oci(source, platform)
        if not rootfs and "manifest.json" in members:
            return ("docker-archive", source) + _load_docker(source, platform)
        if not rootfs and any(_BLOB_NAME.match(n) for n in members):
            raise ImageError(f"{path} holds image blobs but no manifest.json or index.json: "
                             "a truncated or damaged saved image")
    except BaseException:
        tar.close()
        raise
    tar.close()
    return "rootfs-tar", _FileSource(path), {}, [_Layer("", label=f"{path} (a flat root-file-system tar)")]


def _read_archive(path):
    """(tar, {name: member}, rootfs) of the archive at *path*: its members
    up to the first that says it is a root-file-system tar (``rootfs``;
    its damage shows when it is read as the layer), else all of them, read
    strictly (a damaged header, or data after the end, is an error saying
    what the archive looked like so far)."""
    try:
        tar = tarfile.open(path, "r:*", tarinfo=_StrictInfo)
    except tarfile.ReadError:
        raise ImageError(f"{path} is not a saved image (not a tar archive)") from None
    except Exception as e:  # OSError, a compressed stream that breaks at once
        raise ImageError(f"{path} cannot be read as a tar archive: {_why(e)}") from None
    members = {}
    try:
        for n, info in enumerate(tar):
            name = _norm_member(info.name, path)[1:]
            if n >= _ARCHIVE_SCAN or name.startswith(_ROOTFS_TOPS):
                return tar, {}, True
            members.setdefault(name, info)
        _check_end(tar, path)
    except BaseException as e:
        tar.close()
        if isinstance(e, ImageError) or not isinstance(e, Exception):
            raise
        what = "a saved image" if any(_BLOB_NAME.match(n) or n in ("manifest.json", "index.json") for n in members) \
            else "a tar archive"
        raise ImageError(f"{path} ({what}, {len(members)} members read) is damaged: {_why(e)}") from None
    return tar, members, False


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
    kind, source, config, layers = _open_source(os.fspath(path), platform)
    try:
        _check_config(config)
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


# ---------------------------------------------------------------- layer streams

def _open_layer(source, layer, verify=True):
    """(tar stream, raw hasher, tar hasher, raw file, plain) for one layer
    (without ``verify``, the hashers are the plain streams: a later read).
    The tar is read strictly (:class:`_StrictInfo`); a blob is read no
    further than one byte past its descriptor's size."""
    raw = source.open(layer.name, layer.size)
    label = layer.label
    try:
        magic = raw.read(6)
        raw.seek(0)
    except OSError as e:
        raw.close()
        raise ImageError(f"{label} cannot be read: {e}") from None
    rawh = _Hashing(raw) if verify else raw
    plain = False
    if magic[:2] == b"\x1f\x8b":
        import gzip
        body = gzip.GzipFile(fileobj=rawh, mode="rb")
    elif magic[:4] == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard
        except ImportError:
            raw.close()
            raise ImageError(f"{label} is zstd-compressed: pip install zstandard") from None
        body = zstandard.ZstdDecompressor().stream_reader(rawh)
    elif magic == b"\xfd7zXZ\x00":
        import lzma
        body = lzma.LZMAFile(rawh, "rb")
    else:
        body, plain = rawh, True
        if verify:
            rawh.guard = True  # the blob is the tar stream itself
    tarh = body if plain or not verify else _Hashing(body, guard=True)
    try:
        tar = tarfile.open(fileobj=tarh, mode="r|", bufsize=_TAR_BUF, tarinfo=_StrictInfo)
    except Exception as e:  # tarfile, zlib, lzma, zstandard errors alike
        raw.close()
        raise ImageError(f"{label} is not a tar: {_why(e)}") from None
    return tar, rawh, tarh, raw, plain


def _check_layer(layer, rawh, tarh):
    label = layer.label
    if layer.digest is not None and rawh.h.hexdigest() != layer.digest:
        raise ImageError(f"{label}: digest mismatch (sha256:{rawh.h.hexdigest()}, "
                         f"expected sha256:{layer.digest})")
    if layer.size is not None and rawh.n != layer.size:
        raise ImageError(f"{label}: {rawh.n if rawh.n <= layer.size else 'more'} bytes, "
                         f"the descriptor says {layer.size}")
    if layer.diff_id is not None and tarh.h.hexdigest() != layer.diff_id:
        raise ImageError(f"{label}: diff_id mismatch (sha256:{tarh.h.hexdigest()}, "
                         f"expected sha256:{layer.diff_id})")


def _check_blob(layer, rawh):
    """After damage inside a layer with a known digest: ImageError for a
    digest mismatch when the rest of the blob (read to its end, no further
    than its size) shows one."""
    if layer.digest is None:
        return
    try:
        rawh.f.seek(rawh.n)
        rawh.drain()
    except Exception:  # a blob that cannot be read on: the damage is the message
        return
    if rawh.h.hexdigest() != layer.digest:
        raise ImageError(f"{layer.label}: digest mismatch (sha256:{rawh.h.hexdigest()}, "
                         f"expected sha256:{layer.digest})")


def _check_config(config):
    """ImageError unless *config* is a JSON object whose fields the scan
    reads (``config.Env``, ``Cmd``, ``Entrypoint``: lists of strings;
    ``WorkingDir``: a string; each may be null) have their JSON types."""
    if not isinstance(config, dict):
        raise ImageError("the image config is not a JSON object")
    cfg = config.get("config")
    if cfg is None:
        return
    if not isinstance(cfg, dict):
        raise ImageError("the image config's 'config' is not a JSON object")
    for key in ("Env", "Cmd", "Entrypoint"):
        v = cfg.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(a, str) for a in v)):
            raise ImageError(f"the image config's config.{key} is not a list of strings")
    wd = cfg.get("WorkingDir")
    if wd is not None and not isinstance(wd, str):
        raise ImageError("the image config's config.WorkingDir is not a string")


def _check_member(info, where):
    """ImageError for a member header no tar tool would accept: a negative
    size, a symlink or hard link target longer than :data:`MAX_PATH`."""
    if info.size < 0:
        raise ImageError(f"{where} is damaged: member {info.name!r} has a negative size")
    if len(info.linkname) > MAX_PATH:
        raise ImageError(f"{where}: member {info.name!r} links to a target of {len(info.linkname)} "
                         f"characters (more than {MAX_PATH})")


def _check_read(path, n, image):
    if n > MAX_READ:
        raise ImageError(f"{path} in the image {image} is {n} bytes: more than the {MAX_READ} read at once")


def _kind(info) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    return "other"


def _diff_ids(config, layers):
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if ids is None or not layers or layers[0].name == "":
        return
    if not isinstance(ids, list) or len(ids) != len(layers):
        raise ImageError(f"the image config lists {len(ids) if isinstance(ids, list) else 'no'} "
                         f"diff_ids for {len(layers)} layers")
    for layer, d in zip(layers, ids):
        layer.diff_id = _digest_hex({"digest": d}, "config rootfs.diff_ids")


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
        self.entries: Dict[str, ImageEntry] = {"/": ImageEntry("dir", 0o755)}
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
        _diff_ids(self.config, self.layers)
        held = 0
        for i, layer in enumerate(self.layers):
            members = self._scan_layer(i, layer, MAX_MEMBERS - held)
            held += len(members)
            self._apply(i, members)
        self._parents = {}

    def _scan_layer(self, i, layer, room):
        """Every member of one layer as (path, info), the layer's digests checked."""
        tar, rawh, tarh, raw, plain = _open_layer(self._source, layer)
        where = layer.label
        out = []
        with raw:
            try:
                for n, info in enumerate(tar):
                    if n >= room:
                        raise ImageError(f"the image has more than {MAX_MEMBERS} layer members")
                    path = _norm_member(info.name, where)
                    _check_member(info, where)
                    out.append((path, n, info))
                    if self._visit is not None and info.isreg():
                        self._visit(i, n, path, tar.extractfile(info), info.size)
                _check_end(tar, where)
                tarh.drain()
                rawh.drain()
            except (MemoryError, RecursionError):
                raise
            except ImageError:
                _check_blob(layer, rawh)  # a changed blob says so first
                raise
            except Exception as e:  # tarfile, zlib, lzma, zstandard errors alike
                _check_blob(layer, rawh)
                raise ImageError(f"{where} is damaged: {_why(e)}") from None
        _check_layer(layer, rawh, tarh)
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
                self.entries["/"] = ImageEntry("dir", info.mode & 0o7777, 0, None, i, info.name)
            return
        if info.islnk():
            entry = self._hardlink_entry(i, info)
        else:
            kind = _kind(info)
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
        target = _norm_member(info.linkname, where)
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
                self.entries[cand] = ImageEntry("dir", 0o755, 0, None, None, None)
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
                if e.target.startswith("/"):
                    cur = ""
                parts.extend(p for p in reversed(e.target.split("/")) if p and p != ".")
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
        _check_read(path, n, self.name)
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
            offset -= len(f.read(min(offset, _CHUNK))) or offset
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
            tar, _, _, raw, _ = _open_layer(self._source, layer, verify=False)
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
            return _Guarded(tar.extractfile(info), label), info.size
        except ImageError:
            self._drop_cursor(i)
            raise
        except Exception as exc:  # tarfile, zlib, zstandard errors alike
            self._drop_cursor(i)
            raise ImageError(f"{label} is damaged: {_why(exc)}") from None

    def read_many(self, paths) -> Dict[str, bytes]:
        """Whole contents of each regular file in *paths* (symlinks followed), each compressed layer read once."""
        real: Dict[str, List[str]] = {}
        for p in paths:
            self._file(p)  # a regular file, or ImagePathError
            real.setdefault(self.resolve(p), []).append(p)
        for r in real:
            _check_read(r, self.entries[r].size, self.name)
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
                yield names, _Window(f, e.size), e.size

    def _stream_packed(self, i, members):
        for k in sorted(members):
            f, size = self._member(i, k)
            yield members[k], f, size

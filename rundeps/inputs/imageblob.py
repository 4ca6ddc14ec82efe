"""The bounded reading of a saved image's files: its limits, its errors,
strict tar headers, blob sources, hashed and bounded streams, JSON files and
layer streams.

Every blob is hashed while it is read (:class:`Hashing`), a blob is read no
further than its descriptor's size (:class:`Limited`), and JSON files are
capped in size and nesting (:func:`read_json`).  Tar headers are read
strictly (:class:`StrictInfo`, :func:`check_end`): damage is an
:class:`ImageError`, never a silent end of the archive.  The merged tree
built on these is :class:`rundeps.inputs.image.ImageTree`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import stat
import tarfile

from ..errors import RundepsError

__all__ = ["ImageError", "ImagePathError", "MAX_JSON", "MAX_JSON_DEPTH", "MAX_HOPS", "MAX_MEMBERS", "MAX_HELD",
           "MAX_LAYERS", "MAX_MANIFESTS", "MAX_INDEX_DEPTH", "MAX_PATH", "MAX_READ", "HEX_DIGEST", "CHUNK",
           "StrictInfo", "check_end", "why", "DirSource", "TarSource", "FileSource", "Limited", "Window", "Guarded",
           "Layer", "Hashing", "norm_member", "read_json", "digest_hex", "desc_size", "open_layer", "check_layer",
           "check_blob", "check_member", "check_read", "member_kind"]

MAX_JSON = 4 * 1024 * 1024
"""The largest manifest, index or config JSON read, in bytes."""
MAX_HOPS = 40
"""Symlinks followed in one :meth:`rundeps.inputs.image.ImageTree.resolve` (the kernel's MAXSYMLINKS)."""
MAX_MEMBERS = 4_000_000
"""Layer members (headers, summed over all layers) held before the image is refused."""
MAX_HELD = 16 * 1024 * 1024
"""The bytes of small files a snapshot keeps (see :meth:`rundeps.inputs.image.ImageTree.record_reads`)."""
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
"""The most bytes :meth:`rundeps.inputs.image.ImageTree.read` and :meth:`rundeps.inputs.image.ImageTree.read_many` give for one file
(an apk database, a RECORD, a source file: a larger one is refused, never held)."""
HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
"""A sha256 digest's 64 lower-case hex digits."""
CHUNK = 1 << 20
"""The bytes read at once while draining or skipping through a stream."""
_TAR_BUF = 16384  # tarfile's stream buffer: larger ones copy more per 512-byte header read


class ImageError(RundepsError):
    """An image that cannot be read or is refused (one-line message)."""


class ImagePathError(ImageError, OSError):
    """A path of the image that is not the file or folder asked for: an
    :class:`ImageError`, and an :class:`OSError` as the same miss on a host
    folder would be (see :class:`rundeps.rootfs.HostFiles`)."""


class _HeaderDamage(Exception):
    """A tar header past the first that cannot be read (see :class:`StrictInfo`)."""


class StrictInfo(tarfile.TarInfo):
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


def check_end(tar, label):
    """After the last member of *tar*: only zero bytes may follow the
    end-of-archive block (GNU tar skips to the next header where tarfile
    would stop: a zeroed header in the middle is damage)."""
    f, at = tar.fileobj, tar.offset
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            return
        if chunk.count(0) != len(chunk):
            raise ImageError(f"{label} is damaged: data after the end-of-archive block at byte {at}")


def why(exc) -> str:
    """*exc* as the reason of a one-line message."""
    if isinstance(exc, (tarfile.TarError, _HeaderDamage, EOFError, OSError)):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"



class DirSource:
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
        return f if size is None else Limited(f, size + 1)

    def close(self):
        pass


class TarSource:
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


class FileSource:
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


class Limited:
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


class Window:
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


class Guarded:
    """A member's file object whose read errors (a stream that turns out
    damaged) are one :class:`ImageError`, wherever the caller reads it."""

    __slots__ = ("_f", "_label")

    def __init__(self, f, label):
        self._f, self._label = f, label

    def read(self, n=-1):
        try:
            return self._f.read(n)
        except Exception as exc:  # tarfile, zlib, zstandard errors alike
            raise ImageError(f"{self._label} is damaged: {why(exc)}") from None


class Layer:
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


class Hashing:
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
        while self.read(CHUNK):
            pass


def norm_member(name: str, where: str) -> str:
    """A member name as an absolute in-image path (``/`` and ``.`` parts dropped);
    ImageError for a name too long, with a NUL byte or a ``..`` part."""
    if len(name) > MAX_PATH:
        raise ImageError(f"{where}: a member name of {len(name)} characters (more than {MAX_PATH})")
    if "\x00" in name:
        raise ImageError(f"{where}: member name {name!r} holds a NUL byte")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"{where}: member {name!r} has a '..' part that would leave the image")
    return "/" + "/".join(parts)


def read_json(source, name, digest=None, size=None):
    """The JSON value of blob *name* of *source*, at most :data:`MAX_JSON` bytes
    and :data:`MAX_JSON_DEPTH` levels deep, checked against *digest* and *size* when given."""
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


def digest_hex(desc, where) -> str:
    """The 64 hex digits of descriptor *desc*'s ``sha256:`` digest (ImageError otherwise)."""
    d = desc.get("digest") if isinstance(desc, dict) else None
    if not isinstance(d, str) or not d.startswith("sha256:") or not HEX_DIGEST.match(d[7:]):
        raise ImageError(f"{where}: descriptor digest {d!r} is not a sha256 digest")
    return d[7:]


def desc_size(desc, where):
    """Descriptor *desc*'s ``size``, None when it gives none (ImageError when it is no byte count)."""
    s = desc.get("size")
    if s is None:
        return None
    if not isinstance(s, int) or isinstance(s, bool) or s < 0:
        raise ImageError(f"{where}: descriptor size {s!r} is not a byte count")
    return s




# ---------------------------------------------------------------- layer streams

def open_layer(source, layer, verify=True):
    """(tar stream, raw hasher, tar hasher, raw file, plain) for one layer
    (without ``verify``, the hashers are the plain streams: a later read).
    The tar is read strictly (:class:`StrictInfo`); a blob is read no
    further than one byte past its descriptor's size."""
    raw = source.open(layer.name, layer.size)
    label = layer.label
    try:
        magic = raw.read(6)
        raw.seek(0)
    except OSError as e:
        raw.close()
        raise ImageError(f"{label} cannot be read: {e}") from None
    rawh = Hashing(raw) if verify else raw
    plain = False
    if magic[:2] == b"\x1f\x8b":
        import gzip
        body = gzip.GzipFile(fileobj=rawh, mode="rb")
    elif magic[:4] == b"\x28\xb5\x2f\xfd":
        try:
            zstandard = importlib.import_module("zstandard")  # optional: typed Any whether present or not
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
    tarh = body if plain or not verify else Hashing(body, guard=True)
    try:
        tar = tarfile.open(fileobj=tarh, mode="r|", bufsize=_TAR_BUF, tarinfo=StrictInfo)
    except Exception as e:  # tarfile, zlib, lzma, zstandard errors alike
        raw.close()
        raise ImageError(f"{label} is not a tar: {why(e)}") from None
    return tar, rawh, tarh, raw, plain


def check_layer(layer, rawh, tarh):
    """After a layer was read to its end: ImageError unless its digest, size
    and diff_id (those known) are what was read."""
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


def check_blob(layer, rawh):
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



def check_member(info, where):
    """ImageError for a member header no tar tool would accept: a negative
    size, a symlink or hard link target longer than :data:`MAX_PATH`."""
    if info.size < 0:
        raise ImageError(f"{where} is damaged: member {info.name!r} has a negative size")
    if len(info.linkname) > MAX_PATH:
        raise ImageError(f"{where}: member {info.name!r} links to a target of {len(info.linkname)} "
                         f"characters (more than {MAX_PATH})")


def check_read(path, n, image):
    """ImageError when one read of *path* would give more than :data:`MAX_READ` bytes."""
    if n > MAX_READ:
        raise ImageError(f"{path} in the image {image} is {n} bytes: more than the {MAX_READ} read at once")


def member_kind(info) -> str:
    """``file``, ``dir``, ``symlink`` or ``other`` for a tar member."""
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    return "other"

"""Read and verify a repository index, ``APKINDEX.tar.gz``.

The file is two gzip streams back to back:

1. a tar holding only the signature, ``.SIGN.RSA.<key file name>`` (RSA
   PKCS#1 v1.5 with SHA-1), ``.SIGN.RSA256.<key file name>`` (SHA-256) or
   ``.SIGN.RSA512.<key file name>`` (SHA-512), with the tar's end-of-archive
   blocks cut off;
2. a tar holding ``DESCRIPTION`` and ``APKINDEX``.

The signature covers the *compressed* bytes of everything after the first
stream.  :func:`read_index` finds that boundary (``zlib`` with
``unused_data``), verifies the signature against the trusted keys *before*
it decompresses or parses anything of the signed part, then parses the
package blocks with :func:`rundeps.apk.model.parse_blocks`.  The gzip and
tar reading is :mod:`rundeps.apk.tarread`'s, the trusted keys are
:mod:`rundeps.apk.keys`' (re-exported here).

Everything is bounded (input size, decompressed size, line length) and every
problem becomes a one-line :class:`~rundeps.errors.SourceError`.

Decisions:

* A signature member whose key name is not a plain file name (``/``, ``\\``,
  ``..``, NUL, control characters) is refused outright, even with
  ``allow_untrusted``: such a name is only ever produced on purpose.
* Several signature members: the index is trusted if any of them verifies
  with a trusted key; the hash algorithm the signature carries must be the
  one its member name announces (``rsa.verify`` would also accept MD5).
* An index without any signature stream (one gzip stream holding
  ``APKINDEX``) is "unsigned": refused unless ``allow_untrusted``.
* Anything after the signed stream, a block without ``P:`` (skipped, with a
  warning) and a repeated name-version (later copy dropped, with a warning)
  are handled; a control character in ``DESCRIPTION`` is removed.

The parsed index is an :class:`IndexRepository`: a
:class:`~rundeps.apk.model.Repository` that keeps each package's block text and
builds :class:`~rundeps.apk.model.Package` objects only when asked, so a cached
index loads in a few milliseconds (see :meth:`IndexFile.to_bytes`).
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from ..diagnostics import SILENT, Diagnostics
from ..errors import SourceError
from .keys import (KeySet, bundled_keys_dir, key_digest, key_dirs, keyset_digest, load_bundled_keys, load_keys,
                   trusted_key_set)
from .model import Package, Repository, parse_blocks
from .tarread import gunzip, member_name, tar_members

__all__ = [
    "IndexFile",
    "IndexRepository",
    "KeySet",
    "load_keys",
    "key_dirs",
    "trusted_key_set",
    "bundled_keys_dir",
    "load_bundled_keys",
    "read_index",
    "keyset_digest",
    "MAX_INDEX_BYTES",
    "MAX_DECOMPRESSED",
]

MAX_INDEX_BYTES = 128 * 1024 * 1024
"""Largest ``APKINDEX.tar.gz`` accepted (compressed); edge community is ~3 MiB."""
MAX_DECOMPRESSED = 256 * 1024 * 1024
"""Largest decompressed content accepted (a gzip bomb stops here)."""
MAX_SIGNATURE_STREAM = 1024 * 1024
"""Largest decompressed signature stream (real ones are 1 KiB)."""
MAX_LINE = 1024 * 1024
"""Longest ``APKINDEX`` line accepted (real ones are under 8 KiB)."""
MAX_DESCRIPTION = 200

_KEPT_FIELDS = frozenset("PVADpkioTIL")
"""The fields :func:`rundeps.apk.model.parse_blocks` turns into a Package."""

_BAD_KEY_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")


def _check_key_name(key: str, clean: bool, name: str) -> None:
    if not clean or not key or key in (".", "..") or ".." in key or _BAD_KEY_CHARS.search(key):
        raise SourceError(f"{name}: the index's signature names key {key!r}, which is not a plain file name; refused")


# -- the lazily materialised repository ----------------------------------------


class _LazyIndex(Mapping):
    """``name -> [Package, ...]`` or ``name -> [(Package, version), ...]``,
    built from row numbers on first access."""

    __slots__ = ("_repo", "_rows", "_pairs", "_done")

    def __init__(self, repo: "IndexRepository", rows: Dict[str, list], pairs: bool):
        self._repo = repo
        self._rows = rows
        self._pairs = pairs
        self._done: Dict[str, list] = {}

    def __getitem__(self, key):
        got = self._done.get(key)
        if got is None:
            rows = self._rows[key]
            pkg = self._repo._pkg
            if self._pairs:
                got = [(pkg(i), v) for i, v in rows]
            else:
                got = [pkg(i) for i in rows]
            self._done[key] = got
        return got

    def __contains__(self, key) -> bool:
        return key in self._rows

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


class IndexRepository(Repository):
    """A :class:`Repository` for one index whose packages are parsed on demand.

    ``packages``, ``by_name`` and ``provides`` behave as in
    :class:`Repository` (the latter two are read-only mappings until
    :meth:`add` is called, which turns everything into plain containers).
    """

    def __init__(
        self,
        blocks: List[str],
        provides_rows: Dict[str, List[Tuple[int, str]]],
        name_rows: Dict[str, List[int]],
        name: str = "",
        description: str = "",
        packages: Optional[List[Optional[Package]]] = None,
    ):
        # Repository.__init__ is not called: it would build everything eagerly.
        self.name = name
        self.installed = False
        self.description = description
        self.owners: Dict[str, Package] = {}
        self._blocks = blocks
        self._pkgs: List[Optional[Package]] = packages if packages is not None else [None] * len(blocks)
        self._plain: Optional[List[Package]] = None
        self._provides_rows = provides_rows
        self._name_rows = name_rows
        self.by_name = _LazyIndex(self, name_rows, pairs=False)  # type: ignore[assignment]
        self.provides = _LazyIndex(self, provides_rows, pairs=True)  # type: ignore[assignment]

    def _pkg(self, i: int) -> Package:
        pkg = self._pkgs[i]
        if pkg is None:
            pkg = next(parse_blocks(self._blocks[i], source=self.name, with_files=False))
            self._pkgs[i] = pkg
        return pkg

    @property
    def packages(self) -> List[Package]:  # type: ignore[override]  # a lazy read-only view of the attribute
        if self._plain is None:
            self._plain = [self._pkg(i) for i in range(len(self._blocks))]
        return self._plain

    def __len__(self) -> int:
        return len(self._blocks) if self._plain is None else len(self._plain)

    def add(self, pkg: Package) -> None:
        if not isinstance(self.by_name, dict):
            self.packages  # materialise
            self.by_name = {k: list(self.by_name[k]) for k in self.by_name}
            self.provides = {k: list(self.provides[k]) for k in self.provides}
        Repository.add(self, pkg)

    def so_provides(self) -> Dict[str, List[Tuple[Package, str]]]:
        return {k[3:]: self.provides[k] for k in self.provides if k.startswith("so:")}

    def so_provide_count(self) -> int:
        """``so:`` provides counted per package (one soname may have several)."""
        return sum(len(v) for k, v in self._provides_rows.items() if k.startswith("so:"))


# -- the result -----------------------------------------------------------------


_CACHE_FORMAT = 3
"""2: blocks keep ``I:`` (installed size); 3: and ``L:`` (licence)."""


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):  # pragma: no cover - only hit by a forged entry
        raise pickle.UnpicklingError("unexpected object in a cached index")


@dataclass
class IndexFile:
    """One read index: what it says about itself, who signed it, its packages."""

    name: str
    """The location it was read from (file path or URL); packages' ``source``."""
    description: str
    signer: Optional[str]
    """The key file name of the signature that verified (else the one found)."""
    algo: Optional[str]
    """``sha1`` or ``sha256`` (the signature's hash), None when unsigned."""
    verified: bool
    repository: IndexRepository
    arch: Optional[str]
    sha256: str = ""
    """sha256 of the exact ``APKINDEX.tar.gz`` bytes."""
    key_sha256: Optional[str] = None
    """sha256 of the PEM of the key that verified it."""
    keyset_sha256: str = ""
    """Digest of the key set it was checked against (see :func:`keyset_digest`)."""
    warnings: List[str] = field(default_factory=list)
    """Problems found while reading (also told to ``diag.warning``)."""
    untrusted_reason: Optional[str] = None
    size: int = 0
    # set by rundeps.apk.fetch
    fetched_at: Optional[float] = None
    """When the bytes were last fetched or revalidated (epoch seconds)."""
    from_cache: bool = False

    @property
    def package_count(self) -> int:
        return len(self.repository)

    @property
    def so_provide_count(self) -> int:
        return self.repository.so_provide_count()

    # Cached form: a checksum, then a pickle of builtins only (no classes, so
    # loading a forged entry cannot run code).
    def to_bytes(self) -> bytes:
        repo = self.repository
        header = {
            "format": _CACHE_FORMAT,
            "description": self.description,
            "signer": self.signer,
            "algo": self.algo,
            "verified": self.verified,
            "arch": self.arch,
            "sha256": self.sha256,
            "key_sha256": self.key_sha256,
            "keyset_sha256": self.keyset_sha256,
            "warnings": list(self.warnings),
            "untrusted_reason": self.untrusted_reason,
            "size": self.size,
        }
        payload = pickle.dumps((header, repo._blocks, repo._provides_rows, repo._name_rows), protocol=4)
        return b"RDIX" + zlib.crc32(payload).to_bytes(4, "big") + payload

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> "IndexFile":
        """Rebuild from :meth:`to_bytes`; ValueError when the bytes are damaged."""
        if not isinstance(data, (bytes, bytearray)) or len(data) < 8 or data[:4] != b"RDIX":
            raise ValueError("not a cached index")
        payload = memoryview(data)[8:]
        if zlib.crc32(payload).to_bytes(4, "big") != bytes(data[4:8]):
            raise ValueError("checksum mismatch")
        try:
            import io

            header, blocks, provides_rows, name_rows = _NoGlobals(io.BytesIO(payload)).load()
        except Exception as e:  # any damage
            raise ValueError(f"unreadable ({e})") from None
        if not isinstance(header, dict) or header.get("format") != _CACHE_FORMAT:
            raise ValueError("old format")
        if not (isinstance(blocks, list) and isinstance(provides_rows, dict) and isinstance(name_rows, dict)):
            raise ValueError("bad structure")
        repo = IndexRepository(blocks, provides_rows, name_rows, name=name, description=header["description"])
        return cls(
            name=name,
            description=header["description"],
            signer=header["signer"],
            algo=header["algo"],
            verified=header["verified"],
            repository=repo,
            arch=header["arch"],
            sha256=header["sha256"],
            key_sha256=header["key_sha256"],
            keyset_sha256=header["keyset_sha256"],
            warnings=list(header["warnings"]),
            untrusted_reason=header["untrusted_reason"],
            size=header["size"],
        )

    def trusted_with(self, keys: Mapping) -> bool:
        """True when this (cached) result may be reused under ``keys``: it
        verified and the very key that verified it is still trusted."""
        if not self.verified or not self.signer or not self.key_sha256:
            return False
        pem = keys.get(self.signer)
        return pem is not None and key_digest(pem) == self.key_sha256


# -- reading --------------------------------------------------------------------


_SIGN_PREFIXES = (
    (".SIGN.RSA512.", "sha512", "SHA-512"),
    (".SIGN.RSA256.", "sha256", "SHA-256"),
    (".SIGN.RSA.", "sha1", "SHA-1"),
)


def _looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in head


def _clean_text(text: str, limit: int) -> str:
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "", text).strip()
    text = " ".join(text.split())
    return text[:limit]


def _verify(
    signatures: List[Tuple[str, str, str, bytes]], signed: bytes, keys: Mapping
) -> Tuple[bool, Optional[str], Optional[str], Optional[str], Optional[str]]:
    """(verified, signer, algo, key digest, reason when not verified)."""
    import rsa

    reasons: List[str] = []
    unknown: List[str] = []
    for key, algo, hash_name, sig in signatures:
        pem = keys.get(key)
        if pem is None:
            unknown.append(key)
            continue
        try:
            pub = rsa.PublicKey.load_pkcs1_openssl_pem(pem)
        except Exception:
            reasons.append(f"trusted key file {key!r} is not an RSA public key")
            continue
        try:
            used = rsa.verify(signed, sig, pub)
        except rsa.VerificationError:
            reasons.append(f"its signature by {key} does not match its content (damaged or tampered with)")
            continue
        except Exception as e:
            reasons.append(f"its signature by {key} cannot be checked ({type(e).__name__})")
            continue
        if used != hash_name:
            reasons.append(f"its signature by {key} uses {used}, not the {hash_name} its name announces")
            continue
        return True, key, algo, key_digest(pem), None
    if reasons:
        return False, signatures[0][0], signatures[0][1], None, reasons[0]
    where = ""
    dirs = getattr(keys, "dirs", ())
    if dirs:
        where = " in " + ", ".join(dirs)
    names = ", ".join(unknown)
    return (
        False,
        signatures[0][0],
        signatures[0][1],
        None,
        f"it is signed with key {names}, which is not among the {len(keys)} trusted keys{where}",
    )


def read_index(
    data: bytes,
    keys: Mapping,
    *,
    name: str,
    allow_untrusted: bool = False,
    diag: Diagnostics = SILENT,
) -> IndexFile:
    """Verify and parse the bytes of an ``APKINDEX.tar.gz``.

    ``keys``: trusted key file name -> PEM (see :func:`load_keys`).  The
    signature is checked before anything of the signed part is decompressed.
    Without a valid signature by a trusted key a :class:`SourceError` is
    raised, unless ``allow_untrusted`` (then ``diag.warning`` is told and
    the index is used with ``verified=False``).  Every warning is also kept
    in :attr:`IndexFile.warnings`.
    """
    warnings: List[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        diag.warning(msg)

    data = bytes(data) if not isinstance(data, bytes) else data
    _check_envelope(data, name)

    # 1. The signature stream, if the first stream starts with a .SIGN member.
    signatures, boundary = _read_signatures(data, name, warn)
    signed = data[boundary:]

    # 2. Trust, before the content is touched.
    if signatures:
        verified, signer, algo, key_sha, reason = _verify(signatures, signed, keys)
    else:
        verified, signer, algo, key_sha, reason = False, None, None, None, "it is not signed"
    if not verified:
        if not allow_untrusted:
            raise SourceError(f"{name}: untrusted index: {reason} (use --allow-untrusted to use it anyway)")
        warn(f"{name}: {reason}; used anyway (--allow-untrusted)")

    # 3. The content.
    description_raw, apkindex = _read_content(signed, name)
    description = _description(description_raw, name, warn)
    repo = _parse_apkindex(apkindex, name, description, warn)
    arches = Counter(p.arch for p in repo._pkgs if p is not None and p.arch and p.arch != "noarch")
    arch = arches.most_common(1)[0][0] if arches else None
    return IndexFile(
        name=name,
        description=description,
        signer=signer,
        algo=algo,
        verified=verified,
        repository=repo,
        arch=arch,
        sha256=hashlib.sha256(data).hexdigest(),
        key_sha256=key_sha,
        keyset_sha256=keyset_digest(keys),
        warnings=warnings,
        untrusted_reason=reason,
        size=len(data),
    )


def _check_envelope(data: bytes, name: str) -> None:
    """Refuse, with a message that says what it is, what is not a gzip
    stream of an acceptable size (an HTML page, nothing, a v3 index)."""
    if len(data) > MAX_INDEX_BYTES:
        raise SourceError(f"{name}: the index is larger than {MAX_INDEX_BYTES // (1024 * 1024)} MiB; refused")
    if data[:2] != b"\x1f\x8b":
        if _looks_like_html(data):
            raise SourceError(f"{name}: got an HTML page, not an APKINDEX.tar.gz")
        if not data:
            raise SourceError(f"{name}: the index is empty")
        if data[:3] == b"ADB":
            raise SourceError(f"{name}: an apk-tools 3 (v3, Packages.adb) index, which rundeps cannot read; "
                              "name the repository's APKINDEX.tar.gz instead")
        raise SourceError(f"{name}: not an APKINDEX.tar.gz (not gzip data)")


def _read_signatures(data: bytes, name: str, warn: Callable[[str], None]
                     ) -> Tuple[List[Tuple[str, str, str, bytes]], int]:
    """The signatures of the first gzip stream when it holds ``.SIGN.``
    members -- (key name, algo, hash name, signature) each -- and where the
    signed part starts (0 when unsigned)."""
    peek, _, _ = gunzip(data, MAX_DECOMPRESSED, "the index", name, first_only=512)
    signatures: List[Tuple[str, str, str, bytes]] = []
    boundary = 0
    if peek[:6] == b".SIGN.":
        first, boundary, _ = gunzip(data, MAX_SIGNATURE_STREAM, "the signature stream", name)
        for raw_name, content in tar_members(first, name, "the signature stream", cut=True):
            member, clean = member_name(raw_name)
            for prefix, algo, hash_name in _SIGN_PREFIXES:
                if member.startswith(prefix):
                    key = member[len(prefix) :]
                    _check_key_name(key, clean, name)
                    signatures.append((key, algo, hash_name, content))
                    break
            else:
                if member.startswith(".SIGN."):
                    warn(f"{name}: signature member {member[:60]!r} uses an unsupported algorithm; ignored")
        if boundary >= len(data):
            raise SourceError(f"{name}: the index holds a signature but no content (truncated?)")
    return signatures, boundary


def _read_content(signed: bytes, name: str) -> Tuple[Optional[bytes], bytes]:
    """The ``DESCRIPTION`` (or None) and ``APKINDEX`` members of the signed
    stream, which must be the last thing in the file."""
    content, used, _ = gunzip(signed, MAX_DECOMPRESSED, "the index content", name)
    rest = signed[used:]
    if rest:
        raise SourceError(f"{name}: {len(rest)} unexpected bytes after the index content; refused")

    description_raw: Optional[bytes] = None
    apkindex: Optional[bytes] = None
    for raw_name, member_data in tar_members(content, name, "the index content", cut=False):
        member, _ = member_name(raw_name)
        if member == "DESCRIPTION":
            if description_raw is not None:
                raise SourceError(f"{name}: the index holds two DESCRIPTION members; refused")
            description_raw = member_data
        elif member == "APKINDEX":
            if apkindex is not None:
                raise SourceError(f"{name}: the index holds two APKINDEX members; refused")
            apkindex = member_data
    if apkindex is None:
        raise SourceError(f"{name}: the archive has no APKINDEX member; not a repository index")
    return description_raw, apkindex


def _description(raw: Optional[bytes], name: str, warn: Callable[[str], None]) -> str:
    """The index's one-line description, cleaned and bounded."""
    if raw is None:
        return ""
    description = _clean_text(raw[:4096].decode("utf-8", "replace"), MAX_DESCRIPTION)
    if len(raw) > 4096 or "\n" in raw.decode("utf-8", "replace").strip():
        warn(f"{name}: the index's DESCRIPTION is not one short line; shortened")
    return description


def _parse_apkindex(raw: bytes, name: str, description: str, warn: Callable[[str], None]) -> IndexRepository:
    longest = max(map(len, raw.split(b"\n")), default=0)
    if longest > MAX_LINE:
        raise SourceError(f"{name}: the APKINDEX has a line of {longest} bytes (limit {MAX_LINE}); refused")
    text = raw.decode("utf-8", "replace")

    # Group the lines into blocks the way parse_blocks does, keeping only the
    # fields a Package uses, so each block can be re-parsed on its own later.
    blocks: List[str] = []
    cur: List[str] = []
    no_name = 0
    has_p = False
    nonempty = False
    for line in text.splitlines():
        if not line:
            if nonempty:
                if has_p:
                    blocks.append("\n".join(cur))
                else:
                    no_name += 1
            cur, has_p, nonempty = [], False, False
            continue
        nonempty = True
        if len(line) >= 2 and line[1] == ":" and line[0] in _KEPT_FIELDS:
            cur.append(line)
            if line[0] == "P" and len(line) > 2:
                has_p = True
    if nonempty:
        if has_p:
            blocks.append("\n".join(cur))
        else:
            no_name += 1
    if no_name:
        warn(f"{name}: {no_name} package block(s) without a P: (name) line skipped")

    kept: List[str] = []
    packages: List[Optional[Package]] = []
    provides_rows: Dict[str, List[Tuple[int, str]]] = {}
    name_rows: Dict[str, List[int]] = {}
    seen = set()
    dups: List[str] = []
    for block in blocks:
        pkg = next(parse_blocks(block, source=name, with_files=False), None)
        if pkg is None:  # pragma: no cover - has_p guarantees a name
            continue
        ident = (pkg.name, pkg.version)
        if ident in seen:
            dups.append(f"{pkg.name}-{pkg.version}")
            continue
        seen.add(ident)
        row = len(kept)
        kept.append(block)
        packages.append(pkg)
        name_rows.setdefault(pkg.name, []).append(row)
        for atom in pkg.provides:
            if not atom.conflict:
                provides_rows.setdefault(atom.name, []).append((row, atom.version))
    if dups:
        more = f" and {len(dups) - 3} more" if len(dups) > 3 else ""
        warn(f"{name}: the index lists {', '.join(dups[:3])}{more} more than once; later copies ignored")
    if not kept and not no_name and text.strip():
        warn(f"{name}: the APKINDEX holds no package blocks")
    return IndexRepository(kept, provides_rows, name_rows, name=name, description=description, packages=packages)

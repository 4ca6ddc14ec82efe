"""Build signed ``APKINDEX.tar.gz`` files for tests, with generated RSA keys.

    key = new_key()                     # (rsa.PrivateKey, PEM of the public key), cached per size
    data = make_index(PACKAGES, key, "test@example.org-1.rsa.pub")
    write_key(keys_dir, "test@example.org-1.rsa.pub", key)

The layout is apk's: a gzip stream with a tar holding ``.SIGN.RSA.<name>``
(or ``.SIGN.RSA256.<name>``) without end-of-archive blocks, then a gzip
stream with a tar holding ``DESCRIPTION`` and ``APKINDEX``; the signature
is PKCS#1 v1.5 over the compressed bytes of the second stream.  Options
produce broken variants (tampered bytes, wrong signature, junk after the
streams, truncation, odd members).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import tarfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import rsa

__all__ = ["new_key", "write_key", "make_index", "tar_member", "package_block", "PACKAGES"]

Key = Tuple[rsa.PrivateKey, bytes]

_KEYS: Dict[Tuple[int, int], Key] = {}


def new_key(bits: int = 1024, slot: int = 0) -> Key:
    """A generated key pair (private key, public key as a PEM "PUBLIC KEY").

    Keys are cached per (bits, slot) so a test run generates few; use another
    ``slot`` for a second, different key.
    """
    got = _KEYS.get((bits, slot))
    if got is None:
        pub, priv = rsa.newkeys(bits)
        got = (priv, _public_pem(pub))
        _KEYS[(bits, slot)] = got
    return got


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _public_pem(pub: rsa.PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM ("PUBLIC KEY"), as Alpine ships its keys."""
    pkcs1 = pub.save_pkcs1("DER")
    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")  # rsaEncryption, NULL
    bitstring = b"\x03" + _der_len(len(pkcs1) + 1) + b"\x00" + pkcs1
    body = algorithm + bitstring
    der = b"\x30" + _der_len(len(body)) + body
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN PUBLIC KEY-----\n" + b"\n".join(lines) + b"\n-----END PUBLIC KEY-----\n"


def write_key(directory: Union[str, os.PathLike], key_name: str, key: Key) -> str:
    """Write the public half of ``key`` as ``directory/key_name``; return the path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, key_name)
    with open(path, "wb") as f:
        f.write(key[1])
    return path


def package_block(name: str, version: str = "1.0-r0", arch: str = "x86_64", **fields: str) -> str:
    """One index block; ``fields`` maps one-letter field names to values
    (``D="so:libc.musl-x86_64.so.1"``, ``p="so:libfoo.so.1=1.0"``)."""
    lines = [
        "C:Q1" + "A" * 27 + "=",
        f"P:{name}",
        f"V:{version}",
        f"A:{arch}",
        "S:1234",
        "I:4096",
        f"T:the {name} package",
        "U:https://example.org",
        "L:MIT",
    ]
    for k, v in fields.items():
        lines.append(f"{k}:{v}")
    return "\n".join(lines) + "\n"


PACKAGES = "\n".join(
    [
        package_block("musl", "1.2.5-r0", p="so:libc.musl-x86_64.so.1=1"),
        package_block("zlib", "1.3.1-r1", D="so:libc.musl-x86_64.so.1", p="so:libz.so.1=1.3.1", o="zlib"),
        package_block(
            "libcrypto3",
            "3.3.2-r0",
            D="so:libc.musl-x86_64.so.1",
            p="so:libcrypto.so.3=3.3.2",
            o="openssl",
            k="10",
        ),
        package_block("busybox", "1.36.1-r29", p="cmd:sh=1.36.1-r29 /bin/sh"),
    ]
)
"""Four packages, three ``so:`` provides."""


def tar_member(name: Union[str, bytes], data: bytes, kind: bytes = tarfile.REGTYPE) -> bytes:
    """One tar header (GNU format, like apk's) plus the padded data."""
    info = tarfile.TarInfo("placeholder")
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 1700000000
    info.type = kind
    raw = info.tobuf(format=tarfile.GNU_FORMAT)
    if isinstance(name, str):
        name = name.encode()
    if len(name) > 100:
        raise ValueError("name too long for a plain header")
    header = bytearray(raw[:512])
    header[0:100] = name.ljust(100, b"\0")
    header[148:156] = b" " * 8
    checksum = sum(header)
    header[148:156] = b"%06o\0 " % checksum
    pad = (-len(data)) % 512
    return bytes(header) + data + b"\0" * pad


def make_index(
    packages_text: str,
    key: Optional[Key],
    key_name: str = "test@example.org-1.rsa.pub",
    algo: str = "sha1",
    *,
    description: Union[str, bytes] = "v3.99.0-test",
    signed: bool = True,
    extra_signatures: Sequence[Tuple[str, bytes]] = (),
    members: Optional[List[Tuple[str, bytes]]] = None,
    end_blocks: bool = True,
    tamper_at: Optional[int] = None,
    signature: Optional[bytes] = None,
    sign_hash: Optional[str] = None,
    trailing: bytes = b"",
    truncate: Optional[int] = None,
) -> bytes:
    """An ``APKINDEX.tar.gz`` for ``packages_text`` signed with ``key``.

    - ``algo``: ``sha1`` (``.SIGN.RSA.``), ``sha256`` (``.SIGN.RSA256.``) or ``sha512`` (``.SIGN.RSA512.``).
    - ``key_name``: written verbatim into the signature member's name.
    - ``signed=False``: no signature stream at all.
    - ``extra_signatures``: further (member name, content) in the signature tar.
    - ``members``: the content tar's members instead of DESCRIPTION+APKINDEX.
    - ``tamper_at``: flip one bit of the signed (second) stream at that
      offset after signing (negative counts from its end).
    - ``signature``: these bytes instead of a real signature.
    - ``sign_hash``: the hash actually used (default: the one ``algo`` names).
    - ``trailing``: bytes appended after both streams (after signing).
    - ``truncate``: keep only the first N bytes of the result.
    """
    if isinstance(description, str):
        description = description.encode()
    if members is None:
        members = [("DESCRIPTION", description), ("APKINDEX", packages_text.encode())]
    content = b"".join(tar_member(n, d) for n, d in members)
    if end_blocks:
        content += b"\0" * 1024
    second = gzip.compress(content, mtime=0)
    out = b""
    if signed:
        hash_name = sign_hash or {"sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}[algo]
        if signature is None:
            assert key is not None, "a key is needed to sign"
            signature = rsa.sign(second, key[0], hash_name)
        prefix = {"sha1": ".SIGN.RSA.", "sha256": ".SIGN.RSA256.", "sha512": ".SIGN.RSA512."}[algo]
        name = prefix.encode() + (key_name.encode() if isinstance(key_name, str) else key_name)
        sig_tar = tar_member(name, signature)
        for extra_name, extra_content in extra_signatures:
            sig_tar += tar_member(extra_name, extra_content)
        out = gzip.compress(sig_tar, mtime=0)
    if tamper_at is not None:
        b = bytearray(second)
        b[tamper_at] ^= 0x01
        second = bytes(b)
    out += second + trailing
    if truncate is not None:
        out = out[:truncate]
    return out


def many_packages(n: int, sonames_per_package: int = 1) -> str:
    """``n`` synthetic packages, each providing sonames ``libpN_j.so.1``."""
    blocks: List[str] = []
    for i in range(n):
        provides = " ".join(f"so:libp{i}_{j}.so.1=1.0" for j in range(sonames_per_package))
        checksum = base64.b64encode(hashlib.sha1(b"%d" % i).digest()).decode()  # incompressible, like real ones
        blocks.append(package_block(f"pkg{i}", "1.0-r0", p=provides, D="so:libc.musl-x86_64.so.1", c=checksum))
    return "\n".join(blocks)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def blocks(texts: Iterable[str]) -> str:
    return "\n".join(texts)

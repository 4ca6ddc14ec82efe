#!/usr/bin/env python3
"""Fuzz ``rundeps scan --image`` with damaged and hostile saved images, one
subprocess a case, and report what breaks the reader's promise.

The promise: whatever the image, ``rundeps scan --image PATH`` exits 0, 1
or 2 within the timeout, with no traceback, at most one ``rundeps: error:``
line on stderr, and a peak RSS under ``--rss-mb`` (300 MB); a case known to
be damage (a tar header with a bad checksum or zeroed in the middle, a
FIFO or a device given as the image or as a blob, a text file) exits 2.

Seeds: a small valid image built from a folder with
``scripts/make_demo_image.py``'s builders (``folder_layer``, ``config``,
``docker_archive``, ``oci_layout``): an apk database, ELF files written
by ``scripts/fuzz_elf.py``'s ``craft_elf`` (no compiler needed), a
symlink, a hard link and a whiteout, in two layers.

Mutators (one per case, chosen at random):

* the outer archive: byte flips, truncation;
* the JSON: a manifest, index or config field given another JSON type, a
  value nested deep, an OCI index fanned out 10 ways 8 levels deep, an
  index naming no usable manifest;
* inside a layer, the digests, sizes and diff_ids recomputed: header fields
  overwritten (checksum fixed or not), a header's checksum broken or the
  header zeroed in the middle, the layer cut short, pax ``size=-1``, a
  sparse apk database expanding to 3 GB, a 2 MB symlink target, 4,000
  members under a symlinked folder, a 3,000-deep folder whited out, hard
  links to nothing, a gzip bomb as an ELF member, a corrupt xz layer;
* a flat ``docker export`` tar with the same layer mutations;
* FIFOs and ``/dev/zero`` as the image or as an OCI blob, text and empty files.

Usage::

    python scripts/fuzz_image.py --cases 60 --seed 1          # a short fixed round
    python scripts/fuzz_image.py --minutes 10 --out /tmp/fi   # findings saved there

Each finding is printed (case number, mutator, what went wrong, stderr's
last lines) and its image kept under ``--out`` when given; ``--case N``
reruns one case of a seed.  The last line is a one-line summary (cases,
seconds, peak RSS, findings).  Exit status: 0 when nothing was found, 1
otherwise.  :func:`run` is what ``tests/test_fuzz_image.py`` calls.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BLOCK = 512
ARCH = "x86_64"
DB = f"""P:musl
V:1.2.5-r0
A:{ARCH}
F:lib
R:ld-musl-{ARCH}.so.1
R:libc.musl-{ARCH}.so.1

P:libfoo
V:1.0-r0
A:{ARCH}
F:usr/lib
R:libfoo.so.1

"""


sys.path.insert(0, str(PROJECT / "tests"))
from scriptmods import fz, ib  # noqa: E402  (the demo image builders, the ELF fuzzer's craft_elf)


# ---------------------------------------------------------------- the seed image

class Seed:
    """The valid image the cases start from: its two uncompressed layers and config."""

    def __init__(self, work: Path):
        root = work / "root"
        libc = f"libc.musl-{ARCH}.so.1"
        files = {
            f"lib/ld-musl-{ARCH}.so.1": fz.craft_elf(needed=(), soname=libc),
            "usr/lib/libfoo.so.1": fz.craft_elf(needed=(libc,), soname="libfoo.so.1"),
            "lib/apk/db/installed": DB.encode(),
            "usr/local/bin/prog": fz.craft_elf(etype=3, needed=("libfoo.so.1", libc),
                                               interp=f"/lib/ld-musl-{ARCH}.so.1"),
            "usr/local/lib/libbar.so": fz.craft_elf(needed=("libfoo.so.1", libc), soname="libbar.so"),
            "usr/local/share/gone.txt": b"removed by the second layer\n",
        }
        for rel, data in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            p.chmod(0o755)
        os.symlink(f"ld-musl-{ARCH}.so.1", root / "lib" / libc)
        os.symlink("prog", root / "usr/local/bin/prog-link")
        os.link(root / "usr/local/lib/libbar.so", root / "usr/local/lib/libbar.so.1")
        self.layers = [
            ib.folder_layer(root, keep=lambda rel: not rel.startswith("usr/local/")),
            ib.folder_layer(root, keep=lambda rel: rel.startswith("usr/local/") and "gone" not in rel,
                            markers=["usr/local/share/.wh.gone.txt"]),
        ]
        self.cfg_fields = {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["prog"], "WorkingDir": "/"}


class Case:
    """One image to run: ``path`` and whether it must exit 2 (``damage``)."""

    def __init__(self, path: Path, damage: bool = False):
        self.path, self.damage = path, damage


def _config(layers, **over) -> bytes:
    return ib.config(layers, **over)


def _write(case_dir: Path, layers: List[bytes], rng: random.Random, cfg: Optional[bytes] = None,
           fmt: Optional[str] = None, compress=None) -> Path:
    """An image of ``layers`` (digests, sizes and diff_ids computed for them)."""
    cfg = cfg if cfg is not None else _config(layers, Env=["PATH=/usr/local/bin:/usr/bin:/bin"], Cmd=["prog"])
    fmt = fmt or rng.choice(["docker", "oci"])
    compress = compress if compress is not None else [rng.random() < 0.5 for _ in layers]
    if fmt == "docker":
        return ib.docker_archive(case_dir / "image.tar", layers, cfg, compress=compress)
    if fmt == "rootfs":
        path = case_dir / "export.tar"
        path.write_bytes(layers[0])
        return path
    return ib.oci_layout(case_dir / "layout", layers, cfg, compress=compress)


# ---------------------------------------------------------------- tar surgery

FIELDS = {"name": (0, 100), "mode": (100, 108), "uid": (108, 116), "size": (124, 136), "mtime": (136, 148),
          "chksum": (148, 156), "type": (156, 157), "linkname": (157, 257), "magic": (257, 263)}


def headers(t: bytes) -> List[int]:
    """Offsets of the headers of tar ``t`` (pax and long-name headers included)."""
    out, off = [], 0
    while off + BLOCK <= len(t) and t[off:off + BLOCK].count(0) != BLOCK:
        out.append(off)
        try:
            size = int(t[off + 124:off + 136].strip(b"\0 ") or b"0", 8)
        except ValueError:
            break
        off += BLOCK + -(-size // BLOCK) * BLOCK
    return out


def fix_checksum(t: bytearray, off: int) -> None:
    t[off + 148:off + 156] = b" " * 8
    t[off + 148:off + 156] = b"%06o\0 " % sum(t[off:off + BLOCK])


def member(name: str, data: bytes = b"", kind=tarfile.REGTYPE, link: str = "", pax=None, size=None) -> bytes:
    """One member (its header, pax headers first when ``pax``, its data) as bytes."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime, info.mode = kind, link, ib.MTIME, 0o755
    info.size = len(data) if size is None else size
    if pax:
        info.pax_headers = dict(pax)
    buf = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return buf + data + b"\0" * (-len(data) % BLOCK)


def body(t: bytes) -> bytes:
    """``t`` without its end-of-archive blocks (members can be appended)."""
    hs = headers(t)
    if not hs:
        return b""
    last = hs[-1]
    size = int(t[last + 124:last + 136].strip(b"\0 ") or b"0", 8)
    return t[:last + BLOCK + -(-size // BLOCK) * BLOCK]


def finish(b: bytes) -> bytes:
    return b + b"\0" * (2 * BLOCK)


# ---------------------------------------------------------------- layer mutators
# Each takes (uncompressed layer, rng) and returns (new layer, damage?).

JUNK = [b"", b"x", b"\xff" * 12, b"99999999999", b"-1", b"77777777777\0", b"\x80" + b"\xff" * 11,
        b"0" * 12, b" " * 12, b"1e9", b"\x00" * 12, b"%%%%"]


def m_field(t, rng):
    t = bytearray(t)
    hs = headers(t)
    off = rng.choice(hs)
    a, b = FIELDS[rng.choice(list(FIELDS))]
    v = rng.choice(JUNK + [bytes(rng.randrange(256) for _ in range(b - a))])
    t[a + off:b + off] = (v + b"\0" * (b - a))[:b - a]
    if rng.random() < 0.7:
        fix_checksum(t, off)
    return bytes(t), False


def m_checksum(t, rng):
    t = bytearray(t)
    hs = headers(t)
    off = rng.choice(hs[:-1] or hs)
    t[off + 148:off + 156] = b"0000000\0" if t[off + 148:off + 156] != b"0000000\0" else b"0000001\0"
    return bytes(t), len(hs) > 1


def m_zero_header(t, rng):
    t = bytearray(t)
    hs = headers(t)
    if len(hs) < 3:
        return bytes(t), False
    off = rng.choice(hs[1:-1])
    t[off:off + BLOCK] = bytes(BLOCK)
    return bytes(t), True


def m_nonnumeric(t, rng):
    t = bytearray(t)
    hs = headers(t)
    off = rng.choice(hs[:-1] or hs)
    a, b = FIELDS[rng.choice(["size", "mode", "mtime", "uid"])]
    t[off + a:off + b] = b"zz" + b"\0" * (b - a - 2)
    fix_checksum(t, off)
    return bytes(t), len(hs) > 1


def m_truncate(t, rng):
    return t[:rng.randrange(len(t))], False


def m_flip(t, rng):
    t = bytearray(t)
    for _ in range(rng.randint(1, 8)):
        t[rng.randrange(len(t))] ^= 1 << rng.randrange(8)
    return bytes(t), False


def m_pax_size(t, rng):
    extra = member("usr/local/bin/pax", b"\x7fELF" + bytes(60), pax={"size": rng.choice(["-1", "x", "1e99",
                                                                                         "99999999999999"])})
    after = member("usr/local/bin/after", fz.craft_elf(needed=("libnothere.so.9",)))
    return finish(body(t) + extra + after), False


def m_sparse_db(t, rng):
    """A GNU sparse (pax 0.1) apk database whose real size is 3 GB."""
    stored = DB.encode()
    pax = {"GNU.sparse.name": "lib/apk/db/installed", "GNU.sparse.size": str(3 << 30),
           "GNU.sparse.numblocks": "1", "GNU.sparse.map": f"{(3 << 30) - len(stored)},{len(stored)}"}
    sparse = member("lib/apk/db/GNUSparseFile.0/installed", stored, pax=pax)
    return finish(body(t) + sparse), False


def m_long_link(t, rng):
    target = "a/" * rng.choice([1 << 20, 3000, 2100])
    return finish(body(t) + member("usr/local/bin/longlink", kind=tarfile.SYMTYPE, link=target)), False


def m_many_under_link(t, rng):
    deep = "/".join(["d"] * 400)
    b = body(t) + member(deep + "/", kind=tarfile.DIRTYPE) + member("usr/local/s", kind=tarfile.SYMTYPE,
                                                                    link="/" + deep)
    for i in range(rng.choice([1000, 4000])):
        b += member(f"usr/local/s/f{i}", b"")
    return finish(b), False


def m_deep(t, rng):
    depth = rng.choice([3000, 1500, 600])
    deep = "/".join([f"{i % 10}" for i in range(depth)])
    b = body(t) + member(deep + "/", kind=tarfile.DIRTYPE) + member(deep + "/f", b"x")
    return finish(b), False


def m_hardlink(t, rng):
    link = rng.choice(["nothere", "usr/local", "../../etc/passwd", "usr/local/bin/prog", ""])
    return finish(body(t) + member("usr/local/bin/hl", kind=tarfile.LNKTYPE, link=link)), False


def m_special(t, rng):
    kind = rng.choice([tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, b"Z", b"7"])
    return finish(body(t) + member("usr/local/bin/odd", kind=kind)), False


LAYER_MUTATORS: Dict[str, Callable] = {
    "field": m_field, "checksum": m_checksum, "zero-header": m_zero_header, "non-numeric": m_nonnumeric,
    "truncate": m_truncate, "flip": m_flip, "pax-size": m_pax_size, "sparse-db": m_sparse_db,
    "long-link": m_long_link, "many-under-link": m_many_under_link, "deep": m_deep, "hardlink": m_hardlink,
    "special": m_special,
}


# ---------------------------------------------------------------- whole-image mutators
# Each takes (seed, case folder, rng, caches) and returns a Case.

def c_layer(seed, d, rng, caches, name=None):
    name = name or rng.choice(sorted(LAYER_MUTATORS))
    layers = list(seed.layers)
    i = rng.randrange(len(layers))
    layers[i], damage = LAYER_MUTATORS[name](layers[i], rng)
    return Case(_write(d, layers, rng), damage), f"layer:{name}"


def c_rootfs(seed, d, rng, caches):
    name = rng.choice(sorted(LAYER_MUTATORS))
    flat = finish(body(seed.layers[0]) + body(seed.layers[1]))
    t, damage = LAYER_MUTATORS[name](flat, rng)
    if rng.random() < 0.3:
        t = gzip.compress(t, mtime=0)
    return Case(_write(d, [t], rng, fmt="rootfs"), damage), f"rootfs:{name}"


def c_whiteout_deep(seed, d, rng, caches):
    deep = "/".join(["w"] * rng.choice([2000, 1200]))
    low = finish(body(seed.layers[0]) + member(deep + "/", kind=tarfile.DIRTYPE) + member(deep + "/f", b"x"))
    high = finish(body(seed.layers[1]) + member(".wh.w", b""))
    return Case(_write(d, [low, high], rng)), "whiteout-deep"


def c_bomb(seed, d, rng, caches):
    """A gzip layer whose ELF member is 400 MB once decompressed."""
    if "bomb" not in caches:
        size = 400 << 20
        head = member("usr/local/bin/bomb", size=size)[:BLOCK]
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [z.compress(body(seed.layers[1]) + head + fz.craft_elf()[:64])]
        zeros = bytes(1 << 20)
        left = size - 64
        while left > 0:
            parts.append(z.compress(zeros[:min(left, len(zeros))]))
            left -= len(zeros)
        parts.append(z.compress(bytes(2 * BLOCK)))
        parts.append(z.flush())
        caches["bomb"] = (b"".join(parts), head)
    blob, _ = caches["bomb"]
    raw = gzip.decompress(blob)  # the diff_id needs the uncompressed bytes' digest
    layers = [seed.layers[0], raw]
    cfg = _config(layers, Cmd=["bomb"])
    del raw
    return Case(_write(d, layers, rng, cfg=cfg, compress=[False, True])), "bomb"


def c_xz(seed, d, rng, caches):
    blob = bytearray(lzma.compress(seed.layers[1]))
    for _ in range(rng.randint(1, 4)):
        blob[rng.randrange(12, len(blob))] ^= 0xFF
    layers = [seed.layers[0], bytes(blob)]
    cfg = _config([seed.layers[0], seed.layers[1]])
    return Case(_write(d, layers, rng, cfg=cfg, compress=[False, False])), "xz"


def _odd(rng, depth=0):
    """A JSON value of a random type (sometimes nested)."""
    pick = rng.randrange(9)
    if pick == 0 or depth > 3:
        return rng.choice([None, True, 0, -1, 1.5, 10 ** 30, "", "x" * rng.randrange(50)])
    if pick == 1:
        return [_odd(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 2:
        return {"k": _odd(rng, depth + 1)}
    return rng.choice([None, 7, "string", [1, 2], {"a": 1}, [None], [["x"]], True, -5])


def _deep(n):
    return json.loads("[" * n + "]" * n) if n < 500 else None


def c_config(seed, d, rng, caches):
    cfg = json.loads(_config(seed.layers, **seed.cfg_fields))
    field = rng.choice(["config", "config.Cmd", "config.Env", "config.Entrypoint", "config.WorkingDir",
                        "rootfs", "rootfs.diff_ids", "architecture", "os", "(whole)", "(deep)"])
    if field == "(whole)":
        raw = json.dumps(_odd(rng)).encode()
    elif field == "(deep)":
        n = rng.choice([100, 3000, 100000])
        raw = (b'{"config": ' + b"[" * n + b"]" * n + b"}")
    else:
        obj, _, key = field.rpartition(".")
        (cfg[obj] if obj else cfg)[key] = _odd(rng)
        raw = json.dumps(cfg).encode()
    return Case(_write(d, seed.layers, rng, cfg=raw)), f"config:{field}"


def c_manifest(seed, d, rng, caches):
    path = _write(d, seed.layers, rng, fmt="docker")
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    out = []
    what = rng.choice(["RepoTags", "Config", "Layers", "two", "top", "deep"])
    for name, data in members:
        if name == "manifest.json":
            top = json.loads(data)
            if what == "two":
                top.append(dict(top[0], RepoTags=_odd(rng)))
                top[0]["RepoTags"] = _odd(rng)
            elif what == "top":
                top = _odd(rng)
            elif what == "deep":
                n = rng.choice([200, 5000, 200000])
                data = b"[" * n + b"]" * n
                out.append((name, data))
                continue
            else:
                top[0][what] = _odd(rng)
            data = json.dumps(top).encode()
        out.append((name, data))
    path.unlink()
    ib._write_tar(path, out)
    return Case(path), f"manifest:{what}"


def c_outer(seed, d, rng, caches):
    path = _write(d, seed.layers, rng, fmt="docker")
    data = bytearray(path.read_bytes())
    how = rng.choice(["flip", "truncate", "truncate-header"])
    if how == "flip":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        data = data[:rng.randrange(len(data))]
    else:
        hs = headers(bytes(data))
        data = data[:rng.choice(hs)]
    path.write_bytes(bytes(data))
    return Case(path), f"outer:{how}"


def _oci_with_index(seed, d, rng, index_for):
    """An OCI layout of the seed whose index.json ``index_for(manifest descriptor, blob)`` makes."""
    folder = _write(d, seed.layers, rng, fmt="oci")
    top = json.loads((folder / "index.json").read_text())

    def blob(data: bytes, media: str) -> dict:
        h = ib.sha(data)
        (folder / "blobs" / "sha256" / h).write_bytes(data)
        return {"mediaType": media, "digest": "sha256:" + h, "size": len(data)}

    (folder / "index.json").write_text(json.dumps(index_for(top["manifests"][0], blob)))
    return folder


def c_index(seed, d, rng, caches):
    what = rng.choice(["fanout", "empty", "attestations", "types", "deep"])
    index_type = "application/vnd.oci.image.index.v1+json"

    def make(desc, blob):
        if what == "fanout":
            cur = {"schemaVersion": 2, "manifests": [desc]}
            for _ in range(8):
                sub = blob(json.dumps(cur).encode(), index_type)
                cur = {"schemaVersion": 2, "manifests": [sub] * 10}
            return cur
        if what == "empty":
            return {"schemaVersion": 2, "manifests": []}
        if what == "attestations":
            return {"schemaVersion": 2, "manifests": [dict(desc, platform={"os": "unknown",
                                                                            "architecture": "unknown"})]}
        if what == "types":
            return {"schemaVersion": 2, "manifests": [dict(desc, **{rng.choice(["digest", "size", "platform",
                                                                                 "mediaType"]): _odd(rng)})]}
        n = rng.choice([100, 3000])
        return {"schemaVersion": 2, "manifests": [desc], "annotations": _deep(n) or json.loads("[" * 400 + "]" * 400)}

    return Case(_oci_with_index(seed, d, rng, make)), f"index:{what}"


def c_blob_special(seed, d, rng, caches):
    folder = _write(d, seed.layers, rng, fmt="oci")
    man = json.loads((folder / "index.json").read_text())["manifests"][0]
    mtext = json.loads((folder / "blobs/sha256" / man["digest"][7:]).read_text())
    victim = rng.choice([mtext["layers"][0], mtext["config"], man])
    p = folder / "blobs/sha256" / victim["digest"][7:]
    p.unlink()
    how = rng.choice(["fifo", "zero", "dir"])
    if how == "fifo":
        os.mkfifo(p)
    elif how == "zero":
        os.symlink("/dev/zero", p)
    else:
        p.mkdir()
    return Case(folder, damage=True), f"blob:{how}"


def c_special_image(seed, d, rng, caches):
    how = rng.choice(["fifo", "zero", "text", "empty", "junk"])
    p = d / "image"
    if how == "fifo":
        os.mkfifo(p)
    elif how == "zero":
        os.symlink("/dev/zero", p)
    elif how == "text":
        p.write_text("hello, this is not an image\n" * 20)
    elif how == "empty":
        p.write_bytes(b"")
    else:
        p.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
    return Case(p, damage=True), f"image:{how}"


IMAGE_MUTATORS = [(c_layer, 8), (c_rootfs, 3), (c_config, 3), (c_manifest, 2), (c_outer, 2), (c_index, 2),
                  (c_blob_special, 1), (c_special_image, 1), (c_whiteout_deep, 1), (c_xz, 1), (c_bomb, 1)]


# ---------------------------------------------------------------- running

def _limits(as_bytes: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
        os.setsid()
    return preexec


def run_case(path: Path, timeout: float, as_bytes: int = 4 << 30):
    """(exit code or None on a hang, stderr, peak RSS in MB, seconds) of ``rundeps scan --image path``."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("RUNDEPS_ROOT", None)
    cmd = [sys.executable, "-m", "rundeps", "scan", "--image", str(path), "--no-cache", "--offline", "--jobs", "1"]
    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                preexec_fn=_limits(as_bytes))
        rc, rss = None, 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                rss = usage.ru_maxrss / 1024
                proc.returncode = rc
                break
            if time.monotonic() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, _, usage = os.wait4(proc.pid, 0)
                rss = usage.ru_maxrss / 1024
                proc.returncode = -9
                break
            time.sleep(0.01)
        seconds = time.monotonic() - start
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return rc, stderr, rss, seconds


def judge(case: Case, rc, stderr: str, rss: float, rss_mb: float) -> List[str]:
    """What breaks the promise (see the module docstring), as short phrases."""
    found = []
    if rc is None:
        found.append("hang")
    elif rc not in (0, 1, 2):
        found.append(f"exit code {rc}")
    if "Traceback (most recent call last)" in stderr:
        found.append("traceback: " + stderr.strip().splitlines()[-1][:200])
    errors = [line for line in stderr.splitlines() if line.startswith("rundeps: error:")]
    if len(errors) > 1:
        found.append(f"{len(errors)} error lines")
    if rc == 2 and not errors and "Traceback" not in stderr:
        found.append("exit 2 without an error line")
    if rss > rss_mb:
        found.append(f"peak RSS {rss:.0f} MB")
    if case.damage and rc is not None and rc != 2:
        found.append(f"damage accepted (exit {rc})")
    return found


def make_case(seed: Seed, d: Path, rng: random.Random, caches: dict):
    funcs = [f for f, w in IMAGE_MUTATORS for _ in range(w)]
    return rng.choice(funcs)(seed, d, rng, caches)


def run(cases: Optional[int] = None, seed: int = 1, minutes: Optional[float] = None, timeout: float = 30.0,
        rss_mb: float = 300.0, out: Optional[Path] = None, only: Optional[int] = None, verbose: bool = False,
        say=print) -> dict:
    """Run the cases (``cases`` of them, or for ``minutes``); returns the
    figures: cases, seconds, peak RSS (MB), findings [(case, mutator, [phrases], stderr tail)]."""
    start = time.monotonic()
    stats = {"cases": 0, "seconds": 0.0, "peak_rss_mb": 0.0, "findings": [], "by_mutator": {}}
    caches: dict = {}
    with tempfile.TemporaryDirectory(prefix="fuzz-image-") as tmp:
        tmp = Path(tmp)
        base = Seed(tmp / "seed")
        n = only if only is not None else 0
        while True:
            if only is not None and n != only:
                break
            if only is None and cases is not None and n >= cases:
                break
            if only is None and cases is None and time.monotonic() - start > (minutes or 1) * 60:
                break
            d = tmp / f"case{n}"
            d.mkdir()
            rng = random.Random(seed * 1_000_003 + n)
            case, name = make_case(base, d, rng, caches)
            rc, stderr, rss, secs = run_case(case.path, timeout)
            stats["cases"] += 1
            stats["peak_rss_mb"] = max(stats["peak_rss_mb"], rss)
            stats["by_mutator"][name.split(":")[0]] = stats["by_mutator"].get(name.split(":")[0], 0) + 1
            found = judge(case, rc, stderr, rss, rss_mb)
            if verbose:
                say(f"case {n} {name}: exit {rc}, {rss:.0f} MB, {secs:.1f}s {stderr.strip().splitlines()[-1:] }")
            if found:
                tail = "\n".join(stderr.strip().splitlines()[-3:])
                stats["findings"].append((n, name, found, tail))
                say(f"FINDING case {n} ({name}): {'; '.join(found)}\n    {tail}")
                if out is not None:
                    keep = out / f"case{n}"
                    shutil.rmtree(keep, ignore_errors=True)
                    shutil.copytree(d, keep, symlinks=True, ignore_dangling_symlinks=True) \
                        if not _has_fifo(d) else keep.mkdir(parents=True)
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    stats["seconds"] = round(time.monotonic() - start, 1)
    return stats


def _has_fifo(d: Path) -> bool:
    import stat as st
    return any(st.S_ISFIFO(p.lstat().st_mode) for p in d.rglob("*"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fuzz rundeps scan --image with damaged and hostile saved images.")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=None, help="run this many cases (default: for --minutes)")
    ap.add_argument("--minutes", type=float, default=None, help="run for this long (default 1 without --cases)")
    ap.add_argument("--case", type=int, default=None, help="run case N of the seed only")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds a case may take")
    ap.add_argument("--rss-mb", type=float, default=300.0, help="peak RSS a case may reach")
    ap.add_argument("--out", type=Path, default=None, help="keep the images of findings here")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line for every case")
    args = ap.parse_args(argv)
    stats = run(args.cases, args.seed, args.minutes, args.timeout, args.rss_mb, args.out, args.case, args.verbose)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "stats.json").write_text(json.dumps(stats, indent=1))
    print(f"fuzz_image: seed {args.seed}, {stats['cases']} cases in {stats['seconds']}s, "
          f"peak RSS {stats['peak_rss_mb']:.0f} MB, {len(stats['findings'])} findings; "
          f"mutators {json.dumps(stats['by_mutator'], sort_keys=True)}")
    return 1 if stats["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())

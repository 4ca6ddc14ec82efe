#!/usr/bin/env python3
"""Saved images made from host folders, for the demo and the tests of
``--image``: layer tars of a folder's files (symlinks, hard links and modes
kept), with whiteouts and opaque markers added by name, written as a
``docker save`` archive or an OCI layout, as Docker and skopeo write them.

Usage: ``python scripts/make_demo_image.py OUT.tar`` builds the demo root
(``scripts/make_demo_root.py``) and saves it as a ``docker save`` archive
of two gzip layers (the system, then ``/usr/local``) whose config runs
``python3`` (``--tkinter``: with ``lib-dynload/_tkinter``, which needs tcl
and tk).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

MTIME = 1700000000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_layer(top: Path, keep=None, markers: Iterable[str] = ()) -> bytes:
    """An uncompressed layer of the files under ``top`` (``keep(relpath)``
    chooses which; folders always come), then empty ``markers`` files
    (``.wh.NAME``, ``.wh..wh..opq``) at their in-image paths. Hard links
    within the layer stay hard links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, full in _walk(top):
            if keep is not None and not os.path.isdir(full) and not keep(rel):
                continue
            info = tar.gettarinfo(str(full), arcname=rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        for name in markers:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            tar.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


def _walk(top: Path) -> List[Tuple[str, Path]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath) / name
            rel = os.path.relpath(full, top)
            if stat.S_ISDIR(os.lstat(full).st_mode):
                rel += "/"
            out.append((rel, full))
    return out


def config(layers: Sequence[bytes], arch: str = "amd64", **cfg) -> bytes:
    """An image config for uncompressed ``layers`` (``cfg``: its ``config`` object: Env, Cmd...)."""
    return json.dumps({"architecture": arch, "os": "linux", "config": cfg,
                       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(t) for t in layers]}}).encode()


def _write_tar(path: Path, members) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            tar.addfile(info, io.BytesIO(data))
    return path


def docker_archive(path: Path, layers: Sequence[bytes], cfg: bytes, compress: Optional[Sequence[bool]] = None) -> Path:
    """A ``docker save`` archive of ``layers`` (each gzipped where ``compress`` says)."""
    compress = compress or [False] * len(layers)
    members, names = [], []
    for t, z in zip(layers, compress):
        blob = gzip.compress(t, mtime=0) if z else t
        names.append(f"{sha(blob)}/layer.tar")
        members.append((names[-1], blob))
    members.append((sha(cfg) + ".json", cfg))
    members.append(("manifest.json", json.dumps([{"Config": sha(cfg) + ".json", "RepoTags": ["t:1"],
                                                  "Layers": names}]).encode()))
    return _write_tar(path, members)


def oci_layout(folder: Path, layers: Sequence[bytes], cfg: bytes, compress: Optional[Sequence[bool]] = None) -> Path:
    """An OCI image layout folder of one image."""
    compress = compress or [True] * len(layers)
    blobs = {}

    def blob(data: bytes, media: str) -> dict:
        blobs[sha(data)] = data
        return {"mediaType": media, "digest": "sha256:" + sha(data), "size": len(data)}

    ldescs = [blob(gzip.compress(t, mtime=0) if z else t,
                   "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if z else "")) for t, z in zip(layers, compress)]
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": blob(cfg, "application/vnd.oci.image.config.v1+json"), "layers": ldescs}
    top = {"schemaVersion": 2, "manifests": [blob(json.dumps(man).encode(),
                                                  "application/vnd.oci.image.manifest.v1+json")]}
    (folder / "blobs" / "sha256").mkdir(parents=True)
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (folder / "index.json").write_text(json.dumps(top))
    for h, data in blobs.items():
        (folder / "blobs" / "sha256" / h).write_bytes(data)
    return folder


def main(argv=None) -> int:
    import argparse
    import importlib.util

    ap = argparse.ArgumentParser(description="Save the demo root as a docker save archive.")
    ap.add_argument("out", help="the archive to write")
    ap.add_argument("--tkinter", action="store_true", help="with lib-dynload/_tkinter (needs tcl and tk)")
    args = ap.parse_args(argv)
    spec = importlib.util.spec_from_file_location("make_demo_root", Path(__file__).with_name("make_demo_root.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    with tempfile.TemporaryDirectory() as tmp:
        root = demo.build_demo_root(Path(tmp) / "root", workdir=Path(tmp) / "work", tkinter=args.tkinter)
        layers = [folder_layer(root, keep=lambda rel: not rel.startswith("usr/local/")),
                  folder_layer(root, keep=lambda rel: rel.startswith("usr/local/"))]
        cfg = config(layers, Env=["PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"],
                     Cmd=["python3"])
        docker_archive(Path(args.out), layers, cfg, compress=[True, True])
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

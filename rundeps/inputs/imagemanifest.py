"""What a saved image is made of: its format (a ``docker save`` archive, an
OCI layout folder or tar, a flat root-file-system tar), the manifest chosen
by platform, its config and its layers (:func:`open_source`), and the
config's checks (:func:`check_config`, :func:`set_diff_ids`).  The blobs are
read through :mod:`rundeps.inputs.imageblob`.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import tarfile

from .imageblob import (MAX_INDEX_DEPTH, MAX_LAYERS, MAX_MANIFESTS, HEX_DIGEST, DirSource, FileSource, ImageError,
                        Layer, StrictInfo, TarSource, check_end, desc_size, digest_hex, norm_member, read_json, why)

__all__ = ["open_source", "check_config", "set_diff_ids"]

_ARCHIVE_SCAN = 100_000
"""Members of an outer archive looked at for ``manifest.json``/``index.json``:
past that many it is a flat root-file-system tar (no saved image has so many blobs)."""
_ROOTFS_TOPS = ("bin/", "etc/", "usr/")
_BLOB_NAME = re.compile(r"^(blobs/sha256/[0-9a-f]{64}|[0-9a-f]{64}(\.json|/layer\.tar|/json|/VERSION)|oci-layout|repositories)$")
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")


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
        hexd = digest_hex(m, where)
        if m.get("mediaType") in _INDEX_TYPES:
            name = "blobs/sha256/" + hexd
            sub = read_json(source, name, hexd, desc_size(m, where))
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
                c = read_json(source, "blobs/sha256/" + digest_hex(cfg, "manifest"), None)
                plat = _platform_of(c)
        filled.append((desc, plat))
    seen = sorted({_platform_text(p) for _, p in filled if p is not None})
    if platform is None:
        digests = {digest_hex(d, "index") for d, _ in filled}
        if len(digests) > 1 and len(seen) > 1:
            raise ImageError(f"the image has {len(seen)} platforms ({', '.join(seen)}): choose one with --platform")
        return filled[0][0]
    want = _parse_platform(platform)
    for desc, plat in filled:
        if _platform_matches(want, plat):
            return desc
    raise ImageError(f"the image has no platform {platform} (it has: {', '.join(seen) or 'none stated'})")


def _oci_manifest(source, desc):
    hexd = digest_hex(desc, "index")
    name = "blobs/sha256/" + hexd
    man = read_json(source, name, hexd, desc_size(desc, name))
    if not isinstance(man, dict):
        raise ImageError(f"image manifest {name} is not an object")
    return man


def _load_oci(source, platform):
    index = read_json(source, "index.json")
    desc = _oci_pick(source, _oci_candidates(source, index, "index.json", 0), platform)
    man = _oci_manifest(source, desc)
    where = "blobs/sha256/" + digest_hex(desc, "index")
    cdesc, ldescs = man.get("config"), man.get("layers")
    if not isinstance(cdesc, dict) or not isinstance(ldescs, list):
        raise ImageError(f"image manifest {where} lacks 'config' or 'layers'")
    chex = digest_hex(cdesc, where)
    config = read_json(source, "blobs/sha256/" + chex, chex, desc_size(cdesc, where))
    _check_layer_count(len(ldescs))
    layers = []
    for d in ldescs:
        if not isinstance(d, dict):
            raise ImageError(f"image manifest {where}: a layer descriptor is not an object")
        h = digest_hex(d, where)
        layers.append(Layer("blobs/sha256/" + h, h, desc_size(d, where)))
    return config, layers


def _load_docker(source, platform):
    top = read_json(source, "manifest.json")
    if not isinstance(top, list) or not top or not all(isinstance(m, dict) for m in top):
        raise ImageError("manifest.json is not a list of images")
    if len(top) > 1:
        tags = ", ".join(_tags(m.get("RepoTags")) for m in top[:10]) + (", ..." if len(top) > 10 else "")
        raise ImageError(f"the archive holds {len(top)} images ({tags}): save one image only")
    cname, lnames = top[0].get("Config"), top[0].get("Layers")
    if not isinstance(cname, str) or not isinstance(lnames, list) or not all(isinstance(n, str) for n in lnames):
        raise ImageError("manifest.json lacks 'Config' or 'Layers'")
    _check_layer_count(len(lnames))
    cname = norm_member(cname, "manifest.json")[1:]
    stem = posixpath.basename(cname)
    stem = stem[:-5] if stem.endswith(".json") else stem
    config = read_json(source, cname, stem if HEX_DIGEST.match(stem) else None)
    layers = []
    for n in lnames:
        n = norm_member(n, "manifest.json")[1:]
        base = posixpath.basename(n)
        layers.append(Layer(n, base if n.startswith("blobs/sha256/") and HEX_DIGEST.match(base) else None))
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


def open_source(path, platform):
    """(kind, source, config, layers) for whatever is at *path*: an OCI
    layout folder, or an archive (a regular file, looked at with ``stat``
    before it is opened)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ImageError(f"{path} cannot be read: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        source = DirSource(path)
        if not (source.has("oci-layout") and source.has("index.json")):
            raise ImageError(f"{path} is a folder but not an OCI image layout (no oci-layout or index.json)")
        return ("oci-layout",) + (source,) + _load_oci(source, platform)
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{path} is not a saved image (neither a regular file nor a folder)")
    tar, members, rootfs = _read_archive(path)
    source = TarSource(tar, members)
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
    return "rootfs-tar", FileSource(path), {}, [Layer("", label=f"{path} (a flat root-file-system tar)")]


def _read_archive(path):
    """(tar, {name: member}, rootfs) of the archive at *path*: its members
    up to the first that says it is a root-file-system tar (``rootfs``;
    its damage shows when it is read as the layer), else all of them, read
    strictly (a damaged header, or data after the end, is an error saying
    what the archive looked like so far)."""
    try:
        tar = tarfile.open(path, "r:*", tarinfo=StrictInfo)
    except tarfile.ReadError:
        raise ImageError(f"{path} is not a saved image (not a tar archive)") from None
    except Exception as e:  # OSError, a compressed stream that breaks at once
        raise ImageError(f"{path} cannot be read as a tar archive: {why(e)}") from None
    members = {}
    try:
        for n, info in enumerate(tar):
            name = norm_member(info.name, path)[1:]
            if n >= _ARCHIVE_SCAN or name.startswith(_ROOTFS_TOPS):
                return tar, {}, True
            members.setdefault(name, info)
        check_end(tar, path)
    except BaseException as e:
        tar.close()
        if isinstance(e, ImageError) or not isinstance(e, Exception):
            raise
        what = "a saved image" if any(_BLOB_NAME.match(n) or n in ("manifest.json", "index.json") for n in members) \
            else "a tar archive"
        raise ImageError(f"{path} ({what}, {len(members)} members read) is damaged: {why(e)}") from None
    return tar, members, False



def check_config(config):
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



def set_diff_ids(config, layers):
    """Give each layer the diff_id the config's ``rootfs.diff_ids`` lists for
    it (ImageError unless it lists one per layer); none for a flat tar or a config without them."""
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if ids is None or not layers or layers[0].name == "":
        return
    if not isinstance(ids, list) or len(ids) != len(layers):
        raise ImageError(f"the image config lists {len(ids) if isinstance(ids, list) else 'no'} "
                         f"diff_ids for {len(layers)} layers")
    for layer, d in zip(layers, ids):
        layer.diff_id = digest_hex({"digest": d}, "config rootfs.diff_ids")

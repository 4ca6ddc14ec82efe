"""rundeps.inputs.image: saved images read as a merged tree, built here from real tar files."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from rundeps.errors import RundepsError
from rundeps.inputs.image import ImageError, open_image

# ---------------------------------------------------------------- builders


def layer_tar(specs) -> bytes:
    """An uncompressed layer tar from (kind, name, arg[, mode]) specs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for spec in specs:
            kind, name, arg = spec[:3]
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if kind == "file":
                info.mode = spec[3] if len(spec) > 3 else 0o644
                info.size = len(arg)
                tar.addfile(info, io.BytesIO(arg))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, arg
            elif kind == "sym":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, arg, 0o777
            elif kind == "link":
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, arg, 0o755
            tar.addfile(info)
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


L1 = [("dir", "etc/", 0o755), ("file", "etc/passwd", b"root:x:0:0\n"), ("file", "etc/hostname", b"box\n"),
      ("dir", "usr/", 0o755), ("dir", "usr/lib/", 0o755),
      ("file", "usr/lib/libfoo.so.1", b"\x7fELF old libfoo", 0o755),
      ("dir", "bin/", 0o755), ("file", "bin/busybox", b"\x7fELF busybox" * 100, 0o755),
      ("sym", "bin/sh", "busybox"),
      ("dir", "opt/", 0o755), ("file", "opt/old.txt", b"old"),
      ("dir", "data/", 0o750), ("file", "data/a.txt", b"a"), ("dir", "data/sub/", 0o755),
      ("file", "data/sub/b.txt", b"b"),
      ("file", "thing", b"a file that becomes a folder"),
      ("dir", "dirfile/", 0o755), ("file", "dirfile/x", b"x"),
      ("dir", "srv/", 0o755), ("dir", "srv/www/", 0o755), ("file", "srv/www/index.html", b"<p>"),
      ("file", "dup", b"first copy")]
L2 = [("file", "etc/.wh.passwd", b""),
      ("dir", "data/", 0o755), ("file", "data/.wh..wh..opq", b""), ("file", "data/new.txt", b"new"),
      ("dir", "thing/", 0o700), ("file", "thing/inner.txt", b"inner"),
      ("file", "dirfile", b"a folder that became a file", 0o600),
      ("sym", "usr/lib/libfoo.so", "libfoo.so.1"), ("sym", "lib", "usr/lib"),
      ("link", "usr/lib/hard.so", "usr/lib/libfoo.so.1"), ("file", "srv/.wh.www", b""),
      ("file", "dup", b"first"), ("file", "dup", b"second, the one kept", 0o640)]
L3 = [("file", "opt/.wh.old.txt", b""), ("file", "opt/keep.txt", b"keep"),
      ("file", "usr/lib/libfoo.so.1", b"\x7fELF new libfoo", 0o755),
      ("sym", "bin/sh2", "/bin/../../../bin/sh"), ("sym", "etc/up", "../../../../etc/hostname"),
      ("dir", "usr/bin/", 0o755), ("file", "usr/bin/x", b"xx" * 5000, 0o755), ("link", "usr/bin/y", "usr/bin/x"),
      ("file", "lib/viaparent", b"placed through the /lib symlink")]

CONFIG = {"architecture": "amd64", "os": "linux",
          "config": {"Env": ["PATH=/usr/bin:/bin"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"]}}


def config_for(tars, **extra):
    c = dict(CONFIG, **extra)
    c["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + sha(t) for t in tars]}
    return json.dumps(c).encode()


def write_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))


def docker_archive(path, layers=(L1, L2, L3), compress=(False, True, False), config=None):
    tars = [layer_tar(s) for s in layers]
    cfg = config if config is not None else config_for(tars)
    members, names = [], []
    for t, z in zip(tars, compress):
        blob = gz(t) if z else t
        name = f"{sha(blob)}/layer.tar"
        names.append(name)
        members.append((name, blob))
    members.append((sha(cfg) + ".json", cfg))
    members.append(("manifest.json", json.dumps([{"Config": sha(cfg) + ".json", "RepoTags": ["t:1"],
                                                  "Layers": names}]).encode()))
    write_tar(path, members)
    return path


class Oci:
    """An OCI layout's blobs, written as a folder or a tar."""

    def __init__(self):
        self.blobs = {}

    def blob(self, data: bytes, media: str, **extra):
        self.blobs[sha(data)] = data
        return dict({"mediaType": media, "digest": "sha256:" + sha(data), "size": len(data)}, **extra)

    def image(self, layers=(L1, L2, L3), compress=(True, False, True), config=None, **extra):
        tars = [layer_tar(s) for s in layers]
        cfg = config if config is not None else config_for(tars)
        ldescs = [self.blob(gz(t) if z else t, "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if z else ""))
                  for t, z in zip(tars, compress)]
        man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": self.blob(cfg, "application/vnd.oci.image.config.v1+json"), "layers": ldescs}
        return self.blob(json.dumps(man).encode(), "application/vnd.oci.image.manifest.v1+json", **extra)

    def index(self, descs):
        return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs}

    def files(self, top):
        out = [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", json.dumps(top).encode())]
        return out + [("blobs/sha256/" + h, d) for h, d in self.blobs.items()]

    def write_dir(self, root, top):
        for name, data in self.files(top):
            p = os.path.join(root, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        return root

    def write_tar(self, path, top):
        write_tar(path, self.files(top))
        return path


def snapshot(tree):
    """What a tree holds: path -> (kind, mode, symlink target or file bytes)."""
    files = sorted(p for p, e in tree.entries.items() if e.kind == "file")
    data = tree.read_many(files)
    out = {}
    for p, e in tree.entries.items():
        out[p] = (e.kind, e.mode, data[p] if e.kind == "file" else e.target)
    return out


# ---------------------------------------------------------------- the merged tree, by hand


EXPECTED_FILES = {
    "/etc/hostname": b"box\n", "/usr/lib/libfoo.so.1": b"\x7fELF new libfoo",
    "/usr/lib/hard.so": b"\x7fELF old libfoo", "/bin/busybox": b"\x7fELF busybox" * 100,
    "/opt/keep.txt": b"keep", "/data/new.txt": b"new", "/thing/inner.txt": b"inner",
    "/dirfile": b"a folder that became a file", "/dup": b"second, the one kept", "/usr/bin/x": b"xx" * 5000, "/usr/bin/y": b"xx" * 5000,
    "/usr/lib/viaparent": b"placed through the /lib symlink"}
EXPECTED_LINKS = {"/bin/sh": "busybox", "/usr/lib/libfoo.so": "libfoo.so.1", "/lib": "usr/lib",
                  "/bin/sh2": "/bin/../../../bin/sh", "/etc/up": "../../../../etc/hostname"}
EXPECTED_DIRS = {"/", "/srv", "/etc", "/usr", "/usr/lib", "/usr/bin", "/bin", "/opt", "/data", "/thing"}


def check_merged(tree):
    files = {p for p, e in tree.entries.items() if e.kind == "file"}
    links = {p: e.target for p, e in tree.entries.items() if e.kind == "symlink"}
    dirs = {p for p, e in tree.entries.items() if e.kind == "dir"}
    assert files == set(EXPECTED_FILES)
    assert links == EXPECTED_LINKS
    assert dirs == EXPECTED_DIRS
    assert tree.read_many(sorted(EXPECTED_FILES)) == EXPECTED_FILES
    # whiteouts, the opaque folder, replacements
    assert not tree.exists("/etc/passwd") and not tree.exists("/opt/old.txt")
    assert tree.listdir("/srv") == [] and not tree.exists("/srv/www/index.html")
    assert tree.listdir("/data") == ["new.txt"] and tree.entries["/data"].mode == 0o755
    assert tree.is_dir("/thing") and tree.entries["/thing"].mode == 0o700
    assert tree.is_file("/dirfile") and tree.entries["/dirfile"].mode == 0o600
    # the symlink chain and the clamped absolute chain
    assert tree.resolve("/lib/libfoo.so") == "/usr/lib/libfoo.so.1"
    assert tree.read("/lib/libfoo.so") == b"\x7fELF new libfoo"
    assert tree.resolve("/bin/sh2") == "/bin/busybox"
    assert tree.resolve("/etc/up") == "/etc/hostname"
    assert tree.resolve("/lib/libfoo.so", follow_last=False) == "/usr/lib/libfoo.so"
    assert tree.listdir("/lib") == ["hard.so", "libfoo.so", "libfoo.so.1", "viaparent"]
    # reads at an offset, in place or from a compressed layer
    assert tree.read("/bin/busybox", 5, 7) == b"busybox"
    assert tree.read("/usr/bin/y", 9999, 100) == b"x"
    assert tree.read("/usr/lib/hard.so", 5) == b"old libfoo"
    assert tree.config["config"]["Entrypoint"] == ["/bin/sh"]


def test_docker_archive_applies_whiteouts_opaque_links_and_replacements(tmp_path):
    with open_image(docker_archive(tmp_path / "img.tar")) as tree:
        assert tree.kind == "docker-archive"
        check_merged(tree)
        assert [layer.plain for layer in tree.layers] == [True, False, True]


def test_oci_folder_and_tar_give_the_same_tree_as_the_docker_archive(tmp_path):
    oci = Oci()
    top = oci.index([oci.image()])
    with open_image(docker_archive(tmp_path / "d.tar")) as d, \
            open_image(oci.write_dir(tmp_path / "layout", top)) as f, \
            open_image(oci.write_tar(tmp_path / "layout.tar", top)) as t:
        assert (f.kind, t.kind) == ("oci-layout", "oci-archive")
        check_merged(f)
        check_merged(t)
        assert snapshot(d) == snapshot(f) == snapshot(t)


def test_a_flat_rootfs_tar_is_one_layer(tmp_path):
    p = tmp_path / "rootfs.tar"
    p.write_bytes(layer_tar(L1))
    with open_image(p) as tree:
        assert tree.kind == "rootfs-tar" and tree.config == {}
        assert tree.read("/etc/passwd") == b"root:x:0:0\n"
        assert tree.resolve("/bin/sh") == "/bin/busybox"
    pz = tmp_path / "rootfs.tar.gz"
    pz.write_bytes(gz(layer_tar(L1)))
    with open_image(pz) as tree:
        assert tree.read_many(["/bin/sh", "/data/sub/b.txt"]) == {"/bin/sh": b"\x7fELF busybox" * 100,
                                                                   "/data/sub/b.txt": b"b"}


def multi(tmp_path, nested=False):
    oci = Oci()
    amd = oci.image(layers=[[("file", "which", b"amd64")]], compress=[True],
                    platform={"os": "linux", "architecture": "amd64"})
    arm = oci.image(layers=[[("file", "which", b"arm64")]], compress=[True],
                    config=None, platform={"os": "linux", "architecture": "arm64", "variant": "v8"})
    att = oci.image(layers=[[("file", "x", b"attestation")]], compress=[False],
                    platform={"os": "unknown", "architecture": "unknown"})
    inner = oci.index([amd, arm, att])
    if nested:
        inner = oci.index([oci.blob(json.dumps(inner).encode(), "application/vnd.oci.image.index.v1+json")])
    return oci.write_dir(tmp_path / ("nested" if nested else "multi"), inner)


@pytest.mark.parametrize("nested", [False, True])
def test_a_multi_platform_index_needs_a_platform(tmp_path, nested):
    root = multi(tmp_path, nested)
    with pytest.raises(ImageError) as err:
        open_image(root)
    assert "2 platforms (linux/amd64, linux/arm64/v8)" in str(err.value)
    for plat, want in (("linux/arm64/v8", b"arm64"), ("linux/arm64", b"arm64"), ("linux/amd64", b"amd64")):
        with open_image(root, platform=plat) as tree:
            assert tree.read("/which") == want
    with pytest.raises(ImageError, match=r"no platform linux/s390x \(it has: linux/amd64, linux/arm64/v8\)"):
        open_image(root, platform="linux/s390x")
    with pytest.raises(ImageError, match="os/architecture"):
        open_image(root, platform="amd64")


def test_a_single_image_is_checked_against_the_platform_asked_for(tmp_path):
    p = docker_archive(tmp_path / "d.tar")
    with open_image(p, platform="linux/amd64") as tree:
        assert tree.config["architecture"] == "amd64"
    with pytest.raises(ImageError, match="the image is linux/amd64, not linux/arm64"):
        open_image(p, platform="linux/arm64")


def test_a_changed_blob_is_a_digest_mismatch(tmp_path):
    oci = Oci()
    top = oci.index([oci.image()])
    root = oci.write_dir(tmp_path / "layout", top)
    victim = sorted(h for h, d in oci.blobs.items() if d[:2] == b"\x1f\x8b")[0]
    data = bytearray(gzip.decompress(oci.blobs[victim]))
    data[600] ^= 1  # inside the first member's bytes: still a valid tar
    (root / "blobs" / "sha256" / victim).write_bytes(gz(bytes(data)))
    with pytest.raises(ImageError, match=f"layer blobs/sha256/{victim}: digest mismatch"):
        open_image(root)
    # a docker archive's layer checked against the config's diff_ids
    tars = [layer_tar(L1)]
    bad = config_for([layer_tar(L2)])
    with pytest.raises(ImageError, match="diff_id mismatch"):
        open_image(docker_archive(tmp_path / "d.tar", layers=[L1], compress=[True], config=bad))
    assert tars  # the layer itself is fine, only the config disagrees


def test_a_changed_manifest_or_config_is_a_digest_mismatch(tmp_path):
    oci = Oci()
    desc = oci.image()
    root = oci.write_dir(tmp_path / "layout", oci.index([desc]))
    man_path = root / "blobs" / "sha256" / desc["digest"][7:]
    man = json.loads(man_path.read_bytes())
    cfg_path = root / "blobs" / "sha256" / man["config"]["digest"][7:]
    good = cfg_path.read_bytes()
    cfg_path.write_bytes(good.replace(b"amd64", b"arm64"))
    with pytest.raises(ImageError, match=f"blobs/sha256/{man['config']['digest'][7:]}: digest mismatch"):
        open_image(root)
    cfg_path.write_bytes(good)
    man_path.write_bytes(man_path.read_bytes() + b" ")
    with pytest.raises(ImageError, match="digest mismatch"):
        open_image(root)


def test_a_member_climbing_out_of_the_image_is_refused(tmp_path):
    p = tmp_path / "evil.tar"
    p.write_bytes(layer_tar([("file", "../../etc/passwd", b"evil")]))
    with pytest.raises(ImageError, match=r"'\.\./\.\./etc/passwd' has a '\.\.' part"):
        open_image(p)
    with pytest.raises(ImageError, match=r"'\.\.' part"):
        open_image(docker_archive(tmp_path / "d.tar", layers=[[("link", "x", "../../etc/shadow")]],
                                  compress=[False]))
    # a leading slash is dropped, as GNU tar does: the member stays inside
    p.write_bytes(layer_tar([("file", "/abs/f", b"f")]))
    with open_image(p) as tree:
        assert tree.read("/abs/f") == b"f"


def test_symlinks_never_leave_the_image(tmp_path):
    p = tmp_path / "r.tar"
    p.write_bytes(layer_tar([("sym", "host", "/../../../../etc/passwd"), ("sym", "rel", "../../../etc"),
                             ("dir", "etc/", 0o755), ("file", "etc/passwd", b"image's own")]))
    with open_image(p) as tree:
        assert tree.resolve("/host") == "/etc/passwd"
        assert tree.read("/host") == b"image's own"
        assert tree.listdir("/rel") == ["passwd"]
        assert tree.resolve("/../../etc/../../etc/passwd") == "/etc/passwd"


def test_a_symlink_loop_resolves_to_nothing(tmp_path):
    p = tmp_path / "loop.tar"
    p.write_bytes(layer_tar([("sym", "a", "b"), ("sym", "b", "/c/../a"), ("dir", "c/", 0o755),
                             ("sym", "self", "self/x")]))
    with open_image(p) as tree:
        assert tree.resolve("/a") is None and tree.resolve("/self") is None
        assert not tree.is_file("/a") and not tree.exists("/self")
        assert tree.resolve("/a", follow_last=False) == "/a"
        with pytest.raises(ImageError, match="not a regular file"):
            tree.read("/a")


def test_a_hard_link_to_nothing_is_an_error(tmp_path):
    p = tmp_path / "h.tar"
    p.write_bytes(layer_tar([("file", "a", b"a"), ("link", "b", "missing")]))
    with pytest.raises(ImageError, match="hard link 'b' points at 'missing', which is not in the image"):
        open_image(p)


def test_damaged_input_is_one_error(tmp_path):
    (tmp_path / "junk").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ImageError, match="junk is not a saved image \\(not a tar archive\\)$"):
        open_image(tmp_path / "junk")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ImageError, match="not an OCI image layout"):
        open_image(tmp_path / "dir")
    big = tmp_path / "big.tar"
    write_tar(big, [("manifest.json", b" " * (5 << 20))])
    with pytest.raises(ImageError, match="larger than"):
        open_image(big)
    assert issubclass(ImageError, RundepsError)


@pytest.mark.skipif(not shutil.which("zstd"), reason="no zstd command")
def test_a_zstd_layer_names_the_module_it_needs(tmp_path):
    t = layer_tar([("file", "z", b"zstd content")])
    zst = subprocess.run(["zstd", "-q", "-c"], input=t, capture_output=True, check=True).stdout
    oci = Oci()
    oci.blobs[sha(zst)] = zst
    cfg = config_for([t])
    man = {"schemaVersion": 2, "config": oci.blob(cfg, "application/vnd.oci.image.config.v1+json"),
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                       "digest": "sha256:" + sha(zst), "size": len(zst)}]}
    desc = oci.blob(json.dumps(man).encode(), "application/vnd.oci.image.manifest.v1+json")
    root = oci.write_dir(tmp_path / "z", oci.index([desc]))
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(ImageError, match=f"layer blobs/sha256/{sha(zst)} is zstd-compressed: "
                                             "pip install zstandard"):
            open_image(root)
        return
    with open_image(root) as tree:
        assert tree.read("/z") == b"zstd content"


# ---------------------------------------------------------------- against skopeo + umoci


def unpacked(rootfs):
    out = {}
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            p = "/" + os.path.relpath(full, rootfs)
            if stat.S_ISLNK(st.st_mode):
                out[p] = ("symlink", None, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[p] = ("dir", None, None)
            else:
                with open(full, "rb") as f:
                    out[p] = ("file", stat.S_IMODE(st.st_mode), f.read())
    return out


@pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("umoci")), reason="no skopeo or umoci")
def test_the_tree_matches_what_umoci_unpacks(tmp_path):
    archive = docker_archive(tmp_path / "d.tar")
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", f"docker-archive:{archive}",
                    f"oci:{tmp_path / 'oci'}:t"], check=True, capture_output=True, timeout=120)
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{tmp_path / 'oci'}:t", str(tmp_path / "b")],
                   check=True, capture_output=True, timeout=120)
    ref = unpacked(tmp_path / "b" / "rootfs")
    assert ref["/usr/lib/hard.so"] == ("file", 0o755, b"\x7fELF old libfoo") and "/etc/passwd" not in ref
    for source in (archive, tmp_path / "oci"):
        with open_image(source) as tree:
            mine = {p: (k, m if k == "file" else None, v) for p, (k, m, v) in snapshot(tree).items() if p != "/"}
        assert mine == ref


def test_a_layer_damaged_after_opening_is_an_image_error_wherever_it_is_read(tmp_path):
    """Reads after opening trust the blobs not to change; when one does, the
    damage is one ImageError, whether :meth:`read` or the caller of
    :meth:`stream_files` meets it -- never a zlib or tarfile error."""
    import random

    noise = random.Random(0)
    layer = [("dir", "usr/", 0o755), ("file", "usr/a", noise.randbytes(1 << 20)),
             ("file", "usr/b", noise.randbytes(1 << 20))]  # incompressible: b's bytes sit at the blob's end
    oci = Oci()
    layout = oci.write_dir(tmp_path / "layout", oci.index([oci.image(layers=[layer], compress=(True,))]))
    with open_image(layout) as tree:
        blob = layout / tree.layers[0].name
        data = bytearray(blob.read_bytes())
        for i in range(len(data) - (1 << 19), len(data) - 8):
            data[i] ^= 0x5A
        blob.write_bytes(bytes(data))
        assert len(tree.read("/usr/a")) == 1 << 20  # the start of the layer is intact
        with pytest.raises(ImageError, match=r"^layer blobs/sha256/\w+ is damaged: "):
            tree.read("/usr/b")
        with pytest.raises(ImageError, match=r"^layer blobs/sha256/\w+ is damaged: "):
            for _names, f, size in tree.stream_files(["/usr/b"]):
                f.read(size)

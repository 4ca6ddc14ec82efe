"""``scan --image`` / ``why --image``: a saved image checked in memory gives
what ``--root`` gives on the same image unpacked -- by ``tar -x`` (a flat
tar), by Debian's skopeo + umoci (layered images, skipped without them), and
by the tree the layers are meant to leave (whiteouts, opaque folders, hard
links). The images are built here from the demo root (gcc-built ELF files,
an apk database) with ``scripts/make_demo_image.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from scriptmods import demo, ib

from rundeps.inputs.filecache import IMAGE_VERSION

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

SITE = "usr/local/lib/python3.12/site-packages"


def rundeps(*args, cwd=None):
    env = dict(os.environ)
    env.pop("RUNDEPS_ROOT", None)
    proc = subprocess.run([sys.executable, "-m", "rundeps", *args, "--no-cache"], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def without_entry_note(stderr: str) -> str:
    return "".join(line for line in stderr.splitlines(True) if "the image's " not in line)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The demo root plus what layer 2 takes away: a program that needs a
    library nobody has (whited out), a package folder of stale modules
    (made opaque), and a module that is a hard link of another; a library
    folder only LD_LIBRARY_PATH reaches."""
    top = tmp_path_factory.mktemp("img")
    work = top / "work"
    root = demo.build_demo_root(top / "root", workdir=work)
    b = demo.Builder(top / "work2")
    libc = demo.musl_soname(demo.host_arch())
    b.executable(root / "usr/local/bin/gone", needed=["libnothere.so.1", libc])
    b.shared(root / SITE / "stale/_old.so", needed=["libnothere.so.2", libc])
    b.shared(root / "opt/extra/libextra.so.1", soname="libextra.so.1", needed=[libc])
    b.executable(root / "usr/local/bin/tool", needed=["libextra.so.1", libc])
    tag = f"cpython-312-{demo.host_arch()}-linux-musl"
    imaging = root / SITE / f"PIL/_imaging.{tag}.so"
    os.link(imaging, root / SITE / f"PIL/_imaging2.{tag}.so")
    (root / "usr/local/bin/entry.sh").write_text("#!/bin/sh\nexec python3 \"$@\"\n")
    (root / "usr/local/bin/entry.sh").chmod(0o755)
    b.shared(root / "bin/busybox", soname=None, needed=[libc])  # a stand-in /bin/sh
    (root / "bin/busybox").chmod(0o755)
    (root / "bin/sh").symlink_to("busybox")

    in_layer2 = (f"{SITE}/PIL/", f"{SITE}/psycopg2/", f"{SITE}/pillow.libs/")
    first = ib.folder_layer(root, keep=lambda rel: not rel.startswith(in_layer2))
    second = ib.folder_layer(root, keep=lambda rel: rel.startswith(in_layer2) and "stale" not in rel,
                             markers=["usr/local/bin/.wh.gone", f"{SITE}/stale/.wh..wh..opq"])
    # What the layers leave: the tree without what layer 2 takes away.
    final = top / "final"
    shutil.copytree(root, final, symlinks=True)
    (final / "usr/local/bin/gone").unlink()
    shutil.rmtree(final / SITE / "stale")
    (final / SITE / "stale").mkdir()
    return {"root": root, "final": final, "layers": [first, second], "top": top}


def image(built, kind, name, **cfg):
    layers = built["layers"]
    config = ib.config(layers, **cfg)
    path = built["top"] / name
    if path.exists():
        return path
    if kind == "docker":
        return ib.docker_archive(path, layers, config, compress=[True, False])
    path.mkdir()
    return ib.oci_layout(path, layers, config)


@pytest.mark.parametrize("fmt", ["json", "names"])
@pytest.mark.parametrize("kind", ["docker", "oci"])
def test_a_layered_image_checks_as_the_tree_its_layers_leave(built, kind, fmt):
    img = image(built, kind, f"layered-{kind}", Cmd=["python3"])
    want = rundeps("scan", "--root", str(built["final"]), "--format", fmt, "/usr/local")
    got = rundeps("scan", "--image", str(img), "--format", fmt, "/usr/local")
    assert got[0] == want[0] == 1  # /usr/local/bin/tool needs libextra.so.1, off the default path
    assert got[1] == want[1]
    assert without_entry_note(got[2]) == want[2]
    assert "libnothere" not in got[1] + got[2]  # the whiteout and the opaque folder took effect
    assert "_imaging2." in got[1] if fmt == "json" else True  # the hard link is a file of its own


def test_the_image_env_gives_ld_library_path(built):
    img = image(built, "docker", "env", Env=["PATH=/usr/local/bin:/bin", "LD_LIBRARY_PATH=/opt/extra"],
                Cmd=["python3"])
    want = rundeps("scan", "--root", str(built["final"]), "--library-path", "/opt/extra", "--format", "json",
                   "/usr/local")
    got = rundeps("scan", "--image", str(img), "--format", "json", "/usr/local")
    assert want[0] == got[0] == 0
    assert got[1] == want[1]
    # --library-path still wins over the image's Env
    assert rundeps("scan", "--image", str(img), "--library-path", "/nowhere", "/usr/local")[0] == 1


def test_a_flat_tar_checks_as_tar_x_unpacks_it(built, tmp_path):
    flat = tmp_path / "rootfs.tar"
    flat.write_bytes(ib.folder_layer(built["final"]))
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "-x", "-f", str(flat), "-C", str(out)], check=True)
    for fmt in ("json", "tree"):
        want = rundeps("scan", "--root", str(out), "--format", fmt, "--library-path", "/opt/extra")
        got = rundeps("scan", "--image", str(flat), "--format", fmt, "--library-path", "/opt/extra")
        assert got == want and got[0] == 0


def test_why_reads_the_image_as_the_root(built):
    img = image(built, "docker", "layered-docker", Cmd=["python3"])
    for args in (["libpq"], ["libtiff.so.6"], [f"/{SITE}/pillow.libs/libwebp-1a2b3c4d.so.7.1.8"], ["nothing-needs-me"]):
        want = rundeps("why", *args, "--root", str(built["final"]), "--format", "json")
        got = rundeps("why", *args, "--image", str(img), "--format", "json")
        assert got[0] == want[0] and got[1] == want[1], args


@pytest.mark.parametrize("cfg, says", [
    ({"Cmd": ["python3"]}, "the image's Cmd runs python3: /usr/local/bin/python3.12 loads"),
    ({"Entrypoint": ["/usr/local/bin/entry.sh"], "Cmd": ["-V"]},
     "the image's Entrypoint runs /usr/local/bin/entry.sh -V: /bin/busybox (for /usr/local/bin/entry.sh) loads"),
    ({"Entrypoint": ["tool"], "Env": ["PATH=/usr/local/bin"]},
     "the image's Entrypoint runs tool: /usr/local/bin/tool will not load (libextra.so.1 not found)"),
    ({"Cmd": ["nosuch"]}, "the image's Cmd runs nosuch: cannot check it, nosuch is not on the PATH"),
])
def test_one_note_says_whether_the_program_the_image_runs_loads(built, cfg, says):
    name = "entry-" + str(abs(hash(json.dumps(cfg, sort_keys=True))))
    img = image(built, "docker", name, **cfg)
    code, out, err = rundeps("scan", "--image", str(img), "/usr/local/lib")
    notes = [line for line in err.splitlines() if "the image's " in line]
    assert notes == [f"rundeps: note: {says}"]
    assert code == 0 and out.split() == ["libpq", "libsharpyuv", "tiff"]  # stdout stays the package list


def test_a_program_outside_the_scope_is_judged_in_the_image(built):
    img = image(built, "docker", "entry-busybox", Entrypoint=["/bin/sh"])
    code, out, err = rundeps("scan", "--image", str(img), f"/{SITE}/psycopg2")
    assert code == 0 and out.split() == ["libpq"]
    assert "rundeps: note: the image's Entrypoint runs /bin/sh: /bin/busybox loads" in err.splitlines()


def test_refusals_are_one_line_and_exit_2(built, tmp_path):
    img = image(built, "docker", "layered-docker", Cmd=["python3"])
    bad = tmp_path / "bad.tar"
    data = bytearray(img.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    for args in (["--image", str(bad)], ["--image", str(img), "--root", str(built["final"])],
                 ["--image", str(img), "/no/such/path"], ["--platform", "linux/amd64"]):
        code, out, err = rundeps("scan", *args)
        assert code == 2 and out == "", args
        assert len(err.splitlines()) == 1 and err.startswith("rundeps: error: "), (args, err)


def test_a_multi_platform_index_needs_platform(built, tmp_path):
    layers = built["layers"]
    oci = tmp_path / "multi"
    ib.oci_layout(oci, layers, ib.config(layers, Cmd=["python3"]))
    arm = tmp_path / "arm"
    ib.oci_layout(arm, layers, ib.config(layers, arch="arm64", Cmd=["python3"]))
    for blob in (arm / "blobs/sha256").iterdir():
        shutil.copy(blob, oci / "blobs/sha256" / blob.name)
    index = json.loads((oci / "index.json").read_text())
    index["manifests"] = [dict(index["manifests"][0], platform={"architecture": "amd64", "os": "linux"}),
                          dict(json.loads((arm / "index.json").read_text())["manifests"][0],
                               platform={"architecture": "arm64", "os": "linux", "variant": "v8"})]
    (oci / "index.json").write_text(json.dumps(index))
    code, out, err = rundeps("scan", "--image", str(oci))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "rundeps: error: the image has 2 platforms (linux/amd64, linux/arm64/v8): choose one with --platform"]
    code, out, _err = rundeps("scan", "--image", str(oci), "--platform", "linux/amd64", "/usr/local/lib")
    assert code == 0 and out.split() == ["libpq", "libsharpyuv", "tiff"]


@pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("umoci")), reason="no skopeo or umoci")
def test_the_result_equals_root_on_what_umoci_unpacks(built, tmp_path):
    img = image(built, "docker", "layered-docker", Cmd=["python3"])
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", f"docker-archive:{img}", f"oci:{tmp_path / 'oci'}:t"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{tmp_path / 'oci'}:t", str(tmp_path / "b")],
                   check=True, capture_output=True, timeout=120)
    rootfs = tmp_path / "b" / "rootfs"
    assert not (rootfs / "usr/local/bin/gone").exists()
    for fmt in ("json", "tree"):
        want = rundeps("scan", "--root", str(rootfs), "--format", fmt, "/usr/local", "/opt")
        for source in (img, tmp_path / "oci"):
            got = rundeps("scan", "--image", str(source), "--format", fmt, "/usr/local", "/opt")
            assert got[:2] == want[:2] and without_entry_note(got[2]) == want[2]


def test_a_member_that_claims_more_bytes_than_the_layer_has_is_one_line(tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("usr/local/lib/libbig.so")
        elf = b"\x7fELF\x02\x01\x01" + b"\0" * 57
        info.size = len(elf)
        tar.addfile(info, io.BytesIO(elf))
    data = bytearray(buf.getvalue())
    # the header now says 64 GiB follow (octal size field, checksum made good again)
    header = data[:512]
    header[124:136] = b"%011o\0" % (64 << 30)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    data[:512] = header
    flat = tmp_path / "huge.tar"
    flat.write_bytes(bytes(data[:4096]))
    code, out, err = rundeps("scan", "--image", str(flat), "/usr/local")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("rundeps: error: "), err


def test_a_repeat_run_reads_no_layer_of_an_unchanged_image(built, tmp_path):
    """The file cache keeps the merged tree and the scanned files' facts per
    image file identity (device, inode, size, mtime): a repeat run over the
    same file prints the same and reads no layer -- shown by damaging the
    layers in place while keeping that identity, which only a run without
    the cache notices. Touching the file (a new mtime) is a miss again."""
    img = tmp_path / "img.tar"
    shutil.copy(image(built, "docker", "layered-docker", Cmd=["python3"]), img)
    cache = ["--cache-dir", str(tmp_path / "cache")]

    def run(*extra):
        proc = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--image", str(img), "--format", "json",
                               "/usr/local", *extra], capture_output=True, text=True, timeout=300)
        return proc.returncode, proc.stdout, proc.stderr

    first = run(*cache)
    assert first[0] == 1 and first[1] and list((tmp_path / "cache" / "filecache").glob(f"*.i{IMAGE_VERSION}"))
    st = img.stat()
    data = bytearray(img.read_bytes())
    with tarfile.open(img) as outer:  # the layers' bytes, not the outer tar's manifest or config
        spans = [(m.offset_data, m.offset_data + m.size) for m in outer.getmembers()
                 if m.isfile() and not m.name.endswith(".json")]
    for lo, hi in spans:
        for i in range(lo, hi, 4096):
            data[i] ^= 0x55
    img.write_bytes(bytes(data))
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run(*cache) == first
    assert run("--no-cache")[0] == 2
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert run(*cache)[0] == 2  # a new identity: read again, and found damaged

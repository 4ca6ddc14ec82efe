"""Scanned files mapped to the pip distributions that own them (RECORD, egg-info, eggs, wheels).

Real processes on gcc-built roots; real wheels from PyPI when it can be
reached, checked against pax-utils' scanelf.
"""

import base64
import email.parser
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wheelbuild
from test_scan import ARCH, LIBC, SITE, demo, run

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the ELF fixtures")

TAG = f"cpython-312-{ARCH}-linux-musl"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "alpine"
INDEX = SHARED / "index" / "3.20-main-x86_64" / "APKINDEX.tar.gz"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "root"
    demo.build_demo_root(root, workdir=tmp_path_factory.mktemp("build"))
    return root


@pytest.fixture()
def root(demo_root, tmp_path):
    dst = tmp_path / "root"
    shutil.copytree(demo_root, dst, symlinks=True)
    return dst


@pytest.fixture()
def b(tmp_path):
    return demo.Builder(tmp_path / "build")


def scan_json(root, *args):
    r = run("scan", "--root", root, "--format", "json", "--no-cache", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def sha(path):
    return base64.urlsafe_b64encode(hashlib.sha256(Path(path).read_bytes()).digest()).rstrip(b"=").decode()


def dist_info(site, name, version, rows):
    d = site / f"{name}-{version}.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (d / "RECORD").write_text("".join(r + "\n" for r in rows) + f"{d.name}/RECORD,,\n")
    return d


def test_demo_root_distributions(demo_root):
    out, _ = scan_json(demo_root)
    assert out["distributions"] == {
        "pillow": {
            "version": "10.4.0", "kind": "dist-info", "metadata": f"{SITE}/pillow-10.4.0.dist-info",
            "packages": ["libsharpyuv", "tiff"],
            "all_packages": ["libjpeg-turbo", "libsharpyuv", "musl", "tiff", "zlib"],
            "files": [f"{SITE}/PIL/_imaging.{TAG}.so", f"{SITE}/PIL/_webp.{TAG}.so",
                      f"{SITE}/pillow.libs/libwebp-1a2b3c4d.so.7.1.8"],
        },
        "psycopg2": {
            "version": "2.9.9", "kind": "dist-info", "metadata": f"{SITE}/psycopg2-2.9.9.dist-info",
            "packages": ["libpq"], "all_packages": ["libpq", "musl"],
            "files": [f"{SITE}/psycopg2/_psycopg.{TAG}.so"],
        },
    }
    assert out["no_distribution"] == {
        "packages": ["musl"], "all_packages": ["musl"],
        "files": ["/usr/local/bin/python3.12", "/usr/local/lib/libpython3.12.so.1.0"],
    }


def test_why_names_the_distribution_first(demo_root):
    r = run("why", "libpq", "--root", demo_root, "--no-cache")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == (
        f"libpq is needed by psycopg2 2.9.9 (psycopg2/_psycopg.{TAG}.so -> libpq.so.5)")
    assert r.stdout.splitlines()[1] == "libpq 16.4-r0 (installed) is needed:"
    r = run("why", "libpq", "--root", demo_root, "--no-cache", "--format", "json")
    assert json.loads(r.stdout)["distributions"] == [{"name": "psycopg2", "version": "2.9.9", "needs": [
        {"soname": "libpq.so.5", "chain": [f"{SITE}/psycopg2/_psycopg.{TAG}.so"]}]}]
    # the vendored library is the distribution's own file (its RECORD lists it)
    r = run("why", "libsharpyuv", "--root", demo_root, "--no-cache")
    assert r.stdout.splitlines()[0] == (
        "libsharpyuv is needed by pillow 10.4.0 (pillow.libs/libwebp-1a2b3c4d.so.7.1.8 -> libsharpyuv.so.0)")
    # every group that needs it, the files no distribution owns last
    r = run("why", "musl", "--root", demo_root, "--no-cache")
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"musl is needed by pillow 10.4.0 (PIL/_imaging.{TAG}.so -> {LIBC}; ")
    assert lines[1] == f"musl is needed by psycopg2 2.9.9 (psycopg2/_psycopg.{TAG}.so -> {LIBC})"
    assert lines[2] == (f"musl is needed by files no distribution owns (/usr/local/bin/python3.12 -> {LIBC}; "
                        f"/usr/local/lib/libpython3.12.so.1.0 -> {LIBC})")


def test_needs_through_a_library_no_distribution_owns(root, b):
    site = root / SITE.lstrip("/")
    b.shared(root / "usr/local/lib/libhelper.so.1", soname="libhelper.so.1", needed=["libpq.so.5", LIBC])
    b.shared(site / "helperdist/_ext.so", needed=["libhelper.so.1", LIBC])
    dist_info(site, "helperdist", "1.0", ["helperdist/_ext.so,,"])
    r = run("why", "libpq", "--root", root, "--no-cache")
    assert r.stdout.splitlines()[:3] == [
        "libpq is needed by helperdist 1.0 (helperdist/_ext.so -> /usr/local/lib/libhelper.so.1 -> libpq.so.5)",
        f"libpq is needed by psycopg2 2.9.9 (psycopg2/_psycopg.{TAG}.so -> libpq.so.5)",
        "libpq is needed by files no distribution owns (/usr/local/lib/libhelper.so.1 -> libpq.so.5)",
    ]
    out, _ = scan_json(root)
    assert out["distributions"]["helperdist"]["packages"] == ["libpq"]
    assert out["distributions"]["helperdist"]["files"] == [f"{SITE}/helperdist/_ext.so"]


def test_tree_by_distribution(demo_root):
    r = run("scan", "--root", demo_root, "--format", "tree", "--by", "distribution", "--no-cache")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    heads = [line for line in lines if not line.startswith(" ")]
    assert heads == [
        f"pillow 10.4.0  ({SITE}/pillow-10.4.0.dist-info)",
        f"psycopg2 2.9.9  ({SITE}/psycopg2-2.9.9.dist-info)",
        "(no distribution): files no pip distribution owns (the interpreter, /usr/local/lib, ...)",
    ]
    i = lines.index(f"psycopg2 2.9.9  ({SITE}/psycopg2-2.9.9.dist-info)")
    assert lines[i + 1:i + 4] == ["  libpq", "    libpq.so.5", f"      psycopg2/_psycopg.{TAG}.so"]
    assert "  zlib  (pulled in by tiff)" in lines
    assert lines[-2:] == ["      /usr/local/bin/python3.12", "      /usr/local/lib/libpython3.12.so.1.0"]
    r = run("scan", "--root", demo_root, "--by", "distribution", "--no-cache")
    assert r.returncode == 2
    assert r.stderr == "rundeps: error: --by distribution groups --format tree; use it with --format tree\n"


def test_record_absolute_and_dotdot_entries(root, b):
    site = root / SITE.lstrip("/")
    b.executable(root / "usr/local/bin/ruffish", needed=[LIBC])
    b.executable(root / "usr/local/bin/abstool", needed=[LIBC])
    dist_info(site, "ruffish", "0.6.1", ["ruffish/__init__.py,,", "../../../bin/ruffish,,"])
    dist_info(site, "abstool", "1.0", ["/usr/local/bin/abstool,,"])
    out, err = scan_json(root)
    assert err == ""
    assert out["distributions"]["ruffish"]["files"] == ["/usr/local/bin/ruffish"]
    assert out["distributions"]["abstool"]["files"] == ["/usr/local/bin/abstool"]
    assert "/usr/local/bin/ruffish" not in out["no_distribution"]["files"]


def test_record_entries_never_leave_the_root(root, tmp_path, b):
    site = root / SITE.lstrip("/")
    # '..' past the root stops at the root: this entry names the root's own /usr/local/bin/python3.12
    dist_info(site, "climber", "1.0", ["../" * 20 + "usr/local/bin/python3.12,,"])
    # a RECORD that is a symlink out of the root is read inside the root (where it does not exist)
    outside = tmp_path / "outside-RECORD"
    outside.write_text(f"psycopg2/_psycopg.{TAG}.so,,\n")
    evil = site / "evil-1.0.dist-info"
    evil.mkdir()
    (evil / "METADATA").write_text("Name: evil\nVersion: 1.0\n")
    (evil / "RECORD").symlink_to("../" * 30 + str(outside).lstrip("/"))
    assert (evil / "RECORD").read_text()  # on the host, the link does reach the file
    out, err = scan_json(root)
    assert err == ""
    assert out["distributions"]["climber"]["files"] == ["/usr/local/bin/python3.12"]
    assert "evil" not in out["distributions"]
    assert out["distributions"]["psycopg2"]["files"] == [f"{SITE}/psycopg2/_psycopg.{TAG}.so"]


def test_record_folder_through_a_symlink(root, b):
    site = root / SITE.lstrip("/")
    b.shared(root / "usr/local/lib/libsidecar.so.1", soname="libsidecar.so.1", needed=[LIBC])
    (root / "usr/local/lib64").symlink_to("lib")
    dist_info(site, "sidecar", "2.0", ["../../../lib64/libsidecar.so.1,,"])
    out, _ = scan_json(root)
    assert out["distributions"]["sidecar"]["files"] == ["/usr/local/lib/libsidecar.so.1"]


def test_record_listing_a_file_that_is_gone(root):
    site = root / SITE.lstrip("/")
    record = site / "psycopg2-2.9.9.dist-info/RECORD"
    record.write_text(record.read_text() + f"psycopg2/_gone.{TAG}.so,sha256=AAAA,123\npsycopg2/gone/\n")
    out, err = scan_json(root)
    assert err == ""
    assert out["distributions"]["psycopg2"]["files"] == [f"{SITE}/psycopg2/_psycopg.{TAG}.so"]
    r = run("why", "libpq", "--root", root, "--no-cache")
    assert r.stdout.startswith("libpq is needed by psycopg2 2.9.9 (")


def test_two_distributions_claiming_one_file(root):
    site = root / SITE.lstrip("/")
    imaging = f"PIL/_imaging.{TAG}.so"
    # a leftover dist-info of an older install: its hash does not match the file on disk
    dist_info(site, "Pillow", "9.0.0", [f"{imaging},sha256=b2xkLWJ5dGVz,13488"])
    out, _ = scan_json(root)
    assert out["distributions"]["pillow"]["files"][0] == f"{SITE}/{imaging}"
    assert "Pillow 9.0.0" not in out["distributions"] and "Pillow" not in out["distributions"]
    # two claims that both match (or carry no hash): the file belongs to both
    dist_info(site, "pillow-simd", "10.0.0", [f"{imaging},sha256={sha(site / imaging)},13488"])
    out, _ = scan_json(root)
    assert out["distributions"]["pillow-simd"]["files"] == [f"{SITE}/{imaging}"]
    assert f"{SITE}/{imaging}" in out["distributions"]["pillow"]["files"]
    r = run("why", "tiff", "--root", root, "--no-cache")
    assert r.stdout.splitlines()[:2] == [
        f"tiff is needed by pillow 10.4.0 ({imaging} -> libtiff.so.6)",
        f"tiff is needed by pillow-simd 10.0.0 ({imaging} -> libtiff.so.6)",
    ]


def test_same_name_twice_keys_by_version(root, b):
    site = root / SITE.lstrip("/")
    b.shared(site / "PIL/_old.so", needed=[LIBC])  # left behind by 9.5.0
    dist_info(site, "pillow", "9.5.0", [f"PIL/_imaging.{TAG}.so,,", "PIL/_old.so,,"])
    out, _ = scan_json(root)
    assert out["distributions"]["pillow 9.5.0"]["files"] == [f"{SITE}/PIL/_old.so"]
    assert f"{SITE}/PIL/_imaging.{TAG}.so" in out["distributions"]["pillow 10.4.0"]["files"]


def test_egg_info_installed_files(root, b):
    site = root / SITE.lstrip("/")
    b.shared(site / f"legacy/_speedups.{TAG}.so", needed=["libz.so.1", LIBC])
    egg = site / "legacy-0.3-py3.12.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 0.3\n")
    (egg / "installed-files.txt").write_text(f"../legacy/__init__.py\n../legacy/_speedups.{TAG}.so\n./\nPKG-INFO\n")
    out, _ = scan_json(root)
    d = out["distributions"]["legacy"]
    assert (d["kind"], d["version"], d["files"]) == ("egg-info", "0.3", [f"{SITE}/legacy/_speedups.{TAG}.so"])
    assert d["packages"] == ["zlib"]


def test_distribution_installed_as_an_egg(root, b):
    site = root / SITE.lstrip("/")
    egg = site / f"eggy-2.0-py3.12-linux-{ARCH}.egg"
    b.shared(egg / f"eggy/_c.{TAG}.so", needed=["libpq.so.5", LIBC])
    (egg / "EGG-INFO").mkdir()
    (egg / "EGG-INFO/PKG-INFO").write_text("Metadata-Version: 1.1\nName: eggy\nVersion: 2.0\n")
    out, _ = scan_json(root)
    d = out["distributions"]["eggy"]
    assert (d["kind"], d["version"], d["packages"]) == ("egg", "2.0", ["libpq"])
    assert d["files"] == [f"{SITE}/eggy-2.0-py3.12-linux-{ARCH}.egg/eggy/_c.{TAG}.so"]
    r = run("why", "libpq", "--root", root, "--no-cache")
    assert r.stdout.splitlines()[0] == f"libpq is needed by eggy 2.0 (eggy/_c.{TAG}.so -> libpq.so.5)"


def test_damaged_metadata_falls_back_to_the_folder_name(root, b):
    site = root / SITE.lstrip("/")
    b.shared(site / "odd/_x.so", needed=[LIBC])
    d = dist_info(site, "odd", "0.1", ["odd/_x.so,,"])
    (d / "METADATA").write_bytes(b"\xff\xfe\x00garbage")
    (d / "RECORD").write_text('odd/_x.so,,\n"unterminated,\n')
    nul = dist_info(site, "nul", "0.1", [])
    (nul / "RECORD").write_bytes(b"odd/_x.so,,\n\0\0\0,\xff\n" + b"x" * 100000 + b"\n")
    out, err = scan_json(root)
    assert err == ""
    assert out["distributions"]["odd"]["files"] == [f"{SITE}/odd/_x.so"]
    assert out["distributions"]["nul"]["files"] == [f"{SITE}/odd/_x.so"]  # rows before the damage count


def test_wheel_is_its_own_distribution(tmp_path, b):
    work = tmp_path / "objs"
    ext = b.shared(work / "_ext.so", needed=["libdep-0a1b2c3d.so.1", LIBC], runpath="$ORIGIN/../fixturepkg.libs")
    lib = b.shared(work / "libdep.so", soname="libdep-0a1b2c3d.so.1", needed=[LIBC])
    whl = wheelbuild.make_wheel(tmp_path / "dist", "fixturepkg", "1.0", [f"cp312-cp312-musllinux_1_2_{ARCH}"], [
        ("fixturepkg/_ext.so", ext.read_bytes()), ("fixturepkg.libs/libdep-0a1b2c3d.so.1", lib.read_bytes())])
    r = run("wheel", whl, "--format", "json", "--no-cache")
    assert r.returncode == 0, r.stderr
    [out] = json.loads(r.stdout)
    assert out["distributions"] == {"fixturepkg": {
        "version": "1.0", "kind": "wheel", "metadata": str(whl), "packages": ["musl"], "all_packages": ["musl"],
        "files": ["/fixturepkg.libs/libdep-0a1b2c3d.so.1", "/fixturepkg/_ext.so"]}}
    assert out["no_distribution"]["files"] == []


def test_library_stage(demo_root):
    from rundeps.api import Sources, add_distributions, check_tree

    res = check_tree(["/usr/local"], root=str(demo_root), sources=Sources(use_cache=False), explicit_root=True)
    with_map = add_distributions(res, str(demo_root))
    assert res.distributions is None  # a value: the stage gives a new one
    dmap = with_map.distributions
    [psycopg2] = dmap.by_name("PsycoPG2")
    assert psycopg2.label() == "psycopg2 2.9.9"
    assert dmap.owners_of(f"{SITE}/psycopg2/_psycopg.{TAG}.so") == [psycopg2]
    assert dmap.unowned == ["/usr/local/bin/python3.12", "/usr/local/lib/libpython3.12.so.1.0"]


# -- a site-packages from real wheels ------------------------------------------------


@pytest.fixture(scope="module")
def real_site(tmp_path_factory):
    if ARCH != "x86_64":
        pytest.skip("installs x86_64 musllinux wheels")
    dest = tmp_path_factory.mktemp("real") / "site-packages"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(dest), "--no-deps", "--only-binary=:all:",
             "--platform", "musllinux_1_2_x86_64", "--python-version", "3.12", "--implementation", "cp",
             "psycopg2-binary", "pillow"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("PyPI cannot be reached")
    if proc.returncode != 0 or not list(dest.glob("*.dist-info")):
        pytest.skip("PyPI cannot be reached")
    return dest


def elf_files(top):
    out = set()
    for dirpath, _, names in os.walk(top):
        for n in names:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                with open(p, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        out.add(p)
    return out


def metadata(site, dist):
    [d] = site.glob(f"{dist}-*.dist-info")
    msg = email.parser.Parser().parsestr((d / "METADATA").read_text())
    return msg["Name"], msg["Version"]


@pytest.mark.skipif(not INDEX.exists(), reason="needs ../shared/alpine")
@pytest.mark.skipif(shutil.which("scanelf") is None, reason="needs pax-utils' scanelf")
def test_real_wheels_every_elf_file_attributed(real_site):
    r = run("scan", "--index", INDEX, "--keys-dir", SHARED / "keys", "--format", "json", "--no-cache", real_site)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    elf = elf_files(real_site)
    assert len(elf) > 20
    owned = {f for d in out["distributions"].values() for f in d["files"]}
    assert owned == elf
    assert out["no_distribution"]["files"] == []
    pg_name, pg_version = metadata(real_site, "psycopg2_binary")
    pil_name, pil_version = metadata(real_site, "pillow")
    assert out["distributions"][pg_name]["version"] == pg_version
    assert all(f.startswith(str(real_site / "psycopg2")) for f in out["distributions"][pg_name]["files"])
    # why names the distribution whose file needs it; scanelf says which files need libz.so.1
    scan = subprocess.run(["scanelf", "--needed", "--nobanner", "--recursive", "--format", "%F %n", str(real_site)],
                          stdout=subprocess.PIPE, text=True, check=True).stdout
    zfiles = sorted(line.split(" ", 1)[0] for line in scan.splitlines()
                    if "libz.so.1" in line.split(" ", 1)[-1].split(",") and "/pillow.libs/" not in line)
    vendored_z = [line for line in scan.splitlines() if "pillow.libs/" in line.split(" ", 1)[0]
                  and "libz.so.1" in line.split(" ", 1)[-1].split(",")]
    assert zfiles or vendored_z
    r = run("why", "zlib", "--index", INDEX, "--keys-dir", SHARED / "keys", "--no-cache", real_site)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"zlib is needed by {pil_name} {pil_version} (")
    some = (zfiles + [line.split(" ", 1)[0] for line in vendored_z])[0]
    assert os.path.relpath(some, real_site) in first or "more)" in first
    r = run("why", "musl", "--index", INDEX, "--keys-dir", SHARED / "keys", "--no-cache", real_site)
    names = [line.split(" (")[0] for line in r.stdout.splitlines() if line.startswith("musl is needed by ")]
    assert names == sorted([f"musl is needed by {pil_name} {pil_version}",
                            f"musl is needed by {pg_name} {pg_version}"], key=str.lower)

"""rundeps.inputs.walk: real trees with gcc-built ELF files, odd files and symlinks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from elfbuild import build_exe, build_lib, requires_gcc, scanelf_needed  # noqa: E402

from rundeps.inputs import walk  # noqa: E402
from rundeps.diagnostics import Diagnostics
from rundeps.inputs.walk import scan  # noqa: E402
from rundeps.rootfs import resolve_in_root, to_host  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
pytestmark = requires_gcc


class Errors(list):
    def __call__(self, path, reason):
        self.append((path, reason))


@pytest.fixture(scope="module")
def lib_bytes(tmp_path_factory):
    d = tmp_path_factory.mktemp("libsrc")
    return build_lib(d, "libsrc.so", soname="libsrc.so.1", needed_libs=("libc.musl-x86_64.so.1",)).read_bytes()


@pytest.fixture()
def tree(tmp_path):
    """A root file system with a site-packages-like folder."""
    root = tmp_path / "root"
    sp = root / "usr/local/lib/python3.12/site-packages"
    build_lib(sp / "pkg", "_ext.so", needed_libs=("libvend-1a2b.so.1", "libc.musl-x86_64.so.1"),
              runpath="$ORIGIN/../pkg.libs")
    build_lib(sp / "pkg.libs", "libvend-1a2b.so.1", soname="libvend-1a2b.so.1", needed_libs=("libz.so.1",))
    build_exe(root / "usr/local/bin", "tool", needed_libs=("libpython3.12.so.1.0",),
              interp="/lib/ld-musl-x86_64.so.1")
    build_lib(root / "usr/local/lib", "libpython3.12.so.1.0", soname="libpython3.12.so.1.0",
              needed_libs=("libc.musl-x86_64.so.1",))
    os.symlink("libpython3.12.so.1.0", root / "usr/local/lib/libpython3.12.so")
    (root / "usr/local/lib/libfoo.so").write_text("/* GNU ld script */\nINPUT(libfoo.so.1)\n")
    (sp / "pkg/__init__.py").write_text("from ._ext import *\n")
    return root


def paths(res):
    return [i.path for i in res.items]


SP = "/usr/local/lib/python3.12/site-packages"


def test_scan_tree(tree):
    err = Errors()
    res = scan(["/usr/local"], root=str(tree), diag=Diagnostics(file_error=err))
    assert paths(res) == [
        "/usr/local/bin/tool",
        "/usr/local/lib/libpython3.12.so.1.0",
        SP + "/pkg.libs/libvend-1a2b.so.1",
        SP + "/pkg/_ext.so",
    ]
    assert res.files_seen == 6
    assert err == []  # the linker script is skipped silently
    ext = res.items[3]
    assert ext.host_path == str(tree) + SP + "/pkg/_ext.so"
    assert ext.info.needed == ("libvend-1a2b.so.1", "libc.musl-x86_64.so.1")
    assert ext.info.runpath == ("$ORIGIN/../pkg.libs",)
    assert res.items[0].info.interp == "/lib/ld-musl-x86_64.so.1"
    assert res.links == {"/usr/local/lib/libpython3.12.so": "/usr/local/lib/libpython3.12.so.1.0"}


def test_agrees_with_scanelf(tree):
    ref = scanelf_needed(tree / "usr/local")
    if ref is None:
        pytest.skip("scanelf is absent")
    res = scan([str(tree / "usr/local")])
    mine = {i.host_path: list(i.info.needed) for i in res.items}
    assert mine == ref


def test_root_slash_host_paths(tree):
    res = scan([str(tree / "usr/local/lib")])
    assert [i.path for i in res.items] == [str(tree / "usr/local/lib/libpython3.12.so.1.0"),
                                           str(tree) + SP + "/pkg.libs/libvend-1a2b.so.1",
                                           str(tree) + SP + "/pkg/_ext.so"]
    assert res.items[0].host_path == res.items[0].path


def test_single_file_path(tree):
    res = scan([SP + "/pkg/_ext.so"], root=str(tree))
    assert paths(res) == [SP + "/pkg/_ext.so"]
    assert res.files_seen == 1


def test_nested_and_duplicate_paths_counted_once(tree):
    res = scan(["/usr/local", "/usr/local/lib", "/usr/local/", "/usr/local/lib/../lib",
                SP + "/pkg/_ext.so"], root=str(tree))
    assert len(res.items) == 4
    assert res.files_seen == 6


def test_exclude_globs(tree):
    res = scan(["/usr/local"], root=str(tree), exclude=["*/pkg.libs/*", "*/bin/*"])
    assert paths(res) == ["/usr/local/lib/libpython3.12.so.1.0", SP + "/pkg/_ext.so"]
    res = scan(["/usr/local"], root=str(tree), exclude=["*libpython*"])
    assert res.links == {}
    assert "/usr/local/lib/libpython3.12.so.1.0" not in paths(res)


def test_truncated_elf_reported_once_and_scan_goes_on(tree, lib_bytes):
    (tree / "usr/local/lib/libbroken.so").write_bytes(lib_bytes[:100])
    err = Errors()
    res = scan(["/usr/local"], root=str(tree), diag=Diagnostics(file_error=err))
    assert err == [("/usr/local/lib/libbroken.so", "truncated program header table")]
    assert len(res.items) == 4


def _scan_in_subprocess(root, paths_, timeout=60):
    code = ("import json, sys; from rundeps.inputs.walk import scan; from rundeps.diagnostics import Diagnostics; e = [];"
            "r = scan(json.loads(sys.argv[2]), root=sys.argv[1], diag=Diagnostics(file_error=lambda p, m: e.append([p, m])));"
            "print(json.dumps({'items': [i.path for i in r.items], 'links': r.links, 'errors': e,"
            " 'seen': r.files_seen}))")
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    out = subprocess.run([sys.executable, "-c", code, str(root), json.dumps(paths_)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_fifo_never_opened(tree):
    os.mkfifo(tree / "usr/local/lib/libfifo.so")  # opening it for reading would block
    got = _scan_in_subprocess(tree, ["/usr/local"])  # a hang would time out
    assert len(got["items"]) == 4 and got["errors"] == [] and got["seen"] == 6


def test_fifo_given_by_name_not_opened(tree):
    os.mkfifo(tree / "fifo")
    got = _scan_in_subprocess(tree, ["/fifo"])
    assert got["items"] == []


def test_symlink_loop_and_dir_loop(tree):
    lib = tree / "usr/local/lib"
    os.symlink("loop-b", lib / "loop-a")
    os.symlink("loop-a", lib / "loop-b")
    os.symlink(".", lib / "self")  # a directory loop, never followed
    os.symlink("/usr/local", lib / "up")
    got = _scan_in_subprocess(tree, ["/usr/local"])
    assert len(got["items"]) == 4
    assert got["links"] == {"/usr/local/lib/libpython3.12.so": "/usr/local/lib/libpython3.12.so.1.0"}
    assert resolve_in_root(str(tree), "/usr/local/lib/loop-a") is None


def test_symlinked_dir_not_followed(tree):
    os.symlink("python3.12/site-packages/pkg", tree / "usr/local/lib/pkglink")
    res = scan(["/usr/local"], root=str(tree))
    assert len(res.items) == 4
    assert not any("pkglink" in p for p in paths(res))
    assert res.links == {"/usr/local/lib/libpython3.12.so": "/usr/local/lib/libpython3.12.so.1.0"}


def test_given_symlinked_dir_is_followed_to_its_real_path(tree):
    os.symlink("usr/local/lib", tree / "lib64")
    res = scan(["/lib64"], root=str(tree))
    assert paths(res)[0] == "/usr/local/lib/libpython3.12.so.1.0"


def test_links_absolute_inside_root_and_outside_scanned_paths(tree):
    d = tree / "usr/lib"
    d.mkdir(parents=True)
    # An absolute symlink is resolved inside the root, not on the host.
    os.symlink("/usr/local/lib/libpython3.12.so.1.0", d / "libpython3.12.so.1.0")
    os.symlink("../local/lib/libfoo.so", d / "libfoo.so")  # a linker script: not ELF
    os.symlink("/nowhere/libx.so", d / "libx.so")  # dangling
    res = scan(["/usr/lib"], root=str(tree))
    assert res.items == []
    assert res.links == {"/usr/lib/libpython3.12.so.1.0": "/usr/local/lib/libpython3.12.so.1.0"}
    res = scan(["/usr/lib", "/usr/local/lib"], root=str(tree))
    assert res.links == {"/usr/lib/libpython3.12.so.1.0": "/usr/local/lib/libpython3.12.so.1.0",
                         "/usr/local/lib/libpython3.12.so": "/usr/local/lib/libpython3.12.so.1.0"}


def test_given_symlink_to_library_is_a_link(tree):
    res = scan(["/usr/local/lib/libpython3.12.so"], root=str(tree))
    assert paths(res) == ["/usr/local/lib/libpython3.12.so.1.0"]
    assert res.links == {"/usr/local/lib/libpython3.12.so": "/usr/local/lib/libpython3.12.so.1.0"}


def test_resolve_in_root_never_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("inside\n")
    (root / "usr/lib").mkdir(parents=True)
    os.symlink("/../../../../etc/hostname", root / "usr/lib/abs")
    os.symlink("../../../../../../etc/hostname", root / "usr/lib/rel")
    os.symlink("/etc/passwd", root / "usr/lib/host")  # exists on the host, not in the root
    os.symlink("/usr", root / "usr/lib/dirlink")
    r = str(root)
    assert resolve_in_root(r, "/usr/lib/abs") == "/etc/hostname"
    assert resolve_in_root(r, "/usr/lib/rel") == "/etc/hostname"
    assert resolve_in_root(r, "/usr/lib/host") is None
    assert resolve_in_root(r, "/../../etc/hostname") == "/etc/hostname"
    assert resolve_in_root(r, "/usr/lib/dirlink/lib/abs") == "/etc/hostname"
    assert resolve_in_root(r, "/usr/lib") is None  # a folder, not a regular file
    assert resolve_in_root(r, "/etc/hostname/x") is None
    assert to_host(r, "/../../etc/passwd") == r + "/etc/passwd"
    assert to_host(r, "usr/lib") == r + "/usr/lib"
    assert to_host("/", "/usr/../lib") == "/lib"


def test_resolve_in_root_loop_limit(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "target").write_text("x")
    prev = "target"
    for i in range(45):
        os.symlink(prev, root / f"l{i}")
        prev = f"l{i}"
    assert resolve_in_root(str(root), "/l38") == "/target"  # 39 hops
    assert resolve_in_root(str(root), "/l39") == "/target"  # 40 hops
    assert resolve_in_root(str(root), "/l40") is None  # 41 hops


def test_non_utf8_file_names(tree, lib_bytes):
    d = os.fsencode(str(tree / "usr/local/lib"))
    with open(os.path.join(d, b"lib\xff\xfe.so"), "wb") as f:
        f.write(lib_bytes)
    os.mkdir(os.path.join(d, b"dir\xff"))
    with open(os.path.join(d, b"dir\xff", b"broken\xff.so"), "wb") as f:
        f.write(lib_bytes[:80])
    err = Errors()
    res = scan(["/usr/local/lib"], root=str(tree), diag=Diagnostics(file_error=err))
    weird = [i for i in res.items if "\udcff" in i.path]
    assert [i.path for i in weird] == ["/usr/local/lib/lib\udcff\udcfe.so"]
    assert os.path.exists(os.fsencode(weird[0].host_path))
    assert weird[0].info.soname == "libsrc.so.1"
    assert err == [("/usr/local/lib/dir\udcff/broken\udcff.so", "truncated program header table")]


def test_unreadable_folder(tree):
    if os.geteuid() == 0:
        pytest.skip("root can read a chmod 000 folder")
    d = tree / "usr/local/lib/secret"
    d.mkdir()
    d.chmod(0)
    try:
        err = Errors()
        res = scan(["/usr/local"], root=str(tree), diag=Diagnostics(file_error=err))
        assert err == [("/usr/local/lib/secret", "Permission denied")]
        assert len(res.items) == 4
    finally:
        d.chmod(0o755)


def test_file_removed_between_listing_and_open(tree, monkeypatch):
    victim = str(tree) + SP + "/pkg.libs/libvend-1a2b.so.1"
    real_open = os.open

    def racing_open(path, flags, mode=0o777, *, dir_fd=None):
        if os.fsdecode(path) == "libvend-1a2b.so.1" and dir_fd is not None and os.path.exists(victim):
            os.unlink(victim)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(walk.os, "open", racing_open)
    err = Errors()
    res = scan(["/usr/local"], root=str(tree), diag=Diagnostics(file_error=err))
    monkeypatch.undo()
    assert err == [(SP + "/pkg.libs/libvend-1a2b.so.1", "No such file or directory")]
    assert len(res.items) == 3


def test_missing_path_reported(tree):
    err = Errors()
    res = scan(["/nope"], root=str(tree), diag=Diagnostics(file_error=err))
    assert res.items == [] and err == [("/nope", "No such file or directory")]


def test_progress(tree):
    seen = []
    res = scan(["/usr/local"], root=str(tree), diag=Diagnostics(progress=seen.append))
    assert seen[-1] == res.files_seen == 6

"""Python import roots recognised by their content, whatever their path.

A ``pip install --target /app/deps`` folder has ``*.dist-info`` folders and
extension modules but no ``site-packages`` in its path; a library its
packages open by path (``ctypes``) is loaded into the interpreter's process
all the same, where the interpreter's ``Py*`` names bind. The fixtures are
real musl objects (Debian's musl-gcc); whether a library loads inside the
interpreter's process and outside one is what musl's loader says (the
stand-in interpreter ``dlopen``s it; ``ld-musl --list`` loads it alone),
never a value written here.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bindbuild import (MUSL_TAG, SITE, _db_block, build_c, interpreter_dlopen, loader_list, musl_root,
                       requires_musl, root_library_path)
from rundeps.api import CheckOptions, Sources, check_tree
from rundeps.inputs.pytree import import_roots, under_import_root
from rundeps.inputs.walk import scan

DEPS = "/app/deps"
MOD = f"_speed.{MUSL_TAG}.so"
HELPER = "libpyhelper.so"


# -- the rule, on paths ----------------------------------------------------------------


def test_a_folder_holding_distribution_metadata_is_a_root():
    assert import_roots({"/app/deps"}, set(), []) == {"/app/deps"}


def test_an_extension_module_roots_the_folder_above_its_outermost_package():
    packages = {"/t/pkg", "/t/pkg/sub"}
    assert import_roots(set(), packages, [f"/t/pkg/sub/_x.{MUSL_TAG}.so", "/t/pkg/libplain.so"]) == {"/t"}
    # a module outside any package: its own folder
    assert import_roots(set(), set(), ["/t/_top.abi3.so"]) == {"/t"}
    # a compiled __init__ makes its folder a package
    assert import_roots(set(), set(), [f"/t/pkg/__init__.{MUSL_TAG}.so"]) == {"/t"}


def test_plain_libraries_and_the_file_system_root_are_never_roots():
    assert import_roots(set(), {"/t/pkg"}, ["/t/pkg/libplain.so", "/t/pkg/libplain.so.1"]) == frozenset()
    assert import_roots({"/"}, set(), [f"/_x.{MUSL_TAG}.so"]) == frozenset()


def test_under_import_root():
    roots = frozenset({"/app/deps"})
    assert under_import_root("/app/deps/pyarrow/libarrow_python.so", roots)
    assert under_import_root("/app/deps/x.so", roots)
    assert not under_import_root("/app/depsx/x.so", roots)
    assert not under_import_root("/app/x.so", roots)


# -- the walks note what makes a root ----------------------------------------------------


def _touch(path: Path, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def marked_tree(tmp_path):
    """Real ELF files (a copy of this Python's own executable: the walk only
    reads headers) named as modules and libraries, in folders with and
    without the marks."""
    elf = Path(os.path.realpath(sys.executable)).read_bytes()
    root = tmp_path / "root"
    _touch(root / "a/deps/pkg-1.0.dist-info/METADATA", b"Name: pkg\n")
    _touch(root / "a/deps/pkg/__init__.py")
    _touch(root / "a/deps/pkg/libhelper.so", elf)
    _touch(root / "b/vendor/pkg/__init__.py")
    _touch(root / "b/vendor/pkg/sub/__init__.pyc")
    _touch(root / f"b/vendor/pkg/sub/_m.{MUSL_TAG}.so", elf)
    _touch(root / "c/plugins/pkg/__init__.py")
    _touch(root / "c/plugins/pkg/libplain.so", elf)
    return root


def test_the_walk_finds_the_roots(marked_tree):
    got = scan(["/"], root=str(marked_tree))
    assert got.python_roots == {"/a/deps", "/b/vendor"}


def test_a_warm_walk_finds_the_same_roots(marked_tree, tmp_path):
    from rundeps.inputs.filecache import FileCache

    with FileCache(str(tmp_path / "cache")) as cache:
        cold = scan(["/"], root=str(marked_tree), cache=cache)
    with FileCache(str(tmp_path / "cache")) as cache:
        warm = scan(["/"], root=str(marked_tree), cache=cache)
        # a mark added between two runs is seen though no file changed
        (marked_tree / "c/plugins/plain-1.0.dist-info").mkdir()
        third = scan(["/"], root=str(marked_tree), cache=cache)
    assert cold.python_roots == warm.python_roots == {"/a/deps", "/b/vendor"}
    assert third.python_roots == {"/a/deps", "/b/vendor", "/c/plugins"}


def test_the_image_walk_finds_the_same_roots(marked_tree, tmp_path):
    from scriptmods import ib
    from rundeps.inputs.image import open_image
    from rundeps.inputs.imagescan import scan_image

    layers = [ib.folder_layer(marked_tree)]
    img = ib.docker_archive(tmp_path / "marked.tar", layers, ib.config(layers))
    with open_image(str(img)) as tree:
        got = scan_image(tree, ["/"])
    assert got.python_roots == scan(["/"], root=str(marked_tree)).python_roots


# -- verdicts, held to musl's loader ---------------------------------------------------------

HELPER_SOURCE = ("void *PyLong_FromLong(long); extern char _Py_NoneStruct[];\n"
                 "void *helper(void){ return PyLong_FromLong(_Py_NoneStruct[0]); }\n")


def build_deps(folder: Path, lib: Path, dist_info: bool = True, module: bool = True) -> None:
    """What ``pip install --target`` leaves: a package whose extension module
    needs a library of an installed package, and a library it opens with
    ctypes that calls the interpreter's ``Py*`` functions."""
    pkg = folder / "speed"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(f"import ctypes, os\nctypes.CDLL(os.path.join(os.path.dirname(__file__), "
                                     f"{HELPER!r}))\n")
    if module:
        build_c(pkg, MOD, "int fixz(void); int f(void){ return fixz(); }\n", libs=[lib])
    build_c(pkg, HELPER, HELPER_SOURCE, soname=HELPER)
    if dist_info:
        info = folder / "speed-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: speed\nVersion: 1.0\n")
        (info / "RECORD").write_text(f"speed/__init__.py,,\nspeed/{MOD},,\nspeed/{HELPER},,\n")


def add_fixz(root: Path) -> Path:
    """``/usr/lib/libfixz.so.1``, owned by an installed package ``fixz``."""
    lib = build_c(root / "usr/lib", "libfixz.so.1", "int fixz(void){ return 3; }\n", soname="libfixz.so.1")
    db = root / "lib/apk/db/installed"
    db.write_text(db.read_text() + "\n" + _db_block("fixz", "1.0-r0", ["usr/lib/libfixz.so.1"],
                                                    provides=["so:libfixz.so.1=1"]))
    return lib


@pytest.fixture(scope="module")
def deps_root(tmp_path_factory):
    """A musl root with the stand-in interpreter and the same package three
    times: under a site-packages, in a plain ``/app/deps`` with its
    dist-info, and in ``/app/bare`` with neither dist-info nor module."""
    if shutil.which("musl-gcc") is None or not os.path.exists("/lib/ld-musl-x86_64.so.1"):
        pytest.skip("Debian's musl-gcc and musl loader are needed")
    root = musl_root(tmp_path_factory.mktemp("deps") / "root")
    lib = add_fixz(root)
    build_deps(root / SITE.lstrip("/"), lib)
    build_deps(root / DEPS.lstrip("/"), lib)
    build_deps(root / "app/nodist", lib, dist_info=False)
    build_deps(root / "app/bare", lib, dist_info=False, module=False)
    return root


def truth(root: Path, in_root: str):
    """musl's loader: (loads in the interpreter's process, loads alone)."""
    host = root / in_root.lstrip("/")
    lp = root_library_path(root)
    inside = interpreter_dlopen(root / "usr/local/bin/python3.12", [host], library_path=lp)[str(host)]
    alone = loader_list(host, library_path=lp)
    return inside, alone


def rundeps_scan(*args):
    env = dict(os.environ)
    for name in ("RUNDEPS_ROOT", "RUNDEPS_CACHE_DIR"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--no-cache", "--format", "json", *args],
                          capture_output=True, text=True, env=env, timeout=300)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else None, proc.stderr


@requires_musl
def test_the_fixture_is_what_the_tests_say(deps_root):
    inside, alone = truth(deps_root, f"{DEPS}/speed/{HELPER}")
    assert inside.ok, inside  # in the interpreter's process the Py* names bind
    assert not alone.ok and "PyLong_FromLong" in alone.all_missing, alone.output  # outside one they do not


@requires_musl
def test_a_plain_folder_with_dist_info_is_judged_as_a_site_packages(deps_root):
    helper = f"{DEPS}/speed/{HELPER}"
    inside, _alone = truth(deps_root, helper)
    code, out, err = rundeps_scan("--root", str(deps_root), DEPS)
    site_code, site_out, _ = rundeps_scan("--root", str(deps_root), SITE)
    assert (code == 0) == inside.ok, err
    assert code == site_code == 0, err
    assert out["packages"] == site_out["packages"] == ["fixz", "musl"]
    assert out["units"][helper] == "python_library"
    assert out["units"][f"{DEPS}/speed/{MOD}"] == "module"
    assert helper not in out["will_not_load"]


@requires_musl
def test_an_extension_module_alone_makes_its_folder_a_root(deps_root):
    code, out, err = rundeps_scan("--root", str(deps_root), "/app/nodist")
    assert code == 0, err
    assert out["units"][f"/app/nodist/speed/{HELPER}"] == "python_library"


@requires_musl
def test_without_either_mark_a_folder_is_not_a_root(deps_root):
    """Neither dist-info nor module: the library is opened by path by who
    knows what, and alone it does not load (musl's loader agrees)."""
    helper = f"/app/bare/speed/{HELPER}"
    _inside, alone = truth(deps_root, helper)
    code, out, err = rundeps_scan("--root", str(deps_root), "/app/bare")
    assert (code == 0) == alone.ok
    assert code == 1 and out["units"][helper] == "library"
    assert "PyLong_FromLong" in out["will_not_load"][helper]


@requires_musl
def test_python_tree_forces_a_root(deps_root):
    helper = f"/app/bare/speed/{HELPER}"
    inside, _alone = truth(deps_root, helper)
    code, out, err = rundeps_scan("--root", str(deps_root), "--python-tree", "/app/bare")
    assert (code == 0) == inside.ok, err
    assert out["units"][helper] == "python_library"
    res = check_tree(["/app/bare"], root=str(deps_root), sources=Sources(use_cache=False), explicit_root=True,
                     python_tree=True)
    assert res.units[helper] == "python_library" and not res.faults


@requires_musl
def test_no_python_tree_turns_the_inference_off(deps_root):
    helper = f"{DEPS}/speed/{HELPER}"
    _inside, alone = truth(deps_root, helper)
    code, out, err = rundeps_scan("--root", str(deps_root), "--no-python-tree", DEPS)
    assert (code == 0) == alone.ok
    assert code == 1 and out["units"][helper] == "library"
    # the path rule still holds
    code, out, err = rundeps_scan("--root", str(deps_root), "--no-python-tree", SITE)
    assert code == 0, err


@requires_musl
def test_without_an_interpreter_py_names_are_assumed(deps_root, tmp_path):
    """The same folder in a root with no Python: the interpreter's names are
    taken as there (the note says so), as for a bare prefix."""
    bare = musl_root(tmp_path / "root", interpreter=False)
    shutil.copytree(deps_root / "usr/lib", bare / "usr/lib", dirs_exist_ok=True)
    shutil.copyfile(deps_root / "lib/apk/db/installed", bare / "lib/apk/db/installed")
    shutil.copytree(deps_root / DEPS.lstrip("/"), bare / DEPS.lstrip("/"))
    helper = f"{DEPS}/speed/{HELPER}"
    inside, _alone = truth(deps_root, helper)
    res = check_tree([DEPS], root=str(bare), sources=Sources(use_cache=False), explicit_root=True)
    assert (helper not in res.faults) == inside.ok
    assert helper in res.binding.assumed_interpreter
    code, out, err = rundeps_scan("--root", str(bare), DEPS)
    assert code == 0 and "Py*/_Py* names taken as the interpreter's" in err, err


@requires_musl
def test_a_saved_image_gets_the_same_verdicts(deps_root, tmp_path):
    from scriptmods import ib

    layers = [ib.folder_layer(deps_root, keep=lambda rel: not rel.startswith("app/")),
              ib.folder_layer(deps_root, keep=lambda rel: rel.startswith("app/"))]
    img = ib.docker_archive(tmp_path / "deps.tar", layers, ib.config(layers), compress=[True, True])
    for args in ((DEPS,), ("--no-python-tree", DEPS), ("/app/bare",), ("--python-tree", "/app/bare")):
        by_root = rundeps_scan("--root", str(deps_root), *args)
        by_image = rundeps_scan("--image", str(img), *args)
        assert by_image[:2] == by_root[:2], args


@requires_musl
def test_a_cached_verdict_follows_the_folder_becoming_a_root(deps_root, tmp_path):
    """The walk's cache and the binding verdicts' cache: a verdict reached
    outside a Python process is not reused once the folder is an import
    root (a dist-info folder added, no ELF file changed), nor the other way."""
    root = tmp_path / "root"
    shutil.copytree(deps_root, root, symlinks=True)
    folder = root / "app/bare"
    helper = f"/app/bare/speed/{HELPER}"
    sources = Sources(cache_dir=str(tmp_path / "cache"))

    def faults():
        return check_tree(["/app/bare"], root=str(root), sources=sources,
                          options=CheckOptions(explicit_root=True)).faults

    assert helper in faults()
    assert helper in faults()  # warm: the same
    (folder / "speed-1.0.dist-info").mkdir()
    assert helper not in faults()
    assert helper not in faults()
    (folder / "speed-1.0.dist-info").rmdir()
    assert helper in faults()


@requires_musl
def test_a_host_folder_is_recognised_too(deps_root):
    """``scan PATH`` of a host folder (no --root): the same rule."""
    host = str(deps_root / DEPS.lstrip("/"))
    helper = f"{host}/speed/{HELPER}"
    db = str(deps_root / "lib/apk/db/installed")
    code, out, err = rundeps_scan("--db", db, "--arch", "x86_64", host)
    assert code == 0, err
    assert out["units"][helper] == "python_library"
    code, out, err = rundeps_scan("--db", db, "--arch", "x86_64", "--no-python-tree", host)
    assert code == 1 and out["units"][helper] == "library"

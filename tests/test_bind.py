"""Binding as musl binds, held to the real musl loader file by file.

Every fixture is a real object built with Debian's musl-gcc or with gcc
(glibc); every expected verdict comes from running the real loader on it
(``ld-musl-x86_64.so.1 --list FILE``, or ``dlopen`` from a musl-gcc
stand-in interpreter for extension modules), never from a value written here.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bindbuild import (
    SHARED_MUSL, SITE, build_binding_root, loader_verdicts, private_loader, requires_musl,
)
from rundeps.api import Sources, check_tree
from rundeps.bind import lfs64_base
from rundeps.resolve.units import python_prefix

pytestmark = [requires_musl, pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds glibc fixtures")]


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bind") / "root"
    cases = build_binding_root(root)
    return root, cases, loader_verdicts(root, cases)


def check(root, **kw):
    kw.setdefault("symbols", True)
    return check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), explicit_root=True, **kw)


def test_every_fixture_agrees_with_the_musl_loader(fixture_root):
    root, cases, truth = fixture_root
    res = check(root)
    assert res.binding is not None and "1.2.3" in res.binding.musl_description
    # the fixtures cover both verdicts
    assert {v.ok for v in truth.values()} == {True, False}
    for path, verdict in truth.items():
        assert (path not in res.will_not_load) == verdict.ok, (path, verdict, res.will_not_load.get(path))


def test_missing_symbols_are_the_ones_the_loader_names(fixture_root):
    root, cases, truth = fixture_root
    res = check(root)
    missing = res.binding.missing_symbols
    for path, verdict in truth.items():
        if cases[path].mode == "list":
            # --list relocates everything and names every symbol it cannot bind
            named = {}
            for obj, names in verdict.missing_symbols.items():
                inroot = "/" + os.path.relpath(os.path.realpath(obj), os.path.realpath(root))
                named[inroot] = sorted(names)
            for obj, names in named.items():
                assert missing.get(obj) == names, (path, obj)
        elif cases[path].mode == "dlopen" and not verdict.ok:
            # dlopen stops at the first: it is one of ours
            name = verdict.error.split(": ")[-2] if ": symbol not found" in verdict.error else None
            assert name is not None and name in missing.get(path, []), (path, verdict)


def test_missing_library_and_dependency_failures_are_named(fixture_root):
    root, cases, truth = fixture_root
    res = check(root)
    ml = f"{SITE}/missinglib/_ml.cpython-312-x86_64-linux-musl.so"
    assert truth[ml].missing_libraries == {"libnothere.so.1"}
    assert "libnothere.so.1" in res.will_not_load[ml]
    df = f"{SITE}/depfail/_df.cpython-312-x86_64-linux-musl.so"
    assert not truth[df].ok
    assert "/usr/local/lib/libbroken.so.1" in res.will_not_load[df]
    assert "gone_fn" in res.will_not_load["/usr/local/lib/libbroken.so.1"]


def test_modules_bind_in_the_interpreter_scope(fixture_root):
    root, cases, truth = fixture_root
    res = check(root)
    py = f"{SITE}/pyuse/_py.cpython-312-x86_64-linux-musl.so"
    assert truth[py].ok and py not in res.will_not_load
    assert res.binding.interpreter[py] == "/usr/local/bin/python3.12"
    # modules do not see each other's symbols (RTLD_LOCAL), even loaded earlier
    b = f"{SITE}/pair/_b.cpython-312-x86_64-linux-musl.so"
    assert not truth[b].ok and res.binding.missing_symbols[b] == ["a_shared"]


def test_hint_names_the_package_that_defines_the_missing_cxx_names(fixture_root):
    root, cases, truth = fixture_root
    res = check(root)
    cxx = f"{SITE}/underlinked/_cxx.cpython-312-x86_64-linux-musl.so"
    assert not truth[cxx].ok
    (hint,) = res.binding.hints[cxx]
    n = len(res.binding.missing_symbols[cxx])
    assert f"and {n - 1} more are defined by libstdc++.so.6 (libstdc++)" in hint
    assert "add it to DT_NEEDED (build with CXX=g++)" in hint


def test_hint_for_a_hidden_version(fixture_root):
    root, cases, truth = fixture_root
    res = check(root)
    hid = f"{SITE}/hidden/_hid.cpython-312-x86_64-linux-musl.so"
    assert not truth[hid].ok and truth[hid].symbols_of(root / hid.lstrip("/")) == {"hid_fn"}
    assert res.binding.hints[hid] == ["hid_fn is defined by libver.so.1 only under a hidden (non-default) "
                                      "symbol version, which musl's lookup skips"]


def test_glibc_file_that_binds_is_not_a_failure(fixture_root):
    root, cases, truth = fixture_root
    res = check(root)
    ok = f"{SITE}/glibcok/_ok.cpython-312-x86_64-linux-gnu.so"
    fort = f"{SITE}/fort/_fort.cpython-312-x86_64-linux-gnu.so"
    assert truth[ok].ok and not truth[fort].ok
    assert ok in res.glibc_linked and ok in res.binding.glibc_loads and ok not in res.will_not_load
    assert fort in res.will_not_load and fort not in res.binding.glibc_loads
    # musl's loader serves libc.so.6 itself
    assert res.providers["libc.so.6"].name == "musl"


@pytest.mark.skipif(not (SHARED_MUSL / "musl-1.2.5-r0-x86_64.so").exists(), reason="../shared/alpine absent")
def test_lfs64_names_bind_through_get_lfs64_on_musl_1_2_5(tmp_path):
    """musl 1.2.5 no longer exports stat64 & co.; its loader maps them. The
    real 1.2.5 loader (Alpine's, run from a copy) gives the truth."""
    musl = SHARED_MUSL / "musl-1.2.5-r0-x86_64.so"
    root = tmp_path / "root"
    cases = build_binding_root(root, musl_so=str(musl))
    loader = private_loader(tmp_path, musl)
    lfs = {p: c for p, c in cases.items() if "/lfs" in p or "/fort/" in p or "/glibcok/" in p}
    truth = loader_verdicts(root, lfs, loader=loader)
    res = check(root)
    assert "stat64" not in res.binding.musl.exports and res.binding.musl.lfs64
    for path, verdict in truth.items():
        assert (path not in res.will_not_load) == verdict.ok, (path, verdict)
        assert res.binding.missing_symbols.get(path, []) == sorted(verdict.all_missing), path
    assert truth[f"{SITE}/lfs/_lfs.cpython-312-x86_64-linux-gnu.so"].ok


def test_lfs64_base_follows_musl():
    assert lfs64_base("stat64") == "stat" and lfs64_base("readdir64_r") == "readdir_r"
    assert lfs64_base("fcntl64") is None and lfs64_base("64") is None


def test_python_prefix():
    assert python_prefix("/usr/local/lib/python3.12/site-packages/x.so") == ("/usr/local", "3.12")
    assert python_prefix("/opt/x.so") is None


def test_without_symbols_nothing_is_bound(fixture_root):
    root, cases, truth = fixture_root
    res = check(root, symbols=False)
    assert res.binding is None
    assert not any("symbol" in r for r in res.will_not_load.values())


def test_glibc_programs_need_their_loader(fixture_root):
    root, cases, truth = fixture_root
    res = check(root)
    for prog in ("/usr/local/bin/gfort", "/usr/local/bin/gonly"):
        assert not truth[prog].ok
        assert "its loader /lib64/ld-linux-x86-64.so.2 (glibc's) is not in the root" in res.will_not_load[prog]


@pytest.fixture(scope="module")
def gcompat_root(tmp_path_factory):
    from bindbuild import gcompat_verdicts, install_gcompat

    root = tmp_path_factory.mktemp("gcompat") / "root"
    cases = build_binding_root(root)
    lib = install_gcompat(root)
    glibc = {p: c for p, c in cases.items() if "-gnu.so" in p or "/bin/g" in p}
    return root, glibc, loader_verdicts(root, glibc), gcompat_verdicts(root, glibc, lib)


def test_gcompat_in_the_root_is_modelled(gcompat_root):
    """With gcompat installed: a glibc program runs through gcompat's loader
    (libgcompat preloaded); a module is opened by the musl interpreter, which
    gcompat's symbols reach only with LD_PRELOAD. Each verdict, with and
    without LD_PRELOAD, is the real loader's (a gcc-built stand-in
    libgcompat.so.0: there is no real gcompat here)."""
    root, cases, plain, with_gcompat = gcompat_root
    res = check(root)
    g = res.binding.gcompat
    assert {v.ok for v in with_gcompat.values()} == {True, False}
    for path, case in cases.items():
        if case.mode == "program":
            # the program's real verdict in this root is gcompat's
            assert (path not in res.will_not_load) == with_gcompat[path].ok, (path, with_gcompat[path])
            assert g[path].startswith("loads" if with_gcompat[path].ok else "will not load even with gcompat")
        else:
            assert (path not in res.will_not_load) == plain[path].ok, (path, plain[path])
            if plain[path].ok:
                assert g[path] == "loads (libgcompat.so.0 not needed)"
            elif with_gcompat[path].ok:
                assert g[path].startswith("loads only with LD_PRELOAD=/lib/libgcompat.so.0"), (path, g[path])
            else:
                assert g[path].startswith("will not load even with LD_PRELOAD"), (path, g[path])
    # gcompat's file named like glibc's loader satisfies a vendored library's DT_NEEDED
    vend = f"{SITE}/glibcvend/_v.cpython-312-x86_64-linux-gnu.so"
    assert plain[vend].ok and vend not in res.will_not_load


@pytest.mark.skipif(not (SHARED_MUSL / "musl-1.1.20-r6-x86_64.so").exists()
                    or not (SHARED_MUSL / "musl-1.2.5-r0-x86_64.so").exists(), reason="../shared/alpine absent")
def test_shipped_export_lists_agree_with_those_musl_loaders(tmp_path):
    """A root without its own ld-musl is checked against a shipped list
    (--musl picks it; the output names it). qsort_r came with musl 1.2.3:
    Alpine's 1.1.20 loader refuses the module, its 1.2.5 loader takes it."""
    from bindbuild import build_c, _db_block, loader_list

    root = tmp_path / "root"
    mod = build_c(root / SITE.lstrip("/") / "q", "_q.cpython-312-x86_64-linux-musl.so",
                  "#define _GNU_SOURCE\n#include <stdlib.h>\n"
                  "static int c(const void *a, const void *b, void *x){ return 0; }\n"
                  "void f(int *v, size_t n){ qsort_r(v, n, sizeof *v, c, 0); }\n")
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(_db_block("musl", "1.2.5-r0", []))
    for version, so in (("1.1.20", "musl-1.1.20-r6-x86_64.so"), ("1.2.5", "musl-1.2.5-r0-x86_64.so")):
        truth = loader_list(mod, loader=private_loader(tmp_path, SHARED_MUSL / so))
        res = check(root, musl_version=version)
        assert f"musl {version}" in res.binding.musl_description and "shipped" in res.binding.musl_description
        path = f"{SITE}/q/_q.cpython-312-x86_64-linux-musl.so"
        assert (path not in res.will_not_load) == truth.ok, (version, truth)
        assert res.binding.missing_symbols.get(path, []) == sorted(truth.all_missing)
    # with no --musl: the newest list
    res = check(root)
    from rundeps.bind import exports as muslexports
    assert res.binding.musl.version == muslexports.load(None, "x86_64").version


def test_alpine_release_picks_its_musl_list():
    from rundeps.bind import exports as muslexports
    from rundeps.bind import shipped_musl

    m = shipped_musl("x86_64", alpine="3.9")
    assert m.version == muslexports.musl_for_alpine("3.9") and "Alpine 3.9" in m.description


# -- the CLI: scan, why PATH, wheel -------------------------------------------------


def rundeps_cli(*args):
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rundeps", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=300)


def test_scan_names_each_failing_file_and_exits_1(fixture_root):
    root, cases, truth = fixture_root
    r = rundeps_cli("scan", "--root", root, "--symbols", "--no-cache", "--format", "json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    failing = {p for p, v in truth.items() if not v.ok}
    assert failing <= set(out["will_not_load"])
    assert out["musl"].startswith("musl 1.2.3")
    assert out["missing_symbols"][f"{SITE}/fort/_fort.cpython-312-x86_64-linux-gnu.so"] == ["__memcpy_chk",
                                                                                              "__printf_chk"]
    err = r.stderr.splitlines()
    for path in failing:
        if "/bin/g" in path or "missinglib" in path:
            continue  # a missing loader / a "not found" line name these
        assert sum(1 for ln in err if ln.startswith(f"rundeps: error: {path} will not load: ")) == 1, path
    assert any(ln.startswith("rundeps: hint: ") and "libstdc++.so.6 (libstdc++)" in ln for ln in err)
    assert "rundeps: hint: symbols checked against musl 1.2.3-r0 (the root's /lib/ld-musl-x86_64.so.1)" in err
    ok = f"{SITE}/glibcok/_ok.cpython-312-x86_64-linux-gnu.so"
    assert f"rundeps: warning: {ok} is glibc-linked, loads under musl (every symbol it needs binds)" in err
    # --no-symbols: sonames only (and the conservative glibc gate)
    out = json.loads(rundeps_cli("scan", "--root", root, "--no-cache", "--no-symbols", "--format", "json").stdout)
    assert f"{SITE}/short/_short.cpython-312-x86_64-linux-musl.so" not in out["will_not_load"]
    assert out["musl"] is None


def test_why_path_explains_one_file(fixture_root):
    root, cases, truth = fixture_root
    cxx = f"{SITE}/underlinked/_cxx.cpython-312-x86_64-linux-musl.so"
    r = rundeps_cli("why", cxx, "--root", root, "--symbols", "--no-cache")
    assert r.returncode == 1 and not truth[cxx].ok
    assert r.stdout.startswith(f"{cxx} will not load under musl: symbol not found: ")
    assert "opened by /usr/local/bin/python3.12 with RTLD_LOCAL" in r.stdout
    assert "hint: _ZNSolsEi and 5 more are defined by libstdc++.so.6 (libstdc++)" in r.stdout
    py = f"{SITE}/pyuse/_py.cpython-312-x86_64-linux-musl.so"
    r = rundeps_cli("why", py, "--root", root, "--symbols", "--no-cache", "--format", "json")
    assert r.returncode == 0 and truth[py].ok
    out = json.loads(r.stdout)
    assert out["loads"] is True and out["interpreter"] == "/usr/local/bin/python3.12"


def test_wheel_members_get_the_loaders_verdicts(tmp_path):
    """A manylinux wheel built from the fixtures: the FORTIFY member fails, the
    plain one loads, as the loader says of the same files; with --gcompat FILE
    (a stand-in libgcompat.so.0) the failing one loads only with LD_PRELOAD,
    as the loader says with that library preloaded."""
    import wheelbuild
    from bindbuild import GNU_TAG, build_c, loader_list

    work = tmp_path / "objs"
    fort = build_c(work, "_fort.so", "#include <string.h>\nchar b[8];\n"
                   "void f(const char *s, size_t n){ memcpy(b, s, n); }\n",
                   cc="glibc", cflags=["-O2", "-D_FORTIFY_SOURCE=2"])
    ok = build_c(work, "_ok.so", "#include <string.h>\nsize_t f(const char *s){ return strlen(s); }\n",
                 cc="glibc", cflags=["-O0"])
    members = [(f"pkg/_fort.{GNU_TAG}.so", fort.read_bytes()), (f"pkg/_ok.{GNU_TAG}.so", ok.read_bytes())]
    whl = wheelbuild.make_wheel(tmp_path / "dist", "pkg", "1.0", ["cp312-cp312-manylinux_2_17_x86_64"], members)
    r = rundeps_cli("wheel", whl, "--format", "json", "--cache-dir", tmp_path / "c")
    [out] = json.loads(r.stdout)
    truth = {f"/pkg/_fort.{GNU_TAG}.so": loader_list(fort), f"/pkg/_ok.{GNU_TAG}.so": loader_list(ok)}
    assert {v.ok for v in truth.values()} == {True, False}
    for member, verdict in truth.items():
        assert (member not in out["will_not_load"]) == verdict.ok, (member, verdict)
        assert out["missing_symbols"].get(member, []) == sorted(verdict.all_missing)
    assert out["ok"] is False and r.returncode == 1
    assert "musl 1.2.5" in out["musl"] and "shipped" in out["musl"]  # no root: the newest shipped list
    # gcompat from a real file
    lib = install_gcompat_lib(tmp_path)
    r = rundeps_cli("wheel", whl, "--format", "json", "--gcompat", lib, "--cache-dir", tmp_path / "c")
    [out] = json.loads(r.stdout)
    with_lib = loader_list(fort, preload=[lib])
    assert with_lib.ok
    assert out["gcompat"][f"/pkg/_fort.{GNU_TAG}.so"].startswith("loads only with LD_PRELOAD=")
    assert out["gcompat"][f"/pkg/_ok.{GNU_TAG}.so"] == "loads (libgcompat.so.0 not needed)"
    bad = rundeps_cli("wheel", whl, "--gcompat", whl, "--cache-dir", tmp_path / "c")
    assert bad.returncode == 2 and "--gcompat" in bad.stderr and "Traceback" not in bad.stderr


def install_gcompat_lib(tmp_path):
    from bindbuild import GCOMPAT_NAMES, build_c

    src = "\n".join(f"void *{n}(void) {{ return 0; }}" for n in GCOMPAT_NAMES)
    return build_c(tmp_path / "gcompat", "libgcompat.so.0", src, soname="libgcompat.so.0")


def test_a_file_for_another_arch_will_not_load(fixture_root, tmp_path):
    """musl's loader maps what it is given; a file for another machine cannot
    run in an x86_64 image whatever it binds to (readelf names its machine)."""
    from elfbuild import readelf_header
    from scriptmods import fz

    root = tmp_path / "root"
    shutil.copytree(fixture_root[0], root, symlinks=True)
    other = root / SITE.lstrip("/") / "arm" / "_arm.cpython-312-aarch64-linux-musl.so"
    other.parent.mkdir(parents=True)
    other.write_bytes(fz.craft_elf(machine=183, needed=("libc.musl-aarch64.so.1",)))
    header = readelf_header(other)
    if header is not None:
        assert "AArch64" in header["Machine"]
    res = check(root)
    assert res.will_not_load[f"{SITE}/arm/_arm.cpython-312-aarch64-linux-musl.so"] == "built for aarch64, not x86_64"


def test_a_library_not_at_hand_makes_symbols_unchecked_not_missing(tmp_path):
    """A module whose library comes from an index (not installed, no file):
    what it takes from that library cannot be checked, so it is not called
    missing; the JSON says which library was not at hand."""
    from bindbuild import _db_block, build_c

    root = tmp_path / "root"
    dep = build_c(tmp_path / "elsewhere", "libremote.so.1", "int remote_fn(void){return 1;}",
                  soname="libremote.so.1")
    build_c(root / SITE.lstrip("/") / "r", "_r.cpython-312-x86_64-linux-musl.so",
            "int remote_fn(void); int f(void){ return remote_fn(); }", libs=[dep])
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(_db_block("musl", "1.2.5-r0", []))
    from rundeps.apk.model import Package, Repository, Universe, parse_atom, parse_installed
    from rundeps.api import bind_symbols
    from rundeps.resolve import Resolution, Resolver, TreeFS
    from rundeps.inputs.walk import scan

    universe = Universe()
    universe.add(parse_installed((root / "lib/apk/db/installed").read_text()))
    universe.add(Repository([Package("libremote", "1.0-r0", provides=(parse_atom("so:libremote.so.1=1"),),
                                     source="https://example.invalid/main")], name="index"))
    items = scan(["/usr"], root=str(root)).items
    resolver = Resolver(universe, TreeFS(str(root), known={i.path: i.info for i in items}), arch="x86_64")
    res = resolver.resolve({i.path: i.info for i in items})
    mod = f"{SITE}/r/_r.cpython-312-x86_64-linux-musl.so"
    assert res.providers["libremote.so.1"].name == "libremote"
    binding = bind_symbols(res, resolver, str(root))
    assert mod not in Resolution.assemble(res, binding).will_not_load
    assert binding.unchecked == {mod: ["libremote.so.1"]}
    # the same module with its library at hand, lacking the symbol: missing
    build_c(root / "usr/lib", "libremote.so.1", "int other_fn(void){return 1;}", soname="libremote.so.1")
    items = scan(["/usr"], root=str(root)).items
    resolver = Resolver(universe, TreeFS(str(root), known={i.path: i.info for i in items}), arch="x86_64")
    res = resolver.resolve({i.path: i.info for i in items})
    binding = bind_symbols(res, resolver, str(root))
    assert binding.missing_symbols[mod] == ["remote_fn"] and mod in Resolution.assemble(res, binding).will_not_load
    from bindbuild import loader_list

    truth = loader_list(root / mod.lstrip("/"), library_path=[root / "usr/lib"])
    assert sorted(truth.all_missing) == ["remote_fn"]

"""musl's library search, rule by rule, held to Debian's musl loader.

Every fixture is built with ``musl-gcc``; the expected answer of each test is
what ``/lib/ld-musl-x86_64.so.1 --list`` (or running the program) does with
it.  Libraries get names no system carries, so the host's own folders never
answer.  Where the system path matters the program's ``PT_INTERP`` points
into the fixture (``<T>/lib/ld-musl-x86_64.so.1``), so the loader reads
``<T>/etc/ld-musl-x86_64.path``, not the host's.
"""

from __future__ import annotations

from rundeps.diagnostics import Diagnostics

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from muslbuild import (
    LOADER, build_exe, build_lib, can_bind_mount, have_musl, loader_list, parse_list, rundeps_list,
)

pytestmark = pytest.mark.skipif(not have_musl(), reason="needs musl-gcc and Debian's musl loader (x86_64)")


def lib(path, **kw):
    return build_lib(path, **kw)


def test_library_path_is_searched_before_the_run_path(tmp_path):
    # glibc searches DT_RPATH before LD_LIBRARY_PATH; musl searches LD_LIBRARY_PATH first.
    a = lib(tmp_path / "a/librdA.so")
    lib(tmp_path / "b/librdA.so")
    main = build_exe(tmp_path / "main", needed=[a], rpath=str(tmp_path / "b"))
    for library_path in (None, str(tmp_path / "a"), f"{tmp_path}/nowhere:\n{tmp_path}/a"):
        expected = loader_list(main, library_path=library_path)
        assert expected["librdA.so"] is not None
        assert rundeps_list(main, library_path=library_path) == expected
    assert loader_list(main, library_path=str(tmp_path / "a"))["librdA.so"] == str(tmp_path / "a/librdA.so")


def test_runpath_replaces_rpath_in_the_same_object(tmp_path):
    a = lib(tmp_path / "rp/librdB.so")
    lib(tmp_path / "run/librdB.so")
    main = build_exe(tmp_path / "main", needed=[a], both=(str(tmp_path / "rp"), str(tmp_path / "run")))
    expected = loader_list(main)
    assert expected == {"librdB.so": str(tmp_path / "run/librdB.so")}
    assert rundeps_list(main) == expected


def test_run_paths_are_inherited_down_the_needed_by_chain_runpath_too(tmp_path):
    # musl (unlike glibc) walks needed_by for DT_RUNPATH as well as DT_RPATH.
    leaf = lib(tmp_path / "deep/librdLeaf.so")
    mid = lib(tmp_path / "mid/librdMid.so", needed=[leaf])
    main = build_exe(tmp_path / "main", needed=[mid], runpath=f"{tmp_path}/mid:{tmp_path}/deep")
    expected = loader_list(main)
    assert expected["librdLeaf.so"] == str(leaf)
    assert rundeps_list(main) == expected


def test_origin_expands_in_both_spellings(tmp_path):
    a = lib(tmp_path / "app/lib1/librdC.so")
    b = lib(tmp_path / "app/lib2/librdD.so")
    main = build_exe(tmp_path / "app/bin/main", needed=[a, b], rpath="$ORIGIN/../lib1:${ORIGIN}/../lib2")
    expected = loader_list(main)
    assert None not in expected.values()
    # the loader prints the unnormalised path it opened
    assert {k: os.path.normpath(v) for k, v in expected.items()} == rundeps_list(main)


def test_any_other_dollar_token_drops_the_whole_run_path(tmp_path):
    # The issue says "an entry with any other $TOKEN is ignored"; musl's
    # fixup_rpath ignores the object's whole run path, the good entries too.
    a = lib(tmp_path / "good/librdE.so")
    main = build_exe(tmp_path / "main", needed=[a], rpath=f"{tmp_path}/good:$LIB/x")
    expected = loader_list(main)
    assert expected == {"librdE.so": None}
    assert rundeps_list(main) == expected
    main2 = build_exe(tmp_path / "main2", needed=[a], rpath=f"{tmp_path}/good:$ORIGIN/x")
    assert rundeps_list(main2) == loader_list(main2) == {"librdE.so": str(a)}


def test_path_file_comes_from_pt_interp_and_splits_on_colon_and_newline(tmp_path):
    t = tmp_path / "T"
    interp = f"{t}/lib/ld-musl-x86_64.so.1"
    a = lib(t / "opt/z/librdF.so")
    b = lib(t / "opt/y/librdG.so")
    main = build_exe(t / "main", needed=[a, b], interp=interp)
    assert set(loader_list(main).values()) == {None}  # no path file: the (host's) default path
    assert rundeps_list(main) == loader_list(main)
    (t / "etc").mkdir()
    (t / "etc/ld-musl-x86_64.path").write_text(f"{t}/opt/x:{t}/opt/y\n\n{t}/opt/z\n")
    expected = loader_list(main)
    assert expected == {"librdF.so": str(a), "librdG.so": str(b)}
    assert rundeps_list(main) == expected


def test_path_file_prefix_is_the_interpreter_minus_two_components(tmp_path):
    # /T/usr/glibc-free/ld-musl-x86_64.so.1 -> prefix /T/usr
    t = tmp_path / "T"
    a = lib(t / "vendor/librdH.so")
    main = build_exe(t / "main", needed=[a], interp=f"{t}/usr/x/ld-musl-x86_64.so.1")
    (t / "usr/etc").mkdir(parents=True)
    (t / "usr/etc/ld-musl-x86_64.path").write_text(f"{t}/vendor\n")
    expected = loader_list(main)
    assert expected == {"librdH.so": str(a)}
    assert rundeps_list(main) == expected


@pytest.mark.skipif(not can_bind_mount(), reason="needs a private mount namespace (unshare, root)")
def test_an_empty_path_file_replaces_the_default_path(tmp_path):
    # The default path is /lib:/usr/local/lib:/usr/lib: a folder of the
    # fixture is bind-mounted over /usr/local/lib for the loader and rundeps alike.
    t = tmp_path / "T"
    (t / "lib").mkdir(parents=True)
    ulocal = tmp_path / "ulocal"
    a = lib(ulocal / "librdI.so")
    main = build_exe(t / "main", needed=[a], interp=f"{t}/lib/ld-musl-x86_64.so.1")
    binds = [(str(ulocal), "/usr/local/lib")]
    expected = loader_list(main, binds=binds)
    assert expected == {"librdI.so": "/usr/local/lib/librdI.so"}
    assert rundeps_list(main, binds=binds) == expected
    (t / "etc").mkdir()
    (t / "etc/ld-musl-x86_64.path").write_text("")
    expected = loader_list(main, binds=binds)
    assert expected == {"librdI.so": None}
    assert rundeps_list(main, binds=binds) == expected


def test_a_name_already_loaded_is_reused_by_basename_not_searched(tmp_path):
    # main needs libone (found in one/, run path $ORIGIN/private) and libtwo
    # (no run path). libone's dependency libshared is found in one/private;
    # libtwo needs libshared too, and its own search would find nothing:
    # musl reuses the library already loaded under that name.
    shared = lib(tmp_path / "one/private/librdShared.so")
    one = lib(tmp_path / "one/librdOne.so", needed=[shared], rpath="$ORIGIN/private")
    two = lib(tmp_path / "two/librdTwo.so", needed=[shared])
    main = build_exe(tmp_path / "main", needed=[one, two], rpath=f"{tmp_path}/one:{tmp_path}/two")
    expected = loader_list(main)
    assert expected["librdShared.so"] == str(shared)
    assert rundeps_list(main) == expected


def test_reuse_is_by_file_name_never_by_soname(tmp_path):
    # d/librdReal.so carries DT_SONAME librdAlias.so. Once it is loaded (as
    # librdReal.so), a need of librdAlias.so is still searched for: musl
    # matches the names libraries were found under, never DT_SONAME (glibc
    # would reuse it).
    stub_real = lib(tmp_path / "stubs/a/librdReal.so")
    stub_alias = lib(tmp_path / "stubs/b/librdAlias.so")
    lib(tmp_path / "d/librdReal.so", soname="librdAlias.so")
    user = lib(tmp_path / "u/librdUser.so", needed=[stub_alias])
    main = build_exe(tmp_path / "main", needed=[stub_real, user], rpath=f"{tmp_path}/d:{tmp_path}/u")
    expected = loader_list(main)
    assert expected == {"librdReal.so": str(tmp_path / "d/librdReal.so"), "librdUser.so": str(user),
                        "librdAlias.so": None}
    assert rundeps_list(main) == expected


def _world_readable_tmp():
    d = tempfile.mkdtemp(prefix="rundeps-secure-", dir="/tmp")
    os.chmod(d, 0o755)
    return Path(d)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a setuid program for another user")
def test_setuid_program_ignores_library_path_and_its_origin():
    # libc.secure: the kernel sets AT_SECURE for a setuid program run by
    # another user. The expected answer is the program's own run.
    d = _world_readable_tmp()
    try:
        a = lib(d / "libs/librdJ.so")
        b = lib(d / "bin/lib/librdK.so")
        plain = build_exe(d / "bin/plain", needed=[a])
        origin = build_exe(d / "bin/origin", needed=[b], rpath="$ORIGIN/lib")
        env = dict(os.environ, LD_LIBRARY_PATH=str(d / "libs"))
        assert subprocess.run([str(plain)], env=env).returncode == 0
        assert subprocess.run([str(origin)]).returncode == 0
        assert rundeps_list(plain, library_path=str(d / "libs")) == {"librdJ.so": str(a)}
        assert rundeps_list(origin) == {"librdK.so": str(b)}
        nobody = 65534
        for exe in (plain, origin):
            os.chown(exe, nobody, nobody)
            os.chmod(exe, 0o4755)
        ran = subprocess.run([str(plain)], env=env, capture_output=True, text=True)
        assert ran.returncode == 127 and "librdJ.so" in ran.stderr
        ran = subprocess.run([str(origin)], capture_output=True, text=True)
        assert ran.returncode == 127 and "librdK.so" in ran.stderr
        assert rundeps_list(plain, library_path=str(d / "libs")) == {"librdJ.so": None}
        assert rundeps_list(origin) == {"librdK.so": None}
    finally:
        shutil.rmtree(d)


DLOPEN_CALLER = r"""
#include <dlfcn.h>
#include <stdio.h>
int rundeps_try(const char *name) {
    void *h = dlopen(name, RTLD_NOW);
    printf("%s %s\n", name, h ? "ok" : "fail");
    return h != 0;
}
"""

DLOPEN_MAIN = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *m = dlopen(argv[1], RTLD_NOW);
    if (!m) { printf("module fail %s\n", dlerror()); return 2; }
    int (*t)(const char *) = (int (*)(const char *))dlsym(m, "rundeps_try");
    return t(argv[2]) ? 0 : 1;
}
"""


def test_run_time_loads_search_the_main_program_run_path_not_the_callers(tmp_path):
    # The module (RPATH mod_only/) calls dlopen("librdL.so"): musl searches
    # with the main program as needed_by, so main's RPATH (main_only/) counts
    # and the module's own does not.
    lib(tmp_path / "mod_only/librdL.so")
    lib(tmp_path / "main_only/librdM.so")
    module = build_lib(tmp_path / "mods/caller.so", rpath=f"{tmp_path}/mod_only", source=DLOPEN_CALLER)
    main = build_exe(tmp_path / "bin/prog", rpath=f"{tmp_path}/main_only", source=DLOPEN_MAIN)
    outcome = {}
    for name in ("librdL.so", "librdM.so"):
        ran = subprocess.run([LOADER, str(main), str(module), name], capture_output=True, text=True)
        outcome[name] = ran.returncode == 0
    assert outcome == {"librdL.so": False, "librdM.so": True}

    from rundeps.apk.model import Universe, parse_installed
    from rundeps.loads.dlopen import DlopenFinding
    from rundeps.loads.providers import resolve_findings
    from rundeps.resolve import Resolver, TreeFS
    from rundeps.inputs.walk import scan

    universe = Universe()
    universe.add(parse_installed("P:musl\nV:1.2.3-r0\nA:x86_64\n\n"))
    objects = {i.path: i.info for i in scan([str(tmp_path)], root="/").items}
    res = Resolver(universe, TreeFS("/"), arch="x86_64", main_program=str(main)).resolve(objects)
    findings = [DlopenFinding(name, str(tmp_path / "mods/caller.py"), n, "ctypes.CDLL")
                for n, name in enumerate(("librdL.so", "librdM.so"), 1)]
    _, unresolved = resolve_findings(findings, res)
    assert {f.name: f not in unresolved for f in findings} == outcome


def _note_source(entries) -> str:
    """C source of a library carrying one ``.note.dlopen`` note (the layout
    of systemd's SD_ELF_NOTE_DLOPEN) with ``entries`` as its JSON, plus
    DLOPEN_CALLER."""
    text = json.dumps(entries).replace("\\", "\\\\").replace('"', '\\"')
    return DLOPEN_CALLER + f"""
#include <stdint.h>
#define RD_JSON "{text}"
__attribute__((used, section(".note.dlopen"), aligned(4))) static const struct {{
    struct {{ uint32_t n_namesz, n_descsz, n_type; }} nhdr;
    char name[4];
    _Alignas(4) char json[sizeof(RD_JSON)];
}} rd_note = {{ {{ 4, sizeof(RD_JSON), 0x407c0c0a }}, "FDO", RD_JSON }};
"""


NOTE_ENTRIES = [
    {"feature": "req", "priority": "required", "soname": ["librdNoteReq.so.1"]},
    {"feature": "rec", "priority": "recommended", "soname": ["librdNoteRec.so.1"]},
    {"feature": "sug", "priority": "suggested", "soname": ["librdNoteSug.so.1"]},
    {"feature": "alt", "priority": "required", "soname": ["librdMissing.so.9", "librdNoteAlt.so.2"]},
    {"feature": "dflt", "soname": ["librdNoteDefault.so.1"]},
    {"feature": "vendored", "priority": "required", "soname": ["librdVendored.so"]},
]

NOTE_DB = "".join(
    f"P:{pkg}\nV:1-r0\nA:x86_64\np:so:{so}=1\n\n"
    for pkg, so in [("musl", "libc.musl-x86_64.so.1"), ("rd-req", "librdNoteReq.so.1"),
                    ("rd-rec", "librdNoteRec.so.1"), ("rd-sug", "librdNoteSug.so.1"),
                    ("rd-alt", "librdNoteAlt.so.2"), ("rd-default", "librdNoteDefault.so.1")]
)


def test_dlopen_notes_are_read_by_both_readers(tmp_path):
    from rundeps.elf import read_elf, read_elf_path

    noted = build_lib(tmp_path / "libnoted.so", source=_note_source(NOTE_ENTRIES))
    info = read_elf_path(noted)
    with open(noted, "rb") as f:
        assert read_elf(f, reader="pyelftools") == info
    # readelf sees one FDO note of the dlopen type in the file
    notes = subprocess.run(["readelf", "-n", str(noted)], capture_output=True, text=True).stdout
    assert "FDO" in notes and "0x407c0c0a" in notes
    assert info.dlopen_notes == tuple(
        (e.get("priority", "recommended"), tuple(e["soname"])) for e in NOTE_ENTRIES)
    plain = build_lib(tmp_path / "libplain.so")
    assert read_elf_path(plain).dlopen_notes == ()


def test_only_required_dlopen_notes_join_the_set_searched_from_the_main_program(tmp_path):
    from rundeps.apk.model import Universe, parse_installed
    from rundeps.resolve import Resolver, TreeFS
    from rundeps.inputs.walk import scan

    vendored = lib(tmp_path / "app/vendor/librdVendored.so")
    noted = build_lib(tmp_path / "app/mods/libnoted.so", source=_note_source(NOTE_ENTRIES),
                      rpath=f"{tmp_path}/nowhere")
    main = build_exe(tmp_path / "app/bin/prog", runpath="$ORIGIN/../vendor", source=DLOPEN_MAIN)
    # the real loader: the module's dlopen("librdVendored.so") is served by main's run path
    ran = subprocess.run([LOADER, str(main), str(noted), "librdVendored.so"], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    universe = Universe()
    universe.add(parse_installed(NOTE_DB))
    objects = {i.path: i.info for i in scan([str(tmp_path / "app/mods")], root="/").items}
    warnings = []
    res = Resolver(universe, TreeFS("/"), arch="x86_64", main_program=str(main),
                   diag=Diagnostics(warning=warnings.append)).resolve(objects)
    names = {p.name for p in res.all_packages}
    assert {"rd-req", "rd-alt"} <= names
    assert not names & {"rd-rec", "rd-sug", "rd-default"}
    chosen = {n["sonames"][-1]: (n["priority"], n["soname"], n["library"]) for n in res.note_loads}
    assert chosen["librdNoteAlt.so.2"] == ("required", "librdNoteAlt.so.2", None)
    assert chosen["librdVendored.so"] == ("required", "librdVendored.so", str(vendored))
    assert chosen["librdNoteRec.so.1"] == ("recommended", None, None)
    assert not warnings

    # without the main program's run path the vendored library is not found: a warning, not a failure
    warnings.clear()
    res = Resolver(universe, TreeFS("/"), arch="x86_64", main_program=str(tmp_path / "none"),
                   diag=Diagnostics(warning=warnings.append)).resolve(objects)
    assert not res.unresolved
    assert any("librdVendored.so" in w for w in warnings)


def test_scan_library_path_option(tmp_path):
    a = lib(tmp_path / "t/libs/librdN.so")
    build_exe(tmp_path / "t/bin/prog", needed=[a])
    (tmp_path / "t/libs/librdN.so").rename(tmp_path / "elsewhere.so")
    (tmp_path / "extra").mkdir()
    (tmp_path / "elsewhere.so").rename(tmp_path / "extra/librdN.so")
    db = tmp_path / "installed"
    db.write_text("P:musl\nV:1.2.3-r0\nA:x86_64\np:so:libc.musl-x86_64.so.1=1\n\n")
    prog = str(tmp_path / "t/bin/prog")
    expected = loader_list(prog, library_path=str(tmp_path / "extra"))
    assert expected == {"librdN.so": str(tmp_path / "extra/librdN.so")}
    base = [sys.executable, "-m", "rundeps", "scan", "--no-cache", "--db", str(db), "--format", "json", prog]
    ok = subprocess.run(base + ["--library-path", str(tmp_path / "extra")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["in_tree"] == expected
    assert loader_list(prog) == {"librdN.so": None}
    bad = subprocess.run(base, capture_output=True, text=True)
    assert bad.returncode == 1 and "librdN.so" in json.loads(bad.stdout)["unresolved"]

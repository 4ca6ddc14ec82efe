"""The load model, held to musl's real loader case by case.

What gets a verdict of its own, how a load searches for its libraries (the
requester's RUNPATH/RPATH and every one up the chain, reuse by file name),
the interpreter's scope, and musl's refusals besides missing names (initial-
exec TLS at dlopen time, IRELATIVE, IFUNC definitions). Every fixture is a
real object built with Debian's musl-gcc; every expected verdict comes from
running the real loader on it -- ``dlopen`` (RTLD_NOW|RTLD_LOCAL) from a
musl-gcc stand-in interpreter for what is opened at run time, ``ld-musl
--list`` for a program -- never from a value written here. For a refusal
the fault kind is the one musl's own message names, and the fault's chain
ends at the object musl names.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

from bindbuild import (
    MUSL_LOADER, MUSL_TAG, SITE, build_c, dynamic_symbol_types, dynamic_tags, interpreter_dlopen, loader_list,
    musl_root, relocation_types, requires_musl, root_library_path,
)
from rundeps.api import Sources, check_tree

pytestmark = requires_musl

S = SITE.lstrip("/")


# -- the loader's side ----------------------------------------------------------------


class Truth:
    """What musl's loader said about one unit: ``ok``, and its message when not."""

    def __init__(self, ok: bool, message: str, how: str):
        self.ok, self.message, self.how = ok, message, how

    def __repr__(self) -> str:
        return f"musl ({self.how}): " + ("loads" if self.ok else self.message)


# musl's messages (ldso/dynlink.c) -> the fault kind that names them; first match wins
MUSL_MESSAGES = (
    ("initial-exec TLS resolves to dynamic definition", "tls"),
    ("unsupported relocation type", "relocation"),
    ("symbol not found", "missing_symbol"),
    ("Error loading shared library", "missing_library"),
    ("not found", "missing_library"),
)


def musl_kind(message: str) -> Optional[str]:
    for text, kind in MUSL_MESSAGES:
        if text in message:
            return kind
    return None


def in_root(host: str, root) -> Optional[str]:
    """The in-root path of a host path the loader printed (it may hold ``..``)."""
    p, r = os.path.realpath(host), os.path.realpath(str(root))
    return "/" + os.path.relpath(p, r) if p.startswith(r + os.sep) else None


def failing_object(message: str, root) -> Optional[str]:
    """The in-root path of the object musl's message says fails, if it names one:
    the object being relocated, or the one whose DT_NEEDED was not found."""
    m = re.search(r"Error relocating (\S+?): ", message)
    if m:
        return in_root(m.group(1), root)
    m = re.search(r"\(needed by (\S+)\)", message)
    if m:
        return in_root(m.group(1), root)
    return None


def musl_names(message: str) -> Optional[str]:
    """The symbol or library musl's message names, if any."""
    m = re.search(r"Error relocating \S+?: (\S+): symbol not found", message)
    if m:
        return m.group(1)
    m = re.search(r"Error loading shared library (\S+?): ", message)
    if m:
        return m.group(1)
    return None


def loader_truth(root, units: Dict[str, str], loader: Optional[str] = None) -> Dict[str, Truth]:
    """``units``: in-root path -> ``dlopen`` (the stand-in interpreter opens it,
    each in its own process) or ``list`` (a program, ``ld-musl --list``);
    ``loader``: the musl loader to run them under (default Debian's, the
    stand-in's own ``PT_INTERP``)."""
    root = Path(root)
    lp = root_library_path(root)
    interp = root / "usr/local/bin/python3.12"
    run = None if loader in (None, MUSL_LOADER) else loader
    out: Dict[str, Truth] = {}
    for path, how in units.items():
        host = root / path.lstrip("/")
        if how == "dlopen":
            v = interpreter_dlopen(interp, [host], library_path=lp, loader=run)[str(host)]
            out[path] = Truth(v.ok, v.error, how)
        else:
            v = loader_list(host, library_path=lp, loader=loader or MUSL_LOADER)
            errors = [ln.strip() for ln in v.output.splitlines() if ln.strip().startswith("Error")]
            out[path] = Truth(v.ok, errors[0] if errors else v.output.strip(), how)
    return out


# -- rundeps' side --------------------------------------------------------------------


def check(root):
    return check_tree(["/usr/local"], root=str(root), sources=Sources(use_cache=False), explicit_root=True,
                      symbols=True)


def rundeps_scan(root):
    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "rundeps", "scan", "--root", str(root), "--no-cache", "/usr/local"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=300)


def assert_agrees(res, root, path: str, truth: Truth) -> None:
    """rundeps' verdict on ``path`` is the loader's; a refusal is of the kind
    musl's message names, its chain runs from ``path`` to the object musl names."""
    reason = res.will_not_load.get(path)
    assert (reason is None) == truth.ok, f"{path}: {truth}; rundeps: {reason or 'loads'}"
    if truth.ok:
        return
    kind = musl_kind(truth.message)
    assert kind is not None, f"unrecognised musl message: {truth.message}"
    fault = res.faults[path]
    assert fault.kind == kind, (path, truth, fault.kind, fault.reason)
    assert fault.chain and fault.chain[0] == path, (path, fault.chain)
    named = failing_object(truth.message, root)
    if named is not None:
        assert fault.chain[-1] == named, (path, truth, fault.chain)
        if named == path:
            assert tuple(fault.chain) == (path,), (path, truth, fault.chain)
    # the reason names what musl names: the symbol, or the library not found
    what = musl_names(truth.message)
    if what:
        assert what in reason and what in fault.reason, (path, truth, reason, fault.reason)


# -- the fixture root: one folder per case --------------------------------------------


def search_path_flags(tag: str, path: str):
    """Link flags for a DT_RPATH (``tag`` "RPATH") or DT_RUNPATH ("RUNPATH") of ``path``."""
    return ["-Wl,--disable-new-dtags" if tag == "RPATH" else "-Wl,--enable-new-dtags", f"-Wl,-rpath,{path}"]


def mod_name(stem: str) -> str:
    return f"{stem}.{MUSL_TAG}.so"


VENDOR_HASHES = {  # (case, tag) -> the auditwheel-style hashes of liba, libb
    ("a", "RPATH"): ("1234", "5678"), ("a", "RUNPATH"): ("12ab", "56ab"),
    ("b", "RPATH"): ("9a01", "9b01"), ("b", "RUNPATH"): ("9a02", "9b02"),
}


def build_vendored(site: Path, case: str, tag: str) -> Dict[str, str]:
    """(a) greenlet-style: the module (RPATH/RUNPATH ``$ORIGIN/../PKG.libs``)
    needs liba and libb; liba (no search path) needs libb. (b) the same, but
    the module needs only liba: libb is found through the module's path up
    the chain."""
    pkg = f"vend{case}_{tag.lower()}"
    ha, hb = VENDOR_HASHES[case, tag]
    libs = site / f"{pkg}.libs"
    libb = build_c(libs, f"libb-{hb}.so", "int b_fn(void){return 2;}", soname=f"libb-{hb}.so")
    liba = build_c(libs, f"liba-{ha}.so", "int b_fn(void); int a_fn(void){return b_fn() + 1;}",
                   soname=f"liba-{ha}.so", libs=[libb])
    if case == "a":
        mod = build_c(site / pkg, mod_name("_mod"),
                      "int a_fn(void); int b_fn(void); int f(void){return a_fn() + b_fn();}",
                      libs=[liba, libb], ldflags=search_path_flags(tag, f"$ORIGIN/../{pkg}.libs"))
    else:
        mod = build_c(site / pkg, mod_name("_mod"), "int a_fn(void); int f(void){return a_fn();}",
                      libs=[liba], ldflags=search_path_flags(tag, f"$ORIGIN/../{pkg}.libs"))
    # the fixture is what the case says
    assert dynamic_tags(mod)[tag] == [f"$ORIGIN/../{pkg}.libs"]
    assert dynamic_tags(mod)["NEEDED"][:2] == ([f"liba-{ha}.so", f"libb-{hb}.so"] if case == "a" else
                                               [f"liba-{ha}.so", "libc.so"])
    assert "RPATH" not in dynamic_tags(liba) and "RUNPATH" not in dynamic_tags(liba)
    assert f"libb-{hb}.so" in dynamic_tags(liba)["NEEDED"]
    return {f"{SITE}/{pkg}/{mod_name('_mod')}": "dlopen"}


def build_pyuser(site: Path) -> Dict[str, str]:
    """(d) libraries under site-packages (not .libs, not module-named) that call
    the interpreter's ``Py*`` functions, opened by path (ctypes)."""
    d = site / "pyuse_lib"
    build_c(d, "libpyuser.so.100", "void *PyLong_FromLong(long); extern char _Py_NoneStruct[];\n"
            "void *pyuser(void){ return PyLong_FromLong(_Py_NoneStruct[0]); }\n", soname="libpyuser.so.100")
    build_c(d, "libpybad.so.100", "void *PyLong_FromLong(long); void *PyNothing_Here(void);\n"
            "void *pybad(void){ PyNothing_Here(); return PyLong_FromLong(1); }\n", soname="libpybad.so.100")
    return {f"{SITE}/pyuse_lib/libpyuser.so.100": "dlopen", f"{SITE}/pyuse_lib/libpybad.so.100": "dlopen"}


def build_ie_tls(root: Path, site: Path) -> Dict[str, str]:
    """(e) initial-exec TLS: a module's own static __thread; a module's IE access
    to a __thread variable of a library it loads; the same in a program."""
    ie = ["-ftls-model=initial-exec", "-O1"]
    local = build_c(site / "ietls", mod_name("_local"),
                    "static __thread int counter;\nint bump(void){ return ++counter; }\n", cflags=ie)
    tlsdef = build_c(site / "ietls.libs", "libtlsdef-3333.so", "__thread int shared_tls = 7;\n"
                     "int tls_get(void){ return shared_tls; }\n", soname="libtlsdef-3333.so")
    extern = build_c(site / "ietls", mod_name("_extern"),
                     "extern __thread int shared_tls;\nint get(void){ return shared_tls; }\n", cflags=ie,
                     libs=[tlsdef], ldflags=search_path_flags("RPATH", "$ORIGIN/../ietls.libs"))
    progtls = build_c(root / "usr/local/lib", "libprogtls.so.1", "__thread int prog_tls = 3;\n"
                      "int prog_tls_get(void){ return prog_tls; }\n", soname="libprogtls.so.1")
    prog = build_c(root / "usr/local/bin", "ieprog",
                   "extern __thread int prog_tls;\nstatic __thread int mine;\n"
                   "int main(void){ mine = prog_tls; return mine - 3; }\n",
                   shared=False, cflags=ie, libs=[progtls], runpath="$ORIGIN/../lib")
    for obj in (local, extern, prog):  # each really holds initial-exec TLS relocations
        assert "R_X86_64_TPOFF64" in relocation_types(obj), (obj, relocation_types(obj))
    return {f"{SITE}/ietls/{mod_name('_local')}": "dlopen", f"{SITE}/ietls/{mod_name('_extern')}": "dlopen",
            "/usr/local/bin/ieprog": "list", "/usr/local/lib/libprogtls.so.1": "dlopen"}


def ifunc_body(name: str) -> str:
    """An implementation and the resolver ``resolve_NAME`` that picks it."""
    return ("static int impl(void){ return 42; }\n"
            f"static int (*resolve_{name}(void))(void){{ return impl; }}\n")


def build_ifunc(site: Path) -> Dict[str, str]:
    """(f) a module calling an IFUNC of its own (R_X86_64_IRELATIVE); (g) a module
    needing a name its library defines only as an IFUNC."""
    irel = build_c(site / "irel", mod_name("_irel"),
                   ifunc_body("fn") + "static int fn(void) __attribute__((ifunc(\"resolve_fn\")));\n"
                   "int call(void){ return fn(); }\n")
    assert "R_X86_64_IRELATIVE" in relocation_types(irel), relocation_types(irel)
    ifn = build_c(site / "ifn.libs", "libifn-4444.so",
                  ifunc_body("gfn") + "int gfn(void) __attribute__((ifunc(\"resolve_gfn\")));\n"
                  "int plain_fn(void){ return 1; }\n", soname="libifn-4444.so")
    assert dynamic_symbol_types(ifn)["gfn"] == "IFUNC"
    build_c(site / "ifn", mod_name("_ifn"), "int gfn(void); int plain_fn(void);\n"
            "int f(void){ return gfn() + plain_fn(); }\n", libs=[ifn],
            ldflags=search_path_flags("RPATH", "$ORIGIN/../ifn.libs"))
    return {f"{SITE}/irel/{mod_name('_irel')}": "dlopen", f"{SITE}/ifn/{mod_name('_ifn')}": "dlopen"}


def build_weak(site: Path) -> Dict[str, str]:
    """(h) a weak undefined reference to a name nothing defines."""
    build_c(site / "weakref", mod_name("_weak"),
            "extern int nothing_defines_this(void) __attribute__((weak));\n"
            "int f(void){ return nothing_defines_this ? nothing_defines_this() : 0; }\n")
    return {f"{SITE}/weakref/{mod_name('_weak')}": "dlopen"}


def build_shared_dep(site: Path) -> Dict[str, str]:
    """(i) two modules load the same vendored library (share.libs/libshared, no
    search path of its own); its dependency is in a folder only module one's
    RPATH names."""
    dep = build_c(site / "shareone.libs", "libdep-2222.so", "int dep_fn(void){ return 5; }", soname="libdep-2222.so")
    shared = build_c(site / "share.libs", "libshared-1111.so",
                     "int dep_fn(void); int shared_fn(void){ return dep_fn(); }",
                     soname="libshared-1111.so", libs=[dep])
    src = "int shared_fn(void); int f(void){ return shared_fn(); }\n"
    build_c(site / "share/one", mod_name("_one"), src, libs=[shared],
            ldflags=search_path_flags("RPATH", "$ORIGIN/../../share.libs:$ORIGIN/../../shareone.libs"))
    build_c(site / "share/two", mod_name("_two"), src, libs=[shared],
            ldflags=search_path_flags("RPATH", "$ORIGIN/../../share.libs"))
    return {f"{SITE}/share/one/{mod_name('_one')}": "dlopen", f"{SITE}/share/two/{mod_name('_two')}": "dlopen"}


class Model:
    def __init__(self, root: Path, units: Dict[str, Dict[str, str]], truth: Dict[str, Truth]):
        self.root, self.units, self.truth = root, units, truth
        self._res = None

    @property
    def res(self):
        if self._res is None:
            self._res = check(self.root)
        return self._res

    def case(self, name: str) -> Dict[str, Truth]:
        return {p: self.truth[p] for p in self.units[name]}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = musl_root(tmp_path_factory.mktemp("loadmodel") / "root")
    site = root / S
    units = {
        "a-RPATH": build_vendored(site, "a", "RPATH"), "a-RUNPATH": build_vendored(site, "a", "RUNPATH"),
        "b-RPATH": build_vendored(site, "b", "RPATH"), "b-RUNPATH": build_vendored(site, "b", "RUNPATH"),
        "d": build_pyuser(site),
        "e": build_ie_tls(root, site),
        "fg": build_ifunc(site),
        "h": build_weak(site),
        "i": build_shared_dep(site),
    }
    everything = {p: how for u in units.values() for p, how in u.items()}
    truth = loader_truth(root, everything)
    for path, t in sorted(truth.items()):  # shown with -s / on failure
        print(f"{path}: {t}")
    return Model(root, units, truth)


def unresolved_touching(res, files, sonames):
    return {s: f for s, f in res.unresolved.items()
            if s in sonames or any(x in files for x in (f if isinstance(f, (list, tuple, set)) else [f]))}


# -- (a), (b): search in context ------------------------------------------------------


@pytest.mark.parametrize("tag", ["RPATH", "RUNPATH"])
@pytest.mark.parametrize("case", ["a", "b"])
def test_vendored_libraries_are_found_through_the_chain(model, case, tag):
    """(a) greenlet 2.0.1: liba (no search path) needs libb, which the module
    loaded already -- reused by file name; (b) the module does not need libb:
    musl finds it through the module's path, up the chain from liba."""
    truth = model.case(f"{case}-{tag}")
    res = model.res
    ((mod, t),) = truth.items()
    assert_agrees(res, model.root, mod, t)
    pkg = f"vend{case}_{tag.lower()}"
    ha, hb = VENDOR_HASHES[case, tag]
    vendored = {f"{SITE}/{pkg}.libs/liba-{ha}.so", f"{SITE}/{pkg}.libs/libb-{hb}.so"}
    # a library reached only as a dependency has no verdict of its own, and it is loaded
    for lib in vendored:
        assert lib not in res.will_not_load, (lib, res.will_not_load[lib])
        assert lib not in res.unloaded, lib
    assert unresolved_touching(res, vendored | {mod}, {f"liba-{ha}.so", f"libb-{hb}.so"}) == {}


# -- (c): a vendored library nothing loads --------------------------------------------


@pytest.fixture(scope="module")
def orphan_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("orphan")
    root = musl_root(base / "root")
    site = root / S
    gone = build_c(base / "elsewhere", "libgone.so.1", "int gone_fn(void){ return 0; }", soname="libgone.so.1")
    build_c(site / "orphan.libs", "liborphan-5555.so", "int gone_fn(void); int orphan_fn(void){ return gone_fn(); }",
            soname="liborphan-5555.so", libs=[gone])
    build_c(site / "orphan", mod_name("_ok"), "int f(void){ return 1; }")
    units = {f"{SITE}/orphan/{mod_name('_ok')}": "dlopen", "/usr/local/bin/python3.12": "list",
             "/usr/local/lib/libpython3.12.so.1.0": "dlopen"}
    orphan = f"{SITE}/orphan.libs/liborphan-5555.so"
    truth = loader_truth(root, {**units, orphan: "dlopen"})
    for path, t in sorted(truth.items()):
        print(f"{path}: {t}")
    return root, units, orphan, truth


def test_a_vendored_library_nothing_loads_is_a_note(orphan_root):
    root, units, orphan, truth = orphan_root
    # the fixture: opened on its own the orphan would fail; nothing opens it
    assert not truth[orphan].ok and musl_kind(truth[orphan].message) == "missing_library", truth[orphan]
    res = check(root)
    for path in units:
        assert_agrees(res, root, path, truth[path])
    assert orphan not in res.will_not_load, res.will_not_load[orphan]
    assert orphan in res.unloaded and res.unloaded == sorted(res.unloaded)
    r = rundeps_scan(root)
    every_unit_loads = all(truth[p].ok for p in units)
    assert (r.returncode == 0) == every_unit_loads, (r.returncode, r.stderr)


# -- (d): the interpreter's names -----------------------------------------------------


@pytest.fixture(scope="module")
def bare_prefix(tmp_path_factory, model):
    """The pyuse_lib folder alone in a root with musl but no interpreter."""
    root = musl_root(tmp_path_factory.mktemp("bare") / "root", interpreter=False)
    src = model.root / S / "pyuse_lib" / "libpyuser.so.100"
    dst = root / S / "pyuse_lib" / "libpyuser.so.100"
    dst.parent.mkdir(parents=True)
    shutil.copy2(src, dst)
    assert not (root / "usr/local/bin").exists()
    return root


@pytest.mark.parametrize("name", ["libpyuser.so.100", "libpybad.so.100"])
def test_libraries_opened_by_path_bind_in_the_interpreter_scope(model, name):
    """A library a package opens by path binds against the interpreter first:
    a Py* name the interpreter has binds, one it lacks does not."""
    path = f"{SITE}/pyuse_lib/{name}"
    assert_agrees(model.res, model.root, path, model.truth[path])


def test_without_an_interpreter_py_names_are_the_interpreters(model, bare_prefix):
    """No interpreter at hand: the truth is the loader's verdict in the full root."""
    path = f"{SITE}/pyuse_lib/libpyuser.so.100"
    res = check(bare_prefix)
    assert_agrees(res, bare_prefix, path, model.truth[path])


# -- (e), (f), (g), (h): musl's refusals besides missing names --------------------------


@pytest.mark.parametrize("path", [f"{SITE}/ietls/{mod_name('_local')}", f"{SITE}/ietls/{mod_name('_extern')}",
                                  "/usr/local/bin/ieprog", "/usr/local/lib/libprogtls.so.1"],
                         ids=["module-own-tls", "module-extern-tls", "program", "program-library"])
def test_initial_exec_tls(model, path):
    assert_agrees(model.res, model.root, path, model.truth[path])


def test_irelative_is_an_unsupported_relocation(model):
    path = f"{SITE}/irel/{mod_name('_irel')}"
    assert_agrees(model.res, model.root, path, model.truth[path])


def test_an_ifunc_definition_is_skipped(model):
    path = f"{SITE}/ifn/{mod_name('_ifn')}"
    assert_agrees(model.res, model.root, path, model.truth[path])


def test_a_weak_undefined_reference_may_stay_unbound(model):
    path = f"{SITE}/weakref/{mod_name('_weak')}"
    assert_agrees(model.res, model.root, path, model.truth[path])


# -- (i): one library, two loads ------------------------------------------------------


def test_a_library_loads_in_one_load_and_not_in_another(model):
    truth = model.case("i")
    # the fixture: the two loads differ
    assert len({t.ok for t in truth.values()}) == 2, truth
    res = model.res
    for path, t in truth.items():
        assert_agrees(res, model.root, path, t)
    shared = f"{SITE}/share.libs/libshared-1111.so"
    assert shared not in res.will_not_load, res.will_not_load[shared]
    assert shared not in res.unloaded


# -- the CLI --------------------------------------------------------------------------


def test_scan_exits_1_when_a_unit_will_not_load(model):
    r = rundeps_scan(model.root)
    every_unit_loads = all(t.ok for t in model.truth.values())
    assert r.returncode == (0 if every_unit_loads else 1), (r.returncode, r.stderr[-2000:])


# -- the same root as a saved image ----------------------------------------------------


def test_the_model_root_saved_as_an_image_gets_the_same_verdicts(model, tmp_path):
    """Every unit above, its verdict checked against musl's loader, judged
    again from a saved image of the root (two gzip layers, read in memory):
    the same JSON as ``--root``, failures included."""
    from scriptmods import ib

    keep_site = lambda rel: rel.startswith(S + "/")  # noqa: E731
    layers = [ib.folder_layer(model.root, keep=lambda rel: not keep_site(rel)), ib.folder_layer(model.root, keep_site)]
    img = ib.docker_archive(tmp_path / "model.tar", layers, ib.config(layers), compress=[True, True])
    env = dict(os.environ)
    env.pop("RUNDEPS_ROOT", None)
    outs = []
    for target in (["--root", str(model.root)], ["--image", str(img)]):
        proc = subprocess.run([sys.executable, "-m", "rundeps", "scan", *target, "--no-cache", "--format", "json",
                               SITE], capture_output=True, text=True, env=env, timeout=300)
        outs.append((proc.returncode, proc.stdout, proc.stderr))
    (root_code, root_out, root_err), (img_code, img_out, img_err) = outs
    assert img_code == root_code == 1  # the units musl refuses (TLS, IRELATIVE) fail both ways
    assert img_out == root_out and img_err == root_err
    assert json.loads(img_out)["will_not_load"]

"""References to an ``STT_GNU_IFUNC`` definition, the object's own included,
held to musl's real loaders.

musl's ``find_sym`` skips IFUNC definitions (``OK_TYPES``), and ``do_relocs``
looks up every relocation's symbol that is not ``STB_LOCAL`` in the whole
scope, the relocated object included: a library calling (``JUMP_SLOT``) or
taking the address of (``GLOB_DAT``, ``R_X86_64_64``) its own exported IFUNC
is refused unless another object in scope defines the name plainly. What the
linker binds locally (a hidden alias, protected visibility, a program's own
IFUNC) becomes ``R_X86_64_IRELATIVE``, which musl does not support.

Every fixture is built here with Debian's musl-gcc; every expected verdict
comes from running a real musl loader on it -- Debian's, and each Alpine
x86_64 loader in ``../shared/alpine/musl`` when it is there -- through
``dlopen`` (RTLD_NOW|RTLD_LOCAL) from the stand-in interpreter for a module
or library, ``--list`` for a program. Each loader gets a root of its own
with that musl as ``lib/ld-musl-x86_64.so.1``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from bindbuild import (
    HOST_MUSL, MUSL_LOADER, SHARED_MUSL, SITE, build_c, dynamic_symbol_types, musl_root, relocation_types,
    requires_musl,
)
from rundeps.elf.reader import read_symbols, read_symbols_pyelftools
from test_load_model import Truth, assert_agrees, check, loader_truth, mod_name, search_path_flags

pytestmark = requires_musl

S = SITE.lstrip("/")

#: (name, the musl libc.so put in the root, the loader run) -- Debian's, then
#: each runnable Alpine x86_64 loader that is present.
LOADERS = [("debian-1.2.3", HOST_MUSL, MUSL_LOADER)] + [
    (p.stem, str(p), str(p)) for p in sorted(SHARED_MUSL.glob("musl-*-x86_64.so")) if p.is_file()]

IFN = ("static int impl(void){ return 42; }\n"
       "static int (*resolve_ifn(void))(void){ return impl; }\n")
EXPORTED = IFN + 'int ifn(void) __attribute__((ifunc("resolve_ifn")));\n'


def jump_slot_names(path) -> List[str]:
    """The symbols ``R_X86_64_JUMP_SLOT`` / ``GLOB_DAT`` / ``R_X86_64_64``
    relocations of ``path`` name, as ``type:name`` (binutils' readelf, which
    shows an IFUNC's value as ``name()``)."""
    out = subprocess.run(["readelf", "-r", "-W", str(path)], stdout=subprocess.PIPE, text=True).stdout
    return [f"{m.group(1)}:{m.group(2)}" for m in
            re.finditer(r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+R_X86_64_(JUMP_SLOT|GLOB_DAT|64)\s+(?:[0-9a-f]+|\w+\(\))\s+(\w+)",
                        out, flags=re.M)]


def symbol_binding(path, name: str) -> str:
    """The binding (GLOBAL, WEAK, ...) of the defined dynamic symbol ``name``."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", str(path)], stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0].endswith(":") and f[6] != "UND" and f[7].split("@")[0] == name:
            return f[4]
    raise AssertionError(f"{name} not defined in {path}")


def module(site: Path, case: str, source: str, **kw) -> str:
    build_c(site / case, mod_name("_m"), source, **kw)
    return f"{SITE}/{case}/{mod_name('_m')}"


def build_cases(root: Path) -> Dict[str, Dict[str, str]]:
    """case -> {in-root path: ``dlopen`` or ``list``}: every unit the case
    puts in the tree (its libraries too: each is loaded on its own as well)."""
    site = root / S
    lib, bin_ = root / "usr/local/lib", root / "usr/local/bin"
    cases: Dict[str, Dict[str, str]] = {}

    # the object's own exported IFUNC: called through its PLT, its address
    # taken through the GOT, stored in data; a weak IFUNC called; -Bsymbolic
    cases["plt"] = {module(site, "plt", EXPORTED + "int call(void){ return ifn(); }\n"): "dlopen"}
    cases["got"] = {module(site, "got", EXPORTED + "int (*get(void))(void){ return ifn; }\n"): "dlopen"}
    cases["data"] = {module(site, "data", EXPORTED + "int (*fp)(void) = ifn;\n"
                            "int call(void){ return fp(); }\n"): "dlopen"}
    cases["weak"] = {module(site, "weak", EXPORTED + '__asm__(".weak ifn");\n'
                            "int call(void){ return ifn(); }\n"): "dlopen"}
    cases["symbolic"] = {module(site, "symbolic", EXPORTED + "int call(void){ return ifn(); }\n",
                                ldflags=["-Wl,-Bsymbolic"]): "dlopen"}
    # bound locally by the linker: IRELATIVE
    cases["hidden-alias"] = {module(site, "halias", EXPORTED +
                                    'extern int ifn_h(void) __attribute__((alias("ifn"), visibility("hidden")));\n'
                                    "int call(void){ return ifn_h(); }\n"): "dlopen"}
    cases["protected"] = {module(site, "prot", IFN + '__attribute__((visibility("protected"))) int ifn(void) '
                                 '__attribute__((ifunc("resolve_ifn")));\n'
                                 "int call(void){ return ifn(); }\n"): "dlopen"}
    # exported, never referenced by the object itself
    cases["unreferenced"] = {module(site, "unref", EXPORTED + "int call(void){ return 1; }\n"): "dlopen"}

    # a plain definition of the name elsewhere in scope: the module's own
    # dependency (after it in scope), a program's own function (before it)
    plain = build_c(site / "later.libs", "libplainifn-7777.so", "int ifn(void){ return 7; }\n",
                    soname="libplainifn-7777.so")
    cases["shadow-later"] = {
        module(site, "later", EXPORTED + "int call(void){ return ifn(); }\n", libs=[plain],
               ldflags=search_path_flags("RPATH", "$ORIGIN/../later.libs")): "dlopen",
        f"{SITE}/later.libs/libplainifn-7777.so": "dlopen"}
    ownplt = build_c(lib, "libownifn.so.1", EXPORTED + "int call(void){ return ifn(); }\n", soname="libownifn.so.1")
    build_c(bin_, "shadowprog", "int ifn(void){ return 7; }\nint call(void);\n"
            "int main(void){ return call() == 7 ? 0 : 1; }\n", shared=False, libs=[ownplt],
            runpath="$ORIGIN/../lib")
    cases["shadow-program"] = {"/usr/local/bin/shadowprog": "list", "/usr/local/lib/libownifn.so.1": "dlopen"}

    # another object's IFUNC: a strong and a weak undefined reference
    other = build_c(site / "other.libs", "libifn-8888.so", EXPORTED, soname="libifn-8888.so")
    rpath = search_path_flags("RPATH", "$ORIGIN/../other.libs")
    cases["other"] = {module(site, "other", "int ifn(void);\nint f(void){ return ifn(); }\n", libs=[other],
                             ldflags=rpath): "dlopen",
                      f"{SITE}/other.libs/libifn-8888.so": "dlopen"}
    cases["other-weak"] = {module(site, "otherweak", "extern int ifn(void) __attribute__((weak));\n"
                                  "int f(void){ return ifn ? ifn() : 0; }\n", libs=[other], ldflags=rpath): "dlopen"}

    # programs: calling their own IFUNC; exporting one a library calls
    build_c(bin_, "ownprog", EXPORTED + "int main(void){ return ifn() == 42 ? 0 : 1; }\n", shared=False)
    cases["program-own"] = {"/usr/local/bin/ownprog": "list"}
    uses = build_c(lib, "libuseifn.so.1", "int ifn(void);\nint use(void){ return ifn(); }\n", soname="libuseifn.so.1")
    build_c(bin_, "exportprog", EXPORTED + "int use(void);\nint main(void){ return use() == 42 ? 0 : 1; }\n",
            shared=False, libs=[uses], runpath="$ORIGIN/../lib", ldflags=["-rdynamic"])
    cases["program-exports"] = {"/usr/local/bin/exportprog": "list", "/usr/local/lib/libuseifn.so.1": "dlopen"}
    return cases


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The cases, built once (into a root with Debian's musl)."""
    root = musl_root(tmp_path_factory.mktemp("ownifunc") / "root")
    return root, build_cases(root)


class Judged:
    def __init__(self, root: Path, cases, truth: Dict[str, Truth]):
        self.root, self.cases, self.truth = root, cases, truth
        self.res = check(root)


@pytest.fixture(scope="module", params=LOADERS, ids=[name for name, _, _ in LOADERS])
def judged(request, built, tmp_path_factory):
    """The built tree in a root whose musl is the loader's, judged by that
    loader and by rundeps."""
    name, musl_so, loader = request.param
    src, cases = built
    if musl_so == HOST_MUSL:
        root = src
    else:
        root = musl_root(tmp_path_factory.mktemp(name) / "root", musl_so=musl_so)
        shutil.rmtree(root / "usr/local")
        shutil.copytree(src / "usr/local", root / "usr/local", symlinks=True)
    units = {p: how for case in cases.values() for p, how in case.items()}
    truth = loader_truth(root, units, loader)
    for path, t in sorted(truth.items()):  # shown with -s / on failure
        print(f"{name} {path}: {t}")
    return Judged(root, cases, truth)


CASES = ["plt", "got", "data", "weak", "symbolic", "hidden-alias", "protected", "unreferenced", "shadow-later",
         "shadow-program", "other", "other-weak", "program-own", "program-exports"]


@pytest.mark.parametrize("case", CASES)
def test_verdict_is_the_loaders(judged, case):
    for path in judged.cases[case]:
        assert_agrees(judged.res, judged.root, path, judged.truth[path])


def test_the_fixtures_are_what_the_cases_say(built):
    """Each fixture holds the relocation its case is about (else the
    verdicts above would test something else)."""
    root, cases = built
    host = {case: root / next(iter(units)).lstrip("/") for case, units in cases.items()}
    assert "JUMP_SLOT:ifn" in jump_slot_names(host["plt"])
    assert "GLOB_DAT:ifn" in jump_slot_names(host["got"])
    assert "64:ifn" in jump_slot_names(host["data"])
    assert symbol_binding(host["weak"], "ifn") == "WEAK"
    assert "JUMP_SLOT:ifn" in jump_slot_names(host["weak"]) and "JUMP_SLOT:ifn" in jump_slot_names(host["symbolic"])
    for case in ("hidden-alias", "protected", "program-own"):
        assert "R_X86_64_IRELATIVE" in relocation_types(host[case]), case
    assert not any(r.endswith(":ifn") for r in jump_slot_names(host["unreferenced"]))
    for case in ("plt", "unreferenced", "program-exports", "other"):
        path = host[case] if case != "other" else root / S / "other.libs/libifn-8888.so"
        assert dynamic_symbol_types(path)["ifn"] == "IFUNC", case


def test_both_readers_agree(built):
    """The fast reader and the pyelftools one give the same facts; the own
    references are what the relocations say."""
    root, cases = built
    own = {}
    for case, units in cases.items():
        for path in units:
            host = root / path.lstrip("/")
            fast = read_symbols(host, reader="struct")
            with open(host, "rb") as f:
                slow = read_symbols_pyelftools(f)
            assert fast == slow, path
            own[case, path] = fast.own_unfound
    first = {case: own[case, next(iter(cases[case]))] for case in cases}
    for case in ("plt", "got", "data", "weak", "symbolic", "shadow-later"):
        assert first[case] == {"ifn"}, case
    for case in ("hidden-alias", "protected", "unreferenced", "other", "other-weak", "program-own",
                 "program-exports"):
        assert first[case] == frozenset(), case
    assert own["shadow-program", "/usr/local/lib/libownifn.so.1"] == {"ifn"}


def test_missing_names_are_the_loaders(judged):
    """Where musl says "symbol not found", rundeps lists that name as missing
    for the object musl names (no more, no less)."""
    for path, t in judged.truth.items():
        m = re.search(r"Error relocating (\S+?): (\S+): symbol not found", t.message)
        if t.ok or m is None:
            continue
        obj = "/" + str(Path(m.group(1)).resolve().relative_to(judged.root.resolve()))
        assert judged.res.binding.missing_symbols.get(obj) == [m.group(2)], (path, t)


def test_the_hint_names_the_own_ifunc(judged):
    """An own reference musl refuses gets a hint saying why: the object's
    own IFUNC definition, which musl's lookup skips."""
    path = next(iter(judged.cases["plt"]))
    assert not judged.truth[path].ok
    hints = judged.res.binding.hints.get(path, [])
    assert any(h.startswith("ifn is an IFUNC (STT_GNU_IFUNC) this object defines") for h in hints), hints


def test_the_hint_names_another_objects_ifunc(judged):
    """A name another object defines only as an IFUNC: the hint says so."""
    path = next(iter(judged.cases["other"]))
    assert not judged.truth[path].ok
    hints = judged.res.binding.hints.get(path, [])
    # the tree has two objects defining ifn as an IFUNC: either may be named
    assert any(h.startswith(("ifn is defined by libifn-8888.so ", "ifn is defined by exportprog "))
               and h.endswith(" only as an IFUNC (STT_GNU_IFUNC), which musl's lookup skips") for h in hints), hints

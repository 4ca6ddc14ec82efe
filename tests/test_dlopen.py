"""Tests for rundeps.loads.dlopen: literal library names passed to ctypes/cffi loaders."""

from __future__ import annotations

import textwrap

import pytest

from rundeps.loads.dlopen import (
    LITERAL_CALL,
    DlopenFinding,
    alternatives,
    candidate_sonames,
    find_dlopen,
    is_libc_name,
    soname_matcher,
)
from rundeps.loads.sourcefiles import scan_sources


def names(source, **kw):
    return [f.name for f in find_dlopen(textwrap.dedent(source), "m.py", **kw)]


def calls(source, **kw):
    return [(f.name, f.call, f.line) for f in find_dlopen(textwrap.dedent(source), "m.py", **kw)]


# -- the loader forms ----------------------------------------------------------


def test_ctypes_cdll_plain():
    src = """
    import ctypes
    lib = ctypes.CDLL("libfoo.so.1")
    """
    assert calls(src) == [("libfoo.so.1", "ctypes.CDLL", 3)]


def test_ctypes_module_alias():
    src = """
    import ctypes as C
    a = C.CDLL("liba.so.1")
    b = C.cdll.LoadLibrary("libb.so.2")
    c = C.PyDLL(name="libc2.so.3")
    """
    assert calls(src) == [
        ("liba.so.1", "ctypes.CDLL", 3),
        ("libb.so.2", "ctypes.cdll.LoadLibrary", 4),
        ("libc2.so.3", "ctypes.PyDLL", 5),
    ]


def test_from_imports_and_aliases():
    src = """
    from ctypes import cdll, CDLL as load
    from ctypes.util import find_library as fl
    x = cdll.LoadLibrary("libx.so.5")
    y = load("liby.so.6")
    z = fl("zeta")
    """
    assert calls(src) == [
        ("libx.so.5", "ctypes.cdll.LoadLibrary", 4),
        ("liby.so.6", "ctypes.CDLL", 5),
        ("zeta", "ctypes.util.find_library", 6),
    ]


def test_ctypes_util_find_library_dotted():
    src = """
    import ctypes.util
    path = ctypes.util.find_library("magic")
    """
    assert calls(src) == [("magic", "ctypes.util.find_library", 3)]


def test_cdll_subscript():
    src = """
    import ctypes
    lib = ctypes.cdll["libsub.so.7"]
    """
    assert calls(src) == [("libsub.so.7", "ctypes.cdll[]", 3)]


def test_cffi_forms():
    src = """
    from cffi import FFI
    ffi = FFI()
    cairo = ffi.dlopen("cairo")
    other = FFI().dlopen("libother.so.3")
    none = ffi.dlopen(None)
    """
    assert calls(src) == [
        ("cairo", "ffi.dlopen", 4),
        ("libother.so.3", "cffi.FFI().dlopen", 5),
    ]


def test_cairocffi_helper_with_tuples():
    # cairocffi 1.x: its own dlopen() helper, names in two tuple arguments
    src = """
    from cffi import FFI
    from ctypes.util import find_library

    def dlopen(ffi, library_names, filenames):
        for library_name in library_names:
            library_filename = find_library(library_name)
            if library_filename:
                filenames = (library_filename,) + filenames
        for filename in filenames:
            try:
                return ffi.dlopen(filename)
            except OSError:
                pass

    ffi = FFI()
    cairo = dlopen(
        ffi, ('cairo-2', 'cairo', 'libcairo-2'),
        ('libcairo.so.2', 'libcairo.2.dylib', 'libcairo-2.dll'))
    """
    found = find_dlopen(textwrap.dedent(src), "cairocffi/__init__.py")
    # the .dylib/.dll names are dropped; the helper's own variable calls are not findings
    assert [(f.name, f.call, f.line) for f in found] == [
        ("cairo-2", "dlopen", 17),
        ("cairo", "dlopen", 17),
        ("libcairo-2", "dlopen", 17),
        ("libcairo.so.2", "dlopen", 17),
    ]
    assert len(alternatives(found)) == 1


def test_python_magic_loader():
    # python-magic 0.4.2x magic/loader.py (abridged)
    src = '''
    from ctypes.util import find_library
    import ctypes
    import sys

    def _lib_candidates_linux():
        yield "libmagic.so.1"

    def _lib_candidates_windows():
        for prefix in ("libmagic", "magic1"):
            yield "./%s.dll" % (prefix,)
            yield find_library(prefix)

    def _lib_candidates():
        yield find_library("magic")
        for path in _lib_candidates_linux():
            yield path

    def load_lib():
        for lib in _lib_candidates():
            if lib:
                try:
                    return ctypes.CDLL(lib)
                except OSError:
                    pass
    '''
    found = find_dlopen(textwrap.dedent(src), "magic/loader.py")
    # the Windows prefixes are found too (from the loop over a literal tuple):
    # nothing tells them apart; they are alternatives that simply do not resolve
    assert [(f.name, f.call, f.line) for f in found] == [
        ("libmagic.so.1", LITERAL_CALL, 7),
        ("libmagic", "ctypes.util.find_library", 12),
        ("magic1", "ctypes.util.find_library", 12),
        ("magic", "ctypes.util.find_library", 15),
    ]


def test_or_and_conditional_expressions():
    src = """
    import ctypes, ctypes.util, sys
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    alt = ctypes.CDLL("liba.so.1" if sys.maxsize > 2**32 else "libb.so.1")
    """
    assert calls(src) == [
        ("sodium", "ctypes.util.find_library", 3),
        ("libsodium.so.23", "ctypes.CDLL", 3),
        ("liba.so.1", "ctypes.CDLL", 4),
        ("libb.so.1", "ctypes.CDLL", 4),
    ]


def test_bytes_literal_and_absolute_path():
    src = """
    import ctypes
    a = ctypes.CDLL(b"libbytes.so.1")
    b = ctypes.CDLL("/usr/lib/libabs.so.2")
    """
    assert names(src) == ["libbytes.so.1", "/usr/lib/libabs.so.2"]


# -- what must be ignored --------------------------------------------------------


def test_dynamic_names_ignored():
    src = """
    import ctypes, os
    name = input()
    a = ctypes.CDLL(name)
    b = ctypes.CDLL(f"lib{name}.so")
    c = ctypes.CDLL("lib" + name + ".so")
    d = ctypes.CDLL(os.path.join(os.path.dirname(__file__), name))
    e = ctypes.CDLL("lib%s.so" % name)
    """
    assert names(src) == []


def test_dynamic_names_reported_on_request():
    src = """
    import ctypes
    name = os.environ["LIB"]
    a = ctypes.CDLL(name)
    """
    found = find_dlopen(textwrap.dedent(src), "m.py", include_dynamic=True)
    assert found == [DlopenFinding("", "m.py", 4, "ctypes.CDLL", True)]


def test_windows_and_macos_names_ignored():
    src = """
    import ctypes
    a = ctypes.WinDLL("kernel32")
    b = ctypes.windll.kernel32
    c = ctypes.CDLL("libfoo.dylib")
    d = ctypes.CDLL("foo.DLL")
    e = ctypes.CDLL("C:\\\\libs\\\\libfoo.so")
    """
    assert names(src) == []


def test_unrelated_calls_and_strings_ignored():
    src = """
    import json
    json.loads("libfoo.so.1")
    def load(name): pass
    load("libbar.so.2")
    """
    # no ctypes/cffi import, no loader call: bare soname strings are not evidence
    assert names(src) == []
    assert names(src.replace("import json", "import json, ctypes")) == ["libfoo.so.1", "libbar.so.2"]


def test_literal_heuristic_can_be_disabled():
    src = """
    import ctypes
    CANDIDATES = ["libq.so.1", "not a library", "libq.so.1 and more"]
    """
    assert names(src) == ["libq.so.1"]
    assert names(src, literals=False) == []


def test_no_duplicates():
    src = """
    import ctypes
    a = ctypes.CDLL("libdup.so.1")
    """
    assert len(find_dlopen(textwrap.dedent(src), "m.py")) == 1


# -- robustness ------------------------------------------------------------------


def test_syntax_error_skipped_and_reported():
    problems = []
    assert find_dlopen("import ctypes\nctypes.CDLL('libx.so'\n", "bad.py", on_problem=lambda p, r: problems.append((p, r))) == []
    assert len(problems) == 1 and problems[0][0] == "bad.py" and "parse" in problems[0][1]


def test_undecodable_bytes_skipped():
    problems = []
    data = b"# -*- coding: utf-8 -*-\nimport ctypes\nctypes.CDLL('libx.so.1')  # \xff\xfe\n"
    assert find_dlopen(data, "u.py", on_problem=lambda p, r: problems.append(r)) == []
    assert problems and "decode" in problems[0]


def test_declared_encoding_respected():
    data = "# -*- coding: latin-1 -*-\nimport ctypes\n# caf\xe9\nctypes.CDLL('libl.so.1')\n".encode("latin-1")
    assert [f.name for f in find_dlopen(data, "l.py")] == ["libl.so.1"]


def test_null_bytes_and_huge_source_skipped():
    problems = []
    assert find_dlopen("import ctypes\x00\nctypes.CDLL('libn.so.1')\n", "n.py",
                       on_problem=lambda p, r: problems.append(r)) == []
    big = "import ctypes\nctypes.CDLL('libbig.so.1')\n" + "#" * 200
    assert find_dlopen(big, "b.py", max_size=100, on_problem=lambda p, r: problems.append(r)) == []
    assert len(problems) == 2


def test_deeply_nested_source_not_fatal():
    src = "import ctypes\nx = ctypes.CDLL" + "(" * 5000 + "1" + ")" * 5000 + "\n"
    assert find_dlopen(src, "deep.py") == []


def test_scan_sources_walks_folders(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("import ctypes\nctypes.CDLL('liba.so.1')\n")
    (pkg / "sub" / "b.py").write_text("from cffi import FFI\nFFI().dlopen('bee')\n")
    (pkg / "sub" / "broken.py").write_text("import ctypes\nctypes.CDLL(\n")
    # a file that names no loader is not even parsed: its syntax error goes unreported
    (pkg / "sub" / "plain.py").write_text("def (:\n")
    (pkg / "notes.txt").write_text("ctypes.CDLL('libtxt.so.1')\n")
    problems = []
    found = scan_sources([str(pkg)], on_problem=lambda p, r: problems.append(p))
    assert [(f.name, f.path) for f in found] == [
        ("liba.so.1", str(pkg / "a.py")),
        ("bee", str(pkg / "sub" / "b.py")),
    ]
    assert problems == [str(pkg / "sub" / "broken.py")]


# -- names to sonames ------------------------------------------------------------

AVAILABLE = {
    "libmagic.so.1",
    "libcairo.so.2",
    "libcairo.so.1",
    "libcairo-gobject.so.2",
    "libgtk-3.so.0",
    "libglib-2.0.so.0",
    "libfoo.so.1",
    "libfoo.so.2",
    "libsqlite3.so.0",
    "libc.musl-x86_64.so.1",
}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("libmagic.so.1", ["libmagic.so.1"]),
        ("magic", ["libmagic.so.1"]),
        ("libmagic", ["libmagic.so.1"]),
        ("cairo", ["libcairo.so.2", "libcairo.so.1"]),
        ("cairo-2", ["libcairo.so.2", "libcairo.so.1"]),
        ("libcairo-2", ["libcairo.so.2", "libcairo.so.1"]),
        ("gtk-3", ["libgtk-3.so.0"]),
        ("glib-2.0", ["libglib-2.0.so.0"]),
        ("sqlite3", ["libsqlite3.so.0"]),
        ("magic1", ["libmagic.so.1"]),
        ("/usr/lib/libfoo.so.1.4.2", ["libfoo.so.1"]),
        ("libfoo.so", ["libfoo.so.2", "libfoo.so.1"]),
        ("libfoo.so.3", []),
        ("nothere", []),
        ("libcairo-gobject.so.2", ["libcairo-gobject.so.2"]),
    ],
)
def test_candidate_sonames(name, expected):
    assert candidate_sonames(name, AVAILABLE) == expected


def test_candidate_sonames_prefers_wanted_major():
    assert candidate_sonames("cairo-1", {"libcairo.so.1", "libcairo.so.2"}) == ["libcairo.so.1", "libcairo.so.2"]


def test_candidate_sonames_with_so_prefix():
    provides = ["so:libmagic.so.1", "so:libz.so.1"]
    assert candidate_sonames("magic", provides) == ["so:libmagic.so.1"]
    match = soname_matcher("magic")
    assert match("so:libmagic.so.1") and match("libmagic.so.1")
    assert not match("libmagical.so.1") and not match("libz.so.1")


def test_libc_names():
    for n in ("c", "libc", "m", "libm.so.6", "pthread", "dl", "libc.musl-x86_64.so.1"):
        assert is_libc_name(n), n
    for n in ("magic", "libcairo.so.2", "crypto"):
        assert not is_libc_name(n), n


# -- names known from literals ------------------------------------------------------


def test_loop_over_literal_tuple():
    src = """
    import ctypes
    for lib in ("libmagic.so.1", "magic1"):
        try:
            handle = ctypes.CDLL(lib)
            break
        except OSError:
            pass
    handles = [ctypes.cdll.LoadLibrary(n) for n in ["libc1.so.1", "c2"]]
    """
    assert calls(src) == [
        ("libmagic.so.1", "ctypes.CDLL", 5),
        ("magic1", "ctypes.CDLL", 5),
        ("libc1.so.1", "ctypes.cdll.LoadLibrary", 9),
        ("c2", "ctypes.cdll.LoadLibrary", 9),
    ]


def test_module_constant():
    src = """
    import ctypes
    _NAME = "sodium"
    NAMES = ("gmp", "libgmp.so.10")
    def load():
        for n in NAMES:
            ctypes.util.find_library(n)
        return ctypes.util.find_library(_NAME)
    """
    assert calls(src) == [
        ("gmp", "ctypes.util.find_library", 7),
        ("libgmp.so.10", "ctypes.util.find_library", 7),
        ("sodium", "ctypes.util.find_library", 8),
    ]


def test_reassigned_names_and_parameters_stay_dynamic():
    src = """
    import ctypes
    NAME = "one"
    NAME = "two"
    ctypes.CDLL(NAME)
    OTHER = "three"
    def load(OTHER):
        return ctypes.CDLL(OTHER)
    for x in get_names():
        ctypes.CDLL(x)
    """
    assert names(src) == []


# -- never fatal -------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PIECES = st.sampled_from([
    "import ctypes\n", "from ctypes import CDLL as X\n", "X(", "ctypes.CDLL(", "'libz.so.1'", "name", ")", "(",
    ", ", "for name in ('a', b'b'):\n    ", "f'lib{name}'", " or ", "[", "]", "\n", "ffi.dlopen(", "lambda name: ",
    "def f(name):\n    ", "ctypes.cdll[", "*", "None", "if", "else", "\\", "\x00", "'", '"',
])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(_PIECES, max_size=30).map("".join), st.text(max_size=200), st.binary(max_size=200)))
def test_never_raises(source):
    found = find_dlopen(source, "f.py", include_dynamic=True, on_problem=lambda p, r: None)
    for f in found:
        assert isinstance(f.name, str) and (f.dynamic or f.name)


def test_syntax_warnings_do_not_stop_the_scan():
    import warnings

    src = 'import ctypes\nx = "\\d"\nif x is "a": pass\nctypes.CDLL("libw.so.1")\n'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [f.name for f in find_dlopen(src, "w.py")] == ["libw.so.1"]


# -- integration helpers: tree scanning and provider choice ------------------------

from types import SimpleNamespace  # noqa: E402

from rundeps.apk.model import Universe, parse_installed  # noqa: E402
from rundeps.loads.sourcefiles import scan_tree_sources  # noqa: E402
from rundeps.loads.providers import resolve_findings  # noqa: E402

INSTALLED = """\
P:libmagic
V:5.45-r1
A:x86_64
p:so:libmagic.so.1=1.0.0
F:usr/lib
R:libmagic.so.1.0.0

P:cairo
V:1.18.0-r0
A:x86_64
p:so:libcairo.so.2=2.11800.0
F:usr/lib
R:libcairo.so.2.11800.0

P:vendorpkg
V:1-r0
F:opt/v
R:libv.so.4

"""


def _res(objects=None):
    universe = Universe([parse_installed(INSTALLED)])
    return SimpleNamespace(universe=universe, objects=objects or {}, in_tree={})


def test_resolve_findings_groups_and_providers():
    src = textwrap.dedent("""
    import ctypes, ctypes.util
    from cffi import FFI
    ffi = FFI()
    cairo = dlopen(ffi, ('cairo-2', 'cairo'), ('libcairo.so.2', 'libcairo.2.dylib'))
    m = ctypes.CDLL(ctypes.util.find_library('magic'))
    libc = ctypes.CDLL(ctypes.util.find_library('c'))
    v = ctypes.CDLL('/opt/v/libv.so.4')
    own = ctypes.CDLL('libown-1a2b.so.1')
    gone = ffi.dlopen('libgone.so.3')
    """)
    findings = find_dlopen(src, "/app/m.py")
    extra, unresolved = resolve_findings(findings, _res({"/app/libs/libown-1a2b.so.1": None}))
    # every name of a group that the chosen package serves maps to it
    assert {k: p.name for k, p in extra.items()} == {
        "cairo-2": "cairo",
        "cairo": "cairo",
        "libcairo.so.2": "cairo",
        "magic": "libmagic",
        "/opt/v/libv.so.4": "vendorpkg",
    }
    assert [(f.name, f.line) for f in unresolved] == [("libgone.so.3", 10)]
    assert dict(unresolved[0]) == {
        "name": "libgone.so.3", "path": "/app/m.py", "line": 10, "call": "ffi.dlopen", "dynamic": False,
    }


def test_scan_tree_sources_gives_in_root_paths(tmp_path):
    site = tmp_path / "usr" / "lib" / "python3.12" / "site-packages" / "pkg"
    site.mkdir(parents=True)
    (site / "load.py").write_text("import ctypes\nctypes.CDLL('libz.so.1')\n")
    (site / "link.py").symlink_to("/etc/hostname")
    found = scan_tree_sources(["/usr/lib"], str(tmp_path))
    assert [(f.name, f.path) for f in found] == [
        ("libz.so.1", "/usr/lib/python3.12/site-packages/pkg/load.py")
    ]
    assert scan_tree_sources(["/usr/lib/python3.12/site-packages/pkg/load.py"], str(tmp_path))[0].line == 2

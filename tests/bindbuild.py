"""Build real musl and glibc objects at test time, and ask the real musl loader about them.

Nothing here writes an expected verdict: :func:`loader_list` runs Debian's
musl loader (``/lib/ld-musl-x86_64.so.1 --list FILE``) and parses what it
prints; :func:`build_interpreter` builds a small ``musl-gcc`` program that
stands in for CPython (linked against a stand-in ``libpython``, exporting the
``Py*`` names the fixture modules use) and ``dlopen``s modules the way
CPython imports extension modules (``RTLD_NOW | RTLD_LOCAL``); its answers
are musl's own ``dlopen``/``dlerror``.

Usage::

    lib = build_c(d / "lib", "libfoo.so.1", "int foo(void){return 1;}", soname="libfoo.so.1")
    mod = build_c(d, "mod.so", "int foo(void); int f(void){return foo();}", libs=[lib])
    verdict = loader_list(mod, library_path=[d / "lib"])
    verdict.ok, verdict.missing_symbols, verdict.missing_libraries

``requires_musl`` skips a test when musl-gcc or the loader is absent;
``requires_gcc`` (from elfbuild) when gcc is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set

try:  # the agreement script (scripts/wheel_agreement.py) imports this without pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

MUSL_GCC = shutil.which("musl-gcc")
MUSL_LOADER = "/lib/ld-musl-x86_64.so.1"
GCC = shutil.which("gcc")

requires_musl = None if pytest is None else pytest.mark.skipif(
    MUSL_GCC is None or not os.path.exists(MUSL_LOADER),
    reason="Debian's musl-gcc and musl loader are needed (apt-get install musl musl-tools musl-dev)",
)

SHARED_MUSL = Path(__file__).resolve().parent.parent.parent / "shared" / "alpine" / "musl"


class BuildError(RuntimeError):
    pass


def _run(args: Sequence[str], cwd=None) -> None:
    proc = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, cwd=cwd)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(map(str, args))} failed:\n{proc.stdout}")


def build_c(dir, name: str, source: str, cc: str = "musl", shared: bool = True,
            soname: Optional[str] = None, libs: Iterable = (), cflags: Sequence[str] = (),
            ldflags: Sequence[str] = (), version_script: Optional[str] = None,
            runpath: Optional[str] = None) -> Path:
    """Compile ``source`` (C) into ``dir/name``.

    ``cc``: ``"musl"`` (Debian's musl-gcc) or ``"glibc"`` (gcc). ``libs``:
    shared libraries (paths) linked by path, in order, so each lands in
    DT_NEEDED by its soname. ``version_script``: its text, passed to ld.
    """
    out = Path(dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.parent / f".{name}.c"
    src.write_text(source)
    compiler = MUSL_GCC if cc == "musl" else GCC
    if compiler is None:
        raise BuildError(f"no compiler for {cc}")
    args: List[str] = [compiler, *cflags]
    if shared:
        args += ["-shared", "-fPIC"]
    args += ["-o", str(out), str(src)]
    if soname:
        args.append(f"-Wl,-soname,{soname}")
    if version_script is not None:
        vs = out.parent / f".{name}.map"
        vs.write_text(version_script)
        args.append(f"-Wl,--version-script,{vs}")
    if runpath:
        args += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath}"]
    args.append("-Wl,--no-as-needed")
    args += [str(lib) for lib in libs]
    args += list(ldflags)
    _run(args)
    src.unlink()
    return out


class LoaderVerdict:
    """What the real musl loader said about one file."""

    def __init__(self, returncode: int, output: str):
        self.returncode = returncode
        self.output = output
        self.missing_symbols: Dict[str, Set[str]] = {}
        """object (as the loader names it) -> symbols it could not bind."""
        self.missing_libraries: Set[str] = set()
        for line in output.splitlines():
            m = re.match(r"Error relocating (.*): (\S+): symbol not found$", line.strip())
            if m:
                self.missing_symbols.setdefault(m.group(1), set()).add(m.group(2))
                continue
            m = re.match(r"Error loading shared library (\S+?):", line.strip())
            if m:
                self.missing_libraries.add(m.group(1))

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.missing_symbols and not self.missing_libraries

    def symbols_of(self, path) -> Set[str]:
        """The missing symbols the loader named for the object at ``path``."""
        out: Set[str] = set()
        want = os.path.realpath(str(path))
        for obj, names in self.missing_symbols.items():
            if os.path.realpath(obj) == want or os.path.basename(obj) == os.path.basename(str(path)):
                out |= names
        return out

    @property
    def all_missing(self) -> Set[str]:
        return set().union(*self.missing_symbols.values()) if self.missing_symbols else set()

    def __repr__(self) -> str:
        return f"LoaderVerdict(rc={self.returncode}, {self.output!r})"


def loader_list(path, library_path: Iterable = (), loader: str = MUSL_LOADER,
                preload: Iterable = ()) -> LoaderVerdict:
    """Run ``LOADER [--preload LIBS] --list PATH`` and parse its errors."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    lp = ":".join(str(p) for p in library_path)
    if lp:
        env["LD_LIBRARY_PATH"] = lp
    else:
        env.pop("LD_LIBRARY_PATH", None)
    args = [loader]
    pre = ":".join(str(p) for p in preload)
    if pre:
        args += ["--preload", pre]
    args += ["--list", str(path)]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          timeout=60)
    return LoaderVerdict(proc.returncode, proc.stdout)


def private_loader(tmp, musl_so) -> str:
    """An executable copy of a real musl ``libc.so``/``ld-musl`` (e.g. Alpine's
    1.2.5 from ../shared) to run as the loader."""
    dst = Path(tmp) / f"loader-{Path(musl_so).name}"
    if not dst.exists():
        shutil.copyfile(musl_so, dst)
        dst.chmod(0o755)
    return str(dst)


# -- a stand-in CPython: a musl program linked against a stand-in libpython ---------

PY_NAMES = ("PyLong_FromLong", "PyModule_Create2", "PyArg_ParseTuple", "Py_BuildValue",
            "PyErr_SetString", "PyExc_RuntimeError", "_Py_NoneStruct", "PyObject_GetAttrString")

INTERPRETER_MAIN = r"""
#include <dlfcn.h>
#include <stdio.h>
int Py_BytesMain(int argc, char **argv);
/* Each argument is dlopen'ed with RTLD_NOW|RTLD_LOCAL, as CPython imports
   extension modules; prints "OK path" or "FAIL path: dlerror()". */
int main(int argc, char **argv) {
    int bad = 0;
    if (argc > 1 && argv[1][0] == '-') return Py_BytesMain(argc, argv);
    for (int i = 1; i < argc; i++) {
        void *h = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
        if (h) printf("OK %s\n", argv[i]);
        else { printf("FAIL %s: %s\n", argv[i], dlerror()); bad = 1; }
        fflush(stdout);
    }
    return bad;
}
"""


def libpython_source(names: Iterable[str]) -> str:
    """C for a stand-in libpython that defines ``names`` (functions; a name
    starting ``PyExc_`` or ``_Py_`` and ending ``Struct`` is data)."""
    lines = ["int Py_BytesMain(int argc, char **argv) { (void)argc; (void)argv; return 0; }"]
    for n in sorted(set(names)):
        if n.startswith("PyExc_") or n.endswith("Struct") or n.endswith("_Type"):
            lines.append(f"char {n}[64];")
        else:
            lines.append(f"void *{n}(void) {{ return 0; }}")
    return "\n".join(lines) + "\n"


def build_interpreter(prefix, version: str = "3.12", py_names: Iterable[str] = PY_NAMES) -> Path:
    """``prefix/lib/libpythonX.Y.so.1.0`` and ``prefix/bin/pythonX.Y`` (musl),
    laid out as the official images have them; returns the program."""
    prefix = Path(prefix)
    soname = f"libpython{version}.so.1.0"
    lib = build_c(prefix / "lib", soname, libpython_source(py_names), soname=soname)
    exe = build_c(prefix / "bin", f"python{version}", INTERPRETER_MAIN, shared=False,
                  libs=[lib], runpath="$ORIGIN/../lib")
    (prefix / "lib" / f"python{version}" / "site-packages").mkdir(parents=True, exist_ok=True)
    (prefix / "lib" / f"python{version}" / "lib-dynload").mkdir(parents=True, exist_ok=True)
    py3 = prefix / "bin" / "python3"
    if not py3.exists():
        py3.symlink_to(f"python{version}")
    return exe


class DlopenVerdict:
    def __init__(self, path: str, ok: bool, error: str):
        self.path, self.ok, self.error = path, ok, error

    def __repr__(self) -> str:
        return f"DlopenVerdict({self.path}, ok={self.ok}, {self.error!r})"


def interpreter_dlopen(interpreter, modules: Sequence, library_path: Iterable = (),
                       loader: Optional[str] = None, preload: Iterable = ()) -> Dict[str, DlopenVerdict]:
    """dlopen each module (host path) from the stand-in interpreter, each in
    its own process (so no module sees another's load): host path -> verdict."""
    out: Dict[str, DlopenVerdict] = {}
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    lp = ":".join(str(p) for p in library_path)
    if lp:
        env["LD_LIBRARY_PATH"] = lp
    pre = ":".join(str(p) for p in preload)
    if pre:
        env["LD_PRELOAD"] = pre
    for m in modules:
        args = [str(interpreter), str(m)]
        if loader:
            args = [loader] + args
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              timeout=60)
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"FAIL {m}: exit {proc.returncode}"
        ok = line.startswith("OK ")
        err = "" if ok else line.split(": ", 1)[-1]
        out[str(m)] = DlopenVerdict(str(m), ok, err)
    return out


# -- the binding fixture root ---------------------------------------------------------

HOST_MUSL = "/lib/x86_64-linux-musl/libc.so"
SITE = "/usr/local/lib/python3.12/site-packages"
MUSL_TAG = "cpython-312-x86_64-linux-musl"
GNU_TAG = "cpython-312-x86_64-linux-gnu"

CXX_NAMES = ("_ZNSt8ios_base4InitC1Ev", "_ZNSt8ios_base4InitD1Ev", "_ZSt4cout",
             "_ZNSolsEi", "_ZdlPvm", "_Znwm")


def _db_block(name, version, files, provides=()):
    lines = [f"C:Q1{'A' * 27}=", f"P:{name}", f"V:{version}", "A:x86_64", "S:1", "I:1", f"T:{name}", f"o:{name}"]
    if provides:
        lines.append("p:" + " ".join(provides))
    folder = None
    for path in files:
        d, _, base = path.rpartition("/")
        if d != folder:
            lines.append(f"F:{d}")
            folder = d
        lines.append(f"R:{base}")
    return "\n".join(lines) + "\n"


class Case:
    """One file of the fixture root and how the real loader is asked about it:
    ``list`` (``ld-musl --list``), ``dlopen`` (the stand-in interpreter opens
    it), or ``dlopen`` after ``before`` in the same process."""

    def __init__(self, path: str, mode: str, before: Sequence[str] = ()):
        self.path, self.mode, self.before = path, mode, tuple(before)

    def __repr__(self) -> str:
        return f"Case({self.path}, {self.mode})"


def build_binding_root(root, musl_so: str = HOST_MUSL, extra_db: Sequence[str] = ()) -> Dict[str, Case]:
    """A musl root laid out like the official python images, with one
    fixture per binding rule (see tests/test_bind.py); returns in-root path -> case.

    ``musl_so``: the real musl copied to ``lib/ld-musl-x86_64.so.1`` (the
    loader that gives the truth is this same file).
    """
    root = Path(root)
    cases: Dict[str, Case] = {}
    lib, ulib, llib = root / "lib", root / "usr/lib", root / "usr/local/lib"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(musl_so, lib / "ld-musl-x86_64.so.1")
    (lib / "ld-musl-x86_64.so.1").chmod(0o755)
    (lib / "libc.musl-x86_64.so.1").symlink_to("ld-musl-x86_64.so.1")
    build_interpreter(root / "usr/local")
    site = root / SITE.lstrip("/")

    def add(rel: str, mode: str = "list", before: Sequence[str] = ()) -> None:
        cases["/" + rel] = Case("/" + rel, mode, before)

    # a library that lacks a symbol its users were built against
    full = build_c(root.parent / "build-full", "libshort.so.1", "int foo(void){return 1;} int bar(void){return 2;}",
                   soname="libshort.so.1")
    build_c(llib, "libshort.so.1", "int foo(void){return 1;}", soname="libshort.so.1")
    build_c(site / "short", f"_short.{MUSL_TAG}.so", "int foo(void); int bar(void); int f(void){return foo()+bar();}",
            libs=[full])
    add(f"{SITE}/short/_short.{MUSL_TAG}.so".lstrip("/"))
    # a program that uses only what the short library has
    build_c(root / "usr/local/bin", "tool", "int foo(void); int main(void){return foo();}", shared=False,
            libs=[full])
    add("usr/local/bin/tool")
    # C++ names used without libstdc++ in DT_NEEDED (CXX=gcc); a stand-in libstdc++ owns them
    cxx_defs = "\n".join(f"char {n}[8];" if n == "_ZSt4cout" else f"void {n}(void){{}}" for n in CXX_NAMES)
    build_c(ulib, "libstdc++.so.6", cxx_defs, soname="libstdc++.so.6")
    cxx_uses = "\n".join(f"extern char {n}[];" if n == "_ZSt4cout" else f"void {n}(void);" for n in CXX_NAMES)
    cxx_body = " ".join(f"{n}();" for n in CXX_NAMES if n != "_ZSt4cout")
    build_c(site / "underlinked", f"_cxx.{MUSL_TAG}.so",
            cxx_uses + f"\nint f(void){{ {cxx_body} return _ZSt4cout[0]; }}\n")
    add(f"{SITE}/underlinked/_cxx.{MUSL_TAG}.so".lstrip("/"), "dlopen")
    # glibc: _FORTIFY_SOURCE needs __*_chk, which musl does not have
    build_c(site / "fort", f"_fort.{GNU_TAG}.so",
            "#include <string.h>\n#include <stdio.h>\nchar buf[16];\n"
            "int f(const char *s, size_t n){ memcpy(buf, s, n); printf(\"%s %d\\n\", s, (int)n); return buf[0]; }\n",
            cc="glibc", cflags=["-O2", "-D_FORTIFY_SOURCE=2"])
    add(f"{SITE}/fort/_fort.{GNU_TAG}.so".lstrip("/"))
    # glibc, but only names musl has too: loads
    build_c(site / "glibcok", f"_ok.{GNU_TAG}.so",
            "#include <string.h>\n#include <stdlib.h>\n"
            "size_t f(const char *s){ char *p = malloc(8); size_t n = strlen(s); free(p); return n; }\n",
            cc="glibc", cflags=["-O0"])
    add(f"{SITE}/glibcok/_ok.{GNU_TAG}.so".lstrip("/"))
    # glibc LFS64 names
    build_c(site / "lfs", f"_lfs.{GNU_TAG}.so",
            "#define _LARGEFILE64_SOURCE\n#include <sys/stat.h>\n#include <fcntl.h>\n#include <unistd.h>\n"
            "#include <dirent.h>\n#include <stdio.h>\n"
            "int f(const char *p){ struct stat64 st; int fd = open64(p, O_RDONLY); lseek64(fd, 0, SEEK_SET);\n"
            "  FILE *x = fopen64(p, \"r\"); DIR *d = opendir(p); struct dirent64 e, *r;\n"
            "  readdir64_r(d, &e, &r); return stat64(p, &st) + (x != 0); }\n",
            cc="glibc", cflags=["-O0", "-Wno-deprecated-declarations"])
    add(f"{SITE}/lfs/_lfs.{GNU_TAG}.so".lstrip("/"))
    # a 64 name that is not LFS64 for musl
    build_c(site / "lfsbad", f"_lfsbad.{GNU_TAG}.so",
            "int fcntl64(int, int, ...); int strtonum64(const char *);\n"
            "int f(int fd){ return fcntl64(fd, 1) + strtonum64(\"1\"); }\n", cc="glibc", cflags=["-O0"])
    add(f"{SITE}/lfsbad/_lfsbad.{GNU_TAG}.so".lstrip("/"))
    # weak undefined
    build_c(site / "weak", f"_weak.{MUSL_TAG}.so",
            "extern int maybe_absent(void) __attribute__((weak));\n"
            "int f(void){ return maybe_absent ? maybe_absent() : 0; }\n")
    add(f"{SITE}/weak/_weak.{MUSL_TAG}.so".lstrip("/"))
    # versions: a hidden (non-default) definition is skipped; other versions are ignored
    built = build_c(root.parent / "build-ver", "libver.so.1", "int ver_fn(void){return 1;} int hid_fn(void){return 2;}",
                    soname="libver.so.1", version_script="V2 { global: ver_fn; hid_fn; local: *; };\n")
    build_c(llib, "libver.so.1",
            "int ver_fn(void){return 1;}\nint hid_impl(void){return 2;}\n__asm__(\".symver hid_impl,hid_fn@V1\");\n",
            soname="libver.so.1", version_script="V1 { global: ver_fn; hid_fn; local: *; };\n")
    build_c(site / "hidden", f"_hid.{MUSL_TAG}.so", "int hid_fn(void); int f(void){return hid_fn();}", libs=[built])
    add(f"{SITE}/hidden/_hid.{MUSL_TAG}.so".lstrip("/"))
    build_c(site / "versioned", f"_ver.{MUSL_TAG}.so", "int ver_fn(void); int f(void){return ver_fn();}",
            libs=[built])
    add(f"{SITE}/versioned/_ver.{MUSL_TAG}.so".lstrip("/"))
    # symbols only the interpreter has (RTLD_LOCAL scope: interpreter + libpython)
    build_c(site / "pyuse", f"_py.{MUSL_TAG}.so",
            "void *PyLong_FromLong(long); extern char _Py_NoneStruct[];\n"
            "void *f(void){ return PyLong_FromLong(_Py_NoneStruct[0]); }\n")
    add(f"{SITE}/pyuse/_py.{MUSL_TAG}.so".lstrip("/"), "dlopen")
    build_c(site / "pybad", f"_pybad.{MUSL_TAG}.so",
            "void *PyLong_FromLong(long); void *PyNothing_Here(void);\n"
            "void *f(void){ PyNothing_Here(); return PyLong_FromLong(1); }\n")
    add(f"{SITE}/pybad/_pybad.{MUSL_TAG}.so".lstrip("/"), "dlopen")
    # modules do not see each other's symbols
    build_c(site / "pair", f"_a.{MUSL_TAG}.so", "int a_shared(void){return 7;}")
    build_c(site / "pair", f"_b.{MUSL_TAG}.so", "int a_shared(void); int f(void){return a_shared();}")
    add(f"{SITE}/pair/_a.{MUSL_TAG}.so".lstrip("/"), "dlopen")
    add(f"{SITE}/pair/_b.{MUSL_TAG}.so".lstrip("/"), "dlopen", before=[f"{SITE}/pair/_a.{MUSL_TAG}.so"])
    # the object's own closure is in scope, breadth first, not only direct needs
    bottom = build_c(llib, "libbottom.so.1", "int bottom_fn(void){return 3;}", soname="libbottom.so.1")
    mid = build_c(llib, "libmid.so.1", "int bottom_fn(void); int mid_fn(void){return bottom_fn();}",
                  soname="libmid.so.1", libs=[bottom])
    build_c(site / "deep", f"_deep.{MUSL_TAG}.so", "int bottom_fn(void); int mid_fn(void);"
            " int f(void){return bottom_fn() + mid_fn();}", libs=[mid])
    add(f"{SITE}/deep/_deep.{MUSL_TAG}.so".lstrip("/"))
    # a missing library
    nothere = build_c(root.parent / "build-nothere", "libnothere.so.1", "int nh(void){return 0;}",
                      soname="libnothere.so.1")
    build_c(site / "missinglib", f"_ml.{MUSL_TAG}.so", "int nh(void); int f(void){return nh();}", libs=[nothere])
    add(f"{SITE}/missinglib/_ml.{MUSL_TAG}.so".lstrip("/"))
    # a module that fails because the library it loads fails
    broken = build_c(llib, "libbroken.so.1", "int gone_fn(void); int broken_fn(void){return gone_fn();}",
                     soname="libbroken.so.1")
    build_c(site / "depfail", f"_df.{MUSL_TAG}.so", "int broken_fn(void); int f(void){return broken_fn();}",
            libs=[broken])
    add(f"{SITE}/depfail/_df.{MUSL_TAG}.so".lstrip("/"))
    # a glibc module whose vendored library needs glibc's loader by name (gcompat provides a file of that name)
    vend = build_c(site / "glibcvend.libs", "libvend-0a1b2c3d.so.1",
                   "#include <string.h>\nsize_t vend_len(const char *s){ return strlen(s); }\n",
                   cc="glibc", soname="libvend-0a1b2c3d.so.1", libs=["/lib64/ld-linux-x86-64.so.2"])
    build_c(site / "glibcvend", f"_v.{GNU_TAG}.so", "#include <stddef.h>\nsize_t vend_len(const char *);"
            " size_t f(void){ return vend_len(\"x\"); }\n", cc="glibc", libs=[vend],
            runpath="$ORIGIN/../glibcvend.libs")
    add(f"{SITE}/glibcvend/_v.{GNU_TAG}.so".lstrip("/"))
    # glibc programs: their loader is glibc's
    build_c(root / "usr/local/bin", "gfort",
            "#include <string.h>\n#include <stdio.h>\nchar buf[16];\n"
            "int main(int argc, char **argv){ memcpy(buf, argv[0], (size_t)argc); printf(\"%s %d\\n\", buf, argc);"
            " return 0; }\n", cc="glibc", shared=False, cflags=["-O2", "-D_FORTIFY_SOURCE=2"])
    build_c(root / "usr/local/bin", "gonly",
            "#include <malloc.h>\nint main(void){ struct mallinfo2 m = mallinfo2(); return (int)m.arena; }\n",
            cc="glibc", shared=False)
    add("usr/local/bin/gfort", "program")
    add("usr/local/bin/gonly", "program")
    # the installed database
    db = root / "lib/apk/db"
    db.mkdir(parents=True, exist_ok=True)
    blocks = [
        _db_block("musl", "1.2.3-r0", ["lib/ld-musl-x86_64.so.1", "lib/libc.musl-x86_64.so.1"],
                  provides=["so:libc.musl-x86_64.so.1=1"]),
        _db_block("libstdc++", "13.2.1-r0", ["usr/lib/libstdc++.so.6"], provides=["so:libstdc++.so.6=6.0.32"]),
    ] + list(extra_db)
    (db / "installed").write_text("\n".join(blocks))
    (root / "etc/apk").mkdir(parents=True, exist_ok=True)
    (root / "etc/apk/arch").write_text("x86_64\n")
    return cases


def program_interp(host_path) -> str:
    """PT_INTERP of a program, as binutils' readelf prints it."""
    out = subprocess.run(["readelf", "-l", "-W", str(host_path)], stdout=subprocess.PIPE, text=True).stdout
    m = re.search(r"\[Requesting program interpreter: (.*)\]", out)
    return m.group(1) if m else ""


def root_library_path(root) -> List[str]:
    """Host folders that stand for musl's default search inside ``root``."""
    root = Path(root)
    return [str(root / "lib"), str(root / "usr/local/lib"), str(root / "usr/lib")]


def loader_verdicts(root, cases: Mapping[str, Case], loader: str = MUSL_LOADER,
                    preload: Iterable = ()) -> Dict[str, "LoaderVerdict | DlopenVerdict"]:
    """The real loader's verdict for every case: in-root path -> verdict."""
    root = Path(root)
    lp = root_library_path(root)
    interp = root / "usr/local/bin/python3.12"
    out = {}
    for path, case in cases.items():
        host = root / path.lstrip("/")
        if case.mode == "program":
            # a glibc program: the kernel runs its PT_INTERP, which must exist in the root;
            # then (gcompat's loader) musl's loader runs it with libgcompat preloaded
            interp_path = program_interp(host)
            if not os.path.lexists(root / interp_path.lstrip("/")):
                out[path] = DlopenVerdict(str(host), False, f"no {interp_path} in the root")
            else:
                out[path] = loader_list(host, library_path=lp, loader=loader, preload=preload)
        elif case.mode == "list":
            out[path] = loader_list(host, library_path=lp, loader=loader, preload=preload)
        else:
            mods = [root / b.lstrip("/") for b in case.before] + [host]
            out[path] = interpreter_dlopen_together(interp, mods, library_path=lp, loader=loader, preload=preload)
    return out


def interpreter_dlopen_together(interpreter, modules: Sequence, library_path: Iterable = (),
                                loader: Optional[str] = None, preload: Iterable = ()) -> "DlopenVerdict":
    """dlopen ``modules`` in order in one interpreter process; the verdict of the last."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    lp = ":".join(str(p) for p in library_path)
    if lp:
        env["LD_LIBRARY_PATH"] = lp
    pre = ":".join(str(p) for p in preload)
    if pre:
        env["LD_PRELOAD"] = pre
    args = [str(interpreter)] + [str(m) for m in modules]
    if loader:
        args = [loader] + args
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=60)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("OK ", "FAIL "))]
    last = lines[-1] if lines else f"FAIL {modules[-1]}: {proc.stdout.strip() or proc.returncode}"
    ok = last.startswith("OK ")
    v = DlopenVerdict(str(modules[-1]), ok, "" if ok else last.split(": ", 1)[-1])
    v.crashed = proc.returncode < 0 and not lines[-1:]  # killed by a signal before dlopen returned
    return v


GCOMPAT_NAMES = ("__memcpy_chk", "__printf_chk", "__fprintf_chk", "gnu_get_libc_version", "__strcpy_chk")


def install_gcompat(root) -> Path:
    """A stand-in gcompat in ``root`` (there is no real gcompat here): a
    musl-gcc ``/lib/libgcompat.so.0`` defining a few glibc-only names, a
    file named like glibc's loader in /lib and /lib64, and the package in the
    installed database. Returns the host path of libgcompat.so.0."""
    root = Path(root)
    src = "\n".join(f"void *{n}(void) {{ return 0; }}" for n in GCOMPAT_NAMES)
    lib = build_c(root / "lib", "libgcompat.so.0", src, soname="libgcompat.so.0")
    build_c(root / "lib", "ld-linux-x86-64.so.2", "int gcompat_loader_stub(void){return 0;}",
            soname="ld-linux-x86-64.so.2")
    (root / "lib64").mkdir(exist_ok=True)
    (root / "lib64/ld-linux-x86-64.so.2").symlink_to("/lib/ld-linux-x86-64.so.2")
    db = root / "lib/apk/db/installed"
    db.write_text(db.read_text() + "\n" + _db_block(
        "gcompat", "1.1.0-r4", ["lib/ld-linux-x86-64.so.2", "lib/libgcompat.so.0", "lib64/ld-linux-x86-64.so.2"],
        provides=["so:libgcompat.so.0=0"]))
    return lib


def gcompat_verdicts(root, cases: Mapping[str, Case], libgcompat) -> Dict[str, object]:
    """The real loader's verdict for each case with gcompat: a glibc program
    as gcompat's loader runs it (musl's loader with ``--preload
    libgcompat.so.0``), a module dlopen'ed with ``LD_PRELOAD`` of it."""
    root = Path(root)
    lp = root_library_path(root)
    interp = root / "usr/local/bin/python3.12"
    out = {}
    for path, case in cases.items():
        host = root / path.lstrip("/")
        if case.mode == "program":
            out[path] = loader_verdicts(root, {path: case}, preload=[libgcompat])[path]
        elif case.mode == "list":
            out[path] = interpreter_dlopen_together(interp, [host], library_path=lp, preload=[libgcompat])
        else:
            mods = [root / b.lstrip("/") for b in case.before] + [host]
            out[path] = interpreter_dlopen_together(interp, mods, library_path=lp, preload=[libgcompat])
    return out


# -- small helpers for tests/test_load_model.py ----------------------------------------


def musl_root(root, musl_so: str = HOST_MUSL, interpreter: bool = True, musl_version: str = "1.2.3-r0") -> Path:
    """A minimal musl root: the real musl as ``lib/ld-musl-x86_64.so.1`` (and
    its ``libc.musl`` link), the stand-in interpreter under ``usr/local``
    (unless ``interpreter`` is false), and an installed database naming musl."""
    root = Path(root)
    lib = root / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(musl_so, lib / "ld-musl-x86_64.so.1")
    (lib / "ld-musl-x86_64.so.1").chmod(0o755)
    (lib / "libc.musl-x86_64.so.1").symlink_to("ld-musl-x86_64.so.1")
    if interpreter:
        build_interpreter(root / "usr/local")
    db = root / "lib/apk/db"
    db.mkdir(parents=True, exist_ok=True)
    (db / "installed").write_text(_db_block("musl", musl_version, ["lib/ld-musl-x86_64.so.1",
                                                                   "lib/libc.musl-x86_64.so.1"],
                                            provides=["so:libc.musl-x86_64.so.1=1"]))
    (root / "etc/apk").mkdir(parents=True, exist_ok=True)
    (root / "etc/apk/arch").write_text("x86_64\n")
    return root


def relocation_types(path) -> List[str]:
    """The relocation type names of ``path``, as binutils' readelf prints them."""
    out = subprocess.run(["readelf", "-r", "-W", str(path)], stdout=subprocess.PIPE, text=True).stdout
    return re.findall(r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+(R_\w+)", out, flags=re.M)


def dynamic_symbol_types(path) -> Dict[str, str]:
    """Defined dynamic symbol name -> its type (FUNC, IFUNC, TLS, ...), as readelf prints them."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", str(path)], stdout=subprocess.PIPE, text=True).stdout
    types: Dict[str, str] = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0].endswith(":") and f[6] != "UND":
            types[f[7].split("@")[0]] = f[3]
    return types


def dynamic_tags(path) -> Dict[str, List[str]]:
    """Dynamic tag (NEEDED, RPATH, RUNPATH, SONAME) -> values, as readelf prints them."""
    out = subprocess.run(["readelf", "-d", "-W", str(path)], stdout=subprocess.PIPE, text=True).stdout
    tags: Dict[str, List[str]] = {}
    for m in re.finditer(r"\((NEEDED|RPATH|RUNPATH|SONAME)\)\s+.*?\[(.*)\]", out):
        tags.setdefault(m.group(1), []).append(m.group(2))
    return tags

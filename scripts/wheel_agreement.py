#!/usr/bin/env python3
"""Does rundeps' ``will_not_load`` agree with musl's ``dlopen`` on real wheels?

Downloads real musllinux and manylinux wheels from PyPI (once: they are kept
in a cache folder, default ``~/.cache/rundeps-agreement``, or ``--wheels
DIR``), installs each wheel set into a musl "CPython root" for the set's
Python version, and compares, for every load unit, the truth with rundeps'
verdict asked three ways.

Load units: every extension module, and every ELF shared library under
site-packages outside ``<name>.libs/`` folders (packages open those by path
with ctypes/cffi, e.g. pycryptodome's ``Crypto/*/_raw_*.abi3.so``, or they
are the libraries a package's modules link, e.g. pyarrow's
``libarrow*.so.*``). Libraries in ``<name>.libs/`` get no verdict of their
own: they load as part of the units that need them.

* the truth: a musl-gcc-built stand-in interpreter ``dlopen``s the unit by
  path with ``RTLD_NOW | RTLD_LOCAL`` (as CPython imports extension modules
  and as ``ctypes.CDLL`` opens a library) under a real musl loader, one
  process per unit. When that process dies in a constructor *after*
  binding (the stand-in is not CPython), the binding verdict is musl's
  ``--list`` with the stand-in libpython preloaded: the same scope, no
  constructors.
* the loaders: every one that runs here, each giving its own truth --
  Debian's 1.2.3 (``/lib/ld-musl-x86_64.so.1``) and, when
  ``../shared/alpine/musl`` is there, each Alpine x86_64 build in it
  (1.1.20-r6, 1.2.3-r1, 1.2.5-r0, run as ``LOADER PROGRAM``). Debian's
  never stands in for an Alpine one.
* rundeps, per mode:

  ``root``        ``check_tree([SITE], root=ROOT, explicit_root=True)``: the
                  root has the interpreter, its libpython, the loader as its
                  ``lib/ld-musl-x86_64.so.1`` and an installed database
                  naming that loader's Alpine release;
  ``prefix``      the same site-packages alone in a bare prefix
                  (``PREFIX/usr/local/lib/pythonX.Y/site-packages``, as
                  ``pip install --prefix`` leaves it in a multi-stage build):
                  no interpreter, no ld-musl; checked with ``--db`` of the
                  image it goes into (a database with only that musl
                  release);
  ``target``      the same files as a ``pip install --target /deps`` folder
                  in the root: no ``site-packages`` in the path;
  ``wheel``       ``check_wheel(WHEEL, musl_version=X.Y.Z)`` without a root
                  and without any package source (as ``--musl X.Y.Z``);
  ``wheel-root``  ``check_wheel(WHEEL, root=ROOT, explicit_root=True)``.

  ``prefix`` and ``wheel`` check against the export lists rundeps ships,
  which are Alpine's: they are not run under Debian's musl. A unit rundeps
  lists in ``binding.unchecked`` or ``binding.undecided`` and not in
  ``will_not_load`` is counted as "unchecked", not compared.

There is no real musl CPython here: the root's ``bin/pythonX.Y`` and
``lib/libpythonX.Y.so.1.0`` are stand-ins built with Debian's ``musl-gcc``;
the stand-in libpython defines every ``Py*``/``_Py*`` name the set's ELF
files leave undefined (collected with binutils' ``nm -D --undefined-only``,
not with rundeps), so a unit fails only on what a real CPython would not give
it either.

A loader that does not apply packed relative relocations (``DT_RELR``;
newer musllinux wheels vendor a ``libstdc++``/``libgcc_s`` built that way)
maps and binds such an object but leaves it unrelocated: the first
constructor jumps through an unrelocated pointer and the process dies.
Whether a loader applies them is seen by running it on a probe library
(``scripts/probe_musl_builds.py``), never taken from its version; when a
crashed unit's ``--list`` closure has such an object and the loader failed
the probe, the truth is "fails" (a real CPython dies the same way on
import); any other crash keeps the fallback above.

    python scripts/wheel_agreement.py                  # the default sets (downloads once)
    python scripts/wheel_agreement.py --sets musllinux-3.11 --modes root,wheel
    python scripts/wheel_agreement.py --wheels DIR     # a cache folder of your own

Prints one line per unit and mode (dlopen's verdict, rundeps', agreement),
then one summary line per loader and mode, ``LOADER MODE: N of M agree (K
false failures, L false OKs, U unchecked)``; exits 0 when no mode has a false failure or a false
OK, 1 otherwise, 2 when the tools (or the wheels) are missing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "tests"))

HOST_MUSL = "/lib/x86_64-linux-musl/libc.so"
LOADER = "/lib/ld-musl-x86_64.so.1"


class Musl:
    """A real musl (loader and libc in one file) that gives the truth: the
    root's ``lib/ld-musl-x86_64.so.1`` is a copy of it.

    ``label``: how the report names it (``alpine-1.2.3-r1``,
    ``debian-1.2.3``); ``version``: its upstream version (the shipped
    export list the ``wheel`` mode checks against); ``release``: its Alpine
    package version-release (the installed database of the root and of the
    bare prefix says it), None for Debian's; ``run``: how it is started
    (None: the kernel starts the stand-in interpreter's PT_INTERP,
    /lib/ld-musl-x86_64.so.1, Debian's). ``relr``: whether it applies
    DT_RELR relocations, seen by running it (:func:`probe_relr`)."""

    def __init__(self, label: str, version: str, path: str, release: Optional[str] = None,
                 run: Optional[str] = None):
        self.label, self.version, self.path, self.release, self.run = label, version, path, release, run
        self.relr: Optional[bool] = None

    @property
    def alpine(self) -> bool:
        return self.release is not None

    def __repr__(self) -> str:
        return f"Musl({self.label})"


def probe_relr(found: List[Musl], work: Path, pmb) -> None:
    """Set each musl's ``relr`` by running it on a DT_RELR library
    (``pmb``: scripts/probe_musl_builds.py): the truth of a crash is the
    loader's behaviour, never its version."""
    probe = pmb.Probe(Path(tempfile.mkdtemp(prefix="probe-", dir=work)))
    for m in found:
        m.relr = probe.applies_relr(Path(m.run) if m.run else None)


def musls(work: Path, wanted: Sequence[str] = ()) -> List[Musl]:
    """The loaders that run here, as scripts/probe_musl_builds.py finds
    them: Debian's 1.2.3 (runs as /lib/ld-musl-x86_64.so.1), and each
    Alpine x86_64 loader in ../shared/alpine/musl when that folder is there
    (run explicitly: ``LOADER PROGRAM ARGS``, from a copy in ``work``);
    ``wanted``: labels, versions or releases to keep."""
    from scriptmods import load_script

    pmb = load_script("probe_musl_builds")
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for ld in pmb.loaders():
        release = ld["release"]
        if release is None:
            out.append(Musl("debian-1.2.3", "1.2.3", HOST_MUSL))
            continue
        run = work / f"ld-musl-{release}"
        if not run.exists():
            shutil.copyfile(ld["path"], run)
            run.chmod(0o755)
        version = re.match(r"\d+\.\d+\.\d+", release).group(0)
        out.append(Musl(f"alpine-{release}", version, str(ld["path"]), release, str(run)))
    out = [m for m in out if not wanted or {m.label, m.version, m.release} & set(wanted)]
    probe_relr(out, work, pmb)
    return out


MODES = ("root", "prefix", "target", "wheel", "wheel-root")
#: Modes that check against a shipped export list of Alpine's musl, not the
#: loader file: not run for Debian's musl, which is no Alpine target.
BARE_MODES = ("prefix", "wheel")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rundeps-agreement"

DEFAULT_PACKAGES = ("psycopg2-binary", "orjson", "markupsafe", "msgpack", "pyyaml", "ujson", "regex",
                    "zstandard", "greenlet")
MUSLLINUX = ("musllinux_1_2_x86_64", "musllinux_1_1_x86_64")
MANYLINUX = ("manylinux2014_x86_64",)


class WheelSet:
    """Wheels installed together into one root: ``specs`` (pip requirement
    strings) for CPython ``python`` on ``platforms`` (pip ``--platform``)."""

    def __init__(self, name: str, python: str, platforms: Sequence[str], specs: Sequence[str]):
        self.name, self.python, self.platforms, self.specs = name, python, tuple(platforms), tuple(specs)

    @property
    def kind(self) -> str:
        return "musllinux" if any(p.startswith("musllinux") for p in self.platforms) else "manylinux"

    @property
    def site(self) -> str:
        """site-packages inside the root, without the leading slash."""
        return f"usr/local/lib/python{self.python}/site-packages"

    def __repr__(self) -> str:
        return f"WheelSet({self.name}, {self.python}, {list(self.specs)})"


DEFAULT_SETS = (
    # today's packages, newest releases, and the large vendoring ones
    WheelSet("musllinux-3.12", "3.12", MUSLLINUX,
             DEFAULT_PACKAGES + ("numpy==2.5.5", "scipy==1.18.1", "pyarrow==26.0.1", "pycryptodome==4.4.0",
                                 "shapely==2.2.0", "pyzmq==27.3.0")),
    # an older auditwheel vintage: numpy.libs/ without RPATH on the vendored libraries
    WheelSet("musllinux-3.12-numpy1", "3.12", MUSLLINUX, ("numpy==1.26.4",)),
    # greenlet 2.0.1 has no cp312 build: its own root, CPython 3.11
    WheelSet("musllinux-3.11", "3.11", MUSLLINUX, ("greenlet==2.0.1",)),
    WheelSet("manylinux-3.12", "3.12", MANYLINUX, DEFAULT_PACKAGES),
)


def have_tools() -> Optional[str]:
    for tool in ("musl-gcc", "nm"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    if not os.path.exists(LOADER) or not os.path.exists(HOST_MUSL):
        return "Debian's musl loader is missing"
    return None


# -- wheels ------------------------------------------------------------------------

def _norm_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def cached_wheel(folder: Path, spec: str) -> Optional[Path]:
    """A wheel of ``spec`` (``name`` or ``name==version``) already in ``folder``."""
    name, _, version = spec.partition("==")
    for w in sorted(folder.glob("*.whl")):
        parts = w.name[:-4].split("-")
        if len(parts) < 5 or _norm_name(parts[0]) != _norm_name(name):
            continue
        if version and parts[1] != version:
            continue
        return w
    return None


def download(cache: Path, sets: Sequence[WheelSet] = DEFAULT_SETS, timeout: int = 600,
             on_missing=None) -> Dict[str, List[Path]]:
    """pip download the wheels of every set into ``cache/<set name>/`` (a
    wheel already there is not downloaded again): {set name: [wheel paths]}.
    A spec that cannot be downloaded (PyPI unreachable, no such build) is
    left out (``on_missing(set, spec, why)``)."""
    out: Dict[str, List[Path]] = {}
    for ws in sets:
        d = cache / ws.name
        d.mkdir(parents=True, exist_ok=True)
        wheels = []
        for spec in ws.specs:
            found = cached_wheel(d, spec)
            if found is None:
                args = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", ws.python, "--implementation", "cp", "-d", str(d)]
                for p in ws.platforms:
                    args += ["--platform", p]
                why = ""
                try:
                    proc = subprocess.run(args + [spec], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, timeout=timeout)
                    why = proc.stdout.strip().splitlines()[-1:] and proc.stdout.strip().splitlines()[-1]
                except (OSError, subprocess.TimeoutExpired) as exc:
                    why = str(exc)
                found = cached_wheel(d, spec)
                if found is None and on_missing is not None:
                    on_missing(ws, spec, why)
            if found is not None:
                wheels.append(found)
        out[ws.name] = wheels
    return out


def install(wheels: List[Path], site: Path) -> Dict[str, Path]:
    """Unpack wheels into site-packages as pip would (``.data/purelib`` and
    ``.data/platlib`` into site-packages, other ``.data`` parts left out);
    returns {site-relative path: the wheel it came from}."""
    site.mkdir(parents=True, exist_ok=True)
    owner: Dict[str, Path] = {}
    for w in wheels:
        with zipfile.ZipFile(w) as zf:
            for info in zf.infolist():
                name = info.filename
                if name.endswith("/"):
                    continue
                top, _, rest = name.partition("/")
                if top.endswith(".data"):
                    kind, _, rest = rest.partition("/")
                    if kind not in ("purelib", "platlib"):
                        continue
                    name = rest
                target = site / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if name.endswith(".so") or ".so." in name:
                    target.chmod(0o755)
                owner[name] = w
    return owner


def _is_elf(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def shared_objects(site: Path) -> List[Path]:
    """Every ELF shared object under site-packages (``*.so``, ``*.so.N...``)."""
    out = []
    for p in sorted(site.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        if not (p.name.endswith(".so") or ".so." in p.name):
            continue
        if _is_elf(p):
            out.append(p)
    return out


def in_libs(site: Path, p: Path) -> bool:
    return any(part.endswith(".libs") for part in p.relative_to(site).parts[:-1])


def load_units(site: Path) -> List[Path]:
    """The files that get a verdict: ELF shared objects outside ``*.libs`` folders
    (extension modules, and libraries packages open by path or link)."""
    return [p for p in shared_objects(site) if not in_libs(site, p)]


def extension_modules(site: Path) -> List[Path]:  # the name the script had before load units
    return load_units(site)


def py_names(objects: List[Path]) -> List[str]:
    """Every Py*/_Py* name the objects leave undefined (binutils' nm)."""
    names = set()
    for m in objects:
        out = subprocess.run(["nm", "-D", "--undefined-only", str(m)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout
        for line in out.splitlines():
            name = line.split()[-1].split("@")[0] if line.split() else ""
            if name.startswith(("Py", "_Py")):
                names.add(name)
    return sorted(names)


MUSL_FILES = ["lib/ld-musl-x86_64.so.1", "lib/libc.musl-x86_64.so.1"]


def musl_db(musl: Musl) -> str:
    """An installed database holding the musl package: the Alpine loader's
    own release; for Debian's, a ``1.2.3-r0`` that no known Alpine build
    has (rundeps then tells the build by the loader file)."""
    from bindbuild import _db_block

    return _db_block("musl", musl.release or "1.2.3-r0", MUSL_FILES, provides=["so:libc.musl-x86_64.so.1=1"])


class Built:
    """One wheel set installed: the root, the bare prefix, the units."""

    def __init__(self, ws: WheelSet, root: Path, prefix: Path, prefix_db: Path, owner: Dict[str, Path],
                 units: List[Path]):
        self.ws, self.root, self.prefix, self.prefix_db, self.owner, self.units = (
            ws, root, prefix, prefix_db, owner, units)

    @property
    def site(self) -> Path:
        return self.root / self.ws.site

    def inroot(self, unit: Path) -> str:
        return "/" + str(unit.relative_to(self.root))

    def rel(self, unit: Path) -> str:
        """site-relative, as the wheel's members are installed (``pkg/x.so``)."""
        return str(unit.relative_to(self.site))


def build(ws: WheelSet, wheels: List[Path], work: Path, musl: Optional[Musl] = None) -> Built:
    """The musl CPython root of ``ws`` with ``wheels`` installed, and the bare prefix."""
    from bindbuild import build_interpreter

    musl = musl or musls(work, ["debian-1.2.3"])[0]
    tag = f"{ws.name}-{musl.label}"
    root = work / f"root-{tag}"
    if root.exists():
        shutil.rmtree(root)
    (root / "lib").mkdir(parents=True)
    shutil.copyfile(musl.path, root / "lib/ld-musl-x86_64.so.1")
    (root / "lib/ld-musl-x86_64.so.1").chmod(0o755)
    (root / "lib/libc.musl-x86_64.so.1").symlink_to("ld-musl-x86_64.so.1")
    site = root / ws.site
    owner = install(wheels, site)
    units = load_units(site)
    build_interpreter(root / "usr/local", version=ws.python,
                      py_names=py_names(shared_objects(site)) or ["Py_Initialize"])
    (root / "lib/apk/db").mkdir(parents=True, exist_ok=True)
    (root / "lib/apk/db/installed").write_text(musl_db(musl))
    (root / "etc/apk").mkdir(parents=True, exist_ok=True)
    (root / "etc/apk/arch").write_text("x86_64\n")
    # the bare prefix: site-packages only (hard links to the root's files)
    prefix = work / f"prefix-{tag}"
    if prefix.exists():
        shutil.rmtree(prefix)
    (prefix / ws.site).parent.mkdir(parents=True)

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(site, prefix / ws.site, copy_function=link)
    prefix_db = work / f"prefix-{tag}.installed"  # outside the prefix: --db FILE
    prefix_db.write_text(musl_db(musl))
    # a pip install --target folder: the same files under a path with no
    # site-packages in it, inside the root (/deps)
    shutil.copytree(site, root / "deps", copy_function=link)
    built = Built(ws, root, prefix, prefix_db, owner, units)
    built.musl = musl
    return built


# -- the truth -----------------------------------------------------------------------

def has_relr(path) -> bool:
    """Whether binutils' readelf shows a DT_RELR tag in ``path``'s dynamic section."""
    out = subprocess.run(["readelf", "-d", "-W", str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    return "(RELR)" in out


def closure(listing: str, first: Path) -> List[str]:
    """The objects a ``--list`` run mapped (its ``NAME => PATH (ADDR)`` lines), ``first`` first."""
    out = [str(first)]
    for line in listing.splitlines():
        m = re.match(r"\s*\S+ => (\S+) \(0x[0-9a-f]+\)", line)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def dlopen_truth(built: Built, jobs: int = 4) -> Dict[str, Tuple[bool, str]]:
    """in-root path -> (loads, dlerror) from the stand-in interpreter under the real loader."""
    from bindbuild import MUSL_LOADER, interpreter_dlopen_together, loader_list, root_library_path

    root, v = built.root, built.ws.python
    musl = built.musl
    interp = root / f"usr/local/bin/python{v}"
    libpython = root / f"usr/local/lib/libpython{v}.so.1.0"
    lp = root_library_path(root)

    def one(m: Path) -> Tuple[str, Tuple[bool, str]]:
        verdict = interpreter_dlopen_together(interp, [m], library_path=lp, loader=musl.run)
        if verdict.crashed:
            lv = loader_list(m, library_path=lp, preload=[libpython], loader=musl.run or MUSL_LOADER)
            relr = [o for o in closure(lv.output, m) if has_relr(o)]
            if relr and musl.relr is False:
                # not the stand-in's fault: this loader maps the objects but
                # does not apply their packed relative relocations (DT_RELR; it
                # crashed on the probe too), so the first constructor jumps
                # through an unrelocated pointer. A real CPython crashes the
                # same way on import.
                names = ", ".join(os.path.basename(o) for o in relr)
                return built.inroot(m), (False, f"crashed: {musl.label} does not apply the DT_RELR "
                                                f"relocations of {names}")
            # dlopen bound it and then died in a constructor (the stand-in
            # interpreter is not CPython): the loader's binding verdict is
            # --list with libpython preloaded, the same scope, no constructors
            return built.inroot(m), (lv.ok, "crashed in a constructor after binding; --list: "
                                     + ("binds" if lv.ok else lv.output.strip()[-200:]))
        return built.inroot(m), (verdict.ok, verdict.error)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return dict(pool.map(one, built.units))


# -- rundeps, three ways ---------------------------------------------------------------

class Verdicts:
    """rundeps' answer for one mode: in-root path -> reason (will not load),
    and in-root path -> names (not checked)."""

    def __init__(self, will_not_load: Dict[str, str], unchecked: Dict[str, List[str]], note: str = ""):
        self.will_not_load, self.unchecked, self.note = will_not_load, unchecked, note


def _sources():
    from rundeps.api import Sources

    return Sources(use_cache=False)


def rundeps_root(built: Built) -> Verdicts:
    from rundeps.api import check_tree

    res = check_tree(["/" + built.ws.site], root=str(built.root), sources=_sources(), explicit_root=True,
                     symbols=True)
    return _verdicts(res)


def rundeps_prefix(built: Built) -> Verdicts:
    from rundeps.api import Sources, check_tree

    # checked with --db of the image it goes into: its musl package says
    # which export list, and its release whether DT_RELR is applied
    res = check_tree(["/" + built.ws.site], root=str(built.prefix),
                     sources=Sources(db=str(built.prefix_db), use_cache=False), explicit_root=True,
                     symbols=True)
    # the prefix's paths are the root's paths
    return _verdicts(res)


def rundeps_target(built: Built) -> Verdicts:
    """``pip install --target /deps``: the same files in the root under
    ``/deps`` (no site-packages in the path); reported as the site's paths."""
    from rundeps.api import check_tree

    res = check_tree(["/deps"], root=str(built.root), sources=_sources(), explicit_root=True, symbols=True)
    site = "/" + built.ws.site
    back = (lambda p: site + p[len("/deps"):] if p.startswith("/deps/") else p)
    got = _verdicts(res)
    return Verdicts({back(p): r for p, r in got.will_not_load.items()},
                    {back(p): n for p, n in got.unchecked.items()})


def _verdicts(res) -> Verdicts:
    """will_not_load, and the unchecked units: libraries not at hand, or
    what the target's loader does cannot be told (``undecided``)."""
    unchecked = dict(getattr(res.binding, "unchecked", {}) or {})
    for p, why in (getattr(res.binding, "undecided", {}) or {}).items():
        unchecked.setdefault(p, [why])
    return Verdicts(dict(res.will_not_load), unchecked)


def _wheel_verdicts(built: Built, with_root: bool) -> Verdicts:
    from rundeps.api import check_wheel
    from rundeps.apk.model import Universe

    wnl: Dict[str, str] = {}
    unchecked: Dict[str, List[str]] = {}
    notes = []
    base = "/" + built.ws.site
    for wheel in sorted(set(built.owner.values())):
        if with_root:
            check = check_wheel(str(wheel), root=str(built.root), sources=_sources(), explicit_root=True)
        else:
            check = check_wheel(str(wheel), sources=_sources(), universe=Universe(),
                                musl_version=built.musl.version)
        res = check.resolution
        if res is None:
            notes.append(f"{wheel.name}: no resolution ({check.verdict})")
            continue
        # members are installed paths relative to site-packages: /pkg/x.so
        for member, reason in res.will_not_load.items():
            wnl[base + member] = reason
        for member, names in _verdicts(res).unchecked.items():
            unchecked[base + member] = names
    return Verdicts(wnl, unchecked, "; ".join(notes))


def rundeps_wheel(built: Built) -> Verdicts:
    return _wheel_verdicts(built, with_root=False)


def rundeps_wheel_root(built: Built) -> Verdicts:
    return _wheel_verdicts(built, with_root=True)


MODE_FUNCS = {"root": rundeps_root, "prefix": rundeps_prefix, "target": rundeps_target,
              "wheel": rundeps_wheel, "wheel-root": rundeps_wheel_root}


def agreement(wheels: Dict[str, List[Path]], work: Path, sets: Sequence[WheelSet] = DEFAULT_SETS,
              modes: Sequence[str] = MODES, timings: Optional[dict] = None,
              musl_versions: Sequence[str] = ()) -> List[dict]:
    """One row per load unit, wheel set, musl and mode.

    Row: set, kind, musl (version), mode, unit (in-root path), rel
    (site-relative), wheel, dlopen_loads, dlopen_error, rundeps_loads (None:
    unchecked), rundeps_reason, unchecked (names), agree (None: unchecked)."""
    rows = []
    timings = {} if timings is None else timings
    for musl in musls(work, musl_versions):
        for ws in sets:
            ws_wheels = wheels.get(ws.name) or []
            if not ws_wheels:
                continue
            tag = f"{ws.name} {musl.label}"
            t = time.monotonic()
            built = build(ws, ws_wheels, work, musl)
            timings[f"{tag}: build"] = time.monotonic() - t
            t = time.monotonic()
            truth = dlopen_truth(built)
            timings[f"{tag}: dlopen"] = time.monotonic() - t
            for mode in modes:
                if mode in BARE_MODES and not musl.alpine:
                    continue  # Debian's musl is no Alpine target: no export list of it is shipped
                t = time.monotonic()
                try:
                    ours = MODE_FUNCS[mode](built)
                except Exception as exc:  # a crash in one mode is a finding, not the end of the run
                    ours = None
                    err = f"{type(exc).__name__}: {exc}"
                timings[f"{tag}: {mode}"] = time.monotonic() - t
                for unit in built.units:
                    path = built.inroot(unit)
                    ok, derr = truth[path]
                    row = {"set": ws.name, "kind": ws.kind, "musl": musl.label, "mode": mode, "unit": path,
                           "rel": built.rel(unit), "wheel": built.owner.get(built.rel(unit), Path("?")).name,
                           "dlopen_loads": ok, "dlopen_error": derr, "unchecked": []}
                    if ours is None:
                        row.update(rundeps_loads=None, rundeps_reason=f"rundeps raised {err}", agree=False)
                    elif path in ours.will_not_load:
                        row.update(rundeps_loads=False, rundeps_reason=ours.will_not_load[path], agree=not ok)
                    elif path in ours.unchecked:
                        row.update(rundeps_loads=None,
                                   rundeps_reason="not checked: " + ", ".join(ours.unchecked[path]),
                                   unchecked=ours.unchecked[path], agree=None)
                    else:
                        row.update(rundeps_loads=True, rundeps_reason="", agree=ok)
                    rows.append(row)
    return rows


# -- the report ----------------------------------------------------------------------------

def summary(rows: List[dict], modes: Sequence[str] = MODES) -> Dict[str, dict]:
    """"LOADER MODE" -> {n, agree, false_failures, false_oks, unchecked}."""
    out = {}
    for musl in sorted({r["musl"] for r in rows}):
        for mode in modes:
            rs = [r for r in rows if r["mode"] == mode and r["musl"] == musl]
            if not rs:
                continue
            out[f"{musl} {mode}"] = {
                "n": len(rs),
                "agree": sum(1 for r in rs if r["agree"] is True),
                "false_failures": sum(1 for r in rs if r["agree"] is False and r["dlopen_loads"]),
                "false_oks": sum(1 for r in rs if r["agree"] is False and not r["dlopen_loads"]),
                "unchecked": sum(1 for r in rs if r["agree"] is None),
            }
    return out


def fully_agrees(rows: List[dict]) -> bool:
    """No false failure and no false OK in any mode (unchecked units are counted apart)."""
    return bool(rows) and not any(r["agree"] is False for r in rows)


def _verdict(loads) -> str:
    return "loads" if loads is True else "FAILS" if loads is False else "unchecked"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def summary_lines(rows: List[dict], modes: Sequence[str] = MODES) -> List[str]:
    return [f"{label}: {s['agree']} of {s['n']} agree ({s['false_failures']} false failures, "
            f"{s['false_oks']} false OKs, {s['unchecked']} unchecked)" for label, s in summary(rows, modes).items()]


def print_table(rows: List[dict], modes: Sequence[str] = MODES, out=None, only_disagreements: bool = False) -> None:
    out = out or sys.stdout
    w = min(max((len(r["rel"]) for r in rows), default=10), 72)
    print(f"{'set':22} {'musl':16} {'mode':10} {'unit':{w}} {'dlopen':7} {'rundeps':9} agree", file=out)
    for r in rows:
        if only_disagreements and r["agree"] is True:
            continue
        agree = "yes" if r["agree"] is True else "NO" if r["agree"] is False else "-"
        print(f"{r['set']:22} {r['musl']:16} {r['mode']:10} {_short(r['rel'], w):{w}} "
              f"{_verdict(r['dlopen_loads']):7} {_verdict(r['rundeps_loads']):9} {agree}", file=out)
        shown_dlopen = not r["dlopen_loads"] or "crashed" in r["dlopen_error"]
        if r["agree"] is not True or (shown_dlopen and r["mode"] == modes[0]):
            if r["dlopen_error"]:
                err = r["dlopen_error"] if "crashed" in r["dlopen_error"] else r["dlopen_error"].split(": ", 1)[-1]
                print(f"{'':22}   dlopen:  {err[:200]}", file=out)
            if r["rundeps_reason"]:
                print(f"{'':22}   rundeps: {r['rundeps_reason'][:300]}", file=out)
    print(file=out)
    for musl in sorted({r["musl"] for r in rows}):
        units = [r for r in rows if r["mode"] == modes[0] and r["musl"] == musl]
        loads = sum(r["dlopen_loads"] for r in units)
        many = [r for r in units if r["kind"] == "manylinux"]
        crashed = sum(1 for r in units if "crashed" in r["dlopen_error"])
        print(f"{musl}: {len(units)} load units in {len({r['set'] for r in units})} wheel sets; dlopen loads "
              f"{loads} of {len(units)} ({sum(r['dlopen_loads'] for r in many)} of {len(many)} manylinux); "
              f"{crashed} crashed", file=out)
    for line in summary_lines(rows, modes):
        print(line, file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="wheel sets: " + "; ".join(f"{s.name} (cp{s.python.replace('.', '')}: "
                                                                   f"{' '.join(s.specs)})" for s in DEFAULT_SETS))
    ap.add_argument("--wheels", type=Path, default=DEFAULT_CACHE,
                    help=f"the wheel cache: one folder per set, filled by pip download once "
                         f"(default {DEFAULT_CACHE})")
    ap.add_argument("--work", type=Path, help="where to build the roots (default: a temporary folder)")
    ap.add_argument("--sets", help="comma-separated wheel set names (default: all)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated modes (default {','.join(MODES)})")
    ap.add_argument("--musl", dest="musl_versions", default="",
                    help="comma-separated loaders to run, by label, version or release (debian-1.2.3, 1.2.3-r1, "
                         "alpine-1.2.5-r0; default: every one at hand)")
    ap.add_argument("--only-disagreements", action="store_true", help="print only the rows that do not agree")
    args = ap.parse_args(argv)
    missing = have_tools()
    if missing:
        print(f"wheel_agreement: {missing}", file=sys.stderr)
        return 2
    sets = list(DEFAULT_SETS)
    if args.sets:
        wanted = args.sets.split(",")
        unknown = [s for s in wanted if s not in {ws.name for ws in DEFAULT_SETS}]
        if unknown:
            print(f"wheel_agreement: unknown set(s) {', '.join(unknown)}", file=sys.stderr)
            return 2
        sets = [ws for ws in DEFAULT_SETS if ws.name in wanted]
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        print(f"wheel_agreement: modes are {', '.join(MODES)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    tmp = None
    work = args.work
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="rundeps-agreement-")
        work = Path(tmp.name)
    try:
        def missing_wheel(ws, spec, why):
            print(f"wheel_agreement: {ws.name}: no wheel for {spec} ({why})", file=sys.stderr)

        t = time.monotonic()
        wheels = download(args.wheels, sets, on_missing=missing_wheel)
        timings = {"download": time.monotonic() - t}
        if not any(wheels.values()):
            print("wheel_agreement: no wheels (PyPI cannot be reached?)", file=sys.stderr)
            return 2
        for ws in sets:
            print(f"# {ws.name} (CPython {ws.python}): " + " ".join(w.name for w in wheels.get(ws.name, [])))
        rows = agreement(wheels, work, sets, modes, timings,
                         musl_versions=[v for v in args.musl_versions.split(",") if v])
        print_table(rows, modes, only_disagreements=args.only_disagreements)
        print(f"time: {time.monotonic() - started:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
              + ")")
        return 0 if fully_agrees(rows) else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())

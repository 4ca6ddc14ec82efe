"""Bind every undefined symbol the way musl's dynamic linker does, and name
the files that will not load.

A soname that resolves is not a module that loads. This module takes a
:class:`~rundeps.resolve.Resolution` (the sonames resolved to files,
packages and musl) and the symbol facts of every object
(:class:`rundeps.elf.facts.SymbolFacts`: ``undefined`` name -> weak,
``defined`` names as musl's lookup sees them), and decides what musl's
``ldso/dynlink.c`` decides:

* **Load order and scope.** Loading an object loads its ``DT_NEEDED``
  closure, breadth first. At start-up every object of the program's closure
  joins the global scope; a library opened with ``dlopen`` is relocated
  against the global scope plus its own closure (``add_syms`` of the object
  and of every ``deps[i]``), and with ``RTLD_LOCAL`` those are taken out of
  the global scope again (``revert_syms``).
* **Python extension modules** are opened by the interpreter with
  ``RTLD_LOCAL``: their global scope is the interpreter's executable,
  ``libpython`` and their dependencies (the interpreter is the one of the
  module's ``lib/pythonX.Y/``: ``bin/pythonX.Y`` of that prefix). Modules do
  not see each other's symbols. Without an interpreter at hand (a bare tree,
  a wheel without ``--root``), names starting ``Py``/``_Py`` are taken as the
  interpreter's, and the result says so.
* **What binds.** A non-weak undefined symbol must be defined by an object in
  scope (``find_sym``); weak undefined symbols may stay unbound. So must a
  name a relocation references through the object's own definition when
  musl's lookup skips that definition (an ``STT_GNU_IFUNC`` function the
  object calls through its PLT): the lookup searches the whole scope, so
  another object's plain definition, before or after it, satisfies it. Symbol
  versions are ignored except that a definition ``DT_VERSYM`` marks hidden is
  skipped (11a's reader gives ``defined`` with that rule applied). When
  nothing in scope defines it, musl 1.2.4 and later try ``get_lfs64``: an
  LFS64 name (``stat64``, ``open64``, ``readdir64_r`` -> ``readdir_r``, ...)
  binds to musl's base name.
* **musl itself.** ``DT_NEEDED`` names musl answers with itself (its
  ``reserved`` prefixes: ``libc.`` ``libpthread.`` ``librt.`` ``libm.``
  ``libdl.`` ``libutil.`` ``libxnet.``, so glibc's ``libc.so.6`` too) bind
  to musl's own exports: the root's real ``lib/ld-musl-<arch>.so.1``, else a
  shipped export list (:mod:`rundeps.bind.exports`).

Verdicts (:class:`Binding`) are per in-root path: ``will_not_load`` (path ->
one-line reason, including files that fail because a dependency fails),
``missing_symbols`` (path -> sorted names) and hints naming a library that
defines what is missing.
"""
from __future__ import annotations

import gc
import posixpath
from dataclasses import dataclass
from typing import Any, Callable, cast, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ..platform import is_glibc_interp, same_arch
from ..resolve.units import python_prefix
from ..verdict import GLIBC_LOADER, MISSING_LIBRARY, MISSING_SYMBOL, WRONG_ARCH, Fault, FaultKind

from .graph import LFS64_BASE_NAMES, UNDECIDED, Binder, Node, lfs64_base
from .musl import MuslModel

__all__ = ["Binding", "BindSettings", "bind", "LFS64_BASE_NAMES", "lfs64_base"]


class Binding:
    """What binding found, per in-root path."""

    def __init__(self, musl: Optional[MuslModel]):
        self.musl = musl
        self.faults: Dict[str, Fault] = {}
        """Unit (a file loaded on its own) -> why its load fails."""
        self.missing_symbols: Dict[str, List[str]] = {}
        self.hints: Dict[str, List[str]] = {}
        self.glibc_loads: List[str] = []
        """glibc-linked files that bind completely under musl."""
        self.unchecked: Dict[str, List[str]] = {}
        """path -> libraries in its load's scope whose symbols are not at hand."""
        self.undecided: Dict[str, str] = {}
        """Unit -> what its load needs of the target's loader that cannot be
        told (whether it applies ``DT_RELR``): cannot be checked, never a fault."""
        self.assumed_interpreter: List[str] = []
        """Files loaded into a Python process bound with Py* names assumed (no interpreter at hand)."""
        self.interpreter: Dict[str, str] = {}
        """File loaded into a Python process -> the interpreter whose scope it was bound in."""
        self.gcompat: Dict[str, str] = {}
        """glibc-linked file -> what gcompat changes (when modelled)."""
        self.verdicts: Dict[bytes, object] = {}
        """The binding answers this run used, keyed on the identities of the
        files they depend on (see :func:`bind`): for the next run."""

    @property
    def will_not_load(self) -> Dict[str, str]:
        """Unit -> one-line reason (derived from :attr:`faults`)."""
        return {p: f.reason for p, f in self.faults.items()}

    @property
    def musl_description(self) -> Optional[str]:
        return self.musl.description if self.musl is not None else None


class _Load:
    """One load judged: the unit, its root node, the scope it binds in, and
    what was found: its fault (or None), the files whose symbols could not
    be checked, and each object's missing names."""

    __slots__ = ("path", "root", "global_scope", "assume_python", "runtime", "fault", "unchecked", "missing",
                 "undecided")

    def __init__(self, path: str, root: Node, global_scope: List[Node], assume_python: bool, runtime: bool):
        self.path = path
        self.root = root
        self.global_scope = global_scope
        self.assume_python = assume_python
        self.runtime = runtime
        self.fault: Optional[Fault] = None
        self.unchecked: Dict[str, List[str]] = {}
        self.missing: Dict[str, List[str]] = {}
        self.undecided: Dict[str, str] = {}
        """Object (as shown) -> what cannot be told about the loader that its load needs."""


def _judge(b: Binder, load: _Load, glibc_files: Set[str], show: Callable[[str], str],
           extra: Sequence[Node] = ()) -> None:
    """Bind every object the load maps, in the scope musl gives it (the
    global scope, ``extra`` preloads, then the root's own closure), and set
    the load's fault: the first object, in musl's order, whose library is
    missing, then the first whose relocation musl refuses."""
    local = b.closure(load.root)
    parent: Dict[str, Optional[Node]] = {load.root.key: None}
    for n in local:
        for d in n.deps:
            parent.setdefault(d.key, n)

    def chain(n: Node) -> Tuple[str, ...]:
        out = []
        cur: Optional[Node] = n
        while cur is not None:
            out.append(show(cur.key))
            cur = parent.get(cur.key)
        out[-1] = load.path
        return tuple(reversed(out))

    scope: List[Node] = []
    seen: Set[str] = set()
    for group in (list(load.global_scope) + list(extra), local):
        new_from = len(scope)  # ends where this load's own objects begin: what it maps anew
        for n in group:
            if n.key not in seen:
                seen.add(n.key)
                scope.append(n)
    new = {n.key for n in scope[new_from:]}
    # musl maps the whole closure before relocating anything: a library it
    # cannot find fails the load first (the names it would then miss are
    # still recorded: a program's start, like --list, goes on relocating)
    for n in local:
        if n.kind == "file" and n.missing_libs:
            load.fault = Fault(MISSING_LIBRARY, "needs " + ", ".join(n.missing_libs) + ", which musl cannot find",
                               chain(n), tuple(n.missing_libs))
            break
    unknown = sorted({d.soname for d in scope if d.kind == "unknown"})
    for n in local:
        if n.kind != "file":
            continue
        names, complete, refused = b.bind_in(n, scope, load.assume_python, new_from, load.runtime, new)
        musl = b.musl
        if names and musl is not None and musl.uncertain and set(names) <= musl.uncertain:
            # only a newer musl than the shipped list could define them: not "missing"
            load.undecided.setdefault(show(n.key), f"needs {_first_names(names)}, which {musl.uncertain_why}")
            names = []
        if names and (complete or n.key in glibc_files):
            load.missing[n.key] = names
            if load.fault is None:
                load.fault = Fault(MISSING_SYMBOL, _reason(names), chain(n), tuple(names))
        elif names:
            load.unchecked[n.key] = unknown
        elif unknown and n.key in glibc_files:
            # a glibc-linked file whose scope is not all at hand cannot be proven to load
            load.unchecked[n.key] = unknown
        if refused is not None and refused[0] == UNDECIDED:
            # what the target's loader does cannot be told: not a fault
            load.undecided.setdefault(show(n.key), refused[1])
        elif load.fault is None and refused is not None:
            kind, reason, what = refused
            load.fault = Fault(cast(FaultKind, kind), reason, chain(n), what)


def _reason(names: Sequence[str]) -> str:
    return "symbol not found: " + _first_names(names)


def _first_names(names: Sequence[str]) -> str:
    """The first three of ``names`` in order, and how many more."""
    shown = sorted(names)
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    return ", ".join(shown[:3]) + more


@dataclass(frozen=True)
class BindSettings:
    """How to bind, besides the search and the musl: ``real_path``: the
    in-root real path of a load path (default: the resolver's filesystem
    ``lookup``); ``interpreters``: file path -> interpreter path for files
    loaded into a Python process, overriding the ``lib/pythonX.Y`` rule
    (wheels); ``hint_libraries()``: (in-root library path, package name or
    None) pairs whose exports may explain a missing symbol; ``gcompat``: a
    :class:`rundeps.bind.gcompat.Gcompat` when the root has it;
    ``present``: soname -> package of libraries taken as present but not at
    hand (the base image's, for a wheel checked without any package source).

    Cached verdicts: with ``symbols_key(real_path)`` (the (device, inode,
    size, mtime_ns) of the file whose facts ``symbols`` gives) and
    ``verdicts`` (what :attr:`Binding.verdicts` held after an earlier run),
    an object bound in a scope of files whose identities are all unchanged
    gets the earlier answer without its symbol tables, or any in its scope,
    being read. The answers this run used are in :attr:`Binding.verdicts`.
    """

    real_path: Optional[Callable[[str], Optional[str]]] = None
    interpreters: Optional[Mapping[str, Optional[str]]] = None
    hint_libraries: Optional[Callable[[], Iterable[Tuple[str, Optional[str]]]]] = None
    gcompat: Any = None
    present: Optional[Mapping[str, str]] = None
    verdicts: Optional[Mapping[bytes, object]] = None
    symbols_key: Optional[Callable[[str], Optional[tuple]]] = None


def bind(resolver, search, symbols: Callable[[str], object], musl: Optional[MuslModel],
         settings: BindSettings = BindSettings()) -> Binding:
    """Judge the load of every unit of ``search`` (a
    :class:`rundeps.resolve.Search`; its ``units`` are the files loaded on
    their own, see :mod:`rundeps.resolve.units`) as musl would, as
    ``settings`` say.

    ``symbols(real_path)``: the :class:`~rundeps.elf.facts.SymbolFacts` of an
    in-root file (None when unreadable); ``musl``: what the reserved names
    bind to.
    """
    # Binding makes many sets and lists and no garbage cycles worth
    # collecting meanwhile: the cyclic collector would only re-scan them
    # (about a third of a cold binding's time). Off meanwhile, as in the walk.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _bind(resolver, search, symbols, musl, settings)
    finally:
        if gc_was_enabled:
            gc.enable()


def _bind(resolver, search, symbols, musl: Optional[MuslModel], settings: BindSettings) -> Binding:
    b = Binder(resolver, symbols, musl, settings.real_path or resolver.fs.lookup)
    b.orders = search.orders
    b.present = dict(settings.present or {})
    if settings.symbols_key is not None:
        b.symbols_key = settings.symbols_key
        b.verdicts = {} if settings.verdicts is None else settings.verdicts
    gcompat = settings.gcompat
    run = _Run(b, search, settings.interpreters, gcompat)
    loads = [load for load in map(run.unit, sorted(search.units)) if load is not None]
    out = run.out
    run.collect(loads)
    if gcompat is not None:
        _gcompat_verdicts(b, out, loads, run.glibc_files, gcompat, run.show)
    if out.missing_symbols and settings.hint_libraries is not None:
        from .hints import hints_for  # only when something is missing

        out.hints = hints_for(out.missing_symbols, b, settings.hint_libraries)
    out.verdicts = b.used
    return out


class _Run:
    """One binding of a resolution: each unit's load judged in turn
    (:meth:`unit`), then the verdicts gathered (:meth:`collect`)."""

    def __init__(self, b: Binder, res, interpreters: Optional[Mapping[str, Optional[str]]], gcompat):
        self.b = b
        self.res = res
        self.lookup = b.real_path
        self.interpreters = interpreters
        self.gcompat = gcompat
        self.out = Binding(b.musl)
        self.report_paths: Dict[str, str] = {}  # real path -> the in-root path shown
        for p in res.scanned:
            self.report_paths.setdefault(self.lookup(p) or p, p)
        self.glibc_files: Set[str] = set()
        self.not_musl: Set[str] = set()  # glibc programs (and glibc's own libraries) a glibc beside musl runs
        self.runs_under_glibc = res.runs_under_glibc
        self._interp: Dict[str, Optional[Node]] = {}

    def show(self, key: str) -> str:
        return self.report_paths.get(key, key)

    def interpreter_path(self, path: str) -> Optional[str]:
        """The interpreter whose process loads ``path``: the one named for it,
        else that of its ``lib/pythonX.Y/``, else the root's ``python3``."""
        lookup = self.lookup
        if self.interpreters is not None and path in self.interpreters:
            ipath = self.interpreters[path]
            return ipath if ipath is not None and lookup(ipath) is not None else None
        pp = python_prefix(path)
        if pp is None:  # a library Python modules load, outside a Python tree
            main, _info = self.b.resolver.main()
            return main if main and posixpath.basename(main).startswith("python") else None
        prefix, version = pp
        for cand in (f"{prefix}/bin/python{version}", f"{prefix}/bin/python3", f"{prefix}/bin/python"):
            if lookup(cand) is not None:
                return cand
        return None

    def interpreter_for(self, path: str) -> Optional[Node]:
        ipath = self.interpreter_path(path)
        if ipath is None:
            return None
        if ipath not in self._interp:
            real = self.lookup(ipath)
            info = self.b.resolver.fs.elf(real) if real else None
            self._interp[ipath] = self.b.node_for_file(ipath, info) if info is not None else None
        return self._interp[ipath]

    def unit(self, p: str) -> Optional[_Load]:
        """Judge the load of one unit (None when it is not musl's to judge,
        or fails before any load: another arch, a missing glibc loader)."""
        info = self.res.objects[p]
        lookup, out = self.lookup, self.out
        if p in self.res.glibc_linked:  # the search's finding, not computed again
            self.glibc_files.add(lookup(p) or p)
        arch = self.res.arch
        if arch and info.arch and not same_arch(arch, info.arch):
            out.faults[p] = Fault(WRONG_ARCH, f"built for {info.arch}, not {arch}", (p,), (info.arch,))
            return None
        interp = info.interp
        if p in self.runs_under_glibc and not interp:
            self.not_musl.add(p)  # one of glibc's own libraries: loaded by glibc programs only
            return None
        gcompat = self.gcompat
        if interp and is_glibc_interp(interp):
            real_interp = lookup(interp)
            if real_interp is None:
                out.faults[p] = Fault(GLIBC_LOADER, f"its loader {interp} (glibc's) is not in the root "
                                      "(gcompat provides one)", (p,), (interp,))
                return None
            if gcompat is None or not gcompat.owns(real_interp, interp):
                self.not_musl.add(p)
                return None  # a real glibc beside musl runs it: not musl's to decide
        root = self.b.load(p, info)
        global_scope: List[Node] = []
        assume_python = False
        python = (self.interpreters is not None and p in self.interpreters) or p in self.res.python_process
        if interp is None and python:
            inode = self.interpreter_for(p)
            if inode is not None:
                global_scope = self.b.closure(inode)
                out.interpreter[p] = inode.key
            else:
                assume_python = True
                out.assumed_interpreter.append(p)
        elif gcompat is not None and interp and gcompat.owns(lookup(interp), interp):
            # gcompat's loader runs musl's with --preload libgcompat.so.0
            global_scope = [root] + gcompat.preload_nodes(self.b)
            out.gcompat[p] = "runs through gcompat's loader (libgcompat.so.0 preloaded)"
        load = _Load(p, root, global_scope, assume_python, runtime=interp is None)
        _judge(self.b, load, self.glibc_files, self.show)
        return load

    def collect(self, loads: List[_Load]) -> None:
        """The verdicts of every load: faults, missing names, unchecked
        files, glibc-linked files that load."""
        out, show, lookup, objects = self.out, self.show, self.lookup, self.res.objects
        missing_syms: Dict[str, Set[str]] = {}
        unchecked: Dict[str, Set[str]] = {}
        for load in loads:
            for key, names in load.missing.items():
                missing_syms.setdefault(show(key), set()).update(names)
            if load.fault is not None:
                out.faults[load.path] = load.fault
                continue
            for key, libs in load.unchecked.items():
                unchecked.setdefault(show(key), set()).update(libs)
                unchecked.setdefault(load.path, set()).update(libs)
            if load.undecided:
                where, why = next(iter(load.undecided.items()))
                out.undecided[load.path] = why if where == load.path else f"loads {where}: {why}"
        out.faults = dict(sorted(out.faults.items()))
        out.missing_symbols = {k: sorted(v) for k, v in sorted(missing_syms.items())}
        out.unchecked = {k: sorted(v) for k, v in sorted(unchecked.items())}
        out.glibc_loads = sorted(
            p for p in self.res.units if (lookup(p) or p) in self.glibc_files and p not in out.faults
            and p not in self.not_musl and p not in self.runs_under_glibc
            and (objects[p].interp is None or lookup(objects[p].interp) is not None))


def _gcompat_verdicts(b: Binder, out: Binding, loads: List[_Load], glibc_files: Set[str], gcompat,
                      show: Callable[[str], str]) -> None:
    """For every glibc-linked file: would it load with gcompat? A program
    started through gcompat's loader was bound with libgcompat preloaded; a
    module or library is bound again as if ``LD_PRELOAD=libgcompat.so.0``."""
    pre = gcompat.preload_nodes(b)
    for load in loads:
        p = load.path
        if load.root.key not in glibc_files:
            continue
        if p in out.gcompat:  # through gcompat's loader: the verdict is the real one
            fault = out.faults.get(p)
            out.gcompat[p] = ("loads: gcompat's loader preloads libgcompat.so.0" if fault is None
                              else f"will not load even with gcompat: {fault.reason}")
            continue
        if p not in out.faults:
            out.gcompat[p] = "loads (libgcompat.so.0 not needed)"
            continue
        again = _Load(p, load.root, load.global_scope, load.assume_python, load.runtime)
        _judge(b, again, glibc_files, show, extra=pre)
        if again.fault is None:
            out.gcompat[p] = (f"loads only with LD_PRELOAD={gcompat.library}: gcompat's symbols do not "
                              "reach a library a musl program opens")
        else:
            where = "" if not again.fault.inherited else f"{again.fault.failing}: "
            out.gcompat[p] = f"will not load even with LD_PRELOAD={gcompat.library}: {where}{again.fault.own}"



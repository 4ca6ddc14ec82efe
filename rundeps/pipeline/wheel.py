"""A wheel's check, read straight from its zip: its members resolved and
bound as they would load once installed, its Python code's run-time loads,
and the one-line verdict (:class:`WheelCheck`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..apk.baseimage import BASE_IMAGE_SONAMES
from ..apk.model import Universe
from ..apk.sources import load_universe
from ..bind import Binding, BindSettings, MuslChoice
from ..diagnostics import SILENT, Diagnostics
from ..errors import SourceError
from ..resolve import Resolution, Resolver, Search, SearchSettings, TreeFS, majority_arch
from ..report.wheelverdict import wheel_problems, wheel_verdict
from .options import WheelRequest, target_arch
from .stages import bind_symbols, system_libraries


@dataclass(frozen=True)
class WheelCheck:
    """One wheel checked: the :class:`rundeps.inputs.wheel.WheelScan`, its
    resolution (a pure wheel too: its run-time loads), the target arch, a
    one-line verdict, whether the wheel is usable as it is, whether no
    package source was available to map external sonames, the sonames left
    to the base image (then) and the counted run-time loads no package
    provides."""

    wheel: Any
    resolution: Optional[Resolution]
    target_arch: Optional[str]
    verdict: str
    ok: bool
    no_sources: bool = False
    base_image: Dict[str, str] = field(default_factory=dict)
    unresolved_loads: List[Any] = field(default_factory=list)

    def release_inputs(self) -> None:
        """Drop what was read from the wheel only to check it (its Python
        sources and its members' symbol facts): the verdict and resolution
        stay, so checking many wheels stays in bounded memory."""
        self.wheel.release()


def check_wheel(request: WheelRequest, diag: Diagnostics = SILENT) -> WheelCheck:
    """Read a wheel straight from its zip and resolve what it needs
    (``options.symbols``: its members' ``SymbolFacts`` are read and every
    load is judged; ``diag.file_error(member, reason)`` for a member it
    cannot read).

    The wheel's own files are in-tree (``<pkg>.libs/`` through ``$ORIGIN``);
    the rest resolves against the request's ``universe`` (or its sources),
    as ``scan`` does. Without any database or index, names outside the
    wheel stay unresolved. A pure wheel is checked too: its Python code's
    run-time loads (``options.add_runtime_loads``: add their packages, else
    only report them) are what it needs.
    """
    from ..distributions import wheel_distributions
    from ..inputs.wheel import scan_wheel
    from ..resolve import WheelFS

    root, sources, options = request.root, request.sources, request.options
    ws = scan_wheel(request.path, on_problem=diag.file_error, symbols=options.symbols)
    objects = wheel_objects(ws)
    elf_arch, _ = majority_arch(objects.values())
    target = target_arch(options.arch, root, options.explicit_root)
    universe, no_sources = _wheel_universe(request, target, diag)
    tree = TreeFS(root) if options.explicit_root else None
    # the members install into a site-packages
    settings = SearchSettings(arch=elf_arch or target, python_tree=True)
    resolver = Resolver(universe, WheelFS(ws, tree), settings, diag)
    search = resolver.resolve(objects)
    binding = None
    if options.symbols:
        present = BASE_IMAGE_SONAMES if no_sources else {}
        binding = bind_wheel(search, resolver, ws, tree, MuslChoice(options.musl_version, sources.alpine),
                             wheel_bind_settings(options.gcompat_file, tree, resolver, present), diag)
    loads = wheel_loads(search, ws, add=options.add_runtime_loads, include_conditional=options.conditional_loads)
    res = Resolution.assemble(search, binding, loads,
                              distributions=wheel_distributions(ws, list(objects)))  # the wheel owns all its files
    lost = loads.lost
    # Without any package source, the base image's own libraries are still known.
    base = {so: BASE_IMAGE_SONAMES[so] for so in res.unresolved if no_sources and so in BASE_IMAGE_SONAMES}
    problems = wheel_problems(ws, res, elf_arch, target, base, bool(objects))
    if problems:
        return WheelCheck(ws, res, target, "; ".join(problems), False, no_sources, base, lost)
    return WheelCheck(ws, res, target, wheel_verdict(ws, res, base, lost, no_sources, bool(objects)), True,
                      no_sources, base, lost)


def _wheel_universe(request: WheelRequest, target: Optional[str], diag: Diagnostics):
    """(universe, no_sources): the packages a wheel resolves against, and
    whether there is no package source at all."""
    universe, sources, options = request.universe, request.sources, request.options
    if universe is None:
        try:
            return load_universe(request.root, sources, target, Diagnostics(warning=diag.warning),
                                 explicit_root=options.explicit_root), False
        except SourceError:
            if sources.names_index() or sources.db:
                raise
            return Universe(), True
    return universe, not universe


def wheel_objects(ws) -> Dict[str, Any]:
    """The wheel's ELF members by installed path (a duplicate member name:
    every copy counts, as ``PATH (copy N)``)."""
    objects: dict = {}
    for item in ws.items:
        key, n = item.path, 1
        while key in objects:
            n += 1
            key = f"{item.path} (copy {n})"
        objects[key] = item.info
    return objects


def wheel_interpreter(ws, tree) -> Optional[str]:
    """The interpreter of the root (``--root``) that would import the wheel:
    ``/usr/local/bin/pythonX.Y`` (the official images), else
    ``/usr/bin/pythonX.Y`` (Alpine's python3), for the wheel's cpXY tag."""
    if tree is None:
        return None
    versions = set()
    for py, _abi, _plat in getattr(ws, "tags", ()) or ():
        if py.startswith("cp") and py[2:].isdigit() and len(py) >= 4:
            versions.add(f"{py[2]}.{py[3:]}")
    for v in sorted(versions, reverse=True):
        for prefix in ("/usr/local", "/usr"):
            cand = f"{prefix}/bin/python{v}"
            if tree.lookup(cand) is not None:
                return cand
    return None


def wheel_bind_settings(gcompat_file: Optional[str], tree, resolver: Resolver,
                        present: Optional[Dict[str, str]] = None) -> BindSettings:
    """How a wheel's members bind: with gcompat modelled from
    ``gcompat_file`` (a real ``libgcompat.so.0``), else the root's
    (``--root``: ``tree``); ``present``: sonames taken as present."""
    gcompat = None
    if gcompat_file is not None:
        from ..bind.gcompat import Gcompat

        gcompat = Gcompat.from_file(gcompat_file)
    elif tree is not None:
        from ..bind.gcompat import find_gcompat

        gcompat = find_gcompat(tree, resolver.universe)
    return BindSettings(gcompat=gcompat, present=present)


def bind_wheel(search: Search, resolver: Resolver, ws, tree, musl: MuslChoice = MuslChoice(),
               settings: BindSettings = BindSettings(), diag: Diagnostics = SILENT) -> Binding:
    """Bind a wheel's members as musl would once installed: every shared
    object no other member loads is an extension module (or a library a
    module opens), opened by the interpreter with RTLD_LOCAL: the root's
    interpreter with ``--root``, else one assumed to define the Py* names.
    ``settings`` (:func:`wheel_bind_settings`) give gcompat and what is
    taken as present."""
    import dataclasses

    interp = wheel_interpreter(ws, tree)
    interpreters = {p: interp for p, info in search.objects.items() if info.interp is None}

    def hints():
        for p in search.objects:
            yield p, None
        if tree is not None:
            for path, pkg in system_libraries(tree.root, resolver):
                yield path, pkg

    settings = dataclasses.replace(settings, interpreters=interpreters, hint_libraries=hints)
    return bind_symbols(search, resolver, tree.root if tree is not None else "/", musl, diag, settings,
                        symbols=resolver.fs.symbols)


def wheel_loads(search: Search, ws, *, add: bool = True, include_conditional: bool = False):
    """The run-time loads of a wheel's own sources (``ws``: a
    :class:`rundeps.inputs.wheel.WheelScan`): a
    :class:`rundeps.loads.providers.RuntimeLoads`."""
    from ..loads.conditions import import_conditions
    from ..loads.sourcefiles import find_wheel_loads
    from ..loads.providers import runtime_loads

    findings = find_wheel_loads(ws)
    sources = dict(ws.py_sources)
    conditions = import_conditions({f.path for f in findings}, set(sources), sources.get) if findings else {}
    return runtime_loads(search, findings, add=add, conditions=conditions, include_conditional=include_conditional)

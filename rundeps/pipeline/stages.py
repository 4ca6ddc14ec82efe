"""The stages a root folder and a saved image share, after the walk: the
default excludes, the arch, the package sources, the search, binding, the
run-time loads and the detail stages, each taking values and returning one;
:func:`check_scanned` runs them in order and assembles the
:class:`~rundeps.resolve.Resolution`."""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..apk.sources import IndexRequest, Sources, index_locations, installed_database, load_universe, open_indexes
from ..bind import Binding, BindSettings, MuslChoice
from ..diagnostics import SILENT, Diagnostics
from ..errors import SourceError
from ..platform import host_arch, same_arch
from ..resolve import Resolution, Resolver, Search, SearchSettings, majority_arch
from ..rootfs import root_files
from .options import DEFAULT_EXCLUDES, CheckOptions, read_arch


@dataclass(frozen=True)
class Scanned:
    """What the walk gave a check: the ``result`` of the walk (its
    ``items`` and ``python_roots``), the ``root`` (a host folder or an
    image's tree), the in-root ``paths`` asked for, and ``make_fs(objects)``
    making the root's :class:`~rundeps.resolve.Tree`."""

    result: Any
    root: Any
    paths: Tuple[str, ...]
    make_fs: Callable[[Dict[str, Any]], Any]


def file_cache(sources: Sources, diag: Diagnostics = SILENT):
    """The per-file cache (:class:`rundeps.inputs.filecache.FileCache`), or None
    without a cache or when its folder cannot be used (after a warning)."""
    if not sources.use_cache:
        return None
    from ..cachedir import default_cache_dir
    from ..inputs.filecache import FileCache

    return FileCache.open(str(default_cache_dir(sources.cache_dir)), diag)


def check_scanned(scanned: Scanned, sources: Sources, options: CheckOptions, diag: Diagnostics,
                  cache=None) -> Tuple[Resolution, Resolver]:
    """Every stage after the walk, for a root folder and a saved image alike:
    the default excludes, the arch, the package sources, the search,
    binding (with the verdicts ``cache``, if any), the run-time loads and
    the detail stages."""
    root, paths = scanned.root, scanned.paths
    objects = {item.path: item.info for item in scanned.result.items}
    left_out = split_default_excludes(objects) if options.default_excludes else {}
    arch = tree_arch(objects, root, options, diag)
    database = installed_database(root)  # found once: the package sources and the musl to bind against
    universe = load_universe(root, sources, arch, diag, explicit_root=options.explicit_root, database=database)
    fs = scanned.make_fs(objects)
    if options.symbols:
        fs.known_items(scanned.result.items)  # their facts load when the binder first needs them
    python_roots = scanned.result.python_roots if options.python_tree is None else frozenset()
    settings = SearchSettings(arch=arch, library_path=options.library_path, main_program=options.main_program,
                              scanned_paths=tuple(paths), python_tree=options.python_tree is True,
                              python_roots=python_roots)
    resolver, search = search_tree(Resolver(universe, fs, settings, diag), objects, root, sources, options, diag)
    musl = MuslChoice(options.musl_version, sources.alpine, options.explicit_root or database is not None)
    binding = bind_tree(search, resolver, scanned, cache, musl, diag) if options.symbols else None
    loads = tree_runtime_loads(search, paths, root, options, diag) if options.runtime_loads else None
    no_elf = paths_without_elf(paths, root, list(objects) + list(left_out))
    res = Resolution.assemble(search, binding, loads, left_out=left_out, no_elf=no_elf)
    return res.with_details(**tree_details(res, root, options, diag)), resolver


def tree_arch(objects: Dict[str, Any], root: Any, options: CheckOptions, diag: Diagnostics) -> Optional[str]:
    """The arch to resolve for: ``--arch``, else the files' (most of
    them; a warning when they mix), the root's, this machine's."""
    arch = options.arch
    found_arch, counts = majority_arch(objects.values())
    if len(counts) > 1:
        listing = ", ".join(f"{a} ({n} file{'s' if n != 1 else ''})" for a, n in counts.most_common())
        diag.warning(f"the tree mixes architectures: {listing}; resolving for {arch or found_arch}")
    elif arch and found_arch and arch != found_arch and not same_arch(arch, found_arch):
        n = counts[found_arch]
        diag.warning(f"--arch {arch}, but the scanned files are {found_arch} ({n} file{'s' if n != 1 else ''}): "
                     f"their libraries cannot serve an {arch} image")
    return arch or found_arch or read_arch(root) or host_arch()


def search_tree(resolver: Resolver, objects: Dict[str, Any], root: Any, sources: Sources,
                options: CheckOptions, diag: Diagnostics) -> Tuple[Resolver, Search]:
    """The search; what is not installed may still be in the root's own
    repositories (``--root`` with a database and no index named): then the
    search again, with them added to the resolver's packages."""
    search = resolver.resolve(objects)
    universe = resolver.universe
    if not (search.unresolved and options.explicit_root and universe.installed and not sources.names_index()):
        return resolver, search
    from ..apk.repositories import V3RepositoryError

    tags: dict = {}
    try:
        locations = index_locations(sources, root, resolver.arch, from_root=True, tags=tags, diag=diag)
        more = open_indexes(locations, IndexRequest(root, resolver.arch, sources, diag), tolerant=True, tags=tags)
    except V3RepositoryError:
        raise
    except SourceError as exc:
        diag.warning(f"could not use the repositories of {root_files(root).name}: {exc}")
        more = []
    if not more:
        return resolver, search
    for index in more:
        universe.add(index.repository)
    return resolver, resolver.resolve(objects)


def bind_tree(search: Search, resolver: Resolver, scanned: Scanned, cache, musl: MuslChoice,
              diag: Diagnostics) -> Binding:
    """The binding stage against the musl ``musl`` chooses, with the
    verdicts of the last run over the same paths reused where nothing they
    depend on changed (``cache``: the file cache of a root folder, None for
    an image)."""
    root, paths = scanned.root, scanned.paths
    verdicts = cache.load_verdicts(root, paths) if cache is not None else None
    settings = tree_bind_settings(search, resolver, root, verdicts)
    binding = bind_symbols(search, resolver, root, musl, diag, settings)
    if cache is not None:
        cache.store_verdicts(root, paths, binding.verdicts, verdicts)
    return binding


def tree_bind_settings(search: Search, resolver: Resolver, root: Any, verdicts=None) -> BindSettings:
    """How a tree's files bind: against the libraries of the root (hints),
    with the root's gcompat when it has one; ``verdicts``: those of an
    earlier run (None: bind everything afresh)."""
    from ..bind.gcompat import find_gcompat

    return BindSettings(hint_libraries=lambda: root_hints(search, resolver, root),
                        gcompat=find_gcompat(resolver.fs, resolver.universe, search.arch),
                        verdicts=verdicts, symbols_key=resolver.fs.symbols_key if verdicts is not None else None)


def bind_symbols(search: Search, resolver: Resolver, root: Any, musl: MuslChoice = MuslChoice(),
                 diag: Diagnostics = SILENT, settings: Optional[BindSettings] = None,
                 symbols: Optional[Callable[[str], object]] = None) -> Binding:
    """Bind every load of ``search`` as musl does (:mod:`rundeps.bind`)
    against the musl ``musl`` chooses, as ``settings`` say (default:
    :func:`tree_bind_settings`); returns the :class:`~rundeps.bind.Binding`
    (:meth:`Resolution.assemble <rundeps.resolve.Resolution.assemble>`
    derives the files' faults from it). ``symbols``: the symbol facts of
    an in-root real path (default: the filesystem's reader)."""
    import dataclasses

    from ..bind import bind, musl_model

    symbols = symbols or tree_symbols(root, resolver.fs)
    settings = settings or tree_bind_settings(search, resolver, root)
    if settings.hint_libraries is None:
        settings = dataclasses.replace(settings, hint_libraries=lambda: root_hints(search, resolver, root))
    model = musl_model(resolver.fs, search.arch, symbols, universe=resolver.universe, choice=musl,
                       symbols_key=settings.symbols_key)
    binding = bind(resolver, search, symbols, model, settings)
    if model is None and binding.unchecked:
        diag.warning(f"no musl export list for {search.arch or 'this arch'} and no lib/ld-musl in the root: "
                     f"{len(binding.unchecked)} file(s) use symbols that could not be checked")
    return binding


def root_hints(search: Search, resolver: Resolver, root: Any) -> Iterator[Tuple[str, Optional[str]]]:
    """The libraries whose exports may explain a missing symbol: the
    objects looked at, then the root's system libraries."""
    seen = set()
    for path in search.objects:
        seen.add(path)
        yield path, None
    for path, pkg in system_libraries(root, resolver):
        if path not in seen:
            yield path, pkg


def tree_symbols(root: Any, fs) -> Callable[[str], object]:
    """``real in-root path -> SymbolFacts or None`` for files of ``root``:
    the filesystem's own reader (cached with the walk)."""
    return fs.symbols


def system_libraries(root: Any, resolver: Resolver, limit: int = 4000) -> List[Tuple[str, Optional[str]]]:
    """(in-root path, owning package name or None) of the shared libraries in
    the root's library search folders: where a missing symbol may be defined.
    ``root``: a host folder or a root through the root protocol
    (:func:`rundeps.rootfs.root_files`: an image's tree)."""
    files = root_files(root)
    out: List[Tuple[str, Optional[str]]] = []
    for d in resolver.system_dirs():
        try:
            names = files.listdir(d)  # sorted; symlinks followed inside the root
        except OSError:
            continue
        for name in names:
            if not name.startswith("lib") or ".so" not in name:
                continue
            path = d.rstrip("/") + "/" + name
            owner = resolver.universe.owner(path)
            out.append((path, owner.name if owner is not None else None))
            if len(out) >= limit:
                return out
    return out


def tree_runtime_loads(search: Search, paths: Sequence[str], root: Any, options: CheckOptions,
                       diag: Diagnostics):
    """The run-time loads stage for a tree (a
    :class:`rundeps.loads.providers.RuntimeLoads`): read the ``.py`` files
    under in-root ``paths`` for ``ctypes``/``cffi`` loads, mark those of
    submodules the top-level import does not reach, resolve each group of
    alternatives to one package; a warning for each counted load no
    package provides."""
    loads = runtime_loads_of(search, paths, root, add=options.add_runtime_loads,
                             include_conditional=options.conditional_loads)
    for f in loads.lost:
        diag.warning(f"{f.path}:{f.line}: {f.call}({f.name!r}) loads a library no package provides")
    return loads


def runtime_loads_of(search: Search, paths: Sequence[str], root: Any = "/", *, add: bool = True,
                     include_conditional: bool = False, diag: Diagnostics = SILENT):
    """The :class:`rundeps.loads.providers.RuntimeLoads` of the ``.py`` files
    under in-root ``paths`` (:mod:`rundeps.loads.dlopen`), those of
    submodules the top-level import does not reach marked
    (:func:`rundeps.loads.conditions.import_conditions`); ``add``: their
    packages join the set (all of them with ``include_conditional``);
    ``diag.file_error`` hears of a source that cannot be read."""
    from ..loads.conditions import TreeFiles, import_conditions
    from ..loads.sourcefiles import scan_tree_sources
    from ..loads.providers import runtime_loads

    findings = scan_tree_sources(paths, root, on_problem=diag.file_error)
    conditions: dict = {}
    if findings:
        files = TreeFiles(root)
        read: Callable[[str], Optional[str]] = files.read
        if hasattr(files.files, "read_many"):  # an image: its packages' sources in one pass per layer
            read = _package_sources(files, {f.path for f in findings})
        conditions = import_conditions({f.path for f in findings}, files, read)
    return runtime_loads(search, findings, add=add, conditions=conditions, include_conditional=include_conditional)


def _package_sources(files, paths) -> Callable[[str], Optional[str]]:
    """``files.read`` for the ``.py`` files of the top-level packages of
    ``paths``, read together first (``read_many``: a compressed layer is
    decompressed once, where reads in import order would restart it)."""
    from ..inputs.pysource import decode_source

    tops = set()
    for path in paths:
        top, d = None, posixpath.dirname(path)
        while d not in ("/", "") and posixpath.join(d, "__init__.py") in files:
            top, d = d, posixpath.dirname(d)
        if top is not None:
            tops.add(top + "/")
    image = files.files
    wanted = [p for p, e in image.entries.items()
              if e.kind == "file" and p.endswith(".py") and p.startswith(tuple(tops)) and e.size <= files.max_size]
    texts = image.read_many(wanted) if wanted else {}

    def read(p: str) -> Optional[str]:
        data = texts.get(p) if p in files else None
        if data is None:
            return files.read(p)
        try:
            return decode_source(data)
        except (SyntaxError, UnicodeDecodeError, LookupError):
            return None

    return read


def tree_details(res: Resolution, root: Any, options: CheckOptions, diag: Diagnostics) -> Dict[str, Any]:
    """The detail stages that only some callers want, by field of the
    resolution: distributions, installed sizes."""
    out: Dict[str, Any] = {}
    if options.distributions:
        out["distributions"] = distributions_of(res, root)
    if options.installed_size:
        from ..apk.sizes import installed_sizes

        out["installed_size"] = installed_sizes(res, root, options.build_deps, diag)
    return out


def distributions_of(res: Resolution, root: Any = "/"):
    """The pip distributions that own the scanned files, the libraries they
    load and the Python files with run-time loads (RECORD,
    installed-files.txt, eggs): a :class:`rundeps.distributions.DistributionMap`."""
    from ..distributions import map_distributions

    return map_distributions(root, res.scanned, res.objects, [f.path for f in res.dlopen])


def split_default_excludes(objects: Dict[str, Any], globs: Sequence[str] = DEFAULT_EXCLUDES) -> Dict[str, str]:
    """Remove from ``objects`` ({in-root path: info}) the files whose name
    matches one of ``globs``; return {path: the glob that matched}."""
    out: Dict[str, str] = {}
    for path in list(objects):
        name = path.rpartition("/")[2]
        for glob in globs:
            if fnmatch.fnmatchcase(name, glob):
                out[path] = glob
                del objects[path]
                break
    return out


def paths_without_elf(paths: Sequence[str], root: Any, found: Sequence[str]) -> Dict[str, str]:
    """The in-root ``paths`` under which none of the ELF files ``found``
    lies, each with what it is (see :attr:`Resolution.no_elf
    <rundeps.resolve.Resolution.no_elf>`); ``root``: a host folder or an
    image's tree. A PATH that does not exist is not listed (it was
    refused before the walk)."""
    files = root_files(root)
    out: Dict[str, str] = {}
    for p in paths:
        real = files.resolve(p)
        if real is None:
            continue
        tops = {p.rstrip("/") or "/", real.rstrip("/") or "/"}
        if any(f == t or f.startswith(t.rstrip("/") + "/") for f in found for t in tops):
            continue
        out[p] = "folder" if files.is_dir(p) else "file" if files.is_file(p) else "other"
    return out

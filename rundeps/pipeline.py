"""Every stage of a check, in order, for the CLI and library callers alike::

    walk (inputs/) -> ELF facts (elf/) -> search (resolve/) -> packages (apk/)
      -> binding (bind/) -> run-time loads (loads/) -> details (distributions, sizes)

:func:`check_tree` and :func:`check_wheel` take the paths, the package
:class:`~rundeps.apk.sources.Sources`, a frozen :class:`CheckOptions` and one
:class:`Diagnostics` sink, and give a :class:`~rundeps.resolve.Resolution`
(a :class:`WheelCheck`); :mod:`rundeps.api` is the public facade over them.
"""

from __future__ import annotations

import os
import posixpath
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .apk.model import Universe
from .apk.sources import IndexRequest, Sources, index_locations, installed_database, load_universe, open_indexes
from .diagnostics import Diagnostics
from .errors import SourceError, UsageError
from .platform import KNOWN_ARCHES, host_arch, same_arch
from .resolve import Resolution, Resolver, TreeFS, majority_arch
from .verdict import GLIBC_LINKED
from .inputs.walk import scan
from .rootfs import root_files, to_host

__all__ = ["DEFAULT_EXCLUDES", "CheckOptions", "Diagnostics", "WheelCheck", "check_tree", "check_wheel",
           "add_distributions", "add_installed_size", "add_runtime_loads", "bind_symbols"]

Warn = Callable[[str], None]

DEFAULT_EXCLUDES: Tuple[str, ...] = ("*tkinter*",)
"""File-name globs (matched against a file's name, as ``find -name`` does)
that :func:`check_tree` leaves out unless ``default_excludes=False``
(``--no-default-excludes``): what the official ``python:3.x-alpine`` images
knowingly leave out of the run-time packages they compute.  Their Dockerfile
(docker-library/python, ``Dockerfile-linux.template``) runs ``scanelf`` on
``find /usr/local -type f -executable -not ( -name '*tkinter*' )``, so
``lib-dynload/_tkinter.*.so`` (which needs ``libtcl8.6.so`` and
``libtk8.6.so``) ships without ``tcl`` and ``tk``."""


def _file_cache(cache_dir: Optional[str], use_cache: bool, on_warning: Warn):
    """The per-file cache (:class:`rundeps.inputs.filecache.FileCache`), or None
    without a cache or when its folder cannot be used (after a warning)."""
    if not use_cache:
        return None
    from .cachedir import default_cache_dir
    from .inputs.filecache import FileCache

    return FileCache.open(str(default_cache_dir(cache_dir)), on_warning)


class CheckOptions:
    """How to check; every field has the CLI's default.

    ``exclude``: globs of files to skip; ``default_excludes``: leave out
    :data:`DEFAULT_EXCLUDES` too; ``arch``: the target arch (else the files',
    the root's, this machine's); ``explicit_root``: the root is the target
    (``--root``); ``library_path``: the ``LD_LIBRARY_PATH`` programs run
    with; ``main_program``: the program that loads the tree's modules at run
    time (default: the root's ``python3``); ``symbols``: bind every load as
    musl does; ``musl_version``: a shipped musl export list instead of the
    target's; ``jobs``: processes that read symbol tables (see
    :func:`rundeps.inputs.walk.scan`; the same result); ``runtime_loads``:
    read the tree's ``.py`` files for ``ctypes``/``cffi`` loads (``--dlopen``;
    a wheel's always are); ``add_runtime_loads``: their packages join the
    set; ``conditional_loads``: also those of submodules the package's import
    does not reach; ``distributions``, ``installed_size`` (with
    ``build_deps``): the detail stages; ``gcompat_file``: a real
    ``libgcompat.so.0`` to model gcompat from (wheels); ``python_tree``:
    which folders are Python import roots besides those a path shows
    (``site-packages``, ``lib/pythonX.Y``) -- None: those the walk
    recognises by their content (:mod:`rundeps.inputs.pytree`), True: every
    scanned path, False: none.
    """

    __slots__ = ("exclude", "default_excludes", "arch", "explicit_root", "library_path", "main_program", "symbols",
                 "musl_version", "jobs", "runtime_loads", "add_runtime_loads", "conditional_loads", "distributions",
                 "installed_size", "build_deps", "gcompat_file", "python_tree")

    def __init__(self, *,
                 exclude: Tuple[str, ...] = (),
                 default_excludes: bool = True,
                 arch: Optional[str] = None,
                 explicit_root: bool = False,
                 library_path: Optional[str] = None,
                 main_program: Optional[str] = None,
                 symbols: bool = True,
                 musl_version: Optional[str] = None,
                 jobs: int = 1,
                 runtime_loads: bool = False,
                 add_runtime_loads: bool = True,
                 conditional_loads: bool = False,
                 distributions: bool = False,
                 installed_size: bool = False,
                 build_deps: Optional[str] = None,
                 gcompat_file: Optional[str] = None,
                 python_tree: Optional[bool] = None):
        values = (exclude, default_excludes, arch, explicit_root, library_path, main_program, symbols, musl_version,
                  jobs, runtime_loads, add_runtime_loads, conditional_loads, distributions, installed_size,
                  build_deps, gcompat_file, python_tree)
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"CheckOptions is frozen: {name} cannot be set (use replace())")

    def replace(self, **changes) -> "CheckOptions":
        """A copy with ``changes``."""
        values = {n: getattr(self, n) for n in self.__slots__}
        values.update(changes)
        return CheckOptions(**values)

    def __eq__(self, other) -> bool:
        if not isinstance(other, CheckOptions):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __repr__(self) -> str:
        return "CheckOptions(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


def check_tree(paths: Sequence[str] = ("/usr/local",), root: str = "/", sources: Optional[Sources] = None,
               options: CheckOptions = CheckOptions(), diagnostics: Optional[Diagnostics] = None) -> Resolution:
    """Scan ``paths`` (in-root paths) of ``root``, resolve them to packages
    and judge every load as musl would (see :class:`CheckOptions`).

    ``res.faults`` names the files that would not load, ``res.binding``
    holds the details, ``res.left_out`` what the default excludes left out.
    """
    sources = sources or Sources()
    diag = diagnostics or Diagnostics()
    _check_tree_inputs(paths, root, options)
    cache = _file_cache(sources.cache_dir, sources.use_cache, diag.warning)  # the walk's, and the verdicts
    result = scan(paths, root=root, exclude=options.exclude, on_error=diag.file_error, cache=cache,
                  progress=diag.progress, symbols=options.symbols, jobs=options.jobs)
    res, _resolver = _check_scanned(result, root, paths, sources, options, diag, cache,
                                    lambda objects: TreeFS(root, known=objects, on_error=diag.file_error))
    return res


def _check_scanned(result, root, paths: Sequence[str], sources: Sources, options: CheckOptions,
                   diag: Diagnostics, cache, make_fs) -> Tuple[Resolution, Resolver]:
    """Every stage after the walk, for a root folder and a saved image alike
    (``root``: a host folder or an image's tree; ``make_fs(objects)``: its
    :class:`~rundeps.resolve.Tree`): the default excludes, the arch, the
    package sources, resolution, binding (with the verdicts ``cache``, if
    any) and the detail stages."""
    objects = {item.path: item.info for item in result.items}
    left_out = split_default_excludes(objects) if options.default_excludes else {}
    arch = _tree_arch(objects, root, options, diag)
    universe = load_universe(root, sources, arch, diag, explicit_root=options.explicit_root)
    fs = make_fs(objects)
    if options.symbols:
        fs.known_items(result.items)  # their facts load when the binder first needs them
    resolver = Resolver(universe, fs, arch=arch, on_warning=diag.warning, library_path=options.library_path,
                        main_program=options.main_program)
    resolver.scanned_paths = tuple(paths)
    resolver.python_tree = options.python_tree is True
    resolver.python_roots = result.python_roots if options.python_tree is None else frozenset()
    res = _resolve_tree(resolver, objects, root, sources, options, diag)
    res.left_out = left_out
    res.no_elf = paths_without_elf(paths, root, list(objects) + list(left_out))
    if options.symbols:
        _bind_tree(res, resolver, root, paths, cache, sources, options, diag)
    _tree_details(res, paths, root, options, diag)
    return res, resolver


def _check_tree_inputs(paths: Sequence[str], root: str, options: CheckOptions) -> None:
    """Refuse what cannot be checked, before any work."""
    check_arch_name(options.arch)
    if not os.path.isdir(root):
        raise UsageError(f"root {root} is not a folder")
    for p in paths:
        if not os.path.lexists(to_host(root, p)):
            raise UsageError(f"{p} does not exist" + (f" inside {root}" if root != "/" else ""))


def paths_without_elf(paths: Sequence[str], root, found: Sequence[str]) -> Dict[str, str]:
    """The in-root ``paths`` under which none of the ELF files ``found``
    lies, each with what it is (see :attr:`Resolution.no_elf`); ``root``: a
    host folder or an image's tree. A PATH that does not exist is not
    listed (it was refused before the walk)."""
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


def _tree_arch(objects: Dict[str, object], root: str, options: CheckOptions, diag: Diagnostics) -> Optional[str]:
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


def _resolve_tree(resolver: Resolver, objects, root: str, sources: Sources, options: CheckOptions,
                  diag: Diagnostics) -> Resolution:
    """Resolve; what is not installed may still be in the root's own
    repositories (``--root`` with a database and no index named)."""
    res = resolver.resolve(objects)
    universe = resolver.universe
    if not (res.unresolved and options.explicit_root and universe.installed and not sources.names_index()):
        return res
    from .apk.repositories import V3RepositoryError

    tags: dict = {}
    try:
        locations = index_locations(sources, root, resolver.arch, from_root=True, tags=tags,
                                    diag=diag)
        more = open_indexes(locations, IndexRequest(root, resolver.arch, sources, diag), tolerant=True, tags=tags)
    except V3RepositoryError:
        raise
    except SourceError as exc:
        diag.warning(f"could not use the repositories of {root_files(root).name}: {exc}")
        more = []
    if not more:
        return res
    for index in more:
        universe.add(index.repository)
    return resolver.resolve(objects)


def _bind_tree(res: Resolution, resolver: Resolver, root: str, paths: Sequence[str], cache, sources: Sources,
               options: CheckOptions, diag: Diagnostics) -> None:
    """The binding stage, with the verdicts of the last run over the same
    paths reused where nothing they depend on changed."""
    verdicts = cache.load_verdicts(root, paths) if cache is not None else None
    target_root = options.explicit_root or installed_database(root) is not None
    binding = bind_symbols(res, resolver, root, musl_version=options.musl_version, alpine=sources.alpine,
                           on_warning=diag.warning, verdicts=verdicts, target_root=target_root)
    if cache is not None:
        cache.store_verdicts(root, paths, binding.verdicts, verdicts)


def _tree_details(res: Resolution, paths: Sequence[str], root: str, options: CheckOptions,
                  diag: Diagnostics) -> None:
    """The stages after binding that only some callers want: run-time loads
    (a warning for each one no package provides), distributions, sizes."""
    if options.runtime_loads:
        for f in add_runtime_loads(res, paths, root, add=options.add_runtime_loads,
                                   include_conditional=options.conditional_loads):
            diag.warning(f"{f.path}:{f.line}: {f.call}({f.name!r}) loads a library no package provides")
    if options.distributions:
        add_distributions(res, root)
    if options.installed_size:
        add_installed_size(res, root, options.build_deps, diag.warning)


def tree_symbols(root: str, fs) -> Callable[[str], object]:
    """``real in-root path -> SymbolFacts or None`` for files of ``root``:
    the filesystem's own reader (cached with the walk)."""
    return fs.symbols


def system_libraries(root, resolver: Resolver, limit: int = 4000):
    """(in-root path, owning package name or None) of the shared libraries in
    the root's library search folders: where a missing symbol may be defined.
    ``root``: a host folder or a root through the root protocol
    (:func:`rundeps.rootfs.root_files`: an image's tree)."""
    from .rootfs import root_files

    files = root_files(root)
    out = []
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


def bind_symbols(res: Resolution, resolver: Resolver, root: str, musl_version: Optional[str] = None,
                 alpine: Optional[str] = None, on_warning: Optional[Warn] = None, symbols=None,
                 hint_libraries=None, interpreters=None, gcompat="auto", present=None, verdicts=None,
                 target_root: bool = True):
    """Bind every object of ``res`` as musl does (:mod:`rundeps.bind`) and
    record the verdicts on it: ``res.will_not_load`` (path -> reason),
    ``res.binding`` (missing symbols, hints, the musl checked against).

    ``verdicts``: the ``Binding.verdicts`` of an earlier run over the same
    root (a dict; {} for none) to reuse where no file they depend on has
    changed; needs a filesystem that knows its files' identities
    (``TreeFS.symbols_key``). None binds everything afresh. ``target_root``:
    the root is the target (``--root``, or it has an apk database), so its
    own ``ld-musl`` is the musl to bind against; otherwise the target's musl
    package says which shipped export list."""
    from .bind import bind, musl_model

    warn = on_warning or (lambda msg: None)
    symbols = symbols or tree_symbols(root, resolver.fs)
    symbols_key = resolver.fs.symbols_key if verdicts is not None else None
    musl = musl_model(resolver.fs, res.arch, symbols, universe=resolver.universe, musl_version=musl_version,
                      alpine=alpine, symbols_key=symbols_key, target_root=target_root)
    if hint_libraries is None:
        def hint_libraries():
            seen = set()
            for path in res.objects:
                seen.add(path)
                yield path, None
            for path, pkg in system_libraries(root, resolver):
                if path not in seen:
                    yield path, pkg

    if gcompat == "auto":
        from .bind.gcompat import find_gcompat

        gcompat = find_gcompat(resolver.fs, resolver.universe, res.arch)
    binding = bind(resolver, res, symbols, musl, interpreters=interpreters, hint_libraries=hint_libraries,
                   gcompat=gcompat, present=present, verdicts=verdicts,
                   symbols_key=symbols_key)
    res.binding = binding
    if musl is None and binding.unchecked:
        warn(f"no musl export list for {res.arch or 'this arch'} and no lib/ld-musl in the root: "
             f"{len(binding.unchecked)} file(s) use symbols that could not be checked")
    for path in binding.glibc_loads:  # glibc-linked, but binds completely: a warning, not a failure
        res.faults.pop(path, None)
    for path in binding.unchecked:  # cannot be checked is not "fails"
        if path in res.faults and res.faults[path].kind == GLIBC_LINKED:
            del res.faults[path]
    res.faults.update(binding.faults)  # --allow-glibc still accepts glibc-linked files
    return binding


def add_distributions(res: Resolution, root: str = "/"):
    """Map the scanned files, the libraries they load and the Python files
    with run-time loads to the pip distributions that own them (RECORD,
    installed-files.txt, eggs): sets and returns ``res.distributions`` (a
    :class:`rundeps.distributions.DistributionMap`)."""
    from .distributions import map_distributions

    res.distributions = map_distributions(root, res.scanned, res.objects, [f.path for f in res.dlopen])
    return res.distributions


def add_installed_size(res: Resolution, root: str = "/", build_deps: Optional[str] = None,
                       on_warning: Optional[Warn] = None):
    """The installed size of the run-time set, what it adds to the root and
    what deleting the build virtual package (``.build-deps`` or
    ``build_deps``) frees: sets and returns ``res.installed_size`` (a
    :class:`rundeps.apk.sizes.SizeReport`)."""
    from .apk.sizes import installed_sizes

    res.installed_size = installed_sizes(res, root, build_deps, Diagnostics(warning=on_warning))
    return res.installed_size


def split_default_excludes(objects: Dict[str, object], globs: Sequence[str] = DEFAULT_EXCLUDES) -> Dict[str, str]:
    """Remove from ``objects`` ({in-root path: info}) the files whose name
    matches one of ``globs``; return {path: the glob that matched}."""
    import fnmatch

    out: Dict[str, str] = {}
    for path in list(objects):
        name = path.rpartition("/")[2]
        for glob in globs:
            if fnmatch.fnmatchcase(name, glob):
                out[path] = glob
                del objects[path]
                break
    return out


def read_arch(root) -> Optional[str]:
    """The root's ``etc/apk/arch`` (see :func:`rundeps.apk.repositories.read_arch`);
    ``root``: a host folder, a root through the root protocol, or None."""
    from .apk.repositories import read_arch as read

    return read(root)


def target_arch(arch: Optional[str], root: str, explicit_root: bool) -> Optional[str]:
    """The arch to resolve for when no ELF file says: ``--arch``, else the
    root's ``etc/apk/arch`` (with ``--root``), else this machine's."""
    return arch or (read_arch(root) if explicit_root else None) or host_arch()


def check_arch_name(arch: Optional[str]) -> Optional[str]:
    """``arch`` when rundeps knows it (:data:`KNOWN_ARCHES`), else :class:`UsageError`."""
    if arch is not None and arch not in KNOWN_ARCHES:
        raise UsageError(f"unknown arch {arch!r} (rundeps knows {', '.join(KNOWN_ARCHES)})")
    return arch


BASE_IMAGE_SONAMES = {
    "libz.so.1": "zlib",
    "libcrypto.so.3": "libcrypto3",
    "libssl.so.3": "libssl3",
}
"""Libraries every ``alpine`` image since 3.17 has besides musl (apk-tools
needs them): a wheel may need these and still need nothing beyond the base
image. Package names as Alpine gives them."""


class WheelCheck:
    """One wheel checked: the :class:`rundeps.inputs.wheel.WheelScan`, its
    resolution (a pure wheel too: its run-time loads), the target arch, a one-line verdict,
    whether the wheel is usable as it is, and whether no package source was
    available to map external sonames."""

    def __init__(self, wheel, resolution: Optional[Resolution], target_arch: Optional[str], verdict: str,
                 ok: bool, no_sources: bool = False):
        self.wheel = wheel
        self.resolution = resolution
        self.target_arch = target_arch
        self.verdict = verdict
        self.ok = ok
        self.no_sources = no_sources
        self.base_image: dict = {}
        """Sonames left to the base image when no package source was available."""
        self.unresolved_loads: list = []
        """Run-time loads (counted ones) that no package provides."""

    def release_inputs(self) -> None:
        """Drop what was read from the wheel only to check it (its Python
        sources and its members' symbol facts): the verdict and resolution
        stay, so checking many wheels stays in bounded memory."""
        self.wheel.py_sources = []
        for item in self.wheel.items:
            item.symbols = None


def add_runtime_loads(
    res: Resolution,
    paths: Sequence[str],
    root: str = "/",
    *,
    add: bool = True,
    include_conditional: bool = False,
    on_problem: Optional[Callable[[str, str], None]] = None,
) -> list:
    """The run-time loads stage for a tree: read the ``.py`` files under
    in-root ``paths`` for ``ctypes``/``cffi`` loads (:mod:`rundeps.loads.dlopen`),
    mark those of submodules the top-level import does not reach
    (:func:`rundeps.loads.conditions.import_conditions`), resolve each group of
    alternatives to one package and (``add``) add the packages of the
    loads the package's import makes (all of them with
    ``include_conditional``). Returns the counted loads nothing provides."""
    from .loads.conditions import TreeFiles, import_conditions
    from .loads.sourcefiles import scan_tree_sources
    from .loads.providers import apply_runtime_loads

    findings = scan_tree_sources(paths, root, on_problem=on_problem)
    conditions: dict = {}
    if findings:
        files = TreeFiles(root)
        read = files.read
        if hasattr(files.files, "read_many"):  # an image: its packages' sources in one pass per layer
            read = _package_sources(files, {f.path for f in findings})
        conditions = import_conditions({f.path for f in findings}, files, read)
    return apply_runtime_loads(res, findings, add=add, conditions=conditions, include_conditional=include_conditional)


def _package_sources(files, paths) -> Callable[[str], Optional[str]]:
    """``files.read`` for the ``.py`` files of the top-level packages of
    ``paths``, read together first (``read_many``: a compressed layer is
    decompressed once, where reads in import order would restart it)."""
    from .inputs.pysource import decode_source

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


def add_wheel_loads(res: Resolution, ws, *, add: bool = True, include_conditional: bool = False) -> list:
    """:func:`add_runtime_loads` for a wheel's own sources (``ws``: a
    :class:`rundeps.inputs.wheel.WheelScan`)."""
    from .loads.conditions import import_conditions
    from .loads.sourcefiles import find_wheel_loads
    from .loads.providers import apply_runtime_loads

    findings = find_wheel_loads(ws)
    sources = dict(ws.py_sources)
    conditions = import_conditions({f.path for f in findings}, set(sources), sources.get) if findings else {}
    return apply_runtime_loads(res, findings, add=add, conditions=conditions, include_conditional=include_conditional)


def check_wheel(path: str, root: str = "/", sources: Optional[Sources] = None,
                options: CheckOptions = CheckOptions(), diagnostics: Optional[Diagnostics] = None,
                universe: Optional[Universe] = None) -> WheelCheck:
    """Read a wheel straight from its zip and resolve what it needs
    (``options.symbols``: its members' ``SymbolFacts`` are read and every
    load is judged; ``diagnostics.file_error(member, reason)`` for a member
    it cannot read).

    The wheel's own files are in-tree (``<pkg>.libs/`` through ``$ORIGIN``);
    the rest resolves against ``universe`` (or the sources), as ``scan`` does.
    Without any database or index, names outside the wheel stay unresolved.
    A pure wheel is checked too: its Python code's run-time loads
    (:func:`add_wheel_loads`; ``options.add_runtime_loads``: add their
    packages, else only report them) are what it needs.
    """
    from .inputs.wheel import scan_wheel
    from .resolve import WheelFS

    diag = diagnostics or Diagnostics()
    sources = sources or Sources()
    ws = scan_wheel(path, on_problem=diag.file_error, symbols=options.symbols)
    objects = _wheel_objects(ws)
    elf_arch, _ = majority_arch(objects.values())
    target = target_arch(options.arch, root, options.explicit_root)
    no_sources = False
    if universe is None:
        try:
            universe = load_universe(root, sources, target, Diagnostics(warning=diag.warning),
                                     explicit_root=options.explicit_root)
        except SourceError:
            if sources.names_index() or sources.db:
                raise
            universe, no_sources = Universe(), True
    elif not universe:
        no_sources = True
    tree = TreeFS(root) if options.explicit_root else None
    resolver = Resolver(universe, WheelFS(ws, tree), arch=elf_arch or target, on_warning=diag.warning)
    resolver.python_tree = True  # the members install into a site-packages
    res = resolver.resolve(objects)
    binding = None
    if options.symbols:
        present = BASE_IMAGE_SONAMES if no_sources else {}
        binding = bind_wheel(res, resolver, ws, tree, musl_version=options.musl_version, alpine=sources.alpine,
                             on_warning=diag.warning, present=present, gcompat_file=options.gcompat_file)
    lost = add_wheel_loads(res, ws, add=options.add_runtime_loads, include_conditional=options.conditional_loads)
    from .distributions import wheel_distributions

    res.distributions = wheel_distributions(ws, list(objects))  # the wheel owns all its files
    # Without any package source, the base image's own libraries are still known.
    base = {so: BASE_IMAGE_SONAMES[so] for so in res.unresolved if no_sources and so in BASE_IMAGE_SONAMES}
    problems = _wheel_problems(ws, res, binding, elf_arch, target, base, bool(objects))
    if problems:
        check = WheelCheck(ws, res, target, "; ".join(problems), False, no_sources)
    else:
        check = WheelCheck(ws, res, target, _wheel_verdict(ws, res, binding, base, lost, no_sources, bool(objects)),
                           True, no_sources)
    check.base_image = base
    check.unresolved_loads = lost
    return check


def _wheel_objects(ws) -> Dict[str, object]:
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


def _wheel_problems(ws, res: Resolution, binding, elf_arch: Optional[str], target: Optional[str],
                    base: Dict[str, str], has_elf: bool) -> List[str]:
    """Why the wheel is not usable as it is (empty when it is)."""
    problems = []
    pure = ws.libc == "pure" or not has_elf
    wheel_arch = ws.arch or elf_arch
    if not pure and wheel_arch and target and wheel_arch != target:
        problems.append(f"built for {wheel_arch}, the target is {target}")
    if binding is not None:
        from .report.problems import only_not_found

        unresolved = res.unresolved
        # files whose only fault is a library "not found" below names are not repeated
        other = {p: f.reason for p, f in res.faults.items() if not only_not_found(p, f, unresolved)}
        if other:
            first = sorted(other.items())[0]
            n = len(other)
            problems.append(f"{n} file{'s' if n != 1 else ''} will not load under musl "
                            f"({first[0]}: {first[1]}" + (f"; and {n - 1} more)" if n > 1 else ")"))
    elif ws.libc == "glibc" or res.glibc_linked:
        glibc = sorted({s for sonames in res.glibc_linked.values() for s in sonames})
        problems.append(
            "glibc-linked" + (f" (needs {', '.join(glibc)})" if glibc else "")
            + ": Alpine needs a musllinux wheel (or gcompat)"
        )
    missing = [so for so in res.unresolved if so not in base]
    if missing:
        problems.append("not found: " + ", ".join(missing))
    return problems


def _wheel_verdict(ws, res: Resolution, binding, base: Dict[str, str], lost: list, no_sources: bool,
                   has_elf: bool) -> str:
    """The one-line verdict of a wheel usable as it is: what it needs."""
    pure = ws.libc == "pure" or not has_elf
    glibc_note = ""
    if binding is not None and (ws.libc == "glibc" or res.glibc_linked):
        glibc_note = "glibc-linked, loads under musl; "
    needed = {p.name for p in res.packages} | set(base.values())
    in_base = sorted(n for n in needed if n == "musl" or n in BASE_IMAGE_SONAMES.values())
    external = sorted(needed - set(in_base))
    loaded = {p.name for p in res.extra.values()}
    prefix = "pure Python; " if pure else ""
    if external:
        verdict = prefix + "needs " + " ".join(
            n + (" (loaded at run time)" if n in loaded else "") for n in external)
    elif pure and not lost:
        verdict = "pure Python: needs no system library"
    elif pure:
        verdict = "pure Python"
    else:
        verdict = f"needs nothing beyond the base image ({', '.join(['musl'] + [n for n in in_base if n != 'musl'])})"
    if lost:
        names = sorted({f.name for f in lost})
        verdict += ("; " if verdict else "") + "loads at run time " + ", ".join(names) + (
            ", which nothing here provides" if not no_sources else
            " (name a package source to map it: --alpine VERSION, --index or --db)")
    return glibc_note + verdict


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


def bind_wheel(res: Resolution, resolver: Resolver, ws, tree, musl_version: Optional[str] = None,
               alpine: Optional[str] = None, on_warning: Optional[Warn] = None, present=None,
               gcompat_file: Optional[str] = None):
    """Bind a wheel's members as musl would once installed: every shared
    object no other member loads is an extension module (or a library a
    module opens), opened by the interpreter with RTLD_LOCAL: the root's
    interpreter with ``--root``, else one assumed to define the Py* names."""
    fs = resolver.fs
    symbols = fs.symbols
    interp = wheel_interpreter(ws, tree)
    interpreters = {p: interp for p, info in res.objects.items() if info.interp is None}
    gcompat = None
    if gcompat_file is not None:
        from .bind.gcompat import Gcompat

        gcompat = Gcompat.from_file(gcompat_file)
    elif tree is not None:
        from .bind.gcompat import find_gcompat

        gcompat = find_gcompat(tree, resolver.universe)

    def hints():
        for p in res.objects:
            yield p, None
        if tree is not None:
            for path, pkg in system_libraries(tree.root, resolver):
                yield path, pkg

    return bind_symbols(res, resolver, tree.root if tree is not None else "/", musl_version=musl_version,
                        alpine=alpine, on_warning=on_warning, symbols=symbols, hint_libraries=hints,
                        interpreters=interpreters, present=present, gcompat=gcompat)


def check_image(image, paths: Sequence[str] = ("/usr/local",), sources: Optional[Sources] = None,
                options: CheckOptions = CheckOptions(), diagnostics: Optional[Diagnostics] = None,
                platform: Optional[str] = None) -> Resolution:
    """:func:`check_tree` for a saved image (``image``: its path, or an open
    :class:`rundeps.inputs.image.ImageTree`), read in memory with nothing
    extracted: the image is the target root (its apk database,
    repositories, keys and ``ld-musl`` are used), its config's ``Env``
    gives ``LD_LIBRARY_PATH`` unless ``options.library_path`` does, and
    ``res.entry_program`` says whether the program its ``Entrypoint``/``Cmd``
    runs loads (a :class:`ProgramCheck`). ``platform`` chooses the image of a
    multi-platform index (``linux/arm64/v8``). With the cache, a repeat run
    over an unchanged image file (its :func:`rundeps.inputs.image.image_stamp`)
    reads no layer for the scanned files: the merged tree and their facts
    come from the file cache."""
    from .inputs.image import ImageError, open_image
    from .inputs.imagescan import Prefetch

    if not isinstance(image, (str, bytes, os.PathLike)):
        return _check_image(image, paths, sources or Sources(), options, diagnostics or Diagnostics())
    check_arch_name(options.arch)
    sources = sources or Sources()
    diag = diagnostics or Diagnostics()
    # ELF facts read in the pass that opens the image: the scanned
    # folders' (with symbols) and the library folders' (without)
    lib_dirs = ("/lib", "/usr/lib", "/usr/local/lib")
    prefetch = Prefetch(paths, options.symbols, info_dirs=lib_dirs, progress=diag.progress)
    cache = _file_cache(sources.cache_dir, sources.use_cache, diag.warning)
    stamp, scope, snapshot = _cached_image(cache, image, prefetch, (platform, tuple(paths), options.symbols, lib_dirs))
    try:
        tree = open_image(image, platform, visit=prefetch, snapshot=snapshot)
    except ImageError:
        if snapshot is None:
            raise
        prefetch = Prefetch(paths, options.symbols, info_dirs=lib_dirs, progress=diag.progress)
        tree = snapshot = None
    if tree is None:  # a cached reading that does not fit: read the image
        tree = open_image(image, platform, visit=prefetch)
    with tree:
        storing = cache is not None and snapshot is None and stamp is not None
        if storing:
            tree.record_reads()
        # the walk reads next to nothing now: its count would only run the bar backwards
        quiet = Diagnostics(diag.warning, diag.note, diag.info, diag.file_error)
        res = _check_image(tree, paths, sources, options, quiet, prefetch)
        if storing and _image_stamp(image) == stamp:
            cache.store_image(stamp, scope, (tree.snapshot(), prefetch.dump()))
        return res


def _image_stamp(image):
    from .inputs.image import image_stamp

    try:
        return image_stamp(image)
    except OSError:
        return None


def _cached_image(cache, image, prefetch, scope):
    """(stamp, scope, snapshot): the image's identity, and what the file
    cache holds of an earlier reading of it (``prefetch`` gets its facts),
    or None for the snapshot."""
    stamp = _image_stamp(image) if cache is not None else None
    if stamp is None:
        return stamp, scope, None
    held = cache.load_image(stamp, scope)
    try:
        snapshot, facts = held
        prefetch.restore(facts)
    except (TypeError, ValueError):
        return stamp, scope, None
    return stamp, scope, snapshot


def _check_image(tree, paths: Sequence[str], sources: Sources, options: CheckOptions,
                 diag: Diagnostics, prefetch=None) -> Resolution:
    from .inputs.imagescan import image_env, scan_image
    from .resolve import ImageFS

    check_arch_name(options.arch)
    for p in paths:
        if tree.resolve(p, follow_last=False) is None:
            raise UsageError(f"{p} does not exist inside the image {tree.name}")
    if options.library_path is None:
        options = options.replace(library_path=image_env(tree.config).get("LD_LIBRARY_PATH"))
    options = options.replace(explicit_root=True)
    result = scan_image(tree, paths, exclude=options.exclude, on_error=diag.file_error, progress=diag.progress,
                        symbols=options.symbols, prefetched=prefetch)
    res, resolver = _check_scanned(
        result, tree, paths, sources, options, diag, None,
        lambda objects: ImageFS(tree, known=objects, on_error=diag.file_error, symbols=options.symbols,
                                prefetched=prefetch))
    res.entry_program = _judge_entry_program(tree, res, resolver, options, diag)
    return res


class ProgramCheck:
    """Whether the program an image runs would load: ``program`` the
    :class:`rundeps.inputs.imagescan.EntryProgram`; ``fault`` a
    :class:`rundeps.verdict.Fault` when it would not load, ``unresolved``
    the sonames no package or file gives it, ``unchecked`` True when it
    cannot be checked here (symbols not bound, no musl to bind against)."""

    __slots__ = ("program", "fault", "unresolved", "unchecked")

    def __init__(self, program, fault=None, unresolved=(), unchecked=False):
        self.program, self.fault, self.unresolved, self.unchecked = program, fault, tuple(unresolved), unchecked

    @property
    def loads(self) -> bool:
        """True when the program is found and would load."""
        return self.program.path is not None and self.fault is None and not self.unresolved


def _judge_entry_program(tree, res: Resolution, resolver: Resolver, options: CheckOptions,
                         diag: Diagnostics) -> Optional[ProgramCheck]:
    """The :class:`ProgramCheck` of the image's ``Entrypoint``/``Cmd``: the
    verdict of the scan when the program was scanned, else its own load
    resolved and bound in the same image."""
    from .inputs.imagescan import entry_program

    prog = entry_program(tree)
    if prog is None or prog.path is None:
        return None if prog is None else ProgramCheck(prog)
    path = prog.path
    if path in res.objects and path in res.scanned:
        unresolved = sorted(so for so, files in res.unresolved.items() if path in files)
        unchecked = res.binding is None or path in res.binding.unchecked
        return ProgramCheck(prog, res.faults.get(path), unresolved, unchecked)
    info = resolver.fs.elf(path)
    if info is None:
        return ProgramCheck(prog, unchecked=True)
    own = Resolver(resolver.universe, resolver.fs, arch=res.arch, library_path=":".join(resolver.library_path) or None,
                   main_program=options.main_program)
    one = own.resolve({path: info})
    if options.symbols:
        bind_symbols(one, own, tree, musl_version=options.musl_version, target_root=True)
    unresolved = sorted(one.unresolved)
    unchecked = one.binding is None or path in one.binding.unchecked
    return ProgramCheck(prog, one.faults.get(path), unresolved, unchecked)

"""The library entry points: load package sources, check a tree, get a Resolution.

The CLI is a thin layer over these functions::

    from rundeps.api import Sources, check_tree
    res = check_tree(["/usr/local"], root="/", sources=Sources())
    print([p.name for p in res.packages])
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .apkdb import Repository, Universe, parse_installed
from .errors import SourceError, UsageError
from .resolve import Resolution, Resolver, TreeFS, _same_arch, majority_arch
from .verdict import GLIBC_LINKED, MISSING_LIBRARY
from .inputs.walk import ScanResult, scan
from .rootfs import to_host

__all__ = ["DEFAULT_EXCLUDES", "Sources", "check_tree", "load_database", "load_universe", "open_indexes",
           "add_distributions", "add_installed_size"]

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


class Sources:
    """Where packages come from: an installed database and repository indexes.

    ``db``: an installed database file (default ``<root>/lib/apk/db/installed``);
    ``indexes``, ``repos``, ``alpine``/``mirror``: repository indexes;
    ``keys_dirs``: trusted keys besides the root's; ``apk_cache``: use the
    root's own apk cache (``var/cache/apk/APKINDEX.<hash>.tar.gz``) before the
    network (never with ``refresh``); the rest as the CLI options.
    """

    def __init__(
        self,
        db: Optional[str] = None,
        indexes: Sequence[str] = (),
        repos: Sequence[str] = (),
        alpine: Optional[str] = None,
        mirror: Optional[str] = None,
        keys_dirs: Sequence[str] = (),
        allow_untrusted: bool = False,
        offline: bool = False,
        refresh: bool = False,
        cache_dir: Optional[str] = None,
        use_cache: bool = True,
        apk_cache: bool = True,
    ):
        self.db = db
        self.indexes = indexes
        self.repos = repos
        self.alpine = alpine
        self.mirror = mirror
        self.keys_dirs = keys_dirs
        self.allow_untrusted = allow_untrusted
        self.offline = offline
        self.refresh = refresh
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.apk_cache = apk_cache

    def names_index(self) -> bool:
        return bool(self.indexes or self.repos or self.alpine)


def load_database(path: str) -> Repository:
    """Read an installed database; :class:`SourceError` when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SourceError(f"no installed database at {path}") from None
    except IsADirectoryError:
        raise SourceError(f"cannot read installed database {path}: it is a folder") from None
    except OSError as exc:
        raise SourceError(f"cannot read installed database {path}: {exc.strerror or exc}") from None
    repo = parse_installed(data.decode("utf-8", "replace"))
    if not repo.packages:
        raise SourceError(f"{path} holds no package: not an apk installed database")
    return repo


def load_universe(
    root: str,
    sources: Sources,
    arch: Optional[str],
    on_warning: Warn,
    explicit_root: bool = False,
    on_info: Optional[Warn] = None,
) -> Universe:
    """The installed database (if any) followed by the named indexes.

    With ``--root``, no database and no index named, the root's
    ``etc/apk/repositories`` are the indexes.
    """
    universe = Universe()
    found = installed_database(root)
    db_path = sources.db or found or to_host(root, INSTALLED_DB)
    if sources.db or found:
        universe.add(load_database(db_path))
    locations: List[str] = []
    tags: dict = {}
    if sources.names_index():
        locations = index_locations(sources, root, arch)
    elif explicit_root and not universe:
        locations = index_locations(sources, root, arch, from_root=True, tags=tags, on_warning=on_warning)
    from_root = not sources.names_index()
    for index in open_indexes(locations, root, arch, sources, on_warning, on_info, tolerant=from_root, tags=tags):
        universe.add(index.repository)
    if not universe:
        where = "the root " + root if explicit_root else "this system"
        raise SourceError(
            f"no installed database at {db_path} for {where}: name one with --db FILE "
            "or a repository index with --index, --repo or --alpine"
        )
    return universe


INSTALLED_DB = "/lib/apk/db/installed"
USR_INSTALLED_DB = "/usr/lib/apk/db/installed"


def installed_database(root: str) -> Optional[str]:
    """The host path of the root's installed database, or None.

    apk-tools (2 and 3: its short-lived ``usr/lib/apk`` default was reverted
    before 3.0.0) opens ``lib/apk/db/installed`` in the root, which on a
    merged-/usr root reaches ``usr/lib/apk/db/installed`` through the
    ``lib -> usr/lib`` symlink; symlinks are followed inside the root (an
    absolute ``/usr/lib`` target is the root's, not the host's).  A root that
    has only ``usr/lib/apk/db/installed`` (a copy that lost the symlink) is
    read from there."""
    from .rootfs import resolve_in_root

    for path in (INSTALLED_DB, USR_INSTALLED_DB):
        real = resolve_in_root(root, path)
        if real is not None:
            return to_host(root, real)
    return None


def index_locations(sources: Sources, root: str, arch: Optional[str], from_root: bool = False,
                    tags: Optional[dict] = None, on_warning: Optional[Warn] = None) -> List[str]:
    """Where the indexes are: the ones named, or (``from_root``) the root's
    repositories (``tags`` receives {location: tag} for the tagged ones)."""
    from .sources import index_locations as locate

    if from_root:
        return locate(arch=arch, root=root, tags=tags, on_warning=on_warning)
    return locate(indexes=sources.indexes, repos=sources.repos, alpine=sources.alpine,
                  mirror=sources.mirror, arch=arch, root=root)


def index_cache(sources: Sources, on_warning: Warn):
    """The index cache, or None (``--no-cache``, or a folder that cannot be used)."""
    if not sources.use_cache:
        return None
    from .cachedir import default_cache_dir
    from .fetch import IndexCache

    return IndexCache.open(str(default_cache_dir(sources.cache_dir)), on_warning)


def trusted_keys(root: str, arch: Optional[str], sources: Sources):
    """The keys indexes are verified against: ``--keys-dir``, else the root's
    and the host's apk keys, else the Alpine keys shipped with rundeps
    (:func:`rundeps.apkindex.trusted_key_set`)."""
    from .apkindex import trusted_key_set

    return trusted_key_set(root, arch, sources.keys_dirs)


def open_indexes(locations: Sequence[str], root: str, arch: Optional[str], sources: Sources,
                 on_warning: Warn, on_info: Optional[Warn] = None, tolerant: bool = False,
                 tags: Optional[dict] = None):
    """Open, verify and (through the cache) read every index location, in order.

    ``tags``: {location: tag} of the repositories named with ``@tag``; their
    packages lose a provider choice to untagged ones, as apk's pinning does.

    A named index that cannot be used is an error. With ``tolerant`` (the
    root's own repositories, as apk treats them) it is a warning and the
    index is skipped: an index that does not verify is never used either way.
    """
    if not locations:
        return []
    from .fetch import open_index

    keys = trusted_keys(root, arch, sources)
    cache = index_cache(sources, on_warning)
    out = []
    unreachable: Dict[str, str] = {}  # host -> why, once a download found it unreachable
    # No shared requests session: importing requests costs ~140 ms, and a
    # warm run (index fresh in the cache) must not pay it. open_index makes
    # one only when it has to talk to a server.
    try:
        for loc in locations:
            try:
                index = None
                if sources.apk_cache and not sources.refresh:
                    index = open_apk_cached(loc, root, keys, cache, sources, on_warning, on_info, arch)
                if index is None:
                    host = _remote_host(loc)
                    if host in unreachable and not sources.offline:
                        raise SourceError(f"{loc}: not tried: {unreachable[host]} a moment ago")
                    try:
                        index = open_index(
                            loc, keys, cache=cache, offline=sources.offline, refresh=sources.refresh,
                            allow_untrusted=sources.allow_untrusted, on_warning=on_warning, on_info=on_info,
                        )
                    except SourceError as exc:
                        if getattr(exc, "unreachable", False) and host:
                            unreachable[host] = f"{host} could not be reached"
                        raise
                if arch and index.arch and index.arch != arch:
                    raise SourceError(
                        f"{loc}: the index is for {index.arch}, not {arch}: its packages cannot "
                        f"serve these files (name the {arch} index, or --arch)"
                    )
                index.repository.tag = (tags or {}).get(loc)
                out.append(index)
            except SourceError as exc:
                if not tolerant:
                    raise
                on_warning(f"skipped a repository of {root}: {exc}")
    finally:
        if cache is not None:
            cache.close()  # checkpointed now: the process may leave with os._exit
    return out


def _remote_host(location: str) -> Optional[str]:
    """``scheme://host:port`` of an http(s) location, else None."""
    if not location.lower().startswith(("http://", "https://")):
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def open_apk_cached(location: str, root: str, keys, cache, sources: Sources, on_warning: Warn,
                    on_info: Optional[Warn] = None, arch: Optional[str] = None):
    """The root's own apk-cached copy of a remote index (``/var/cache/apk/
    APKINDEX.<hash>.tar.gz``, see :mod:`rundeps.apkcache`), verified like
    any other index, or None when there is none (or it does not verify:
    then a warning, and the caller goes on to the network)."""
    if _remote_host(location) is None:
        return None
    from .apkcache import find_cached_index

    path = find_cached_index(root, location, arch=arch)
    if path is None:
        return None
    from .fetch import open_cached_copy

    shown = "/" + os.path.relpath(path, root) if root != "/" else path
    try:
        index = open_cached_copy(path, location, keys, cache=cache, allow_untrusted=sources.allow_untrusted,
                                 on_warning=on_warning)
    except SourceError as exc:
        on_warning(f"the image's apk cache {shown} for {location} cannot be used ({exc}); not used")
        return None
    if on_info is not None:
        on_info(f"{location}: using the image's apk cache {shown}")
    return index


def scan_paths(
    paths: Sequence[str],
    root: str,
    exclude: Sequence[str],
    on_error: Callable[[str, str], None],
    cache_dir: Optional[str],
    use_cache: bool,
    on_warning: Warn,
    progress=None,
    symbols: bool = False,
    jobs: int = 1,
) -> ScanResult:
    """Walk ``paths`` inside ``root`` and read their ELF files (with the file
    cache); ``symbols=True`` also gives each item its ``SymbolFacts``
    (``jobs``: see :func:`rundeps.walk.scan`)."""
    return scan(paths, root=root, exclude=exclude, on_error=on_error,
                cache=_file_cache(cache_dir, use_cache, on_warning), progress=progress, symbols=symbols, jobs=jobs)


def _file_cache(cache_dir: Optional[str], use_cache: bool, on_warning: Warn):
    """The per-file cache (:class:`rundeps.filecache.FileCache`), or None
    without a cache or when its folder cannot be used (after a warning)."""
    if not use_cache:
        return None
    from .cachedir import default_cache_dir
    from .inputs.filecache import FileCache

    return FileCache.open(str(default_cache_dir(cache_dir)), on_warning)


def check_tree(
    paths: Sequence[str] = ("/usr/local",),
    root: str = "/",
    sources: Optional[Sources] = None,
    exclude: Sequence[str] = (),
    arch: Optional[str] = None,
    explicit_root: bool = False,
    on_error: Optional[Callable[[str, str], None]] = None,
    on_warning: Optional[Warn] = None,
    progress=None,
    on_info: Optional[Warn] = None,
    symbols: bool = True,
    musl_version: Optional[str] = None,
    library_path: Optional[str] = None,
    main_program: Optional[str] = None,
    default_excludes: bool = True,
    jobs: int = 1,
) -> Resolution:
    """Scan ``paths`` (in-root paths) of ``root`` and resolve them to packages.

    ``library_path``: the ``LD_LIBRARY_PATH`` the programs run with;
    ``main_program``: the program that loads the tree's modules at run time
    (default: the root's ``python3``); see :class:`rundeps.resolve.Resolver`.
    With ``default_excludes`` (the default), ELF files whose name matches
    :data:`DEFAULT_EXCLUDES` are left out and listed in
    :attr:`Resolution.left_out`.

    With ``symbols`` (on by default, as ``scan``; False skips it), every
    object is then bound as musl binds it (:func:`bind_symbols`):
    ``res.will_not_load`` names the files that would not load,
    ``res.binding`` holds the details. ``musl_version``
    picks a shipped musl export list instead of the root's own musl.
    ``jobs`` > 1 lets symbol tables be read by two processes (see
    :func:`rundeps.walk.scan`; the same result).
    """
    sources = sources or Sources()
    warn = on_warning or (lambda msg: None)
    err = on_error or (lambda path, reason: None)
    check_arch_name(arch)
    if not os.path.isdir(root):
        raise UsageError(f"root {root} is not a folder")
    for p in paths:
        if not os.path.lexists(to_host(root, p)):
            raise UsageError(f"{p} does not exist" + (f" inside {root}" if root != "/" else ""))
    cache = _file_cache(sources.cache_dir, sources.use_cache, warn)  # the walk's, and the binder's verdicts
    result = scan(paths, root=root, exclude=exclude, on_error=err, cache=cache, progress=progress, symbols=symbols,
                  jobs=jobs)
    objects = {item.path: item.info for item in result.items}
    left_out = split_default_excludes(objects) if default_excludes else {}
    found_arch, counts = majority_arch(objects.values())
    if len(counts) > 1:
        listing = ", ".join(f"{a} ({n} file{'s' if n != 1 else ''})" for a, n in counts.most_common())
        warn(f"the tree mixes architectures: {listing}; resolving for {arch or found_arch}")
    elif arch and found_arch and arch != found_arch and not _same_arch(arch, found_arch):
        n = counts[found_arch]
        warn(f"--arch {arch}, but the scanned files are {found_arch} ({n} file{'s' if n != 1 else ''}): "
             f"their libraries cannot serve an {arch} image")
    arch = arch or found_arch or read_arch(root) or machine_arch()
    universe = load_universe(root, sources, arch, warn, explicit_root=explicit_root, on_info=on_info)
    fs = TreeFS(root, known=objects, on_error=err)
    if symbols:
        fs.known_items(result.items)  # their facts load when the binder first needs them
    resolver = Resolver(universe, fs, arch=arch, on_warning=warn, library_path=library_path,
                        main_program=main_program)
    resolver.scanned_paths = tuple(paths)
    res = resolver.resolve(objects)
    if res.unresolved and explicit_root and universe.installed and not sources.names_index():
        # what is not installed may still be in the root's own repositories
        from .sources import V3RepositoryError

        tags: dict = {}
        try:
            locations = index_locations(sources, root, arch, from_root=True, tags=tags, on_warning=warn)
            more = open_indexes(locations, root, arch, sources, warn, on_info, tolerant=True, tags=tags)
        except V3RepositoryError:
            raise
        except SourceError as exc:
            warn(f"could not use the repositories of {root}: {exc}")
            more = []
        if more:
            for index in more:
                universe.add(index.repository)
            res = resolver.resolve(objects)
    res.left_out = left_out
    if symbols:
        verdicts = cache.load_verdicts(root, paths) if cache is not None else None
        target_root = explicit_root or installed_database(root) is not None
        binding = bind_symbols(res, resolver, root, musl_version=musl_version, alpine=sources.alpine,
                               on_warning=warn, verdicts=verdicts, target_root=target_root)
        if cache is not None:
            cache.store_verdicts(root, paths, binding.verdicts, verdicts)
    return res


def tree_symbols(root: str, fs) -> Callable[[str], object]:
    """``real in-root path -> SymbolFacts or None`` for files of ``root``
    (the filesystem's own reader when it has one: cached with the walk)."""
    method = getattr(fs, "symbols", None)
    if method is not None:
        return method
    from .elf import ElfError
    from .elf import read_symbols_path

    memo: dict = {}

    def get(real: str):
        try:
            return memo[real]
        except KeyError:
            pass
        try:
            facts = read_symbols_path(to_host(root, real))
        except (ElfError, OSError):
            facts = None
        memo[real] = facts
        return facts

    return get


def system_libraries(root: str, resolver: Resolver, limit: int = 4000):
    """(in-root path, owning package name or None) of the shared libraries in
    the root's library search folders: where a missing symbol may be defined."""
    out = []
    for d in resolver.system_dirs():
        try:
            names = sorted(os.listdir(to_host(root, d)))
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
    symbols_key = getattr(resolver.fs, "symbols_key", None) if verdicts is not None else None
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
        from .gcompat import find_gcompat

        gcompat = find_gcompat(resolver.fs, resolver.universe, res.arch)
    binding = bind(resolver, res, symbols, musl, interpreters=interpreters, hint_libraries=hint_libraries,
                   gcompat=gcompat, present=present, verdicts=verdicts if symbols_key is not None else None,
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
    :class:`rundeps.sizes.SizeReport`)."""
    from .sizes import installed_sizes

    res.installed_size = installed_sizes(res, root, build_deps, on_warning)
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


def read_arch(root: Optional[str]) -> Optional[str]:
    """The root's ``etc/apk/arch`` (see :func:`rundeps.sources.read_arch`)."""
    from .sources import read_arch as read

    return read(root)


def target_arch(arch: Optional[str], root: str, explicit_root: bool) -> Optional[str]:
    """The arch to resolve for when no ELF file says: ``--arch``, else the
    root's ``etc/apk/arch`` (with ``--root``), else this machine's."""
    return arch or (read_arch(root) if explicit_root else None) or machine_arch()


KNOWN_ARCHES = ("x86_64", "x86", "aarch64", "armv7", "armhf", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64")
"""The arch names rundeps resolves for (Alpine's names; ``--arch``)."""


def check_arch_name(arch: Optional[str]) -> Optional[str]:
    """``arch`` when rundeps knows it (:data:`KNOWN_ARCHES`), else :class:`UsageError`."""
    if arch is not None and arch not in KNOWN_ARCHES:
        raise UsageError(f"unknown arch {arch!r} (rundeps knows {', '.join(KNOWN_ARCHES)})")
    return arch


def machine_arch() -> Optional[str]:
    """This machine's arch as Alpine names it."""
    m = os.uname().machine
    return {
        "x86_64": "x86_64",
        "amd64": "x86_64",
        "i386": "x86",
        "i686": "x86",
        "aarch64": "aarch64",
        "arm64": "aarch64",
        "armv7l": "armv7",
        "armv8l": "armv7",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
        "loongarch64": "loongarch64",
    }.get(m, m)


BASE_IMAGE_SONAMES = {
    "libz.so.1": "zlib",
    "libcrypto.so.3": "libcrypto3",
    "libssl.so.3": "libssl3",
}
"""Libraries every ``alpine`` image since 3.17 has besides musl (apk-tools
needs them): a wheel may need these and still need nothing beyond the base
image. Package names as Alpine gives them."""


class WheelCheck:
    """One wheel checked: the :class:`rundeps.wheel.WheelScan`, its
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
    in-root ``paths`` for ``ctypes``/``cffi`` loads (:mod:`rundeps.dlopen`),
    mark those of submodules the top-level import does not reach
    (:func:`rundeps.runtime.import_conditions`), resolve each group of
    alternatives to one package and (``add``) add the packages of the
    loads the package's import makes (all of them with
    ``include_conditional``). Returns the counted loads nothing provides."""
    from .dlopen import scan_tree_sources
    from .runtime import TreeFiles, import_conditions

    findings = scan_tree_sources(paths, root, on_problem=on_problem)
    conditions: dict = {}
    if findings:
        files = TreeFiles(root)
        conditions = import_conditions({f.path for f in findings}, files, files.read)
    return res.apply_dlopen(findings, add=add, conditions=conditions, include_conditional=include_conditional)


def add_wheel_loads(res: Resolution, ws, *, add: bool = True, include_conditional: bool = False) -> list:
    """:func:`add_runtime_loads` for a wheel's own sources (``ws``: a
    :class:`rundeps.wheel.WheelScan`)."""
    from .runtime import import_conditions

    findings = ws.dlopen()
    sources = dict(ws.py_sources)
    conditions = import_conditions({f.path for f in findings}, set(sources), sources.get) if findings else {}
    return res.apply_dlopen(findings, add=add, conditions=conditions, include_conditional=include_conditional)


def check_wheel(
    path: str,
    root: str = "/",
    sources: Optional[Sources] = None,
    arch: Optional[str] = None,
    explicit_root: bool = False,
    on_warning: Optional[Warn] = None,
    on_problem: Optional[Callable[[str, str], None]] = None,
    universe: Optional[Universe] = None,
    dlopen: bool = True,
    include_conditional: bool = False,
    symbols: bool = True,
    musl_version: Optional[str] = None,
    gcompat_file: Optional[str] = None,
) -> WheelCheck:
    """Read a wheel straight from its zip and resolve what it needs
    (``symbols=True``: its members' ``SymbolFacts`` are read too,
    ``check.wheel.items[i].symbols``).

    The wheel's own files are in-tree (``<pkg>.libs/`` through ``$ORIGIN``);
    the rest resolves against ``universe`` (or the sources), as ``scan`` does.
    Without any database or index, names outside the wheel stay unresolved.
    A pure wheel is checked too: its Python code's run-time loads
    (:func:`add_wheel_loads`; ``dlopen``: add their packages, else only
    report them) are what it needs.
    """
    from .resolve import WheelFS
    from .inputs.wheel import scan_wheel

    warn = on_warning or (lambda msg: None)
    sources = sources or Sources()
    ws = scan_wheel(path, on_problem=on_problem, symbols=symbols)
    objects: dict = {}
    for item in ws.items:
        key, n = item.path, 1
        while key in objects:  # a duplicate member name: every copy counts
            n += 1
            key = f"{item.path} (copy {n})"
        objects[key] = item.info
    elf_arch, _ = majority_arch(objects.values())
    target = target_arch(arch, root, explicit_root)
    pure = ws.libc == "pure" or not objects
    no_sources = False
    if universe is None:
        try:
            universe = load_universe(root, sources, target, warn, explicit_root=explicit_root)
        except SourceError:
            if sources.names_index() or sources.db:
                raise
            universe, no_sources = Universe(), True
    elif not universe:
        no_sources = True
    tree = TreeFS(root) if explicit_root else None
    fs = WheelFS(ws, tree)
    resolver = Resolver(universe, fs, arch=elf_arch or target, on_warning=warn)
    resolver.python_tree = True  # the members install into a site-packages
    res = resolver.resolve(objects)
    binding = None
    if symbols:
        present = BASE_IMAGE_SONAMES if no_sources else {}
        binding = bind_wheel(res, resolver, ws, tree, musl_version=musl_version, alpine=sources.alpine,
                             on_warning=warn, present=present, gcompat_file=gcompat_file)
    lost = add_wheel_loads(res, ws, add=dlopen, include_conditional=include_conditional)
    from .distributions import wheel_distributions

    res.distributions = wheel_distributions(ws, list(objects))  # the wheel owns all its files
    wheel_arch = ws.arch or elf_arch
    problems = []
    if not pure and wheel_arch and target and wheel_arch != target:
        problems.append(f"built for {wheel_arch}, the target is {target}")
    if binding is not None:
        unresolved = res.unresolved
        # files whose only fault is a library "not found" below names are not repeated
        other = {p: f.reason for p, f in res.faults.items()
                 if not (f.kind == MISSING_LIBRARY and not f.inherited
                         and all(p in unresolved.get(lib, ()) for lib in f.names))}
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
    # Without any package source, the base image's own libraries are still known.
    base = {so: BASE_IMAGE_SONAMES[so] for so in res.unresolved if no_sources and so in BASE_IMAGE_SONAMES}
    missing = [so for so in res.unresolved if so not in base]
    if missing:
        problems.append("not found: " + ", ".join(missing))
    if problems:
        check = WheelCheck(ws, res, target, "; ".join(problems), False, no_sources)
        check.base_image = base
        check.unresolved_loads = lost
        return check
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
    check = WheelCheck(ws, res, target, glibc_note + verdict, True, no_sources)
    check.base_image = base
    check.unresolved_loads = lost
    return check


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
    symbols = getattr(fs, "symbols", None)
    if symbols is None or getattr(ws, "symbols", None) is None:
        return None  # the members' symbols were not read: nothing to bind
    interp = wheel_interpreter(ws, tree)
    interpreters = {p: interp for p, info in res.objects.items() if info.interp is None}
    gcompat = None
    if gcompat_file is not None:
        from .gcompat import Gcompat

        gcompat = Gcompat.from_file(gcompat_file)
    elif tree is not None:
        from .gcompat import find_gcompat

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

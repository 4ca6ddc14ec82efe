"""The library's public face: check a tree, an image or a wheel, get a value.

The CLI is a thin layer over these functions::

    from rundeps.api import Sources, check_tree
    res = check_tree(["/usr/local"], root="/", sources=Sources())
    print([p.name for p in res.packages])
    print({path: fault.kind for path, fault in res.faults.items()})

New code makes one request per target (:class:`TreeRequest`,
:class:`ImageRequest`, :class:`WheelRequest`) and passes it to
:func:`check` with one :class:`Diagnostics`; :func:`check_tree`,
:func:`check_image` and :func:`check_wheel` take the keyword arguments they
always took and build the request. Each stage is in :mod:`rundeps.pipeline`
(and its packages) and returns a value; a
:class:`~rundeps.resolve.Resolution` is never changed after it is made
(the ``add_*`` helpers return a new one).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

from . import pipeline
from .apk.model import Universe
from .apk.sources import (INSTALLED_DB, USR_INSTALLED_DB, IndexRequest, Sources, index_cache, index_locations, installed_database,
                          load_database, load_universe, open_apk_cached, open_indexes, trusted_keys)
from .bind import Binding, BindSettings, MuslChoice
from .diagnostics import SILENT, Diagnostics
from .pipeline import (BASE_IMAGE_SONAMES, DEFAULT_EXCLUDES, CheckOptions, ImageRequest, ProgramCheck, TreeRequest,
                       WheelCheck, WheelRequest, bind_symbols, bind_wheel, check_arch_name, read_arch,
                       split_default_excludes, system_libraries, target_arch, tree_symbols, wheel_interpreter)
from .platform import KNOWN_ARCHES, host_arch
from .report.json import SCHEMA_VERSION, json_schema
from .resolve import Resolution, Resolver, Search, SearchSettings

__all__ = ["DEFAULT_EXCLUDES", "Sources", "CheckOptions", "Diagnostics", "TreeRequest", "ImageRequest",
           "WheelRequest", "WheelCheck", "ProgramCheck", "Resolution", "Search", "Resolver", "SearchSettings",
           "Binding", "BindSettings", "MuslChoice", "IndexRequest", "check", "check_tree", "check_image", "check_wheel",
           "load_database", "load_universe", "open_indexes", "add_distributions", "add_installed_size",
           "add_runtime_loads", "add_wheel_loads", "bind_symbols", "bind_wheel", "index_locations", "index_cache",
           "trusted_keys", "installed_database", "open_apk_cached", "target_arch", "read_arch", "check_arch_name",
           "split_default_excludes", "system_libraries", "tree_symbols", "wheel_interpreter", "BASE_IMAGE_SONAMES",
           "KNOWN_ARCHES", "INSTALLED_DB", "USR_INSTALLED_DB", "host_arch", "SCHEMA_VERSION", "json_schema"]

Request = Union[TreeRequest, ImageRequest, WheelRequest]


def check(request: Request, diagnostics: Diagnostics = SILENT) -> Union[Resolution, WheelCheck]:
    """Run the check a request asks for: a :class:`TreeRequest` or an
    :class:`ImageRequest` gives a :class:`~rundeps.resolve.Resolution`, a
    :class:`WheelRequest` a :class:`WheelCheck`."""
    if isinstance(request, TreeRequest):
        return pipeline.check_tree(request, diagnostics)
    if isinstance(request, ImageRequest):
        return pipeline.check_image(request, diagnostics)
    if isinstance(request, WheelRequest):
        return pipeline.check_wheel(request, diagnostics)
    raise TypeError(f"not a request: {request!r}")


Warn = Callable[[str], None]


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
    python_tree: Optional[bool] = None,
    *,
    options: Optional[CheckOptions] = None,
    diagnostics: Optional[Diagnostics] = None,
) -> Resolution:
    """Scan ``paths`` (in-root paths) of ``root``, resolve them to packages
    and judge every load as musl would (:func:`rundeps.pipeline.check_tree`).

    ``options``/``diagnostics`` when given; otherwise built from the keyword
    arguments: ``library_path`` (the ``LD_LIBRARY_PATH`` programs run with),
    ``main_program`` (what loads the tree's modules at run time; default
    the root's ``python3``), ``default_excludes`` (leave out
    :data:`DEFAULT_EXCLUDES`, listed in ``res.left_out``), ``symbols`` (bind
    every load, on by default as ``scan``), ``musl_version`` (a shipped
    export list instead of the target's musl), ``jobs`` (> 1: two processes
    read symbol tables; the same result), ``python_tree`` (which folders
    are Python import roots besides ``site-packages`` and ``lib/pythonX.Y``:
    None, those holding ``*.dist-info`` folders or extension modules; True,
    every path; False, none); ``on_error(path, reason)``,
    ``on_warning(msg)``, ``on_info(msg)`` and ``progress(n)`` hear what is
    not the result.
    """
    if options is None:
        options = CheckOptions(exclude=tuple(exclude), default_excludes=default_excludes, arch=arch,
                               explicit_root=explicit_root, library_path=library_path, main_program=main_program,
                               symbols=symbols, musl_version=musl_version, jobs=jobs, python_tree=python_tree)
    if diagnostics is None:
        diagnostics = Diagnostics(warning=on_warning, info=on_info, file_error=on_error, progress=progress)
    return pipeline.check_tree(TreeRequest(tuple(paths), root, sources or Sources(), options), diagnostics)


def check_image(
    image,
    paths: Sequence[str] = ("/usr/local",),
    sources: Optional[Sources] = None,
    *,
    platform: Optional[str] = None,
    options: Optional[CheckOptions] = None,
    diagnostics: Optional[Diagnostics] = None,
) -> Resolution:
    """:func:`check_tree` for a saved image (``image``: a ``docker save``
    archive, an OCI layout folder or tar, a flat root-file-system tar, or an
    open :class:`rundeps.inputs.image.ImageTree`), read in memory with
    nothing extracted (:func:`rundeps.pipeline.check_image`).
    ``res.entry_program`` says whether the program the image runs loads;
    an image that cannot be read raises :class:`rundeps.inputs.image.ImageError`."""
    request = ImageRequest(image, tuple(paths), sources or Sources(), options or CheckOptions(), platform)
    return pipeline.check_image(request, diagnostics or SILENT)


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
    *,
    options: Optional[CheckOptions] = None,
    diagnostics: Optional[Diagnostics] = None,
) -> WheelCheck:
    """Read a wheel straight from its zip and say what it needs on Alpine
    (:func:`rundeps.pipeline.check_wheel`); ``dlopen``: add the packages of
    the libraries its Python code loads (else only report them);
    ``on_problem(member, reason)`` for a member that cannot be read."""
    if options is None:
        options = CheckOptions(arch=arch, explicit_root=explicit_root, symbols=symbols, musl_version=musl_version,
                               add_runtime_loads=dlopen, conditional_loads=include_conditional,
                               gcompat_file=gcompat_file)
    if diagnostics is None:
        diagnostics = Diagnostics(warning=on_warning, file_error=on_problem)
    return pipeline.check_wheel(WheelRequest(path, root, sources or Sources(), options, universe), diagnostics)


def add_distributions(res: Resolution, root: str = "/") -> Resolution:
    """``res`` with :attr:`~rundeps.resolve.Resolution.distributions`: the pip
    distributions that own its scanned files, the libraries they load and
    the Python files with run-time loads (RECORD, installed-files.txt, eggs)."""
    return res.with_details(distributions=pipeline.distributions_of(res, root))


def add_installed_size(res: Resolution, root: str = "/", build_deps: Optional[str] = None,
                       diagnostics: Diagnostics = SILENT) -> Resolution:
    """``res`` with :attr:`~rundeps.resolve.Resolution.installed_size`: the
    installed size of the run-time set, what it adds to the root and what
    deleting the build virtual package (``.build-deps`` or ``build_deps``)
    frees (a :class:`rundeps.apk.sizes.SizeReport`)."""
    from .apk.sizes import installed_sizes

    return res.with_details(installed_size=installed_sizes(res, root, build_deps, diagnostics))


def add_runtime_loads(res: Resolution, paths: Sequence[str], root: str = "/", *, add: bool = True,
                      include_conditional: bool = False, diagnostics: Diagnostics = SILENT) -> Resolution:
    """``res`` with the run-time loads of the ``.py`` files under in-root
    ``paths`` (``ctypes``/``cffi``, :mod:`rundeps.loads.dlopen`): their
    packages join the set with ``add`` (those of submodules the top-level
    import does not reach only with ``include_conditional``); the counted
    loads nothing provides are in ``dlopen_unresolved``."""
    return res.with_loads(pipeline.runtime_loads_of(res, paths, root, add=add,
                                                    include_conditional=include_conditional, diag=diagnostics))


def add_wheel_loads(res: Resolution, ws, *, add: bool = True, include_conditional: bool = False) -> Resolution:
    """:func:`add_runtime_loads` for a wheel's own sources (``ws``: a
    :class:`rundeps.inputs.wheel.WheelScan`)."""
    return res.with_loads(pipeline.wheel_loads(res, ws, add=add, include_conditional=include_conditional))

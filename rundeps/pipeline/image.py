"""A saved image's check: read the image in memory (or its cached reading),
walk the paths inside it, the shared stages, and the verdict on the program
its config runs (:class:`ProgramCheck`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from ..bind import MuslChoice
from ..diagnostics import SILENT, Diagnostics
from ..errors import UsageError
from ..resolve import Resolution, Resolver, SearchSettings
from .options import ImageRequest, check_arch_name
from .stages import Scanned, bind_symbols, check_scanned, file_cache

LIB_DIRS = ("/lib", "/usr/lib", "/usr/local/lib")
"""Folders whose ELF facts (without symbols) are read in the pass that opens
the image, besides the scanned paths (with symbols)."""


@dataclass(frozen=True)
class ProgramCheck:
    """Whether the program an image runs would load: ``program`` the
    :class:`rundeps.inputs.imagescan.EntryProgram`; ``fault`` a
    :class:`rundeps.verdict.Fault` when it would not load, ``unresolved``
    the sonames no package or file gives it, ``unchecked`` True when it
    cannot be checked here (symbols not bound, no musl to bind against)."""

    program: Any
    fault: Any = None
    unresolved: Tuple[str, ...] = ()
    unchecked: bool = False

    @property
    def loads(self) -> bool:
        """True when the program is found and would load."""
        return self.program.path is not None and self.fault is None and not self.unresolved


def check_image(request: ImageRequest, diag: Diagnostics = SILENT) -> Resolution:
    """A tree check of a saved image (the request's ``image``: its path, or
    an open :class:`rundeps.inputs.image.ImageTree`), read in memory with
    nothing extracted: the image is the target root (its apk database,
    repositories, keys and ``ld-musl`` are used), its config's ``Env``
    gives ``LD_LIBRARY_PATH`` unless ``options.library_path`` does, and
    ``res.entry_program`` says whether the program its ``Entrypoint``/``Cmd``
    runs loads. With the cache, a repeat run over an unchanged image file
    (its :func:`rundeps.inputs.image.image_stamp`) reads no layer for the
    scanned files: the merged tree and their facts come from the file cache."""
    from ..inputs.image import ImageError, open_image
    from ..inputs.imagescan import Prefetch

    image, paths, options = request.image, tuple(request.paths), request.options
    check_arch_name(options.arch)
    if not isinstance(image, (str, bytes, os.PathLike)):
        return _check_open_image(image, request, diag)
    prefetch = Prefetch(paths, options.symbols, info_dirs=LIB_DIRS, progress=diag.progress)
    cache = file_cache(request.sources, diag)
    stamp, scope, snapshot = _cached_image(cache, image, prefetch,
                                           (request.platform, paths, options.symbols, LIB_DIRS))
    tree: Optional[Any] = None
    try:
        tree = open_image(image, request.platform, visit=prefetch, snapshot=snapshot)
    except ImageError:
        if snapshot is None:
            raise
        prefetch = Prefetch(paths, options.symbols, info_dirs=LIB_DIRS, progress=diag.progress)
        snapshot = None
    if tree is None:  # a cached reading that does not fit: read the image
        tree = open_image(image, request.platform, visit=prefetch)
    with tree:
        storing = cache is not None and snapshot is None and stamp is not None
        if storing:
            tree.record_reads()
        # the walk reads next to nothing now: its count would only run the bar backwards
        res = _check_open_image(tree, request, diag.quiet(), prefetch)
        if storing and _image_stamp(image) == stamp:
            cache.store_image(stamp, scope, (tree.snapshot(), prefetch.dump()))
        return res


def _image_stamp(image):
    from ..inputs.image import image_stamp

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


def _check_open_image(tree, request: ImageRequest, diag: Diagnostics, prefetch=None) -> Resolution:
    from ..inputs.imagescan import image_env, scan_image
    from ..resolve import ImageFS

    options = request.options
    paths = tuple(request.paths)
    for p in paths:
        if tree.resolve(p, follow_last=False) is None:
            raise UsageError(f"{p} does not exist inside the image {tree.name}")
    if options.library_path is None:
        options = options.replace(library_path=image_env(tree.config).get("LD_LIBRARY_PATH"))
    options = options.replace(explicit_root=True)
    result = scan_image(tree, paths, exclude=options.exclude, diag=diag, symbols=options.symbols,
                        prefetched=prefetch)
    scanned = Scanned(result, tree, paths,
                      lambda objects: ImageFS(tree, known=objects, on_error=diag.file_error, symbols=options.symbols,
                                              prefetched=prefetch))
    res, resolver = check_scanned(scanned, request.sources, options, diag)
    return res.with_details(entry_program=judge_entry_program(tree, res, resolver, options.symbols,
                                                              options.musl_version))


def judge_entry_program(tree, res: Resolution, resolver: Resolver, symbols: bool,
                        musl_version: Optional[str]) -> Optional[ProgramCheck]:
    """The :class:`ProgramCheck` of the image's ``Entrypoint``/``Cmd``: the
    verdict of the scan when the program was scanned, else its own load
    resolved and bound in the same image."""
    from ..inputs.imagescan import entry_program

    prog = entry_program(tree)
    if prog is None or prog.path is None:
        return None if prog is None else ProgramCheck(prog)
    path = prog.path
    if path in res.objects and path in res.scanned:
        unresolved = tuple(sorted(so for so, files in res.unresolved.items() if path in files))
        unchecked = res.binding is None or path in res.binding.unchecked
        return ProgramCheck(prog, res.faults.get(path), unresolved, unchecked)
    info = resolver.fs.elf(path)
    if info is None:
        return ProgramCheck(prog, unchecked=True)
    # the program's own process: the image's LD_LIBRARY_PATH and main program, nothing of the scan's
    settings = SearchSettings(arch=res.arch, library_path=resolver.settings.library_path,
                              main_program=resolver.settings.main_program)
    own = Resolver(resolver.universe, resolver.fs, settings)
    one = own.resolve({path: info})
    binding = bind_symbols(one, own, tree, MuslChoice(musl_version, None, True)) if symbols else None
    judged = Resolution.assemble(one, binding)
    unchecked = binding is None or path in binding.unchecked
    return ProgramCheck(prog, judged.faults.get(path), tuple(sorted(one.unresolved)), unchecked)

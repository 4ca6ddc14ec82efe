"""A root folder's check: refuse what cannot be checked, walk the paths,
then the shared stages (:func:`rundeps.pipeline.stages.check_scanned`)."""

from __future__ import annotations

import os

from ..diagnostics import SILENT, Diagnostics
from ..errors import UsageError
from ..inputs.walk import scan
from ..resolve import Resolution, TreeFS
from ..rootfs import to_host
from .options import TreeRequest, check_arch_name
from .stages import Scanned, check_scanned, file_cache


def check_tree(request: TreeRequest, diag: Diagnostics = SILENT) -> Resolution:
    """Scan the request's in-root paths of its root, resolve them to packages
    and judge every load as musl would (see :class:`~rundeps.pipeline.options.CheckOptions`).

    ``res.faults`` names the files that would not load, ``res.binding``
    holds the details, ``res.left_out`` what the default excludes left out.
    """
    paths, root, sources, options = tuple(request.paths), request.root, request.sources, request.options
    check_inputs(request)
    cache = file_cache(sources, diag)  # the walk's, and the verdicts
    result = scan(paths, root=root, exclude=options.exclude, diag=diag, cache=cache, symbols=options.symbols,
                  jobs=options.jobs)
    scanned = Scanned(result, root, paths, lambda objects: TreeFS(root, known=objects, on_error=diag.file_error))
    res, _resolver = check_scanned(scanned, sources, options, diag, cache)
    return res


def check_inputs(request: TreeRequest) -> None:
    """Refuse what cannot be checked, before any work."""
    root = request.root
    check_arch_name(request.options.arch)
    if not os.path.isdir(root):
        raise UsageError(f"root {root} is not a folder")
    for p in request.paths:
        if not os.path.lexists(to_host(root, p)):
            raise UsageError(f"{p} does not exist" + (f" inside {root}" if root != "/" else ""))

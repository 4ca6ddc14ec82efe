"""What a check is asked to do, as values: :class:`CheckOptions` (how to
check) and one request per target (:class:`TreeRequest`,
:class:`ImageRequest`, :class:`WheelRequest`), made once (by the CLI from
its options, by :mod:`rundeps.api` from its keywords) and passed whole."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

from ..apk.model import Universe
from ..apk.sources import Sources
from ..errors import UsageError
from ..platform import KNOWN_ARCHES, host_arch

DEFAULT_EXCLUDES: Tuple[str, ...] = ("*tkinter*",)
"""File-name globs (matched against a file's name, as ``find -name`` does)
that a tree check leaves out unless ``default_excludes=False``
(``--no-default-excludes``): what the official ``python:3.x-alpine`` images
knowingly leave out of the run-time packages they compute.  Their Dockerfile
(docker-library/python, ``Dockerfile-linux.template``) runs ``scanelf`` on
``find /usr/local -type f -executable -not ( -name '*tkinter*' )``, so
``lib-dynload/_tkinter.*.so`` (which needs ``libtcl8.6.so`` and
``libtk8.6.so``) ships without ``tcl`` and ``tk``."""

@dataclass(frozen=True)
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

    exclude: Tuple[str, ...] = ()
    default_excludes: bool = True
    arch: Optional[str] = None
    explicit_root: bool = False
    library_path: Optional[str] = None
    main_program: Optional[str] = None
    symbols: bool = True
    musl_version: Optional[str] = None
    jobs: int = 1
    runtime_loads: bool = False
    add_runtime_loads: bool = True
    conditional_loads: bool = False
    distributions: bool = False
    installed_size: bool = False
    build_deps: Optional[str] = None
    gcompat_file: Optional[str] = None
    python_tree: Optional[bool] = None

    def replace(self, **changes: Any) -> "CheckOptions":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TreeRequest:
    """Check the in-root ``paths`` of the folder ``root`` (``/``: this
    system), with packages from ``sources``."""

    paths: Tuple[str, ...] = ("/usr/local",)
    root: str = "/"
    sources: Sources = field(default_factory=Sources)
    options: CheckOptions = field(default_factory=CheckOptions)


@dataclass(frozen=True)
class ImageRequest:
    """Check the in-image ``paths`` of a saved ``image`` (its path, or an
    open :class:`rundeps.inputs.image.ImageTree`); ``platform`` chooses the
    image of a multi-platform index (``linux/arm64/v8``)."""

    image: Any
    paths: Tuple[str, ...] = ("/usr/local",)
    sources: Sources = field(default_factory=Sources)
    options: CheckOptions = field(default_factory=CheckOptions)
    platform: Optional[str] = None


@dataclass(frozen=True)
class WheelRequest:
    """Check the wheel file ``path`` for the target ``root`` (``/`` unless
    ``options.explicit_root``); ``universe``: the packages to resolve
    against, when the caller has them already (checking many wheels), else
    they come from ``sources``."""

    path: str
    root: str = "/"
    sources: Sources = field(default_factory=Sources)
    options: CheckOptions = field(default_factory=CheckOptions)
    universe: Optional[Universe] = None


def check_arch_name(arch: Optional[str]) -> Optional[str]:
    """``arch`` when rundeps knows it (:data:`rundeps.platform.KNOWN_ARCHES`), else :class:`UsageError`."""
    if arch is not None and arch not in KNOWN_ARCHES:
        raise UsageError(f"unknown arch {arch!r} (rundeps knows {', '.join(KNOWN_ARCHES)})")
    return arch


def read_arch(root: Any) -> Optional[str]:
    """The root's ``etc/apk/arch`` (see :func:`rundeps.apk.repositories.read_arch`);
    ``root``: a host folder, a root through the root protocol, or None."""
    from ..apk.repositories import read_arch as read

    return read(root)


def target_arch(arch: Optional[str], root: str, explicit_root: bool) -> Optional[str]:
    """The arch to resolve for when no ELF file says: ``--arch``, else the
    root's ``etc/apk/arch`` (with ``--root``), else this machine's."""
    return arch or (read_arch(root) if explicit_root else None) or host_arch()

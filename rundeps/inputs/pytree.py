"""Python import roots, recognised by what a folder holds rather than its name.

An *import root* is a folder Python imports from (a ``sys.path`` entry): a
``site-packages``, but also a folder made by ``pip install --target DIR`` or
wheels unpacked side by side, whose path says nothing.  What the walk
already lists tells it:

* a folder holding a ``NAME.dist-info`` or ``NAME.egg-info`` folder (what
  pip and setuptools write for each installed distribution) is one;
* an extension module (a shared object named with a CPython, abi3 or PyPy
  suffix: ``_x.cpython-312-x86_64-linux-musl.so``, ``_x.abi3.so``) lies in
  one: the folder it is in, or, when that folder is a package (it holds an
  ``__init__`` module), the folder above its outermost package.

The walks (:mod:`.walk`, :mod:`.imagescan`) note the folders with
distribution metadata and the package folders as they list them, and
:func:`import_roots` derives the roots from those and the ELF files found:
no second pass over the tree.
"""

from __future__ import annotations

import posixpath
import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import AbstractSet, FrozenSet, Iterable

__all__ = ["EXTENSION_NAME", "DIST_INFO_SUFFIXES", "PACKAGE_INITS", "is_extension_name", "is_package_init",
           "import_roots", "under_import_root"]

EXTENSION_NAME = re.compile(r"\.(?:cpython-\d+[a-z]*-[^/]*|abi3|pypy[^/]*)\.so$")
"""The suffix of a CPython, abi3 or PyPy extension module's file name."""

DIST_INFO_SUFFIXES = (".dist-info", ".egg-info")
"""The folders pip and setuptools write beside what they install."""

PACKAGE_INITS = ("__init__.py", "__init__.pyc")
"""The files that make a folder a package (besides a compiled ``__init__``
extension module, found among the ELF files)."""


def is_extension_name(path: str) -> bool:
    """Named like an extension module (the interpreter imports it)."""
    return EXTENSION_NAME.search(path) is not None


def is_package_init(name: str) -> bool:
    """``__init__.py``, ``__init__.pyc`` or an ``__init__`` extension module."""
    return name in PACKAGE_INITS or (name.startswith("__init__.") and is_extension_name(name))


def import_roots(info_folders: "Iterable[str]", packages: "AbstractSet[str]",
                 elf_paths: "Iterable[str]") -> "FrozenSet[str]":
    """The import roots (in-root folders) among what a walk found:
    ``info_folders``, the folders holding a ``*.dist-info``/``*.egg-info``;
    ``packages``, the folders holding an ``__init__.py``/``__init__.pyc``;
    ``elf_paths``, the ELF files (an ``__init__`` extension module makes its
    folder a package too). The root folder ``/`` is never one: a module
    lying there says nothing about the whole file system."""
    modules = [p for p in elf_paths if is_extension_name(p)]
    packages = set(packages)
    packages.update(posixpath.dirname(p) for p in modules if posixpath.basename(p).startswith("__init__."))
    roots = set(info_folders)
    for path in modules:
        folder = posixpath.dirname(path)
        while folder in packages and folder != "/":  # out of the packages it is in
            folder = posixpath.dirname(folder)
        roots.add(folder)
    roots.discard("/")
    roots.discard("")
    return frozenset(roots)


def under_import_root(path: str, roots: "AbstractSet[str]") -> bool:
    """True when in-root ``path`` lies inside one of ``roots`` (one set
    lookup per folder above it)."""
    if not roots:
        return False
    folder = posixpath.dirname(path)
    while True:
        if folder in roots:
            return True
        parent = posixpath.dirname(folder)
        if parent == folder:
            return False
        folder = parent

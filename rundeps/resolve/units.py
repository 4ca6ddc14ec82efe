"""What is loaded on its own: the files that get a verdict of their own.

musl judges a load, not a file: a library is relocated inside the load that
opens it, found through the run paths of whatever loaded it, bound in that
load's scope.  So rundeps gives a verdict to each file something opens on
its own, and judges every other file only inside those loads:

* **programs** (``PT_INTERP``): started by the kernel, the head of a process;
* **Python extension modules**: the interpreter imports them with
  ``RTLD_NOW | RTLD_LOCAL``;
* **other shared objects under a Python tree** (``site-packages``,
  ``lib/pythonX.Y``, or an import root recognised by its content: a folder
  holding ``*.dist-info`` folders or extension modules, see
  :mod:`rundeps.inputs.pytree`) outside auditwheel's ``<name>.libs/``
  folders: packages open them by path with ``ctypes`` or ``cffi`` (pyarrow's
  ``libarrow_python.so``), in the interpreter's process;
* **libraries on the loader's path** (the system path and
  ``LD_LIBRARY_PATH``): anything may open them by name;
* **libraries nothing scanned loads** elsewhere (a plug-in folder): they can
  only be opened by path.

Libraries reached only as dependencies -- the vendored ``<name>.libs/``
folders above all -- have no verdict of their own: a problem in one shows in
the verdict of every file whose load reaches it.  A vendored library that
nothing loads is only a note.
"""

from __future__ import annotations

import posixpath
import re
from typing import Final, Literal, Optional, Tuple

from ..inputs.pytree import is_extension_name

__all__ = [
    "PROGRAM",
    "MODULE",
    "PYTHON_LIBRARY",
    "LIBRARY",
    "Role",
    "is_vendored",
    "is_python_module",
    "is_extension_module",
    "python_prefix",
]

Role = Literal["program", "module", "python_library", "library"]
"""How a unit is loaded on its own (the constants below)."""

PROGRAM: Final = "program"
MODULE: Final = "module"
PYTHON_LIBRARY: Final = "python_library"
LIBRARY: Final = "library"

_PYLIB = re.compile(r"^(.*?)/lib(?:64)?/python(\d+\.\d+)t?/")
_PY_FOLDERS = ("/site-packages/", "/dist-packages/", "/lib-dynload/")


def python_prefix(path: str) -> Optional[Tuple[str, str]]:
    """(prefix, X.Y) when ``path`` lies under ``PREFIX/lib/pythonX.Y/``."""
    m = _PYLIB.match(path)
    if m:
        return m.group(1), m.group(2)
    return None


def is_python_module(path: str, info) -> bool:
    """A shared object opened inside a Python process: under
    ``lib/pythonX.Y/``, ``site-packages``/``dist-packages``, or named like an
    extension module (the interpreter imports it, or a package opens it with
    ctypes or cffi)."""
    if info.interp:
        return False
    if python_prefix(path) is not None:
        return True
    if is_extension_name(path):
        return True
    return any(f in path for f in _PY_FOLDERS)


def is_extension_module(path: str) -> bool:
    """Named like a CPython or PyPy extension module, or in ``lib-dynload``."""
    return is_extension_name(path) or "/lib-dynload/" in path


def is_vendored(path: str) -> bool:
    """In a folder of libraries a wheel vendors for its modules: auditwheel's
    ``<name>.libs/`` (and the ``<pkg>/.libs/`` of older auditwheel)."""
    if ".libs/" not in path:
        return False
    return any(p.endswith(".libs") for p in path.split("/")[:-1])


def role(path: str, info, loader_dirs, python_tree: bool = False) -> Optional[Role]:
    """The role of a scanned file that is certainly loaded on its own, or
    None when that depends on whether something else loads it
    (``loader_dirs``: the folders the loader searches by name;
    ``python_tree``: ``path`` lies in a Python import root whatever its
    name says -- a wheel's members once installed, a ``pip install
    --target`` folder recognised by its content -- and is treated as under
    a site-packages)."""
    if info.interp:
        return PROGRAM
    if is_vendored(path):
        return None
    if python_tree or is_python_module(path, info):
        return MODULE if is_extension_module(path) else PYTHON_LIBRARY
    if posixpath.dirname(path) in loader_dirs:
        return LIBRARY
    return None

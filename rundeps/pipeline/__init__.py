"""Every stage of a check, in order, for the CLI and library callers alike::

    walk (inputs/) -> ELF facts (elf/) -> search (resolve/) -> binding (bind/)
      -> run-time loads (loads/) -> packages and verdicts (resolve.Resolution)
      -> details (distributions, apk sizes) -> report/

One module per target: :mod:`.tree` (a root folder), :mod:`.image` (a saved
image), :mod:`.wheel` (a wheel file); :mod:`.stages` holds the stages a
folder and an image share, :mod:`.options` the request values each target
takes. :mod:`rundeps.api` is the public facade over them.
"""

from __future__ import annotations

from ..apk.baseimage import BASE_IMAGE_SONAMES
from ..diagnostics import Diagnostics
from .image import ProgramCheck, check_image, judge_entry_program
from .options import (DEFAULT_EXCLUDES, CheckOptions, ImageRequest, TreeRequest, WheelRequest, check_arch_name,
                      read_arch, target_arch)
from .stages import (bind_symbols, distributions_of, paths_without_elf, runtime_loads_of, split_default_excludes,
                     system_libraries, tree_bind_settings, tree_symbols)
from .tree import check_tree
from .wheel import WheelCheck, bind_wheel, check_wheel, wheel_bind_settings, wheel_interpreter, wheel_loads

__all__ = ["BASE_IMAGE_SONAMES", "DEFAULT_EXCLUDES", "CheckOptions", "Diagnostics", "TreeRequest", "ImageRequest",
           "WheelRequest", "ProgramCheck", "WheelCheck", "check_tree", "check_image", "check_wheel",
           "judge_entry_program", "check_arch_name", "read_arch", "target_arch", "bind_symbols", "distributions_of",
           "paths_without_elf", "runtime_loads_of", "split_default_excludes", "system_libraries",
           "tree_bind_settings", "tree_symbols", "bind_wheel", "wheel_bind_settings", "wheel_interpreter",
           "wheel_loads"]

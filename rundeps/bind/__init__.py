"""The binding stage: each unit's load judged as musl's ``ldso/dynlink.c``
judges it (:mod:`.binder`), against the musl of the target (:mod:`.musl`,
:mod:`.exports`), with what gcompat changes (:mod:`.gcompat`) and hints for
what is missing (:mod:`.hints`)."""

from .binder import LFS64_BASE_NAMES, Binding, BindSettings, bind, lfs64_base
from .musl import MuslChoice, MuslModel, musl_model, shipped_musl

__all__ = ["Binding", "BindSettings", "MuslChoice", "MuslModel", "LFS64_BASE_NAMES", "bind", "lfs64_base", "musl_model", "shipped_musl"]

"""Run-time loads: the libraries Python code opens with ``ctypes``/``cffi``
(:mod:`.dlopen`), when they are opened (:mod:`.conditions`: on the package's
import, or only when a submodule is imported) and which packages serve them
(:mod:`.providers`)."""

"""Run-time loads: the libraries Python code opens with ``ctypes``/``cffi``
(:mod:`.dlopen`, over the files :mod:`.sourcefiles` gathers; the sonames
that serve a name: :mod:`.sonames`), when they are opened (:mod:`.conditions`: on the package's
import, or only when a submodule is imported) and which packages serve them
(:mod:`.providers`)."""

"""The project's scripts that tests build fixtures with, loaded once.

``demo`` is ``scripts/make_demo_root.py`` (gcc-built ELF objects and demo
roots), ``ib`` is ``scripts/make_demo_image.py`` (saved images of
folders), ``fz`` is ``scripts/fuzz_elf.py`` (``craft_elf``: ELF files written
byte by byte, no compiler needed).
"""

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    """Import ``scripts/<name>.py`` as module ``name`` (once per run)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


demo = load_script("make_demo_root")
fz = load_script("fuzz_elf")
ib = load_script("make_demo_image")

"""The layout holds: imports point one way along the pipeline's layers, no
import cycle, no private name taken from another module, no docstring naming
what does not exist (``scripts/import_graph.py``), no function longer than
80 lines, few functions with more than 7 parameters and few modules over
700 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
MAX_LINES = 80
MAX_PARAMS = 7
MAX_MODULE_LINES = 700

WIDE_FUNCTIONS = {"rundeps/api.py:check_tree", "rundeps/api.py:check_wheel"}
"""The functions allowed more than :data:`MAX_PARAMS` parameters: the
documented keyword arguments of the library's first entry points, kept as
they always were (new code passes one request to ``rundeps.api.check``)."""


def test_import_graph_has_no_cycle_private_name_or_upward_import():
    r = subprocess.run([sys.executable, str(PROJECT / "scripts" / "import_graph.py")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 cycles, 0 private-name imports, 0 upward imports, 0 stale references" in r.stdout


def test_the_graph_script_finds_what_it_looks_for(tmp_path):
    """The check can fail: a package with a cycle, a private import and an upward import."""
    pkg = tmp_path / "rundeps"
    (pkg / "elf").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "elf" / "__init__.py").write_text("from ..pipeline import run\n")
    (pkg / "pipeline.py").write_text('from .elf import _secret\n"""See :mod:`rundeps.gone` and rundeps.elf.nothing."""\n')
    r = subprocess.run([sys.executable, str(PROJECT / "scripts" / "import_graph.py"), str(pkg)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "cycle: rundeps.elf, rundeps.pipeline" in r.stdout
    assert "private name: rundeps.pipeline:1: from rundeps.elf import _secret" in r.stdout
    assert "upward: rundeps.elf:1 imports rundeps.pipeline" in r.stdout
    assert "stale reference: rundeps.pipeline:2: rundeps.gone" in r.stdout
    assert "stale reference: rundeps.pipeline:2: rundeps.elf.nothing" in r.stdout


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in sorted((PROJECT / "rundeps").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    long.append(f"{path.relative_to(PROJECT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def _parameters(node) -> int:
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    return len(names) + (a.vararg is not None) + (a.kwarg is not None)


def test_few_functions_take_more_than_seven_parameters():
    """Values travel as values (a request, settings, options), not as long
    parameter lists; a dataclass's generated constructor is a value's, not
    counted."""
    wide = set()
    for path in sorted((PROJECT / "rundeps").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _parameters(node) > MAX_PARAMS:
                wide.add(f"{path.relative_to(PROJECT).as_posix()}:{node.name}")
    assert wide <= WIDE_FUNCTIONS, sorted(wide - WIDE_FUNCTIONS)


def test_few_modules_are_longer_than_700_lines():
    long = sorted(f"{p.relative_to(PROJECT)} ({n} lines)" for p in (PROJECT / "rundeps").rglob("*.py")
                  if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES)
    assert len(long) <= 2, long

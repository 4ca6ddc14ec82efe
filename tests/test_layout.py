"""The layout holds: imports point one way along the pipeline's layers, no
import cycle, no private name taken from another module
(``scripts/import_graph.py``), and no function longer than 80 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
MAX_LINES = 80


def test_import_graph_has_no_cycle_private_name_or_upward_import():
    r = subprocess.run([sys.executable, str(PROJECT / "scripts" / "import_graph.py")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 cycles, 0 private-name imports, 0 upward imports" in r.stdout


def test_the_graph_script_finds_what_it_looks_for(tmp_path):
    """The check can fail: a package with a cycle, a private import and an upward import."""
    pkg = tmp_path / "rundeps"
    (pkg / "elf").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "elf" / "__init__.py").write_text("from ..pipeline import run\n")
    (pkg / "pipeline.py").write_text("from .elf import _secret\n")
    r = subprocess.run([sys.executable, str(PROJECT / "scripts" / "import_graph.py"), str(pkg)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "cycle: rundeps.elf, rundeps.pipeline" in r.stdout
    assert "private name: rundeps.pipeline:1: from rundeps.elf import _secret" in r.stdout
    assert "upward: rundeps.elf:1 imports rundeps.pipeline" in r.stdout


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in sorted((PROJECT / "rundeps").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    long.append(f"{path.relative_to(PROJECT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long

"""The pyelftools reader: independent of the fast readers, and selected by
RUNDEPS_ELF_READER=pyelftools for every command."""

from __future__ import annotations

import ast
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rundeps.elf.dynamic as dynamic
import rundeps.elf.header as header
import rundeps.elf.symbols as symbols
import rundeps.elf.types as types
from rundeps.elf import read_elf_path, read_symbols
from rundeps.elf.pyelftools import read_elf_pyelftools, read_symbols_pyelftools

from elfbuild import build_lib, requires_gcc

PROJECT = Path(__file__).resolve().parent.parent


def test_pyelftools_reader_imports_nothing_from_the_fast_readers():
    tree = ast.parse((PROJECT / "rundeps" / "elf" / "pyelftools.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            imported |= {(node.module, a.name) for a in node.names}
    assert imported == {("types", "ElfError"), ("types", "ElfInfo"), ("facts", "SymbolFacts"), ("facts", "reloc_facts"),
                        # the JSON descriptor of a dlopen note (not ELF reading)
                        ("notes", "DLOPEN_NOTE_OWNER"), ("notes", "DLOPEN_NOTE_TYPE"),
                        ("notes", "dlopen_note_entries")}


@requires_gcc
def test_pyelftools_reader_works_with_the_fast_readers_broken(tmp_path, monkeypatch):
    lib = build_lib(tmp_path, "libx.so.1", soname="libx.so.1", needed_libs=("liby.so.2",), runpath="$ORIGIN")
    want_info = read_elf_path(lib)
    want_syms = read_symbols(lib)

    def broken(*a, **k):
        raise AssertionError("the fast reader was called")

    for mod, names in ((header, ("parse_header", "formats", "guarded", "program_headers", "parse_as_elf_error",
                                 "word_array", "read_exact")),
                       (types, ("machine_arch", "is_elf_magic")),
                       (dynamic, ("_parse", "file_pread", "parse_fd", "read_elf_file", "_decode", "_split_path",
                                  "_etype")),
                       (symbols, ("_parse", "_wrap", "read_symbols_pread", "_nonzero"))):
        for n in names:
            monkeypatch.setattr(mod, n, broken)
    with open(lib, "rb") as f:
        assert read_elf_pyelftools(f) == want_info
        assert read_symbols_pyelftools(f) == want_syms


SPY = r"""
import sys
import rundeps.elf.pyelftools as p
calls = []
for name in ("read_elf_pyelftools", "read_symbols_pyelftools"):
    def spy(f, _orig=getattr(p, name), _name=name):
        calls.append(_name)
        return _orig(f)
    setattr(p, name, spy)
from rundeps.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="rundeps", standalone_mode=False)
except SystemExit:
    pass
sys.stdout.flush()
print("CALLS", calls.count("read_elf_pyelftools"), calls.count("read_symbols_pyelftools"),
      "elftools.elf.elffile" in sys.modules, file=sys.stderr)
"""


def run_spy(args, reader, cache):
    env = dict(os.environ, RUNDEPS_CACHE_DIR=str(cache))
    env.pop("RUNDEPS_ELF_READER", None)
    if reader:
        env["RUNDEPS_ELF_READER"] = reader
    env["PYTHONPATH"] = str(PROJECT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", SPY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=120)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("CALLS")][-1]
    _, n_elf, n_syms, imported = line.split()
    return proc.stdout, int(n_elf), imported == "True"


@requires_gcc
def test_scan_uses_the_reader_the_environment_names(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    build_lib(tree, "liba.so.1", soname="liba.so.1", needed_libs=("libc.musl-x86_64.so.1",))
    build_lib(tree, "libb.so.1", soname="libb.so.1", needed_libs=("liba.so.1", "libc.musl-x86_64.so.1"),
              runpath="$ORIGIN")
    args = ["scan", "--format", "json", "--allow-unresolved", str(tree)]
    out_fast, n, imported = run_spy(args, None, tmp_path / "c1")
    assert n == 0 and not imported  # the default never imports pyelftools
    out_slow, n, imported = run_spy(args, "pyelftools", tmp_path / "c2")
    assert n == 2 and imported
    assert out_slow == out_fast
    # The file cache keeps the readers apart: a warm default run after a
    # pyelftools run still does not use pyelftools' entries, and vice versa.
    out_again, n, _ = run_spy(args, "pyelftools", tmp_path / "c1")
    assert n == 2 and out_again == out_fast

"""Every output the README and ``docs/`` show is real, and stays real.

A ``console`` block is either marked ``<!-- real output -->`` on the line
before it, and then every ``$ rundeps …`` command in it is run here against
the demo root (``scripts/make_demo_root.py /tmp/demo-root``) and the demo
images (``scripts/make_demo_image.py /tmp/myapp.tar``, ``--tkinter
/tmp/myapp-tk.tar``) and must print exactly the lines shown (its standard
output, then its standard error; ``$ echo $?`` shows the exit code); or it
is marked ``<!-- recorded output: … -->``, saying what produced it and why
it is not run here (real wheels from PyPI, a long script). The pages also
carry no issue number, commit id or dated log.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from scriptmods import demo, ib

PROJECT = Path(__file__).resolve().parents[1]
PAGES = [PROJECT / "README.md"] + sorted((PROJECT / "docs").glob("*.md"))
REAL = "<!-- real output -->"
RECORDED = "<!-- recorded output:"
DEMO = {"/tmp/demo-root": "root", "/tmp/myapp-tk.tar": "image-tk", "/tmp/myapp.tar": "image"}


def console_blocks(page: Path) -> List[Tuple[str, str, int]]:
    """(marker line, block text, line number) of each ``console`` block."""
    lines = page.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == "```console":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            marker = lines[i - 1].strip() if i else ""
            out.append((marker, "\n".join(lines[i + 1:end]), i + 1))
    return out


def sessions(block: str) -> List[Tuple[str, List[str]]]:
    """(command, the lines shown after it) for each ``$`` line."""
    out: List[Tuple[str, List[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


def test_every_console_block_says_whether_it_is_run():
    unmarked = [f"{p.relative_to(PROJECT)}:{n}" for p in PAGES for marker, _b, n in console_blocks(p)
                if marker != REAL and not marker.startswith(RECORDED)]
    assert not unmarked, f"console blocks without a real/recorded marker: {unmarked}"


def test_the_pages_carry_no_issue_numbers_commit_ids_or_dated_logs():
    bad = []
    for p in PAGES:
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"\bissues? \d+\b|\(issue|\b20\d\d-\d\d-\d\d\b", line, re.I):
                bad.append(f"{p.relative_to(PROJECT)}:{n}: {line.strip()[:80]}")
    assert not bad, bad


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    top = tmp_path_factory.mktemp("docs")
    root = top / "demo-root"
    subprocess.run([sys.executable, str(Path(demo.__file__)), str(root)], check=True, stdout=subprocess.PIPE)
    made = {"root": root}
    for name, extra in (("image", []), ("image-tk", ["--tkinter"])):
        out = top / f"{name}.tar"
        subprocess.run([sys.executable, str(Path(ib.__file__)), *extra, str(out)], check=True,
                       stdout=subprocess.PIPE)
        made[name] = out
    return top, made


def _real_blocks():
    out = []
    for p in PAGES:
        for marker, block, n in console_blocks(p):
            if marker == REAL:
                out.append(pytest.param(block, id=f"{p.relative_to(PROJECT)}:{n}"))
    return out


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the pages show x86_64 output")
@pytest.mark.parametrize("block", _real_blocks())
def test_real_output_is_what_the_page_shows(block, demo_files):
    top, made = demo_files
    env = dict(os.environ)
    for var in ("RUNDEPS_CACHE_DIR", "RUNDEPS_ROOT", "COLUMNS"):
        env.pop(var, None)
    env["XDG_CACHE_HOME"] = str(top / "cache")
    last = None
    for cmd, shown in sessions(block):
        if cmd == "echo $?":
            assert shown == [str(last)], (cmd, shown)
            continue
        argv = shlex.split(cmd)
        assert argv[0] == "rundeps", f"only rundeps commands are run: {cmd}"
        args = []
        for a in argv[1:]:
            for demo_path, key in DEMO.items():
                if a == demo_path:
                    a = str(made[key])
            args.append(a)
        proc = subprocess.run([sys.executable, "-m", "rundeps", *args], capture_output=True, text=True,
                              env=env, cwd=str(top), timeout=300)
        printed = proc.stdout.splitlines() + proc.stderr.splitlines()
        assert printed == shown, f"$ {cmd}\n--- the page shows\n" + "\n".join(shown) + "\n--- it prints\n" + "\n".join(
            printed)
        last = proc.returncode

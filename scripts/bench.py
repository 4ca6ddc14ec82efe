#!/usr/bin/env python3
"""Benchmark rundeps' tree scan against ``scanelf --needed --recursive`` (issue 5).

Trees (built once under ``--work``, reused afterwards):

* A: a site-packages unpacked from musllinux x86_64 cp312 wheels of
  numpy scipy pandas pillow lxml cryptography psycopg2-binary grpcio orjson
  pydantic-core pyarrow greenlet gevent markupsafe pyyaml msgpack zstandard
  ujson regex (about 5,700 files, 540 MB, 310 ELF files);
* B: tree A copied 20 times under different folder names (~115,000 files).

For each tree it first checks that the sonames rundeps reads per file equal
scanelf's, then runs whole processes alternately (scanelf, rundeps cold,
rundeps warm), ``--runs`` times each, and prints medians, ratios to scanelf
and peak RSS (``os.wait4`` rusage of each process).

Targets: cold <= 2 x scanelf (A and B), warm <= 1 x scanelf (A), peak
memory <= 150 MB (B).

The timed rundeps command is a template (``--cmd``) with ``{tree}``,
``{cache}`` (a cache folder), ``{nocache}`` (``--no-cache`` for cold runs,
empty for warm runs), ``{rundeps}`` (the command), ``{python}`` and ``{db}``
placeholders.  The default is the whole command a user runs, resolving
against a small installed database the benchmark writes (musl and the
libraries the wheels do not vendor)::

    {rundeps} scan --db {db} --cache-dir {cache} {nocache} {tree}

``--cmd walk`` times only the library's walk (``rundeps.inputs.walk.scan``).

``--symbols`` (issue 11) adds, on tree A: musl's own loader run once per ELF
file (``/lib/ld-musl-x86_64.so.1 --list FILE``, the ``musl-list`` row),
rundeps with symbols cold and warm (the CLI's ``scan --symbols`` when it has
the flag, else the library's ``walk.scan(symbols=True)``), and the peak
memory of checking the 19 wheels (library ``check_wheel`` with and without
symbols, and the ``rundeps wheel DIR`` command).  Targets: cold <= 0.5 x
musl-list, warm <= 1 x scanelf, wheels <= 100 MB with symbols.  Two more
rows: ``sym-cold-j1`` (the cold run with ``--jobs 1``: one process) and
``start-up`` (``python -c 'import rundeps.cli'``: the floor of any run of
the CLI, nothing scanned).
``--pyelftools-row`` also times the pyelftools symbol reader over tree A.

``--pyz`` builds the zip application (``scripts/build_pyz.py``) into
``--work`` and times ``--help`` alternately: the installed CLI, ``python
rundeps.pyz`` with its compiled modules kept in a cache folder (primed by one
run), the same archive with an unwritable cache folder (every module compiled
each run: the archive without that cache), and ``python -c pass``.  Target:
the pyz <= 1.3 x the installed CLI.

``--table`` prints the table of the README (and nothing else): on tree A
under its ``site-packages`` path and on the same files in a plain folder
(``plain/deps``, hard links), the default scan (symbols bound) ``rundeps
scan --db DB --cache-dir C TREE`` cold (a fresh cache folder each run), with
``--no-cache``, and repeated (the same cache folder), each run paired with a ``scanelf`` run
just before it (the ratio is the median of the pairs' ratios); ``rundeps
wheel DIR`` over the 19 wheels against ``auditwheel show`` of each of them
(installed into the benchmark venv); and ``--help`` of the zip application
against the installed CLI's. Targets: cold <= 4 x scanelf, repeat <= 1 x
scanelf, ``wheel`` peak <= 100 MB, pyz ``--help`` <= 1.3 x installed.

``--venv`` installs this checkout into a clean virtualenv (made under
``--work`` with the dependencies from PyPI; a regular, byte-compiled install)
and times its ``rundeps`` script: the command a user runs in an image, without
this machine's site-packages ``.pth`` start-up hooks.  Without ``--venv``,
``{rundeps}`` is ``python -m rundeps`` on the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent

PACKAGES = (
    "numpy scipy pandas pillow lxml cryptography psycopg2-binary grpcio orjson pydantic-core "
    "pyarrow greenlet gevent markupsafe pyyaml msgpack zstandard ujson regex"
).split()
COPIES = 20

SCAN_SNIPPET = r"""
import sys
from rundeps.inputs.walk import scan
from rundeps.diagnostics import Diagnostics
tree, cache_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
symbols = sys.argv[4:] == ['symbols']
cache = None
if cache_dir != '-':
    from rundeps.inputs.filecache import FileCache
    cache = FileCache.open(cache_dir, Diagnostics(warning=lambda m: print('warning:', m, file=sys.stderr)))
errors = []
res = scan([tree], cache=cache, diag=Diagnostics(file_error=lambda p, r: errors.append((p, r))), symbols=symbols)
if mode == 'dump':
    import json
    json.dump({i.path: list(i.info.needed) for i in res.items}, sys.stdout)
else:
    print(len(res.items), res.files_seen, len(errors))
"""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# -- trees -------------------------------------------------------------------


def build_tree_a(work: Path) -> Path:
    tree = work / "treeA" / "site-packages"
    done = work / "treeA" / ".done"
    if done.exists():
        return tree
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for pkg in PACKAGES:
        norm = pkg.replace("-", "_").lower()
        if any(w.name.lower().startswith(norm + "-") for w in wheels.glob("*.whl")):
            continue
        log(f"downloading {pkg}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.12", "--implementation", "cp",
             "--platform", "musllinux_1_2_x86_64", "--platform", "musllinux_1_1_x86_64",
             "-d", str(wheels), pkg],
            check=True,
        )
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as zf:
            zf.extractall(tree)
    done.touch()
    return tree


def build_tree_b(work: Path, tree_a: Path) -> Path:
    tree = work / "treeB"
    done = work / ".treeB.done"
    if done.exists():
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir()
    for i in range(1, COPIES + 1):
        log(f"copying tree A -> treeB/copy{i:02d}")
        shutil.copytree(tree_a, tree / f"copy{i:02d}", symlinks=True)
    done.touch()
    return tree


def make_venv(work: Path) -> str:
    venv = work / "venv"
    py = venv / "bin" / "python"
    done = venv / ".done-deps"  # the checkout's own dependencies (pyproject), installed once
    if not done.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", str(PROJECT)], check=True, cwd=tempfile.gettempdir())
        done.touch()
    return str(py)


def install_project(python: str) -> str:
    """Install this checkout into the venv (a regular, non-editable install,
    byte-compiled as pip does in an image) and return its ``rundeps`` script."""
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(PROJECT)],
                   check=True, cwd=tempfile.gettempdir())
    return str(Path(python).parent / "rundeps")


# -- running -----------------------------------------------------------------


def run_timed(cmd: str, env=None, ok=(0,)):
    """Run ``cmd`` (split with shlex, no shell) under ``/usr/bin/time``;
    returns (wall seconds, peak RSS in MB).  GNU time forks from a tiny
    process, so the peak is the command's own (a fork of this Python process
    would start with this process's RSS)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        argv = ["/usr/bin/time", "-f", "%M", "-o", tf.name] + shlex.split(cmd)
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        wall = time.perf_counter() - t0
        if p.returncode not in ok:
            raise SystemExit(f"command failed ({p.returncode}): {cmd}\n{p.stderr.decode(errors='replace')}")
        lines = [ln for ln in tf.read().splitlines() if ln.strip()]
    return wall, int(lines[-1]) / 1024.0


def scanelf_needed(tree: Path):
    out = subprocess.run(["scanelf", "--needed", "--nobanner", "--recursive", str(tree)],
                         check=True, stdout=subprocess.PIPE, text=True, errors="surrogateescape").stdout
    got = {}
    for line in out.splitlines():
        _etype, rest = line.split(" ", 1)
        needed, path = rest.split(" ", 1)
        got[path.rstrip()] = [n for n in needed.split(",") if n and n != "-"]
    return got


def check_agreement(python: str, env, tree: Path) -> int:
    ref = scanelf_needed(tree)
    out = subprocess.run([python, "-c", SCAN_SNIPPET, str(tree), "-", "dump"], check=True,
                         stdout=subprocess.PIPE, env=env, text=True).stdout
    mine = json.loads(out)
    if set(ref) != set(mine):
        only_ref = sorted(set(ref) - set(mine))[:5]
        only_mine = sorted(set(mine) - set(ref))[:5]
        raise SystemExit(f"ELF file sets differ: scanelf only {only_ref}, rundeps only {only_mine}")
    bad = [p for p in ref if ref[p] != mine[p]]
    if bad:
        raise SystemExit(f"sonames differ for {len(bad)} files, e.g. {bad[0]}: scanelf {ref[bad[0]]} rundeps {mine[bad[0]]}")
    return len(ref)


def write_db(path: Path) -> Path:
    """A small installed database: what the wheels of tree A need from the system."""
    arch = "x86_64"
    blocks = [f"P:musl\nV:1.2.5-r0\nA:{arch}\np:so:libc.musl-{arch}.so.1=1\nF:lib\nR:ld-musl-{arch}.so.1\n"]
    for name, soname in (("libgcc", "libgcc_s.so.1"), ("libstdc++", "libstdc++.so.6"), ("zlib", "libz.so.1")):
        blocks.append(f"P:{name}\nV:1-r0\nA:{arch}\nD:so:libc.musl-{arch}.so.1\np:so:{soname}=1\n")
    path.write_text("\n".join(blocks))
    return path


def bench_tree(name: str, tree: Path, cmd_tpl: str, python: str, rundeps: str, env, runs: int, warm: bool):
    n = check_agreement(python, env, tree)
    log(f"tree {name}: {n} ELF files, sonames agree with scanelf")
    cache = Path(tempfile.mkdtemp(prefix=f"rundeps-bench-cache-{name}-"))
    fmt = dict(tree=shlex.quote(str(tree)), cache=shlex.quote(str(cache)), python=shlex.quote(python), rundeps=rundeps,
               db=shlex.quote(str(write_db(cache / "bench.installed"))))
    scanelf_cmd = f"scanelf --needed --nobanner --recursive {shlex.quote(str(tree))}"
    cold_cmd = cmd_tpl.format(nocache="--no-cache", **fmt)
    warm_cmd = cmd_tpl.format(nocache="", **fmt)
    # Prime: page cache for everybody, file cache for warm runs.
    run_timed(scanelf_cmd)
    run_timed(warm_cmd, env)
    res = {"scanelf": [], "cold": [], "warm": []}
    for i in range(runs):
        res["scanelf"].append(run_timed(scanelf_cmd))
        res["cold"].append(run_timed(cold_cmd, env))
        if warm:
            res["warm"].append(run_timed(warm_cmd, env))
        log(f"  run {i + 1}/{runs}: " + "  ".join(f"{k} {v[-1][0]:.3f}s" for k, v in res.items() if v))
    shutil.rmtree(cache, ignore_errors=True)
    base = statistics.median(w for w, _ in res["scanelf"])
    rows = []
    for k, v in res.items():
        if not v:
            continue
        med = statistics.median(w for w, _ in v)
        rows.append((k, med, med / base, max(m for _, m in v)))
    return n, rows


# -- the README's table ------------------------------------------------------------


def build_plain(work: Path, tree_a: Path) -> Path:
    """Tree A's files in a folder whose path has no ``site-packages`` (hard links)."""
    plain = work / "plain" / "deps"
    done = work / "plain" / ".done"
    if not done.exists():
        shutil.rmtree(plain, ignore_errors=True)
        shutil.copytree(tree_a, plain, symlinks=True, copy_function=os.link)
        done.touch()
    return plain


def paired(reference: str, cmd, runs: int, env, prepare=None, ok=(0,)):
    """Run ``reference`` then ``cmd`` (a string, or a function of the run
    number giving one), ``runs`` times; returns (the reference's median and
    peak MB, the command's median, the median of the pairs' ratios, the
    command's peak MB)."""
    ref, mine = [], []
    for i in range(runs):
        ref.append(run_timed(reference))
        if prepare:
            prepare(i)
        mine.append(run_timed(cmd(i) if callable(cmd) else cmd, env, ok=ok))
    ratios = [m[0] / r[0] for r, m in zip(ref, mine)]
    return (statistics.median(w for w, _ in ref), max(m for _, m in ref), statistics.median(w for w, _ in mine),
            statistics.median(ratios), max(m for _, m in mine))


def bench_table(work: Path, tree_a: Path, python: str, rundeps: str, env, runs: int) -> int:
    """The README's speed table (see the module documentation)."""
    q = shlex.quote
    trees = [("tree A, site-packages", tree_a), ("tree A, plain folder", build_plain(work, tree_a))]
    db = write_db(work / "bench.installed")
    rows = []
    for label, tree in trees:
        n = check_agreement(python, env, tree)
        log(f"{label}: {n} ELF files, sonames agree with scanelf")
        scanelf_cmd = f"scanelf --needed --nobanner --recursive {q(str(tree))}"
        base = Path(tempfile.mkdtemp(prefix="rundeps-bench-table-"))
        fresh = lambda i, base=base, tree=tree: (  # noqa: E731
            f"{rundeps} scan --db {q(str(db))} --cache-dir {q(str(base / f'cold{i}'))} {q(str(tree))}")
        repeat = f"{rundeps} scan --db {q(str(db))} --cache-dir {q(str(base / 'warm'))} {q(str(tree))}"
        run_timed(scanelf_cmd)  # the page cache, for everybody
        run_timed(repeat, env)
        run_timed(repeat, env)  # the record of this run
        def shown(cmd: str, tree=tree, base=base) -> str:
            return (cmd.replace(str(tree), "TREE").replace(str(base / "cold0"), "FRESH")
                    .replace(str(base / "warm"), "C").replace(str(db), "DB").replace(rundeps, "rundeps"))

        ref, ref_peak, med, ratio, peak = paired(scanelf_cmd, fresh, runs, env)
        rows.append((label, "scanelf", shown(scanelf_cmd), ref, None, ref_peak))
        rows.append((label, "cold", shown(fresh(0)), med, ratio, peak))
        nocache = f"{rundeps} scan --db {q(str(db))} --no-cache {q(str(tree))}"
        _, _, med, ratio, peak = paired(scanelf_cmd, nocache, runs, env)
        rows.append((label, "no cache", shown(nocache), med, ratio, peak))
        _, _, med, ratio, peak = paired(scanelf_cmd, repeat, runs, env)
        rows.append((label, "repeat", shown(repeat), med, ratio, peak))
        shutil.rmtree(base, ignore_errors=True)
        log(f"  done: {rows[-3][3]:.3f}s cold, {rows[-1][3]:.3f}s repeat")
    wheels = work / "wheels"
    auditwheel = shutil.which("auditwheel", path=str(Path(python).parent))
    wheel_cmd = f"{rundeps} wheel --no-cache {q(str(wheels))}"
    if auditwheel:
        names = sorted(str(w) for w in wheels.glob("*.whl"))
        script = "; ".join(f"{q(auditwheel)} show {q(w)} >/dev/null" for w in names)
        aw_cmd = f"sh -c {q(script)}"
        ref, ref_peak, med, ratio, peak = paired(aw_cmd, wheel_cmd, max(3, runs // 3), env, ok=(0, 1))
        rows.append(("19 wheels", "auditwheel", f"auditwheel show WHEEL (x {len(names)})", ref, None, ref_peak))
        rows.append(("19 wheels", "wheel", "rundeps wheel --no-cache DIR", med, ratio, peak))  # (symbols bound)
    else:
        med, peak = run_timed(wheel_cmd, env, ok=(0, 1))
        rows.append(("19 wheels", "wheel", "rundeps wheel --no-cache DIR (no auditwheel to compare)", med, None,
                     peak))
    for k, cmd, med, mem, ratio in bench_pyz(work, python, rundeps, env, max(runs, 15))[:2]:
        rows.append(("start-up", k, cmd.replace(rundeps, "rundeps").replace(python, "python")
                     .replace(str(work), "WORK"), med, ratio, mem))
    print(f"medians of {runs} paired runs; ratio: the median of each pair's ratio to the row above it "
          "(scanelf, auditwheel, the installed CLI)")
    print("| what | run | command | median | ratio | peak MB |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for what, k, cmd, med, ratio, peak in rows:
        r = "" if ratio is None else f"{ratio:.2f} ×"
        pk = "" if peak is None else f"{peak:.1f}"
        print(f"| {what} | {k} | `{cmd}` | {med:.3f} s | {r} | {pk} |", flush=True)
    return 0


# -- symbols: against musl's own loader ------------------------------------------

MUSL_LOADER = "/lib/ld-musl-x86_64.so.1"

LIST_SNIPPET = r"""
import subprocess, sys
loader, files = sys.argv[1], open(sys.argv[2]).read().splitlines()
for f in files:
    subprocess.run([loader, '--list', f], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""

WHEEL_SNIPPET = r"""
import glob, sys
from rundeps.api import check_wheel
symbols = sys.argv[2] == 'symbols'
results = []
for w in sorted(glob.glob(sys.argv[1] + '/*.whl')):
    c = check_wheel(w, symbols=symbols)  # (it reads the run-time loads of the sources itself)
    c.wheel.py_sources = []
    results.append(c)
"""

PYELFTOOLS_SNIPPET = r"""
import sys
from rundeps.elf.pyelftools import read_symbols_pyelftools
for f in open(sys.argv[1]).read().splitlines():
    with open(f, 'rb') as fh:
        read_symbols_pyelftools(fh)
"""


def cli_has_flag(rundeps: str, env, flag: str) -> bool:
    out = subprocess.run(shlex.split(rundeps) + ["scan", "--help"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, env=env).stdout
    return flag in out


def cli_has_symbols_flag(rundeps: str, env) -> bool:
    return cli_has_flag(rundeps, env, "--symbols")


def bench_symbols(tree: Path, wheels: Path, python: str, rundeps: str, env, runs: int, pyelftools_row: bool):
    """Rows for the symbols targets (issue 11): scan with symbols cold against
    musl's loader run once per ELF file, warm against scanelf; the wheel
    check's peak memory over the benchmark wheels."""
    files = sorted(scanelf_needed(tree))
    listing = Path(tempfile.mkstemp(prefix="rundeps-bench-elf-", suffix=".txt")[1])
    listing.write_text("\n".join(files) + "\n")
    cache = Path(tempfile.mkdtemp(prefix="rundeps-bench-cache-sym-"))
    db = write_db(cache / "bench.installed")
    q = shlex.quote
    cold1 = None
    if cli_has_symbols_flag(rundeps, env):
        how = "the CLI: rundeps scan --symbols"
        cold = f"{rundeps} scan --symbols --db {q(str(db))} --cache-dir {q(str(cache))} --no-cache {q(str(tree))}"
        warm = f"{rundeps} scan --symbols --db {q(str(db))} --cache-dir {q(str(cache))} {q(str(tree))}"
        if cli_has_flag(rundeps, env, "--jobs"):
            cold1 = cold.replace(" scan --symbols ", " scan --symbols --jobs 1 ")
    else:
        how = "the library: rundeps.inputs.walk.scan(symbols=True), no resolving or binding (the CLI has no --symbols yet)"
        cold = f"{q(python)} -c {q(SCAN_SNIPPET)} {q(str(tree))} - run symbols"
        warm = f"{q(python)} -c {q(SCAN_SNIPPET)} {q(str(tree))} {q(str(cache))} run symbols"
    loader = f"{q(python)} -c {q(LIST_SNIPPET)} {MUSL_LOADER} {q(str(listing))}"
    scanelf_cmd = f"scanelf --needed --nobanner --recursive {q(str(tree))}"
    log(f"symbols rows: {len(files)} ELF files; rundeps {how}")
    run_timed(scanelf_cmd)
    run_timed(warm, env)
    # The floor of any run of the CLI: the interpreter and the imports of
    # ``rundeps.cli`` (click's among them), with nothing scanned.
    start_up = f"{q(python)} -c {q('import rundeps.cli')}"
    res = {"scanelf": [], "musl-list": [], "sym-cold": [], "sym-warm": [], "start-up": []}
    if cold1:
        res["sym-cold-j1"] = []
    for i in range(runs):
        res["scanelf"].append(run_timed(scanelf_cmd))
        res["musl-list"].append(run_timed(loader))
        res["sym-cold"].append(run_timed(cold, env))
        res["sym-warm"].append(run_timed(warm, env))
        res["start-up"].append(run_timed(start_up, env))
        if cold1:
            res["sym-cold-j1"].append(run_timed(cold1, env))
        log(f"  run {i + 1}/{runs}: " + "  ".join(f"{k} {v[-1][0]:.3f}s" for k, v in res.items() if v))
    med = {k: statistics.median(w for w, _ in v) for k, v in res.items()}
    mem = {k: max(m for _, m in v) for k, v in res.items()}
    rows = [
        ("scanelf", med["scanelf"], 1.0, None, mem["scanelf"]),
        ("musl-list", med["musl-list"], med["musl-list"] / med["scanelf"], None, mem["musl-list"]),
        ("sym-cold", med["sym-cold"], med["sym-cold"] / med["scanelf"], med["sym-cold"] / med["musl-list"],
         mem["sym-cold"]),
        ("sym-warm", med["sym-warm"], med["sym-warm"] / med["scanelf"], None, mem["sym-warm"]),
        ("start-up", med["start-up"], med["start-up"] / med["scanelf"], None, mem["start-up"]),
    ]
    if cold1:
        rows.insert(3, ("sym-cold-j1", med["sym-cold-j1"], med["sym-cold-j1"] / med["scanelf"],
                        med["sym-cold-j1"] / med["musl-list"], mem["sym-cold-j1"]))
    if pyelftools_row:
        log("  pyelftools reader over every ELF file (one run)...")
        wall, peak = run_timed(f"{q(python)} -c {q(PYELFTOOLS_SNIPPET)} {q(str(listing))}", env)
        rows.append(("pyelftools", wall, wall / med["scanelf"], wall / med["musl-list"], peak))
    wheel_rows = []
    for sym in ("plain", "symbols"):
        wall, peak = run_timed(f"{q(python)} -c {q(WHEEL_SNIPPET)} {q(str(wheels))} {sym}", env)
        wheel_rows.append((f"wheels ({sym})", wall, peak))
    wall, peak = run_timed(f"{rundeps} wheel {q(str(wheels))}", env, ok=(0, 1))
    wheel_rows.append(("rundeps wheel DIR" + (" (symbols)" if cli_has_symbols_flag(rundeps, env) else ""),
                       wall, peak))
    shutil.rmtree(cache, ignore_errors=True)
    listing.unlink()
    return how, len(files), rows, wheel_rows


def bench_pyz(work: Path, python: str, rundeps: str, env, runs: int):
    """Rows for ``--help`` of the installed CLI and the zip application."""
    q = shlex.quote
    pyz = work / "rundeps.pyz"
    subprocess.run([sys.executable, str(PROJECT / "scripts" / "build_pyz.py"), "-o", str(pyz),
                    "--wheels", str(work / "pyz-wheels")], check=True, stdout=subprocess.DEVNULL)
    cache = Path(tempfile.mkdtemp(prefix="rundeps-bench-pyz-"))
    blocker = cache / "a-file"  # a cache folder below a regular file: never writable
    blocker.write_text("")
    cached = dict(env, RUNDEPS_CACHE_DIR=str(cache / "c"))
    uncached = dict(env, RUNDEPS_CACHE_DIR=str(blocker / "c"))
    cmds = [
        ("installed --help", f"{rundeps} --help", env),
        ("pyz --help", f"{q(python)} {q(str(pyz))} --help", cached),
        ("pyz, no bytecode", f"{q(python)} {q(str(pyz))} --help", uncached),
        ("python -c pass", f"{q(python)} -c pass", env),
    ]
    for _, cmd, e in cmds:
        run_timed(cmd, e)
    res = {k: [] for k, _, _ in cmds}
    for _ in range(runs):
        for k, cmd, e in cmds:
            res[k].append(run_timed(cmd, e))
    shutil.rmtree(cache, ignore_errors=True)
    base = statistics.median(w for w, _ in res["installed --help"])
    return [(k, cmd, statistics.median(w for w, _ in res[k]), max(m for _, m in res[k]),
             statistics.median(w for w, _ in res[k]) / base) for k, cmd, _ in cmds]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/rundeps-bench", help="work folder (trees, wheels, venv); reused")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--trees", default="A,B")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the default command")
    ap.add_argument("--venv", action="store_true", help="install the checkout into a clean venv and time its rundeps script")
    ap.add_argument("--cmd", default=None,
                    help="rundeps command template with {rundeps} {tree} {cache} {nocache} {python} {db}, "
                         "or 'walk'")
    ap.add_argument("--no-warm", action="store_true", help="skip warm runs (e.g. if the command has no cache)")
    ap.add_argument("--symbols", action="store_true",
                    help="also the symbols rows on tree A (against musl's loader) and the wheels' peak memory")
    ap.add_argument("--symbols-only", action="store_true", help="only the symbols rows")
    ap.add_argument("--pyelftools-row", action="store_true",
                    help="with --symbols: also time the pyelftools symbol reader over tree A (one slow run)")
    ap.add_argument("--table", action="store_true",
                    help="only the README's table: tree A (site-packages and plain) cold and repeat, wheels, pyz")
    ap.add_argument("--pyz", action="store_true",
                    help="also time --help of the zip application against the installed CLI")
    args = ap.parse_args(argv)

    if shutil.which("scanelf") is None:
        raise SystemExit("scanelf (pax-utils) is needed")
    if not os.path.exists("/usr/bin/time"):
        raise SystemExit("GNU time (/usr/bin/time) is needed")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tree_a = build_tree_a(work)
    trees = {"A": tree_a}
    if "B" in args.trees.split(",") and not args.table:
        trees["B"] = build_tree_b(work, tree_a)

    env = dict(os.environ)
    if args.venv:
        # What a user runs in an image: the installed ``rundeps`` script.
        python = make_venv(work)
        rundeps_cmd = shlex.quote(install_project(python))
        env.pop("PYTHONPATH", None)
    else:
        # The checkout.  An installed copy has its .pyc files (pip compiles
        # them); a run with PYTHONDONTWRITEBYTECODE=1 would compile every
        # module every time, so compile them first.
        python = args.python
        subprocess.run([python, "-m", "compileall", "-q", str(PROJECT / "rundeps")], check=True)
        env["PYTHONPATH"] = str(PROJECT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        rundeps_cmd = f"{shlex.quote(python)} -m rundeps"
    cli_tpl = CLI_TEMPLATE
    if cli_has_symbols_flag(rundeps_cmd, env):
        # symbols on by default: the plain rows keep today's meaning
        cli_tpl = CLI_TEMPLATE.replace("{rundeps} scan ", "{rundeps} scan --no-symbols ")
    cmd_tpl = _WalkTemplate(python) if args.cmd == "walk" else (args.cmd or cli_tpl)

    startup = statistics.median(run_timed(f"{shlex.quote(python)} -c pass", env)[0] for _ in range(5))
    print(f"interpreter: {python} (bare start-up median {startup * 1000:.0f} ms)")
    if args.table:
        if args.venv:
            subprocess.run([python, "-m", "pip", "install", "-q", "auditwheel"], check=False,
                           cwd=tempfile.gettempdir())
        return bench_table(work, tree_a, python, rundeps_cmd, env, args.runs)
    if args.pyz:
        runs = max(args.runs, 15)
        print(f"start-up: --help, medians of {runs} alternating runs")
        print(f"{'run':17} {'median ms':>9} {'x installed':>11} {'peak MB':>8}  command")
        for k, cmd, med, mem, ratio in bench_pyz(work, python, rundeps_cmd, env, runs):
            print(f"{k:17} {med * 1000:9.1f} {ratio:11.2f} {mem:8.1f}  {cmd}", flush=True)
        print("target: pyz --help <= 1.3 x installed --help")
    if args.symbols or args.symbols_only:
        if not os.path.exists(MUSL_LOADER):
            raise SystemExit(f"musl's loader {MUSL_LOADER} is needed for the symbols rows (apt-get install musl)")
        how, n, rows, wheel_rows = bench_symbols(tree_a, work / "wheels", python, rundeps_cmd, env, args.runs,
                                                 args.pyelftools_row)
        print(f"symbols, tree A ({n} ELF files), rundeps through {how}; medians of {args.runs} runs")
        print(f"{'run':11} {'median s':>9} {'x scanelf':>10} {'x musl-list':>12} {'peak MB':>8}")
        for k, med, ratio, vs_loader, mem in rows:
            vl = f"{vs_loader:12.2f}" if vs_loader is not None else f"{'':12}"
            print(f"{k:11} {med:9.3f} {ratio:10.2f} {vl} {mem:8.1f}", flush=True)
        print("targets: sym-cold <= 0.5 x musl-list, sym-warm <= 1 x scanelf "
              "(start-up: the interpreter and imports alone)")
        print(f"{'wheels (19, one run)':24} {'s':>7} {'peak MB':>8}")
        for k, wall, peak in wheel_rows:
            print(f"{k:24} {wall:7.2f} {peak:8.1f}")
        print("target: peak <= 100 MB with symbols")
        if args.symbols_only:
            return 0
    print(f"tree runs, medians of {args.runs} alternating runs; scanelf: scanelf --needed --nobanner --recursive TREE;")
    print(f"cold/warm: {cmd_tpl.format(nocache='[--no-cache]', tree='TREE', cache='CACHE', db='DB', python=python, rundeps=rundeps_cmd) if isinstance(cmd_tpl, str) and type(cmd_tpl) is str else 'the library walk'}")
    print(f"{'tree':4} {'ELF':>5} {'run':8} {'median s':>9} {'x scanelf':>10} {'peak MB':>8}")
    for name in args.trees.split(","):
        n, rows = bench_tree(name, trees[name], cmd_tpl, python, rundeps_cmd, env, args.runs,
                             warm=not args.no_warm)
        for k, med, ratio, mem in rows:
            print(f"{name:4} {n:5d} {k:8} {med:9.3f} {ratio:10.2f} {mem:8.1f}", flush=True)
    return 0


CLI_TEMPLATE = "{rundeps} scan --db {db} --cache-dir {cache} {nocache} {tree}"


class _WalkTemplate(str):
    """``--cmd walk``: ``python -c SNIPPET TREE CACHE|-`` (the library's walk only)."""

    def __new__(cls, python):
        return str.__new__(cls, "")

    def __init__(self, python):
        self.python = python

    def format(self, nocache, tree, cache, python, **_):  # noqa: A003
        cache_arg = "-" if nocache else cache
        return f"{python} -c {shlex.quote(SCAN_SNIPPET)} {tree} {cache_arg} run"


if __name__ == "__main__":
    sys.exit(main())

"""The README's Dockerfile recipe, run step by step (issue 10, item 5).

The steps are read from the README itself (the ``dockerfile`` block under
"In a Dockerfile"), so the README and this test cannot drift. The recipe's
one ``RUN`` is split at its ``&&`` and each step runs, as written, in ``sh``:

* ``apk add`` / ``apk del`` steps are left out (no apk here);
* the application's own ``pip install`` (psycopg2, Pillow: compiled from
  source in the image) is stood for by a root built with
  ``scripts/make_demo_root.py``, which holds exactly those modules (the
  test checks they are there); ``RUNDEPS_ROOT`` points rundeps at it, as
  if it ran inside that image;
* the ``--mount=type=bind,source=dist,target=T`` is done the way BuildKit
  does it: ``T`` reads the wheel built from this checkout with the README's
  own ``pip wheel`` command;
* ``python`` is the Python 3 running the tests, ``/tmp`` is a folder of the test's
  (``TMPDIR``, which ``mktemp`` honours), ``HOME`` an empty folder.

Then nothing of rundeps may remain: no file in ``TMPDIR`` or ``HOME`` (no
virtual environment, no pip or rundeps cache), the root unchanged.
Installing rundeps' dependencies needs an index (PyPI, or the pip
configuration's local wheels): the test skips when there is none.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scriptmods import demo

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the demo root")


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def code_blocks(section: str, lang: str):
    return re.findall(r"```" + lang + r"\n(.*?)```", section, re.S)


def dockerfile_block(pyz: bool) -> str:
    """The README's Dockerfile: the zip application's (``pyz``) or the venv's."""
    blocks = code_blocks(readme_section("In a Dockerfile"), "dockerfile")
    assert len(blocks) == 2, "the zip application's recipe, then the venv's"
    (block,) = [b for b in blocks if ("rundeps.pyz" in b) == pyz]
    return block


def build_line(pyz: bool) -> str:
    """The README's ``sh`` line that builds what the Dockerfile mounts."""
    blocks = code_blocks(readme_section("In a Dockerfile"), "sh")
    (line,) = [b for b in blocks if ("build_pyz.py" in b) == pyz]
    return line


def recipe(pyz: bool = False):
    """(the RUN's --mount options, its shell steps) from the README's Dockerfile."""
    dockerfile = dockerfile_block(pyz)
    joined = re.sub(r"\\\n", " ", dockerfile)
    runs = [ln.strip()[4:] for ln in joined.splitlines() if ln.strip().startswith("RUN ")]
    assert len(runs) == 1, runs
    words = runs[0].split()
    mounts = []
    while words[0].startswith("--mount="):
        mounts.append(dict(kv.split("=", 1) for kv in words.pop(0)[len("--mount="):].split(",")))
    steps = [s.strip() for s in " ".join(words).split(" && ")]
    return mounts, steps


def test_recipe_reads_as_documented():
    mounts, steps = recipe()
    assert [m["type"] for m in mounts] == ["bind"]
    assert any(s.startswith("apk del") for s in steps) and any("rundeps" in s and " scan" in s for s in steps)
    # the wheel build line the README gives
    assert build_line(pyz=False).split()[:4] == ["pip", "wheel", "--no-deps", "-w"]
    # the zip application's recipe comes first, the venv's is the alternative
    section = readme_section("In a Dockerfile")
    assert section.index("rundeps.pyz scan") < section.index("python -m venv")
    mounts, steps = recipe(pyz=True)
    assert [(m["type"], m["source"], m["target"]) for m in mounts] == [("bind", "dist/rundeps.pyz", "/tmp/rundeps.pyz")]
    assert 'runDeps="$(python3 /tmp/rundeps.pyz scan --no-cache)"' in steps
    assert steps[-2:] == ["apk add --no-cache --virtual .rundeps $runDeps", "apk del --no-network .build-deps"]
    assert build_line(pyz=True).split()[2:] == ["-o", "dist/rundeps.pyz"]


def tree_listing(top: Path):
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


def test_recipe_runs_and_leaves_nothing_of_rundeps(tmp_path):
    mounts, steps = recipe()
    root = tmp_path / "image"
    demo.build_demo_root(root, workdir=tmp_path / "build")
    before = tree_listing(root)

    # the build context: dist/ with the wheel, built as the README says
    argv = shlex.split(build_line(pyz=False))
    assert argv[:4] == ["pip", "wheel", "--no-deps", "-w"]
    context = tmp_path / "context"
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                          str(context / argv[4]), str(PROJECT)], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {out.stderr.strip().splitlines()[-1:]}")

    # the interpreter itself (not a version manager's shim, which may write into HOME)
    python3 = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    if subprocess.run([python3, "-c", "import venv, ensurepip"]).returncode != 0:
        pytest.skip("no python3 with venv and ensurepip")
    tmp, home, env = recipe_env(tmp_path, root, python3, "python")
    script = recipe_script(steps, mounts, root, context)
    assert any("mktemp" in s for s in script) and any("rm -rf" in s for s in script)
    script.append('printf "%s\\n" "$runDeps" > "$RECIPE_OUT"')
    r = subprocess.run(["sh", "-ec", " && ".join(script)], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=600)
    if r.returncode != 0 and re.search(r"No matching distribution|Could not find a version|Network is unreachable"
                                       r"|Failed to establish a new connection|Temporary failure in name resolution",
                                       r.stderr):
        pytest.skip("no package index to install rundeps' dependencies from")
    assert r.returncode == 0, r.stderr
    # the run-time set, as rundeps gives it for that root
    assert (tmp_path / "runDeps").read_text().split() == ["libpq", "libsharpyuv", "tiff"], r.stderr

    # what making a virtual environment and installing the wheel with pip
    # writes into HOME and TMPDIR on this machine (pip's own set-up and
    # leftovers: pip 23.0 on Python 3.9 leaves a tmpXXXXXXXX_cacert.pem of
    # its vendored certifi in TMPDIR) is not rundeps'
    control = tmp_path / "control-home"
    control.mkdir()
    control_tmp = tmp_path / "control-tmp"
    control_tmp.mkdir()
    control_env = dict(env, HOME=str(control), TMPDIR=str(control_tmp))
    subprocess.run([python3, "-m", "venv", str(tmp_path / "control-venv")], env=control_env,
                   capture_output=True, timeout=300)
    (wheel,) = (context / argv[4]).glob("rundeps-*.whl")
    subprocess.run([str(tmp_path / "control-venv" / "bin" / "pip"), "install", "-q", "--no-cache-dir", str(wheel)],
                   env=control_env, capture_output=True, timeout=600)

    def shapes(top: Path):  # tempfile names with their random part folded
        return {re.sub(r"^tmp[A-Za-z0-9_]{8}", "tmp*", name) for name in tree_listing(top)}

    # nothing of rundeps remains
    assert shapes(tmp) <= shapes(control_tmp), "left in /tmp"
    assert set(tree_listing(home)) <= set(tree_listing(control)), "left in HOME (a cache?)"
    assert not (home / ".cache").exists()
    assert tree_listing(root) == before, "the image's files changed"


def test_pyz_recipe_runs_and_leaves_nothing(tmp_path):
    """The zip application's recipe: the ``.pyz`` built with the README's
    line, bind-mounted (its target read from the build context), run by a
    ``python3`` outside any virtual environment; ``TMPDIR`` and ``HOME``
    (read-only) stay empty."""
    mounts, steps = recipe(pyz=True)
    root = tmp_path / "image"
    demo.build_demo_root(root, workdir=tmp_path / "build")
    before = tree_listing(root)

    argv = shlex.split(build_line(pyz=True))
    assert argv[0] == "python3" and argv[1].endswith("/scripts/build_pyz.py") and argv[2] == "-o"
    context = tmp_path / "context"
    out = subprocess.run([sys.executable, str(PROJECT / "scripts" / "build_pyz.py"), "-o", str(context / argv[3])],
                         capture_output=True, text=True, timeout=600)
    if out.returncode == 3:
        pytest.skip(f"the zip application's wheels cannot be had here: {out.stderr.strip().splitlines()[-1:]}")
    assert out.returncode == 0, out.stderr

    python3 = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    tmp, home, env = recipe_env(tmp_path, root, python3, "python3")
    script = recipe_script(steps, mounts, root, context)
    script.append('printf "%s\\n" "$runDeps" > "$RECIPE_OUT"')
    home.chmod(0o555)
    try:
        r = subprocess.run(["sh", "-ec", " && ".join(script)], capture_output=True, text=True, env=env,
                           cwd=str(tmp_path), timeout=600)
    finally:
        home.chmod(0o755)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "runDeps").read_text().split() == ["libpq", "libsharpyuv", "tiff"], r.stderr
    assert tree_listing(tmp) == [], "left in /tmp"
    assert tree_listing(home) == [], "left in HOME"
    assert tree_listing(root) == before, "the image's files changed"


def recipe_env(tmp_path, root, python3: str, name: str):
    """(TMPDIR, HOME, environment) for running a recipe's steps: ``name`` on
    PATH is ``python3``, TMPDIR and HOME empty folders of their own."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / name).symlink_to(python3)
    tmp = tmp_path / "tmp"
    home = tmp_path / "home"
    tmp.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNDEPS_", "XDG_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=f"{bindir}:{os.environ['PATH']}", TMPDIR=str(tmp), HOME=str(home), RUNDEPS_ROOT=str(root),
               RECIPE_OUT=str(tmp_path / "runDeps"))
    return tmp, home, env


def recipe_script(steps, mounts, root, context) -> list:
    """The recipe's shell steps as written, less ``apk add``/``apk del``
    (no apk here) and ``pip install`` (the demo root holds those packages
    already: checked), bind mounts pointed at the build context."""
    script = []
    for step in steps:
        if step.startswith(("apk add", "apk del")):
            continue
        if step.startswith("pip install"):
            site = root / "usr/local/lib/python3.12/site-packages"
            for name in step.split()[2:]:
                if not name.startswith("-"):
                    module = {"Pillow": "PIL"}.get(name, name)
                    assert (site / module).is_dir(), f"the demo root does not stand for {step!r}"
            continue
        for m in mounts:
            step = step.replace(m["target"], str(context / m["source"]))
        script.append(step)
    return script

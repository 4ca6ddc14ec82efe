"""The package as pip installs it: every subpackage listed, the data shipped."""

import os
import subprocess
import sys
import zipfile

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_every_subpackage_is_listed():
    with open(os.path.join(TOP, "pyproject.toml"), "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(TOP, "rundeps")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if "__init__.py" in filenames:
            found.add(os.path.relpath(dirpath, TOP).replace(os.sep, "."))
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
    assert "rundeps.data" in listed


def test_wheel_ships_the_data(tmp_path):
    """A real wheel built from this checkout carries data/ as rundeps/data."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), TOP],
        capture_output=True, text=True, timeout=300,
    )
    if out.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {out.stderr.strip().splitlines()[-1:]}")
    (whl,) = tmp_path.glob("rundeps-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    keys = [n for n in names if n.startswith("rundeps/data/keys/") and n.endswith(".rsa.pub")]
    src_keys = os.listdir(os.path.join(TOP, "data", "keys"))
    assert len(keys) == len(src_keys) > 0
    assert "rundeps/data/__init__.py" in names
    shipped = sorted(n for n in names if n.startswith("rundeps/data/musl/"))
    assert shipped == sorted("rundeps/data/musl/" + n for n in os.listdir(os.path.join(TOP, "data", "musl")))
    assert "rundeps/data/musl/builds.json" in shipped
    assert "rundeps/commands/scan.py" in names

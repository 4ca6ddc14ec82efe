#!/usr/bin/env python3
"""Build ``dist/rundeps.pyz``: rundeps and its dependencies as one zip
application (``python3 dist/rundeps.pyz scan ...``), pure Python only.

    python scripts/build_pyz.py [-o dist/rundeps.pyz] [--wheels build/pyz-wheels]

* **Dependencies**: the pinned list :data:`PINS` below, with the sha256 of
  each wheel: the closure of pyproject.toml's dependencies that a fresh
  ``pip install`` of this project picked for Python 3.9 (the oldest Python
  rundeps supports, so the archive runs on 3.9 and newer) when the list was
  written.  Each is the pure ``py3-none-any`` (or ``py2.py3-none-any``)
  wheel (charset-normalizer also ships compiled ones), downloaded with ``pip download --only-binary=:all:
  --platform any --python-version 3.9 --implementation py --no-deps
  --require-hashes`` into ``--wheels`` (kept between builds; a wheel already
  there with the right hash is not downloaded again).  To move a pin: change
  it here with its new hash (``pip download`` as above, then ``sha256sum``).
* **rundeps** itself comes from this checkout: ``rundeps/`` and ``data/``,
  installed as the package ``rundeps.data`` as pyproject.toml's
  ``[tool.setuptools.package-dir]`` says.
* **Reproducible**: the same inputs give the same bytes: entries sorted,
  every timestamp 1980-01-01 00:00, permissions 0644, deflate level 9, no
  ``__pycache__``/``.pyc``; a wheel's ``*.dist-info`` keeps only
  ``METADATA`` and the licence files (``importlib.metadata.version()``
  still answers; nothing in the archive needs more).  ``__main__.py``
  carries the sha256 of all the other entries: the archive's identity, which
  names the folder its compiled modules are kept in (:mod:`rundeps.zipboot`).
* **Pure**: a compiled module (``.so``, ``.pyd``, ``.dylib``) in a wheel is
  an error, never silently dropped.

Exit status: 0 built; 1 an input is wrong (a hash, a compiled module, a
clash); 3 the wheels cannot be had (offline, no index): the message says so.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

PROJECT = Path(__file__).resolve().parents[1]

PYTHON_VERSION = "3.9"

PINS: List[Tuple[str, str, str]] = [
    # (name, version, sha256 of the py3-none-any wheel)
    ("boolean.py", "5.0", "ef28a70bd43115208441b53a045d1549e2f0ec6e3d08a9d142cbc41c1938e8d9"),
    ("certifi", "2026.10.19.post1", "1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2"),
    ("charset-normalizer", "3.5.3", "96e268b0cbda016ac519513294fcd17032264085b600abaac58b93049477e132"),
    ("click", "8.1.8", "63c132bbbed01578a06712a2d1f497bb62d9c1c0d329b7903a866228027263b2"),
    ("cyclonedx-python-lib", "11.12.0", "0e807521a921a5c3cb8ce1153f8a61d29eedfe76a46aac2796b7c6b573391a54"),
    ("defusedxml", "0.7.1", "a352e7e428770286cc899e2542b6cdaedb2b4953ff269a210103ec58f6198a61"),
    ("diskcache", "5.6.3", "5e31b2d5fbad117cc363ebaf6b689474db18a1f6438bc82358b024abd4c2ca19"),
    ("idna", "3.20", "ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c"),
    ("license-expression", "30.4.4", "421788fdcadb41f049d2dc934ce666626265aeccefddd25e162a26f23bcbf8a4"),
    ("packageurl-python", "0.17.6", "31a85c2717bc41dd818f3c62908685ff9eebcb68588213745b14a6ee9e7df7c9"),
    ("packaging", "26.3", "d7193f7c8e4e93f444fde0262bf90af30e16fa0ad0ad44cb553c87339b23cd1c"),
    ("py-serializable", "2.2.0", "2cce775abc5aac12115f9ff572a145c7276d04a770090334bd4e51ed9c782415"),
    ("pyasn1", "0.6.5", "4017b0fce125096b8573b39c989fdb1a4b19cf761e683398184550fea0e66587"),
    ("pyelftools", "0.32", "013df952a006db5e138b1edf6d8a68ecc50630adbd0d83a2d41e7f846163d738"),
    ("requests", "2.32.5", "2462f94637a34fd532264295e186976db0f5d453d1cdd31473c85a6a161affb6"),
    ("rsa", "4.9.1", "68635866661c6836b8d39430f97a996acbd61bfa49406748ea243539fe239762"),
    ("sortedcontainers", "2.4.0", "a163dcaede0f1c021485e957a39245190e74249897e2ae4b2aa38595db237ee0"),
    ("typing-extensions", "4.16.0", "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8"),
    ("urllib3", "2.6.3", "bf272323e553dfb2e87d9bfd225ca7b0f467b919d7bbd355436d3fd37cb0acd4"),
]

MAIN = '''\
# rundeps as a zip application, built by scripts/build_pyz.py
from rundeps.zipboot import use_bytecode_cache

use_bytecode_cache("{digest}")  # the compiled modules, kept in the cache folder

from rundeps.__main__ import zipapp_main

zipapp_main()
'''

SHEBANG = b"#!/usr/bin/env python3\n"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
COMPILED = (".so", ".pyd", ".dylib", ".pyc", ".pyo")


class BuildError(Exception):
    """An input is wrong (exit 1)."""


class Unavailable(Exception):
    """The wheels cannot be had here (exit 3)."""


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_wheel(folder: Path, name: str, version: str, digest: str):
    for path in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
        dist, ver = path.name.split("-")[:2]
        if _norm(dist) == _norm(name) and ver == version and _sha256(path) == digest:
            return path
    return None


def fetch_wheels(folder: Path) -> List[Path]:
    """The pinned wheels, downloaded into ``folder`` when not there yet."""
    missing = [p for p in PINS if find_wheel(folder, *p) is None]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text("".join(f"{n}=={v} --hash=sha256:{h}\n" for n, v, h in missing))
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--no-deps", "--require-hashes", "--only-binary=:all:", "--platform", "any",
                   "--python-version", PYTHON_VERSION, "--implementation", "py",
                   "-d", str(folder), "-r", str(reqs)]
            r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = "\n".join(r.stderr.strip().splitlines()[-3:])
            if "THESE PACKAGES DO NOT MATCH THE HASHES" in r.stderr:
                raise BuildError(f"a downloaded wheel does not match its pinned hash:\n{tail}")
            raise Unavailable(f"cannot download the pinned wheels ({', '.join(n for n, _, _ in missing)}):\n{tail}")
    wheels = []
    for pin in PINS:
        path = find_wheel(folder, *pin)
        if path is None:
            raise BuildError(f"{pin[0]} {pin[1]}: no wheel with the pinned hash in {folder}")
        wheels.append(path)
    return wheels


def _skip(name: str) -> bool:
    parts = name.split("/")
    return "__pycache__" in parts or name.endswith((".pyc", ".pyo")) or name.endswith("/")


def _keep_dist_info(name: str) -> bool:
    """Of ``X.dist-info/...``: METADATA and the licence files only."""
    rest = name.split("/", 1)[1]
    base = rest.rsplit("/", 1)[-1].upper()
    return rest == "METADATA" or rest.startswith(("licenses/", "LICENSES/")) or base.startswith(
        ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS"))


def wheel_entries(wheel: Path) -> Iterable[Tuple[str, bytes]]:
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if _skip(name):
                continue
            top = name.split("/", 1)[0]
            if top.endswith(".dist-info"):
                if not _keep_dist_info(name):
                    continue
            elif top.endswith(".data"):
                scheme, _, rest = name.split("/", 1)[1].partition("/")
                if scheme not in ("purelib", "platlib") or not rest:
                    continue
                name = rest
            if name.lower().endswith(COMPILED):
                raise BuildError(f"{wheel.name}: {name} is a compiled module: the archive is pure Python only")
            yield name, zf.read(info)


def tree_entries(folder: Path, prefix: str) -> Iterable[Tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() or _skip(rel):
            continue
        if rel.lower().endswith(COMPILED):
            raise BuildError(f"{path}: a compiled file in the source tree")
        yield f"{prefix}/{rel}", path.read_bytes()


def digest(entries: Dict[str, bytes]) -> str:
    """The archive's identity: sha256 over every entry's name and bytes, in order."""
    h = hashlib.sha256()
    for name in sorted(entries):
        data = entries[name]
        h.update(b"%d:%s\0%d:" % (len(name.encode()), name.encode(), len(data)))
        h.update(data)
    return h.hexdigest()


def collect(wheels: List[Path]) -> Dict[str, bytes]:
    entries: Dict[str, bytes] = {}

    def add(name: str, data: bytes, source: str) -> None:
        if name in entries:
            raise BuildError(f"{name} comes twice (again from {source})")
        entries[name] = data

    for name, data in tree_entries(PROJECT / "rundeps", "rundeps"):
        add(name, data, "rundeps/")
    for name, data in tree_entries(PROJECT / "data", "rundeps/data"):
        add(name, data, "data/")
    for wheel in wheels:
        for name, data in wheel_entries(wheel):
            add(name, data, wheel.name)
    add("__main__.py", MAIN.format(digest=digest(entries)).encode(), "__main__")
    return entries


def write_pyz(entries: Dict[str, bytes], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        f.write(SHEBANG)
        with zipfile.ZipFile(f, "w") as zf:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, FIXED_TIME)
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, entries[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=PROJECT / "dist" / "rundeps.pyz")
    ap.add_argument("--wheels", type=Path, default=PROJECT / "build" / "pyz-wheels",
                    help="where the pinned wheels are downloaded to (and found again)")
    args = ap.parse_args(argv)
    try:
        wheels = fetch_wheels(args.wheels)
        entries = collect(wheels)
        write_pyz(entries, args.output)
    except Unavailable as e:
        print(f"build_pyz: {e}", file=sys.stderr)
        return 3
    except BuildError as e:
        print(f"build_pyz: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.output} ({args.output.stat().st_size} bytes, {len(entries)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

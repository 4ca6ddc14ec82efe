"""The shipped musl export lists (data/musl) and their generator."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from rundeps.bind import exports as muslexports
from rundeps.resolve import TreeFS
from rundeps.elf import read_symbols

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared" / "alpine"
DEBIAN_LIBC = Path("/lib/x86_64-linux-musl/libc.so")
_ALPINE_RE = re.compile(r"^musl-(\d+\.\d+\.\d+)-r\d+-([a-z0-9_]+)\.so$")


def real_libraries():
    out = []
    if (SHARED / "musl").is_dir():
        for p in sorted((SHARED / "musl").glob("musl-*.so")):
            m = _ALPINE_RE.match(p.name)
            out.append((m.group(1), m.group(2), p))
    if DEBIAN_LIBC.exists() and "(Debian" in muslexports.load("1.2.3", "x86_64").source:
        out.append(("1.2.3", "x86_64", DEBIAN_LIBC))  # Debian's stands in where no Alpine build is shipped
    return out


def test_every_real_library_has_its_list_and_it_is_up_to_date():
    libs = real_libraries()
    if not libs:
        pytest.skip("no real musl library here")
    shipped = set(muslexports.available())
    for version, arch, path in libs:
        assert (version, arch) in shipped, path
        got = muslexports.load(version, arch)
        assert (got.version, got.arch, got.exact_arch, got.exact_version) == (version, arch, True, True)
        assert got.names == read_symbols(path).defined, path
        assert path.name in got.source
    # And the script itself agrees (its --check mode).
    proc = subprocess.run([sys.executable, str(PROJECT / "scripts" / "gen_musl_exports.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_shipped_lists_have_a_header_and_sorted_names():
    assert len(muslexports.available()) >= 6
    for version, arch in muslexports.available():
        lines = (PROJECT / "data" / "musl" / f"{version}-{arch}.txt").read_text().splitlines()
        assert lines[0].startswith(f"# musl {version} {arch}: exports of ")
        names = lines[1:]
        assert names == sorted(set(names)) and len(names) > 1000
        assert {"malloc", "printf", "dlopen"} <= set(names)


def test_a_roots_real_loader_reads_the_same_as_its_list(tmp_path):
    libs = [lib for lib in real_libraries() if lib[2].parent.name == "musl"]
    if not libs:
        pytest.skip("../shared/alpine/musl is absent")
    for version, arch, path in libs:
        root = tmp_path / f"root-{version}-{arch}"
        (root / "lib").mkdir(parents=True)
        shutil.copy(path, root / "lib" / f"ld-musl-{arch}.so.1")
        facts = TreeFS(str(root)).symbols(f"/lib/ld-musl-{arch}.so.1")
        assert facts.defined == muslexports.load(version, arch).names


def test_choice_of_list():
    newest_x86_64 = max((v for v, a in muslexports.available() if a == "x86_64"), key=muslexports.version_key)
    assert muslexports.load(arch="x86_64").version == newest_x86_64
    # A version without a list: the newest older one (a subset of the exports), flagged.
    got = muslexports.load("1.2.4", "x86_64")
    assert (got.version, got.exact_version) == ("1.2.3", False)
    got = muslexports.load("1.0.0", "x86_64")
    assert got.version == min((v for v, a in muslexports.available() if a == "x86_64"),
                              key=muslexports.version_key)
    # An arch without a list: the newest of any arch, flagged.
    got = muslexports.load(arch="riscv64")
    assert got.exact_arch is False and got.version == max((v for v, _ in muslexports.available()),
                                                          key=muslexports.version_key)
    assert "malloc" in got


def _index_musl_version(index: Path) -> str:
    with tarfile.open(index, "r:gz") as tf:
        data = tf.extractfile("APKINDEX").read().decode()
    for block in data.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        if fields.get("P") == "musl":
            return fields["V"].split("-r")[0]
    raise AssertionError("no musl in " + str(index))


@pytest.mark.parametrize("release, index", [("3.20", "3.20-main-x86_64"), ("3.18", "3.18-main-aarch64")])
def test_alpine_table_agrees_with_real_indexes(release, index):
    path = SHARED / "index" / index / "APKINDEX.tar.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    assert muslexports.musl_for_alpine(release) == _index_musl_version(path)


def test_alpine_table_agrees_with_the_real_libraries_origins():
    # (../shared/alpine/README.md: 1.1.20-r6 from Alpine 3.9, 1.2.5-r0 from 3.20,
    # 1.2.4-r2 from 3.18, 1.2.2-r7 from 3.15)
    assert muslexports.musl_for_alpine("3.9") == "1.1.20"
    assert muslexports.musl_for_alpine("v3.20") == "1.2.5"
    assert muslexports.musl_for_alpine("3.18.4") == "1.2.4"
    assert muslexports.musl_for_alpine("3.15") == "1.2.2"
    assert muslexports.musl_for_alpine("edge") == "1.2.5"
    assert muslexports.musl_for_alpine("2.7") is None

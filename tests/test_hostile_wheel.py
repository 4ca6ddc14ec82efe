"""Hostile wheels through ``rundeps wheel``, end to end (real zips, real processes).

tests/test_wheel.py checks the library (:func:`rundeps.inputs.wheel.scan_wheel`);
these check what a user sees: one clear line on stderr, the documented exit
code (2 for a wheel that cannot be used, the others still checked), never a
traceback, and nothing from a refused member in the output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from wheelbuild import RawEntry, make_wheel, raw_zip, wheel_metadata  # noqa: E402

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
from scriptmods import demo, fz  # noqa: E402

LIBC = "libc.musl-x86_64.so.1"
TAG = "cp312-cp312-musllinux_1_2_x86_64"
NAME = "bad-1.0-cp312-cp312-musllinux_1_2_x86_64.whl"


def ext(*needed):
    return fz.craft_elf(needed=needed or (LIBC,))


@pytest.fixture
def db(tmp_path):
    p = tmp_path / "installed"
    p.write_text("\n".join([
        demo.db_block("musl", "1.2.5-r0", "x86_64", provides=[f"so:{LIBC}=1"]),
        demo.db_block("zlib", "1.3.1-r1", "x86_64", provides=["so:libz.so.1=1.3.1"]),
        demo.db_block("evil", "6.6.6-r0", "x86_64", provides=["so:libevil.so.1=1"]),
    ]))
    return p


def wheel_cmd(db, *args, timeout=60):
    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    r = subprocess.run([sys.executable, "-m", "rundeps", "wheel", "--db", str(db), "--arch", "x86_64",
                        "--no-cache", *map(str, args)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=timeout, cwd=str(PROJECT))
    r.stdout = r.stdout.decode("utf-8", "surrogateescape")
    r.stderr = r.stderr.decode("utf-8", "surrogateescape")
    assert "Traceback" not in r.stderr, r.stderr
    return r


def good_wheel(dest):
    return make_wheel(dest, "good", "1.0", [TAG], {"good/_x.so": ext("libz.so.1", LIBC), "good/__init__.py": b""})


def one_error(r, *words):
    lines = r.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("rundeps: error: "), lines
    for w in words:
        assert w in lines[0], lines
    return lines[0]


def test_good_wheel_baseline(tmp_path, db):
    r = wheel_cmd(db, good_wheel(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "needs nothing beyond the base image (musl, zlib)" in r.stdout and r.stderr == ""


def test_zip_bomb_ratio_refused(tmp_path, db):
    path = make_wheel(tmp_path, "bad", "1.0", [TAG], {"bad/_x.so": ext("libevil.so.1"),
                                                      "bad/zeros.bin": b"\0" * (8 << 20)})
    r = wheel_cmd(db, path)
    assert r.returncode == 2
    one_error(r, "zip bomb", "bad/zeros.bin")
    assert "evil" not in r.stdout


def test_zip_bomb_declared_size_refused_before_reading(tmp_path, db):
    # 64 KiB of data whose headers declare 3 GiB: refused from the central directory
    path = raw_zip(tmp_path / NAME, [RawEntry("bad-1.0.dist-info/WHEEL", wheel_metadata([TAG])),
                                     RawEntry("bad/_x.so", ext("libevil.so.1") + b"\0" * 65536,
                                              file_size=3 << 30)])
    r = wheel_cmd(db, path, timeout=30)
    assert r.returncode == 2
    one_error(r, "zip bomb", "bad/_x.so")


def test_member_stream_longer_than_declared(tmp_path, db):
    # a small declared size (no ratio alarm) whose stream inflates to 4 MiB
    data = ext("libevil.so.1") + b"\0" * (4 << 20)
    path = raw_zip(tmp_path / NAME, [RawEntry("bad-1.0.dist-info/WHEEL", wheel_metadata([TAG])),
                                     RawEntry("bad/_x.so", data, file_size=300)])
    r = wheel_cmd(db, path)
    assert r.returncode == 2
    one_error(r, "bad/_x.so")
    assert "evil" not in r.stdout


def test_traversal_and_absolute_members_reported_and_ignored(tmp_path, db):
    members = [
        ("../../usr/lib/libevil.so", ext("libevil.so.1")),
        ("/usr/lib/evil.so", ext("libevil.so.1")),
        ("good/../../escape.so", ext("libevil.so.1")),
        ("C:\\evil.so", ext("libevil.so.1")),
        ("good/_x.so", ext("libz.so.1", LIBC)),
    ]
    path = make_wheel(tmp_path, "good", "1.0", [TAG], members)
    r = wheel_cmd(db, "--format", "json", path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)[0]
    assert out["all_packages"] == ["musl", "zlib"]  # nothing from the refused members
    assert "evil" not in json.dumps(out["needed_by"]) and "libevil.so.1" not in out["unresolved"]
    lines = r.stderr.splitlines()
    assert len(lines) == 4, lines
    for member in ("../../usr/lib/libevil.so", "/usr/lib/evil.so", "good/../../escape.so", "C:\\evil.so"):
        assert sum(f":{member}: refused" in ln for ln in lines) == 1, (member, lines)
    # nothing was written anywhere: the wheel is read, never extracted
    assert not (tmp_path.parent / "usr").exists() and not (tmp_path / "escape.so").exists()


def test_duplicate_member_names_each_copy_counted(tmp_path, db):
    members = [("dup/_x.so", ext("libz.so.1", LIBC)), ("dup/_x.so", ext("libevil.so.1", LIBC))]
    path = make_wheel(tmp_path, "dup", "1.0", [TAG], members)
    r = wheel_cmd(db, "--format", "json", path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)[0]
    # The duplicate is named once, and every copy is resolved (which one an
    # installer keeps varies): the first copy's libz.so.1 and the second's libevil.so.1.
    assert {"evil", "zlib"} <= set(out["all_packages"])
    assert [ln for ln in r.stderr.splitlines() if "duplicate" in ln] == [
        f"rundeps: {path}:dup/_x.so: duplicate member name (every copy is scanned)"]


def test_truncated_zip(tmp_path, db):
    data = good_wheel(tmp_path / "src").read_bytes()
    for n in (len(data) // 2, len(data) - 10, 30):
        cut = tmp_path / NAME
        cut.write_bytes(data[:n])
        r = wheel_cmd(db, cut)
        assert r.returncode == 2, n
        one_error(r, NAME)


def test_zip_that_is_not_a_wheel(tmp_path, db):
    p = tmp_path / "plain-1.0-py3-none-any.whl"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("plain/_x.so", ext("libevil.so.1"))
    r = wheel_cmd(db, p)
    assert r.returncode == 2
    one_error(r, "not a wheel")
    assert "evil" not in r.stdout


def test_not_a_zip_and_missing_file(tmp_path, db):
    p = tmp_path / NAME
    p.write_bytes(b"<html>not a zip</html>\n")
    r = wheel_cmd(db, p)
    assert r.returncode == 2
    one_error(r, "not a zip")
    r = wheel_cmd(db, tmp_path / "missing.whl")
    assert r.returncode == 2
    one_error(r, "missing.whl")


def test_bad_wheels_do_not_stop_the_good_one(tmp_path, db):
    dist = tmp_path / "dist"
    good = good_wheel(dist)
    (dist / "a-1.0-py3-none-any.whl").write_bytes(b"junk")
    make_wheel(dist, "z", "1.0", [TAG], {"z/zeros.bin": b"\0" * (8 << 20)})
    r = wheel_cmd(db, dist)
    assert r.returncode == 2
    errors = r.stderr.splitlines()
    assert len(errors) == 2 and all(e.startswith("rundeps: error: ") for e in errors), errors
    assert f"{good.name}: musl, x86_64: needs nothing beyond the base image (musl, zlib)" in r.stdout


def test_member_names_with_control_characters_stay_on_one_line(tmp_path, db):
    members = [("bad/\x1b[2Jx\nrundeps: fake.so", ext("libz.so.1", LIBC)), ("../\r\x07.so", b"")]
    path = make_wheel(tmp_path, "bad", "1.0", [TAG], members)
    r = wheel_cmd(db, path)
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "\r" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rundeps: {path}:../"), lines
    assert not any(ln.startswith("rundeps: fake.so") for ln in (r.stdout + r.stderr).splitlines())

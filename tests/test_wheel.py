"""Tests for rundeps.inputs.wheel: reading ELF members straight from wheels."""

from __future__ import annotations

import platform
import posixpath
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rundeps.errors import RundepsError
from rundeps.inputs.wheel import (
    WheelError,
    WheelLimits,
    classify_platform,
    expand_tags,
    iter_wheels,
    parse_wheel_filename,
    scan_wheel,
)

from wheelbuild import (
    RawEntry,
    compile_so,
    gcc_available,
    make_vendored_wheel,
    make_wheel,
    raw_zip,
    wheel_metadata,
)

needs_gcc = pytest.mark.skipif(not gcc_available(), reason="gcc is needed to build ELF fixtures")

MUSL_TAG = "cp311-cp311-musllinux_1_1_x86_64"


@pytest.fixture(scope="module")
def simple_so(tmp_path_factory):
    if not gcc_available():
        pytest.skip("gcc is needed to build ELF fixtures")
    d = tmp_path_factory.mktemp("so")
    return compile_so(d, "libsimple.so.3", soname="libsimple.so.3", link=["-lm"]).read_bytes()


# -- names and tags --------------------------------------------------------------


def test_parse_wheel_filename():
    w = parse_wheel_filename("/x/numpy-1.26.4-cp312-cp312-musllinux_1_1_x86_64.whl")
    assert (w.name, w.version, w.build, w.python, w.abi, w.platform) == (
        "numpy", "1.26.4", None, "cp312", "cp312", "musllinux_1_1_x86_64",
    )
    w = parse_wheel_filename("pkg-2.0-1b-py2.py3-none-any.whl")
    assert w.build == "1b"
    assert w.tags == {("py2", "none", "any"), ("py3", "none", "any")}
    for bad in ("pkg-1.0.whl", "pkg-1.0-py3-none-any.zip", "a-b-c-d-e-f-g.whl", "pkg-1.0-x-py3-none-any.whl"):
        assert parse_wheel_filename(bad) is None, bad


def test_expand_tags():
    got = expand_tags("cp39.cp310", "abi3", "manylinux_2_17_x86_64.manylinux2014_x86_64")
    assert sorted(got) == [
        ("cp310", "abi3", "manylinux2014_x86_64"),
        ("cp310", "abi3", "manylinux_2_17_x86_64"),
        ("cp39", "abi3", "manylinux2014_x86_64"),
        ("cp39", "abi3", "manylinux_2_17_x86_64"),
    ]


@pytest.mark.parametrize(
    "tag, libc, arch, version",
    [
        ("musllinux_1_1_x86_64", "musl", "x86_64", (1, 1)),
        ("musllinux_1_2_aarch64", "musl", "aarch64", (1, 2)),
        ("musllinux_1_2_armv7l", "musl", "armv7", (1, 2)),
        ("musllinux_1_2_i686", "musl", "x86", (1, 2)),
        ("manylinux1_i686", "glibc", "x86", (2, 5)),
        ("manylinux2010_x86_64", "glibc", "x86_64", (2, 12)),
        ("manylinux2014_ppc64le", "glibc", "ppc64le", (2, 17)),
        ("manylinux_2_28_s390x", "glibc", "s390x", (2, 28)),
        ("manylinux_2_31_riscv64", "glibc", "riscv64", (2, 31)),
        ("manylinux_2_36_loongarch64", "glibc", "loongarch64", (2, 36)),
        ("linux_x86_64", "glibc", "x86_64", None),
        ("linux_mips", "glibc", None, None),
        ("any", "pure", None, None),
        ("macosx_11_0_arm64", "unknown", None, None),
        ("win_amd64", "unknown", None, None),
    ],
)
def test_classify_platform(tag, libc, arch, version):
    p = classify_platform(tag)
    assert (p.libc, p.arch, p.version) == (libc, arch, version)


# -- well-formed wheels --------------------------------------------------------------


@needs_gcc
def test_vendored_musllinux_wheel(tmp_path):
    vw = make_vendored_wheel(tmp_path / "build", tmp_path / "dist")
    problems = []
    scan = scan_wheel(str(vw.path), on_problem=lambda m, r: problems.append((m, r)))
    assert problems == [] and scan.problems == []
    assert (scan.name, scan.version) == ("fixturepkg", "1.0")
    assert scan.tags == {("cp311", "cp311", "musllinux_1_1_x86_64")}
    assert scan.libc == "musl" and scan.tag_libc == "musl"
    assert scan.arch == "x86_64"
    assert scan.dist_info == "fixturepkg-1.0.dist-info"
    assert scan.root_is_purelib is False

    by_path = {i.path: i for i in scan.items}
    ext_path = "/fixturepkg/_ext.cpython-311-x86_64-linux-musl.so"
    lib_path = "/fixturepkg.libs/libfixdep-0a1b2c3d.so.1"
    assert sorted(by_path) == [lib_path, ext_path]
    ext = by_path[ext_path].info
    assert ext.runpath == ("$ORIGIN/../fixturepkg.libs",)
    assert "libfixdep-0a1b2c3d.so.1" in ext.needed and "libm.so.6" in ext.needed
    if platform.machine() == "x86_64":
        assert ext.arch == "x86_64"
    assert by_path[lib_path].info.soname == "libfixdep-0a1b2c3d.so.1"
    assert by_path[lib_path].member == "fixturepkg.libs/libfixdep-0a1b2c3d.so.1"
    assert scan.elf(lib_path) is by_path[lib_path].info

    # $ORIGIN lookups answered without a filesystem
    origin = posixpath.dirname(ext_path)
    assert scan.has_file(origin + "/../fixturepkg.libs/libfixdep-0a1b2c3d.so.1")
    assert not scan.has_file(origin + "/../fixturepkg.libs/libnothere.so.1")
    assert scan.is_dir("/fixturepkg.libs") and scan.is_dir("/") and not scan.is_dir("/nope")
    assert "/fixturepkg-1.0.dist-info/RECORD" in scan.wheel_files
    assert scan.py_sources == [("/fixturepkg/__init__.py", "from ._ext import ext\n")]
    assert scan.elf_libc == "glibc"  # built by this host's gcc, which links glibc


@needs_gcc
def test_manylinux_wheel_compressed_tags_and_data_dir(tmp_path, simple_so):
    tags = ["cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64"]
    path = make_wheel(
        tmp_path,
        "mlpkg",
        "0.3",
        tags,
        {"mlpkg-0.3.data/platlib/mlpkg/_core.so": simple_so, "mlpkg/__init__.py": b""},
        filename="mlpkg-0.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    )
    scan = scan_wheel(str(path))
    assert scan.problems == []
    assert scan.libc == "glibc" and scan.arch == "x86_64"
    assert len(scan.tags) == 2
    assert [p.version for p in scan.platforms] == [(2, 17), (2, 17)]
    assert [(i.path, i.member) for i in scan.items] == [
        ("/mlpkg/_core.so", "mlpkg-0.3.data/platlib/mlpkg/_core.so")
    ]
    assert scan.items[0].info.soname == "libsimple.so.3"
    assert scan.has_file("/mlpkg/_core.so")


@needs_gcc
def test_linux_tag_with_musl_elf_is_musl(tmp_path):
    # a wheel built locally on Alpine is tagged linux_<arch>; its ELF files tell the libc
    b = tmp_path / "b"
    compile_so(b, "libc.musl-x86_64.so.1", soname="libc.musl-x86_64.so.1")
    ext = compile_so(
        b, "_m.so", "int f(void) { return 1; }\n",
        link=["-nostdlib", "-Wl,--no-as-needed", "-L", str(b), "-l:libc.musl-x86_64.so.1"],
    )
    path = make_wheel(tmp_path, "loc", "1", ["cp311-cp311-linux_x86_64"], {"loc/_m.so": ext.read_bytes()})
    scan = scan_wheel(str(path))
    assert scan.items[0].info.needed == ("libc.musl-x86_64.so.1",)
    assert scan.tag_libc == "glibc" and scan.elf_libc == "musl"
    assert scan.libc == "musl"


def test_pure_wheel_and_dlopen_sources(tmp_path):
    src = b"import ctypes.util\nLIB = ctypes.CDLL(ctypes.util.find_library('magic'))\n"
    path = make_wheel(
        tmp_path, "purepkg", "1.0", ["py3-none-any"],
        {"purepkg/__init__.py": b"", "purepkg/loader.py": src, "purepkg/data.bin": b"\x00" * 100},
        root_is_purelib=True,
    )
    scan = scan_wheel(str(path))
    assert scan.libc == "pure" and scan.arch is None and scan.items == []
    assert scan.root_is_purelib is True
    assert ("/purepkg/loader.py", src.decode()) in scan.py_sources
    from rundeps.loads.sourcefiles import find_wheel_loads

    found = find_wheel_loads(scan)
    assert [(f.name, f.path, f.line) for f in found] == [("magic", "/purepkg/loader.py", 2)]


def test_file_name_tags_used_without_tag_lines(tmp_path):
    path = make_wheel(tmp_path, "nt", "1", [], {"nt/__init__.py": b""},
                      filename="nt-1-cp312-cp312-musllinux_1_2_aarch64.whl")
    scan = scan_wheel(str(path))
    assert scan.libc == "musl" and scan.arch == "aarch64"


def test_tag_mismatch_reported(tmp_path):
    path = make_wheel(tmp_path, "mm", "1", ["cp312-cp312-musllinux_1_2_x86_64"], {"mm/__init__.py": b""},
                      filename="mm-1-cp312-cp312-manylinux_2_17_x86_64.whl")
    scan = scan_wheel(str(path))
    assert scan.libc == "musl"  # WHEEL wins
    assert any("differ" in r for _, r in scan.problems)


# -- hostile and broken archives ---------------------------------------------------


def _wheel_members(extra):
    """A minimal valid WHEEL plus ``extra`` raw entries."""
    return [RawEntry("bad-1.0.dist-info/WHEEL", wheel_metadata([MUSL_TAG]))] + list(extra)


def test_zip_bomb_of_zeros_refused(tmp_path):
    path = make_wheel(tmp_path, "bomb", "1", [MUSL_TAG], {"bomb/zeros.bin": b"\x00" * (8 * 1024 * 1024)})
    with zipfile.ZipFile(path) as zf:  # the fixture really is a high-ratio member
        zi = zf.getinfo("bomb/zeros.bin")
        assert zi.file_size > 200 * zi.compress_size
    with pytest.raises(WheelError, match="zip bomb.*bomb/zeros.bin"):
        scan_wheel(str(path))


def test_huge_declared_size_refused(tmp_path):
    # 64 KiB of zeros whose header declares 3 GiB
    path = raw_zip(tmp_path / "bad-1.0-cp311-cp311-musllinux_1_1_x86_64.whl",
                   _wheel_members([RawEntry("bad/huge.so", b"\x00" * 65536, file_size=3 * 1024 ** 3)]))
    with pytest.raises(WheelError, match="zip bomb.*bad/huge.so"):
        scan_wheel(str(path))


def test_ratio_limit_is_configurable(tmp_path):
    path = make_wheel(tmp_path, "r", "1", [MUSL_TAG], {"r/zeros.bin": b"\x00" * 200_000})
    scan_wheel(str(path))  # 200 kB is under the default ratio_min_size
    with pytest.raises(WheelError, match="zip bomb"):
        scan_wheel(str(path), limits=WheelLimits(ratio_min_size=100_000))


def test_stream_longer_than_declared_refused(tmp_path):
    data = b"\x7fELF" + b"\x00" * (1024 * 1024)
    path = raw_zip(tmp_path / "bad-1.0-cp311-cp311-musllinux_1_1_x86_64.whl",
                   _wheel_members([RawEntry("bad/liar.so", data, file_size=100)]))
    with pytest.raises(WheelError, match="bad/liar.so"):
        scan_wheel(str(path))


def test_stream_shorter_than_declared_refused(tmp_path):
    data = b"\x7fELF" + b"\x01" * 1000
    path = raw_zip(tmp_path / "bad-1.0-cp311-cp311-musllinux_1_1_x86_64.whl",
                   _wheel_members([RawEntry("bad/short.so", data, file_size=3000)]))
    with pytest.raises(WheelError, match="corrupt member bad/short.so"):
        scan_wheel(str(path))


@needs_gcc
def test_bad_crc_refused(tmp_path, simple_so):
    path = raw_zip(tmp_path / "bad-1.0-cp311-cp311-musllinux_1_1_x86_64.whl",
                   _wheel_members([RawEntry("bad/crc.so", simple_so, crc=12345)]))
    with pytest.raises(WheelError, match="corrupt member bad/crc.so"):
        scan_wheel(str(path))


@needs_gcc
def test_unsafe_member_paths_reported_and_skipped(tmp_path, simple_so):
    members = [
        ("../evil.so", simple_so),
        ("/etc/evil.so", simple_so),
        ("C:\\evil.so", simple_so),
        ("ok/..\\..\\evil.so", simple_so),
        ("ok/good.so", simple_so),
    ]
    path = make_wheel(tmp_path, "ok", "1", [MUSL_TAG], members)
    with zipfile.ZipFile(path) as zf:  # zipfile kept the names as written
        assert "../evil.so" in zf.namelist() and "/etc/evil.so" in zf.namelist()
    problems = []
    scan = scan_wheel(str(path), on_problem=lambda m, r: problems.append((m, r)))
    assert [i.path for i in scan.items] == ["/ok/good.so"]
    refused = sorted(m for m, r in problems if r.startswith("refused"))
    assert refused == sorted(["../evil.so", "/etc/evil.so", "C:\\evil.so", "ok/..\\..\\evil.so"])
    assert not any("evil" in p for p in scan.wheel_files)
    assert scan.problems == problems


@needs_gcc
def test_duplicate_member_names(tmp_path, simple_so):
    other = compile_so(tmp_path / "b", "libother.so.9", soname="libother.so.9").read_bytes()
    path = make_wheel(tmp_path, "dup", "1", [MUSL_TAG], [("dup/x.so", simple_so), ("dup/x.so", other)])
    scan = scan_wheel(str(path))
    assert [r for m, r in scan.problems if m == "dup/x.so" and "duplicate" in r]
    assert sorted(i.info.soname for i in scan.items) == ["libother.so.9", "libsimple.so.3"]


@needs_gcc
def test_oversized_elf_member_skipped(tmp_path, simple_so):
    path = make_wheel(tmp_path, "big", "1", [MUSL_TAG], {"big/x.so": simple_so, "big/y.txt": b"y" * 5000})
    scan = scan_wheel(str(path), limits=WheelLimits(max_member_size=len(simple_so) - 1))
    assert scan.items == []
    assert [m for m, r in scan.problems] == ["big/x.so"]
    assert "declares" in scan.problems[0][1]


@needs_gcc
def test_total_budget(tmp_path, simple_so):
    path = make_wheel(tmp_path, "bud", "1", [MUSL_TAG], {"bud/a.so": simple_so, "bud/b.so": simple_so})
    assert len(scan_wheel(str(path)).items) == 2
    with pytest.raises(WheelError, match="budget"):
        scan_wheel(str(path), limits=WheelLimits(max_total_size=len(simple_so) + 1000))


def test_broken_elf_member_reported(tmp_path):
    junk = b"\x7fELF" + b"\x09\x09\x09" + b"\x00" * 200
    path = make_wheel(tmp_path, "junk", "1", [MUSL_TAG], {"junk/x.so": junk, "junk/__init__.py": b""})
    scan = scan_wheel(str(path))
    assert scan.items == []
    assert [m for m, r in scan.problems] == ["junk/x.so"]


def test_encrypted_member_reported(tmp_path):
    path = raw_zip(tmp_path / "bad-1.0-cp311-cp311-musllinux_1_1_x86_64.whl",
                   _wheel_members([RawEntry("bad/secret.so", b"\x7fELFxxxx", flags=0x1)]))
    scan = scan_wheel(str(path))
    assert [(m, "encrypted" in r) for m, r in scan.problems] == [("bad/secret.so", True)]


def test_py_source_limits(tmp_path):
    path = make_wheel(tmp_path, "py", "1", ["py3-none-any"],
                      {"py/a.py": b"import ctypes\n" + b"#" * 3000, "py/b.py": b"x = 1\n", "py/bad.py": b"\xff\xfe\x00"})
    scan = scan_wheel(str(path), limits=WheelLimits(max_py_size=1000))
    assert [p for p, _ in scan.py_sources] == ["/py/b.py"]
    assert sorted(m for m, _ in scan.problems) == ["py/a.py", "py/bad.py"]


@needs_gcc
def test_truncated_zip(tmp_path):
    vw = make_vendored_wheel(tmp_path / "build", tmp_path / "dist")
    data = vw.path.read_bytes()
    cut = tmp_path / "cut-1.0-cp311-cp311-musllinux_1_1_x86_64.whl"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WheelError, match="zip") as info:
        scan_wheel(str(cut))
    assert isinstance(info.value, RundepsError)
    assert "\n" not in str(info.value)


def test_not_a_zip(tmp_path):
    p = tmp_path / "fake-1.0-py3-none-any.whl"
    p.write_text("this is not a zip\n")
    with pytest.raises(WheelError, match="not a zip"):
        scan_wheel(str(p))
    with pytest.raises(WheelError, match="cannot open"):
        scan_wheel(str(tmp_path / "missing.whl"))


def test_zip_without_wheel_metadata(tmp_path):
    p = tmp_path / "plain-1.0-py3-none-any.whl"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("plain/__init__.py", "")
    with pytest.raises(WheelError, match="not a wheel"):
        scan_wheel(str(p))
    scan = scan_wheel(str(p), require_metadata=False)
    assert scan.libc == "pure"  # from the file name
    assert any("WHEEL" in r for _, r in scan.problems)


def test_odd_file_name_reported(tmp_path):
    path = make_wheel(tmp_path, "odd", "1", [MUSL_TAG], {"odd/__init__.py": b""}, filename="odd.zip")
    scan = scan_wheel(str(path))
    assert scan.name is None and scan.libc == "musl"
    assert any("wheel name" in r for _, r in scan.problems)


def test_iter_wheels(tmp_path):
    (tmp_path / "b-1-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c-1-py3-none-any.whl").write_bytes(b"")
    assert iter_wheels(str(tmp_path)) == [
        str(tmp_path / "a-1-py3-none-any.whl"),
        str(tmp_path / "b-1-py3-none-any.whl"),
    ]
    assert iter_wheels(str(tmp_path / "notes.txt")) == [str(tmp_path / "notes.txt")]
    with pytest.raises(WheelError):
        iter_wheels(str(tmp_path / "sub" / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WheelError, match="no \\*.whl"):
        iter_wheels(str(tmp_path / "empty"))


# -- a real wheel from PyPI (skipped when it cannot be downloaded) ----------------


@pytest.fixture(scope="module")
def psycopg2_musl_wheel(tmp_path_factory):
    d = tmp_path_factory.mktemp("pypi")
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--platform", "musllinux_1_1_x86_64", "--python-version", "3.12", "--implementation", "cp",
        "--abi", "cp312", "--timeout", "15", "--retries", "0", "--dest", str(d), "psycopg2-binary==2.9.9",
    ]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError):
        pytest.skip("could not download psycopg2-binary from PyPI")
    wheels = sorted(Path(d).glob("*.whl"))
    if not wheels:
        pytest.skip("pip downloaded no wheel")
    return wheels[0]


def test_real_musllinux_wheel(psycopg2_musl_wheel):
    scan = scan_wheel(str(psycopg2_musl_wheel))
    assert scan.name == "psycopg2_binary" and scan.version == "2.9.9"
    assert scan.libc == "musl" and scan.arch == "x86_64" and scan.elf_libc == "musl"
    assert scan.problems == []
    ext = [i for i in scan.items if i.path.startswith("/psycopg2/_psycopg")]
    assert len(ext) == 1
    info = ext[0].info
    assert info.arch == "x86_64"
    libpq = [n for n in info.needed if n.startswith("libpq-")]
    assert len(libpq) == 1
    # every vendored library the extension needs is in the wheel, found through $ORIGIN
    origin = posixpath.dirname(ext[0].path)
    dirs = [r.replace("$ORIGIN", origin) for r in info.runpath + info.rpath]
    assert dirs
    for name in info.needed:
        if name.startswith("libc.musl"):
            continue
        assert any(scan.has_file(d + "/" + name) for d in dirs), name
    vendored = [i for i in scan.items if i.path.startswith("/psycopg2_binary.libs/")]
    assert any(i.info.soname == libpq[0] for i in vendored)


# -- fuzzing: a damaged wheel gives WheelError or a scan, never another exception ----

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def small_wheel_bytes(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    src = b"import ctypes\nctypes.CDLL('libfuzz.so.1')\n"
    junk_elf = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 2
    path = make_wheel(d, "fz", "1", [MUSL_TAG], {"fz/a.py": src, "fz/x.so": junk_elf, "fz/d.txt": b"d" * 300})
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_wheels_fail_cleanly(tmp_path, small_wheel_bytes, data):
    blob = bytearray(small_wheel_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        # half the damage goes to the headers at the end (central directory)
        low = data.draw(st.sampled_from([0, max(0, len(blob) - 400)]))
        pos = data.draw(st.integers(low, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    p = tmp_path / "fz-1-cp311-cp311-musllinux_1_1_x86_64.whl"
    p.write_bytes(bytes(blob))
    try:
        scan_wheel(str(p))
    except WheelError as exc:
        assert "\n" not in str(exc)


def test_control_characters_in_names_do_not_break_lines(tmp_path):
    path = make_wheel(tmp_path, "cc", "1", [MUSL_TAG], {"../evil\nline.so": b"x", "cc/__init__.py": b""})
    scan = scan_wheel(str(path))
    assert [m for m, _ in scan.problems] == ["../evil\\nline.so"]
    bomb = raw_zip(tmp_path / "bad-1.0-cp311-cp311-musllinux_1_1_x86_64.whl",
                   _wheel_members([RawEntry("bad/z\r\n.bin", b"\x00" * 65536, file_size=3 * 1024 ** 3)]))
    with pytest.raises(WheelError) as info:
        scan_wheel(str(bomb))
    assert "\n" not in str(info.value) and "\r" not in str(info.value)

"""`rundeps scan` end to end: real gcc-built ELF files, real roots, real processes."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
SHARED = PROJECT.parent / "shared" / "alpine"
PHP_DB = SHARED / "installed" / "alpine-3.21-x86_64-php.installed"

from ptyrun import run_with_terminal_stderr  # noqa: E402
from scriptmods import demo  # noqa: E402

ARCH = demo.host_arch()
LIBC = demo.musl_soname(ARCH)
SITE = "/usr/local/lib/python3.12/site-packages"
TAG = f"cpython-312-{ARCH}-linux-musl"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build ELF fixtures")


def run(*args, env=None, cwd=None):
    """Run rundeps as a user would: a real process."""
    full_env = dict(os.environ)
    full_env.pop("RUNDEPS_CACHE_DIR", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rundeps", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "root"
    demo.build_demo_root(root, workdir=tmp_path_factory.mktemp("build"))
    return root


@pytest.fixture()
def builder(tmp_path):
    return demo.Builder(tmp_path / "build")


@pytest.fixture()
def cache(tmp_path):
    return ["--cache-dir", str(tmp_path / "cache")]


def copy_root(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_demo_root_json(demo_root, cache):
    r = run("scan", "--root", demo_root, "--format", "json", "/usr/local", *cache)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["arch"] == ARCH
    assert out["packages"] == ["libpq", "libsharpyuv", "tiff"]
    assert out["all_packages"] == ["libjpeg-turbo", "libpq", "libsharpyuv", "musl", "tiff", "zlib"]
    assert out["providers"] == {
        LIBC: "musl",
        "libjpeg.so.8": "libjpeg-turbo",
        "libpq.so.5": "libpq",
        "libsharpyuv.so.0": "libsharpyuv",
        "libtiff.so.6": "tiff",
        "libz.so.1": "zlib",
    }
    assert out["in_tree"] == {
        "libpython3.12.so.1.0": "/usr/local/lib/libpython3.12.so.1.0",
        "libwebp-1a2b3c4d.so.7.1.8": f"{SITE}/pillow.libs/libwebp-1a2b3c4d.so.7.1.8",
    }
    assert out["unresolved"] == {}
    assert out["needed_by"]["libpq"] == [f"{SITE}/psycopg2/_psycopg.{TAG}.so"]
    # the vendored library needs libsharpyuv: found in /usr/lib, owned by a package without so: provides
    assert out["needed_by"]["libsharpyuv"] == [f"{SITE}/pillow.libs/libwebp-1a2b3c4d.so.7.1.8"]
    assert out["source"]["tiff"] == "installed"
    assert out["glibc_linked"] == {}
    # no host path leaks into the output
    assert str(demo_root) not in r.stdout
    # the linker script libfoo.so is not ELF: skipped silently
    assert r.stderr == ""


def test_minimal_set_closed_over_depends_covers_full_set(demo_root, cache):
    from rundeps.apk.model import Universe, parse_installed

    out = json.loads(run("scan", "--root", demo_root, "--format", "json", *cache).stdout)
    u = Universe([parse_installed((demo_root / "lib/apk/db/installed").read_text())])
    covered = set()
    for name in out["packages"]:
        covered.add(name)
        covered |= {p.name for p in u.closure(u.package(name))}
    assert set(out["all_packages"]) <= covered


def test_default_format_names_and_all(demo_root, cache):
    r = run("scan", "--root", demo_root, *cache)
    assert r.returncode == 0
    assert r.stdout == "libpq\nlibsharpyuv\ntiff\n"
    r = run("scan", "--root", demo_root, "--all", *cache)
    assert r.stdout.split() == ["libjpeg-turbo", "libpq", "libsharpyuv", "musl", "tiff", "zlib"]


def test_format_apk_so_and_tree(demo_root, cache):
    r = run("scan", "--root", demo_root, "--format", "apk", *cache)
    assert r.stdout == "apk add --no-cache --virtual .rundeps libpq libsharpyuv tiff\n"
    r = run("scan", "--root", demo_root, "--format", "apk", "--virtual", ".py-rundeps", *cache)
    assert r.stdout.startswith("apk add --no-cache --virtual .py-rundeps ")
    r = run("scan", "--root", demo_root, "--format", "so", *cache)
    # the minimal set, as names gives it; libsharpyuv declares no so: provide, so apk needs its name
    assert r.stdout.split() == ["libsharpyuv", "so:libpq.so.5", "so:libtiff.so.6"]
    r = run("scan", "--root", demo_root, "--format", "so", "--all", *cache)
    assert r.stdout.split() == [
        "libsharpyuv", f"so:{LIBC}", "so:libjpeg.so.8", "so:libpq.so.5", "so:libtiff.so.6", "so:libz.so.1"
    ]
    r = run("scan", "--root", demo_root, "--format", "tree", *cache)
    lines = r.stdout.splitlines()
    i = lines.index("libpq")
    assert lines[i + 1 : i + 3] == ["  libpq.so.5", f"    {SITE}/psycopg2/_psycopg.{TAG}.so"]
    assert "zlib  (pulled in by tiff)" in lines
    assert "(in tree)" in lines


def test_vendored_library_found_through_runpath_outside_scanned_path(demo_root, cache):
    r = run("scan", "--root", demo_root, "--format", "json", f"{SITE}/PIL", *cache)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["in_tree"] == {"libwebp-1a2b3c4d.so.7.1.8": f"{SITE}/pillow.libs/libwebp-1a2b3c4d.so.7.1.8"}
    assert out["packages"] == ["libsharpyuv", "tiff"]


def test_unresolved_exit_1_and_allow_unresolved(demo_root, tmp_path, builder, cache):
    root = copy_root(demo_root, tmp_path / "root")
    builder.shared(root / "usr/local/lib/python3.12/site-packages/magic/_x.so", needed=["libmissing.so.9", LIBC])
    builder.shared(root / "usr/local/lib/python3.12/site-packages/magic/_y.so", needed=["libmissing.so.9"])
    r = run("scan", "--root", root, *cache)
    assert r.returncode == 1
    assert r.stdout == "libpq\nlibsharpyuv\ntiff\n"
    assert r.stderr.strip() == (
        f"rundeps: error: libmissing.so.9 not found (needed by {SITE}/magic/_x.so and 1 more)"
    )
    out = json.loads(run("scan", "--root", root, "--format", "json", *cache).stdout)
    assert out["unresolved"] == {"libmissing.so.9": [f"{SITE}/magic/_x.so", f"{SITE}/magic/_y.so"]}
    r = run("scan", "--root", root, "--allow-unresolved", *cache)
    assert r.returncode == 0
    assert "warning: libmissing.so.9 not found" in r.stderr


def test_missing_root_and_database_exit_2(tmp_path, demo_root, cache):
    r = run("scan", "--root", tmp_path / "nope", *cache)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "nope" in r.stderr and "Traceback" not in r.stderr
    bare = tmp_path / "bare"
    shutil.copytree(demo_root / "usr", bare / "usr", symlinks=True)
    r = run("scan", "--root", bare, *cache)
    assert r.returncode == 2
    assert "no installed database" in r.stderr and r.stderr.count("\n") == 1
    r = run("scan", "--root", bare, "--db", tmp_path / "missing.installed", *cache)
    assert r.returncode == 2 and "missing.installed" in r.stderr
    # --db names the database explicitly
    r = run("scan", "--root", bare, "--db", demo_root / "lib/apk/db/installed", "--all", *cache)
    assert r.returncode == 0, r.stderr
    assert "libpq" in r.stdout.split()
    r = run("scan", "--root", demo_root, "/does/not/exist", *cache)
    assert r.returncode == 2 and "/does/not/exist" in r.stderr


def test_bad_usage_exit_2(demo_root):
    r = run("scan", "--format", "yaml")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_exclude_glob(demo_root, cache):
    r = run("scan", "--root", demo_root, "--exclude", "*psycopg2*", *cache)
    assert r.stdout.split() == ["libsharpyuv", "tiff"]


def test_search_path_file_replaces_default(demo_root, tmp_path, builder, cache):
    root = copy_root(demo_root, tmp_path / "root")
    builder.shared(root / "opt/vendor/lib/libvendor.so.2", soname="libvendor.so.2", needed=[LIBC])
    builder.shared(root / "usr/local/lib/uses_vendor.so", needed=["libvendor.so.2", LIBC])
    r = run("scan", "--root", root, "--format", "json", *cache)
    assert json.loads(r.stdout)["unresolved"] == {"libvendor.so.2": ["/usr/local/lib/uses_vendor.so"]}
    ld_arch = {"x86_64": "x86_64", "aarch64": "aarch64"}[ARCH]
    (root / f"etc/ld-musl-{ld_arch}.path").write_text("/lib\n/usr/local/lib:/usr/lib\n/opt/vendor/lib\n")
    out = json.loads(run("scan", "--root", root, "--format", "json", *cache).stdout)
    assert out["unresolved"] == {}
    assert out["in_tree"]["libvendor.so.2"] == "/opt/vendor/lib/libvendor.so.2"


def test_rpath_of_the_loading_object_is_searched(tmp_path, demo_root, builder, cache):
    """musl searches the RPATH of the objects that loaded a library, too."""
    root = copy_root(demo_root, tmp_path / "root")
    app = root / "usr/local/app"
    builder.shared(app / "deps/libinner.so.1", soname="libinner.so.1", needed=[LIBC])
    # libouter has no run path of its own: libinner is found through the executable's RPATH
    builder.shared(app / "deps/libouter.so.1", soname="libouter.so.1", needed=["libinner.so.1", LIBC])
    builder.executable(app / "bin/app", needed=["libouter.so.1", LIBC], rpath="$ORIGIN/../deps")
    r = run("scan", "--root", root, "--format", "json", "/usr/local/app/bin", *cache)
    out = json.loads(r.stdout)
    assert r.returncode == 0, r.stderr
    assert out["in_tree"] == {
        "libinner.so.1": "/usr/local/app/deps/libinner.so.1",
        "libouter.so.1": "/usr/local/app/deps/libouter.so.1",
    }


def test_run_path_through_symlinked_folders_and_names(tmp_path, demo_root, builder, cache):
    """The loader opens <run path>/<soname>: a run path that is a symlinked
    folder, a soname that is a symlink, a run path folder that loops or is
    missing; the library's own needs are resolved from its real file."""
    root = copy_root(demo_root, tmp_path / "root")
    app = root / "usr/local/app"
    builder.shared(app / "real_libs/libinner.so.1.0.0", soname="libinner.so.1", needed=["libz.so.1", LIBC])
    os.symlink("libinner.so.1.0.0", app / "real_libs/libinner.so.1")
    os.symlink("real_libs", app / "libs")
    os.symlink("loop_b", app / "loop_a")
    os.symlink("loop_a", app / "loop_b")
    builder.executable(app / "bin/app", needed=["libinner.so.1", LIBC],
                       rpath="$ORIGIN/../loop_a:$ORIGIN/../missing:$ORIGIN/../libs")
    r = run("scan", "--root", root, "--format", "json", "/usr/local/app/bin", *cache)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["in_tree"] == {"libinner.so.1": "/usr/local/app/libs/libinner.so.1"}
    assert out["needed_by"]["zlib"] == ["/usr/local/app/libs/libinner.so.1"]
    # Scanning the whole app too: the library is also a scanned file (known by
    # its real path), and the answer is the same.
    out2 = json.loads(run("scan", "--root", root, "--format", "json", "/usr/local/app", *cache).stdout)
    assert out2["in_tree"] == out["in_tree"]
    # the library is loaded only by the program: judged (and its needs counted) inside that load
    assert out2["needed_by"]["zlib"] == ["/usr/local/app/libs/libinner.so.1"]
    assert "/usr/local/app/real_libs/libinner.so.1.0.0" not in out2["units"]


def test_glibc_linked_files_are_reported_and_resolved_as_musl_does(tmp_path, demo_root, builder, cache):
    """musl's loader serves libc.so.6 itself (its reserved names); a glibc
    program whose loader (PT_INTERP) the root lacks cannot start at all."""
    root = copy_root(demo_root, tmp_path / "root")
    builder.executable(root / "usr/local/bin/glibc-tool", needed=["libc.so.6", "libz.so.1"],
                       interp="/lib64/ld-linux-x86-64.so.2")
    r = run("scan", "--root", root, "--symbols", "--format", "json", "/usr/local/bin", *cache)
    out = json.loads(r.stdout)
    assert out["glibc_linked"] == {"/usr/local/bin/glibc-tool": ["libc.so.6"]}
    assert out["providers"]["libc.so.6"] == "musl"
    assert out["providers"]["libz.so.1"] == "zlib"
    assert not (root / "lib64/ld-linux-x86-64.so.2").exists()
    assert "/lib64/ld-linux-x86-64.so.2" in out["will_not_load"]["/usr/local/bin/glibc-tool"]
    assert r.returncode == 1
    assert "/usr/local/bin/glibc-tool will not load: its loader /lib64/ld-linux-x86-64.so.2" in r.stderr


def test_no_root_scans_host_paths_with_db(demo_root, cache):
    """Without --root, PATHs are host paths and the database is named with --db."""
    site = demo_root / SITE.lstrip("/")
    r = run("scan", "--db", demo_root / "lib/apk/db/installed", "--format", "json", site / "psycopg2", *cache)
    out = json.loads(r.stdout)
    assert out["packages"] == ["libpq"]
    assert out["needed_by"]["libpq"] == [str(site / f"psycopg2/_psycopg.{TAG}.so")]


def test_python_dash_m_and_console_script_help():
    r = run("--help")
    assert r.returncode == 0
    listed = re.findall(r"^  (\w+)  ", r.stdout.split("Commands:")[1], re.M)
    assert listed == ["scan", "why", "wheel", "index", "schema"]
    r = run("scan", "--help")
    assert "Exit codes" in r.stdout and "--root" in r.stdout
    script = shutil.which("rundeps")
    if script:  # installed (pip install -e . in CI): the console script too
        r = subprocess.run([script, "why", "--help"], stdout=subprocess.PIPE, text=True, timeout=60)
        assert r.returncode == 0 and "Explain why NAME" in r.stdout


def test_a_command_loads_only_its_own_module():
    """Subcommands are imported when they run: scan builds no other command."""
    code = ("import sys; from rundeps.cli import cli; cli.main(['scan', '--help'], standalone_mode=False);"
            "print(sorted(m for m in sys.modules if m.startswith('rundeps.commands.')), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "['rundeps.commands.common', 'rundeps.commands.scan']"


# -- against a real installed database --------------------------------------------

needs_php_db = pytest.mark.skipif(not PHP_DB.exists(), reason="../shared/alpine is not here")


def _pipeline_packages(root: Path, db_text: str):
    """The scanelf | awk | apk info --installed pipeline, with apk info emulated
    by a plain text search of the database's p: lines."""
    out = subprocess.run(["scanelf", "--needed", "--nobanner", "--recursive", str(root / "usr/local")],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            names.update("so:" + n for n in fields[1].split(","))
    packages, junk = set(), set()
    blocks = db_text.split("\n\n")
    for name in names:
        hits = [b for b in blocks if re.search(r"^p:(.* )?" + re.escape(name) + r"(=| |$)", b, re.M)]
        if not hits:
            junk.add(name)
            continue
        packages.add(re.search(r"^P:(.*)$", hits[0], re.M).group(1))
    return packages, junk


@needs_php_db
@pytest.mark.skipif(ARCH != "x86_64", reason="the php database is x86_64")
@pytest.mark.skipif(shutil.which("scanelf") is None, reason="pax-utils' scanelf is the reference")
def test_real_database_matches_the_scanelf_pipeline(tmp_path, builder, cache):
    text = PHP_DB.read_text()
    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(text)
    # the real libraries, where the database says they are (stubs with the right soname)
    builder.shared(root / "usr/lib/libxml2.so.2.13.4", soname="libxml2.so.2", needed=[LIBC])
    os.symlink("libxml2.so.2.13.4", root / "usr/lib/libxml2.so.2")
    builder.shared(root / "usr/lib/libz.so.1.3.1", soname="libz.so.1", needed=[LIBC])
    os.symlink("libz.so.1.3.1", root / "usr/lib/libz.so.1")
    site = root / "usr/local/lib/python3.12/site-packages"
    builder.shared(site / "lxml/etree.so", needed=["libxml2.so.2", "libz.so.1", LIBC])
    builder.shared(site / "pycurl.so", needed=["libcurl.so.4", "libssl.so.3", "libcrypto.so.3", LIBC])
    builder.shared(site / "zstd.so", needed=["libzstd.so.1", LIBC])
    builder.shared(site / "argon2/_ffi.so", needed=["libargon2.so.1", LIBC])
    builder.shared(site / "pcre.libs/libpcre2-8-0a1b2c3d.so.0", soname="libpcre2-8-0a1b2c3d.so.0", needed=[LIBC])
    builder.shared(site / "pcre/_pcre.so", needed=["libpcre2-8-0a1b2c3d.so.0", LIBC], runpath="$ORIGIN/../pcre.libs")
    builder.shared(root / "usr/local/lib/libnoneeded.so")  # no NEEDED: the pipeline's junk line
    expected, junk = _pipeline_packages(root, text)
    r = run("scan", "--root", root, "--format", "json", "/usr/local", *cache)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["all_packages"]) == expected
    assert expected == {"libxml2", "zlib", "libcurl", "libssl3", "libcrypto3", "zstd-libs", "argon2-libs", "musl"}
    # what the pipeline hands to apk and apk cannot find: junk and vendored libraries
    assert "so:libpcre2-8-0a1b2c3d.so.0" in junk
    assert any(j.startswith("so:/") for j in junk)
    assert out["in_tree"] == {"libpcre2-8-0a1b2c3d.so.0": "/usr/local/lib/python3.12/site-packages/pcre.libs/libpcre2-8-0a1b2c3d.so.0"}
    assert out["unresolved"] == {}
    # libxml2 and zlib are found as files the packages own
    assert out["providers"]["libxml2.so.2"] == "libxml2"
    # libcurl pulls in libssl3, libcrypto3, zlib, zstd-libs and musl (its D: line); the minimal set drops them
    assert out["packages"] == ["argon2-libs", "libcurl", "libxml2"]


def test_progress_only_on_a_terminal(demo_root, tmp_path, cache):
    root = copy_root(demo_root, tmp_path / "root")
    many = root / "usr/local/share/many"
    many.mkdir(parents=True)
    for i in range(2500):
        (many / f"f{i}").write_bytes(b"")
    proc, seen = run_with_terminal_stderr("scan", "--root", str(root), *cache)
    assert proc.returncode == 0
    assert proc.stdout == b"libpq\nlibsharpyuv\ntiff\n"
    assert re.search(rb"\rScanning: \d{4} files", seen)
    # erased when done, before the one size line (on a terminal only)
    assert re.search(rb"\r\x1b\[Krundeps: adds [^\r\n]*\r\n$", seen), seen[-200:]
    # not a terminal: no progress at all
    r = run("scan", "--root", root, *cache)
    assert r.stderr == ""
    r = run("scan", "--root", root, "--no-progress", *cache)
    assert r.stderr == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_that_cannot_be_written_is_one_line(demo_root, cache):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--root", str(demo_root), *cache],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "rundeps: error: cannot continue: No space left on device\n"

"""CLI and library hygiene (issue 10, item 7): real processes, real files."""

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

import indexbuild
from test_cli_index import server  # noqa: F401  (a fixture)
from test_scan import ARCH, LIBC, demo, run

PROJECT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the ELF fixtures")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "root"
    demo.build_demo_root(root, workdir=tmp_path_factory.mktemp("build"))
    return root


def py(code, **kw):
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    env.pop("RUNDEPS_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, **kw)


# -- rundeps.cli.main is a library call -------------------------------------------------------


def test_cli_main_does_not_end_the_calling_process(demo_root, tmp_path):
    code = (
        "import sys\n"
        "from rundeps.cli import main\n"
        "for argv in (['--version'], ['scan', '--root', sys.argv[1], '--cache-dir', sys.argv[2]],"
        " ['scan', '--arch', 'nope', '/']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        print('carried on after', argv[0], 'with', exc.code, flush=True)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(demo_root), str(tmp_path / "c")], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(PROJECT)), timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("carried on")]
    assert lines == ["carried on after --version with 0", "carried on after scan with 0",
                     "carried on after scan with 2"], (r.stdout, r.stderr)
    assert r.returncode == 0
    assert "tiff" in r.stdout.split()


def test_console_script_still_exits_with_the_code(demo_root, tmp_path):
    r = run("scan", "--root", demo_root, "--cache-dir", tmp_path / "c")
    assert r.returncode == 0 and r.stdout.split() == ["libpq", "libsharpyuv", "tiff"]
    r = run("scan", "--root", demo_root, "--cache-dir", tmp_path / "c", "/nowhere")
    assert r.returncode == 2


def test_closed_stdout_is_one_line_and_exit_2(demo_root, tmp_path):
    cmd = f'"{sys.executable}" -m rundeps scan --root "{demo_root}" --cache-dir "{tmp_path / "c"}" >&-'
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr == "rundeps: error: cannot write the output: standard output is closed\n"
    # and nothing was written into the cache folder through descriptor 1
    assert not (tmp_path / "c").exists()


# -- arch ---------------------------------------------------------------------------------------


def test_arch_is_checked_and_a_mismatch_warned(demo_root, tmp_path):
    r = run("scan", "--root", demo_root, "--arch", "amd64", "--cache-dir", tmp_path / "c")
    assert r.returncode == 2 and "unknown arch 'amd64'" in r.stderr and "x86_64" in r.stderr
    other = "aarch64" if ARCH != "aarch64" else "x86_64"
    r = run("scan", "--root", demo_root, "--arch", other, "--allow-unresolved", "--cache-dir", tmp_path / "c")
    warning = [ln for ln in r.stderr.splitlines() if "warning: --arch" in ln]
    assert warning == [f"rundeps: warning: --arch {other}, but the scanned files are {ARCH} (6 files): "
                       f"their libraries cannot serve an {other} image"], r.stderr
    # no warning when --arch agrees with the files
    r = run("scan", "--root", demo_root, "--arch", ARCH, "--cache-dir", tmp_path / "c")
    assert r.returncode == 0 and r.stderr == ""


# -- why -q / --format json ---------------------------------------------------------------------


def test_why_json_and_quiet(demo_root, tmp_path):
    cache = ["--cache-dir", tmp_path / "c"]
    r = run("why", "zlib", "--root", demo_root, "--format", "json", *cache)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["kind"] == "package" and out["needed"] is True and out["in_minimal_set"] is False
    assert out["chains"] == [["tiff", "zlib"]] and out["pulled_in_by"] == ["tiff"]
    assert out["sonames"] == {"libz.so.1": [
        f"/usr/local/lib/python3.12/site-packages/PIL/_imaging.cpython-312-{ARCH}-linux-musl.so"]}
    r = run("why", "libz.so.1", "--root", demo_root, "--format", "json", *cache)
    out = json.loads(r.stdout)
    assert out["kind"] == "soname" and {e["package"] for e in out["edges"]} == {"zlib"}
    r = run("why", "libssl3", "--root", demo_root, "--format", "json", *cache)
    out = json.loads(r.stdout)
    assert out["kind"] == "package" and out["sonames"] == {} and out["chains"] == [["libpq", "libssl3"]]
    r = run("why", "nothing-needs-me", "--root", demo_root, "--format", "json", *cache)
    assert r.returncode == 1 and json.loads(r.stdout) == {"name": "nothing-needs-me", "kind": "none", "needed": False}
    # warnings go to stderr unless -q
    other = "aarch64" if ARCH != "aarch64" else "x86_64"
    r = run("why", "zlib", "--root", demo_root, "--arch", other, *cache)
    assert "warning: --arch" in r.stderr
    r = run("why", "zlib", "--root", demo_root, "--arch", other, "-q", *cache)
    assert "warning" not in r.stderr


# -- options ----------------------------------------------------------------------------------


def test_index_subcommands_list_only_their_options():
    show = run("index", "show", "--help").stdout
    update = run("index", "update", "--help").stdout
    clear = run("index", "clear", "--help").stdout
    for unused in ("--db", "--offline", "--refresh", "--no-cache", "--allow-untrusted"):
        assert unused not in show, unused
    for unused in ("--db", "--offline", "--refresh", "--no-cache"):
        assert unused not in update, unused
    for used in ("--index", "--repo", "--alpine", "--root", "--arch", "--keys-dir", "--cache-dir"):
        assert used in show and used in update
    assert "--allow-untrusted" in update
    assert "--cache-dir" in clear and "--repo" not in clear and "--arch" not in clear


def test_virtual_must_be_a_package_name(demo_root, tmp_path):
    for bad in ("", "-x", "a b", "a;b"):
        r = run("scan", "--root", demo_root, "--format", "apk", "--virtual", bad, "--cache-dir", tmp_path / "c")
        assert r.returncode == 2 and "--virtual" in r.stderr and r.stdout == "", bad
    r = run("scan", "--root", demo_root, "--format", "apk", "--virtual", ".my-deps", "--cache-dir", tmp_path / "c")
    assert r.stdout == "apk add --no-cache --virtual .my-deps libpq libsharpyuv tiff\n"


def test_format_so_is_the_same_set_as_names(demo_root, tmp_path):
    cache = ["--cache-dir", tmp_path / "c"]
    # the root's database: which so: names each package provides (read with the test's own eyes)
    provides = {}
    block = {}
    for line in (demo_root / "lib/apk/db/installed").read_text().splitlines() + [""]:
        if not line:
            if "P" in block:
                provides[block["P"]] = block.get("p", "").split()
            block = {}
        elif line[1:2] == ":" and line[0] not in block:
            block[line[0]] = line[2:]
    for extra in ((), ("--all",)):
        names = run("scan", "--root", demo_root, *extra, *cache).stdout.split()
        so = run("scan", "--root", demo_root, "--format", "so", *extra, *cache).stdout.split()
        back = set()
        for item in so:
            if item.startswith("so:"):
                owners = {p for p, prov in provides.items() if any(a.split("=")[0] == item for a in prov)}
                assert len(owners) == 1, item
                back |= owners
            else:
                back.add(item)
        assert back == set(names), (extra, so, names)
    assert "so:libz.so.1" not in run("scan", "--root", demo_root, "--format", "so", *cache).stdout


# -- non-UTF-8 names in JSON -----------------------------------------------------------------


def test_non_utf8_paths_round_trip_through_json(tmp_path):
    from scriptmods import fz

    root = tmp_path / "root"
    lib = root / "usr/local/lib"
    lib.mkdir(parents=True)
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(demo.db_block("musl", "1", ARCH, provides=[f"so:{LIBC}=1"]))
    names = [b"lib\xff\xfe100%.so", b"caf\xc3\xa9 %41.so", b"plain.so"]
    for name in names:
        with open(os.fsencode(lib) + b"/" + name, "wb") as f:
            f.write(fz.craft_elf(needed=[LIBC, "libnothere.so.1"]))
    r = subprocess.run([sys.executable, "-m", "rundeps", "scan", "--root", str(root), "--format", "json",
                        "--allow-unresolved", "--cache-dir", str(tmp_path / "c")],
                       capture_output=True, env=dict(os.environ, PYTHONPATH=str(PROJECT)), timeout=120)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode("utf-8")  # valid UTF-8, no lone surrogates
    assert "\\udc" not in text
    files = json.loads(text)["unresolved"]["libnothere.so.1"]
    assert sorted(urllib.parse.unquote_to_bytes(f) for f in files) == sorted(
        b"/usr/local/lib/" + n for n in names)
    assert "/usr/local/lib/plain.so" in files and "/usr/local/lib/lib%FF%FE100%25.so" in files
    assert "/usr/local/lib/café %2541.so" in files
    if shutil.which("jq"):
        jq = subprocess.run(["jq", "-r", '.unresolved["libnothere.so.1"][]'], input=r.stdout,
                            capture_output=True, timeout=30)
        assert sorted(urllib.parse.unquote_to_bytes(line) for line in jq.stdout.decode().splitlines()) == sorted(
            b"/usr/local/lib/" + n for n in names)


# -- shell completion --------------------------------------------------------------------------


def test_shell_completion_works_as_documented():
    page = (PROJECT / "docs" / "commands.md").read_text()
    assert '_RUNDEPS_COMPLETE=bash_source rundeps' in page
    env = dict(os.environ, PYTHONPATH=str(PROJECT), _RUNDEPS_COMPLETE="bash_complete",
               COMP_WORDS="rundeps sc", COMP_CWORD="1")
    r = subprocess.run([sys.executable, "-m", "rundeps"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["plain,scan"]
    env.update(COMP_WORDS="rundeps index show --of", COMP_CWORD="3")
    r = subprocess.run([sys.executable, "-m", "rundeps"], capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.split() == []  # index show has no --offline


# -- index show without a selection ----------------------------------------------------------


def test_index_show_lists_every_cached_index(tmp_path, server):
    www, url, _ = server
    cache = ["--cache-dir", tmp_path / "c"]
    r = run("index", "show", *cache)
    assert r.returncode == 0 and r.stdout == f"no downloaded index cached in {tmp_path / 'c' / 'index'}\n"
    keys = tmp_path / "keys"
    keys.mkdir()
    key = indexbuild.new_key()
    indexbuild.write_key(keys, "test@example.org-1.rsa.pub", key)
    (www / f"main/{ARCH}").mkdir(parents=True)
    (www / f"main/{ARCH}/APKINDEX.tar.gz").write_bytes(indexbuild.make_index(
        indexbuild.package_block("musl", "1.2.5-r0", arch=ARCH, p=f"so:{LIBC}=1"), key, "test@example.org-1.rsa.pub"))
    r = run("index", "update", "--repo", f"{url}/main", "--arch", ARCH, "--keys-dir", keys, *cache)
    assert r.returncode == 0, r.stderr
    r = run("index", "show", "--keys-dir", keys, *cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"{url}/main/{ARCH}/APKINDEX.tar.gz"
    assert "packages     1" in r.stdout
    assert f"key          {keys / 'test@example.org-1.rsa.pub'}" in r.stdout

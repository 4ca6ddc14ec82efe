"""CLI and library hygiene (issue 10, item 7): real processes, real files."""

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import click
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
    assert r.returncode == 1 and json.loads(r.stdout) == {"schema_version": 1, "name": "nothing-needs-me",
                                                          "kind": "none", "needed": False}
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
    assert r.returncode == 0 and r.stdout.split() == ["plain,scan", "plain,schema"]
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


# -- FIFOs, devices and sockets are refused before anything opens them -------------------------


def one_error_line(r):
    lines = r.stderr.splitlines()
    return len(lines) == 1 and lines[0].startswith("rundeps: error: ")


def test_special_files_are_refused_at_once(demo_root, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cache = ["--cache-dir", tmp_path / "c"]
    cases = [
        (["wheel", fifo, *cache], f"{fifo}: a FIFO, not a wheel file"),
        (["wheel", "--gcompat", fifo, demo_root, *cache], f"--gcompat {fifo} is a FIFO, not a file"),
        (["wheel", "--db", "/dev/zero", demo_root, *cache], "--db /dev/zero is a character device, not a file"),
        (["scan", "--root", demo_root, "--db", fifo, *cache], f"--db {fifo} is a FIFO, not a file"),
        (["scan", "--root", demo_root, "--index", fifo, *cache], f"--index {fifo} is a FIFO, not a file"),
        (["scan", "--root", demo_root, "--keys-dir", fifo, *cache], f"--keys-dir {fifo} is a FIFO, not a folder"),
        (["scan", "--root", demo_root, "--cache-dir", fifo], f"--cache-dir {fifo} is a FIFO, not a folder"),
        (["scan", "--root", fifo, *cache], f"--root {fifo} is a FIFO, not a folder"),
        (["why", "zlib", "--root", demo_root, "--db", fifo, *cache], f"--db {fifo} is a FIFO, not a file"),
        (["index", "show", "--index", fifo, *cache], f"--index {fifo} is a FIFO, not a file"),
        (["index", "clear", "--cache-dir", "/dev/null"], "--cache-dir /dev/null is a character device, not a folder"),
    ]
    for argv, message in cases:
        r = run(*argv)  # a hang would be the 120 s timeout
        assert r.returncode == 2 and r.stderr == f"rundeps: error: {message}\n", (argv, r.stderr)
    env = {"RUNDEPS_CACHE_DIR": str(fifo)}
    r = run("scan", "--root", demo_root, env=env)
    assert r.returncode == 2 and r.stderr == f"rundeps: error: --cache-dir {fifo} is a FIFO, not a folder\n"


def test_library_calls_refuse_a_fifo_unopened(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = (
        "import sys\n"
        "from rundeps.apk.sources import load_database\n"
        "from rundeps.errors import UsageError\n"
        "try:\n"
        "    load_database(sys.argv[1])\n"
        "except UsageError as exc:\n"
        "    print(exc)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert r.stdout == f"{fifo} is a FIFO, not a database file\n", r.stderr


# -- a PATH without any ELF file ----------------------------------------------------------------


@pytest.fixture()
def plain_root(tmp_path):
    """A root with a database, Python code only under /srv/app, a text file and a FIFO."""
    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(demo.db_block("musl", "1", ARCH, provides=[f"so:{LIBC}=1"]))
    (root / "srv/app").mkdir(parents=True)
    (root / "srv/app/main.py").write_text("print('hello')\n")
    (root / "etc").mkdir()
    (root / "etc/motd").write_text("welcome\n")
    os.mkfifo(root / "srv/fifo")
    return root


def test_a_path_without_elf_files_is_one_warning(plain_root, demo_root, tmp_path):
    cache = ["--cache-dir", tmp_path / "c"]
    for path, line in (("/srv/app", "no ELF files under /srv/app"),
                       ("/etc/motd", "/etc/motd is not an ELF file: nothing to check"),
                       ("/srv/fifo", "/srv/fifo is not a regular file or folder: not read")):
        r = run("scan", "--root", plain_root, path, *cache)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", f"rundeps: warning: {line}\n"), path
        r = run("scan", "--root", plain_root, "--require-elf", path, *cache)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", f"rundeps: error: {line}\n"), path
    r = run("scan", "--root", plain_root, "-q", "/srv/app", *cache)
    assert (r.returncode, r.stderr) == (0, "")
    r = run("scan", "--root", plain_root, "--format", "json", "/srv/app", "/etc/motd", *cache)
    out = json.loads(r.stdout)
    assert out["scanned"] == 0 and out["no_elf"] == {"/srv/app": "folder", "/etc/motd": "file"}
    assert r.stderr.splitlines() == ["rundeps: warning: no ELF files under /srv/app",
                                     "rundeps: warning: /etc/motd is not an ELF file: nothing to check"]
    # a mistyped folder stays an error
    r = run("scan", "--root", plain_root, "/srv/ap", *cache)
    assert r.returncode == 2 and r.stderr == f"rundeps: error: /srv/ap does not exist inside {plain_root}\n"
    # beside folders that do hold ELF files: the empty one is named, the rest is as before
    r = run("scan", "--root", demo_root, "/etc", "/usr/local", "--format", "json", *cache)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["packages"] == ["libpq", "libsharpyuv", "tiff"]
    assert out["no_elf"] == {"/etc": "folder"} and out["scanned"] > 0
    assert "rundeps: warning: no ELF files under /etc" in r.stderr.splitlines()


def test_why_a_file_that_is_not_elf_is_a_usage_error(plain_root, tmp_path):
    cache = ["--cache-dir", tmp_path / "c"]
    r = run("why", "/srv/fifo", "--root", plain_root, *cache)
    assert (r.returncode, r.stderr) == (2, "rundeps: error: /srv/fifo is not a regular file: not read\n")
    r = run("why", "/etc/motd", "--root", plain_root, *cache)
    assert (r.returncode, r.stderr) == (2, "rundeps: error: /etc/motd is not an ELF file\n")


# -- one error style; a closed pipe ---------------------------------------------------------------


def test_click_usage_errors_are_one_line(tmp_path):
    cases = [
        (["scan", "--image", tmp_path / "nothere"],
         f"invalid value for '--image': Path '{tmp_path / 'nothere'}' does not exist (see 'rundeps scan --help')"),
        (["scan", "--format", "bad"], "invalid value for '--format': 'bad' is not one of 'names', 'apk', 'so', "
                                      "'json', 'tree', 'cyclonedx' (see 'rundeps scan --help')"),
        (["why"], "missing argument 'NAME' (see 'rundeps why --help')"),
        (["wheel"], "missing argument 'FILE.whl|DIR...' (see 'rundeps wheel --help')"),
        (["index", "nope"], "no such command 'nope' (see 'rundeps index --help')"),
        (["nope"], "no such command 'nope' (see 'rundeps --help')"),
    ]
    for argv, message in cases:
        r = run(*argv)
        assert (r.returncode, r.stdout, r.stderr) == (2, "", f"rundeps: error: {message}\n"), argv
    r = run("scan", "--bogus")
    assert r.returncode == 2 and one_error_line(r) and r.stderr.startswith("rundeps: error: no such option '--bogus'")
    assert r.stderr.endswith("(see 'rundeps scan --help')\n")


def _closed_reader(*args):
    """Run rundeps with a stdout pipe whose reader has already left."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    env.pop("RUNDEPS_CACHE_DIR", None)
    p = subprocess.Popen([sys.executable, "-m", "rundeps", *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    return p.wait(timeout=120), err


def test_a_reader_that_leaves_ends_the_output_quietly(demo_root, tmp_path):
    assert _closed_reader("--help") == (0, "")
    assert _closed_reader("scan", "--help") == (0, "")
    cache = ["--cache-dir", tmp_path / "c"]
    assert _closed_reader("scan", "--root", demo_root, "-q", "--format", "json", *cache) == (0, "")
    # the exit code stays the verdict: a file that will not load is still 1
    other = "aarch64" if ARCH != "aarch64" else "x86_64"
    code, err = _closed_reader("scan", "--root", demo_root, "--arch", other, *cache)
    assert code == 1 and "Broken pipe" not in err and " not found (needed by " in err, err


# -- help texts ---------------------------------------------------------------------------------


COMMANDS = [[], ["scan"], ["why"], ["wheel"], ["index"], ["index", "show"], ["index", "update"],
            ["index", "clear"]]


def _click_command(path):
    from rundeps.cli import cli

    cmd, ctx = cli, None
    for name in path:
        ctx = click.Context(cmd, info_name=name, parent=ctx)
        cmd = cmd.get_command(ctx, name)
    return cmd


def test_help_texts_are_whole_self_contained_and_consistent():
    import re

    for path in COMMANDS:
        r = run(*path, "--help")
        assert r.returncode == 0 and r.stderr == "", path
        for line in r.stdout.splitlines():
            if not line.startswith("Usage:"):
                assert not re.search(r"\w\.\.\.\s*$", line), (path, line)  # no cut text
        for ref in ("README", "docs/", ".md", "http"):
            assert ref not in r.stdout, (path, ref)
    first = {}
    orders = {}
    for path in COMMANDS:
        cmd = _click_command(path)
        opts = [p for p in cmd.params if isinstance(p, click.Option)]
        orders[" ".join(path)] = [p.name for p in opts]
        for p in opts:
            if p.name in ("root", "arch", "fmt"):
                first.setdefault(p.name, set()).add(p.help.split(":")[0].split(".")[0])
    assert first == {"root": {"Treat DIR as the root of an Alpine filesystem (an extracted image, a chroot)"},
                     "arch": {"The target arch (x86_64, aarch64, "},
                     "fmt": {"How to print the result"}}
    for a, order_a in orders.items():
        for b, order_b in orders.items():
            shared = [n for n in order_a if n in order_b]
            assert shared == [n for n in order_b if n in order_a], (a, b)
    # scan's shell-oriented formats are its own; text and json mean the same everywhere else, and
    # cyclonedx (an SBOM) is offered by the commands that check files
    for path in (["why"], ["wheel"], ["index", "show"], ["index", "update"]):
        fmt = next(p for p in _click_command(path).params if p.name == "fmt")
        sbom = ["cyclonedx"] if path == ["wheel"] else []
        assert list(fmt.type.choices) == ["text", "json"] + sbom and fmt.default == "text"
    scan_fmt = next(p for p in _click_command(["scan"]).params if p.name == "fmt")
    assert "cyclonedx" in scan_fmt.type.choices


def test_every_script_has_a_real_help(tmp_path):
    for script in sorted((PROJECT / "scripts").glob("*.py")):
        r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path,
                           timeout=120)
        assert r.returncode == 0 and r.stdout.startswith("usage:"), (script.name, r.stdout, r.stderr)
        assert list(tmp_path.iterdir()) == [], script.name  # nothing made, no folder named --help

"""The JSON contract: ``schema_version`` and the shipped JSON Schemas
(``data/schema``), checked against real outputs of ``scan`` (a root, a
plain folder, a saved image), ``why`` (a package, a soname, a name nothing
needs, a file) and ``wheel`` (musllinux, manylinux, pure, several at once)
built from gcc-built fixtures, and against documents that break them."""

import copy
import json
import shutil
from pathlib import Path

import jsonschema
import pytest

import wheelbuild
from scriptmods import ib
from test_cli_wheel import musl_wheel
from test_scan import ARCH, LIBC, SITE, TAG, demo, run

from rundeps import api
from rundeps.commands.schema import NAMES
from rundeps.report.json import SCHEMA_NAMES, SCHEMA_VERSION, json_schema
from rundeps.resolve import units
from rundeps.verdict import KINDS

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the ELF fixtures")

PROJECT = Path(__file__).resolve().parents[1]
IMAGING = f"{SITE}/PIL/_imaging.{TAG}.so"


def validator(name):
    return jsonschema.Draft202012Validator(json_schema(name))


def assert_valid(name, doc):
    """``doc`` satisfies schema ``name``, and each object starts with ``schema_version``."""
    errors = [f"{e.json_path}: {e.message}" for e in validator(name).iter_errors(doc)]
    assert errors == [], errors[:5]
    for item in doc if isinstance(doc, list) else [doc]:
        assert next(iter(item)) == "schema_version" and item["schema_version"] == SCHEMA_VERSION


def json_run(*args, codes=(0,)):
    r = run(*args, "--no-cache")
    assert r.returncode in codes, (args, r.returncode, r.stderr)
    return json.loads(r.stdout)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """The demo root (with _tkinter), and ``rich``: a program needing a
    library nobody has, Python code loading libmagic at run time (libmagic
    installed), and a glibc program with glibc installed beside musl."""
    top = tmp_path_factory.mktemp("schema")
    root = demo.build_demo_root(top / "root", workdir=top / "build", tkinter=True)
    rich = top / "rich"
    shutil.copytree(root, rich, symlinks=True)
    b = demo.Builder(top / "build2")
    b.executable(rich / "usr/local/bin/broken", needed=["libnothere.so.1", LIBC])
    (rich / SITE.lstrip("/") / "magic").mkdir()
    (rich / SITE.lstrip("/") / "magic/loader.py").write_bytes(wheelbuild.MAGIC_LOADER)
    with open(rich / "lib/apk/db/installed", "a") as f:
        f.write(f"\nP:libmagic\nV:5.45-r1\nA:{ARCH}\nD:so:{LIBC}\np:so:libmagic.so.1=1.0.0\n")
    demo.add_glibc_compat(rich, b)
    b.glibc_program(rich / "usr/local/bin/gprog", needed=["libm.so.6"])
    glibc = top / "glibc"  # a glibc program and no glibc: its loader is missing
    shutil.copytree(root, glibc, symlinks=True)
    b.glibc_program(glibc / "usr/local/bin/gprog")
    layers = [ib.folder_layer(root, keep=lambda rel: not rel.startswith("usr/local/")),
              ib.folder_layer(root, keep=lambda rel: rel.startswith("usr/local/"))]
    image = ib.docker_archive(top / "image.tar", layers, ib.config(layers, Cmd=["python3"]), compress=[True, False])
    oci_layers = [ib.folder_layer(rich)]
    oci = top / "oci"
    oci.mkdir()
    ib.oci_layout(oci, oci_layers, ib.config(oci_layers, Entrypoint=["/usr/local/bin/broken"]))
    return {"root": root, "rich": rich, "glibc": glibc, "image": image, "oci": oci, "top": top}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    top = tmp_path_factory.mktemp("wheels")
    b = demo.Builder(top / "build")
    ext = wheelbuild.compile_so(
        top / "objs", "_ext.so",
        "#include <math.h>\n#include <stdio.h>\ndouble f(double x) { printf(\"%f\", x); return sqrt(x); }\n",
        link=["-lm"])
    db = top / "installed"
    db.write_text(f"P:musl\nV:1.2.5-r0\nA:{ARCH}\np:so:{LIBC}=1\n\n"
                  f"P:libmagic\nV:5.45-r1\nA:{ARCH}\nD:so:{LIBC}\np:so:libmagic.so.1=1.0.0\n")
    return {
        "musl": musl_wheel(b, top),
        "libz": musl_wheel(b, top / "z", name="pillowish", extra_needed=["libz.so.1"]),
        "missing": musl_wheel(b, top / "m", name="needy", extra_needed=["libnothere.so.3"]),
        "magic": musl_wheel(b, top / "g", name="magicpkg", files=[("magic/loader.py", wheelbuild.MAGIC_LOADER)]),
        "glibc": wheelbuild.make_wheel(top / "dist-glibc", "glibcpkg", "1.0", [f"cp312-cp312-manylinux_2_17_{ARCH}"],
                                       [("glibcpkg/_ext.so", ext.read_bytes())]),
        "pure": wheelbuild.make_pure_wheel(top / "dist-pure", "cairocffi", wheelbuild.CAIRO_LIKE, "1.7.1"),
        "db": db,
    }


# -- the schemas themselves ------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_each_schema_is_a_valid_draft_2020_12_schema_with_the_version(name):
    schema = json_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == api.json_schema(name)
    text = json.dumps(schema)
    assert '"schema_version": {"const": %d' % SCHEMA_VERSION in text


def test_the_shipped_files_are_the_schema_names():
    assert sorted(p.stem for p in (PROJECT / "data" / "schema").glob("*.json")) == sorted(SCHEMA_NAMES)
    assert NAMES == SCHEMA_NAMES
    assert api.SCHEMA_VERSION == SCHEMA_VERSION == 1
    with pytest.raises(ValueError):
        json_schema("index")


def test_kind_enums_are_the_values_the_code_produces():
    scan = json_schema("scan")["$defs"]
    assert scan["fault_kind"]["enum"] == list(KINDS)
    assert set(scan["unit"]["enum"]) == {units.PROGRAM, units.MODULE, units.PYTHON_LIBRARY, units.LIBRARY}
    why = json_schema("why")["$defs"]
    assert why["file"]["properties"]["reason_kind"]["enum"] == list(KINDS) + [None]
    assert json_schema("wheel")["$defs"]["fault_kind"] == scan["fault_kind"]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_the_schema_command_prints_the_shipped_schema(name):
    r = run("schema", name)
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout) == json_schema(name)


def test_the_schema_command_refuses_an_unknown_name_and_teaches():
    r = run("schema", "index")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("rundeps: error: invalid value for 'NAME': 'index' is not one of 'scan', 'why', 'wheel' "
                        "(see 'rundeps schema --help')\n")
    r = run("schema", "--help")
    assert r.returncode == 0 and "schema_version" in r.stdout and "rundeps schema scan" in r.stdout
    for ref in ("README", "docs/", ".md", "http"):
        assert ref not in r.stdout
    assert "schema  Print the JSON Schema" in run("--help").stdout


# -- real outputs --------------------------------------------------------------------------


def test_scan_json_of_roots_folders_and_images(roots):
    root, rich = str(roots["root"]), str(roots["rich"])
    out = json_run("scan", "--root", root, "--format", "json")
    assert_valid("scan", out)
    assert out["left_out"] and out["distributions"] and out["installed_size"]["build_deps"] is not None
    out = json_run("scan", "--root", root, "--format", "json", "--no-default-excludes", "--all", codes=(1,))
    assert_valid("scan", out)
    assert set(out["will_not_load_kind"].values()) == {"missing_library"}
    out = json_run("scan", "--root", rich, "--format", "json", "--dlopen", codes=(1,))
    assert_valid("scan", out)
    assert out["dlopen"] and out["runs_under_glibc"] and out["will_not_load"] and out["unresolved"]
    assert set(out["units"].values()) >= {"program", "module", "library"}
    out = json_run("scan", "--root", str(roots["glibc"]), "--format", "json", codes=(1,))
    assert_valid("scan", out)
    assert set(out["will_not_load_kind"].values()) == {"glibc_loader"} and out["glibc_linked"]
    out = json_run("scan", "--root", str(roots["glibc"]), "--format", "json", "--no-symbols", codes=(1,))
    assert_valid("scan", out)
    assert out["musl"] is None
    # a path with no ELF file, and a host folder with a database
    out = json_run("scan", "--root", root, "--format", "json", f"{SITE}/PIL/__init__.py")
    assert_valid("scan", out)
    assert out["no_elf"] == {f"{SITE}/PIL/__init__.py": "file"}
    out = json_run("scan", "--db", f"{root}/lib/apk/db/installed", "--format", "json", f"{root}{SITE}", codes=(0, 1))
    assert_valid("scan", out)
    for image in (roots["image"], roots["oci"]):
        out = json_run("scan", "--image", str(image), "--format", "json", codes=(0, 1))
        assert_valid("scan", out)
        assert out["packages"]


def test_why_json_for_every_kind(roots):
    root, rich = str(roots["root"]), str(roots["rich"])
    seen = set()
    for args, code in (
        (["libssl3", "--root", root], 0),                     # a package pulled in through D:
        (["libpq", "--root", root], 0),                       # a package a file needs
        (["libz.so.1", "--root", root], 0),                   # a soname
        (["libpython3.12.so.1.0", "--root", root], 0),        # an in-tree soname
        (["libnothere.so.1", "--root", rich], 0),             # an unresolved soname
        (["gtk+3.0", "--root", root], 1),                     # nothing needs it
        (["libmagic", "--root", rich, "--dlopen"], 0),        # loaded at run time
        ([IMAGING, "--root", root], 0),                       # a file that loads
        (["/usr/local/bin/broken", "--root", rich], 1),       # a file that does not
        (["/usr/local/bin/gprog", "--root", rich], 0),        # a glibc program, glibc installed
        (["/usr/local/bin/gprog", "--root", str(roots["glibc"])], 1),
        (["libpq", "--image", str(roots["image"])], 0),
        (["/usr/local/bin/broken", "--image", str(roots["oci"])], 1),
    ):
        out = json_run("why", *args, "--format", "json", codes=(code,))
        assert_valid("why", out)
        seen.add(out["kind"])
        if out["kind"] == "soname":
            seen.update(e["kind"] for e in out["edges"])
    assert seen >= {"package", "soname", "none", "file", "in_tree", "package", "unresolved"}


def test_wheel_json_one_object_a_wheel(wheels, roots):
    seen = set()
    for key, extra, code in (
        ("musl", [], 0),
        ("libz", [], 0),                                   # base_image
        ("missing", [], 1),                                # unresolved, no source
        ("magic", ["--db", str(wheels["db"])], 0),         # dlopen
        ("glibc", [], 0),                                  # glibc-linked, binds
        ("glibc", ["--no-symbols"], 1),                    # glibc-linked, not bound
        ("glibc", ["--root", str(roots["rich"])], 1),
        ("pure", ["--conditional-loads"], 0),
        ("musl", ["--arch", "aarch64" if ARCH != "aarch64" else "x86_64"], 1),
    ):
        out = json_run("wheel", str(wheels[key]), *extra, "--format", "json", codes=(code,))
        assert_valid("wheel", out)
        assert len(out) == 1
        seen.add(out[0]["libc"])
        seen.update(out[0]["will_not_load_kind"].values())
    assert seen >= {"musl", "glibc", "pure", "glibc_linked"}
    # several wheels, a folder with a broken one among them
    several = json_run("wheel", str(wheels["musl"]), str(wheels["pure"]), str(wheels["glibc"]), "--format", "json")
    assert_valid("wheel", several)
    assert [w["name"] for w in several] == ["fixturepkg", "cairocffi", "glibcpkg"]
    folder = wheels["musl"].parent
    (folder / "broken-1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 not really a zip")
    out = json_run("wheel", str(folder), "--format", "json", codes=(2,))
    assert_valid("wheel", out)
    assert [w["name"] for w in out] == ["fixturepkg"]


# -- the schemas reject what breaks the contract ---------------------------------------------


@pytest.fixture(scope="module")
def real_docs(roots, wheels):
    rich = str(roots["rich"])
    return {
        "scan": json_run("scan", "--root", rich, "--format", "json", codes=(1,)),
        "why-soname": json_run("why", "libz.so.1", "--root", rich, "--format", "json"),
        "why-file": json_run("why", "/usr/local/bin/broken", "--root", rich, "--format", "json", codes=(1,)),
        "wheel": json_run("wheel", str(wheels["glibc"]), "--no-symbols", "--format", "json", codes=(1,)),
    }


def broken(doc, change):
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


@pytest.mark.parametrize("case", [
    ("scan", "scan", lambda d: d["will_not_load_kind"].update({"/usr/local/bin/broken": "crashed"})),
    ("scan", "scan", lambda d: d.pop("packages")),
    ("scan", "scan", lambda d: d.pop("schema_version")),
    ("scan", "scan", lambda d: d.update(schema_version=SCHEMA_VERSION + 1)),
    ("scan", "scan", lambda d: d.update(surprise=True)),
    ("scan", "scan", lambda d: d["units"].update({"/x": "plugin"})),
    ("scan", "scan", lambda d: d.update(scanned="3")),
    ("scan", "scan", lambda d: d["why"]["musl"].pop("in_minimal_set")),
    ("scan", "scan", lambda d: d.pop("no_distribution")),
    ("why", "why-soname", lambda d: d.update(kind="library")),
    ("why", "why-soname", lambda d: d["edges"][0].update(kind="vendored")),
    ("why", "why-soname", lambda d: d["edges"][0].pop("via")),
    ("why", "why-file", lambda d: d.update(reason_kind="crashed")),
    ("why", "why-file", lambda d: d.pop("loads")),
    ("why", "why-file", lambda d: d.update(needed=True)),
    ("wheel", "wheel", lambda d: d[0].update(libc="bsd")),
    ("wheel", "wheel", lambda d: d[0].pop("verdict")),
    ("wheel", "wheel", lambda d: d[0].pop("units")),
    ("wheel", "wheel", lambda d: d[0]["will_not_load_kind"].update({"/glibcpkg/_ext.so": "glibc"})),
], ids=lambda c: c[1])
def test_the_schemas_reject_a_broken_document(real_docs, case):
    schema, doc_name, change = case
    doc = real_docs[doc_name]
    assert_valid(schema, doc)
    bad = broken(doc, change)
    assert bad != doc
    assert not validator(schema).is_valid(bad)

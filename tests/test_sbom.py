"""The CycloneDX SBOM (``--format cyclonedx``, ``--sbom FILE``), checked
against the CycloneDX 1.6 JSON schema with the library's validator and
against the facts by other means than rundeps': package versions and file
lists parsed here from the installed database's text, file hashes with
:mod:`hashlib`, each file -> library edge against the ``DT_NEEDED``
entries pyelftools reads (or a ``--dlopen`` finding).

Inputs: the demo root, a saved image of it, a bare prefix checked with
``--db``, and a vendored wheel."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

from scriptmods import demo, ib

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the demo root")

PROJECT = Path(__file__).resolve().parents[1]


def run(*args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNDEPS_", "SOURCE_DATE_EPOCH"))}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "rundeps", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


# -- independent readers -----------------------------------------------------------


def parse_db(text: str) -> Dict[str, dict]:
    """name -> {version, arch, license, provides (sonames), files (in-root paths)}."""
    out = {}
    for block in text.split("\n\n"):
        pkg = {"provides": set(), "files": set()}
        folder = ""
        for line in block.splitlines():
            key, _, value = line.partition(":")
            if key == "P":
                pkg["name"] = value
            elif key == "V":
                pkg["version"] = value
            elif key == "A":
                pkg["arch"] = value
            elif key == "L":
                pkg["license"] = value
            elif key == "p":
                pkg["provides"] |= {a.split("=")[0][3:] for a in value.split() if a.startswith("so:")}
            elif key == "F":
                folder = value
            elif key == "R":
                pkg["files"].add(f"/{folder}/{value}")
        if "name" in pkg:
            out[pkg["name"]] = pkg
    return out


def dt_needed(data: bytes) -> Set[str]:
    """The DT_NEEDED names pyelftools reads (not rundeps' reader)."""
    import io

    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(data))
    dyn = elf.get_section_by_name(".dynamic")
    return {t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"} if dyn is not None else set()


def validate(text: str) -> dict:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6" and doc["bomFormat"] == "CycloneDX"
    return doc


def props(component) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for p in component.get("properties", []):
        out.setdefault(p["name"], []).append(p["value"])
    return out


def check_facts(doc: dict, db: Dict[str, dict], read, distro=None, dlopen_names=()):
    """Every claim of ``doc`` against the database text and the files' bytes
    (``read(in-root path) -> bytes or None``)."""
    comps = {c["bom-ref"]: c for c in doc["components"]}
    assert doc["metadata"]["component"]["bom-ref"] not in comps
    apk = [c for c in comps.values() if c.get("purl", "").startswith("pkg:apk/")]
    assert apk
    for c in apk:
        facts = db[c["name"]]
        assert c["version"] == facts["version"]
        assert c["purl"].startswith(f"pkg:apk/alpine/{c['name']}@{facts['version']}?arch={facts['arch']}")
        if distro:
            assert f"distro={distro}" in c["purl"]
        else:
            assert "distro=" not in c["purl"]
        if facts.get("license"):
            lic = c["licenses"][0]
            assert lic.get("expression") or lic["license"].get("id") or lic["license"].get("name") == facts["license"]
    files = [c for c in comps.values() if c["type"] == "file"]
    assert files
    hashed = 0
    for c in files:
        assert c["evidence"]["occurrences"][0]["location"]
        data = read(c["name"])
        if data is None:
            assert "hashes" not in c
            continue
        hashed += 1
        assert c["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(data).hexdigest()}]
    assert hashed
    edges = 0
    for dep in doc["dependencies"]:
        src = comps.get(dep["ref"])
        if src is None or src["type"] != "file":
            continue
        data = read(src["name"])
        is_py = src["name"].endswith(".py")
        needed = set() if is_py or data is None else dt_needed(data)
        for ref in dep.get("dependsOn", []):
            dst = comps[ref]
            edges += 1
            if is_py:
                assert props(src)["rundeps:dlopen"], src["name"]
                assert any(n in (dst["name"] + " ".join(props(dst).get("rundeps:loaded-as", [])))
                           or dst["name"] in db and db[dst["name"]]["provides"] & {n, n + ".1"}
                           for n in dlopen_names) or dst["type"] == "library"
            elif dst["type"] == "file":
                assert set(props(dst)["rundeps:loaded-as"]) & needed, (src["name"], dst["name"], needed)
            else:  # a library -> the package that owns it, or a file -> the package providing what it needs
                facts = db[dst["name"]]
                assert src["name"] in facts["files"] or facts["provides"] & needed, (src["name"], dst["name"], needed)
    assert edges
    return comps


# -- inputs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    top = tmp_path_factory.mktemp("sbom")
    return demo.build_demo_root(top / "root", workdir=top / "build")


def host_reader(root: Path):
    def read(path: str):
        p = root / path.lstrip("/")
        try:
            real = os.path.realpath(p)
            if not real.startswith(str(os.path.realpath(root))):  # absolute symlinks stay in the root
                real = str(root) + os.readlink(p)
            return Path(real).read_bytes()
        except OSError:
            return None
    return read


def test_root_sbom_and_apk_line_in_one_run(root, tmp_path):
    out = tmp_path / "sbom.cdx.json"
    r = run("scan", "--root", root, "--format", "apk", "--sbom", out, "--no-cache", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "apk add --no-cache --virtual .rundeps libpq libsharpyuv tiff\n"
    doc = validate(out.read_text())
    db = parse_db((root / "lib/apk/db/installed").read_text())
    comps = check_facts(doc, db, host_reader(root), distro="alpine-3.20.3")
    names = {c["name"] for c in comps.values() if c.get("purl", "").startswith("pkg:apk/")}
    assert {"libpq", "libsharpyuv", "tiff", "musl", "zlib", "libjpeg-turbo", "libcrypto3", "libssl3"} == names
    pypi = {c["purl"] for c in comps.values() if c.get("purl", "").startswith("pkg:pypi/")}
    assert pypi == {"pkg:pypi/pillow@10.4.0", "pkg:pypi/psycopg2@2.9.9"}
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    # the vendored library -> libsharpyuv's library -> libsharpyuv
    site = "/usr/local/lib/python3.12/site-packages"
    webp = f"file:{site}/pillow.libs/libwebp-1a2b3c4d.so.7.1.8"
    assert webp in deps[next(r for r in deps if r.startswith(f"file:{site}/PIL/_webp"))]
    assert "file:/usr/lib/libsharpyuv.so.0" in deps[webp]
    assert any(r.startswith("pkg:apk/alpine/libsharpyuv@") for r in deps["file:/usr/lib/libsharpyuv.so.0"])
    assert webp in deps["pkg:pypi/pillow@10.4.0"]
    assert props(comps[webp])["rundeps:vendored"] == ["true"]
    # the musl the verdicts were checked against
    assert comps["rundeps:musl"]["description"].startswith("musl 1.2.5-r0")
    assert props(comps[f"file:/usr/local/bin/python3.12"])["rundeps:verdict"] == ["loads"]
    assert doc["metadata"]["component"]["version"] == "3.20.3"


def test_same_input_same_bytes_and_source_date_epoch(root, tmp_path):
    a = run("scan", "--root", root, "--format", "cyclonedx", "--no-cache", "-q")
    b = run("scan", "--root", root, "--format", "cyclonedx", "--cache-dir", tmp_path / "c", "-q")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout
    doc = validate(a.stdout)
    newest = max(int(os.stat(host_reader_path(root, c["name"])).st_mtime)
                 for c in doc["components"] if c["type"] == "file")
    assert doc["metadata"]["timestamp"] >= _iso(newest)
    c = run("scan", "--root", root, "--format", "cyclonedx", "--no-cache", "-q",
            env_extra={"SOURCE_DATE_EPOCH": "1700000000"})
    d = validate(c.stdout)
    assert d["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert d["serialNumber"] != doc["serialNumber"]  # derived from the content
    again = run("scan", "--root", root, "--format", "cyclonedx", "--no-cache", "-q",
                env_extra={"SOURCE_DATE_EPOCH": "1700000000"})
    assert again.stdout == c.stdout


def host_reader_path(root: Path, path: str) -> str:
    return os.path.realpath(root / path.lstrip("/"))


def _iso(epoch: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()


def test_image_sbom(root, tmp_path):
    layers = [ib.folder_layer(root, keep=lambda rel: not rel.startswith("usr/local/")),
              ib.folder_layer(root, keep=lambda rel: rel.startswith("usr/local/"))]
    image = ib.docker_archive(tmp_path / "img.tar", layers, ib.config(layers, Cmd=["python3"]), compress=[True, False])
    out = tmp_path / "img.cdx.json"
    r = run("scan", "--image", image, "--sbom", out, "--no-cache", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["libpq", "libsharpyuv", "tiff"]
    doc = validate(out.read_text())
    assert doc["metadata"]["component"]["type"] == "container"
    db = parse_db((root / "lib/apk/db/installed").read_text())
    check_facts(doc, db, host_reader(root), distro="alpine-3.20.3")  # the image's files are the root's
    r2 = run("scan", "--image", image, "--format", "cyclonedx", "--no-cache", "-q")
    assert r2.stdout == out.read_text()


def test_bare_prefix_with_db(root, tmp_path):
    db_path = tmp_path / "installed"
    text = (root / "lib/apk/db/installed").read_text()
    db_path.write_text(text)
    prefix = root / "usr/local"
    r = run("scan", prefix, "--db", db_path, "--format", "cyclonedx", "--no-cache", "-q", "--dlopen")
    assert r.returncode in (0, 1), r.stderr
    doc = validate(r.stdout)

    def read(path: str):
        try:
            return Path(os.path.realpath(path)).read_bytes()
        except OSError:
            return None

    comps = check_facts(doc, parse_db(text), read, distro=None)
    # no alpine-release here and no index named: no distro qualifier
    assert all("distro=" not in c.get("purl", "") for c in comps.values())


def test_wheel_sbom(tmp_path):
    from wheelbuild import make_vendored_wheel

    vw = make_vendored_wheel(tmp_path / "work", tmp_path)
    r = run("wheel", vw.path, "--format", "cyclonedx", "--no-cache", "--arch", "x86_64")
    doc = validate(r.stdout)
    import zipfile

    zf = zipfile.ZipFile(vw.path)
    comps = {c["bom-ref"]: c for c in doc["components"]}
    base = vw.path.name
    ext, lib = comps[f"file:{base}!/{vw.ext_member}"], comps[f"file:{base}!/{vw.lib_member}"]
    for c, member in ((ext, vw.ext_member), (lib, vw.lib_member)):
        assert c["hashes"][0]["content"] == hashlib.sha256(zf.read(member)).hexdigest()
        assert c["evidence"]["occurrences"][0]["location"] == f"{base}!/{member}"
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    assert lib["bom-ref"] in deps[ext["bom-ref"]]
    assert vw.lib_soname in dt_needed(zf.read(vw.ext_member))
    wheel_ref = "pkg:pypi/fixturepkg@1.0"
    assert {ext["bom-ref"], lib["bom-ref"]} <= deps[wheel_ref]
    assert wheel_ref in deps["rundeps:subject"]
    again = run("wheel", vw.path, "--format", "cyclonedx", "--no-cache", "--arch", "x86_64")
    assert again.stdout == r.stdout


def test_will_not_load_carries_its_verdict(tmp_path):
    """A file whose library is missing: its verdict, kind and chain as properties."""
    top = tmp_path / "r"
    root = demo.build_demo_root(top, workdir=tmp_path / "w", tkinter=True)
    r = run("scan", "--root", root, "--no-default-excludes", "--format", "cyclonedx", "--no-cache", "-q")
    assert r.returncode == 1
    doc = validate(r.stdout)
    tk = next(c for c in doc["components"] if "_tkinter" in c["name"])
    p = props(tk)
    assert p["rundeps:verdict"] == ["will-not-load"]
    assert p["rundeps:fault:kind"] == ["missing_library"]
    assert p["rundeps:fault:chain"] == [tk["name"]]
    assert set(p["rundeps:unresolved"][0].split()) == {"libtcl8.6.so", "libtk8.6.so"}


def test_the_library_is_imported_only_for_an_sbom(root):
    code = ("import sys; from rundeps.cli import main\n"
            "sys.argv = ['rundeps', 'scan', '--root', sys.argv[1], '--no-cache', '-q']\n"
            "try:\n main()\n"
            "except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cyclonedx', 'packageurl')))")
    r = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120)
    assert r.stdout.splitlines()[-1] == "[]", r.stderr

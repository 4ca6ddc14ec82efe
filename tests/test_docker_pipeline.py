"""rundeps against the pipeline docker-library/python runs today.

The official ``python:3.x-alpine`` Dockerfiles find their run-time packages
with (paths as in the image)::

    scanelf --needed --nobanner --format '%n#p' --recursive /usr/local \\
      | tr ',' '\\n' | sort -u \\
      | awk 'system("[ -e /usr/local/lib/" $1 " ]") == 0 { next } { print "so:" $1 }'

and hand the ``so:`` names to ``apk add``.  The test runs that pipeline with
the real ``scanelf`` on a root around a real installed database (Alpine 3.21
x86_64 with php84), resolves each ``so:`` name as ``apk add`` would (the
package whose ``p:`` line provides it, by a plain text search of the
database), and shows case by case where rundeps' answer differs, and why.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "alpine"
PHP_DB = SHARED / "installed" / "alpine-3.21-x86_64-php.installed"

from scriptmods import demo  # noqa: E402

ARCH = demo.host_arch()
LIBC = demo.musl_soname(ARCH)
SITE = "usr/local/lib/python3.12/site-packages"

pytestmark = [
    pytest.mark.skipif(not PHP_DB.exists(), reason="../shared/alpine is not here"),
    pytest.mark.skipif(ARCH != "x86_64", reason="the php database is x86_64"),
    pytest.mark.skipif(shutil.which("scanelf") is None or shutil.which("gcc") is None,
                       reason="pax-utils' scanelf is the reference; gcc builds the fixtures"),
]

PIPELINE = (
    "scanelf --needed --nobanner --format '%n#p' --recursive \"$ROOT\"/usr/local"
    " | tr ',' '\\n' | sort -u"
    " | awk -v root=\"$ROOT\" 'system(\"[ -e \" root \"/usr/local/lib/\" $1 \" ]\") == 0 { next } { print \"so:\" $1 }'"
)
"""The docker-library pipeline, word for word but for the root prefix (the
image's /usr/local is ``$ROOT/usr/local`` here)."""


def docker_pipeline(root: Path):
    out = subprocess.run(["bash", "-c", PIPELINE], env=dict(os.environ, ROOT=str(root)),
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def apk_add(names, db_text: str):
    """What ``apk add`` makes of each name: {name: package} for the ones a
    ``p:`` line of the database provides, and the names nothing provides
    (``apk add`` stops with "unable to select packages" on those)."""
    blocks = db_text.split("\n\n")
    chosen, missing = {}, []
    for name in names:
        hits = [b for b in blocks if re.search(r"^p:(.* )?" + re.escape(name) + r"(=| |$)", b, re.M)]
        if hits:
            chosen[name] = re.search(r"^P:(.*)$", hits[0], re.M).group(1)
        else:
            missing.append(name)
    return chosen, missing


def rundeps(*args):
    env = dict(os.environ)
    env.pop("RUNDEPS_CACHE_DIR", None)
    r = subprocess.run([sys.executable, "-m", "rundeps", *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=120)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr


def make_root(tmp_path, builder):
    text = PHP_DB.read_text()
    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(text)
    # the packages' libraries where the database says they are (stubs with the right soname)
    for real, soname in [("libxml2.so.2.13.4", "libxml2.so.2"), ("libz.so.1.3.1", "libz.so.1")]:
        builder.shared(root / "usr/lib" / real, soname=soname, needed=[LIBC])
        os.symlink(real, root / "usr/lib" / soname)
    site = root / SITE
    # 1. a module that needs packaged libraries
    builder.shared(site / "lxml/etree.so", needed=["libxml2.so.2", "libz.so.1", LIBC])
    # 2. a module whose needs pull in each other (libcurl's D: brings libssl3, libcrypto3, ...)
    builder.shared(site / "pycurl.so", needed=["libcurl.so.4", "libssl.so.3", "libcrypto.so.3", LIBC])
    # 3. a wheel's vendored library, found through the module's RUNPATH
    builder.shared(site / "pcre.libs/libpcre2-8-0a1b2c3d.so.0", soname="libpcre2-8-0a1b2c3d.so.0", needed=[LIBC])
    builder.shared(site / "pcre/_pcre.so", needed=["libpcre2-8-0a1b2c3d.so.0", LIBC], runpath="$ORIGIN/../pcre.libs")
    # 4. a vendored copy of a library a package also provides (a wheel's own libz)
    builder.shared(site / "zipfast.libs/libz.so.1", soname="libz.so.1", needed=[LIBC])
    builder.shared(site / "zipfast/_zip.so", needed=["libz.so.1", LIBC], runpath="$ORIGIN/../zipfast.libs")
    # 5. the interpreter's own library in /usr/local/lib
    builder.shared(root / "usr/local/lib/libpython3.12.so.1.0", soname="libpython3.12.so.1.0", needed=[LIBC])
    builder.executable(root / "usr/local/bin/python3.12", needed=["libpython3.12.so.1.0", LIBC])
    # 6. a library with no NEEDED at all
    builder.shared(root / "usr/local/lib/libnoneeded.so")
    return root, text


def test_the_docker_library_pipeline_case_by_case(tmp_path):
    builder = demo.Builder(tmp_path / "build")
    root, text = make_root(tmp_path, builder)
    names = docker_pipeline(root)
    chosen, missing = apk_add(names, text)
    code, out, err = rundeps("scan", "--root", root, "--format", "json", "--no-cache", "/usr/local")
    assert code == 0, err

    # Where both agree: packaged libraries (1, 2) and musl itself.
    for so, pkg in [("libxml2.so.2", "libxml2"), ("libcurl.so.4", "libcurl"), ("libssl.so.3", "libssl3"),
                    ("libcrypto.so.3", "libcrypto3"), (LIBC, "musl")]:
        assert chosen["so:" + so] == pkg
        assert out["providers"][so] == pkg

    # 5 and 6: the awk test drops what /usr/local/lib holds, and scanelf's
    # empty line for a file without NEEDED ("[ -e /usr/local/lib/ ]" is the
    # folder): both agree that the interpreter's library needs no package.
    assert "so:libpython3.12.so.1.0" not in names and "so:" not in names
    assert out["in_tree"]["libpython3.12.so.1.0"] == "/usr/local/lib/libpython3.12.so.1.0"

    # 3: the pipeline asks apk for a wheel's vendored library, which no
    # package provides: apk add fails the build. rundeps follows the RUNPATH
    # as musl does and needs nothing for it.
    assert missing == ["so:libpcre2-8-0a1b2c3d.so.0"]
    assert out["in_tree"]["libpcre2-8-0a1b2c3d.so.0"] == f"/{SITE}/pcre.libs/libpcre2-8-0a1b2c3d.so.0"

    # 4: the vendored libz.so.1 gets the same so:libz.so.1 line as lxml's real
    # need; here zlib is needed anyway (by lxml), but the pipeline cannot tell
    # the two apart: without lxml it would add zlib for nothing. rundeps
    # records the wheel's copy as in-tree and zlib only for lxml.
    assert chosen["so:libz.so.1"] == "zlib"
    zlib_users = out["needed_by"]["zlib"]
    assert f"/{SITE}/lxml/etree.so" in zlib_users and f"/{SITE}/zipfast/_zip.so" not in zlib_users

    # 2: the pipeline puts every soname's package in the world (libssl3,
    # libcrypto3, ... as top-level packages); rundeps' minimal set leaves out
    # what libcurl's D: line pulls in. The full sets are the same packages.
    pipeline_packages = set(chosen.values())
    assert set(out["all_packages"]) == pipeline_packages
    assert out["packages"] == ["libcurl", "libxml2"]
    assert set(out["packages"]) < pipeline_packages


def test_the_pipeline_without_the_shared_need_adds_zlib_for_nothing(tmp_path):
    # case 4 alone: only the wheel that vendors its libz
    builder = demo.Builder(tmp_path / "build")
    root, text = make_root(tmp_path, builder)
    shutil.rmtree(root / SITE / "lxml")
    chosen, missing = apk_add(docker_pipeline(root), text)
    assert chosen["so:libz.so.1"] == "zlib"
    code, out, err = rundeps("scan", "--root", root, "--format", "json", "--no-cache", "--all", "/usr/local")
    assert code == 0, err
    assert "zlib" not in out["needed_by"] or f"/{SITE}/zipfast/_zip.so" not in out["needed_by"]["zlib"]
    assert out["in_tree"]["libz.so.1"] == f"/{SITE}/zipfast.libs/libz.so.1"


def test_a_glibc_linked_program_the_pipeline_cannot_install_for(tmp_path):
    # A glibc binary copied into /usr/local: the pipeline asks for so:libc.so.6,
    # which nothing in the image provides, and apk add fails; rundeps names the
    # file and its glibc sonames and exits 1 (it would not load under musl).
    builder = demo.Builder(tmp_path / "build")
    root, text = make_root(tmp_path, builder)
    builder.executable(root / "usr/local/bin/tool", needed=["libc.so.6"],
                       interp="/lib64/ld-linux-x86-64.so.2")
    chosen, missing = apk_add(docker_pipeline(root), text)
    assert "so:libc.so.6" in missing
    code, out, err = rundeps("scan", "--root", root, "--format", "json", "--no-cache", "/usr/local")
    assert code == 1
    assert out["glibc_linked"] == {"/usr/local/bin/tool": ["libc.so.6"]}

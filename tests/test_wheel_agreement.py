"""On real musllinux and manylinux wheels installed
into a musl CPython root, rundeps' will_not_load agrees with what dlopen
says for every load unit, asked three ways (``--root``, a bare prefix,
``rundeps wheel``; scripts/wheel_agreement.py; the CPython is a musl-gcc
stand-in, see the script), under every musl loader at hand (Debian's 1.2.3,
and each runnable Alpine build from ../shared when present). Skips without
PyPI."""

import pytest

from bindbuild import MUSL_GCC
from scriptmods import load_script

agreement = load_script("wheel_agreement")

pytestmark = pytest.mark.skipif(agreement.have_tools() is not None or MUSL_GCC is None,
                                reason="musl-gcc, binutils and Debian's musl loader are needed")

# an older auditwheel vintage: greenlet.libs/libstdc++ finds greenlet.libs/libgcc_s
# only through the module's RPATH (the vendored libraries have none); no cp312 build
OLD = agreement.WheelSet("musllinux-3.11", "3.11", agreement.MUSLLINUX, ("greenlet==2.0.1",))
SMALL = ("markupsafe==3.0.4", "msgpack==1.2.4", "pyyaml==6.0.4", "ujson==6.1.0")
SETS = (agreement.WheelSet("musllinux-3.12", "3.12", agreement.MUSLLINUX, SMALL),
        agreement.WheelSet("manylinux-3.12", "3.12", agreement.MANYLINUX, SMALL))


def _rows(tmp_path, sets):
    wheels = agreement.download(tmp_path / "wheels", sets, timeout=120)
    if not all(wheels.get(ws.name) and len(wheels[ws.name]) == len(ws.specs) for ws in sets):
        pytest.skip("PyPI cannot be reached")
    return agreement.agreement(wheels, tmp_path / "work", sets)


def _disagreements(rows):
    """False failures and false OKs; a unit rundeps cannot check is not
    one, but only a loader whose DT_RELR support no build or release names
    (the bare wheel mode's --musl X.Y.Z) may leave a unit unchecked."""
    return [(r["musl"], r["mode"], r["rel"], r["dlopen_error"], r["rundeps_reason"])
            for r in rows if r["agree"] is False
            or (r["agree"] is None and not (r["mode"] == "wheel" and "DT_RELR" in r["rundeps_reason"]))]


def _explain(rows):
    return "\n".join(agreement.summary_lines(rows) + [
        f"musl {m} {mode}: {rel}: dlopen: {err or 'loads'}; rundeps: {why or 'loads'}"
        for m, mode, rel, err, why in _disagreements(rows)])


def test_older_vintage_agrees_in_every_mode(tmp_path):
    rows = _rows(tmp_path, [OLD])
    for label in {r["musl"] for r in rows}:
        modes = {r["mode"] for r in rows if r["musl"] == label}
        # Debian's musl is no Alpine target: the modes that check against Alpine's export lists skip it
        assert modes == set(agreement.MODES) - (set() if label.startswith("alpine-") else set(agreement.BARE_MODES))
    assert any(r["rel"].startswith("greenlet/_greenlet.") for r in rows)
    assert all(r["dlopen_loads"] for r in rows if r["musl"] == "debian-1.2.3")  # what dlopen says, not this test
    assert not _disagreements(rows), _explain(rows)


def test_will_not_load_agrees_with_dlopen_on_real_wheels(tmp_path):
    rows = _rows(tmp_path, SETS)
    assert not _disagreements(rows), _explain(rows)
    many = [r for r in rows if r["kind"] == "manylinux"]
    # the set has both verdicts among the glibc builds (what dlopen says, not this test)
    assert {r["dlopen_loads"] for r in many} == {True, False}

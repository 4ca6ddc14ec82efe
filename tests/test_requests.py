"""A check is asked for with one request value and gives a value back: the
documented keywords build the same request, every stage's result is frozen,
and the detail stages give a new resolution instead of changing one."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from test_scan import demo_root  # noqa: F401  (the demo root, built with gcc)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc builds the demo root")


def _facts(res):
    return ([p.name for p in res.packages], sorted(res.faults), sorted(res.unresolved), sorted(res.units))


def test_request_and_keywords_give_the_same_resolution(demo_root):
    from rundeps.api import CheckOptions, Sources, TreeRequest, check, check_tree

    by_keywords = check_tree(["/usr/local"], root=str(demo_root), sources=Sources(use_cache=False),
                             explicit_root=True)
    request = TreeRequest(("/usr/local",), str(demo_root), Sources(use_cache=False),
                          CheckOptions(explicit_root=True))
    by_request = check(request)
    assert _facts(by_request) == _facts(by_keywords)
    assert by_request.packages, "the demo root needs packages"


def test_results_and_requests_are_frozen(demo_root):
    from rundeps.api import CheckOptions, Sources, TreeRequest, check

    options = CheckOptions(explicit_root=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.symbols = False  # type: ignore[misc]
    res = check(TreeRequest(("/usr/local",), str(demo_root), Sources(use_cache=False), options))
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.faults = {}  # type: ignore[misc]


def test_detail_stages_give_a_new_resolution(demo_root):
    from rundeps.api import Sources, add_distributions, add_runtime_loads, check_tree

    res = check_tree(["/usr/local"], root=str(demo_root), sources=Sources(use_cache=False), explicit_root=True)
    with_map = add_distributions(res, str(demo_root))
    assert res.distributions is None and with_map.distributions is not None
    assert _facts(with_map) == _facts(res)
    loaded = add_runtime_loads(res, ["/usr/local"], str(demo_root))
    assert res.dlopen == [] and isinstance(loaded.dlopen_unresolved, list)


def test_check_refuses_what_is_no_request():
    from rundeps.api import check

    with pytest.raises(TypeError):
        check("/usr/local")  # type: ignore[arg-type]


def test_the_glibc_fault_is_derived_from_the_search_and_the_binding():
    """A glibc-linked unit fails unless its binding completes or cannot be checked."""
    from rundeps.resolve import Search, judge
    from rundeps.verdict import GLIBC_LINKED

    search = Search(arch="x86_64", universe=None, glibc_units=("/a.so", "/b.so", "/c.so"))

    class _Binding:
        glibc_loads = ["/a.so"]
        unchecked = {"/b.so": ["libx.so"]}
        faults: dict = {}

    assert {p: f.kind for p, f in judge(search).items()} == {p: GLIBC_LINKED for p in search.glibc_units}
    assert list(judge(search, _Binding())) == ["/c.so"]

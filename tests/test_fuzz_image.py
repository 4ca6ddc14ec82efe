"""A short, fixed round of ``scripts/fuzz_image.py``: hostile and damaged
saved images given to ``rundeps scan --image``, each in a subprocess with a
timeout, its peak RSS measured. No traceback, hang, second error line, odd
exit code, accepted damage or peak RSS over 300 MB."""

from __future__ import annotations

from scriptmods import load_script


def test_a_fixed_fuzz_round_finds_nothing():
    fi = load_script("fuzz_image")
    stats = fi.run(cases=40, seed=1, timeout=30, rss_mb=300, say=lambda line: None)
    assert stats["cases"] == 40
    assert stats["findings"] == []
    assert stats["peak_rss_mb"] < 300

"""A short seeded run of the mutation fuzzer (benchmarks/fuzz.py) over the real captures.

The long run (10,000 mutations through analyze, 1,000 through report) is
documented in the README; this one keeps the harness working and catches a
regression on the mutations it draws.
"""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import fuzz  # noqa: E402


def test_mutations_are_deterministic_per_seed():
    seeds = fuzz.seed_files()
    assert seeds, "no seed captures"
    a = fuzz.make_case(11, 5, seeds)
    assert a == fuzz.make_case(11, 5, seeds)
    assert a[1] != fuzz.make_case(12, 5, seeds)[1] or a[0] != fuzz.make_case(12, 5, seeds)[0]


@pytest.mark.slow
def test_short_seeded_fuzz_run_finds_no_traceback_crash_or_hang():
    summary = fuzz.fuzz(240, seed=1, mode="analyze", workers=2, timeout=60, memory_mb=fuzz.DEFAULT_MEMORY_MB,
                        seeds=fuzz.seed_files())
    assert sum(summary["outcomes"].values()) == 240
    assert summary["failures"] == 0, summary["signatures"]
    assert summary["outcomes"].get("ok", 0) > 60  # mutations that still parse are analyzed
    assert summary["peak_rss_mb"] < 1024

"""The diagnosis held to kernel-made impairments and real calls, not the simulator.

../shared/lab-v1 holds 32 calls degraded by a real Linux kernel (nftables,
tbf) with exact truth; ../shared/captures holds ordinary real calls from other
projects, none of them throttled. These tests keep what was reached there from
sliding back.
"""

from __future__ import annotations

import pytest

import callscope
from callscope.diagnose.findings import THROTTLING
from callscope.evaluate import evaluate
from conftest import SHARED_CAPTURES, shared_capture_files

LAB_V1 = SHARED_CAPTURES.parent / "lab-v1"


@pytest.fixture(scope="module")
def lab_v1():
    if not LAB_V1.is_dir():
        pytest.skip(f"{LAB_V1} is absent: the lab tests need ../shared beside the repository")
    return evaluate([LAB_V1])


def test_lab_v1_macro_f1_holds(lab_v1):
    assert len(lab_v1.cases) == 32
    assert lab_v1.macro_f1 >= 0.95, [(c.path.name, c.predicted) for c in lab_v1.cases if not c.correct]


def test_lab_v1_confident_verdicts_are_right(lab_v1):
    """Confidence means something: verdicts at 0.8 or more are right at least 95 % of the time."""
    sure = [c for c in lab_v1.cases if c.confidence >= 0.8]
    assert sure and sum(c.correct for c in sure) >= 0.95 * len(sure)


def test_lab_v1_raises_no_throttling_verdict_on_an_ordinary_network(lab_v1):
    assert lab_v1.ordinary >= 10 and lab_v1.false_alarms == 0


@pytest.mark.parametrize("path", shared_capture_files(), ids=lambda p: p.name)
def test_no_throttling_verdict_on_an_ordinary_real_call(path):
    """Every call in ../shared/captures is ordinary (CATALOG.md): hang-ups, relay
    moves, test-harness drops, choppy senders. None may be called throttled."""
    d = callscope.analyze(path).diagnosis
    alarms = [(f.pattern, f.confidence) for f in d.findings if f.pattern in THROTTLING and f.confidence >= 0.5]
    assert d.verdict not in THROTTLING and not alarms, (d.verdict, alarms)


def test_lab_v1_parameters_within_the_issue_tolerances(lab_v1):
    """Policer rate (as the kernel meters it, IP bytes) within 10 %, cut-off
    time within 0.5 s, quota bytes within 5 %."""
    by_truth = {}
    for e in lab_v1.param_errors:
        by_truth.setdefault(e.check.truth_name, []).append(e)
    assert {"rate_kbytes_s", "blackhole_at_s", "quota_bytes"} <= by_truth.keys()
    for name in ("rate_kbytes_s", "blackhole_at_s", "quota_bytes"):
        assert all(e.within for e in by_truth[name]), [(e.path.name, e.error) for e in by_truth[name]]

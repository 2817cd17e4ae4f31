"""diagnose's fast paths give exactly the numbers of the plain computations they replace.

The engine keeps one stream's slot arrays at a time and hands calls only a
summary of each stream; detectors skip work they can prove would not change
their answer. Each shortcut is checked here against the plain computation,
for equality (not closeness); the numeric routines they use (percentiles from
one sort, the running-median network) are checked in test_numerics.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import callscope
from callscope.diagnose import engine
from callscope.diagnose.downshift import _sent_per_window, _window_index
from callscope.diagnose.policing import MIN_LOSS, MIN_LOSSES, detect_policing, loss_onset
from callscope.diagnose.queue_delay import EPISODE_PROMINENCE_S, delay_episodes
from callscope.diagnose.trace import Trace, _fill_lost_sizes
from callscope.metrics.loss_structure import loss_runs
from callscope.synth import simulate, write_capture
from callscope.synth.call import simulate_many_streams

# --- detectors' shortcuts --------------------------------------------------------


def _trace(received: np.ndarray, delay: np.ndarray | None = None, ptime: float = 0.02) -> Trace:
    n = received.size
    send = np.arange(n) * ptime
    d = np.zeros(n) if delay is None else delay
    time = send + d
    return Trace("s1", False, ptime, time, send, received, np.full(n, 160.0),
                 np.where(received, d, np.nan), float(time[-1]) + 1.0)


def test_densest_loss_stretch_bounds_the_policed_stretch_whatever_the_onset():
    # The early exit in detect_policing rests on this: the loss fraction from
    # the onset's first loss to the last loss never exceeds the densest stretch
    # from any loss to the last.
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(200, 3000))
        rec = rng.random(n) > rng.uniform(0.005, 0.2)
        if rng.random() < 0.5:  # a lossier tail: an onset to find
            rec[n // 2 :] &= rng.random(n - n // 2) > 0.2
        lost = np.flatnonzero(~rec)
        if lost.size < MIN_LOSSES:
            continue
        first = np.arange(lost.size - MIN_LOSSES + 1)
        densest = np.max((lost.size - first) / (lost[-1] - lost[first] + 1))
        kept = lost[lost >= loss_onset(rec)]
        if kept.size >= MIN_LOSSES:
            region = rec[kept[0] : kept[-1] + 1]
            assert 1.0 - np.count_nonzero(region) / region.size <= densest + 1e-12


def test_sparse_random_loss_is_not_policing_and_a_dense_periodic_one_is():
    sparse = np.random.default_rng(3).random(5000) > 0.02  # 2 %, independent
    assert detect_policing(_trace(sparse)) is None
    # One constant-rate packet in 50: a policer at 98 % of the rate.
    boundary = np.ones(5000, bool)
    boundary[500::50] = False
    f = detect_policing(_trace(boundary))
    assert f is not None and f.param("rate_Bps") == pytest.approx(0.98 * 160 / 0.02, rel=0.01)
    assert dict((e.name, e.value) for e in f.evidence)["delivered_bytes_clamp_ratio"] < 0.25
    dense = np.ones(5000, bool)
    dense[1000::8] = False  # one in eight from 20 s on: a policer's signature
    f = detect_policing(_trace(dense))
    assert f is not None and f.pattern == "policing"
    assert f.param("onset_s") == pytest.approx(20.0, abs=0.05)
    assert 1 / 8 > MIN_LOSS


def test_episodes_above_a_higher_prominence_are_the_default_ones_that_reach_it():
    rng = np.random.default_rng(4)
    n = 3000
    # A sawtooth queue (peaks of 30, 50, 70 and 90 ms) over a little noise.
    saw = np.concatenate([np.linspace(0, h, 300) for h in (0.03, 0.05, 0.07, 0.09)] * 3)[:n]
    delay = saw + rng.normal(0, 0.001, n)
    delay -= delay.min()
    tr = _trace(np.ones(n, bool), delay)
    every = delay_episodes(tr)
    high = delay_episodes(tr, prominence=0.06)
    keep = every.height >= 0.06
    assert every.count > high.count > 0
    for name in ("start", "peak_time", "height", "rise", "rise_r2", "drained"):
        assert np.array_equal(getattr(every, name)[keep], getattr(high, name)), name
    flat = _trace(np.ones(n, bool), rng.uniform(0, 0.9 * EPISODE_PROMINENCE_S, n))
    assert delay_episodes(flat).count == 0


def test_windows_by_binary_search_equal_numpys_histogram():
    rng = np.random.default_rng(8)
    for trial in range(500):
        n = int(rng.integers(2, 400))
        send = np.sort(np.round(rng.uniform(0, 10, n), int(rng.integers(0, 3))))  # ties too
        size = rng.integers(20, 300, n).astype(np.float64)
        start = send[0] - (0.3 if trial % 2 else 0.0)
        edges = start + float(rng.uniform(0.3, 2.0)) * np.arange(int(rng.integers(1, 15)) + 1)
        pkts, nbytes = _sent_per_window(send, size, edges, True)
        ref_pkts = np.histogram(send, bins=edges)[0]
        ref_bytes = np.histogram(send, bins=edges, weights=size)[0]
        assert np.array_equal(pkts, ref_pkts) and pkts.dtype == ref_pkts.dtype
        assert np.array_equal(nbytes, ref_bytes)
        t = send[rng.random(n) < 0.7]
        ref_w = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, edges.size - 2)
        assert np.array_equal(_window_index(t, edges, True), ref_w)


def test_loss_runs_from_the_lost_slots_equal_the_edges_of_the_loss_mask():
    rng = np.random.default_rng(13)
    for _ in range(1000):
        rec = rng.random(int(rng.integers(0, 80))) > rng.uniform(0, 1)
        edge = np.diff(np.concatenate([[0], (~rec).astype(np.int8), [0]]))
        runs = loss_runs(rec)
        assert runs.start.tolist() == np.flatnonzero(edge == 1).tolist()
        assert runs.length.tolist() == (np.flatnonzero(edge == -1) - np.flatnonzero(edge == 1)).tolist()
        assert runs.start.dtype == runs.length.dtype == np.int64


def test_lost_slots_take_the_size_of_the_last_received_one():
    rng = np.random.default_rng(12)
    for _ in range(500):
        n = int(rng.integers(1, 80))
        rec = rng.random(n) > rng.uniform(0, 1)
        size = np.where(rec, rng.integers(20, 300, n), 0).astype(np.float64)
        before = np.where(rec, np.arange(n), 0)
        want = size[np.maximum.accumulate(before)]
        assert np.array_equal(_fill_lost_sizes(size.copy(), rec), want)
    rec = np.array([True, False, False, True, False])
    got = _fill_lost_sizes(np.array([100.0, 0, 0, 120, 0]), rec)
    assert got.tolist() == [100.0, 100.0, 100.0, 120.0, 120.0]


# --- the engine ------------------------------------------------------------------


#: name: (simulated capture, seconds the capture runs on after it, patterns found)
CAPTURES = {
    "many-policed": (lambda: simulate_many_streams(6, 1200, seed=3, scenario="policing"), 0.0, "policing"),
    "many-opaque-outages": (
        lambda: simulate_many_streams(5, 1200, seed=4, scenario="intermittent-outage", opaque=True),
        0.0,
        "intermittent-outage",
    ),
    "many-shaped": (lambda: simulate_many_streams(4, 1500, seed=5, scenario="shaping"), 0.0, "shaping"),
    # Blocked mid-call with its RTCP: nothing shows the party is still there, a cut seen from one end.
    "one-way": (lambda: simulate("one-way", seed=6, duration=25.0), 0.0, "cutoff"),
    "cutoff": (lambda: simulate("cutoff", seed=6, duration=25.0), 0.0, "cutoff"),
}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_engine_finds_the_pattern_with_one_trace_at_a_time(tmp_path, name):
    make, run_on, pattern = CAPTURES[name]
    path = tmp_path / f"{name}.pcap"
    write_capture(make(), path)
    report = callscope.analyze(path)
    capture_end = (report.info.last_time_ns - report.info.first_time_ns) / 1e9 + run_on
    got = engine.diagnose(report.inventory, report.metrics, capture_end)
    assert got.verdict == pattern
    if name.startswith("many-"):
        calls = len(report.inventory.calls)
        assert calls >= 4 and sum(f.pattern == pattern for f in got.findings) == calls


def test_calls_stopping_together_with_nothing_after_are_not_called_cut(tmp_path):
    """Six calls end together and the capture runs on 8 s: silence alone is a
    hang-up as far as the capture shows, never a cut-off."""
    path = tmp_path / "ended.pcap"
    write_capture(simulate_many_streams(6, 1200, seed=3, scenario="random-loss"), path)
    report = callscope.analyze(path)
    capture_end = (report.info.last_time_ns - report.info.first_time_ns) / 1e9 + 8.0
    got = engine.diagnose(report.inventory, report.metrics, capture_end)
    assert not [f for f in got.findings if f.pattern == "cutoff"]
    assert sum("no sign that either side was still there" in n for n in got.notes) == len(report.inventory.calls)

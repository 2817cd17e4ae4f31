"""Sequence accounting: wrap, loss, duplicates, reordering, restarts (RFC 3550 A.1)."""

from __future__ import annotations

import numpy as np

from callscope.metrics.loss_structure import loss_runs
from callscope.metrics.sequence import analyze_sequence, extend_timestamps


def _t(n: int) -> np.ndarray:
    return np.arange(n) * 0.02


def test_sequence_wrap_at_65535_is_not_loss():
    seq = np.array([65533, 65534, 65535, 0, 1, 2], np.uint16)
    a = analyze_sequence(seq, _t(6))
    assert a.ext_seq.tolist() == [65533, 65534, 65535, 65536, 65537, 65538]
    assert a.missing == 0 and a.expected_range == 6


def test_loss_across_the_wrap_is_counted_once():
    seq = np.array([65534, 65535, 2, 3], np.uint16)
    a = analyze_sequence(seq, _t(4))
    assert a.lost_ext.tolist() == [65536, 65537]
    assert loss_runs(a.received).length.tolist() == [2]


def test_duplicates_do_not_hide_loss():
    # 12 and 13 lost, 11 duplicated: received count 5 = expected 6 - 2 + 1,
    # so "expected - received" says 1 but two packets really never arrived.
    seq = np.array([10, 11, 11, 14, 15], np.uint16)
    a = analyze_sequence(seq, _t(5))
    assert a.missing == 2
    assert a.duplicates == 1
    assert a.duplicate.tolist() == [False, False, True, False, False]
    assert a.lost_ext.tolist() == [12, 13]
    # the lost packets sit evenly between their neighbours 11 (0.02 s) and 14 (0.06 s)
    np.testing.assert_allclose(a.lost_time, [0.02 + 0.04 / 3, 0.02 + 0.08 / 3])


def test_reordered_packet_is_late_not_lost():
    seq = np.array([10, 12, 11, 13], np.uint16)
    a = analyze_sequence(seq, _t(4))
    assert a.missing == 0
    assert a.reordered.tolist() == [False, False, True, False]
    assert a.duplicates == 0


def test_sequence_restart_is_not_loss():
    # A new sender state: numbers jump by ~40000, timestamps by an unrelated amount.
    seq = np.concatenate([np.arange(100, 200), np.arange(40000, 40100)]).astype(np.uint16)
    ts = np.concatenate([np.arange(100) * 160, 999_999 + np.arange(100) * 160]).astype(np.uint32)
    a = analyze_sequence(seq, _t(200), ts)
    assert a.restarts.tolist() == [100]
    assert a.missing == 0
    assert a.ext_seq[99] + 1 == a.ext_seq[100]  # re-based to continue
    assert a.expected_range == 200


def test_long_outage_with_consistent_timestamps_is_loss_not_restart():
    seq = np.concatenate([np.arange(100, 200), np.arange(5200, 5300)]).astype(np.uint16)
    ts = (seq.astype(np.int64) * 160).astype(np.uint32)
    a = analyze_sequence(seq, _t(200), ts)
    assert a.restarts.size == 0
    assert a.missing == 5000


def test_stray_packet_is_left_out_of_the_range():
    seq = np.array([1, 2, 3, 30000, 4, 5], np.uint16)
    a = analyze_sequence(seq, _t(6))
    assert a.strays == 1 and a.stray[3]
    assert a.missing == 0 and a.expected_range == 5


def test_timestamp_wrap_is_unwrapped():
    ts = np.array([2**32 - 320, 2**32 - 160, 0, 160], np.uint32)
    assert np.diff(extend_timestamps(ts)).tolist() == [160, 160, 160]


def test_garbage_sequence_numbers_do_not_invent_loss():
    # a non-RTP flow that passed a heuristic: random numbers are strays, not loss
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 65536, 96).astype(np.uint16)
    a = analyze_sequence(seq, _t(96))
    assert a.missing == 0 and a.strays == 95


def test_very_late_packet_inside_the_range_is_kept():
    seq = np.concatenate([np.arange(1000, 1300), [1050], np.arange(1300, 1310)]).astype(np.uint16)
    a = analyze_sequence(seq, _t(311))
    assert a.duplicates == 1 and a.strays == 0 and a.missing == 0
    seq[300] = 500  # far below the first number: a stray
    a = analyze_sequence(seq, _t(311))
    assert a.strays == 1 and a.missing == 0 and a.expected_range == 310

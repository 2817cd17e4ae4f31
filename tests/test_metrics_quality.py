"""Loss structure (RFC 3611 §4.7.2, Gilbert), playout buffers and the G.107 E-model."""

from __future__ import annotations

import numpy as np
import pytest

from callscope.metrics import emodel, jitterbuffer, loss_structure


def _mask(n: int, lost: list[int]) -> np.ndarray:
    r = np.ones(n, bool)
    r[lost] = False
    return r


def test_rfc3611_burst_and_gap_worked_by_hand():
    # 100 packets of 20 ms. Losses: 10 (isolated: >= 16 received both sides),
    # then 40, 41, 43, 50 (fewer than Gmin = 16 received between them: one
    # burst from 40 to 50, 11 packets, 4 lost), then 80 (isolated).
    r = _mask(100, [10, 40, 41, 43, 50, 80])
    s = loss_structure.loss_structure(r, slot_ms=20.0)
    assert s.bursts == 1
    assert s.burst_spans.tolist() == [[40, 50]]
    assert s.burst_density == pytest.approx(4 / 11)
    assert s.gap_density == pytest.approx(2 / 89)
    assert s.burst_duration_ms == pytest.approx(11 * 20.0)
    assert s.gap_duration_ms == pytest.approx(89 / 2 * 20.0)  # two gaps: before and after
    assert s.run_histogram == (4, 1)  # four single losses, one pair


def test_gilbert_elliott_states_are_the_bursts_and_gaps():
    r = _mask(100, [10, 40, 41, 43, 50, 80])
    s = loss_structure.loss_structure(r, slot_ms=20.0)
    # good -> bad once (39 -> 40) out of 89 good slots with a successor (slot 99 has none)
    assert s.ge_p == pytest.approx(1 / 88)
    assert s.ge_r == pytest.approx(1 / 11)  # bad -> good once (50 -> 51)
    assert s.ge_loss_good == s.gap_density and s.ge_loss_bad == s.burst_density


def test_burst_ratio_is_one_for_random_loss_and_large_for_bursts():
    rng = np.random.default_rng(7)
    random_loss = rng.random(200_000) > 0.05
    assert loss_structure.burst_ratio(random_loss) == pytest.approx(1.0, abs=0.03)
    bursty = np.ones(10_000, bool)
    for start in range(100, 10_000, 500):
        bursty[start : start + 25] = False
    # p = 20 / ~9500, q = 20 / 500: BurstR = 1 / (p + q) ~ 24
    assert loss_structure.burst_ratio(bursty) == pytest.approx(1 / (20 / 9499 + 20 / 500), rel=0.01)


def test_no_loss_gives_neutral_structure():
    s = loss_structure.loss_structure(np.ones(50, bool), slot_ms=20.0)
    assert s.run_histogram == () and s.bursts == 0
    assert s.burst_ratio == 1.0 and s.gap_density == 0.0
    assert s.gap_duration_ms == pytest.approx(1000.0)


def test_emodel_default_parameters_give_r_93_2():
    r, inputs = emodel.r_factor(emodel.CODECS["G711-PLC"], 0.0)
    assert r == pytest.approx(93.2, abs=0.05)  # G.107 §7.7
    assert inputs.ro == pytest.approx(94.77, abs=0.01)
    assert inputs.is_ == pytest.approx(1.41, abs=0.01)
    assert inputs.ie_eff == 0.0


def test_clean_g711_mos_is_about_4_4():
    r, _ = emodel.r_factor(emodel.CODECS["G711-PLC"], 0.0)
    assert emodel.mos_from_r(r) == pytest.approx(4.41, abs=0.01)


def test_ten_percent_loss_never_scores_4_5():
    for row in emodel.CODECS.values():
        for burst in (1.0, 3.0):
            r, _ = emodel.r_factor(row, 10.0, burst)
            assert emodel.mos_from_r(r) < 3.6
    # G.711 + PLC, random: Ie,eff = 95 * 10 / (10 + 25.1)
    _, inputs = emodel.r_factor(emodel.CODECS["G711-PLC"], 10.0, 1.0)
    assert inputs.ie_eff == pytest.approx(95 * 10 / 35.1)


def test_bursty_loss_hurts_more_than_random_loss():
    row = emodel.CODECS["G729A"]
    r_random, _ = emodel.r_factor(row, 3.0, 1.0)
    r_bursty, _ = emodel.r_factor(row, 3.0, 4.0)
    assert r_bursty < r_random
    assert r_random == pytest.approx(93.2 - 11 - (95 - 11) * 3 / (3 + 19.0), abs=0.05)


def test_delay_above_100_ms_lowers_r():
    row = emodel.CODECS["G711-PLC"]
    r = [emodel.r_factor(row, 0.0, 1.0, ta)[0] for ta in (100.0, 200.0, 400.0)]
    assert r[0] > r[1] > r[2]
    assert r[2] < 70


def test_codec_rows_found_by_encoding_name_or_static_payload_type():
    assert emodel.codec_row("PCMA", None).bpl == 25.1
    assert emodel.codec_row("G729", None).ie == 11.0
    assert emodel.codec_row(None, 4).ie == 15.0
    assert emodel.codec_row("opus", None).name == "Opus"
    assert emodel.codec_row("mystery", 120) is None


def test_fixed_buffer_discards_packets_later_than_60_ms():
    delay = np.array([0.0, 10, 59, 61, 200, 5])
    r = jitterbuffer.simulate(delay)
    assert r.late_fixed.tolist() == [False, False, False, True, True, False]


def test_fixed_buffer_reanchors_at_talkspurt_start():
    delay = np.array([0.0, 10, 100, 120, 150])
    spurt = np.array([True, False, True, False, False])
    r = jitterbuffer.simulate(delay, spurt)
    assert r.late_fixed.tolist() == [False, False, False, False, False]


def test_adaptive_buffer_absorbs_jitter_a_fixed_one_drops():
    rng = np.random.default_rng(3)
    delay = 80 + 25 * np.abs(rng.standard_normal(3000))  # first packet sets a low anchor
    delay[0] = 0.0
    r = jitterbuffer.simulate(delay)
    assert r.late_fixed_count > 1000
    assert r.late_adaptive_count < r.late_fixed_count / 3

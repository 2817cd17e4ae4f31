"""diagnose on simulated calls with known mechanisms, and on the real captures.

Each test simulates one call with chosen parameters (callscope.synth models
the mechanism: a token bucket, a FIFO queue, on/off windows), writes it as a
pcap, runs the whole pipeline and checks the verdict and the estimates.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import callscope
from callscope.diagnose import AUDIBLE, PATTERNS, Finding
from callscope.diagnose.policing import loss_onset, replay_token_bucket
from callscope.metrics.loss_structure import loss_runs, loss_structure, spacing_cv
from callscope.synth import simulate, write_capture


def run(tmp_path, scenario: str, seed: int = 11, **kw):
    """Simulate, write, analyze: the diagnosis and the sidecar's truth params."""
    call = simulate(scenario, seed=seed, **kw)
    path = tmp_path / f"{scenario}-{seed}.pcap"
    sidecar = write_capture(call, path)
    truth = json.loads(sidecar.read_text())["params"]
    return callscope.analyze(path).diagnosis, truth


def primary(diagnosis) -> Finding:
    f = diagnosis.primary
    assert f is not None, diagnosis
    return f


# --- loss structure on hand-made masks ---------------------------------------


def test_loss_runs_and_gilbert_counts_on_a_hand_made_mask():
    rec = np.ones(20, bool)
    rec[[3, 4, 10]] = False
    runs = loss_runs(rec)
    assert runs.start.tolist() == [3, 10]
    assert runs.length.tolist() == [2, 1]
    g = loss_structure(rec, 20.0)
    # 2 good->bad transitions out of 16 good predecessors, 2 bad->good out of 3 bad.
    assert g.gilbert_p == pytest.approx(2 / 16)
    assert g.gilbert_q == pytest.approx(2 / 3)


def test_rfc3611_burst_density_with_gmin():
    rec = np.ones(100, bool)
    rec[[10, 12, 14, 60]] = False  # 10..14 is one burst (gaps < 16), 60 is isolated
    bg = loss_structure(rec, 20.0, gmin=16)
    assert bg.burst_density == pytest.approx(3 / 5)
    assert bg.gap_density == pytest.approx(1 / 95)


def test_evenly_spaced_drops_have_low_spacing_cv():
    rec = np.ones(400, bool)
    rec[::4] = False
    assert spacing_cv(rec) == pytest.approx(0.0)
    rng = np.random.default_rng(1)
    assert spacing_cv(rng.random(4000) > 0.05) > 0.8


def test_token_bucket_replay_passes_rate_times_time_plus_depth():
    t = np.arange(500) * 0.02
    size = np.full(500, 160.0)
    drop = replay_token_bucket(t, size, rate=4000.0, depth=800.0)
    passed = 160.0 * np.count_nonzero(~drop)
    assert passed <= 4000.0 * t[-1] + 800.0 + 160.0
    assert passed >= 4000.0 * t[-1]


def test_loss_onset_finds_the_rate_change():
    rng = np.random.default_rng(2)
    rec = np.concatenate([rng.random(300) > 0.003, rng.random(700) > 0.4])
    assert abs(loss_onset(rec) - 300) < 15


# --- one pattern per simulated call ------------------------------------------


def test_clean_call_is_clean(tmp_path):
    d, _ = run(tmp_path, "clean")
    assert d.verdict == "clean"
    assert set(d.stream_verdicts.values()) == {"clean"}


def test_random_loss_reports_its_rate(tmp_path):
    d, _ = run(tmp_path, "random-loss", loss=0.06, direction="b->a")
    f = primary(d)
    assert d.verdict == "random-loss"
    assert f.param("loss_fraction") == pytest.approx(0.06, abs=0.02)
    assert f.param("burst_ratio") == pytest.approx(1.0, abs=0.25)


def test_policer_rate_and_burst_are_estimated(tmp_path):
    d, truth = run(tmp_path, "policing", rate_Bps=5000.0, burst_bytes=1200.0, start_s=0.0,
                   direction="b->a")
    f = primary(d)
    assert d.verdict == "policing"
    assert f.param("rate_Bps") == pytest.approx(truth["rate_Bps"], rel=0.05)
    assert f.param("burst_bytes") == pytest.approx(truth["burst_bytes"], rel=0.25)
    assert f.param("burst_is_upper_bound") == 0.0
    assert "evenly spaced" in f.summary and "kB/s" in f.summary
    assert f.audible == AUDIBLE["policing"] and "metallic" in f.audible


def test_shallow_bucket_rate_is_reported_as_a_range(tmp_path):
    # A bucket under two packets deep wastes tokens: one packet in three goes
    # here, as it would for a range of rates.
    d, truth = run(tmp_path, "policing", codec="pcmu", rate_Bps=6000.0, burst_bytes=250.0,
                   start_s=0.0, direction="b->a")
    f = primary(d)
    assert d.verdict == "policing"
    assert f.param("rate_Bps") <= 6000.0 <= f.param("rate_upper_Bps")
    assert "exactly one packet in 3" in f.summary


def test_shaper_rate_and_queue_delay_are_estimated(tmp_path):
    d, truth = run(tmp_path, "shaping", rate_Bps=6000.0, buffer_bytes=3000.0, start_s=2.0,
                   direction="b->a")
    f = primary(d)
    assert d.verdict == "shaping"
    assert f.param("rate_Bps") == pytest.approx(6000.0, rel=0.05)
    assert f.param("queue_delay_s") == pytest.approx(truth["max_queue_delay_s"], rel=0.2)


def test_periodic_outages_give_their_period_and_duty_cycle(tmp_path):
    d, _ = run(tmp_path, "intermittent-outage", mode="periodic", period_s=4.0, off_s=0.8,
               first_s=2.0)
    f = primary(d)
    assert d.verdict == "intermittent-outage"
    assert f.param("period_s") == pytest.approx(4.0, rel=0.1)
    assert f.param("outage_s") == pytest.approx(0.8, abs=0.1)
    assert f.param("duty_cycle") == pytest.approx(0.2, abs=0.05)
    assert f.param("count") >= 6
    assert "dropouts" in f.audible


def test_cutoff_time_bytes_and_packets(tmp_path):
    d, truth = run(tmp_path, "cutoff", after_s=12.0, after_bytes=0.0)
    f = primary(d)
    assert d.verdict == "cutoff"
    assert f.param("time_s") == pytest.approx(truth["time_s"], abs=0.5)
    assert f.param("bytes") == pytest.approx(truth["bytes"], rel=0.05)
    assert f.param("packets") == pytest.approx(truth["packets"], rel=0.05)


def test_a_party_falling_silent_while_the_other_keeps_sending_is_a_cut(tmp_path):
    """The simulated block takes the party's RTCP with its media: nothing shows it
    is still there, so the capture reads as a cut seen from one end."""
    d, truth = run(tmp_path, "one-way", start_s=6.0)
    f = primary(d)
    assert d.verdict == "cutoff" and truth["start_s"] == 6.0
    assert f.call_id is not None and f.stream_id is not None
    assert abs(f.param("time_s") - 6.0) < 0.5
    assert list(d.stream_verdicts.values()).count("cutoff") == 1


def test_a_block_seen_from_the_senders_end_shows_in_the_receivers_reports(tmp_path):
    """Captured at b, whose media to a is blocked from 6 s: b's stream goes by
    untouched, but a's RTCP reports freeze its highest sequence number."""
    d, _ = run(tmp_path, "one-way", start_s=6.0, vantage="b")
    f = primary(d)
    assert d.verdict == "one-way" and "reception reports" in f.summary
    assert abs(f.param("onset_s") - 6.2) < 0.3


def test_one_way_from_the_start_is_seen_from_sdp(tmp_path):
    d, _ = run(tmp_path, "one-way", start_s=0.0)
    assert d.verdict == "one-way"
    assert "never sent" in primary(d).summary


def test_unanswered_stun_without_media_is_setup_blocked(tmp_path):
    d, _ = run(tmp_path, "setup-blocked", transactions=3)
    f = primary(d)
    assert d.verdict == "setup-blocked"
    assert dict((e.name, e.value) for e in f.evidence)["success_responses"] == 0


def test_delay_variation_without_loss_is_jitter(tmp_path):
    d, _ = run(tmp_path, "jitter", jitter_ms=35.0, loss=0.0, direction="b->a")
    assert d.verdict == "jitter"


def test_sawtooth_queue_is_congestion_not_shaping(tmp_path):
    d, _ = run(tmp_path, "congestion", seed=5)
    assert d.verdict == "congestion"
    assert "builds up" in primary(d).summary


def test_longer_frames_are_a_codec_downshift(tmp_path):
    d, truth = run(tmp_path, "codec-downshift", time_s=12.0, new_ptime_ms=40)
    f = primary(d)
    assert d.verdict == "codec-downshift"
    assert f.param("change_s") == pytest.approx(12.0, abs=1.5)
    assert f.param("ratio") == pytest.approx(0.5, abs=0.1)


def test_opaque_policing_is_found_with_lower_confidence(tmp_path):
    d, truth = run(tmp_path, "policing", seed=4, opaque=True, rate_Bps=4000.0, burst_bytes=900.0,
                   start_s=0.0, direction="b->a")
    f = primary(d)
    assert d.verdict == "policing"
    assert f.confidence <= 0.85
    assert "cadence" in f.summary
    assert f.param("rate_Bps") == pytest.approx(truth["rate_Bps"], rel=0.05)


def test_ordinary_loss_never_looks_like_throttling(tmp_path):
    throttling = {"policing", "shaping", "intermittent-outage", "cutoff", "one-way", "setup-blocked"}
    for seed in range(6):
        for scenario in ("random-loss", "bursty-loss"):
            d, _ = run(tmp_path, scenario, seed=seed)
            assert d.verdict not in throttling, (scenario, seed, d.verdict)


def test_verdict_names_are_the_taxonomy(tmp_path):
    d, _ = run(tmp_path, "policing", seed=3)
    assert d.verdict in PATTERNS
    for f in d.findings:
        assert f.pattern in PATTERNS
        assert 0.0 <= f.confidence <= 1.0
        for e in f.evidence:
            assert isinstance(e.value, float | int)


@pytest.mark.slow
def test_gilbert_elliott_p_and_r_from_a_long_call(tmp_path):
    # 120 s at 50 packets/s: about 110 good->bad transitions, so the sampling
    # error of p alone is near 10 %.
    d, truth = run(tmp_path, "bursty-loss", seed=9, duration=120.0, p=0.02, r=0.3,
                   loss_good=0.0, loss_bad=1.0, direction="b->a")
    f = primary(d)
    assert d.verdict == "bursty-loss"
    assert f.param("p") == pytest.approx(0.02, rel=0.2)
    assert f.param("r") == pytest.approx(0.3, rel=0.2)


# --- the real captures in ../shared ------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "asterisk__16_bit_48khz_60_fec_rtp.pcapng",
        "lundgrel__sip-rtp-g729a.pcap",
        "rtpproxy__G723_1.a.pcap",
        "rtpproxy__dups.a.pcap",
        "rtpproxy__DLT_NULL.a.pcap",
    ],
)
def test_real_clean_captures_are_clean(shared_captures, name):
    assert callscope.analyze(shared_captures / name).diagnosis.verdict == "clean"


def test_carrier_capture_has_one_dropout_not_intermittent_outages(shared_captures):
    d = callscope.analyze(shared_captures / "asterisk__CARRIER_G711U.pcap").diagnosis
    assert d.verdict == "bursty-loss"
    f = primary(d)
    assert "one" in f.summary and "260 ms" in f.summary
    assert all(g.pattern != "intermittent-outage" for g in d.findings)


def test_rtpproxy_lost_capture_is_heavy_bursty_loss(shared_captures):
    d = callscope.analyze(shared_captures / "rtpproxy__lost.a.pcap").diagnosis
    f = primary(d)
    assert d.verdict == "bursty-loss"
    assert f.param("loss_fraction") == pytest.approx(0.568, abs=0.005)


def test_periodically_dropped_opus_is_random_single_losses(shared_captures):
    d = callscope.analyze(shared_captures / "asterisk__16_bit_48khz_60_fec_dropped.pcapng").diagnosis
    assert d.verdict == "random-loss"
    assert primary(d).param("loss_fraction") == pytest.approx(29 / 3000, abs=0.001)

"""The impairment simulator: mechanisms, the call it writes, and its ground truth."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from callscope.synth import DropReason, Kind, simulate, simulate_many_streams, write_capture
from callscope.synth import mechanisms as mech
from callscope.synth.corpus import generate_corpus
from callscope.synth.scenarios import B_TO_A, SCENARIOS


def _media(call, direction):
    return np.flatnonzero(np.isin(call.kind, (Kind.RTP, Kind.OPAQUE)) & (call.direction == direction))


# --- mechanisms -------------------------------------------------------------


def test_token_bucket_passes_exactly_rate_times_time_plus_depth():
    # 100-byte packets at 1000/s (100 kB/s) offered to a 30 kB/s, 1000-byte bucket for 20 s.
    t = np.arange(20_000) / 1000.0
    size = np.full(t.size, 100)
    rate, depth = 30_000.0, 1000.0
    passed = mech.token_bucket(t, size, rate, depth, start=0.0)
    allowed = rate * t[-1] + depth
    assert allowed - 100 < size[passed].sum() <= allowed
    # No interval of any length passes more than rate * T + depth.
    cum = np.concatenate([[0], np.cumsum(np.where(passed, size, 0))])
    for w in (1, 10, 37, 500, 5000):
        in_window = cum[w:] - cum[:-w]
        assert in_window.max() <= rate * (w - 1) / 1000.0 + depth + 100


def test_token_bucket_passes_everything_under_its_rate_and_before_start():
    t = np.arange(5000) / 50.0
    size = np.full(t.size, 172)
    assert mech.token_bucket(t, size, 172 * 51.0, 172.0).all()
    passed = mech.token_bucket(t, size * 3, 172 * 51.0, 1000.0, start=40.0)
    assert passed[t < 40.0].all() and not passed[t >= 40.0].all()


def test_shaper_delay_grows_then_never_exceeds_buffer_over_rate():
    t = np.arange(3000) / 50.0  # 60 s at 50 pps
    size = np.full(t.size, 200)  # 10 kB/s offered
    rate, buffer = 6000.0, 4000.0
    depart = mech.fifo_queue(t, size, rate, buffer, start=10.0)
    delay = depart - t
    assert np.all(delay[t < 10.0] == 0.0)
    ok = ~np.isnan(delay)
    assert np.nanmax(delay) <= buffer / rate + 1e-12
    assert np.nanmax(delay) > 0.95 * buffer / rate
    # While the queue fills, delay grows at (s - r) / r seconds per second.
    ramp = (t >= 10.0) & (t < 10.5)
    slope = np.polyfit(t[ramp], delay[ramp], 1)[0]
    assert slope == pytest.approx((10_000 - rate) / rate, rel=0.05)
    # Then it tail-drops: delivered bytes converge to the service rate.
    late = ok & (t > 20.0)
    assert size[late].sum() / (t[-1] - 20.0) == pytest.approx(rate, rel=0.02)


def test_gilbert_elliott_transitions_match_p_and_r():
    rng = np.random.default_rng(7)
    p, r = 0.03, 0.25
    lost, bad = mech.gilbert_elliott(rng, 400_000, p, r, 0.0, 1.0)
    assert np.array_equal(lost, bad)
    prev, nxt = bad[:-1], bad[1:]
    p_hat = np.count_nonzero(~prev & nxt) / np.count_nonzero(~prev)
    r_hat = np.count_nonzero(prev & ~nxt) / np.count_nonzero(prev)
    assert p_hat == pytest.approx(p, rel=0.04)
    assert r_hat == pytest.approx(r, rel=0.04)
    assert lost.mean() == pytest.approx(p / (p + r), rel=0.05)


def test_in_windows_is_half_open():
    starts, ends = np.array([1.0, 5.0]), np.array([2.0, 6.0])
    t = np.array([0.5, 1.0, 1.99, 2.0, 5.5, 6.0, 9.0])
    assert mech.in_windows(t, starts, ends).tolist() == [False, True, True, False, True, False, False]


# --- scenarios --------------------------------------------------------------


def test_clean_call_loses_nothing_and_keeps_order():
    call = simulate("clean", seed=4, duration=10)
    assert not call.lost.any()
    for d in (0, 1):
        rows = _media(call, d)
        assert np.all(np.diff(call.arrival_time[rows]) >= 0)
        assert np.all(np.diff(call.seq[rows]) == 1)
        delay = call.arrival_time[rows] - call.send_time[rows]
        assert 0.010 <= delay.min() and delay.max() < 0.075


def test_policed_direction_delivers_the_token_rate():
    call = simulate("policing", seed=5, duration=30, direction="b->a", start_s=0.0)
    rows = _media(call, B_TO_A)
    ok = rows[~call.lost[rows]]
    span = call.send_time[rows[-1]] - call.media_start
    goodput = call.size[ok].sum() / span
    assert goodput == pytest.approx(call.scenario.rate_Bps, rel=0.03)
    assert set(np.unique(call.drop[rows])) == {DropReason.DELIVERED, DropReason.POLICER}
    assert not call.lost[_media(call, 0)].any()


def test_random_loss_rate_matches_parameter():
    call = simulate("random-loss", seed=1, duration=120, loss=0.08, direction="b->a")
    rows = _media(call, B_TO_A)
    assert call.lost[rows].mean() == pytest.approx(0.08, abs=0.015)


def test_cutoff_drops_everything_after_t():
    call = simulate("cutoff", seed=2, duration=20, after_s=8.0, after_bytes=0.0)
    media = np.isin(call.kind, (Kind.RTP, Kind.RTCP))
    late = media & (call.send_time >= call.media_start + 8.0)
    assert late.any() and call.lost[late].all()
    assert np.all(call.drop[late] == DropReason.CUTOFF)
    assert not call.lost[media & ~late].any()
    assert call.facts["time_s"] == pytest.approx(8.0)


def test_cutoff_by_bytes_counts_both_directions():
    call = simulate("cutoff", seed=2, duration=20, after_s=0.0, after_bytes=50_000.0)
    media = np.flatnonzero(call.kind == Kind.RTP)
    media = media[np.argsort(call.send_time[media], kind="stable")]
    passed = ~call.lost[media]
    assert call.size[media][passed].sum() <= 50_000
    first_dropped = np.argmax(~passed)
    assert call.size[media][: first_dropped + 1].sum() > 50_000
    assert not passed[first_dropped:].any()
    assert call.facts["bytes"] == call.size[media][passed].sum()


def test_outage_windows_blackhole_both_directions():
    call = simulate("intermittent-outage", seed=3, duration=30, mode="periodic", period_s=4.0,
                    off_s=1.0, first_s=2.0)
    rows = np.flatnonzero(call.kind == Kind.RTP)
    starts = np.array([w[0] for w in call.windows])
    assert np.allclose(np.diff(starts), 4.0)
    inside = mech.in_windows(call.send_time[rows], starts, starts + 1.0)
    assert call.lost[rows][inside].all() and not call.lost[rows][~inside].any()


def test_one_way_blocks_one_direction_only():
    call = simulate("one-way", seed=8, duration=20, start_s=5.0)
    b = _media(call, B_TO_A)
    assert call.lost[b][call.send_time[b] >= call.media_start + 5.0].all()
    assert not call.lost[_media(call, 0)].any()
    assert [s.impaired for s in call.streams[:2]] == [False, True]


def test_setup_blocked_retransmits_with_exponential_backoff():
    call = simulate("setup-blocked", seed=1, duration=60, transactions=2, rto_s=0.5, gap_s=1.0)
    assert set(call.kind.tolist()) == {Kind.STUN}
    assert call.lost.all() and len(call.captured()) == len(call)
    binding = np.sort(call.send_time[call.dport == call.streams[0].dst_port])
    assert np.allclose(np.diff(binding), 0.5 * 2.0 ** np.arange(6))
    msg = call.payload(0)
    assert struct.unpack("!HHI", msg[:8])[2] == 0x2112A442


def test_jitter_reorders_with_little_loss():
    call = simulate("jitter", seed=2, duration=30, jitter_ms=30.0, loss=0.0)
    rows = _media(call, B_TO_A)
    arr = call.arrival_time[rows]
    assert np.count_nonzero(np.diff(arr) < 0) > 50
    assert not call.lost[rows].any()


def test_codec_downshift_doubles_packet_interval():
    call = simulate("codec-downshift", seed=3, duration=30, time_s=12.0, new_ptime_ms=40,
                    size_factor=1.0)
    rows = _media(call, B_TO_A)
    gaps = np.diff(call.rtp_ts[rows])
    assert set(gaps.tolist()) == {160, 320}
    switch = call.send_time[rows][1:][gaps == 320][0]
    assert switch == pytest.approx(call.media_start + 12.0, abs=0.06)
    assert not call.lost.any()
    assert call.facts["pps_before"] == pytest.approx(50.0, rel=0.01)
    assert call.facts["pps_after"] == pytest.approx(25.0, rel=0.01)
    assert call.facts["rate_Bps_after"] == pytest.approx(25 * (320 + 12), rel=0.01)


def test_congestion_queue_delay_peaks_before_drops():
    call = simulate("congestion", seed=1, duration=30, direction="b->a")
    rows = _media(call, B_TO_A)
    delay = call.arrival_time[rows] - call.send_time[rows]
    lost = np.flatnonzero(call.lost[rows])
    assert lost.size and np.all(call.drop[rows][lost] == DropReason.QUEUE)
    base = np.nanpercentile(delay, 5)
    before = delay[np.maximum(lost - 1, 0)]
    before = before[~np.isnan(before)]
    assert np.median(before) - base > 0.5 * call.facts["max_queue_delay_s"]


def test_every_scenario_draws_varied_parameters_into_truth():
    for name in SCENARIOS:
        a, b = simulate(name, seed=11, duration=12), simulate(name, seed=12, duration=12)
        assert a.label == name
        if name != "clean":
            assert a.scenario != b.scenario, name


def test_same_seed_same_call():
    a, b = simulate("bursty-loss", seed=9, duration=10), simulate("bursty-loss", seed=9, duration=10)
    assert a.scenario == b.scenario
    assert np.array_equal(a.arrival_time, b.arrival_time, equal_nan=True)
    assert np.array_equal(a.data, b.data)


# --- what is written --------------------------------------------------------


def test_pcap_reads_back_in_scapy(tmp_path):
    scapy = pytest.importorskip("scapy.all")
    call = simulate("random-loss", seed=6, duration=5, codec="opus")
    path = tmp_path / "call.pcap"
    write_capture(call, path)
    packets = scapy.rdpcap(str(path))
    rows = call.captured()
    assert len(packets) == rows.size
    times_us = np.array([round(float(p.time) * 1e6) for p in packets])
    expected_ns = call.epoch_ns + np.rint(call.capture_time[rows] * 1e9).astype(np.int64)
    assert np.array_equal(times_us, expected_ns // 1000)
    rtp_rows = [k for k, i in enumerate(rows) if call.kind[i] == Kind.RTP]
    for k in rtp_rows[:50] + rtp_rows[-5:]:
        i = rows[k]
        udp = packets[k][scapy.UDP]
        assert (udp.sport, udp.dport) == (call.sport[i], call.dport[i])
        assert packets[k][scapy.IP].src == ("10.0.0.1" if call.direction[i] == 0 else "10.0.0.2")
        rtp = scapy.RTP(bytes(udp.payload))
        assert rtp.version == 2 and rtp.payload_type == 111
        assert rtp.sequence == call.seq[i] & 0xFFFF
        assert rtp.timestamp == call.rtp_ts[i] & 0xFFFFFFFF
        assert bytes(udp.payload) == call.payload(i)
    ip = packets[0][scapy.IP]
    sent_sum = ip.chksum
    del ip.chksum
    assert scapy.IP(bytes(ip)).chksum == sent_sum


def test_pcap_reads_back_in_read_datagrams(tmp_path):
    from callscope.capture import read_datagrams

    call = simulate("policing", seed=6, duration=5)
    path = tmp_path / "call.pcap"
    write_capture(call, path, nanosecond=True)
    dg = read_datagrams(path)
    rows = call.captured()
    assert len(dg) == rows.size
    assert np.array_equal(dg.time_ns, call.epoch_ns + np.rint(call.capture_time[rows] * 1e9).astype(np.int64))
    assert np.array_equal(dg.sport, call.sport[rows]) and np.array_equal(dg.dport, call.dport[rows])
    assert np.array_equal(dg.udp_payload_len, call.size[rows])
    for k in (0, 5, len(dg) - 1):
        assert dg.payload(k) == call.payload(rows[k])


def test_rtcp_reports_the_receivers_view_of_loss():
    call = simulate("random-loss", seed=4, duration=30, loss=0.1, direction="b->a")
    b = _media(call, B_TO_A)
    rtcp_a = np.flatnonzero((call.kind == Kind.RTCP) & (call.direction == 0))
    last = rtcp_a[-1]
    t = call.send_time[last]
    msg = call.payload(last)
    assert msg[1] == 200 and msg[0] & 0x1F == 1  # SR with one report block
    block = msg[28:52]
    ssrc, word, highest, jitter, _, _ = struct.unpack("!IIIIII", block)
    assert ssrc == call.streams[B_TO_A].ssrc
    heard = b[call.arrival_time[b] <= t]
    assert highest == call.seq[heard].max()
    expected = call.seq[heard].max() - call.seq[heard[np.argmin(call.arrival_time[heard])]] + 1
    assert word & 0xFFFFFF == expected - heard.size
    assert 0 < jitter < 8000 * 0.005


def test_truth_sidecar_names_label_params_and_impaired_direction(tmp_path):
    call = simulate("policing", seed=3, duration=10, direction="b->a")
    sidecar = write_capture(call, tmp_path / "x" / "call.pcap")
    assert sidecar == tmp_path / "x" / "call.truth.json"
    doc = json.loads(sidecar.read_text())
    assert doc["label"] == "policing" and doc["seed"] == 3
    assert doc["params"]["rate_Bps"] == call.scenario.rate_Bps
    assert doc["params"]["burst_bytes"] == call.scenario.burst_bytes
    assert doc["impaired_directions"] == ["b->a"]
    rtp = [s for s in doc["streams"] if s["kind"] == "rtp"]
    assert [s["impaired"] for s in rtp] == [False, True]
    assert rtp[1]["sent"] - rtp[1]["delivered"] == int(call.lost[_media(call, B_TO_A)].sum())


def test_opaque_media_has_no_rtp_sip_or_rtcp():
    call = simulate("clean", seed=1, duration=5, opaque=True)
    assert set(call.kind.tolist()) == {Kind.OPAQUE, Kind.KEEPALIVE}
    assert np.all(call.seq == -1)
    media = call.kind == Kind.OPAQUE
    assert np.all(np.abs(np.diff(call.send_time[media & (call.direction == 0)]) - 0.020) < 0.045)


def test_capture_runs_to_the_end_after_a_cutoff():
    for opaque in (False, True):
        call = simulate("cutoff", seed=5, duration=20, after_s=6.0, after_bytes=0.0, opaque=opaque)
        assert np.nanmax(call.capture_time) > 20.0
        media = np.isin(call.kind, (Kind.RTP, Kind.OPAQUE))
        # An opaque call is captured at its caller, whose own media goes on
        # into the void after the cut; what reaches it stops at the cut.
        assert call.vantage == ("a" if opaque else "receivers")
        arriving = media & (call.direction == B_TO_A) if opaque else media
        assert np.nanmax(call.capture_time[arriving]) < call.media_start + 6.1
        if opaque:
            assert np.nanmax(call.capture_time[media & (call.direction == 0)]) > 19.0


def test_many_streams_are_distinct_flows():
    call = simulate_many_streams(50, 200, seed=1, scenario="random-loss", loss=0.1)
    assert len(call) == 50 * 200
    flows = {(int(s), int(p)) for s, p in zip(call.src, call.sport, strict=True)}
    assert len(flows) == 50
    assert call.lost.mean() == pytest.approx(0.1, abs=0.02)
    assert np.all(np.diff(call.capture_time[call.captured()]) >= 0)


def test_corpus_writes_labelled_captures(tmp_path):
    paths = generate_corpus(tmp_path, 1, seed=1, duration=8, patterns=["clean", "cutoff"])
    assert [p.name for p in paths] == ["clean-000.pcap", "cutoff-000.pcap"]
    labels = [json.loads(p.with_suffix(".truth.json").read_text())["label"] for p in paths]
    assert labels == ["clean", "cutoff"]
    assert (tmp_path / "corpus.json").exists()


def test_cli_synth_writes_capture_and_sidecar(tmp_path):
    from callscope.cli import cli

    out = tmp_path / "p.pcap"
    result = CliRunner().invoke(
        cli, ["synth", "policing", "-o", str(out), "--seed", "2", "--duration", "6",
              "--param", "rate_Bps=4000"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.truth.json").read_text())["params"]["rate_Bps"] == 4000.0
    bad = CliRunner().invoke(cli, ["synth", "policing", "-o", str(out), "--param", "nope=1"])
    assert bad.exit_code != 0


@pytest.mark.slow
def test_million_packet_capture_is_written_whole(tmp_path):
    # How fast is the benchmarks' business (benchmarks/compare_tshark.py), not a test's.
    call = simulate_many_streams(100, 10_000, seed=1)
    write_capture(call, tmp_path / "big.pcap")
    assert (tmp_path / "big.pcap").stat().st_size == 24 + 1_000_000 * (16 + 42) + call.size.sum()


def test_vantage_a_records_own_packets_when_sent_even_if_lost():
    call = simulate("cutoff", seed=2, duration=15, after_s=6.0, after_bytes=0.0, vantage="a")
    a, b = _media(call, 0), _media(call, B_TO_A)
    assert np.array_equal(call.capture_time[a], call.send_time[a])
    assert call.lost[a].any()
    assert np.array_equal(call.capture_time[b], call.arrival_time[b], equal_nan=True)


def test_background_loss_adds_independent_loss_under_the_scenario(tmp_path):
    call = simulate("policing", seed=3, duration=60, direction="b->a", background_loss=0.05)
    a = _media(call, 0)
    assert call.lost[a].mean() == pytest.approx(0.05, abs=0.015)
    assert set(np.unique(call.drop[a])) == {DropReason.DELIVERED, DropReason.RANDOM}
    doc = json.loads(write_capture(call, tmp_path / "c.pcap").read_text())
    assert doc["network"]["background_loss"] == 0.05


def test_two_point_captures_share_payloads_across_nat_and_clock_error(tmp_path):
    from callscope.capture import read_datagrams
    from callscope.capture.datagrams import address_to_str
    from callscope.synth.both_ends import write_two_point

    call = simulate("random-loss", seed=2, duration=10, loss=0.1, direction="b->a")
    a_path, b_path = write_two_point(call, tmp_path / "call.pcap", clock_offset_s=3.5, clock_drift_ppm=40.0)
    a, b = read_datagrams(a_path), read_datagrams(b_path)
    truth = json.loads((tmp_path / "call.b.truth.json").read_text())["two_point"]
    assert truth["clock_offset_s"] == 3.5 and truth["clock_drift_ppm"] == 40.0
    assert truth["other_capture"] == "call.a.pcap"
    # B's media reaches A with 10 % loss; A's capture misses exactly the lost ones.
    rows = _media(call, B_TO_A)
    assert sorted(truth["lost"]["b->a"]) == sorted(call.seq[rows][call.lost[rows]].tolist())
    # At B, A appears as the NAT's public address; at A as itself.
    assert "203.0.113.45" in {address_to_str(x) for x in b.src} and "10.0.0.1" not in {address_to_str(x) for x in b.src}
    assert "10.0.0.1" in {address_to_str(x) for x in a.src}
    # The same A->B packet in both captures: same payload, B's clock = t + offset + drift * t.
    i = _media(call, 0)[0]
    k = [j for j in range(len(b)) if b.payload(j) == call.payload(i)]
    assert len(k) == 1 and sum(a.payload(j) == call.payload(i) for j in range(len(a))) == 1
    t_true = call.arrival_time[i]
    expected_ns = call.epoch_ns + round((t_true + 3.5 + 40e-6 * t_true) * 1e9)
    assert abs(int(b.time_ns[k[0]]) - expected_ns) <= 1000


def test_g711_encoders_invert_the_reference_decoder():
    from callscope.report.audio import g711_decode
    from callscope.synth.voice import linear_to_alaw, linear_to_ulaw

    codes = np.arange(256, dtype=np.uint8)
    # Every code but µ-law's negative zero (0x7F, decoded as 0 = 0xFF) encodes back to itself.
    assert np.count_nonzero(linear_to_ulaw(g711_decode(codes, "PCMU")) == codes) == 255
    assert np.array_equal(linear_to_alaw(g711_decode(codes, "PCMA")), codes)
    x = np.arange(-32000, 32000, 7, dtype=np.int16)
    for enc, law in ((linear_to_ulaw, "PCMU"), (linear_to_alaw, "PCMA")):
        err = np.abs(g711_decode(enc(x), law).astype(np.int64) - x)
        assert np.all(err <= np.maximum(0.05 * np.abs(x.astype(np.int64)), 16))  # half a segment step


def test_pcmu_payloads_carry_a_speech_like_signal():
    from callscope.report.audio import g711_decode

    call = simulate("clean", seed=1, duration=6, codec="pcmu")
    rows = _media(call, 0)
    pcm = np.concatenate([g711_decode(np.frombuffer(call.payload(i)[12:], np.uint8), "PCMU")
                          for i in rows]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm[:8000]))
    # Energy sits in the voice band, mostly below 1.5 kHz (harmonics falling 6 dB/octave).
    assert spectrum[:1500].sum() > 3 * spectrum[1500:].sum()
    assert 500 < np.abs(pcm).mean() < 8000


def test_opus_payloads_start_with_a_toc_for_their_frame_length():
    call = simulate("codec-downshift", seed=1, duration=12, codec="opus", time_s=5.0,
                    new_ptime_ms=60, size_factor=1.0)
    rows = _media(call, B_TO_A)
    toc = np.array([call.payload(i)[12] for i in rows])
    gaps = np.diff(call.rtp_ts[rows])
    # RFC 6716 §3.1: config 9 = SILK WB 20 ms, 11 = SILK WB 60 ms; code 0, mono.
    assert set(toc.tolist()) == {9 << 3, 11 << 3}
    # A packet's timestamp step to the next one is its own frame length.
    assert np.array_equal(toc[:-1] == 11 << 3, gaps == 2880)


def test_ptime_a_codec_cannot_carry_is_refused():
    from callscope.errors import CallscopeError

    with pytest.raises(CallscopeError, match="opus cannot packetize 30 ms"):
        simulate("clean", codec="opus", ptime_ms=30, duration=5)


def test_gilbert_fit_recovers_the_simple_model_and_sidecar_keeps_it():
    rng = np.random.default_rng(3)
    lost, _ = mech.gilbert_elliott(rng, 300_000, 0.02, 0.4, 0.0, 1.0)
    p, r = mech.gilbert_fit(lost)
    assert p == pytest.approx(0.02, rel=0.05) and r == pytest.approx(0.4, rel=0.05)
    call = simulate("bursty-loss", seed=4, duration=30, direction="b->a")
    rows = _media(call, B_TO_A)
    assert (call.facts["p_observed"], call.facts["r_observed"]) == mech.gilbert_fit(call.lost[rows])
